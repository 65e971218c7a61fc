/* kq: builds one traits table per implementation from the reference table and the override
 * lists of the optimized layers, and picks an implementation from what the CPU says it has. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kq_dispatch.h"

#if defined(__aarch64__)
#include <sys/auxv.h>
#include "kq_neon.h"
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_FPHP
#define HWCAP_FPHP (1UL << 9)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1UL << 10)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

#define KQ_MAX_TYPES 128

static kq_type_traits kq_tables[KQ_IMPL_COUNT][KQ_MAX_TYPES];
/* which layer each function of each row came from */
static kq_impl kq_provider[KQ_IMPL_COUNT][KQ_MAX_TYPES][3];
static size_t kq_ntypes;
static int kq_layer_built[KQ_IMPL_COUNT]; /* the layer's code is in this binary */
static pthread_once_t kq_once = PTHREAD_ONCE_INIT;

static const char *const kq_impl_names[KQ_IMPL_COUNT] = {"reference", "neon-plain", "neon-dotprod"};

const char *kq_impl_name(kq_impl impl) {
    return (impl >= 0 && impl < KQ_IMPL_COUNT) ? kq_impl_names[impl] : "?";
}

kq_cpu_features kq_cpu(void) {
    kq_cpu_features f = {0, 0, 0, 0};
#if defined(__aarch64__)
    const unsigned long hw = getauxval(AT_HWCAP);
    f.asimd = (hw & HWCAP_ASIMD) != 0;
    f.asimddp = (hw & HWCAP_ASIMDDP) != 0;
    f.fphp = (hw & HWCAP_FPHP) != 0;
    f.asimdhp = (hw & HWCAP_ASIMDHP) != 0;
#endif
    return f;
}

#if defined(__aarch64__)
static void kq_apply(kq_impl impl, const kq_override_list *list) {
    for (size_t i = 0; i < list->count; i++) {
        const kq_kernel_override *o = &list->rows[i];
        for (size_t t = 0; t < kq_ntypes; t++) {
            kq_type_traits *tr = &kq_tables[impl][t];
            if (tr->type != o->type) continue;
            if (o->quantize_row) tr->quantize_row = o->quantize_row, kq_provider[impl][t][KQ_FN_QUANTIZE] = impl;
            if (o->dequantize_row) tr->dequantize_row = o->dequantize_row, kq_provider[impl][t][KQ_FN_DEQUANTIZE] = impl;
            if (o->vec_dot) tr->vec_dot = o->vec_dot, kq_provider[impl][t][KQ_FN_VEC_DOT] = impl;
        }
    }
}

#endif

/* Layer `impl` starts as a copy of layer `below`. */
static void kq_inherit(kq_impl impl, kq_impl below) {
    memcpy(kq_tables[impl], kq_tables[below], sizeof(kq_tables[impl]));
    memcpy(kq_provider[impl], kq_provider[below], sizeof(kq_provider[impl]));
}

static void kq_build(void) {
    kq_ntypes = kq_ref_traits_count();
    if (kq_ntypes > KQ_MAX_TYPES) kq_ntypes = KQ_MAX_TYPES; /* cannot happen: 15 + 32 types */
    for (size_t t = 0; t < kq_ntypes; t++) {
        kq_tables[KQ_IMPL_REFERENCE][t] = *kq_ref_traits_at(t);
        for (int f = 0; f < 3; f++) kq_provider[KQ_IMPL_REFERENCE][t][f] = KQ_IMPL_REFERENCE;
    }
    kq_layer_built[KQ_IMPL_REFERENCE] = 1;
    kq_inherit(KQ_IMPL_NEON_PLAIN, KQ_IMPL_REFERENCE);
#if defined(__aarch64__)
    const kq_override_list *plain[] = {&kq_neon_float_list, &kq_neon_q32_list, &kq_neon_q32_dot_list, &kq_neon_k_list, &kq_neon_intn_list};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) kq_apply(KQ_IMPL_NEON_PLAIN, plain[i]);
    kq_layer_built[KQ_IMPL_NEON_PLAIN] = 1;
#endif
    kq_inherit(KQ_IMPL_NEON_DOTPROD, KQ_IMPL_NEON_PLAIN);
