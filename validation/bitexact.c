/* kq check bitexact: an implementation's traits table against the reference's, bit for bit.
 *
 * Why bit for bit and not "close": the reduction contract (kq_types.h) fixes every rounding of every
 * kernel, so any difference at all is a bug in one of the two, and a tolerance would hide the first
 * symptom of a wrong lane order or a wrong rounding instruction.
 *
 * Inputs are generated here with a small deterministic PRNG (splitmix64, Box-Muller, Student-t) so
 * the check needs no library: it runs in the static aarch64 build under qemu as well as on the host.
 * Output is a text table or hand-written JSON (no cJSON for the same reason). */
#include <ctype.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitexact.h"
#include "fp16.h"
#include "gguf.h"
#include "kq_dispatch.h"
#include "kq_intn.h"
#include "kq_ref.h"

#define KQ_BX_ROWS 4          /* weight rows per case: vec_dot runs nrc = 1 .. 4 */
#define KQ_BX_GUARD 32        /* bytes after every output, which no function may touch */
#define KQ_BX_MAX_LENGTHS 24
#define KQ_BX_DEFAULT_SEED 0x6b71u
#define KQ_BX_GGUF_ROWS 64    /* --gguf: rows of each tensor by default */

/* ==== deterministic random numbers ============================================================== */

typedef struct { uint64_t s; } kq_rng;

/* splitmix64: tiny, full period, good enough to scatter test inputs. */
static uint64_t kq_rng_next(kq_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t kq_rng_u32(kq_rng *r) { return (uint32_t)(kq_rng_next(r) >> 32); }
static uint32_t kq_rng_below(kq_rng *r, uint32_t k) { return (uint32_t)((kq_rng_next(r) >> 33) % k); }
static double kq_rng_uniform(kq_rng *r) { return ((double)(kq_rng_next(r) >> 11) + 0.5) * 0x1p-53; } /* (0, 1) */
static float kq_rng_sign(kq_rng *r) { return (kq_rng_next(r) >> 63) ? -1.0f : 1.0f; }

static double kq_rng_normal(kq_rng *r) {
    const double u1 = kq_rng_uniform(r), u2 = kq_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Student-t with 3 degrees of freedom: Z / sqrt(chi2_3 / 3). Heavy tails like real weight rows. */
static double kq_rng_student3(kq_rng *r) {
    double chi2 = 0.0;
    for (int k = 0; k < 3; k++) {
        const double z = kq_rng_normal(r);
        chi2 += z * z;
    }
    return kq_rng_normal(r) / sqrt(chi2 / 3.0);
}

static uint64_t kq_mix(uint64_t a, uint64_t b) {
    kq_rng r = {a ^ (b * 0xd1b54a32d192ed03ull)};
    return kq_rng_next(&r);
}

/* Column hash: outlier and scale channels are columns, the same in every row of a matrix. */
static uint32_t kq_col_hash(int64_t i) { return (uint32_t)(((uint64_t)i * 2654435761u) >> 7); }

/* ==== input cases ===============================================================================
 * Finite cases go to every quantizer. Non-finite ones only to f32/f16/bf16, whose conversions are
 * defined for NaN/Inf; quantizers are defined for finite rows only (callers reject the others with
 * kq_row_finite, see kq_types.h), so feeding them NaN would test nothing that is specified. */

typedef void (*kq_gen_fn)(float *x, int64_t n, kq_rng *r);
typedef struct {
    const char *name;
    int finite;
    kq_gen_fn gen;
    const char *help;
} kq_bx_case;

static void kq_gen_zeros(float *x, int64_t n, kq_rng *r) {
    (void)r;
    for (int64_t i = 0; i < n; i++) x[i] = 0.0f;
}

static void kq_gen_signed_zeros(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = kq_rng_sign(r) * 0.0f;
}

static void kq_gen_ones(float *x, int64_t n, kq_rng *r) {
    (void)r;
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
}

static void kq_gen_minus_3_5(float *x, int64_t n, kq_rng *r) {
    (void)r;
    for (int64_t i = 0; i < n; i++) x[i] = -3.5f;
}

/* Whole blocks of +-FLT_MAX, and FLT_MAX scattered among large normal values: scales overflow. */
static void kq_gen_flt_max(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) {
        const int whole_block = (i / KQ_QK) % 3 == 0;
        x[i] = (whole_block || kq_rng_below(r, 8) == 0) ? kq_rng_sign(r) * FLT_MAX : (float)(kq_rng_normal(r) * 1000.0);
    }
}

static void kq_gen_tiny(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)kq_rng_normal(r) * 1e-30f;
}

static void kq_gen_huge(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)kq_rng_normal(r) * 1e30f;
}

/* float denormals (1/d overflows: the saturating code path), some zeros, some smallest normals. */
static void kq_gen_denormals(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) {
        const uint32_t k = kq_rng_below(r, 8);
        uint32_t bits = k == 0 ? 0u : k == 1 ? 0x00800000u : 1u + (kq_rng_u32(r) & 0x7ffffeu);
        bits |= (kq_rng_next(r) >> 63) ? 0x80000000u : 0u;
        x[i] = kq_bits_f32(bits);
    }
}

static void kq_gen_normal(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)kq_rng_normal(r);
}

/* LLM-like weights: Student-t (nu = 3) with a few outlier channels 100x larger. */
static void kq_gen_student_outliers(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) {
        const float outlier = kq_col_hash(i) % 41 == 0 ? 100.0f : 1.0f;
        x[i] = (float)(kq_rng_student3(r) * 0.02) * outlier;
    }
}

/* Per-channel scales from 2^-16 to 2^16: every block mixes magnitudes far apart. */
static void kq_gen_channel_spread(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)kq_rng_normal(r) * ldexpf(1.0f, (int)(kq_col_hash(i) % 33) - 16);
}

static void kq_gen_alternating(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (i % 2 ? -1.0f : 1.0f) * (0.5f + (float)kq_rng_uniform(r));
}

/* Blocks on a half-integer grid where the block scale is exactly 1, so the scaled value lands exactly
 * on a rounding boundary: one element is `anchor` (it sets d = 1), the others k + 0.5 in [lo, hi). */
static void kq_gen_grid(float *x, int64_t n, kq_rng *r, float anchor, int lo, int hi) {
    for (int64_t b = 0; b < n; b += KQ_QK) {
        const int64_t end = b + KQ_QK < n ? b + KQ_QK : n;
        const int64_t pos = b + (int64_t)kq_rng_below(r, (uint32_t)(end - b));
        for (int64_t i = b; i < end; i++)
            x[i] = i == pos ? anchor : (float)(lo + (int)kq_rng_below(r, (uint32_t)(hi - lo))) + 0.5f;
    }
}

/* q8_0/q8_1: amax 127 -> d = 1, id = 1; v*id = k + 0.5 exactly: roundf goes away from zero. */
static void kq_gen_ties_q8(float *x, int64_t n, kq_rng *r) { kq_gen_grid(x, n, r, kq_rng_sign(r) * 127.0f, -127, 127); }
/* q4_0: signed max -8 -> d = 1; x*id + 8.5 is an exact integer: truncation sits on the boundary. */
static void kq_gen_ties_q4(float *x, int64_t n, kq_rng *r) { kq_gen_grid(x, n, r, -8.0f, -8, 7); }
/* q5_0: signed max -16 -> d = 1, same for x*id + 16.5. */
static void kq_gen_ties_q5(float *x, int64_t n, kq_rng *r) { kq_gen_grid(x, n, r, -16.0f, -16, 15); }

/* Where f32 -> f16 rounding is hardest: exact midpoints between halfs (ties to even), one f32 ulp
 * either side, the overflow edge (65520 rounds to Inf), the f16 subnormal range and its midpoints. */
static void kq_gen_f16_edges(float *x, int64_t n, kq_rng *r) {
    static const float big[] = {65504.0f, 65519.996f, 65520.0f, 65520.008f, 65536.0f, 131072.0f};
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(kq_rng_u32(r) & 0x7fffu);
        if ((h >> 10) == 0) h |= 0x400u;
        if ((h >> 10) == 0x1f) h &= 0x7bffu;
        const uint32_t mid = kq_f32_bits(kq_f16_to_f32(h)) + 0x1000u; /* half an f16 ulp above h */
        float v;
        switch (kq_rng_below(r, 6)) {
        case 0: v = kq_bits_f32(mid); break;
        case 1: v = kq_bits_f32(mid + ((kq_rng_next(r) >> 63) ? 1u : (uint32_t)-1)); break;
        case 2: v = big[kq_rng_below(r, sizeof(big) / sizeof(big[0]))]; break;
        case 3: v = (float)kq_rng_uniform(r) * 0x1p-14f; break;
        case 4: v = (float)(2 * (int)kq_rng_below(r, 1024) + 1) * 0x1p-25f; break; /* subnormal midpoints */
        default: v = (float)kq_rng_uniform(r) * 0x1p-25f; break;
        }
        x[i] = kq_rng_sign(r) * v;
    }
}

