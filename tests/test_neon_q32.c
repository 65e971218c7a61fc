/* NEON q4_0..q8_1 quantize/dequantize and f32/f16 rows and dots: bit-identical to the reference.
 * Compares kq_traits(KQ_IMPL_NEON_PLAIN, t) with kq_ref_traits(t) on many inputs (normal, heavy
 * tails, zeros, constants, +-FLT_MAX, 1e30, 1e-30, denormals, exact rounding ties) and row lengths
 * with tails; q8_0/q8_1 also on rows mixing blocks whose maxima sit on the boundaries of their fast
 * path; f16 conversions on all 65536 halfs and on NaN/Inf floats. Skips off aarch64. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fp16.h"
#include "kq_dispatch.h"
#include "kq_ref.h"
#include "kq_test.h"

#if defined(__aarch64__)

/* ---- deterministic inputs ---------------------------------------------------------------------- */

static uint64_t kq_rng = 0x9e3779b97f4a7c15ull;
static uint32_t kq_rand32(void) {
    kq_rng ^= kq_rng << 13, kq_rng ^= kq_rng >> 7, kq_rng ^= kq_rng << 17;
    return (uint32_t)(kq_rng >> 16);
}
static float kq_uniform(void) { return ((float)(kq_rand32() >> 8) + 0.5f) / 16777216.0f; }
static float kq_normal(void) {
    return (float)(sqrt(-2.0 * log((double)kq_uniform())) * cos(6.283185307179586 * (double)kq_uniform()));
}

enum {
    IN_NORMAL, IN_OUTLIERS, IN_ZEROS, IN_SIGNED_ZEROS, IN_CONST, IN_NEG_CONST, IN_FLT_MAX, IN_HUGE, IN_TINY,
    IN_DENORMAL, IN_MIXED_SCALES, IN_TIES_Q8, IN_TIES_Q4_0, IN_TIES_Q4_1, IN_ABS_TIES, IN_COUNT
};
static const char *const kq_in_names[IN_COUNT] = {
    "normal", "outliers", "zeros", "signed-zeros", "const", "neg-const", "flt-max", "huge", "tiny",
    "denormal", "mixed-scales", "ties-q8", "ties-q4_0", "ties-q4_1", "abs-ties"};

static void kq_fill(int kind, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const int64_t j = i % 32, b = i / 32;
        float v = 0.0f;
        switch (kind) {
        case IN_NORMAL: v = kq_normal(); break;
        case IN_OUTLIERS: v = kq_normal() * 0.02f * ((i % 67 == 5) ? 500.0f : 1.0f); break;
        case IN_ZEROS: v = 0.0f; break;
        case IN_SIGNED_ZEROS: v = ((i * 7 + b) % 3 == (b & 1)) ? -0.0f : 0.0f; break;
        case IN_CONST: v = 3.0f; break;
        case IN_NEG_CONST: v = -3.5f; break;
        case IN_FLT_MAX: v = (kq_rand32() & 1) ? FLT_MAX : -FLT_MAX * kq_uniform(); break;
        case IN_HUGE: v = kq_normal() * 1e30f; break;
        case IN_TINY: v = kq_normal() * 1e-30f; break;
        case IN_DENORMAL: v = kq_normal() * 1e-40f * (float)(1 + b % 5); break;
        case IN_MIXED_SCALES: v = kq_normal() * powf(10.0f, -(float)(b % 9) * 5.0f); break;
        /* amax 127 -> d = 1, id = 1: x = k + 0.5 is an exact roundf tie */
        case IN_TIES_Q8: v = j == 0 ? 127.0f : (float)((int)(kq_rand32() % 253) - 126) + 0.5f * (float)(kq_rand32() & 1); break;
        /* max -8 -> d = 1: x * 1 + 8.5 lands exactly on integers and on the clamp */
        case IN_TIES_Q4_0: v = j == 3 ? -8.0f : 0.5f * (float)((int)(kq_rand32() % 32) - 16); break;
        /* min 0, max 15 -> d = 1: (x - 0) * 1 + 0.5 lands exactly on integers */
        case IN_TIES_Q4_1: v = j == 0 ? 0.0f : j == 1 ? 15.0f : 0.5f * (float)(kq_rand32() % 31); break;
        /* +-a in the same block: the reference keeps the first of the largest magnitudes */
        case IN_ABS_TIES: v = (j == 4 || j == 20) ? ((b & 1) ? 2.5f : -2.5f) * (j == 20 ? -1.0f : 1.0f) : kq_normal(); break;
        }
        x[i] = v;
    }
}

