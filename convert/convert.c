/* kq conversion pipeline (see convert.h): type choice, the streaming row engine, Hugging Face
 * folders (+ LLMZoo delta) and GGUF requantization. */
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "convert.h"
#include "kq_intn.h"
#include "kq_ref.h"

/* ============================== types, mixes ============================== */

typedef struct {
    const char *name;
    kq_type base;
    uint32_t ftype; /* LLAMA_FTYPE_MOSTLY_* (llama.h) */
} kq_mix_row;

static const kq_mix_row kq_mixes[KQ_MIX_COUNT] = {
    [KQ_MIX_NONE] = {"", KQ_TYPE_NONE, 0},
    [KQ_MIX_Q4_0] = {"Q4_0", KQ_TYPE_Q4_0, 2},     [KQ_MIX_Q4_1] = {"Q4_1", KQ_TYPE_Q4_1, 3},
    [KQ_MIX_Q5_0] = {"Q5_0", KQ_TYPE_Q5_0, 8},     [KQ_MIX_Q5_1] = {"Q5_1", KQ_TYPE_Q5_1, 9},
    [KQ_MIX_Q8_0] = {"Q8_0", KQ_TYPE_Q8_0, 7},     [KQ_MIX_Q2_K] = {"Q2_K", KQ_TYPE_Q2_K, 10},
    [KQ_MIX_Q3_K_S] = {"Q3_K_S", KQ_TYPE_Q3_K, 11}, [KQ_MIX_Q3_K_M] = {"Q3_K_M", KQ_TYPE_Q3_K, 12},
    [KQ_MIX_Q3_K_L] = {"Q3_K_L", KQ_TYPE_Q3_K, 13}, [KQ_MIX_Q4_K_S] = {"Q4_K_S", KQ_TYPE_Q4_K, 14},
    [KQ_MIX_Q4_K_M] = {"Q4_K_M", KQ_TYPE_Q4_K, 15}, [KQ_MIX_Q5_K_S] = {"Q5_K_S", KQ_TYPE_Q5_K, 16},
    [KQ_MIX_Q5_K_M] = {"Q5_K_M", KQ_TYPE_Q5_K, 17}, [KQ_MIX_Q6_K] = {"Q6_K", KQ_TYPE_Q6_K, 18},
};

kq_mix kq_mix_by_name(const char *name) {
    for (int m = 1; m < KQ_MIX_COUNT; m++)
        if (!strcasecmp(name, kq_mixes[m].name)) return (kq_mix)m;
    return KQ_MIX_NONE;
}

const char *kq_mix_name(kq_mix m) { return m > 0 && m < KQ_MIX_COUNT ? kq_mixes[m].name : ""; }
uint32_t kq_mix_file_type(kq_mix m) { return m > 0 && m < KQ_MIX_COUNT ? kq_mixes[m].ftype : 0; }

uint32_t kq_file_type_of(kq_type t) {
    switch (t) {
    case KQ_TYPE_F32: return 0;
    case KQ_TYPE_F16: return 1;
    case KQ_TYPE_Q4_0: return 2;
    case KQ_TYPE_Q4_1: return 3;
    case KQ_TYPE_Q8_0: return 7;
    case KQ_TYPE_Q5_0: return 8;
    case KQ_TYPE_Q5_1: return 9;
    case KQ_TYPE_Q2_K: return 10;
    case KQ_TYPE_Q3_K: return 11; /* Q3_K_S: q3_K everywhere but the output */
    case KQ_TYPE_Q4_K: return 14; /* Q4_K_S */
    case KQ_TYPE_Q5_K: return 16; /* Q5_K_S */
    case KQ_TYPE_Q6_K: return 18;
    case KQ_TYPE_BF16: return 32;
    default: return kq_type_is_intn(t) ? KQ_FILE_TYPE_INTN_BASE + (uint32_t)t : 1024; /* 1024: GUESSED */
    }
}

/* Types a weight may be stored as (activation-only q8_1 / q8_K are not). */
static int kq_storable(kq_type t) {
    const kq_type_traits *tr = kq_ref_traits(t);
    return tr && tr->quantize_row && tr->dequantize_row && t != KQ_TYPE_Q8_K && t != KQ_TYPE_Q8_1;
}

int kq_keep_parse(const char *arg, kq_keep_rule *r, char *err, size_t errlen) {
    const char *eq = strrchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(r->glob)) {
        snprintf(err, errlen, "--keep takes GLOB=TYPE (e.g. 'output.weight=q8_0'), not '%s'", arg);
        return -1;
    }
    const kq_type_traits *tr = kq_type_by_name(eq + 1);
    if (!tr || !kq_storable(tr->type)) {
        snprintf(err, errlen, "--keep %s: unknown or unstorable type '%s' (see kq types)", arg, eq + 1);
        return -1;
    }
    memcpy(r->glob, arg, (size_t)(eq - arg));
    r->glob[eq - arg] = 0;
    r->type = tr->type;
    return 0;
}

void kq_convert_opts_init(kq_convert_opts *o) {
    memset(o, 0, sizeof(*o));
    o->type = KQ_TYPE_NONE;
    o->impl = kq_impl_best();
}

