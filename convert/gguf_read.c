/* kq: GGUF v3 reader, written from the specification (ggml docs/gguf.md), not from kq's writer.
 * Everything is checked at open (see gguf.h); afterwards accessors only index validated data. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"

typedef struct {
    char *key;
    uint32_t type;
    uint32_t arr_type;  /* arrays only */
    uint64_t count;     /* arrays only */
    size_t pos;         /* scalars: the value; strings: the length field; arrays: the first element */
    uint64_t *str_pos;  /* string arrays: position of each element's length field */
} kq_rkv;

struct kq_gguf {
    const uint8_t *buf;
    size_t len;
    void *map;
    size_t map_len;
    char *path;
    uint32_t version, alignment;
    uint64_t header_end, data_offset;
    kq_rkv *kv;
    int64_t n_kv;
    kq_gguf_tensor *t;
    int64_t n_t;
    int64_t *kv_hash, *t_hash; /* open addressing, -1 = empty */
    size_t kv_hash_cap, t_hash_cap;
    char last_error[512];
};

/* ---- value types ---- */
const char *kq_gguf_vtype_name(int t) {
    static const char *const names[KQ_GGUF_VTYPE_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                           "bool", "string", "array", "u64", "i64", "f64"};
    return t >= 0 && t < KQ_GGUF_VTYPE_COUNT ? names[t] : "?";
}

size_t kq_gguf_vtype_size(int t) {
    static const unsigned char sizes[KQ_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t >= 0 && t < KQ_GGUF_VTYPE_COUNT ? sizes[t] : 0;
}

/* ---- tensor types: kq's (reference traits) and the ggml types kq has no kernels for, whose
 * geometry a reader still needs to find the tensors after them (ggml-common.h block structs). */
typedef struct {
    uint32_t id;
    const char *name;
    uint32_t block_elems, block_bytes;
} kq_ggml_only;

static const kq_ggml_only kq_ggml_only_types[] = {
    {16, "iq2_xxs", 256, 66}, {17, "iq2_xs", 256, 74}, {18, "iq3_xxs", 256, 98}, {19, "iq1_s", 256, 50},
    {20, "iq4_nl", 32, 18},   {21, "iq3_s", 256, 110}, {22, "iq2_s", 256, 82},   {23, "iq4_xs", 256, 136},
    {24, "i8", 1, 1},         {25, "i16", 1, 2},       {26, "i32", 1, 4},        {27, "i64", 1, 8},
    {28, "f64", 1, 8},        {29, "iq1_m", 256, 56},  {34, "tq1_0", 256, 54},   {35, "tq2_0", 256, 66},
    {39, "mxfp4", 32, 17},
};

static const kq_ggml_only *kq_ggml_only_find(uint32_t id) {
    for (size_t i = 0; i < sizeof(kq_ggml_only_types) / sizeof(kq_ggml_only_types[0]); i++)
        if (kq_ggml_only_types[i].id == id) return &kq_ggml_only_types[i];
    return NULL;
}

/* kq_ref_traits takes a kq_type: only ids in the enum's range are passed to it */
static const kq_type_traits *kq_traits_of(uint32_t id) {
    if (id > KQ_TYPE_INTN_LAST) return NULL;
    return kq_ref_traits((kq_type)id);
}

const char *kq_gguf_type_name(uint32_t type) {
    const kq_type_traits *tr = kq_traits_of(type);
    if (tr) return tr->name;
    const kq_ggml_only *o = kq_ggml_only_find(type);
    return o ? o->name : NULL;
}

/* 1 if ne0 elements form a valid row of a known type. */
static int kq_row_valid(uint32_t type, uint64_t ne0) {
    if (kq_traits_of(type)) return ne0 <= (uint64_t)INT64_MAX && kq_row_ok((kq_type)type, (int64_t)ne0);
    const kq_ggml_only *o = kq_ggml_only_find(type);
    return o && ne0 && ne0 % o->block_elems == 0;
}

/* Row bytes of ne0 elements; 0 if the type is unknown, ne0 not a valid row, or the size overflows. */
static uint64_t kq_row_bytes(uint32_t type, uint64_t ne0) {
    const kq_type_traits *tr = kq_traits_of(type);
    if (tr) {
        if (ne0 > (uint64_t)INT64_MAX || !kq_row_ok((kq_type)type, (int64_t)ne0)) return 0;
        const uint64_t blocks = ne0 / (uint64_t)tr->block_elems;
        if (blocks > (UINT64_MAX - tr->row_overhead) / tr->block_bytes) return 0;
        return blocks * tr->block_bytes + tr->row_overhead;
    }
    const kq_ggml_only *o = kq_ggml_only_find(type);
    if (!o || ne0 == 0 || ne0 % o->block_elems) return 0;
    const uint64_t blocks = ne0 / o->block_elems;
    if (blocks > UINT64_MAX / o->block_bytes) return 0;
    return blocks * o->block_bytes;
}

uint64_t kq_gguf_tensor_bytes(uint32_t type, int n_dims, const int64_t *ne) {
    if (n_dims < 0 || n_dims > KQ_GGUF_MAX_DIMS) return 0;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] < 1) return 0;
    uint64_t size = kq_row_bytes(type, n_dims ? (uint64_t)ne[0] : 1);
    for (int d = 1; d < n_dims && size; d++) {
        if (size > UINT64_MAX / (uint64_t)ne[d]) return 0;
        size *= (uint64_t)ne[d];
    }
    return size;
}