/* f32 -> bf16: low halves at the tie (0x8000) and beside it, and FLT_MAX's neighbourhood (-> Inf). */
static void kq_gen_bf16_edges(float *x, int64_t n, kq_rng *r) {
    static const uint32_t low[] = {0x8000u, 0x7fffu, 0x8001u, 0x0000u, 0xffffu};
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits = kq_rng_u32(r);
        if (((bits >> 23) & 0xffu) == 0xffu) bits ^= 0x00800000u;
        if (kq_rng_below(r, 8) == 0) bits = (bits & 0x80000000u) | 0x7f7f0000u;
        bits = (bits & 0xffff0000u) | low[kq_rng_below(r, sizeof(low) / sizeof(low[0]))];
        x[i] = kq_bits_f32(bits);
    }
}

static void kq_gen_ramp(float *x, int64_t n, kq_rng *r) {
    (void)r;
    for (int64_t i = 0; i < n; i++) x[i] = (float)i / (float)n - 0.5f;
}

/* Non-finite: normal values among +-Inf, quiet and signalling NaNs with payloads of both signs. */
static void kq_gen_nan_inf(float *x, int64_t n, kq_rng *r) {
    static const uint32_t special[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u,
                                       0x7fa00000u, 0xffbfffffu, 0x7fffffffu, 0x7f802000u, 0x7f7fffffu};
    for (int64_t i = 0; i < n; i++) {
        const uint32_t k = kq_rng_below(r, 2 * (uint32_t)(sizeof(special) / sizeof(special[0])));
        if (k < sizeof(special) / sizeof(special[0]))
            x[i] = kq_bits_f32(special[k]);
        else if (k == sizeof(special) / sizeof(special[0]))
            x[i] = kq_bits_f32(0x7f800000u | (kq_rng_u32(r) & 0x807fffffu) | 1u); /* any NaN */
        else
            x[i] = (float)kq_rng_normal(r);
    }
}

static void kq_gen_random_bits(float *x, int64_t n, kq_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = kq_bits_f32(kq_rng_u32(r));
}

static const kq_bx_case kq_bx_cases[] = {
    {"zeros", 1, kq_gen_zeros, "all 0"},
    {"signed-zeros", 1, kq_gen_signed_zeros, "+0 and -0"},
    {"ones", 1, kq_gen_ones, "constant 1"},
    {"minus-3.5", 1, kq_gen_minus_3_5, "constant -3.5"},
    {"flt-max", 1, kq_gen_flt_max, "whole blocks of +-FLT_MAX, and FLT_MAX among N(0,1)*1000"},
    {"tiny", 1, kq_gen_tiny, "N(0,1)*1e-30"},
    {"huge", 1, kq_gen_huge, "N(0,1)*1e30"},
    {"denormals", 1, kq_gen_denormals, "float denormals, zeros, smallest normals"},
    {"normal", 1, kq_gen_normal, "N(0,1)"},
    {"student-t3-outliers", 1, kq_gen_student_outliers, "Student-t (nu=3) with outlier columns x100"},
    {"channel-spread", 1, kq_gen_channel_spread, "N(0,1) times a per-column scale 2^-16 .. 2^16"},
    {"alternating", 1, kq_gen_alternating, "alternating signs"},
    {"ties-q8", 1, kq_gen_ties_q8, "amax 127 and values k+0.5: exact roundf ties for q8_0/q8_1"},
    {"ties-q4", 1, kq_gen_ties_q4, "signed max -8 and values k+0.5: truncation boundaries of q4_0"},
    {"ties-q5", 1, kq_gen_ties_q5, "signed max -16 and values k+0.5: truncation boundaries of q5_0"},
    {"f16-edges", 1, kq_gen_f16_edges, "f16 midpoints, +-1 ulp, 65504..65536, f16 subnormals"},
    {"bf16-edges", 1, kq_gen_bf16_edges, "bf16 ties (low half 0x8000) and neighbours, near FLT_MAX"},
    {"ramp", 1, kq_gen_ramp, "i/n - 0.5"},
    {"nan-inf", 0, kq_gen_nan_inf, "+-Inf, quiet/signalling NaNs with payloads (f32/f16/bf16 only)"},
    {"random-bits", 0, kq_gen_random_bits, "uniformly random 32-bit patterns (f32/f16/bf16 only)"},
};
#define KQ_BX_NCASES (sizeof(kq_bx_cases) / sizeof(kq_bx_cases[0]))
#define KQ_BX_CASE_NORMAL 8 /* activations of the random-bytes weights */

/* ==== lengths ==================================================================================== */

static int kq_is_float_type(const kq_type_traits *t) { return t->block_elems == 1; }

static int64_t kq_gcd(int64_t a, int64_t b) { return b ? kq_gcd(b, a % b) : a; }

/* Block counts chosen for SIMD tails: 1, 2, 3 (less than a 4-block unroll), 5, 7, 9 (past the 8
 * reduction lanes), 13, 127; plus 4096. Float types also get odd lengths (no blocks at all). */
static int kq_bx_lengths(const kq_type_traits *t, int quick, int64_t out[KQ_BX_MAX_LENGTHS]) {
    static const int64_t float_full[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4096};
    static const int64_t float_quick[] = {1, 7, 17, 33, 1000};
    static const int64_t mult_full[] = {1, 2, 3, 5, 7, 9, 13, 127};
    static const int64_t mult_quick[] = {1, 2, 3};
    int k = 0;
    if (kq_is_float_type(t)) {
        const int64_t *src = quick ? float_quick : float_full;
        const size_t cnt = quick ? sizeof(float_quick) / sizeof(float_quick[0]) : sizeof(float_full) / sizeof(float_full[0]);
        for (size_t i = 0; i < cnt; i++) out[k++] = src[i];
        return k;
    }
    int64_t unit = t->block_elems;
    if (t->intn_bits) unit = unit / kq_gcd(unit, KQ_QK) * KQ_QK; /* INT-N rows run against 32-blocks */
    const int64_t *mult = quick ? mult_quick : mult_full;
    const size_t cnt = quick ? sizeof(mult_quick) / sizeof(mult_quick[0]) : sizeof(mult_full) / sizeof(mult_full[0]);
    for (size_t i = 0; i < cnt; i++)
        if (unit * mult[i] <= 4096) out[k++] = unit * mult[i];
    if (quick) {
        /* and the first length whose contributions wrap around the 8 reduction lanes */
        const int64_t lane_unit = t->block_elems == KQ_QK_K ? KQ_QK_K : KQ_QK;
        const int64_t wrap = (9 * lane_unit + unit - 1) / unit * unit;
        if (wrap > out[k - 1]) out[k++] = wrap;
    } else if (4096 % unit == 0 && out[k - 1] != 4096) {
        out[k++] = 4096;
    }
    return k;
}

/* ==== scale fields ===============================================================================
 * Random bytes are a valid block for every type except in the scales: an fp16 (or q8_K float) scale
 * can be NaN/Inf. dequantize_row takes them as they are; for vec_dot they are made finite so the
 * dots stay comparable numbers. */

static void kq_finite_half(uint8_t *p) {
    if ((p[1] & 0x7cu) == 0x7cu) p[1] &= 0xbfu; /* exponent all ones: drop its top bit */
}

static void kq_finite_bf16(uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    if ((h & 0x7f80u) == 0x7f80u) p[1] &= 0xbfu;
}

static void kq_finite_f32(uint8_t *p) {
    if ((p[3] & 0x7fu) == 0x7fu && (p[2] & 0x80u)) p[3] &= 0xbfu;
}

