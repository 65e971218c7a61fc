/* Engine tests:
 *  1. stories260K.gguf (F32, KV F32) against an independent FP32 forward pass written here from the
 *     llama2.c checkpoint stories260K.bin (run.c semantics): relative L2 of the logits <= 1e-4 at every
 *     position; greedy decoding from BOS tells Karpathy's documented story (decoded with tok512.bin).
 *  2. batched == one-by-one == other batch sizes, 1 thread == 2 threads, bit for bit.
 *  3. a llama model built here (GQA, 2 layers) in F32, F16, BF16 and every quantized type: logits of
 *     --impl neon-plain / neon-dotprod are bit-identical to --impl reference (aarch64 only).
 *  4. quantized logits stay close to F32 ones.
 *  5. bad files and bad calls give clear errors. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "gguf.h"
#include "kq_dispatch.h"
#include "kq_ref.h"
#include "kq_test.h"

/* ================================ helpers ================================ */

static double rel_l2(const float *a, const float *ref, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = (double)a[i] - (double)ref[i];
        d += e * e;
        r += (double)ref[i] * (double)ref[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static kq_engine_opts opts_of(kq_impl impl, int threads, kq_type kv, int n_batch) {
    kq_engine_opts o;
    kq_engine_opts_init(&o);
    o.impl = impl;
    o.threads = threads;
    o.kv_type = kv;
    o.n_batch = n_batch;
    return o;
}

/* Loads path and evaluates tokens with every position's logits; NULL on failure (printed). */
static float *run_model(const char *path, kq_engine_opts o, const int32_t *tok, int n, int one_by_one) {
    char err[512];
    kq_model *m = NULL;
    kq_session *s = NULL;
    if (kq_model_load(path, &o, &m, err, sizeof err)) {
        printf("load %s: %s\n", path, err);
        return NULL;
    }
    const size_t V = (size_t)kq_model_hp(m)->n_vocab;
    float *lg = malloc((size_t)n * V * sizeof(float));
    int rc = kq_session_new(m, n + 4, &s, err, sizeof err);
    for (int i = 0; rc == 0 && one_by_one && i < n; i++) rc = kq_session_eval(s, tok + i, 1, lg + i * V, 0, err, sizeof err);
    if (rc == 0 && !one_by_one) rc = kq_session_eval(s, tok, n, lg, 1, err, sizeof err);
    if (rc) {
        printf("eval %s: %s\n", path, err);
        free(lg);
        lg = NULL;
    }
    kq_session_free(s);
    kq_model_free(m);
    return lg;
}

/* ============== 1. an independent FP32 forward pass from the llama2.c checkpoint ============== */

typedef struct {
    int dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    const float *tok, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
    float *x, *xb, *xb2, *hb, *hb2, *q, *att, *logits, *kc, *vc;
    void *file;
} ref_model;

static int ref_load(ref_model *r, const char *path) {
    size_t len;
    memset(r, 0, sizeof *r);
    r->file = kq_test_read_file(path, &len);
    if (!r->file || len < 28) return -1;
    int32_t h[7];
    memcpy(h, r->file, sizeof h);
    r->dim = h[0], r->hidden = h[1], r->n_layers = h[2], r->n_heads = h[3], r->n_kv_heads = h[4];
    const int shared = h[5] > 0;
    r->vocab = abs(h[5]), r->seq_len = h[6];
    const int kv_dim = r->dim / r->n_heads * r->n_kv_heads;
    const size_t L = (size_t)r->n_layers, D = (size_t)r->dim, H = (size_t)r->hidden;
    const float *p = (const float *)((const char *)r->file + 28);
    r->tok = p, p += (size_t)r->vocab * D;
    r->rms_att = p, p += L * D;
    r->wq = p, p += L * D * D;
    r->wk = p, p += L * D * (size_t)kv_dim;
    r->wv = p, p += L * D * (size_t)kv_dim;
    r->wo = p, p += L * D * D;
    r->rms_ffn = p, p += L * D;
    r->w1 = p, p += L * D * H;
    r->w2 = p, p += L * D * H;
    r->w3 = p, p += L * D * H;
    r->rms_final = p, p += D;
    p += (size_t)r->seq_len * (D / (size_t)r->n_heads); /* freq_cis_real, freq_cis_imag: unused */
    r->wcls = shared ? r->tok : p;
    if ((size_t)((const char *)p - (const char *)r->file) > len) return -1;
    r->x = calloc(D, 4), r->xb = calloc(D, 4), r->xb2 = calloc(D, 4), r->q = calloc(D, 4);
    r->hb = calloc(H, 4), r->hb2 = calloc(H, 4);
    r->att = calloc((size_t)r->n_heads * (size_t)r->seq_len, 4);
    r->logits = calloc((size_t)r->vocab, 4);
    r->kc = calloc(L * (size_t)r->seq_len * (size_t)kv_dim, 4);
    r->vc = calloc(L * (size_t)r->seq_len * (size_t)kv_dim, 4);
    return 0;
}

static void ref_free(ref_model *r) {
    free(r->file), free(r->x), free(r->xb), free(r->xb2), free(r->q), free(r->hb), free(r->hb2);
    free(r->att), free(r->logits), free(r->kc), free(r->vc);
}

static void ref_rmsnorm(float *o, const float *x, const float *w, int n) {
    float ss = 0.0f;
    for (int j = 0; j < n; j++) ss += x[j] * x[j];
    ss /= n;
    ss += 1e-5f;
    ss = 1.0f / sqrtf(ss);
    for (int j = 0; j < n; j++) o[j] = w[j] * (ss * x[j]);
}

/* W (d,n) @ x (n,) -> xout (d,) */
static void ref_matmul(float *xout, const float *x, const float *w, int n, int d) {
    for (int i = 0; i < d; i++) {
        float val = 0.0f;
        for (int j = 0; j < n; j++) val += w[(size_t)i * n + j] * x[j];
        xout[i] = val;
    }
}

static float *ref_forward(ref_model *r, int token, int pos) {
    const int dim = r->dim, kv_dim = dim / r->n_heads * r->n_kv_heads, kv_mul = r->n_heads / r->n_kv_heads;
    const int hidden = r->hidden, hs = dim / r->n_heads;
    memcpy(r->x, r->tok + (size_t)token * dim, (size_t)dim * 4);
    for (int l = 0; l < r->n_layers; l++) {
        ref_rmsnorm(r->xb, r->x, r->rms_att + (size_t)l * dim, dim);
        const size_t loff = (size_t)l * r->seq_len * kv_dim;
        float *k = r->kc + loff + (size_t)pos * kv_dim, *v = r->vc + loff + (size_t)pos * kv_dim;
        ref_matmul(r->q, r->xb, r->wq + (size_t)l * dim * dim, dim, dim);
        ref_matmul(k, r->xb, r->wk + (size_t)l * dim * kv_dim, dim, kv_dim);
        ref_matmul(v, r->xb, r->wv + (size_t)l * dim * kv_dim, dim, kv_dim);
        for (int i = 0; i < dim; i += 2) {
            const int head_dim = i % hs;
            const float freq = 1.0f / powf(10000.0f, head_dim / (float)hs);
            const float val = pos * freq, fcr = cosf(val), fci = sinf(val);
            const int rotn = i < kv_dim ? 2 : 1;
            for (int vi = 0; vi < rotn; vi++) {
                float *vec = vi == 0 ? r->q : k;
                const float v0 = vec[i], v1 = vec[i + 1];
                vec[i] = v0 * fcr - v1 * fci;
                vec[i + 1] = v0 * fci + v1 * fcr;
            }
        }
        for (int h = 0; h < r->n_heads; h++) {
            const float *q = r->q + h * hs;
            float *att = r->att + (size_t)h * r->seq_len;
            for (int t = 0; t <= pos; t++) {
                const float *kt = r->kc + loff + (size_t)t * kv_dim + (h / kv_mul) * hs;
                float score = 0.0f;
                for (int i = 0; i < hs; i++) score += q[i] * kt[i];
                att[t] = score / sqrtf((float)hs);
            }
            float mx = att[0], sum = 0.0f;
            for (int t = 1; t <= pos; t++) mx = att[t] > mx ? att[t] : mx;
            for (int t = 0; t <= pos; t++) {
                att[t] = expf(att[t] - mx);
                sum += att[t];
            }
            for (int t = 0; t <= pos; t++) att[t] /= sum;
            float *xb = r->xb + h * hs;
            memset(xb, 0, (size_t)hs * 4);
            for (int t = 0; t <= pos; t++) {
                const float *vt = r->vc + loff + (size_t)t * kv_dim + (h / kv_mul) * hs;
                for (int i = 0; i < hs; i++) xb[i] += att[t] * vt[i];
            }
        }
        ref_matmul(r->xb2, r->xb, r->wo + (size_t)l * dim * dim, dim, dim);
        for (int i = 0; i < dim; i++) r->x[i] += r->xb2[i];
        ref_rmsnorm(r->xb, r->x, r->rms_ffn + (size_t)l * dim, dim);
        ref_matmul(r->hb, r->xb, r->w1 + (size_t)l * dim * hidden, dim, hidden);
        ref_matmul(r->hb2, r->xb, r->w3 + (size_t)l * dim * hidden, dim, hidden);
        for (int i = 0; i < hidden; i++) {
            float val = r->hb[i];
            val *= 1.0f / (1.0f + expf(-val));
            r->hb[i] = val * r->hb2[i];
        }
        ref_matmul(r->xb, r->hb, r->w2 + (size_t)l * dim * hidden, hidden, dim);
        for (int i = 0; i < dim; i++) r->x[i] += r->xb[i];
    }
    ref_rmsnorm(r->x, r->x, r->rms_final, dim);
    ref_matmul(r->logits, r->x, r->wcls, dim, r->vocab);
    return r->logits;
}

/* llama2.c tokenizer.bin pieces: text of ids (the piece after BOS loses its leading space). */
static void tok512_decode(const char *path, const int32_t *ids, int n, char *out, size_t cap) {
    size_t len;
    uint8_t *f = kq_test_read_file(path, &len);
    out[0] = 0;
    if (!f) return;
    const char *piece[512];
    int plen[512];
    size_t off = 4;
    for (int i = 0; i < 512 && off + 8 <= len; i++) {
        int32_t l;
        memcpy(&l, f + off + 4, 4);
        piece[i] = (const char *)f + off + 8;
        plen[i] = l;
        off += 8 + (size_t)l;
    }
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 3 || ids[i] >= 512) continue;
        const char *p = piece[ids[i]];
        int l = plen[ids[i]];
        if (i > 0 && ids[i - 1] == 1 && l > 0 && p[0] == ' ') p++, l--;
        if (o + (size_t)l + 1 >= cap) break;
        memcpy(out + o, p, (size_t)l);
        o += (size_t)l;
    }
    out[o] = 0;
    free(f);
}

