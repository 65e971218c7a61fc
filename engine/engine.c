/* kq engine: load a GGUF through mmap and run the forward pass (see engine.h for the numerics).
 *
 * Layout of the work: a forward step takes a batch of B tokens. Every matmul input (B activation
 * rows) is quantized once to the weight's vec_dot_type; the weight's output rows are cut into
 * blocks of KQ_ROWS_PER_CALL, each thread takes a contiguous run of blocks, and for each block it
 * calls vec_dot(nrc = block rows) once per activation row, so a weight row is read from memory once
 * per batch and then comes from cache. Q, K and V (and gate and up) share one quantized input and
 * one dispatch. Attention is one job per (token, head). Nothing is allocated per token.
 *
 * Determinism: every output element is computed by one vec_dot call whose result does not depend on
 * nrc (kq_types.h), by one thread, so neither the thread count nor the batch size changes a bit. All
 * the scalar code (norms, rotary, softmax, SiLU, residuals) is written once here for every impl.
 *
 * RMSNorm: mean(x^2) is summed in double over float products, as ggml does (ggml_float), then
 * scale = 1/sqrtf(mean + eps) in float and y = (x * scale) * w. Softmax: max-subtracted expf in
 * float, the sum of exponentials in double, probabilities scaled by (float)(1/sum), as ggml. */
#include "engine.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "fp16.h"
#include "threads.h"

/* Multiply-adds below which a job runs on the calling thread alone: waking the pool costs more than
 * it saves (the result is the same either way: rows never depend on who computes them). */
#define KQ_MIN_PARALLEL_WORK 65536

/* Weight rows per vec_dot call: enough for the kernels' multi-row paths, few enough that the block
 * stays in L1/L2 while every activation row of the batch passes over it. */
#define KQ_ROWS_PER_CALL 16

typedef struct {
    const char *name;               /* GGUF tensor name (into the reader) */
    const void *data;               /* into the map */
    kq_type type;
    const kq_type_traits *tr;       /* the weight's row in the impl's table */
    const kq_type_traits *atr;      /* the activation (vec_dot_type) row */
    int64_t n_in, n_out;
    size_t row_bytes;
} kq_weight;

typedef struct {
    const float *w; /* n_embd floats: into the map when F32, else owned */
    float *owned;
} kq_normw;

typedef struct {
    kq_normw attn_norm, ffn_norm;
    kq_weight wq, wk, wv, wo, gate, up, down;
} kq_layer;

struct kq_model {
    kq_gguf *g;
    kq_model_hparams hp;
    kq_engine_opts opts;
    const kq_arch *arch;
    int head_dim, kv_dim, q_dim;
    kq_weight tok_embd, output;
    kq_normw out_norm;
    kq_layer *layers;
    const kq_type_traits *kv_tr; /* KV cache element type (F16 or F32) in the impl's table */
    size_t max_act_bytes;        /* one quantized activation row, the largest of any matmul input */
    int64_t max_in;              /* longest matmul input row */
};

/* ------------------------------------------------------------------------------------------------ */
/* errors */

static int kq_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int kq_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void kq_engine_opts_init(kq_engine_opts *o) {
    o->impl = kq_impl_best();
    o->threads = kq_cpu_count();
    o->kv_type = KQ_TYPE_F16;
    o->n_batch = 512;
}

/* ------------------------------------------------------------------------------------------------ */
/* loading */

typedef struct {
    kq_model *m;
    const char *path;
    char *err;
    size_t errlen;
} kq_loader;

static void kq_key(const kq_loader *L, const char *suffix, char *buf, size_t len) {
    snprintf(buf, len, "%s.%s", L->m->arch->name, suffix);
}

/* A u32 hyperparameter; def < 0: required. */
static int kq_hp_int(kq_loader *L, const char *suffix, int64_t def, int *out) {
    char key[128];
    kq_key(L, suffix, key, sizeof key);
    uint32_t v = 0;
    const int rc = kq_gguf_get_u32(L->m->g, key, &v);
    if (rc == -1) {
        if (def < 0) return kq_fail(L->err, L->errlen, "%s: missing hyperparameter key '%s'", L->path, key);
        *out = (int)def;
        return 0;
    }
    if (rc != 0) return kq_fail(L->err, L->errlen, "%s", kq_gguf_last_error(L->m->g));
    if (v == 0 || v > (1u << 30)) return kq_fail(L->err, L->errlen, "%s: key '%s' = %u is out of range", L->path, key, v);
    *out = (int)v;
    return 0;
}

static int kq_hp_float(kq_loader *L, const char *suffix, int required, float def, float *out) {
    char key[128];
    kq_key(L, suffix, key, sizeof key);
    const int rc = kq_gguf_get_f32(L->m->g, key, out);
    if (rc == -1) {
        if (required) return kq_fail(L->err, L->errlen, "%s: missing hyperparameter key '%s'", L->path, key);
        *out = def;
        return 0;
    }
    if (rc != 0) return kq_fail(L->err, L->errlen, "%s", kq_gguf_last_error(L->m->g));
    if (!isfinite(*out) || *out <= 0.0f)
        return kq_fail(L->err, L->errlen, "%s: key '%s' = %g is out of range", L->path, key, (double)*out);
    return 0;
}