/* fp16 scale offsets inside one block of a ggml type; 0 fields for q8_K (float d), -1 if unknown. */
static int kq_half_fields(kq_type t, size_t off[2]) {
    switch (t) {
    case KQ_TYPE_Q4_0: off[0] = offsetof(kq_block_q4_0, d); return 1;
    case KQ_TYPE_Q5_0: off[0] = offsetof(kq_block_q5_0, d); return 1;
    case KQ_TYPE_Q8_0: off[0] = offsetof(kq_block_q8_0, d); return 1;
    case KQ_TYPE_Q4_1: off[0] = offsetof(kq_block_q4_1, d), off[1] = offsetof(kq_block_q4_1, m); return 2;
    case KQ_TYPE_Q5_1: off[0] = offsetof(kq_block_q5_1, d), off[1] = offsetof(kq_block_q5_1, m); return 2;
    case KQ_TYPE_Q8_1: off[0] = offsetof(kq_block_q8_1, d), off[1] = offsetof(kq_block_q8_1, s); return 2;
    case KQ_TYPE_Q2_K: off[0] = offsetof(kq_block_q2_K, d), off[1] = offsetof(kq_block_q2_K, dmin); return 2;
    case KQ_TYPE_Q3_K: off[0] = offsetof(kq_block_q3_K, d); return 1;
    case KQ_TYPE_Q4_K: off[0] = offsetof(kq_block_q4_K, d), off[1] = offsetof(kq_block_q4_K, dmin); return 2;
    case KQ_TYPE_Q5_K: off[0] = offsetof(kq_block_q5_K, d), off[1] = offsetof(kq_block_q5_K, dmin); return 2;
    case KQ_TYPE_Q6_K: off[0] = offsetof(kq_block_q6_K, d); return 1;
    case KQ_TYPE_Q8_K: return 0;
    default: return -1;
    }
}

/* Makes every scale of one row finite. Returns 0 if the type's layout is unknown here. */
static int kq_finite_scales(const kq_type_traits *t, uint8_t *row, int64_t n) {
    if (t->type == KQ_TYPE_F32 || t->type == KQ_TYPE_F16 || t->type == KQ_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            if (t->type == KQ_TYPE_F32) kq_finite_f32(row + 4 * i);
            else if (t->type == KQ_TYPE_F16) kq_finite_half(row + 2 * i);
            else kq_finite_bf16(row + 2 * i);
        }
        return 1;
    }
    if (kq_type_is_intn(t->type)) {
        const int64_t step = t->intn_group ? t->intn_group : n; /* whole-row types: one header */
        for (int64_t i = 0; i < n; i += step) {
            uint8_t *h = row + kq_intn_header_offset(t, i);
            kq_finite_half(h);
            if (t->intn_asym) kq_finite_half(h + 2);
        }
        return 1;
    }
    size_t off[2];
    const int nf = kq_half_fields(t->type, off);
    if (nf < 0) return 0;
    for (int64_t b = 0; b < n / t->block_elems; b++) {
        uint8_t *blk = row + (size_t)b * t->block_bytes;
        if (t->type == KQ_TYPE_Q8_K) kq_finite_f32(blk + offsetof(kq_block_q8_K, d));
        for (int f = 0; f < nf; f++) kq_finite_half(blk + off[f]);
    }
    return 1;
}

/* ==== one type: buffers and bookkeeping ========================================================== */

typedef struct {
    const kq_type_traits *ref, *impl, *act; /* act: the reference's vec_dot_type row */
    const kq_bitexact_options *opt;
    kq_bitexact_fn_result *res;
    int64_t n;
    size_t row_bytes, stride, act_bytes;
    const char *input, *source;
    float *x;         /* KQ_BX_ROWS rows of n input floats */
    float *ax;        /* n activation floats */
    uint8_t *w;       /* KQ_BX_ROWS weight rows at `stride`, padding between them random */
    uint8_t *q_ref, *q_imp; /* one quantized row + guard */
    float *y_ref, *y_imp;   /* one dequantized row + guard */
    uint8_t *a;       /* the activation row in vec_dot_type */
} kq_bx_ctx;

/* Byte patterns prefilled into outputs: different for the two sides, so an output byte that a
 * function leaves unwritten shows up as a mismatch instead of matching by luck. */
#define KQ_BX_FILL_REF 0xa5
#define KQ_BX_FILL_IMP 0x5a

static void kq_bx_record(kq_bx_ctx *c, int fn, const char *where, const char *expected_from, int width,
                         uint32_t expected, uint32_t got) {
    kq_bitexact_fn_result *r = &c->res[fn];
    r->mismatches++;
    if (r->has_first) return;
    r->has_first = 1;
    kq_bitexact_mismatch *m = &r->first;
    m->n = c->n;
    snprintf(m->input, sizeof(m->input), "%s", c->input);
    snprintf(m->source, sizeof(m->source), "%s", c->source);
    snprintf(m->where, sizeof(m->where), "%s", where);
    snprintf(m->expected_from, sizeof(m->expected_from), "%s", expected_from);
    m->width = width;
    m->expected = expected;
    m->got = got;
}

static int64_t kq_first_diff(const uint8_t *a, const uint8_t *b, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (a[i] != b[i]) return (int64_t)i;
    return -1;
}

/* Index of the first guard byte that is not `fill`, or -1. */
static int64_t kq_guard_broken(const uint8_t *g, int fill) {
    for (int64_t i = 0; i < KQ_BX_GUARD; i++)
        if (g[i] != (uint8_t)fill) return i;
    return -1;
}

static uint32_t kq_float_bits_at(const float *v, int64_t i) { return kq_f32_bits(v[i]); }

/* Checks both sides' guards after an output of `len` bytes; one mismatch per broken side. */
static int kq_bx_check_guards(kq_bx_ctx *c, int fn, const uint8_t *ref_out, const uint8_t *imp_out, size_t len,
                              const char *what) {
    char where[96];
    int bad = 0;
    const int64_t gr = kq_guard_broken(ref_out + len, KQ_BX_FILL_REF);
    const int64_t gi = kq_guard_broken(imp_out + len, KQ_BX_FILL_IMP);
    if (gr >= 0) {
        snprintf(where, sizeof(where), "%s: the REFERENCE wrote %" PRId64 " bytes past the end", what, gr + 1);
        kq_bx_record(c, fn, where, "untouched", 1, KQ_BX_FILL_REF, ref_out[len + (size_t)gr]);
        bad = 1;
    }
    if (gi >= 0) {
        snprintf(where, sizeof(where), "%s: wrote %" PRId64 " bytes past the end", what, gi + 1);
        kq_bx_record(c, fn, where, "untouched", 1, KQ_BX_FILL_IMP, imp_out[len + (size_t)gi]);
        bad = 1;
    }
    return bad;
}

/* ==== quantize_row =============================================================================== */

/* Quantizes row r of c->x with both; the reference's bytes go to weight row r either way. */
static void kq_bx_quantize_row(kq_bx_ctx *c, int r) {
    const float *x = c->x + (size_t)r * (size_t)c->n;
    memset(c->q_ref, KQ_BX_FILL_REF, c->row_bytes + KQ_BX_GUARD);
    memset(c->q_imp, KQ_BX_FILL_IMP, c->row_bytes + KQ_BX_GUARD);
    c->ref->quantize_row(x, c->q_ref, c->n);
    memcpy(c->w + (size_t)r * c->stride, c->q_ref, c->row_bytes);
    if (!c->res[KQ_BX_QUANTIZE].present) return;
    c->res[KQ_BX_QUANTIZE].cases++;
    if (!c->impl->quantize_row) {
        kq_bx_record(c, KQ_BX_QUANTIZE, "the implementation has no quantize_row", "reference", 1, 0, 0);
        return;
    }
    c->impl->quantize_row(x, c->q_imp, c->n);
    char where[96];
    const int64_t i = kq_first_diff(c->q_ref, c->q_imp, c->row_bytes);
    if (i >= 0) {
        snprintf(where, sizeof(where), "row %d byte %" PRId64 " (block %" PRId64 ")", r, i,
                 (int64_t)((size_t)i >= c->ref->row_overhead ? ((size_t)i - c->ref->row_overhead) / c->ref->block_bytes : 0));
        kq_bx_record(c, KQ_BX_QUANTIZE, where, "reference", 1, c->q_ref[i], c->q_imp[i]);
        return;
    }
    snprintf(where, sizeof(where), "row %d", r);
    kq_bx_check_guards(c, KQ_BX_QUANTIZE, c->q_ref, c->q_imp, c->row_bytes, where);
}

/* ==== dequantize_row ============================================================================= */

