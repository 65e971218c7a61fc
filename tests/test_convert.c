/* Tests of the conversion pipeline (convert/convert.h, family.h, llama2c.c, registry.h, kq convert /
 * kq quantize):
 *  1. tiny HF llama checkpoints built here (safetensors, F32/F16/BF16 tensors, GQA, sharded) convert to
 *     f32, f16, bf16, q8_0, q4_0, q4_K and an INT-N type; every tensor, every row is checked against
 *     the source values un-permuted HERE (q with n_head, k with n_kv_head), byte for byte against the
 *     reference quantize_row; types and fallbacks as issue 9 section 6 says; metadata keys;
 *  2. LLMZoo delta merge: base + delta in f32, added vocabulary rows = delta rows, delta's vocabulary;
 *  3. mixtures (llama-quantize's rules, written here from llama.cpp's llama_tensor_get_type) and --keep;
 *  4. kq quantize of an f32 GGUF equals direct conversion; quantized input refused;
 *  5. stories260K.bin + tok512.bin -> f32 GGUF whose tensor data and vocabulary equal stories260K.gguf;
 *  6. hostile input: config.json wrong types / missing keys, missing tokenizer.model, NaN weights,
 *     missing shard, delta shape mismatch: an error naming file and problem, and no output file;
 *  7. `kq convert chimera-7b` without files: non-zero, names the folder and the source.
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "convert.h"
#include "fixtures.h"
#include "gguf.h"
#include "kq_ref.h"
#include "kq_test.h"
#include "registry.h"
#include "spm_vocab.h"

int kq_cmd_convert(int argc, char **argv);

static char g_dir[64];

/* ---------------------------------------------------------------- a tiny model, built here */
typedef struct {
    int hidden, inter, layers, heads, kv, vocab;
    kq_dtype dt;        /* of the matrices; norms are F32, embed BF16 when dt is F16 (mixed files) */
    uint32_t seed;
    float scale;
} spec;

#define MAXT 64
typedef struct {
    char name[128];
    int ndim;
    int64_t rows, cols;
    kq_dtype dt;
    float *val;  /* exact values the file holds (after rounding to dt) */
    void *raw;   /* bytes in dt */
} stensor;

typedef struct {
    spec s;
    stensor t[MAXT];
    int n;
} model;

static uint32_t lcg(uint32_t *st) {
    *st = *st * 1664525u + 1013904223u;
    return *st;
}

static void add_tensor(model *m, const char *name, int64_t rows, int64_t cols, kq_dtype dt, uint32_t seed,
                       float scale, float offset) {
    stensor *t = &m->t[m->n++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ndim = cols ? 2 : 1;
    t->rows = rows;
    t->cols = cols ? cols : 1;
    t->dt = dt;
    const int64_t n = rows * t->cols;
    t->val = malloc((size_t)n * sizeof(float));
    t->raw = malloc((size_t)n * 4);
    uint32_t st = seed;
    for (int64_t i = 0; i < n; i++) {
        const float u = (float)((lcg(&st) >> 8) & 0xffff) / 32768.0f - 1.0f;
        t->val[i] = offset + scale * u * (1.0f + (float)(i % 7));
    }
    if (dt == KQ_DT_F32) {
        memcpy(t->raw, t->val, (size_t)n * 4);
    } else if (dt == KQ_DT_F16) {
        kq_quantize_row_f16_ref(t->val, t->raw, n);
        kq_dequantize_row_f16_ref(t->raw, t->val, n);
    } else {
        kq_quantize_row_bf16_ref(t->val, t->raw, n);
        kq_dequantize_row_bf16_ref(t->raw, t->val, n);
    }
}

static void model_build(model *m, const spec *s, int vocab_rows) {
    memset(m, 0, sizeof(*m));
    m->s = *s;
    const int hd = s->hidden / s->heads;
    const kq_dtype emb = s->dt == KQ_DT_F16 ? KQ_DT_BF16 : s->dt;
    uint32_t seed = s->seed;
    add_tensor(m, "model.embed_tokens.weight", vocab_rows, s->hidden, emb, seed++, s->scale, 0);
    add_tensor(m, "model.norm.weight", s->hidden, 0, KQ_DT_F32, seed++, s->scale, 1);
    add_tensor(m, "lm_head.weight", vocab_rows, s->hidden, s->dt, seed++, s->scale, 0);
    for (int l = 0; l < s->layers; l++) {
        char n[128];
        const struct { const char *fmt; int64_t r, c; } L[] = {
            {"model.layers.%d.self_attn.q_proj.weight", s->heads * hd, s->hidden},
            {"model.layers.%d.self_attn.k_proj.weight", s->kv * hd, s->hidden},
            {"model.layers.%d.self_attn.v_proj.weight", s->kv * hd, s->hidden},
            {"model.layers.%d.self_attn.o_proj.weight", s->hidden, s->heads * hd},
            {"model.layers.%d.mlp.gate_proj.weight", s->inter, s->hidden},
            {"model.layers.%d.mlp.down_proj.weight", s->hidden, s->inter},
            {"model.layers.%d.mlp.up_proj.weight", s->inter, s->hidden},
            {"model.layers.%d.input_layernorm.weight", s->hidden, 0},
            {"model.layers.%d.post_attention_layernorm.weight", s->hidden, 0}};
        for (size_t k = 0; k < sizeof(L) / sizeof(L[0]); k++) {
            snprintf(n, sizeof(n), L[k].fmt, l);
            add_tensor(m, n, L[k].r, L[k].c, L[k].c ? s->dt : KQ_DT_F32, seed++, s->scale, L[k].c ? 0 : 1);
        }
    }
    char n[128];
    snprintf(n, sizeof(n), "model.layers.0.self_attn.rotary_emb.inv_freq");
    add_tensor(m, n, hd / 2, 0, KQ_DT_F32, seed++, 0.1f, 0.5f);
}

static void model_free(model *m) {
    for (int i = 0; i < m->n; i++) {
        free(m->t[i].val);
        free(m->t[i].raw);
    }
}

static const stensor *model_find(const model *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->t[i].name, name)) return &m->t[i];
    return NULL;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void write_config(const char *dir, const spec *s, int vocab) {
    char p[512], txt[2048];
    snprintf(p, sizeof(p), "%s/config.json", dir);
    snprintf(txt, sizeof(txt),
             "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": %d, \"intermediate_size\": %d,\n"
             " \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d,\n"
             " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0,\n"
             " \"vocab_size\": %d, \"model_type\": \"llama\"}\n",
             s->hidden, s->inter, s->layers, s->heads, s->kv, vocab);
    write_text(p, txt);
}

