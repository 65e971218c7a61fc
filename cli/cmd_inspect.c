/* kq inspect FILE.gguf [--json]: metadata, tensor table, sizes and bits per weight of a GGUF file. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gguf.h"
#include "kq_cli.h"


#define KQ_INSPECT_HEAD 8        /* array elements shown */
#define KQ_INSPECT_TEXT_STR 160  /* string bytes shown in text mode */
#define KQ_INSPECT_NOTE "tensors of kq's INT-N types: llama.cpp cannot load this file"

static void kq_inspect_usage(FILE *f) {
    fprintf(f, "usage: kq inspect FILE.gguf [--json]\n\n"
               "Shows a GGUF file: header, metadata (long arrays summarised: type, count, first values),\n"
               "the tensor table (name, shape as ne with ne0 = row length, type, bytes, offset from the\n"
               "data start), total parameters, bits per weight of the tensor data and tensors per type.\n"
               "  --json   the same as one JSON object on stdout\n"
               "Files with tensors of kq's INT-N types are marked: llama.cpp cannot load them.\n");
}

/* Length of the valid UTF-8 sequence at p (n bytes available), 0 if invalid. */
static size_t kq_utf8_seq(const unsigned char *p, size_t n) {
    const unsigned c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return len;
}

/* A JSON string literal of n arbitrary bytes: escapes per RFC 8259; bytes that are not UTF-8
 * become U+FFFD so the output is always valid JSON. */
static void kq_json_bytes(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        const unsigned c = p[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else {
            const size_t len = kq_utf8_seq(p + i, n - i);
            if (!len) fputs("\\ufffd", f);
            else fwrite(p + i, 1, len, f);
            i += len ? len : 1;
            continue;
        }
        i++;
    }
    fputc('"', f);
}

/* A quoted string for the terminal: valid UTF-8 as is, everything else escaped, at most max bytes. */
static void kq_text_bytes(FILE *f, const char *s, size_t n, size_t max) {
    const unsigned char *p = (const unsigned char *)s;
    const size_t shown = n < max ? n : max;
    fputc('"', f);
    for (size_t i = 0; i < shown;) {
        const unsigned c = p[i];
        size_t len = 1;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\x%02x", c);
        else if ((len = kq_utf8_seq(p + i, shown - i)) != 0) fwrite(p + i, 1, len, f);
        else {
            fprintf(f, "\\x%02x", c);
            len = 1;
        }
        i += len;
    }
    fputc('"', f);
    if (shown < n) fprintf(f, "... (%zu bytes)", n);
}

static void kq_print_value(FILE *f, const kq_gguf_value *v, int json) {
    switch (v->type) {
    case KQ_GGUF_U8: case KQ_GGUF_U16: case KQ_GGUF_U32: case KQ_GGUF_U64:
        fprintf(f, "%llu", (unsigned long long)v->u);
        break;
    case KQ_GGUF_I8: case KQ_GGUF_I16: case KQ_GGUF_I32: case KQ_GGUF_I64:
        fprintf(f, "%lld", (long long)v->i);
        break;
    case KQ_GGUF_BOOL: fputs(v->u ? "true" : "false", f); break;
    case KQ_GGUF_F32: case KQ_GGUF_F64:
        if (!isfinite(v->f)) fputs(json ? "null" : (isnan(v->f) ? "nan" : v->f > 0 ? "inf" : "-inf"), f);
        else fprintf(f, v->type == KQ_GGUF_F32 ? "%.9g" : "%.17g", v->f);
        break;
    case KQ_GGUF_STR:
        if (json) kq_json_bytes(f, v->s, v->len);
        else kq_text_bytes(f, v->s, v->len, KQ_INSPECT_TEXT_STR);
        break;
    default: fputs("null", f); break;
    }
}

/* Per-type totals. */
typedef struct {
    kq_type type;
    int64_t count, params;
    uint64_t bytes;
} kq_type_total;

typedef struct {
    kq_type_total t[256];
    int n;
    int64_t params, intn;
    uint64_t bytes;
} kq_totals;

static void kq_totals_add(kq_totals *s, const kq_gguf_tensor *t) {
    int k = 0;
    while (k < s->n && s->t[k].type != t->type) k++;
    if (k == s->n && s->n < 256) s->t[s->n++] = (kq_type_total){t->type, 0, 0, 0};
    if (k < s->n) {
        s->t[k].count++;
        s->t[k].params += t->n_elements;
        s->t[k].bytes += t->size;
    }
    s->params += t->n_elements;
    s->bytes += t->size;
    if (kq_type_is_intn(t->type)) s->intn++;
}

static double kq_bpw(uint64_t bytes, int64_t params) { return params > 0 ? 8.0 * (double)bytes / (double)params : 0.0; }

static const char *kq_tname(kq_type t) {
    const char *n = kq_gguf_type_name((uint32_t)t);
    return n ? n : "?";
}

