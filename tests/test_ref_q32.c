/* Tests of the scalar reference for f32/f16/bf16 rows and ggml's 32-element block formats:
 *  1. golden: byte-for-byte against ggml's own quantizer output (../shared/golden/), and its dequantizer;
 *  2. fp16 / bf16 conversions: exhaustive over all 65536 patterns, and rounding against an
 *     independent round-to-nearest-even computed in double;
 *  3. vec_dot: bit-exact against an independent evaluation of the reduction contract written here
 *     from the raw block bytes, and close to the double-precision dot of the dequantized rows;
 *  4. edge inputs: zero blocks, constants, +-FLT_MAX, tiny values, denormals, alternating signs.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "kq_ref.h"
#include "kq_test.h"

#define G_ROWS 48
#define G_COLS 4096

/* ---- test-side helpers, independent of the code under test ----------------------------------- */

static uint64_t t_rng = 0x9e3779b97f4a7c15ull;
static uint32_t t_rand32(void) {
    t_rng ^= t_rng >> 12;
    t_rng ^= t_rng << 25;
    t_rng ^= t_rng >> 27;
    return (uint32_t)((t_rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float t_uniform(void) { return (float)((double)t_rand32() / 4294967296.0 * 2.0 - 1.0); } /* [-1, 1) */

static uint32_t t_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float t_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static int t_is_nan_bits(uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; }

/* Magnitude of a non-negative half pattern (0 .. 0x7c00), from the IEEE definition; 0x7c00 stands
 * for 2^16, the next value an unbounded exponent would give (where rounding to Inf starts). */
static double t_half_mag(uint16_t h) {
    const int e = h >> 10, m = h & 0x3ff;
    if (e == 0) return ldexp(m, -24);
    if (e == 31) return 65536.0;
    return ldexp(1024 + m, e - 25);
}

/* Value of any non-NaN half. */
static float t_half(uint16_t h) {
    if ((h & 0x7fffu) == 0x7c00u) return (h & 0x8000u) ? -INFINITY : INFINITY;
    const double v = t_half_mag(h & 0x7fffu);
    return (float)((h & 0x8000u) ? -v : v);
}

static uint16_t t_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Round-to-nearest-even f32 -> f16 by bisection over the ordered half magnitudes, in double. */
static uint16_t t_f16_rne(float f) {
    const uint16_t sign = signbit(f) ? 0x8000u : 0;
    const double v = fabs((double)f);
    if (v >= t_half_mag(0x7c00)) return sign | 0x7c00u;
    unsigned lo = 0, hi = 0x7c00;
    while (hi - lo > 1) {
        const unsigned mid = (lo + hi) / 2;
        if (t_half_mag((uint16_t)mid) <= v) lo = mid; else hi = mid;
    }
    const double midpoint = (t_half_mag((uint16_t)lo) + t_half_mag((uint16_t)hi)) / 2; /* exact */
    unsigned r = v < midpoint ? lo : v > midpoint ? hi : (lo & 1 ? hi : lo);
    return (uint16_t)(sign | r);
}

/* Round-to-nearest-even f32 -> bf16: bracket by truncation, compare with the midpoint in double. */
static double t_bf16_mag(uint32_t hi16) { /* non-negative bf16 pattern; 0x7f80 stands for 2^128 */
    return hi16 == 0x7f80u ? ldexp(1.0, 128) : (double)t_float(hi16 << 16);
}
static uint16_t t_bf16_rne(float f) {
    const uint32_t u = t_bits(f), sign = u >> 31 << 15;
    const uint32_t lo = (u & 0x7fffffffu) >> 16;
    if (lo == 0x7f80u) return (uint16_t)(sign | lo); /* Inf stays Inf */
    const double v = fabs((double)f);
    const double midpoint = (t_bf16_mag(lo) + t_bf16_mag(lo + 1)) / 2;
    const uint32_t r = v < midpoint ? lo : v > midpoint ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    return (uint16_t)(sign | r);
}

static float t_reduce8(const float l[8]) {
    const float a = l[0] + l[4], b = l[1] + l[5], c = l[2] + l[6], d = l[3] + l[7];
    return (a + b) + (c + d);
}

/* ---- the block types under test, described by their byte layout ------------------------------ */

typedef struct {
    const char *name;
    kq_quantize_row_fn quant;
    kq_dequantize_row_fn deq;
    kq_vec_dot_fn dot;
    size_t wbytes;  /* weight block bytes */
    int has_m;      /* asym: block has m after d, vec_dot is against q8_1 */
    int bits;       /* 4, 5, 8 */
} t_qtype;

static const t_qtype t_qtypes[] = {
    {"q4_0", kq_quantize_row_q4_0_ref, kq_dequantize_row_q4_0_ref, kq_vec_dot_q4_0_q8_0_ref, 18, 0, 4},
    {"q4_1", kq_quantize_row_q4_1_ref, kq_dequantize_row_q4_1_ref, kq_vec_dot_q4_1_q8_1_ref, 20, 1, 4},
    {"q5_0", kq_quantize_row_q5_0_ref, kq_dequantize_row_q5_0_ref, kq_vec_dot_q5_0_q8_0_ref, 22, 0, 5},
    {"q5_1", kq_quantize_row_q5_1_ref, kq_dequantize_row_q5_1_ref, kq_vec_dot_q5_1_q8_1_ref, 24, 1, 5},
    {"q8_0", kq_quantize_row_q8_0_ref, kq_dequantize_row_q8_0_ref, kq_vec_dot_q8_0_q8_0_ref, 34, 0, 8},
};
#define T_NQ (sizeof(t_qtypes) / sizeof(t_qtypes[0]))

/* Weight codes as the contract uses them (signed for sym, unsigned for asym), d and m. */
static void t_weight_block(const t_qtype *t, const uint8_t *b, int32_t code[32], float *d, float *m) {
    *d = t_half(t_u16(b));
    *m = t->has_m ? t_half(t_u16(b + 2)) : 0.0f;
    const uint8_t *p = b + (t->has_m ? 4 : 2);
    if (t->bits == 8) {
        for (int j = 0; j < 32; j++) code[j] = (int8_t)p[j];
        return;
    }
    uint32_t qh = 0;
    if (t->bits == 5) {
        qh = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        p += 4;
    }
    const int offset = t->has_m ? 0 : (t->bits == 4 ? 8 : 16);
    for (int j = 0; j < 16; j++) {
        int lo = p[j] & 15, hi = p[j] >> 4;
        if (t->bits == 5) {
            lo |= (int)((qh >> j) & 1) << 4;
            hi |= (int)((qh >> (j + 16)) & 1) << 4;
        }
        code[j] = lo - offset;
        code[j + 16] = hi - offset;
    }
}

/* Activation block: q8_0 {d, qs} or q8_1 {d, s, qs}. */
static void t_act_block(int q8_1, const uint8_t *b, int8_t qs[32], float *d, float *s) {
    *d = t_half(t_u16(b));
    *s = q8_1 ? t_half(t_u16(b + 2)) : 0.0f;
    memcpy(qs, b + (q8_1 ? 4 : 2), 32);
}

/* ---- 1. golden files --------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    kq_quantize_row_fn quant;
    kq_dequantize_row_fn deq; /* NULL: no .deq.f32 (q8_1) */
    size_t row_bytes;
} t_golden;

static void t_golden_one(const t_golden *g, const float *input) {
    char path[512], rel[64];
    snprintf(rel, sizeof rel, "golden/%s.bin", g->name);
    size_t len;
    uint8_t *want = kq_test_read_file(kq_test_shared_path(rel, path, sizeof path), &len);
    if (!want) { KQ_SKIP("golden: %s not found", path); return; }
    KQ_CHECK(len == G_ROWS * g->row_bytes, "%s: %zu bytes, expected %zu", path, len, G_ROWS * g->row_bytes);
    if (len != G_ROWS * g->row_bytes) { free(want); return; }

    uint8_t *got = malloc(g->row_bytes);
    size_t rows_ok = 0, bytes_ok = 0;
    for (int r = 0; r < G_ROWS; r++) {
        g->quant(input + (size_t)r * G_COLS, got, G_COLS);
        const uint8_t *w = want + (size_t)r * g->row_bytes;
        size_t same = 0, first_bad = g->row_bytes;
        for (size_t k = 0; k < g->row_bytes; k++) {
            if (got[k] == w[k]) same++;
            else if (first_bad == g->row_bytes) first_bad = k;
        }
        bytes_ok += same;
        rows_ok += same == g->row_bytes;
        KQ_CHECK(same == g->row_bytes, "golden %s row %d: %zu bytes differ, first at byte %zu (got %02x want %02x)",
                 g->name, r, g->row_bytes - same, first_bad, got[first_bad], w[first_bad]);
    }
    printf("golden %-5s quantize: %zu/%d rows, %zu/%zu bytes identical\n", g->name, rows_ok, G_ROWS, bytes_ok, len);
    free(got);

    if (g->deq) {
        snprintf(rel, sizeof rel, "golden/%s.deq.f32", g->name);
        size_t dlen;
        float *dwant = kq_test_read_file(kq_test_shared_path(rel, path, sizeof path), &dlen);
        if (!dwant) {
            KQ_SKIP("golden: %s not found", path);
        } else if (dlen != sizeof(float) * G_ROWS * G_COLS) {
            KQ_CHECK(0, "%s: %zu bytes, expected %zu", path, dlen, sizeof(float) * G_ROWS * G_COLS);
        } else {
            float *dgot = malloc(sizeof(float) * G_COLS);
            size_t drows = 0;
            for (int r = 0; r < G_ROWS; r++) {
                g->deq(want + (size_t)r * g->row_bytes, dgot, G_COLS); /* ggml's bytes, not ours */
                const int same = memcmp(dgot, dwant + (size_t)r * G_COLS, sizeof(float) * G_COLS) == 0;
                drows += same;
                KQ_CHECK(same, "golden %s dequantize row %d differs", g->name, r);
            }
            printf("golden %-5s dequantize: %zu/%d rows bit-identical\n", g->name, drows, G_ROWS);
            free(dgot);
        }
        free(dwant);
    }
    free(want);
}

static void test_golden(void) {
    static const t_golden g[] = {
        {"q4_0", kq_quantize_row_q4_0_ref, kq_dequantize_row_q4_0_ref, 128 * 18},
        {"q4_1", kq_quantize_row_q4_1_ref, kq_dequantize_row_q4_1_ref, 128 * 20},
        {"q5_0", kq_quantize_row_q5_0_ref, kq_dequantize_row_q5_0_ref, 128 * 22},
        {"q5_1", kq_quantize_row_q5_1_ref, kq_dequantize_row_q5_1_ref, 128 * 24},
        {"q8_0", kq_quantize_row_q8_0_ref, kq_dequantize_row_q8_0_ref, 128 * 34},
        {"q8_1", kq_quantize_row_q8_1_ref, NULL, 128 * 36},
        {"f16", kq_quantize_row_f16_ref, kq_dequantize_row_f16_ref, 4096 * 2},
        {"bf16", kq_quantize_row_bf16_ref, kq_dequantize_row_bf16_ref, 4096 * 2},
    };
    char path[512];
    size_t len;
    float *input = kq_test_read_file(kq_test_shared_path("golden/input.f32", path, sizeof path), &len);
    if (!input || len != sizeof(float) * G_ROWS * G_COLS) {
        KQ_SKIP("golden: %s not found or not %d x %d floats", path, G_ROWS, G_COLS);
        free(input);
        return;
    }
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) t_golden_one(&g[i], input);
    free(input);
}

/* ---- 2. fp16 / bf16 conversions ----------------------------------------------------------------- */

static int t_f16_conv_ok(float f) {
    const uint32_t u = t_bits(f);
    const uint16_t h = kq_f32_to_f16(f);
    if (!t_is_nan_bits(u)) return h == t_f16_rne(f);
    /* NaN: a quiet half NaN with the sign and the top payload bits */
    return (h & 0x7e00u) == 0x7e00u && (h >> 15) == (u >> 31) && (h & 0x1ffu) == ((u >> 13) & 0x1ffu);
}

static void test_f16_exhaustive(void) {
    int bad_widen = 0, bad_round_trip = 0, bad_neighbours = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        const float f = kq_f16_to_f32((uint16_t)h);
        const int e = (h >> 10) & 31, m = h & 0x3ff;
        if (e == 31 && m) {
            /* NaN widens quiet, sign and payload kept */
            const uint32_t want = (h & 0x8000u) << 16 | 0x7fc00000u | (uint32_t)m << 13;
            bad_widen += t_bits(f) != want;
            bad_round_trip += (kq_f32_to_f16(f) & 0x7fffu) <= 0x7c00u; /* must stay NaN */
            continue;
        }
        const float want = t_half((uint16_t)h);
        bad_widen += t_bits(f) != t_bits(want); /* bits: catches -0 */
        bad_round_trip += kq_f32_to_f16(f) != h;
        if ((h & 0x7fffu) >= 0x7c00u) continue;
        /* the midpoint to the next half up in magnitude (exact in float), and one float either side */
        const double a = t_half_mag((uint16_t)(h & 0x7fffu)), b = t_half_mag((uint16_t)((h & 0x7fffu) + 1));
        const float mid = (float)((h & 0x8000u) ? -(a + b) / 2 : (a + b) / 2);
        const float probes[] = {mid, nextafterf(mid, INFINITY), nextafterf(mid, -INFINITY),
                                nextafterf(f, INFINITY), nextafterf(f, -INFINITY)};
        for (int k = 0; k < 5; k++) bad_neighbours += !t_f16_conv_ok(probes[k]);
    }
    KQ_CHECK(bad_widen == 0, "f16->f32: %d of 65536 halfs widen wrongly", bad_widen);
    KQ_CHECK(bad_round_trip == 0, "f16->f32->f16: %d of 65536 not identity (or NaN not kept)", bad_round_trip);
    KQ_CHECK(bad_neighbours == 0, "f32->f16 at half midpoints +-1ulp: %d wrong", bad_neighbours);
}

