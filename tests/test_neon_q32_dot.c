/* Bit-exactness of the NEON vec_dots of the 32-element formats (optimized/neon/neon_q32_dot.c,
 * plain ARMv8-A; optimized/neon/neon_q32_dotprod.c, SDOT) against the scalar reference: memcmp of
 * the float results on random and extreme blocks, block counts around the 4- and 8-block unrolls,
 * and nrc = 1..4 rows at odd (misaligned) strides, each row also equal to its nrc = 1 result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kq_test.h"
#include "kq_types.h"

#if defined(__aarch64__)
#include "fp16.h"
#include "kq_dispatch.h"
#include "kq_neon.h"
#include "kq_ref.h"

extern const kq_override_list kq_neon_q32_dot_list; /* neon_q32_dot.c (not yet in kq_neon.h) */

typedef struct {
    kq_type type;
    const char *name;
    size_t wbytes, abytes;
    int asym; /* activation q8_1 */
    kq_vec_dot_fn ref;
} kq_case;

static const kq_case kq_cases[] = {
    {KQ_TYPE_Q4_0, "q4_0", sizeof(kq_block_q4_0), sizeof(kq_block_q8_0), 0, kq_vec_dot_q4_0_q8_0_ref},
    {KQ_TYPE_Q4_1, "q4_1", sizeof(kq_block_q4_1), sizeof(kq_block_q8_1), 1, kq_vec_dot_q4_1_q8_1_ref},
    {KQ_TYPE_Q5_0, "q5_0", sizeof(kq_block_q5_0), sizeof(kq_block_q8_0), 0, kq_vec_dot_q5_0_q8_0_ref},
    {KQ_TYPE_Q5_1, "q5_1", sizeof(kq_block_q5_1), sizeof(kq_block_q8_1), 1, kq_vec_dot_q5_1_q8_1_ref},
    {KQ_TYPE_Q8_0, "q8_0", sizeof(kq_block_q8_0), sizeof(kq_block_q8_0), 0, kq_vec_dot_q8_0_q8_0_ref},
};

static uint64_t kq_rng = 0x9E3779B97F4A7C15ull;
static uint32_t kq_rand(void) {
    kq_rng ^= kq_rng << 13;
    kq_rng ^= kq_rng >> 7;
    kq_rng ^= kq_rng << 17;
    return (uint32_t)(kq_rng >> 16);
}

/* A finite fp16 scale: usually a normal around 1e-3..1, sometimes 0, subnormal, huge, negative. */
static uint16_t kq_rand_scale(void) {
    const uint32_t r = kq_rand() % 16;
    uint16_t h;
    if (r == 0) h = 0;
    else if (r == 1) h = (uint16_t)(1 + kq_rand() % 0x3ff);       /* subnormal */
    else if (r == 2) h = 0x7bff;                                    /* 65504 */
    else h = (uint16_t)(0x1000 + kq_rand() % 0x2c00);               /* ~6e-5 .. ~2 */
    if (kq_rand() & 1) h |= 0x8000;
    return h;
}

enum { KQ_MODE_RANDOM, KQ_MODE_ZERO, KQ_MODE_CONST, KQ_MODE_MAX, KQ_MODE_MIN, KQ_MODE_OUTLIER, KQ_MODE_COUNT };
static const char *const kq_mode_names[] = {"random", "zeros", "constant", "+max", "-max", "outliers"};

/* Fills blocks of a weight or activation row: the fp16 fields (d, m or s) at their offsets get
 * scales, the rest (qh, qs) gets bytes by mode. */
static void kq_fill(uint8_t *p, size_t nb, size_t bytes, int nhalves, int mode, uint8_t cbyte) {
    for (size_t b = 0; b < nb; b++) {
        uint8_t *blk = p + b * bytes;
        for (size_t i = 0; i < bytes; i++) {
            uint8_t v;
            switch (mode) {
            case KQ_MODE_ZERO: v = 0; break;
            case KQ_MODE_CONST: v = cbyte; break;
            case KQ_MODE_MAX: v = 0x7f; break; /* q8 +127; nibbles 15 / 7; qh bits mixed */
            case KQ_MODE_MIN: v = 0x80; break; /* q8 -128; nibbles 0 / 8 */
            case KQ_MODE_OUTLIER: v = (kq_rand() % 13 == 0) ? (uint8_t)((kq_rand() & 1) ? 0x80 : 0x7f) : (uint8_t)(kq_rand() % 5); break;
            default: v = (uint8_t)kq_rand(); break;
            }
            blk[i] = v;
        }
        for (int h = 0; h < nhalves; h++) {
            uint16_t s = mode == KQ_MODE_ZERO ? 0 : kq_rand_scale();
            if (mode == KQ_MODE_MAX || mode == KQ_MODE_MIN) s = (h == 0) ? 0x7bff : 0xfbff;
            memcpy(blk + 2 * h, &s, 2);
        }
    }
}

