/* Checkpoint readers: round trips through the writers (safetensors, torch.save zip, sharded with
 * index.json), row reads, a hand-derived torch.save pickle, and hostile inputs that must each give a
 * one-line error naming the file and the problem. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "fp16.h"
#include "kq_test.h"
#include "pickle.h"

static char g_dir[256];

static const char *tpath(const char *rel) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, rel);
    return buf[k];
}

static void rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_tree(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

#if KQ_HAVE_CJSON
static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return (fclose(f) || w != n) ? -1 : 0;
}
#endif

/* A one-line error that names the file and contains the problem's words. */
static int err_ok(const char *err, const char *file, const char *problem) {
    return err[0] && !strchr(err, '\n') && strstr(err, file) && strstr(err, problem);
}

/* ---- the test model ------------------------------------------------------------------------------ */

static uint32_t g_rng = 12345;
static uint32_t rnd(void) { g_rng = g_rng * 1664525u + 1013904223u; return g_rng >> 8; }

enum { NT = 8 };
static kq_wtensor g_t[NT];
static uint8_t *g_data[NT];

static void add_tensor(int i, const char *name, kq_dtype dt, int ndim, const int64_t *shape) {
    g_t[i].name = name;
    g_t[i].dtype = dt;
    g_t[i].ndim = ndim;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) { g_t[i].shape[d] = shape[d]; n *= (size_t)shape[d]; }
    size_t nb = n * kq_dtype_size(dt);
    g_data[i] = malloc(nb ? nb : 1);
    /* Raw random bits: every f16/bf16 pattern class (NaN, Inf, subnormal, -0) shows up. */
    for (size_t k = 0; k < nb; k++) g_data[i][k] = (uint8_t)rnd();
    g_t[i].data = g_data[i];
}

static void make_model(void) {
    add_tensor(0, "model.embed_tokens.weight", KQ_DT_F16, 2, (int64_t[]){7, 5});
    add_tensor(1, "model.layers.0.self_attn.q_proj.weight", KQ_DT_BF16, 2, (int64_t[]){4, 6});
    add_tensor(2, "model.norm.weight", KQ_DT_F32, 1, (int64_t[]){5});
    add_tensor(3, "scalar", KQ_DT_F32, 0, NULL);
    add_tensor(4, "lm_head.weight", KQ_DT_F32, 3, (int64_t[]){3, 2, 4});
    add_tensor(5, "rotary.pos_ids", KQ_DT_I64, 1, (int64_t[]){4});
    add_tensor(6, "empty", KQ_DT_F32, 2, (int64_t[]){0, 3});
    add_tensor(7, "odd \"name\"\\x", KQ_DT_F16, 1, (int64_t[]){3});
    /* Known f16 bits at fixed places, checked against values typed in below (not from fp16.h). */
    static const uint16_t f16_known[5] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000};
    for (int k = 0; k < 5; k++) { g_data[0][2 * k] = (uint8_t)f16_known[k]; g_data[0][2 * k + 1] = (uint8_t)(f16_known[k] >> 8); }
}

static size_t nbytes_of(int i) {
    size_t n = kq_dtype_size(g_t[i].dtype);
    for (int d = 0; d < g_t[i].ndim; d++) n *= (size_t)g_t[i].shape[d];
    return n;
}

#if KQ_HAVE_CJSON
static float widen(kq_dtype dt, const uint8_t *p) {
    if (dt == KQ_DT_F32) { float f; memcpy(&f, p, 4); return f; }
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    return dt == KQ_DT_F16 ? kq_f16_to_f32(h) : kq_bf16_to_f32(h);
}

