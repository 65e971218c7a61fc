/* Tests of the NEON K-quant kernels (optimized/neon/neon_k.c and neon_k_dotprod.c), bit for bit
 * (memcmp) against the scalar reference (reference/kquants.c):
 *  1. the kernels are really installed (the dispatch table does not silently fall back);
 *  2. quantize_row_q8_K: bytes == reference on normal, heavy-tailed/outlier, zero, constant, tiny,
 *     denormal, huge rows, +-max ties, n = 1..16 super-blocks;
 *  3. dequantize_row q2_K..q6_K: floats == reference on blocks made by the reference quantizers and on
 *     random bytes (every scale/code bit pattern);
 *  4. vec_dot q4_K/q5_K/q6_K . q8_K (plain NEON, and SDOT when the CPU has it): s == reference for
 *     nrc 1..4 with padded row strides, each row also == its nrc = 1 result;
 *  5. golden: NEON q8_K bytes and NEON dequantized floats == ggml's files in ../shared/golden/.
 * On a non-aarch64 host everything is skipped: the NEON layers are not in the binary. */
#include "kq_dispatch.h"
#include "kq_ref.h"
#include "kq_test.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__)
#include <arm_neon.h>

#include "fp16.h"

#define QK 256
#define MAX_NB 16

/* ---- deterministic inputs ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(void) { return (double)(rng_u64() >> 11) * (1.0 / 9007199254740992.0); }

static float rng_normal(void) {
    const double u = rng_unit() + 1e-300, v = rng_unit();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

typedef enum {
    IN_NORMAL, IN_HEAVY, IN_ZERO, IN_CONST, IN_TINY, IN_DENORMAL, IN_HUGE, IN_TIES, IN_HALVES, IN_MIXED, IN_COUNT
} input_kind;

static const char *const IN_NAMES[IN_COUNT] = {"normal", "heavy-tailed", "zeros", "constant", "tiny",
                                               "denormal", "huge", "+-max ties", "exact .5 ties",
                                               "mixed blocks"};

static void make_input(input_kind kind, float *x, int64_t n, int seed) {
    for (int64_t i = 0; i < n; i++) {
        float v;
        switch (kind) {
        case IN_NORMAL: v = rng_normal(); break;
        case IN_HEAVY: /* Student-t-like tails plus outlier channels */
            v = rng_normal() / (float)(0.05 + rng_unit());
            if (i % 97 == 13 || i % 61 == 7) v *= 50.0f;
            break;
        case IN_ZERO: v = (i + seed) % 2 ? 0.0f : -0.0f; break;
        case IN_CONST: v = seed % 2 ? -0.3719f : 2.5f; break;
        case IN_TINY: v = rng_normal() * (seed % 2 ? 1e-30f : 1e-37f); break; /* 1e-37: q8_K scale is Inf */
        case IN_DENORMAL: v = rng_normal() * 1e-40f; break;
        case IN_HUGE: v = rng_normal() * 1e37f; if (i % 50 == 3) v = (i % 100 == 3 ? -1 : 1) * 3.0e38f; break;
        case IN_TIES: /* +m and -m both present: the first one decides the sign of the scale */
            v = rng_normal();
            if (i % QK == (seed * 37) % QK) v = ((i / QK + seed) % 2 ? 7.0f : -7.0f);
            if (i % QK == (seed * 37 + 101) % QK) v = ((i / QK + seed) % 2 ? -7.0f : 7.0f);
            break;
        case IN_HALVES: /* max 127 makes the q8_K scale -+1: every k + 0.5 is a rounding tie */
            v = (float)((int)(rng_u64() % 254) - 127) + 0.5f;
            if (i % QK == (seed * 11) % QK) v = seed % 2 ? -127.0f : 127.0f;
            break;
        default: { /* every super-block a different kind */
            const input_kind k = (input_kind)((i / QK + seed) % IN_MIXED);
            float one;
            make_input(k, &one, 1, seed);
            v = k == IN_ZERO ? 0.0f : one;
        }
        }
        x[i] = v;
    }
}