/* llama-quantize's use_more_bits: the first and last eighth, and every third layer between. */
static int kq_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* llama_tensor_get_type for the llama family, without imatrix, MoE and 70B rules (docs/mixes.md). */
static kq_type kq_mix_pick(kq_mix m, const kq_conv_tensor *t, kq_tensor_role role, int n_layer, int n_gqa) {
    const kq_type base = kq_mixes[m].base;
    const int i = t->layer < 0 ? 0 : t->layer;
    const kq_type_traits *bt = kq_ref_traits(base);
    switch (role) {
    case KQ_ROLE_OUTPUT:
        if (t->ne[0] % bt->block_elems) return KQ_TYPE_Q8_0;
        return base == KQ_TYPE_Q8_0 ? base : KQ_TYPE_Q6_K;
    case KQ_ROLE_ATTN_V:
        if (m == KQ_MIX_Q2_K) return n_gqa >= 4 ? KQ_TYPE_Q4_K : KQ_TYPE_Q3_K;
        if (m == KQ_MIX_Q3_K_M) return i < 2 ? KQ_TYPE_Q5_K : KQ_TYPE_Q4_K;
        if (m == KQ_MIX_Q3_K_L) return KQ_TYPE_Q5_K;
        if ((m == KQ_MIX_Q4_K_M || m == KQ_MIX_Q5_K_M) && kq_more_bits(i, n_layer)) return KQ_TYPE_Q6_K;
        if (m == KQ_MIX_Q4_K_S && i < 4) return KQ_TYPE_Q5_K;
        return base;
    case KQ_ROLE_FFN_DOWN:
        if (m == KQ_MIX_Q2_K) return KQ_TYPE_Q3_K;
        if (m == KQ_MIX_Q3_K_M) return i < n_layer / 16 ? KQ_TYPE_Q5_K : KQ_TYPE_Q4_K;
        if (m == KQ_MIX_Q3_K_L) return KQ_TYPE_Q5_K;
        if ((m == KQ_MIX_Q4_K_M || m == KQ_MIX_Q5_K_M) && kq_more_bits(i, n_layer)) return KQ_TYPE_Q6_K;
        if (m == KQ_MIX_Q4_K_S && i < n_layer / 8) return KQ_TYPE_Q5_K;
        return base;
    case KQ_ROLE_ATTN_OUTPUT:
        if (m == KQ_MIX_Q2_K) return KQ_TYPE_Q3_K;
        if (m == KQ_MIX_Q3_K_M) return KQ_TYPE_Q4_K;
        if (m == KQ_MIX_Q3_K_L) return KQ_TYPE_Q5_K;
        return base;
    default: return base;
    }
}

static kq_type kq_pick_role(const kq_convert_opts *o, const kq_conv_tensor *t, kq_tensor_role role, int n_layer,
                            int n_gqa, kq_type *wanted) {
    if (t->n_dims < 2) {
        *wanted = KQ_TYPE_F32;
        return KQ_TYPE_F32;
    }
    kq_type w = o->type != KQ_TYPE_NONE ? o->type : KQ_TYPE_F16;
    if (o->mix != KQ_MIX_NONE) w = kq_mix_pick(o->mix, t, role, n_layer, n_gqa);
    for (size_t k = 0; k < o->n_keep; k++)
        if (fnmatch(o->keep[k].glob, t->name, 0) == 0) w = o->keep[k].type;
    *wanted = w;
    if (kq_row_ok(w, t->ne[0])) return w;
    return t->ne[0] % KQ_QK == 0 ? KQ_TYPE_Q8_0 : KQ_TYPE_F16;
}

kq_type kq_pick_type(const kq_convert_opts *o, const kq_conv_tensor *t, int n_layer, int n_gqa, kq_type *wanted) {
    return kq_pick_role(o, t, t->role, n_layer, n_gqa, wanted);
}

static int kq_is_float_type(kq_type t) { return t == KQ_TYPE_F32 || t == KQ_TYPE_F16 || t == KQ_TYPE_BF16; }

int kq_conv_plan(kq_gguf_writer *w, kq_conv_tensor *t, size_t n, const kq_convert_opts *o, int n_layer, int n_gqa,
                 char *err, size_t errlen) {
    if (o->type != KQ_TYPE_NONE && !kq_storable(o->type)) {
        snprintf(err, errlen, "type %d cannot store weights", (int)o->type);
        return -1;
    }
    /* tied embeddings: llama-quantize gives token_embd the output's treatment */
    int has_output = 0;
    for (size_t i = 0; i < n; i++) has_output |= t[i].role == KQ_ROLE_OUTPUT;
    size_t n_fb = 0;
    int any_q = 0, any_intn = 0;
    for (size_t i = 0; i < n; i++) {
        kq_tensor_role role = t[i].role;
        if (!has_output && role == KQ_ROLE_TOKEN_EMBD) role = KQ_ROLE_OUTPUT;
        t[i].type = kq_pick_role(o, &t[i], role, n_layer, n_gqa, &t[i].wanted);
        n_fb += t[i].type != t[i].wanted;
        any_q |= !kq_is_float_type(t[i].type);
        any_intn |= kq_type_is_intn(t[i].type);
    }
    const kq_type main_type = o->type != KQ_TYPE_NONE ? o->type : KQ_TYPE_F16;
    const uint32_t ftype = o->mix != KQ_MIX_NONE ? kq_mix_file_type(o->mix) : kq_file_type_of(main_type);
    int rc = kq_gguf_set_u32(w, "general.file_type", ftype);
    if (any_q) rc |= kq_gguf_set_u32(w, "general.quantization_version", 2);
    rc |= kq_gguf_set_u32(w, "general.alignment", KQ_GGUF_DEFAULT_ALIGNMENT);
    rc |= kq_gguf_set_str(w, KQ_KEY_OUTTYPE, o->mix != KQ_MIX_NONE ? kq_mix_name(o->mix) : kq_ref_traits(main_type)->name);
    if (any_intn) rc |= kq_gguf_set_u32(w, KQ_KEY_INTN_LAYOUT, KQ_INTN_LAYOUT_VERSION);
    if (n_fb) {
        char **s = calloc(n_fb, sizeof(char *));
        size_t k = 0;
        for (size_t i = 0; s && i < n; i++) {
            if (t[i].type == t[i].wanted) continue;
            s[k] = malloc(KQ_GGUF_MAX_NAME + 64);
            if (s[k])
                snprintf(s[k], KQ_GGUF_MAX_NAME + 64, "%s:%s:%s", t[i].name, kq_ref_traits(t[i].wanted)->name,
                         kq_ref_traits(t[i].type)->name);
            k++;
        }
        int ok = s != NULL;
        for (size_t i = 0; ok && i < n_fb; i++) ok = s[i] != NULL;
        rc |= ok ? kq_gguf_set_arr_str(w, KQ_KEY_FALLBACKS, (const char *const *)s, NULL, n_fb) : -1;
        for (size_t i = 0; s && i < n_fb; i++) free(s[i]);
        free(s);
    }
    if (rc) snprintf(err, errlen, "cannot set the file's type metadata (out of memory)");
    return rc ? -1 : 0;
}

