/* Tests of the K-quant scalar reference (reference/kquants.c):
 *  1. golden: quantize_row bytes == ggml's (../shared/golden/<t>.bin) row by row, dequantize_row
 *     floats == ggml's (<t>.deq.f32) bit for bit;
 *  2. vec_dot == the reduction contract of kq_types.h, recomputed here from codes and scales unpacked
 *     by this file's own decoder (itself checked against ggml's dequantized floats), nrc 1..3 with
 *     padded row strides, n = 256 .. 4096;
 *  3. vec_dot is close to the double-precision dot of the dequantized operands;
 *  4. edge rows: zeros, constants, tiny/denormal values, huge values (no NaN where none is due,
 *     deterministic bytes; run the SANITIZE=1 build for UB). */
#include "fp16.h"
#include "kq_ref.h"
#include "kq_test.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QK 256
#define GOLDEN_ROWS 48
#define GOLDEN_COLS 4096

typedef enum { T_Q2, T_Q3, T_Q4, T_Q5, T_Q6, T_Q8 } kind;

typedef struct {
    kind k;
    const char *name;
    size_t block_bytes;
    kq_quantize_row_fn quantize;
    kq_dequantize_row_fn dequantize;
    kq_vec_dot_fn vec_dot;
} ktype;

#define KT(k, t) {k, #t, sizeof(kq_block_##t), kq_quantize_row_##t##_ref, kq_dequantize_row_##t##_ref, \
                  kq_vec_dot_##t##_q8_K_ref}
static const ktype TYPES[] = {KT(T_Q2, q2_K), KT(T_Q3, q3_K), KT(T_Q4, q4_K),
                              KT(T_Q5, q5_K), KT(T_Q6, q6_K), KT(T_Q8, q8_K)};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static uint32_t bits_of(float f) { return kq_f32_bits(f); }

/* ---- this test's own decoder: walks the blocks the way ggml's dequantizers do ---------------- */

/* One super-block as the contract sees it. */
typedef struct {
    int q[QK];      /* q2 0..3, q3 -4..3, q4 0..15, q5 0..31, q6 -32..31, q8 -128..127 */
    int nsub;       /* sub-blocks: 16 (q2 q3 q6), 8 (q4 q5), 1 (q8) */
    int sc[16];     /* scale per sub-block (q3: already minus 32; q8: 1) */
    int mn[16];     /* min per sub-block (q2 q4 q5; else 0) */
    int asym;       /* has dmin */
    float d, dmin;
} unpacked;

static void unpack_q2(const kq_block_q2_K *b, unpacked *u) {
    u->nsub = 16; u->asym = 1;
    u->d = kq_f16_to_f32(b->d); u->dmin = kq_f16_to_f32(b->dmin);
    for (int j = 0; j < 16; j++) { u->sc[j] = b->scales[j] & 15; u->mn[j] = b->scales[j] >> 4; }
    const uint8_t *q = b->qs;
    int *out = u->q;
    for (int half = 0; half < 2; half++, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int l = 0; l < 32; l++) *out++ = (q[l] >> shift) & 3;
}

static void unpack_q3(const kq_block_q3_K *b, unpacked *u) {
    u->nsub = 16; u->asym = 0;
    u->d = kq_f16_to_f32(b->d); u->dmin = 0;
    /* scales through 32-bit words, as ggml's dequantizer does it (little-endian) */
    uint32_t aux[4];
    memcpy(aux, b->scales, 12);
    const uint32_t tmp = aux[2], k1 = 0x03030303u, k2 = 0x0f0f0f0fu;
    aux[2] = ((aux[0] >> 4) & k2) | (((tmp >> 4) & k1) << 4);
    aux[3] = ((aux[1] >> 4) & k2) | (((tmp >> 6) & k1) << 4);
    aux[0] = (aux[0] & k2) | (((tmp >> 0) & k1) << 4);
    aux[1] = (aux[1] & k2) | (((tmp >> 2) & k1) << 4);
    uint8_t s16[16];
    memcpy(s16, aux, 16);
    for (int j = 0; j < 16; j++) { u->sc[j] = s16[j] - 32; u->mn[j] = 0; }
    const uint8_t *q = b->qs;
    uint8_t m = 1;
    int *out = u->q;
    for (int half = 0; half < 2; half++, q += 32)
        for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1))
            for (int l = 0; l < 32; l++) *out++ = ((q[l] >> shift) & 3) - ((b->hmask[l] & m) ? 0 : 4);
}

