/* kq: the reference traits table and the type utilities every layer uses. */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "kq_ref.h"

#define KQ_ROW(t, nm, be, bb, vdt, q, dq, vd) \
    { t, nm, be, bb, 0, vdt, q, dq, vd, 0, 0, 0 }

/* ggml's types, with the activation type each vec_dot takes as llama.cpp pairs them. */
static const kq_type_traits kq_ggml_traits[] = {
    KQ_ROW(KQ_TYPE_F32, "f32", 1, 4, KQ_TYPE_F32, kq_quantize_row_f32_ref, kq_dequantize_row_f32_ref, kq_vec_dot_f32_f32_ref),
    KQ_ROW(KQ_TYPE_F16, "f16", 1, 2, KQ_TYPE_F16, kq_quantize_row_f16_ref, kq_dequantize_row_f16_ref, kq_vec_dot_f16_f16_ref),
    KQ_ROW(KQ_TYPE_BF16, "bf16", 1, 2, KQ_TYPE_BF16, kq_quantize_row_bf16_ref, kq_dequantize_row_bf16_ref, kq_vec_dot_bf16_bf16_ref),
    KQ_ROW(KQ_TYPE_Q4_0, "q4_0", KQ_QK, sizeof(kq_block_q4_0), KQ_TYPE_Q8_0, kq_quantize_row_q4_0_ref, kq_dequantize_row_q4_0_ref, kq_vec_dot_q4_0_q8_0_ref),
    KQ_ROW(KQ_TYPE_Q4_1, "q4_1", KQ_QK, sizeof(kq_block_q4_1), KQ_TYPE_Q8_1, kq_quantize_row_q4_1_ref, kq_dequantize_row_q4_1_ref, kq_vec_dot_q4_1_q8_1_ref),
    KQ_ROW(KQ_TYPE_Q5_0, "q5_0", KQ_QK, sizeof(kq_block_q5_0), KQ_TYPE_Q8_0, kq_quantize_row_q5_0_ref, kq_dequantize_row_q5_0_ref, kq_vec_dot_q5_0_q8_0_ref),
    KQ_ROW(KQ_TYPE_Q5_1, "q5_1", KQ_QK, sizeof(kq_block_q5_1), KQ_TYPE_Q8_1, kq_quantize_row_q5_1_ref, kq_dequantize_row_q5_1_ref, kq_vec_dot_q5_1_q8_1_ref),
    KQ_ROW(KQ_TYPE_Q8_0, "q8_0", KQ_QK, sizeof(kq_block_q8_0), KQ_TYPE_Q8_0, kq_quantize_row_q8_0_ref, kq_dequantize_row_q8_0_ref, kq_vec_dot_q8_0_q8_0_ref),
    KQ_ROW(KQ_TYPE_Q8_1, "q8_1", KQ_QK, sizeof(kq_block_q8_1), KQ_TYPE_NONE, kq_quantize_row_q8_1_ref, NULL, NULL),
    KQ_ROW(KQ_TYPE_Q2_K, "q2_K", KQ_QK_K, sizeof(kq_block_q2_K), KQ_TYPE_Q8_K, kq_quantize_row_q2_K_ref, kq_dequantize_row_q2_K_ref, kq_vec_dot_q2_K_q8_K_ref),
    KQ_ROW(KQ_TYPE_Q3_K, "q3_K", KQ_QK_K, sizeof(kq_block_q3_K), KQ_TYPE_Q8_K, kq_quantize_row_q3_K_ref, kq_dequantize_row_q3_K_ref, kq_vec_dot_q3_K_q8_K_ref),
    KQ_ROW(KQ_TYPE_Q4_K, "q4_K", KQ_QK_K, sizeof(kq_block_q4_K), KQ_TYPE_Q8_K, kq_quantize_row_q4_K_ref, kq_dequantize_row_q4_K_ref, kq_vec_dot_q4_K_q8_K_ref),
    KQ_ROW(KQ_TYPE_Q5_K, "q5_K", KQ_QK_K, sizeof(kq_block_q5_K), KQ_TYPE_Q8_K, kq_quantize_row_q5_K_ref, kq_dequantize_row_q5_K_ref, kq_vec_dot_q5_K_q8_K_ref),
    KQ_ROW(KQ_TYPE_Q6_K, "q6_K", KQ_QK_K, sizeof(kq_block_q6_K), KQ_TYPE_Q8_K, kq_quantize_row_q6_K_ref, kq_dequantize_row_q6_K_ref, kq_vec_dot_q6_K_q8_K_ref),
    KQ_ROW(KQ_TYPE_Q8_K, "q8_K", KQ_QK_K, sizeof(kq_block_q8_K), KQ_TYPE_Q8_K, kq_quantize_row_q8_K_ref, kq_dequantize_row_q8_K_ref, kq_vec_dot_q8_K_q8_K_ref),
};
#define KQ_NGGML (sizeof(kq_ggml_traits) / sizeof(kq_ggml_traits[0]))

size_t kq_ref_traits_count(void) { return KQ_NGGML + kq_intn_traits_count(); }

const kq_type_traits *kq_ref_traits_at(size_t i) {
    if (i < KQ_NGGML) return &kq_ggml_traits[i];
    return kq_intn_traits_at(i - KQ_NGGML);
}

const kq_type_traits *kq_ref_traits(kq_type t) {
    const size_t n = kq_ref_traits_count();
    for (size_t i = 0; i < n; i++) {
        const kq_type_traits *tr = kq_ref_traits_at(i);
        if (tr && tr->type == t) return tr;
    }
    return NULL;
}

const kq_type_traits *kq_type_by_name(const char *name) {
    if (!name) return NULL;
    const size_t n = kq_ref_traits_count();
    for (size_t i = 0; i < n; i++) {
        const kq_type_traits *tr = kq_ref_traits_at(i);
        const char *a = tr->name, *b = name;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
        if (!*a && !*b) return tr;
    }
    return NULL;
}

int kq_type_is_intn(kq_type t) { return t >= KQ_TYPE_INTN_FIRST && t <= KQ_TYPE_INTN_LAST; }

int kq_row_ok(kq_type t, int64_t n) {
    const kq_type_traits *tr = kq_ref_traits(t);
    if (!tr || n <= 0) return 0;
    if (n % tr->block_elems) return 0;
    /* INT-N runs against 32-element activation blocks, whatever its group */
    if (tr->intn_bits && n % KQ_QK) return 0;
    return 1;
}

size_t kq_row_size(kq_type t, int64_t n) {
    const kq_type_traits *tr = kq_ref_traits(t);
    if (!tr || n <= 0) return 0;
    return tr->row_overhead + (size_t)(n / tr->block_elems) * tr->block_bytes;
}

int kq_row_finite(const float *x, int64_t n, int64_t *first_bad) {
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            if (first_bad) *first_bad = i;
            return 0;
        }
    }
    return 1;
}

double kq_bits_per_weight(kq_type t, int64_t n) {
    if (!kq_row_ok(t, n)) return 0.0;
    return 8.0 * (double)kq_row_size(t, n) / (double)n;
}