static const kq_gguf_tensor *kq_find(kq_loader *L, const char *name, int required) {
    const int64_t i = kq_gguf_find_tensor(L->m->g, name);
    if (i < 0) {
        if (required) kq_fail(L->err, L->errlen, "%s: missing tensor '%s'", L->path, name);
        return NULL;
    }
    return kq_gguf_tensor_at(L->m->g, i);
}

static int kq_check_shape(kq_loader *L, const kq_gguf_tensor *t, int n_dims, int64_t ne0, int64_t ne1) {
    const int64_t want[4] = {ne0, ne1, 1, 1};
    int ok = 1;
    for (int d = 0; d < 4; d++) ok &= t->ne[d] == (d < n_dims ? want[d] : 1);
    if (ok) return 0;
    if (n_dims == 1)
        return kq_fail(L->err, L->errlen, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld]", L->path,
                       t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                       (long long)ne0);
    return kq_fail(L->err, L->errlen, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                   L->path, t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                   (long long)t->ne[3], (long long)ne0, (long long)ne1);
}

static const char *kq_tname(uint32_t type) {
    const char *s = kq_gguf_type_name(type);
    return s ? s : "?";
}

/* A matmul weight [n_in, n_out] whose type has a vec_dot in the impl. n_out < 0: any row count. */
static int kq_bind_weight(kq_loader *L, const char *name, int64_t n_in, int64_t n_out, int required, kq_weight *w) {
    memset(w, 0, sizeof *w);
    const kq_gguf_tensor *t = kq_find(L, name, required);
    if (!t) return required ? -1 : 0;
    if (kq_check_shape(L, t, 2, n_in, n_out < 0 ? t->ne[1] : n_out)) return -1;
    const kq_type_traits *tr = kq_traits(L->m->opts.impl, t->type);
    if (!tr || !tr->vec_dot || tr->vec_dot_type == KQ_TYPE_NONE)
        return kq_fail(L->err, L->errlen, "%s: tensor '%s' has type %s, which kq cannot multiply (no vec_dot)",
                       L->path, name, kq_tname((uint32_t)t->type));
    const kq_type_traits *atr = kq_traits(L->m->opts.impl, tr->vec_dot_type);
    if (!atr || !atr->quantize_row || !kq_row_ok(tr->vec_dot_type, n_in))
        return kq_fail(L->err, L->errlen, "%s: tensor '%s' (%s): rows of %lld cannot be multiplied", L->path, name,
                       tr->name, (long long)n_in);
    w->name = t->name;
    w->data = t->data;
    w->type = t->type;
    w->tr = tr;
    w->atr = atr;
    w->n_in = n_in;
    w->n_out = t->ne[1];
    w->row_bytes = kq_row_size(t->type, n_in);
    const size_t ab = kq_row_size(tr->vec_dot_type, n_in);
    if (ab > L->m->max_act_bytes) L->m->max_act_bytes = ab;
    if (n_in > L->m->max_in) L->m->max_in = n_in;
    return 0;
}

/* A norm weight [n]: F32 is used in place; another type is dequantized once (it is tiny). */
static int kq_bind_norm(kq_loader *L, const char *name, int64_t n, kq_normw *nw) {
    memset(nw, 0, sizeof *nw);
    const kq_gguf_tensor *t = kq_find(L, name, 1);
    if (!t) return -1;
    if (kq_check_shape(L, t, 1, n, 1)) return -1;
    if (t->type == KQ_TYPE_F32) {
        nw->w = t->data;
        return 0;
    }
    const kq_type_traits *tr = kq_traits(L->m->opts.impl, t->type);
    if (!tr || !tr->dequantize_row)
        return kq_fail(L->err, L->errlen, "%s: tensor '%s' has type %s, which kq cannot read", L->path, name,
                       kq_tname((uint32_t)t->type));
    nw->owned = malloc((size_t)n * sizeof(float));
    if (!nw->owned) return kq_fail(L->err, L->errlen, "%s: out of memory", L->path);
    tr->dequantize_row(t->data, nw->owned, n);
    nw->w = nw->owned;
    return 0;
}

