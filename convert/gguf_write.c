/* kq: GGUF v3 streaming writer. Metadata and tensor descriptors are kept in memory, already
 * serialized; tensor data goes straight to a temp file beside the target, renamed at the end. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"

typedef struct {
    char *key;
    size_t key_len;
    uint32_t type;
    uint8_t *val; /* the value exactly as it goes in the file (after the type field) */
    size_t val_len;
} kq_wkv;

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[KQ_GGUF_MAX_DIMS];
    kq_type type;
    uint64_t size, offset, written;
} kq_wtensor;

enum { KQ_W_SETUP, KQ_W_WRITING, KQ_W_DONE, KQ_W_FAILED };

struct kq_gguf_writer {
    kq_wkv *kv;
    size_t n_kv, cap_kv;
    kq_wtensor *t;
    size_t n_t, cap_t;
    int state;
    FILE *f;
    char *path, *tmp;
    uint64_t alignment;
    size_t cur; /* first tensor not yet complete */
};

static void kq_werr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void kq_werr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- little-endian serialization (independent of the host's byte order) ---- */
typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} kq_wbuf;

static void kq_wbuf_put(kq_wbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX - b->len) {
        b->oom = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void kq_wbuf_le(kq_wbuf *b, uint64_t v, int nbytes) {
    uint8_t tmp[8];
    for (int i = 0; i < nbytes; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    kq_wbuf_put(b, tmp, (size_t)nbytes);
}

static void kq_wbuf_str(kq_wbuf *b, const char *s, size_t len) {
    kq_wbuf_le(b, (uint64_t)len, 8);
    kq_wbuf_put(b, s, len);
}

/* Host value of a fixed-size type at p -> its little-endian bytes. */
static void kq_wbuf_scalar(kq_wbuf *b, int type, const void *p) {
    uint64_t v = 0;
    switch (type) {
    case KQ_GGUF_U8: case KQ_GGUF_I8: case KQ_GGUF_BOOL: { uint8_t x; memcpy(&x, p, 1); v = x; kq_wbuf_le(b, v, 1); return; }
    case KQ_GGUF_U16: case KQ_GGUF_I16: { uint16_t x; memcpy(&x, p, 2); v = x; kq_wbuf_le(b, v, 2); return; }
    case KQ_GGUF_U32: case KQ_GGUF_I32: case KQ_GGUF_F32: { uint32_t x; memcpy(&x, p, 4); v = x; kq_wbuf_le(b, v, 4); return; }
    default: { uint64_t x; memcpy(&x, p, 8); kq_wbuf_le(b, x, 8); return; }
    }
}

static size_t kq_wsize(int type) {
    switch (type) {
    case KQ_GGUF_U8: case KQ_GGUF_I8: case KQ_GGUF_BOOL: return 1;
    case KQ_GGUF_U16: case KQ_GGUF_I16: return 2;
    case KQ_GGUF_U32: case KQ_GGUF_I32: case KQ_GGUF_F32: return 4;
    case KQ_GGUF_U64: case KQ_GGUF_I64: case KQ_GGUF_F64: return 8;
    default: return 0;
    }
}

/* ---- writer object ---- */
kq_gguf_writer *kq_gguf_writer_new(void) {
    kq_gguf_writer *w = calloc(1, sizeof(*w));
    return w;
}

void kq_gguf_write_abort(kq_gguf_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    w->f = NULL;
    if (w->tmp) {
        unlink(w->tmp);
        free(w->tmp);
        w->tmp = NULL;
    }
    if (w->state == KQ_W_WRITING) w->state = KQ_W_FAILED;
}

void kq_gguf_writer_free(kq_gguf_writer *w) {
    if (!w) return;
    kq_gguf_write_abort(w);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w->path);
    free(w);
}

const char *kq_gguf_writer_tmp_path(const kq_gguf_writer *w) { return w && w->tmp ? w->tmp : ""; }

static int kq_key_ok(const char *key, size_t *len) {
    if (!key) return 0;
    const size_t n = strlen(key);
    if (n == 0 || n > KQ_GGUF_MAX_KEY) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] >= 0x80) return 0;
    *len = n;
    return 1;
}

