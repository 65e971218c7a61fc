/* kq: K-quant kernels for baseline ARMv8-A NEON (every aarch64 CPU): the q8_K activation
 * quantizer, the q2_K..q6_K dequantizers and the q4_K/q5_K/q6_K . q8_K dots without SDOT.
 *
 * Everything here is bit-identical to reference/kquants.c:
 *  - q8_K: round half to even is FRINTN/FCVTNS (vcvtnq_s32_f32), the same as the reference's
 *    1.5*2^23 trick for the |v| <= 127 that a finite scale gives; blocks the trick treats specially
 *    (all zero, or a scale that overflows to Inf) are handed to the reference itself.
 *  - dequantize: the same float operations in the same order, one rounding each (no FMA: vmulq then
 *    vsubq, never vmlaq_f32/vfmaq_f32).
 *  - vec_dot: the integer sums are exact int32, so any order of integer adds is fine; the float
 *    contribution of each super-block and the 8-lane reduction follow the contract in kq_types.h. */
#include <arm_neon.h>
#include <math.h>

#include "kq_neon.h"
#include "kq_neon_common.h"
#include "kq_ref.h"

/* ---------------------------------------- helpers -------------------------------------------- */

/* Exact int16x8 -> int32x4 dot of 32 codes (|code| <= 31) with 32 activations: four products of at
 * most 31*128 per int16 lane stay below 2^15. */
static inline int32x4_t kq_k_dot32(int8x16_t w0, int8x16_t w1, const int8_t *a) {
    const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
    int16x8_t p = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
    p = vmlal_high_s8(p, w0, a0);
    p = vmlal_s8(p, vget_low_s8(w1), vget_low_s8(a1));
    p = vmlal_high_s8(p, w1, a1);
    return vpaddlq_s16(p);
}

/* q6_K: the code minus 32 times the activation, |.| <= 32*128: two products per int16 lane. */
static inline int32x4_t kq_k_dot16(uint8x16_t u, const int8_t *act) {
    const int8x16_t w = vsubq_s8(vreinterpretq_s8_u8(u), vdupq_n_s8(32)), a = vld1q_s8(act);
    int16x8_t p = vmull_s8(vget_low_s8(w), vget_low_s8(a));
    p = vmlal_high_s8(p, w, a);
    return vpaddlq_s16(p);
}

/* --------------------------------------- q8_K quantize --------------------------------------- */

/* Largest (h) and smallest (l) value of a super-block: the signed value of largest magnitude is h
 * or l, whichever is larger in magnitude; a tie (or a zero block) takes the slow path. */
static inline void kq_k_maxmin(const float *x, float *h, float *l) {
    float32x4_t hi[4], lo[4];
    for (int k = 0; k < 4; k++) hi[k] = lo[k] = vld1q_f32(x + 4 * k);
    for (int i = 16; i < KQ_QK_K; i += 16) {
        for (int k = 0; k < 4; k++) {
            const float32x4_t v = vld1q_f32(x + i + 4 * k);
            hi[k] = vmaxq_f32(hi[k], v);
            lo[k] = vminq_f32(lo[k], v);
        }
    }
    *h = vmaxvq_f32(vmaxq_f32(vmaxq_f32(hi[0], hi[1]), vmaxq_f32(hi[2], hi[3])));
    *l = vminvq_f32(vminq_f32(vminq_f32(lo[0], lo[1]), vminq_f32(lo[2], lo[3])));
}

/* qs = MIN(127, nearest_int(iscale * x)) and the sums of 16, for a finite iscale: then
 * |iscale * x| <= 127 (to within one rounding), so the narrowing is exact and the MIN a no-op. */