/* Writes the weights (one safetensors, or 2 shards + index), config.json and tokenizer.model. */
static int model_write(const model *m, const char *dir, int vocab, int sharded) {
    mkdir(dir, 0755);
    kq_wtensor w[MAXT];
    for (int i = 0; i < m->n; i++) {
        w[i].name = m->t[i].name;
        w[i].dtype = m->t[i].dt;
        w[i].ndim = m->t[i].ndim;
        w[i].shape[0] = m->t[i].rows;
        w[i].shape[1] = m->t[i].cols;
        w[i].data = m->t[i].raw;
    }
    char p[512], err[512];
    int rc = 0;
    if (!sharded) {
        snprintf(p, sizeof(p), "%s/model.safetensors", dir);
        rc = kq_write_safetensors(p, w, (size_t)m->n, err, sizeof(err));
    } else {
        const int half = m->n / 2;
        const char *names[MAXT], *files[MAXT];
        for (int i = 0; i < m->n; i++) {
            names[i] = m->t[i].name;
            files[i] = i < half ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
        }
        snprintf(p, sizeof(p), "%s/model-00001-of-00002.safetensors", dir);
        rc = kq_write_safetensors(p, w, (size_t)half, err, sizeof(err));
        snprintf(p, sizeof(p), "%s/model-00002-of-00002.safetensors", dir);
        if (!rc) rc = kq_write_safetensors(p, w + half, (size_t)(m->n - half), err, sizeof(err));
        snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
        if (!rc) rc = kq_write_index_json(p, names, files, (size_t)m->n, 0, err, sizeof(err));
    }
    if (rc) printf("model_write: %s\n", err);
    write_config(dir, &m->s, vocab);
    kq_vocab v;
    kq_vocab_init(&v);
    if (kq_fixture_vocab(&v)) return -1;
    snprintf(p, sizeof(p), "%s/tokenizer.model", dir);
    if (kq_spm_write(p, &v, err, sizeof(err))) {
        printf("spm_write: %s\n", err);
        rc = -1;
    }
    kq_vocab_free(&v);
    return rc;
}

/* ---------------------------------------------------------------- expectations, written here */