static void test_f16_random(void) {
    int bad = 0, nan_bad = 0;
    for (int i = 0; i < 300000; i++) {
        uint32_t u = t_rand32();
        switch (i % 4) {
        case 0: break;                                                            /* any pattern */
        case 1: u = (u & 0x807fffffu) | (uint32_t)(127 - 26 + (int)(u % 45)) << 23; break; /* half range */
        case 2: u &= 0x807fffffu; break;                                          /* f32 subnormals */
        default: u = (u & 0x80001fffu) | t_bits(t_half((uint16_t)(t_rand32() & 0x7bffu))); /* near a half */
        }
        const float f = t_float(u);
        if (t_is_nan_bits(u)) nan_bad += !t_f16_conv_ok(f);
        else bad += !t_f16_conv_ok(f);
    }
    KQ_CHECK(bad == 0, "f32->f16 random: %d of ~300000 differ from round-to-nearest-even", bad);
    KQ_CHECK(nan_bad == 0, "f32->f16 random NaNs: %d not quiet NaN with sign/payload", nan_bad);

    /* named cases: overflow, ties, subnormal boundaries */
    const struct { float f; uint16_t h; } named[] = {
        {65504.0f, 0x7bff}, {65519.996f, 0x7bff}, {65520.0f, 0x7c00}, {FLT_MAX, 0x7c00}, {-FLT_MAX, 0xfc00},
        {INFINITY, 0x7c00}, {-INFINITY, 0xfc00}, {0.0f, 0x0000}, {-0.0f, 0x8000},
        {1.0f + 0x1p-11f, 0x3c00},              /* tie, even below */
        {1.0f + 3 * 0x1p-11f, 0x3c02},          /* tie, even above */
        {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, /* tie with 0: even is 0 */
        {0x1.8p-24f, 0x0002},                   /* tie 1.5 ulp -> 2 */
        {nextafterf(0x1p-25f, 1.0f), 0x0001}, {-1e-30f, 0x8000}, {2e-40f, 0x0000},
        {0x1.ffcp-15f, 0x0400},                 /* tie at the top of the subnormals rounds into the normals */
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        KQ_CHECK(kq_f32_to_f16(named[i].f) == named[i].h, "f32->f16(%a) = 0x%04x, want 0x%04x", (double)named[i].f,
                 kq_f32_to_f16(named[i].f), named[i].h);
}

static int t_bf16_conv_ok(float f) {
    const uint32_t u = t_bits(f);
    const uint16_t h = kq_f32_to_bf16(f);
    if (!t_is_nan_bits(u)) return h == t_bf16_rne(f);
    return (h & 0x7fc0u) == 0x7fc0u && (h >> 15) == (u >> 31) && (h & 0x3fu) == ((u >> 16) & 0x3fu);
}

static void test_bf16(void) {
    int bad_widen = 0, bad_round_trip = 0, bad_neighbours = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        const float f = kq_bf16_to_f32((uint16_t)h);
        bad_widen += t_bits(f) != h << 16;
        if (t_is_nan_bits(h << 16)) {
            bad_round_trip += !t_is_nan_bits((uint32_t)kq_f32_to_bf16(f) << 16);
            continue;
        }
        bad_round_trip += kq_f32_to_bf16(f) != h;
        if ((h & 0x7fffu) >= 0x7f80u) continue;
        const double a = fabs((double)f), b = t_bf16_mag((h & 0x7fffu) + 1);
        const float mid = (float)((h & 0x8000u) ? -(a + b) / 2 : (a + b) / 2); /* exact: 9 significant bits */
        const float probes[] = {mid, nextafterf(mid, INFINITY), nextafterf(mid, -INFINITY)};
        for (int k = 0; k < 3; k++) bad_neighbours += !t_bf16_conv_ok(probes[k]);
    }
    KQ_CHECK(bad_widen == 0, "bf16->f32: %d wrong", bad_widen);
    KQ_CHECK(bad_round_trip == 0, "bf16->f32->bf16: %d not identity (or NaN lost)", bad_round_trip);
    KQ_CHECK(bad_neighbours == 0, "f32->bf16 at midpoints +-1ulp: %d wrong", bad_neighbours);

    int bad = 0;
    for (int i = 0; i < 300000; i++) {
        uint32_t u = t_rand32();
        if (i % 3 == 1) u &= 0x807fffffu;                  /* subnormals */
        if (i % 3 == 2) u = (u & 0xffff0000u) | 0x8000u;   /* exact ties */
        bad += !t_bf16_conv_ok(t_float(u));
    }
    KQ_CHECK(bad == 0, "f32->bf16 random: %d of 300000 wrong", bad);
    KQ_CHECK(kq_f32_to_bf16(FLT_MAX) == 0x7f80u, "bf16(FLT_MAX) must overflow to Inf: 0x%04x", kq_f32_to_bf16(FLT_MAX));
    KQ_CHECK(kq_f32_to_bf16(2e-40f) == 0x0002u, "bf16(2e-40) = 0x%04x, want 0x0002", kq_f32_to_bf16(2e-40f));
    KQ_CHECK(kq_f32_to_bf16(t_float(0x7f800001u)) == 0x7fc0u, "signalling NaN -> 0x%04x, want quiet 0x7fc0",
             kq_f32_to_bf16(t_float(0x7f800001u)));
}

/* ---- 3. vec_dot ----------------------------------------------------------------------------------- */

static const int t_ns[] = {32, 64, 96, 256, 32 * 13, 32 * 37, 4096};
#define T_NN (sizeof(t_ns) / sizeof(t_ns[0]))
#define T_PAD 38 /* bytes of garbage between weight rows: a wrong stride reads them */

/* Random row with per-block magnitudes 2^-6 .. 2^5 and a per-row offset (exercises m of asym types). */
static void t_fill_row(float *x, int n) {
    const float offset = t_uniform() * 0.5f;
    for (int b = 0; b < n / 32; b++) {
        const float scale = ldexpf(1.0f, (int)(t_rand32() % 12) - 6);
        for (int j = 0; j < 32; j++) x[b * 32 + j] = (t_uniform() + offset) * scale;
    }
}

/* The contract evaluated from raw bytes: per block c_b, lane b % 8, reduce8. */
static float t_expected_dot(const t_qtype *t, const uint8_t *w, const uint8_t *a, int n) {
    const size_t abytes = t->has_m ? 36 : 34;
    float lane[8] = {0};
    for (int b = 0; b < n / 32; b++) {
        int32_t code[32];
        int8_t qs[32];
        float dw, mw, da, sa;
        t_weight_block(t, w + b * t->wbytes, code, &dw, &mw);
        t_act_block(t->has_m, a + b * abytes, qs, &da, &sa);
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += code[j] * qs[j];
        const float dd = dw * da;
        float c = (float)isum * dd;
        if (t->has_m) {
            const float ms = mw * sa;
            c = c + ms;
        }
        lane[b % 8] += c;
    }
    return t_reduce8(lane);
}

/* |vec_dot - exact dot of the dequantized rows| against the size of the terms. */
static int t_dot_close(const t_qtype *t, const uint8_t *w, const uint8_t *a, int n, float got) {
    const size_t abytes = t->has_m ? 36 : 34;
    float *wd = malloc(sizeof(float) * (size_t)n);
    t->deq(w, wd, n);
    double exact = 0, mag = 0, msum = 0;
    for (int b = 0; b < n / 32; b++) {
        int8_t qs[32];
        float da, sa;
        int32_t code[32];
        float dw, mw;
        t_act_block(t->has_m, a + b * abytes, qs, &da, &sa);
        t_weight_block(t, w + b * t->wbytes, code, &dw, &mw);
        for (int j = 0; j < 32; j++) {
            const double p = (double)wd[b * 32 + j] * ((double)qs[j] * da);
            exact += p;
            mag += fabs(p);
        }
        msum += fabs((double)mw * sa); /* s_a = half(d_float * sum): its rounding is in the contract */
    }
    free(wd);
    const double err = fabs((double)got - exact);
    return err <= 1e-5 * mag + 2e-3 * msum + 1e-30;
}

static void test_vec_dot_q(const t_qtype *t) {
    int bad_exact = 0, bad_close = 0, bad_nrc = 0, cases = 0;
    const kq_quantize_row_fn qa = t->has_m ? kq_quantize_row_q8_1_ref : kq_quantize_row_q8_0_ref;
    for (size_t in = 0; in < T_NN; in++) {
        const int n = t_ns[in];
        const size_t row = (size_t)(n / 32) * t->wbytes, stride = row + T_PAD;
        float *x = malloc(sizeof(float) * (size_t)n);
        uint8_t *w = malloc(4 * stride), *a = malloc((size_t)(n / 32) * 36);
        memset(w, 0xa5, 4 * stride);
        for (int r = 0; r < 4; r++) {
            t_fill_row(x, n);
            t->quant(x, w + r * stride, n);
        }
        t_fill_row(x, n);
        qa(x, a, n);
        for (int nrc = 1; nrc <= 4; nrc++) {
            float s[4] = {NAN, NAN, NAN, NAN};
            t->dot(n, s, w, stride, a, nrc);
            for (int r = 0; r < nrc; r++) {
                const float want = t_expected_dot(t, w + r * stride, a, n);
                bad_exact += t_bits(s[r]) != t_bits(want);
                bad_close += !t_dot_close(t, w + r * stride, a, n, s[r]);
                float one;
                t->dot(n, &one, w + r * stride, 0, a, 1); /* same row alone: nrc must not matter */
                bad_nrc += t_bits(one) != t_bits(s[r]);
                cases++;
            }
        }
        free(x), free(w), free(a);
    }
    KQ_CHECK(bad_exact == 0, "vec_dot %s: %d of %d rows not bit-identical to the contract", t->name, bad_exact, cases);
    KQ_CHECK(bad_close == 0, "vec_dot %s: %d of %d rows far from the dequantized double dot", t->name, bad_close, cases);
    KQ_CHECK(bad_nrc == 0, "vec_dot %s: %d of %d rows depend on nrc", t->name, bad_nrc, cases);
}

typedef enum { T_F32, T_F16, T_BF16 } t_ftype;

static float t_widen(t_ftype ft, const void *p, int i) {
    if (ft == T_F32) return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return ft == T_F16 ? t_half(h) : t_float((uint32_t)h << 16);
}

static float t_expected_fdot(t_ftype ft, const void *w, const void *a, int n) {
    float l[16] = {0}, m[8];
    for (int i = 0; i < n; i++) l[i % 16] = fmaf(t_widen(ft, w, i), t_widen(ft, a, i), l[i % 16]);
    for (int j = 0; j < 8; j++) m[j] = l[j] + l[j + 8];
    return t_reduce8(m);
}

static void test_vec_dot_float(t_ftype ft, const char *name, kq_quantize_row_fn q, kq_vec_dot_fn dot) {
    static const int ns[] = {1, 7, 16, 17, 33, 100, 256, 32 * 13 + 5, 4096};
    const size_t es = ft == T_F32 ? 4 : 2;
    int bad_exact = 0, bad_close = 0, bad_nrc = 0, cases = 0;
    for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++) {
        const int n = ns[in];
        const size_t stride = (size_t)n * es + 12; /* 12: keeps f32 rows aligned, adds garbage */
        float *x = malloc(sizeof(float) * (size_t)(n + 32));
        uint8_t *w = malloc(4 * stride), *a = malloc((size_t)n * es);
        memset(w, 0x5a, 4 * stride);
        for (int r = 0; r < 4; r++) {
            t_fill_row(x, n < 32 ? 32 : n & ~31);
            for (int i = n & ~31; i < n; i++) x[i] = t_uniform();
            q(x, w + r * stride, n);
        }
        for (int i = 0; i < n; i++) x[i] = t_uniform();
        q(x, a, n);
        for (int nrc = 1; nrc <= 4; nrc++) {
            float s[4];
            dot(n, s, w, stride, a, nrc);
            for (int r = 0; r < nrc; r++) {
                const void *wr = w + r * stride;
                bad_exact += t_bits(s[r]) != t_bits(t_expected_fdot(ft, wr, a, n));
                double exact = 0, mag = 0;
                for (int i = 0; i < n; i++) {
                    const double p = (double)t_widen(ft, wr, i) * t_widen(ft, a, i);
                    exact += p, mag += fabs(p);
                }
                bad_close += fabs(s[r] - exact) > 1e-5 * mag;
                float one;
                dot(n, &one, wr, 0, a, 1);
                bad_nrc += t_bits(one) != t_bits(s[r]);
                cases++;
            }
        }
        free(x), free(w), free(a);
    }
    KQ_CHECK(bad_exact == 0, "vec_dot %s: %d of %d rows not bit-identical to the contract", name, bad_exact, cases);
    KQ_CHECK(bad_close == 0, "vec_dot %s: %d of %d rows far from the double dot", name, bad_close, cases);
    KQ_CHECK(bad_nrc == 0, "vec_dot %s: %d of %d rows depend on nrc", name, bad_nrc, cases);
}