static void kq_bx_dequantize(kq_bx_ctx *c, const uint8_t *row, int r) {
    kq_bitexact_fn_result *res = &c->res[KQ_BX_DEQUANTIZE];
    if (!res->present) return;
    const size_t out_bytes = (size_t)c->n * sizeof(float);
    res->cases++;
    if (!c->impl->dequantize_row) {
        kq_bx_record(c, KQ_BX_DEQUANTIZE, "the implementation has no dequantize_row", "reference", 4, 0, 0);
        return;
    }
    memset(c->y_ref, KQ_BX_FILL_REF, out_bytes + KQ_BX_GUARD);
    memset(c->y_imp, KQ_BX_FILL_IMP, out_bytes + KQ_BX_GUARD);
    c->ref->dequantize_row(row, c->y_ref, c->n);
    c->impl->dequantize_row(row, c->y_imp, c->n);
    char where[96];
    const int64_t i = kq_first_diff((const uint8_t *)c->y_ref, (const uint8_t *)c->y_imp, out_bytes);
    if (i >= 0) {
        const int64_t e = i / 4;
        snprintf(where, sizeof(where), "row %d element %" PRId64, r, e);
        kq_bx_record(c, KQ_BX_DEQUANTIZE, where, "reference", 4, kq_float_bits_at(c->y_ref, e), kq_float_bits_at(c->y_imp, e));
        return;
    }
    snprintf(where, sizeof(where), "row %d", r);
    kq_bx_check_guards(c, KQ_BX_DEQUANTIZE, (const uint8_t *)c->y_ref, (const uint8_t *)c->y_imp, out_bytes, where);
}

/* ==== vec_dot ==================================================================================== */

typedef struct { float v[KQ_BX_ROWS + KQ_BX_GUARD / 4]; } kq_bx_dots;

static void kq_bx_fill_dots(kq_bx_dots *d, int fill) { memset(d, fill, sizeof(*d)); }

/* One call pair: nrc rows from weight row `first`; compares with the reference and, for nrc > 1,
 * each row with the implementation's own nrc = 1 result (the contract: rows do not depend on nrc). */
static void kq_bx_vec_dot_call(kq_bx_ctx *c, int first, int nrc, const float single[KQ_BX_ROWS], float *out_single) {
    kq_bitexact_fn_result *res = &c->res[KQ_BX_VEC_DOT];
    kq_bx_dots sr, si;
    kq_bx_fill_dots(&sr, KQ_BX_FILL_REF);
    kq_bx_fill_dots(&si, KQ_BX_FILL_IMP);
    const uint8_t *w = c->w + (size_t)first * c->stride;
    res->cases++;
    c->ref->vec_dot(c->n, sr.v, w, c->stride, c->a, nrc);
    c->impl->vec_dot(c->n, si.v, w, c->stride, c->a, nrc);
    char where[96];
    for (int k = 0; k < nrc; k++) {
        if (kq_f32_bits(sr.v[k]) != kq_f32_bits(si.v[k])) {
            snprintf(where, sizeof(where), "nrc=%d row %d", nrc, first + k);
            kq_bx_record(c, KQ_BX_VEC_DOT, where, "reference", 4, kq_f32_bits(sr.v[k]), kq_f32_bits(si.v[k]));
            return;
        }
        if (single && kq_f32_bits(si.v[k]) != kq_f32_bits(single[first + k])) {
            snprintf(where, sizeof(where), "nrc=%d row %d: differs from the same row with nrc=1", nrc, first + k);
            kq_bx_record(c, KQ_BX_VEC_DOT, where, "nrc=1", 4, kq_f32_bits(single[first + k]), kq_f32_bits(si.v[k]));
            return;
        }
    }
    snprintf(where, sizeof(where), "nrc=%d from row %d: s[]", nrc, first);
    if (kq_bx_check_guards(c, KQ_BX_VEC_DOT, (const uint8_t *)sr.v, (const uint8_t *)si.v, (size_t)nrc * sizeof(float), where))
        return;
    if (out_single) *out_single = si.v[0];
}

/* Every row alone (nrc = 1), then nrc = 2 .. KQ_BX_ROWS from row 0. */
static void kq_bx_vec_dot(kq_bx_ctx *c) {
    if (!c->res[KQ_BX_VEC_DOT].present) return;
    if (!c->impl->vec_dot) {
        c->res[KQ_BX_VEC_DOT].cases++;
        kq_bx_record(c, KQ_BX_VEC_DOT, "the implementation has no vec_dot", "reference", 4, 0, 0);
        return;
    }
    memset(c->a, 0, c->act_bytes);
    c->act->quantize_row(c->ax, c->a, c->n);
    float single[KQ_BX_ROWS] = {0};
    const unsigned long before = c->res[KQ_BX_VEC_DOT].mismatches;
    for (int r = 0; r < KQ_BX_ROWS; r++) kq_bx_vec_dot_call(c, r, 1, NULL, &single[r]);
    const int single_ok = c->res[KQ_BX_VEC_DOT].mismatches == before;
    for (int nrc = 2; nrc <= KQ_BX_ROWS; nrc++) kq_bx_vec_dot_call(c, 0, nrc, single_ok ? single : NULL, NULL);
}

/* ==== the sources of one length ================================================================== */

static kq_rng kq_bx_rng(const kq_bx_ctx *c, size_t input, int row, int purpose) {
    kq_rng r = {kq_mix(kq_mix(kq_mix(c->opt->seed, (uint64_t)input + 1), (uint64_t)c->n), (uint64_t)(row * 8 + purpose))};
    return r;
}

static void kq_bx_gen(kq_bx_ctx *c, size_t input, float *x, int row, int purpose) {
    kq_rng r = kq_bx_rng(c, input, row, purpose);
    kq_bx_cases[input].gen(x, c->n, &r);
}

static void kq_bx_random_padding(kq_bx_ctx *c, kq_rng *r) {
    for (int k = 0; k < KQ_BX_ROWS; k++)
        for (size_t i = c->row_bytes; i < c->stride; i++) c->w[(size_t)k * c->stride + i] = (uint8_t)kq_rng_u32(r);
}

/* Float input case `input`: quantize every row, dequantize the reference's bytes, vec_dot them. */
static void kq_bx_run_input(kq_bx_ctx *c, size_t input) {
    const kq_bx_case *k = &kq_bx_cases[input];
    c->input = k->name;
    c->source = "float-input";
    for (int r = 0; r < KQ_BX_ROWS; r++) kq_bx_gen(c, input, c->x + (size_t)r * (size_t)c->n, r, 0);
    kq_rng pad = kq_bx_rng(c, input, 0, 1);
    kq_bx_random_padding(c, &pad);
    for (int r = 0; r < KQ_BX_ROWS; r++) kq_bx_quantize_row(c, r);
    c->source = "reference-bytes";
    for (int r = 0; r < KQ_BX_ROWS; r++) kq_bx_dequantize(c, c->w + (size_t)r * c->stride, r);
    if (!k->finite) return; /* no NaN into dots: see the note above kq_bx_cases */
    kq_bx_gen(c, input, c->ax, 0, 2);
    kq_bx_vec_dot(c);
}

/* Random weight bytes: every code pattern, raw scales for dequantize, finite ones for vec_dot. */
static void kq_bx_run_random(kq_bx_ctx *c, int round) {
    kq_rng r = kq_bx_rng(c, KQ_BX_NCASES + (size_t)round, 0, 3);
    for (size_t i = 0; i < c->stride * KQ_BX_ROWS; i++) c->w[i] = (uint8_t)kq_rng_u32(&r);
    c->input = "random";
    c->source = "random-bytes";
    for (int k = 0; k < KQ_BX_ROWS; k++) kq_bx_dequantize(c, c->w + (size_t)k * c->stride, k);
    for (int k = 0; k < KQ_BX_ROWS; k++)
        if (!kq_finite_scales(c->ref, c->w + (size_t)k * c->stride, c->n)) return;
    char name[32]; /* the activations' input goes in the name: a mismatch must be reproducible */
    snprintf(name, sizeof(name), "random x %s", kq_bx_cases[KQ_BX_CASE_NORMAL + (size_t)round].name);
    c->input = name;
    kq_bx_gen(c, KQ_BX_CASE_NORMAL + (size_t)round, c->ax, 0, 4);
    kq_bx_vec_dot(c);
    c->input = "random"; /* not the local buffer once we return */
}

/* f16/bf16: all 65536 bit patterns through dequantize_row, in one row. */
static void kq_bx_run_all_halfs(kq_bx_ctx *c) {
    c->input = "every-half";
    c->source = "all-bit-patterns";
    for (uint32_t h = 0; h < 65536u; h++) {
        c->w[2 * h] = (uint8_t)(h & 0xffu);
        c->w[2 * h + 1] = (uint8_t)(h >> 8);
    }
    kq_bx_dequantize(c, c->w, 0);
}

