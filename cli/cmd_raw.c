/* kq quantize-raw / dequantize-raw: raw little-endian f32 rows <-> raw concatenated blocks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kq_cli.h"
#include "kq_ref.h"

typedef struct {
    const char *cmd;
    const kq_type_traits *type; /* the implementation's row */
    kq_impl impl;
    int64_t row;
    kq_scale_mode scale;
    int scale_given, progress;
    const char *in, *out;
} kq_raw_args;

static void kq_raw_usage(const char *cmd, int quantize) {
    if (quantize)
        printf("usage: kq quantize-raw -t TYPE [--impl reference|neon|neon-plain|neon-dotprod|auto] [--row N]\n"
               "                       [--scale search|max] [--progress] IN.f32 OUT.bin\n\n"
               "Quantizes IN, little-endian float32 rows of N values (default 4096), one quantize_row call\n"
               "per row, and writes the concatenated blocks only (no header) to OUT.\n"
               "  -t, --type TYPE  any type of 'kq types' (any case: Q4_0, q4_k, i4_g128_sym, f16 ...)\n"
               "  --impl IMPL      kernels to use (default auto: the best this CPU runs)\n"
               "  --row N          values per row; a multiple of the type's block (and of 32 for INT-N)\n"
               "  --scale MODE     INT-N only: search (error-minimising scale, the default) or max\n"
               "                   (plain max-abs / min-max scaling, as simple converters do)\n"
               "  --progress       progress on stderr even when it is not a terminal\n"
               "Block types take finite values only: a NaN or Inf in IN is an error naming its row and column.\n"
               "OUT is written to a temporary file and renamed when complete.\n");
    else
        printf("usage: kq dequantize-raw -t TYPE [--impl ...] [--row N] [--progress] IN.bin OUT.f32\n\n"
               "Dequantizes IN, the concatenated blocks of rows of N values (default 4096), to\n"
               "little-endian float32 rows in OUT (written to a temporary file, renamed when complete).\n");
    (void)cmd;
}

/* Returns 0 to run, 1 if --help was printed, 2 on a usage error (already reported). */
static int kq_raw_parse(kq_raw_args *a, int argc, char **argv, int quantize) {
    const char *type_name = NULL, *impl_name = "auto", *pos[2] = {NULL, NULL};
    int npos = 0;
    a->row = 4096;
    a->scale = KQ_SCALE_SEARCH;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            kq_raw_usage(a->cmd, quantize);
            return 1;
        } else if (!strcmp(s, "-t") || !strcmp(s, "--type")) {
            if (++i >= argc) return kq_cli_error(a->cmd, "%s needs a type name", s), 2;
            type_name = argv[i];
        } else if (!strcmp(s, "--impl")) {
            if (++i >= argc) return kq_cli_error(a->cmd, "--impl needs a value"), 2;
            impl_name = argv[i];
        } else if (!strcmp(s, "--row")) {
            if (kq_cli_parse_i64(a->cmd, "--row", i + 1 < argc ? argv[++i] : NULL, &a->row)) return 2;
        } else if (quantize && !strcmp(s, "--scale")) {
            if (++i >= argc) return kq_cli_error(a->cmd, "--scale needs search or max"), 2;
            if (!strcmp(argv[i], "search")) a->scale = KQ_SCALE_SEARCH;
            else if (!strcmp(argv[i], "max")) a->scale = KQ_SCALE_MAX;
            else return kq_cli_error(a->cmd, "--scale takes search or max, not '%s'", argv[i]), 2;
            a->scale_given = 1;
        } else if (!strcmp(s, "--progress")) {
            a->progress = 1;
        } else if (s[0] == '-' && s[1]) {
            return kq_cli_error(a->cmd, "unknown option '%s' (see kq %s --help)", s, a->cmd), 2;
        } else if (npos < 2) {
            pos[npos++] = s;
        } else {
            return kq_cli_error(a->cmd, "too many arguments: '%s' (see kq %s --help)", s, a->cmd), 2;
        }
    }
    if (!type_name) return kq_cli_error(a->cmd, "missing -t TYPE (see kq types)"), 2;
    if (npos < 2) return kq_cli_error(a->cmd, "needs an input and an output file (see kq %s --help)", a->cmd), 2;
    a->in = pos[0];
    a->out = pos[1];
    const kq_type_traits *ref = kq_type_by_name(type_name);
    if (!ref) return kq_cli_error(a->cmd, "unknown type '%s' (see kq types)", type_name), 2;
    char err[256];
    if (kq_impl_parse(impl_name, &a->impl, err, sizeof(err))) return kq_cli_error(a->cmd, "%s", err), 2;
    a->type = kq_traits(a->impl, ref->type);
    if (!kq_row_ok(ref->type, a->row)) {
        if (ref->intn_bits && a->row % ref->block_elems == 0)
            kq_cli_error(a->cmd, "row length %lld is not a multiple of 32, which INT-N type %s needs",
                         (long long)a->row, ref->name);
        else
            kq_cli_error(a->cmd, "row length %lld is not a multiple of %s's block of %d values",
                         (long long)a->row, ref->name, ref->block_elems);
        return 2;
    }
    if (a->scale_given && !ref->intn_bits)
        return kq_cli_error(a->cmd, "--scale applies to INT-N types only, not %s", ref->name), 2;
    if (quantize ? !a->type->quantize_row : !a->type->dequantize_row)
        return kq_cli_error(a->cmd, "%s has no %s (as in ggml, it is an activation type only)", ref->name,
                            quantize ? "quantizer" : "dequantizer"),
               2;
    return 0;
}

