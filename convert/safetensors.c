/* kq: safetensors reader: u64 little-endian header length N, N bytes of JSON, then the data.
 * Every claim of the header is checked against the buffer before a tensor is handed out. */
#include "ckpt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if KQ_HAVE_CJSON
#include <cjson/cJSON.h>
#endif

/* Real headers are a few hundred KiB; the reference implementation refuses beyond 100 MB. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)

static int st_fail(char *err, size_t errlen, const char *file, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kq_ckpt_fail(err, errlen, "%s: safetensors: %s", file, msg);
}

/* safetensors dtype strings: the ones kq converts, the ones it lists, and their sizes. */
static const struct { const char *s; kq_dtype dt; size_t size; } st_dtypes[] = {
    {"F32", KQ_DT_F32, 4}, {"F16", KQ_DT_F16, 2}, {"BF16", KQ_DT_BF16, 2}, {"F64", KQ_DT_F64, 8},
    {"I64", KQ_DT_I64, 8}, {"I32", KQ_DT_I32, 4}, {"I16", KQ_DT_I16, 2}, {"I8", KQ_DT_I8, 1},
    {"U8", KQ_DT_U8, 1}, {"BOOL", KQ_DT_BOOL, 1},
    {"U16", KQ_DT_OTHER, 2}, {"U32", KQ_DT_OTHER, 4}, {"U64", KQ_DT_OTHER, 8},
    {"F8_E4M3", KQ_DT_OTHER, 1}, {"F8_E5M2", KQ_DT_OTHER, 1},
};

size_t kq_dtype_size(kq_dtype dt) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dt == dt && dt != KQ_DT_OTHER) return st_dtypes[i].size;
    return 0;
}

const char *kq_dtype_str(kq_dtype dt) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dt == dt && dt != KQ_DT_OTHER) return st_dtypes[i].s;
    return "OTHER";
}

void kq_src_list_free(kq_src_list *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) {
        free((char *)l->t[i].name);
        free((char *)l->t[i].dtype_name);
    }
    free(l->t);
    l->t = NULL;
    l->n = l->cap = 0;
}

int kq_src_list_add(kq_src_list *l, const kq_src_tensor *t) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 64;
        kq_src_tensor *q = realloc(l->t, nc * sizeof *q);
        if (!q) return -1;
        l->t = q;
        l->cap = nc;
    }
    char *name = strdup(t->name), *dn = strdup(t->dtype_name ? t->dtype_name : "");
    if (!name || !dn) { free(name); free(dn); return -1; }
    l->t[l->n] = *t;
    l->t[l->n].name = name;
    l->t[l->n].dtype_name = dn;
    l->n++;
    return 0;
}

#if KQ_HAVE_CJSON

/* Drops the tensors appended since n0 (a failed parse leaves the list as it found it). */
static void list_truncate(kq_src_list *l, size_t n0) {
    while (l->n > n0) {
        l->n--;
        free((char *)l->t[l->n].name);
        free((char *)l->t[l->n].dtype_name);
    }
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_u53(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0) || d >= 9007199254740992.0 || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

typedef struct { uint64_t b, e; const char *name; } st_span;

static int cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e < y->e ? -1 : x->e > y->e);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One entry of the header; fills *t and the span. */
static int parse_entry(const cJSON *e, const uint8_t *data, uint64_t datalen, const char *file,
                       kq_src_tensor *t, st_span *sp, char *err, size_t errlen) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return st_fail(err, errlen, file, "tensor %s: entry is not an object", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return st_fail(err, errlen, file, "tensor %s: missing or non-string dtype", name);
    if (!cJSON_IsArray(shape)) return st_fail(err, errlen, file, "tensor %s: missing or non-array shape", name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return st_fail(err, errlen, file, "tensor %s: data_offsets is not [begin, end]", name);
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = KQ_DT_OTHER;
    t->dtype_name = dt->valuestring;
    size_t elsize = 0;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(dt->valuestring, st_dtypes[i].s)) { t->dtype = st_dtypes[i].dt; elsize = st_dtypes[i].size; }
    int nd = cJSON_GetArraySize(shape);
    if (nd > KQ_SRC_MAX_DIMS) return st_fail(err, errlen, file, "tensor %s: %d dims (max %d)", name, nd, KQ_SRC_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < nd; d++) {
        const cJSON *x = cJSON_GetArrayItem(shape, d);
        uint64_t v;
        if (cJSON_IsNumber(x) && x->valuedouble < 0)
            return st_fail(err, errlen, file, "tensor %s: negative dimension %g", name, x->valuedouble);
        if (!json_u53(x, &v)) return st_fail(err, errlen, file, "tensor %s: dimension %d is not a non-negative integer", name, d);
        t->shape[d] = (int64_t)v;
        if (v && numel > (uint64_t)INT64_MAX / v) overflow = 1;
        else numel *= v;
    }
    uint64_t b, en;
    if (!json_u53(cJSON_GetArrayItem(offs, 0), &b) || !json_u53(cJSON_GetArrayItem(offs, 1), &en))
        return st_fail(err, errlen, file, "tensor %s: data_offsets are not non-negative integers", name);
    if (b > en) return st_fail(err, errlen, file, "tensor %s: data_offsets begin %llu > end %llu", name, (unsigned long long)b, (unsigned long long)en);
    if (en > datalen)
        return st_fail(err, errlen, file, "tensor %s: data_offsets [%llu, %llu] out of range (data is %llu bytes)", name,
                       (unsigned long long)b, (unsigned long long)en, (unsigned long long)datalen);
    /* Overflow is judged left to right, so every prefix product (kq_src_rows) fits int64 too, even
     * where a later zero dim makes the tensor empty. */
    if (overflow || (elsize && numel > (uint64_t)SIZE_MAX / elsize) || (elsize && numel > (uint64_t)INT64_MAX / elsize))
        return st_fail(err, errlen, file, "tensor %s: shape product overflows", name);
    if (elsize && numel * elsize != en - b)
        return st_fail(err, errlen, file, "tensor %s: %llu bytes for %llu elements of %s (want %llu)", name,
                       (unsigned long long)(en - b), (unsigned long long)numel, dt->valuestring,
                       (unsigned long long)(numel * elsize));
    t->data = data + b;
    t->nbytes = (size_t)(en - b);
    t->file = file;
    sp->b = b;
    sp->e = en;
    sp->name = name;
    return 0;
}

