/* kq report: see report.h. */
#include "kq_file.h"
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void kq_rep_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

#if !KQ_HAVE_CJSON

int kq_report_write(const kq_report_opts *o, char *err, size_t errlen) {
    (void)o;
    kq_rep_err(err, errlen, "not in this build (kq report needs cJSON: host build only)");
    return -1;
}

int kq_report_resolve(const char *name, FILE *out, char *err, size_t errlen) {
    (void)name;
    (void)out;
    kq_rep_err(err, errlen, "not in this build (the registry needs cJSON: host build only)");
    return -1;
}

#else

#include <cjson/cJSON.h>
#include <ctype.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kq_types.h"
#include "registry.h"

#define KQ_REP_MAX_COLS 32
#define KQ_REP_PATH 4096
#define KQ_REP_GROUP_ABOVE 60 /* more tensors than this: the per-tensor table groups blk.N.x as blk.*.x */

/* ==== files ====================================================================================== */

static char *kq_rep_slurp(const char *path, size_t *len) {
    char *buf, err[8];
    return kq_read_whole_file(path, 0, &buf, len, err, sizeof(err)) == 0 ? buf : NULL;
}

static char *kq_rep_read_text(const char *dir, const char *name) {
    char path[KQ_REP_PATH];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return kq_rep_slurp(path, NULL);
}