static void kq_bx_free(kq_bx_ctx *c) {
    free(c->x), free(c->ax), free(c->w), free(c->q_ref), free(c->q_imp), free(c->y_ref), free(c->y_imp), free(c->a);
}

/* Row alignment the block structs need (a q8_K float d, an f32 element), so that a stride padded
 * by an odd number of such units keeps every row legal to read as structs. */
static size_t kq_bx_align(const kq_type_traits *t) {
    if (t->block_bytes % 4 == 0 && t->row_overhead % 4 == 0) return 4;
    if (t->block_bytes % 2 == 0 && t->row_overhead % 2 == 0) return 2;
    return 1;
}

static int kq_bx_alloc(kq_bx_ctx *c, int64_t n) {
    c->n = n;
    c->row_bytes = kq_row_size(c->ref->type, n);
    c->stride = c->row_bytes + 3 * kq_bx_align(c->ref); /* odd padding: rows not 16-byte aligned */
    c->act_bytes = c->act ? kq_row_size(c->act->type, n) : 0;
    const size_t nf = (size_t)n;
    c->x = malloc(KQ_BX_ROWS * nf * sizeof(float));
    c->ax = malloc(nf * sizeof(float));
    c->w = malloc(c->stride * KQ_BX_ROWS + KQ_BX_GUARD);
    c->q_ref = malloc(c->row_bytes + KQ_BX_GUARD);
    c->q_imp = malloc(c->row_bytes + KQ_BX_GUARD);
    c->y_ref = malloc(nf * sizeof(float) + KQ_BX_GUARD);
    c->y_imp = malloc(nf * sizeof(float) + KQ_BX_GUARD);
    c->a = malloc(c->act_bytes + KQ_BX_GUARD);
    if (c->x && c->ax && c->w && c->q_ref && c->q_imp && c->y_ref && c->y_imp && c->a && c->row_bytes) return 0;
    kq_bx_free(c);
    return -1;
}

static int kq_bx_run_length(kq_bx_ctx *c, int64_t n) {
    if (kq_bx_alloc(c, n) != 0) return -1;
    const int is_float = kq_is_float_type(c->ref);
    for (size_t k = 0; k < KQ_BX_NCASES; k++)
        if (kq_bx_cases[k].finite || is_float) kq_bx_run_input(c, k);
    const int rounds = c->opt->quick ? 1 : 3;
    for (int k = 0; k < rounds; k++) kq_bx_run_random(c, k);
    kq_bx_free(c);
    return 0;
}

long kq_bitexact_compare(const kq_type_traits *ref, const kq_type_traits *impl, const kq_bitexact_options *opt,
                         kq_bitexact_fn_result res[KQ_BX_NFN]) {
    memset(res, 0, sizeof(*res) * KQ_BX_NFN);
    if (!ref || !impl || ref->type != impl->type || !ref->quantize_row) return -1;
    kq_bitexact_options dflt = {0, KQ_BX_DEFAULT_SEED};
    kq_bx_ctx c;
    memset(&c, 0, sizeof(c));
    c.ref = ref, c.impl = impl, c.opt = opt ? opt : &dflt, c.res = res;
    c.act = ref->vec_dot_type != KQ_TYPE_NONE ? kq_ref_traits(ref->vec_dot_type) : NULL;
    res[KQ_BX_QUANTIZE].present = 1;
    res[KQ_BX_DEQUANTIZE].present = ref->dequantize_row != NULL;
    res[KQ_BX_VEC_DOT].present = ref->vec_dot && c.act && c.act->quantize_row;
    int64_t len[KQ_BX_MAX_LENGTHS];
    const int nlen = kq_bx_lengths(ref, c.opt->quick, len);
    for (int i = 0; i < nlen; i++)
        if (kq_bx_run_length(&c, len[i]) != 0) return -1;
    if (ref->block_elems == 1 && ref->block_bytes == 2) {
        if (kq_bx_alloc(&c, 65536) != 0) return -1;
        kq_bx_run_all_halfs(&c);
        kq_bx_free(&c);
    }
    long total = 0;
    for (int f = 0; f < KQ_BX_NFN; f++) total += (long)res[f].mismatches;
    return total;
}

/* ==== a model's own rows ========================================================================= */

kq_type kq_bitexact_fallback_type(kq_type wanted, int64_t n) {
    if (kq_row_ok(wanted, n)) return wanted;
    return n % KQ_QK == 0 ? KQ_TYPE_Q8_0 : KQ_TYPE_F16;
}

/* Rows s .. s+3 of x (wrapping) into c->x; the activation from the row after them. */
static void kq_bx_load_group(kq_bx_ctx *c, const float *x, int64_t rows, int64_t s) {
    const size_t n = (size_t)c->n;
    for (int r = 0; r < KQ_BX_ROWS; r++) memcpy(c->x + (size_t)r * n, x + (size_t)((s + r) % rows) * n, n * sizeof(float));
    memcpy(c->ax, x + (size_t)((s + KQ_BX_ROWS) % rows) * n, n * sizeof(float));
}

long kq_bitexact_compare_rows(const kq_type_traits *ref, const kq_type_traits *impl, const float *x, int64_t rows,
                              int64_t n, const char *label, kq_bitexact_fn_result res[KQ_BX_NFN]) {
    memset(res, 0, sizeof(*res) * KQ_BX_NFN);
    if (!ref || !impl || ref->type != impl->type || !ref->quantize_row || !x || rows < 1 || !kq_row_ok(ref->type, n))
        return -1;
    const kq_bitexact_options dflt = {0, KQ_BX_DEFAULT_SEED};
    kq_bx_ctx c;
    memset(&c, 0, sizeof(c));
    c.ref = ref, c.impl = impl, c.opt = &dflt, c.res = res;
    c.act = ref->vec_dot_type != KQ_TYPE_NONE ? kq_ref_traits(ref->vec_dot_type) : NULL;
    res[KQ_BX_QUANTIZE].present = 1;
    res[KQ_BX_DEQUANTIZE].present = ref->dequantize_row != NULL;
    res[KQ_BX_VEC_DOT].present = ref->vec_dot && c.act && c.act->quantize_row;
    if (kq_bx_alloc(&c, n) != 0) return -1;
    c.input = label ? label : "rows";
    char source[32];
    for (int64_t s = 0; s < rows; s += KQ_BX_ROWS) {
        kq_bx_load_group(&c, x, rows, s);
        snprintf(source, sizeof(source), "rows %" PRId64 "+", s); /* "where" gives the offset in the group */
        c.source = source;
        kq_rng pad = kq_bx_rng(&c, 0, (int)(s & 0xffff), 5);
        kq_bx_random_padding(&c, &pad);
        for (int r = 0; r < KQ_BX_ROWS; r++) kq_bx_quantize_row(&c, r);
        for (int r = 0; r < KQ_BX_ROWS; r++) kq_bx_dequantize(&c, c.w + (size_t)r * c.stride, r);
        kq_bx_vec_dot(&c);
    }
    c.source = "model rows"; /* not the local buffer once we return */
    kq_bx_free(&c);
    long total = 0;
    for (int f = 0; f < KQ_BX_NFN; f++) total += (long)res[f].mismatches;
    return total;
}

/* ==== the command ================================================================================ */

static const char *const kq_bx_fn_names[KQ_BX_NFN] = {"quantize_row", "dequantize_row", "vec_dot"};

typedef struct {
    const char *impl_name;
    int json, quick, quiet;
    uint64_t seed;
    const char *types; /* NULL: all */
    const char *gguf;  /* --gguf: a model's tensors instead of generated inputs */
    int64_t max_rows;  /* --max-rows: rows of each tensor (--gguf) */
} kq_bx_args;

