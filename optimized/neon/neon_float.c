/* kq NEON (baseline ARMv8-A): f32 / f16 rows and the F32.F32 / F16.F16 dots.
 *
 * f32 <-> f16 by FCVTN / FCVTL: round to nearest even, denormals kept (FPCR.FZ = 0 under Linux),
 * and a NaN keeps its sign and top payload bits and comes out quiet (FPCR.DN = 0), exactly as
 * fp16.h's kq_f32_to_f16 / kq_f16_to_f32. No fp16 arithmetic: only the baseline conversions.
 *
 * The dots follow the reduction contract (kq_types.h): element i goes into lane i % 16 by one fused
 * multiply-add (FMLA = fmaf), held in four float32x4 accumulators (lanes 0-3, 4-7, 8-11, 12-15);
 * the tail elements go into their lanes by scalar fmaf; then m_j = l_j + l_(j+8) and kq_reduce8. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "fp16.h"
#include "kq_neon.h"
#include "kq_ref.h"

static void kq_quantize_row_f32_neon(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

static void kq_dequantize_row_f32_neon(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

static void kq_quantize_row_f16_neon(const float *x, void *y, int64_t n) {
    uint16_t *h = y;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const float16x8_t a = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
        const float16x8_t b = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i + 8)), vld1q_f32(x + i + 12));
        vst1q_u16(h + i, vreinterpretq_u16_f16(a));
        vst1q_u16(h + i + 8, vreinterpretq_u16_f16(b));
    }
    for (; i + 4 <= n; i += 4) vst1_u16(h + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++) h[i] = kq_f32_to_f16(x[i]);
}

static void kq_dequantize_row_f16_neon(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const float16x8_t a = vreinterpretq_f16_u16(vld1q_u16(h + i));
        const float16x8_t b = vreinterpretq_f16_u16(vld1q_u16(h + i + 8));
        vst1q_f32(y + i, vcvt_f32_f16(vget_low_f16(a)));
        vst1q_f32(y + i + 4, vcvt_high_f32_f16(a));
        vst1q_f32(y + i + 8, vcvt_f32_f16(vget_low_f16(b)));
        vst1q_f32(y + i + 12, vcvt_high_f32_f16(b));
    }
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + i))));
    for (; i < n; i++) y[i] = kq_f16_to_f32(h[i]);
}

/* The 16 lanes l_0..l_15 in four accumulators -> the contract's sum. */
static float kq_reduce16_neon(const float32x4_t acc[4]) {
    float l[16], m[8];
    for (int k = 0; k < 4; k++) vst1q_f32(l + 4 * k, acc[k]);
    for (int j = 0; j < 8; j++) m[j] = l[j] + l[j + 8];
    return kq_reduce8(m);
}

/* Tail elements i0 .. n-1 into lanes i % 16 (i0 is a multiple of 16, so lane = i - i0). */
static float kq_finish_f32(float32x4_t acc[4], const float *w, const float *a, int64_t i0, int64_t n) {
    float l[16];
    for (int k = 0; k < 4; k++) vst1q_f32(l + 4 * k, acc[k]);
    for (int64_t i = i0; i < n; i++) l[i - i0] = fmaf(w[i], a[i], l[i - i0]);
    for (int k = 0; k < 4; k++) acc[k] = vld1q_f32(l + 4 * k);
    return kq_reduce16_neon(acc);
}

static float kq_dot_f32_neon(int64_t n, const float *w, const float *a) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++) acc[k] = vfmaq_f32(acc[k], vld1q_f32(w + i + 4 * k), vld1q_f32(a + i + 4 * k));
    return kq_finish_f32(acc, w, a, i, n);
}

static void kq_vec_dot_f32_f32_neon(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    for (int r = 0; r < nrc; r++) s[r] = kq_dot_f32_neon(n, (const float *)((const char *)w + (size_t)r * w_stride), a);
}

static float kq_dot_f16_neon(int64_t n, const uint16_t *w, const uint16_t *a) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const float16x8_t w0 = vreinterpretq_f16_u16(vld1q_u16(w + i)), w1 = vreinterpretq_f16_u16(vld1q_u16(w + i + 8));
        const float16x8_t a0 = vreinterpretq_f16_u16(vld1q_u16(a + i)), a1 = vreinterpretq_f16_u16(vld1q_u16(a + i + 8));
        acc[0] = vfmaq_f32(acc[0], vcvt_f32_f16(vget_low_f16(w0)), vcvt_f32_f16(vget_low_f16(a0)));
        acc[1] = vfmaq_f32(acc[1], vcvt_high_f32_f16(w0), vcvt_high_f32_f16(a0));
        acc[2] = vfmaq_f32(acc[2], vcvt_f32_f16(vget_low_f16(w1)), vcvt_f32_f16(vget_low_f16(a1)));
        acc[3] = vfmaq_f32(acc[3], vcvt_high_f32_f16(w1), vcvt_high_f32_f16(a1));
    }
    float l[16];
    for (int k = 0; k < 4; k++) vst1q_f32(l + 4 * k, acc[k]);
    for (int64_t j = i; j < n; j++) l[j - i] = fmaf(kq_f16_to_f32(w[j]), kq_f16_to_f32(a[j]), l[j - i]);
    for (int k = 0; k < 4; k++) acc[k] = vld1q_f32(l + 4 * k);
    return kq_reduce16_neon(acc);
}

static void kq_vec_dot_f16_f16_neon(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_dot_f16_neon(n, (const uint16_t *)((const char *)w + (size_t)r * w_stride), a);
}

static const kq_kernel_override kq_neon_float_rows[] = {
    {KQ_TYPE_F32, kq_quantize_row_f32_neon, kq_dequantize_row_f32_neon, kq_vec_dot_f32_f32_neon},
    {KQ_TYPE_F16, kq_quantize_row_f16_neon, kq_dequantize_row_f16_neon, kq_vec_dot_f16_f16_neon},
};

const kq_override_list kq_neon_float_list = {kq_neon_float_rows, sizeof(kq_neon_float_rows) / sizeof(kq_neon_float_rows[0])};