/* Takes ownership of the serialized value in b (freed on failure). */
static int kq_set_kv(kq_gguf_writer *w, const char *key, uint32_t type, kq_wbuf *b) {
    size_t klen = 0;
    if (!w || w->state != KQ_W_SETUP || b->oom || !kq_key_ok(key, &klen)) {
        free(b->p);
        return -1;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (w->kv[i].key_len == klen && !memcmp(w->kv[i].key, key, klen)) {
            free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = b->p;
            w->kv[i].val_len = b->len;
            return 0;
        }
    }
    if (w->n_kv == w->cap_kv) {
        const size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        kq_wkv *kv = realloc(w->kv, cap * sizeof(*kv));
        if (!kv) {
            free(b->p);
            return -1;
        }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = malloc(klen + 1);
    if (!k) {
        free(b->p);
        return -1;
    }
    memcpy(k, key, klen + 1);
    w->kv[w->n_kv++] = (kq_wkv){k, klen, type, b->p, b->len};
    return 0;
}

static int kq_set_scalar(kq_gguf_writer *w, const char *key, int type, const void *v) {
    kq_wbuf b = {0};
    kq_wbuf_scalar(&b, type, v);
    return kq_set_kv(w, key, (uint32_t)type, &b);
}

int kq_gguf_set_u8(kq_gguf_writer *w, const char *key, uint8_t v) { return kq_set_scalar(w, key, KQ_GGUF_U8, &v); }
int kq_gguf_set_i8(kq_gguf_writer *w, const char *key, int8_t v) { return kq_set_scalar(w, key, KQ_GGUF_I8, &v); }
int kq_gguf_set_u16(kq_gguf_writer *w, const char *key, uint16_t v) { return kq_set_scalar(w, key, KQ_GGUF_U16, &v); }
int kq_gguf_set_i16(kq_gguf_writer *w, const char *key, int16_t v) { return kq_set_scalar(w, key, KQ_GGUF_I16, &v); }
int kq_gguf_set_u32(kq_gguf_writer *w, const char *key, uint32_t v) { return kq_set_scalar(w, key, KQ_GGUF_U32, &v); }
int kq_gguf_set_i32(kq_gguf_writer *w, const char *key, int32_t v) { return kq_set_scalar(w, key, KQ_GGUF_I32, &v); }
int kq_gguf_set_u64(kq_gguf_writer *w, const char *key, uint64_t v) { return kq_set_scalar(w, key, KQ_GGUF_U64, &v); }
int kq_gguf_set_i64(kq_gguf_writer *w, const char *key, int64_t v) { return kq_set_scalar(w, key, KQ_GGUF_I64, &v); }
int kq_gguf_set_f32(kq_gguf_writer *w, const char *key, float v) { return kq_set_scalar(w, key, KQ_GGUF_F32, &v); }
int kq_gguf_set_f64(kq_gguf_writer *w, const char *key, double v) { return kq_set_scalar(w, key, KQ_GGUF_F64, &v); }

int kq_gguf_set_bool(kq_gguf_writer *w, const char *key, int v) {
    const uint8_t b = v ? 1 : 0;
    return kq_set_scalar(w, key, KQ_GGUF_BOOL, &b);
}

int kq_gguf_set_strn(kq_gguf_writer *w, const char *key, const char *v, size_t len) {
    if (!v && len) return -1;
    kq_wbuf b = {0};
    kq_wbuf_str(&b, v ? v : "", len);
    return kq_set_kv(w, key, KQ_GGUF_STR, &b);
}

int kq_gguf_set_str(kq_gguf_writer *w, const char *key, const char *v) {
    if (!v) return -1;
    return kq_gguf_set_strn(w, key, v, strlen(v));
}

int kq_gguf_set_arr(kq_gguf_writer *w, const char *key, kq_gguf_vtype elem_type, const void *elems, uint64_t n) {
    const size_t es = kq_wsize((int)elem_type);
    if (!es || (n && !elems) || n > SIZE_MAX / es) return -1;
    kq_wbuf b = {0};
    kq_wbuf_le(&b, (uint64_t)elem_type, 4);
    kq_wbuf_le(&b, n, 8);
    const uint8_t *p = elems;
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        if (elem_type == KQ_GGUF_BOOL) {
            const uint8_t v = p[i] ? 1 : 0;
            kq_wbuf_put(&b, &v, 1);
        } else {
            kq_wbuf_scalar(&b, (int)elem_type, p + i * es);
        }
    }
    return kq_set_kv(w, key, KQ_GGUF_ARR, &b);
}