/* Everything the reader says about the model equals what was written. */
static void check_model(const kq_ckpt *c, const char *what) {
    KQ_CHECK(kq_ckpt_count(c) == NT, "%s: %zu tensors, want %d", what, kq_ckpt_count(c), NT);
    for (int i = 0; i < NT; i++) {
        const kq_src_tensor *t = kq_ckpt_find(c, g_t[i].name);
        KQ_CHECK(t != NULL, "%s: %s not found", what, g_t[i].name);
        if (!t) continue;
        KQ_CHECK(t->dtype == g_t[i].dtype && t->ndim == g_t[i].ndim, "%s: %s dtype/ndim", what, t->name);
        int same_shape = t->ndim == g_t[i].ndim;
        for (int d = 0; same_shape && d < t->ndim; d++) same_shape = t->shape[d] == g_t[i].shape[d];
        KQ_CHECK(same_shape, "%s: %s shape", what, t->name);
        KQ_CHECK(t->nbytes == nbytes_of(i) && (!t->nbytes || !memcmp(t->data, g_data[i], t->nbytes)),
                 "%s: %s bytes differ", what, t->name);
        if (g_t[i].dtype == KQ_DT_I64) {
            char err[256] = "";
            float f[4];
            int rc = kq_src_read_rows_f32(t, 0, 1, f, err, sizeof err);
            KQ_CHECK(rc != 0 && err_ok(err, t->file, "rotary.pos_ids") && strstr(err, "I64"), "%s: I64 read: %s", what, err);
            continue;
        }
        /* All rows, then a window of rows, widened: compare bit patterns (NaNs included). */
        const int64_t rows = kq_src_rows(t), rl = kq_src_row_len(t);
        int64_t want_rows = 1;
        for (int d = 0; d + 1 < g_t[i].ndim; d++) want_rows *= g_t[i].shape[d];
        KQ_CHECK(rows == want_rows && rl == (g_t[i].ndim ? g_t[i].shape[g_t[i].ndim - 1] : 1), "%s: %s rows", what, t->name);
        float *got = malloc((size_t)(rows * rl + 1) * sizeof *got);
        char err[256] = "";
        int rc = kq_src_read_rows_f32(t, 0, rows, got, err, sizeof err);
        KQ_CHECK(rc == 0, "%s: %s read: %s", what, t->name, err);
        const size_t el = kq_dtype_size(t->dtype);
        int bad = 0;
        for (int64_t k = 0; k < rows * rl; k++) {
            float w = widen(t->dtype, g_data[i] + (size_t)k * el);
            bad += memcmp(&w, &got[k], 4) != 0;
        }
        KQ_CHECK(!bad, "%s: %s: %d values differ", what, t->name, bad);
        if (rows >= 3) {
            rc = kq_src_read_rows_f32(t, 1, 2, got, err, sizeof err);
            bad = rc != 0;
            for (int64_t k = 0; k < 2 * rl && !bad; k++) {
                float w = widen(t->dtype, g_data[i] + (size_t)(rl + k) * el);
                bad = memcmp(&w, &got[k], 4) != 0;
            }
            KQ_CHECK(!bad, "%s: %s: rows 1..2 differ", what, t->name);
        }
        rc = kq_src_read_rows_f32(t, rows, 1, got, err, sizeof err);
        KQ_CHECK(rc != 0 && err_ok(err, t->file, "outside"), "%s: %s: row past the end accepted (%s)", what, t->name, err);
        if (i == 0) {
            /* f16 1.0, -2.0, 2^-24, 65504, -0.0, typed in from the IEEE definition. */
            rc = kq_src_read_rows_f32(t, 0, 1, got, err, sizeof err);
            KQ_CHECK(rc == 0 && got[0] == 1.0f && got[1] == -2.0f && got[2] == 5.9604644775390625e-08f &&
                     got[3] == 65504.0f && got[4] == 0.0f && kq_f32_bits(got[4]) == 0x80000000u,
                     "%s: known f16 values widened wrongly", what);
        }
        free(got);
        /* Released pages come back from the file when touched again. */
        kq_src_release(t);
        KQ_CHECK(!t->nbytes || !memcmp(t->data, g_data[i], t->nbytes), "%s: %s bytes after kq_src_release", what, t->name);
    }
    for (size_t i = 0; i < kq_ckpt_count(c); i++) KQ_CHECK(kq_ckpt_at(c, i) != NULL, "kq_ckpt_at(%zu)", i);
    KQ_CHECK(kq_ckpt_at(c, NT) == NULL && kq_ckpt_find(c, "nope") == NULL, "%s: lookups past the end", what);
}

static void open_and_check(const char *path, const char *what) {
    kq_ckpt *c = NULL;
    char err[512] = "";
    int rc = kq_ckpt_open(path, &c, err, sizeof err);
    KQ_CHECK(rc == 0 && c, "%s: open %s: %s", what, path, err);
    if (c) check_model(c, what);
    kq_ckpt_close(c);
}

/* Opening must fail with a one-line error naming `file` and `problem`. */
static void open_fails(const char *path, const char *file, const char *problem, const char *what) {
    kq_ckpt *c = NULL;
    char err[512] = "";
    int rc = kq_ckpt_open(path, &c, err, sizeof err);
    KQ_CHECK(rc != 0 && c == NULL && err_ok(err, file, problem), "%s: want error with '%s' and '%s', got rc %d: %s", what,
             file, problem, rc, err);
    kq_ckpt_close(c);
}