#define STORY_N 80

static void test_stories(void) {
    char gguf[512], bin[512], tok[512];
    kq_test_shared_path("models/stories260K/stories260K.gguf", gguf, sizeof gguf);
    kq_test_shared_path("models/stories260K/stories260K.bin", bin, sizeof bin);
    kq_test_shared_path("models/stories260K/tok512.bin", tok, sizeof tok);
    if (!file_exists(gguf) || !file_exists(bin)) {
        KQ_SKIP("stories260K: %s or %s not found", gguf, bin);
        return;
    }
    ref_model r;
    KQ_CHECK(ref_load(&r, bin) == 0, "cannot read %s", bin);
    if (!r.file) return;
    /* the reference's greedy sequence from BOS, and its logits at every position */
    int32_t seq[STORY_N];
    float *ref_lg = malloc((size_t)STORY_N * (size_t)r.vocab * sizeof(float));
    seq[0] = 1;
    for (int p = 0; p < STORY_N; p++) {
        const float *lg = ref_forward(&r, seq[p], p);
        memcpy(ref_lg + (size_t)p * r.vocab, lg, (size_t)r.vocab * sizeof(float));
        if (p + 1 < STORY_N) seq[p + 1] = argmax(lg, r.vocab);
    }
    char text[2048];
    if (file_exists(tok)) {
        tok512_decode(tok, seq, STORY_N, text, sizeof text);
        KQ_CHECK(!strncmp(text, "Once upon a time, there was a little girl named Lily.", 52),
                 "reference forward pass greedy text: '%.80s'", text);
    }

    /* the engine, F32 KV, all positions at once and one by one */
    const kq_impl best = kq_impl_best();
    for (int one = 0; one < 2; one++) {
        float *lg = run_model(gguf, opts_of(best, 2, KQ_TYPE_F32, 512), seq, STORY_N, one);
        KQ_CHECK(lg != NULL, "stories260K engine run");
        if (!lg) continue;
        double worst = 0;
        int worst_p = 0;
        for (int p = 0; p < STORY_N; p++) {
            const double e = rel_l2(lg + (size_t)p * r.vocab, ref_lg + (size_t)p * r.vocab, (size_t)r.vocab);
            if (e > worst) worst = e, worst_p = p;
        }
        KQ_CHECK(worst <= 1e-4, "stories260K %s: rel L2 %.3g at position %d > 1e-4", one ? "one by one" : "batch",
                 worst, worst_p);
        printf("info: stories260K F32 vs llama2.c reference (%s, %s): worst rel L2 %.2e over %d positions\n",
               kq_impl_name(best), one ? "one by one" : "batched", worst, STORY_N);
        free(lg);
    }

    /* greedy decoding with the engine itself, KV F32 and F16 */
    for (int kv = 0; kv < 2; kv++) {
        kq_engine_opts o = opts_of(best, 1, kv ? KQ_TYPE_F16 : KQ_TYPE_F32, 512);
        kq_model *m = NULL;
        kq_session *s = NULL;
        char err[512];
        if (kq_model_load(gguf, &o, &m, err, sizeof err) || kq_session_new(m, 64, &s, err, sizeof err)) {
            KQ_CHECK(0, "stories260K: %s", err);
            kq_model_free(m);
            continue;
        }
        KQ_CHECK(kq_model_hp(m)->n_vocab == 512 && kq_model_hp(m)->n_head_kv == 4 && kq_model_hp(m)->bos_id == 1 &&
                     kq_model_hp(m)->add_bos == 1,
                 "stories260K hyperparameters");
        int32_t g[48];
        float lg[512];
        g[0] = 1;
        for (int p = 0; p + 1 < 48; p++) {
            kq_session_eval(s, &g[p], 1, lg, 0, err, sizeof err);
            g[p + 1] = argmax(lg, 512);
        }
        int same = 0;
        while (same < 48 && g[same] == seq[same]) same++;
        if (file_exists(tok)) {
            tok512_decode(tok, g, 48, text, sizeof text);
            KQ_CHECK(!strncmp(text, "Once upon a time, there was a little girl named Lily.", 52),
                     "engine greedy text (KV %s): '%.80s'", kv ? "f16" : "f32", text);
            printf("info: engine greedy (KV %s): %d of 48 tokens as the reference: \"%.100s\"\n", kv ? "f16" : "f32",
                   same, text);
        } else {
            KQ_SKIP("stories260K text: %s not found", tok);
        }
        if (!kv) KQ_CHECK(same == 48, "engine greedy (KV f32) leaves the reference's sequence at token %d", same);
        kq_session_free(s);
        kq_model_free(m);
    }

    /* 2. bit-identical: batch sizes and threads (F16 KV, the default) */
    float *a = run_model(gguf, opts_of(best, 1, KQ_TYPE_F16, 512), seq, 64, 0);
    float *b = run_model(gguf, opts_of(best, 1, KQ_TYPE_F16, 512), seq, 64, 1);
    float *c = run_model(gguf, opts_of(best, 2, KQ_TYPE_F16, 7), seq, 64, 0);
    const size_t bytes = 64 * 512 * sizeof(float);
    KQ_CHECK(a && b && !memcmp(a, b, bytes), "stories260K: batched and one-by-one logits differ");
    KQ_CHECK(a && c && !memcmp(a, c, bytes), "stories260K: 1 thread/batch 512 and 2 threads/batch 7 differ");
    free(a), free(b), free(c);
    free(ref_lg);
    ref_free(&r);
}