/* ============================== the row engine ============================== */

#define KQ_CHUNK_WEIGHTS ((int64_t)1 << 22)
#define KQ_MAX_THREADS 64

typedef struct {
    const kq_conv_tensor *t;
    const kq_type_traits *tr;
    kq_rows_fn rows;
    void *ctx;
    int allow_nonfinite;
    int64_t r0, r1;     /* absolute rows of this worker */
    float *f32, *scratch; /* this worker's slices */
    uint8_t *q;
    int rc;
    char err[768];
} kq_worker;

static int kq_nonfinite_error(const kq_worker *k, int64_t row, int64_t col, float v, char *err, size_t errlen) {
    const kq_conv_tensor *t = k->t;
    const int64_t src_row = t->xform != KQ_XF_NONE ? kq_rope_src_row(row, t->head_dim) : row;
    snprintf(err, errlen,
             "%s: tensor %s (%s) row %lld column %lld is %s (source row %lld): non-finite weights are refused%s",
             t->src_file ? t->src_file : "input", t->name, t->src_name ? t->src_name : t->name, (long long)row,
             (long long)col, v != v ? "NaN" : "Inf", (long long)src_row,
             kq_is_float_type(t->type) ? " (--allow-nonfinite keeps them in f32/f16/bf16 outputs)"
                                       : " (quantizers need finite input)");
    return -1;
}

static void *kq_worker_run(void *arg) {
    kq_worker *k = arg;
    const int64_t ne0 = k->t->ne[0], nrows = k->r1 - k->r0;
    if (nrows <= 0) return NULL;
    k->rc = k->rows(k->ctx, k->t, k->r0, nrows, k->f32, k->scratch, k->err, sizeof(k->err));
    if (k->rc) return NULL;
    const size_t rb = kq_row_size(k->t->type, ne0);
    const int check = !(k->allow_nonfinite && kq_is_float_type(k->t->type));
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = k->f32 + r * ne0;
        int64_t bad = -1;
        if (check && !kq_row_finite(x, ne0, &bad)) {
            k->rc = kq_nonfinite_error(k, k->r0 + r, bad, x[bad], k->err, sizeof(k->err));
            return NULL;
        }
        k->tr->quantize_row(x, k->q + (size_t)r * rb, ne0);
    }
    return NULL;
}

static int kq_threads(const kq_convert_opts *o) {
    long n = o->threads > 0 ? o->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n > KQ_MAX_THREADS ? KQ_MAX_THREADS : (int)n;
}

/* Rows [r0, r1) of t: split over the workers, run, collect the first error in row order. */
static int kq_run_chunk(kq_worker *wk, int nth, const kq_conv_tensor *t, int64_t r0, int64_t r1, float *f32,
                        float *scratch, uint8_t *q, char *err, size_t errlen) {
    const int64_t ne0 = t->ne[0], n = r1 - r0;
    const size_t rb = kq_row_size(t->type, ne0);
    if (n * ne0 < 16384) nth = 1; /* thread start-up costs more than small chunks */
    if (nth > n) nth = (int)n;
    pthread_t tid[KQ_MAX_THREADS];
    int started[KQ_MAX_THREADS] = {0};
    for (int i = 0; i < nth; i++) {
        const int64_t a = r0 + n * i / nth, b = r0 + n * (i + 1) / nth;
        wk[i].t = t;
        wk[i].r0 = a;
        wk[i].r1 = b;
        wk[i].f32 = f32 + (a - r0) * ne0;
        wk[i].scratch = scratch + (a - r0) * ne0;
        wk[i].q = q + (size_t)(a - r0) * rb;
        wk[i].rc = 0;
        wk[i].err[0] = 0;
        if (i > 0) started[i] = pthread_create(&tid[i], NULL, kq_worker_run, &wk[i]) == 0;
        if (i > 0 && !started[i]) kq_worker_run(&wk[i]);
    }
    kq_worker_run(&wk[0]);
    for (int i = 1; i < nth; i++)
        if (started[i]) pthread_join(tid[i], NULL);
    for (int i = 0; i < nth; i++) {
        if (wk[i].rc) {
            snprintf(err, errlen, "%s", wk[i].err[0] ? wk[i].err : "reading rows failed");
            return -1;
        }
    }
    return 0;
}