/* ---- 4. edge inputs ------------------------------------------------------------------------------- */

/* Quantize one 32-block, dequantize it; return how many outputs are NaN. */
static int t_round_block(const t_qtype *t, const float *x, uint8_t *blk, float *y) {
    t->quant(x, blk, 32);
    t->deq(blk, y, 32);
    int nans = 0;
    for (int j = 0; j < 32; j++) nans += isnan(y[j]) != 0;
    return nans;
}

static void test_zero_and_constants(const t_qtype *t) {
    float x[32], y[32];
    uint8_t blk[40], act[36];
    const float zeros[32] = {0};
    /* all zero: d = +-0 and every weight dequantizes to 0; vec_dot is 0, not NaN */
    for (int j = 0; j < 32; j++) x[j] = 0.0f;
    int nans = t_round_block(t, x, blk, y);
    int nonzero = 0;
    for (int j = 0; j < 32; j++) nonzero += y[j] != 0.0f;
    KQ_CHECK(nans == 0 && nonzero == 0 && (t_u16(blk) & 0x7fffu) == 0, "%s zero block: %d NaN, %d nonzero, d=0x%04x",
             t->name, nans, nonzero, t_u16(blk));
    (t->has_m ? kq_quantize_row_q8_1_ref : kq_quantize_row_q8_0_ref)(zeros, act, 32);
    float s = NAN;
    t->dot(32, &s, blk, 0, act, 1);
    KQ_CHECK(s == 0.0f, "%s zero . zero = %g", t->name, (double)s);
    for (int j = 0; j < 32; j++) x[j] = t_uniform();
    (t->has_m ? kq_quantize_row_q8_1_ref : kq_quantize_row_q8_0_ref)(x, act, 32);
    s = NAN;
    t->dot(32, &s, blk, 0, act, 1);
    KQ_CHECK(s == 0.0f, "%s zero weights . random = %g", t->name, (double)s);

    /* constants: dequantize to the constant within the half rounding of d (and of m) */
    const float consts[] = {1.0f, -3.5f, 0.3f, -0.01f, 1234.5f};
    for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
        for (int j = 0; j < 32; j++) x[j] = consts[c];
        nans = t_round_block(t, x, blk, y);
        int far = 0;
        for (int j = 0; j < 32; j++) far += fabsf(y[j] - consts[c]) > fabsf(consts[c]) * 0x1p-10f;
        KQ_CHECK(nans == 0 && far == 0, "%s constant %g: %d NaN, %d off (y0=%.9g)", t->name, (double)consts[c], nans,
                 far, (double)y[0]);
    }
}

