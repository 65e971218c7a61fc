/* kq reference: the INT-N per-row / per-group integer formats (layout version 1, docs/formats.md).
 *
 * Codes are unsigned u in [0, 2^b - 1]. Symmetric: x ~ d * (u - 2^(b-1)) for b >= 2, x ~ d * (2u - 1)
 * for b = 1. Asymmetric: x ~ d * u + m. d and m are fp16, one pair per group (or per row).
 * Quantizers take finite input only (callers reject non-finite rows with kq_row_finite). */
#include <math.h>
#include <string.h>

#include "fp16.h"
#include "kq_intn.h"
#include "kq_ref.h"

/* ---- parameters of one group ---------------------------------------------------------------- */

#define KQ_HALF_MAX 65504.0f

/* fp16 rounding that saturates instead of producing Inf: a scale past fp16's range clips codes
 * rather than poisoning the row. */
static float intn_half(float v) {
    if (v > KQ_HALF_MAX) v = KQ_HALF_MAX;
    if (v < -KQ_HALF_MAX) v = -KQ_HALF_MAX;
    return kq_f16_to_f32(kq_f32_to_f16(v));
}

static float intn_inv(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

/* Round half away from zero after clamping (so the conversion never overflows; a NaN, impossible
 * for finite input, would clamp to lo). Written out rather than roundf/fminf so the hot loop of the
 * search inlines: the fraction v - trunc(v) is exact in binary32. */
static inline int intn_round_clamp(float v, int lo, int hi) {
    v = v >= (float)lo ? v : (float)lo; /* select, not branch (NaN goes to lo) */
    v = v <= (float)hi ? v : (float)hi;
    const int i = (int)v;
    const float f = v - (float)i;
    return i + (f >= 0.5f) - (f <= -0.5f); /* no branch: the fraction is random in the search */
}

/* The code of x for stored (d, m): the nearest level (ties away from zero in code space). */
static inline int intn_code(float x, int bits, int asym, float id, float m) {
    if (asym) return intn_round_clamp((x - m) * id, 0, (1 << bits) - 1);
    if (bits == 1) return x >= 0.0f ? 1 : 0;
    const int q = 1 << (bits - 1);
    return intn_round_clamp(x * id, -q, q - 1) + q;
}

/* The signed multiplier of d for code u (sym), or u itself (asym). */
static inline int intn_level(int u, int bits, int asym) {
    if (asym) return u;
    if (bits == 1) return 2 * u - 1;
    return u - (1 << (bits - 1));
}

static inline float intn_dequant1(int u, int bits, int asym, float d, float m) {
    const float y = d * (float)intn_level(u, bits, asym);
    return asym ? y + m : y;
}

/* ---- error-minimising search ------------------------------------------------------------------ */

/* Sums over a group for the codes chosen at some (d, m); q = the level (signed for sym). */
typedef struct {
    double n, sq, sqq, sx, sxq, sxx;
} intn_sums;

/* One pass: codes at (d, m), their sums, and the squared error of the values dequantized with
 * exactly (d, m) as dequantize_row computes them. */
static double intn_pass(const float *x, int64_t len, int bits, int asym, float d, float m, intn_sums *s) {
    const float id = intn_inv(d);
    double err = 0.0, sq = 0.0, sqq = 0.0, sx = 0.0, sxq = 0.0, sxx = 0.0;
    for (int64_t i = 0; i < len; i++) {
        const int u = intn_code(x[i], bits, asym, id, m);
        const double q = (double)intn_level(u, bits, asym), xi = (double)x[i];
        const double r = xi - (double)intn_dequant1(u, bits, asym, d, m);
        err += r * r;
        sq += q;
        sqq += q * q;
        sx += xi;
        sxq += xi * q;
        sxx += xi * xi;
    }
    s->n = (double)len;
    s->sq = sq;
    s->sqq = sqq;
    s->sx = sx;
    s->sxq = sxq;
    s->sxx = sxx;
    return err;
}

/* Squared error of the codes behind s at (d, m), without another pass. */
static double intn_sums_error(const intn_sums *s, double d, double m) {
    return s->sxx - 2.0 * d * s->sxq - 2.0 * m * s->sx + d * d * s->sqq + 2.0 * d * m * s->sq + s->n * m * m;
}

/* Least-squares (d, m) for the codes behind s, rounded to the stored fp16; 0 if the codes do not
 * determine them (all codes equal). */
static int intn_refit(const intn_sums *s, int asym, float *d, float *m) {
    if (!asym) {
        if (s->sqq <= 0.0) return 0;
        *d = intn_half((float)(s->sxq / s->sqq));
        *m = 0.0f;
        return 1;
    }
    const double det = s->n * s->sqq - s->sq * s->sq;
    if (det <= 0.0) return 0;
    *d = intn_half((float)((s->n * s->sxq - s->sq * s->sx) / det));
    *m = intn_half((float)((s->sqq * s->sx - s->sq * s->sxq) / det));
    return 1;
}

/* The search state: the best stored (d, m) so far, its true error and its codes' sums. */
typedef struct {
    float d, m;
    double err;
    intn_sums s;
} intn_best;

/* Adopts (d, m) if its true error (codes recomputed with these stored values) is lower. */
static int intn_offer(const float *x, int64_t len, int bits, int asym, float d, float m, intn_best *b) {
    intn_sums s;
    const double err = intn_pass(x, len, bits, asym, d, m, &s);
    if (!(err < b->err)) return 0;
    b->d = d;
    b->m = m;
    b->err = err;
    b->s = s;
    return 1;
}

#define KQ_INTN_GRID 12
#define KQ_INTN_POLISH 6

/* Clipping factors, about geometric from 0.75 (mild widening) to 5 (strong clipping): 2-bit rows of
 * Gaussian weights want the extreme at ~2x the top level, 1-bit asym ~4x, 8-bit ~1x. Literals, not
 * powf, so the bytes do not depend on the libm. */
static const float kq_intn_grid[KQ_INTN_GRID] = {0.75f, 0.89f, 1.06f, 1.26f, 1.5f,  1.78f,
                                                 2.11f, 2.51f, 2.98f, 3.54f, 4.21f, 5.0f};

/* Candidates are ranked by the error of their own codes at the refitted, fp16-rounded (d, m)
 * (a closed form, no second pass); the winner is then recoded with its stored values and offered,
 * and polished Lloyd-style (refit for its codes, recode) while that lowers the true error. */
typedef struct {
    float d, m;
    double err;
} intn_cand;

/* The sums of the codes at (d0, m0) (sx, sxx and n, which do not depend on the codes, come from
 * base): the search's inner loop, kept to integer sums and one product. */
static void intn_code_sums(const float *x, int64_t len, int bits, int asym, float d0, float m0, const intn_sums *base,
                           intn_sums *s) {
    const float id = intn_inv(d0);
    int64_t sq = 0, sqq = 0;
    double sxq = 0.0;
    for (int64_t i = 0; i < len; i++) {
        const int q = intn_level(intn_code(x[i], bits, asym, id, m0), bits, asym);
        sq += q;
        sqq += q * q;
        sxq += (double)x[i] * (double)q;
    }
    *s = *base;
    s->sq = (double)sq;
    s->sqq = (double)sqq;
    s->sxq = sxq;
}

static void intn_candidate(const float *x, int64_t len, int bits, int asym, float d0, float m0, const intn_sums *base,
                           intn_cand *c) {
    intn_sums s;
    float d, m;
    intn_code_sums(x, len, bits, asym, d0, m0, base, &s);
    if (!intn_refit(&s, asym, &d, &m)) return;
    const double err = intn_sums_error(&s, d, m);
    if (err < c->err) {
        c->d = d;
        c->m = m;
        c->err = err;
    }
}

static void intn_finish(const float *x, int64_t len, int bits, int asym, const intn_cand *c, intn_best *b) {
    if (c->err < INFINITY) intn_offer(x, len, bits, asym, c->d, c->m, b);
    for (int r = 0; r < KQ_INTN_POLISH; r++) {
        float d, m;
        if (!intn_refit(&b->s, asym, &d, &m) || !intn_offer(x, len, bits, asym, d, m, b)) return;
    }
}

/* Symmetric b >= 2: d0 = -xmax / (Q * c), so the signed extreme maps to the long (negative) side of
 * [-Q, Q-1] as in ggml's make_qx_quants (d may be negative). c = 1 exactly is the unclipped case. */
static void intn_search_sym(const float *x, int64_t len, int bits, float xmax, intn_best *b) {
    const float q = (float)(1 << (bits - 1));
    intn_cand c = {0.0f, 0.0f, INFINITY};
    intn_candidate(x, len, bits, 0, -xmax / q, 0.0f, &b->s, &c);
    for (int k = 0; k < KQ_INTN_GRID; k++)
        intn_candidate(x, len, bits, 0, -xmax / (q * kq_intn_grid[k]), 0.0f, &b->s, &c);
    intn_finish(x, len, bits, 0, &c, b);
}

/* Asymmetric: step (max - min) / (L * c), the clipped range centred on the range's midpoint or
 * anchored at either end (skewed groups want one side clipped). */
static void intn_search_asym(const float *x, int64_t len, int bits, float lo, float hi, intn_best *b) {
    const float l = (float)((1 << bits) - 1);
    const float mid = 0.5f * lo + 0.5f * hi;
    intn_cand c = {0.0f, 0.0f, INFINITY};
    for (int k = 0; k < KQ_INTN_GRID; k++) {
        const float d0 = (0.5f * hi - 0.5f * lo) / (0.5f * l * kq_intn_grid[k]);
        intn_candidate(x, len, bits, 1, d0, mid - d0 * (0.5f * l), &b->s, &c);
        intn_candidate(x, len, bits, 1, d0, lo, &b->s, &c);
        intn_candidate(x, len, bits, 1, d0, hi - d0 * l, &b->s, &c);
    }
    intn_finish(x, len, bits, 1, &c, b);
}

/* The stored (d, m) of one group. The plain max-abs / min-max result is the first candidate, so the
 * search is never worse than KQ_SCALE_MAX. */
static void intn_group_params(const float *x, int64_t len, int bits, int asym, kq_scale_mode mode, float *d,
                              float *m) {
    float lo = x[0], hi = x[0], xmax = x[0];
    double sabs = 0.0;
    for (int64_t i = 0; i < len; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        if (fabsf(x[i]) > fabsf(xmax)) xmax = x[i];
        sabs += fabsf(x[i]);
    }
    *m = 0.0f;
    if (!asym && bits == 1) { /* sign codes with d = mean|x| are exactly optimal for ±d */
        *d = intn_half((float)(sabs / (double)len));
        return;
    }
    if (asym && hi == lo) { /* constant group: all codes 0, the value in m */
        *d = 0.0f;
        *m = intn_half(lo);
        return;
    }
    intn_best b = {0.0f, 0.0f, INFINITY, {0, 0, 0, 0, 0, 0}};
    if (asym) {
        intn_offer(x, len, bits, 1, intn_half((hi - lo) / (float)((1 << bits) - 1)), intn_half(lo), &b);
        if (mode == KQ_SCALE_SEARCH) intn_search_asym(x, len, bits, lo, hi, &b);
    } else {
        intn_offer(x, len, bits, 0, intn_half(fabsf(xmax) / (float)((1 << (bits - 1)) - 1)), 0.0f, &b);
        if (mode == KQ_SCALE_SEARCH && xmax != 0.0f) intn_search_sym(x, len, bits, xmax, &b);
    }
    *d = b.d;
    *m = b.m;
}

/* ---- rows ----------------------------------------------------------------------------------- */

static void intn_write_header(uint8_t *p, int asym, float d, float m) {
    kq_intn_write_half(p, kq_f32_to_f16(d));
    if (asym) kq_intn_write_half(p + 2, kq_f32_to_f16(m));
}

static void intn_read_header(const uint8_t *p, int asym, float *d, float *m) {
    *d = kq_f16_to_f32(kq_intn_read_half(p));
    *m = asym ? kq_f16_to_f32(kq_intn_read_half(p + 2)) : 0.0f;
}

/* Quantizes elements [i0, i0 + len) of the row with the group's stored (d, m). */
static void intn_quantize_span(const kq_type_traits *t, const float *x, uint8_t *row, int64_t i0, int64_t len,
                               kq_scale_mode mode) {
    const int bits = t->intn_bits, asym = t->intn_asym;
    float d, m;
    intn_group_params(x + i0, len, bits, asym, mode, &d, &m);
    intn_write_header(row + kq_intn_header_offset(t, i0), asym, d, m);
    const float id = intn_inv(d);
    for (int64_t i = i0; i < i0 + len; i += 32) {
        uint8_t u[32];
        for (int j = 0; j < 32; j++) u[j] = (uint8_t)intn_code(x[i + j], bits, asym, id, m);
        kq_intn_pack_chunk(u, bits, row + kq_intn_chunk_offset(t, i));
    }
}

void kq_quantize_row_intn_ref(const kq_type_traits *t, const float *x, void *y, int64_t n, kq_scale_mode mode) {
    const int64_t g = t->intn_group ? t->intn_group : n;
    for (int64_t i = 0; i < n; i += g) intn_quantize_span(t, x, y, i, g, mode);
}

void kq_dequantize_row_intn_ref(const kq_type_traits *t, const void *x, float *y, int64_t n) {
    const uint8_t *row = x;
    for (int64_t i = 0; i < n; i += 32) {
        float d, m;
        uint8_t u[32];
        intn_read_header(row + kq_intn_header_offset(t, i), t->intn_asym, &d, &m);
        kq_intn_unpack_chunk(row + kq_intn_chunk_offset(t, i), t->intn_bits, u);
        for (int j = 0; j < 32; j++) y[i + j] = intn_dequant1(u[j], t->intn_bits, t->intn_asym, d, m);
    }
}

/* c_b of activation block b = elements [32b, 32b + 32) (kq_types.h, the reduction contract). */
static float intn_block_dot(const kq_type_traits *t, const uint8_t *row, const void *a, int64_t b) {
    const int64_t i = 32 * b;
    float dw, mw;
    uint8_t u[32];
    intn_read_header(row + kq_intn_header_offset(t, i), t->intn_asym, &dw, &mw);
    kq_intn_unpack_chunk(row + kq_intn_chunk_offset(t, i), t->intn_bits, u);
    int32_t isum = 0;
    if (t->intn_asym) {
        const kq_block_q8_1 *ab = (const kq_block_q8_1 *)a + b;
        for (int j = 0; j < 32; j++) isum += (int32_t)u[j] * ab->qs[j];
        const float da = kq_f16_to_f32(ab->d), sa = kq_f16_to_f32(ab->s);
        const float dot = (float)isum * (dw * da);
        const float off = mw * sa;
        return dot + off;
    }
    const kq_block_q8_0 *ab = (const kq_block_q8_0 *)a + b;
    for (int j = 0; j < 32; j++) isum += intn_level(u[j], t->intn_bits, 0) * ab->qs[j];
    return (float)isum * (dw * kq_f16_to_f32(ab->d));
}

void kq_vec_dot_intn_ref(const kq_type_traits *t, int64_t n, float *s, const void *w, size_t w_stride,
                         const void *a, int nrc) {
    for (int r = 0; r < nrc; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * w_stride;
        float lanes[8] = {0};
        for (int64_t b = 0; b < n / 32; b++) lanes[b % 8] += intn_block_dot(t, row, a, b);
        s[r] = kq_reduce8(lanes);
    }
}

/* ---- the traits table ------------------------------------------------------------------------ */

static const kq_type_traits *intn_table_row(size_t i);

/* Index in the table: bits 1,2,4,8 -> 0..3, then group code (row, 32, 64, 128), then asym. */
#define KQ_INTN_WRAP(name, idx)                                                                      \
    static void kq_quantize_row_##name(const float *x, void *y, int64_t n) {                          \
        kq_quantize_row_intn_ref(intn_table_row(idx), x, y, n, KQ_SCALE_SEARCH);                      \
    }                                                                                                \
    static void kq_dequantize_row_##name(const void *x, float *y, int64_t n) {                        \
        kq_dequantize_row_intn_ref(intn_table_row(idx), x, y, n);                                     \
    }                                                                                                \
    static void kq_vec_dot_##name(int64_t n, float *s, const void *w, size_t ws, const void *a, int nrc) { \
        kq_vec_dot_intn_ref(intn_table_row(idx), n, s, w, ws, a, nrc);                                \
    }

