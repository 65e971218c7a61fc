/* kq perplexity: the window and scoring rule on synthetic logits, the statistics, llama.cpp's
 * --kl-divergence-base file format, and on stories260K: kq's PPL against an independent float64
 * implementation (its own llama2.c tokenizer, forward pass and log-softmax, written here), the
 * save/compare round trip through the CLI, and the error paths. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "kq_cli.h"
#include "kq_test.h"
#include "perplexity.h"

int kq_cmd_perplexity(int argc, char **argv);

static char g_dir[64];

static void path_in(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", g_dir, name);
}

static int file_exists(const char *p) {
    return access(p, R_OK) == 0;
}

/* ---- a fake model -------------------------------------------------------------------------------- */

enum { FAKE_UNIFORM, FAKE_P, FAKE_POS, FAKE_RANDOM };

#define FAKE_MAX_CALLS 64
#define FAKE_MAX_CTX 64

typedef struct {
    int mode, n_vocab;
    double p;         /* FAKE_P: probability given to the next token */
    uint32_t seed;    /* FAKE_RANDOM: logits depend on (seed, position, window token) */
    float noise;      /* FAKE_RANDOM: added perturbation */
    int calls;
    int32_t fed[FAKE_MAX_CALLS][FAKE_MAX_CTX];
} fake_model;