static const int kq_block_counts[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 127, 128};
#define KQ_NCOUNTS (sizeof(kq_block_counts) / sizeof(kq_block_counts[0]))

static const kq_type kq_q32_types[] = {KQ_TYPE_Q4_0, KQ_TYPE_Q4_1, KQ_TYPE_Q5_0, KQ_TYPE_Q5_1, KQ_TYPE_Q8_0, KQ_TYPE_Q8_1};

static void test_native(void) {
    for (size_t t = 0; t < sizeof(kq_q32_types) / sizeof(kq_q32_types[0]); t++) {
        KQ_CHECK(kq_fn_native(KQ_IMPL_NEON_PLAIN, kq_q32_types[t], KQ_FN_QUANTIZE) == 1, "type %d: NEON quantize missing",
                 (int)kq_q32_types[t]);
        if (kq_q32_types[t] != KQ_TYPE_Q8_1)
            KQ_CHECK(kq_fn_native(KQ_IMPL_NEON_PLAIN, kq_q32_types[t], KQ_FN_DEQUANTIZE) == 1, "type %d: NEON dequantize missing",
                     (int)kq_q32_types[t]);
    }
    KQ_CHECK(kq_fn_native(KQ_IMPL_NEON_PLAIN, KQ_TYPE_F16, KQ_FN_VEC_DOT) == 1, "f16 NEON dot missing");
    KQ_CHECK(kq_fn_native(KQ_IMPL_NEON_PLAIN, KQ_TYPE_F32, KQ_FN_VEC_DOT) == 1, "f32 NEON dot missing");
}

