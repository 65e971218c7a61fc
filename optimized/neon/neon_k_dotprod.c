/* kq: q4_K/q5_K/q6_K . q8_K with SDOT (ARMv8.2 dotprod: Kunpeng 920 tsv110), chosen at run time
 * when HWCAP has ASIMDDP. Same results as reference/kquants.c bit for bit: SDOT sums are exact
 * int32 like the reference's integer loops, and the float part follows the contract in kq_types.h
 * (per super-block c_b as written, block b into lane b % 8, then the fixed 8-lane reduction).
 * The layouts and the helpers mirror neon_k.c (plain NEON); only the integer dot differs. */
#include <arm_neon.h>
#include <string.h>

#include "kq_mca.h"
#include "kq_neon.h"
#include "kq_ref.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "neon_k_dotprod.c must be compiled with dotprod (-mcpu=tsv110+dotprod)"
#endif


/* Two adjacent fp16 fields (d, dmin) widened by FCVTL, which is exact like kq_f16_to_f32. */
static inline float32x4_t kq_kd_h2f_pair(const void *p) {
    uint32_t u;
    memcpy(&u, p, sizeof u);
    return vcvt_f32_f16(vreinterpret_f16_u32(vdup_n_u32(u)));
}

static inline float kq_kd_h2f(kq_half h) {
    return vget_lane_f32(vget_low_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h)))), 0);
}

/* q4_K/q5_K's packed 6-bit scales and mins, sub-blocks 0..7 (see neon_k.c). */
static inline void kq_kd_scales_k4(const uint8_t *s12, uint8x8_t *sc, uint8x8_t *mn) {
    uint32_t w0, w1, w2;
    memcpy(&w0, s12, 4);
    memcpy(&w1, s12 + 4, 4);
    memcpy(&w2, s12 + 8, 4);
    const uint32_t sc_lo = w0 & 0x3f3f3f3fu, mn_lo = w1 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | ((w0 >> 2) & 0x30303030u);
    const uint32_t mn_hi = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 2) & 0x30303030u);
    *sc = vcreate_u8((uint64_t)sc_lo | (uint64_t)sc_hi << 32);
    *mn = vcreate_u8((uint64_t)mn_lo | (uint64_t)mn_hi << 32);
}

static inline float kq_kd_reduce8(const float lanes[8]) {
    return vaddvq_f32(vaddq_f32(vld1q_f32(lanes), vld1q_f32(lanes + 4)));
}

/* sum_j sc_j * (lane sum of s[j]) over 8 sub-blocks, exact in int32. */
static inline int32_t kq_kd_scaled8(const int32x4_t s[8], uint8x8_t sc) {
    const int32x4_t s0 = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
    const int32x4_t s1 = vpaddq_s32(vpaddq_s32(s[4], s[5]), vpaddq_s32(s[6], s[7]));
    const uint16x8_t w = vmovl_u8(sc);
    int32x4_t t = vmulq_s32(s0, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w))));
    t = vmlaq_s32(t, s1, vreinterpretq_s32_u32(vmovl_high_u16(w)));
    return vaddvq_s32(t);
}

/* imin = sum_j m_j * (bsums[2j] + bsums[2j+1]), pair sums widened to int32 first. */
static inline int32_t kq_kd_mins8(const int16_t *bsums, uint8x8_t mn) {
    const int32x4_t p0 = vpaddlq_s16(vld1q_s16(bsums)), p1 = vpaddlq_s16(vld1q_s16(bsums + 8));
    const uint16x8_t w = vmovl_u8(mn);
    int32x4_t t = vmulq_s32(p0, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w))));
    t = vmlaq_s32(t, p1, vreinterpretq_s32_u32(vmovl_high_u16(w)));
    return vaddvq_s32(t);
}

static inline float kq_kd_asym(float32x4_t dd, float da, int32_t isum, int32_t imin) {
    const float dw = vgetq_lane_f32(dd, 0), dm = vgetq_lane_f32(dd, 1);
    return (dw * da) * (float)isum - (dm * da) * (float)imin;
}