static inline void kq_k_q8K_scaled(const float *x, float iscale, kq_block_q8_K *y) {
    const float32x4_t vs = vdupq_n_f32(iscale);
#pragma GCC unroll 16 /* straight-line, so the llvm-mca region measures the whole block */
    for (int j = 0; j < KQ_QK_K; j += 16) {
        const int32x4_t i0 = vcvtnq_s32_f32(vmulq_f32(vs, vld1q_f32(x + j)));
        const int32x4_t i1 = vcvtnq_s32_f32(vmulq_f32(vs, vld1q_f32(x + j + 4)));
        const int32x4_t i2 = vcvtnq_s32_f32(vmulq_f32(vs, vld1q_f32(x + j + 8)));
        const int32x4_t i3 = vcvtnq_s32_f32(vmulq_f32(vs, vld1q_f32(x + j + 12)));
        const int16x8_t h0 = vmovn_high_s32(vmovn_s32(i0), i1);
        const int16x8_t h1 = vmovn_high_s32(vmovn_s32(i2), i3);
        vst1q_s8(y->qs + j, vmovn_high_s16(vmovn_s16(h0), h1));
        y->bsums[j / 16] = (int16_t)vaddvq_s16(vaddq_s16(h0, h1));
    }
    y->d = 1 / iscale;
}

/* +m and -m both occur (the first one decides the sign, as the reference's scan does), the block is
 * zero, or -127/max overflows: rare, so scalar, and the last two are the reference's own business. */
static __attribute__((noinline)) void kq_k_q8K_special(const float *x, kq_block_q8_K *y) {
    float max = 0, amax = 0;
    for (int i = 0; i < KQ_QK_K; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    const float iscale = amax > 0 ? -127.f / max : 0.0f;
    if (amax > 0 && isfinite(iscale))
        kq_k_q8K_scaled(x, iscale, y);
    else
        kq_quantize_row_q8_K_ref(x, y, KQ_QK_K);
}

static void kq_quantize_row_q8_K_neon(const float *x, void *vy, int64_t n) {
    kq_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / KQ_QK_K; i++) {
        KQ_MCA_BEGIN("quantize_row_q8_K:256");
        const float *xb = x + i * KQ_QK_K;
        float h, l;
        kq_k_maxmin(xb, &h, &l);
        const float iscale = -127.f / (h > -l ? h : l);
        const int plain = h != -l && isfinite(iscale);
        /* unconditional, so the region has one exit (a branch here made gcc duplicate the END
         * marker); the rare special blocks are then rewritten from scratch */
        kq_k_q8K_scaled(xb, iscale, &y[i]);
        KQ_MCA_END();
        if (!plain) kq_k_q8K_special(xb, &y[i]);
    }
}

/* ------------------------------------- dequantize ------------------------------------------- */

/* y[0..15] = dl * q - ml for unsigned codes q (q2_K, q4_K, q5_K), as the reference rounds it. */
static inline void kq_k_put16u(float *y, uint8x16_t q, float dl, float ml) {
    const float32x4_t vd = vdupq_n_f32(dl), vm = vdupq_n_f32(ml);
    const uint16x8_t lo = vmovl_u8(vget_low_u8(q)), hi = vmovl_high_u8(q);
    vst1q_f32(y + 0, vsubq_f32(vmulq_f32(vd, vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo)))), vm));
    vst1q_f32(y + 4, vsubq_f32(vmulq_f32(vd, vcvtq_f32_u32(vmovl_high_u16(lo))), vm));
    vst1q_f32(y + 8, vsubq_f32(vmulq_f32(vd, vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi)))), vm));
    vst1q_f32(y + 12, vsubq_f32(vmulq_f32(vd, vcvtq_f32_u32(vmovl_high_u16(hi))), vm));
}

/* y[0..15] = dl * q for signed codes q (q3_K, q6_K). */
static inline void kq_k_put16s(float *y, int8x16_t q, float dl) {
    const float32x4_t vd = vdupq_n_f32(dl);
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    vst1q_f32(y + 0, vmulq_f32(vd, vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)))));
    vst1q_f32(y + 4, vmulq_f32(vd, vcvtq_f32_s32(vmovl_high_s16(lo))));
    vst1q_f32(y + 8, vmulq_f32(vd, vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)))));
    vst1q_f32(y + 12, vmulq_f32(vd, vcvtq_f32_s32(vmovl_high_s16(hi))));
}

