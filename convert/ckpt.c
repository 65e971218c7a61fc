/* kq: opening a checkpoint: folder detection, shard indexes, mmap, row reads. */
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fp16.h"

#if KQ_HAVE_CJSON
#include <cjson/cJSON.h>
#endif

typedef struct {
    char *path;
    uint8_t *map;
    size_t size;
} ck_file;

struct kq_ckpt {
    ck_file *files;
    size_t nfiles;
    kq_src_list list;
    const kq_src_tensor **sorted; /* by name, for kq_ckpt_find */
};

int kq_ckpt_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    for (char *c = err; errlen && *c; c++) if ((unsigned char)*c < 0x20) *c = '?'; /* one line, whatever names hold */
    return -1;
}

size_t kq_ckpt_count(const kq_ckpt *c) { return c ? c->list.n : 0; }

const kq_src_tensor *kq_ckpt_at(const kq_ckpt *c, size_t i) {
    return c && i < c->list.n ? &c->list.t[i] : NULL;
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    return strcmp((*(const kq_src_tensor *const *)a)->name, (*(const kq_src_tensor *const *)b)->name);
}

const kq_src_tensor *kq_ckpt_find(const kq_ckpt *c, const char *name) {
    if (!c || !name || !c->sorted) return NULL;
    kq_src_tensor probe;
    memset(&probe, 0, sizeof probe);
    probe.name = name;
    const kq_src_tensor *pp = &probe;
    const kq_src_tensor **hit = bsearch(&pp, c->sorted, c->list.n, sizeof *c->sorted, cmp_tensor_ptr);
    return hit ? *hit : NULL;
}

void kq_ckpt_close(kq_ckpt *c) {
    if (!c) return;
    kq_src_list_free(&c->list);
    for (size_t i = 0; i < c->nfiles; i++) {
        if (c->files[i].map) munmap(c->files[i].map, c->files[i].size);
        free(c->files[i].path);
    }
    free(c->files);
    free(c->sorted);
    free(c);
}

int64_t kq_src_rows(const kq_src_tensor *t) {
    int64_t r = 1;
    for (int d = 0; d + 1 < t->ndim; d++) r *= t->shape[d];
    return r;
}

int64_t kq_src_row_len(const kq_src_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

int kq_src_read_rows_f32(const kq_src_tensor *t, int64_t row0, int64_t nrows, float *out, char *err,
                         size_t errlen) {
    if (t->dtype != KQ_DT_F32 && t->dtype != KQ_DT_F16 && t->dtype != KQ_DT_BF16)
    {
        const char *dn = t->dtype == KQ_DT_OTHER ? t->dtype_name : kq_dtype_str(t->dtype);
        const int same = !strcmp(dn, t->dtype_name);
        return kq_ckpt_fail(err, errlen, "%s: tensor %s has dtype %s%s%s%s: only F32, F16 and BF16 convert to float", t->file,
                       t->name, dn, same ? "" : " (", same ? "" : t->dtype_name, same ? "" : ")");
    }
    const int64_t rows = kq_src_rows(t), rl = kq_src_row_len(t);
    if (row0 < 0 || nrows < 0 || row0 > rows || nrows > rows - row0)
        return kq_ckpt_fail(err, errlen, "%s: tensor %s: rows [%lld, %lld) outside its %lld rows", t->file, t->name,
                       (long long)row0, (long long)(row0 + nrows), (long long)rows);
    const size_t el = kq_dtype_size(t->dtype);
    const size_t first = (size_t)row0 * (size_t)rl, n = (size_t)nrows * (size_t)rl;
    if ((first + n) * el > t->nbytes) /* cannot happen for a parsed tensor; cheap to keep honest */
        return kq_ckpt_fail(err, errlen, "%s: tensor %s: data shorter than its shape", t->file, t->name);
    const uint8_t *p = t->data + first * el;
    if (t->dtype == KQ_DT_F32) {
        memcpy(out, p, n * 4);
    } else {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            out[i] = t->dtype == KQ_DT_F16 ? kq_f16_to_f32(h) : kq_bf16_to_f32(h);
        }
    }
    return 0;
}

void kq_src_release(const kq_src_tensor *t) {
    if (!t || !t->nbytes) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    /* Whole pages inside the tensor only: a neighbour's bytes on a shared page stay mapped. */
    uintptr_t a = ((uintptr_t)t->data + page - 1) & ~(page - 1);
    uintptr_t b = ((uintptr_t)t->data + t->nbytes) & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* ---- files ------------------------------------------------------------------------------------- */

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int map_file(kq_ckpt *c, const char *path, ck_file **out, char *err, size_t errlen) {
    ck_file *q = realloc(c->files, (c->nfiles + 1) * sizeof *q);
    if (!q) return kq_ckpt_fail(err, errlen, "%s: out of memory", path);
    c->files = q;
    ck_file *f = &c->files[c->nfiles];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) return kq_ckpt_fail(err, errlen, "%s: out of memory", path);
    c->nfiles++;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return kq_ckpt_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return kq_ckpt_fail(err, errlen, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            f->size = 0;
            return kq_ckpt_fail(err, errlen, "%s: mmap failed: %s", path, strerror(errno));
        }
        f->map = m;
    }
    close(fd);
    *out = f;
    return 0;
}

