/* kq NEON, baseline ARMv8-A (no SDOT: Kunpeng 916 / Cortex-A72, and any aarch64 CPU): vec_dot of
 * the 32-element ggml formats, q4_0 q5_0 q8_0 against q8_0 and q4_1 q5_1 against q8_1. Tuned with
 * -mtune=tsv110; the SDOT versions for Kunpeng 920 are in neon_q32_dotprod.c.
 *
 * Bit-identical to the reference by THE REDUCTION CONTRACT (kq_types.h): each block's integer dot
 * is exact; c_b = (float)isum_b * (d_w * d_a) (+ m_w * s_a) is evaluated with the reference's
 * roundings (d_w * d_a is exact: two widened halves); block b lands in float lane b % 8; the lanes
 * are reduced in the contract's order. Only the order of exact integer additions differs.
 *
 * Products: SMULL/SMLAL(2) of int8 codes (unscaled) and activations into int16x8, four products per
 * lane; the int16 sums stay exact as long as they are widened in time: q4 (|product| <= 1920) sums
 * 16 products in int16, q5 (<= 3968) 8, q8_0 (<= 16384) widens every product pair (SADALP).
 * Everything else (nibbles by shifts, shift-inserts and TBL, four blocks per reduction, conversion,
 * scale and lane add; fp16 scales gathered in general registers) is shared with neon_q32_dotprod.c
 * (kq_neon_common.h); this file brings only its integer dots. */
#include <arm_neon.h>

#include "kq_neon.h"
#include "kq_neon_common.h"

static inline kq_k kq_consts(void) {
    static const int8_t t8[16] = {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7};
    return kq_consts_nib(t8);
}

/* Four products per int16 lane: w0 . a0 (16 codes) + w1 . a1 (16 codes). */
static inline int16x8_t kq_mul2(kq_k *k, int8x16_t w0, int8x16_t a0, int8x16_t w1, int8x16_t a1) {
    (void)k;
    int16x8_t p = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
    p = vmlal_high_s8(p, w0, a0);
    p = vmlal_s8(p, vget_low_s8(w1), vget_low_s8(a1));
    return vmlal_high_s8(p, w1, a1);
}

/* Two products of +-128 * +-128 overflow int16, so every SMULL is widened on its own. */
static inline int32x4_t kq_mul2_q8(kq_k *k, int8x16_t w0, int8x16_t a0, int8x16_t w1, int8x16_t a1) {
    (void)k;
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(a0)));
    s = vpadalq_s16(s, vmull_high_s8(w0, a0));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(w1), vget_low_s8(a1)));
    return vpadalq_s16(s, vmull_high_s8(w1, a1));
}

/* Four blocks' int16x8 products -> the four block sums. q4: 16 products per int16 lane before
 * widening; q5: 8. */
static inline int32x4_t kq_sum4_q4(int16x8_t p0, int16x8_t p1, int16x8_t p2, int16x8_t p3) {
    return vpaddlq_s16(vpaddq_s16(vpaddq_s16(p0, p1), vpaddq_s16(p2, p3)));
}

static inline int32x4_t kq_sum4_q5(int16x8_t p0, int16x8_t p1, int16x8_t p2, int16x8_t p3) {
    return vpaddq_s32(vpaddlq_s16(vpaddq_s16(p0, p1)), vpaddlq_s16(vpaddq_s16(p2, p3)));
}

KQ_Q32_DEFINE_VEC_DOTS(plain, kq_neon_q32_dot_list, int16x8_t, kq_mul2, kq_mul2_q8, kq_sum4_q4, kq_sum4_q5, kq_sum4,
                       q4)