static void unpack_k4_scales(const uint8_t *s, unpacked *u) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            u->sc[j] = s[j] & 63;
            u->mn[j] = s[j + 4] & 63;
        } else {
            u->sc[j] = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
            u->mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
}

static void unpack_q4(const kq_block_q4_K *b, unpacked *u) {
    u->nsub = 8; u->asym = 1;
    u->d = kq_f16_to_f32(b->d); u->dmin = kq_f16_to_f32(b->dmin);
    unpack_k4_scales(b->scales, u);
    const uint8_t *q = b->qs;
    for (int c = 0; c < 4; c++, q += 32)
        for (int l = 0; l < 32; l++) { u->q[64 * c + l] = q[l] & 15; u->q[64 * c + 32 + l] = q[l] >> 4; }
}

static void unpack_q5(const kq_block_q5_K *b, unpacked *u) {
    u->nsub = 8; u->asym = 1;
    u->d = kq_f16_to_f32(b->d); u->dmin = kq_f16_to_f32(b->dmin);
    unpack_k4_scales(b->scales, u);
    const uint8_t *q = b->qs;
    uint8_t u1 = 1, u2 = 2;
    for (int c = 0; c < 4; c++, q += 32, u1 = (uint8_t)(u1 << 2), u2 = (uint8_t)(u2 << 2))
        for (int l = 0; l < 32; l++) {
            u->q[64 * c + l] = (q[l] & 15) + ((b->qh[l] & u1) ? 16 : 0);
            u->q[64 * c + 32 + l] = (q[l] >> 4) + ((b->qh[l] & u2) ? 16 : 0);
        }
}