static uint32_t lcg(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static float frand(uint32_t *s) { /* [-1, 1) */
    return (float)lcg(s) / (float)(1u << 23) - 1.0f;
}

static void fake_row(const fake_model *m, const int32_t *w, int n, int j, float *row) {
    const int V = m->n_vocab;
    const int32_t next = j + 1 < n ? w[j + 1] : 0;
    for (int i = 0; i < V; i++) row[i] = 0.0f;
    if (m->mode == FAKE_P) {
        /* e^a / (e^a + V - 1) = p */
        row[next] = (float)log(m->p * (V - 1) / (1 - m->p));
    } else if (m->mode == FAKE_POS) {
        row[next] = 0.01f * (float)j;
    } else if (m->mode == FAKE_RANDOM) {
        uint32_t s = m->seed * 7919u + (uint32_t)j * 131u + (uint32_t)w[j];
        uint32_t t = 12345u + (uint32_t)j * 17u + (uint32_t)w[j];
        for (int i = 0; i < V; i++) row[i] = 5.0f * frand(&s) + m->noise * frand(&t);
    }
}

static int fake_eval(void *user, const int32_t *w, int n, float *logits, char *err, size_t errlen) {
    fake_model *m = user;
    (void)err;
    (void)errlen;
    if (m->calls < FAKE_MAX_CALLS && n <= FAKE_MAX_CTX) memcpy(m->fed[m->calls], w, (size_t)n * sizeof *w);
    m->calls++;
    for (int j = 0; j < n; j++) fake_row(m, w, n, j, logits + (size_t)j * (size_t)m->n_vocab);
    return 0;
}

static int32_t *stream(int64_t n, int V, uint32_t seed) {
    int32_t *t = malloc((size_t)n * sizeof *t);
    for (int64_t i = 0; i < n; i++) t[i] = (int32_t)(lcg(&seed) % (uint32_t)V);
    return t;
}

static kq_ppl_opts opts(int ctx, int V, int add_bos) {
    kq_ppl_opts o;
    memset(&o, 0, sizeof o);
    o.n_ctx = ctx;
    o.n_vocab = V;
    o.add_bos = add_bos;
    o.bos_id = 1;
    return o;
}

static void test_uniform_and_p(void) {
    char err[256] = "";
    const int V = 37, ctx = 16;
    int32_t *t = stream(100, V, 1);
    fake_model m = {.mode = FAKE_UNIFORM, .n_vocab = V};
    kq_ppl_opts o = opts(ctx, V, 1);
    kq_ppl_result r;
    int rc = kq_ppl_run(&o, t, 100, fake_eval, &m, &r, err, sizeof err);
    KQ_CHECK(rc == 0, "uniform run: %s", err);
    if (rc == 0) {
        KQ_CHECK(fabs(r.ppl - V) < 1e-12 * V, "uniform logits: PPL %.15g, want %d", r.ppl, V);
        KQ_CHECK(r.ppl_se < 1e-12, "uniform logits: stderr %g, want 0", r.ppl_se);
        KQ_CHECK(r.n_chunks == 6 && r.n_scored == 6 * 7, "chunks %d scored %lld, want 6 and 42", r.n_chunks,
                 (long long)r.n_scored);
        kq_ppl_result_free(&r);
    }
    const double ps[] = {0.5, 0.9, 0.01};
    for (int k = 0; k < 3; k++) {
        fake_model mp = {.mode = FAKE_P, .n_vocab = V, .p = ps[k]};
        rc = kq_ppl_run(&o, t, 100, fake_eval, &mp, &r, err, sizeof err);
        KQ_CHECK(rc == 0, "p run: %s", err);
        if (rc) continue;
        KQ_CHECK(fabs(r.ppl * ps[k] - 1) < 2e-6, "next token with p = %g: PPL %.9g, want %.9g", ps[k], r.ppl,
                 1 / ps[k]);
        kq_ppl_result_free(&r);
    }
    free(t);
}

/* Which windows are fed, which positions are scored against which tokens. */
static void test_windows_and_bos(void) {
    char err[256] = "";
    const int V = 50;
    const int ctxs[] = {16, 7, 3};
    for (int c = 0; c < 3; c++) {
        const int ctx = ctxs[c];
        const int64_t n = 5 * (int64_t)ctx + ctx / 2; /* a partial window at the end is dropped */
        int32_t *t = stream(n, V, 7 + (uint32_t)c);
        for (int add_bos = 0; add_bos <= 1; add_bos++) {
            fake_model *m = calloc(1, sizeof *m);
            m->mode = FAKE_POS;
            m->n_vocab = V;
            kq_ppl_opts o = opts(ctx, V, add_bos);
            kq_ppl_result r;
            int rc = kq_ppl_run(&o, t, n, fake_eval, m, &r, err, sizeof err);
            KQ_CHECK(rc == 0, "ctx %d: %s", ctx, err);
            if (rc) {
                free(m);
                continue;
            }
            const int per = ctx - 1 - ctx / 2;
            KQ_CHECK(m->calls == 5 && r.n_chunks == 5, "ctx %d: %d calls, %d chunks, want 5", ctx, m->calls,
                     r.n_chunks);
            KQ_CHECK(r.n_scored == 5 * per, "ctx %d: %lld scored, want %d", ctx, (long long)r.n_scored, 5 * per);
            int fed_ok = 1;
            for (int k = 0; k < 5 && k < m->calls; k++)
                for (int j = 0; j < ctx; j++) {
                    const int32_t want = j == 0 && add_bos ? 1 : t[k * ctx + j];
                    if (m->fed[k][j] != want) fed_ok = 0;
                }
            KQ_CHECK(fed_ok, "ctx %d add_bos %d: windows fed are not tokens[k*ctx, (k+1)*ctx) with BOS rule", ctx,
                     add_bos);
            /* position j gives the next token logit 0.01 j: nll = log(e^a + V - 1) - a */
            int pos_ok = 1;
            for (int64_t k = 0; k < r.n_scored; k++) {
                const int j = ctx / 2 + (int)(k % per);
                const double a = (double)(0.01f * (float)j);
                const double want = log(exp(a) + V - 1) - a;
                if (fabs(r.nll[k] - want) > 1e-6) pos_ok = 0;
            }
            KQ_CHECK(pos_ok, "ctx %d: scored positions are not %d..%d against the next token", ctx, ctx / 2, ctx - 2);
            kq_ppl_result_free(&r);
            /* --chunks */
            m->calls = 0;
            o.max_chunks = 2;
            rc = kq_ppl_run(&o, t, n, fake_eval, m, &r, err, sizeof err);
            KQ_CHECK(rc == 0 && m->calls == 2 && r.n_chunks == 2 && r.n_scored == 2 * per,
                     "ctx %d --chunks 2: rc %d calls %d", ctx, rc, m->calls);
            if (rc == 0) kq_ppl_result_free(&r);
            free(m);
        }
        free(t);
    }
}

/* kq_ppl_nll against a float64 log-softmax written here. */
static void test_nll_precision(void) {
    const int V = 32000;
    float *l = malloc((size_t)V * sizeof *l);
    uint32_t s = 99;
    double worst = 0;
    for (int trial = 0; trial < 8; trial++) {
        const float spread = trial < 4 ? 3.0f : 20.0f;
        for (int i = 0; i < V; i++) l[i] = spread * frand(&s) + (trial & 1 ? 1000.0f : 0.0f);
        double max = l[0];
        for (int i = 1; i < V; i++) max = l[i] > max ? l[i] : max;
        double sum = 0;
        for (int i = 0; i < V; i++) sum += exp((double)l[i] - max);
        const int32_t tok = (int32_t)(lcg(&s) % V);
        const double want = log(sum) - ((double)l[tok] - max);
        const double got = kq_ppl_nll(l, V, tok);
        const double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel;
    }
    KQ_CHECK(worst < 1e-6, "nll vs float64 log-softmax: worst relative error %.3g", worst);
    free(l);
}

static void test_stats(void) {
    const double x[] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
    kq_ppl_stats s;
    KQ_CHECK(kq_ppl_stats_compute(x, 10, &s) == 0, "stats");
    /* mean 3.9; sum of squared deviations 54.9; se = sqrt(54.9 / 90) */
    KQ_CHECK(fabs(s.mean - 3.9) < 1e-12, "mean %.15g", s.mean);
    KQ_CHECK(fabs(s.se - sqrt(54.9 / 90)) < 1e-12, "se %.15g", s.se);
    /* sorted 1 1 2 3 3 4 5 5 6 9: median 3.5, p99 at 8.91: 6 + 0.91 * 3 */
    KQ_CHECK(fabs(s.median - 3.5) < 1e-12, "median %.15g", s.median);
    KQ_CHECK(fabs(s.p99 - 8.73) < 1e-9, "p99 %.15g", s.p99);
    KQ_CHECK(s.max == 9 && s.min == 1, "max %g min %g", s.max, s.min);
    KQ_CHECK(kq_ppl_stats_compute(x, 1, &s) == 0 && s.se == 0 && s.median == 3, "one value");
}

/* The record format: llama.cpp's layout and quantization. */
static void test_record(void) {
    KQ_CHECK(kq_logits_record_len(32000) == 32004 && kq_logits_record_len(5) == 10 &&
                 kq_logits_record_len(512) == 516,
             "record lengths");
    const int V = 5;
    const float l[5] = {2.0f, -30.0f, 0.5f, 2.0f, -1.0f};
    uint16_t rec[10];
    memset(rec, 0xff, sizeof rec);
    kq_logits_encode(l, V, rec);
    float scale, minlp;
    memcpy(&scale, rec, 4);
    memcpy(&minlp, rec + 2, 4);
    const double lse = 2.0 + log(2 + exp(-32.0) + exp(-1.5) + exp(-3.0));
    KQ_CHECK(fabs(scale - 16.0 / 65535) < 1e-9, "scale %.9g: max - (max - 16) over 65535", scale);
    KQ_CHECK(fabs(minlp - (-16.0 - (lse - 2.0))) < 1e-5, "min_log_prob %.9g", minlp);
    KQ_CHECK(rec[4 + 0] == 65535 && rec[4 + 3] == 65535 && rec[4 + 1] == 0, "q: max -> 65535, below range -> 0");
    KQ_CHECK(rec[9] == 0, "pad of an odd vocabulary is 0");
    for (int i = 0; i < V; i++) {
        const double want = i == 1 ? minlp : l[i] - lse;
        KQ_CHECK(fabs(kq_logits_decode(rec, i) - want) < 16.0 / 65535, "decode %d: %.7g want %.7g", i,
                 kq_logits_decode(rec, i), want);
    }
    const float flat[5] = {1, 1, 1, 1, 1};
    kq_logits_encode(flat, V, rec);
    KQ_CHECK(fabs(kq_logits_decode(rec, 2) + log(5.0)) < 1e-6, "flat logits: ln p = -ln 5, got %.7g",
             kq_logits_decode(rec, 2));
}

/* Save with one fake model, compare another with it: KLD against a float64 KL written here. */
static void test_file_round_trip(void) {
    char err[256] = "";
    const int V = 41, ctx = 12;
    const int64_t n = 4 * ctx + 3;
    int32_t *t = stream(n, V, 3);
    FILE *f = tmpfile();
    fake_model base = {.mode = FAKE_RANDOM, .n_vocab = V, .seed = 5};
    kq_ppl_opts o = opts(ctx, V, 1);
    o.save = f;
    kq_ppl_result r, rb;
    int rc = kq_logits_header_write(f, ctx, V, 4, t, err, sizeof err);
    rc = rc || kq_ppl_run(&o, t, n, fake_eval, &base, &rb, err, sizeof err);
    KQ_CHECK(rc == 0, "save: %s", err);
    if (rc) goto out;
    fflush(f);
    KQ_CHECK(ftell(f) == 20 + 4 * 4 * ctx + 2L * 4 * 5 * (long)kq_logits_record_len(V), "file size %ld", ftell(f));
    for (int noise = 0; noise <= 1; noise++) {
        rewind(f);
        kq_logits_header h;
        rc = kq_logits_header_read(f, "base", &h, err, sizeof err);
        KQ_CHECK(rc == 0 && h.n_ctx == ctx && h.n_vocab == V && h.n_chunk == 4, "header: %s", err);
        if (rc) goto out;
        KQ_CHECK(memcmp(h.tokens, t, 4 * ctx * sizeof *t) == 0, "tokens stored as the stream (no BOS)");
        kq_logits_header_free(&h);
        fake_model q = {.mode = FAKE_RANDOM, .n_vocab = V, .seed = 5, .noise = noise ? 0.3f : 0.0f};
        kq_ppl_opts oq = opts(ctx, V, 1);
        oq.base = f;
        rc = kq_ppl_run(&oq, t, n, fake_eval, &q, &r, err, sizeof err);
        KQ_CHECK(rc == 0, "compare: %s", err);
        if (rc) goto out;
        /* the KL divergence of the true distributions, in float64 */
        double kl = 0;
        float *lb = malloc((size_t)ctx * V * sizeof *lb), *lq = malloc((size_t)ctx * V * sizeof *lq);
        for (int c = 0; c < 4; c++) {
            int32_t w[12];
            memcpy(w, t + c * ctx, sizeof w);
            w[0] = 1;
            for (int j = ctx / 2; j < ctx - 1; j++) {
                fake_row(&base, w, ctx, j, lb);
                fake_row(&q, w, ctx, j, lq);
                double mb = -1e30, mq = -1e30, sb = 0, sq = 0;
                for (int i = 0; i < V; i++) mb = fmax(mb, lb[i]), mq = fmax(mq, lq[i]);
                for (int i = 0; i < V; i++) sb += exp(lb[i] - mb), sq += exp(lq[i] - mq);
                for (int i = 0; i < V; i++) {
                    const double pb = lb[i] - mb - log(sb), pq = lq[i] - mq - log(sq);
                    kl += exp(pb) * (pb - pq);
                }
            }
        }
        kl /= (double)r.n_scored;
        free(lb);
        free(lq);
        KQ_CHECK(fabs(r.kld_stats.mean - kl) < 1e-4, "noise %d: KLD %.7g, float64 %.7g", noise, r.kld_stats.mean,
                 kl);
        KQ_CHECK(fabs(r.ppl_base - rb.ppl) < 1e-4 * rb.ppl, "base PPL from the file %.7g, saved run %.7g",
                 r.ppl_base, rb.ppl);
        if (!noise) {
            KQ_CHECK(r.top1 == 1.0, "same model: top-1 %.4f", r.top1);
            KQ_CHECK(fabs(r.dlnp_stats.mean) < 1e-4 && r.dlnp_stats.max < 2e-4, "same model: dlnp %.3g max %.3g",
                     r.dlnp_stats.mean, r.dlnp_stats.max);
        } else {
            KQ_CHECK(kl > 1e-3 && r.top1 < 1.0, "noisy model: KLD %.4g top-1 %.4f", kl, r.top1);
        }
        kq_ppl_result_free(&r);
    }
    kq_ppl_result_free(&rb);
    /* a truncated copy: the header check catches it before any work */
    fflush(f);
    const long size = ftell(f);
    rewind(f);
    char *all = malloc((size_t)size);
    if (fread(all, 1, (size_t)size, f) != (size_t)size) KQ_CHECK(0, "reading back");
    const long cuts[] = {4, 15, 20 + 4 * 4 * ctx - 2, size - 1};
    for (int k = 0; k < 4; k++) {
        FILE *g = tmpfile();
        fwrite(all, 1, (size_t)cuts[k], g);
        rewind(g);
        kq_logits_header h;
        rc = kq_logits_header_read(g, "cut.kld", &h, err, sizeof err);
        KQ_CHECK(rc == -1 && strstr(err, "cut.kld"), "truncated at %ld: rc %d '%s'", cuts[k], rc, err);
        fclose(g);
    }
    FILE *g = tmpfile();
    fwrite(all, 1, (size_t)size, g);
    fputc(0, g);
    rewind(g);
    kq_logits_header h;
    rc = kq_logits_header_read(g, "long.kld", &h, err, sizeof err);
    KQ_CHECK(rc == -1 && strstr(err, "trailing"), "trailing byte: '%s'", err);
    fclose(g);
    all[0] = 'X';
    g = tmpfile();
    fwrite(all, 1, (size_t)size, g);
    rewind(g);
    rc = kq_logits_header_read(g, "magic.kld", &h, err, sizeof err);
    KQ_CHECK(rc == -1 && strstr(err, "not a logits file"), "bad magic: '%s'", err);
    fclose(g);
    free(all);
out:
    fclose(f);
    free(t);
}

static void test_stream_rule(void) {
    char err[256] = "";
    KQ_CHECK(kq_ppl_check_stream(1023, 512, err, sizeof err) == -1 && strstr(err, "at least 1024") &&
                 strstr(err, "1023"),
             "1023 tokens at ctx 512: '%s'", err);
    KQ_CHECK(kq_ppl_check_stream(1024, 512, err, sizeof err) == 0, "1024 tokens at ctx 512");
    const int V = 10;
    int32_t *t = stream(30, V, 1);
    fake_model m = {.mode = FAKE_UNIFORM, .n_vocab = V};
    kq_ppl_opts o = opts(16, V, 1);
    kq_ppl_result r;
    KQ_CHECK(kq_ppl_run(&o, t, 10, fake_eval, &m, &r, err, sizeof err) == -1, "fewer tokens than one window");
    o.n_ctx = 2;
    KQ_CHECK(kq_ppl_run(&o, t, 30, fake_eval, &m, &r, err, sizeof err) == -1, "ctx 2 scores nothing: an error");
    o.n_ctx = 8;
    t[20] = V;
    KQ_CHECK(kq_ppl_run(&o, t, 30, fake_eval, &m, &r, err, sizeof err) == -1 && strstr(err, "token 20"),
             "token outside the vocabulary: '%s'", err);
    free(t);
}

static int write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(s, f);
    return fclose(f);
}

