/* kq NEON (baseline ARMv8-A): INT-N dequantize and vec_dot (layout: reference/kq_intn.h).
 *
 * A chunk of 32 codes in 4*b bytes keeps element j in byte j % (4b) at shift (j / 4b) * b, so the
 * codes come out of one load by shifts and masks. Levels (sym: u - 2^(b-1), 1-bit: 2u - 1; asym: u)
 * fit int8 except 8-bit asym, where u * a = (u - 128) * a + 128 * a.
 *
 * vec_dot follows the reduction contract bit for bit: per activation block b an exact int32 isum,
 * c_b = (float)isum * (d_w * d_a) [+ m_w * s_a] rounded as written (no FMA), c_b into lane b % 8.
 * Four blocks are done at once: their isums in one int32x4, their contributions in one float32x4
 * added to lanes 0-3 or 4-7, which is the same sequence of roundings per lane. */
#include <arm_neon.h>
#include <string.h>

#include "fp16.h"
#include "kq_intn.h"
#include "kq_neon.h"
#include "kq_ref.h"

#define KQ_AI static inline __attribute__((always_inline))

KQ_AI uint16_t kq_ld_half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

KQ_AI float kq_half_f32(uint16_t h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

/* Byte offsets of element i's header and chunk in a row (the kq_intn.h layout, constants folded). */
KQ_AI size_t kq_hdr_off(int64_t i, int bits, int group, int asym) {
    if (!group) return 0;
    return (size_t)(i / group) * (kq_intn_header_bytes(asym) + (size_t)(group / 32) * kq_intn_chunk_bytes(bits));
}

KQ_AI size_t kq_chunk_off(int64_t i, int bits, int group, int asym) {
    const size_t hb = kq_intn_header_bytes(asym), cb = kq_intn_chunk_bytes(bits);
    if (!group) return hb + (size_t)(i / 32) * cb;
    return kq_hdr_off(i, bits, group, asym) + hb + (size_t)((i % group) / 32) * cb;
}

/* The 32 codes of a chunk: u[0] = elements 0..15, u[1] = 16..31. */
KQ_AI void kq_unpack(const uint8_t *c, int bits, uint8x16_t u[2]) {
    if (bits == 8) {
        u[0] = vld1q_u8(c), u[1] = vld1q_u8(c + 16);
    } else if (bits == 4) {
        const uint8x16_t v = vld1q_u8(c);
        u[0] = vandq_u8(v, vdupq_n_u8(15)), u[1] = vshrq_n_u8(v, 4);
    } else if (bits == 2) {
        const uint8x8_t v = vld1_u8(c), m = vdup_n_u8(3);
        u[0] = vcombine_u8(vand_u8(v, m), vand_u8(vshr_n_u8(v, 2), m));
        u[1] = vcombine_u8(vand_u8(vshr_n_u8(v, 4), m), vshr_n_u8(v, 6));
    } else { /* 1 bit: element j is bit j / 4 of byte j % 4 */
        static const int8_t s0[16] = {0, 0, 0, 0, -1, -1, -1, -1, -2, -2, -2, -2, -3, -3, -3, -3};
        static const int8_t s1[16] = {-4, -4, -4, -4, -5, -5, -5, -5, -6, -6, -6, -6, -7, -7, -7, -7};
        uint32_t w;
        memcpy(&w, c, 4);
        const uint8x16_t v = vreinterpretq_u8_u32(vdupq_n_u32(w)), one = vdupq_n_u8(1);
        u[0] = vandq_u8(vshlq_u8(v, vld1q_s8(s0)), one);
        u[1] = vandq_u8(vshlq_u8(v, vld1q_s8(s1)), one);
    }
}

/* int8 weights for the integer dot: the sym level, the asym code, or for 8-bit asym u - 128. */
KQ_AI int8x16_t kq_levels(uint8x16_t u, int bits, int asym) {
    if (bits == 8) return vreinterpretq_s8_u8(veorq_u8(u, vdupq_n_u8(0x80)));
    if (asym) return vreinterpretq_s8_u8(u);
    if (bits == 1) return vsubq_s8(vreinterpretq_s8_u8(vshlq_n_u8(u, 1)), vdupq_n_s8(1));
    return vsubq_s8(vreinterpretq_s8_u8(u), vdupq_n_s8((int8_t)(1 << (bits - 1))));
}

/* ---- dequantize ------------------------------------------------------------------------------- */

KQ_AI void kq_store_scaled(int8x16_t c, float d, float *y) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(c)), hi = vmovl_high_s8(c);
    vst1q_f32(y, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
    vst1q_f32(y + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d));
    vst1q_f32(y + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
    vst1q_f32(y + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d));
}