/* quantize every input with both tables; dequantize the reference bytes with both tables */
static void test_q32_type(kq_type type) {
    const kq_type_traits *ref = kq_ref_traits(type), *neon = kq_traits(KQ_IMPL_NEON_PLAIN, type);
    const int64_t nmax = 128 * 32;
    float *x = malloc(sizeof(float) * (size_t)nmax), *dr = malloc(sizeof(float) * (size_t)nmax),
          *dn = malloc(sizeof(float) * (size_t)nmax);
    uint8_t *yr = malloc(kq_row_size(type, nmax)), *yn = malloc(kq_row_size(type, nmax));
    int bad_q = 0, bad_d = 0, runs = 0;
    for (int kind = 0; kind < IN_COUNT; kind++) {
        for (size_t c = 0; c < KQ_NCOUNTS; c++) {
            const int64_t n = 32 * (int64_t)kq_block_counts[c];
            const size_t bytes = kq_row_size(type, n);
            kq_fill(kind, x, n);
            memset(yr, 0xa5, bytes);
            memset(yn, 0x5a, bytes);
            ref->quantize_row(x, yr, n);
            neon->quantize_row(x, yn, n);
            runs++;
            if (memcmp(yr, yn, bytes) != 0 && bad_q++ < 3) {
                size_t k = 0;
                while (yr[k] == yn[k]) k++;
                printf("  %s quantize, input %s, n %lld: first differing byte %zu (block %zu): ref %02x neon %02x\n",
                       ref->name, kq_in_names[kind], (long long)n, k, k / ref->block_bytes, yr[k], yn[k]);
            }
            if (ref->dequantize_row) {
                memset(dr, 0xa5, sizeof(float) * (size_t)n);
                memset(dn, 0x5a, sizeof(float) * (size_t)n);
                ref->dequantize_row(yr, dr, n);
                neon->dequantize_row(yr, dn, n);
                if (memcmp(dr, dn, sizeof(float) * (size_t)n) != 0 && bad_d++ < 3)
                    printf("  %s dequantize differs, input %s, n %lld\n", ref->name, kq_in_names[kind], (long long)n);
            }
        }
    }
    KQ_CHECK(bad_q == 0, "%s: NEON quantize differs from the reference in %d of %d rows", ref->name, bad_q, runs);
    if (ref->dequantize_row) {
        KQ_CHECK(bad_d == 0, "%s: NEON dequantize differs from the reference in %d of %d rows", ref->name, bad_d, runs);
        /* arbitrary block bytes with random finite scales (and every code pattern) */
        int bad_r = 0;
        for (int rep = 0; rep < 20; rep++) {
            const int64_t n = 32 * 37;
            const size_t bytes = kq_row_size(type, n);
            for (size_t k = 0; k < bytes; k++) yr[k] = (uint8_t)kq_rand32();
            for (size_t b = 0; b < bytes / ref->block_bytes; b++) {
                uint8_t *blk = yr + b * ref->block_bytes;
                for (int h = 0; h < (type == KQ_TYPE_Q4_1 || type == KQ_TYPE_Q5_1 ? 2 : 1); h++) {
                    const uint16_t v = kq_f32_to_f16(kq_normal() * (rep < 10 ? 1.0f : 1e-6f));
                    memcpy(blk + 2 * h, &v, 2);
                }
            }
            ref->dequantize_row(yr, dr, n);
            neon->dequantize_row(yr, dn, n);
            bad_r += memcmp(dr, dn, sizeof(float) * (size_t)n) != 0;
        }
        KQ_CHECK(bad_r == 0, "%s: NEON dequantize of random blocks differs in %d of 20 rows", ref->name, bad_r);
    }
    free(x), free(dr), free(dn), free(yr), free(yn);
}

/* The golden input through NEON must give ggml's bytes too (SKIP when the files are absent). */
static void test_golden(kq_type type) {
    const kq_type_traits *neon = kq_traits(KQ_IMPL_NEON_PLAIN, type);
    char p1[512], p2[512], rel[64];
    size_t lin = 0, lgold = 0;
    snprintf(rel, sizeof(rel), "golden/%s.bin", neon->name);
    float *in = kq_test_read_file(kq_test_shared_path("golden/input.f32", p1, sizeof(p1)), &lin);
    uint8_t *gold = kq_test_read_file(kq_test_shared_path(rel, p2, sizeof(p2)), &lgold);
    if (!in || !gold || lin != 48 * 4096 * 4) {
        KQ_SKIP("golden %s: %s or %s not found", neon->name, p1, p2);
    } else {
        const size_t rb = kq_row_size(type, 4096);
        uint8_t *y = malloc(rb * 48);
        for (int r = 0; r < 48; r++) neon->quantize_row(in + r * 4096, y + (size_t)r * rb, 4096);
        KQ_CHECK(lgold == rb * 48 && memcmp(y, gold, lgold) == 0, "golden %s: NEON bytes differ from ggml's", neon->name);
        free(y);
    }
    free(in), free(gold);
}

/* ---- q8_0 / q8_1: the fast path's boundaries --------------------------------------------------- */

/* The NEON q8 kernels take groups of four blocks through a fast path (every half d of the group
 * non-zero: d > 2^-25, no saturation) and the other groups block by block; they read up to four
 * groups ahead (clamped to the row) and q8_1 stores a group's s one group late. So: rows of 1..48
 * blocks whose maxima sit on and beside every boundary, mixed inside the groups. */