static void test_round_trips(void) {
    char err[512] = "";
    mkdir(tpath("st"), 0755);
    KQ_CHECK(kq_write_safetensors(tpath("st/model.safetensors"), g_t, NT, err, sizeof err) == 0, "write safetensors: %s", err);
    open_and_check(tpath("st"), "safetensors folder");
    open_and_check(tpath("st/model.safetensors"), "safetensors file");

    mkdir(tpath("pt"), 0755);
    KQ_CHECK(kq_write_torch_zip(tpath("pt/pytorch_model.bin"), g_t, NT, 0, err, sizeof err) == 0, "write torch zip: %s", err);
    open_and_check(tpath("pt"), "torch zip folder");
    mkdir(tpath("pt64"), 0755);
    KQ_CHECK(kq_write_torch_zip(tpath("pt64/weights.pt"), g_t, NT, KQ_TW_ZIP64, err, sizeof err) == 0, "write zip64: %s", err);
    open_and_check(tpath("pt64/weights.pt"), "torch zip64 file");

    /* Sharded: tensors 0..3 in shard 1, 4..7 in shard 2, index written here. */
    const char *names[NT], *stf[NT], *ptf[NT];
    for (int i = 0; i < NT; i++) {
        names[i] = g_t[i].name;
        stf[i] = i < 4 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
        ptf[i] = i < 4 ? "pytorch_model-00001-of-00002.bin" : "pytorch_model-00002-of-00002.bin";
    }
    mkdir(tpath("sst"), 0755);
    int rc = kq_write_safetensors(tpath("sst/model-00001-of-00002.safetensors"), g_t, 4, err, sizeof err);
    rc |= kq_write_safetensors(tpath("sst/model-00002-of-00002.safetensors"), g_t + 4, NT - 4, err, sizeof err);
    rc |= kq_write_index_json(tpath("sst/model.safetensors.index.json"), names, stf, NT, 0, err, sizeof err);
    KQ_CHECK(rc == 0, "write sharded safetensors: %s", err);
    open_and_check(tpath("sst"), "sharded safetensors");
    mkdir(tpath("spt"), 0755);
    rc = kq_write_torch_zip(tpath("spt/pytorch_model-00001-of-00002.bin"), g_t, 4, 0, err, sizeof err);
    rc |= kq_write_torch_zip(tpath("spt/pytorch_model-00002-of-00002.bin"), g_t + 4, NT - 4, KQ_TW_ZIP64, err, sizeof err);
    rc |= kq_write_index_json(tpath("spt/pytorch_model.bin.index.json"), names, ptf, NT, 0, err, sizeof err);
    KQ_CHECK(rc == 0, "write sharded bin: %s", err);
    open_and_check(tpath("spt"), "sharded torch zip");
    open_and_check(tpath("spt/pytorch_model.bin.index.json"), "sharded torch zip by index path");
    /* The shard's tensors really come from the shard files. */
    kq_ckpt *c = NULL;
    if (kq_ckpt_open(tpath("spt"), &c, err, sizeof err) == 0) {
        const kq_src_tensor *t = kq_ckpt_find(c, "lm_head.weight");
        KQ_CHECK(t && strstr(t->file, "pytorch_model-00002-of-00002.bin"), "shard of lm_head.weight: %s", t ? t->file : "-");
    }
    kq_ckpt_close(c);
}

#endif

/* ---- a torch.save pickle written out by hand ----------------------------------------------------
 * torch.save({'w': torch.tensor([[1., 2.], [3., 4.]])}) as an nn.Module state_dict would be: an
 * OrderedDict (reduce: class, (), then SETITEM per item, then BUILD with its __dict__ holding
 * _metadata), each tensor _rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
 * backward_hooks) with the storage a persistent id ('storage', torch.FloatStorage, key, location,
 * numel). Python's pickler memoizes (BINPUT n) every str, non-empty tuple, dict, global and reduced
 * object in order, and fetches repeats with BINGET. Derived from pickle protocol 2 and
 * torch/serialization.py, not from kq's writer. */
static const uint8_t golden_pkl[] = {
    0x80, 0x02,                                                   /* PROTO 2 */
    'c', 'c','o','l','l','e','c','t','i','o','n','s','\n', 'O','r','d','e','r','e','d','D','i','c','t','\n',
    'q', 0,                                                       /* BINPUT 0: OrderedDict */
    ')', 'R', 'q', 1,                                             /* OrderedDict() -> memo 1 */
    'X', 1, 0, 0, 0, 'w', 'q', 2,                                 /* key 'w' */
    'c', 't','o','r','c','h','.','_','u','t','i','l','s','\n',
         '_','r','e','b','u','i','l','d','_','t','e','n','s','o','r','_','v','2','\n',
    'q', 3,
    '(',                                                          /* MARK: rebuild args */
    '(',                                                          /* MARK: persistent id */
    'X', 7, 0, 0, 0, 's','t','o','r','a','g','e', 'q', 4,
    'c', 't','o','r','c','h','\n', 'F','l','o','a','t','S','t','o','r','a','g','e','\n', 'q', 5,
    'X', 1, 0, 0, 0, '0', 'q', 6,                                 /* storage key "0" */
    'X', 3, 0, 0, 0, 'c','p','u', 'q', 7,                         /* location */
    'K', 4,                                                       /* numel 4 */
    't', 'q', 8,                                                  /* TUPLE */
    'Q',                                                          /* BINPERSID */
    'K', 0,                                                       /* storage_offset */
    'K', 2, 'K', 2, 0x86, 'q', 9,                                 /* size (2, 2) */
    'K', 2, 'K', 1, 0x86, 'q', 10,                                /* stride (2, 1) */
    0x89,                                                         /* requires_grad False */
    'h', 0, ')', 'R', 'q', 11,                                    /* backward_hooks OrderedDict() */
    't', 'q', 12,                                                 /* args TUPLE */
    'R', 'q', 13,                                                 /* the tensor */
    's',                                                          /* od['w'] = tensor */
    '}', 'q', 14,                                                 /* state dict */
    'X', 9, 0, 0, 0, '_','m','e','t','a','d','a','t','a', 'q', 15,
    'h', 0, ')', 'R', 'q', 16,                                    /* OrderedDict() */
    'X', 0, 0, 0, 0, 'q', 17,                                     /* key '' (root module) */
    '}', 'q', 18, 'X', 7, 0, 0, 0, 'v','e','r','s','i','o','n', 'q', 19, 'K', 1, 's',
    's',                                                          /* _metadata[''] = {'version': 1} */
    's',                                                          /* state['_metadata'] = ... */
    'b',                                                          /* BUILD */
    '.',                                                          /* STOP */
};

