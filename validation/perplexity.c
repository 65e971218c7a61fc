/* kq perplexity: windows, scoring, statistics and the base file (see perplexity.h and
 * docs/perplexity.md). Everything that decides a figure mirrors llama.cpp's tools/perplexity, so a
 * figure from kq and one from llama-perplexity differ only by the logits. */
#include "perplexity.h"
#include "kq_file.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define KQ_LOGITS_HEADER_BYTES 20 /* magic + 3 int32 */

/* ---- per-position scoring ----------------------------------------------------------------------- */

int kq_ppl_scored_per_window(int n_ctx) {
    return n_ctx < 3 ? 0 : n_ctx - 1 - n_ctx / 2;
}

static float kq_max_logit(const float *logits, int n_vocab, int *imax) {
    float m = logits[0];
    int im = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > m) { /* strict: the first maximum wins, as llama.cpp's argmax */
            m = logits[i];
            im = i;
        }
    if (imax) *imax = im;
    return m;
}

/* sum of expf(l_i - max): float terms, double sum, in index order (llama.cpp's order, so the
 * rounding is the same) */
static double kq_sum_exp(const float *logits, int n_vocab, float max) {
    double s = 0.0;
    for (int i = 0; i < n_vocab; i++) s += expf(logits[i] - max);
    return s;
}

double kq_ppl_nll(const float *logits, int n_vocab, int32_t tok) {
    const float max = kq_max_logit(logits, n_vocab, NULL);
    const double sum = kq_sum_exp(logits, n_vocab, max);
    const float d = logits[tok] - max; /* float, as llama.cpp subtracts before widening */
    return log(sum) - (double)d;
}

/* ---- the base file ----------------------------------------------------------------------------- */

size_t kq_logits_record_len(int n_vocab) {
    return 2 * (((size_t)n_vocab + 1) / 2) + 4;
}

void kq_logits_encode(const float *logits, int n_vocab, uint16_t *rec) {
    float max = logits[0], min = logits[0];
    for (int i = 1; i < n_vocab; i++) {
        if (logits[i] > max) max = logits[i];
        if (logits[i] < min) min = logits[i];
    }
    /* llama.cpp keeps 16 nats of range: below that a probability is < 1.2e-7 of the top one */
    if (min < max - 16) min = max - 16;
    const double sum = kq_sum_exp(logits, n_vocab, max);
    const float lse = (float)log(sum);
    const float min_log_prob = min - max - lse;
    const float scale = (max - min) / 65535.f;
    memcpy(rec, &scale, sizeof scale);
    memcpy(rec + 2, &min_log_prob, sizeof min_log_prob);
    uint16_t *q = rec + 4;
    memset(q, 0, (kq_logits_record_len(n_vocab) - 4) * sizeof *q); /* also the pad of an odd vocabulary */
    if (scale == 0) return;
    const float inv = 1 / scale;
    for (int i = 0; i < n_vocab; i++) {
        if (!(logits[i] > min)) continue;
        /* nearbyintf: round half to even, as llama.cpp's nearest_int (the 1.5*2^23 addition trick) */
        const float v = nearbyintf(inv * (logits[i] - min));
        q[i] = v >= 65535.f ? 65535 : (uint16_t)v;
    }
}

float kq_logits_decode(const uint16_t *rec, int i) {
    float scale, min_log_prob;
    memcpy(&scale, rec, sizeof scale);
    memcpy(&min_log_prob, rec + 2, sizeof min_log_prob);
    return scale * rec[4 + i] + min_log_prob;
}

static int kq_put_i32(FILE *f, int32_t v) {
    return fwrite(&v, sizeof v, 1, f) == 1 ? 0 : -1;
}