/* A fresh zero accumulator for each SDOT chain. Left to itself the compiler keeps one zero register
 * and copies it (a 128-bit register move: two micro-ops on tsv110); MOVI is one. volatile only so
 * that the statements are not merged back into one. */
static inline int32x4_t kq_kd_zero(void) {
    int32x4_t z;
    __asm__ volatile("movi %0.4s, #0" : "=w"(z));
    return z;
}

/* 32 codes (as int8) . 32 activations into the four lanes of one int32x4. */
static inline int32x4_t kq_kd_dot32(uint8x16_t w0, uint8x16_t w1, const int8_t *a) {
    const int32x4_t z = kq_kd_zero();
    return vdotq_s32(vdotq_s32(z, vreinterpretq_s8_u8(w0), vld1q_s8(a)), vreinterpretq_s8_u8(w1), vld1q_s8(a + 16));
}

static float kq_kd_row_q4_K(int64_t nb, const kq_block_q4_K *w, const kq_block_q8_K *a) {
    float lanes[8] = {0};
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int64_t b = 0; b < nb; b++) {
        KQ_MCA_BEGIN("vec_dot_q4_K_q8_K:256");
        uint8x8_t sc, mn;
        kq_kd_scales_k4(w[b].scales, &sc, &mn);
        int32x4_t s[8];
        for (int c = 0; c < 4; c++) {
            const uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * c), q1 = vld1q_u8(w[b].qs + 32 * c + 16);
            const int8_t *q8 = a[b].qs + 64 * c;
            s[2 * c] = kq_kd_dot32(vandq_u8(q0, m4), vandq_u8(q1, m4), q8);
            s[2 * c + 1] = kq_kd_dot32(vshrq_n_u8(q0, 4), vshrq_n_u8(q1, 4), q8 + 32);
        }
        const int32_t isum = kq_kd_scaled8(s, sc), imin = kq_kd_mins8(a[b].bsums, mn);
        lanes[b & 7] += kq_kd_asym(kq_kd_h2f_pair(&w[b].d), a[b].d, isum, imin);
        KQ_MCA_END();
    }
    return kq_kd_reduce8(lanes);
}

static float kq_kd_row_q5_K(int64_t nb, const kq_block_q5_K *w, const kq_block_q8_K *a) {
    float lanes[8] = {0};
    const uint8x16_t m5 = vdupq_n_u8(0x1F);
    for (int64_t b = 0; b < nb; b++) {
        KQ_MCA_BEGIN("vec_dot_q5_K_q8_K:256");
        uint8x8_t sc, mn;
        kq_kd_scales_k4(w[b].scales, &sc, &mn);
        uint8x16_t h0 = vld1q_u8(w[b].qh), h1 = vld1q_u8(w[b].qh + 16);
        int32x4_t s[8];
        for (int c = 0; c < 4; c++) {
            const uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * c), q1 = vld1q_u8(w[b].qs + 32 * c + 16);
            const int8_t *q8 = a[b].qs + 64 * c;
            /* code = nibble | (bit 2c or 2c+1 of qh) << 4 */
            const uint8x16_t l0 = vandq_u8(vsliq_n_u8(q0, h0, 4), m5), l1 = vandq_u8(vsliq_n_u8(q1, h1, 4), m5);
            const uint8x16_t u0 = vandq_u8(vsriq_n_u8(vshlq_n_u8(h0, 3), q0, 4), m5);
            const uint8x16_t u1 = vandq_u8(vsriq_n_u8(vshlq_n_u8(h1, 3), q1, 4), m5);
            s[2 * c] = kq_kd_dot32(l0, l1, q8);
            s[2 * c + 1] = kq_kd_dot32(u0, u1, q8 + 32);
            h0 = vshrq_n_u8(h0, 2);
            h1 = vshrq_n_u8(h1, 2);
        }
        const int32_t isum = kq_kd_scaled8(s, sc), imin = kq_kd_mins8(a[b].bsums, mn);
        lanes[b & 7] += kq_kd_asym(kq_kd_h2f_pair(&w[b].d), a[b].d, isum, imin);
        KQ_MCA_END();
    }
    return kq_kd_reduce8(lanes);
}