static void kq_bx_help(FILE *f) {
    fprintf(f,
            "usage: kq check bitexact [--impl reference|neon|neon-plain|neon-dotprod|auto] [--types LIST]\n"
            "                         [--quick] [--seed S] [--json] [--quiet] [--help]\n"
            "       kq check bitexact --gguf MODEL.gguf [--max-rows N] [--impl ...] [--types LIST] [--json]\n"
            "\n"
            "  --gguf FILE    check on the model's own weights instead of generated inputs: the first N rows\n"
            "                 (--max-rows, default %d) of every 2-D f32/f16/bf16 tensor are quantized to each\n"
            "                 --types type (default: every weight type) by the reference and by the\n"
            "                 implementation, dequantized by both, and dotted (vec_dot, nrc 1..4) against an\n"
            "                 activation quantized from another row of the tensor. A row length the type cannot\n"
            "                 hold is checked as the converter's fallback (q8_0 if a multiple of 32, else f16),\n"
            "                 listed as \"type->fallback\". 1-D and already quantized tensors are not checked.\n"
            "\n"
            "Proves that an implementation's kernels equal the reference bit for bit: for every type of the\n"
            "reference table and each of its functions, the implementation's quantize_row bytes, dequantize_row\n"
            "floats and vec_dot floats are compared with the reference's (memcmp, no tolerance).\n"
            "\n"
            "  --impl NAME   implementation to check (default auto = the best this CPU runs). 'reference'\n"
            "                compares the reference with itself through the dispatcher: a self-check of the\n"
            "                harness and of the reference's determinism, no optimized code involved.\n"
            "  --types LIST  comma-separated type names, any case (default: every type)\n"
            "  --quick       fewer row lengths (what `make test` runs under qemu)\n"
            "  --seed S      seed of every generated input (default 0x%x)\n"
            "  --json        one JSON object on stdout instead of the table\n"
            "  --quiet       print only mismatching functions and the summary\n"
            "\n"
            "Row lengths: 32-element blocks 32 64 96 160 224 288 416 4064 4096; 256-element blocks 256 512\n"
            "768 1280 1792 2304 3328 4096; INT-N the same block counts of lcm(group, 32); f32/f16/bf16\n"
            "1 2 3 7 8 15 16 17 31 32 33 63 64 65 1000 4096 (--quick: block counts 1 2 3 and the first length\n"
            "past 8 reduction lanes, e.g. 288 or 2304; floats 1 7 17 33 1000).\n"
            "\n"
            "Float inputs (4 rows each, seeded by seed, case, length and row):\n",
            KQ_BX_GGUF_ROWS, KQ_BX_DEFAULT_SEED);
    for (size_t k = 0; k < KQ_BX_NCASES; k++) fprintf(f, "  %-20s %s\n", kq_bx_cases[k].name, kq_bx_cases[k].help);
    fprintf(f,
            "\n"
            "Each function is checked as follows:\n"
            "  quantize_row    every row of every finite input (non-finite inputs go only to f32/f16/bf16: the\n"
            "                  NaN/Inf policy makes callers reject such rows, see kq_row_finite); bytes compared.\n"
            "  dequantize_row  on the reference's bytes of every input, on random bytes (NaN/Inf fp16 scales\n"
            "                  included: NaN payloads are compared too) and, for f16/bf16, on all 65536 patterns.\n"
            "  vec_dot         weights quantized by the reference and random code bytes with finite scales, at a\n"
            "                  row stride with odd padding; activations quantized by the reference into the\n"
            "                  vec_dot type; nrc = 1 for every row and nrc = 2..4, and each row of an nrc > 1\n"
            "                  call must equal its nrc = 1 result.\n"
            "Outputs are prefilled with different bytes on the two sides (an unwritten byte is a mismatch) and\n"
            "followed by guard bytes (a write past the end is a mismatch).\n"
            "\n"
            "A function the implementation does not provide falls back to the reference: it is listed as\n"
            "'fallback', which is not a failure. Exit status: 0 all identical, 1 any mismatch, 2 usage error.\n");
}

static int kq_bx_parse(int argc, char **argv, kq_bx_args *a, int *help) {
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *eq = strchr(s, '=');
        const size_t key_len = eq && strncmp(s, "--", 2) == 0 ? (size_t)(eq - s) : strlen(s);
        const char *val = eq && strncmp(s, "--", 2) == 0 ? eq + 1 : NULL;
#define KQ_KEY(k) (key_len == strlen(k) && strncmp(s, k, key_len) == 0)
#define KQ_VALUE()                                                                    \
    do {                                                                              \
        if (!val) {                                                                   \
            if (i + 1 >= argc) {                                                      \
                fprintf(stderr, "kq check bitexact: %s needs a value\n", s);         \
                return -1;                                                            \
            }                                                                         \
            val = argv[++i];                                                          \
        }                                                                             \
    } while (0)
        if (KQ_KEY("--help") || KQ_KEY("-h")) {
            *help = 1;
        } else if (KQ_KEY("--json")) {
            a->json = 1;
        } else if (KQ_KEY("--quick")) {
            a->quick = 1;
        } else if (KQ_KEY("--quiet")) {
            a->quiet = 1;
        } else if (KQ_KEY("--impl")) {
            KQ_VALUE();
            a->impl_name = val;
        } else if (KQ_KEY("--gguf")) {
            KQ_VALUE();
            a->gguf = val;
        } else if (KQ_KEY("--max-rows")) {
            KQ_VALUE();
            char *end;
            const long long v = strtoll(val, &end, 10);
            if (!*val || *end || v < 1 || v > (1LL << 30)) {
                fprintf(stderr, "kq check bitexact: --max-rows wants a positive integer, not '%s'\n", val);
                return -1;
            }
            a->max_rows = (int64_t)v;
        } else if (KQ_KEY("--types")) {
            KQ_VALUE();
            a->types = val;
        } else if (KQ_KEY("--seed")) {
            KQ_VALUE();
            char *end;
            a->seed = strtoull(val, &end, 0);
            if (!*val || *end) {
                fprintf(stderr, "kq check bitexact: bad seed '%s'\n", val);
                return -1;
            }
        } else {
            fprintf(stderr, "kq check bitexact: unknown argument '%s' (see --help)\n", s);
            return -1;
        }
#undef KQ_KEY
#undef KQ_VALUE
    }
    return 0;
}

/* Marks selected[i] for every reference row named in the comma-separated list (all if NULL). */
static int kq_bx_select(const char *list, unsigned char *selected, size_t count) {
    if (!list) {
        memset(selected, 1, count);
        return 0;
    }
    memset(selected, 0, count);
    const char *p = list;
    int any = 0;
    while (*p) {
        while (*p == ' ') p++; /* "q4_0, q8_0" */
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ') len--;
        char name[64];
        if (len > 0) {
            if (len >= sizeof(name)) {
                fprintf(stderr, "kq check bitexact: unknown type '%.*s'\n", (int)len, p);
                return -1;
            }
            memcpy(name, p, len);
            name[len] = 0;
            const kq_type_traits *t = kq_type_by_name(name);
            size_t i = 0;
            while (t && i < count && kq_ref_traits_at(i) != t) i++;
            if (!t || i == count) {
                fprintf(stderr, "kq check bitexact: unknown type '%s'\n", name);
                return -1;
            }
            selected[i] = 1;
            any = 1;
        }
        p = end ? end + 1 : p + len;
    }
    if (!any) {
        fprintf(stderr, "kq check bitexact: --types lists no type\n");
        return -1;
    }
    return 0;
}

/* "native", "fallback", or "-" (the type has no such function) as the dispatcher says. */
static const char *kq_bx_code_name(kq_impl impl, int native) {
    if (native < 0) return "-";
    if (impl == KQ_IMPL_REFERENCE) return "reference";
    return native ? "native" : "fallback";
}

static const char *kq_bx_status(kq_impl impl, const kq_bitexact_fn_result *r, int native) {
    if (!r->present) return "n/a";
    if (r->mismatches) return "FAIL";
    if (impl == KQ_IMPL_REFERENCE) return "self-check";
    return native > 0 ? "pass" : "fallback";
}

static void kq_bx_print_value(FILE *f, int width, uint32_t v) {
    if (width == 1) fprintf(f, "0x%02x", (unsigned)v);
    else fprintf(f, "0x%08" PRIx32 " (%.9g)", v, (double)kq_bits_f32(v));
}

static void kq_bx_print_first(FILE *f, const char *type, const char *fn, const kq_bitexact_mismatch *m) {
    fprintf(f, "  first mismatch %s %s: n=%" PRId64 " input=%s source=%s %s: %s ", type, fn, m->n, m->input, m->source,
            m->where, m->expected_from);
    kq_bx_print_value(f, m->width, m->expected);
    fprintf(f, ", implementation ");
    kq_bx_print_value(f, m->width, m->got);
    fprintf(f, "\n");
}

