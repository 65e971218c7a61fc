/* Placeholder: replaced by the real implementation. */
#include "kq_ref.h"
#include <stdlib.h>

size_t kq_intn_traits_count(void) { return 0; }
const kq_type_traits * kq_intn_traits_at(size_t i) { (void)i; return NULL; }
void kq_quantize_row_intn_ref(const kq_type_traits *t, const float *x, void *y, int64_t n, kq_scale_mode mode) { (void)t; (void)x; (void)y; (void)n; (void)mode; abort(); }
void kq_dequantize_row_intn_ref(const kq_type_traits *t, const void *x, float *y, int64_t n) { (void)t; (void)x; (void)y; (void)n; abort(); }
void kq_vec_dot_intn_ref(const kq_type_traits *t, int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { (void)t; (void)n; (void)s; (void)w; (void)w_stride; (void)a; (void)nrc; abort(); }
