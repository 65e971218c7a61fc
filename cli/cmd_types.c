/* kq types: every type with its block geometry and, per implementation, which functions are
 * native code and which fall back to the reference. */
#include <string.h>

#include "kq_cli.h"

static const char *const kq_fn_names[3] = {"quantize_row", "dequantize_row", "vec_dot"};

/* "native", "fallback" (runs the reference) or "none" (the type has no such function). */
static const char *kq_fn_state(kq_impl impl, kq_type t, kq_fn fn) {
    const int n = kq_fn_native(impl, t, fn);
    return n < 0 ? "none" : n ? "native" : "fallback";
}

static void kq_types_json(void) {
    printf("{\"implementations\":[");
    int first = 1;
    for (int i = 0; i < KQ_IMPL_COUNT; i++) {
        const char *why = "";
        const int avail = kq_impl_available((kq_impl)i, &why);
        printf("%s{\"name\":\"%s\",\"available\":%s", first ? "" : ",", kq_impl_name((kq_impl)i), avail ? "true" : "false");
        if (!avail) {
            printf(",\"why\":");
            kq_json_string(stdout, why);
        }
        printf("}");
        first = 0;
    }
    const kq_cpu_features c = kq_cpu();
    printf("],\"auto\":\"%s\",\"cpu\":{\"asimd\":%d,\"asimddp\":%d,\"fphp\":%d,\"asimdhp\":%d},\"types\":[",
           kq_impl_name(kq_impl_best()), c.asimd, c.asimddp, c.fphp, c.asimdhp);
    const size_t n = kq_ref_traits_count();
    for (size_t k = 0; k < n; k++) {
        const kq_type_traits *t = kq_ref_traits_at(k);
        const kq_type_traits *vt = kq_ref_traits(t->vec_dot_type);
        printf("%s{\"name\":\"%s\",\"id\":%d,\"block_elems\":%d,\"block_bytes\":%zu,\"row_overhead\":%zu,"
               "\"bits_per_weight_4096\":%.6f,\"vec_dot_type\":",
               k ? "," : "", t->name, (int)t->type, t->block_elems, t->block_bytes, t->row_overhead,
               kq_bits_per_weight(t->type, 4096));
        if (vt) printf("\"%s\"", vt->name);
        else printf("null");
        if (t->intn_bits)
            printf(",\"intn\":{\"bits\":%d,\"group\":%d,\"asym\":%s}", t->intn_bits, t->intn_group,
                   t->intn_asym ? "true" : "false");
        printf(",\"functions\":{");
        for (int f = 0; f < 3; f++) {
            printf("%s\"%s\":{", f ? "," : "", kq_fn_names[f]);
            for (int i = 0; i < KQ_IMPL_COUNT; i++)
                printf("%s\"%s\":\"%s\"", i ? "," : "", kq_impl_name((kq_impl)i), kq_fn_state((kq_impl)i, t->type, (kq_fn)f));
            printf("}");
        }
        printf("}}");
    }
    printf("]}\n");
}

static void kq_types_table(kq_impl impl) {
    printf("implementation: %s (auto = %s)\n", kq_impl_name(impl), kq_impl_name(kq_impl_best()));
    printf("%-14s %5s %6s %6s %9s %-8s  %s\n", "type", "id", "block", "bytes", "bits/w", "vec_dot", "native functions");
    const size_t n = kq_ref_traits_count();
    for (size_t k = 0; k < n; k++) {
        const kq_type_traits *t = kq_ref_traits_at(k);
        const kq_type_traits *vt = kq_ref_traits(t->vec_dot_type);
        char block[16];
        if (t->intn_bits && !t->intn_group) snprintf(block, sizeof(block), "row");
        else snprintf(block, sizeof(block), "%d", t->block_elems);
        char fns[96] = "";
        for (int f = 0; f < 3; f++) {
            if (kq_fn_native(impl, t->type, (kq_fn)f) == 1) {
                if (fns[0]) strncat(fns, " ", sizeof(fns) - strlen(fns) - 1);
                strncat(fns, kq_fn_names[f], sizeof(fns) - strlen(fns) - 1);
            }
        }
        printf("%-14s %5d %6s %6zu %9.4f %-8s  %s\n", t->name, (int)t->type, block, t->block_bytes,
               kq_bits_per_weight(t->type, 4096), vt ? vt->name : "-", fns[0] ? fns : "(reference fallback)");
    }
    printf("bits/w at rows of 4096 values; INT-N 'row' types keep one scale (and offset) per row.\n");
}

int kq_cmd_types(int argc, char **argv) {
    int json = 0;
    const char *impl_name = "auto";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--impl") && i + 1 < argc) {
            impl_name = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: kq types [--json] [--impl IMPL]\n\n"
                   "Lists every type: name, id (GGUF type id; INT-N ids are kq's own, from 1000),\n"
                   "elements and bytes per block, bits per weight, the activation type of its vec_dot,\n"
                   "and which functions IMPL (default auto) runs as its own code. --json reports, per type,\n"
                   "function and implementation, native / fallback (the reference runs) / none.\n");
            return 0;
        } else {
            kq_cli_error("types", "unknown argument '%s' (see kq types --help)", argv[i]);
            return 2;
        }
    }
    if (json) {
        kq_types_json();
        return 0;
    }
    kq_impl impl;
    char err[256];
    if (kq_impl_parse(impl_name, &impl, err, sizeof(err))) {
        kq_cli_error("types", "%s", err);
        return 2;
    }
    kq_types_table(impl);
    return 0;
}
