/* NEON INT-N dequantize and vec_dot (plain and SDOT): bit-identical to the reference, for all 32
 * INT-N types, on rows quantized by the reference and on arbitrary bytes, many lengths, nrc > 1.
 * Skips off aarch64; the SDOT layer only when the CPU has asimddp. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "kq_dispatch.h"
#include "kq_intn.h"
#include "kq_ref.h"
#include "kq_test.h"

#if defined(__aarch64__)

static uint64_t kq_rng = 0x243f6a8885a308d3ull;
static uint32_t kq_rand32(void) {
    kq_rng ^= kq_rng << 13, kq_rng ^= kq_rng >> 7, kq_rng ^= kq_rng << 17;
    return (uint32_t)(kq_rng >> 16);
}
static float kq_uniform(void) { return ((float)(kq_rand32() >> 8) + 0.5f) / 16777216.0f; }
static float kq_normal(void) {
    return (float)(sqrt(-2.0 * log((double)kq_uniform())) * cos(6.283185307179586 * (double)kq_uniform()));
}

static void kq_fill(float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        float v = kq_normal();
        if (kind == 1) v *= (i % 61 == 7) ? 50.0f : 0.02f; /* outlier channels */
        if (kind == 2) v = (i / 32) % 3 == 0 ? 0.0f : v;  /* zero blocks */
        if (kind == 3) v = (float)(i % 5) - 2.0f;         /* constants and exact levels */
        x[i] = v;
    }
}

/* Random bytes with finite headers (d, m) at every group (or the row) header. */
static void kq_random_row(const kq_type_traits *t, uint8_t *row, int64_t n, float dscale) {
    const size_t bytes = kq_row_size(t->type, n);
    for (size_t k = 0; k < bytes; k++) row[k] = (uint8_t)kq_rand32();
    const int64_t g = t->intn_group ? t->intn_group : n;
    for (int64_t i = 0; i < n; i += g) {
        uint8_t *h = row + kq_intn_header_offset(t, i);
        kq_intn_write_half(h, kq_f32_to_f16(kq_normal() * dscale));
        if (t->intn_asym) kq_intn_write_half(h + 2, kq_f32_to_f16(kq_normal() * dscale * 8.0f));
    }
}

static const int kq_counts[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 31};
#define KQ_NCOUNTS (sizeof(kq_counts) / sizeof(kq_counts[0]))

static void test_dequantize(const kq_type_traits *ref) {
    const kq_type_traits *neon = kq_traits(KQ_IMPL_NEON_PLAIN, ref->type);
    KQ_CHECK(kq_fn_native(KQ_IMPL_NEON_PLAIN, ref->type, KQ_FN_DEQUANTIZE) == 1, "%s: NEON dequantize missing", ref->name);
    const int64_t unit = ref->intn_group ? ref->intn_group : 32, nmax = 31 * 128;
    float *x = malloc((size_t)nmax * 4), *a = malloc((size_t)nmax * 4), *b = malloc((size_t)nmax * 4);
    uint8_t *y = malloc(kq_row_size(ref->type, nmax));
    int bad = 0, runs = 0;
    for (size_t c = 0; c < KQ_NCOUNTS; c++) {
        const int64_t n = unit * kq_counts[c];
        for (int kind = 0; kind < 5; kind++) {
            if (kind < 4) {
                kq_fill(x, n, kind);
                kq_quantize_row_intn_ref(ref, x, y, n, c < 3 ? KQ_SCALE_SEARCH : KQ_SCALE_MAX);
            } else {
                kq_random_row(ref, y, n, 0.01f);
            }
            memset(a, 0xa5, (size_t)n * 4), memset(b, 0x5a, (size_t)n * 4);
            ref->dequantize_row(y, a, n);
            neon->dequantize_row(y, b, n);
            runs++;
            if (memcmp(a, b, (size_t)n * 4) != 0 && bad++ < 2) {
                int64_t k = 0;
                while (memcmp(&a[k], &b[k], 4) == 0) k++;
                printf("  %s dequantize n %lld kind %d: element %lld ref %.9g neon %.9g\n", ref->name, (long long)n, kind,
                       (long long)k, a[k], b[k]);
            }
        }
    }
    KQ_CHECK(bad == 0, "%s: NEON dequantize differs from the reference in %d of %d rows", ref->name, bad, runs);
    free(x), free(a), free(b), free(y);
}

static void test_vec_dot(const kq_type_traits *ref, kq_impl impl) {
    const kq_type_traits *opt = kq_traits(impl, ref->type);
    const kq_type_traits *act = kq_ref_traits(ref->vec_dot_type);
    KQ_CHECK(kq_fn_native(impl, ref->type, KQ_FN_VEC_DOT) == 1, "%s: %s vec_dot missing", ref->name, kq_impl_name(impl));
    const int64_t unit = ref->intn_group ? ref->intn_group : 32, nmax = 31 * 128;
    const int nrc = 3;
    const size_t stride = kq_row_size(ref->type, nmax) + 16;
    uint8_t *w = malloc(stride * nrc), *qa = malloc(kq_row_size(act->type, nmax));
    float *x = malloc((size_t)nmax * 4);
    int bad = 0, runs = 0;
    for (size_t c = 0; c < KQ_NCOUNTS; c++) {
        const int64_t n = unit * kq_counts[c];
        for (int kind = 0; kind < 4; kind++) {
            for (int r = 0; r < nrc; r++) {
                if (kind == 3) {
                    kq_random_row(ref, w + (size_t)r * stride, n, 0.01f);
                } else {
                    kq_fill(x, n, kind);
                    kq_quantize_row_intn_ref(ref, x, w + (size_t)r * stride, n, KQ_SCALE_MAX);
                }
            }
            kq_fill(x, n, kind == 3 ? 0 : kind);
            act->quantize_row(x, qa, n);
            float sr[3], so[3], s1;
            ref->vec_dot(n, sr, w, stride, qa, nrc);
            opt->vec_dot(n, so, w, stride, qa, nrc);
            opt->vec_dot(n, &s1, w + 2 * stride, stride, qa, 1);
            runs++;
            if ((memcmp(sr, so, sizeof(sr)) != 0 || memcmp(&s1, &so[2], 4) != 0) && bad++ < 2)
                printf("  %s %s vec_dot n %lld kind %d: ref %.9g %.9g %.9g got %.9g %.9g %.9g (nrc 1: %.9g)\n", ref->name,
                       kq_impl_name(impl), (long long)n, kind, sr[0], sr[1], sr[2], so[0], so[1], so[2], s1);
        }
    }
    KQ_CHECK(bad == 0, "%s: %s vec_dot differs from the reference in %d of %d cases", ref->name, kq_impl_name(impl), bad,
             runs);
    free(w), free(qa), free(x);
}

int main(void) {
    const size_t nt = kq_intn_traits_count();
    KQ_CHECK(nt == 32, "expected 32 INT-N types, the reference has %zu", nt);
    const int dotprod = kq_cpu().asimddp;
    for (size_t i = 0; i < nt; i++) {
        const kq_type_traits *ref = kq_intn_traits_at(i);
        test_dequantize(ref);
        test_vec_dot(ref, KQ_IMPL_NEON_PLAIN);
        if (dotprod) test_vec_dot(ref, KQ_IMPL_NEON_DOTPROD);
    }
    if (!dotprod) KQ_SKIP("INT-N SDOT vec_dot: this CPU has no asimddp");
    return kq_test_finish();
}

#else

int main(void) {
    KQ_SKIP("NEON tests need aarch64 (this is not an aarch64 build)");
    return kq_test_finish();
}

#endif