static void test_token_reader(void) {
    char p[256], err[256] = "";
    int32_t *ids;
    int64_t n;
    path_in(p, sizeof p, "ids.txt");
    write_text(p, "1 345 22\n 7\t0\n");
    KQ_CHECK(kq_ppl_read_tokens(p, &ids, &n, err, sizeof err) == 0 && n == 5 && ids[1] == 345 && ids[4] == 0,
             "whitespace ids: %s", err);
    free(ids);
    write_text(p, " {\"ids\": [1, 345,22 ,7]}\n");
    KQ_CHECK(kq_ppl_read_tokens(p, &ids, &n, err, sizeof err) == 0 && n == 4 && ids[3] == 7, "JSON ids: %s", err);
    free(ids);
    const char *bad[] = {"1 2 x", "1,2", "-3", "{\"ids\":[1,2}", "{\"tokens\":[1]}", "", "99999999999",
                         "{\"ids\":[1]} 5"};
    for (int k = 0; k < 8; k++) {
        write_text(p, bad[k]);
        KQ_CHECK(kq_ppl_read_tokens(p, &ids, &n, err, sizeof err) == -1 && strstr(err, "ids.txt"),
                 "bad input '%s' accepted (%s)", bad[k], err);
    }
    unlink(p);
}

/* ---- stories260K: an independent float64 implementation ------------------------------------- */