int kq_conv_run(kq_gguf_writer *w, const kq_conv_tensor *t, size_t n, kq_rows_fn rows, void *ctx,
                const kq_convert_opts *o, const char *out_path, char *err, size_t errlen) {
    int64_t max_f = 0, total = 0;
    size_t max_q = 0;
    for (size_t i = 0; i < n; i++) {
        if (kq_gguf_add_tensor(w, t[i].name, t[i].n_dims, t[i].ne, t[i].type) != (int)i) {
            snprintf(err, errlen, "cannot add tensor %s (shape %lld x %lld, type %s) to %s", t[i].name,
                     (long long)t[i].ne[0], (long long)t[i].ne[1], kq_ref_traits(t[i].type)->name, out_path);
            return -1;
        }
        const int64_t ne0 = t[i].ne[0];
        int64_t rows_total = 1;
        for (int d = 1; d < KQ_GGUF_MAX_DIMS; d++) rows_total *= t[i].ne[d] > 0 ? t[i].ne[d] : 1;
        int64_t cr = KQ_CHUNK_WEIGHTS / ne0;
        if (cr < 1) cr = 1;
        if (cr > rows_total) cr = rows_total;
        if (cr * ne0 > max_f) max_f = cr * ne0;
        if ((size_t)cr * kq_row_size(t[i].type, ne0) > max_q) max_q = (size_t)cr * kq_row_size(t[i].type, ne0);
        total += ne0 * rows_total;
    }
    float *f32 = malloc((size_t)(max_f ? max_f : 1) * sizeof(float));
    float *scratch = malloc((size_t)(max_f ? max_f : 1) * sizeof(float));
    uint8_t *q = malloc(max_q ? max_q : 1);
    kq_worker *wk = calloc(KQ_MAX_THREADS, sizeof(kq_worker));
    int rc = -1;
    if (!f32 || !scratch || !q || !wk) {
        snprintf(err, errlen, "%s: out of memory for the row buffers", out_path);
        goto done;
    }
    if (kq_gguf_write_begin(w, out_path, err, errlen)) goto done;
    if (o->on_tmp_file) o->on_tmp_file(kq_gguf_writer_tmp_path(w));
    const int nth = kq_threads(o);
    int64_t done_w = 0;
    for (size_t i = 0; i < n; i++) {
        const int64_t ne0 = t[i].ne[0];
        int64_t rows_total = 1;
        for (int d = 1; d < KQ_GGUF_MAX_DIMS; d++) rows_total *= t[i].ne[d] > 0 ? t[i].ne[d] : 1;
        int64_t cr = KQ_CHUNK_WEIGHTS / ne0;
        if (cr < 1) cr = 1;
        const kq_type_traits *tr = kq_traits(o->impl, t[i].type);
        for (int k = 0; k < KQ_MAX_THREADS; k++) {
            wk[k].tr = tr;
            wk[k].rows = rows;
            wk[k].ctx = ctx;
            wk[k].allow_nonfinite = o->allow_nonfinite;
        }
        for (int64_t r0 = 0; r0 < rows_total; r0 += cr) {
            const int64_t r1 = r0 + cr < rows_total ? r0 + cr : rows_total;
            if (kq_run_chunk(wk, nth, &t[i], r0, r1, f32, scratch, q, err, errlen)) goto abort;
            const size_t nb = (size_t)(r1 - r0) * kq_row_size(t[i].type, ne0);
            if (kq_gguf_write_data(w, (int)i, q, nb, err, errlen)) goto abort;
            done_w += (r1 - r0) * ne0;
            if (o->progress) o->progress(o->progress_ud, done_w, total);
        }
        if (rows(ctx, &t[i], rows_total, 0, NULL, NULL, err, errlen)) goto abort; /* tensor done */
    }
    if (kq_gguf_write_finish(w, err, errlen)) goto abort;
    rc = 0;
    goto done;
abort:
    kq_gguf_write_abort(w);
done:
    if (o->on_tmp_file) o->on_tmp_file(NULL);
    free(f32);
    free(scratch);
    free(q);
    free(wk);
    return rc;
}

int kq_conv_write_vocab(kq_gguf_writer *w, const kq_vocab *v, int spm_keys) {
    int rc = kq_gguf_set_str(w, "tokenizer.ggml.model", v->model ? v->model : "llama");
    rc |= kq_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, v->token_lens, v->n);
    rc |= kq_gguf_set_arr(w, "tokenizer.ggml.scores", KQ_GGUF_F32, v->scores, v->n);
    rc |= kq_gguf_set_arr(w, "tokenizer.ggml.token_type", KQ_GGUF_I32, v->types, v->n);
    const struct { const char *key; int64_t id; } ids[] = {
        {"tokenizer.ggml.bos_token_id", v->bos_id}, {"tokenizer.ggml.eos_token_id", v->eos_id},
        {"tokenizer.ggml.unknown_token_id", v->unk_id}, {"tokenizer.ggml.padding_token_id", v->pad_id},
        {"tokenizer.ggml.seperator_token_id", v->sep_id}}; /* sic: llama.cpp's spelling */
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (ids[i].id >= 0) rc |= kq_gguf_set_u32(w, ids[i].key, (uint32_t)ids[i].id);
    if (v->add_bos >= 0) rc |= kq_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    if (v->add_eos >= 0) rc |= kq_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos);
    if (spm_keys) rc |= kq_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", v->add_dummy_prefix);
    return rc ? -1 : 0;
}