static void test_golden_pickle(void) {
    char err[512] = "";
    kq_pkl_result r;
    int rc = kq_pickle_parse_state_dict(golden_pkl, sizeof golden_pkl, "golden.pkl", &r, err, sizeof err);
    KQ_CHECK(rc == 0, "golden pickle: %s", err);
    if (rc) return;
    KQ_CHECK(r.n == 1, "golden: %zu tensors", r.n);
    if (r.n == 1) {
        const kq_pkl_tensor *t = &r.t[0];
        KQ_CHECK(!strcmp(t->name, "w") && !strcmp(t->storage_key, "0") && t->dtype == KQ_DT_F32 && t->storage_numel == 4 &&
                 t->storage_offset == 0 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 2 && t->stride[0] == 2 &&
                 t->stride[1] == 1, "golden: fields");
    }
    kq_pkl_result_free(&r);
    /* kq's writer emits exactly these bytes for the same state_dict. */
    kq_pkl_tensor w = {.name = "w", .storage_key = "0", .dtype = KQ_DT_F32, .storage_numel = 4, .ndim = 2,
                       .shape = {2, 2}, .stride = {2, 1}};
    uint8_t *out = NULL;
    size_t n = 0;
    rc = kq_pickle_write_state_dict(&w, 1, &out, &n);
    KQ_CHECK(rc == 0 && n == sizeof golden_pkl && !memcmp(out, golden_pkl, n), "writer differs from the hand-derived pickle (%zu vs %zu bytes)",
             n, sizeof golden_pkl);
    free(out);
}

#if KQ_HAVE_CJSON
/* ---- hostile safetensors ------------------------------------------------------------------------ */

static uint8_t *make_st(const char *header, size_t datalen, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + datalen;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    return b;
}

static void st_rejects(const char *header, size_t datalen, const char *problem, const char *what) {
    size_t len;
    uint8_t *b = make_st(header, datalen, &len);
    kq_src_list l = {0};
    char err[512] = "";
    int rc = kq_safetensors_parse(b, len, "bad.safetensors", &l, err, sizeof err);
    KQ_CHECK(rc != 0 && l.n == 0 && err_ok(err, "bad.safetensors", problem), "%s: want '%s', got rc %d: %s", what, problem, rc, err);
    kq_src_list_free(&l);
    free(b);
}

static void test_hostile_safetensors(void) {
    size_t len = 0;
    uint8_t *good = kq_test_read_file(tpath("st/model.safetensors"), &len);
    KQ_CHECK(good && len > 100, "read back model.safetensors");
    if (!good) return;
    int all_fail = 1, all_named = 1;
    char err[512];
    for (size_t L = 0; L < len; L++) {
        kq_src_list l = {0};
        err[0] = 0;
        uint8_t *cut = malloc(L ? L : 1); /* exact-size copy: ASan sees any read past L */
        memcpy(cut, good, L);
        int rc = kq_safetensors_parse(cut, L, "cut.safetensors", &l, err, sizeof err);
        all_fail &= rc != 0 && l.n == 0;
        all_named &= err_ok(err, "cut.safetensors", "");
        kq_src_list_free(&l);
        free(cut);
    }
    KQ_CHECK(all_fail, "every truncation of a safetensors file is rejected");
    KQ_CHECK(all_named, "every truncation error is one line naming the file");
    /* Through the file path too, at a few lengths. */
    const size_t cuts[] = {0, 5, 8, 40, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(tpath("cut.safetensors"), good, cuts[i]);
        open_fails(tpath("cut.safetensors"), "cut.safetensors", "", "truncated file");
    }
    /* A header length that lies: past the end, and absurd. */
    uint8_t *lie = malloc(len);
    memcpy(lie, good, len);
    uint64_t big = len;
    for (int i = 0; i < 8; i++) lie[i] = (uint8_t)(big >> (8 * i));
    write_bytes(tpath("lie.safetensors"), lie, len);
    open_fails(tpath("lie.safetensors"), "lie.safetensors", "header length", "header length past the end");
    for (int i = 0; i < 8; i++) lie[i] = (uint8_t)((1ull << 62) >> (8 * i));
    write_bytes(tpath("lie.safetensors"), lie, len);
    open_fails(tpath("lie.safetensors"), "lie.safetensors", "absurd", "absurd header length");
    free(lie);
    free(good);

    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "out of range", "offsets past the data");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, "overlap", "overlapping tensors");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, "begin", "begin > end");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "want 12", "size != shape product");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}", 8, "overflow",
               "shape product overflow");
    st_rejects("{\"a\":{\"dtype\":\"F16\",\"shape\":[4503599627370496,4503599627370496],\"data_offsets\":[0,8]}}", 8, "overflow",
               "shape product overflow (2^52 x 2^52)");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "negative", "negative dim");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "dimension", "fractional dim");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
               16, "duplicate", "duplicate names");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],", 8, "JSON", "invalid JSON");
    st_rejects("[1,2]", 0, "not a JSON object", "array header");
    st_rejects("{\"a\":{\"dtype\":3,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype", "non-string dtype");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets", "short data_offsets");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "dims", "9 dims");
    st_rejects("{\"__metadata__\":[1]}", 0, "__metadata__", "bad __metadata__");
    st_rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, "trailing", "garbage after the JSON");

    /* An unknown dtype string is listed (OTHER) but reading it as float is an error naming it. */
    size_t sl;
    uint8_t *b = make_st("{\"__metadata__\":{\"format\":\"pt\"},\"q\":{\"dtype\":\"Q7\",\"shape\":[3],\"data_offsets\":[0,5]},"
                         "\"f\":{\"dtype\":\"F8_E4M3\",\"shape\":[5],\"data_offsets\":[5,10]}}    ", 10, &sl);
    kq_src_list l = {0};
    int rc = kq_safetensors_parse(b, sl, "odd.safetensors", &l, err, sizeof err);
    KQ_CHECK(rc == 0 && l.n == 2 && l.t[0].dtype == KQ_DT_OTHER && !strcmp(l.t[0].dtype_name, "Q7"), "unknown dtype listed: %s", err);
    if (rc == 0 && l.n == 2) {
        float f[5];
        rc = kq_src_read_rows_f32(&l.t[0], 0, 1, f, err, sizeof err);
        KQ_CHECK(rc != 0 && err_ok(err, "odd.safetensors", "Q7") && strstr(err, "q"), "reading an unknown dtype: %s", err);
        rc = kq_src_read_rows_f32(&l.t[1], 0, 1, f, err, sizeof err);
        KQ_CHECK(rc != 0 && err_ok(err, "odd.safetensors", "F8_E4M3"), "reading F8: %s", err);
    }
    kq_src_list_free(&l);
    free(b);
}