#if defined(__aarch64__)
    const kq_override_list *dp[] = {&kq_neon_q32_dotprod_list, &kq_neon_k_dotprod_list, &kq_neon_intn_dotprod_list};
    for (size_t i = 0; i < sizeof(dp) / sizeof(dp[0]); i++) kq_apply(KQ_IMPL_NEON_DOTPROD, dp[i]);
    kq_layer_built[KQ_IMPL_NEON_DOTPROD] = 1;
#endif
}

static void kq_init(void) { pthread_once(&kq_once, kq_build); }

int kq_impl_available(kq_impl impl, const char **why) {
    kq_init();
    const char *dummy;
    if (!why) why = &dummy;
    *why = "";
    if (impl < 0 || impl >= KQ_IMPL_COUNT) {
        *why = "no such implementation";
        return 0;
    }
    if (!kq_layer_built[impl]) {
        *why = "not in this binary (NEON kernels are built for aarch64 only)";
        return 0;
    }
    if (impl == KQ_IMPL_NEON_DOTPROD && !kq_cpu().asimddp) {
        *why = "this CPU has no dot-product instructions (HWCAP asimddp: ARMv8.2 dotprod, as on Kunpeng 920)";
        return 0;
    }
    return 1;
}

kq_impl kq_impl_best(void) {
    for (int i = KQ_IMPL_COUNT - 1; i > 0; i--)
        if (kq_impl_available((kq_impl)i, NULL)) return (kq_impl)i;
    return KQ_IMPL_REFERENCE;
}

static int kq_streq_ci(const char *a, const char *b) {
    while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
    return !*a && !*b;
}

int kq_impl_parse(const char *name, kq_impl *out, char *err, size_t errlen) {
    kq_init();
    const char *why = "";
    if (!name) name = "auto";
    if (kq_streq_ci(name, "auto")) {
        *out = kq_impl_best();
        return 0;
    }
    if (kq_streq_ci(name, "neon")) {
        /* the best NEON layer this CPU runs */
        if (kq_impl_available(KQ_IMPL_NEON_DOTPROD, NULL)) { *out = KQ_IMPL_NEON_DOTPROD; return 0; }
        if (kq_impl_available(KQ_IMPL_NEON_PLAIN, &why)) { *out = KQ_IMPL_NEON_PLAIN; return 0; }
        snprintf(err, errlen, "implementation 'neon' is unavailable: %s", why);
        return -1;
    }
    for (int i = 0; i < KQ_IMPL_COUNT; i++) {
        if (kq_streq_ci(name, kq_impl_names[i])) {
            if (!kq_impl_available((kq_impl)i, &why)) {
                snprintf(err, errlen, "implementation '%s' is unavailable: %s", kq_impl_names[i], why);
                return -1;
            }
            *out = (kq_impl)i;
            return 0;
        }
    }
    snprintf(err, errlen, "unknown implementation '%s' (expected reference, neon, neon-plain, neon-dotprod or auto)", name);
    return -1;
}

static long kq_index(kq_type t) {
    for (size_t i = 0; i < kq_ntypes; i++)
        if (kq_tables[KQ_IMPL_REFERENCE][i].type == t) return (long)i;
    return -1;
}

const kq_type_traits *kq_traits(kq_impl impl, kq_type t) {
    kq_init();
    if (impl < 0 || impl >= KQ_IMPL_COUNT) return NULL;
    const long i = kq_index(t);
    return i < 0 ? NULL : &kq_tables[impl][i];
}

int kq_fn_native(kq_impl impl, kq_type t, kq_fn fn) {
    kq_init();
    const kq_type_traits *tr = kq_traits(impl, t);
    if (!tr || fn < 0 || fn > 2) return -1;
    const int has = fn == KQ_FN_QUANTIZE     ? tr->quantize_row != NULL
                    : fn == KQ_FN_DEQUANTIZE ? tr->dequantize_row != NULL
                                             : tr->vec_dot != NULL;
    if (!has) return -1;
    if (impl == KQ_IMPL_REFERENCE) return 1;
    return kq_provider[impl][kq_index(t)][fn] != KQ_IMPL_REFERENCE;
}