/* sum_j scales[j] * (lane sum of s[j]) over 16 sub-blocks. */
static inline int32_t kq_kd_scaled16(const int32x4_t s[16], const int8_t *scales) {
    const int8x16_t sc8 = vld1q_s8(scales);
    const int16x8_t lo = vmovl_s8(vget_low_s8(sc8)), hi = vmovl_high_s8(sc8);
    const int32x4_t sc[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_high_s16(lo), vmovl_s16(vget_low_s16(hi)),
                             vmovl_high_s16(hi)};
    int32x4_t t = vdupq_n_s32(0);
    for (int g = 0; g < 4; g++) {
        const int32x4_t *v = s + 4 * g;
        t = vmlaq_s32(t, vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3])), sc[g]);
    }
    return vaddvq_s32(t);
}

static float kq_kd_row_q6_K(int64_t nb, const kq_block_q6_K *w, const kq_block_q8_K *a) {
    float lanes[8] = {0};
    const uint8x16_t m6 = vdupq_n_u8(0x3F);
    const int8x16_t m32 = vdupq_n_s8(-32);
    for (int64_t b = 0; b < nb; b++) {
        KQ_MCA_BEGIN("vec_dot_q6_K_q8_K:256");
        int32x4_t s[16];
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
            const int8_t *q8 = a[b].qs + 128 * h;
            for (int p = 0; p < 2; p++) {
                const uint8x16_t la = vld1q_u8(ql + 16 * p), lb = vld1q_u8(ql + 32 + 16 * p);
                const uint8x16_t hb = vld1q_u8(qh + 16 * p);
                /* unsigned codes 0..63 of quarters k = 0..3 (elements 32k + 16p + 0..15) */
                const uint8x16_t u[4] = {vandq_u8(vsliq_n_u8(la, hb, 4), m6),
                                         vandq_u8(vsliq_n_u8(lb, vshrq_n_u8(hb, 2), 4), m6),
                                         vandq_u8(vsriq_n_u8(hb, la, 4), m6), vsriq_n_u8(vshrq_n_u8(hb, 2), lb, 4)};
                for (int k = 0; k < 4; k++) {
                    /* (code - 32) . a as code . a + (-32) . a: a second SDOT instead of a 128-bit sub */
                    const int8x16_t av = vld1q_s8(q8 + 32 * k + 16 * p);
                    s[8 * h + 2 * k + p] = vdotq_s32(vdotq_s32(kq_kd_zero(), vreinterpretq_s8_u8(u[k]), av), m32, av);
                }
            }
        }
        const int32_t isum = kq_kd_scaled16(s, w[b].scales);
        lanes[b & 7] += (kq_kd_h2f(w[b].d) * a[b].d) * (float)isum;
        KQ_MCA_END();
    }
    return kq_kd_reduce8(lanes);
}

static void kq_vec_dot_q4_K_q8_K_dotprod(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_kd_row_q4_K(n / KQ_QK_K, (const kq_block_q4_K *)((const char *)w + (size_t)r * w_stride), a);
}

static void kq_vec_dot_q5_K_q8_K_dotprod(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_kd_row_q5_K(n / KQ_QK_K, (const kq_block_q5_K *)((const char *)w + (size_t)r * w_stride), a);
}

static void kq_vec_dot_q6_K_q8_K_dotprod(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_kd_row_q6_K(n / KQ_QK_K, (const kq_block_q6_K *)((const char *)w + (size_t)r * w_stride), a);
}

static const kq_kernel_override kq_neon_k_dotprod_rows[] = {
    {KQ_TYPE_Q4_K, NULL, NULL, kq_vec_dot_q4_K_q8_K_dotprod},
    {KQ_TYPE_Q5_K, NULL, NULL, kq_vec_dot_q5_K_q8_K_dotprod},
    {KQ_TYPE_Q6_K, NULL, NULL, kq_vec_dot_q6_K_q8_K_dotprod},
};

const kq_override_list kq_neon_k_dotprod_list = {kq_neon_k_dotprod_rows,
                                                 sizeof kq_neon_k_dotprod_rows / sizeof kq_neon_k_dotprod_rows[0]};