static int kq_load_arch(kq_loader *L) {
    kq_model *m = L->m;
    const char *s;
    size_t len;
    const int rc = kq_gguf_get_str(m->g, "general.architecture", &s, &len);
    if (rc == -1) return kq_fail(L->err, L->errlen, "%s: missing key 'general.architecture'", L->path);
    if (rc != 0) return kq_fail(L->err, L->errlen, "%s", kq_gguf_last_error(m->g));
    m->arch = kq_arch_find(s, len);
    if (!m->arch)
        return kq_fail(L->err, L->errlen, "%s: unknown architecture '%.*s' (the engine runs: llama)", L->path,
                       (int)(len > 64 ? 64 : len), s);
    const char *knob = kq_arch_unsupported(m->arch);
    if (knob)
        return kq_fail(L->err, L->errlen, "%s: architecture '%s' needs %s, which the engine does not run yet", L->path,
                       m->arch->name, knob);
    snprintf(m->hp.arch, sizeof m->hp.arch, "%s", m->arch->name);
    if (kq_gguf_get_str(m->g, "general.name", &s, &len) == 0) {
        snprintf(m->hp.name, sizeof m->hp.name, "%.*s", (int)(len > 127 ? 127 : len), s);
    } else {
        const char *base = strrchr(L->path, '/');
        snprintf(m->hp.name, sizeof m->hp.name, "%s", base ? base + 1 : L->path);
    }
    return 0;
}

static int kq_load_hparams(kq_loader *L) {
    kq_model_hparams *hp = &L->m->hp;
    if (kq_hp_int(L, "embedding_length", -1, &hp->n_embd) || kq_hp_int(L, "block_count", -1, &hp->n_layer) ||
        kq_hp_int(L, "attention.head_count", -1, &hp->n_head) ||
        kq_hp_int(L, "attention.head_count_kv", hp->n_head, &hp->n_head_kv) ||
        kq_hp_int(L, "feed_forward_length", -1, &hp->n_ff) ||
        kq_hp_int(L, "rope.dimension_count", hp->n_embd / hp->n_head, &hp->n_rot) ||
        kq_hp_int(L, "context_length", -1, &hp->n_ctx_train) ||
        kq_hp_float(L, "rope.freq_base", 0, 10000.0f, &hp->rope_base) ||
        kq_hp_float(L, "attention.layer_norm_rms_epsilon", 1, 0.0f, &hp->norm_eps))
        return -1;
    kq_model *m = L->m;
    if (hp->n_embd % hp->n_head)
        return kq_fail(L->err, L->errlen, "%s: embedding_length %d is not a multiple of head_count %d", L->path,
                       hp->n_embd, hp->n_head);
    if (hp->n_head % hp->n_head_kv)
        return kq_fail(L->err, L->errlen, "%s: head_count %d is not a multiple of head_count_kv %d", L->path,
                       hp->n_head, hp->n_head_kv);
    m->head_dim = hp->n_embd / hp->n_head;
    m->q_dim = m->head_dim * hp->n_head;
    m->kv_dim = m->head_dim * hp->n_head_kv;
    if (hp->n_rot % 2 || hp->n_rot > m->head_dim || (hp->n_rot != m->head_dim && !m->arch->partial_rotary &&
                                                     m->arch->rope != KQ_ROPE_NONE))
        return kq_fail(L->err, L->errlen, "%s: rope.dimension_count %d does not fit the head size %d", L->path,
                       hp->n_rot, m->head_dim);
    return 0;
}

static void kq_load_vocab_keys(kq_loader *L) {
    kq_model *m = L->m;
    uint32_t v;
    m->hp.bos_id = kq_gguf_get_u32(m->g, "tokenizer.ggml.bos_token_id", &v) == 0 && v < (uint32_t)m->hp.n_vocab
                       ? (int32_t)v : -1;
    m->hp.eos_id = kq_gguf_get_u32(m->g, "tokenizer.ggml.eos_token_id", &v) == 0 && v < (uint32_t)m->hp.n_vocab
                       ? (int32_t)v : -1;
    int b;
    if (kq_gguf_get_bool(m->g, "tokenizer.ggml.add_bos_token", &b) == 0) {
        m->hp.add_bos = b;
    } else {
        const char *s;
        size_t len;
        m->hp.add_bos = kq_gguf_get_str(m->g, "tokenizer.ggml.model", &s, &len) == 0 && len == 5 &&
                        !memcmp(s, "llama", 5);
    }
    if (m->hp.bos_id < 0) m->hp.add_bos = 0;
}