/* ---- text ---- */
static void kq_text_kv(FILE *f, const kq_gguf *g, int64_t i) {
    const int t = kq_gguf_kv_type(g, i);
    fprintf(f, "  %-44s ", kq_gguf_key(g, i));
    kq_gguf_value v;
    if (t != KQ_GGUF_ARR) {
        kq_gguf_kv_value(g, i, &v);
        fprintf(f, "%s ", kq_gguf_vtype_name(t));
        kq_print_value(f, &v, 0);
        fputc('\n', f);
        return;
    }
    const uint64_t n = kq_gguf_arr_count(g, i);
    fprintf(f, "array[%s] x%llu:", kq_gguf_vtype_name(kq_gguf_arr_type(g, i)), (unsigned long long)n);
    for (uint64_t j = 0; j < n && j < KQ_INSPECT_HEAD; j++) {
        kq_gguf_arr_elem(g, i, j, &v);
        fputs(j ? ", " : " ", f);
        if (v.type == KQ_GGUF_STR) kq_text_bytes(f, v.s, v.len, 40);
        else kq_print_value(f, &v, 0);
    }
    if (n > KQ_INSPECT_HEAD) fputs(", ...", f);
    fputc('\n', f);
}

/* The converter records each tensor that could not take the requested type as "NAME:WANTED:ACTUAL"
 * in the string array kq.fallbacks. Returns the WANTED type of tensor `name` into buf, or 0. */
static int kq_fallback_of(const kq_gguf *g, const char *name, char *buf, size_t cap) {
    const int64_t k = kq_gguf_find_key(g, "kq.fallbacks");
    if (k < 0 || kq_gguf_kv_type(g, k) != KQ_GGUF_ARR || kq_gguf_arr_type(g, k) != KQ_GGUF_STR) return 0;
    const size_t nl = strlen(name);
    for (uint64_t j = 0; j < kq_gguf_arr_count(g, k); j++) {
        kq_gguf_value v;
        if (kq_gguf_arr_elem(g, k, j, &v) || v.type != KQ_GGUF_STR) continue;
        if (v.len <= nl + 1 || memcmp(v.s, name, nl) != 0 || v.s[nl] != ':') continue;
        const char *w = v.s + nl + 1, *end = memchr(w, ':', v.len - nl - 1);
        const size_t wl = end ? (size_t)(end - w) : v.len - nl - 1;
        snprintf(buf, cap, "%.*s", (int)wl, w);
        return 1;
    }
    return 0;
}