typedef struct {
    int dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    double *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final;
    double *kc, *vc; /* [layer][pos][kv_dim] */
} ref_model;

static double *ref_take(const float **p, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = (*p)[i];
    *p += n;
    return d;
}

/* llama2.c legacy checkpoint: 7 int32, then the float32 tensors in run.c's order. */
static int ref_load(const char *path, ref_model *m) {
    size_t len;
    uint8_t *buf = kq_test_read_file(path, &len);
    if (!buf || len < 28) return -1;
    int32_t h[7];
    memcpy(h, buf, sizeof h);
    m->dim = h[0], m->hidden = h[1], m->n_layers = h[2], m->n_heads = h[3], m->n_kv_heads = h[4];
    m->vocab = h[5] < 0 ? -h[5] : h[5], m->seq_len = h[6];
    const size_t D = (size_t)m->dim, H = (size_t)m->hidden, L = (size_t)m->n_layers;
    const size_t KV = D * (size_t)m->n_kv_heads / (size_t)m->n_heads;
    const size_t need = 28 + 4 * ((size_t)m->vocab * D + L * (2 * D + 2 * D * D + 2 * KV * D + 3 * D * H) + D);
    if (len < need) {
        free(buf);
        return -1;
    }
    const float *p = (const float *)(buf + 28);
    m->emb = ref_take(&p, (size_t)m->vocab * D);
    m->rms_att = ref_take(&p, L * D);
    m->wq = ref_take(&p, L * D * D);
    m->wk = ref_take(&p, L * KV * D);
    m->wv = ref_take(&p, L * KV * D);
    m->wo = ref_take(&p, L * D * D);
    m->rms_ffn = ref_take(&p, L * D);
    m->w1 = ref_take(&p, L * H * D);
    m->w2 = ref_take(&p, L * D * H);
    m->w3 = ref_take(&p, L * H * D);
    m->rms_final = ref_take(&p, D);
    m->kc = malloc(L * (size_t)m->seq_len * KV * sizeof(double));
    m->vc = malloc(L * (size_t)m->seq_len * KV * sizeof(double));
    free(buf);
    return 0;
}

static void ref_free(ref_model *m) {
    double *all[] = {m->emb, m->rms_att, m->wq, m->wk, m->wv, m->wo, m->rms_ffn, m->w1, m->w2, m->w3, m->rms_final,
                     m->kc, m->vc};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

static void ref_rmsnorm(double *o, const double *x, const double *w, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const double s = 1.0 / sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; i++) o[i] = x[i] * s * w[i];
}

static void ref_matmul(double *o, const double *x, const double *w, int n, int d) { /* w: [d][n] */
    for (int i = 0; i < d; i++) {
        double s = 0;
        for (int j = 0; j < n; j++) s += w[(size_t)i * n + j] * x[j];
        o[i] = s;
    }
}

/* rotary on adjacent pairs, theta = pos * 10000^(-(i mod hs)/hs), as llama2.c's run.c */
static void ref_rope(double *v, int n, int hs, int pos) {
    for (int i = 0; i < n; i += 2) {
        const double th = pos * pow(10000.0, -(double)(i % hs) / hs);
        const double a = v[i], b = v[i + 1];
        v[i] = a * cos(th) - b * sin(th);
        v[i + 1] = a * sin(th) + b * cos(th);
    }
}