static int kq_load_tensors(kq_loader *L) {
    kq_model *m = L->m;
    const kq_model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    /* token embedding: any type with a dequantizer; its rows define the vocabulary */
    const kq_gguf_tensor *te = kq_find(L, "token_embd.weight", 1);
    if (!te) return -1;
    if (kq_check_shape(L, te, 2, E, te->ne[1])) return -1;
    const kq_type_traits *tr = kq_traits(m->opts.impl, te->type);
    if (!tr || !tr->dequantize_row)
        return kq_fail(L->err, L->errlen, "%s: tensor 'token_embd.weight' has type %s, which kq cannot read", L->path,
                       kq_tname((uint32_t)te->type));
    if (te->ne[1] > INT32_MAX) return kq_fail(L->err, L->errlen, "%s: vocabulary too large", L->path);
    m->hp.n_vocab = (int)te->ne[1];
    m->tok_embd = (kq_weight){.name = te->name, .data = te->data, .type = te->type, .tr = tr, .n_in = E,
                              .n_out = te->ne[1], .row_bytes = kq_row_size(te->type, E)};
    if (kq_bind_norm(L, "output_norm.weight", E, &m->out_norm)) return -1;
    if (kq_bind_weight(L, "output.weight", E, hp->n_vocab, 0, &m->output)) return -1;
    if (!m->output.data && kq_bind_weight(L, "token_embd.weight", E, hp->n_vocab, 1, &m->output)) return -1;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return kq_fail(L->err, L->errlen, "%s: out of memory", L->path);
    for (int l = 0; l < hp->n_layer; l++) {
        kq_layer *ly = &m->layers[l];
        char n[7][64], an[64], fn[64];
        static const char *const suffix[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                              "ffn_down"};
        for (int i = 0; i < 7; i++) snprintf(n[i], sizeof n[i], "blk.%d.%s.weight", l, suffix[i]);
        snprintf(an, sizeof an, "blk.%d.attn_norm.weight", l);
        snprintf(fn, sizeof fn, "blk.%d.ffn_norm.weight", l);
        if (kq_bind_norm(L, an, E, &ly->attn_norm) || kq_bind_norm(L, fn, E, &ly->ffn_norm) ||
            kq_bind_weight(L, n[0], E, m->q_dim, 1, &ly->wq) || kq_bind_weight(L, n[1], E, m->kv_dim, 1, &ly->wk) ||
            kq_bind_weight(L, n[2], E, m->kv_dim, 1, &ly->wv) ||
            kq_bind_weight(L, n[3], m->q_dim, E, 1, &ly->wo) ||
            kq_bind_weight(L, n[4], E, hp->n_ff, 1, &ly->gate) || kq_bind_weight(L, n[5], E, hp->n_ff, 1, &ly->up) ||
            kq_bind_weight(L, n[6], hp->n_ff, E, 1, &ly->down))
            return -1;
    }
    return 0;
}

static uint64_t kq_wbytes(const kq_weight *w) { return (uint64_t)w->row_bytes * (uint64_t)w->n_out; }

static void kq_count_bytes(kq_model *m) {
    const kq_model_hparams *hp = &m->hp;
    const uint64_t norm = (uint64_t)hp->n_embd * sizeof(float);
    uint64_t b = m->tok_embd.row_bytes + kq_wbytes(&m->output) + norm;
    for (int l = 0; l < hp->n_layer; l++) {
        const kq_layer *ly = &m->layers[l];
        b += kq_wbytes(&ly->wq) + kq_wbytes(&ly->wk) + kq_wbytes(&ly->wv) + kq_wbytes(&ly->wo) +
             kq_wbytes(&ly->gate) + kq_wbytes(&ly->up) + kq_wbytes(&ly->down) + 2 * norm;
    }
    m->hp.weight_bytes = b;
    uint64_t p = 0;
    for (int64_t i = 0; i < kq_gguf_n_tensors(m->g); i++) p += (uint64_t)kq_gguf_tensor_at(m->g, i)->n_elements;
    m->hp.n_params = p;
}

static int kq_check_opts(const kq_engine_opts *o, const char *path, char *err, size_t errlen) {
    const char *why = "";
    if ((int)o->impl < 0 || o->impl >= KQ_IMPL_COUNT)
        return kq_fail(err, errlen, "%s: unknown implementation %d", path, (int)o->impl);
    if (!kq_impl_available(o->impl, &why))
        return kq_fail(err, errlen, "%s: implementation %s is not available: %s", path, kq_impl_name(o->impl), why);
    if (o->kv_type != KQ_TYPE_F16 && o->kv_type != KQ_TYPE_F32)
        return kq_fail(err, errlen, "%s: the KV cache type must be f16 or f32", path);
    if (o->threads < 1 || o->threads > 1024) return kq_fail(err, errlen, "%s: threads must be 1..1024", path);
    if (o->n_batch < 1) return kq_fail(err, errlen, "%s: n_batch must be >= 1", path);
    return 0;
}

int kq_model_load(const char *path, const kq_engine_opts *o, kq_model **out, char *err, size_t errlen) {
    *out = NULL;
    kq_engine_opts def;
    if (!o) {
        kq_engine_opts_init(&def);
        o = &def;
    }
    if (kq_check_opts(o, path, err, errlen)) return -1;
    kq_model *m = calloc(1, sizeof *m);
    if (!m) return kq_fail(err, errlen, "%s: out of memory", path);
    m->opts = *o;
    if (kq_gguf_open(path, &m->g, err, errlen)) {
        free(m);
        return -1;
    }
    kq_loader L = {m, path, err, errlen};
    if (kq_load_arch(&L) || kq_load_hparams(&L) || kq_load_tensors(&L)) {
        kq_model_free(m);
        return -1;
    }
    kq_load_vocab_keys(&L);
    kq_count_bytes(m);
    m->kv_tr = kq_traits(o->impl, o->kv_type);
    *out = m;
    return 0;
}

void kq_model_free(kq_model *m) {
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->hp.n_layer; l++) {
            free(m->layers[l].attn_norm.owned);
            free(m->layers[l].ffn_norm.owned);
        }
    }
    free(m->out_norm.owned);
    free(m->layers);
    kq_gguf_close(m->g);
    free(m);
}

