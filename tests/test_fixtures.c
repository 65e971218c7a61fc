/* Tests of the fixture generator (fixtures/fixtures.h) and of the model registry files
 * (fixtures/models/NAME.json): determinism, Hugging Face layout, readback through kq's own readers,
 * shapes against config.json, the intended weight statistics, and every registry entry. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kq_test.h"

#if KQ_HAVE_GSL && KQ_HAVE_CJSON
#include <cjson/cJSON.h>

#include "ckpt.h"
#include "fixtures.h"
#include "registry.h"
#include "spm_vocab.h"

/* ---- small helpers ------------------------------------------------------------------------------ */

static cJSON *read_json(const char *path) {
    size_t n;
    char *buf = kq_test_read_file(path, &n);
    if (!buf) return NULL;
    char *z = realloc(buf, n + 1);
    if (!z) {
        free(buf);
        return NULL;
    }
    z[n] = 0;
    cJSON *j = cJSON_Parse(z);
    free(z);
    return j;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted regular-entry names of a folder (without . and ..); NULL-terminated, caller frees. */
static char **list_dir(const char *path, size_t *n) {
    *n = 0;
    DIR *d = opendir(path);
    if (!d) return NULL;
    size_t cap = 16;
    char **v = malloc(cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (*n + 2 > cap) {
            cap *= 2;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (v) {
        v[*n] = NULL;
        qsort(v, *n, sizeof *v, name_cmp);
    }
    return v;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

/* Removes root/<sub>/<file> two levels deep, then root (what the generator writes). */
static void remove_tree(const char *root) {
    size_t n, m;
    char **subs = list_dir(root, &n);
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", root, subs[i]);
        char **files = list_dir(p, &m);
        for (size_t k = 0; k < m; k++) {
            char f[4400];
            snprintf(f, sizeof f, "%s/%s", p, files[k]);
            unlink(f);
        }
        free_list(files, m);
        rmdir(p);
    }
    free_list(subs, n);
    rmdir(root);
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    void *pa = kq_test_read_file(a, &na), *pb = kq_test_read_file(b, &nb);
    const int eq = pa && pb && na == nb && !memcmp(pa, pb, na);
    free(pa);
    free(pb);
    return eq;
}

static int ends_with(const char *s, const char *suf) {
    const size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int json_int(const cJSON *o, const char *key, long long *out) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x)) return -1;
    *out = (long long)x->valuedouble;
    return 0;
}

/* ---- determinism ---------------------------------------------------------------------------------- */

static void test_deterministic(const char *d1, const char *d2) {
    size_t n1, n2;
    char **s1 = list_dir(d1, &n1), **s2 = list_dir(d2, &n2);
    KQ_CHECK(n1 == kq_fixture_count() && n1 == n2, "fixture folders: %zu and %zu, want %zu", n1, n2, kq_fixture_count());
    size_t compared = 0, differ = 0;
    for (size_t i = 0; i < n1 && i < n2; i++) {
        char p1[4096], p2[4096];
        snprintf(p1, sizeof p1, "%s/%s", d1, s1[i]);
        snprintf(p2, sizeof p2, "%s/%s", d2, s2[i]);
        size_t m1, m2;
        char **f1 = list_dir(p1, &m1), **f2 = list_dir(p2, &m2);
        KQ_CHECK(m1 == m2 && m1 > 0, "%s: %zu files vs %zu", s1[i], m1, m2);
        for (size_t k = 0; k < m1 && k < m2; k++) {
            char a[4400], b[4400];
            snprintf(a, sizeof a, "%s/%s", p1, f1[k]);
            snprintf(b, sizeof b, "%s/%s", p2, f2[k]);
            compared++;
            if (strcmp(f1[k], f2[k]) || !files_equal(a, b)) {
                differ++;
                printf("  differs: %s/%s\n", s1[i], f1[k]);
            }
        }
        free_list(f1, m1);
        free_list(f2, m2);
    }
    KQ_CHECK(differ == 0 && compared >= 40, "deterministic: %zu of %zu files differ between two runs", differ, compared);
    free_list(s1, n1);
    free_list(s2, n2);
}

/* A safetensors file checked from the format's definition, not through kq's reader: u64 header
 * length (a multiple of 8, as safetensors writes it), a header that is strict JSON, every tensor's
 * data_offsets back to back from 0 to the end of the file. */
static void check_safetensors_strict(const char *path) {
    size_t n;
    uint8_t *b = kq_test_read_file(path, &n);
    uint64_t hl = 0;
    if (b && n >= 8) memcpy(&hl, b, 8);
    int ok = b && n >= 8 && hl % 8 == 0 && hl <= n - 8;
    cJSON *h = ok ? cJSON_ParseWithLength((const char *)b + 8, (size_t)hl) : NULL;
    ok = ok && cJSON_IsObject(h);
    uint64_t covered = 0, count = 0, maxend = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, h) {
        if (!strcmp(e->string, "__metadata__")) continue;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) != 2 || !cJSON_IsString(dt) || !cJSON_IsArray(sh)) {
            ok = 0;
            continue;
        }
        const uint64_t a = (uint64_t)cJSON_GetArrayItem(o, 0)->valuedouble, z = (uint64_t)cJSON_GetArrayItem(o, 1)->valuedouble;
        uint64_t numel = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, sh) numel *= (uint64_t)d->valuedouble;
        const uint64_t es = !strcmp(dt->valuestring, "F32") ? 4 : 2;
        ok &= z >= a && z - a == numel * es;
        covered += z - a;
        maxend = z > maxend ? z : maxend;
        count++;
    }
    ok = ok && count > 0 && covered == maxend && maxend == n - 8 - hl;
    KQ_CHECK(ok, "%s: not a well-formed safetensors file (header %llu bytes, %llu tensors)", path,
             (unsigned long long)hl, (unsigned long long)count);
    cJSON_Delete(h);
    free(b);
}