/* One token at pos; logits (vocab doubles) out. */
static void ref_forward(ref_model *m, int token, int pos, double *logits) {
    enum { MAXD = 256, MAXH = 1024, MAXT = 1024 };
    const int D = m->dim, H = m->hidden, hs = D / m->n_heads, KV = hs * m->n_kv_heads;
    const int kv_mul = m->n_heads / m->n_kv_heads;
    double x[MAXD], xb[MAXD], q[MAXD], att_out[MAXD], tmp[MAXD], h1[MAXH], h3[MAXH], att[MAXT];
    memcpy(x, m->emb + (size_t)token * D, (size_t)D * sizeof *x);
    for (int l = 0; l < m->n_layers; l++) {
        double *kc = m->kc + ((size_t)l * m->seq_len + pos) * KV, *vc = m->vc + ((size_t)l * m->seq_len + pos) * KV;
        ref_rmsnorm(xb, x, m->rms_att + (size_t)l * D, D);
        ref_matmul(q, xb, m->wq + (size_t)l * D * D, D, D);
        ref_matmul(kc, xb, m->wk + (size_t)l * KV * D, D, KV);
        ref_matmul(vc, xb, m->wv + (size_t)l * KV * D, D, KV);
        ref_rope(q, D, hs, pos);
        ref_rope(kc, KV, hs, pos);
        for (int h = 0; h < m->n_heads; h++) {
            const int kh = h / kv_mul;
            double mx = -1e300, sum = 0;
            for (int t = 0; t <= pos; t++) {
                const double *k = m->kc + ((size_t)l * m->seq_len + t) * KV + kh * hs;
                double s = 0;
                for (int i = 0; i < hs; i++) s += q[h * hs + i] * k[i];
                att[t] = s / sqrt((double)hs);
                if (att[t] > mx) mx = att[t];
            }
            for (int t = 0; t <= pos; t++) sum += (att[t] = exp(att[t] - mx));
            for (int i = 0; i < hs; i++) {
                double s = 0;
                for (int t = 0; t <= pos; t++) s += att[t] / sum * m->vc[((size_t)l * m->seq_len + t) * KV + kh * hs + i];
                att_out[h * hs + i] = s;
            }
        }
        ref_matmul(tmp, att_out, m->wo + (size_t)l * D * D, D, D);
        for (int i = 0; i < D; i++) x[i] += tmp[i];
        ref_rmsnorm(xb, x, m->rms_ffn + (size_t)l * D, D);
        ref_matmul(h1, xb, m->w1 + (size_t)l * H * D, D, H);
        ref_matmul(h3, xb, m->w3 + (size_t)l * H * D, D, H);
        for (int i = 0; i < H; i++) h1[i] = h1[i] / (1 + exp(-h1[i])) * h3[i];
        ref_matmul(tmp, h1, m->w2 + (size_t)l * D * H, H, D);
        for (int i = 0; i < D; i++) x[i] += tmp[i];
    }
    ref_rmsnorm(xb, x, m->rms_final, D);
    ref_matmul(logits, xb, m->emb, D, m->vocab);
}

/* The PPL of the windows, computed here end to end: window k = tokens[k*ctx, (k+1)*ctx) with token 0
 * set to BOS (1), positions ctx/2 .. ctx-2 scored against the next token, log-softmax in float64. */
static double ref_perplexity(ref_model *m, const int32_t *t, int64_t n, int ctx) {
    double *logits = malloc((size_t)m->vocab * sizeof *logits);
    double nll = 0;
    int64_t count = 0;
    for (int64_t start = 0; start + ctx <= n; start += ctx) {
        for (int j = 0; j < ctx - 1; j++) {
            ref_forward(m, j == 0 ? 1 : t[start + j], j, logits);
            if (j < ctx / 2) continue;
            double mx = logits[0], s = 0;
            for (int i = 1; i < m->vocab; i++) mx = fmax(mx, logits[i]);
            for (int i = 0; i < m->vocab; i++) s += exp(logits[i] - mx);
            nll += log(s) - (logits[t[start + j + 1]] - mx);
            count++;
        }
    }
    free(logits);
    return exp(nll / (double)count);
}

/* ---- llama2.c's tokenizer on tok512.bin (score-driven merges, byte fallback), written here -------- */

typedef struct {
    char **piece;
    int *len;
    float *score;
    int n;
    int *sorted; /* ids 3.. ordered by piece bytes, for bsearch */
} ref_vocab;

static const ref_vocab *g_sort_vocab;

static int ref_cmp_bytes(const char *a, int la, const char *b, int lb) {
    const int c = memcmp(a, b, (size_t)(la < lb ? la : lb));
    return c ? c : (la > lb) - (la < lb);
}

static int ref_cmp_ids(const void *x, const void *y) {
    const ref_vocab *v = g_sort_vocab;
    const int a = *(const int *)x, b = *(const int *)y;
    return ref_cmp_bytes(v->piece[a], v->len[a], v->piece[b], v->len[b]);
}

static int ref_vocab_load(const char *path, ref_vocab *v, int n) {
    size_t size, off = 4;
    uint8_t *b = kq_test_read_file(path, &size);
    if (!b) return -1;
    v->n = n;
    v->piece = calloc((size_t)n, sizeof *v->piece);
    v->len = calloc((size_t)n, sizeof *v->len);
    v->score = calloc((size_t)n, sizeof *v->score);
    for (int i = 0; i < n; i++) {
        int32_t l;
        if (off + 8 > size) break;
        memcpy(&v->score[i], b + off, 4);
        memcpy(&l, b + off + 4, 4);
        off += 8;
        if (l < 0 || off + (size_t)l > size) break;
        v->piece[i] = malloc((size_t)l + 1);
        memcpy(v->piece[i], b + off, (size_t)l);
        v->piece[i][l] = 0;
        v->len[i] = l;
        off += (size_t)l;
    }
    free(b);
    if (!v->piece[n - 1]) return -1;
    v->sorted = malloc((size_t)(n - 3) * sizeof *v->sorted);
    for (int i = 3; i < n; i++) v->sorted[i - 3] = i;
    g_sort_vocab = v;
    qsort(v->sorted, (size_t)(n - 3), sizeof *v->sorted, ref_cmp_ids);
    return 0;
}