/* ============================== Hugging Face folders ============================== */

static void kq_basename(const char *path, char *out, size_t outlen) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') tmp[--n] = 0;
    const char *b = strrchr(tmp, '/');
    snprintf(out, outlen, "%s", b ? b + 1 : tmp);
}

static int kq_file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int kq_hf_rows(void *ctx, const kq_conv_tensor *t, int64_t row0, int64_t nrows, float *out, float *scratch,
                      char *err, size_t errlen) {
    (void)ctx;
    const int64_t ne0 = t->ne[0];
    const kq_src_tensor *s = t->src, *d = t->delta;
    if (nrows == 0) { /* the tensor is written: its pages are not needed again */
        kq_src_release(s);
        if (d) kq_src_release(d);
        return 0;
    }
    if (t->xform == KQ_XF_NONE) {
        int64_t have = t->src_rows - row0;
        if (have > nrows) have = nrows;
        if (have < 0) have = 0;
        if (have && kq_src_read_rows_f32(s, row0, have, out, err, errlen)) return -1;
        memset(out + have * ne0, 0, (size_t)((nrows - have) * ne0) * sizeof(float));
        if (d) {
            if (kq_src_read_rows_f32(d, row0, nrows, scratch, err, errlen)) return -1;
            for (int64_t k = 0; k < nrows * ne0; k++) out[k] = out[k] + scratch[k];
        }
        return 0;
    }
    for (int64_t r = 0; r < nrows; r++) {
        const int64_t sr = kq_rope_src_row(row0 + r, t->head_dim);
        float *o = out + r * ne0;
        if (kq_src_read_rows_f32(s, sr, 1, o, err, errlen)) return -1;
        if (d) {
            if (kq_src_read_rows_f32(d, sr, 1, scratch, err, errlen)) return -1;
            for (int64_t k = 0; k < ne0; k++) o[k] = o[k] + scratch[k];
        }
    }
    return 0;
}

static int kq_dtype_ok(const kq_src_tensor *s, const char *dir, char *err, size_t errlen) {
    if (s->dtype == KQ_DT_F32 || s->dtype == KQ_DT_F16 || s->dtype == KQ_DT_BF16) return 0;
    snprintf(err, errlen, "%s: tensor %s has dtype %s; kq converts F32, F16 and BF16 weights", s->file ? s->file : dir,
             s->name, s->dtype_name ? s->dtype_name : "?");
    return -1;
}