/* ---- config.json against the tensors ---------------------------------------------------------------- */

typedef struct {
    long long hidden, ff, layers, heads, kv_heads, vocab;
    int legacy;
    const char *dtype; /* "F16"... as safetensors spells it */
} cfg;

static int read_config(const char *dir, cfg *c) {
    char p[4200];
    memset(c, 0, sizeof *c);
    snprintf(p, sizeof p, "%s/config.json", dir);
    cJSON *j = read_json(p);
    KQ_CHECK(j != NULL, "%s does not parse", p);
    if (!j) return -1;
    int bad = json_int(j, "hidden_size", &c->hidden) | json_int(j, "intermediate_size", &c->ff) |
              json_int(j, "num_hidden_layers", &c->layers) | json_int(j, "num_attention_heads", &c->heads) |
              json_int(j, "vocab_size", &c->vocab);
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(j, "torch_dtype");
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "rms_norm_eps");
    bad |= !cJSON_IsArray(arch) || !cJSON_IsString(cJSON_GetArrayItem(arch, 0)) || !cJSON_IsString(mt) ||
           !cJSON_IsString(td) || !cJSON_IsNumber(eps);
    KQ_CHECK(!bad, "%s: a required key is missing or mistyped", p);
    c->legacy = json_int(j, "num_key_value_heads", &c->kv_heads) != 0;
    if (c->legacy) c->kv_heads = c->heads; /* transformers' default when the key is absent */
    c->dtype = "?";
    if (!bad) {
        const char *a = cJSON_GetArrayItem(arch, 0)->valuestring;
        const int mistral = !strcmp(mt->valuestring, "mistral");
        KQ_CHECK(!strcmp(a, mistral ? "MistralForCausalLM" : "LlamaForCausalLM"), "%s: architectures %s with model_type %s",
                 p, a, mt->valuestring);
        KQ_CHECK(!mistral || cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "sliding_window")),
                 "%s: mistral without sliding_window", p);
        KQ_CHECK(!mistral || c->kv_heads < c->heads, "%s: mistral fixture is not grouped-query", p);
        c->dtype = !strcmp(td->valuestring, "float16") ? "F16" : !strcmp(td->valuestring, "bfloat16") ? "BF16"
                   : !strcmp(td->valuestring, "float32") ? "F32" : "?";
        KQ_CHECK(eps->valuedouble == 1e-5 || eps->valuedouble == 1e-6, "%s: rms_norm_eps %g", p, eps->valuedouble);
    }
    cJSON_Delete(j);
    return bad ? -1 : 0;
}

/* The expected shape of an HF llama tensor name from the config; 0 if the name is not one. */
static int expected_shape(const cfg *c, const char *name, int *ndim, int64_t *s0, int64_t *s1) {
    const int64_t hd = c->hidden / c->heads, kvd = hd * c->kv_heads;
    const char *tail = name;
    if (!strncmp(name, "model.layers.", 13)) {
        char *end;
        const long l = strtol(name + 13, &end, 10);
        if (end == name + 13 || *end != '.' || l < 0 || l >= c->layers) return 0;
        tail = end + 1;
    }
    static const struct {
        const char *tail;
        int ndim;
        int a, b; /* 0 hidden, 1 ff, 2 kvd, 3 vocab, 4 hd/2 */
    } t[] = {
        {"self_attn.q_proj.weight", 2, 0, 0}, {"self_attn.k_proj.weight", 2, 2, 0}, {"self_attn.v_proj.weight", 2, 2, 0},
        {"self_attn.o_proj.weight", 2, 0, 0}, {"mlp.gate_proj.weight", 2, 1, 0},    {"mlp.up_proj.weight", 2, 1, 0},
        {"mlp.down_proj.weight", 2, 0, 1},    {"input_layernorm.weight", 1, 0, 0},  {"post_attention_layernorm.weight", 1, 0, 0},
        {"self_attn.rotary_emb.inv_freq", 1, 4, 0},
    };
    const int64_t dims[5] = {c->hidden, c->ff, kvd, c->vocab, hd / 2};
    if (tail == name) {
        if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight")) {
            *ndim = 2, *s0 = c->vocab, *s1 = c->hidden;
            return 1;
        }
        if (!strcmp(name, "model.norm.weight")) {
            *ndim = 1, *s0 = c->hidden, *s1 = 0;
            return 1;
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(tail, t[i].tail)) {
            *ndim = t[i].ndim, *s0 = dims[t[i].a], *s1 = t[i].ndim == 2 ? dims[t[i].b] : 0;
            return 1;
        }
    return 0;
}

