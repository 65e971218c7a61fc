/* kq reference: ggml's 32-element block formats q4_0 q4_1 q5_0 q5_1 q8_0 q8_1.
 *
 * Quantizers reproduce ggml's quantize_row_*_ref byte for byte (../shared/golden/README.md): the scale
 * d and its inverse are computed in float and the codes from the float 1/d, before d is rounded to
 * half. Rounding: q8 uses roundf (ties away from zero); q4_0/q5_0 truncate x*id + 8.5 / + 16.5;
 * q4_1/q5_1 truncate (x - min)*id + 0.5.
 *
 * Where ggml converts an out-of-range float to an integer (undefined in C; reachable only when 1/d
 * overflows, i.e. a block whose largest magnitude is a float denormal), kq defines the result as a
 * saturating conversion with NaN -> 0, which is what AArch64's FCVTZU/FCVTAS + saturating narrow do:
 *   truncated codes: v <= 0 or NaN -> 0, v >= hi -> hi, else (int)v
 *   q8 codes:        roundf(v) saturated to [-128, 127], NaN -> 0
 * For every block whose 1/d is finite this equals ggml exactly (the codes are already in range).
 *
 * vec_dot follows the reduction contract of kq_types.h: one float contribution per 32-element
 * activation block, into lane b % 8, reduced by kq_reduce8.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "fp16.h"
#include "kq_mca.h"
#include "kq_ref.h"

/* ---- codes ------------------------------------------------------------------------------------ */

/* Truncating code of q4_0/q4_1/q5_0/q5_1 (ggml: MIN(hi, (int8_t)v)), defined for every float. */
static inline uint8_t kq_trunc_code(float v, int hi) {
    if (!(v > 0.0f)) return 0;
    if (v >= (float)hi) return (uint8_t)hi;
    return (uint8_t)(int)v;
}

/* q8 code (ggml: (int8_t)roundf(v)), defined for every float. */
static inline int8_t kq_round_q8(float v) {
    const float r = roundf(v);
    if (r != r) return 0;
    if (r >= 127.0f) return 127;
    if (r <= -128.0f) return -128;
    return (int8_t)(int)r;
}