static void unpack_q6(const kq_block_q6_K *b, unpacked *u) {
    u->nsub = 16; u->asym = 0;
    u->d = kq_f16_to_f32(b->d); u->dmin = 0;
    for (int j = 0; j < 16; j++) { u->sc[j] = b->scales[j]; u->mn[j] = 0; }
    const uint8_t *ql = b->ql, *qh = b->qh;
    for (int h = 0; h < 2; h++, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            int *o = u->q + 128 * h + l;
            o[0] = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
            o[32] = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
            o[64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            o[96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        }
}

static void unpack_q8(const kq_block_q8_K *b, unpacked *u) {
    u->nsub = 1; u->asym = 0;
    u->d = b->d; u->dmin = 0;
    u->sc[0] = 1; u->mn[0] = 0;
    for (int e = 0; e < QK; e++) u->q[e] = b->qs[e];
}

static void unpack(kind k, const void *block, unpacked *u) {
    switch (k) {
    case T_Q2: unpack_q2(block, u); break;
    case T_Q3: unpack_q3(block, u); break;
    case T_Q4: unpack_q4(block, u); break;
    case T_Q5: unpack_q5(block, u); break;
    case T_Q6: unpack_q6(block, u); break;
    case T_Q8: unpack_q8(block, u); break;
    }
}

/* ggml's dequantization formulas applied to the unpacked codes (float operations as ggml orders them). */
static void dequant_unpacked(kind k, const unpacked *u, float *y) {
    const int sub = QK / u->nsub;
    for (int e = 0; e < QK; e++) {
        const int j = e / sub;
        if (k == T_Q6) {
            y[e] = u->d * u->sc[j] * u->q[e];
        } else if (k == T_Q8) {
            y[e] = u->d * u->q[e];
        } else {
            const float dl = u->d * u->sc[j];
            y[e] = u->asym ? dl * u->q[e] - u->dmin * u->mn[j] : dl * u->q[e];
        }
    }
}

/* The contract: one super-block's (isum, imin) in exact arithmetic, then the float formula. */
static float contract_block(const unpacked *u, const kq_block_q8_K *a, int *overflow) {
    const int sub = QK / u->nsub;
    int64_t isum = 0, imin = 0;
    for (int j = 0; j < u->nsub; j++) {
        int64_t dot = 0, bs = 0;
        for (int e = j * sub; e < (j + 1) * sub; e++) dot += (int64_t)u->q[e] * a->qs[e];
        for (int g = j * sub / 16; g < (j + 1) * sub / 16; g++) bs += a->bsums[g];
        isum += u->sc[j] * dot;
        imin += u->mn[j] * bs;
    }
    if (isum != (int32_t)isum || imin != (int32_t)imin) *overflow = 1;
    const float dd = u->d * a->d;
    if (!u->asym) return dd * (float)isum;
    return dd * (float)isum - (u->dmin * a->d) * (float)imin;
}

static float contract_row(const ktype *t, const void *row, const kq_block_q8_K *a, int64_t n, int *overflow) {
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    unpacked u;
    for (int64_t b = 0; b < n / QK; b++) {
        unpack(t->k, (const char *)row + b * t->block_bytes, &u);
        lane[b % 8] += contract_block(&u, &a[b], overflow);
    }
    const float p0 = lane[0] + lane[4], p1 = lane[1] + lane[5], p2 = lane[2] + lane[6], p3 = lane[3] + lane[7];
    return (p0 + p1) + (p2 + p3);
}

/* ---- deterministic data ---------------------------------------------------------------------- */

static uint32_t rng_state = 12345u;
static uint32_t rng(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state ^ (rng_state >> 16);
}
static float rngf(void) { return (float)(rng() >> 8) / 16777216.0f * 2.0f - 1.0f; } /* [-1, 1) */

/* Weight-like rows: a smooth part, noise, a per-row magnitude and the odd outlier. */
static void fill_row(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) {
        float v = 0.6f * sinf(0.05f * (float)i + scale) + 0.4f * rngf();
        if (rng() % 97 == 0) v *= 8.0f;
        x[i] = v * scale;
    }
}

/* Random bytes in every field, with sane fp16 scales, to reach every bit of the layouts. */
static void random_blocks(const ktype *t, void *row, int64_t nb) {
    uint8_t *p = row;
    for (size_t i = 0; i < (size_t)nb * t->block_bytes; i++) p[i] = (uint8_t)rng();
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = p + b * t->block_bytes;
        const kq_half d = kq_f32_to_f16(0.001f + 0.01f * fabsf(rngf())), dm = kq_f32_to_f16(0.002f * fabsf(rngf()));
        switch (t->k) {
        case T_Q2: ((kq_block_q2_K *)blk)->d = d; ((kq_block_q2_K *)blk)->dmin = dm; break;
        case T_Q3: ((kq_block_q3_K *)blk)->d = d; break;
        case T_Q4: ((kq_block_q4_K *)blk)->d = d; ((kq_block_q4_K *)blk)->dmin = dm; break;
        case T_Q5: ((kq_block_q5_K *)blk)->d = d; ((kq_block_q5_K *)blk)->dmin = dm; break;
        case T_Q6: ((kq_block_q6_K *)blk)->d = d; break;
        case T_Q8: ((kq_block_q8_K *)blk)->d = 0.01f * rngf(); break;
        }
    }
}

/* An activation row with random codes and independent (inconsistent) bsums: the contract reads the
 * stored bsums, so this catches a kernel that indexes them wrongly. */
static void random_q8K(kq_block_q8_K *a, int64_t nb) {
    for (int64_t b = 0; b < nb; b++) {
        a[b].d = 0.02f * rngf();
        for (int e = 0; e < QK; e++) a[b].qs[e] = (int8_t)((int)(rng() % 255) - 127);
        for (int g = 0; g < 16; g++) a[b].bsums[g] = (int16_t)((int)(rng() % 4001) - 2000);
    }
}