/* HF name of a GGUF name (llama names, as llama.cpp's tensor map has them). */
static int hf_name_of(const char *gguf, char *out, size_t len, int *perm) {
    static const char *const G[][2] = {{"token_embd.weight", "model.embed_tokens.weight"},
                                      {"output_norm.weight", "model.norm.weight"},
                                      {"output.weight", "lm_head.weight"}};
    static const char *const B[][2] = {{"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
                                      {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"},
                                      {"ffn_gate", "mlp.gate_proj"},    {"ffn_down", "mlp.down_proj"},
                                      {"ffn_up", "mlp.up_proj"},        {"attn_norm", "input_layernorm"},
                                      {"ffn_norm", "post_attention_layernorm"}};
    *perm = 0;
    for (size_t i = 0; i < 3; i++)
        if (!strcmp(gguf, G[i][0])) return snprintf(out, len, "%s", G[i][1]) > 0 ? 0 : -1;
    int l;
    char what[64];
    if (sscanf(gguf, "blk.%d.%63[a-z_].weight", &l, what) != 2) return -1;
    for (size_t i = 0; i < sizeof(B) / sizeof(B[0]); i++) {
        if (strcmp(what, B[i][0])) continue;
        *perm = i == 0 ? 1 : i == 1 ? 2 : 0;
        snprintf(out, len, "model.layers.%d.%s.weight", l, B[i][1]);
        return 0;
    }
    return -1;
}

/* GGUF row r of a permuted tensor: reshape(heads, 2, hd/2) -> (heads, hd/2, 2). */
static int64_t unpermute(int64_t r, int64_t hd) {
    const int64_t h = r / hd, within = r % hd;
    const int64_t j = within / 2, i = within % 2; /* GGUF index (h, j, i) */
    return h * hd + i * (hd / 2) + j;             /* HF index (h, i, j) */
}

/* The expected f32 row r of GGUF tensor name from base (+ delta). */
static void expected_row(const model *base, const model *delta, const char *name, int64_t r, float *out) {
    char hf[160];
    int perm;
    if (hf_name_of(name, hf, sizeof(hf), &perm)) return;
    const stensor *b = model_find(base, hf), *d = delta ? model_find(delta, hf) : NULL;
    const int64_t hd = base->s.hidden / base->s.heads;
    const int64_t sr = perm ? unpermute(r, hd) : r;
    const int64_t cols = b->ndim == 1 ? b->rows : b->cols;
    for (int64_t c = 0; c < cols; c++) {
        const float bv = b->ndim == 1 ? b->val[c] : sr < b->rows ? b->val[sr * b->cols + c] : 0.0f;
        out[c] = d ? bv + (d->ndim == 1 ? d->val[c] : d->val[sr * d->cols + c]) : bv;
    }
}

static kq_type rule_type(kq_type asked, int ndim, int64_t ne0) {
    if (ndim == 1) return KQ_TYPE_F32;
    if (kq_row_ok(asked, ne0)) return asked;
    return ne0 % 32 == 0 ? KQ_TYPE_Q8_0 : KQ_TYPE_F16;
}

/* Checks every tensor of the GGUF at path against base (+ delta) converted to `asked`. */
static void check_gguf(const char *path, const model *base, const model *delta, kq_type asked, const char *what) {
    kq_gguf *g = NULL;
    char err[512];
    if (kq_gguf_open(path, &g, err, sizeof(err))) {
        KQ_CHECK(0, "%s: open: %s", what, err);
        return;
    }
    const model *shape_src = delta ? delta : base;
    int n_expected = 0, n_fallback = 0, bad = 0;
    for (int i = 0; i < shape_src->n; i++) n_expected += !strstr(shape_src->t[i].name, "inv_freq");
    KQ_CHECK(kq_gguf_n_tensors(g) == n_expected, "%s: %lld tensors, expected %d", what,
             (long long)kq_gguf_n_tensors(g), n_expected);
    for (int64_t i = 0; i < kq_gguf_n_tensors(g); i++) {
        const kq_gguf_tensor *t = kq_gguf_tensor_at(g, i);
        char hf[160];
        int perm;
        if (hf_name_of(t->name, hf, sizeof(hf), &perm) || !model_find(shape_src, hf)) {
            KQ_CHECK(0, "%s: unexpected tensor %s", what, t->name);
            continue;
        }
        const stensor *s = model_find(shape_src, hf);
        const int64_t ne0 = s->ndim == 1 ? s->rows : s->cols, rows = s->ndim == 1 ? 1 : s->rows;
        KQ_CHECK(t->n_dims == s->ndim && t->ne[0] == ne0 && t->ne[1] == rows, "%s: %s shape", what, t->name);
        const kq_type want = rule_type(asked, s->ndim, ne0);
        n_fallback += s->ndim == 2 && want != asked;
        KQ_CHECK(t->type == want, "%s: %s is type %d, expected %d", what, t->name, (int)t->type, (int)want);
        if (t->type != want || t->ne[0] != ne0) continue;
        const kq_type_traits *tr = kq_ref_traits(want);
        const size_t rb = kq_row_size(want, ne0);
        float *x = malloc((size_t)ne0 * sizeof(float));
        uint8_t *q = malloc(rb);
        for (int64_t r = 0; r < rows && !bad; r++) {
            expected_row(base, delta, t->name, r, x);
            tr->quantize_row(x, q, ne0);
            if (memcmp(q, (const uint8_t *)t->data + (size_t)r * rb, rb)) {
                bad = 1;
                KQ_CHECK(0, "%s: %s row %lld differs from quantize_row of the source row", what, t->name,
                         (long long)r);
            }
        }
        free(x);
        free(q);
    }
    KQ_CHECK(!bad, "%s: tensor data", what);
    /* fallbacks listed, INT-N marked, file type */
    const int64_t fb = kq_gguf_find_key(g, KQ_KEY_FALLBACKS);
    KQ_CHECK(n_fallback == 0 ? fb < 0 : (fb >= 0 && kq_gguf_arr_count(g, fb) == (uint64_t)n_fallback),
             "%s: %d fallbacks expected in %s", what, n_fallback, KQ_KEY_FALLBACKS);
    uint32_t u = 0;
    KQ_CHECK((kq_gguf_get_u32(g, KQ_KEY_INTN_LAYOUT, &u) == 0) == (kq_type_is_intn(asked) != 0) &&
                 (!kq_type_is_intn(asked) || u == 1),
             "%s: kq.intn_layout_version", what);
    KQ_CHECK(kq_gguf_get_u32(g, "general.file_type", &u) == 0, "%s: general.file_type", what);
    static const struct { kq_type t; uint32_t ft; } FT[] = {
        {KQ_TYPE_F32, 0}, {KQ_TYPE_F16, 1}, {KQ_TYPE_Q4_0, 2}, {KQ_TYPE_Q8_0, 7}, {KQ_TYPE_BF16, 32}, {KQ_TYPE_Q4_K, 14}};
    for (size_t k = 0; k < sizeof(FT) / sizeof(FT[0]); k++)
        if (FT[k].t == asked) KQ_CHECK(u == FT[k].ft, "%s: general.file_type %u, llama.cpp's is %u", what, u, FT[k].ft);
    if (kq_type_is_intn(asked)) KQ_CHECK(u == 65536u + (uint32_t)asked, "%s: INT-N file type %u", what, u);
    uint32_t a = 0;
    KQ_CHECK(kq_gguf_get_u32(g, "general.alignment", &a) == 0 && a == 32, "%s: alignment", what);
    float theta = 0;
    KQ_CHECK(kq_gguf_get_f32(g, "llama.rope.freq_base", &theta) == 0 && theta == 500000.0f, "%s: rope theta", what);
    KQ_CHECK(kq_gguf_get_u32(g, "llama.attention.head_count_kv", &u) == 0 && u == (uint32_t)base->s.kv,
             "%s: head_count_kv", what);
    KQ_CHECK(kq_gguf_get_u32(g, "llama.vocab_size", &u) == 0 && u == (uint32_t)shape_src->t[0].rows,
             "%s: vocab_size %u", what, u);
    const int64_t tk = kq_gguf_find_key(g, "tokenizer.ggml.tokens");
    KQ_CHECK(tk >= 0 && kq_gguf_arr_count(g, tk) == (uint64_t)shape_src->t[0].rows, "%s: token count", what);
    kq_gguf_close(g);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* No file in dir whose name starts with prefix (a leftover temp file). */
static int no_leftovers(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return 1;
    struct dirent *e;
    int ok = 1;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) ok = 0;
    closedir(d);
    return ok;
}

static int convert(const char *src, const char *out, kq_type t, const char *delta, char *err, size_t errlen) {
    kq_convert_opts o;
    kq_convert_opts_init(&o);
    o.type = t;
    o.delta_dir = delta;
    o.threads = 3;
    return kq_convert_hf(src, NULL, out, &o, err, errlen);
}

/* ---------------------------------------------------------------- 1. conversions */
static void test_types(void) {
    const spec s = {64, 256, 2, 4, 2, KQ_FIX_VOCAB, KQ_DT_F16, 7, 0.05f};
    model m;
    model_build(&m, &s, KQ_FIX_VOCAB);
    char dir[256], out[300], err[1024];
    snprintf(dir, sizeof(dir), "%s/m1", g_dir);
    KQ_CHECK(model_write(&m, dir, KQ_FIX_VOCAB, 0) == 0, "write model 1");
    const kq_type types[] = {KQ_TYPE_F32, KQ_TYPE_F16, KQ_TYPE_BF16, KQ_TYPE_Q8_0, KQ_TYPE_Q4_0, KQ_TYPE_Q4_K,
                             KQ_TYPE_Q6_K, KQ_INTN_ID(4, 1, 0), KQ_INTN_ID(2, 0, 1)};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        const char *tn = kq_ref_traits(types[i])->name;
        snprintf(out, sizeof(out), "%s/m1_%s.gguf", g_dir, tn);
        const int rc = convert(dir, out, types[i], NULL, err, sizeof(err));
        KQ_CHECK(rc == 0, "convert m1 -t %s: %s", tn, rc ? err : "");
        if (!rc) check_gguf(out, &m, NULL, types[i], tn);
    }
    /* the same tensors in 2 shards give the same file */
    model m2;
    const spec s2 = {64, 96, 3, 8, 8, KQ_FIX_VOCAB, KQ_DT_F32, 99, 0.03f}; /* MHA, F32, 96-wide ffn rows */
    model_build(&m2, &s2, KQ_FIX_VOCAB);
    snprintf(dir, sizeof(dir), "%s/m2", g_dir);
    KQ_CHECK(model_write(&m2, dir, KQ_FIX_VOCAB, 1) == 0, "write model 2 (sharded)");
    snprintf(out, sizeof(out), "%s/m2_q4_K.gguf", g_dir);
    KQ_CHECK(convert(dir, out, KQ_TYPE_Q4_K, NULL, err, sizeof(err)) == 0, "convert m2: %s", err);
    check_gguf(out, &m2, NULL, KQ_TYPE_Q4_K, "sharded q4_K");
    snprintf(out, sizeof(out), "%s/m2_f32.gguf", g_dir);
    KQ_CHECK(convert(dir, out, KQ_TYPE_F32, NULL, err, sizeof(err)) == 0, "convert m2 f32: %s", err);
    check_gguf(out, &m2, NULL, KQ_TYPE_F32, "sharded f32");

    /* 4. kq quantize of the f32 GGUF == direct conversion, byte for byte */
    char q1[300], q2[300];
    snprintf(q1, sizeof(q1), "%s/m2_requant_q4_0.gguf", g_dir);
    snprintf(q2, sizeof(q2), "%s/m2_direct_q4_0.gguf", g_dir);
    kq_convert_opts o;
    kq_convert_opts_init(&o);
    o.type = KQ_TYPE_Q4_0;
    KQ_CHECK(kq_requantize_gguf(out, q1, &o, err, sizeof(err)) == 0, "requantize: %s", err);
    KQ_CHECK(convert(dir, q2, KQ_TYPE_Q4_0, NULL, err, sizeof(err)) == 0, "direct q4_0: %s", err);
    check_gguf(q1, &m2, NULL, KQ_TYPE_Q4_0, "requantized q4_0");
    /* tensor data identical (metadata holds the same keys; general.quantization_version moves) */
    kq_gguf *g1 = NULL, *g2 = NULL;
    if (!kq_gguf_open(q1, &g1, err, sizeof(err)) && !kq_gguf_open(q2, &g2, err, sizeof(err))) {
        const uint64_t d1 = kq_gguf_data_offset(g1), d2 = kq_gguf_data_offset(g2);
        const uint64_t n1 = kq_gguf_file_size(g1) - d1, n2 = kq_gguf_file_size(g2) - d2;
        const kq_gguf_tensor *t1 = kq_gguf_tensor_at(g1, 0), *t2 = kq_gguf_tensor_at(g2, 0);
        KQ_CHECK(n1 == n2 && kq_gguf_n_kv(g1) == kq_gguf_n_kv(g2) &&
                     !memcmp((const uint8_t *)t1->data - t1->offset, (const uint8_t *)t2->data - t2->offset, n1),
                 "kq quantize tensor data == kq convert tensor data");
    } else {
        KQ_CHECK(0, "open requantized: %s", err);
    }
    kq_gguf_close(g1);
    kq_gguf_close(g2);
    snprintf(q2, sizeof(q2), "%s/m2_requant_again.gguf", g_dir);
    KQ_CHECK(kq_requantize_gguf(q1, q2, &o, err, sizeof(err)) != 0 && strstr(err, "q4_0") && !file_exists(q2),
             "requantizing a quantized file is refused: %s", err);
    model_free(&m);
    model_free(&m2);
}

/* F16 fallback (rows not a multiple of 32) */
static void test_fallback_f16(void) {
    const spec s = {64, 80, 1, 4, 4, KQ_FIX_VOCAB, KQ_DT_BF16, 3, 0.05f};
    model m;
    model_build(&m, &s, KQ_FIX_VOCAB);
    char dir[256], out[300], err[1024];
    snprintf(dir, sizeof(dir), "%s/m3", g_dir);
    KQ_CHECK(model_write(&m, dir, KQ_FIX_VOCAB, 0) == 0, "write model 3");
    snprintf(out, sizeof(out), "%s/m3_q5_K.gguf", g_dir);
    KQ_CHECK(convert(dir, out, KQ_TYPE_Q5_K, NULL, err, sizeof(err)) == 0, "convert m3: %s", err);
    check_gguf(out, &m, NULL, KQ_TYPE_Q5_K, "ffn 80 q5_K");
    kq_gguf *g;
    if (kq_gguf_open(out, &g, err, sizeof(err)) == 0) {
        const int64_t k = kq_gguf_find_key(g, KQ_KEY_FALLBACKS);
        int found = 0;
        for (uint64_t j = 0; k >= 0 && j < kq_gguf_arr_count(g, k); j++) {
            const char *str;
            size_t len;
            kq_gguf_arr_str(g, k, j, &str, &len);
            found |= len == strlen("blk.0.ffn_down.weight:q5_K:f16") && !memcmp(str, "blk.0.ffn_down.weight:q5_K:f16", len);
        }
        KQ_CHECK(found, "kq.fallbacks lists blk.0.ffn_down.weight:q5_K:f16");
        kq_gguf_close(g);
    }
    model_free(&m);
}

/* ---------------------------------------------------------------- 2. delta merge */
static void test_delta(void) {
    const spec s = {64, 256, 2, 4, 2, KQ_FIX_VOCAB, KQ_DT_F16, 11, 0.05f};
    spec sd = s;
    sd.seed = 500;
    sd.scale = 0.005f;
    model base, delta;
    model_build(&base, &s, KQ_FIX_VOCAB);
    model_build(&delta, &sd, KQ_FIX_VOCAB + 2);
    char bdir[256], ddir[256], out[300], err[1024], p[300];
    snprintf(bdir, sizeof(bdir), "%s/base", g_dir);
    snprintf(ddir, sizeof(ddir), "%s/delta", g_dir);
    KQ_CHECK(model_write(&base, bdir, KQ_FIX_VOCAB, 0) == 0, "write base");
    KQ_CHECK(model_write(&delta, ddir, KQ_FIX_VOCAB + 2, 1) == 0, "write delta");
    snprintf(p, sizeof(p), "%s/added_tokens.json", ddir);
    write_text(p, "{\"<pad>\": 384, \"<|user|>\": 385}\n");
    const kq_type types[] = {KQ_TYPE_F32, KQ_TYPE_Q8_0, KQ_TYPE_Q4_K};
    for (size_t i = 0; i < 3; i++) {
        snprintf(out, sizeof(out), "%s/merged_%s.gguf", g_dir, kq_ref_traits(types[i])->name);
        const int rc = convert(bdir, out, types[i], ddir, err, sizeof(err));
        KQ_CHECK(rc == 0, "delta merge: %s", rc ? err : "");
        if (rc) continue;
        check_gguf(out, &base, &delta, types[i], "delta merge");
        kq_gguf *g;
        if (kq_gguf_open(out, &g, err, sizeof(err)) == 0) {
            const int64_t k = kq_gguf_find_key(g, "tokenizer.ggml.tokens");
            const char *str = NULL;
            size_t len = 0;
            KQ_CHECK(k >= 0 && kq_gguf_arr_str(g, k, 385, &str, &len) == 0 && len == 8 && !memcmp(str, "<|user|>", 8),
                     "the delta's added token is in the vocabulary");
            kq_gguf_close(g);
        }
    }
    /* a shape mismatch other than extra vocabulary rows names the tensor */
    model bad;
    spec sb = sd;
    sb.inter = 128;
    model_build(&bad, &sb, KQ_FIX_VOCAB);
    snprintf(ddir, sizeof(ddir), "%s/delta_bad", g_dir);
    model_write(&bad, ddir, KQ_FIX_VOCAB, 0);
    snprintf(p, sizeof(p), "%s/config.json", ddir);
    write_config(ddir, &s, KQ_FIX_VOCAB); /* config agrees, the tensors do not */
    snprintf(out, sizeof(out), "%s/merged_bad.gguf", g_dir);
    KQ_CHECK(convert(bdir, out, KQ_TYPE_F16, ddir, err, sizeof(err)) != 0 && strstr(err, "gate_proj") &&
                 !file_exists(out),
             "delta shape mismatch: %s", err);
    model_free(&base);
    model_free(&delta);
    model_free(&bad);
}

/* ---------------------------------------------------------------- 3. mixtures, keep */
static kq_type pick(const kq_convert_opts *o, const char *name, kq_tensor_role role, int layer, int n_layer,
                    int n_gqa) {
    kq_conv_tensor t;
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "%s", name);
    t.n_dims = 2;
    t.ne[0] = 4096;
    t.ne[1] = 4096;
    t.role = role;
    t.layer = layer;
    kq_type w;
    return kq_pick_type(o, &t, n_layer, n_gqa, &w);
}