/* All rows of a tensor as f32 (caller frees); NULL on error (reported). */
static float *rows_f32(const kq_src_tensor *t) {
    const int64_t rows = kq_src_rows(t), len = kq_src_row_len(t);
    float *w = malloc((size_t)(rows * len) * sizeof *w);
    char err[512];
    if (!w || kq_src_read_rows_f32(t, 0, rows, w, err, sizeof err)) {
        KQ_CHECK(0, "reading %s: %s", t->name, w ? err : "out of memory");
        free(w);
        return NULL;
    }
    return w;
}

static double median(double *v, size_t n) {
    for (size_t i = 1; i < n; i++) /* insertion sort: n <= 256 */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            const double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n ? v[n / 2] : 0;
}

/* Columns whose RMS over the rows is > 8x the median column RMS, written to out (up to cap). */
static int outlier_cols(const float *w, int64_t rows, int64_t cols, int *out, int cap) {
    double *rms = malloc((size_t)cols * sizeof *rms), *tmp = malloc((size_t)cols * sizeof *tmp);
    int n = 0;
    if (!rms || !tmp) {
        free(rms);
        free(tmp);
        return -1;
    }
    for (int64_t c = 0; c < cols; c++) {
        double s = 0;
        for (int64_t r = 0; r < rows; r++) s += (double)w[r * cols + c] * w[r * cols + c];
        rms[c] = tmp[c] = sqrt(s / (double)rows);
    }
    const double med = median(tmp, (size_t)cols);
    for (int64_t c = 0; c < cols; c++)
        if (rms[c] > 8.0 * med) {
            if (n < cap) out[n] = (int)c;
            n++;
        }
    free(rms);
    free(tmp);
    return n;
}

/* log RMS of each row over the columns that are not outliers. */
static void row_log_rms(const float *w, int64_t rows, int64_t cols, const int *outl, int n_outl, double *out) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        int64_t k = 0;
        for (int64_t c = 0; c < cols; c++) {
            int skip = 0;
            for (int i = 0; i < n_outl; i++) skip |= outl[i] == c;
            if (skip) continue;
            s += (double)w[r * cols + c] * w[r * cols + c];
            k++;
        }
        out[r] = 0.5 * log(s / (double)k);
    }
}

static void mean_std(const float *w, int64_t n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int64_t i = 0; i < n; i++) s += w[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) q += (w[i] - *mean) * (w[i] - *mean);
    *sd = sqrt(q / (double)n);
}