#endif

/* ---- hostile pickles and zips ------------------------------------------------------------------- */

static void pkl_rejects(const uint8_t *p, size_t n, const char *problem, const char *what) {
    kq_pkl_result r;
    char err[512] = "";
    int rc = kq_pickle_parse_state_dict(p, n, "bad.pkl", &r, err, sizeof err);
    KQ_CHECK(rc != 0 && err_ok(err, "bad.pkl", problem), "%s: want '%s', got rc %d: %s", what, problem, rc, err);
    if (rc == 0) kq_pkl_result_free(&r);
}

static void test_hostile_pickle(void) {
    /* Unknown opcode: 0xff right after PROTO. */
    uint8_t bad[sizeof golden_pkl + 1];
    memcpy(bad, golden_pkl, 2);
    bad[2] = 0xff;
    memcpy(bad + 3, golden_pkl + 2, sizeof golden_pkl - 2);
    pkl_rejects(bad, sizeof bad, "opcode 0xff at offset 2", "unknown opcode");
    /* A known opcode torch.save never emits (NEWOBJ) is refused the same way. */
    bad[2] = 0x81;
    pkl_rejects(bad, sizeof bad, "opcode 0x81", "NEWOBJ");

    /* os.system('touch SENTINEL'): refused by name, and nothing runs. */
    char sentinel[600];
    snprintf(sentinel, sizeof sentinel, "%s/pwned", g_dir);
    char cmd[700];
    int cl = snprintf(cmd, sizeof cmd, "touch %s", sentinel);
    uint8_t evil[800];
    size_t n = 0;
    const char *g = "\x80\x02" "cos\nsystem\n";
    memcpy(evil, g, strlen(g)); n = strlen(g);
    evil[n++] = 'X';
    for (int i = 0; i < 4; i++) evil[n++] = (uint8_t)(cl >> (8 * i));
    memcpy(evil + n, cmd, (size_t)cl); n += (size_t)cl;
    evil[n++] = 0x85; evil[n++] = 'R'; evil[n++] = '.';
    pkl_rejects(evil, n, "unknown global os.system", "os.system");
    /* Protocol 4 spelling of the same: STACK_GLOBAL from two strings. */
    const uint8_t evil4[] = {0x80, 4, 0x8c, 5, 'p','o','s','i','x', 0x8c, 6, 's','y','s','t','e','m', 0x93,
                             0x8c, 2, 'i','d', 0x85, 'R', '.'};
    pkl_rejects(evil4, sizeof evil4, "unknown global posix.system", "posix.system via STACK_GLOBAL");
    const uint8_t evil_eval[] = "\x80\x02" "cbuiltins\neval\nX\x01\x00\x00\x001\x85R.";
    pkl_rejects(evil_eval, sizeof evil_eval - 1, "builtins.eval", "builtins.eval");
    struct stat st;
    KQ_CHECK(stat(sentinel, &st) != 0, "the pickle's command ran: %s exists", sentinel);

    /* Truncated at every length. */
    int all = 1;
    for (size_t L = 0; L < sizeof golden_pkl; L++) {
        kq_pkl_result r;
        char err[512] = "";
        uint8_t *cut = malloc(L ? L : 1);
        memcpy(cut, golden_pkl, L);
        int rc = kq_pickle_parse_state_dict(cut, L, "cut.pkl", &r, err, sizeof err);
        all &= rc != 0 && err_ok(err, "cut.pkl", "");
        if (!rc) kq_pkl_result_free(&r);
        free(cut);
    }
    KQ_CHECK(all, "every truncation of a pickle is rejected with a named one-line error");

    /* Non-contiguous strides (a transposed view) and a storage too small, via the writer. */
    kq_pkl_tensor t = {.name = "w", .storage_key = "0", .dtype = KQ_DT_F32, .storage_numel = 6, .ndim = 2,
                       .shape = {3, 2}, .stride = {1, 3}};
    uint8_t *p = NULL;
    size_t pn = 0;
    if (kq_pickle_write_state_dict(&t, 1, &p, &pn) == 0) pkl_rejects(p, pn, "not contiguous", "transposed strides");
    free(p);
    t.stride[0] = 2; t.stride[1] = 1; t.storage_numel = 5;
    if (kq_pickle_write_state_dict(&t, 1, &p, &pn) == 0) pkl_rejects(p, pn, "exceed its storage", "storage too small");
    free(p);
    t.storage_numel = 8; t.storage_offset = 3;
    if (kq_pickle_write_state_dict(&t, 1, &p, &pn) == 0) pkl_rejects(p, pn, "exceed its storage", "offset past storage");
    free(p);
    /* The top-level object must be a dict of tensors. */
    const uint8_t notdict[] = {0x80, 2, ']', '.'};
    pkl_rejects(notdict, sizeof notdict, "not a state_dict", "list at the top");
    const uint8_t notensor[] = {0x80, 2, '}', 'X', 1, 0, 0, 0, 'a', 'K', 5, 's', '.'};
    pkl_rejects(notensor, sizeof notensor, "not a tensor", "int value");
    const uint8_t badget[] = {0x80, 2, 'h', 7, '.'};
    pkl_rejects(badget, sizeof badget, "never set", "BINGET of an unset memo slot");
    const uint8_t hugeput[] = {0x80, 2, '}', 'r', 0xff, 0xff, 0xff, 0x7f, '.'};
    pkl_rejects(hugeput, sizeof hugeput, "too large", "LONG_BINPUT index 2^31");
    const uint8_t underflow[] = {0x80, 2, 's', '.'};
    pkl_rejects(underflow, sizeof underflow, "underflow", "SETITEM on an empty stack");
}