/* ---- 1. golden --------------------------------------------------------------------------------- */

static void *load_golden(const char *name, size_t want, char *path, size_t plen) {
    size_t len;
    kq_test_shared_path(name, path, plen);
    void *p = kq_test_read_file(path, &len);
    if (!p) return NULL;
    if (len != want) {
        KQ_CHECK(0, "%s: %zu bytes, expected %zu", path, len, want);
        free(p);
        return NULL;
    }
    return p;
}

static void list_rows(const char *what, const char *name, const int *ok) {
    int n = 0;
    for (int r = 0; r < GOLDEN_ROWS; r++) n += ok[r];
    printf("golden %s %s: %d/%d rows identical", name, what, n, GOLDEN_ROWS);
    if (n != GOLDEN_ROWS) {
        printf(" (differ:");
        for (int r = 0; r < GOLDEN_ROWS; r++)
            if (!ok[r]) printf(" %d", r);
        printf(")");
    }
    printf("\n");
}

static void golden_type(const ktype *t, const float *input) {
    char path[512], name[64];
    const size_t row_bytes = (GOLDEN_COLS / QK) * t->block_bytes;
    snprintf(name, sizeof name, "golden/%s.bin", t->name);
    uint8_t *bin = load_golden(name, row_bytes * GOLDEN_ROWS, path, sizeof path);
    if (!bin) { KQ_SKIP("golden: %s not found (or wrong size)", path); return; }
    snprintf(name, sizeof name, "golden/%s.deq.f32", t->name);
    float *deq = load_golden(name, sizeof(float) * GOLDEN_COLS * GOLDEN_ROWS, path, sizeof path);

    uint8_t *mine = malloc(row_bytes);
    float *y = malloc(sizeof(float) * GOLDEN_COLS);
    int qok[GOLDEN_ROWS], dok[GOLDEN_ROWS], uok[GOLDEN_ROWS];
    for (int r = 0; r < GOLDEN_ROWS; r++) {
        const uint8_t *want = bin + (size_t)r * row_bytes;
        t->quantize(input + (size_t)r * GOLDEN_COLS, mine, GOLDEN_COLS);
        size_t first = 0;
        while (first < row_bytes && mine[first] == want[first]) first++;
        qok[r] = first == row_bytes;
        KQ_CHECK(qok[r], "%s quantize row %d: first differing byte %zu (block %zu, offset %zu): %02x, ggml %02x",
                 t->name, r, first, first / t->block_bytes, first % t->block_bytes, qok[r] ? 0 : mine[first],
                 qok[r] ? 0 : want[first]);
        if (!deq) continue;
        const float *dw = deq + (size_t)r * GOLDEN_COLS;
        /* dequantize ggml's bytes (not ours), so this checks the dequantizer on its own */
        t->dequantize(want, y, GOLDEN_COLS);
        int bad = -1;
        for (int i = 0; i < GOLDEN_COLS && bad < 0; i++)
            if (bits_of(y[i]) != bits_of(dw[i])) bad = i;
        dok[r] = bad < 0;
        KQ_CHECK(dok[r], "%s dequantize row %d col %d: %.9g, ggml %.9g", t->name, r, bad, bad < 0 ? 0 : y[bad],
                 bad < 0 ? 0 : dw[bad]);
        /* and this test's own decoder, which part 2 relies on */
        unpacked u;
        bad = -1;
        for (int b = 0; b < GOLDEN_COLS / QK && bad < 0; b++) {
            unpack(t->k, want + b * t->block_bytes, &u);
            dequant_unpacked(t->k, &u, y);
            for (int e = 0; e < QK && bad < 0; e++)
                if (bits_of(y[e]) != bits_of(dw[b * QK + e])) bad = b * QK + e;
        }
        uok[r] = bad < 0;
        KQ_CHECK(uok[r], "%s test decoder row %d col %d disagrees with ggml", t->name, r, bad);
    }
    list_rows("quantize (bytes)", t->name, qok);
    if (deq) {
        list_rows("dequantize (bits)", t->name, dok);
        list_rows("test decoder (bits)", t->name, uok);
    } else {
        KQ_SKIP("golden: %s not found (or wrong size)", path);
    }
    free(mine);
    free(y);
    free(bin);
    free(deq);
}

