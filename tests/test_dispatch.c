/* Dispatch: implementation names, run-time choice, and that "native" / "fallback" (what
 * `kq types --json` reports) tells the truth about which code runs. */
#include <string.h>

#include "kq_dispatch.h"
#include "kq_test.h"

static int kq_fn_is_ref(const kq_type_traits *a, const kq_type_traits *r, kq_fn fn) {
    if (fn == KQ_FN_QUANTIZE) return a->quantize_row == r->quantize_row;
    if (fn == KQ_FN_DEQUANTIZE) return a->dequantize_row == r->dequantize_row;
    return a->vec_dot == r->vec_dot;
}

static int kq_fn_present(const kq_type_traits *a, kq_fn fn) {
    if (fn == KQ_FN_QUANTIZE) return a->quantize_row != NULL;
    if (fn == KQ_FN_DEQUANTIZE) return a->dequantize_row != NULL;
    return a->vec_dot != NULL;
}

/* native <=> the function pointer is not the reference's; "none" <=> no function at all */
static void test_native_is_truthful(void) {
    for (int i = 0; i < KQ_IMPL_COUNT; i++) {
        if (!kq_impl_available((kq_impl)i, NULL)) continue;
        for (size_t k = 0; k < kq_ref_traits_count(); k++) {
            const kq_type_traits *r = kq_ref_traits_at(k);
            const kq_type_traits *a = kq_traits((kq_impl)i, r->type);
            KQ_CHECK(a != NULL, "%s: no row for %s", kq_impl_name((kq_impl)i), r->name);
            if (!a) continue;
            KQ_CHECK(a->block_bytes == r->block_bytes && a->block_elems == r->block_elems &&
                         a->vec_dot_type == r->vec_dot_type && a->row_overhead == r->row_overhead,
                     "%s %s: geometry differs from the reference", kq_impl_name((kq_impl)i), r->name);
            for (int f = 0; f < 3; f++) {
                const int n = kq_fn_native((kq_impl)i, r->type, (kq_fn)f);
                if (!kq_fn_present(r, (kq_fn)f)) {
                    KQ_CHECK(n == -1 && !kq_fn_present(a, (kq_fn)f), "%s %s fn %d: reference has none", kq_impl_name((kq_impl)i), r->name, f);
                    continue;
                }
                if (i == KQ_IMPL_REFERENCE)
                    KQ_CHECK(n == 1 && kq_fn_is_ref(a, r, (kq_fn)f), "reference %s fn %d", r->name, f);
                else
                    KQ_CHECK(n == !kq_fn_is_ref(a, r, (kq_fn)f), "%s %s fn %d: native=%d but pointer %s the reference's",
                             kq_impl_name((kq_impl)i), r->name, f, n, kq_fn_is_ref(a, r, (kq_fn)f) ? "is" : "is not");
            }
        }
    }
}

static void test_parse(void) {
    kq_impl impl;
    char err[256];
    KQ_CHECK(kq_impl_parse("reference", &impl, err, sizeof(err)) == 0 && impl == KQ_IMPL_REFERENCE, "parse reference");
    KQ_CHECK(kq_impl_parse("REFERENCE", &impl, err, sizeof(err)) == 0 && impl == KQ_IMPL_REFERENCE, "parse case");
    KQ_CHECK(kq_impl_parse("auto", &impl, err, sizeof(err)) == 0 && impl == kq_impl_best(), "auto = best");
    KQ_CHECK(kq_impl_parse("bogus", &impl, err, sizeof(err)) == -1 && strstr(err, "bogus"), "bogus rejected: %s", err);
    KQ_CHECK(kq_traits(KQ_IMPL_REFERENCE, (kq_type)5) == NULL, "unknown type id has no row");
#if defined(__aarch64__)
    const kq_cpu_features c = kq_cpu();
    KQ_CHECK(c.asimd, "aarch64 has ASIMD");
    KQ_CHECK(kq_impl_available(KQ_IMPL_NEON_PLAIN, NULL), "neon-plain runs on every aarch64 CPU");
    KQ_CHECK(kq_impl_available(KQ_IMPL_NEON_DOTPROD, NULL) == c.asimddp, "dotprod available iff HWCAP asimddp");
    KQ_CHECK(kq_impl_best() == (c.asimddp ? KQ_IMPL_NEON_DOTPROD : KQ_IMPL_NEON_PLAIN), "auto follows HWCAP");
    KQ_CHECK(kq_impl_parse("neon", &impl, err, sizeof(err)) == 0 && impl == kq_impl_best(), "neon = best NEON");
    if (!c.asimddp)
        KQ_CHECK(kq_impl_parse("neon-dotprod", &impl, err, sizeof(err)) == -1 && strstr(err, "dot-product"),
                 "neon-dotprod refused without asimddp: %s", err);
#else
    KQ_CHECK(kq_impl_parse("neon", &impl, err, sizeof(err)) == -1 && strstr(err, "unavailable"), "neon refused off aarch64");
    KQ_CHECK(kq_impl_best() == KQ_IMPL_REFERENCE, "auto is the reference off aarch64");
#endif
}