/* q2_K/q3_K planes: in each 128-half, bits 2k..2k+1 of byte l are element 32k + l. */
static void kq_dequantize_row_q2_K_neon(const void *vx, float *y, int64_t n) {
    const kq_block_q2_K *x = vx;
    const uint8x16_t m3 = vdupq_n_u8(3);
    for (int64_t i = 0; i < n / KQ_QK_K; i++, y += KQ_QK_K) {
        const float32x4_t dd = kq_k_h2f_pair(&x[i].d);
        const float d = vgetq_lane_f32(dd, 0), min = vgetq_lane_f32(dd, 1);
        for (int h = 0; h < 2; h++) {
            uint8x16_t p0 = vld1q_u8(x[i].qs + 32 * h), p1 = vld1q_u8(x[i].qs + 32 * h + 16);
            for (int k = 0; k < 4; k++) {
                const int j = 8 * h + 2 * k; /* sub-block of 16 */
                const uint8_t s0 = x[i].scales[j], s1 = x[i].scales[j + 1];
                float *o = y + 128 * h + 32 * k;
                kq_k_put16u(o, vandq_u8(p0, m3), d * (s0 & 0xF), min * (s0 >> 4));
                kq_k_put16u(o + 16, vandq_u8(p1, m3), d * (s1 & 0xF), min * (s1 >> 4));
                p0 = vshrq_n_u8(p0, 2);
                p1 = vshrq_n_u8(p1, 2);
            }
        }
    }
}

/* q3_K's 16 six-bit scales, minus 32. */
static void kq_k_q3_scales(const uint8_t *s, int sc[16]) {
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
        sc[j] = (lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    }
}

static void kq_dequantize_row_q3_K_neon(const void *vx, float *y, int64_t n) {
    const kq_block_q3_K *x = vx;
    const uint8x16_t m3 = vdupq_n_u8(3), b4 = vdupq_n_u8(4);
    for (int64_t i = 0; i < n / KQ_QK_K; i++, y += KQ_QK_K) {
        const float d = kq_half_to_f32(x[i].d);
        int sc[16];
        kq_k_q3_scales(x[i].scales, sc);
        /* third bit of element e: bit e/32 of hmask[e%32]; clear means the code is 4 lower */
        uint8x16_t h0 = vld1q_u8(x[i].hmask), h1 = vld1q_u8(x[i].hmask + 16);
        for (int h = 0; h < 2; h++) {
            uint8x16_t p0 = vld1q_u8(x[i].qs + 32 * h), p1 = vld1q_u8(x[i].qs + 32 * h + 16);
            for (int k = 0; k < 4; k++) {
                const int j = 8 * h + 2 * k;
                const uint8x16_t u0 = vorrq_u8(vandq_u8(p0, m3), vandq_u8(vshlq_n_u8(h0, 2), b4));
                const uint8x16_t u1 = vorrq_u8(vandq_u8(p1, m3), vandq_u8(vshlq_n_u8(h1, 2), b4));
                float *o = y + 128 * h + 32 * k;
                kq_k_put16s(o, vsubq_s8(vreinterpretq_s8_u8(u0), vreinterpretq_s8_u8(b4)), d * sc[j]);
                kq_k_put16s(o + 16, vsubq_s8(vreinterpretq_s8_u8(u1), vreinterpretq_s8_u8(b4)), d * sc[j + 1]);
                p0 = vshrq_n_u8(p0, 2);
                p1 = vshrq_n_u8(p1, 2);
                h0 = vshrq_n_u8(h0, 1);
                h1 = vshrq_n_u8(h1, 1);
            }
        }
    }
}

/* q4_K/q5_K: chunk c of 64 = 32 bytes, low nibbles are sub-block 2c, high nibbles 2c+1; q5_K's
 * fifth bits are bits 2c and 2c+1 of qh[l]. qh == NULL for q4_K. */