const kq_model_hparams *kq_model_hp(const kq_model *m) { return &m->hp; }
const kq_gguf *kq_model_gguf(const kq_model *m) { return m->g; }
const kq_engine_opts *kq_model_opts(const kq_model *m) { return &m->opts; }

/* ------------------------------------------------------------------------------------------------ */
/* sessions */

typedef struct {
    float *scores; /* n_ctx */
    void *pbuf;    /* n_ctx probabilities in the KV type */
    void *qbuf;    /* head_dim query values in the KV type */
} kq_att_scratch;

struct kq_session {
    kq_model *m;
    int n_ctx, n_batch, pos;
    kq_pool *pool;
    size_t kv_es;                  /* bytes of one KV element */
    uint8_t *k_cache, *v_cache;    /* [layer][pos][kv_dim], [layer][kv_dim][n_ctx] */
    float *x, *xn, *q, *k, *v, *att, *tmp, *gate, *up; /* [n_batch][...] */
    float *rope;                   /* [n_batch][n_rot/2][cos, sin] */
    uint8_t *act;                  /* [n_batch] quantized activation rows */
    kq_att_scratch *ts;            /* one per thread */
};

static void *kq_alloc(size_t n, int *fail) {
    void *p = n ? malloc(n) : NULL;
    if (n && !p) *fail = 1;
    return p;
}

