/* kq: the scalar reference of ggml's K-quants (q2_K q3_K q4_K q5_K q6_K, and the activation type q8_K).
 *
 * quantize_row reproduces ggml's quantize_row_q*_K_ref byte for byte (no importance matrix): the
 * same search algorithms, the same constants and the same float expressions in the same order,
 * because any change in rounding changes bytes (../shared/golden/ is the judge). dequantize_row
 * reproduces ggml's dequantizers bit for bit. vec_dot follows kq's reduction contract (kq_types.h),
 * not ggml's summation order: it is the specification the SIMD kernels follow bit for bit.
 *
 * Inputs must be finite (kq_types.h). Non-finite intermediates that huge finite inputs produce (the
 * sums of squares overflow, fp16 scales saturate to Inf) go through the same well-defined steps as in
 * ggml; nothing here converts an out-of-range float to an integer with a C cast. */
#include "fp16.h"
#include "kq_mca.h"
#include "kq_ref.h"

#include <math.h>
#include <string.h>

/* ggml's threshold under which a group counts as all zero. */
#define KQ_GROUP_MAX_EPS 1e-15f

/* ======================================== helpers ============================================ */

static inline int kq_imin(int a, int b) { return a < b ? a : b; }
static inline int kq_imax(int a, int b) { return a > b ? a : b; }
static inline int kq_clampi(int v, int lo, int hi) { return kq_imax(lo, kq_imin(hi, v)); }

/* Round half to even, valid for |x| < 2^22: adding 1.5 * 2^23 pushes the rounded integer into the
 * low mantissa bits. Outside that range (or for NaN) the result is meaningless but well defined and
 * the same as ggml's, which matters for the bytes of pathological rows. */
static inline int kq_nearest_int(float x) {
    const float v = x + 12582912.f;
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (int)(u & 0x007fffffu) - 0x00400000;
}

/* ggml stores ints into int8_t fields with a plain (modular) conversion; spelled out here so that
 * pathological values wrap the same way on every compiler. */
static inline int8_t kq_wrap_i8(int v) {
    const int b = (int)((unsigned)v & 0xffu);
    return (int8_t)(b >= 128 ? b - 256 : b);
}

static inline float kq_h2f(kq_half h) { return kq_f16_to_f32(h); }

/* ================================ ggml's scale searches ====================================== */

/* Value with the largest magnitude (the first one on ties), as ggml picks it. */
static float kq_signed_absmax(int n, const float *x, float *amax_out) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* Weighted sums of a symmetric trial scale (weights x^2). Writes the codes (offset by nmax) if L. */
static void kq_qx_trial(int n, int nmax, const float *x, float iscale, int8_t *L, float *sumlx, float *suml2) {
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = kq_clampi(kq_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        if (L) L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        slx += w * x[i] * l;
        sl2 += w * l * l;
    }
    *sumlx = slx;
    *suml2 = sl2;
}

/* ggml's make_qx_quants with rmse_type 1 and no importance weights (q6_K): symmetric codes in
 * [0, 2*nmax), best of 19 trial scales by weighted least squares. */