static const int NBS[] = {1, 2, 3, 5, 7, 9, 13, 16};
#define N_NBS (sizeof NBS / sizeof NBS[0])

/* ---- the kernels under test ------------------------------------------------------------------ */

typedef struct {
    kq_type t;
    const char *name;
    size_t block_bytes;
    kq_quantize_row_fn quantize_ref;
    kq_dequantize_row_fn dequantize_ref;
    kq_vec_dot_fn vec_dot_ref; /* NULL: no NEON vec_dot to test */
} ktype;

static const ktype TYPES[] = {
    {KQ_TYPE_Q2_K, "q2_K", sizeof(kq_block_q2_K), kq_quantize_row_q2_K_ref, kq_dequantize_row_q2_K_ref, NULL},
    {KQ_TYPE_Q3_K, "q3_K", sizeof(kq_block_q3_K), kq_quantize_row_q3_K_ref, kq_dequantize_row_q3_K_ref, NULL},
    {KQ_TYPE_Q4_K, "q4_K", sizeof(kq_block_q4_K), kq_quantize_row_q4_K_ref, kq_dequantize_row_q4_K_ref, kq_vec_dot_q4_K_q8_K_ref},
    {KQ_TYPE_Q5_K, "q5_K", sizeof(kq_block_q5_K), kq_quantize_row_q5_K_ref, kq_dequantize_row_q5_K_ref, kq_vec_dot_q5_K_q8_K_ref},
    {KQ_TYPE_Q6_K, "q6_K", sizeof(kq_block_q6_K), kq_quantize_row_q6_K_ref, kq_dequantize_row_q6_K_ref, kq_vec_dot_q6_K_q8_K_ref},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static int have_dotprod;

/* 1. Every kernel of neon_k.c is in the neon-plain table, and SDOT dots replace them in neon-dotprod. */
static void test_installed(void) {
    KQ_CHECK(kq_fn_native(KQ_IMPL_NEON_PLAIN, KQ_TYPE_Q8_K, KQ_FN_QUANTIZE) == 1, "q8_K quantize not native");
    for (size_t i = 0; i < NTYPES; i++) {
        KQ_CHECK(kq_fn_native(KQ_IMPL_NEON_PLAIN, TYPES[i].t, KQ_FN_DEQUANTIZE) == 1, "%s dequantize not native",
                 TYPES[i].name);
        if (!TYPES[i].vec_dot_ref) continue;
        KQ_CHECK(kq_fn_native(KQ_IMPL_NEON_PLAIN, TYPES[i].t, KQ_FN_VEC_DOT) == 1, "%s vec_dot not native", TYPES[i].name);
        const kq_type_traits *p = kq_traits(KQ_IMPL_NEON_PLAIN, TYPES[i].t);
        const kq_type_traits *d = kq_traits(KQ_IMPL_NEON_DOTPROD, TYPES[i].t);
        KQ_CHECK(p && d && p->vec_dot != TYPES[i].vec_dot_ref && d->vec_dot != p->vec_dot,
                 "%s: neon-dotprod has no SDOT vec_dot of its own", TYPES[i].name);
    }
}

/* FCVTL (used by the kernels for d and dmin) == the reference's software fp16 -> f32, all 65536. */
static void test_f16_widening(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float hw = vget_lane_f32(vget_low_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16((uint16_t)h)))), 0);
        if (kq_f32_bits(hw) != kq_f32_bits(kq_f16_to_f32((uint16_t)h)) && bad++ < 3)
            printf("  f16 0x%04x: FCVTL 0x%08x, reference 0x%08x\n", h, kq_f32_bits(hw), kq_f32_bits(kq_f16_to_f32((uint16_t)h)));
    }
    KQ_CHECK(bad == 0, "FCVTL differs from kq_f16_to_f32 for %d halves", bad);
}