/* Checks an HF tensor's shape against the expected [rows, cols]; extra_rows: rows may exceed. */
static int kq_shape_ok(const kq_src_tensor *s, const kq_family_tensor *ft, const kq_hparams *hp, int extra_rows,
                       const char *dir, char *err, size_t errlen) {
    const int64_t er = kq_family_dim(hp, ft->rows), ec = kq_family_dim(hp, ft->cols);
    int ok = s->ndim == ft->n_dims;
    if (ok && ft->n_dims == 1) ok = s->shape[0] == er;
    if (ok && ft->n_dims == 2) ok = s->shape[1] == ec && (s->shape[0] == er || (extra_rows && s->shape[0] > er));
    if (ok) return 0;
    char got[96] = "";
    for (int k = 0; k < s->ndim && k < 4; k++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%lld", k ? " x " : "", (long long)s->shape[k]);
    if (ft->n_dims == 1)
        snprintf(err, errlen, "%s: tensor %s has shape [%s], expected [%lld] from config.json", s->file ? s->file : dir,
                 s->name, got, (long long)er);
    else
        snprintf(err, errlen, "%s: tensor %s has shape [%s], expected [%lld x %lld] from config.json",
                 s->file ? s->file : dir, s->name, got, (long long)er, (long long)ec);
    return -1;
}

/* Every tensor of the checkpoint must be one the family knows (a typo'd or foreign model is an error). */
static int kq_all_known(const kq_family *f, const kq_ckpt *ck, const kq_hparams *hp, const char *dir, char *err,
                        size_t errlen) {
    for (size_t i = 0; i < kq_ckpt_count(ck); i++) {
        const kq_src_tensor *s = kq_ckpt_at(ck, i);
        int b;
        if (kq_family_skip(f, s->name)) continue;
        const kq_family_tensor *ft = kq_family_map_hf(f, s->name, &b);
        if (!ft) {
            snprintf(err, errlen, "%s: tensor %s is not part of a %s-family model", s->file ? s->file : dir, s->name,
                     f->name);
            return -1;
        }
        if (ft->per_block && b >= hp->n_layer) {
            snprintf(err, errlen, "%s: tensor %s is beyond num_hidden_layers = %lld", s->file ? s->file : dir, s->name,
                     (long long)hp->n_layer);
            return -1;
        }
    }
    return 0;
}

typedef struct {
    kq_conv_tensor *t;
    size_t n;
    char (*hf_names)[128];
} kq_tlist;

static int kq_build_tensors(const kq_family *f, const kq_hparams *hp_base, const kq_hparams *hp, const kq_ckpt *ck,
                            const kq_ckpt *dck, const char *dir, const char *ddir, kq_tlist *L, char *err,
                            size_t errlen) {
    const size_t cap = f->n_tensors * (size_t)(hp->n_layer + 1);
    L->t = calloc(cap, sizeof(kq_conv_tensor));
    L->hf_names = calloc(cap, sizeof(*L->hf_names));
    L->n = 0;
    if (!L->t || !L->hf_names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t r = 0; r < f->n_tensors; r++) {
        const kq_family_tensor *ft = &f->tensors[r];
        const int nb = ft->per_block ? (int)hp->n_layer : 1;
        for (int b = 0; b < nb; b++) {
            char hf[128], gg[KQ_GGUF_MAX_NAME + 1];
            if (kq_family_format(ft->hf, b, hf, sizeof(hf)) || kq_family_format(ft->gguf, b, gg, sizeof(gg))) {
                snprintf(err, errlen, "tensor name too long for block %d", b);
                return -1;
            }
            const kq_src_tensor *s = kq_ckpt_find(ck, hf);
            const kq_src_tensor *d = dck ? kq_ckpt_find(dck, hf) : NULL;
            if (!s && ft->optional && !d) continue;
            if (!s) {
                snprintf(err, errlen, "%s: tensor %s is missing (expected from config.json: %lld layers)", dir, hf,
                         (long long)hp_base->n_layer);
                return -1;
            }
            if (dck && !d) {
                snprintf(err, errlen, "%s: delta tensor %s is missing", ddir, hf);
                return -1;
            }
            if (kq_dtype_ok(s, dir, err, errlen) || (d && kq_dtype_ok(d, ddir, err, errlen))) return -1;
            if (kq_shape_ok(s, ft, hp_base, 0, dir, err, errlen)) return -1;
            if (d && kq_shape_ok(d, ft, hp, 0, ddir, err, errlen)) return -1;
            if (d && !(ft->vocab_rows ? s->shape[0] <= d->shape[0] : s->shape[0] == d->shape[0])) {
                snprintf(err, errlen, "%s: delta tensor %s has %lld rows, the base has %lld", ddir, hf,
                         (long long)d->shape[0], (long long)s->shape[0]);
                return -1;
            }
            kq_conv_tensor *t = &L->t[L->n];
            snprintf(L->hf_names[L->n], sizeof(L->hf_names[0]), "%s", hf);
            snprintf(t->name, sizeof(t->name), "%s", gg);
            const kq_src_tensor *shape_src = d ? d : s;
            t->n_dims = ft->n_dims;
            for (int k = 0; k < KQ_GGUF_MAX_DIMS; k++) t->ne[k] = 1;
            t->ne[0] = ft->n_dims == 1 ? shape_src->shape[0] : shape_src->shape[1];
            if (ft->n_dims == 2) t->ne[1] = shape_src->shape[0];
            t->role = ft->role;
            t->layer = ft->per_block ? b : -1;
            t->src = s;
            t->delta = d;
            t->src_rows = ft->n_dims == 2 ? s->shape[0] : 1;
            t->xform = ft->xform;
            t->head_dim = hp->n_rot;
            t->src_name = L->hf_names[L->n];
            t->src_file = s->file;
            t->delta_file = d ? d->file : NULL;
            L->n++;
        }
    }
    return 0;
}

/* The delta's config.json describes the merged model: it must agree with the base but for vocab_size. */
static int kq_delta_config(const kq_family *f, const char *ddir, const kq_hparams *base, kq_hparams *hp, char *err,
                           size_t errlen) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/config.json", ddir);
    if (kq_family_read_config(f, path, hp, err, errlen)) return -1;
    const struct { const char *key; int64_t a, b; } same[] = {
        {"hidden_size", base->n_embd, hp->n_embd}, {"num_hidden_layers", base->n_layer, hp->n_layer},
        {"intermediate_size", base->n_ff, hp->n_ff}, {"num_attention_heads", base->n_head, hp->n_head},
        {"num_key_value_heads", base->n_head_kv, hp->n_head_kv}, {"head_dim", base->n_rot, hp->n_rot}};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        if (same[i].a != same[i].b) {
            snprintf(err, errlen, "%s: key '%s' = %lld differs from the base model's %lld", path, same[i].key,
                     (long long)same[i].b, (long long)same[i].a);
            return -1;
        }
    }
    if (hp->n_vocab < base->n_vocab) {
        snprintf(err, errlen, "%s: key 'vocab_size' = %lld is smaller than the base model's %lld", path,
                 (long long)hp->n_vocab, (long long)base->n_vocab);
        return -1;
    }
    return 0;
}