/* Files written by real PyTorch 1.13 torch.save (kept as fuzz seeds): a module's state_dict with an
 * I64 buffer, a tied weight (shared storage), a view at storage offset 3, F16 and BF16; a
 * Parameter (torch._utils._rebuild_parameter); and the legacy format. Values typed in from torch.load. */
static const kq_src_tensor *list_find(const kq_src_list *l, const char *name) {
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].name, name)) return &l->t[i];
    return NULL;
}

static int rows_equal(const kq_src_tensor *t, const float *want, int64_t n) {
    float got[16];
    char err[256];
    if (!t || n > 16 || kq_src_rows(t) * kq_src_row_len(t) != n) return 0;
    if (kq_src_read_rows_f32(t, 0, kq_src_rows(t), got, err, sizeof err)) return 0;
    return !memcmp(got, want, (size_t)n * sizeof *got);
}

static void test_real_torch_files(void) {
    const char *dir = "tests/fuzz/corpus/fuzz_pickle/";
    char path[256];
    snprintf(path, sizeof path, "%storch113_state_dict.bin", dir);
    size_t len = 0;
    uint8_t *b = kq_test_read_file(path, &len);
    if (!b) {
        KQ_SKIP("real torch.save files: %s not found (run from the repo root)", path);
        return;
    }
    kq_src_list l = {0};
    char err[512] = "";
    int rc = kq_torchzip_parse(b, len, path, &l, err, sizeof err);
    KQ_CHECK(rc == 0 && l.n == 7, "real torch.save state_dict: %s", err);
    const kq_src_tensor *w = list_find(&l, "lin.weight"), *tied = list_find(&l, "tied"), *ids = list_find(&l, "ids");
    KQ_CHECK(rows_equal(w, (const float[]){1, 2, 3, 4, 5, 6}, 6) && w->ndim == 2 && w->shape[0] == 2, "lin.weight");
    KQ_CHECK(rows_equal(tied, (const float[]){1, 2, 3, 4, 5, 6}, 6) && w && tied->data == w->data, "tied shares lin.weight's bytes");
    KQ_CHECK(rows_equal(list_find(&l, "lin.bias"), (const float[]){0.5f, -0.25f}, 2), "lin.bias");
    KQ_CHECK(rows_equal(list_find(&l, "view"), (const float[]){1.5f, 2.5f, 3.5f, -1, -2, -3}, 6), "view at storage offset 3");
    KQ_CHECK(rows_equal(list_find(&l, "h"), (const float[]){1, 2, 3, -1}, 4) && list_find(&l, "h")->dtype == KQ_DT_F16, "F16 h");
    KQ_CHECK(rows_equal(list_find(&l, "b"), (const float[]){1.875f, -2, 0.5f, 3}, 4) && list_find(&l, "b")->dtype == KQ_DT_BF16, "BF16 b");
    int64_t idv[3] = {0, 0, 0};
    if (ids && ids->nbytes == sizeof idv) memcpy(idv, ids->data, sizeof idv);
    KQ_CHECK(ids && ids->dtype == KQ_DT_I64 && idv[0] == 7 && idv[1] == 8 && idv[2] == 9, "I64 ids");
    kq_src_list_free(&l);
    free(b);

    snprintf(path, sizeof path, "%storch113_parameter.bin", dir);
    b = kq_test_read_file(path, &len);
    rc = b ? kq_torchzip_parse(b, len, path, &l, err, sizeof err) : -1;
    KQ_CHECK(rc == 0 && l.n == 1 && rows_equal(list_find(&l, "p"), (const float[]){1, 2, 3, 4}, 4), "Parameter in a dict: %s", err);
    kq_src_list_free(&l);
    free(b);

    snprintf(path, sizeof path, "%storch113_legacy.bin", dir);
    b = kq_test_read_file(path, &len);
    rc = b ? kq_torchzip_parse(b, len, path, &l, err, sizeof err) : 0;
    KQ_CHECK(rc != 0 && err_ok(err, "torch113_legacy.bin", "legacy (pre-1.6) torch.save format not supported"), "legacy: %s", err);
    kq_src_list_free(&l);
    free(b);
}