/* 2. q8_K quantize. Output buffers start with different garbage so unwritten bytes show up. */
static void test_q8K_quantize(void) {
    const kq_quantize_row_fn neon = kq_traits(KQ_IMPL_NEON_PLAIN, KQ_TYPE_Q8_K)->quantize_row;
    static float x[MAX_NB * QK];
    static kq_block_q8_K yr[MAX_NB], yn[MAX_NB];
    for (int kind = 0; kind < IN_COUNT; kind++) {
        for (int seed = 0; seed < 4; seed++) {
            for (size_t s = 0; s < N_NBS; s++) {
                const int64_t n = (int64_t)NBS[s] * QK;
                make_input((input_kind)kind, x, n, seed);
                memset(yr, 0x5A, sizeof yr);
                memset(yn, 0xA5, sizeof yn);
                kq_quantize_row_q8_K_ref(x, yr, n);
                neon(x, yn, n);
                const int ok = memcmp(yr, yn, (size_t)NBS[s] * sizeof(kq_block_q8_K)) == 0;
                KQ_CHECK(ok, "q8_K quantize %s seed %d n %lld: NEON bytes differ", IN_NAMES[kind], seed, (long long)n);
            }
        }
    }
}

/* Random bytes for a weight row, with finite d/dmin so that dequantized values are comparable
 * numbers (NaN payloads are not what this test is about). */
static void random_blocks(const ktype *t, uint8_t *w, int nb) {
    for (size_t i = 0; i < (size_t)nb * t->block_bytes; i++) w[i] = (uint8_t)rng_u64();
    for (int b = 0; b < nb; b++) {
        uint8_t *blk = w + (size_t)b * t->block_bytes;
        kq_half d = kq_f32_to_f16(rng_normal() * 0.01f), m = kq_f32_to_f16(rng_normal() * 0.01f);
        switch (t->t) {
        case KQ_TYPE_Q2_K: memcpy(&((kq_block_q2_K *)blk)->d, &d, 2); memcpy(&((kq_block_q2_K *)blk)->dmin, &m, 2); break;
        case KQ_TYPE_Q3_K: memcpy(&((kq_block_q3_K *)blk)->d, &d, 2); break;
        case KQ_TYPE_Q4_K: memcpy(&((kq_block_q4_K *)blk)->d, &d, 2); memcpy(&((kq_block_q4_K *)blk)->dmin, &m, 2); break;
        case KQ_TYPE_Q5_K: memcpy(&((kq_block_q5_K *)blk)->d, &d, 2); memcpy(&((kq_block_q5_K *)blk)->dmin, &m, 2); break;
        default: memcpy(&((kq_block_q6_K *)blk)->d, &d, 2); break;
        }
    }
}

/* 3. dequantize. */
static void test_dequantize(void) {
    static float x[MAX_NB * QK], yr[MAX_NB * QK], yn[MAX_NB * QK];
    static uint8_t w[MAX_NB * sizeof(kq_block_q8_K)];
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const ktype *t = &TYPES[ti];
        const kq_dequantize_row_fn neon = kq_traits(KQ_IMPL_NEON_PLAIN, t->t)->dequantize_row;
        int fails = 0, runs = 0;
        for (int kind = 0; kind <= IN_COUNT; kind++) { /* IN_COUNT: random bytes */
            for (size_t s = 0; s < N_NBS; s += (kind == IN_COUNT ? 1 : 2)) {
                const int nb = NBS[s];
                const int64_t n = (int64_t)nb * QK;
                if (kind == IN_COUNT) {
                    random_blocks(t, w, nb);
                } else {
                    make_input((input_kind)kind, x, n, (int)s);
                    t->quantize_ref(x, w, n);
                }
                memset(yr, 0x5A, sizeof yr);
                memset(yn, 0xA5, sizeof yn);
                t->dequantize_ref(w, yr, n);
                neon(w, yn, n);
                runs++;
                if (memcmp(yr, yn, (size_t)n * sizeof(float)) != 0 && fails++ < 3) {
                    int64_t e = 0;
                    while (e < n && kq_f32_bits(yr[e]) == kq_f32_bits(yn[e])) e++;
                    printf("  %s dequantize (%s, n %lld): element %lld ref 0x%08x neon 0x%08x\n", t->name,
                           kind == IN_COUNT ? "random bytes" : IN_NAMES[kind], (long long)n, (long long)e,
                           kq_f32_bits(yr[e]), kq_f32_bits(yn[e]));
                }
            }
        }
        KQ_CHECK(fails == 0, "%s dequantize: %d of %d rows differ from the reference", t->name, fails, runs);
    }
}

