/* kq NEON (baseline ARMv8-A): INT-N dequantize and vec_dot (layout: reference/kq_intn.h).
 *
 * A chunk of 32 codes in 4*b bytes keeps element j in byte j % (4b) at shift (j / 4b) * b, so the
 * codes come out of one load by shifts and masks. Levels (sym: u - 2^(b-1), 1-bit: 2u - 1; asym: u)
 * fit int8 except 8-bit asym, where u * a = (u - 128) * a + 128 * a.
 *
 * vec_dot follows the reduction contract bit for bit: per activation block b an exact int32 isum,
 * c_b = (float)isum * (d_w * d_a) [+ m_w * s_a] rounded as written (no FMA), c_b into lane b % 8.
 * Four blocks are done at once: their isums in one int32x4, their contributions in one float32x4
 * added to lanes 0-3 or 4-7, which is the same sequence of roundings per lane. The layout walk and
 * that driver are shared with neon_intn_dotprod.c (kq_neon_common.h); this file brings the integer
 * dot without SDOT. */
#include <arm_neon.h>

#include "kq_neon.h"
#include "kq_neon_common.h"

/* ---- dequantize ------------------------------------------------------------------------------- */

/* sym: y = d * level; asym: y = d * u + m (two roundings, as the reference) */
KQ_AI void kq_intn_dequant(const void *x, float *y, int64_t n, int bits, int group, int asym) {
    const uint8_t *row = x;
    for (int64_t i = 0; i < n; i += 32) {
        const uint8_t *h = row + kq_hdr_off(i, bits, group, asym);
        const float d = kq_half_to_f32(kq_load_half(h));
        uint8x16_t u[2];
        kq_unpack(row + kq_chunk_off(i, bits, group, asym), bits, u);
        if (asym) {
            const float m = kq_half_to_f32(kq_load_half(h + 2));
            kq_store_affine_u8(u[0], d, m, y + i), kq_store_affine_u8(u[1], d, m, y + i + 16);
        } else if (bits == 8) {
            kq_store_scaled_s8(kq_levels(u[0], 8, 0), d, y + i), kq_store_scaled_s8(kq_levels(u[1], 8, 0), d, y + i + 16);
        } else {
            kq_store_scaled_s8(kq_levels(u[0], bits, 0), d, y + i),
                kq_store_scaled_s8(kq_levels(u[1], bits, 0), d, y + i + 16);
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

/* ---- one function per type ----------------------------------------------------------------------- */

#define KQ_INTN_FNS(name, b, g, gc, as)                                                               \
    static void kq_dequantize_row_##name##_neon(const void *x, float *y, int64_t n) {                 \
        kq_intn_dequant(x, y, n, b, g, as);                                                           \
    }                                                                                                 \
    static void kq_vec_dot_##name##_neon(int64_t n, float *s, const void *w, size_t ws, const void *a, int nrc) { \
        kq_intn_vec_dot(n, s, w, ws, a, nrc, b, g, as, kq_isum_parts, kq_sum128);                                  \
    }
KQ_INTN_EACH(KQ_INTN_FNS)

#define KQ_INTN_ROW(name, b, g, gc, as) \
    {KQ_INTN_ID(b, gc, as), NULL, kq_dequantize_row_##name##_neon, kq_vec_dot_##name##_neon},
static const kq_kernel_override kq_neon_intn_rows[] = {KQ_INTN_EACH(KQ_INTN_ROW)};

const kq_override_list kq_neon_intn_list = {kq_neon_intn_rows, sizeof(kq_neon_intn_rows) / sizeof(kq_neon_intn_rows[0])};