static int kq_halves_w(const kq_case *c) { return c->asym ? 2 : 1; }

/* One comparison: nrc rows at stride, against the reference (same nrc and row by row at nrc 1). */
static void kq_check(const char *layer, const kq_case *c, kq_vec_dot_fn fn, size_t nb, int nrc, size_t pad, int mode) {
    const size_t row = nb * c->wbytes, stride = row + pad;
    uint8_t *wbuf = malloc(stride * (size_t)nrc + 1);
    uint8_t *abuf = malloc(nb * c->abytes + 1);
    uint8_t *w = wbuf + (pad & 1), *a = abuf + (pad & 1); /* odd pads also misalign the rows */
    const uint8_t cbyte = (uint8_t)kq_rand();
    for (int r = 0; r < nrc; r++) kq_fill(w + (size_t)r * stride, nb, c->wbytes, kq_halves_w(c), mode, cbyte);
    kq_fill(a, nb, c->abytes, c->asym ? 2 : 1, mode == KQ_MODE_OUTLIER ? KQ_MODE_RANDOM : mode, cbyte);
    if (mode == KQ_MODE_OUTLIER) kq_fill(a, nb, c->abytes, c->asym ? 2 : 1, KQ_MODE_OUTLIER, cbyte);
    const int64_t n = (int64_t)nb * KQ_QK;
    float got[4], want[4], one[4];
    memset(got, 0xAB, sizeof(got));
    fn(n, got, w, stride, a, nrc);
    c->ref(n, want, w, stride, a, nrc);
    for (int r = 0; r < nrc; r++) {
        float single;
        fn(n, &single, w + (size_t)r * stride, stride, a, 1);
        one[r] = single;
    }
    for (int r = 0; r < nrc; r++) {
        KQ_CHECK(memcmp(&got[r], &want[r], sizeof(float)) == 0, "%s %s %s nb=%zu nrc=%d pad=%zu row %d: got %.9g (0x%08x) want %.9g (0x%08x)",
                 layer, c->name, kq_mode_names[mode], nb, nrc, pad, r, (double)got[r], kq_f32_bits(got[r]),
                 (double)want[r], kq_f32_bits(want[r]));
        KQ_CHECK(memcmp(&one[r], &got[r], sizeof(float)) == 0, "%s %s %s nb=%zu nrc=%d row %d depends on nrc: %.9g vs %.9g",
                 layer, c->name, kq_mode_names[mode], nb, nrc, r, (double)one[r], (double)got[r]);
    }
    free(wbuf);
    free(abuf);
}

static kq_vec_dot_fn kq_find(const kq_override_list *list, kq_type t) {
    for (size_t i = 0; i < list->count; i++)
        if (list->rows[i].type == t) return list->rows[i].vec_dot;
    return NULL;
}

static void kq_run_layer(const char *layer, const kq_override_list *list) {
    static const size_t nbs[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 31, 127, 128};
    for (size_t ci = 0; ci < sizeof(kq_cases) / sizeof(kq_cases[0]); ci++) {
        const kq_case *c = &kq_cases[ci];
        kq_vec_dot_fn fn = kq_find(list, c->type);
        KQ_CHECK(fn != NULL, "%s has no vec_dot for %s", layer, c->name);
        if (!fn) continue;
        const int before = kq_test_failed;
        for (int mode = 0; mode < KQ_MODE_COUNT; mode++)
            for (size_t i = 0; i < sizeof(nbs) / sizeof(nbs[0]); i++)
                for (int nrc = 1; nrc <= 4; nrc++) {
                    const size_t pad = (size_t)(nrc == 1 ? 0 : 2 * nrc - 1); /* odd strides */
                    kq_check(layer, c, fn, nbs[i], nrc, pad, mode);
                }
        /* many random rows of the common sizes */
        for (int rep = 0; rep < 40; rep++) kq_check(layer, c, fn, 1 + kq_rand() % 40, 1 + (int)(kq_rand() % 4), kq_rand() % 7, KQ_MODE_RANDOM);
        if (kq_test_failed == before) printf("ok %s %s\n", layer, c->name);
    }
}

int main(void) {
    kq_run_layer("neon-plain", &kq_neon_q32_dot_list);
    if (kq_cpu().asimddp)
        kq_run_layer("neon-dotprod", &kq_neon_q32_dotprod_list);
    else
        KQ_SKIP("neon-dotprod q32 vec_dot: this CPU has no dot-product instructions (HWCAP asimddp)");
    return kq_test_finish();
}

#else

int main(void) {
    KQ_SKIP("NEON tests need aarch64 (neon_q32_dot.c, neon_q32_dotprod.c are not built here)");
    return kq_test_finish();
}

#endif