/* Statistics of one base-model tensor (fixtures.h: what the generator promises). */
static void check_base_stats(const char *fx, const kq_src_tensor *t, const float *w, const int *hid, int nhid,
                             int64_t heads_q, int64_t heads_kv) {
    const int64_t rows = kq_src_rows(t), cols = kq_src_row_len(t);
    double mean, sd;
    if (t->ndim == 1 && ends_with(t->name, "norm.weight")) {
        mean_std(w, cols, &mean, &sd);
        float lo = w[0], hi = w[0];
        for (int64_t i = 0; i < cols; i++) lo = w[i] < lo ? w[i] : lo, hi = w[i] > hi ? w[i] : hi;
        KQ_CHECK(fabs(mean - 1.0) < 0.015 && sd > 0.005 && sd < 0.04 && lo > 0.9f && hi < 1.1f,
                 "%s %s: norm mean %.4f sd %.4f range [%.3f, %.3f], want ~1 +- 0.02", fx, t->name, mean, sd, lo, hi);
        return;
    }
    if (t->ndim == 1) return; /* inv_freq: checked elsewhere */
    int outl[16];
    const int n_out = outlier_cols(w, rows, cols, outl, 16);
    if (!strcmp(t->name, "model.embed_tokens.weight")) {
        mean_std(w, rows * cols, &mean, &sd);
        KQ_CHECK(fabs(mean) < 0.002 && fabs(sd - 0.02) < 0.002 && n_out == 0, "%s %s: mean %.5f sd %.5f outliers %d",
                 fx, t->name, mean, sd, n_out);
        return;
    }
    const int hidden_in = ends_with(t->name, "q_proj.weight") || ends_with(t->name, "k_proj.weight") ||
                          ends_with(t->name, "v_proj.weight") || ends_with(t->name, "gate_proj.weight") ||
                          ends_with(t->name, "up_proj.weight");
    const int own = ends_with(t->name, "o_proj.weight") || ends_with(t->name, "down_proj.weight");
    if (hidden_in) {
        int same = n_out == nhid;
        for (int i = 0; same && i < nhid; i++) same = outl[i] == hid[i];
        KQ_CHECK(same, "%s %s: %d outlier input channels (first %d), want the model's %d (first %d)", fx, t->name,
                 n_out, n_out > 0 ? outl[0] : -1, nhid, nhid > 0 ? hid[0] : -1);
    } else if (own) {
        KQ_CHECK(n_out == 1, "%s %s: %d outlier input channels, want 1", fx, t->name, n_out);
    } else {
        KQ_CHECK(n_out == 0, "%s %s: %d outlier input channels, want 0", fx, t->name, n_out);
    }
    /* per-row scale: log-normal with sigma 0.5 (sampling noise adds ~0.1 on 64-wide rows) */
    double *lr = malloc((size_t)rows * sizeof *lr);
    if (!lr) return;
    row_log_rms(w, rows, cols, outl, n_out > 16 ? 16 : n_out, lr);
    double s = 0, q = 0;
    for (int64_t r = 0; r < rows; r++) s += lr[r];
    for (int64_t r = 0; r < rows; r++) q += (lr[r] - s / rows) * (lr[r] - s / rows);
    const double sdl = sqrt(q / (double)rows);
    if (rows >= 64)
        KQ_CHECK(sdl > 0.35 && sdl < 0.7, "%s %s: sd of log row RMS %.3f, want ~0.5", fx, t->name, sdl);
    /* q/k: rows of a rotary pair share their scale in Meta order, which is not the stored order */
    if (ends_with(t->name, "q_proj.weight") || ends_with(t->name, "k_proj.weight")) {
        const int64_t nh = ends_with(t->name, "q_proj.weight") ? heads_q : heads_kv, hd = rows / nh;
        double d_meta = 0, d_hf = 0;
        for (int64_t h = 0; h < nh; h++)
            for (int64_t i = 0; i < hd / 2; i++) {
                /* Meta row h*hd + 2i + j is stored (HF order) at row h*hd + j*hd/2 + i */
                d_meta += fabs(lr[h * hd + i] - lr[h * hd + hd / 2 + i]);
                d_hf += fabs(lr[h * hd + 2 * i] - lr[h * hd + 2 * i + 1]);
            }
        d_meta /= (double)(rows / 2);
        d_hf /= (double)(rows / 2);
        KQ_CHECK(d_meta < 0.2 && d_hf > 0.25, "%s %s: pair scale gap un-permuted %.3f (want < 0.2), stored %.3f (want > 0.25)",
                 fx, t->name, d_meta, d_hf);
    }
    free(lr);
}

static int read_manifest_outliers(const char *dir, int *hid, int cap) {
    char p[4200];
    snprintf(p, sizeof p, "%s/kq_fixture.json", dir);
    cJSON *j = read_json(p);
    KQ_CHECK(j != NULL, "%s does not parse", p);
    if (!j) return -1;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "hidden_outliers");
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) if (n < cap && cJSON_IsNumber(x)) hid[n++] = x->valueint;
    cJSON_Delete(j);
    return n;
}

