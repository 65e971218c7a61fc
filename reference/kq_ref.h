/* kq: the scalar reference, the specification of every format (see kq_types.h for the contracts).
 * Every function handles exactly one row of n elements, n valid for the type (kq_row_ok). */
#ifndef KQ_REF_H
#define KQ_REF_H

#include "kq_types.h"

/* ---- f32 / f16 / bf16 rows (reference/floats.c) ---- */
void kq_quantize_row_f32_ref(const float *x, void *y, int64_t n);   /* copy */
void kq_dequantize_row_f32_ref(const void *x, float *y, int64_t n); /* copy */
void kq_quantize_row_f16_ref(const float *x, void *y, int64_t n);
void kq_dequantize_row_f16_ref(const void *x, float *y, int64_t n);
void kq_quantize_row_bf16_ref(const float *x, void *y, int64_t n);
void kq_dequantize_row_bf16_ref(const void *x, float *y, int64_t n);
void kq_vec_dot_f32_f32_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_f16_f16_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_bf16_bf16_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);

/* ---- ggml 32-element blocks (reference/quants.c) ---- */
void kq_quantize_row_q4_0_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q4_1_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q5_0_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q5_1_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q8_0_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q8_1_ref(const float *x, void *y, int64_t n);
void kq_dequantize_row_q4_0_ref(const void *x, float *y, int64_t n);
void kq_dequantize_row_q4_1_ref(const void *x, float *y, int64_t n);
void kq_dequantize_row_q5_0_ref(const void *x, float *y, int64_t n);
void kq_dequantize_row_q5_1_ref(const void *x, float *y, int64_t n);
void kq_dequantize_row_q8_0_ref(const void *x, float *y, int64_t n);
void kq_vec_dot_q4_0_q8_0_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_q4_1_q8_1_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_q5_0_q8_0_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_q5_1_q8_1_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_q8_0_q8_0_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
/* q8_1 has no vec_dot and no dequantizer, as in ggml (it is an activation type only). */

/* ---- K-quants (reference/kquants.c) ---- */
void kq_quantize_row_q2_K_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q3_K_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q4_K_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q5_K_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q6_K_ref(const float *x, void *y, int64_t n);
void kq_quantize_row_q8_K_ref(const float *x, void *y, int64_t n);
void kq_dequantize_row_q2_K_ref(const void *x, float *y, int64_t n);
void kq_dequantize_row_q3_K_ref(const void *x, float *y, int64_t n);
void kq_dequantize_row_q4_K_ref(const void *x, float *y, int64_t n);
void kq_dequantize_row_q5_K_ref(const void *x, float *y, int64_t n);
void kq_dequantize_row_q6_K_ref(const void *x, float *y, int64_t n);
void kq_dequantize_row_q8_K_ref(const void *x, float *y, int64_t n);
void kq_vec_dot_q2_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_q3_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_q4_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_q5_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_q6_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
void kq_vec_dot_q8_K_q8_K_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);
/* K-quant scale/min unpacking shared with optimized code: sub-block j (0..7) of q4_K/q5_K. */
static inline void kq_get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ---- INT-N (reference/intn.c; layout in docs/formats.md) ---- */
typedef enum {
    KQ_SCALE_SEARCH = 0, /* error-minimising scale (and offset) per group: the default */
    KQ_SCALE_MAX = 1     /* plain max-abs (sym) / min-max (asym) scaling, as simple converters do */
} kq_scale_mode;
/* The INT-N rows of the reference table, in id order. */
size_t kq_intn_traits_count(void);
const kq_type_traits *kq_intn_traits_at(size_t i);
void kq_quantize_row_intn_ref(const kq_type_traits *t, const float *x, void *y, int64_t n, kq_scale_mode mode);
void kq_dequantize_row_intn_ref(const kq_type_traits *t, const void *x, float *y, int64_t n);
void kq_vec_dot_intn_ref(const kq_type_traits *t, int64_t n, float *s, const void *w, size_t w_stride,
                         const void *a, int nrc);

#endif