/* ================================ a test model built here ================================ */

typedef struct {
    int n_embd, n_head, n_head_kv, n_ff, n_vocab, n_layer, n_ctx;
    kq_type type;
    const char *arch;
    const char *omit_tensor;  /* leave this tensor out */
    const char *bad_shape;    /* give this tensor 32 more rows */
    const char *omit_key;     /* leave this metadata key out */
    const char *q8_1_tensor;  /* store this tensor as q8_1 (no vec_dot) */
    int tie_output;           /* no output.weight; with tie_copy: output.weight = token_embd */
    int tie_copy;
} tm_spec;

static tm_spec tm_default(kq_type t) {
    tm_spec s = {256, 8, 2, 512, 330, 2, 64, t, "llama", NULL, NULL, NULL, NULL, 0, 0};
    return s;
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_unif(uint64_t *s) { return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

static uint64_t name_seed(const char *s) { /* FNV-1a: a tensor's values depend on its name only */
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

typedef struct {
    char name[64];
    int64_t ne0, ne1;
    int norm;
    uint64_t seed;
    kq_type type;
} tm_tensor;

static int tm_write(const char *path, const tm_spec *sp) {
    kq_gguf_writer *w = kq_gguf_writer_new();
    char key[128];
    kq_gguf_set_str(w, "general.architecture", sp->arch);
    kq_gguf_set_str(w, "general.name", "engine-test");
    const struct { const char *k; int v; } keys[] = {
        {"context_length", sp->n_ctx},          {"embedding_length", sp->n_embd},
        {"feed_forward_length", sp->n_ff},      {"block_count", sp->n_layer},
        {"attention.head_count", sp->n_head},   {"attention.head_count_kv", sp->n_head_kv},
        {"rope.dimension_count", sp->n_embd / sp->n_head},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", sp->arch, keys[i].k);
        if (!sp->omit_key || strcmp(sp->omit_key, key)) kq_gguf_set_u32(w, key, (uint32_t)keys[i].v);
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", sp->arch);
    kq_gguf_set_f32(w, key, 1e-5f);
    snprintf(key, sizeof key, "%s.rope.freq_base", sp->arch);
    kq_gguf_set_f32(w, key, 10000.0f);
    kq_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    kq_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);

    tm_tensor t[64];
    int n = 0;
    const int hd = sp->n_embd / sp->n_head, kvd = hd * sp->n_head_kv;
#define TM_ADD(nm, a, b, isnorm)                                                              \
    do {                                                                                      \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                      \
        t[n].ne0 = a, t[n].ne1 = b, t[n].norm = isnorm, t[n].seed = name_seed(nm); \
        n++;                                                                                  \
    } while (0)
    TM_ADD("token_embd.weight", sp->n_embd, sp->n_vocab, 0);
    TM_ADD("output_norm.weight", sp->n_embd, 1, 1);
    if (!sp->tie_output || sp->tie_copy) {
        TM_ADD("output.weight", sp->n_embd, sp->n_vocab, 0);
        if (sp->tie_copy) t[n - 1].seed = t[0].seed;
    }
    for (int l = 0; l < sp->n_layer; l++) {
        char nm[64];
#define TM_L(sfx, a, b, isnorm)                                 \
    do {                                                        \
        snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, sfx);    \
        TM_ADD(nm, a, b, isnorm);                               \
    } while (0)
        TM_L("attn_norm", sp->n_embd, 1, 1);
        TM_L("attn_q", sp->n_embd, sp->n_embd, 0);
        TM_L("attn_k", sp->n_embd, kvd, 0);
        TM_L("attn_v", sp->n_embd, kvd, 0);
        TM_L("attn_output", sp->n_embd, sp->n_embd, 0);
        TM_L("ffn_norm", sp->n_embd, 1, 1);
        TM_L("ffn_gate", sp->n_embd, sp->n_ff, 0);
        TM_L("ffn_up", sp->n_embd, sp->n_ff, 0);
        TM_L("ffn_down", sp->n_ff, sp->n_embd, 0);
    }
    int idx[64];
    for (int i = 0; i < n; i++) {
        idx[i] = -1;
        if (sp->omit_tensor && !strcmp(sp->omit_tensor, t[i].name)) continue;
        if (sp->bad_shape && !strcmp(sp->bad_shape, t[i].name)) t[i].ne1 += 32;
        t[i].type = t[i].norm ? KQ_TYPE_F32 : sp->type;
        if (sp->q8_1_tensor && !strcmp(sp->q8_1_tensor, t[i].name)) t[i].type = KQ_TYPE_Q8_1;
        const int64_t ne[2] = {t[i].ne0, t[i].ne1};
        idx[i] = kq_gguf_add_tensor(w, t[i].name, t[i].norm ? 1 : 2, ne, t[i].type);
        if (idx[i] < 0) {
            printf("add_tensor %s failed\n", t[i].name);
            kq_gguf_writer_free(w);
            return -1;
        }
    }
    char err[512];
    int rc = kq_gguf_write_begin(w, path, err, sizeof err);
    float *row = malloc((size_t)sp->n_ff * 4 > (size_t)sp->n_embd * 4 ? (size_t)sp->n_ff * 4 : (size_t)sp->n_embd * 4);
    uint8_t *q = malloc(kq_row_size(KQ_TYPE_F32, sp->n_ff > sp->n_embd ? sp->n_ff : sp->n_embd) + 64);
    for (int i = 0; rc == 0 && i < n; i++) {
        if (idx[i] < 0) continue;
        const kq_type_traits *tr = kq_ref_traits(t[i].type);
        uint64_t seed = t[i].seed;
        /* weights ~ U(-a, a) with a = sqrt(3 / n_in) keep activations of unit size; norms ~ 1 */
        const int embd = t[i].seed == t[0].seed; /* token_embd, or its copy as output.weight */
        const int blk = !strncmp(t[i].name, "blk.", 4);
        /* block weights at half the unit scale: the residual stream dominates, as in trained models */
        const float a = t[i].norm ? 0.25f : embd ? 1.0f : (blk ? 0.5f : 1.0f) * sqrtf(3.0f / (float)t[i].ne0);
        for (int64_t r = 0; rc == 0 && r < t[i].ne1; r++) {
            for (int64_t j = 0; j < t[i].ne0; j++) row[j] = (t[i].norm ? 1.0f : 0.0f) + a * rng_unif(&seed);
            if (kq_type_is_intn(t[i].type))
                kq_quantize_row_intn_ref(tr, row, q, t[i].ne0, KQ_SCALE_MAX);
            else
                tr->quantize_row(row, q, t[i].ne0);
            rc = kq_gguf_write_data(w, idx[i], q, kq_row_size(t[i].type, t[i].ne0), err, sizeof err);
        }
    }
    if (rc == 0) rc = kq_gguf_write_finish(w, err, sizeof err);
    if (rc) printf("writing %s: %s\n", path, err);
    kq_gguf_writer_free(w);
    free(row), free(q);
    return rc;
}

static char tmpdir[256];

static const char *tm_path(const char *name, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s.gguf", tmpdir, name);
    return buf;
}

#define TM_N 12

static void tm_tokens(int32_t *tok, int n, int vocab) {
    uint64_t s = 42;
    tok[0] = 1;
    for (int i = 1; i < n; i++) tok[i] = (int32_t)(rng_next(&s) % (uint64_t)vocab);
}

/* Row lengths that are not a multiple of 8 blocks (so the kernels' tails run): n_embd and n_ff by
 * the type's block (head size n_embd / 8, even for the rotary pairs). */
static void tm_dims(const kq_type_traits *tr, tm_spec *sp) {
    const int blk = tr->block_elems;
    sp->n_embd = blk == 1 ? 208 : blk == 32 ? 224 : blk == 64 ? 192 : blk == 128 ? 384 : 256;
    sp->n_ff = blk == 1 ? 456 : blk == 32 ? 480 : blk == 64 ? 448 : blk == 128 ? 640 : 512;
    if (tr->intn_group == 0 && kq_type_is_intn(tr->type)) sp->n_embd = 224, sp->n_ff = 480; /* whole-row */
}

/* 3: every weight type, reference vs NEON, KV F16 and F32. */
static void test_bitexact(void) {
    static const char *const names[] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "q4_1", "q5_0",       "q5_1",
                                        "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "i4_g128_sym", "i8_g32_asym"};
    const kq_impl neon[2] = {KQ_IMPL_NEON_PLAIN, KQ_IMPL_NEON_DOTPROD};
    int any = 0;
    for (int ni = 0; ni < 2; ni++) {
        const char *why = "";
        if (!kq_impl_available(neon[ni], &why))
            KQ_SKIP("engine bit-exactness, %s: %s", kq_impl_name(neon[ni]), why);
        else
            any = 1;
    }
    if (!any) return;
    int32_t tok[TM_N];
    tm_tokens(tok, TM_N, 330);
    for (size_t ti = 0; ti < sizeof names / sizeof names[0]; ti++) {
        const kq_type_traits *tr = kq_type_by_name(names[ti]);
        if (!tr) {
            KQ_CHECK(0, "type %s unknown", names[ti]);
            continue;
        }
        char path[512];
        tm_spec sp = tm_default(tr->type);
        tm_dims(tr, &sp);
        KQ_CHECK(tm_write(tm_path(names[ti], path, sizeof path), &sp) == 0, "write %s", names[ti]);
        int same = 0, runs = 0;
        for (int kv = 0; kv < 2; kv++) {
            const kq_type kvt = kv ? KQ_TYPE_F32 : KQ_TYPE_F16;
            float *ref = run_model(path, opts_of(KQ_IMPL_REFERENCE, 1, kvt, 512), tok, TM_N, 0);
            KQ_CHECK(ref != NULL, "%s reference run", names[ti]);
            if (!ref) continue;
            int finite = 1;
            for (size_t i = 0; i < (size_t)TM_N * 330; i++) finite &= isfinite(ref[i]) != 0;
            KQ_CHECK(finite, "%s: non-finite logits", names[ti]);
            for (int ni = 0; ni < 2; ni++) {
                if (!kq_impl_available(neon[ni], NULL)) continue;
                /* 2 threads and batch 5 here, 1 thread and one batch for the reference */
                float *o = run_model(path, opts_of(neon[ni], 2, kvt, 5), tok, TM_N, 0);
                int first = -1;
                for (int p = 0; o && p < TM_N && first < 0; p++)
                    if (memcmp(o + (size_t)p * 330, ref + (size_t)p * 330, 330 * sizeof(float))) first = p;
                KQ_CHECK(o && first < 0, "%s KV %s: %s logits differ from reference at position %d", names[ti],
                         kv ? "f32" : "f16", kq_impl_name(neon[ni]), first);
                same += o && first < 0;
                runs++;
                free(o);
            }
            free(ref);
        }
        printf("info: %-12s (n_embd %d, n_ff %d): %d of %d NEON runs bit-identical to reference\n", names[ti],
               sp.n_embd, sp.n_ff, same, runs);
        unlink(path);
    }
}

/* 4: quantized logits stay close to F32 ones (same model, same tokens, KV F32). */
static void test_close(void) {
    static const char *const names[] = {"f32", "f16", "q8_0", "q6_K", "q4_0", "q4_K", "i8_g32_asym"};
    int32_t tok[TM_N];
    tm_tokens(tok, TM_N, 330);
    float *f32_lg = NULL;
    for (size_t ti = 0; ti < sizeof names / sizeof names[0]; ti++) {
        const kq_type_traits *tr = kq_type_by_name(names[ti]);
        char path[512];
        tm_spec sp = tm_default(tr->type);
        if (tm_write(tm_path(names[ti], path, sizeof path), &sp)) {
            KQ_CHECK(0, "write %s", names[ti]);
            continue;
        }
        float *lg = run_model(path, opts_of(kq_impl_best(), 2, KQ_TYPE_F32, 512), tok, TM_N, 0);
        unlink(path);
        KQ_CHECK(lg != NULL, "%s run", names[ti]);
        if (!lg) continue;
        if (ti == 0) {
            f32_lg = lg;
            continue;
        }
        const double e = f32_lg ? rel_l2(lg, f32_lg, (size_t)TM_N * 330) : 1.0;
        printf("info: %-12s logits vs f32: rel L2 %.3e\n", names[ti], e);
        const double lim = !strcmp(names[ti], "f16") ? 0.002 : !strcmp(names[ti], "q4_0") ? 0.2
                          : !strcmp(names[ti], "q4_K") ? 0.2 : !strcmp(names[ti], "q6_K") ? 0.05 : 0.02; /* q8_0, i8 */
        KQ_CHECK(e < lim, "%s vs f32: rel L2 %.3g >= %g", names[ti], e, lim);
        free(lg);
    }
    free(f32_lg);
}

/* 2 on the built model: quantized batch paths, thread counts, tied output. */
static void test_batch_threads(void) {
    int32_t tok[TM_N];
    tm_tokens(tok, TM_N, 330);
    static const kq_type types[] = {KQ_TYPE_Q4_K, KQ_TYPE_Q4_1, KQ_TYPE_F16};
    const kq_impl best = kq_impl_best();
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char path[512];
        tm_spec sp = tm_default(types[i]);
        if (tm_write(tm_path("bt", path, sizeof path), &sp)) {
            KQ_CHECK(0, "write");
            continue;
        }
        float *a = run_model(path, opts_of(best, 1, KQ_TYPE_F16, 512), tok, TM_N, 0);
        float *b = run_model(path, opts_of(best, 2, KQ_TYPE_F16, 512), tok, TM_N, 1);
        float *c = run_model(path, opts_of(best, 2, KQ_TYPE_F16, 3), tok, TM_N, 0);
        const size_t bytes = (size_t)TM_N * 330 * sizeof(float);
        KQ_CHECK(a && b && !memcmp(a, b, bytes), "%s: batched/1 thread vs one-by-one/2 threads differ",
                 kq_ref_traits(types[i])->name);
        KQ_CHECK(a && c && !memcmp(a, c, bytes), "%s: batch 512 vs batch 3 differ", kq_ref_traits(types[i])->name);
        /* the comparison can fail: the F32 KV cache rounds differently */
        float *d = run_model(path, opts_of(best, 1, KQ_TYPE_F32, 512), tok, TM_N, 0);
        KQ_CHECK(a && d && memcmp(a, d, bytes), "%s: KV f16 and f32 give identical logits", kq_ref_traits(types[i])->name);
        free(a), free(b), free(c), free(d);
    }
    /* tied output: no output.weight is the same as output.weight = token_embd */
    char p1[512], p2[512];
    tm_spec s1 = tm_default(KQ_TYPE_Q8_0), s2 = tm_default(KQ_TYPE_Q8_0);
    s1.tie_output = 1;
    s2.tie_output = 1, s2.tie_copy = 1;
    tm_write(tm_path("tied", p1, sizeof p1), &s1);
    tm_write(tm_path("tiedcopy", p2, sizeof p2), &s2);
    float *a = run_model(p1, opts_of(best, 2, KQ_TYPE_F16, 512), tok, TM_N, 0);
    float *b = run_model(p2, opts_of(best, 2, KQ_TYPE_F16, 512), tok, TM_N, 0);
    KQ_CHECK(a && b && !memcmp(a, b, (size_t)TM_N * 330 * sizeof(float)), "tied output differs from a copy");
    free(a), free(b);
    unlink(p1), unlink(p2);
}

/* 5. errors */
static void expect_load_error(const tm_spec *sp, const char *name, const char *want1, const char *want2) {
    char path[512], err[512] = "";
    tm_path(name, path, sizeof path);
    if (tm_write(path, sp)) {
        KQ_CHECK(0, "write %s", name);
        return;
    }
    kq_model *m = NULL;
    kq_engine_opts o = opts_of(KQ_IMPL_REFERENCE, 1, KQ_TYPE_F16, 512);
    const int rc = kq_model_load(path, &o, &m, err, sizeof err);
    KQ_CHECK(rc != 0 && m == NULL, "%s: loaded", name);
    KQ_CHECK(strstr(err, path) && strstr(err, want1) && (!want2 || strstr(err, want2)),
             "%s: error '%s' should name the file, '%s'%s%s", name, err, want1, want2 ? " and " : "",
             want2 ? want2 : "");
    kq_model_free(m);
    unlink(path);
}

static void test_errors(void) {
    tm_spec sp = tm_default(KQ_TYPE_Q8_0);
    sp.n_layer = 2, sp.n_ff = 256, sp.n_vocab = 64;
    tm_spec e = sp;
    e.omit_tensor = "blk.1.ffn_up.weight";
    expect_load_error(&e, "missing", "missing tensor", "blk.1.ffn_up.weight");
    e = sp;
    e.bad_shape = "blk.0.attn_k.weight";
    expect_load_error(&e, "shape", "blk.0.attn_k.weight", "shape");
    e = sp;
    e.omit_key = "llama.feed_forward_length";
    expect_load_error(&e, "nokey", "llama.feed_forward_length", "missing");
    e = sp;
    e.arch = "gpt9";
    expect_load_error(&e, "arch", "unknown architecture", "gpt9");
    e = sp;
    e.q8_1_tensor = "blk.0.attn_q.weight";
    expect_load_error(&e, "novecdot", "blk.0.attn_q.weight", "vec_dot");

    char err[512], path[512];
    KQ_CHECK(kq_model_load("/nonexistent/x.gguf", NULL, &(kq_model *){NULL}, err, sizeof err) != 0 &&
                 strstr(err, "/nonexistent/x.gguf"),
             "missing file: '%s'", err);

    tm_path("ok", path, sizeof path);
    if (tm_write(path, &sp)) return;
    kq_model *m = NULL;
    kq_session *s = NULL;
    kq_engine_opts o = opts_of(KQ_IMPL_REFERENCE, 1, KQ_TYPE_F16, 512);
    if (kq_model_load(path, &o, &m, err, sizeof err) || kq_session_new(m, 8, &s, err, sizeof err)) {
        KQ_CHECK(0, "load ok model: %s", err);
        kq_model_free(m);
        return;
    }
    int32_t tok[9] = {1, 5, 6, 7, 8, 9, 10, 11, 12};
    float lg[64];
    int32_t bad = 64;
    KQ_CHECK(kq_session_eval(s, &bad, 1, lg, 0, err, sizeof err) != 0 && strstr(err, "vocabulary"),
             "token 64 of 64: '%s'", err);
    bad = -1;
    KQ_CHECK(kq_session_eval(s, &bad, 1, lg, 0, err, sizeof err) != 0, "token -1 accepted");
    KQ_CHECK(kq_session_pos(s) == 0, "failed eval moved the position");
    KQ_CHECK(kq_session_eval(s, tok, 9, lg, 0, err, sizeof err) != 0 && strstr(err, "context"), "9 tokens in 8: '%s'",
             err);
    KQ_CHECK(kq_session_pos(s) == 0, "failed eval moved the position");
    KQ_CHECK(kq_session_eval(s, tok, 8, lg, 0, err, sizeof err) == 0, "8 tokens in 8: %s", err);
    KQ_CHECK(kq_session_eval(s, tok, 1, lg, 0, err, sizeof err) != 0 && strstr(err, "context"), "past n_ctx: '%s'",
             err);
    kq_session_reset(s);
    KQ_CHECK(kq_session_pos(s) == 0 && kq_session_eval(s, tok, 1, lg, 0, err, sizeof err) == 0, "after reset: %s",
             err);
    kq_session_free(s);
    kq_model_free(m);
    unlink(path);
}

/* Informational: ms/token of generation (1 and 2 threads). */
static void bench(const char *label, const char *path, int n) {
    for (int th = 1; th <= 2; th++) {
        kq_engine_opts o = opts_of(kq_impl_best(), th, KQ_TYPE_F16, 512);
        kq_model *m = NULL;
        kq_session *s = NULL;
        char err[512];
        if (kq_model_load(path, &o, &m, err, sizeof err) || kq_session_new(m, n + 1, &s, err, sizeof err)) {
            kq_model_free(m);
            return;
        }
        float *lg = malloc((size_t)kq_model_hp(m)->n_vocab * sizeof(float));
        int32_t t = 1;
        kq_session_eval(s, &t, 1, lg, 0, err, sizeof err); /* warm-up */
        const double t0 = now_ms();
        for (int i = 1; i < n; i++) kq_session_eval(s, &t, 1, lg, 0, err, sizeof err);
        const double ms = (now_ms() - t0) / (n - 1);
        printf("info: %s, %s, %d thread%s: %.3f ms/token (generation)\n", label, kq_impl_name(o.impl), th,
               th > 1 ? "s" : "", ms);
        free(lg);
        kq_session_free(s);
        kq_model_free(m);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/kq_test_engine_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("cannot create %s\n", tmpdir);
        return 1;
    }
    double t0 = now_ms();
    test_stories();
    const double t1 = now_ms();
    test_batch_threads();
    const double t2 = now_ms();
    test_errors();
    const double t3 = now_ms();
    test_bitexact();
    test_close();
    printf("info: time stories %.0f ms, batch/threads %.0f ms, errors %.0f ms, bit-exactness and closeness %.0f ms\n", t1 - t0, t2 - t1,
           t3 - t2, now_ms() - t3);
    if (getenv("KQ_ENGINE_BENCH")) {
        char p[512];
        kq_test_shared_path("models/stories260K/stories260K.gguf", p, sizeof p);
        if (file_exists(p)) bench("stories260K", p, 200);
        const kq_type bt[] = {KQ_TYPE_F32, KQ_TYPE_Q4_0, KQ_TYPE_Q8_0, KQ_TYPE_Q4_K};
        for (size_t i = 0; i < sizeof bt / sizeof bt[0]; i++) {
            tm_spec sp = tm_default(bt[i]);
            sp.n_ctx = 256;
            char label[64];
            snprintf(label, sizeof label, "test model %s", kq_ref_traits(bt[i])->name);
            if (tm_write(tm_path("bench", p, sizeof p), &sp) == 0) bench(label, p, 200);
            unlink(p);
        }
        /* a bigger one, where the matmuls dominate: 4 layers of 1024 x 2816, q4_0 */
        tm_spec sp = tm_default(KQ_TYPE_Q4_0);
        sp.n_embd = 1024, sp.n_ff = 2816, sp.n_layer = 4, sp.n_head = 16, sp.n_head_kv = 4, sp.n_ctx = 256;
        if (tm_write(tm_path("bench", p, sizeof p), &sp) == 0) bench("1024x2816 x4 layers q4_0", p, 40);
        unlink(p);
    }
    rmdir(tmpdir);
    return kq_test_finish();
}
