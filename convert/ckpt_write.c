/* kq: checkpoint writers for fixtures and tests: safetensors, torch.save zip, shard index.
 * Output goes to PATH.tmp, renamed into place only when complete. */
#include "ckpt.h"
#include "pickle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
    FILE *fp;
    char *tmp;
    const char *path;
    uint64_t off;
    int bad;
} wfile;

static int wf_open(wfile *w, const char *path, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    w->path = path;
    w->tmp = malloc(strlen(path) + 5);
    if (!w->tmp) return kq_ckpt_fail(err, errlen, "%s: out of memory", path);
    sprintf(w->tmp, "%s.tmp", path);
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) {
        kq_ckpt_fail(err, errlen, "%s: cannot create: %s", w->tmp, strerror(errno));
        free(w->tmp);
        return -1;
    }
    return 0;
}

static void wf_put(wfile *w, const void *p, size_t n) {
    if (w->bad || !n) return;
    if (fwrite(p, 1, n, w->fp) != n) w->bad = 1;
    w->off += n;
}

static void wf_le(wfile *w, uint64_t v, int n) {
    uint8_t b[8];
    for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
    wf_put(w, b, (size_t)n);
}

static int wf_close(wfile *w, char *err, size_t errlen) {
    int bad = w->bad | (fflush(w->fp) != 0);
    bad |= fclose(w->fp) != 0;
    int rc = 0;
    if (bad) rc = kq_ckpt_fail(err, errlen, "%s: write failed", w->tmp);
    else if (rename(w->tmp, w->path)) rc = kq_ckpt_fail(err, errlen, "%s: rename failed: %s", w->path, strerror(errno));
    if (rc) remove(w->tmp);
    free(w->tmp);
    return rc;
}

static void wf_abort(wfile *w) {
    fclose(w->fp);
    remove(w->tmp);
    free(w->tmp);
}

/* JSON string body with the escapes RFC 8259 requires. */
static void put_json_str(wfile *w, const char *s) {
    wf_put(w, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (*p == '"' || *p == '\\') { e[0] = '\\'; e[1] = (char)*p; wf_put(w, e, 2); }
        else if (*p < 0x20) { snprintf(e, sizeof e, "\\u%04x", *p); wf_put(w, e, 6); }
        else wf_put(w, p, 1);
    }
    wf_put(w, "\"", 1);
}

static int tensor_bytes(const kq_wtensor *t, uint64_t *nb) {
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0) return -1;
        n *= (uint64_t)t->shape[d];
    }
    size_t el = kq_dtype_size(t->dtype);
    if (!el || t->ndim < 0 || t->ndim > KQ_SRC_MAX_DIMS) return -1;
    *nb = n * el;
    return 0;
}

/* ---- safetensors ------------------------------------------------------------------------------- */

/* The JSON header; its length is patched in front of it afterwards. */
static void st_header(wfile *w, const kq_wtensor *t, size_t n) {
    char num[64];
    uint64_t off = 0;
    static const char meta[] = "{\"__metadata__\":{\"format\":\"pt\"}";
    wf_put(w, meta, sizeof meta - 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t nb;
        tensor_bytes(&t[i], &nb);
        wf_put(w, ",", 1);
        put_json_str(w, t[i].name);
        snprintf(num, sizeof num, ":{\"dtype\":\"%s\",\"shape\":[", kq_dtype_str(t[i].dtype));
        wf_put(w, num, strlen(num));
        for (int d = 0; d < t[i].ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
            wf_put(w, num, strlen(num));
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + nb));
        wf_put(w, num, strlen(num));
        off += nb;
    }
    wf_put(w, "}", 1);
}

int kq_write_safetensors(const char *path, const kq_wtensor *t, size_t n, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        uint64_t nb;
        if (tensor_bytes(&t[i], &nb)) return kq_ckpt_fail(err, errlen, "%s: tensor %s: bad dtype or shape", path, t[i].name);
    }
    wfile w;
    if (wf_open(&w, path, err, errlen)) return -1;
    /* Measure the header by writing it at offset 8, then rewind and write the length before it. */
    wf_le(&w, 0, 8);
    st_header(&w, t, n);
    uint64_t hlen = w.off - 8;
    uint64_t pad = (8 - (8 + hlen) % 8) % 8; /* data starts 8-aligned, as the reference writer does */
    for (uint64_t i = 0; i < pad; i++) wf_put(&w, " ", 1);
    hlen += pad;
    for (size_t i = 0; i < n; i++) {
        uint64_t nb;
        tensor_bytes(&t[i], &nb);
        wf_put(&w, t[i].data, (size_t)nb);
    }
    if (!w.bad && fseek(w.fp, 0, SEEK_SET)) w.bad = 1;
    wf_le(&w, hlen, 8);
    return wf_close(&w, err, errlen);
}