/* One fixture folder: files, config vs tensors, tokenizer, statistics. */
static void test_fixture(const char *root, const kq_fixture_spec *s) {
    char dir[4096], err[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, s->name);
    cfg c;
    memset(&c, 0, sizeof c);
    if (read_config(dir, &c) || c.heads < 1 || c.layers < 1) return;
    KQ_CHECK(!strcmp(c.dtype, kq_dtype_str(s->dtype)), "%s: torch_dtype says %s, spec %s", s->name, c.dtype,
             kq_dtype_str(s->dtype));
    size_t nf;
    char **names = list_dir(dir, &nf);
    for (size_t i = 0; i < nf; i++)
        if (ends_with(names[i], ".safetensors")) {
            char f[4400];
            snprintf(f, sizeof f, "%s/%s", dir, names[i]);
            check_safetensors_strict(f);
        }
    free_list(names, nf);
    kq_ckpt *ck = NULL;
    if (kq_ckpt_open(dir, &ck, err, sizeof err)) {
        KQ_CHECK(0, "%s: kq_ckpt_open: %s", s->name, err);
        return;
    }
    const size_t n = kq_ckpt_count(ck);
    const size_t want = (size_t)c.layers * (c.legacy ? 10 : 9) + 3;
    KQ_CHECK(n == want, "%s: %zu tensors, want %zu", s->name, n, want);
    int hid[8];
    const int nhid = read_manifest_outliers(dir, hid, 8);
    KQ_CHECK(s->delta ? nhid == 0 : nhid == KQ_FIX_OUTLIERS, "%s: %d hidden outliers in kq_fixture.json", s->name, nhid);
    uint64_t params = 0;
    size_t shape_bad = 0, dtype_bad = 0;
    for (size_t i = 0; i < n; i++) {
        const kq_src_tensor *t = kq_ckpt_at(ck, i);
        int nd;
        int64_t s0, s1;
        if (!expected_shape(&c, t->name, &nd, &s0, &s1)) {
            KQ_CHECK(0, "%s: unexpected tensor %s", s->name, t->name);
            continue;
        }
        if (t->ndim != nd || t->shape[0] != s0 || (nd == 2 && t->shape[1] != s1)) {
            shape_bad++;
            printf("  %s %s: shape [%lld, %lld] want [%lld, %lld]\n", s->name, t->name, (long long)t->shape[0],
                   (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)s0, (long long)s1);
        }
        const int inv = ends_with(t->name, "inv_freq");
        if (strcmp(t->dtype_name, inv ? "F32" : c.dtype) && strcmp(kq_dtype_str(t->dtype), inv ? "F32" : c.dtype))
            dtype_bad++;
        if (!inv) params += (uint64_t)(kq_src_rows(t) * kq_src_row_len(t));
        float *w = rows_f32(t);
        if (!w) continue;
        if (inv) {
            const int64_t hd = c.hidden / c.heads;
            double worst = 0;
            for (int64_t k = 0; k < hd / 2; k++) {
                const double want_v = 1.0 / pow(10000.0, (double)(2 * k) / (double)hd);
                worst = fmax(worst, fabs(w[k] - want_v) / want_v);
            }
            KQ_CHECK(worst < 1e-6, "%s %s: relative error %g against 1/10000^(2i/hd)", s->name, t->name, worst);
        } else if (s->delta) {
            const int64_t rows = kq_src_rows(t), cols = kq_src_row_len(t);
            const int grows = !strcmp(t->name, "model.embed_tokens.weight") || !strcmp(t->name, "lm_head.weight");
            const int64_t old = grows ? KQ_FIX_VOCAB : rows;
            double m0, sd0, m1 = 0, sd1 = 0.02;
            mean_std(w, old * cols, &m0, &sd0);
            if (grows) mean_std(w + old * cols, (rows - old) * cols, &m1, &sd1);
            KQ_CHECK(fabs(sd0 - 0.002) < 0.0004 && fabs(sd1 - 0.02) < 0.005 && fabs(m1) < 0.01,
                     "%s %s: delta sd %.5f (want 0.002), added rows sd %.4f (want 0.02)", s->name, t->name, sd0, sd1);
        } else {
            check_base_stats(s->name, t, w, hid, nhid, c.heads, c.kv_heads);
        }
        free(w);
    }
    KQ_CHECK(shape_bad == 0, "%s: %zu tensors with a shape config.json does not give", s->name, shape_bad);
    KQ_CHECK(dtype_bad == 0, "%s: %zu tensors not stored as %s", s->name, dtype_bad, c.dtype);
    KQ_CHECK(params == kq_fixture_params(s), "%s: %llu weights in the files, kq_fixture_params says %llu", s->name,
             (unsigned long long)params, (unsigned long long)kq_fixture_params(s));
    kq_ckpt_close(ck);

    /* tokenizer.model through kq's SentencePiece reader; special tokens through the HF files */
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    kq_vocab v;
    kq_vocab_init(&v);
    if (kq_spm_read(p, &v, err, sizeof err)) {
        KQ_CHECK(0, "%s: kq_spm_read: %s", s->name, err);
        return;
    }
    int bytes_ok = 1, scores_desc = 1, unique = 1;
    for (uint32_t b = 0; b < 256 && v.n == KQ_FIX_VOCAB; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        bytes_ok &= v.types[3 + b] == KQ_TOKEN_BYTE && !strcmp(v.tokens[3 + b], want);
    }
    for (uint32_t i = 260; i < v.n; i++) scores_desc &= v.scores[i] < v.scores[i - 1];
    for (uint32_t i = 259; i < v.n; i++) {
        unique &= v.types[i] == KQ_TOKEN_NORMAL && kq_vocab_find(&v, v.tokens[i], v.token_lens[i]) == (int64_t)i;
        /* every multi-character piece must be reachable by BPE: its prefix one character shorter is a piece */
        size_t cut = v.token_lens[i] - 1;
        while (cut > 0 && ((unsigned char)v.tokens[i][cut] & 0xc0) == 0x80) cut--;
        if (cut > 0) unique &= kq_vocab_find(&v, v.tokens[i], cut) >= 0;
    }
    KQ_CHECK(v.n == KQ_FIX_VOCAB && v.unk_id == 0 && v.bos_id == 1 && v.eos_id == 2 && v.byte_fallback == 1 &&
                 v.spm_model_type == KQ_SPM_BPE && v.add_dummy_prefix == 1,
             "%s: tokenizer n %u unk %lld bos %lld eos %lld byte_fallback %d model_type %d", s->name, v.n,
             (long long)v.unk_id, (long long)v.bos_id, (long long)v.eos_id, v.byte_fallback, v.spm_model_type);
    KQ_CHECK(v.n > 2 && !strcmp(v.tokens[0], "<unk>") && v.types[0] == KQ_TOKEN_UNKNOWN && !strcmp(v.tokens[1], "<s>") &&
                 v.types[1] == KQ_TOKEN_CONTROL && !strcmp(v.tokens[2], "</s>"),
             "%s: tokenizer control pieces", s->name);
    KQ_CHECK(bytes_ok && scores_desc && unique, "%s: tokenizer byte pieces %d, scores descending %d, pieces unique and "
             "BPE-reachable %d", s->name, bytes_ok, scores_desc, unique);
    KQ_CHECK(kq_vocab_find(&v, "\xe2\x96\x81the", 6) >= 0 && kq_vocab_find(&v, "\xe2\x96\x81", 3) >= 0,
             "%s: tokenizer lacks \"\xe2\x96\x81the\" or the lone \"\xe2\x96\x81\"", s->name);
    if (kq_hf_special_tokens(dir, &v, err, sizeof err)) {
        KQ_CHECK(0, "%s: kq_hf_special_tokens: %s", s->name, err);
    } else {
        KQ_CHECK((int64_t)v.n == c.vocab, "%s: vocabulary with added tokens has %u pieces, config.json vocab_size %lld",
                 s->name, v.n, c.vocab);
        KQ_CHECK(v.bos_id == 1 && v.eos_id == 2 && (s->legacy || v.add_bos == 1) && (s->legacy || v.add_eos == 0),
                 "%s: special tokens bos %lld eos %lld add_bos %d add_eos %d", s->name, (long long)v.bos_id,
                 (long long)v.eos_id, v.add_bos, v.add_eos);
        if (s->added_tokens)
            KQ_CHECK(v.pad_id == KQ_FIX_VOCAB && !strcmp(v.tokens[KQ_FIX_VOCAB], "<pad>"), "%s: <pad> id %lld", s->name,
                     (long long)v.pad_id);
    }
    kq_vocab_free(&v);
}

