/* Placeholder: replaced by the real implementation. */
#include "kq_ref.h"
#include <stdlib.h>

void kq_quantize_row_q2_K_ref(const float *x, void *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_quantize_row_q3_K_ref(const float *x, void *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_quantize_row_q4_K_ref(const float *x, void *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_quantize_row_q5_K_ref(const float *x, void *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_quantize_row_q6_K_ref(const float *x, void *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_quantize_row_q8_K_ref(const float *x, void *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_dequantize_row_q2_K_ref(const void *x, float *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_dequantize_row_q3_K_ref(const void *x, float *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_dequantize_row_q4_K_ref(const void *x, float *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_dequantize_row_q5_K_ref(const void *x, float *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_dequantize_row_q6_K_ref(const void *x, float *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_dequantize_row_q8_K_ref(const void *x, float *y, int64_t n) { (void)x; (void)y; (void)n; abort(); }
void kq_vec_dot_q2_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
void kq_vec_dot_q3_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
void kq_vec_dot_q4_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
void kq_vec_dot_q5_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
void kq_vec_dot_q6_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
void kq_vec_dot_q8_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