/* Opens IN and checks that it holds a whole, non-zero number of records of rec bytes. */
static FILE *kq_raw_open_input(const kq_raw_args *a, size_t rec, const char *what, int64_t *nrec) {
    FILE *f = fopen(a->in, "rb");
    if (!f) {
        kq_cli_error(a->cmd, "cannot open %s: %s", a->in, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        kq_cli_error(a->cmd, "%s is not a regular file", a->in);
        fclose(f);
        return NULL;
    }
    if (st.st_size == 0 || (uint64_t)st.st_size % rec) {
        kq_cli_error(a->cmd, "%s: %lld bytes is not a whole number of rows of %s (%zu bytes each)%s", a->in,
                     (long long)st.st_size, what, rec, st.st_size ? " (truncated?)" : "");
        fclose(f);
        return NULL;
    }
    *nrec = (int64_t)((uint64_t)st.st_size / rec);
    return f;
}

static int kq_raw_run(const kq_raw_args *a, int quantize) {
    const size_t fbytes = (size_t)a->row * sizeof(float), qbytes = kq_row_size(a->type->type, a->row);
    const size_t in_bytes = quantize ? fbytes : qbytes, out_bytes = quantize ? qbytes : fbytes;
    char what[96];
    if (quantize) snprintf(what, sizeof(what), "%lld f32", (long long)a->row);
    else snprintf(what, sizeof(what), "%lld %s values", (long long)a->row, a->type->name);
    int64_t nrows = 0;
    FILE *in = kq_raw_open_input(a, in_bytes, what, &nrows);
    if (!in) return 2;
    void *src = malloc(in_bytes), *dst = malloc(out_bytes);
    kq_out_file out;
    int rc = 0;
    if (!src || !dst) {
        kq_cli_error(a->cmd, "out of memory for rows of %lld values", (long long)a->row);
        rc = 1;
    } else if (kq_out_open(&out, a->cmd, a->out)) {
        rc = 1;
    }
    if (rc) goto done_noout;
    kq_progress prog;
    kq_progress_init(&prog, a->cmd, nrows, a->progress);
    /* block types are defined for finite input only (docs/formats.md): reject, never guess */
    const int finite_only = quantize && a->type->block_elems > 1;
    for (int64_t r = 0; r < nrows && !rc; r++) {
        if (fread(src, 1, in_bytes, in) != in_bytes) {
            kq_cli_error(a->cmd, "%s: read failed at row %lld", a->in, (long long)r);
            rc = 1;
            break;
        }
        int64_t bad = 0;
        if (finite_only && !kq_row_finite(src, a->row, &bad)) {
            const float v = ((const float *)src)[bad];
            kq_cli_error(a->cmd, "%s: row %lld, column %lld is %s: %s takes finite values only", a->in, (long long)r,
                         (long long)bad, v != v ? "NaN" : (v > 0 ? "+Inf" : "-Inf"), a->type->name);
            rc = 2;
            break;
        }
        if (quantize) {
            if (a->type->intn_bits && a->scale != KQ_SCALE_SEARCH)
                kq_quantize_row_intn_ref(a->type, src, dst, a->row, a->scale);
            else
                a->type->quantize_row(src, dst, a->row);
        } else {
            a->type->dequantize_row(src, dst, a->row);
        }
        if (fwrite(dst, 1, out_bytes, out.f) != out_bytes) {
            kq_cli_error(a->cmd, "writing %s failed: %s", a->out, strerror(errno));
            rc = 1;
        }
        kq_progress_update(&prog, r + 1);
    }
    if (rc) {
        kq_out_abort(&out);
    } else {
        kq_progress_done(&prog);
        if (kq_out_commit(&out, a->cmd)) rc = 1;
    }
done_noout:
    free(src);
    free(dst);
    fclose(in);
    return rc;
}

static int kq_raw_main(int argc, char **argv, int quantize) {
    kq_raw_args a;
    memset(&a, 0, sizeof(a));
    a.cmd = quantize ? "quantize-raw" : "dequantize-raw";
    const int p = kq_raw_parse(&a, argc, argv, quantize);
    if (p == 1) return 0;
    if (p) return p;
    return kq_raw_run(&a, quantize);
}

int kq_cmd_quantize_raw(int argc, char **argv) { return kq_raw_main(argc, argv, 1); }
int kq_cmd_dequantize_raw(int argc, char **argv) { return kq_raw_main(argc, argv, 0); }