#if defined(__aarch64__)
static void kq_need(kq_impl impl, const char *name, kq_fn fn) {
    const kq_type_traits *t = kq_type_by_name(name);
    KQ_CHECK(t && kq_fn_native(impl, t->type, fn) == 1, "%s: %s fn %d must be native NEON (issue 8 list)",
             kq_impl_name(impl), name, fn);
}

/* The NEON set the foundation issue requires, so a kernel silently falling back is a failure. */
static void test_required_neon_set(void) {
    static const char *const quant[] = {"q8_0", "q8_1", "q8_K", "q4_0", "q4_1", "q5_0", "q5_1", "f16"};
    static const char *const dequant[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K",
                                          "q4_K", "q5_K", "q6_K", "f16"};
    static const char *const dot_int[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q5_K", "q6_K"};
    static const char *const dot_float[] = {"f32", "f16"};
    for (int l = KQ_IMPL_NEON_PLAIN; l <= KQ_IMPL_NEON_DOTPROD; l++) {
        const kq_impl impl = (kq_impl)l;
        if (!kq_impl_available(impl, NULL)) {
            KQ_SKIP("%s not available on this CPU", kq_impl_name(impl));
            continue;
        }
        for (size_t i = 0; i < sizeof(quant) / sizeof(quant[0]); i++) kq_need(impl, quant[i], KQ_FN_QUANTIZE);
        for (size_t i = 0; i < sizeof(dequant) / sizeof(dequant[0]); i++) kq_need(impl, dequant[i], KQ_FN_DEQUANTIZE);
        for (size_t i = 0; i < sizeof(dot_int) / sizeof(dot_int[0]); i++) kq_need(impl, dot_int[i], KQ_FN_VEC_DOT);
        for (size_t i = 0; i < sizeof(dot_float) / sizeof(dot_float[0]); i++) kq_need(impl, dot_float[i], KQ_FN_VEC_DOT);
        for (size_t k = 0; k < kq_ref_traits_count(); k++) {
            const kq_type_traits *t = kq_ref_traits_at(k);
            if (!t->intn_bits) continue;
            kq_need(impl, t->name, KQ_FN_DEQUANTIZE);
            if ((t->intn_bits == 4 || t->intn_bits == 8) && t->intn_group) kq_need(impl, t->name, KQ_FN_VEC_DOT);
        }
    }
    /* the SDOT layer has its own integer kernels, not only the plain ones */
    if (kq_impl_available(KQ_IMPL_NEON_DOTPROD, NULL)) {
        for (size_t i = 0; i < sizeof(dot_int) / sizeof(dot_int[0]); i++) {
            const kq_type_traits *t = kq_type_by_name(dot_int[i]);
            KQ_CHECK(kq_traits(KQ_IMPL_NEON_DOTPROD, t->type)->vec_dot != kq_traits(KQ_IMPL_NEON_PLAIN, t->type)->vec_dot,
                     "%s: dotprod vec_dot is the plain one", dot_int[i]);
        }
    }
}
#endif

int main(void) {
    test_parse();
    test_native_is_truthful();
#if defined(__aarch64__)
    test_required_neon_set();
#else
    KQ_SKIP("required NEON set: not an aarch64 build");
#endif
    return kq_test_finish();
}
