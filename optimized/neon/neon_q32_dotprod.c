/* kq NEON + SDOT (ARMv8.2 dotprod, Kunpeng 920 tsv110): vec_dot of the 32-element ggml formats,
 * q4_0 q5_0 q8_0 against q8_0 and q4_1 q5_1 against q8_1.
 *
 * Bit-identical to the reference by THE REDUCTION CONTRACT (kq_types.h): each block's integer dot
 * is exact; c_b = (float)isum_b * (d_w * d_a) (+ m_w * s_a) is evaluated with the reference's
 * roundings (d_w * d_a is exact: two widened halves); block b lands in float lane b % 8; the lanes
 * are reduced in the contract's order. Only the order of exact integer additions differs.
 *
 * Cost model (llvm-mca tsv110, which `make kunpeng-cycles` runs on these loops): two SIMD pipes;
 * 128-bit integer ALU ops (eor, and, add, addp, register mov) take both, while sdot, shifts,
 * shift-inserts, tbl, dup, conversions and float ops take one. Hence:
 *  - nibbles come out with shifts and shift-inserts (SRI/SLI against zero mask like AND, at half
 *    the price); 5th bits are spread by TBL (byte broadcast), USHL (bit to the sign) and SSHR/USHR;
 *  - four blocks share one pairwise reduction, one int->float conversion, one scale multiply and
 *    one lane add; q4_0 works on 16 * code and undoes the 16 inside the conversion (SCVTF #4);
 *  - four fp16 scales are gathered in a general register (plain loads and inserts, no SIMD work),
 *    moved over once and widened by one FCVTL;
 *  - SDOT accumulates, so every block needs a zeroed accumulator: it is loaded from memory (a
 *    load-pipe op) instead of copied from a zero register (a 128-bit mov: both SIMD pipes);
 *  - with nrc >= 2 two weight rows share each activation load and activation scale. */
#include <arm_neon.h>

#include "kq_neon.h"
#include "kq_neon_common.h"

/* q4_0's nibble u maps to 16 * (u - 8) (fits int8): the isums are 16 * isum (q4x16 below). */
static inline kq_k kq_consts(void) {
    static const int8_t t16[16] = {-128, -112, -96, -80, -64, -48, -32, -16, 0, 16, 32, 48, 64, 80, 96, 112};
    return kq_consts_nib(t16);
}

/* Loads the compiler must not merge with an equal one (volatile), at any alignment. */
typedef int32x4_t kq_s32x4_any __attribute__((aligned(1)));
static const int32x4_t kq_zero_v = {0, 0, 0, 0};

/* A zeroed SDOT accumulator by a load, not a copy of one zero register: a 128-bit mov takes
 * both SIMD pipes on tsv110, the load takes none. */
static inline int32x4_t kq_zacc(kq_k *k) {
    (void)k;
    return *(const volatile kq_s32x4_any *)&kq_zero_v;
}

static inline int32x4_t kq_sdot2(kq_k *k, int8x16_t w0, int8x16_t a0, int8x16_t w1, int8x16_t a1) {
    return vdotq_s32(vdotq_s32(kq_zacc(k), w0, a0), w1, a1);
}

KQ_Q32_DEFINE_VEC_DOTS(dp, kq_neon_q32_dotprod_list, int32x4_t, kq_sdot2, kq_sdot2, kq_sum4, kq_sum4, kq_sum4, q4x16)