/* Golden row 43-like block: tiny normals and one denormal. d underflows in half, codes still set. */
static void test_tiny(const t_qtype *t) {
    float x[32], y[32];
    uint8_t blk[40];
    for (int j = 0; j < 32; j++) x[j] = (float)((j % 7) - 3) * 1e-30f;
    x[5] = 2e-40f;
    const int nans = t_round_block(t, x, blk, y);
    int32_t code[32];
    float d, m;
    t_weight_block(t, blk, code, &d, &m);
    int nonzero_codes = 0, nonzero_y = 0;
    for (int j = 0; j < 32; j++) {
        nonzero_codes += t->has_m ? code[j] != code[0] : code[j] != 0;
        nonzero_y += y[j] != 0.0f;
    }
    KQ_CHECK(nans == 0 && d == 0.0f && nonzero_codes > 0, "%s tiny block: %d NaN, d=%g, %d informative codes", t->name,
             nans, (double)d, nonzero_codes);
    if (!t->has_m) KQ_CHECK(nonzero_y == 0, "%s tiny block: %d nonzero outputs with d = 0", t->name, nonzero_y);
    if (t->bits == 8) { /* codes round(k * 127 / 3) for k = x / 1e-30 */
        int wrong = 0;
        for (int j = 0; j < 32; j++) {
            if (j == 5) continue;
            const int k = (j % 7) - 3, want = (int)lround(k * 127.0 / 3.0);
            wrong += code[j] != want;
        }
        KQ_CHECK(wrong == 0, "q8_0 tiny block: %d codes differ from round(k*127/3)", wrong);
    }

    /* a block of denormals only: 1/d overflows; the codes are defined (saturating), no NaN out */
    for (int j = 0; j < 32; j++) x[j] = (j % 3 == 0) ? 0.0f : (j % 3 == 1 ? 3e-41f : -1.5e-40f);
    const int nans2 = t_round_block(t, x, blk, y);
    int bad_out = 0;
    for (int j = 0; j < 32; j++) bad_out += y[j] != 0.0f && !t->has_m;
    KQ_CHECK(nans2 == 0 && bad_out == 0, "%s denormal block: %d NaN, %d nonzero outputs", t->name, nans2, bad_out);
}