static void ref_vocab_free(ref_vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->piece[i]);
    free(v->piece);
    free(v->len);
    free(v->score);
    free(v->sorted);
}

/* 0..2 (<unk>, <s>, </s>) are never text, so they are not in the index */
static int ref_lookup(const ref_vocab *v, const char *s, int len) {
    int lo = 0, hi = v->n - 4;
    while (lo <= hi) {
        const int mid = (lo + hi) / 2, id = v->sorted[mid];
        const int c = ref_cmp_bytes(v->piece[id], v->len[id], s, len);
        if (c == 0) return id;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Encodes s[0..n) into ids (appended at *count): characters, byte fallback (byte + 3), then the best
 * scoring merge, leftmost first, until none applies. */
static void ref_encode_segment(const ref_vocab *v, const char *s, int n, int32_t *ids, int64_t *count) {
    int32_t *w = ids + *count;
    int m = 0;
    for (int i = 0; i < n;) {
        int cl = 1;
        while (i + cl < n && cl < 4 && ((unsigned char)s[i + cl] & 0xC0) == 0x80) cl++;
        const int id = ref_lookup(v, s + i, cl);
        if (id >= 0) w[m++] = id;
        else
            for (int k = 0; k < cl; k++) w[m++] = (unsigned char)s[i + k] + 3;
        i += cl;
    }
    char buf[64];
    for (;;) {
        float best = -1e30f;
        int bi = -1, bid = -1;
        for (int i = 0; i + 1 < m; i++) {
            const int la = v->len[w[i]], lb = v->len[w[i + 1]];
            if (w[i] < 259 || w[i + 1] < 259 || la + lb >= (int)sizeof buf) continue; /* byte pieces do not merge */
            memcpy(buf, v->piece[w[i]], (size_t)la);
            memcpy(buf + la, v->piece[w[i + 1]], (size_t)lb);
            const int id = ref_lookup(v, buf, la + lb);
            if (id >= 0 && v->score[id] > best) best = v->score[id], bi = i, bid = id;
        }
        if (bi < 0) break;
        w[bi] = bid;
        memmove(w + bi + 1, w + bi + 2, (size_t)(m - bi - 2) * sizeof *w);
        m--;
    }
    *count += m;
}

/* BOS, a dummy-prefix space, then the text; lines are encoded one by one ('\n' is a byte token and no
 * piece holds one, so no merge crosses a line end), which keeps the quadratic merge loop short. */
static int32_t *ref_tokenize(const ref_vocab *v, const char *text, size_t len, int64_t *n) {
    int32_t *ids = malloc((len + 2) * sizeof *ids);
    char *buf = malloc(len + 2);
    buf[0] = ' ';
    memcpy(buf + 1, text, len);
    int64_t count = 0;
    ids[count++] = 1;
    for (size_t i = 0; i < len + 1;) {
        size_t e = i;
        while (e < len + 1 && buf[e] != '\n') e++;
        if (e > i) ref_encode_segment(v, buf + i, (int)(e - i), ids, &count);
        if (e < len + 1) ids[count++] = '\n' + 3;
        i = e + 1;
    }
    free(buf);
    *n = count;
    return ids;
}

/* ---- kq on stories260K ------------------------------------------------------------------------------- */

static int engine_eval(void *user, const int32_t *w, int n, float *logits, char *err, size_t errlen) {
    kq_session *s = user;
    kq_session_reset(s);
    return kq_session_eval(s, w, n, logits, 1, err, errlen) ? -1 : 0;
}

static int write_ids(const char *path, const int32_t *ids, int64_t n) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int64_t i = 0; i < n; i++) fprintf(f, "%d%c", (int)ids[i], i + 1 < n ? ' ' : '\n');
    return fclose(f);
}

/* Runs kq perplexity in this process with stdout sent to out_path; returns its exit code. */
static int run_cli(const char *out_path, char **argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    fflush(stdout);
    const int saved = dup(1);
    const int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    close(fd);
    const int rc = kq_cmd_perplexity(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    return rc;
}

static double json_num(const char *path, const char *key) {
    size_t len;
    char *s = kq_test_read_file(path, &len), pat[64];
    if (!s) return NAN;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    const double v = p ? strtod(p + strlen(pat), NULL) : NAN;
    free(s);
    return v;
}

static int32_t *stories_tokens(int64_t *n) {
    char tok[512], txt[512];
    kq_test_shared_path("models/stories260K/tok512.bin", tok, sizeof tok);
    kq_test_shared_path("text/tinystories_val.txt", txt, sizeof txt);
    if (!file_exists(tok) || !file_exists(txt)) {
        KQ_SKIP("stories260K PPL: %s or %s not found", tok, txt);
        return NULL;
    }
    ref_vocab v;
    size_t len;
    char *text = kq_test_read_file(txt, &len);
    if (!text || ref_vocab_load(tok, &v, 512)) {
        KQ_CHECK(0, "cannot read %s / %s", tok, txt);
        free(text);
        return NULL;
    }
    size_t cut = len < 20000 ? len : 20000;
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80) cut--; /* whole UTF-8 characters */
    int32_t *ids = ref_tokenize(&v, text, cut, n);
    ref_vocab_free(&v);
    free(text);
    return ids;
}