/* X(name, bits, bit index, group code, group, asym) for every INT-N type, in id order. */
#define KQ_INTN_GROUPS(X, b, bi)                                                                     \
    X(i##b##_row_sym, b, bi, 0, 0, 0)                                                                \
    X(i##b##_row_asym, b, bi, 0, 0, 1)                                                               \
    X(i##b##_g32_sym, b, bi, 1, 32, 0)                                                               \
    X(i##b##_g32_asym, b, bi, 1, 32, 1)                                                              \
    X(i##b##_g64_sym, b, bi, 2, 64, 0)                                                               \
    X(i##b##_g64_asym, b, bi, 2, 64, 1)                                                              \
    X(i##b##_g128_sym, b, bi, 3, 128, 0)                                                             \
    X(i##b##_g128_asym, b, bi, 3, 128, 1)
#define KQ_INTN_ALL(X) KQ_INTN_GROUPS(X, 1, 0) KQ_INTN_GROUPS(X, 2, 1) KQ_INTN_GROUPS(X, 4, 2) KQ_INTN_GROUPS(X, 8, 3)

#define KQ_INTN_DEFINE(name, b, bi, gc, g, as) KQ_INTN_WRAP(name, (size_t)(8 * (bi) + 2 * (gc) + (as)))
KQ_INTN_ALL(KQ_INTN_DEFINE)

/* Group types: a block is one group (header + group/32 chunks). Whole-row types: the header is
 * row overhead and a block is one chunk of 32. */
#define KQ_INTN_ROW(name, b, bi, gc, g, as)                                                          \
    { KQ_INTN_ID(b, gc, as), #name, (g) ? (g) : 32,                                                  \
      (g) ? (size_t)(2 * (1 + (as)) + (g) * (b) / 8) : (size_t)(4 * (b)),                            \
      (g) ? 0u : (size_t)(2 * (1 + (as))), (as) ? KQ_TYPE_Q8_1 : KQ_TYPE_Q8_0,                       \
      kq_quantize_row_##name, kq_dequantize_row_##name, kq_vec_dot_##name, b, g, as },

static const kq_type_traits kq_intn_table[] = { KQ_INTN_ALL(KQ_INTN_ROW) };
#define KQ_NINTN (sizeof(kq_intn_table) / sizeof(kq_intn_table[0]))
_Static_assert(KQ_NINTN == 32, "32 INT-N types");

static const kq_type_traits *intn_table_row(size_t i) { return &kq_intn_table[i]; }

size_t kq_intn_traits_count(void) { return KQ_NINTN; }

const kq_type_traits *kq_intn_traits_at(size_t i) { return i < KQ_NINTN ? &kq_intn_table[i] : NULL; }