KQ_AI void kq_store_affine(uint8x16_t u, float d, float m, float *y) {
    const uint16x8_t lo = vmovl_u8(vget_low_u8(u)), hi = vmovl_high_u8(u);
    const float32x4_t vm = vdupq_n_f32(m);
    vst1q_f32(y, vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))), d), vm));
    vst1q_f32(y + 4, vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_high_u16(lo)), d), vm));
    vst1q_f32(y + 8, vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))), d), vm));
    vst1q_f32(y + 12, vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_high_u16(hi)), d), vm));
}

/* sym: y = d * level; asym: y = d * u + m (two roundings, as the reference) */
KQ_AI void kq_intn_dequant(const void *x, float *y, int64_t n, int bits, int group, int asym) {
    const uint8_t *row = x;
    for (int64_t i = 0; i < n; i += 32) {
        const uint8_t *h = row + kq_hdr_off(i, bits, group, asym);
        const float d = kq_half_f32(kq_ld_half(h));
        uint8x16_t u[2];
        kq_unpack(row + kq_chunk_off(i, bits, group, asym), bits, u);
        if (asym) {
            const float m = kq_half_f32(kq_ld_half(h + 2));
            kq_store_affine(u[0], d, m, y + i), kq_store_affine(u[1], d, m, y + i + 16);
        } else if (bits == 8) {
            kq_store_scaled(kq_levels(u[0], 8, 0), d, y + i), kq_store_scaled(kq_levels(u[1], 8, 0), d, y + i + 16);
        } else {
            kq_store_scaled(kq_levels(u[0], bits, 0), d, y + i), kq_store_scaled(kq_levels(u[1], bits, 0), d, y + i + 16);
        }
    }
}

/* ---- vec_dot ---------------------------------------------------------------------------------- */

/* Partial sums (int32x4) of sum_j w[j] * a[j] over 32 elements. Levels of <= 4 bits: two products
 * per int16 lane (|w a| <= 15 * 128); 8 bits: one (|w a| <= 16384). */
KQ_AI int32x4_t kq_isum_parts(const int8x16_t w[2], const int8x16_t a[2], int bits) {
    if (bits == 8) {
        int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(w[0]), vget_low_s8(a[0])));
        s = vpadalq_s16(s, vmull_high_s8(w[0], a[0]));
        s = vpadalq_s16(s, vmull_s8(vget_low_s8(w[1]), vget_low_s8(a[1])));
        return vpadalq_s16(s, vmull_high_s8(w[1], a[1]));
    }
    const int16x8_t p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w[0]), vget_low_s8(a[0])), w[0], a[0]);
    const int16x8_t p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w[1]), vget_low_s8(a[1])), w[1], a[1]);
    return vpadalq_s16(vpaddlq_s16(p0), p1);
}

/* 128 * sum(a), as partial sums (for 8-bit asym: u * a = (u - 128) * a + 128 * a) */
KQ_AI int32x4_t kq_sum128(const int8x16_t a[2]) {
    return vshlq_n_s32(vpaddlq_s16(vpadalq_s8(vpaddlq_s8(a[0]), a[1])), 7);
}

/* The isum parts of activation block b, and its header fields (as raw halves). */
KQ_AI int32x4_t kq_block_isum(const uint8_t *row, const uint8_t *act, int64_t b, int bits, int group, int asym,
                              uint16_t *dw, uint16_t *mw, uint16_t *da, uint16_t *sa) {
    const int64_t i = 32 * b;
    const uint8_t *h = row + kq_hdr_off(i, bits, group, asym);
    const uint8_t *ab = act + (size_t)b * (asym ? sizeof(kq_block_q8_1) : sizeof(kq_block_q8_0));
    uint8x16_t u[2];
    kq_unpack(row + kq_chunk_off(i, bits, group, asym), bits, u);
    const int8x16_t w[2] = {kq_levels(u[0], bits, asym), kq_levels(u[1], bits, asym)};
    const int8_t *qs = (const int8_t *)ab + (asym ? 4 : 2);
    const int8x16_t a[2] = {vld1q_s8(qs), vld1q_s8(qs + 16)};
    *dw = kq_ld_half(h), *da = kq_ld_half(ab);
    if (asym) *mw = kq_ld_half(h + 2), *sa = kq_ld_half(ab + 2);
    int32x4_t s = kq_isum_parts(w, a, bits);
    if (asym && bits == 8) s = vaddq_s32(s, kq_sum128(a));
    return s;
}