/* One checkpoint file: safetensors by name or by content, else a torch.save zip. */
static int open_one(kq_ckpt *c, const char *path, char *err, size_t errlen) {
    ck_file *f = NULL;
    if (map_file(c, path, &f, err, errlen)) return -1;
    const uint8_t *b = f->map ? f->map : (const uint8_t *)"";
    int is_zip = f->size >= 4 && b[0] == 'P' && b[1] == 'K';
    int is_pickle = f->size >= 2 && b[0] == 0x80;
    if (has_suffix(path, ".safetensors") || (!is_zip && !is_pickle))
        return kq_safetensors_parse(b, f->size, f->path, &c->list, err, errlen);
    return kq_torchzip_parse(b, f->size, f->path, &c->list, err, errlen);
}

#if KQ_HAVE_CJSON

static char *read_small(const char *path, size_t max, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) { kq_ckpt_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, fp) : 0;
    fclose(fp);
    if (!buf) { kq_ckpt_fail(err, errlen, "%s: out of memory", path); return NULL; }
    if (n > max) { free(buf); kq_ckpt_fail(err, errlen, "%s: larger than %zu bytes", path, max); return NULL; }
    buf[n] = 0;
    return buf;
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (s) {
        memcpy(s, dir, a);
        s[a] = '/';
        memcpy(s + a + 1, name, b + 1);
    }
    return s;
}

static char *dir_of(const char *path) {
    const char *sl = strrchr(path, '/');
    if (!sl) return strdup(".");
    if (sl == path) return strdup("/");
    char *d = strndup(path, (size_t)(sl - path));
    return d;
}

