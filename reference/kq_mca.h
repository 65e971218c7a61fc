/* kq: llvm-mca region markers for the hot loops of the code we ship.
 *
 * `make kunpeng-cycles` (validation/kunpeng_cycles.sh) compiles every NEON source (optimized/neon) to assembly
 * with the shipping compiler and flags, cuts out each marked region and runs
 * `llvm-mca -mcpu=tsv110` on it. On AArch64 llvm-mca only honours `# LLVM-MCA-BEGIN name` and
 * `# LLVM-MCA-END` lines (gas takes a `#` line as a comment, so the object code is unchanged).
 *
 * Name convention, checked by the script: "kernel:W" where kernel names the function measured
 * (vec_dot_q4_0_q8_0, vec_dot_q4_0_q8_0_x2, quantize_row_q8_0, ...) and W is the number of weights
 * (elements) one pass through the region handles, e.g. "vec_dot_q4_0_q8_0:256" for a loop body of
 * 8 blocks, "vec_dot_q4_0_q8_0_x2:512" for 8 blocks of 2 rows. The script reports cycles per 32 of
 * them. Put BEGIN as the first statement of the loop body and END as the last one.
 *
 * KQ_MCA_BEGIN/END are always on (NEON files: the markers cost nothing at run time, and what is
 * measured is what ships). KQ_MCA_REF_BEGIN/END are for the scalar reference and expand to the same
 * markers only when built with -DKQ_MCA (the script does that for its reference figures), so the
 * normal reference build has no inline asm at all and stays portable. */
#ifndef KQ_MCA_H
#define KQ_MCA_H

#if defined(__GNUC__) && (defined(__aarch64__) || defined(KQ_MCA))
#define KQ_MCA_BEGIN(name) __asm__ volatile("# LLVM-MCA-BEGIN " name)
#define KQ_MCA_END() __asm__ volatile("# LLVM-MCA-END")
#else
#define KQ_MCA_BEGIN(name) ((void)0)
#define KQ_MCA_END() ((void)0)
#endif

#if defined(KQ_MCA)
#define KQ_MCA_REF_BEGIN(name) KQ_MCA_BEGIN(name)
#define KQ_MCA_REF_END() KQ_MCA_END()
#else
#define KQ_MCA_REF_BEGIN(name) ((void)0)
#define KQ_MCA_REF_END() ((void)0)
#endif

/* Fixed-trip loops inside a measured reference region are unrolled completely, so llvm-mca (which
 * models straight-line code) sees every iteration. Harmless elsewhere. */
#define KQ_UNROLL_FULL _Pragma("GCC unroll 32")

#endif