static const float kq_q8_edge_amax[] = {
    0.0f,                       /* all-zero block: d = 0 */
    1e-40f,                     /* subnormal amax */
    0x1.fcp-120f,               /* 127 * 2^-126 (0x1.fcp-120 = 127 * 2^-126): d = FLT_MIN */
    0x1.fbfffep-120f,           /* just below: d subnormal */
    0x1.fcp-19f,                /* 127 * 2^-25: d = 2^-25, half(d) ties to 0 (slow) */
    0x1.fc0002p-19f,            /* just above: half(d) = 2^-24 (fast) */
    0x1.fbfffep-19f,            /* just below: half(d) = 0 */
    0x1.fcp-18f,                /* d = 2^-24: the smallest half */
    0x1.fcp-8f,                 /* d = 2^-14: the smallest normal half */
    127.0f * 65504.0f,          /* the largest finite half d */
    127.0f * 65520.0f,          /* half(d) rounds to Inf */
    FLT_MAX,
    127.0f,                     /* d = 1: x = k + 0.5 are exact roundf ties */
    0x1.fcp+3f,                 /* 127 * 2^-3, ties again with d = 2^-3 */
    3.0f,
};
#define KQ_Q8_NEDGE (sizeof(kq_q8_edge_amax) / sizeof(kq_q8_edge_amax[0]))

/* One block with maximum |x| = amax (at a random position and sign); when d is a power of two the
 * other elements are mostly exact ties k + 0.5 in units of d. */
static void kq_q8_edge_block(float *x, float amax) {
    const float d = amax / 127.0f;
    const int pos = (int)(kq_rand32() % 32);
    for (int j = 0; j < 32; j++) {
        float v;
        if (kq_rand32() % 3 == 0 && d > 0.0f)
            v = ((float)((int)(kq_rand32() % 254) - 127) + 0.5f) * d; /* |v| <= 126.5 d <= amax */
        else
            v = amax * (2.0f * kq_uniform() - 1.0f);
        x[j] = j == pos ? ((kq_rand32() & 1) ? amax : -amax) : v;
    }
    if (amax == 0.0f)
        for (int j = 0; j < 32; j++) x[j] = (kq_rand32() & 1) ? -0.0f : 0.0f;
}

/* Input that ends at a page boundary followed by an inaccessible page: a read past the row faults. */
static float *kq_guarded_floats(size_t n, void **map, size_t *map_len) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = n * sizeof(float);
    const size_t data = (bytes + page - 1) / page * page;
    *map_len = data + page;
    char *m = mmap(NULL, *map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    if (mprotect(m + data, page, PROT_NONE) != 0) {
        munmap(m, *map_len);
        return NULL;
    }
    *map = m;
    return (float *)(void *)(m + data - bytes);
}

static void test_q8_edges(kq_type type) {
    const kq_type_traits *ref = kq_ref_traits(type), *neon = kq_traits(KQ_IMPL_NEON_PLAIN, type);
    enum { MAXB = 48, GUARD = 64 };
    void *map = NULL;
    size_t map_len = 0;
    float *xbuf = kq_guarded_floats(MAXB * 32, &map, &map_len);
    uint8_t *yr = malloc(kq_row_size(type, MAXB * 32) + GUARD), *yn = malloc(kq_row_size(type, MAXB * 32) + GUARD);
    if (!xbuf) {
        KQ_SKIP("%s edges: no guarded mapping", ref->name);
        free(yr), free(yn);
        return;
    }
    int bad = 0, bad_guard = 0, runs = 0;
    for (int rep = 0; rep < 400; rep++) {
        const int nb = rep < 48 ? rep + 1 : 1 + (int)(kq_rand32() % MAXB);
        const int64_t n = 32 * (int64_t)nb;
        float *x = xbuf + (MAXB - nb) * 32; /* the row ends at the guard page */
        /* per block: an edge maximum (often), else a normal block; whole groups slow or fast too */
        for (int b = 0; b < nb; b++) {
            const uint32_t r = kq_rand32() % 8;
            float amax;
            if (rep % 5 == 4)
                amax = kq_q8_edge_amax[(b / 4 + rep) % KQ_Q8_NEDGE]; /* the same kind for a whole group */
            else if (r < 3)
                amax = kq_q8_edge_amax[kq_rand32() % KQ_Q8_NEDGE];
            else
                amax = 0.01f + 10.0f * kq_uniform();
            kq_q8_edge_block(x + 32 * b, amax);
        }
        const size_t bytes = kq_row_size(type, n);
        memset(yr, 0xa5, bytes + GUARD);
        memset(yn, 0xa5, bytes + GUARD);
        ref->quantize_row(x, yr, n);
        neon->quantize_row(x, yn, n);
        runs++;
        if (memcmp(yr, yn, bytes) != 0 && bad++ < 3) {
            size_t k = 0;
            while (yr[k] == yn[k]) k++;
            printf("  %s edges, %d blocks: first differing byte %zu (block %zu): ref %02x neon %02x\n", ref->name, nb, k,
                   k / ref->block_bytes, yr[k], yn[k]);
        }
        for (size_t k = bytes; k < bytes + GUARD; k++) bad_guard += yn[k] != 0xa5;
    }
    KQ_CHECK(bad == 0, "%s: NEON quantize differs from the reference on %d of %d rows with edge maxima", ref->name, bad,
             runs);
    KQ_CHECK(bad_guard == 0, "%s: NEON quantize wrote %d bytes past the row", ref->name, bad_guard);
    munmap(map, map_len);
    free(yr), free(yn);
}