static void kq_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void kq_bx_json_fn(FILE *f, kq_impl impl, int fn, const kq_bitexact_fn_result *r, int native) {
    fprintf(f, "{\"fn\":\"%s\",\"native\":%s,\"cases\":%lu,\"mismatches\":%lu,\"status\":\"%s\"", kq_bx_fn_names[fn],
            native < 0 ? "null" : native ? "true" : "false", r->cases, r->mismatches, kq_bx_status(impl, r, native));
    if (r->has_first) {
        const kq_bitexact_mismatch *m = &r->first;
        fprintf(f, ",\"first_mismatch\":{\"n\":%" PRId64 ",\"input\":", m->n);
        kq_json_str(f, m->input);
        fprintf(f, ",\"source\":");
        kq_json_str(f, m->source);
        fprintf(f, ",\"where\":");
        kq_json_str(f, m->where);
        fprintf(f, ",\"expected_from\":");
        kq_json_str(f, m->expected_from);
        fprintf(f, ",\"width\":%d,\"expected\":\"0x%0*" PRIx32 "\",\"got\":\"0x%0*" PRIx32 "\"}", m->width, 2 * m->width,
                m->expected, 2 * m->width, m->got);
    }
    fprintf(f, "}");
}

typedef struct {
    unsigned long cases, mismatches;
    int types, native_pass, fallback, failed, absent, self;
} kq_bx_totals;

static void kq_bx_count(kq_bx_totals *t, kq_impl impl, const kq_bitexact_fn_result *r, int native) {
    t->cases += r->cases;
    t->mismatches += r->mismatches;
    if (!r->present) t->absent++;
    else if (r->mismatches) t->failed++;
    else if (impl == KQ_IMPL_REFERENCE) t->self++;
    else if (native > 0) t->native_pass++;
    else t->fallback++;
}

static double kq_bx_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One type: compares, then prints its rows (table) or its object (JSON). Returns -1 on failure. */
static int kq_bx_run_type(const kq_bx_args *a, kq_impl impl, const kq_type_traits *ref, const kq_bitexact_options *opt,
                          kq_bx_totals *tot) {
    kq_bitexact_fn_result res[KQ_BX_NFN];
    const kq_type_traits *imp = kq_traits(impl, ref->type);
    if (kq_bitexact_compare(ref, imp, opt, res) < 0) {
        fprintf(stderr, "kq check bitexact: cannot compare type %s (out of memory or no such row)\n", ref->name);
        return -1;
    }
    int native[KQ_BX_NFN];
    for (int f = 0; f < KQ_BX_NFN; f++) {
        native[f] = kq_fn_native(impl, ref->type, (kq_fn)f);
        kq_bx_count(tot, impl, &res[f], native[f]);
    }
    if (a->json) {
        fprintf(stdout, "%s{\"type\":", tot->types ? "," : "");
        kq_json_str(stdout, ref->name);
        fprintf(stdout, ",\"functions\":[");
        for (int f = 0; f < KQ_BX_NFN; f++) {
            if (f) fputc(',', stdout);
            kq_bx_json_fn(stdout, impl, f, &res[f], native[f]);
        }
        fprintf(stdout, "]}");
    } else {
        for (int f = 0; f < KQ_BX_NFN; f++) {
            if (a->quiet && !res[f].mismatches) continue;
            printf("%-16s %-15s %-10s %8lu %10lu  %s\n", ref->name, kq_bx_fn_names[f], kq_bx_code_name(impl, native[f]),
                   res[f].cases, res[f].mismatches, kq_bx_status(impl, &res[f], native[f]));
            if (res[f].has_first) kq_bx_print_first(stdout, ref->name, kq_bx_fn_names[f], &res[f].first);
        }
    }
    fflush(stdout);
    tot->types++;
    return 0;
}

static void kq_bx_header(const kq_bx_args *a, kq_impl impl, const kq_bitexact_options *opt) {
    const kq_cpu_features cpu = kq_cpu();
    if (a->json) {
        printf("{\"impl\":\"%s\",\"self_check\":%s,\"cpu\":{\"asimd\":%s,\"asimddp\":%s,\"fphp\":%s,\"asimdhp\":%s},"
               "\"seed\":%" PRIu64 ",\"quick\":%s,\"types\":[",
               kq_impl_name(impl), impl == KQ_IMPL_REFERENCE ? "true" : "false", cpu.asimd ? "true" : "false",
               cpu.asimddp ? "true" : "false", cpu.fphp ? "true" : "false", cpu.asimdhp ? "true" : "false", opt->seed,
               opt->quick ? "true" : "false");
        return;
    }
    printf("kq check bitexact: %s against reference (cpu: asimd %d, asimddp %d, fphp %d, asimdhp %d; seed 0x%" PRIx64 "%s)\n",
           kq_impl_name(impl), cpu.asimd, cpu.asimddp, cpu.fphp, cpu.asimdhp, opt->seed, opt->quick ? ", quick" : "");
    if (impl == KQ_IMPL_REFERENCE)
        printf("note: --impl reference compares the reference with itself through the dispatcher: this checks the\n"
               "      harness and that the reference is deterministic; no optimized kernel is exercised.\n");
    if (!a->quiet)
        printf("%-16s %-15s %-10s %8s %10s  %s\n", "type", "function", "code", "cases", "mismatches", "status");
}

static void kq_bx_footer(const kq_bx_args *a, kq_impl impl, const kq_bx_totals *t, double secs) {
    if (a->json) {
        printf("],\"cases\":%lu,\"mismatches\":%lu,\"native_pass\":%d,\"fallback\":%d,\"failed\":%d,\"seconds\":%.3f}\n",
               t->cases, t->mismatches, t->native_pass, t->fallback, t->failed, secs);
        return;
    }
    printf("summary: %s, %d types: ", kq_impl_name(impl), t->types);
    if (impl == KQ_IMPL_REFERENCE) printf("%d functions self-checked", t->self);
    else printf("%d native identical, %d fallback to reference", t->native_pass, t->fallback);
    printf(", %d FAILED, %d n/a; %lu cases, %lu mismatches (%.2f s): %s\n", t->failed, t->absent, t->cases, t->mismatches,
           secs, t->mismatches ? "BIT-EXACTNESS FAILED" : "all identical");
}

/* ==== --gguf: a model's own tensors ============================================================== */