/* Header-wide checks: no duplicate names, no two tensors sharing bytes. */
static int check_layout(st_span *sp, size_t n, const char *file, char *err, size_t errlen) {
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return st_fail(err, errlen, file, "out of memory");
    for (size_t i = 0; i < n; i++) names[i] = sp[i].name;
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(names[i - 1], names[i])) {
            st_fail(err, errlen, file, "duplicate tensor name %s", names[i]);
            free(names);
            return -1;
        }
    }
    free(names);
    qsort(sp, n, sizeof *sp, cmp_span);
    uint64_t end = 0;
    const char *last = NULL;
    for (size_t i = 0; i < n; i++) {
        if (sp[i].b == sp[i].e) continue; /* an empty tensor occupies nothing */
        if (last && sp[i].b < end)
            return st_fail(err, errlen, file, "tensors %s and %s overlap (data_offsets %llu < %llu)", last, sp[i].name,
                           (unsigned long long)sp[i].b, (unsigned long long)end);
        end = sp[i].e;
        last = sp[i].name;
    }
    return 0;
}

int kq_safetensors_parse(const uint8_t *buf, size_t len, const char *file, kq_src_list *out, char *err,
                         size_t errlen) {
    if (!file) file = "(memory)";
    if (len < 8) return st_fail(err, errlen, file, "truncated: %zu bytes, the header length alone needs 8", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER)
        return st_fail(err, errlen, file, "header length %llu is absurd (limit %u)", (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > len - 8)
        return st_fail(err, errlen, file, "truncated or header length lies: header of %llu bytes, file has %zu after the length",
                       (unsigned long long)hlen, len - 8);
    if (hlen < 2) return st_fail(err, errlen, file, "header of %llu bytes cannot hold a JSON object", (unsigned long long)hlen);
    const char *json = (const char *)buf + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - json) : 0;
        return st_fail(err, errlen, file, "header is not valid JSON (near byte %zu of %llu)", at, (unsigned long long)hlen);
    }
    /* The writer pads the header with spaces; anything else after the JSON is garbage. */
    for (const char *q = end; q && q < json + hlen; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != 0) {
            cJSON_Delete(root);
            return st_fail(err, errlen, file, "header has trailing bytes after the JSON object");
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return st_fail(err, errlen, file, "header is not a JSON object");
    }
    const uint8_t *data = buf + 8 + hlen;
    const uint64_t datalen = (uint64_t)(len - 8 - (size_t)hlen);
    size_t n = 0;
    for (const cJSON *e = root->child; e; e = e->next) n++;
    st_span *sp = malloc((n ? n : 1) * sizeof *sp);
    if (!sp) { cJSON_Delete(root); return st_fail(err, errlen, file, "out of memory"); }
    const size_t n0 = out->n;
    size_t ns = 0;
    int rc = 0;
    for (const cJSON *e = root->child; e && !rc; e = e->next) {
        if (!e->string) { rc = st_fail(err, errlen, file, "header entry without a name"); break; }
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) rc = st_fail(err, errlen, file, "__metadata__ is not an object");
            continue;
        }
        kq_src_tensor t;
        rc = parse_entry(e, data, datalen, file, &t, &sp[ns], err, errlen);
        if (!rc && kq_src_list_add(out, &t)) rc = st_fail(err, errlen, file, "out of memory");
        if (!rc) ns++;
    }
    /* sp[].name points into the JSON tree, so check before freeing it. */
    if (!rc) rc = check_layout(sp, ns, file, err, errlen);
    free(sp);
    cJSON_Delete(root);
    if (rc) list_truncate(out, n0);
    return rc;
}

#else

int kq_safetensors_parse(const uint8_t *buf, size_t len, const char *file, kq_src_list *out, char *err,
                         size_t errlen) {
    (void)buf; (void)len; (void)out;
    return st_fail(err, errlen, file ? file : "(memory)", "safetensors/pytorch readers need cJSON; not in this build");
}

#endif
