/* kq reference: f32 / f16 / bf16 rows.
 *
 * Conversions are fp16.h's (round to nearest even, exact for NaN/Inf/denormals). The dot products
 * follow the reduction contract of kq_types.h: element i goes into lane i % 16 with one fused
 * multiply-add, so a NEON kernel with four float32x4 accumulators and vfmaq reproduces it bit for bit.
 */
#include <math.h>
#include <string.h>

#include "fp16.h"
#include "kq_ref.h"

#define KQ_FLOAT_LANES 16

void kq_quantize_row_f32_ref(const float *x, void *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void kq_dequantize_row_f32_ref(const void *x, float *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void kq_quantize_row_f16_ref(const float *x, void *y, int64_t n) {
    kq_half *h = y;
    for (int64_t i = 0; i < n; i++) h[i] = kq_f32_to_f16(x[i]);
}

void kq_dequantize_row_f16_ref(const void *x, float *y, int64_t n) {
    const kq_half *h = x;
    for (int64_t i = 0; i < n; i++) y[i] = kq_f16_to_f32(h[i]);
}

void kq_quantize_row_bf16_ref(const float *x, void *y, int64_t n) {
    kq_bf16 *h = y;
    for (int64_t i = 0; i < n; i++) h[i] = kq_f32_to_bf16(x[i]);
}

void kq_dequantize_row_bf16_ref(const void *x, float *y, int64_t n) {
    const kq_bf16 *h = x;
    for (int64_t i = 0; i < n; i++) y[i] = kq_bf16_to_f32(h[i]);
}

/* The 16 lanes folded to 8 (l_j + l_(j+8)), then the common 8-lane reduction. */
static float kq_reduce16(const float l[KQ_FLOAT_LANES]) {
    float m[8];
    for (int j = 0; j < 8; j++) m[j] = l[j] + l[j + 8];
    return kq_reduce8(m);
}

/* One element type per function so each row is a plain loop the compiler cannot reorder
 * (-ffp-contract=off; fmaf is the one fused operation the contract asks for). */
static float kq_dot_f32(int64_t n, const float *w, const float *a) {
    float l[KQ_FLOAT_LANES] = {0};
    for (int64_t i = 0; i < n; i++) l[i % KQ_FLOAT_LANES] = fmaf(w[i], a[i], l[i % KQ_FLOAT_LANES]);
    return kq_reduce16(l);
}

static float kq_dot_f16(int64_t n, const kq_half *w, const kq_half *a) {
    float l[KQ_FLOAT_LANES] = {0};
    for (int64_t i = 0; i < n; i++)
        l[i % KQ_FLOAT_LANES] = fmaf(kq_f16_to_f32(w[i]), kq_f16_to_f32(a[i]), l[i % KQ_FLOAT_LANES]);
    return kq_reduce16(l);
}

static float kq_dot_bf16(int64_t n, const kq_bf16 *w, const kq_bf16 *a) {
    float l[KQ_FLOAT_LANES] = {0};
    for (int64_t i = 0; i < n; i++)
        l[i % KQ_FLOAT_LANES] = fmaf(kq_bf16_to_f32(w[i]), kq_bf16_to_f32(a[i]), l[i % KQ_FLOAT_LANES]);
    return kq_reduce16(l);
}

void kq_vec_dot_f32_f32_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_dot_f32(n, (const float *)((const char *)w + (size_t)r * w_stride), a);
}

void kq_vec_dot_f16_f16_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_dot_f16(n, (const kq_half *)((const char *)w + (size_t)r * w_stride), a);
}

void kq_vec_dot_bf16_bf16_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_dot_bf16(n, (const kq_bf16 *)((const char *)w + (size_t)r * w_stride), a);
}