/* Without kq_ckpt_open: a written torch zip parsed from memory gives back every tensor's bytes. */
static void test_zip_memory(void) {
    char err[512] = "";
    int rc = kq_write_torch_zip(tpath("mem.bin"), g_t, NT, KQ_TW_ZIP64, err, sizeof err);
    KQ_CHECK(rc == 0, "write torch zip: %s", err);
    size_t len = 0;
    uint8_t *b = kq_test_read_file(tpath("mem.bin"), &len);
    kq_src_list l = {0};
    rc = b ? kq_torchzip_parse(b, len, "mem.bin", &l, err, sizeof err) : -1;
    KQ_CHECK(rc == 0 && l.n == NT, "parse torch zip from memory: %s", err);
    for (size_t i = 0; rc == 0 && i < l.n && i < NT; i++) {
        int same = !strcmp(l.t[i].name, g_t[i].name) && l.t[i].dtype == g_t[i].dtype && l.t[i].ndim == g_t[i].ndim &&
                   l.t[i].nbytes == nbytes_of((int)i) && (!l.t[i].nbytes || !memcmp(l.t[i].data, g_data[i], l.t[i].nbytes));
        for (int d = 0; same && d < g_t[i].ndim; d++) same = l.t[i].shape[d] == g_t[i].shape[d];
        KQ_CHECK(same, "zip from memory: tensor %zu differs", i);
    }
    kq_src_list_free(&l);
    free(b);
}

#if KQ_HAVE_CJSON
/* Offset of the central directory header of the entry whose name ends with `tail`. */
static size_t find_cdh(const uint8_t *b, size_t len, const char *tail) {
    size_t tl = strlen(tail);
    for (size_t i = 0; i + 46 <= len; i++) {
        if (b[i] != 'P' || b[i + 1] != 'K' || b[i + 2] != 1 || b[i + 3] != 2) continue;
        size_t nl = (size_t)(b[i + 28] | (b[i + 29] << 8));
        if (i + 46 + nl <= len && nl >= tl && !memcmp(b + i + 46 + nl - tl, tail, tl)) return i;
    }
    return SIZE_MAX;
}

static void test_hostile_zip(void) {
    size_t len = 0;
    uint8_t *good = kq_test_read_file(tpath("pt/pytorch_model.bin"), &len);
    KQ_CHECK(good && len > 200, "read back pytorch_model.bin");
    if (!good) return;
    /* PyTorch's archive name is the file stem; data is 64-byte aligned. */
    size_t cd = find_cdh(good, len, "pytorch_model/data.pkl");
    KQ_CHECK(cd != SIZE_MAX, "archive record pytorch_model/data.pkl present");
    kq_src_list l = {0};
    char err[512] = "";
    int rc = kq_torchzip_parse(good, len, "mem.bin", &l, err, sizeof err);
    int aligned = rc == 0;
    for (size_t i = 0; i < l.n; i++) aligned &= ((size_t)(l.t[i].data - good) % 64) == 0;
    KQ_CHECK(aligned, "storage records are 64-byte aligned: %s", err);
    kq_src_list_free(&l);

    /* A compressed (deflate) entry: method 8 in the central directory. */
    uint8_t *z = malloc(len);
    memcpy(z, good, len);
    size_t at = find_cdh(z, len, "data/1");
    if (at != SIZE_MAX) z[at + 10] = 8;
    write_bytes(tpath("deflate.bin"), z, len);
    open_fails(tpath("deflate.bin"), "deflate.bin", "compressed", "compressed zip entry");
    /* A storage record that is missing (renamed). */
    memcpy(z, good, len);
    at = find_cdh(z, len, "data/2");
    if (at != SIZE_MAX) z[at + 46 + (z[at + 28] | (z[at + 29] << 8)) - 1] = 'x';
    write_bytes(tpath("nostorage.bin"), z, len);
    open_fails(tpath("nostorage.bin"), "nostorage.bin", "missing from the archive", "missing storage record");
    free(z);

    /* Truncated at every length. */
    int all = 1;
    for (size_t L = 0; L < len; L++) {
        kq_src_list tl = {0};
        err[0] = 0;
        uint8_t *cut = malloc(L ? L : 1);
        memcpy(cut, good, L);
        rc = kq_torchzip_parse(cut, L, "cut.bin", &tl, err, sizeof err);
        all &= rc != 0 && tl.n == 0 && err_ok(err, "cut.bin", "");
        kq_src_list_free(&tl);
        free(cut);
    }
    KQ_CHECK(all, "every truncation of a torch zip is rejected with a named one-line error");
    write_bytes(tpath("cut.bin"), good, len - 30);
    open_fails(tpath("cut.bin"), "cut.bin", "truncated", "truncated zip file");
    free(good);

    /* The pre-1.6 format: a pickled magic number first. */
    const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    write_bytes(tpath("legacy.bin"), legacy, sizeof legacy);
    open_fails(tpath("legacy.bin"), "legacy.bin", "legacy (pre-1.6) torch.save format not supported", "legacy format");
}