static void test_mixes(void) {
    kq_convert_opts o;
    kq_convert_opts_init(&o);
    o.mix = kq_mix_by_name("q4_k_m");
    KQ_CHECK(o.mix == KQ_MIX_Q4_K_M && kq_mix_file_type(o.mix) == 15, "Q4_K_M is LLAMA_FTYPE 15");
    /* use_more_bits(i, 32): i < 4, i >= 28, (i - 4) % 3 == 2 */
    const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    for (int i = 0; i < 32; i++) {
        int m = 0;
        for (size_t k = 0; k < sizeof(more) / sizeof(more[0]); k++) m |= more[k] == i;
        const kq_type want = m ? KQ_TYPE_Q6_K : KQ_TYPE_Q4_K;
        KQ_CHECK(pick(&o, "blk.x.attn_v.weight", KQ_ROLE_ATTN_V, i, 32, 1) == want, "Q4_K_M attn_v layer %d", i);
        KQ_CHECK(pick(&o, "blk.x.ffn_down.weight", KQ_ROLE_FFN_DOWN, i, 32, 1) == want, "Q4_K_M ffn_down layer %d", i);
        KQ_CHECK(pick(&o, "blk.x.attn_q.weight", KQ_ROLE_ATTN_Q, i, 32, 1) == KQ_TYPE_Q4_K, "Q4_K_M attn_q");
    }
    KQ_CHECK(pick(&o, "output.weight", KQ_ROLE_OUTPUT, -1, 32, 1) == KQ_TYPE_Q6_K, "Q4_K_M output q6_K");
    KQ_CHECK(pick(&o, "token_embd.weight", KQ_ROLE_TOKEN_EMBD, -1, 32, 1) == KQ_TYPE_Q4_K, "Q4_K_M token_embd");
    o.mix = KQ_MIX_Q3_K_M;
    KQ_CHECK(pick(&o, "a", KQ_ROLE_ATTN_V, 1, 32, 1) == KQ_TYPE_Q5_K && pick(&o, "a", KQ_ROLE_ATTN_V, 2, 32, 1) == KQ_TYPE_Q4_K,
             "Q3_K_M attn_v");
    KQ_CHECK(pick(&o, "a", KQ_ROLE_FFN_DOWN, 1, 32, 1) == KQ_TYPE_Q5_K && pick(&o, "a", KQ_ROLE_FFN_DOWN, 2, 32, 1) == KQ_TYPE_Q4_K,
             "Q3_K_M ffn_down");
    KQ_CHECK(pick(&o, "a", KQ_ROLE_ATTN_OUTPUT, 5, 32, 1) == KQ_TYPE_Q4_K && pick(&o, "a", KQ_ROLE_FFN_UP, 5, 32, 1) == KQ_TYPE_Q3_K,
             "Q3_K_M attn_output / ffn_up");
    o.mix = KQ_MIX_Q2_K;
    KQ_CHECK(pick(&o, "a", KQ_ROLE_ATTN_V, 5, 32, 1) == KQ_TYPE_Q3_K && pick(&o, "a", KQ_ROLE_ATTN_V, 5, 32, 4) == KQ_TYPE_Q4_K,
             "Q2_K attn_v by GQA");
    KQ_CHECK(pick(&o, "a", KQ_ROLE_FFN_DOWN, 5, 32, 1) == KQ_TYPE_Q3_K && pick(&o, "a", KQ_ROLE_FFN_GATE, 5, 32, 1) == KQ_TYPE_Q2_K,
             "Q2_K ffn_down / gate");
    o.mix = KQ_MIX_Q4_K_S;
    KQ_CHECK(pick(&o, "a", KQ_ROLE_ATTN_V, 3, 32, 1) == KQ_TYPE_Q5_K && pick(&o, "a", KQ_ROLE_ATTN_V, 4, 32, 1) == KQ_TYPE_Q4_K,
             "Q4_K_S attn_v");
    KQ_CHECK(pick(&o, "a", KQ_ROLE_FFN_DOWN, 3, 32, 1) == KQ_TYPE_Q5_K && pick(&o, "a", KQ_ROLE_FFN_DOWN, 4, 32, 1) == KQ_TYPE_Q4_K,
             "Q4_K_S ffn_down");
    o.mix = KQ_MIX_Q8_0;
    KQ_CHECK(pick(&o, "output.weight", KQ_ROLE_OUTPUT, -1, 32, 1) == KQ_TYPE_Q8_0, "Q8_0 output stays q8_0");
    o.mix = KQ_MIX_Q4_0;
    KQ_CHECK(pick(&o, "output.weight", KQ_ROLE_OUTPUT, -1, 32, 1) == KQ_TYPE_Q6_K, "Q4_0 mix output q6_K");
    /* keep: last matching rule wins; 1-D stays f32 */
    kq_keep_rule r[2];
    char err[256];
    KQ_CHECK(kq_keep_parse("blk.*.attn_?.weight=f16", &r[0], err, sizeof(err)) == 0, "keep parse");
    KQ_CHECK(kq_keep_parse("blk.1.attn_q.weight=Q8_0", &r[1], err, sizeof(err)) == 0, "keep parse 2");
    KQ_CHECK(kq_keep_parse("nonsense", &r[1], err, sizeof(err)) != 0 && kq_keep_parse("x=q9_9", &r[1], err, sizeof(err)) != 0,
             "keep refuses bad rules");
    kq_keep_parse("blk.1.attn_q.weight=Q8_0", &r[1], err, sizeof(err));
    o.keep = r;
    o.n_keep = 2;
    KQ_CHECK(pick(&o, "blk.0.attn_q.weight", KQ_ROLE_ATTN_Q, 0, 32, 1) == KQ_TYPE_F16, "keep glob");
    KQ_CHECK(pick(&o, "blk.1.attn_q.weight", KQ_ROLE_ATTN_Q, 1, 32, 1) == KQ_TYPE_Q8_0, "keep last rule wins");
    KQ_CHECK(pick(&o, "blk.0.ffn_up.weight", KQ_ROLE_FFN_UP, 0, 32, 1) == KQ_TYPE_Q4_0, "keep leaves others");
    kq_conv_tensor t;
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "blk.0.attn_n.weight");
    t.n_dims = 1;
    t.ne[0] = 4096;
    t.ne[1] = 1;
    kq_type w;
    KQ_CHECK(kq_pick_type(&o, &t, 32, 1, &w) == KQ_TYPE_F32, "1-D tensors stay f32");
}