int kq_gguf_set_arr_str(kq_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens, uint64_t n) {
    if (n && !strs) return -1;
    kq_wbuf b = {0};
    kq_wbuf_le(&b, KQ_GGUF_STR, 4);
    kq_wbuf_le(&b, n, 8);
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        const char *s = strs[i];
        const size_t len = lens ? lens[i] : (s ? strlen(s) : 0);
        if (!s && len) {
            free(b.p);
            return -1;
        }
        kq_wbuf_str(&b, s ? s : "", len);
    }
    return kq_set_kv(w, key, KQ_GGUF_ARR, &b);
}

/* ---- tensors ---- */
int kq_gguf_add_tensor(kq_gguf_writer *w, const char *name, int n_dims, const int64_t *ne, kq_type type) {
    if (!w || w->state != KQ_W_SETUP || !name || !ne) return -1;
    const size_t nlen = strlen(name);
    if (nlen == 0 || nlen > KQ_GGUF_MAX_NAME) return -1;
    if (n_dims < 1 || n_dims > KQ_GGUF_MAX_DIMS) return -1;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] < 1) return -1;
    if (!kq_row_ok(type, ne[0])) return -1;
    const kq_type_traits *tr = kq_ref_traits(type);
    /* kq_row_size cannot overflow here: blocks * block_bytes + overhead is checked first */
    const uint64_t blocks = (uint64_t)ne[0] / (uint64_t)tr->block_elems;
    if (blocks > (UINT64_MAX / 4 - tr->row_overhead) / tr->block_bytes) return -1;
    uint64_t size = (uint64_t)kq_row_size(type, ne[0]);
    uint64_t nel = (uint64_t)ne[0];
    for (int d = 1; d < n_dims; d++) {
        const uint64_t n = (uint64_t)ne[d];
        if (size > UINT64_MAX / n || nel > (uint64_t)INT64_MAX / n) return -1;
        size *= n;
        nel *= n;
    }
    if (size > (uint64_t)INT64_MAX / 2) return -1; /* room for the offsets and padding */
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return -1;
    if (w->n_t >= KQ_GGUF_MAX_TENSORS) return -1;
    if (w->n_t == w->cap_t) {
        const size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        kq_wtensor *t = realloc(w->t, cap * sizeof(*t));
        if (!t) return -1;
        w->t = t;
        w->cap_t = cap;
    }
    kq_wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof(*t));
    t->name = malloc(nlen + 1);
    if (!t->name) return -1;
    memcpy(t->name, name, nlen + 1);
    t->n_dims = n_dims;
    for (int d = 0; d < KQ_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->size = size;
    return (int)w->n_t++;
}

int64_t kq_gguf_writer_n_tensors(const kq_gguf_writer *w) { return w ? (int64_t)w->n_t : 0; }

uint64_t kq_gguf_writer_tensor_size(const kq_gguf_writer *w, int i) {
    return w && i >= 0 && (size_t)i < w->n_t ? w->t[i].size : 0;
}

/* ---- writing ---- */
static uint64_t kq_align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static int kq_alignment_of(kq_gguf_writer *w, char *err, size_t errlen) {
    w->alignment = KQ_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment")) continue;
        if (w->kv[i].type != KQ_GGUF_U32) {
            kq_werr(err, errlen, "general.alignment must be a u32");
            return -1;
        }
        const uint8_t *p = w->kv[i].val;
        const uint32_t a = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if (a < 8 || a % 8 || (a & (a - 1))) {
            kq_werr(err, errlen, "general.alignment %u is not a power of two and a multiple of 8", a);
            return -1;
        }
        w->alignment = a;
    }
    return 0;
}