/* The sharded fixture holds the single-file fixture's tensors, bit for bit; base and delta line up. */
static void test_pairs(const char *root) {
    char a[4096], b[4096], err[1024];
    kq_ckpt *ca = NULL, *cb = NULL;
    snprintf(a, sizeof a, "%s/fixture-llama-st", root);
    snprintf(b, sizeof b, "%s/fixture-llama-st-sharded", root);
    if (!kq_ckpt_open(a, &ca, err, sizeof err) && !kq_ckpt_open(b, &cb, err, sizeof err)) {
        size_t same = 0;
        for (size_t i = 0; i < kq_ckpt_count(ca); i++) {
            const kq_src_tensor *x = kq_ckpt_at(ca, i), *y = kq_ckpt_find(cb, x->name);
            same += y && x->nbytes == y->nbytes && !memcmp(x->data, y->data, x->nbytes);
        }
        KQ_CHECK(same == kq_ckpt_count(ca) && kq_ckpt_count(ca) == kq_ckpt_count(cb) && same > 0,
                 "sharded: %zu of %zu tensors equal the single file's", same, kq_ckpt_count(ca));
        const kq_src_tensor *x = kq_ckpt_at(cb, 0), *y = kq_ckpt_at(cb, kq_ckpt_count(cb) - 1);
        KQ_CHECK(x && y && strcmp(x->file, y->file), "sharded: first and last tensors are in the same file");
    } else {
        KQ_CHECK(0, "opening the safetensors pair: %s", err);
    }
    kq_ckpt_close(ca);
    kq_ckpt_close(cb);
    ca = cb = NULL;
    snprintf(a, sizeof a, "%s/fixture-chimera-base", root);
    snprintf(b, sizeof b, "%s/fixture-chimera-delta", root);
    if (!kq_ckpt_open(a, &ca, err, sizeof err) && !kq_ckpt_open(b, &cb, err, sizeof err)) {
        size_t matched = 0;
        for (size_t i = 0; i < kq_ckpt_count(ca); i++) matched += kq_ckpt_find(cb, kq_ckpt_at(ca, i)->name) != NULL;
        KQ_CHECK(matched == kq_ckpt_count(ca) && kq_ckpt_count(ca) == kq_ckpt_count(cb),
                 "chimera: %zu of %zu base tensor names in the delta (which has %zu)", matched, kq_ckpt_count(ca),
                 kq_ckpt_count(cb));
        const kq_src_tensor *e0 = kq_ckpt_find(ca, "model.embed_tokens.weight"), *e1 = kq_ckpt_find(cb, "model.embed_tokens.weight");
        KQ_CHECK(e0 && e1 && e1->shape[0] == e0->shape[0] + 3 && e1->shape[1] == e0->shape[1],
                 "chimera: the delta's embed_tokens should have 3 more rows");
    } else {
        KQ_CHECK(0, "opening the chimera pair: %s", err);
    }
    kq_ckpt_close(ca);
    kq_ckpt_close(cb);
    /* the delta's first shard carries ZIP64 extra fields: a zip64 end-of-central-directory record */
    snprintf(a, sizeof a, "%s/fixture-chimera-delta/pytorch_model-00001-of-00002.bin", root);
    size_t n;
    uint8_t *z = kq_test_read_file(a, &n);
    int has64 = 0;
    for (size_t i = 0; z && i + 4 <= n; i++) has64 |= !memcmp(z + i, "PK\x06\x06", 4);
    KQ_CHECK(has64, "%s: no ZIP64 end of central directory record", a);
    free(z);
}