KQ_AI float32x4_t kq_halves4(const uint16_t h[4]) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h))); }

KQ_AI float kq_intn_dot_row(const uint8_t *row, const uint8_t *act, int64_t n, int bits, int group, int asym) {
    const int64_t nb = n / 32;
    float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
    uint16_t dw[4], mw[4] = {0, 0, 0, 0}, da[4], sa[4] = {0, 0, 0, 0};
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        int32x4_t s[4];
        for (int k = 0; k < 4; k++) s[k] = kq_block_isum(row, act, b + k, bits, group, asym, &dw[k], &mw[k], &da[k], &sa[k]);
        const int32x4_t isum = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
        float32x4_t c = vmulq_f32(vcvtq_f32_s32(isum), vmulq_f32(kq_halves4(dw), kq_halves4(da)));
        if (asym) c = vaddq_f32(c, vmulq_f32(kq_halves4(mw), kq_halves4(sa)));
        if (b & 4) hi = vaddq_f32(hi, c);
        else lo = vaddq_f32(lo, c);
    }
    float l[8];
    vst1q_f32(l, lo), vst1q_f32(l + 4, hi);
    for (; b < nb; b++) {
        const int32_t isum = vaddvq_s32(kq_block_isum(row, act, b, bits, group, asym, &dw[0], &mw[0], &da[0], &sa[0]));
        float c = (float)isum * (kq_half_f32(dw[0]) * kq_half_f32(da[0]));
        if (asym) c = c + kq_half_f32(mw[0]) * kq_half_f32(sa[0]);
        l[b % 8] += c;
    }
    return kq_reduce8(l);
}

KQ_AI void kq_intn_vec_dot(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc, int bits,
                           int group, int asym) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_intn_dot_row((const uint8_t *)w + (size_t)r * w_stride, a, n, bits, group, asym);
}

/* ---- one function per type ----------------------------------------------------------------------- */

#define KQ_INTN_FNS(name, b, g, as)                                                                   \
    static void kq_dequantize_row_##name##_neon(const void *x, float *y, int64_t n) {                 \
        kq_intn_dequant(x, y, n, b, g, as);                                                           \
    }                                                                                                 \
    static void kq_vec_dot_##name##_neon(int64_t n, float *s, const void *w, size_t ws, const void *a, int nrc) { \
        kq_intn_vec_dot(n, s, w, ws, a, nrc, b, g, as);                                               \
    }
#define KQ_INTN_BITS(X, b)                                                                            \
    X(i##b##_row_sym, b, 0, 0, 0) X(i##b##_row_asym, b, 0, 0, 1) X(i##b##_g32_sym, b, 32, 1, 0)       \
    X(i##b##_g32_asym, b, 32, 1, 1) X(i##b##_g64_sym, b, 64, 2, 0) X(i##b##_g64_asym, b, 64, 2, 1)    \
    X(i##b##_g128_sym, b, 128, 3, 0) X(i##b##_g128_asym, b, 128, 3, 1)
#define KQ_INTN_EACH(X) KQ_INTN_BITS(X, 1) KQ_INTN_BITS(X, 2) KQ_INTN_BITS(X, 4) KQ_INTN_BITS(X, 8)

#define KQ_INTN_DEF(name, b, g, gc, as) KQ_INTN_FNS(name, b, g, as)
KQ_INTN_EACH(KQ_INTN_DEF)

#define KQ_INTN_ROW(name, b, g, gc, as) \
    {KQ_INTN_ID(b, gc, as), NULL, kq_dequantize_row_##name##_neon, kq_vec_dot_##name##_neon},
static const kq_kernel_override kq_neon_intn_rows[] = {KQ_INTN_EACH(KQ_INTN_ROW)};

const kq_override_list kq_neon_intn_list = {kq_neon_intn_rows, sizeof(kq_neon_intn_rows) / sizeof(kq_neon_intn_rows[0])};