static void test_hostile_folders(void) {
    char err[512] = "";
    const char *names[2] = {"model.norm.weight", "lm_head.weight"};
    /* A shard the index lists does not exist. */
    mkdir(tpath("miss"), 0755);
    kq_write_safetensors(tpath("miss/model-00001-of-00002.safetensors"), g_t + 2, 1, err, sizeof err);
    const char *files[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    kq_write_index_json(tpath("miss/model.safetensors.index.json"), names, files, 2, 0, err, sizeof err);
    open_fails(tpath("miss"), "model-00002-of-00002.safetensors", "missing shard", "missing shard");
    open_fails(tpath("miss"), "model.safetensors.index.json", "lm_head.weight", "missing shard names index and tensor");
    /* A tensor the index puts in a shard that does not hold it. */
    mkdir(tpath("notin"), 0755);
    kq_write_safetensors(tpath("notin/a.safetensors"), g_t + 2, 1, err, sizeof err);
    static const char idx[] = "{\"weight_map\":{\"model.norm.weight\":\"a.safetensors\",\"lm_head.weight\":\"a.safetensors\"}}";
    write_bytes(tpath("notin/model.safetensors.index.json"), idx, sizeof idx - 1);
    open_fails(tpath("notin"), "a.safetensors", "lm_head.weight", "tensor not in its shard");
    /* Shard names that try to leave the folder. */
    static const char idx2[] = "{\"weight_map\":{\"x\":\"../../etc/passwd\"}}";
    write_bytes(tpath("notin/model.safetensors.index.json"), idx2, sizeof idx2 - 1);
    open_fails(tpath("notin"), "model.safetensors.index.json", "plain file name", "shard path escaping the folder");
    static const char idx3[] = "{\"weight_map\":{\"x\":\"a.safetensors\"";
    write_bytes(tpath("notin/model.safetensors.index.json"), idx3, sizeof idx3 - 1);
    open_fails(tpath("notin"), "model.safetensors.index.json", "JSON", "broken index");
    /* The same tensor in two shards. */
    mkdir(tpath("dup"), 0755);
    kq_write_safetensors(tpath("dup/a.safetensors"), g_t + 2, 1, err, sizeof err);
    kq_write_safetensors(tpath("dup/b.safetensors"), g_t + 2, 3, err, sizeof err); /* norm, scalar, lm_head */
    static const char idx4[] = "{\"weight_map\":{\"model.norm.weight\":\"a.safetensors\",\"lm_head.weight\":\"b.safetensors\"}}";
    write_bytes(tpath("dup/model.safetensors.index.json"), idx4, sizeof idx4 - 1);
    open_fails(tpath("dup"), "dup", "duplicate tensor model.norm.weight", "tensor in two shards");
    /* Folders with nothing, or too much, to choose from. */
    mkdir(tpath("none"), 0755);
    open_fails(tpath("none"), "none", "no checkpoint", "empty folder");
    kq_write_safetensors(tpath("none/x.safetensors"), g_t + 2, 1, err, sizeof err);
    kq_write_safetensors(tpath("none/y.safetensors"), g_t + 2, 1, err, sizeof err);
    open_fails(tpath("none"), "none", "cannot tell", "two loose safetensors");
    open_fails(tpath("does-not-exist"), "does-not-exist", "No such file", "missing path");
}

#endif

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/kq_test_ckpt_XXXXXX");
    if (!mkdtemp(g_dir)) {
        KQ_CHECK(0, "mkdtemp failed");
        return kq_test_finish();
    }
    make_model();
    /* The pickle VM and the zip reader need no JSON: they run in every build. */
    test_golden_pickle();
    test_hostile_pickle();
    test_zip_memory();
    test_real_torch_files();
#if KQ_HAVE_CJSON
    test_round_trips();
    test_hostile_safetensors();
    test_hostile_zip();
    test_hostile_folders();
#else
    kq_ckpt *c = NULL;
    char err[256] = "";
    int rc = kq_ckpt_open(".", &c, err, sizeof err);
    KQ_CHECK(rc != 0 && strstr(err, "need cJSON"), "without cJSON kq_ckpt_open must say so: %s", err);
    KQ_SKIP("safetensors, index.json and kq_ckpt_open tests: built without cJSON (KQ_HAVE_CJSON=0)");
#endif
    for (int i = 0; i < NT; i++) free(g_data[i]);
    rm_tree(g_dir);
    return kq_test_finish();
}
