/* kq: q4_K/q5_K/q6_K . q8_K with SDOT (ARMv8.2 dotprod: Kunpeng 920 tsv110), chosen at run time
 * when HWCAP has ASIMDDP. Same results as reference/kquants.c bit for bit: SDOT sums are exact
 * int32 like the reference's integer loops, and the float part follows the contract in kq_types.h
 * (per super-block c_b as written, block b into lane b % 8, then the fixed 8-lane reduction).
 * The layouts, the helpers and the driver are neon_k.c's (kq_neon_common.h); only the integer dot
 * differs. */
#include <arm_neon.h>

#include "kq_neon.h"
#include "kq_neon_common.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "neon_k_dotprod.c must be compiled with dotprod (-mcpu=tsv110+dotprod)"
#endif

/* A fresh zero accumulator for each SDOT chain. Left to itself the compiler keeps one zero register
 * and copies it (a 128-bit register move: two micro-ops on tsv110); MOVI is one. volatile only so
 * that the statements are not merged back into one. */
static inline int32x4_t kq_kd_zero(void) {
    int32x4_t z;
    __asm__ volatile("movi %0.4s, #0" : "=w"(z));
    return z;
}

/* 32 codes (as int8) . 32 activations into the four lanes of one int32x4. */
static inline int32x4_t kq_kd_dot32(int8x16_t w0, int8x16_t w1, const int8_t *a) {
    const int32x4_t z = kq_kd_zero();
    return vdotq_s32(vdotq_s32(z, w0, vld1q_s8(a)), w1, vld1q_s8(a + 16));
}

/* (code - 32) . a as code . a + (-32) . a: a second SDOT instead of a 128-bit sub. */
static inline int32x4_t kq_kd_dot16(uint8x16_t u, const int8_t *a) {
    const int8x16_t av = vld1q_s8(a);
    return vdotq_s32(vdotq_s32(kq_kd_zero(), vreinterpretq_s8_u8(u), av), vdupq_n_s8(-32), av);
}

KQ_K_DEFINE_VEC_DOTS(dotprod, "", kq_kd_dot32, kq_kd_dot16) /* regions vec_dot_q4_K_q8_K:256 .. q6_K */

static const kq_kernel_override kq_neon_k_dotprod_rows[] = {
    {KQ_TYPE_Q4_K, NULL, NULL, kq_vec_dot_q4_K_q8_K_dotprod},
    {KQ_TYPE_Q5_K, NULL, NULL, kq_vec_dot_q5_K_q8_K_dotprod},
    {KQ_TYPE_Q6_K, NULL, NULL, kq_vec_dot_q6_K_q8_K_dotprod},
};

const kq_override_list kq_neon_k_dotprod_list = {kq_neon_k_dotprod_rows,
                                                 sizeof kq_neon_k_dotprod_rows / sizeof kq_neon_k_dotprod_rows[0]};