/* Row r of a 2-D float tensor, widened to f32 as the converter does before it quantizes. */
static void kq_bx_tensor_row(const kq_gguf_tensor *t, int64_t r, float *out) {
    const int64_t n = t->ne[0];
    const uint8_t *p = (const uint8_t *)t->data + (size_t)r * kq_row_size(t->type, n);
    for (int64_t i = 0; i < n; i++) {
        if (t->type == KQ_TYPE_F32) {
            memcpy(&out[i], p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = t->type == KQ_TYPE_F16 ? kq_f16_to_f32(h) : kq_bf16_to_f32(h);
        }
    }
}

static int kq_bx_model_tensor(const kq_gguf_tensor *t) {
    return t->n_dims == 2 && (t->type == KQ_TYPE_F32 || t->type == KQ_TYPE_F16 || t->type == KQ_TYPE_BF16);
}

/* Default --types of --gguf: every weight type (activation-only q8_1 and q8_K left out). */
static int kq_bx_weight_type(const kq_type_traits *t) {
    return t->quantize_row && t->type != KQ_TYPE_Q8_1 && t->type != KQ_TYPE_Q8_K;
}

typedef struct {
    kq_type checked;
    kq_bitexact_fn_result res[KQ_BX_NFN];
} kq_bx_cached;

static void kq_bx_gguf_print(const kq_bx_args *a, kq_impl impl, const kq_gguf_tensor *t, const kq_type_traits *want,
                             const kq_bx_cached *c, int first_entry, kq_bx_totals *tot) {
    const kq_type_traits *chk = kq_ref_traits(c->checked);
    int native[KQ_BX_NFN];
    for (int f = 0; f < KQ_BX_NFN; f++) {
        native[f] = kq_fn_native(impl, c->checked, (kq_fn)f);
        kq_bx_count(tot, impl, &c->res[f], native[f]);
    }
    if (a->json) {
        printf("%s{\"tensor\":", first_entry ? "" : ",");
        kq_json_str(stdout, t->name);
        printf(",\"shape\":[%" PRId64 ",%" PRId64 "],\"source_type\":\"%s\",\"rows\":%" PRId64 ",\"type\":\"%s\","
               "\"checked_type\":\"%s\",\"type_fallback\":%s,\"functions\":[",
               t->ne[0], t->ne[1], kq_ref_traits(t->type)->name,
               t->ne[1] < a->max_rows ? t->ne[1] : a->max_rows, want->name, chk->name,
               c->checked != want->type ? "true" : "false");
        for (int f = 0; f < KQ_BX_NFN; f++) {
            if (f) putchar(',');
            kq_bx_json_fn(stdout, impl, f, &c->res[f], native[f]);
        }
        printf("]}");
        return;
    }
    char tname[48];
    if (c->checked != want->type) snprintf(tname, sizeof(tname), "%s->%s", want->name, chk->name);
    else snprintf(tname, sizeof(tname), "%s", want->name);
    for (int f = 0; f < KQ_BX_NFN; f++) {
        if (a->quiet && !c->res[f].mismatches) continue;
        printf("%-28s %-18s %-15s %-10s %8lu %10lu  %s\n", t->name, tname, kq_bx_fn_names[f],
               kq_bx_code_name(impl, native[f]), c->res[f].cases, c->res[f].mismatches,
               kq_bx_status(impl, &c->res[f], native[f]));
        if (c->res[f].has_first) kq_bx_print_first(stdout, chk->name, kq_bx_fn_names[f], &c->res[f].first);
    }
}

/* One tensor: its first max_rows rows against every selected type (each checked type once). */
static int kq_bx_gguf_tensor(const kq_bx_args *a, kq_impl impl, const kq_gguf_tensor *t, const unsigned char *sel,
                             size_t count, kq_bx_totals *tot, int *entries) {
    const int64_t n = t->ne[0], rows = t->ne[1] < a->max_rows ? t->ne[1] : a->max_rows;
    float *x = malloc((size_t)(rows * n) * sizeof(float));
    kq_bx_cached *cache = calloc(count, sizeof(*cache));
    int rc = x && cache ? 0 : -1;
    size_t ncache = 0;
    for (int64_t r = 0; rc == 0 && r < rows; r++) kq_bx_tensor_row(t, r, x + r * n);
    int64_t bad = 0;
    if (rc == 0 && !kq_row_finite(x, rows * n, &bad)) {
        fprintf(stderr, "kq check bitexact: %s: non-finite weight at row %" PRId64 ", column %" PRId64
                        " (quantizers are defined for finite input only)\n", t->name, bad / n, bad % n);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < count; i++) {
        if (!sel[i]) continue;
        const kq_type_traits *want = kq_ref_traits_at(i);
        const kq_type chk = kq_bitexact_fallback_type(want->type, n);
        size_t k = 0;
        while (k < ncache && cache[k].checked != chk) k++;
        if (k == ncache) {
            cache[ncache].checked = chk;
            if (kq_bitexact_compare_rows(kq_ref_traits(chk), kq_traits(impl, chk), x, rows, n, t->name, cache[k].res) < 0) {
                fprintf(stderr, "kq check bitexact: %s: cannot compare type %s (out of memory?)\n", t->name,
                        kq_ref_traits(chk)->name);
                rc = -1;
                break;
            }
            ncache++;
        }
        kq_bx_gguf_print(a, impl, t, want, &cache[k], *entries == 0, tot);
        (*entries)++;
    }
    fflush(stdout);
    free(x);
    free(cache);
    return rc;
}

static int kq_bx_run_gguf(const kq_bx_args *a, kq_impl impl, unsigned char *sel, size_t count, int explicit_types) {
    char err[512];
    kq_gguf *g = NULL;
    if (kq_gguf_open(a->gguf, &g, err, sizeof(err)) != 0) {
        fprintf(stderr, "kq check bitexact: %s\n", err);
        return 2;
    }
    if (!explicit_types)
        for (size_t i = 0; i < count; i++) sel[i] = (unsigned char)kq_bx_weight_type(kq_ref_traits_at(i));
    const kq_cpu_features cpu = kq_cpu();
    kq_bx_totals tot;
    memset(&tot, 0, sizeof(tot));
    const double t0 = kq_bx_now();
    if (a->json) {
        printf("{\"impl\":\"%s\",\"self_check\":%s,\"cpu\":{\"asimd\":%s,\"asimddp\":%s,\"fphp\":%s,\"asimdhp\":%s},"
               "\"gguf\":",
               kq_impl_name(impl), impl == KQ_IMPL_REFERENCE ? "true" : "false", cpu.asimd ? "true" : "false",
               cpu.asimddp ? "true" : "false", cpu.fphp ? "true" : "false", cpu.asimdhp ? "true" : "false");
        kq_json_str(stdout, a->gguf);
        printf(",\"max_rows\":%" PRId64 ",\"entries\":[", a->max_rows);
    } else {
        printf("kq check bitexact: %s against reference on the tensors of %s (first %" PRId64 " rows of each 2-D "
               "f32/f16/bf16 tensor)\n", kq_impl_name(impl), a->gguf, a->max_rows);
        printf("%-28s %-18s %-15s %-10s %8s %10s  %s\n", "tensor", "type", "function", "code", "cases", "mismatches",
               "status");
    }
    int entries = 0, tensors = 0, skipped = 0, rc = 0;
    for (int64_t i = 0; i < kq_gguf_n_tensors(g) && rc == 0; i++) {
        const kq_gguf_tensor *t = kq_gguf_tensor_at(g, i);
        if (!kq_bx_model_tensor(t)) {
            skipped++;
            continue;
        }
        fprintf(stderr, "kq check bitexact: %s\n", t->name); /* progress: big models are slow */
        rc = kq_bx_gguf_tensor(a, impl, t, sel, count, &tot, &entries);
        tensors++;
    }
    kq_gguf_close(g);
    if (rc != 0) {
        if (a->json) printf("]}\n");
        return 2;
    }
    const double secs = kq_bx_now() - t0;
    if (a->json) {
        printf("],\"tensors\":%d,\"tensors_not_checked\":%d,\"cases\":%lu,\"mismatches\":%lu,\"native_pass\":%d,"
               "\"fallback\":%d,\"failed\":%d,\"seconds\":%.3f}\n",
               tensors, skipped, tot.cases, tot.mismatches, tot.native_pass, tot.fallback, tot.failed, secs);
    } else {
        printf("summary: %s on %d tensors of %s (%d 1-D or already quantized, not checked): ", kq_impl_name(impl),
               tensors, a->gguf, skipped);
        if (impl == KQ_IMPL_REFERENCE) printf("%d functions self-checked", tot.self);
        else printf("%d native identical, %d fallback to reference", tot.native_pass, tot.fallback);
        printf(", %d FAILED; %lu cases, %lu mismatches (%.2f s): %s\n", tot.failed, tot.cases, tot.mismatches, secs,
               tot.mismatches ? "BIT-EXACTNESS FAILED" : "all identical");
    }
    if (tensors == 0) {
        fprintf(stderr, "kq check bitexact: %s has no 2-D f32/f16/bf16 tensor to check\n", a->gguf);
        return 2;
    }
    return tot.mismatches ? 1 : 0;
}

int kq_check_bitexact_main(int argc, char **argv) {
    kq_bx_args a = {"auto", 0, 0, 0, KQ_BX_DEFAULT_SEED, NULL, NULL, KQ_BX_GGUF_ROWS};
    int help = 0;
    if (kq_bx_parse(argc, argv, &a, &help) != 0) return 2;
    if (help) {
        kq_bx_help(stdout);
        return 0;
    }
    kq_impl impl;
    char err[256];
    if (kq_impl_parse(a.impl_name, &impl, err, sizeof(err)) != 0) {
        fprintf(stderr, "kq check bitexact: %s\n", err);
        return 2;
    }
    const size_t count = kq_ref_traits_count();
    unsigned char *selected = malloc(count ? count : 1);
    if (!selected) return 2;
    if (kq_bx_select(a.types, selected, count) != 0) {
        free(selected);
        return 2;
    }
    if (a.gguf) {
        const int code = kq_bx_run_gguf(&a, impl, selected, count, a.types != NULL);
        free(selected);
        return code;
    }
    const kq_bitexact_options opt = {a.quick, a.seed};
    kq_bx_totals tot;
    memset(&tot, 0, sizeof(tot));
    const double t0 = kq_bx_now();
    kq_bx_header(&a, impl, &opt);
    int broken = 0;
    for (size_t i = 0; i < count && !broken; i++)
        if (selected[i] && kq_bx_run_type(&a, impl, kq_ref_traits_at(i), &opt, &tot) != 0) broken = 1;
    free(selected);
    if (broken) return 2;
    kq_bx_footer(&a, impl, &tot, kq_bx_now() - t0);
    return tot.mismatches ? 1 : 0;
}