static void test_golden(void) {
    char path[512];
    float *input = load_golden("golden/input.f32", sizeof(float) * GOLDEN_COLS * GOLDEN_ROWS, path, sizeof path);
    if (!input) { KQ_SKIP("golden: %s not found (or wrong size)", path); return; }
    for (size_t i = 0; i < NTYPES; i++) golden_type(&TYPES[i], input);
    free(input);
}

/* ---- 2. vec_dot == contract ------------------------------------------------------------------ */

static void check_vec_dot(const ktype *t, int64_t n, int nrc, int random_bytes) {
    const int64_t nb = n / QK;
    const size_t row_bytes = (size_t)nb * t->block_bytes, stride = row_bytes + 20; /* padded rows */
    char *w = malloc(stride * (size_t)nrc);
    kq_block_q8_K *a = malloc(sizeof(kq_block_q8_K) * (size_t)nb);
    float *x = malloc(sizeof(float) * (size_t)n);
    memset(w, 0xA5, stride * (size_t)nrc);
    for (int r = 0; r < nrc; r++) {
        if (random_bytes) {
            random_blocks(t, w + (size_t)r * stride, nb);
        } else {
            fill_row(x, n, 0.05f + (float)r);
            t->quantize(x, w + (size_t)r * stride, n);
        }
    }
    if (random_bytes) {
        random_q8K(a, nb);
    } else {
        fill_row(x, n, 3.0f);
        kq_quantize_row_q8_K_ref(x, a, n);
    }
    float s[4] = {NAN, NAN, NAN, -7.0f};
    t->vec_dot(n, s, w, stride, a, nrc);
    KQ_CHECK(bits_of(s[3]) == bits_of(-7.0f), "%s vec_dot nrc %d wrote past s[nrc-1]", t->name, nrc);
    for (int r = 0; r < nrc; r++) {
        int overflow = 0;
        const float want = contract_row(t, w + (size_t)r * stride, a, n, &overflow);
        KQ_CHECK(!overflow, "%s: isum/imin leave int32 (test data too large)", t->name);
        KQ_CHECK(bits_of(s[r]) == bits_of(want), "%s vec_dot n %lld nrc %d row %d%s: %.9g, contract %.9g", t->name,
                 (long long)n, nrc, r, random_bytes ? " (random bytes)" : "", s[r], want);
        float one;
        t->vec_dot(n, &one, w + (size_t)r * stride, row_bytes, a, 1);
        KQ_CHECK(bits_of(one) == bits_of(s[r]), "%s vec_dot row %d depends on nrc", t->name, r);
    }
    free(w);
    free(a);
    free(x);
}

static void test_vec_dot_contract(void) {
    static const int64_t ns[] = {256, 512, 1280, 2304, 4096}; /* 1, 2, 5, 9 (wraps lanes), 16 blocks */
    for (size_t ti = 0; ti < NTYPES; ti++)
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
            for (int nrc = 1; nrc <= 3; nrc++) {
                check_vec_dot(&TYPES[ti], ns[k], nrc, 0);
                check_vec_dot(&TYPES[ti], ns[k], nrc, 1);
            }
}

/* ---- 3. vec_dot vs the dot of the dequantized operands ---------------------------------------- */