/* ---- floats ------------------------------------------------------------------------------------ */

static void test_f16_all_halfs(void) {
    const kq_type_traits *ref = kq_ref_traits(KQ_TYPE_F16), *neon = kq_traits(KQ_IMPL_NEON_PLAIN, KQ_TYPE_F16);
    uint16_t *h = malloc(65536 * 2);
    float *a = malloc(65536 * 4), *b = malloc(65536 * 4);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    ref->dequantize_row(h, a, 65536);
    neon->dequantize_row(h, b, 65536);
    KQ_CHECK(memcmp(a, b, 65536 * 4) == 0, "f16 dequantize of all 65536 halfs differs");
    /* and back: every half survives the round trip through NEON quantize */
    uint16_t *h2 = malloc(65536 * 2);
    neon->quantize_row(b, h2, 65536);
    uint16_t *h3 = malloc(65536 * 2);
    ref->quantize_row(b, h3, 65536);
    KQ_CHECK(memcmp(h2, h3, 65536 * 2) == 0, "f16 quantize of all widened halfs differs");
    free(h), free(a), free(b), free(h2), free(h3);
}

static void test_f16_quantize(void) {
    const kq_type_traits *ref = kq_ref_traits(KQ_TYPE_F16), *neon = kq_traits(KQ_IMPL_NEON_PLAIN, KQ_TYPE_F16);
    enum { N = 1 << 16 };
    float *x = malloc(N * 4);
    uint16_t *a = malloc(N * 2), *b = malloc(N * 2);
    int bad = 0;
    for (int rep = 0; rep < 4; rep++) {
        for (int i = 0; i < N; i++) {
            uint32_t u = kq_rand32();
            if (rep == 1) u = (u & 0x807fffffu) | ((100u + kq_rand32() % 60u) << 23); /* near the f16 range */
            if (rep == 2) u = (u & 0x80001fffu) | ((112u + kq_rand32() % 32u) << 23) | 0x1000u * (kq_rand32() & 1); /* ties */
            if (rep == 3) u = (u & 0x807fffffu) | 0x7f800000u; /* NaN (quiet and signalling), Inf */
            memcpy(&x[i], &u, 4);
        }
        if (rep == 3) x[0] = INFINITY, x[1] = -INFINITY, x[2] = NAN, x[3] = -NAN;
        ref->quantize_row(x, a, N);
        neon->quantize_row(x, b, N);
        bad += memcmp(a, b, N * 2) != 0;
    }
    KQ_CHECK(bad == 0, "f16 quantize differs on %d of 4 sets of random bit patterns (incl. NaN/Inf)", bad);
    /* tails: every n from 1 to 40 */
    int bad_tail = 0;
    for (int n = 1; n <= 40; n++) {
        for (int i = 0; i < n; i++) x[i] = kq_normal() * 1000.0f;
        memset(a, 0, 80), memset(b, 0, 80);
        ref->quantize_row(x, a, n);
        neon->quantize_row(x, b, n);
        float fa[40], fb[40];
        ref->dequantize_row(a, fa, n);
        neon->dequantize_row(a, fb, n);
        bad_tail += memcmp(a, b, 80) != 0 || memcmp(fa, fb, (size_t)n * 4) != 0;
    }
    KQ_CHECK(bad_tail == 0, "f16 rows with n = 1..40 differ in %d cases", bad_tail);
    free(x), free(a), free(b);
}