int kq_session_new(kq_model *m, int n_ctx, kq_session **out, char *err, size_t errlen) {
    *out = NULL;
    const kq_model_hparams *hp = &m->hp;
    if (n_ctx <= 0) n_ctx = hp->n_ctx_train;
    kq_session *s = calloc(1, sizeof *s);
    if (!s) return kq_fail(err, errlen, "out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_batch = m->opts.n_batch < n_ctx ? m->opts.n_batch : n_ctx;
    s->kv_es = m->opts.kv_type == KQ_TYPE_F16 ? 2 : 4;
    const size_t B = (size_t)s->n_batch, E = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    const size_t kv = (size_t)hp->n_layer * (size_t)n_ctx * (size_t)m->kv_dim * s->kv_es;
    int fail = 0;
    s->k_cache = kq_alloc(kv, &fail);
    s->v_cache = kq_alloc(kv, &fail);
    /* V rows are read over [0, n_kv): clear so no uninitialized byte is ever touched by a kernel */
    if (s->v_cache) memset(s->v_cache, 0, kv);
    s->x = kq_alloc(B * E * sizeof(float), &fail);
    s->xn = kq_alloc(B * E * sizeof(float), &fail);
    s->tmp = kq_alloc(B * E * sizeof(float), &fail);
    s->q = kq_alloc(B * (size_t)m->q_dim * sizeof(float), &fail);
    s->att = kq_alloc(B * (size_t)m->q_dim * sizeof(float), &fail);
    s->k = kq_alloc(B * (size_t)m->kv_dim * sizeof(float), &fail);
    s->v = kq_alloc(B * (size_t)m->kv_dim * sizeof(float), &fail);
    s->gate = kq_alloc(B * F * sizeof(float), &fail);
    s->up = kq_alloc(B * F * sizeof(float), &fail);
    s->rope = kq_alloc(B * (size_t)(hp->n_rot > 0 ? hp->n_rot : 1) * sizeof(float), &fail);
    s->act = kq_alloc(B * m->max_act_bytes, &fail);
    s->pool = kq_pool_new(m->opts.threads);
    if (!s->pool) fail = 1;
    const int nth = m->opts.threads;
    s->ts = calloc((size_t)nth, sizeof *s->ts);
    if (!s->ts) fail = 1;
    for (int t = 0; s->ts && t < nth; t++) {
        s->ts[t].scores = kq_alloc((size_t)n_ctx * sizeof(float), &fail);
        s->ts[t].pbuf = kq_alloc((size_t)n_ctx * s->kv_es, &fail);
        s->ts[t].qbuf = kq_alloc((size_t)m->head_dim * s->kv_es, &fail);
    }
    if (fail) {
        kq_session_free(s);
        return kq_fail(err, errlen, "%s: out of memory for a session of %d positions", kq_gguf_path(m->g), n_ctx);
    }
    *out = s;
    return 0;
}

void kq_session_free(kq_session *s) {
    if (!s) return;
    if (s->pool) kq_pool_free(s->pool);
    if (s->ts) {
        for (int t = 0; t < s->m->opts.threads; t++) {
            free(s->ts[t].scores);
            free(s->ts[t].pbuf);
            free(s->ts[t].qbuf);
        }
    }
    free(s->ts);
    free(s->k_cache);
    free(s->v_cache);
    free(s->x);
    free(s->xn);
    free(s->tmp);
    free(s->q);
    free(s->att);
    free(s->k);
    free(s->v);
    free(s->gate);
    free(s->up);
    free(s->rope);
    free(s->act);
    free(s);
}

void kq_session_reset(kq_session *s) { s->pos = 0; }
int kq_session_pos(const kq_session *s) { return s->pos; }
int kq_session_n_ctx(const kq_session *s) { return s->n_ctx; }

/* ------------------------------------------------------------------------------------------------ */
/* parallel pieces */

/* Contiguous share [lo, hi) of n items for thread ith of nth. */
static void kq_share(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

typedef struct {
    const kq_weight *w;
    float *y; /* [B][w->n_out] */
} kq_mm_out;

typedef struct {
    kq_mm_out outs[3];
    int n_outs;
    const uint8_t *a; /* B activation rows in the weights' vec_dot_type */
    size_t a_stride;
    int B;
    int64_t n_blocks; /* row blocks of every output together */
} kq_mm_job;

static int64_t kq_blocks_of(const kq_weight *w) { return (w->n_out + KQ_ROWS_PER_CALL - 1) / KQ_ROWS_PER_CALL; }

static void kq_mm_worker(void *ctx, int ith, int nth) {
    const kq_mm_job *j = ctx;
    int64_t lo, hi;
    kq_share(j->n_blocks, ith, nth, &lo, &hi);
    int64_t base = 0;
    for (int o = 0; o < j->n_outs && lo < hi; o++) {
        const kq_weight *w = j->outs[o].w;
        const int64_t nb = kq_blocks_of(w);
        for (int64_t blk = lo > base ? lo - base : 0; blk < nb && base + blk < hi; blk++) {
            const int64_t r0 = blk * KQ_ROWS_PER_CALL;
            const int nr = (int)(w->n_out - r0 < KQ_ROWS_PER_CALL ? w->n_out - r0 : KQ_ROWS_PER_CALL);
            const uint8_t *wr = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
            float *y = j->outs[o].y + r0;
            for (int b = 0; b < j->B; b++)
                w->tr->vec_dot(w->n_in, y + (size_t)b * (size_t)w->n_out, wr, w->row_bytes,
                               j->a + (size_t)b * j->a_stride, nr);
        }
        base += nb;
    }
}

typedef struct {
    const kq_type_traits *atr;
    const float *x;
    int64_t n;
    uint8_t *a;
    size_t a_stride;
    int B;
} kq_quant_job;

static void kq_quant_worker(void *ctx, int ith, int nth) {
    const kq_quant_job *j = ctx;
    int64_t lo, hi;
    kq_share(j->B, ith, nth, &lo, &hi);
    for (int64_t b = lo; b < hi; b++) j->atr->quantize_row(j->x + b * j->n, j->a + (size_t)b * j->a_stride, j->n);
}

/* y_o = W_o x for every output o (all with the same input length): x [B][n_in] is quantized once per
 * distinct vec_dot_type among the weights. */
static void kq_matmul(kq_session *s, const float *x, int B, const kq_mm_out *outs, int n_outs) {
    int done[3] = {0, 0, 0};
    for (int first = 0; first < n_outs; first++) {
        if (done[first]) continue;
        const kq_type_traits *atr = outs[first].w->atr;
        const int64_t n = outs[first].w->n_in;
        kq_mm_job j = {.n_outs = 0, .B = B, .n_blocks = 0};
        for (int o = first; o < n_outs; o++) {
            if (done[o] || outs[o].w->atr != atr) continue;
            done[o] = 1;
            j.outs[j.n_outs++] = outs[o];
            j.n_blocks += kq_blocks_of(outs[o].w);
        }
        if (atr->type == KQ_TYPE_F32) { /* the activation already is the vec_dot input */
            j.a = (const uint8_t *)x;
            j.a_stride = (size_t)n * sizeof(float);
        } else {
            kq_quant_job q = {atr, x, n, s->act, kq_row_size(atr->type, n), B};
            if (B >= 4 && n * B >= KQ_MIN_PARALLEL_WORK)
                kq_pool_run(s->pool, kq_quant_worker, &q);
            else
                kq_quant_worker(&q, 0, 1);
            j.a = s->act;
            j.a_stride = q.a_stride;
        }
        int64_t work = 0;
        for (int o = 0; o < j.n_outs; o++) work += j.outs[o].w->n_out * n * B;
        if (work < KQ_MIN_PARALLEL_WORK)
            kq_mm_worker(&j, 0, 1);
        else
            kq_pool_run(s->pool, kq_mm_worker, &j);
    }
}

static void kq_matmul1(kq_session *s, const float *x, int B, const kq_weight *w, float *y) {
    const kq_mm_out o = {w, y};
    kq_matmul(s, x, B, &o, 1);
}

/* ------------------------------------------------------------------------------------------------ */
/* scalar operations (the same for every impl) */

static void kq_rmsnorm(const float *x, const float *w, float *y, int n, float eps) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

static void kq_rope_table(float *cs, int pos, int n_rot, float base) {
    /* theta_i = pos * base^(-2i/n_rot), built by repeated multiplication as ggml's rope cache */
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
        theta *= theta_scale;
    }
}

static void kq_rope(float *v, int n_heads, int head_dim, int n_rot, const float *cs, kq_rope_kind kind) {
    const int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * (size_t)head_dim;
        for (int i = 0; i < half; i++) {
            const int i0 = kind == KQ_ROPE_NEOX ? i : 2 * i;
            const int i1 = kind == KQ_ROPE_NEOX ? i + half : 2 * i + 1;
            const float c = cs[2 * i], sn = cs[2 * i + 1];
            const float x0 = x[i0], x1 = x[i1];
            x[i0] = x0 * c - x1 * sn;
            x[i1] = x0 * sn + x1 * c;
        }
    }
}