static void test_vec_dot_accuracy(void) {
    const int64_t n = 4096, nb = n / QK;
    float *x = malloc(sizeof(float) * n), *wd = malloc(sizeof(float) * n), *ad = malloc(sizeof(float) * n);
    kq_block_q8_K *a = malloc(sizeof(kq_block_q8_K) * nb);
    void *w = malloc(sizeof(kq_block_q8_K) * nb); /* the largest K block */
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const ktype *t = &TYPES[ti];
        double worst = 0;
        for (int trial = 0; trial < 4; trial++) {
            fill_row(x, n, 0.01f * (float)(trial + 1) * (float)(trial + 1));
            t->quantize(x, w, n);
            t->dequantize(w, wd, n);
            fill_row(x, n, 2.0f + (float)trial);
            kq_quantize_row_q8_K_ref(x, a, n);
            kq_dequantize_row_q8_K_ref(a, ad, n);
            double dot = 0, mag = 0;
            for (int64_t i = 0; i < n; i++) {
                dot += (double)wd[i] * ad[i];
                mag += fabs((double)wd[i] * ad[i]);
            }
            float s;
            t->vec_dot(n, &s, w, 0, a, 1);
            const double rel = fabs((double)s - dot) / mag;
            if (rel > worst) worst = rel;
        }
        printf("vec_dot %s vs double dot of dequantized operands: max |err| / sum|w*a| = %.3g\n", t->name, worst);
        KQ_CHECK(worst < 2e-6, "%s vec_dot relative error %.3g", t->name, worst);
    }
    free(x); free(wd); free(ad); free(a); free(w);
}

/* ---- 4. edge rows ---------------------------------------------------------------------------- */

static int all_finite(const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(y[i])) return 0;
    return 1;
}

/* Quantizes x twice (must agree) and dequantizes; returns the row bytes (caller frees). */
static uint8_t *roundtrip(const ktype *t, const float *x, int64_t n, float *y) {
    const size_t bytes = (size_t)(n / QK) * t->block_bytes;
    uint8_t *q1 = malloc(bytes), *q2 = malloc(bytes);
    memset(q1, 0x5A, bytes);
    memset(q2, 0xC3, bytes); /* different garbage: every byte must be written */
    t->quantize(x, q1, n);
    t->quantize(x, q2, n);
    KQ_CHECK(memcmp(q1, q2, bytes) == 0, "%s: quantize is not deterministic (or leaves bytes unwritten)", t->name);
    t->dequantize(q1, y, n);
    free(q2);
    return q1;
}

static void edge_zeros(const ktype *t, const kq_block_q8_K *a) {
    const int64_t n = 512;
    float x[512], y[512];
    memset(x, 0, sizeof x);
    uint8_t *q = roundtrip(t, x, n, y);
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= y[i] == 0.0f;
    KQ_CHECK(ok, "%s: zeros do not dequantize to zeros", t->name);
    float s;
    t->vec_dot(n, &s, q, 0, a, 1);
    KQ_CHECK(s == 0.0f, "%s: vec_dot of a zero row = %g", t->name, s);
    free(q);
}

static void edge_constants(const ktype *t) {
    static const float cs[] = {1.0f, -3.5f, 0.5f, -0.75f, 1000.0f, -12345.678f, 3e-5f, -1e-3f};
    float x[256], y[256];
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        for (int i = 0; i < 256; i++) x[i] = cs[k];
        free(roundtrip(t, x, 256, y));
        float worst = 0;
        for (int i = 0; i < 256; i++) worst = fmaxf(worst, fabsf(y[i] - cs[k]) / fabsf(cs[k]));
        /* A constant is one grid point, so only the rounding of the fp16 (q8_K: f32) scale remains while
         * that scale is a normal fp16 (|c| >= 0.5 here). Smaller constants get subnormal or zero fp16
         * scales (q6_K: d ~ c/4096; q5_K: d ~ c/1953): expected, bounded loss, never a blow-up. */
        const float tol = fabsf(cs[k]) >= 0.5f ? 2e-3f : 1.0f;
        KQ_CHECK(all_finite(y, 256) && worst <= tol, "%s: constant %g dequantizes with relative error %g", t->name,
                 cs[k], worst);
    }
}

/* Tiny values: fp16 scales cannot hold them, so K-quant blocks under ~1e-8 come back as 0 (q8_K keeps
 * an f32 scale). Expected: finite output, never larger than the input's magnitude. */
