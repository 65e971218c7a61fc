/* kq NEON + SDOT (ARMv8.2 dotprod, compiled -mcpu=tsv110+dotprod): INT-N vec_dot.
 *
 * The same kernels as neon_intn.c (same layout walk, same per-4-block float contributions, so the
 * same bits as the reference), with the exact int32 block dot done by SDOT. The 8-bit asym codes
 * are unsigned: u * a = (u - 128) * a + 128 * a, 128 * sum(a) = SDOT(a, 1) << 7.
 * Dequantize stays in neon_intn.c (this layer only adds vec_dot). */
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

/* ---- vec_dot ---------------------------------------------------------------------------------- */

/* Partial sums (int32x4) of sum_j w[j] * a[j] over 32 elements: two SDOTs. */
KQ_AI int32x4_t kq_isum_parts(const int8x16_t w[2], const int8x16_t a[2], int bits) {
    (void)bits;
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w[0], a[0]), w[1], a[1]);
}

/* 128 * sum(a), as partial sums (for 8-bit asym) */
KQ_AI int32x4_t kq_sum128(const int8x16_t a[2]) {
    const int8x16_t one = vdupq_n_s8(1);
    return vshlq_n_s32(vdotq_s32(vdotq_s32(vdupq_n_s32(0), a[0], one), a[1], one), 7);
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
    static void kq_vec_dot_##name##_sdot(int64_t n, float *s, const void *w, size_t ws, const void *a, int nrc) { \
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
    {KQ_INTN_ID(b, gc, as), NULL, NULL, kq_vec_dot_##name##_sdot},
static const kq_kernel_override kq_neon_intn_dotprod_rows[] = {KQ_INTN_EACH(KQ_INTN_ROW)};

const kq_override_list kq_neon_intn_dotprod_list = {kq_neon_intn_dotprod_rows,
                                                    sizeof(kq_neon_intn_dotprod_rows) / sizeof(kq_neon_intn_dotprod_rows[0])};
