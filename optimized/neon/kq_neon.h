/* kq: the NEON layers for aarch64 (Kunpeng 920 tsv110 and Kunpeng 916 Cortex-A72).
 * Each source file exports the override list of what it implements; optimized/dispatch.c stacks
 * them: neon-plain = reference + the *_list below; neon-dotprod = neon-plain + the *_dotprod_list.
 * Files named *_dotprod.c are compiled with -mcpu=tsv110+dotprod and only run when HWCAP says the
 * CPU has ASIMDDP; every other file is baseline ARMv8-A and runs everywhere. */
#ifndef KQ_NEON_H
#define KQ_NEON_H

#include "kq_dispatch.h"

extern const kq_override_list kq_neon_float_list;         /* neon_float.c: f16<->f32 rows, f32/f16 dots */
extern const kq_override_list kq_neon_q32_list;           /* neon_q32.c: q4_0..q8_1 quantize, dequantize */
extern const kq_override_list kq_neon_q32_dot_list;       /* neon_q32_dot.c: plain-NEON vec_dots of q4_0..q8_0 */
extern const kq_override_list kq_neon_q32_dotprod_list;   /* neon_q32_dotprod.c: SDOT vec_dots */
extern const kq_override_list kq_neon_k_list;             /* neon_k.c: q8_K quantize, K dequantize, plain vec_dot */
extern const kq_override_list kq_neon_k_dotprod_list;     /* neon_k_dotprod.c */
extern const kq_override_list kq_neon_intn_list;          /* neon_intn.c: INT-N dequantize, plain vec_dot */
extern const kq_override_list kq_neon_intn_dotprod_list;  /* neon_intn_dotprod.c */

#endif