/* ---- torch.save zip ---------------------------------------------------------------------------- */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_of(const void *p, size_t n) {
    if (!crc_table[1]) crc_init();
    uint32_t c = 0xffffffffu;
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ b[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

typedef struct {
    char *name;
    uint32_t crc;
    uint64_t size, lho;
} zrec;

/* One stored record. PyTorch aligns record data to 64 bytes with an extra field "FB" of filler. */
static int zip_record(wfile *w, zrec *r, const char *name, const void *data, uint64_t size, int zip64) {
    r->name = strdup(name);
    if (!r->name) return -1;
    r->crc = crc32_of(data, (size_t)size);
    r->size = size;
    r->lho = w->off;
    const size_t nl = strlen(name);
    const size_t z64 = zip64 ? 20 : 0; /* id, len, usize, csize */
    uint64_t start = w->off + 30 + nl + z64 + 4;
    uint64_t pad = (64 - start % 64) % 64;
    wf_le(w, 0x04034b50u, 4);
    wf_le(w, zip64 ? 45 : 20, 2);
    wf_le(w, 0, 2);              /* flags */
    wf_le(w, 0, 2);              /* stored */
    wf_le(w, 0, 2);              /* time 00:00 */
    wf_le(w, 0x21, 2);           /* date 1980-01-01: deterministic output */
    wf_le(w, r->crc, 4);
    wf_le(w, zip64 ? 0xffffffffu : size, 4);
    wf_le(w, zip64 ? 0xffffffffu : size, 4);
    wf_le(w, nl, 2);
    wf_le(w, z64 + 4 + pad, 2);
    wf_put(w, name, nl);
    if (zip64) {
        wf_le(w, 1, 2);
        wf_le(w, 16, 2);
        wf_le(w, size, 8);
        wf_le(w, size, 8);
    }
    wf_put(w, "FB", 2);
    wf_le(w, pad, 2);
    for (uint64_t i = 0; i < pad; i++) wf_put(w, "Z", 1);
    wf_put(w, data, (size_t)size);
    return 0;
}

static void zip_central(wfile *w, const zrec *r, size_t n, int zip64) {
    const uint64_t cd_off = w->off;
    for (size_t i = 0; i < n; i++) {
        const size_t nl = strlen(r[i].name);
        wf_le(w, 0x02014b50u, 4);
        wf_le(w, zip64 ? 45 : 20, 2); /* made by */
        wf_le(w, zip64 ? 45 : 20, 2); /* needed */
        wf_le(w, 0, 2);
        wf_le(w, 0, 2);
        wf_le(w, 0, 2);
        wf_le(w, 0x21, 2);
        wf_le(w, r[i].crc, 4);
        wf_le(w, zip64 ? 0xffffffffu : r[i].size, 4);
        wf_le(w, zip64 ? 0xffffffffu : r[i].size, 4);
        wf_le(w, nl, 2);
        wf_le(w, zip64 ? 28 : 0, 2);  /* extra */
        wf_le(w, 0, 2);               /* comment */
        wf_le(w, 0, 2);               /* disk */
        wf_le(w, 0, 2);               /* internal attributes */
        wf_le(w, 0, 4);               /* external attributes */
        wf_le(w, zip64 ? 0xffffffffu : r[i].lho, 4);
        wf_put(w, r[i].name, nl);
        if (zip64) {
            wf_le(w, 1, 2);
            wf_le(w, 24, 2);
            wf_le(w, r[i].size, 8);
            wf_le(w, r[i].size, 8);
            wf_le(w, r[i].lho, 8);
        }
    }
    const uint64_t cd_size = w->off - cd_off, z64_off = w->off;
    /* PyTorch's writer (miniz with MZ_ZIP_FLAG_WRITE_ZIP64) always ends with the ZIP64 record. */
    wf_le(w, 0x06064b50u, 4);
    wf_le(w, 44, 8);
    wf_le(w, 45, 2);
    wf_le(w, 45, 2);
    wf_le(w, 0, 4);
    wf_le(w, 0, 4);
    wf_le(w, n, 8);
    wf_le(w, n, 8);
    wf_le(w, cd_size, 8);
    wf_le(w, cd_off, 8);
    wf_le(w, 0x07064b50u, 4);
    wf_le(w, 0, 4);
    wf_le(w, z64_off, 8);
    wf_le(w, 1, 4);
    wf_le(w, 0x06054b50u, 4);
    wf_le(w, 0, 2);
    wf_le(w, 0, 2);
    wf_le(w, zip64 || n > 0xfffe ? 0xffff : n, 2);
    wf_le(w, zip64 || n > 0xfffe ? 0xffff : n, 2);
    wf_le(w, zip64 || cd_size >= 0xffffffffu ? 0xffffffffu : cd_size, 4);
    wf_le(w, zip64 || cd_off >= 0xffffffffu ? 0xffffffffu : cd_off, 4);
    wf_le(w, 0, 2);
}

/* The archive name PyTorch uses: the file's base name without its extension. */
static char *archive_name(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    return n ? strndup(b, n) : strdup("archive");
}

int kq_write_torch_zip(const char *path, const kq_wtensor *t, size_t n, int flags, char *err, size_t errlen) {
    const int zip64 = (flags & KQ_TW_ZIP64) != 0;
    kq_pkl_tensor *pt = calloc(n ? n : 1, sizeof *pt);
    char (*keys)[24] = calloc(n ? n : 1, sizeof *keys);
    zrec *rec = calloc(n + 3, sizeof *rec);
    char *arch = archive_name(path);
    char *rname = arch ? malloc(strlen(arch) + 40) : NULL;
    uint8_t *pkl = NULL;
    size_t pkl_len = 0, nrec = 0;
    int rc = 0;
    if (!pt || !keys || !rec || !rname) rc = kq_ckpt_fail(err, errlen, "%s: out of memory", path);
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t nb;
        if (tensor_bytes(&t[i], &nb)) { rc = kq_ckpt_fail(err, errlen, "%s: tensor %s: bad dtype or shape", path, t[i].name); break; }
        snprintf(keys[i], sizeof keys[i], "%zu", i);
        pt[i].name = (char *)t[i].name;
        pt[i].storage_key = keys[i];
        pt[i].dtype = t[i].dtype;
        pt[i].ndim = t[i].ndim;
        int64_t stride = 1;
        for (int d = t[i].ndim - 1; d >= 0; d--) {
            pt[i].shape[d] = t[i].shape[d];
            pt[i].stride[d] = stride;
            stride *= t[i].shape[d];
        }
        pt[i].storage_numel = (int64_t)(nb / kq_dtype_size(t[i].dtype));
    }
    if (!rc && kq_pickle_write_state_dict(pt, n, &pkl, &pkl_len)) rc = kq_ckpt_fail(err, errlen, "%s: cannot pickle the state_dict", path);
    wfile w;
    if (!rc && wf_open(&w, path, err, errlen)) rc = -1;
    else if (!rc) {
        sprintf(rname, "%s/data.pkl", arch);
        rc |= zip_record(&w, &rec[nrec++], rname, pkl, pkl_len, zip64);
        sprintf(rname, "%s/byteorder", arch);
        rc |= zip_record(&w, &rec[nrec++], rname, "little", 6, zip64);
        for (size_t i = 0; i < n && !rc; i++) {
            uint64_t nb;
            tensor_bytes(&t[i], &nb);
            sprintf(rname, "%s/data/%zu", arch, i);
            rc |= zip_record(&w, &rec[nrec++], rname, t[i].data, nb, zip64);
        }
        sprintf(rname, "%s/version", arch);
        rc |= zip_record(&w, &rec[nrec++], rname, "3\n", 2, zip64);
        if (rc) { wf_abort(&w); rc = kq_ckpt_fail(err, errlen, "%s: out of memory", path); }
        else {
            zip_central(&w, rec, nrec, zip64);
            rc = wf_close(&w, err, errlen);
        }
    }
    for (size_t i = 0; rec && i < nrec; i++) free(rec[i].name);
    free(rec);
    free(pkl);
    free(pt);
    free(keys);
    free(arch);
    free(rname);
    return rc;
}

/* ---- index ------------------------------------------------------------------------------------- */

int kq_write_index_json(const char *path, const char *const *names, const char *const *files, size_t n,
                        uint64_t total_size, char *err, size_t errlen) {
    wfile w;
    if (wf_open(&w, path, err, errlen)) return -1;
    char num[80];
    snprintf(num, sizeof num, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {", (unsigned long long)total_size);
    wf_put(&w, num, strlen(num));
    for (size_t i = 0; i < n; i++) {
        wf_put(&w, i ? ",\n    " : "\n    ", i ? 6 : 5);
        put_json_str(&w, names[i]);
        wf_put(&w, ": ", 2);
        put_json_str(&w, files[i]);
    }
    wf_put(&w, "\n  }\n}\n", 7);
    return wf_close(&w, err, errlen);
}