static int kq_write_header(kq_gguf_writer *w, kq_wbuf *b) {
    kq_wbuf_put(b, "GGUF", 4);
    kq_wbuf_le(b, KQ_GGUF_VERSION, 4);
    kq_wbuf_le(b, w->n_t, 8);
    kq_wbuf_le(b, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        kq_wbuf_str(b, w->kv[i].key, w->kv[i].key_len);
        kq_wbuf_le(b, w->kv[i].type, 4);
        kq_wbuf_put(b, w->kv[i].val, w->kv[i].val_len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        kq_wtensor *t = &w->t[i];
        if (t->size > (uint64_t)INT64_MAX - w->alignment - off) return -2; /* total data beyond 2^63 */
        t->offset = off;
        off = kq_align_up(off + t->size, w->alignment);
        kq_wbuf_str(b, t->name, strlen(t->name));
        kq_wbuf_le(b, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) kq_wbuf_le(b, (uint64_t)t->ne[d], 8);
        kq_wbuf_le(b, (uint64_t)(uint32_t)t->type, 4);
        kq_wbuf_le(b, t->offset, 8);
    }
    static const uint8_t zeros[256];
    while (!b->oom && b->len % w->alignment) {
        const size_t pad = (size_t)(kq_align_up(b->len, w->alignment) - b->len);
        kq_wbuf_put(b, zeros, pad < sizeof(zeros) ? pad : sizeof(zeros));
    }
    return b->oom ? -1 : 0;
}

static int kq_open_tmp(kq_gguf_writer *w, const char *path, char *err, size_t errlen) {
    const size_t n = strlen(path);
    w->path = malloc(n + 1);
    w->tmp = malloc(n + 16);
    if (!w->path || !w->tmp) {
        kq_werr(err, errlen, "%s: out of memory", path);
        return -1;
    }
    memcpy(w->path, path, n + 1);
    snprintf(w->tmp, n + 16, "%s.kqtmp.XXXXXX", path);
    const int fd = mkstemp(w->tmp);
    if (fd < 0) {
        kq_werr(err, errlen, "%s: cannot create a file beside it: %s", path, strerror(errno));
        free(w->tmp);
        w->tmp = NULL;
        return -1;
    }
    /* mkstemp makes the file 0600; the output is an ordinary file, so follow the umask */
    const mode_t um = umask(0);
    umask(um);
    (void)!fchmod(fd, 0666 & ~um); /* not fatal: the content is what matters */
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        kq_werr(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    return 0;
}

int kq_gguf_write_begin(kq_gguf_writer *w, const char *path, char *err, size_t errlen) {
    if (!w || !path) return -1;
    if (w->state != KQ_W_SETUP) {
        kq_werr(err, errlen, "%s: write_begin called twice", path);
        return -1;
    }
    if (kq_alignment_of(w, err, errlen)) return -1;
    kq_wbuf b = {0};
    const int hrc = kq_write_header(w, &b);
    if (hrc) {
        free(b.p);
        kq_werr(err, errlen, hrc == -2 ? "%s: the tensors add up to more than 2^63 bytes" : "%s: out of memory building the header", path);
        return -1;
    }
    w->state = KQ_W_WRITING;
    if (kq_open_tmp(w, path, err, errlen)) {
        free(b.p);
        kq_gguf_write_abort(w);
        return -1;
    }
    const int bad = fwrite(b.p, 1, b.len, w->f) != b.len;
    free(b.p);
    if (bad) {
        kq_werr(err, errlen, "%s: writing the header failed: %s", path, strerror(errno));
        kq_gguf_write_abort(w);
        return -1;
    }
    w->cur = 0;
    return 0;
}

static int kq_pad_after(kq_gguf_writer *w, const kq_wtensor *t) {
    static const uint8_t zeros[256];
    uint64_t pad = kq_align_up(t->size, w->alignment) - t->size;
    while (pad) {
        const size_t n = pad < sizeof(zeros) ? (size_t)pad : sizeof(zeros);
        if (fwrite(zeros, 1, n, w->f) != n) return -1;
        pad -= n;
    }
    return 0;
}

int kq_gguf_write_data(kq_gguf_writer *w, int ti, const void *bytes, size_t n, char *err, size_t errlen) {
    if (!w) return -1;
    if (w->state != KQ_W_WRITING) {
        kq_werr(err, errlen, "%s: not writing (write_begin missing, or an earlier error)", w->path ? w->path : "gguf");
        return -1;
    }
    if (ti < 0 || (size_t)ti >= w->n_t) {
        kq_werr(err, errlen, "%s: no tensor %d (the file has %zu)", w->path, ti, w->n_t);
        kq_gguf_write_abort(w);
        return -1;
    }
    kq_wtensor *t = &w->t[ti];
    if (!bytes && n) {
        kq_werr(err, errlen, "%s: tensor '%s': no data pointer", w->path, t->name);
        kq_gguf_write_abort(w);
        return -1;
    }
    if ((size_t)ti != w->cur) {
        if ((size_t)ti < w->cur)
            kq_werr(err, errlen, "%s: tensor '%s' is already complete", w->path, t->name);
        else
            kq_werr(err, errlen, "%s: tensor '%s' written out of order: '%s' comes first (%llu of %llu bytes written)",
                    w->path, t->name, w->t[w->cur].name, (unsigned long long)w->t[w->cur].written,
                    (unsigned long long)w->t[w->cur].size);
        kq_gguf_write_abort(w);
        return -1;
    }
    if ((uint64_t)n > t->size - t->written) {
        kq_werr(err, errlen, "%s: tensor '%s': %zu bytes more would make %llu, beyond its size %llu", w->path,
                t->name, n, (unsigned long long)(t->written + n), (unsigned long long)t->size);
        kq_gguf_write_abort(w);
        return -1;
    }
    if (n && fwrite(bytes, 1, n, w->f) != n) {
        kq_werr(err, errlen, "%s: writing tensor '%s' failed: %s", w->path, t->name, strerror(errno));
        kq_gguf_write_abort(w);
        return -1;
    }
    t->written += n;
    if (t->written == t->size) {
        if (kq_pad_after(w, t)) {
            kq_werr(err, errlen, "%s: writing failed: %s", w->path, strerror(errno));
            kq_gguf_write_abort(w);
            return -1;
        }
        w->cur++;
    }
    return 0;
}

int kq_gguf_write_finish(kq_gguf_writer *w, char *err, size_t errlen) {
    if (!w) return -1;
    if (w->state != KQ_W_WRITING) {
        kq_werr(err, errlen, "%s: not writing (write_begin missing, or an earlier error)", w->path ? w->path : "gguf");
        return -1;
    }
    /* zero-size tensors cannot exist (every ne >= 1), so cur counts the complete ones */
    if (w->cur < w->n_t) {
        const kq_wtensor *t = &w->t[w->cur];
        kq_werr(err, errlen, "%s: tensor '%s' incomplete: %llu of %llu bytes written (%zu of %zu tensors complete)",
                w->path, t->name, (unsigned long long)t->written, (unsigned long long)t->size, w->cur, w->n_t);
        kq_gguf_write_abort(w);
        return -1;
    }
    int bad = fflush(w->f) != 0 || ferror(w->f);
    if (!bad) bad = fsync(fileno(w->f)) != 0;
    const int saved = errno;
    if (fclose(w->f) != 0) bad = 1;
    w->f = NULL;
    if (bad) {
        kq_werr(err, errlen, "%s: writing failed: %s", w->path, strerror(saved ? saved : EIO));
        kq_gguf_write_abort(w);
        return -1;
    }
    if (rename(w->tmp, w->path) != 0) {
        kq_werr(err, errlen, "%s: cannot rename the finished file into place: %s", w->path, strerror(errno));
        kq_gguf_write_abort(w);
        return -1;
    }
    free(w->tmp);
    w->tmp = NULL;
    w->state = KQ_W_DONE;
    return 0;
}