/* ---- parsing ---- */
typedef struct {
    const uint8_t *b;
    size_t len, pos;
    const char *file;
    char where[200]; /* "key 17 'general.name'", for messages */
    char *err;
    size_t errlen;
} kq_rd;

static int kq_fail(kq_rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int kq_fail(kq_rd *r, const char *fmt, ...) {
    if (r->err && r->errlen) {
        const int n = snprintf(r->err, r->errlen, "%s: ", r->file);
        if (n >= 0 && (size_t)n < r->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static uint64_t kq_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int kq_need(kq_rd *r, uint64_t n) {
    if (n > r->len - r->pos)
        return kq_fail(r, "truncated in %s (%llu bytes needed at byte %zu, the file has %zu)", r->where,
                       (unsigned long long)n, r->pos, r->len);
    return 0;
}

static int kq_rd_u32(kq_rd *r, uint32_t *v) {
    if (kq_need(r, 4)) return -1;
    *v = (uint32_t)kq_le(r->b + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int kq_rd_u64(kq_rd *r, uint64_t *v) {
    if (kq_need(r, 8)) return -1;
    *v = kq_le(r->b + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* A string: its bytes stay in the buffer; *p points at them. */
static int kq_rd_str(kq_rd *r, const uint8_t **p, uint64_t *n) {
    if (kq_rd_u64(r, n)) return -1;
    if (*n > r->len - r->pos)
        return kq_fail(r, "truncated in %s: string length %llu at byte %zu runs beyond the end of the file (%zu bytes)",
                       r->where, (unsigned long long)*n, r->pos - 8, r->len);
    *p = r->b + r->pos;
    r->pos += (size_t)*n;
    return 0;
}

static char *kq_strdup_n(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* Printable form of a name for messages: non-printable bytes as '?', at most 64 bytes. */
static void kq_printable(char *dst, size_t cap, const uint8_t *p, size_t n) {
    size_t j = 0;
    for (size_t i = 0; i < n && j + 4 < cap; i++) dst[j++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    if (j + 4 >= cap && n > j) {
        dst[j++] = '.';
        dst[j++] = '.';
        dst[j++] = '.';
    }
    dst[j] = 0;
}

/* ---- hash tables of keys and tensor names ---- */
static uint64_t kq_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int kq_hash_alloc(int64_t **tab, size_t *cap, int64_t n) {
    size_t c = 16;
    while (c < (size_t)n * 2) c *= 2;
    *tab = malloc(c * sizeof(**tab));
    if (!*tab) return -1;
    for (size_t i = 0; i < c; i++) (*tab)[i] = -1;
    *cap = c;
    return 0;
}

/* names(i) gives the string of entry i. Returns the index found, or -1 (then inserts idx if >= 0). */
typedef const char *(*kq_name_fn)(const kq_gguf *g, int64_t i);
static int64_t kq_hash_find(const kq_gguf *g, const int64_t *tab, size_t cap, kq_name_fn names, const char *s,
                            int64_t insert) {
    size_t h = (size_t)kq_hash(s) & (cap - 1);
    for (;;) {
        const int64_t e = tab[h];
        if (e < 0) {
            if (insert >= 0) ((int64_t *)tab)[h] = insert;
            return -1;
        }
        if (!strcmp(names(g, e), s)) return e;
        h = (h + 1) & (cap - 1);
    }
}

static const char *kq_kv_name(const kq_gguf *g, int64_t i) { return g->kv[i].key; }
static const char *kq_t_name(const kq_gguf *g, int64_t i) { return g->t[i].name; }

/* ---- metadata ---- */
static int kq_rd_value(kq_rd *r, kq_gguf *g, kq_rkv *kv) {
    if (kv->type >= KQ_GGUF_VTYPE_COUNT) return kq_fail(r, "unknown value type %u in %s", kv->type, r->where);
    kv->pos = r->pos;
    if (kv->type == KQ_GGUF_STR) {
        const uint8_t *p;
        uint64_t n;
        return kq_rd_str(r, &p, &n);
    }
    if (kv->type != KQ_GGUF_ARR) {
        const size_t n = kq_gguf_vtype_size((int)kv->type);
        if (kq_need(r, n)) return -1;
        if (kv->type == KQ_GGUF_BOOL && r->b[r->pos] > 1)
            return kq_fail(r, "bool value %u (not 0 or 1) in %s", r->b[r->pos], r->where);
        r->pos += n;
        return 0;
    }
    if (kq_rd_u32(r, &kv->arr_type) || kq_rd_u64(r, &kv->count)) return -1;
    if (kv->arr_type == KQ_GGUF_ARR) return kq_fail(r, "nested arrays are not supported (%s)", r->where);
    if (kv->arr_type >= KQ_GGUF_VTYPE_COUNT)
        return kq_fail(r, "unknown array element type %u in %s", kv->arr_type, r->where);
    kv->pos = r->pos;
    const size_t es = kq_gguf_vtype_size((int)kv->arr_type);
    const uint64_t left = r->len - r->pos;
    /* each element takes at least es bytes (a string at least its 8-byte length) */
    if (kv->count > left / (es ? es : 8))
        return kq_fail(r, "array count %llu in %s is absurd: %llu bytes are left in the file",
                       (unsigned long long)kv->count, r->where, (unsigned long long)left);
    if (es) {
        if (kv->arr_type == KQ_GGUF_BOOL)
            for (uint64_t i = 0; i < kv->count; i++)
                if (r->b[r->pos + i] > 1)
                    return kq_fail(r, "bool element %llu is %u (not 0 or 1) in %s", (unsigned long long)i,
                                   r->b[r->pos + i], r->where);
        r->pos += (size_t)(kv->count * es);
        return 0;
    }
    kv->str_pos = malloc((size_t)(kv->count ? kv->count : 1) * sizeof(uint64_t));
    if (!kv->str_pos) return kq_fail(r, "out of memory for %llu strings in %s", (unsigned long long)kv->count, r->where);
    for (uint64_t i = 0; i < kv->count; i++) {
        const uint8_t *p;
        uint64_t n;
        kv->str_pos[i] = r->pos;
        if (kq_rd_str(r, &p, &n)) return -1;
    }
    (void)g;
    return 0;
}

static int kq_rd_kvs(kq_rd *r, kq_gguf *g) {
    if (kq_hash_alloc(&g->kv_hash, &g->kv_hash_cap, g->n_kv)) return kq_fail(r, "out of memory");
    for (int64_t i = 0; i < g->n_kv; i++) {
        kq_rkv *kv = &g->kv[i];
        snprintf(r->where, sizeof(r->where), "key %lld", (long long)i);
        const uint8_t *p;
        uint64_t n;
        if (kq_rd_str(r, &p, &n)) return -1;
        if (n == 0) return kq_fail(r, "key %lld is empty", (long long)i);
        if (n > KQ_GGUF_MAX_KEY)
            return kq_fail(r, "key %lld is %llu bytes long (at most %d)", (long long)i, (unsigned long long)n,
                           KQ_GGUF_MAX_KEY);
        char pk[80];
        kq_printable(pk, sizeof(pk), p, (size_t)n);
        for (uint64_t j = 0; j < n; j++)
            if (p[j] == 0 || p[j] >= 0x80)
                return kq_fail(r, "key %lld '%s' is not ASCII without NUL (byte %llu is 0x%02x)", (long long)i, pk,
                               (unsigned long long)j, p[j]);
        kv->key = kq_strdup_n(p, (size_t)n);
        if (!kv->key) return kq_fail(r, "out of memory");
        snprintf(r->where, sizeof(r->where), "key %lld '%s'", (long long)i, pk);
        if (kq_hash_find(g, g->kv_hash, g->kv_hash_cap, kq_kv_name, kv->key, i) >= 0)
            return kq_fail(r, "duplicate key '%s' (key %lld)", pk, (long long)i);
        if (kq_rd_u32(r, &kv->type) || kq_rd_value(r, g, kv)) return -1;
    }
    return 0;
}

static int kq_rd_alignment(kq_rd *r, kq_gguf *g) {
    g->alignment = KQ_GGUF_DEFAULT_ALIGNMENT;
    const int64_t i = kq_gguf_find_key(g, "general.alignment");
    if (i < 0) return 0;
    if (g->kv[i].type != KQ_GGUF_U32)
        return kq_fail(r, "general.alignment is %s, not u32", kq_gguf_vtype_name((int)g->kv[i].type));
    const uint32_t a = (uint32_t)kq_le(g->buf + g->kv[i].pos, 4);
    if (a == 0 || (a & (a - 1))) return kq_fail(r, "general.alignment %u is not a power of two", a);
    g->alignment = a;
    return 0;
}

/* ---- tensors ---- */
static int kq_rd_tensor(kq_rd *r, kq_gguf *g, int64_t i) {
    kq_gguf_tensor *t = &g->t[i];
    snprintf(r->where, sizeof(r->where), "tensor info %lld", (long long)i);
    const uint8_t *p;
    uint64_t n;
    if (kq_rd_str(r, &p, &n)) return -1;
    char pn[80];
    kq_printable(pn, sizeof(pn), p, (size_t)n);
    if (n == 0 || n > 64)
        return kq_fail(r, "tensor %lld name '%s' is %llu bytes (1..64 allowed)", (long long)i, pn, (unsigned long long)n);
    if (memchr(p, 0, (size_t)n)) return kq_fail(r, "tensor %lld name '%s' holds a NUL byte", (long long)i, pn);
    char *name = kq_strdup_n(p, (size_t)n);
    if (!name) return kq_fail(r, "out of memory");
    t->name = name;
    snprintf(r->where, sizeof(r->where), "tensor info %lld '%s'", (long long)i, pn);
    if (kq_hash_find(g, g->t_hash, g->t_hash_cap, kq_t_name, name, i) >= 0)
        return kq_fail(r, "duplicate tensor name '%s'", pn);
    uint32_t nd;
    if (kq_rd_u32(r, &nd)) return -1;
    if (nd > KQ_GGUF_MAX_DIMS) return kq_fail(r, "tensor '%s' has %u dimensions (at most %d)", pn, nd, KQ_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t nel = 1;
    for (int d = 0; d < KQ_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < (int)nd && kq_rd_u64(r, &ne)) return -1;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return kq_fail(r, "tensor '%s' dimension %d is %llu", pn, d, (unsigned long long)ne);
        if (nel > (uint64_t)INT64_MAX / ne)
            return kq_fail(r, "tensor '%s': the product of its dimensions overflows", pn);
        nel *= ne;
        t->ne[d] = (int64_t)ne;
    }
    t->n_elements = (int64_t)nel;
    uint32_t type;
    uint64_t off;
    if (kq_rd_u32(r, &type) || kq_rd_u64(r, &off)) return -1;
    const char *tn = kq_gguf_type_name(type);
    if (!tn) return kq_fail(r, "tensor '%s' has unknown type id %u", pn, type);
    t->type = (kq_type)type;
    t->offset = off;
    t->size = kq_gguf_tensor_bytes(type, KQ_GGUF_MAX_DIMS, t->ne);
    if (!t->size) {
        if (!kq_row_valid(type, (uint64_t)t->ne[0]))
            return kq_fail(r, "tensor '%s': a row of %lld elements is not valid for type %s", pn, (long long)t->ne[0], tn);
        return kq_fail(r, "tensor '%s': its byte size overflows", pn);
    }
    return 0;
}

typedef struct {
    uint64_t off;
    int64_t i;
} kq_off_idx;

static int kq_cmp_off(const void *a, const void *b) {
    const uint64_t x = ((const kq_off_idx *)a)->off, y = ((const kq_off_idx *)b)->off;
    return x < y ? -1 : x > y;
}

static int kq_check_data(kq_rd *r, kq_gguf *g) {
    for (int64_t i = 0; i < g->n_t; i++) {
        const kq_gguf_tensor *t = &g->t[i];
        if (t->offset % g->alignment)
            return kq_fail(r, "tensor '%s' offset %llu is not a multiple of the alignment %u", t->name,
                           (unsigned long long)t->offset, g->alignment);
        const uint64_t a = g->data_offset + t->offset; /* both < 2^64 / 2: cannot wrap */
        if (t->offset > UINT64_MAX / 2 || t->size > UINT64_MAX / 4 || a > r->len || t->size > r->len - a) {
            /* the range as numbers that do not wrap (saturated at 2^64 - 1) */
            const uint64_t lo = t->offset > UINT64_MAX - g->data_offset ? UINT64_MAX : g->data_offset + t->offset;
            const uint64_t hi = t->size > UINT64_MAX - lo ? UINT64_MAX : lo + t->size;
            return kq_fail(r, "tensor '%s' data [%llu, %llu) outside the file (%zu bytes)", t->name,
                           (unsigned long long)lo, (unsigned long long)hi, r->len);
        }
        g->t[i].data = g->buf + a;
    }
    if (g->n_t < 2) return 0;
    kq_off_idx *idx = malloc((size_t)g->n_t * sizeof(*idx));
    if (!idx) return kq_fail(r, "out of memory");
    for (int64_t i = 0; i < g->n_t; i++) idx[i] = (kq_off_idx){g->t[i].offset, i};
    qsort(idx, (size_t)g->n_t, sizeof(*idx), kq_cmp_off);
    int rc = 0;
    for (int64_t k = 1; k < g->n_t && !rc; k++) {
        const kq_gguf_tensor *a = &g->t[idx[k - 1].i], *b = &g->t[idx[k].i];
        if (a->offset + a->size > b->offset)
            rc = kq_fail(r, "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap", a->name,
                         (unsigned long long)a->offset, (unsigned long long)(a->offset + a->size), b->name,
                         (unsigned long long)b->offset, (unsigned long long)(b->offset + b->size));
    }
    free(idx);
    return rc;
}

static int kq_rd_header(kq_rd *r, kq_gguf *g, uint64_t *n_t, uint64_t *n_kv) {
    snprintf(r->where, sizeof(r->where), "the header");
    if (r->len < 4) return kq_fail(r, "not a GGUF file (%zu bytes)", r->len);
    if (memcmp(r->b, "GGUF", 4)) {
        return kq_fail(r, "not a GGUF file (magic %02x %02x %02x %02x, expected 'GGUF')", r->b[0], r->b[1], r->b[2],
                       r->b[3]);
    }
    r->pos = 4;
    if (kq_rd_u32(r, &g->version)) return -1;
    if (g->version != KQ_GGUF_VERSION) {
        if (g->version && !(g->version & 0xffff))
            return kq_fail(r, "big-endian GGUF files are not supported (version field %08x)", g->version);
        return kq_fail(r, "GGUF version %u is not supported (only version %d)", g->version, KQ_GGUF_VERSION);
    }
    if (kq_rd_u64(r, n_t) || kq_rd_u64(r, n_kv)) return -1;
    const uint64_t left = r->len - r->pos;
    /* smallest key: 8-byte length + 1 byte + type + a 1-byte value; smallest tensor info: 8-byte
     * length + 1 byte + n_dims + type + offset */
    if (*n_kv > KQ_GGUF_MAX_KV || *n_kv > left / 14)
        return kq_fail(r, "n_kv %llu is absurd (at most %d, and %llu bytes follow the header)",
                       (unsigned long long)*n_kv, KQ_GGUF_MAX_KV, (unsigned long long)left);
    if (*n_t > KQ_GGUF_MAX_TENSORS || *n_t > (left - *n_kv * 14) / 25)
        return kq_fail(r, "n_tensors %llu is absurd (at most %d, and %llu bytes follow the header)",
                       (unsigned long long)*n_t, KQ_GGUF_MAX_TENSORS, (unsigned long long)left);
    return 0;
}

static int kq_parse_named(const char *file, const uint8_t *buf, size_t len, kq_gguf *g, char *err, size_t errlen) {
    kq_rd r = {buf, len, 0, file, "", err, errlen};
    g->buf = buf;
    g->len = len;
    uint64_t n_t, n_kv;
    if (kq_rd_header(&r, g, &n_t, &n_kv)) return -1;
    g->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof(*g->kv));
    g->t = calloc((size_t)(n_t ? n_t : 1), sizeof(*g->t));
    if (!g->kv || !g->t) return kq_fail(&r, "out of memory");
    /* counts grow as entries are read, so close() frees exactly what was allocated */
    g->n_kv = (int64_t)n_kv;
    if (kq_rd_kvs(&r, g)) return -1;
    if (kq_rd_alignment(&r, g)) return -1;
    if (kq_hash_alloc(&g->t_hash, &g->t_hash_cap, (int64_t)n_t)) return kq_fail(&r, "out of memory");
    for (uint64_t i = 0; i < n_t; i++) {
        g->n_t = (int64_t)i + 1;
        if (kq_rd_tensor(&r, g, (int64_t)i)) return -1;
    }
    g->header_end = r.pos;
    g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
    return kq_check_data(&r, g);
}

static void kq_free_parts(kq_gguf *g) {
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].str_pos);
        }
    if (g->t)
        for (int64_t i = 0; i < g->n_t; i++) free((char *)g->t[i].name);
    free(g->kv);
    free(g->t);
    free(g->kv_hash);
    free(g->t_hash);
    free(g->path);
}

void kq_gguf_close(kq_gguf *g) {
    if (!g) return;
    kq_free_parts(g);
    if (g->map) munmap(g->map, g->map_len);
    free(g);
}

static int kq_parse_into(const char *file, const uint8_t *buf, size_t len, kq_gguf **out, void *map, char *err,
                         size_t errlen) {
    *out = NULL;
    kq_gguf *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "%s: out of memory", file);
        if (map) munmap(map, len);
        return -1;
    }
    g->map = map;
    g->map_len = len;
    g->path = kq_strdup_n((const uint8_t *)file, strlen(file));
    if (!g->path || kq_parse_named(file, buf, len, g, err, errlen)) {
        if (!g->path) snprintf(err, errlen, "%s: out of memory", file);
        kq_gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

int kq_gguf_parse(const uint8_t *buf, size_t len, kq_gguf **out, char *err, size_t errlen) {
    static const uint8_t empty[1];
    return kq_parse_into("<memory>", buf ? buf : empty, buf ? len : 0, out, NULL, err, errlen);
}

int kq_gguf_open(const char *path, kq_gguf **out, char *err, size_t errlen) {
    *out = NULL;
    const int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        close(fd);
        static const uint8_t empty[1];
        return kq_parse_into(path, empty, 0, out, NULL, err, errlen);
    }
    const size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        snprintf(err, errlen, "%s: cannot map: %s", path, strerror(errno));
        return -1;
    }
    return kq_parse_into(path, map, len, out, map, err, errlen);
}

/* ---- accessors ---- */
uint32_t kq_gguf_version(const kq_gguf *g) { return g->version; }
uint32_t kq_gguf_alignment(const kq_gguf *g) { return g->alignment; }
uint64_t kq_gguf_header_end(const kq_gguf *g) { return g->header_end; }
uint64_t kq_gguf_data_offset(const kq_gguf *g) { return g->data_offset; }
uint64_t kq_gguf_file_size(const kq_gguf *g) { return g->len; }
const char *kq_gguf_path(const kq_gguf *g) { return g->path; }
int64_t kq_gguf_n_kv(const kq_gguf *g) { return g->n_kv; }
int64_t kq_gguf_n_tensors(const kq_gguf *g) { return g->n_t; }

int64_t kq_gguf_find_key(const kq_gguf *g, const char *key) {
    if (!key || !g->kv_hash) return -1;
    return kq_hash_find(g, g->kv_hash, g->kv_hash_cap, kq_kv_name, key, -1);
}

int64_t kq_gguf_find_tensor(const kq_gguf *g, const char *name) {
    if (!name || !g->t_hash) return -1;
    return kq_hash_find(g, g->t_hash, g->t_hash_cap, kq_t_name, name, -1);
}

const kq_gguf_tensor *kq_gguf_tensor_at(const kq_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_t ? &g->t[i] : NULL;
}

static const kq_rkv *kq_kv_at(const kq_gguf *g, int64_t i) { return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL; }

const char *kq_gguf_key(const kq_gguf *g, int64_t i) {
    const kq_rkv *kv = kq_kv_at(g, i);
    return kv ? kv->key : NULL;
}

int kq_gguf_kv_type(const kq_gguf *g, int64_t i) {
    const kq_rkv *kv = kq_kv_at(g, i);
    return kv ? (int)kv->type : -1;
}

int kq_gguf_arr_type(const kq_gguf *g, int64_t i) {
    const kq_rkv *kv = kq_kv_at(g, i);
    return kv && kv->type == KQ_GGUF_ARR ? (int)kv->arr_type : -1;
}

uint64_t kq_gguf_arr_count(const kq_gguf *g, int64_t i) {
    const kq_rkv *kv = kq_kv_at(g, i);
    return kv && kv->type == KQ_GGUF_ARR ? kv->count : 0;
}

const void *kq_gguf_arr_data(const kq_gguf *g, int64_t i) {
    const kq_rkv *kv = kq_kv_at(g, i);
    if (!kv || kv->type != KQ_GGUF_ARR || kv->arr_type == KQ_GGUF_STR) return NULL;
    return g->buf + kv->pos;
}

/* Decodes the value of type t at position pos (already validated). */
static void kq_decode(const kq_gguf *g, int t, size_t pos, kq_gguf_value *v) {
    memset(v, 0, sizeof(*v));
    v->type = t;
    const uint8_t *p = g->buf + pos;
    const int n = (int)kq_gguf_vtype_size(t);
    const uint64_t raw = n ? kq_le(p, n) : 0;
    switch (t) {
    case KQ_GGUF_U8: case KQ_GGUF_U16: case KQ_GGUF_U32: case KQ_GGUF_U64: case KQ_GGUF_BOOL:
        v->u = raw;
        v->i = raw <= (uint64_t)INT64_MAX ? (int64_t)raw : 0;
        break;
    case KQ_GGUF_I8: v->i = (int8_t)raw; break;
    case KQ_GGUF_I16: v->i = (int16_t)raw; break;
    case KQ_GGUF_I32: v->i = (int32_t)raw; break;
    case KQ_GGUF_I64: memcpy(&v->i, &raw, 8); break;
    case KQ_GGUF_F32: {
        const uint32_t b = (uint32_t)raw;
        float f;
        memcpy(&f, &b, 4);
        v->f = f;
        break;
    }
    case KQ_GGUF_F64: memcpy(&v->f, &raw, 8); break;
    case KQ_GGUF_STR:
        v->len = (size_t)kq_le(p, 8);
        v->s = (const char *)p + 8;
        break;
    default: break;
    }
    if (t == KQ_GGUF_I8 || t == KQ_GGUF_I16 || t == KQ_GGUF_I32 || t == KQ_GGUF_I64) v->u = v->i >= 0 ? (uint64_t)v->i : 0;
}

int kq_gguf_kv_value(const kq_gguf *g, int64_t i, kq_gguf_value *v) {
    const kq_rkv *kv = kq_kv_at(g, i);
    if (!kv || kv->type == KQ_GGUF_ARR) return -1;
    kq_decode(g, (int)kv->type, kv->pos, v);
    return 0;
}

int kq_gguf_arr_elem(const kq_gguf *g, int64_t i, uint64_t j, kq_gguf_value *v) {
    const kq_rkv *kv = kq_kv_at(g, i);
    if (!kv || kv->type != KQ_GGUF_ARR || j >= kv->count) return -1;
    if (kv->arr_type == KQ_GGUF_STR) kq_decode(g, KQ_GGUF_STR, (size_t)kv->str_pos[j], v);
    else kq_decode(g, (int)kv->arr_type, kv->pos + (size_t)j * kq_gguf_vtype_size((int)kv->arr_type), v);
    return 0;
}

int kq_gguf_arr_str(const kq_gguf *g, int64_t i, uint64_t j, const char **s, size_t *len) {
    const kq_rkv *kv = kq_kv_at(g, i);
    if (!kv || kv->type != KQ_GGUF_ARR || kv->arr_type != KQ_GGUF_STR || j >= kv->count) return -1;
    const uint8_t *p = g->buf + kv->str_pos[j];
    *len = (size_t)kq_le(p, 8);
    *s = (const char *)p + 8;
    return 0;
}

/* ---- typed getters ---- */
static int kq_get_fail(const kq_gguf *g, int rc, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int kq_get_fail(const kq_gguf *g, int rc, const char *key, const char *fmt, ...) {
    char *b = ((kq_gguf *)g)->last_error; /* the one mutable field: see gguf.h */
    const size_t cap = sizeof(g->last_error);
    const int n = snprintf(b, cap, "%s: key '%s' ", g->path, key ? key : "(null)");
    if (n >= 0 && (size_t)n < cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b + n, cap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

const char *kq_gguf_last_error(const kq_gguf *g) { return g->last_error; }

static int kq_is_int(int t) {
    return t == KQ_GGUF_U8 || t == KQ_GGUF_I8 || t == KQ_GGUF_U16 || t == KQ_GGUF_I16 || t == KQ_GGUF_U32 ||
           t == KQ_GGUF_I32 || t == KQ_GGUF_U64 || t == KQ_GGUF_I64;
}

static int kq_is_signed(int t) { return t == KQ_GGUF_I8 || t == KQ_GGUF_I16 || t == KQ_GGUF_I32 || t == KQ_GGUF_I64; }

/* An integer value as (negative?, magnitude-compatible u64/i64). */
static int kq_get_int(const kq_gguf *g, const char *key, kq_gguf_value *v) {
    const int64_t i = kq_gguf_find_key(g, key);
    if (i < 0) return kq_get_fail(g, -1, key, "is missing");
    const int t = (int)g->kv[i].type;
    if (!kq_is_int(t)) return kq_get_fail(g, -2, key, "is %s, not an integer", kq_gguf_vtype_name(t));
    kq_decode(g, t, g->kv[i].pos, v);
    return 0;
}

int kq_gguf_get_u64(const kq_gguf *g, const char *key, uint64_t *out) {
    kq_gguf_value v;
    const int rc = kq_get_int(g, key, &v);
    if (rc) return rc;
    if (kq_is_signed(v.type) && v.i < 0) return kq_get_fail(g, -2, key, "is %lld, negative", (long long)v.i);
    *out = v.u;
    return 0;
}

int kq_gguf_get_u32(const kq_gguf *g, const char *key, uint32_t *out) {
    uint64_t u;
    const int rc = kq_gguf_get_u64(g, key, &u);
    if (rc) return rc;
    if (u > UINT32_MAX) return kq_get_fail(g, -2, key, "is %llu, beyond u32", (unsigned long long)u);
    *out = (uint32_t)u;
    return 0;
}

int kq_gguf_get_i64(const kq_gguf *g, const char *key, int64_t *out) {
    kq_gguf_value v;
    const int rc = kq_get_int(g, key, &v);
    if (rc) return rc;
    if (!kq_is_signed(v.type) && v.u > (uint64_t)INT64_MAX)
        return kq_get_fail(g, -2, key, "is %llu, beyond i64", (unsigned long long)v.u);
    *out = v.i;
    return 0;
}

int kq_gguf_get_f32(const kq_gguf *g, const char *key, float *out) {
    const int64_t i = kq_gguf_find_key(g, key);
    if (i < 0) return kq_get_fail(g, -1, key, "is missing");
    const int t = (int)g->kv[i].type;
    if (t != KQ_GGUF_F32 && t != KQ_GGUF_F64) return kq_get_fail(g, -2, key, "is %s, not f32 or f64", kq_gguf_vtype_name(t));
    kq_gguf_value v;
    kq_decode(g, t, g->kv[i].pos, &v);
    if (t == KQ_GGUF_F64 && isfinite(v.f) && fabs(v.f) > 3.4028234663852886e38)
        return kq_get_fail(g, -2, key, "is %g, beyond f32", v.f);
    *out = (float)v.f;
    return 0;
}

int kq_gguf_get_bool(const kq_gguf *g, const char *key, int *out) {
    const int64_t i = kq_gguf_find_key(g, key);
    if (i < 0) return kq_get_fail(g, -1, key, "is missing");
    const int t = (int)g->kv[i].type;
    if (t != KQ_GGUF_BOOL) return kq_get_fail(g, -2, key, "is %s, not bool", kq_gguf_vtype_name(t));
    *out = g->buf[g->kv[i].pos];
    return 0;
}

int kq_gguf_get_str(const kq_gguf *g, const char *key, const char **s, size_t *len) {
    const int64_t i = kq_gguf_find_key(g, key);
    if (i < 0) return kq_get_fail(g, -1, key, "is missing");
    const int t = (int)g->kv[i].type;
    if (t != KQ_GGUF_STR) return kq_get_fail(g, -2, key, "is %s, not string", kq_gguf_vtype_name(t));
    kq_gguf_value v;
    kq_decode(g, t, g->kv[i].pos, &v);
    *s = v.s;
    *len = v.len;
    return 0;
}