/* Random q8_K activations: any int8 code (-128 too), any bsums (only q4_K/q5_K read them, as the
 * reference does), a finite d. */
static void random_q8K(kq_block_q8_K *a, int nb) {
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < QK; i++) a[b].qs[i] = (int8_t)rng_u64();
        for (int i = 0; i < QK / 16; i++) a[b].bsums[i] = (int16_t)rng_u64();
        a[b].d = rng_normal() * 1e-2f;
    }
}

/* 4. vec_dot of one impl against the reference: nrc rows (stride = row bytes + pad). */
static int check_vec_dot(const ktype *t, kq_vec_dot_fn fn, int nb, const uint8_t *w, size_t stride,
                         const kq_block_q8_K *a, int nrc) {
    const int64_t n = (int64_t)nb * QK;
    float sr[4], sn[4], s1;
    memset(sr, 0x5A, sizeof sr);
    memset(sn, 0xA5, sizeof sn);
    t->vec_dot_ref(n, sr, w, stride, a, nrc);
    fn(n, sn, w, stride, a, nrc);
    int ok = memcmp(sr, sn, (size_t)nrc * sizeof(float)) == 0;
    for (int r = 0; r < nrc; r++) { /* a row's result does not depend on nrc */
        fn(n, &s1, w + (size_t)r * stride, stride, a, 1);
        ok &= kq_f32_bits(s1) == kq_f32_bits(sr[r]);
    }
    return ok;
}

static void test_vec_dot(void) {
    static float x[MAX_NB * QK];
    static kq_block_q8_K a[MAX_NB];
    static uint8_t w[4 * (MAX_NB * sizeof(kq_block_q6_K) + 68)];
    static const size_t pads[] = {0, 4, 68};
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const ktype *t = &TYPES[ti];
        if (!t->vec_dot_ref) continue;
        const kq_vec_dot_fn plain = kq_traits(KQ_IMPL_NEON_PLAIN, t->t)->vec_dot;
        const kq_vec_dot_fn sdot = kq_traits(KQ_IMPL_NEON_DOTPROD, t->t)->vec_dot;
        int runs = 0, fail_plain = 0, fail_sdot = 0;
        for (int kind = 0; kind <= IN_COUNT; kind++) { /* IN_COUNT: random weight and activation bytes */
            for (size_t s = 0; s < N_NBS; s++) {
                const int nb = NBS[s], nrc = 1 + (int)((s + (size_t)kind) % 4);
                const int64_t n = (int64_t)nb * QK;
                const size_t row = (size_t)nb * t->block_bytes, stride = row + pads[(s + (size_t)kind) % 3];
                for (int r = 0; r < nrc; r++) {
                    if (kind == IN_COUNT) {
                        random_blocks(t, w + (size_t)r * stride, nb);
                    } else {
                        make_input((input_kind)kind, x, n, r + 3 * (int)s);
                        t->quantize_ref(x, w + (size_t)r * stride, n);
                    }
                }
                if (kind == IN_COUNT) {
                    random_q8K(a, nb);
                } else { /* activations: the same kind of data, quantized by the reference */
                    make_input((input_kind)((kind + (int)s) % IN_COUNT), x, n, 7 + (int)s);
                    kq_quantize_row_q8_K_ref(x, a, n);
                }
                runs++;
                if (!check_vec_dot(t, plain, nb, w, stride, a, nrc) && fail_plain++ < 3)
                    printf("  %s vec_dot neon-plain differs (%s, nb %d, nrc %d)\n", t->name,
                           kind == IN_COUNT ? "random bytes" : IN_NAMES[kind], nb, nrc);
                if (have_dotprod && !check_vec_dot(t, sdot, nb, w, stride, a, nrc) && fail_sdot++ < 3)
                    printf("  %s vec_dot neon-dotprod differs (%s, nb %d, nrc %d)\n", t->name,
                           kind == IN_COUNT ? "random bytes" : IN_NAMES[kind], nb, nrc);
            }
        }
        KQ_CHECK(fail_plain == 0, "%s vec_dot neon-plain: %d of %d cases differ from the reference", t->name, fail_plain, runs);
        if (have_dotprod)
            KQ_CHECK(fail_sdot == 0, "%s vec_dot neon-dotprod: %d of %d cases differ from the reference", t->name, fail_sdot, runs);
        else
            KQ_SKIP("%s vec_dot neon-dotprod: this CPU has no dot-product instructions (HWCAP asimddp)", t->name);
    }
}