/* 1/d, or 0 for a zero scale (an all-zero block: every code then comes from x*0). */
static inline float kq_inverse(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

/* ---- block statistics (ggml's exact comparisons: ties keep the first element) ----------------- */

/* The element of largest magnitude, sign kept: the first one if several tie. 0 for an all-zero block. */
static float kq_signed_absmax(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < KQ_QK; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static float kq_absmax(const float *x) {
    float amax = 0.0f;
    KQ_UNROLL_FULL
    for (int j = 0; j < KQ_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

static void kq_min_max(const float *x, float *min, float *max) {
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < KQ_QK; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

/* ---- nibble and 5th-bit packing: qs[j] = element j (low) | element j+16 (high), qh bit j ------ */

static void kq_pack_nibbles(const uint8_t u[KQ_QK], uint8_t qs[KQ_QK / 2]) {
    for (int j = 0; j < KQ_QK / 2; j++) qs[j] = (uint8_t)((u[j] & 15) | ((u[j + KQ_QK / 2] & 15) << 4));
}

static void kq_pack_high_bits(const uint8_t u[KQ_QK], uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < KQ_QK; j++) h |= (uint32_t)((u[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k)); /* little-endian u32 */
}

static void kq_unpack_nibbles(const uint8_t qs[KQ_QK / 2], uint8_t u[KQ_QK]) {
    KQ_UNROLL_FULL
    for (int j = 0; j < KQ_QK / 2; j++) {
        u[j] = qs[j] & 15;
        u[j + KQ_QK / 2] = qs[j] >> 4;
    }
}

static void kq_unpack_5bit(const uint8_t qs[KQ_QK / 2], const uint8_t qh[4], uint8_t u[KQ_QK]) {
    const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    kq_unpack_nibbles(qs, u);
    for (int j = 0; j < KQ_QK; j++) u[j] = (uint8_t)(u[j] | (((h >> j) & 1) << 4));
}

/* ---- quantize --------------------------------------------------------------------------------- */

/* Symmetric 4/5-bit (q4_0, q5_0): d = max / -(half range), code = trunc(x*id + half range + 0.5). */
static float kq_quantize_sym_block(const float *x, int half_range, uint8_t u[KQ_QK]) {
    const float d = kq_signed_absmax(x) / (float)-half_range;
    const float id = kq_inverse(d);
    const float bias = (float)half_range + 0.5f;
    for (int j = 0; j < KQ_QK; j++) u[j] = kq_trunc_code(x[j] * id + bias, 2 * half_range - 1);
    return d;
}

/* Asymmetric 4/5-bit (q4_1, q5_1): d = (max - min) / (2^bits - 1), code = trunc((x - min)*id + 0.5). */
static float kq_quantize_asym_block(const float *x, int levels, uint8_t u[KQ_QK], float *min) {
    float max;
    kq_min_max(x, min, &max);
    const float d = (max - *min) / (float)(levels - 1);
    const float id = kq_inverse(d);
    for (int j = 0; j < KQ_QK; j++) u[j] = kq_trunc_code((x[j] - *min) * id + 0.5f, levels - 1);
    return d;
}

/* q8 (q8_0, q8_1): d = amax / 127, code = roundf(x*id). Returns the float d. */
static float kq_quantize_q8_block(const float *x, int8_t qs[KQ_QK]) {
    KQ_MCA_REF_BEGIN("quantize_row_q8_0:32"); /* llvm-mca figures of the reference (make kunpeng-cycles) */
    const float d = kq_absmax(x) / 127.0f;
    const float id = kq_inverse(d);
    KQ_UNROLL_FULL
    for (int j = 0; j < KQ_QK; j++) qs[j] = kq_round_q8(x[j] * id);
    KQ_MCA_REF_END();
    return d;
}

void kq_quantize_row_q4_0_ref(const float *x, void *y, int64_t n) {
    kq_block_q4_0 *b = y;
    uint8_t u[KQ_QK];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        b[i].d = kq_f32_to_f16(kq_quantize_sym_block(x + i * KQ_QK, 8, u));
        kq_pack_nibbles(u, b[i].qs);
    }
}

void kq_quantize_row_q5_0_ref(const float *x, void *y, int64_t n) {
    kq_block_q5_0 *b = y;
    uint8_t u[KQ_QK];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        b[i].d = kq_f32_to_f16(kq_quantize_sym_block(x + i * KQ_QK, 16, u));
        kq_pack_nibbles(u, b[i].qs);
        kq_pack_high_bits(u, b[i].qh);
    }
}

void kq_quantize_row_q4_1_ref(const float *x, void *y, int64_t n) {
    kq_block_q4_1 *b = y;
    uint8_t u[KQ_QK];
    float min;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        b[i].d = kq_f32_to_f16(kq_quantize_asym_block(x + i * KQ_QK, 16, u, &min));
        b[i].m = kq_f32_to_f16(min);
        kq_pack_nibbles(u, b[i].qs);
    }
}

void kq_quantize_row_q5_1_ref(const float *x, void *y, int64_t n) {
    kq_block_q5_1 *b = y;
    uint8_t u[KQ_QK];
    float min;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        b[i].d = kq_f32_to_f16(kq_quantize_asym_block(x + i * KQ_QK, 32, u, &min));
        b[i].m = kq_f32_to_f16(min);
        kq_pack_nibbles(u, b[i].qs);
        kq_pack_high_bits(u, b[i].qh);
    }
}

void kq_quantize_row_q8_0_ref(const float *x, void *y, int64_t n) {
    kq_block_q8_0 *b = y;
    for (int64_t i = 0; i < n / KQ_QK; i++) b[i].d = kq_f32_to_f16(kq_quantize_q8_block(x + i * KQ_QK, b[i].qs));
}

void kq_quantize_row_q8_1_ref(const float *x, void *y, int64_t n) {
    kq_block_q8_1 *b = y;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_quantize_q8_block(x + i * KQ_QK, b[i].qs);
        int32_t sum = 0;
        for (int j = 0; j < KQ_QK; j++) sum += b[i].qs[j];
        b[i].d = kq_f32_to_f16(d);
        b[i].s = kq_f32_to_f16((float)sum * d); /* the float d, not the rounded half */
    }
}