static void edge_tiny(const ktype *t) {
    float x[512], y[512];
    for (int i = 0; i < 256; i++) x[i] = (float)((i % 7) - 3) * 1e-30f;
    x[5] = 2e-40f;                                                      /* one denormal */
    for (int i = 256; i < 512; i++) x[i] = (float)((i % 5) - 2) * FLT_TRUE_MIN * 3; /* denormals only */
    free(roundtrip(t, x, 512, y));
    KQ_CHECK(all_finite(y, 512), "%s: tiny values dequantize to non-finite values", t->name);
    int ok = 1;
    for (int i = 0; i < 512; i++) ok &= fabsf(y[i]) <= 3.01e-30f;
    KQ_CHECK(ok, "%s: tiny values dequantize to larger values", t->name);
}

/* Huge values. Expected (documented in docs/formats.md): K-quant super-block scales are fp16, so a
 * super-block beyond fp16 range saturates (scales Inf, or NaN from Inf - Inf in the searches) and does
 * not dequantize to finite values; q8_K's f32 scale holds them. The requirement here is no UB (run the
 * SANITIZE=1 build), determinism, and that the next super-block is unaffected. */
static void edge_huge(const ktype *t) {
    static const float big[] = {1e30f, FLT_MAX};
    float x[512], y[512];
    for (size_t k = 0; k < 2; k++) {
        for (int i = 0; i < 256; i++) x[i] = (i % 3 == 0 ? -big[k] : big[k]) * ((float)(1 + i % 4) / 4.0f);
        for (int i = 256; i < 512; i++) x[i] = 0.01f * (float)((i % 11) - 5);
        free(roundtrip(t, x, 512, y));
        int ok = 1;
        for (int i = 256; i < 512; i++) ok &= fabsf(y[i] - x[i]) <= 0.02f;
        KQ_CHECK(ok, "%s: a huge super-block disturbs the next one", t->name);
        if (t->k == T_Q8) {
            /* q8_K holds them; at +-FLT_MAX, d = 1/iscale rounds up and d * 127 overflows to Inf of
             * the right sign: ggml's arithmetic, kept. */
            int good = 1;
            for (int i = 0; i < 256; i++) {
                if (isfinite(y[i]))
                    good &= fabsf(y[i] - x[i]) / big[k] <= 1.0f / 127;
                else
                    good &= isinf(y[i]) && signbit(y[i]) == signbit(x[i]) && fabsf(x[i]) > FLT_MAX / 2;
            }
            KQ_CHECK(good, "q8_K: +-%g not held", big[k]);
        }
        int nonfinite = 0;
        float ymax = 0;
        for (int i = 0; i < 256; i++) {
            nonfinite += !isfinite(y[i]);
            if (isfinite(y[i])) ymax = fmaxf(ymax, fabsf(y[i]));
        }
        printf("edge %s +-%g: huge super-block dequantizes to %d/256 non-finite values, max finite |y| %g\n",
               t->name, big[k], nonfinite, ymax);
    }
}

static void test_edges(void) {
    kq_block_q8_K a[2];
    float x[512];
    fill_row(x, 512, 1.0f);
    kq_quantize_row_q8_K_ref(x, a, 512);
    for (size_t ti = 0; ti < NTYPES; ti++) {
        edge_zeros(&TYPES[ti], a);
        edge_constants(&TYPES[ti]);
        edge_tiny(&TYPES[ti]);
        edge_huge(&TYPES[ti]);
    }
    /* q8_K of zeros: d = 0 and zero bsums (ggml leaves bsums unwritten there; kq writes zeros) */
    memset(x, 0, sizeof x);
    memset(a, 0x77, sizeof a);
    kq_quantize_row_q8_K_ref(x, a, 512);
    KQ_CHECK(a[0].d == 0.0f && a[1].bsums[15] == 0 && a[0].qs[7] == 0, "q8_K zero block not fully zeroed");
}

int main(void) {
    test_golden();
    test_vec_dot_contract();
    test_vec_dot_accuracy();
    test_edges();
    return kq_test_finish();
}