static float kq_silu(float x) { return x / (1.0f + expf(-x)); }

typedef struct {
    float *g;
    const float *u;
    int64_t n;
} kq_glu_job;

static void kq_glu_worker(void *ctx, int ith, int nth) {
    const kq_glu_job *j = ctx;
    int64_t lo, hi;
    kq_share(j->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) j->g[i] = kq_silu(j->g[i]) * j->u[i];
}

/* ------------------------------------------------------------------------------------------------ */
/* attention */

typedef struct {
    kq_session *s;
    int layer, B, pos0;
} kq_att_job;

static void kq_att_one(kq_session *s, int layer, int b, int h, int pos0, kq_att_scratch *ts) {
    const kq_model *m = s->m;
    const int hd = m->head_dim, kvh = h / (m->hp.n_head / m->hp.n_head_kv);
    const int n_kv = pos0 + b + 1; /* causal: this token sees positions 0..its own */
    const size_t es = s->kv_es;
    const kq_type_traits *kv = m->kv_tr;
    const uint8_t *kc = s->k_cache + ((size_t)layer * (size_t)s->n_ctx * (size_t)m->kv_dim + (size_t)kvh * hd) * es;
    const uint8_t *vc = s->v_cache + ((size_t)layer * (size_t)m->kv_dim + (size_t)kvh * hd) * (size_t)s->n_ctx * es;
    const float *q = s->q + (size_t)b * (size_t)m->q_dim + (size_t)h * hd;
    float *out = s->att + (size_t)b * (size_t)m->q_dim + (size_t)h * hd;
    float *sc = ts->scores;

    const void *qa = q;
    if (kv->type != KQ_TYPE_F32) { /* F16 cache: the query is rounded to F16 for the F16.F16 dots */
        kv->quantize_row(q, ts->qbuf, hd);
        qa = ts->qbuf;
    }
    kv->vec_dot(hd, sc, kc, (size_t)m->kv_dim * es, qa, n_kv);

    const float scale = 1.0f / sqrtf((float)hd);
    float mx = -INFINITY;
    for (int i = 0; i < n_kv; i++) {
        sc[i] *= scale;
        if (sc[i] > mx) mx = sc[i];
    }
    double sum = 0.0;
    for (int i = 0; i < n_kv; i++) {
        sc[i] = expf(sc[i] - mx);
        sum += (double)sc[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n_kv; i++) sc[i] *= inv;

    const void *pa = sc;
    if (kv->type != KQ_TYPE_F32) { /* probabilities rounded to F16 against the F16 V rows */
        kv->quantize_row(sc, ts->pbuf, n_kv);
        pa = ts->pbuf;
    }
    kv->vec_dot(n_kv, out, vc, (size_t)s->n_ctx * es, pa, hd);
}

static void kq_att_worker(void *ctx, int ith, int nth) {
    const kq_att_job *j = ctx;
    const int nh = j->s->m->hp.n_head;
    for (int i = ith; i < j->B * nh; i += nth) kq_att_one(j->s, j->layer, i / nh, i % nh, j->pos0, &j->s->ts[ith]);
}

/* Appends the batch's K and V rows (rotary already applied to K) to the cache. */
static void kq_kv_store(kq_session *s, int layer, int B, int pos0) {
    const kq_model *m = s->m;
    const int kvd = m->kv_dim;
    const size_t es = s->kv_es;
    uint8_t *kc = s->k_cache + (size_t)layer * (size_t)s->n_ctx * (size_t)kvd * es;
    uint8_t *vc = s->v_cache + (size_t)layer * (size_t)kvd * (size_t)s->n_ctx * es;
    for (int b = 0; b < B; b++) {
        const size_t p = (size_t)(pos0 + b);
        m->kv_tr->quantize_row(s->k + (size_t)b * kvd, kc + p * (size_t)kvd * es, kvd);
        const float *v = s->v + (size_t)b * kvd;
        if (es == 2) {
            uint16_t *vt = (uint16_t *)vc;
            for (int j = 0; j < kvd; j++) vt[(size_t)j * (size_t)s->n_ctx + p] = kq_f32_to_f16(v[j]);
        } else {
            float *vt = (float *)vc;
            for (int j = 0; j < kvd; j++) vt[(size_t)j * (size_t)s->n_ctx + p] = v[j];
        }
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* the forward step */

static void kq_norm_rows(kq_session *s, const float *x, const float *w, float *y, int B) {
    const int E = s->m->hp.n_embd;
    for (int b = 0; b < B; b++) kq_rmsnorm(x + (size_t)b * E, w, y + (size_t)b * E, E, s->m->hp.norm_eps);
}

static void kq_add_rows(float *x, const float *d, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += d[i];
}

static void kq_block(kq_session *s, int l, int B, int pos0) {
    const kq_model *m = s->m;
    const kq_layer *ly = &m->layers[l];
    const int E = m->hp.n_embd, F = m->hp.n_ff, hd = m->head_dim, n_rot = m->hp.n_rot;

    kq_norm_rows(s, s->x, ly->attn_norm.w, s->xn, B);
    const kq_mm_out qkv[3] = {{&ly->wq, s->q}, {&ly->wk, s->k}, {&ly->wv, s->v}};
    kq_matmul(s, s->xn, B, qkv, 3);
    if (m->arch->rope != KQ_ROPE_NONE) {
        for (int b = 0; b < B; b++) {
            const float *cs = s->rope + (size_t)b * (size_t)n_rot;
            kq_rope(s->q + (size_t)b * (size_t)m->q_dim, m->hp.n_head, hd, n_rot, cs, m->arch->rope);
            kq_rope(s->k + (size_t)b * (size_t)m->kv_dim, m->hp.n_head_kv, hd, n_rot, cs, m->arch->rope);
        }
    }
    kq_kv_store(s, l, B, pos0);
    kq_att_job aj = {s, l, B, pos0};
    /* work ~ B * heads * (pos0 + B/2) * head_dim * 2 */
    if ((int64_t)B * m->hp.n_head * (pos0 + B / 2 + 1) * hd * 2 < KQ_MIN_PARALLEL_WORK)
        kq_att_worker(&aj, 0, 1);
    else
        kq_pool_run(s->pool, kq_att_worker, &aj);
    kq_matmul1(s, s->att, B, &ly->wo, s->tmp);
    kq_add_rows(s->x, s->tmp, (size_t)B * E);

    kq_norm_rows(s, s->x, ly->ffn_norm.w, s->xn, B);
    const kq_mm_out gu[2] = {{&ly->gate, s->gate}, {&ly->up, s->up}};
    kq_matmul(s, s->xn, B, gu, 2);
    kq_glu_job gj = {s->gate, s->up, (int64_t)B * F};
    if (gj.n >= KQ_MIN_PARALLEL_WORK / 4)
        kq_pool_run(s->pool, kq_glu_worker, &gj);
    else
        kq_glu_worker(&gj, 0, 1);
    kq_matmul1(s, s->gate, B, &ly->down, s->tmp);
    kq_add_rows(s->x, s->tmp, (size_t)B * E);
}

/* One batch of B <= n_batch tokens at s->pos. logits: NULL, or rows for the last n_out tokens. */
static void kq_forward(kq_session *s, const int32_t *tok, int B, float *logits, int n_out) {
    const kq_model *m = s->m;
    const int E = m->hp.n_embd;
    const int pos0 = s->pos;
    for (int b = 0; b < B; b++)
        m->tok_embd.tr->dequantize_row((const uint8_t *)m->tok_embd.data + (size_t)tok[b] * m->tok_embd.row_bytes,
                                       s->x + (size_t)b * E, E);
    if (m->hp.n_rot > 0)
        for (int b = 0; b < B; b++)
            kq_rope_table(s->rope + (size_t)b * (size_t)m->hp.n_rot, pos0 + b, m->hp.n_rot, m->hp.rope_base);
    for (int l = 0; l < m->hp.n_layer; l++) kq_block(s, l, B, pos0);
    s->pos += B;
    if (!logits || n_out == 0) return;
    const float *xl = s->x + (size_t)(B - n_out) * E;
    kq_norm_rows(s, xl, m->out_norm.w, s->xn, n_out);
    kq_matmul1(s, s->xn, n_out, &m->output, logits);
}

int kq_session_eval(kq_session *s, const int32_t *tokens, int n, float *logits, int all_logits, char *err,
                    size_t errlen) {
    const kq_model *m = s->m;
    if (n < 0) return kq_fail(err, errlen, "negative token count %d", n);
    if (n == 0) return 0;
    if (n > s->n_ctx - s->pos)
        return kq_fail(err, errlen, "%d tokens at position %d go past the context of %d positions", n, s->pos,
                       s->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
            return kq_fail(err, errlen, "token %d (id %ld) is outside the vocabulary of %d", i, (long)tokens[i],
                           m->hp.n_vocab);
    const size_t V = (size_t)m->hp.n_vocab;
    for (int i = 0; i < n; i += s->n_batch) {
        const int B = n - i < s->n_batch ? n - i : s->n_batch;
        const int last = i + B == n;
        if (!logits)
            kq_forward(s, tokens + i, B, NULL, 0);
        else if (all_logits)
            kq_forward(s, tokens + i, B, logits + (size_t)i * V, B);
        else
            kq_forward(s, tokens + i, B, last ? logits : NULL, last ? 1 : 0);
    }
    return 0;
}