/* ---- dequantize ------------------------------------------------------------------------------- */

void kq_dequantize_row_q4_0_ref(const void *x, float *y, int64_t n) {
    const kq_block_q4_0 *b = x;
    uint8_t u[KQ_QK];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_f16_to_f32(b[i].d);
        kq_unpack_nibbles(b[i].qs, u);
        for (int j = 0; j < KQ_QK; j++) y[i * KQ_QK + j] = (float)(u[j] - 8) * d;
    }
}

void kq_dequantize_row_q5_0_ref(const void *x, float *y, int64_t n) {
    const kq_block_q5_0 *b = x;
    uint8_t u[KQ_QK];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_f16_to_f32(b[i].d);
        kq_unpack_5bit(b[i].qs, b[i].qh, u);
        for (int j = 0; j < KQ_QK; j++) y[i * KQ_QK + j] = (float)(u[j] - 16) * d;
    }
}

void kq_dequantize_row_q4_1_ref(const void *x, float *y, int64_t n) {
    const kq_block_q4_1 *b = x;
    uint8_t u[KQ_QK];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_f16_to_f32(b[i].d), m = kq_f16_to_f32(b[i].m);
        kq_unpack_nibbles(b[i].qs, u);
        for (int j = 0; j < KQ_QK; j++) y[i * KQ_QK + j] = (float)u[j] * d + m;
    }
}

void kq_dequantize_row_q5_1_ref(const void *x, float *y, int64_t n) {
    const kq_block_q5_1 *b = x;
    uint8_t u[KQ_QK];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_f16_to_f32(b[i].d), m = kq_f16_to_f32(b[i].m);
        kq_unpack_5bit(b[i].qs, b[i].qh, u);
        for (int j = 0; j < KQ_QK; j++) y[i * KQ_QK + j] = (float)u[j] * d + m;
    }
}

void kq_dequantize_row_q8_0_ref(const void *x, float *y, int64_t n) {
    const kq_block_q8_0 *b = x;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_f16_to_f32(b[i].d);
        for (int j = 0; j < KQ_QK; j++) y[i * KQ_QK + j] = (float)b[i].qs[j] * d;
    }
}

/* ---- vec_dot: the reduction contract ---------------------------------------------------------- */

/* sym (vs q8_0): c_b = (float)isum_b * (d_w * d_a) */
static inline float kq_contrib_sym(int32_t isum, float d_w, float d_a) {
    return (float)isum * (d_w * d_a);
}

/* asym (vs q8_1): c_b = (float)isum_b * (d_w * d_a) + m_w * s_a */
static inline float kq_contrib_asym(int32_t isum, float d_w, float d_a, float m_w, float s_a) {
    return (float)isum * (d_w * d_a) + m_w * s_a;
}

/* Exact integer dot of one block's weight codes (signed or unsigned, widened) with the activations. */
static int32_t kq_isum(const int32_t w[KQ_QK], const int8_t a[KQ_QK]) {
    int32_t s = 0;
    KQ_UNROLL_FULL
    for (int j = 0; j < KQ_QK; j++) s += w[j] * (int32_t)a[j];
    return s;
}

/* Weight codes as the contract wants them: u - offset (offset 0 for the unsigned asym codes). */
static void kq_codes(const uint8_t u[KQ_QK], int offset, int32_t w[KQ_QK]) {
    KQ_UNROLL_FULL
    for (int j = 0; j < KQ_QK; j++) w[j] = (int32_t)u[j] - offset;
}

static float kq_block_q4_0_q8_0(const void *wb, const void *ab) {
    const kq_block_q4_0 *w = wb;
    const kq_block_q8_0 *a = ab;
    uint8_t u[KQ_QK];
    int32_t c[KQ_QK];
    KQ_MCA_REF_BEGIN("vec_dot_q4_0_q8_0:32");
    kq_unpack_nibbles(w->qs, u);
    kq_codes(u, 8, c);
    const float r = kq_contrib_sym(kq_isum(c, a->qs), kq_f16_to_f32(w->d), kq_f16_to_f32(a->d));
    KQ_MCA_REF_END();
    return r;
}