/* Extreme magnitudes: d overflows to Inf in half, codes stay exact ggml ones. */
static void test_flt_max(void) {
    float x[32] = {0};
    uint8_t b[40];
    x[0] = FLT_MAX, x[1] = -FLT_MAX, x[2] = FLT_MAX / 4;
    kq_quantize_row_q4_0_ref(x, b, 32); /* max = +FLT_MAX (first), d = -FLT_MAX/8 */
    KQ_CHECK(t_u16(b) == 0xfc00u, "q4_0 FLT_MAX: d=0x%04x want -Inf", t_u16(b));
    KQ_CHECK(b[2] == 0x80 && b[3] == 0x8f && b[4] == 0x86 && b[5] == 0x88 && b[2 + 15] == 0x88,
             "q4_0 FLT_MAX codes %02x %02x %02x %02x", b[2], b[3], b[4], b[5]);
    kq_quantize_row_q8_0_ref(x, b, 32);
    KQ_CHECK(t_u16(b) == 0x7c00u && (int8_t)b[2] == 127 && (int8_t)b[3] == -127 && (int8_t)b[4] == 32 && b[5] == 0,
             "q8_0 FLT_MAX: d=0x%04x codes %d %d %d %d", t_u16(b), (int8_t)b[2], (int8_t)b[3], (int8_t)b[4],
             (int8_t)b[5]);
    kq_quantize_row_q5_0_ref(x, b, 32); /* codes 0, 31, 12, 16 */
    KQ_CHECK(t_u16(b) == 0xfc00u && (b[6] & 15) == 0 && (b[7] & 15) == 15 && (b[8] & 15) == 12 && (b[9] & 15) == 0 &&
             (b[2] & 0x0f) == 0x0a,
             "q5_0 FLT_MAX: d=0x%04x qs %02x %02x %02x qh %02x", t_u16(b), b[6], b[7], b[8], b[2]);
    /* q4_1: max - min overflows to Inf, so 1/d = 0 and every code is 0; m = -Inf */
    kq_quantize_row_q4_1_ref(x, b, 32);
    int zero = 1;
    for (int j = 4; j < 20; j++) zero &= b[j] == 0;
    KQ_CHECK(t_u16(b) == 0x7c00u && t_u16(b + 2) == 0xfc00u && zero, "q4_1 FLT_MAX: d=0x%04x m=0x%04x", t_u16(b),
             t_u16(b + 2));
}