static void test_f32_rows(void) {
    const kq_type_traits *neon = kq_traits(KQ_IMPL_NEON_PLAIN, KQ_TYPE_F32);
    float x[100], y[100], z[100];
    for (int i = 0; i < 100; i++) x[i] = kq_normal();
    neon->quantize_row(x, y, 100);
    neon->dequantize_row(y, z, 100);
    KQ_CHECK(memcmp(x, z, sizeof(x)) == 0, "f32 rows are not a copy");
}

static void test_float_dots(kq_type type) {
    const kq_type_traits *ref = kq_ref_traits(type), *neon = kq_traits(KQ_IMPL_NEON_PLAIN, type);
    const int64_t ns[] = {1, 7, 15, 16, 17, 31, 33, 100, 255, 256, 1000, 4096};
    const int nrc = 3;
    const size_t es = type == KQ_TYPE_F32 ? 4 : 2;
    const size_t stride = 4096 * es + 64;
    uint8_t *w = malloc(stride * (size_t)nrc), *a = malloc(4096 * es);
    float *tmp = malloc(4096 * 4);
    int bad = 0, runs = 0;
    for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
        for (int kind = 0; kind < 3; kind++) {
            const int64_t n = ns[k];
            for (int r = 0; r < nrc; r++) {
                for (int64_t i = 0; i < n; i++) tmp[i] = kind == 2 ? kq_normal() * 1e4f : kq_normal();
                if (kind == 1) tmp[n / 2] = 65000.0f; /* one large product among small ones */
                ref->quantize_row(tmp, w + (size_t)r * stride, n);
            }
            for (int64_t i = 0; i < n; i++) tmp[i] = kq_normal();
            ref->quantize_row(tmp, a, n);
            float sr[3], sn[3];
            ref->vec_dot(n, sr, w, stride, a, nrc);
            neon->vec_dot(n, sn, w, stride, a, nrc);
            runs++;
            if (memcmp(sr, sn, sizeof(sr)) != 0 && bad++ < 3)
                printf("  %s dot n %lld: ref %.9g %.9g %.9g neon %.9g %.9g %.9g\n", ref->name, (long long)n, sr[0], sr[1],
                       sr[2], sn[0], sn[1], sn[2]);
            float s1;
            neon->vec_dot(n, &s1, w + stride, stride, a, 1);
            bad += memcmp(&s1, &sn[1], 4) != 0; /* a row's result does not depend on nrc */
        }
    }
    KQ_CHECK(bad == 0, "%s vec_dot: NEON differs from the reference in %d of %d cases", ref->name, bad, runs);
    free(w), free(a), free(tmp);
}

int main(void) {
    test_native();
    for (size_t t = 0; t < sizeof(kq_q32_types) / sizeof(kq_q32_types[0]); t++) {
        test_q32_type(kq_q32_types[t]);
        test_golden(kq_q32_types[t]);
    }
    test_q8_edges(KQ_TYPE_Q8_0);
    test_q8_edges(KQ_TYPE_Q8_1);
    test_f16_all_halfs();
    test_f16_quantize();
    test_f32_rows();
    test_float_dots(KQ_TYPE_F32);
    test_float_dots(KQ_TYPE_F16);
    return kq_test_finish();
}

#else

int main(void) {
    KQ_SKIP("NEON tests need aarch64 (this is not an aarch64 build)");
    return kq_test_finish();
}

#endif