static float kq_block_q5_0_q8_0(const void *wb, const void *ab) {
    const kq_block_q5_0 *w = wb;
    const kq_block_q8_0 *a = ab;
    uint8_t u[KQ_QK];
    int32_t c[KQ_QK];
    kq_unpack_5bit(w->qs, w->qh, u);
    kq_codes(u, 16, c);
    return kq_contrib_sym(kq_isum(c, a->qs), kq_f16_to_f32(w->d), kq_f16_to_f32(a->d));
}

static float kq_block_q8_0_q8_0(const void *wb, const void *ab) {
    const kq_block_q8_0 *w = wb;
    const kq_block_q8_0 *a = ab;
    int32_t c[KQ_QK];
    for (int j = 0; j < KQ_QK; j++) c[j] = w->qs[j];
    return kq_contrib_sym(kq_isum(c, a->qs), kq_f16_to_f32(w->d), kq_f16_to_f32(a->d));
}

static float kq_block_q4_1_q8_1(const void *wb, const void *ab) {
    const kq_block_q4_1 *w = wb;
    const kq_block_q8_1 *a = ab;
    uint8_t u[KQ_QK];
    int32_t c[KQ_QK];
    kq_unpack_nibbles(w->qs, u);
    kq_codes(u, 0, c);
    return kq_contrib_asym(kq_isum(c, a->qs), kq_f16_to_f32(w->d), kq_f16_to_f32(a->d),
                           kq_f16_to_f32(w->m), kq_f16_to_f32(a->s));
}

static float kq_block_q5_1_q8_1(const void *wb, const void *ab) {
    const kq_block_q5_1 *w = wb;
    const kq_block_q8_1 *a = ab;
    uint8_t u[KQ_QK];
    int32_t c[KQ_QK];
    kq_unpack_5bit(w->qs, w->qh, u);
    kq_codes(u, 0, c);
    return kq_contrib_asym(kq_isum(c, a->qs), kq_f16_to_f32(w->d), kq_f16_to_f32(a->d),
                           kq_f16_to_f32(w->m), kq_f16_to_f32(a->s));
}

typedef float (*kq_block_contrib_fn)(const void *w_block, const void *a_block);

/* Contribution of block b into lane b % 8, in order of b; then the fixed 8-lane reduction. */
static float kq_dot_blocks(int64_t n, const char *w, size_t w_bytes, const char *a, size_t a_bytes,
                           kq_block_contrib_fn contrib) {
    float lane[8] = {0};
    for (int64_t b = 0; b < n / KQ_QK; b++) lane[b % 8] += contrib(w + b * w_bytes, a + b * a_bytes);
    return kq_reduce8(lane);
}

static void kq_vec_dot_rows(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc,
                            size_t w_bytes, size_t a_bytes, kq_block_contrib_fn contrib) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_dot_blocks(n, (const char *)w + (size_t)r * w_stride, w_bytes, a, a_bytes, contrib);
}

void kq_vec_dot_q4_0_q8_0_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_vec_dot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q4_0), sizeof(kq_block_q8_0), kq_block_q4_0_q8_0);
}

void kq_vec_dot_q4_1_q8_1_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_vec_dot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q4_1), sizeof(kq_block_q8_1), kq_block_q4_1_q8_1);
}

void kq_vec_dot_q5_0_q8_0_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_vec_dot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q5_0), sizeof(kq_block_q8_0), kq_block_q5_0_q8_0);
}

void kq_vec_dot_q5_1_q8_1_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_vec_dot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q5_1), sizeof(kq_block_q8_1), kq_block_q5_1_q8_1);
}

void kq_vec_dot_q8_0_q8_0_ref(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_vec_dot_rows(n, s, w, w_stride, a, nrc, sizeof(kq_block_q8_0), sizeof(kq_block_q8_0), kq_block_q8_0_q8_0);
}