/* +-0.125 alternating: q4_0's d comes from the first extreme element (+0.125), so d = -1/64. */
static void test_alternating(void) {
    float x[32], y[32];
    uint8_t b[40];
    for (int j = 0; j < 32; j++) x[j] = (j % 2 ? -1 : 1) * 0.125f;
    kq_quantize_row_q4_0_ref(x, b, 32);
    KQ_CHECK(t_u16(b) == 0xa400u && b[2] == 0x00 && b[3] == 0xff, "q4_0 alternating: d=0x%04x qs %02x %02x", t_u16(b),
             b[2], b[3]);
    kq_dequantize_row_q4_0_ref(b, y, 32);
    KQ_CHECK(y[0] == 0.125f && y[1] == -0.109375f, "q4_0 alternating deq %g %g", (double)y[0], (double)y[1]);
    for (size_t i = 0; i < T_NQ; i++) {
        const t_qtype *t = &t_qtypes[i];
        const int nans = t_round_block(t, x, b, y);
        int bad = 0;
        for (int j = 0; j < 32; j++) bad += (y[j] > 0) != (j % 2 == 0) || fabsf(fabsf(y[j]) - 0.125f) > 0.125f / 7;
        KQ_CHECK(nans == 0 && bad == 0, "%s alternating: %d NaN, %d outputs off", t->name, nans, bad);
    }
}