/* The shards an index names, each opened once, then every mapping checked. */
static int open_index(kq_ckpt *c, const char *index, char *err, size_t errlen) {
    char *text = read_small(index, 64u << 20, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return kq_ckpt_fail(err, errlen, "%s: not valid JSON", index);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int rc = 0;
    char *dir = dir_of(index);
    if (!dir) rc = kq_ckpt_fail(err, errlen, "%s: out of memory", index);
    else if (!cJSON_IsObject(wm)) rc = kq_ckpt_fail(err, errlen, "%s: no \"weight_map\" object", index);
    /* Pass 1: names are strings of plain file names, and every shard exists. */
    for (const cJSON *e = wm && !rc ? wm->child : NULL; e && !rc; e = e->next) {
        if (!cJSON_IsString(e) || !e->string) { rc = kq_ckpt_fail(err, errlen, "%s: weight_map entry %s is not a file name", index, e->string ? e->string : "?"); break; }
        const char *s = e->valuestring;
        if (!*s || strchr(s, '/') || !strcmp(s, "..") || !strcmp(s, ".")) { rc = kq_ckpt_fail(err, errlen, "%s: shard name \"%s\" for tensor %s is not a plain file name", index, s, e->string); break; }
        char *p = join(dir, s);
        struct stat st;
        if (!p) rc = kq_ckpt_fail(err, errlen, "%s: out of memory", index);
        else if (stat(p, &st)) rc = kq_ckpt_fail(err, errlen, "missing shard %s listed in %s for tensor %s", p, index, e->string);
        free(p);
    }
    /* Pass 2: open each distinct shard in first-mention order. */
    for (const cJSON *e = wm && !rc ? wm->child : NULL; e && !rc; e = e->next) {
        int seen = 0;
        for (const cJSON *f = wm->child; f != e && !seen; f = f->next) seen = !strcmp(f->valuestring, e->valuestring);
        if (seen) continue;
        char *p = join(dir, e->valuestring);
        rc = p ? open_one(c, p, err, errlen) : kq_ckpt_fail(err, errlen, "%s: out of memory", index);
        free(p);
    }
    /* Pass 3: every tensor the index names is in the shard it names. */
    for (const cJSON *e = wm && !rc ? wm->child : NULL; e && !rc; e = e->next) {
        const kq_src_tensor *t = NULL;
        for (size_t i = 0; i < c->list.n && !t; i++)
            if (!strcmp(c->list.t[i].name, e->string) && has_suffix(c->list.t[i].file, e->valuestring)) {
                const char *f = c->list.t[i].file;
                size_t fl = strlen(f), sl = strlen(e->valuestring);
                if (fl == sl || f[fl - sl - 1] == '/') t = &c->list.t[i];
            }
        if (!t) rc = kq_ckpt_fail(err, errlen, "%s: tensor %s listed in %s but not found in shard %s", index, e->string, index, e->valuestring);
    }
    if (!rc && c->nfiles == 0) rc = kq_ckpt_fail(err, errlen, "%s: weight_map lists no shards", index);
    free(dir);
    cJSON_Delete(root);
    return rc;
}

/* A folder: the names transformers writes, else a lone *.safetensors or *.bin. */
static int open_dir(kq_ckpt *c, const char *dir, char *err, size_t errlen) {
    static const char *const known[] = {"model.safetensors.index.json", "model.safetensors",
                                        "pytorch_model.bin.index.json", "pytorch_model.bin"};
    for (size_t i = 0; i < 4; i++) {
        char *p = join(dir, known[i]);
        if (!p) return kq_ckpt_fail(err, errlen, "%s: out of memory", dir);
        struct stat st;
        int ok = !stat(p, &st) && S_ISREG(st.st_mode);
        int rc = ok ? (has_suffix(p, ".json") ? open_index(c, p, err, errlen) : open_one(c, p, err, errlen)) : 0;
        free(p);
        if (ok) return rc;
    }
    DIR *d = opendir(dir);
    if (!d) return kq_ckpt_fail(err, errlen, "%s: cannot read folder: %s", dir, strerror(errno));
    char *st_name = NULL, *bin_name = NULL;
    int nst = 0, nbin = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (has_suffix(e->d_name, ".safetensors")) {
            if (!nst++) st_name = strdup(e->d_name);
        } else if (has_suffix(e->d_name, ".bin") && strcmp(e->d_name, "training_args.bin")) {
            if (!nbin++) bin_name = strdup(e->d_name);
        }
    }
    closedir(d);
    int rc;
    if (nst > 1 || (!nst && nbin > 1))
        rc = kq_ckpt_fail(err, errlen, "%s: %d *.safetensors and %d *.bin files but no index.json: cannot tell which is the model",
                     dir, nst, nbin);
    else if (!nst && !nbin)
        rc = kq_ckpt_fail(err, errlen, "%s: no checkpoint (looked for model.safetensors[.index.json], pytorch_model.bin[.index.json], *.safetensors, *.bin)", dir);
    else {
        char *p = join(dir, nst ? st_name : bin_name);
        rc = p ? open_one(c, p, err, errlen) : kq_ckpt_fail(err, errlen, "%s: out of memory", dir);
        free(p);
    }
    free(st_name);
    free(bin_name);
    return rc;
}

static int finish(kq_ckpt *c, const char *path, char *err, size_t errlen) {
    c->sorted = malloc((c->list.n ? c->list.n : 1) * sizeof *c->sorted);
    if (!c->sorted) return kq_ckpt_fail(err, errlen, "%s: out of memory", path);
    for (size_t i = 0; i < c->list.n; i++) c->sorted[i] = &c->list.t[i];
    qsort(c->sorted, c->list.n, sizeof *c->sorted, cmp_tensor_ptr);
    for (size_t i = 1; i < c->list.n; i++)
        if (!strcmp(c->sorted[i - 1]->name, c->sorted[i]->name))
            return kq_ckpt_fail(err, errlen, "%s: duplicate tensor %s (in %s and %s)", path, c->sorted[i]->name,
                           c->sorted[i - 1]->file, c->sorted[i]->file);
    return 0;
}

int kq_ckpt_open(const char *path, kq_ckpt **out, char *err, size_t errlen) {
    *out = NULL;
    kq_ckpt *c = calloc(1, sizeof *c);
    if (!c) return kq_ckpt_fail(err, errlen, "%s: out of memory", path);
    struct stat st;
    int rc;
    if (stat(path, &st)) rc = kq_ckpt_fail(err, errlen, "%s: %s", path, strerror(errno));
    else if (S_ISDIR(st.st_mode)) rc = open_dir(c, path, err, errlen);
    else if (has_suffix(path, ".json")) rc = open_index(c, path, err, errlen);
    else rc = open_one(c, path, err, errlen);
    if (!rc) rc = finish(c, path, err, errlen);
    if (rc) { kq_ckpt_close(c); return -1; }
    *out = c;
    return 0;
}

#else

int kq_ckpt_open(const char *path, kq_ckpt **out, char *err, size_t errlen) {
    (void)open_one;
    *out = NULL;
    return kq_ckpt_fail(err, errlen, "%s: safetensors/pytorch readers need cJSON; not in this build", path);
}

#endif