static void test_stories_ppl(const char *gguf, const int32_t *ids, int64_t n) {
    char bin[512], err[512] = "";
    kq_test_shared_path("models/stories260K/stories260K.bin", bin, sizeof bin);
    if (!file_exists(bin)) {
        KQ_SKIP("stories260K PPL: %s not found", bin);
        return;
    }
    const int ctx = 128;
    /* 16 windows by default (about 5 KB of the text: seconds on the host, a minute under qemu); every
     * window of the 20 KB with KQ_LONG=1 */
    const char *lng = getenv("KQ_LONG");
    if (!(lng && *lng && strcmp(lng, "0")) && n > 16 * ctx) n = 16 * ctx;
    ref_model rm;
    if (ref_load(bin, &rm)) {
        KQ_CHECK(0, "%s: not a llama2.c checkpoint", bin);
        return;
    }
    const double ref = ref_perplexity(&rm, ids, n, ctx);
    ref_free(&rm);
    kq_engine_opts eo;
    kq_engine_opts_init(&eo);
    eo.kv_type = KQ_TYPE_F32;
    eo.threads = 1; /* the figures do not depend on it (engine.h); one thread is fastest for this size */
    kq_model *m = NULL;
    kq_session *s = NULL;
    int rc = kq_model_load(gguf, &eo, &m, err, sizeof err);
    rc = rc || kq_session_new(m, ctx, &s, err, sizeof err);
    KQ_CHECK(rc == 0, "engine: %s", err);
    if (rc == 0) {
        const kq_model_hparams *hp = kq_model_hp(m);
        KQ_CHECK(hp->add_bos == 1 && hp->bos_id == 1, "stories260K adds BOS 1 (add_bos %d, bos %d)", hp->add_bos,
                 (int)hp->bos_id);
        kq_ppl_opts o = opts(ctx, hp->n_vocab, hp->add_bos);
        o.bos_id = hp->bos_id;
        kq_ppl_result r;
        rc = kq_ppl_run(&o, ids, n, engine_eval, s, &r, err, sizeof err);
        KQ_CHECK(rc == 0, "kq_ppl_run: %s", err);
        if (rc == 0) {
            printf("stories260K, %lld tokens, ctx %d, %d windows: kq PPL %.9f +/- %.6f, float64 reference %.9f "
                   "(relative difference %.2g)\n",
                   (long long)n, ctx, r.n_chunks, r.ppl, r.ppl_se, ref, fabs(r.ppl - ref) / ref);
            KQ_CHECK(fabs(r.ppl - ref) < 1e-4 * ref, "kq PPL %.8g vs independent float64 %.8g (rel %.3g)", r.ppl, ref,
                     fabs(r.ppl - ref) / ref);
            KQ_CHECK(r.ppl > 1.5 && r.ppl < 20, "a trained model on its own data: PPL %.4g", r.ppl);
            kq_ppl_result_free(&r);
        }
    }
    kq_session_free(s);
    kq_model_free(m);
}

/* The CLI: --save-logits, --kld-base against itself and against q8_0, and the error paths. */
static void test_stories_cli(const char *gguf, const int32_t *ids, int64_t n) {
    char tokp[256], base[256], out[256], q8[256], shortp[256], othp[256];
    path_in(tokp, sizeof tokp, "stories.ids");
    path_in(base, sizeof base, "stories.kld");
    path_in(out, sizeof out, "out.json");
    path_in(q8, sizeof q8, "stories_q8_0.gguf");
    path_in(shortp, sizeof shortp, "short.ids");
    path_in(othp, sizeof othp, "other.ids");
    const int64_t use = n < 8 * 128 ? n : 8 * 128; /* 8 windows: quick under qemu */
    write_ids(tokp, ids, use);
    char *save_argv[] = {"perplexity", "-m", (char *)gguf, "--tokens", tokp, "-c", "128", "--kv-type", "f32",
                         "--save-logits", base, "--json", "-t", "1", NULL};
    int rc = run_cli(out, save_argv);
    KQ_CHECK(rc == 0, "kq perplexity --save-logits: exit %d", rc);
    const double ppl = json_num(out, "ppl");
    KQ_CHECK(isfinite(ppl) && json_num(out, "scored") == 8 * 63 && json_num(out, "ctx") == 128,
             "JSON: ppl %g scored %g", ppl, json_num(out, "scored"));
    FILE *f = fopen(base, "rb");
    kq_logits_header h;
    char err[256] = "";
    rc = f ? kq_logits_header_read(f, base, &h, err, sizeof err) : -1;
    KQ_CHECK(rc == 0 && h.n_ctx == 128 && h.n_vocab == 512 && h.n_chunk == 8 &&
                 memcmp(h.tokens, ids, 8 * 128 * sizeof *ids) == 0,
             "saved base header: %s", err);
    if (rc == 0) kq_logits_header_free(&h);
    if (f) fclose(f);

    /* against itself: the tokens come from the base, as llama.cpp's --kl-divergence */
    char *self_argv[] = {"perplexity", "-m", (char *)gguf, "--kld-base", base, "--kv-type", "f32", "--json", "-t", "1", NULL};
    rc = run_cli(out, self_argv);
    KQ_CHECK(rc == 0, "--kld-base itself: exit %d", rc);
    const double kld = json_num(out, "mean"), top1 = json_num(out, "top1_pct"), dl = json_num(out, "dlnp_mean");
    printf("stories260K vs its own base: KLD %.3g, top-1 %.3f%%, dlnp %.3g\n", kld, top1, dl);
    KQ_CHECK(fabs(kld) < 1e-4, "KLD against itself %.3g: only the uint16 rounding of the base", kld);
    KQ_CHECK(top1 == 100.0, "top-1 against itself %.4f%%", top1);
    KQ_CHECK(fabs(dl) < 1e-4, "dlnp against itself %.3g", dl);
    KQ_CHECK(fabs(json_num(out, "ppl") - ppl) < 1e-9 * ppl, "same PPL on the base's tokens");
    KQ_CHECK(fabs(json_num(out, "ppl_base") - ppl) < 1e-4 * ppl, "base PPL from the file %.7g vs %.7g",
             json_num(out, "ppl_base"), ppl);

    char *q_argv[] = {"quantize", (char *)gguf, q8, "q8_0", NULL};
    rc = kq_cmd_quantize(4, q_argv);
    KQ_CHECK(rc == 0, "kq quantize q8_0: exit %d", rc);
    char *q8_argv[] = {"perplexity", "-m", q8, "--tokens", tokp, "--kld-base", base, "--json", "-t", "1", NULL};
    rc = rc ? rc : run_cli(out, q8_argv);
    KQ_CHECK(rc == 0, "--kld-base q8_0: exit %d", rc);
    if (rc == 0) {
        const double k8 = json_num(out, "mean"), t8 = json_num(out, "top1_pct");
        printf("stories260K q8_0 (F16 KV) vs F32 base: KLD %.3g, top-1 %.2f%%, dlnp %.3g +/- %.3g\n", k8, t8,
               json_num(out, "dlnp_mean"), json_num(out, "dlnp_stderr"));
        KQ_CHECK(k8 > 1e-6 && k8 < 0.05, "q8_0 KLD %.3g: small and positive", k8);
        KQ_CHECK(t8 > 90 && t8 <= 100, "q8_0 top-1 %.2f%%", t8);
    }

    /* errors: fewer than 2*CTX tokens; other tokens than the base's; another context */
    write_ids(shortp, ids, 255);
    char *short_argv[] = {"perplexity", "-m", (char *)gguf, "--tokens", shortp, "-c", "128", NULL};
    KQ_CHECK(run_cli(out, short_argv) == 2, "255 tokens at -c 128 must be refused");
    int32_t *other = malloc((size_t)use * sizeof *other);
    memcpy(other, ids, (size_t)use * sizeof *other);
    other[300] = other[300] == 5 ? 6 : 5;
    write_ids(othp, other, use);
    free(other);
    char *oth_argv[] = {"perplexity", "-m", (char *)gguf, "--tokens", othp, "--kld-base", base, NULL};
    KQ_CHECK(run_cli(out, oth_argv) == 2, "a base of other tokens must be refused");
    char *ctx_argv[] = {"perplexity", "-m", (char *)gguf, "--kld-base", base, "-c", "64", NULL};
    KQ_CHECK(run_cli(out, ctx_argv) == 2, "a base of another context must be refused");
    /* truncate the base: refused before any work */
    f = fopen(base, "r+b");
    if (f) {
        fseek(f, 0, SEEK_END);
        const long size = ftell(f);
        fclose(f);
        KQ_CHECK(truncate(base, size - 2) == 0, "truncate");
        char *tr_argv[] = {"perplexity", "-m", (char *)gguf, "--kld-base", base, NULL};
        KQ_CHECK(run_cli(out, tr_argv) == 2, "a truncated base must be refused");
    }
    const char *files[] = {tokp, base, out, q8, shortp, othp};
    for (int i = 0; i < 6; i++) unlink(files[i]);
}