/* The JSON of dir/name, or NULL if absent or not JSON. */
static cJSON *kq_rep_load(const char *dir, const char *name) {
    char *text = kq_rep_read_text(dir, name);
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

/* Writes len bytes to path through a temporary file beside it, renamed when complete. */
static int kq_rep_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen) {
    char tmp[KQ_REP_PATH + 32];
    snprintf(tmp, sizeof(tmp), "%s.kqtmp.XXXXXX", path);
    const int fd = mkstemp(tmp);
    if (fd < 0) {
        kq_rep_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    const mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) { /* not fatal: the file is still written */ }
    size_t done = 0;
    while (done < len) {
        const ssize_t w = write(fd, data + done, len - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    const int bad = done != len || fsync(fd) != 0;
    if (close(fd) != 0 || bad || rename(tmp, path) != 0) {
        kq_rep_err(err, errlen, "cannot write %s: %s", path, strerror(errno ? errno : EIO));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ==== JSON lookups: the steps' outputs may nest their figures, so keys are searched depth first ==== */

static const cJSON *kq_rep_find(const cJSON *j, const char *key) {
    if (!j) return NULL;
    const cJSON *it = NULL;
    cJSON_ArrayForEach(it, j) {
        if (it->string && !strcmp(it->string, key)) return it;
    }
    cJSON_ArrayForEach(it, j) {
        if (cJSON_IsObject(it)) {
            const cJSON *hit = kq_rep_find(it, key);
            if (hit) return hit;
        }
    }
    return NULL;
}

static double kq_rep_num(const cJSON *j, const char *key) {
    const cJSON *v = kq_rep_find(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *kq_rep_str(const cJSON *j, const char *key) {
    const cJSON *v = kq_rep_find(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ==== the inputs =================================================================================== */

typedef struct {
    char name[64];  /* "f16", "q4_0" */
    char label[64]; /* "F16", "Q4_0" */
    cJSON *inspect, *ppl, *bench;
} kq_rep_col;

typedef struct {
    const kq_report_opts *o;
    cJSON *manifest, *tol_model, *tol, *cycles;
    cJSON *bx[6];          /* generic and model runs, see kq_rep_bx_names */
    kq_rep_col col[KQ_REP_MAX_COLS];
    int ncol;
    char model[128];
    int has_charts;        /* at least one chart drawn */
    int chart_points[3];   /* data rows of each chart (kq_rep_charts order); 0: not drawn */
    int chart_drawn[3];
    char chart_note[256];
} kq_rep;

static const char *const kq_rep_bx_names[6] = {"bitexact-native", "bitexact-neoverse-n1", "bitexact-cortex-a72",
                                               "bitexact-model-native", "bitexact-model-neoverse-n1",
                                               "bitexact-model-cortex-a72"};

static void kq_rep_upper(const char *s, char *out, size_t len) {
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++) out[i] = (char)toupper((unsigned char)s[i]);
    out[i] = 0;
}

static int kq_rep_load_all(kq_rep *r, char *err, size_t errlen) {
    const char *w = r->o->work;
    r->manifest = kq_rep_load(w, "manifest.json");
    if (!r->manifest) {
        kq_rep_err(err, errlen, "%s/manifest.json missing or not JSON (written by validation/validate.sh)", w);
        return -1;
    }
    const char *model = kq_rep_str(r->manifest, "model");
    snprintf(r->model, sizeof(r->model), "%s", model ? model : "model");
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(r->manifest, "columns");
    const cJSON *c = NULL;
    cJSON_ArrayForEach(c, cols) {
        if (!cJSON_IsString(c) || r->ncol >= KQ_REP_MAX_COLS) continue;
        kq_rep_col *k = &r->col[r->ncol++];
        snprintf(k->name, sizeof(k->name), "%s", c->valuestring);
        kq_rep_upper(k->name, k->label, sizeof(k->label));
        char f[128];
        snprintf(f, sizeof(f), "inspect-%s.json", k->name);
        k->inspect = kq_rep_load(w, f);
        snprintf(f, sizeof(f), "ppl-%s.json", k->name);
        k->ppl = kq_rep_load(w, f);
        snprintf(f, sizeof(f), "bench-%s.json", k->name);
        k->bench = kq_rep_load(w, f);
    }
    if (r->ncol == 0) {
        kq_rep_err(err, errlen, "%s/manifest.json lists no columns", w);
        return -1;
    }
    r->tol_model = kq_rep_load(w, "tolerance-model.json");
    r->tol = kq_rep_load(w, "tolerance.json");
    for (int i = 0; i < 6; i++) {
        char f[64];
        snprintf(f, sizeof(f), "%s.json", kq_rep_bx_names[i]);
        r->bx[i] = kq_rep_load(w, f);
    }
    if (r->o->cycles) {
        char *text = kq_rep_slurp(r->o->cycles, NULL);
        if (text) r->cycles = cJSON_Parse(text);
        free(text);
    }
    return 0;
}

static void kq_rep_free(kq_rep *r) {
    cJSON_Delete(r->manifest);
    cJSON_Delete(r->tol_model);
    cJSON_Delete(r->tol);
    cJSON_Delete(r->cycles);
    for (int i = 0; i < 6; i++) cJSON_Delete(r->bx[i]);
    for (int i = 0; i < r->ncol; i++) {
        cJSON_Delete(r->col[i].inspect);
        cJSON_Delete(r->col[i].ppl);
        cJSON_Delete(r->col[i].bench);
    }
}

/* ==== formatting ==================================================================================== */

#define KQ_NM "not measured"

static void kq_rep_size(double bytes, char *out, size_t len) {
    if (!isfinite(bytes)) snprintf(out, len, KQ_NM " (kq inspect)");
    else if (bytes >= 1024.0 * 1024.0 * 1024.0) snprintf(out, len, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
    else if (bytes >= 1024.0 * 1024.0) snprintf(out, len, "%.2f MiB", bytes / (1024.0 * 1024.0));
    else snprintf(out, len, "%.1f KiB", bytes / 1024.0);
}

static const cJSON *kq_rep_kld(const kq_rep_col *c) { return kq_rep_find(c->ppl, "kld"); }

/* The columns' header row and separator. */
static void kq_rep_header(FILE *f, const kq_rep *r, const char *first, int skip_base) {
    fprintf(f, "| %s |", first);
    for (int i = 0; i < r->ncol; i++)
        if (!skip_base || strcmp(r->col[i].name, "f16")) fprintf(f, " %s |", r->col[i].label);
    fprintf(f, "\n|---|");
    for (int i = 0; i < r->ncol; i++)
        if (!skip_base || strcmp(r->col[i].name, "f16")) fprintf(f, "---:|");
    fprintf(f, "\n");
}

static const char *const kq_rep_charts[3] = {"ppl_vs_bpw", "ms_vs_size", "tensor_error"};

/* ==== report.md sections ============================================================================= */

static void kq_rep_main_table(FILE *f, const kq_rep *r) {
    fprintf(f, "| Model | Measure |");
    for (int i = 0; i < r->ncol; i++) fprintf(f, " %s |", r->col[i].label);
    fprintf(f, "\n|---|---|");
    for (int i = 0; i < r->ncol; i++) fprintf(f, "---:|");
    fprintf(f, "\n| %s | perplexity |", r->model);
    for (int i = 0; i < r->ncol; i++) {
        const double p = kq_rep_num(r->col[i].ppl, "ppl"), se = kq_rep_num(r->col[i].ppl, "ppl_stderr");
        if (isfinite(p)) fprintf(f, " %.4f ± %.4f |", p, se);
        else fprintf(f, " " KQ_NM " (kq perplexity) |");
    }
    fprintf(f, "\n| %s | file size |", r->model);
    for (int i = 0; i < r->ncol; i++) {
        char s[64];
        kq_rep_size(kq_rep_num(r->col[i].inspect, "file_size"), s, sizeof(s));
        fprintf(f, " %s |", s);
    }
    fprintf(f, "\n| %s | ms/tok |", r->model);
    for (int i = 0; i < r->ncol; i++) {
        const double ms = kq_rep_num(kq_rep_find(r->col[i].bench, "tg_ms_per_token"), "median");
        if (isfinite(ms)) fprintf(f, " %.3f |", ms);
        else fprintf(f, " " KQ_NM " (kq bench) |");
    }
    fprintf(f, "\n\n");
}

static const char *kq_rep_host_label(const kq_rep *r) {
    for (int i = 0; i < r->ncol; i++) {
        const char *l = kq_rep_str(kq_rep_find(r->col[i].bench, "host"), "label");
        if (l) return l;
    }
    return NULL;
}

static void kq_rep_notes(FILE *f, const kq_rep *r) {
    char *eval = kq_rep_read_text(r->o->work, "eval.txt");
    if (eval) eval[strcspn(eval, "\n")] = 0;
    const double ctx = kq_rep_num(r->manifest, "ctx"), chunks = kq_rep_num(r->manifest, "chunks");
    double scored = NAN;
    for (int i = 0; i < r->ncol && !isfinite(scored); i++) scored = kq_rep_num(r->col[i].ppl, "scored");
    fprintf(f, "- **perplexity**: %s; %.0f windows of %.0f tokens (asked), each from an empty KV cache (F16), "
               "the second half of every window scored as `llama-perplexity` does (%.0f tokens scored); ± is the "
               "standard error.\n",
            eval ? eval : KQ_NM " (no evaluation text recorded)", chunks, ctx, scored);
    const char *host = kq_rep_host_label(r);
    fprintf(f, "- **ms/tok**: median time per generated token from `kq bench` (%s). These are timings on **this "
               "host: %s**. They are not Kunpeng 920 figures; the Kunpeng 920 estimates are the llvm-mca cycle "
               "counts below.\n",
            kq_rep_str(r->manifest, "bench_args") ? kq_rep_str(r->manifest, "bench_args") : "",
            host ? host : KQ_NM " (kq bench did not run)");
    fprintf(f, "- **file size**: the GGUF file `kq convert` wrote (tensors a type cannot hold fall back to q8_0 or "
               "f16, see the per-tensor table).\n\n");
    free(eval);
}

static void kq_rep_kld_table(FILE *f, const kq_rep *r) {
    fprintf(f, "## Against F16 (the KL-divergence base)\n\n");
    fprintf(f, "Every file is scored on the same tokens as F16, whose log-probabilities were saved with "
               "`--save-logits` (llama.cpp's `--kl-divergence-base` format). Δln p = ln p(file) − ln p(F16) of "
               "each scored token: negative means worse than F16; the difference is significant at 5%% when "
               "|mean| > 1.96 × stderr.\n\n");
    kq_rep_header(f, r, "Measure", 1);
    static const char *const rows[] = {"KLD mean ± stderr", "KLD median", "KLD p99", "KLD max", "top-1 agreement",
                                       "Δln p ± stderr", "Δln p significant (5%)"};
    for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
        fprintf(f, "| %s |", rows[k]);
        for (int i = 0; i < r->ncol; i++) {
            if (!strcmp(r->col[i].name, "f16")) continue;
            const cJSON *kl = kq_rep_kld(&r->col[i]);
            if (!kl) {
                fprintf(f, " " KQ_NM " |");
                continue;
            }
            switch (k) {
            case 0: fprintf(f, " %.6f ± %.6f |", kq_rep_num(kl, "mean"), kq_rep_num(kl, "stderr")); break;
            case 1: fprintf(f, " %.6f |", kq_rep_num(kl, "median")); break;
            case 2: fprintf(f, " %.6f |", kq_rep_num(kl, "p99")); break;
            case 3: fprintf(f, " %.6f |", kq_rep_num(kl, "max")); break;
            case 4: fprintf(f, " %.2f %% ± %.2f |", kq_rep_num(kl, "top1_pct"), kq_rep_num(kl, "top1_pct_stderr")); break;
            case 5: fprintf(f, " %+.6f ± %.6f |", kq_rep_num(kl, "dlnp_mean"), kq_rep_num(kl, "dlnp_stderr")); break;
            default: {
                const cJSON *s = kq_rep_find(kl, "dlnp_significant");
                fprintf(f, " %s (z = %.2f) |", cJSON_IsTrue(s) ? "yes" : "no", kq_rep_num(kl, "dlnp_z"));
            }
            }
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\n");
}

/* "q4_0 ×32, f16 ×5, f32 ×11" from kq inspect's "types". */
static void kq_rep_types(const cJSON *inspect, char *out, size_t len) {
    const cJSON *types = kq_rep_find(inspect, "types"), *t = NULL;
    size_t at = 0;
    out[0] = 0;
    cJSON_ArrayForEach(t, types) {
        const double n = kq_rep_num(t, "tensors");
        at += (size_t)snprintf(out + at, at < len ? len - at : 0, "%s%s ×%.0f", at ? ", " : "", t->string, n);
        if (at >= len) break;
    }
    if (!out[0]) snprintf(out, len, KQ_NM);
}

static void kq_rep_size_speed(FILE *f, const kq_rep *r) {
    fprintf(f, "## Size and speed\n\n");
    kq_rep_header(f, r, "Measure", 0);
    static const char *const rows[] = {"bits per weight (whole file)", "tensors by type", "parameters",
                                       "ms/tok median [95% CI]", "pp tokens/s median [95% CI]",
                                       "memory read bandwidth (GB/s)", "weights read per token",
                                       "roofline fraction"};
    for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
        fprintf(f, "| %s |", rows[k]);
        for (int i = 0; i < r->ncol; i++) {
            const kq_rep_col *c = &r->col[i];
            char s[256];
            if (k < 3 && !c->inspect) {
                fprintf(f, " " KQ_NM " |");
                continue;
            }
            if (k >= 3 && !c->bench) {
                fprintf(f, " " KQ_NM " |");
                continue;
            }
            switch (k) {
            case 0: fprintf(f, " %.3f |", kq_rep_num(c->inspect, "bits_per_weight")); break;
            case 1: kq_rep_types(c->inspect, s, sizeof(s)); fprintf(f, " %s |", s); break;
            case 2: fprintf(f, " %.0f |", kq_rep_num(c->inspect, "parameters")); break;
            case 3:
            case 4: {
                const cJSON *st = kq_rep_find(c->bench, k == 3 ? "tg_ms_per_token" : "pp_tokens_per_s");
                const cJSON *ci = cJSON_GetObjectItemCaseSensitive(st, "ci95");
                const char *fmt = k == 3 ? "%.3f" : "%.1f";
                fprintf(f, " ");
                fprintf(f, fmt, kq_rep_num(st, "median"));
                if (cJSON_IsArray(ci) && cJSON_GetArraySize(ci) == 2) {
                    fprintf(f, " [");
                    fprintf(f, fmt, cJSON_GetArrayItem(ci, 0)->valuedouble);
                    fprintf(f, ", ");
                    fprintf(f, fmt, cJSON_GetArrayItem(ci, 1)->valuedouble);
                    fprintf(f, "]");
                } else {
                    fprintf(f, " [CI n/a: %.0f runs]", kq_rep_num(st, "runs"));
                }
                fprintf(f, " |");
                break;
            }
            case 5: fprintf(f, " %.2f |", kq_rep_num(c->bench, "bandwidth_gbs")); break;
            case 6: kq_rep_size(kq_rep_num(c->bench, "weight_bytes_per_token"), s, sizeof(s)); fprintf(f, " %s |", s); break;
            default: {
                const double fr = kq_rep_num(c->bench, "roofline_fraction");
                const char *note = kq_rep_str(c->bench, "roofline_note");
                if (isfinite(fr)) fprintf(f, " %.3f |", fr);
                else fprintf(f, " %s |", note ? note : "n/a");
            }
            }
        }
        fprintf(f, "\n");
    }
    const char *note = NULL;
    for (int i = 0; i < r->ncol && !note; i++) note = kq_rep_str(r->col[i].bench, "roofline_note");
    fprintf(f, "\nroofline fraction = (weight bytes read per token / measured read bandwidth) / measured ms per "
               "token; n/a when the weights fit in the last-level cache (the bound says nothing then)%s%s.\n\n",
            note ? ". Bench's note: " : "", note ? note : "");
}

/* ---- per-tensor error ---- */

typedef struct {
    char name[80];
    char shape[40];
    double err2[KQ_REP_MAX_COLS], x2[KQ_REP_MAX_COLS];
    char fallback[KQ_REP_MAX_COLS][24]; /* the stored type when it is not the column's */
} kq_rep_trow;

/* "blk.12.attn_q.weight" -> "blk.*.attn_q.weight" (for grouping). */
static void kq_rep_group_name(const char *name, char *out, size_t len) {
    if (!strncmp(name, "blk.", 4)) {
        const char *p = name + 4;
        while (isdigit((unsigned char)*p)) p++;
        if (*p == '.') {
            snprintf(out, len, "blk.*%s", p);
            return;
        }
    }
    snprintf(out, len, "%s", name);
}

static int kq_rep_qcol(const kq_rep *r, const char *type) {
    const cJSON *q = NULL;
    int i = 0;
    cJSON_ArrayForEach(q, cJSON_GetObjectItemCaseSensitive(r->manifest, "qtypes")) {
        if (cJSON_IsString(q) && !strcmp(q->valuestring, type)) return i;
        i++;
    }
    return -1;
}

static kq_rep_trow *kq_rep_tensor_rows(const kq_rep *r, int group, int *nrows) {
    const cJSON *arr = kq_rep_find(r->tol_model, "tensors"), *t = NULL;
    const int n = cJSON_GetArraySize(arr);
    kq_rep_trow *rows = calloc((size_t)(n ? n : 1), sizeof(*rows));
    *nrows = 0;
    if (!rows) return NULL;
    cJSON_ArrayForEach(t, arr) {
        const char *name = kq_rep_str(t, "tensor"), *type = kq_rep_str(t, "type"), *chk = kq_rep_str(t, "checked_type");
        const int q = type ? kq_rep_qcol(r, type) : -1;
        if (!name || q < 0 || q >= KQ_REP_MAX_COLS) continue;
        char key[80];
        if (group) kq_rep_group_name(name, key, sizeof(key));
        else snprintf(key, sizeof(key), "%s", name);
        int k = 0;
        while (k < *nrows && strcmp(rows[k].name, key)) k++;
        if (k == *nrows) {
            snprintf(rows[k].name, sizeof(rows[k].name), "%s", key);
            const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
            if (cJSON_GetArraySize(sh) == 2)
                snprintf(rows[k].shape, sizeof(rows[k].shape), "%.0f × %.0f", cJSON_GetArrayItem(sh, 0)->valuedouble,
                         cJSON_GetArrayItem(sh, 1)->valuedouble);
            (*nrows)++;
        }
        const double rel = kq_rep_num(t, "rel_frob"), norm = kq_rep_num(t, "norm");
        if (isfinite(rel) && isfinite(norm)) {
            rows[k].err2[q] += (rel * norm) * (rel * norm);
            rows[k].x2[q] += norm * norm;
        }
        if (chk && strcmp(chk, type)) snprintf(rows[k].fallback[q], sizeof(rows[k].fallback[q]), "%s", chk);
    }
    return rows;
}

static int kq_rep_nq(const kq_rep *r) { return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r->manifest, "qtypes")); }

static void kq_rep_tensor_table(FILE *f, const kq_rep *r) {
    fprintf(f, "## Per-tensor quantization error\n\n");
    if (!r->tol_model) {
        fprintf(f, KQ_NM ": `kq check tolerance --gguf` did not run (no tolerance-model.json).\n\n");
        return;
    }
    const cJSON *arr = kq_rep_find(r->tol_model, "tensors");
    const int nq = kq_rep_nq(r);
    const int group = cJSON_GetArraySize(arr) / (nq ? nq : 1) > KQ_REP_GROUP_ABOVE;
    const char *src = kq_rep_str(r->tol_model, "gguf");
    fprintf(f, "Relative Frobenius error ‖dequant(quant(x)) − x‖ / ‖x‖ of each 2-D weight of `%s`, quantized by the "
               "reference quantizers (INT-N scale: %s). A type that cannot hold a tensor's rows is measured as the "
               "type `kq convert` stores instead, shown in brackets.%s\n\n",
            src ? src : "?", kq_rep_str(r->tol_model, "scale") ? kq_rep_str(r->tol_model, "scale") : "?",
            group ? " Tensors of the same kind are grouped over the blocks (blk.*)." : "");
    fprintf(f, "| tensor | shape |");
    const cJSON *q = NULL;
    cJSON_ArrayForEach(q, cJSON_GetObjectItemCaseSensitive(r->manifest, "qtypes")) {
        char up[64];
        kq_rep_upper(q->valuestring, up, sizeof(up));
        fprintf(f, " %s |", up);
    }
    fprintf(f, "\n|---|---|");
    for (int i = 0; i < nq; i++) fprintf(f, "---:|");
    fprintf(f, "\n");
    int nrows = 0;
    kq_rep_trow *rows = kq_rep_tensor_rows(r, group, &nrows);
    for (int k = 0; rows && k < nrows; k++) {
        fprintf(f, "| %s | %s |", rows[k].name, group ? "" : rows[k].shape);
        for (int i = 0; i < nq; i++) {
            if (!(rows[k].x2[i] > 0.0)) {
                fprintf(f, " " KQ_NM " |");
                continue;
            }
            fprintf(f, " %.5f", sqrt(rows[k].err2[i] / rows[k].x2[i]));
            if (rows[k].fallback[i][0]) fprintf(f, " (%s)", rows[k].fallback[i]);
            fprintf(f, " |");
        }
        fprintf(f, "\n");
    }
    free(rows);
    fprintf(f, "| **whole model** | |");
    for (int i = 0; i < nq; i++) {
        const cJSON *s = cJSON_GetArrayItem(kq_rep_find(r->tol_model, "summary"), i);
        const double rel = kq_rep_num(s, "rel_frob"), snr = kq_rep_num(s, "snr_db");
        if (isfinite(rel)) fprintf(f, " **%.5f** (SNR %.1f dB) |", rel, snr);
        else fprintf(f, " " KQ_NM " |");
    }
    fprintf(f, "\n\n");
}

/* ---- bit-exactness ---- */

static void kq_rep_bitexact(FILE *f, const kq_rep *r) {
    fprintf(f, "## Bit-exactness of the NEON kernels\n\n");
    fprintf(f, "`kq check bitexact --impl neon`: every quantize_row byte, dequantize_row float and vec_dot result of "
               "the optimized kernels compared with the reference (no tolerance). Generic inputs: adversarial rows "
               "(%s); model tensors: the model's own weights (`--gguf`), quantized to every column's type.\n\n",
            cJSON_IsTrue(kq_rep_find(r->manifest, "full_bitexact")) ? "full set" : "--quick set");
    fprintf(f, "| run | inputs | implementation | comparisons | mismatches | native kernels identical | reference "
               "fallbacks | result |\n|---|---|---|---:|---:|---:|---:|---|\n");
    int any = 0;
    for (int i = 0; i < 6; i++) {
        const cJSON *b = r->bx[i];
        if (!b) continue;
        any = 1;
        const char *run = strstr(kq_rep_bx_names[i], "native") ? "native aarch64"
                          : strstr(kq_rep_bx_names[i], "neoverse") ? "qemu -cpu neoverse-n1"
                                                                   : "qemu -cpu cortex-a72";
        const double mism = kq_rep_num(b, "mismatches");
        fprintf(f, "| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %s |\n", run,
                i >= 3 ? "model tensors" : "generic", kq_rep_str(b, "impl") ? kq_rep_str(b, "impl") : "?",
                kq_rep_num(b, "cases"), mism, kq_rep_num(b, "native_pass"), kq_rep_num(b, "fallback"),
                mism == 0 && kq_rep_num(b, "failed") == 0 ? "**identical**" : "**MISMATCH**");
    }
    if (!any) fprintf(f, "| " KQ_NM " | | | | | | | no bitexact JSON in the work folder |\n");
    fprintf(f, "\n");
}

/* ---- Kunpeng 920 cycles ---- */

static int kq_rep_kernel_for(const char *kernel, const char *type) {
    char pre[80];
    snprintf(pre, sizeof(pre), "vec_dot_%s_", type);
    if (!strncmp(kernel, pre, strlen(pre))) return 1;
    const kq_type_traits *t = kq_type_by_name(type);
    const kq_type_traits *a = t && t->vec_dot_type != KQ_TYPE_NONE ? kq_ref_traits(t->vec_dot_type) : NULL;
    if (!a) return 0;
    snprintf(pre, sizeof(pre), "quantize_row_%s", a->name);
    return !strcmp(kernel, pre);
}

static void kq_rep_cycles(FILE *f, const kq_rep *r) {
    fprintf(f, "## Kunpeng 920 cycle estimates of the kernels used\n\n");
    if (!r->cycles) {
        fprintf(f, KQ_NM ": %s not found (`make kunpeng-cycles`).\n\n", r->o->cycles ? r->o->cycles : "no cycles file given");
        return;
    }
    fprintf(f, "llvm-mca `-mcpu=tsv110` (TaiShan v110, the Kunpeng 920 core) on the shipped NEON loops (`%s`): "
               "cycles per 32 weights of the steady-state loop and the weight bandwidth one core could sustain at "
               "2.6 GHz. Estimates from a static model, not measurements. neon-dotprod (SDOT) is what Kunpeng 920 "
               "runs; neon-plain is the ARMv8.0 path (Kunpeng 916).\n\n", r->o->cycles);
    fprintf(f, "| column | type stored | kernel | implementation | cycles / 32 weights | GB/s per core (est.) |\n"
               "|---|---|---|---|---:|---:|\n");
    for (int i = 0; i < r->ncol; i++) {
        const cJSON *types = kq_rep_find(r->col[i].inspect, "types"), *t = NULL;
        cJSON_ArrayForEach(t, types) {
            /* f32 tensors of a quantized file are norms (no matmul): listed for the F32 column only */
            if (!t->string || (!strcmp(t->string, "f32") && strcmp(r->col[i].name, "f32"))) continue;
            int found = 0;
            const cJSON *k = NULL;
            cJSON_ArrayForEach(k, kq_rep_find(r->cycles, "kernels")) {
                const char *name = kq_rep_str(k, "name"), *impl = kq_rep_str(k, "impl");
                if (!name || !impl || !kq_rep_kernel_for(name, t->string)) continue;
                found = 1;
                fprintf(f, "| %s | %s | %s | %s | %.2f%s | %.2f |\n", r->col[i].label, t->string, name, impl,
                        kq_rep_num(k, "cycles_per_32"), cJSON_IsTrue(kq_rep_find(k, "approximate")) ? " (approx.)" : "",
                        kq_rep_num(k, "gbs_per_core"));
            }
            if (!found)
                fprintf(f, "| %s | %s | no llvm-mca region (kunpeng_cycles.sh does not measure this type's kernels) | | | |\n",
                        r->col[i].label, t->string);
        }
    }
    fprintf(f, "\n");
}

/* ---- host, versions, commands ---- */

static void kq_rep_code_file(FILE *f, const kq_rep *r, const char *name, const char *lang) {
    char *text = kq_rep_read_text(r->o->work, name);
    if (!text) {
        fprintf(f, "(%s: " KQ_NM ")\n\n", name);
        return;
    }
    fprintf(f, "```%s\n%s%s```\n\n", lang, text, text[0] && text[strlen(text) - 1] == '\n' ? "" : "\n");
    free(text);
}

static void kq_rep_host(FILE *f, const kq_rep *r) {
    fprintf(f, "## Host\n\n");
    const kq_rep_col *c = NULL;
    for (int i = 0; i < r->ncol && !c; i++)
        if (r->col[i].bench) c = &r->col[i];
    if (!c) {
        fprintf(f, KQ_NM ": `kq bench` did not run, so no timing was taken.\n\n");
    } else {
        const cJSON *h = kq_rep_find(c->bench, "host");
        fprintf(f, "Timings (ms/tok, pp tokens/s, bandwidth) were taken on **%s** (machine %s, CPU %s%s; last-level "
                   "cache %.0f KiB, %s), kernels `%s`, %.0f threads. They are host timings, not Kunpeng 920 figures.\n\n",
                kq_rep_str(h, "label") ? kq_rep_str(h, "label") : "?", kq_rep_str(h, "machine") ? kq_rep_str(h, "machine") : "?",
                kq_rep_str(h, "cpu") ? kq_rep_str(h, "cpu") : "?", cJSON_IsTrue(kq_rep_find(h, "emulated")) ? ", emulated" : "",
                kq_rep_num(h, "llc_bytes") / 1024.0, kq_rep_str(h, "llc_source") ? kq_rep_str(h, "llc_source") : "?",
                kq_rep_str(c->bench, "impl") ? kq_rep_str(c->bench, "impl") : "?", kq_rep_num(c->bench, "threads"));
    }
    fprintf(f, "Perplexity and KLD do not depend on the host: every implementation gives bit-identical logits "
               "(DESIGN.md's reduction contract).\n\n");
}

static void kq_rep_versions(FILE *f, const kq_rep *r) {
    fprintf(f, "## Versions\n\n");
    kq_rep_code_file(f, r, "version.txt", "text");
    char *a64 = kq_rep_read_text(r->o->work, "version-aarch64.txt");
    if (a64) {
        fprintf(f, "aarch64 binary (under qemu -cpu neoverse-n1):\n\n");
        free(a64);
        kq_rep_code_file(f, r, "version-aarch64.txt", "text");
    }
    fprintf(f, "Charts: %s.\n\n", r->chart_note);
}

static void kq_rep_commands(FILE *f, const kq_rep *r) {
    fprintf(f, "## Reproduce\n\n");
    fprintf(f, "From the repository root (a fresh clone; `make validate` installs what is missing):\n\n");
    kq_rep_code_file(f, r, "make-command.txt", "sh");
    fprintf(f, "The commands it ran, in order (cached conversions are marked):\n\n");
    kq_rep_code_file(f, r, "commands.sh", "sh");
    fprintf(f, "Then `kq report -w %s -o %s%s%s` wrote this folder. The pipeline took %.0f s.\n", r->o->work, r->o->out,
            r->o->cycles ? " --cycles " : "", r->o->cycles ? r->o->cycles : "", kq_rep_num(r->manifest, "seconds"));
}

static void kq_rep_charts_md(FILE *f, const kq_rep *r) {
    static const char *const titles[3] = {"perplexity vs bits per weight", "ms per token vs file size",
                                          "per-tensor error"};
    static const char *const why[3] = {"no perplexity figures (kq perplexity did not run)",
                                       "no ms/tok figures (kq bench did not run)",
                                       "no per-tensor figures (kq check tolerance --gguf did not run)"};
    fprintf(f, "## Charts\n\n");
    if (!r->has_charts) fprintf(f, "Charts %s.\n\n", r->chart_note);
    for (int i = 0; i < 3; i++) {
        if (r->chart_drawn[i])
            fprintf(f, "![%s](%s.png)\n\n`%s.png`, `%s.svg` (data: `%s`).\n\n", titles[i], kq_rep_charts[i],
                    kq_rep_charts[i], kq_rep_charts[i], i == 0 ? "ppl_bpw.dat" : i == 1 ? "ms_size.dat" : "tensor_error.dat");
        else if (r->o->gnuplot && !r->chart_points[i])
            fprintf(f, "%s: not drawn, %s.\n\n", titles[i], why[i]);
    }
    if (r->has_charts) fprintf(f, "gnuplot script: `charts.gp` (run in this folder).\n\n");
}

static char *kq_rep_markdown(const kq_rep *r, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    kq_rep_main_table(f, r);
    fprintf(f, "# kq validation report: %s\n\n", r->model);
    kq_rep_notes(f, r);
    kq_rep_kld_table(f, r);
    kq_rep_tensor_table(f, r);
    kq_rep_size_speed(f, r);
    kq_rep_cycles(f, r);
    kq_rep_bitexact(f, r);
    kq_rep_charts_md(f, r);
    kq_rep_host(f, r);
    kq_rep_versions(f, r);
    kq_rep_commands(f, r);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ==== report.json ===================================================================================== */

static void kq_rep_add_num(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static void kq_rep_add_copy(cJSON *o, const char *key, const cJSON *v) {
    if (v) cJSON_AddItemToObject(o, key, cJSON_Duplicate(v, 1));
    else cJSON_AddNullToObject(o, key);
}

static cJSON *kq_rep_json_table(const kq_rep *r) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < r->ncol; i++) {
        const kq_rep_col *c = &r->col[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "column", c->name);
        kq_rep_add_num(o, "ppl", kq_rep_num(c->ppl, "ppl"));
        kq_rep_add_num(o, "ppl_stderr", kq_rep_num(c->ppl, "ppl_stderr"));
        kq_rep_add_num(o, "file_size", kq_rep_num(c->inspect, "file_size"));
        kq_rep_add_num(o, "bits_per_weight", kq_rep_num(c->inspect, "bits_per_weight"));
        const cJSON *tg = kq_rep_find(c->bench, "tg_ms_per_token"), *pp = kq_rep_find(c->bench, "pp_tokens_per_s");
        kq_rep_add_num(o, "ms_per_token", kq_rep_num(tg, "median"));
        kq_rep_add_copy(o, "ms_per_token_ci95", cJSON_GetObjectItemCaseSensitive(tg, "ci95"));
        kq_rep_add_num(o, "pp_tokens_per_s", kq_rep_num(pp, "median"));
        kq_rep_add_num(o, "bandwidth_gbs", kq_rep_num(c->bench, "bandwidth_gbs"));
        kq_rep_add_num(o, "roofline_fraction", kq_rep_num(c->bench, "roofline_fraction"));
        const char *note = kq_rep_str(c->bench, "roofline_note");
        if (note) cJSON_AddStringToObject(o, "roofline_note", note);
        kq_rep_add_copy(o, "kld", kq_rep_kld(c));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static char *kq_rep_json(const kq_rep *r, const char *md_host) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", r->model);
    kq_rep_add_copy(root, "columns", cJSON_GetObjectItemCaseSensitive(r->manifest, "columns"));
    cJSON_AddItemToObject(root, "table", kq_rep_json_table(r));
    if (md_host) cJSON_AddStringToObject(root, "timing_host", md_host);
    cJSON_AddStringToObject(root, "timing_note", "ms/tok, pp tokens/s and bandwidth are timings on the host named in "
                                                 "timing_host, not Kunpeng 920 figures");
    cJSON *in = cJSON_AddObjectToObject(root, "inputs");
    kq_rep_add_copy(in, "manifest", r->manifest);
    static const char *const kinds[3] = {"inspect", "perplexity", "bench"};
    for (int k = 0; k < 3; k++) {
        cJSON *o = cJSON_AddObjectToObject(in, kinds[k]);
        for (int i = 0; i < r->ncol; i++)
            kq_rep_add_copy(o, r->col[i].name, k == 0 ? r->col[i].inspect : k == 1 ? r->col[i].ppl : r->col[i].bench);
    }
    cJSON *bx = cJSON_AddObjectToObject(in, "bitexact");
    for (int i = 0; i < 6; i++)
        if (r->bx[i]) kq_rep_add_copy(bx, kq_rep_bx_names[i], r->bx[i]);
    kq_rep_add_copy(in, "tolerance_model", r->tol_model);
    kq_rep_add_copy(in, "tolerance_synthetic", r->tol);
    kq_rep_add_copy(in, "kunpeng_cycles", r->cycles);
    static const char *const texts[5] = {"eval.txt", "version.txt", "version-aarch64.txt", "make-command.txt",
                                         "commands.sh"};
    cJSON *tx = cJSON_AddObjectToObject(in, "text");
    for (int i = 0; i < 5; i++) {
        char *t = kq_rep_read_text(r->o->work, texts[i]);
        if (t) cJSON_AddStringToObject(tx, texts[i], t);
        free(t);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

/* ==== charts ========================================================================================== */

static FILE *kq_rep_open_tmp(const char *dir, const char *name, char *tmp, size_t len) {
    snprintf(tmp, len, "%s/%s.kqtmp.XXXXXX", dir, name);
    const int fd = mkstemp(tmp);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
    }
    return f;
}

static int kq_rep_close_rename(FILE *f, const char *tmp, const char *dir, const char *name) {
    char path[KQ_REP_PATH];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    const int bad = fclose(f) != 0;
    if (bad || chmod(tmp, 0644) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Data files: label bpw ppl se / label MiB ms lo hi / index tensor rel_frob per qtype. */
static int kq_rep_chart_data(kq_rep *r) {
    const char *dir = r->o->out;
    char tmp[KQ_REP_PATH + 32];
    FILE *f = kq_rep_open_tmp(dir, "ppl_bpw.dat", tmp, sizeof(tmp));
    if (!f) return -1;
    fprintf(f, "# columns bits_per_weight ppl ppl_stderr (columns at the same point share one label)\n");
    for (int i = 0; i < r->ncol; i++) {
        const double b = kq_rep_num(r->col[i].inspect, "bits_per_weight"), p = kq_rep_num(r->col[i].ppl, "ppl");
        int dup = 0; /* an earlier column at the same point already carries this one's name */
        for (int j = 0; j < i && !dup; j++)
            dup = kq_rep_num(r->col[j].inspect, "bits_per_weight") == b && kq_rep_num(r->col[j].ppl, "ppl") == p;
        if (!isfinite(b) || !isfinite(p) || dup) continue;
        char label[256];
        size_t at = (size_t)snprintf(label, sizeof(label), "%s", r->col[i].label);
        for (int j = i + 1; j < r->ncol && at < sizeof(label); j++)
            if (kq_rep_num(r->col[j].inspect, "bits_per_weight") == b && kq_rep_num(r->col[j].ppl, "ppl") == p)
                at += (size_t)snprintf(label + at, sizeof(label) - at, " = %s", r->col[j].label);
        fprintf(f, "\"%s\" %.6g %.8g %.8g\n", label, b, p, kq_rep_num(r->col[i].ppl, "ppl_stderr"));
        r->chart_points[0]++;
    }
    if (kq_rep_close_rename(f, tmp, dir, "ppl_bpw.dat") != 0) return -1;
    if (!(f = kq_rep_open_tmp(dir, "ms_size.dat", tmp, sizeof(tmp)))) return -1;
    fprintf(f, "# column file_MiB ms_per_token ci_lo ci_hi (min/max when no CI)\n");
    for (int i = 0; i < r->ncol; i++) {
        const cJSON *tg = kq_rep_find(r->col[i].bench, "tg_ms_per_token");
        const double sz = kq_rep_num(r->col[i].inspect, "file_size"), ms = kq_rep_num(tg, "median");
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(tg, "ci95");
        double lo = kq_rep_num(tg, "min"), hi = kq_rep_num(tg, "max");
        if (cJSON_GetArraySize(ci) == 2) lo = cJSON_GetArrayItem(ci, 0)->valuedouble, hi = cJSON_GetArrayItem(ci, 1)->valuedouble;
        if (isfinite(sz) && isfinite(ms)) {
            fprintf(f, "\"%s\" %.6g %.6g %.6g %.6g\n", r->col[i].label, sz / (1024.0 * 1024.0), ms, lo, hi);
            r->chart_points[1]++;
        }
    }
    if (kq_rep_close_rename(f, tmp, dir, "ms_size.dat") != 0) return -1;
    if (!(f = kq_rep_open_tmp(dir, "tensor_error.dat", tmp, sizeof(tmp)))) return -1;
    fprintf(f, "index tensor");
    const cJSON *q = NULL;
    cJSON_ArrayForEach(q, cJSON_GetObjectItemCaseSensitive(r->manifest, "qtypes")) fprintf(f, " %s", q->valuestring);
    fprintf(f, "\n");
    const int nq = kq_rep_nq(r);
    const int group = cJSON_GetArraySize(kq_rep_find(r->tol_model, "tensors")) / (nq ? nq : 1) > KQ_REP_GROUP_ABOVE;
    int nrows = 0;
    kq_rep_trow *rows = r->tol_model ? kq_rep_tensor_rows(r, group, &nrows) : NULL;
    for (int k = 0; rows && k < nrows; k++) {
        fprintf(f, "%d \"%s\"", k, rows[k].name);
        for (int i = 0; i < nq; i++) {
            if (rows[k].x2[i] > 0.0 && rows[k].err2[i] > 0.0) fprintf(f, " %.6g", sqrt(rows[k].err2[i] / rows[k].x2[i]));
            else fprintf(f, " NaN");
        }
        fprintf(f, "\n");
    }
    r->chart_points[2] = nrows;
    free(rows);
    return kq_rep_close_rename(f, tmp, dir, "tensor_error.dat");
}


static int kq_rep_chart_script(const kq_rep *r) {
    char tmp[KQ_REP_PATH + 32];
    FILE *f = kq_rep_open_tmp(r->o->out, "charts.gp", tmp, sizeof(tmp));
    if (!f) return -1;
    const char *host = kq_rep_host_label(r);
    fprintf(f,
            "# gnuplot script written by kq report: run in this folder (gnuplot charts.gp).\n"
            "# Each chart goes to NAME.png.kqtmp / NAME.svg.kqtmp; kq report renames them when gnuplot succeeds.\n"
            "pngterm = (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) ? 'pngcairo noenhanced font \"sans,10\"' : 'png noenhanced'\n"
            "set grid\nset key top right\n"
            "set offsets graph 0.08, graph 0.08, graph 0.1, graph 0.1\n");
    if (r->chart_points[0])
        fprintf(f,
            "# 1. perplexity vs bits per weight\n"
            "set title '%s: perplexity vs bits per weight (whole file)'\n"
            "set xlabel 'bits per weight (whole file, fallbacks included)'\nset ylabel 'perplexity (± stderr)'\n"
            "eval('set terminal '.pngterm.' size 1000,640')\nset output 'ppl_vs_bpw.png.kqtmp'\n"
            "plot 'ppl_bpw.dat' using 2:3:4 with yerrorbars pt 7 ps 1.2 lc rgb '#1f5fa0' title 'perplexity', \\\n"
            "     '' using 2:3:1 with labels offset 0,1.2 notitle\n"
            "set terminal svg noenhanced size 1000,640 dynamic\nset output 'ppl_vs_bpw.svg.kqtmp'\nreplot\n"
            , r->model);
    if (r->chart_points[1])
        fprintf(f,
            "# 2. ms per token vs file size\n"
            "set title \"%s: generation ms/token vs file size\\n(host timings: %s; bars: 95%% CI)\"\n"
            "set xlabel 'file size (MiB)'\nset ylabel 'ms per generated token (median)'\n"
            "eval('set terminal '.pngterm.' size 1000,640')\nset output 'ms_vs_size.png.kqtmp'\n"
            "plot 'ms_size.dat' using 2:3:4:5 with yerrorbars pt 7 ps 1.2 lc rgb '#a0301f' title 'ms/token', \\\n"
            "     '' using 2:3:1 with labels offset 0,1.2 notitle\n"
            "set terminal svg noenhanced size 1000,640 dynamic\nset output 'ms_vs_size.svg.kqtmp'\nreplot\n"
            , r->model, host ? host : "not measured");
    if (r->chart_points[2])
        fprintf(f,
            "# 3. per-tensor error\n"
            "set offsets 0.5, 0.5, 0, 0\n"
            "set title '%s: per-tensor quantization error (reference quantizers)'\n"
            "set xlabel ''\nset ylabel 'relative Frobenius error ||y-x||/||x|| (log)'\nset logscale y\n"
            "set xtics rotate by 60 right font ',8'\nset bmargin 12\nset key outside right top\n"
            "set datafile missing 'NaN'\n"
            "ncols = %d\n"
            "eval('set terminal '.pngterm.' size 1200,700')\nset output 'tensor_error.png.kqtmp'\n"
            "plot for [i=3:ncols+2] 'tensor_error.dat' using 1:i:xtic(2) with linespoints pt 7 ps 0.8 title columnheader(i)\n"
            "set terminal svg noenhanced size 1200,700 dynamic\nset output 'tensor_error.svg.kqtmp'\nreplot\n"
            , r->model, kq_rep_nq(r));
    fprintf(f, "unset output\n");
    return kq_rep_close_rename(f, tmp, r->o->out, "charts.gp");
}

/* Runs gnuplot on charts.gp in the report folder; 0 when it exited 0. */
static int kq_rep_run_gnuplot(const kq_rep *r) {
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (chdir(r->o->out) != 0) _exit(126);
        execlp(r->o->gnuplot, r->o->gnuplot, "charts.gp", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void kq_rep_make_charts(kq_rep *r) {
    r->has_charts = 0;
    if (!r->o->gnuplot) {
        snprintf(r->chart_note, sizeof(r->chart_note), "not drawn (--no-charts)");
        return;
    }
    if (kq_rep_chart_data(r) != 0 || kq_rep_chart_script(r) != 0) {
        snprintf(r->chart_note, sizeof(r->chart_note), "not drawn (cannot write the data files in %s)", r->o->out);
        return;
    }
    const int rc = kq_rep_run_gnuplot(r);
    int drawn = 0, wanted = 0;
    for (int i = 0; i < 3; i++) {
        int ok = r->chart_points[i] > 0;
        wanted += ok;
        for (int k = 0; k < 2; k++) {
            char fin[KQ_REP_PATH], tmp[KQ_REP_PATH + 8];
            snprintf(fin, sizeof(fin), "%s/%s.%s", r->o->out, kq_rep_charts[i], k ? "svg" : "png");
            snprintf(tmp, sizeof(tmp), "%s.kqtmp", fin);
            if (rc == 0 && r->chart_points[i] > 0 && rename(tmp, fin) == 0) continue;
            unlink(tmp);
            ok = 0;
        }
        r->chart_drawn[i] = ok;
        drawn += ok;
    }
    r->has_charts = drawn > 0;
    if (rc == 0 && drawn == wanted) {
        char ver[128] = "gnuplot";
        FILE *p = popen("gnuplot --version 2>/dev/null", "r");
        if (p) {
            if (fgets(ver, sizeof(ver), p)) ver[strcspn(ver, "\n")] = 0;
            pclose(p);
        }
        snprintf(r->chart_note, sizeof(r->chart_note), "%s (PNG and SVG)", ver);
    } else {
        snprintf(r->chart_note, sizeof(r->chart_note),
                 rc == 127 ? "not drawn: %s not found (apt-get install gnuplot-nox)" : "not drawn: %s failed on charts.gp",
                 r->o->gnuplot);
    }
}

/* ==== entry points ===================================================================================== */

static int kq_rep_mkdirs(const char *path) {
    char p[KQ_REP_PATH];
    snprintf(p, sizeof(p), "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(p, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

int kq_report_write(const kq_report_opts *o, char *err, size_t errlen) {
    kq_rep r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    int rc = kq_rep_load_all(&r, err, errlen);
    if (rc == 0 && kq_rep_mkdirs(o->out) != 0) {
        kq_rep_err(err, errlen, "cannot create %s: %s", o->out, strerror(errno));
        rc = -1;
    }
    if (rc == 0) {
        if (!o->quiet) fprintf(stderr, "kq report: charts (gnuplot)\n");
        kq_rep_make_charts(&r);
        size_t len = 0;
        char *md = kq_rep_markdown(&r, &len);
        char *js = kq_rep_json(&r, kq_rep_host_label(&r));
        char path[KQ_REP_PATH];
        if (!md || !js) {
            kq_rep_err(err, errlen, "out of memory");
            rc = -1;
        }
        snprintf(path, sizeof(path), "%s/report.md", o->out);
        if (rc == 0) rc = kq_rep_write_atomic(path, md, len, err, errlen);
        snprintf(path, sizeof(path), "%s/report.json", o->out);
        if (rc == 0) rc = kq_rep_write_atomic(path, js, strlen(js), err, errlen);
        if (rc == 0 && !o->quiet)
            fprintf(stderr, "kq report: wrote %s/report.md, report.json%s\n", o->out,
                    r.has_charts ? ", ppl_vs_bpw, ms_vs_size, tensor_error (.png, .svg)" : " (no charts)");
        free(md);
        free(js);
    }
    kq_rep_free(&r);
    return rc;
}

/* ---- --resolve ---- */

/* "f32", "f16" or "bf16": the weights of a registry entry's source. llama2.c checkpoints are F32; a
 * Hugging Face folder says it in config.json's torch_dtype (F16 when it does not). */
static const char *kq_rep_src_dtype(const kq_reg_entry *e, const char *dir) {
    if (!strcmp(e->format, "llama2c")) return "f32";
    char path[KQ_REP_PATH + 16];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    char *text = kq_rep_slurp(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    const char *d = kq_rep_str(j, "torch_dtype");
    const char *out = !d ? "f16" : !strcmp(d, "float32") ? "f32" : !strcmp(d, "bfloat16") ? "bf16" : "f16";
    cJSON_Delete(j);
    return out;
}

static int kq_rep_resolve_one(const char *name, FILE *out, int top, char *err, size_t errlen) {
    kq_reg_entry e;
    if (kq_registry_find(name, &e, err, errlen) != 0) return -1;
    int rc = 0;
    if (top == 1) fprintf(out, "name %s\nformat %s\n", e.name, e.format);
    if (e.base[0] && e.delta[0]) {
        if (top == 1) fprintf(out, "delta_model %s + %s\n", e.base, e.delta);
        rc = kq_rep_resolve_one(e.base, out, 0, err, errlen);
        if (rc == 0) rc = kq_rep_resolve_one(e.delta, out, 2, err, errlen); /* dtype: the base's */
        kq_registry_free(&e);
        return rc;
    }
    char dir[KQ_REG_PATH], missing[512];
    if (!kq_registry_resolve(&e, dir, sizeof(dir), missing, sizeof(missing))) {
        kq_rep_err(err, errlen, "%s: files not found: expected in %s (first missing: %s). Source: %s", e.name, dir,
                   missing, e.source ? e.source : "?");
        kq_registry_free(&e);
        return -1;
    }
    if (top != 2) fprintf(out, "dtype %s\n", kq_rep_src_dtype(&e, dir));
    fprintf(out, "dir %s\n", dir);
    for (size_t i = 0; i < e.n_files; i++) fprintf(out, "file %s/%s\n", dir, e.files[i]);
    kq_registry_free(&e);
    return rc;
}

int kq_report_resolve(const char *name, FILE *out, char *err, size_t errlen) {
    return kq_rep_resolve_one(name, out, 1, err, errlen);
}

#endif