/* tokenizer.model (+ HF special-token files) of the folder whose tokenizer the result uses. */
static int kq_hf_vocab(const char *tokdir, const char *vocab_path, const kq_hparams *hp, kq_vocab *v, char *err,
                       size_t errlen) {
    char path[4200];
    if (vocab_path) snprintf(path, sizeof(path), "%s", vocab_path);
    else snprintf(path, sizeof(path), "%s/tokenizer.model", tokdir);
    if (!kq_file_exists(path)) {
        snprintf(err, errlen, "%s: not found (the SentencePiece vocabulary; pass --vocab FILE)", path);
        return -1;
    }
    if (kq_spm_read(path, v, err, errlen)) return -1;
    if (kq_hf_special_tokens(tokdir, v, err, errlen)) return -1;
    if (v->n > hp->n_vocab) {
        snprintf(err, errlen, "%s: %u pieces, but config.json says vocab_size %lld", path, v->n, (long long)hp->n_vocab);
        return -1;
    }
    if (v->n < hp->n_vocab) {
        /* pad like llama.cpp's converter: [PAD1], [PAD2]... unused, score -1000 */
        const uint32_t old = v->n, want = (uint32_t)hp->n_vocab;
        kq_vocab nv;
        kq_vocab_init(&nv);
        if (kq_vocab_alloc(&nv, want)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (uint32_t i = 0; i < want; i++) {
            char pad[32];
            const char *s = pad;
            size_t len;
            if (i < old) {
                s = v->tokens[i];
                len = v->token_lens[i];
            } else {
                len = (size_t)snprintf(pad, sizeof(pad), "[PAD%u]", i - old + 1);
            }
            if (kq_vocab_set_piece(&nv, i, s, len)) {
                kq_vocab_free(&nv);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            nv.scores[i] = i < old ? v->scores[i] : -1000.0f;
            nv.types[i] = i < old ? v->types[i] : KQ_TOKEN_UNUSED;
        }
        /* keep every setting of v; swap in the padded arrays */
        kq_vocab keep = *v;
        keep.tokens = nv.tokens;
        keep.token_lens = nv.token_lens;
        keep.scores = nv.scores;
        keep.types = nv.types;
        keep.n = nv.n;
        nv.tokens = v->tokens;
        nv.token_lens = v->token_lens;
        nv.scores = v->scores;
        nv.types = v->types;
        nv.n = v->n;
        kq_vocab_free(&nv);
        *v = keep;
    }
    return 0;
}

int kq_convert_hf(const char *dir, const kq_family *f, const char *out_path, const kq_convert_opts *o, char *err,
                  size_t errlen) {
    if (!f) f = kq_family_llama();
    kq_hparams hp_base, hp;
    kq_vocab v;
    kq_vocab_init(&v);
    kq_ckpt *ck = NULL, *dck = NULL;
    kq_gguf_writer *w = NULL;
    kq_tlist L = {0};
    int rc = -1;
    char path[4200];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if (kq_family_read_config(f, path, &hp_base, err, errlen)) goto done;
    hp = hp_base;
    if (o->delta_dir && kq_delta_config(f, o->delta_dir, &hp_base, &hp, err, errlen)) goto done;
    if (kq_hf_vocab(o->delta_dir ? o->delta_dir : dir, o->vocab_path, &hp, &v, err, errlen)) goto done;
    if (kq_ckpt_open(dir, &ck, err, errlen)) goto done;
    if (o->delta_dir && kq_ckpt_open(o->delta_dir, &dck, err, errlen)) goto done;
    if (kq_all_known(f, ck, &hp_base, dir, err, errlen)) goto done;
    if (dck && kq_all_known(f, dck, &hp, o->delta_dir, err, errlen)) goto done;
    if (kq_build_tensors(f, &hp_base, &hp, ck, dck, dir, o->delta_dir, &L, err, errlen)) goto done;
    w = kq_gguf_writer_new();
    if (!w) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    char name[256];
    if (o->name) snprintf(name, sizeof(name), "%s", o->name);
    else kq_basename(dir, name, sizeof(name));
    int mrc = kq_gguf_set_str(w, "general.architecture", f->arch);
    mrc |= kq_gguf_set_str(w, "general.name", name);
    if (mrc) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (kq_conv_plan(w, L.t, L.n, o, (int)hp.n_layer, (int)(hp.n_head / hp.n_head_kv), err, errlen)) goto done;
    if (kq_family_write_hparams(f, &hp, w) || kq_conv_write_vocab(w, &v, 1)) {
        snprintf(err, errlen, "cannot set metadata (out of memory)");
        goto done;
    }
    rc = kq_conv_run(w, L.t, L.n, kq_hf_rows, NULL, o, out_path, err, errlen);
done:
    if (w) kq_gguf_writer_free(w);
    free(L.t);
    free(L.hf_names);
    kq_ckpt_close(dck);
    kq_ckpt_close(ck);
    kq_vocab_free(&v);
    return rc;
}

/* ============================== GGUF requantization ============================== */

static int kq_gguf_rows(void *ctx, const kq_conv_tensor *t, int64_t row0, int64_t nrows, float *out, float *scratch,
                        char *err, size_t errlen) {
    (void)ctx;
    (void)scratch;
    if (nrows == 0) return 0;
    (void)err;
    (void)errlen;
    const kq_gguf_tensor *g = t->src;
    const int64_t ne0 = t->ne[0];
    const size_t rb = kq_row_size(g->type, ne0);
    const kq_type_traits *tr = kq_ref_traits(g->type);
    for (int64_t r = 0; r < nrows; r++)
        tr->dequantize_row((const uint8_t *)g->data + (size_t)(row0 + r) * rb, out + r * ne0, ne0);
    return 0;
}

/* Copies one metadata pair of g into w. */
static int kq_copy_kv(const kq_gguf *g, int64_t i, kq_gguf_writer *w) {
    const char *key = kq_gguf_key(g, i);
    const int ty = kq_gguf_kv_type(g, i);
    if (ty == KQ_GGUF_ARR) {
        const int et = kq_gguf_arr_type(g, i);
        const uint64_t n = kq_gguf_arr_count(g, i);
        if (et != KQ_GGUF_STR) {
            const void *data = kq_gguf_arr_data(g, i);
            return data || n == 0 ? kq_gguf_set_arr(w, key, (kq_gguf_vtype)et, data, n) : -1;
        }
        const char **s = calloc(n ? n : 1, sizeof(char *));
        size_t *len = calloc(n ? n : 1, sizeof(size_t));
        int rc = s && len ? 0 : -1;
        for (uint64_t j = 0; !rc && j < n; j++) rc = kq_gguf_arr_str(g, i, j, &s[j], &len[j]);
        if (!rc) rc = kq_gguf_set_arr_str(w, key, s, len, n);
        free(s);
        free(len);
        return rc;
    }
    kq_gguf_value v;
    if (kq_gguf_kv_value(g, i, &v)) return -1;
    switch (ty) {
    case KQ_GGUF_U8: return kq_gguf_set_u8(w, key, (uint8_t)v.u);
    case KQ_GGUF_I8: return kq_gguf_set_i8(w, key, (int8_t)v.i);
    case KQ_GGUF_U16: return kq_gguf_set_u16(w, key, (uint16_t)v.u);
    case KQ_GGUF_I16: return kq_gguf_set_i16(w, key, (int16_t)v.i);
    case KQ_GGUF_U32: return kq_gguf_set_u32(w, key, (uint32_t)v.u);
    case KQ_GGUF_I32: return kq_gguf_set_i32(w, key, (int32_t)v.i);
    case KQ_GGUF_U64: return kq_gguf_set_u64(w, key, v.u);
    case KQ_GGUF_I64: return kq_gguf_set_i64(w, key, v.i);
    case KQ_GGUF_F32: return kq_gguf_set_f32(w, key, (float)v.f);
    case KQ_GGUF_F64: return kq_gguf_set_f64(w, key, v.f);
    case KQ_GGUF_BOOL: return kq_gguf_set_bool(w, key, (int)v.u);
    case KQ_GGUF_STR: return kq_gguf_set_strn(w, key, v.s, v.len);
    default: return -1;
    }
}

static int kq_recomputed_key(const char *k) {
    /* general.file_type, general.alignment and kq.outtype are copied and then replaced in place by
     * kq_conv_plan, so the key order of a kq-written input is kept */
    static const char *const keys[] = {"general.quantization_version", KQ_KEY_FALLBACKS, KQ_KEY_INTN_LAYOUT};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strcmp(k, keys[i])) return 1;
    return 0;
}

int kq_requantize_gguf(const char *in_path, const char *out_path, const kq_convert_opts *o, char *err,
                       size_t errlen) {
    kq_gguf *g = NULL;
    kq_gguf_writer *w = NULL;
    kq_conv_tensor *t = NULL;
    int rc = -1;
    if (kq_gguf_open(in_path, &g, err, errlen)) return -1;
    const int64_t n = kq_gguf_n_tensors(g);
    t = calloc((size_t)(n ? n : 1), sizeof(*t));
    w = kq_gguf_writer_new();
    if (!t || !w) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    const char *arch = "llama";
    size_t arch_len = 5;
    kq_gguf_get_str(g, "general.architecture", &arch, &arch_len);
    const kq_family *f = kq_family_llama();
    uint32_t n_layer = 0, n_head = 1, n_head_kv = 1;
    char key[160];
    snprintf(key, sizeof(key), "%.*s.block_count", (int)(arch_len < 64 ? arch_len : 64), arch);
    kq_gguf_get_u32(g, key, &n_layer);
    snprintf(key, sizeof(key), "%.*s.attention.head_count", (int)(arch_len < 64 ? arch_len : 64), arch);
    kq_gguf_get_u32(g, key, &n_head);
    snprintf(key, sizeof(key), "%.*s.attention.head_count_kv", (int)(arch_len < 64 ? arch_len : 64), arch);
    if (kq_gguf_get_u32(g, key, &n_head_kv)) n_head_kv = n_head;
    for (int64_t i = 0; i < n; i++) {
        const kq_gguf_tensor *gt = kq_gguf_tensor_at(g, i);
        if (!kq_is_float_type(gt->type)) {
            snprintf(err, errlen, "%s: tensor %s is %s; kq quantize starts from f32/f16/bf16 (requantizing a "
                                  "quantized tensor compounds the error)", in_path, gt->name,
                     kq_gguf_type_name((uint32_t)gt->type) ? kq_gguf_type_name((uint32_t)gt->type) : "?");
            goto done;
        }
        snprintf(t[i].name, sizeof(t[i].name), "%s", gt->name);
        t[i].n_dims = gt->n_dims;
        for (int d = 0; d < KQ_GGUF_MAX_DIMS; d++) t[i].ne[d] = gt->ne[d];
        int b = -1;
        const kq_family_tensor *ft = kq_family_map_gguf(f, gt->name, &b);
        t[i].role = ft ? ft->role : KQ_ROLE_OTHER;
        t[i].layer = b;
        t[i].src = gt;
        t[i].src_name = gt->name;
        t[i].src_file = in_path;
    }
    for (int64_t i = 0; i < kq_gguf_n_kv(g); i++) {
        const char *k = kq_gguf_key(g, i);
        if (kq_recomputed_key(k)) continue;
        if (kq_copy_kv(g, i, w)) {
            snprintf(err, errlen, "%s: cannot copy metadata key '%s'", in_path, k);
            goto done;
        }
    }
    if (kq_conv_plan(w, t, (size_t)n, o, (int)n_layer, (int)(n_head_kv ? n_head / n_head_kv : 1), err, errlen))
        goto done;
    rc = kq_conv_run(w, t, (size_t)n, kq_gguf_rows, NULL, o, out_path, err, errlen);
done:
    if (w) kq_gguf_writer_free(w);
    free(t);
    kq_gguf_close(g);
    return rc;
}