/* -f: the text tokenized whole with BOS prepended (the base file stores the stream), and the same
 * figure as --tokens on that stream. */
static void test_stories_text(const char *gguf) {
    char txt[512], small[256], kld[256], out[256], idp[256];
    kq_test_shared_path("text/tinystories_val.txt", txt, sizeof txt);
    size_t len;
    char *text = kq_test_read_file(txt, &len);
    if (!text) {
        KQ_SKIP("perplexity -f: %s not found", txt);
        return;
    }
    path_in(small, sizeof small, "small.txt");
    path_in(kld, sizeof kld, "small.kld");
    path_in(out, sizeof out, "small.json");
    path_in(idp, sizeof idp, "small.ids");
    FILE *f = fopen(small, "wb");
    fwrite(text, 1, len < 400 ? len : 400, f); /* ASCII at the start: no character is cut */
    fclose(f);
    free(text);
    char *a1[] = {"perplexity", "-m", (char *)gguf, "-f", small, "-c", "16", "--save-logits", kld, "--json", "-t", "1",
                  NULL};
    int rc = run_cli(out, a1);
    KQ_CHECK(rc == 0, "perplexity -f: exit %d", rc);
    const double ppl = json_num(out, "ppl"), n_tok = json_num(out, "n_tokens");
    kq_logits_header h = {0};
    char err[256] = "";
    f = fopen(kld, "rb");
    rc = f ? kq_logits_header_read(f, kld, &h, err, sizeof err) : -1;
    if (f) fclose(f);
    KQ_CHECK(rc == 0 && h.n_ctx == 16 && h.n_chunk == (int)(n_tok / 16) && h.tokens[0] == 1,
             "-f stream: BOS prepended and floor(n/16) windows (%s)", err);
    if (rc == 0) {
        write_ids(idp, h.tokens, (int64_t)h.n_chunk * h.n_ctx);
        char *a2[] = {"perplexity", "-m", (char *)gguf, "--tokens", idp, "-c", "16", "--json", "-t", "1", NULL};
        rc = run_cli(out, a2);
        KQ_CHECK(rc == 0 && json_num(out, "ppl") == ppl, "--tokens of the -f stream: PPL %.9g vs %.9g",
                 json_num(out, "ppl"), ppl);
        kq_logits_header_free(&h);
    }
    const char *files[] = {small, kld, out, idp};
    for (int i = 0; i < 4; i++) unlink(files[i]);
}

static void test_stories(void) {
    char gguf[512];
    kq_test_shared_path("models/stories260K/stories260K.gguf", gguf, sizeof gguf);
    if (!file_exists(gguf)) {
        KQ_SKIP("stories260K: %s not found", gguf);
        return;
    }
    int64_t n = 0;
    int32_t *ids = stories_tokens(&n);
    if (!ids) return;
    KQ_CHECK(n > 16 * 128, "20 KB of TinyStories give %lld tokens", (long long)n);
    test_stories_ppl(gguf, ids, n);
    test_stories_cli(gguf, ids, n);
    test_stories_text(gguf);
    free(ids);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/kq_test_ppl_XXXXXX");
    if (!mkdtemp(g_dir)) {
        printf("FAIL cannot create a scratch folder: %s\n", strerror(errno));
        return 1;
    }
    test_uniform_and_p();
    test_windows_and_bos();
    test_nll_precision();
    test_stats();
    test_record();
    test_file_round_trip();
    test_stream_rule();
    test_token_reader();
    test_stories();
    rmdir(g_dir);
    return kq_test_finish();
}