int kq_logits_header_write(FILE *f, int n_ctx, int n_vocab, int n_chunk, const int32_t *tokens, char *err,
                           size_t errlen) {
    const size_t n = (size_t)n_chunk * (size_t)n_ctx;
    if (fwrite(KQ_LOGITS_MAGIC, 1, 8, f) != 8 || kq_put_i32(f, n_ctx) || kq_put_i32(f, n_vocab) ||
        kq_put_i32(f, n_chunk) || fwrite(tokens, sizeof *tokens, n, f) != n) {
        snprintf(err, errlen, "writing the logits header: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Bytes a base file with this header must have. */
static uint64_t kq_logits_file_bytes(const kq_logits_header *h) {
    const uint64_t per = (uint64_t)kq_ppl_scored_per_window(h->n_ctx);
    return KQ_LOGITS_HEADER_BYTES + 4ull * (uint64_t)h->n_chunk * (uint64_t)h->n_ctx +
           2ull * per * (uint64_t)h->n_chunk * kq_logits_record_len(h->n_vocab);
}

int kq_logits_header_read(FILE *f, const char *name, kq_logits_header *h, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    char magic[8];
    int32_t v[3];
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, KQ_LOGITS_MAGIC, 8) != 0) {
        snprintf(err, errlen, "%s: not a logits file (llama.cpp --kl-divergence-base format starts with \"%s\")",
                 name, KQ_LOGITS_MAGIC);
        return -1;
    }
    if (fread(v, sizeof v[0], 3, f) != 3) {
        snprintf(err, errlen, "%s: truncated header", name);
        return -1;
    }
    if (v[0] < 3 || v[1] < 1 || v[2] < 1) {
        snprintf(err, errlen, "%s: bad header (n_ctx %d, n_vocab %d, n_chunk %d)", name, (int)v[0], (int)v[1],
                 (int)v[2]);
        return -1;
    }
    h->n_ctx = v[0];
    h->n_vocab = v[1];
    h->n_chunk = v[2];
    /* the size check first: a wrong header must not make us allocate gigabytes */
    const off_t here = ftello(f);
    if (here < 0 || fseeko(f, 0, SEEK_END) != 0) {
        snprintf(err, errlen, "%s: not seekable", name);
        return -1;
    }
    const off_t size = ftello(f);
    const uint64_t want = kq_logits_file_bytes(h);
    if (size < 0 || (uint64_t)size != want || fseeko(f, here, SEEK_SET) != 0) {
        snprintf(err, errlen, "%s: %s: %lld bytes, but n_ctx %d, n_vocab %d, n_chunk %d need %llu", name,
                 (uint64_t)size < want ? "truncated" : "trailing bytes", (long long)size, (int)h->n_ctx,
                 (int)h->n_vocab, (int)h->n_chunk, (unsigned long long)want);
        return -1;
    }
    const size_t n = (size_t)h->n_chunk * (size_t)h->n_ctx;
    h->tokens = malloc(n * sizeof *h->tokens);
    if (!h->tokens) {
        snprintf(err, errlen, "%s: out of memory for %zu tokens", name, n);
        return -1;
    }
    if (fread(h->tokens, sizeof *h->tokens, n, f) != n) {
        snprintf(err, errlen, "%s: truncated token list", name);
        kq_logits_header_free(h);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (h->tokens[i] < 0 || h->tokens[i] >= h->n_vocab) {
            snprintf(err, errlen, "%s: token %zu is %d, outside the vocabulary of %d", name, i, (int)h->tokens[i],
                     (int)h->n_vocab);
            kq_logits_header_free(h);
            return -1;
        }
    return 0;
}

void kq_logits_header_free(kq_logits_header *h) {
    free(h->tokens);
    h->tokens = NULL;
}

/* ---- statistics ---------------------------------------------------------------------------------- */

static int kq_cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* llama.cpp's percentile: linear interpolation at fraction * (n - 1) of the sorted values */
static double kq_percentile(const double *sorted, int64_t n, double fraction) {
    if (fraction <= 0) return sorted[0];
    if (fraction >= 1) return sorted[n - 1];
    double p = fraction * (double)(n - 1);
    const int64_t ip = (int64_t)p;
    p -= (double)ip;
    const int64_t next = ip + 1 < n ? ip + 1 : n - 1;
    return (1 - p) * sorted[ip] + p * sorted[next];
}

int kq_ppl_stats_compute(const double *x, int64_t n, kq_ppl_stats *s) {
    memset(s, 0, sizeof *s);
    s->n = n;
    if (n <= 0) return 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += x[i];
    s->mean = sum / (double)n;
    double ss = 0; /* two passes: no cancellation when the spread is small against the mean */
    for (int64_t i = 0; i < n; i++) ss += (x[i] - s->mean) * (x[i] - s->mean);
    s->se = n > 1 ? sqrt(ss / ((double)n * (double)(n - 1))) : 0.0;
    double *c = malloc((size_t)n * sizeof *c);
    if (!c) return -1;
    memcpy(c, x, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, kq_cmp_double);
    s->min = c[0];
    s->max = c[n - 1];
    s->median = kq_percentile(c, n, 0.5);
    s->p99 = kq_percentile(c, n, 0.99);
    free(c);
    return 0;
}

/* ---- the run ---------------------------------------------------------------------------------- */

int kq_ppl_check_stream(int64_t n_tokens, int n_ctx, char *err, size_t errlen) {
    if (n_tokens < 2 * (int64_t)n_ctx) {
        snprintf(err, errlen,
                 "you need at least %lld tokens to evaluate perplexity with a context of %d; the input has only %lld "
                 "(as llama-perplexity: use more text or a smaller -c)",
                 2 * (long long)n_ctx, n_ctx, (long long)n_tokens);
        return -1;
    }
    return 0;
}

/* KL(base || this), the paired ln p difference and top-1 agreement at one position. Tokens whose
 * stored log-prob is <= -16 are left out of the KL sum, as llama.cpp does, so figures compare. */
static void kq_ppl_kld_pos(const float *logits, int n_vocab, const uint16_t *rec, int32_t tok, double nll,
                           double *kld, double *dlnp, double *nll_base, int *same_top) {
    int imax;
    const float max = kq_max_logit(logits, n_vocab, &imax);
    const double lse = (double)max + log(kq_sum_exp(logits, n_vocab, max));
    int imax_base = 0;
    float lpb_max = 0;
    double k = 0;
    for (int i = 0; i < n_vocab; i++) {
        const float lpb = kq_logits_decode(rec, i);
        if (i == 0 || lpb > lpb_max) { /* the first maximum of the decoded floats, as llama.cpp */
            lpb_max = lpb;
            imax_base = i;
        }
        if (lpb > -16.f) k += exp((double)lpb) * ((double)lpb - ((double)logits[i] - lse));
    }
    const double lp_base_tok = (double)kq_logits_decode(rec, tok);
    *kld = k;
    *nll_base = -lp_base_tok;
    *dlnp = -nll - lp_base_tok;
    *same_top = imax == imax_base;
}

typedef struct {
    int32_t *window;
    float *logits;
    uint16_t *recs; /* one chunk of records (save or base) */
    double *nll_base;
} kq_ppl_work;

static void kq_ppl_work_free(kq_ppl_work *w) {
    free(w->window);
    free(w->logits);
    free(w->recs);
    free(w->nll_base);
}

static int kq_ppl_alloc(const kq_ppl_opts *o, int64_t n_scored, kq_ppl_work *w, kq_ppl_result *r) {
    const int per = kq_ppl_scored_per_window(o->n_ctx);
    w->window = malloc((size_t)o->n_ctx * sizeof *w->window);
    w->logits = malloc((size_t)o->n_ctx * (size_t)o->n_vocab * sizeof *w->logits);
    r->nll = malloc((size_t)n_scored * sizeof *r->nll);
    if (!w->window || !w->logits || !r->nll) return -1;
    if (o->save || o->base) {
        w->recs = malloc((size_t)per * kq_logits_record_len(o->n_vocab) * sizeof *w->recs);
        if (!w->recs) return -1;
    }
    if (o->base) {
        r->kld = malloc((size_t)n_scored * sizeof *r->kld);
        r->dlnp = malloc((size_t)n_scored * sizeof *r->dlnp);
        w->nll_base = malloc((size_t)n_scored * sizeof *w->nll_base);
        if (!r->kld || !r->dlnp || !w->nll_base) return -1;
    }
    return 0;
}

/* Scores one evaluated window; at is the first scored token's index in the result arrays. */
static void kq_ppl_score_window(const kq_ppl_opts *o, const int32_t *win_tokens, kq_ppl_work *w, kq_ppl_result *r,
                                int64_t at) {
    const int first = o->n_ctx / 2;
    const size_t rl = kq_logits_record_len(o->n_vocab);
    for (int j = first; j < o->n_ctx - 1; j++) {
        const float *lg = w->logits + (size_t)j * (size_t)o->n_vocab;
        const int32_t next = win_tokens[j + 1]; /* j + 1 >= 1: never the token the BOS rule replaced */
        const int64_t k = at + (j - first);
        uint16_t *rec = w->recs ? w->recs + (size_t)(j - first) * rl : NULL;
        r->nll[k] = kq_ppl_nll(lg, o->n_vocab, next);
        if (o->save) kq_logits_encode(lg, o->n_vocab, rec);
        if (o->base) {
            int same;
            kq_ppl_kld_pos(lg, o->n_vocab, rec, next, r->nll[k], &r->kld[k], &r->dlnp[k], &w->nll_base[k], &same);
            r->n_same_top += same;
        }
    }
}

static int kq_ppl_finish(kq_ppl_result *r, const double *nll_base, char *err, size_t errlen) {
    kq_ppl_stats s;
    if (kq_ppl_stats_compute(r->nll, r->n_scored, &s)) goto oom;
    r->nll_mean = s.mean;
    r->nll_se = s.se;
    r->ppl = exp(s.mean);
    r->ppl_se = r->ppl * s.se; /* d exp(x) = exp(x) dx */
    if (!r->has_base) return 0;
    if (kq_ppl_stats_compute(nll_base, r->n_scored, &s)) goto oom;
    r->ppl_base = exp(s.mean);
    r->ppl_base_se = r->ppl_base * s.se;
    if (kq_ppl_stats_compute(r->kld, r->n_scored, &r->kld_stats)) goto oom;
    if (kq_ppl_stats_compute(r->dlnp, r->n_scored, &r->dlnp_stats)) goto oom;
    const double n = (double)r->n_scored;
    r->top1 = (double)r->n_same_top / n;
    r->top1_se = n > 1 ? sqrt(r->top1 * (1 - r->top1) / (n - 1)) : 0.0;
    r->dlnp_z = r->dlnp_stats.se > 0 ? r->dlnp_stats.mean / r->dlnp_stats.se : 0.0;
    r->dlnp_significant = fabs(r->dlnp_z) > 1.96;
    return 0;
oom:
    snprintf(err, errlen, "out of memory for the statistics");
    return -1;
}

static int kq_ppl_check_opts(const kq_ppl_opts *o, const int32_t *tokens, int64_t n_tokens, char *err,
                             size_t errlen) {
    if (o->n_ctx < 3 || o->n_vocab < 1) {
        snprintf(err, errlen, "context %d is too small: at least 3 (positions n_ctx/2 .. n_ctx-2 are scored)",
                 o->n_ctx);
        return -1;
    }
    if (n_tokens < o->n_ctx) {
        snprintf(err, errlen, "%lld tokens do not fill one window of %d", (long long)n_tokens, o->n_ctx);
        return -1;
    }
    if (o->add_bos && (o->bos_id < 0 || o->bos_id >= o->n_vocab)) {
        snprintf(err, errlen, "the vocabulary adds BOS but has no valid BOS id (%d)", (int)o->bos_id);
        return -1;
    }
    for (int64_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= o->n_vocab) {
            snprintf(err, errlen, "token %lld is %d, outside the vocabulary of %d", (long long)i, (int)tokens[i],
                     o->n_vocab);
            return -1;
        }
    return 0;
}

int kq_ppl_run(const kq_ppl_opts *o, const int32_t *tokens, int64_t n_tokens, kq_ppl_eval_fn eval, void *user,
               kq_ppl_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    if (kq_ppl_check_opts(o, tokens, n_tokens, err, errlen)) return -1;
    int64_t n_chunks = n_tokens / o->n_ctx;
    if (o->max_chunks > 0 && o->max_chunks < n_chunks) n_chunks = o->max_chunks;
    if (n_chunks > INT_MAX) n_chunks = INT_MAX;
    const int per = kq_ppl_scored_per_window(o->n_ctx);
    r->n_ctx = o->n_ctx;
    r->n_vocab = o->n_vocab;
    r->n_chunks = (int)n_chunks;
    r->n_tokens = n_tokens;
    r->n_scored = n_chunks * per;
    r->has_base = o->base != NULL;
    kq_ppl_work w = {0};
    const size_t rl = kq_logits_record_len(o->n_vocab), chunk_recs = (size_t)per * rl;
    int rc = -1;
    if (kq_ppl_alloc(o, r->n_scored, &w, r)) {
        snprintf(err, errlen, "out of memory for a window of %d x %d logits", o->n_ctx, o->n_vocab);
        goto done;
    }
    double sum = 0;
    for (int c = 0; c < r->n_chunks; c++) {
        const int32_t *win_tokens = tokens + (size_t)c * (size_t)o->n_ctx;
        memcpy(w.window, win_tokens, (size_t)o->n_ctx * sizeof *w.window);
        if (o->add_bos) w.window[0] = o->bos_id;
        if (eval(user, w.window, o->n_ctx, w.logits, err, errlen)) goto done;
        if (o->base && fread(w.recs, sizeof *w.recs, chunk_recs, o->base) != chunk_recs) {
            snprintf(err, errlen, "%s: truncated: the log-probs of chunk %d are missing",
                     o->base_name ? o->base_name : "base", c + 1);
            goto done;
        }
        const int64_t at = (int64_t)c * per;
        kq_ppl_score_window(o, win_tokens, &w, r, at);
        if (o->save && fwrite(w.recs, sizeof *w.recs, chunk_recs, o->save) != chunk_recs) {
            snprintf(err, errlen, "writing the log-probs of chunk %d: %s", c + 1, strerror(errno));
            goto done;
        }
        for (int j = 0; j < per; j++) sum += r->nll[at + j];
        if (o->progress) o->progress(o->progress_user, c + 1, r->n_chunks, exp(sum / (double)(at + per)));
    }
    rc = kq_ppl_finish(r, w.nll_base, err, errlen);
done:
    kq_ppl_work_free(&w);
    if (rc) kq_ppl_result_free(r);
    return rc;
}

void kq_ppl_result_free(kq_ppl_result *r) {
    free(r->nll);
    free(r->kld);
    free(r->dlnp);
    r->nll = r->kld = r->dlnp = NULL;
}

/* ---- output --------------------------------------------------------------------------------------- */

static void kq_json_num(FILE *f, const char *key, double v, int comma) {
    fprintf(f, "\"%s\":", key);
    if (isfinite(v)) fprintf(f, "%.10g", v);
    else fputs("null", f);
    if (comma) fputc(',', f);
}

void kq_ppl_result_json(FILE *f, const kq_ppl_result *r) {
    fputc('{', f);
    kq_json_num(f, "ppl", r->ppl, 1);
    kq_json_num(f, "ppl_stderr", r->ppl_se, 1);
    kq_json_num(f, "nll_mean", r->nll_mean, 1);
    kq_json_num(f, "nll_stderr", r->nll_se, 1);
    fprintf(f, "\"n_tokens\":%lld,\"n_chunks\":%d,\"ctx\":%d,\"n_vocab\":%d,\"scored\":%lld", (long long)r->n_tokens,
            r->n_chunks, r->n_ctx, r->n_vocab, (long long)r->n_scored);
    if (r->has_base) {
        fputs(",\"kld\":{", f);
        kq_json_num(f, "mean", r->kld_stats.mean, 1);
        kq_json_num(f, "stderr", r->kld_stats.se, 1);
        kq_json_num(f, "median", r->kld_stats.median, 1);
        kq_json_num(f, "p99", r->kld_stats.p99, 1);
        kq_json_num(f, "max", r->kld_stats.max, 1);
        kq_json_num(f, "top1_pct", 100 * r->top1, 1);
        kq_json_num(f, "top1_pct_stderr", 100 * r->top1_se, 1);
        kq_json_num(f, "dlnp_mean", r->dlnp_stats.mean, 1);
        kq_json_num(f, "dlnp_stderr", r->dlnp_stats.se, 1);
        kq_json_num(f, "dlnp_z", r->dlnp_z, 1);
        fprintf(f, "\"dlnp_significant\":%s,", r->dlnp_significant ? "true" : "false");
        kq_json_num(f, "ppl_base", r->ppl_base, 1);
        kq_json_num(f, "ppl_base_stderr", r->ppl_base_se, 0);
        fputc('}', f);
    }
    fputc('}', f);
}

/* ---- token streams -------------------------------------------------------------------------------- */

static char *kq_slurp(const char *path, size_t *len, char *err, size_t errlen) {
    char *buf;
    return kq_read_whole_file(path, 0, &buf, len, err, errlen) == 0 ? buf : NULL;
}

typedef struct {
    int32_t *ids;
    int64_t n, cap;
} kq_id_list;

static int kq_id_push(kq_id_list *l, int32_t id) {
    if (l->n == l->cap) {
        const int64_t cap = l->cap ? 2 * l->cap : 4096;
        int32_t *p = realloc(l->ids, (size_t)cap * sizeof *p);
        if (!p) return -1;
        l->ids = p;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return 0;
}

static const char *kq_skip_sep(const char *p, int json) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || (json && *p == ',')) p++;
    return p;
}

/* Parses ids from p until the end (or ']' in JSON); returns the stop position or NULL. */
static const char *kq_parse_ids(const char *p, int json, kq_id_list *l, const char *path, const char *base,
                                char *err, size_t errlen) {
    for (p = kq_skip_sep(p, json); *p && !(json && *p == ']'); p = kq_skip_sep(p, json)) {
        char *end;
        errno = 0;
        const long long v = *p >= '0' && *p <= '9' ? strtoll(p, &end, 10) : -1;
        if (v < 0 || v > INT32_MAX || errno || (*end && !strchr(" \t\r\n,]", *end))) {
            snprintf(err, errlen, "%s: byte %lld: expected a token id (a non-negative integer)", path,
                     (long long)(p - base));
            return NULL;
        }
        if (kq_id_push(l, (int32_t)v)) {
            snprintf(err, errlen, "%s: out of memory", path);
            return NULL;
        }
        p = end;
        if (*p == ',' && !json) {
            snprintf(err, errlen, "%s: byte %lld: ids are separated by white space", path, (long long)(p - base));
            return NULL;
        }
    }
    return p;
}

/* {"ids":[...]}: the only key kq tokenize --json writes */
static const char *kq_parse_json_ids(const char *p, kq_id_list *l, const char *path, const char *base, char *err,
                                     size_t errlen) {
    p = kq_skip_sep(p + 1, 0);
    if (strncmp(p, "\"ids\"", 5) != 0) goto bad;
    p = kq_skip_sep(p + 5, 0);
    if (*p != ':') goto bad;
    p = kq_skip_sep(p + 1, 0);
    if (*p != '[') goto bad;
    p = kq_parse_ids(p + 1, 1, l, path, base, err, errlen);
    if (!p) return NULL;
    if (*p != ']') goto bad;
    p = kq_skip_sep(p + 1, 0);
    if (*p != '}') goto bad;
    return kq_skip_sep(p + 1, 0);
bad:
    snprintf(err, errlen, "%s: byte %lld: expected {\"ids\":[...]}", path, (long long)(p - base));
    return NULL;
}

int kq_ppl_read_tokens(const char *path, int32_t **ids, int64_t *n, char *err, size_t errlen) {
    *ids = NULL;
    *n = 0;
    size_t len;
    char *buf = kq_slurp(path, &len, err, errlen);
    if (!buf) return -1;
    kq_id_list l = {0};
    const char *p = kq_skip_sep(buf, 0);
    if (strlen(buf) != len) {
        snprintf(err, errlen, "%s: holds a NUL byte: not a token list", path);
        p = NULL;
    } else if (*p == '{') {
        p = kq_parse_json_ids(p, &l, path, buf, err, errlen);
        if (p && *p) {
            snprintf(err, errlen, "%s: byte %lld: text after the JSON object", path, (long long)(p - buf));
            p = NULL;
        }
    } else {
        p = kq_parse_ids(p, 0, &l, path, buf, err, errlen);
    }
    free(buf);
    if (!p) {
        free(l.ids);
        return -1;
    }
    if (l.n == 0) {
        snprintf(err, errlen, "%s: no token ids", path);
        free(l.ids);
        return -1;
    }
    *ids = l.ids;
    *n = l.n;
    return 0;
}