static float kq_make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = kq_signed_absmax(n, x, &amax);
    if (amax < KQ_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float sumlx, suml2;
    kq_qx_trial(n, nmax, x, -nmax / max, L, &sumlx, &suml2);
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        const float iscale = -(nmax + 0.1f * is) / max;
        kq_qx_trial(n, nmax, x, iscale, NULL, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            kq_qx_trial(n, nmax, x, iscale, L, &sumlx, &suml2);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ggml's make_q3_quants with do_rmse (q3_K): start from the max-abs scale, then up to 5 passes of
 * coordinate descent on each code (weights x^2). Codes offset by nmax. */
static float kq_make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = kq_signed_absmax(n, x, &amax);
    if (amax < KQ_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = kq_clampi(kq_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int new_l = kq_clampi(kq_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Weighted error of codes L under x ~ scale*L + min (absolute or squared differences). */
static float kq_qkx_error(int n, const float *x, const float *w, const uint8_t *L, float scale, float min,
                          int use_mad) {
    float err = 0;
    for (int i = 0; i < n; ++i) {
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        err += w[i] * diff;
    }
    return err;
}

/* ggml's make_qkx2_quants (q2_K, q4_K, q5_K): asymmetric codes in [0, nmax] with x ~ scale*L - the_min.
 * Tries nstep+1 scales (nmax + rmin + rdelta*is) / range, each refined by the weighted least-squares
 * fit of scale and min, and keeps the one with the lowest weighted error. */
static float kq_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                                 float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                                 int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    for (int i = 0; i < n; ++i)
        L[i] = (uint8_t)kq_clampi(kq_nearest_int(iscale * (x[i] - min)), 0, nmax);
    float best_error = kq_qkx_error(n, x, weights, L, scale, min, use_mad);
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = kq_clampi(kq_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            const float cur_error = kq_qkx_error(n, x, weights, Laux, this_scale, this_min, use_mad);
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* ================================== bit layouts ============================================== */
/* Element e (0..255) of a super-block. 2-bit planes (q2_K, q3_K): each 128-half holds 32 bytes, and
 * bits 2k..2k+1 of byte l hold element 32k + l. */
static inline int kq_q2_plane(const uint8_t *qs, int e) {
    return (qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

static inline int kq_q2K_code(const kq_block_q2_K *b, int e) { return kq_q2_plane(b->qs, e); } /* 0..3 */

/* q3_K: the 2-bit plane plus bit e/32 of hmask[e%32] as the third bit; -4 unless that bit is set. */
static inline int kq_q3K_code(const kq_block_q3_K *b, int e) {
    const int hi = (b->hmask[e % 32] >> (e / 32)) & 1;
    return kq_q2_plane(b->qs, e) - (hi ? 0 : 4); /* -4..3 */
}

/* q3_K's 16 six-bit scales: low nibbles in bytes 0..7 (j < 8 low half, j >= 8 high half), the two
 * high bits of j at bits 2*(j/4) of byte 8 + j%4. Stored with +32. */
static inline int kq_q3K_scale(const kq_block_q3_K *b, int j) {
    const uint8_t *s = b->scales;
    const int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32; /* -32..31 */
}

/* q4_K/q5_K: each 64-element chunk holds 32 bytes, low nibbles first then high nibbles. */
static inline int kq_q4_nibble(const uint8_t *qs, int e) {
    return (qs[(e / 64) * 32 + e % 32] >> (4 * ((e / 32) & 1))) & 0xF;
}

/* The 5th bit of q5_K's element e: bit e/32 of qh[e%32]. */
static inline int kq_q5_high(const uint8_t *qh, int e) { return ((qh[e % 32] >> (e / 32)) & 1) << 4; }

static inline int kq_q4K_code(const kq_block_q4_K *b, int e) { return kq_q4_nibble(b->qs, e); } /* 0..15 */
static inline int kq_q5K_code(const kq_block_q5_K *b, int e) { /* 0..31 */
    return kq_q4_nibble(b->qs, e) | kq_q5_high(b->qh, e);
}

/* q6_K: per 128-half h, quarter k = (e%128)/32, l = e%32: low nibble in ql[64h + l + 32(k&1)] (low
 * half for k < 2), high two bits at bits 2k of qh[32h + l]. Stored with +32. */
static inline int kq_q6K_code(const kq_block_q6_K *b, int e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const int lo = (b->ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xF;
    const int hi = (b->qh[32 * h + l] >> (2 * k)) & 3;
    return (lo | (hi << 4)) - 32; /* -32..31 */
}

/* Packs 2-bit codes L[256] into the planes read by kq_q2_plane. */
static void kq_pack_q2_plane(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < KQ_QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* ======================================== q2_K =============================================== */

void kq_quantize_row_q2_K_ref(const float *x, void *vy, int64_t n) {
    kq_block_q2_K *y = vy;
    const int64_t nb = n / KQ_QK_K;
    const float q4scale = 15.f;
    uint8_t L[KQ_QK_K], Laux[16];
    float weights[16], mins[KQ_QK_K / 16], scales[KQ_QK_K / 16];

    for (int64_t i = 0; i < nb; i++, x += KQ_QK_K) {
        float max_scale = 0, max_min = 0; /* the min is subtracted, so scales are >= 0 */
        for (int j = 0; j < KQ_QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = kq_make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < KQ_QK_K / 16; ++j) y[i].scales[j] = (uint8_t)kq_nearest_int(iscale * scales[j]);
            y[i].d = kq_f32_to_f16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = kq_f32_to_f16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < KQ_QK_K / 16; ++j)
                y[i].scales[j] |= (uint8_t)((unsigned)kq_nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = kq_f32_to_f16(max_min / q4scale);
        } else {
            y[i].dmin = kq_f32_to_f16(0.f);
        }
        /* requantize against the rounded scales; a zero scale keeps the search's codes */
        for (int j = 0; j < KQ_QK_K / 16; ++j) {
            const float d = kq_h2f(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = kq_h2f(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = (uint8_t)kq_clampi(kq_nearest_int((x[16 * j + ii] + dm) / d), 0, 3);
        }
        kq_pack_q2_plane(L, y[i].qs);
    }
}

void kq_dequantize_row_q2_K_ref(const void *vx, float *y, int64_t n) {
    const kq_block_q2_K *x = vx;
    for (int64_t i = 0; i < n / KQ_QK_K; i++) {
        const float d = kq_h2f(x[i].d), min = kq_h2f(x[i].dmin);
        for (int e = 0; e < KQ_QK_K; e++) {
            const uint8_t sc = x[i].scales[e / 16];
            const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
            *y++ = dl * kq_q2K_code(&x[i], e) - ml;
        }
    }
}

/* ======================================== q3_K =============================================== */

/* Returns the inverse of the block scale: d = 1 / iscale. */
static float kq_q3K_pack_scales(const float *scales, float max_scale, uint8_t *s) {
    const float iscale = -32.f / max_scale;
    memset(s, 0, 12);
    for (int j = 0; j < KQ_QK_K / 16; ++j) {
        int l = kq_clampi(kq_wrap_i8(kq_nearest_int(iscale * scales[j])), -32, 31) + 32;
        if (j < 8)
            s[j] = (uint8_t)(l & 0xF);
        else
            s[j - 8] |= (uint8_t)((l & 0xF) << 4);
        l >>= 4;
        s[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
    }
    return iscale;
}

void kq_quantize_row_q3_K_ref(const float *x, void *vy, int64_t n) {
    kq_block_q3_K *y = vy;
    const int64_t nb = n / KQ_QK_K;
    int8_t L[KQ_QK_K];
    float scales[KQ_QK_K / 16];

    for (int64_t i = 0; i < nb; i++, x += KQ_QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < KQ_QK_K / 16; ++j) {
            scales[j] = kq_make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            const float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        if (max_scale != 0) {
            const float iscale = kq_q3K_pack_scales(scales, max_scale, y[i].scales);
            y[i].d = kq_f32_to_f16(1 / iscale);
        } else {
            memset(y[i].scales, 0, 12);
            y[i].d = kq_f32_to_f16(0.f);
        }
        for (int j = 0; j < KQ_QK_K / 16; ++j) {
            const float d = kq_h2f(y[i].d) * kq_q3K_scale(&y[i], j);
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = (int8_t)(kq_clampi(kq_nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
        }
        /* bit 2 of element e goes to hmask[e % 32], bit e / 32 */
        uint8_t L2[KQ_QK_K];
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int e = 0; e < KQ_QK_K; ++e) {
            if (L[e] > 3) y[i].hmask[e % 32] |= (uint8_t)(1u << (e / 32));
            L2[e] = (uint8_t)(L[e] & 3);
        }
        kq_pack_q2_plane(L2, y[i].qs);
    }
}

void kq_dequantize_row_q3_K_ref(const void *vx, float *y, int64_t n) {
    const kq_block_q3_K *x = vx;
    for (int64_t i = 0; i < n / KQ_QK_K; i++) {
        const float d_all = kq_h2f(x[i].d);
        for (int e = 0; e < KQ_QK_K; e++) {
            const float dl = d_all * kq_q3K_scale(&x[i], e / 16);
            *y++ = dl * kq_q3K_code(&x[i], e);
        }
    }
}

/* ===================================== q4_K and q5_K ========================================= */

/* The shared part of q4_K/q5_K: per sub-block of 32 a qkx2 search weighted by av_x + |x|, 6-bit
 * scales and mins relative to the block maxima (packed as kq_get_scale_min_k4 reads them), then the
 * codes L[256] requantized against the rounded values. */
static void kq_q45K_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *s12, kq_half *dh,
                           kq_half *dminh, uint8_t *L) {
    uint8_t Laux[32];
    float weights[32], mins[KQ_QK_K / 32], scales[KQ_QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < KQ_QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = kq_make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                                        nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < KQ_QK_K / 32; ++j) {
        /* uint8_t first, then MIN(63): a (pathological) negative code wraps and saturates as in ggml */
        const uint8_t ls = (uint8_t)kq_imin(63, (uint8_t)kq_nearest_int(inv_scale * scales[j]));
        const uint8_t lm = (uint8_t)kq_imin(63, (uint8_t)kq_nearest_int(inv_min * mins[j]));
        if (j < 4) {
            s12[j] = ls;
            s12[j + 4] = lm;
        } else {
            s12[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            s12[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s12[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *dh = kq_f32_to_f16(max_scale / 63.f);
    *dminh = kq_f32_to_f16(max_min / 63.f);
    for (int j = 0; j < KQ_QK_K / 32; ++j) {
        uint8_t sc, m;
        kq_get_scale_min_k4(j, s12, &sc, &m);
        const float d = kq_h2f(*dh) * sc;
        if (!d) continue;
        const float dm = kq_h2f(*dminh) * m;
        for (int ii = 0; ii < 32; ++ii)
            L[32 * j + ii] = (uint8_t)kq_clampi(kq_nearest_int((x[32 * j + ii] + dm) / d), 0, nmax);
    }
}

void kq_quantize_row_q4_K_ref(const float *x, void *vy, int64_t n) {
    kq_block_q4_K *y = vy;
    uint8_t L[KQ_QK_K];
    for (int64_t i = 0; i < n / KQ_QK_K; i++, x += KQ_QK_K) {
        kq_q45K_scales(x, 15, -1.f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        for (int j = 0; j < KQ_QK_K; j += 64)
            for (int l = 0; l < 32; ++l) y[i].qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void kq_quantize_row_q5_K_ref(const float *x, void *vy, int64_t n) {
    kq_block_q5_K *y = vy;
    uint8_t L[KQ_QK_K];
    for (int64_t i = 0; i < n / KQ_QK_K; i++, x += KQ_QK_K) {
        kq_q45K_scales(x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int e = 0; e < KQ_QK_K; ++e)
            if (L[e] > 15) y[i].qh[e % 32] |= (uint8_t)(1u << (e / 32));
        for (int j = 0; j < KQ_QK_K; j += 64)
            for (int l = 0; l < 32; ++l)
                y[i].qs[j / 2 + l] = (uint8_t)((L[j + l] & 0xF) | ((L[j + l + 32] & 0xF) << 4));
    }
}

void kq_dequantize_row_q4_K_ref(const void *vx, float *y, int64_t n) {
    const kq_block_q4_K *x = vx;
    for (int64_t i = 0; i < n / KQ_QK_K; i++) {
        const float d = kq_h2f(x[i].d), min = kq_h2f(x[i].dmin);
        for (int e = 0; e < KQ_QK_K; e++) {
            uint8_t sc, m;
            kq_get_scale_min_k4(e / 32, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            *y++ = d1 * kq_q4K_code(&x[i], e) - m1;
        }
    }
}

void kq_dequantize_row_q5_K_ref(const void *vx, float *y, int64_t n) {
    const kq_block_q5_K *x = vx;
    for (int64_t i = 0; i < n / KQ_QK_K; i++) {
        const float d = kq_h2f(x[i].d), min = kq_h2f(x[i].dmin);
        for (int e = 0; e < KQ_QK_K; e++) {
            uint8_t sc, m;
            kq_get_scale_min_k4(e / 32, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            *y++ = d1 * kq_q5K_code(&x[i], e) - m1;
        }
    }
}

/* ======================================== q6_K =============================================== */

static void kq_q6K_pack(const int8_t *L, kq_block_q6_K *b) {
    for (int e = 0; e < KQ_QK_K; e += 128) {
        uint8_t *ql = b->ql + e / 2, *qh = b->qh + e / 4;
        for (int l = 0; l < 32; ++l) {
            const int q1 = L[e + l], q2 = L[e + l + 32], q3 = L[e + l + 64], q4 = L[e + l + 96];
            ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
            ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
            qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
}

void kq_quantize_row_q6_K_ref(const float *x, void *vy, int64_t n) {
    kq_block_q6_K *y = vy;
    int8_t L[KQ_QK_K];
    float scales[KQ_QK_K / 16];

    for (int64_t i = 0; i < n / KQ_QK_K; i++, x += KQ_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < KQ_QK_K / 16; ++ib) {
            scales[ib] = kq_make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            const float abs_scale = fabsf(scales[ib]);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < KQ_GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = kq_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < KQ_QK_K / 16; ++ib)
            y[i].scales[ib] = kq_wrap_i8(kq_imin(127, kq_nearest_int(iscale * scales[ib])));
        for (int j = 0; j < KQ_QK_K / 16; ++j) {
            const float d = kq_h2f(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = (int8_t)(kq_clampi(kq_nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
        kq_q6K_pack(L, &y[i]);
    }
}

void kq_dequantize_row_q6_K_ref(const void *vx, float *y, int64_t n) {
    const kq_block_q6_K *x = vx;
    for (int64_t i = 0; i < n / KQ_QK_K; i++) {
        const float d = kq_h2f(x[i].d);
        for (int e = 0; e < KQ_QK_K; e++) *y++ = d * x[i].scales[e / 16] * kq_q6K_code(&x[i], e);
    }
}

/* ======================================== q8_K =============================================== */

void kq_quantize_row_q8_K_ref(const float *x, void *vy, int64_t n) {
    kq_block_q8_K *y = vy;
    for (int64_t i = 0; i < n / KQ_QK_K; i++, x += KQ_QK_K) {
        float amax;
        const float max = kq_signed_absmax(KQ_QK_K, x, &amax);
        if (!amax) {
            /* ggml leaves bsums untouched here; kq writes zeros (its golden bytes are zeros too) */
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* -127, not -128: ggml's choice, so that the largest magnitude maps to +-127 */
        const float iscale = -127.f / max;
        for (int j = 0; j < KQ_QK_K; ++j) y[i].qs[j] = kq_wrap_i8(kq_imin(127, kq_nearest_int(iscale * x[j])));
        for (int j = 0; j < KQ_QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

void kq_dequantize_row_q8_K_ref(const void *vx, float *y, int64_t n) {
    const kq_block_q8_K *x = vx;
    for (int64_t i = 0; i < n / KQ_QK_K; i++)
        for (int j = 0; j < KQ_QK_K; ++j) *y++ = x[i].d * x[i].qs[j];
}

/* ================================== vec_dot vs q8_K ========================================== */
/* One super-block's integer sums (isum, imin) per type, then its float contribution by the contract
 * formula. The contract's sub-block dot_j is the exact int32 sum of code * activation code. */

static inline int32_t kq_q8K_qs(const kq_block_q8_K *a, int e) { return a->qs[e]; }

static void kq_q2K_sums(const kq_block_q2_K *w, const kq_block_q8_K *a, int32_t *isum, int32_t *imin) {
    int32_t s = 0, m = 0;
    for (int j = 0; j < 16; ++j) {
        int32_t dot = 0;
        for (int e = 16 * j; e < 16 * j + 16; ++e) dot += kq_q2K_code(w, e) * kq_q8K_qs(a, e);
        s += (w->scales[j] & 15) * dot;
        m += (w->scales[j] >> 4) * a->bsums[j];
    }
    *isum = s;
    *imin = m;
}

static int32_t kq_q3K_isum(const kq_block_q3_K *w, const kq_block_q8_K *a) {
    int32_t s = 0;
    for (int j = 0; j < 16; ++j) {
        int32_t dot = 0;
        for (int e = 16 * j; e < 16 * j + 16; ++e) dot += kq_q3K_code(w, e) * kq_q8K_qs(a, e);
        s += kq_q3K_scale(w, j) * dot;
    }
    return s;
}

/* q4_K and q5_K share the 6-bit scales/mins and the nibbles; q5_K adds qh (NULL for q4_K). */
static void kq_q45K_sums(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, const kq_block_q8_K *a,
                         int32_t *isum, int32_t *imin) {
    int32_t s = 0, m = 0;
    KQ_UNROLL_FULL
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, mn;
        kq_get_scale_min_k4(j, scales, &sc, &mn);
        int32_t dot = 0;
        KQ_UNROLL_FULL
        for (int e = 32 * j; e < 32 * j + 32; ++e) {
            const int q = kq_q4_nibble(qs, e) | (qh ? kq_q5_high(qh, e) : 0);
            dot += q * kq_q8K_qs(a, e);
        }
        s += sc * dot;
        m += mn * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
    }
    *isum = s;
    *imin = m;
}

static int32_t kq_q6K_isum(const kq_block_q6_K *w, const kq_block_q8_K *a) {
    int32_t s = 0;
    for (int j = 0; j < 16; ++j) {
        int32_t dot = 0;
        for (int e = 16 * j; e < 16 * j + 16; ++e) dot += kq_q6K_code(w, e) * kq_q8K_qs(a, e);
        s += w->scales[j] * dot;
    }
    return s;
}

static int32_t kq_q8K_isum(const kq_block_q8_K *w, const kq_block_q8_K *a) {
    int32_t s = 0;
    for (int e = 0; e < KQ_QK_K; ++e) s += kq_q8K_qs(w, e) * kq_q8K_qs(a, e);
    return s;
}

/* The contract's float combinations, evaluated exactly as written (no FMA). */
static inline float kq_kc_sym(float dw, float da, int32_t isum) { return (dw * da) * (float)isum; }
static inline float kq_kc_asym(float dw, float dmin, float da, int32_t isum, int32_t imin) {
    return (dw * da) * (float)isum - (dmin * da) * (float)imin;
}

static float kq_q2K_block(const void *vw, const kq_block_q8_K *a) {
    const kq_block_q2_K *w = vw;
    int32_t isum, imin;
    kq_q2K_sums(w, a, &isum, &imin);
    return kq_kc_asym(kq_h2f(w->d), kq_h2f(w->dmin), a->d, isum, imin);
}

static float kq_q3K_block(const void *vw, const kq_block_q8_K *a) {
    const kq_block_q3_K *w = vw;
    return kq_kc_sym(kq_h2f(w->d), a->d, kq_q3K_isum(w, a));
}

static float kq_q4K_block(const void *vw, const kq_block_q8_K *a) {
    const kq_block_q4_K *w = vw;
    int32_t isum, imin;
    KQ_MCA_REF_BEGIN("vec_dot_q4_K_q8_K:256"); /* llvm-mca figures of the reference (make kunpeng-cycles) */
    kq_q45K_sums(w->scales, w->qs, NULL, a, &isum, &imin);
    const float r = kq_kc_asym(kq_h2f(w->d), kq_h2f(w->dmin), a->d, isum, imin);
    KQ_MCA_REF_END();
    return r;
}

static float kq_q5K_block(const void *vw, const kq_block_q8_K *a) {
    const kq_block_q5_K *w = vw;
    int32_t isum, imin;
    kq_q45K_sums(w->scales, w->qs, w->qh, a, &isum, &imin);
    return kq_kc_asym(kq_h2f(w->d), kq_h2f(w->dmin), a->d, isum, imin);
}

static float kq_q6K_block(const void *vw, const kq_block_q8_K *a) {
    const kq_block_q6_K *w = vw;
    return kq_kc_sym(kq_h2f(w->d), a->d, kq_q6K_isum(w, a));
}

static float kq_q8K_block(const void *vw, const kq_block_q8_K *a) {
    const kq_block_q8_K *w = vw;
    return kq_kc_sym(w->d, a->d, kq_q8K_isum(w, a));
}

/* The contract's accumulation: super-block b into lane b % 8 (lanes from +0.0f), then kq_reduce8. */
static void kq_kdot_rows(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc,
                         size_t block_bytes, float (*block)(const void *, const kq_block_q8_K *)) {
    const kq_block_q8_K *ab = a;
    for (int r = 0; r < nrc; r++) {
        const char *row = (const char *)w + (size_t)r * w_stride;
        float lanes[8] = {0};
        for (int64_t b = 0; b < n / KQ_QK_K; b++) lanes[b % 8] += block(row + (size_t)b * block_bytes, &ab[b]);
        s[r] = kq_reduce8(lanes);
    }
}

void kq_vec_dot_q2_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_kdot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q2_K), kq_q2K_block);
}

void kq_vec_dot_q3_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_kdot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q3_K), kq_q3K_block);
}

void kq_vec_dot_q4_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_kdot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q4_K), kq_q4K_block);
}

void kq_vec_dot_q5_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_kdot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q5_K), kq_q5K_block);
}

void kq_vec_dot_q6_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_kdot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q6_K), kq_q6K_block);
}

void kq_vec_dot_q8_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_kdot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q8_K), kq_q8K_block);
}