/* q8_1's s is half(d_float * sum(qs)), not computed from the half d. */
static void test_q8_1_sum(void) {
    float x[32];
    uint8_t b[36];
    int bad = 0;
    for (int it = 0; it < 200; it++) {
        t_fill_row(x, 32);
        kq_quantize_row_q8_1_ref(x, b, 32);
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        const float d = amax / 127.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += (int8_t)b[4 + j];
        bad += t_u16(b) != t_f16_rne(d) || t_u16(b + 2) != t_f16_rne((float)sum * d);
    }
    KQ_CHECK(bad == 0, "q8_1: %d of 200 blocks with d or s not half(amax/127), half(d*sum)", bad);
}

int main(void) {
    test_golden();
    test_f16_exhaustive();
    test_f16_random();
    test_bf16();
    for (size_t i = 0; i < T_NQ; i++) test_vec_dot_q(&t_qtypes[i]);
    test_vec_dot_float(T_F32, "f32", kq_quantize_row_f32_ref, kq_vec_dot_f32_f32_ref);
    test_vec_dot_float(T_F16, "f16", kq_quantize_row_f16_ref, kq_vec_dot_f16_f16_ref);
    test_vec_dot_float(T_BF16, "bf16", kq_quantize_row_bf16_ref, kq_vec_dot_bf16_bf16_ref);
    for (size_t i = 0; i < T_NQ; i++) {
        test_zero_and_constants(&t_qtypes[i]);
        test_tiny(&t_qtypes[i]);
    }
    test_flt_max();
    test_alternating();
    test_q8_1_sum();
    return kq_test_finish();
}
