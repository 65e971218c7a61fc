/* Placeholder: replaced by the real implementation. */
#include "kq_ref.h"
#include <stdlib.h>

void kq_quantize_row_f32_ref(const float *x, void *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_dequantize_row_f32_ref(const void *x, float *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_quantize_row_f16_ref(const float *x, void *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_dequantize_row_f16_ref(const void *x, float *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_quantize_row_bf16_ref(const float *x, void *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_dequantize_row_bf16_ref(const void *x, float *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_vec_dot_f32_f32_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
void kq_vec_dot_f16_f16_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
void kq_vec_dot_bf16_bf16_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