/* ---------------------------------------------------------------- 5. stories260K */
static void test_stories(void) {
    char bin[512], tok[512], ref[512], out[300], err[1024];
    kq_test_shared_path("models/stories260K/stories260K.bin", bin, sizeof(bin));
    kq_test_shared_path("models/stories260K/tok512.bin", tok, sizeof(tok));
    kq_test_shared_path("models/stories260K/stories260K.gguf", ref, sizeof(ref));
    if (!file_exists(bin) || !file_exists(tok) || !file_exists(ref)) {
        KQ_SKIP("stories260K: %s, %s or %s not found", bin, tok, ref);
        return;
    }
    snprintf(out, sizeof(out), "%s/stories.gguf", g_dir);
    kq_convert_opts o;
    kq_convert_opts_init(&o);
    o.type = KQ_TYPE_F32;
    const int rc = kq_convert_llama2c(bin, tok, out, &o, err, sizeof(err));
    KQ_CHECK(rc == 0, "stories260K.bin: %s", rc ? err : "");
    if (rc) return;
    kq_gguf *a = NULL, *b = NULL;
    if (kq_gguf_open(out, &a, err, sizeof(err)) || kq_gguf_open(ref, &b, err, sizeof(err))) {
        KQ_CHECK(0, "open: %s", err);
        kq_gguf_close(a);
        return;
    }
    KQ_CHECK(kq_gguf_n_tensors(a) == kq_gguf_n_tensors(b) && kq_gguf_n_tensors(b) == 48, "48 tensors");
    int same = 1;
    for (int64_t i = 0; i < kq_gguf_n_tensors(b); i++) {
        const kq_gguf_tensor *tb = kq_gguf_tensor_at(b, i);
        const int64_t j = kq_gguf_find_tensor(a, tb->name);
        const kq_gguf_tensor *ta = j >= 0 ? kq_gguf_tensor_at(a, j) : NULL;
        if (!ta || ta->type != tb->type || ta->size != tb->size || memcmp(ta->data, tb->data, tb->size)) {
            KQ_CHECK(0, "stories260K tensor %s differs from stories260K.gguf", tb->name);
            same = 0;
        }
    }
    KQ_CHECK(same, "stories260K: all tensor data identical to stories260K.gguf");
    const char *arrs[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"};
    for (int k = 0; k < 3; k++) {
        const int64_t ia = kq_gguf_find_key(a, arrs[k]), ib = kq_gguf_find_key(b, arrs[k]);
        int eq = ia >= 0 && ib >= 0 && kq_gguf_arr_count(a, ia) == kq_gguf_arr_count(b, ib);
        for (uint64_t e = 0; eq && e < kq_gguf_arr_count(b, ib); e++) {
            kq_gguf_value va, vb;
            eq = !kq_gguf_arr_elem(a, ia, e, &va) && !kq_gguf_arr_elem(b, ib, e, &vb) && va.type == vb.type;
            if (eq && va.type == KQ_GGUF_STR) eq = va.len == vb.len && !memcmp(va.s, vb.s, va.len);
            else if (eq) eq = va.i == vb.i && va.u == vb.u && (va.f == vb.f || (va.f != va.f && vb.f != vb.f));
        }
        KQ_CHECK(eq, "stories260K: %s equal to stories260K.gguf's", arrs[k]);
    }
    uint32_t ua, ub;
    KQ_CHECK(!kq_gguf_get_u32(a, "tokenizer.ggml.bos_token_id", &ua) && !kq_gguf_get_u32(b, "tokenizer.ggml.bos_token_id", &ub) &&
                 ua == ub, "bos id");
    kq_gguf_close(a);
    kq_gguf_close(b);
    /* quantized: ffn_down rows of 172 fall back to f16 */
    snprintf(out, sizeof(out), "%s/stories_q4_0.gguf", g_dir);
    o.type = KQ_TYPE_Q4_0;
    KQ_CHECK(kq_convert_llama2c(bin, tok, out, &o, err, sizeof(err)) == 0, "stories q4_0: %s", err);
    if (!kq_gguf_open(out, &a, err, sizeof(err))) {
        const kq_gguf_tensor *t = kq_gguf_tensor_at(a, kq_gguf_find_tensor(a, "blk.3.ffn_down.weight"));
        const kq_gguf_tensor *q = kq_gguf_tensor_at(a, kq_gguf_find_tensor(a, "blk.3.ffn_up.weight"));
        KQ_CHECK(t && t->type == KQ_TYPE_F16 && q && q->type == KQ_TYPE_Q4_0, "stories ffn_down 172 -> f16, ffn_up q4_0");
        const int64_t k = kq_gguf_find_key(a, KQ_KEY_FALLBACKS);
        KQ_CHECK(k >= 0 && kq_gguf_arr_count(a, k) == 5, "5 fallbacks listed");
        kq_gguf_close(a);
    }
    /* a truncated checkpoint is refused */
    size_t len = 0;
    uint8_t *data = kq_test_read_file(bin, &len);
    char cut[300];
    snprintf(cut, sizeof(cut), "%s/cut.bin", g_dir);
    FILE *f = fopen(cut, "wb");
    if (f && data) fwrite(data, 1, len - 100, f);
    if (f) fclose(f);
    free(data);
    snprintf(out, sizeof(out), "%s/cut.gguf", g_dir);
    KQ_CHECK(kq_convert_llama2c(cut, tok, out, &o, err, sizeof(err)) != 0 && strstr(err, "cut.bin") && !file_exists(out),
             "truncated llama2.c checkpoint: %s", err);
}

/* ---------------------------------------------------------------- 6. hostile input */
static void expect_fail(const char *dir, const char *delta, kq_type t, const char *must1, const char *must2,
                        const char *what) {
    char out[300], err[1024] = "";
    snprintf(out, sizeof(out), "%s/hostile.gguf", g_dir);
    const int rc = convert(dir, out, t, delta, err, sizeof(err));
    KQ_CHECK(rc != 0, "%s: accepted", what);
    KQ_CHECK(strstr(err, must1) && (!must2 || strstr(err, must2)) && !strchr(err, '\n'),
             "%s: error '%s' should name '%s' and '%s'", what, err, must1, must2 ? must2 : "");
    KQ_CHECK(!file_exists(out) && no_leftovers(g_dir, "hostile.gguf."), "%s: output or temp file left", what);
}

static void test_hostile(void) {
    const spec s = {64, 128, 1, 4, 2, KQ_FIX_VOCAB, KQ_DT_F32, 21, 0.05f};
    model m;
    model_build(&m, &s, KQ_FIX_VOCAB);
    char dir[256], p[300];
    snprintf(dir, sizeof(dir), "%s/h", g_dir);
    model_write(&m, dir, KQ_FIX_VOCAB, 0);
    snprintf(p, sizeof(p), "%s/config.json", dir);
    write_text(p, "{\"hidden_size\": \"64\", \"intermediate_size\": 128, \"num_hidden_layers\": 1, "
                  "\"num_attention_heads\": 4, \"rms_norm_eps\": 1e-5, \"vocab_size\": 384}");
    expect_fail(dir, NULL, KQ_TYPE_F16, "config.json", "hidden_size", "hidden_size a string");
    write_text(p, "{\"hidden_size\": 64, \"intermediate_size\": 128, \"num_attention_heads\": 4, "
                  "\"rms_norm_eps\": 1e-5, \"vocab_size\": 384}");
    expect_fail(dir, NULL, KQ_TYPE_F16, "config.json", "num_hidden_layers", "num_hidden_layers missing");
    write_text(p, "{\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 1.5, "
                  "\"num_attention_heads\": 4, \"rms_norm_eps\": 1e-5, \"vocab_size\": 384}");
    expect_fail(dir, NULL, KQ_TYPE_F16, "config.json", "num_hidden_layers", "num_hidden_layers 1.5");
    write_text(p, "{\"hidden_size\": 64, ");
    expect_fail(dir, NULL, KQ_TYPE_F16, "config.json", NULL, "malformed config.json");
    write_text(p, "{\"architectures\": [\"GPT2LMHeadModel\"], \"hidden_size\": 64}");
    expect_fail(dir, NULL, KQ_TYPE_F16, "config.json", "architectures", "foreign architecture");
    write_config(dir, &s, KQ_FIX_VOCAB + 5);
    expect_fail(dir, NULL, KQ_TYPE_F16, "embed_tokens", "shape", "vocab_size disagreeing with the weights");
    write_config(dir, &s, KQ_FIX_VOCAB);
    /* missing tokenizer.model */
    snprintf(p, sizeof(p), "%s/tokenizer.model", dir);
    unlink(p);
    expect_fail(dir, NULL, KQ_TYPE_F16, "tokenizer.model", "not found", "missing tokenizer.model");
    model_write(&m, dir, KQ_FIX_VOCAB, 0);
    /* NaN / Inf in a weight: refused with tensor, row, column */
    stensor *t = (stensor *)model_find(&m, "model.layers.0.mlp.up_proj.weight");
    const float nanv = NAN;
    ((float *)t->raw)[5 * t->cols + 7] = nanv;
    model_write(&m, dir, KQ_FIX_VOCAB, 0);
    expect_fail(dir, NULL, KQ_TYPE_Q8_0, "blk.0.ffn_up.weight", "row 5 column 7 is NaN", "NaN weight");
    expect_fail(dir, NULL, KQ_TYPE_F16, "blk.0.ffn_up.weight", "NaN", "NaN weight, f16 output");
    {
        kq_convert_opts o;
        kq_convert_opts_init(&o);
        o.type = KQ_TYPE_F32;
        o.allow_nonfinite = 1;
        char out[300], err[1024];
        snprintf(out, sizeof(out), "%s/nan_ok.gguf", g_dir);
        KQ_CHECK(kq_convert_hf(dir, NULL, out, &o, err, sizeof(err)) == 0, "--allow-nonfinite f32: %s", err);
        o.type = KQ_TYPE_Q4_0;
        snprintf(out, sizeof(out), "%s/nan_q.gguf", g_dir);
        KQ_CHECK(kq_convert_hf(dir, NULL, out, &o, err, sizeof(err)) != 0 && !file_exists(out),
                 "--allow-nonfinite still refuses NaN for q4_0");
    }
    ((float *)t->raw)[5 * t->cols + 7] = INFINITY;
    model_write(&m, dir, KQ_FIX_VOCAB, 0);
    expect_fail(dir, NULL, KQ_TYPE_Q4_0, "blk.0.ffn_up.weight", "Inf", "Inf weight");
    /* a k_proj NaN names the GGUF row and the source row */
    ((float *)t->raw)[5 * t->cols + 7] = 0.5f;
    stensor *k = (stensor *)model_find(&m, "model.layers.0.self_attn.k_proj.weight");
    ((float *)k->raw)[1 * k->cols] = nanv; /* HF row 1 = GGUF row 2 (hd 16: j=1, i=0) */
    model_write(&m, dir, KQ_FIX_VOCAB, 0);
    expect_fail(dir, NULL, KQ_TYPE_F16, "row 2 column 0", "source row 1", "NaN in k_proj (permuted)");
    ((float *)k->raw)[1 * k->cols] = 0.5f;
    /* missing shard */
    model m2;
    model_build(&m2, &s, KQ_FIX_VOCAB);
    snprintf(dir, sizeof(dir), "%s/h2", g_dir);
    model_write(&m2, dir, KQ_FIX_VOCAB, 1);
    snprintf(p, sizeof(p), "%s/model-00002-of-00002.safetensors", dir);
    unlink(p);
    expect_fail(dir, NULL, KQ_TYPE_F16, "model-00002-of-00002.safetensors", NULL, "missing shard");
    /* an unknown tensor */
    model_free(&m2);
    model_build(&m2, &s, KQ_FIX_VOCAB);
    snprintf(m2.t[m2.n - 1].name, sizeof(m2.t[0].name), "model.layers.0.mlp.extra_proj.weight");
    snprintf(dir, sizeof(dir), "%s/h3", g_dir);
    model_write(&m2, dir, KQ_FIX_VOCAB, 0);
    expect_fail(dir, NULL, KQ_TYPE_F16, "extra_proj", "not part of", "unknown tensor");
    model_free(&m);
    model_free(&m2);
}

/* ---------------------------------------------------------------- 7. registry */
static int run_cli_convert(char **argv, int argc, char *msg, size_t msglen) {
    char path[300];
    snprintf(path, sizeof(path), "%s/stderr.txt", g_dir);
    fflush(stderr);
    const int saved = dup(2);
    const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    const int rc = kq_cmd_convert(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t len = 0;
    char *text = kq_test_read_file(path, &len);
    snprintf(msg, msglen, "%.*s", (int)len, text ? text : "");
    free(text);
    return rc;
}

static void test_registry(void) {
#if KQ_HAVE_CJSON
    if (!file_exists("fixtures/models/chimera-7b.json")) {
        KQ_SKIP("registry: fixtures/models/chimera-7b.json not found");
        return;
    }
    char models[300], out[300], msg[4096];
    snprintf(models, sizeof(models), "%s/nomodels", g_dir);
    mkdir(models, 0755);
    setenv("KQ_MODELS", models, 1);
    snprintf(out, sizeof(out), "%s/chimera.gguf", g_dir);
    char *argv[] = {"convert", "chimera-7b", "-o", out, NULL};
    const int rc = run_cli_convert(argv, 4, msg, sizeof(msg));
    kq_reg_entry e, base;
    char err[512], expect_dir[600];
    KQ_CHECK(kq_registry_find("chimera-7b", &e, err, sizeof(err)) == 0 && e.base[0], "registry chimera-7b: %s", err);
    KQ_CHECK(kq_registry_find(e.base, &base, err, sizeof(err)) == 0, "registry base: %s", err);
    snprintf(expect_dir, sizeof(expect_dir), "%s/%s", models, base.name);
    KQ_CHECK(rc != 0, "kq convert chimera-7b without files exits non-zero");
    KQ_CHECK(strstr(msg, expect_dir) != NULL, "message names the folder %s: %s", expect_dir, msg);
    KQ_CHECK(base.source && strstr(msg, base.source) != NULL, "message names the source: %s", msg);
    KQ_CHECK(!file_exists(out), "no output");
    kq_registry_free(&e);
    kq_registry_free(&base);
    unsetenv("KQ_MODELS");
    char *argv2[] = {"convert", "no-such-model-xyz", "-o", out, NULL};
    KQ_CHECK(run_cli_convert(argv2, 4, msg, sizeof(msg)) != 0 && strstr(msg, "no-such-model-xyz"),
             "unknown name: %s", msg);
    KQ_CHECK(kq_registry_is_name("llama-7b") && !kq_registry_is_name("x/y") && !kq_registry_is_name("a.bin"),
             "registry names");
#else
    KQ_SKIP("registry: this build has no cJSON");
#endif
}

/* ---------------------------------------------------------------- fixtures (fixtures/gen.c) */
#if KQ_HAVE_CJSON && KQ_HAVE_GSL
/* Every tensor of out against the checkpoint in dir, un-permuted here with the config's head counts. */
static void check_against_ckpt(const char *out, const char *dir, int heads, int kv, kq_type asked, const char *what) {
    kq_gguf *g = NULL;
    kq_ckpt *ck = NULL;
    char err[512];
    if (kq_gguf_open(out, &g, err, sizeof(err)) || kq_ckpt_open(dir, &ck, err, sizeof(err))) {
        KQ_CHECK(0, "%s: %s", what, err);
        kq_gguf_close(g);
        return;
    }
    int bad = 0;
    for (int64_t i = 0; i < kq_gguf_n_tensors(g) && !bad; i++) {
        const kq_gguf_tensor *t = kq_gguf_tensor_at(g, i);
        char hf[160];
        int perm;
        const kq_src_tensor *s = hf_name_of(t->name, hf, sizeof(hf), &perm) ? NULL : kq_ckpt_find(ck, hf);
        if (!s) {
            KQ_CHECK(0, "%s: %s has no source", what, t->name);
            bad = 1;
            break;
        }
        const int64_t ne0 = t->ne[0], rows = t->ne[1];
        const kq_type want = rule_type(asked, t->n_dims, ne0);
        KQ_CHECK(t->type == want, "%s: %s type", what, t->name);
        const int64_t hd = kq_src_row_len(kq_ckpt_find(ck, "model.layers.0.self_attn.q_proj.weight")) / heads;
        (void)kv;
        float *x = malloc((size_t)ne0 * sizeof(float));
        uint8_t *q = malloc(kq_row_size(want, ne0));
        const size_t rb = kq_row_size(want, ne0);
        for (int64_t r = 0; r < rows && !bad; r++) {
            const int64_t sr = perm ? unpermute(r, hd) : r;
            if (kq_src_read_rows_f32(s, sr, 1, x, err, sizeof(err))) bad = 1;
            kq_ref_traits(want)->quantize_row(x, q, ne0);
            if (bad || memcmp(q, (const uint8_t *)t->data + (size_t)r * rb, rb)) {
                KQ_CHECK(0, "%s: %s row %lld", what, t->name, (long long)r);
                bad = 1;
            }
        }
        free(x);
        free(q);
    }
    KQ_CHECK(!bad, "%s: every row equals quantize_row of the un-permuted source row", what);
    kq_ckpt_close(ck);
    kq_gguf_close(g);
}

static void test_fixtures(void) {
    char fdir[200], err[1024];
    snprintf(fdir, sizeof(fdir), "%s/fixtures", g_dir);
    if (kq_fixtures_generate(fdir, err, sizeof(err))) {
        KQ_CHECK(0, "kq_fixtures_generate: %s", err);
        return;
    }
    const kq_type types[] = {KQ_TYPE_F32, KQ_TYPE_F16, KQ_TYPE_Q8_0, KQ_TYPE_Q4_0, KQ_TYPE_Q4_K, KQ_INTN_ID(4, 3, 0)};
    for (size_t i = 0; i < kq_fixture_count(); i++) {
        const kq_fixture_spec *f = kq_fixture_at(i);
        if (f->delta) continue;
        char dir[300], out[400], what[200];
        snprintf(dir, sizeof(dir), "%s/%s", fdir, f->name);
        for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
            snprintf(out, sizeof(out), "%s/%s.%s.gguf", g_dir, f->name, kq_ref_traits(types[k])->name);
            snprintf(what, sizeof(what), "%s -t %s", f->name, kq_ref_traits(types[k])->name);
            const int rc = convert(dir, out, types[k], NULL, err, sizeof(err));
            KQ_CHECK(rc == 0, "%s: %s", what, rc ? err : "");
            if (!rc) check_against_ckpt(out, dir, f->heads, f->kv_heads, types[k], what);
            unlink(out);
        }
    }
    /* the delta pair merges */
    const kq_fixture_spec *b = kq_fixture_find("fixture-chimera-base"), *d = kq_fixture_find("fixture-chimera-delta");
    if (b && d) {
        char bd[300], dd[300], out[400];
        snprintf(bd, sizeof(bd), "%s/%s", fdir, b->name);
        snprintf(dd, sizeof(dd), "%s/%s", fdir, d->name);
        snprintf(out, sizeof(out), "%s/fixture-chimera.gguf", g_dir);
        KQ_CHECK(convert(bd, out, KQ_TYPE_Q8_0, dd, err, sizeof(err)) == 0, "fixture chimera merge: %s", err);
    }
}
#endif

/* ---------------------------------------------------------------- */
static void rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        rm_rf(p);
    }
    closedir(d);
    rmdir(path);
}

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/kq_test_convert.XXXXXX");
    if (!mkdtemp(g_dir)) {
        printf("cannot create a scratch folder\n");
        return 1;
    }
#if KQ_HAVE_CJSON
    test_types();
    test_fallback_f16();
    test_delta();
    test_hostile();
#else
    KQ_SKIP("Hugging Face conversion: this build has no cJSON (config.json)");
    (void)test_types; /* built, not run: they need config.json */
    (void)test_fallback_f16;
    (void)test_delta;
    (void)test_hostile;
    (void)run_cli_convert;
#endif
#if KQ_HAVE_CJSON && KQ_HAVE_GSL
    test_fixtures();
#else
    KQ_SKIP("fixtures: this build lacks GSL or cJSON");
#endif
    test_mixes();
    test_stories();
    test_registry();
    rm_rf(g_dir);
    return kq_test_finish();
}