static void kq_shape(char *buf, size_t cap, const kq_gguf_tensor *t) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    const int nd = t->n_dims ? t->n_dims : 1;
    for (int d = 0; d < nd && k < cap; d++) k += (size_t)snprintf(buf + k, cap - k, d ? ", %lld" : "%lld", (long long)t->ne[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static void kq_text(FILE *f, const kq_gguf *g, const kq_totals *s) {
    fprintf(f, "%s: GGUF v%u, %llu bytes, alignment %u, tensor data at byte %llu\n", kq_gguf_path(g),
            kq_gguf_version(g), (unsigned long long)kq_gguf_file_size(g), kq_gguf_alignment(g),
            (unsigned long long)kq_gguf_data_offset(g));
    fprintf(f, "metadata: %lld keys\n", (long long)kq_gguf_n_kv(g));
    for (int64_t i = 0; i < kq_gguf_n_kv(g); i++) kq_text_kv(f, g, i);
    fprintf(f, "tensors: %lld\n", (long long)kq_gguf_n_tensors(g));
    int nfb = 0;
    fprintf(f, "  %-40s %-24s %-12s %14s %14s\n", "name", "shape (ne)", "type", "bytes", "offset");
    for (int64_t i = 0; i < kq_gguf_n_tensors(g); i++) {
        const kq_gguf_tensor *t = kq_gguf_tensor_at(g, i);
        char shape[128];
        kq_shape(shape, sizeof(shape), t);
        char wanted[64];
        const int fb = kq_fallback_of(g, t->name, wanted, sizeof(wanted));
        fprintf(f, "  %-40s %-24s %-12s %14llu %14llu%s%s%s\n", t->name, shape, kq_tname(t->type),
                (unsigned long long)t->size, (unsigned long long)t->offset, fb ? "  (fallback: " : "",
                fb ? wanted : "", fb ? " cannot hold these rows)" : "");
        nfb += fb;
    }
    if (nfb) fprintf(f, "fallbacks: %d tensors could not take the requested type (row length not a multiple of its block)\n", nfb);
    fprintf(f, "file size: %llu bytes\n", (unsigned long long)kq_gguf_file_size(g));
    fprintf(f, "parameters: %lld\n", (long long)s->params);
    fprintf(f, "tensor data: %llu bytes, %.4f bits per weight\n", (unsigned long long)s->bytes, kq_bpw(s->bytes, s->params));
    fprintf(f, "types:");
    for (int k = 0; k < s->n; k++)
        fprintf(f, "%s %s x%lld (%.4f bpw)", k ? "," : "", kq_tname(s->t[k].type), (long long)s->t[k].count,
                kq_bpw(s->t[k].bytes, s->t[k].params));
    fputc('\n', f);
    if (s->intn) fprintf(f, "note: %s\n", KQ_INSPECT_NOTE);
}

/* ---- JSON ---- */
static void kq_json_kv(FILE *f, const kq_gguf *g, int64_t i) {
    const int t = kq_gguf_kv_type(g, i);
    fputs("    {\"key\": ", f);
    const char *key = kq_gguf_key(g, i);
    kq_json_bytes(f, key, strlen(key));
    kq_gguf_value v;
    if (t != KQ_GGUF_ARR) {
        kq_gguf_kv_value(g, i, &v);
        fprintf(f, ", \"type\": \"%s\", \"value\": ", kq_gguf_vtype_name(t));
        kq_print_value(f, &v, 1);
        fputc('}', f);
        return;
    }
    const uint64_t n = kq_gguf_arr_count(g, i);
    fprintf(f, ", \"type\": \"array\", \"elem_type\": \"%s\", \"count\": %llu, \"head\": [",
            kq_gguf_vtype_name(kq_gguf_arr_type(g, i)), (unsigned long long)n);
    for (uint64_t j = 0; j < n && j < KQ_INSPECT_HEAD; j++) {
        kq_gguf_arr_elem(g, i, j, &v);
        if (j) fputs(", ", f);
        kq_print_value(f, &v, 1);
    }
    fputs("]}", f);
}

static void kq_json(FILE *f, const kq_gguf *g, const kq_totals *s) {
    fputs("{\n  \"file\": ", f);
    kq_json_bytes(f, kq_gguf_path(g), strlen(kq_gguf_path(g)));
    fprintf(f, ",\n  \"file_size\": %llu,\n  \"version\": %u,\n  \"alignment\": %u,\n  \"data_offset\": %llu,\n",
            (unsigned long long)kq_gguf_file_size(g), kq_gguf_version(g), kq_gguf_alignment(g),
            (unsigned long long)kq_gguf_data_offset(g));
    fputs("  \"metadata\": [\n", f);
    for (int64_t i = 0; i < kq_gguf_n_kv(g); i++) {
        kq_json_kv(f, g, i);
        fputs(i + 1 < kq_gguf_n_kv(g) ? ",\n" : "\n", f);
    }
    fputs("  ],\n  \"tensors\": [\n", f);
    for (int64_t i = 0; i < kq_gguf_n_tensors(g); i++) {
        const kq_gguf_tensor *t = kq_gguf_tensor_at(g, i);
        fputs("    {\"name\": ", f);
        kq_json_bytes(f, t->name, strlen(t->name));
        fputs(", \"shape\": [", f);
        const int nd = t->n_dims ? t->n_dims : 1;
        for (int d = 0; d < nd; d++) fprintf(f, d ? ", %lld" : "%lld", (long long)t->ne[d]);
        fprintf(f, "], \"type\": \"%s\", \"type_id\": %u, \"bytes\": %llu, \"offset\": %llu", kq_tname(t->type),
                (unsigned)t->type, (unsigned long long)t->size, (unsigned long long)t->offset);
        char wanted[64];
        if (kq_fallback_of(g, t->name, wanted, sizeof(wanted))) {
            fputs(", \"fallback_from\": ", f);
            kq_json_bytes(f, wanted, strlen(wanted));
        }
        fprintf(f, "}%s\n", i + 1 < kq_gguf_n_tensors(g) ? "," : "");
    }
    fprintf(f, "  ],\n  \"parameters\": %lld,\n  \"tensor_bytes\": %llu,\n  \"bits_per_weight\": %.6f,\n",
            (long long)s->params, (unsigned long long)s->bytes, kq_bpw(s->bytes, s->params));
    fputs("  \"types\": {", f);
    for (int k = 0; k < s->n; k++)
        fprintf(f, "%s\"%s\": {\"tensors\": %lld, \"parameters\": %lld, \"bytes\": %llu}", k ? ", " : "",
                kq_tname(s->t[k].type), (long long)s->t[k].count, (long long)s->t[k].params,
                (unsigned long long)s->t[k].bytes);
    fprintf(f, "},\n  \"intn_tensors\": %lld,\n  \"note\": %s\n}\n", (long long)s->intn,
            s->intn ? "\"" KQ_INSPECT_NOTE "\"" : "null");
}

int kq_cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            kq_inspect_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            kq_cli_error("inspect", "unknown option '%s' (see kq inspect --help)", argv[i]);
            return 2;
        } else if (path) {
            kq_cli_error("inspect", "one file at a time ('%s' and '%s')", path, argv[i]);
            return 2;
        } else path = argv[i];
    }
    if (!path) {
        kq_inspect_usage(stderr);
        return 2;
    }
    kq_gguf *g = NULL;
    char err[1024];
    if (kq_gguf_open(path, &g, err, sizeof(err))) {
        kq_cli_error("inspect", "%s", err);
        return 2;
    }
    kq_totals s;
    memset(&s, 0, sizeof(s));
    for (int64_t i = 0; i < kq_gguf_n_tensors(g); i++) kq_totals_add(&s, kq_gguf_tensor_at(g, i));
    if (json) kq_json(stdout, g, &s);
    else kq_text(stdout, g, &s);
    kq_gguf_close(g);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        kq_cli_error("inspect", "writing the output failed");
        return 1;
    }
    return 0;
}