/* 5. ggml's golden files, independent of the reference. */
static void *read_golden(const char *name, size_t want) {
    char path[512];
    size_t len;
    kq_test_shared_path(name, path, sizeof path);
    void *p = kq_test_read_file(path, &len);
    if (!p) {
        KQ_SKIP("golden: %s not found", path);
        return NULL;
    }
    if (len != want) {
        KQ_CHECK(0, "golden: %s has %zu bytes, expected %zu", path, len, want);
        free(p);
        return NULL;
    }
    return p;
}

static void test_golden(void) {
    enum { ROWS = 48, COLS = 4096 };
    float *in = read_golden("golden/input.f32", sizeof(float) * ROWS * COLS);
    if (in) {
        const size_t rb = COLS / QK * sizeof(kq_block_q8_K);
        uint8_t *want = read_golden("golden/q8_K.bin", rb * ROWS);
        if (want) {
            uint8_t *got = malloc(rb);
            int bad = 0;
            for (int r = 0; r < ROWS; r++) {
                kq_traits(KQ_IMPL_NEON_PLAIN, KQ_TYPE_Q8_K)->quantize_row(in + (size_t)r * COLS, got, COLS);
                if (memcmp(got, want + r * rb, rb) != 0 && bad++ < 3) printf("  golden q8_K: row %d differs\n", r);
            }
            KQ_CHECK(bad == 0, "golden q8_K: %d of %d rows of NEON bytes differ from ggml's", bad, ROWS);
            free(got);
            free(want);
        }
        free(in);
    }
    float *got = malloc(sizeof(float) * COLS);
    for (size_t ti = 0; ti < NTYPES; ti++) {
        const ktype *t = &TYPES[ti];
        char bin[64], deq[64];
        snprintf(bin, sizeof bin, "golden/%s.bin", t->name);
        snprintf(deq, sizeof deq, "golden/%s.deq.f32", t->name);
        const size_t rb = COLS / QK * t->block_bytes;
        uint8_t *q = read_golden(bin, rb * ROWS);
        float *want = q ? read_golden(deq, sizeof(float) * ROWS * COLS) : NULL;
        if (q && want) {
            int bad = 0;
            for (int r = 0; r < ROWS; r++) {
                kq_traits(KQ_IMPL_NEON_PLAIN, t->t)->dequantize_row(q + r * rb, got, COLS);
                if (memcmp(got, want + (size_t)r * COLS, sizeof(float) * COLS) != 0 && bad++ < 3)
                    printf("  golden %s: dequantized row %d differs\n", t->name, r);
            }
            KQ_CHECK(bad == 0, "golden %s: %d of %d NEON-dequantized rows differ from ggml's", t->name, bad, ROWS);
        }
        free(q);
        free(want);
    }
    free(got);
}

int main(void) {
    have_dotprod = kq_cpu().asimddp;
    printf("test_neon_k: CPU %s dot-product instructions\n", have_dotprod ? "has" : "lacks");
    test_installed();
    test_f16_widening();
    test_q8K_quantize();
    test_dequantize();
    test_vec_dot();
    test_golden();
    return kq_test_finish();
}

#else

int main(void) {
    KQ_SKIP("NEON tests need aarch64 (the NEON K-quant kernels are not in this binary)");
    return kq_test_finish();
}

#endif