/* ---- registry ------------------------------------------------------------------------------------- */

/* Parameter counts derived here from the published architectures (not read from the registry). */
static uint64_t llama_params(uint64_t h, uint64_t ff, uint64_t layers, uint64_t heads, uint64_t kv, uint64_t vocab,
                             int tied) {
    const uint64_t kvd = h / heads * kv;
    return (tied ? 1 : 2) * vocab * h + layers * (2 * h * h + 2 * kvd * h + 3 * ff * h + 2 * h) + h;
}

static void test_registry(const char *gen_root) {
    static const struct {
        const char *name;
        uint64_t params;
    } known[] = {
        {"llama-7b", 0}, {"llama2-7b", 0}, {"chimera-7b", 0}, {"chimera-chat-7b", 0}, {"chimera-inst-chat-7b", 0},
        {"chimera-chat-7b-delta", 0}, {"chimera-inst-chat-7b-delta", 0}, {"tinyllama-1.1b", 0}, {"mistral-7b", 0},
        {"stories260k", 0},
    };
    const uint64_t llama7 = llama_params(4096, 11008, 32, 32, 32, 32000, 0);
    const uint64_t chimera7 = llama_params(4096, 11008, 32, 32, 32, 32001, 0);
    const uint64_t want[] = {llama7, llama7, chimera7, chimera7, chimera7, chimera7, chimera7,
                             llama_params(2048, 5632, 22, 32, 4, 32000, 0), llama_params(4096, 14336, 32, 32, 8, 32000, 0),
                             llama_params(64, 172, 5, 8, 4, 512, 1)};
    KQ_CHECK(llama7 == 6738415616ull, "LLaMA-7B formula gives %llu", (unsigned long long)llama7);

    size_t n;
    char **files = list_dir("fixtures/models", &n);
    if (!files) {
        KQ_SKIP("registry: fixtures/models not found (run from the repo root)");
        return;
    }
    size_t entries = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ends_with(files[i], ".json")) continue;
        entries++;
        char p[4096], base[200];
        snprintf(p, sizeof p, "fixtures/models/%s", files[i]);
        snprintf(base, sizeof base, "%.*s", (int)(strlen(files[i]) - 5), files[i]);
        cJSON *j = read_json(p);
        KQ_CHECK(j != NULL, "%s does not parse", p);
        if (!j) continue;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name"), *fam = cJSON_GetObjectItemCaseSensitive(j, "family"),
                    *par = cJSON_GetObjectItemCaseSensitive(j, "params"), *src = cJSON_GetObjectItemCaseSensitive(j, "source"),
                    *fl = cJSON_GetObjectItemCaseSensitive(j, "files");
        int files_ok = cJSON_IsArray(fl);
        const cJSON *x;
        cJSON_ArrayForEach(x, fl) files_ok &= cJSON_IsString(x) && *x->valuestring;
        const int ok = cJSON_IsString(name) && !strcmp(name->valuestring, base) && cJSON_IsString(fam) &&
                       !strcmp(fam->valuestring, "llama") && cJSON_IsNumber(par) && par->valuedouble > 0 &&
                       cJSON_IsString(src) && strlen(src->valuestring) > 10 && files_ok;
        KQ_CHECK(ok, "%s: name (= file name), family, params, source or files missing or wrong", p);
        const cJSON *bs = cJSON_GetObjectItemCaseSensitive(j, "base"), *dl = cJSON_GetObjectItemCaseSensitive(j, "delta");
        if (bs || dl) {
            char q[4096];
            int refs = cJSON_IsString(bs) && cJSON_IsString(dl) && cJSON_GetArraySize(fl) == 0;
            if (refs) {
                snprintf(q, sizeof q, "fixtures/models/%s.json", bs->valuestring);
                refs &= access(q, R_OK) == 0;
                snprintf(q, sizeof q, "fixtures/models/%s.json", dl->valuestring);
                cJSON *d = read_json(q);
                const cJSON *kind = d ? cJSON_GetObjectItemCaseSensitive(d, "kind") : NULL;
                refs &= cJSON_IsString(kind) && !strcmp(kind->valuestring, "delta");
                cJSON_Delete(d);
            }
            KQ_CHECK(refs, "%s: base/delta must name existing entries (the delta with kind \"delta\") and files be []", p);
        }
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (ok && !strcmp(base, known[k].name))
                KQ_CHECK((uint64_t)par->valuedouble == want[k], "%s: params %.0f, the architecture gives %llu", p,
                         par->valuedouble, (unsigned long long)want[k]);
        /* fixtures: params and files against what the generator wrote */
        const kq_fixture_spec *s = ok ? kq_fixture_find(base) : NULL;
        if (s) {
            KQ_CHECK((uint64_t)par->valuedouble == kq_fixture_params(s), "%s: params %.0f, generator %llu", p,
                     par->valuedouble, (unsigned long long)kq_fixture_params(s));
        }
        if (s && s == kq_fixture_large()) {
            /* written only on request: its folder is not generated here */
            KQ_CHECK(kq_fixture_params(s) * 2 > (1ull << 30), "%s: below 1 GiB in F16", p);
            s = NULL;
        }
        if (s) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", gen_root, base);
            size_t m;
            char **have = list_dir(dir, &m);
            int listed_all = (size_t)cJSON_GetArraySize(fl) == m;
            cJSON_ArrayForEach(x, fl) {
                char f[4400];
                snprintf(f, sizeof f, "%s/%s", dir, x->valuestring);
                listed_all &= access(f, R_OK) == 0;
            }
            KQ_CHECK(listed_all, "%s: files does not list exactly the %zu files the generator writes", p, m);
            free_list(have, m);
            const cJSON *sd = cJSON_GetObjectItemCaseSensitive(j, "shared_dir");
            char want_sd[300];
            snprintf(want_sd, sizeof want_sd, "fixtures/generated/%s", base);
            KQ_CHECK(cJSON_IsString(sd) && !strcmp(sd->valuestring, want_sd), "%s: shared_dir should be %s", p, want_sd);
        }
        /* the registry reader must accept every entry */
        kq_reg_entry e;
        char err[1024];
        memset(&e, 0, sizeof e);
        if (kq_registry_find(base, &e, err, sizeof err)) {
            KQ_CHECK(0, "kq_registry_find(%s): %s", base, err);
        } else {
            KQ_CHECK(!strcmp(e.name, base) && !strcmp(e.family, "llama"), "kq_registry_find(%s): name %s family %s", base,
                     e.name, e.family);
            kq_registry_free(&e);
        }
        cJSON_Delete(j);
    }
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        char p[256];
        snprintf(p, sizeof p, "fixtures/models/%s.json", known[k].name);
        KQ_CHECK(access(p, R_OK) == 0, "registry entry %s missing", p);
    }
    for (size_t k = 0; k < kq_fixture_count(); k++) {
        char p[256];
        snprintf(p, sizeof p, "fixtures/models/%s.json", kq_fixture_at(k)->name);
        KQ_CHECK(access(p, R_OK) == 0, "registry entry %s missing", p);
    }
    KQ_CHECK(entries >= 18, "registry: %zu entries", entries);
    free_list(files, n);
}

int main(void) {
    char d1[] = "/tmp/kq_fixtures_a_XXXXXX", d2[] = "/tmp/kq_fixtures_b_XXXXXX", err[1024];
    if (!mkdtemp(d1) || !mkdtemp(d2)) {
        KQ_CHECK(0, "cannot create temp folders");
        return kq_test_finish();
    }
    const int r1 = kq_fixtures_generate(d1, err, sizeof err);
    KQ_CHECK(r1 == 0, "generate: %s", err);
    const int r2 = kq_fixtures_generate(d2, err, sizeof err);
    KQ_CHECK(r2 == 0, "generate (second run): %s", err);
    if (!r1 && !r2) {
        test_deterministic(d1, d2);
        for (size_t i = 0; i < kq_fixture_count(); i++) test_fixture(d1, kq_fixture_at(i));
        test_pairs(d1);
        test_registry(d1);
    }
    remove_tree(d1);
    remove_tree(d2);
    return kq_test_finish();
}

#else

int main(void) {
    KQ_SKIP("fixtures: this build lacks GSL or cJSON (the generator and its checks need both)");
    return kq_test_finish();
}

#endif