static void kq_k_dequant_q45(const kq_half *dd_p, const uint8_t *s12, const uint8_t *qs, const uint8_t *qh,
                             float *y) {
    const float32x4_t dd = kq_k_h2f_pair(dd_p);
    const float d = vgetq_lane_f32(dd, 0), min = vgetq_lane_f32(dd, 1);
    uint8x8_t scv, mnv;
    kq_k_scales_k4(s12, &scv, &mnv);
    uint8_t sc[8], mn[8];
    vst1_u8(sc, scv);
    vst1_u8(mn, mnv);
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m5 = vdupq_n_u8(0x1F);
    uint8x16_t h0 = vdupq_n_u8(0), h1 = h0;
    if (qh) h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);
    for (int c = 0; c < 4; c++) {
        const uint8x16_t q0 = vld1q_u8(qs + 32 * c), q1 = vld1q_u8(qs + 32 * c + 16);
        uint8x16_t l0 = vandq_u8(q0, m4), l1 = vandq_u8(q1, m4);
        uint8x16_t u0 = vshrq_n_u8(q0, 4), u1 = vshrq_n_u8(q1, 4);
        if (qh) {
            l0 = vandq_u8(vsliq_n_u8(q0, h0, 4), m5);
            l1 = vandq_u8(vsliq_n_u8(q1, h1, 4), m5);
            u0 = vandq_u8(vsriq_n_u8(vshlq_n_u8(h0, 3), q0, 4), m5);
            u1 = vandq_u8(vsriq_n_u8(vshlq_n_u8(h1, 3), q1, 4), m5);
            h0 = vshrq_n_u8(h0, 2);
            h1 = vshrq_n_u8(h1, 2);
        }
        const float d1 = d * sc[2 * c], m1 = min * mn[2 * c];
        const float d2 = d * sc[2 * c + 1], m2 = min * mn[2 * c + 1];
        kq_k_put16u(y + 64 * c, l0, d1, m1);
        kq_k_put16u(y + 64 * c + 16, l1, d1, m1);
        kq_k_put16u(y + 64 * c + 32, u0, d2, m2);
        kq_k_put16u(y + 64 * c + 48, u1, d2, m2);
    }
}

static void kq_dequantize_row_q4_K_neon(const void *vx, float *y, int64_t n) {
    const kq_block_q4_K *x = vx;
    for (int64_t i = 0; i < n / KQ_QK_K; i++) kq_k_dequant_q45(&x[i].d, x[i].scales, x[i].qs, NULL, y + i * KQ_QK_K);
}

static void kq_dequantize_row_q5_K_neon(const void *vx, float *y, int64_t n) {
    const kq_block_q5_K *x = vx;
    for (int64_t i = 0; i < n / KQ_QK_K; i++) kq_k_dequant_q45(&x[i].d, x[i].scales, x[i].qs, x[i].qh, y + i * KQ_QK_K);
}

static void kq_dequantize_row_q6_K_neon(const void *vx, float *y, int64_t n) {
    const kq_block_q6_K *x = vx;
    const int8x16_t b32 = vdupq_n_s8(32);
    for (int64_t i = 0; i < n / KQ_QK_K; i++, y += KQ_QK_K) {
        const float d = kq_half_to_f32(x[i].d);
        for (int h = 0; h < 2; h++) {
            uint8x16_t u[8];
            for (int p = 0; p < 2; p++) {
                uint8x16_t q[4];
                kq_k_q6_quarters(x[i].ql + 64 * h, x[i].qh + 32 * h, p, q);
                for (int k = 0; k < 4; k++) u[2 * k + p] = q[k];
            }
            for (int s = 0; s < 8; s++) /* u[s] is sub-block 8h + s: elements 128h + 16s .. */
                kq_k_put16s(y + 128 * h + 16 * s, vsubq_s8(vreinterpretq_s8_u8(u[s]), b32), d * x[i].scales[8 * h + s]);
        }
    }
}

/* --------------------------------------- vec_dot -------------------------------------------- */

KQ_K_DEFINE_VEC_DOTS(neon, "_plain", kq_k_dot32, kq_k_dot16) /* regions vec_dot_q4_K_q8_K_plain:256 .. q6_K */

static const kq_kernel_override kq_neon_k_rows[] = {
    {KQ_TYPE_Q2_K, NULL, kq_dequantize_row_q2_K_neon, NULL},
    {KQ_TYPE_Q3_K, NULL, kq_dequantize_row_q3_K_neon, NULL},
    {KQ_TYPE_Q4_K, NULL, kq_dequantize_row_q4_K_neon, kq_vec_dot_q4_K_q8_K_neon},
    {KQ_TYPE_Q5_K, NULL, kq_dequantize_row_q5_K_neon, kq_vec_dot_q5_K_q8_K_neon},
    {KQ_TYPE_Q6_K, NULL, kq_dequantize_row_q6_K_neon, kq_vec_dot_q6_K_q8_K_neon},
    {KQ_TYPE_Q8_K, kq_quantize_row_q8_K_neon, NULL, NULL},
};

const kq_override_list kq_neon_k_list = {kq_neon_k_rows, sizeof kq_neon_k_rows / sizeof kq_neon_k_rows[0]};
