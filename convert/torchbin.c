/* kq: PyTorch .bin / .pt reader: the zip archive torch.save writes (PyTorch >= 1.6).
 *
 * Only what torch.save produces is accepted: stored (method 0) entries, ZIP64 where sizes or
 * offsets need it, one "<archive>/data.pkl" and its storages "<archive>/data/<key>". The central
 * directory is the authority for sizes (local headers of ZIP64 entries may hold placeholders); the
 * local header only tells where the data starts. No CRC check: that would read every byte of a
 * 10 GB shard at open time.
 */
#include "ckpt.h"
#include "pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP64_LOC_SIG 0x07064b50u
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP_CDH_SIG 0x02014b50u
#define ZIP_LFH_SIG 0x04034b50u

typedef struct {
    const uint8_t *name;
    size_t namelen;
    uint16_t method, flags;
    uint64_t csize, usize, lho;
} zentry;

static int z_fail(char *err, size_t errlen, const char *file, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kq_ckpt_fail(err, errlen, "%s: %s", file, msg);
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Finds the end-of-central-directory record (the last one, allowing a comment after it) and reads
 * the central directory's place and entry count, from the ZIP64 record when there is one. */
static int find_cd(const uint8_t *b, size_t len, const char *file, uint64_t *cd_off, uint64_t *cd_size,
                   uint64_t *count, char *err, size_t errlen) {
    if (len < 22) return z_fail(err, errlen, file, "truncated zip: %zu bytes", len);
    size_t lo = len - 22 > 65535 ? len - 22 - 65535 : 0;
    size_t eocd = SIZE_MAX;
    for (size_t i = len - 22 + 1; i-- > lo;) {
        if (le(b + i, 4) == ZIP_EOCD_SIG && i + 22 + le(b + i + 20, 2) <= len) { eocd = i; break; }
    }
    if (eocd == SIZE_MAX) return z_fail(err, errlen, file, "not a zip archive or truncated: no end of central directory");
    if (le(b + eocd + 4, 2) != 0 || le(b + eocd + 6, 2) != 0) return z_fail(err, errlen, file, "multi-disk zip archives are not supported");
    *count = le(b + eocd + 10, 2);
    *cd_size = le(b + eocd + 12, 4);
    *cd_off = le(b + eocd + 16, 4);
    if (eocd >= 20 && le(b + eocd - 20, 4) == ZIP64_LOC_SIG) {
        uint64_t r = le(b + eocd - 20 + 8, 8);
        if (r > len || len - r < 56 || le(b + r, 4) != ZIP64_EOCD_SIG)
            return z_fail(err, errlen, file, "ZIP64 end of central directory record missing or out of range");
        *count = le(b + r + 32, 8);
        *cd_size = le(b + r + 40, 8);
        *cd_off = le(b + r + 48, 8);
    } else if (*count == 0xffff || *cd_size == 0xffffffffu || *cd_off == 0xffffffffu) {
        return z_fail(err, errlen, file, "zip needs ZIP64 but has no ZIP64 locator (truncated?)");
    }
    if (*cd_off > len || *cd_size > len - *cd_off)
        return z_fail(err, errlen, file, "truncated zip: central directory at %llu+%llu beyond %zu bytes",
                      (unsigned long long)*cd_off, (unsigned long long)*cd_size, len);
    if (*count > *cd_size / 46) return z_fail(err, errlen, file, "zip claims %llu entries in a %llu-byte central directory",
                                              (unsigned long long)*count, (unsigned long long)*cd_size);
    return 0;
}

/* The ZIP64 extra field replaces, in this order, each of usize/csize/offset that reads 0xffffffff. */
static int zip64_extra(const uint8_t *x, size_t xlen, zentry *z) {
    size_t i = 0;
    while (i + 4 <= xlen) {
        uint16_t id = (uint16_t)le(x + i, 2), sz = (uint16_t)le(x + i + 2, 2);
        if (i + 4 + sz > xlen) return -1;
        if (id == 0x0001) {
            const uint8_t *f = x + i + 4;
            size_t k = 0;
            uint64_t *fields[3] = {&z->usize, &z->csize, &z->lho};
            for (int j = 0; j < 3; j++) {
                if (*fields[j] != 0xffffffffu) continue;
                if (k + 8 > sz) return -1;
                *fields[j] = le(f + k, 8);
                k += 8;
            }
            return 0;
        }
        i += 4 + (size_t)sz;
    }
    return 0;
}

static int read_cd(const uint8_t *b, size_t len, const char *file, zentry **out, size_t *nout, char *err,
                   size_t errlen) {
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    if (find_cd(b, len, file, &cd_off, &cd_size, &count, err, errlen)) return -1;
    zentry *z = calloc(count ? (size_t)count : 1, sizeof *z);
    if (!z) return z_fail(err, errlen, file, "out of memory");
    const uint8_t *p = b + cd_off, *end = b + cd_off + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || le(p, 4) != ZIP_CDH_SIG) { free(z); return z_fail(err, errlen, file, "corrupt zip: central directory entry %llu", (unsigned long long)i); }
        size_t nl = le(p + 28, 2), xl = le(p + 30, 2), cl = le(p + 32, 2);
        if ((size_t)(end - p) - 46 < nl + xl + cl) { free(z); return z_fail(err, errlen, file, "corrupt zip: central directory entry %llu overruns", (unsigned long long)i); }
        z[i].flags = (uint16_t)le(p + 8, 2);
        z[i].method = (uint16_t)le(p + 10, 2);
        z[i].csize = le(p + 20, 4);
        z[i].usize = le(p + 24, 4);
        z[i].lho = le(p + 42, 4);
        z[i].name = p + 46;
        z[i].namelen = nl;
        if (zip64_extra(p + 46 + nl, xl, &z[i])) { free(z); return z_fail(err, errlen, file, "corrupt zip: bad ZIP64 extra field in entry %llu", (unsigned long long)i); }
        p += 46 + nl + xl + cl;
    }
    *out = z;
    *nout = (size_t)count;
    return 0;
}

/* The bytes of one stored entry, through its local header. */
static int entry_data(const uint8_t *b, size_t len, const char *file, const zentry *z, const uint8_t **data,
                      char *err, size_t errlen) {
    char nm[160];
    snprintf(nm, sizeof nm, "%.*s", (int)(z->namelen < 120 ? z->namelen : 120), (const char *)z->name);
    for (char *c = nm; *c; c++) if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?';
    if (z->method != 0)
        return z_fail(err, errlen, file, "zip entry %s is compressed (method %u); only stored entries are supported (no zlib)", nm, z->method);
    if (z->flags & 1) return z_fail(err, errlen, file, "zip entry %s is encrypted", nm);
    if (z->csize != z->usize) return z_fail(err, errlen, file, "zip entry %s: stored sizes differ (%llu vs %llu)", nm,
                                            (unsigned long long)z->csize, (unsigned long long)z->usize);
    if (z->lho > len || len - z->lho < 30 || le(b + z->lho, 4) != ZIP_LFH_SIG)
        return z_fail(err, errlen, file, "truncated or corrupt zip: local header of %s", nm);
    uint64_t start = z->lho + 30 + le(b + z->lho + 26, 2) + le(b + z->lho + 28, 2);
    if (start > len || z->usize > len - start)
        return z_fail(err, errlen, file, "truncated zip: entry %s needs %llu bytes at %llu, file has %zu", nm,
                      (unsigned long long)z->usize, (unsigned long long)start, len);
    *data = b + start;
    return 0;
}

static int cmp_entry(const void *a, const void *b) {
    const zentry *x = a, *y = b;
    size_t n = x->namelen < y->namelen ? x->namelen : y->namelen;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->namelen > y->namelen) - (x->namelen < y->namelen);
}

static const zentry *lookup(const zentry *z, size_t n, const char *prefix, size_t plen, const char *key) {
    char nm[600];
    int k = snprintf(nm, sizeof nm, "%.*sdata/%s", (int)plen, prefix, key);
    if (k < 0 || (size_t)k >= sizeof nm) return NULL;
    zentry probe;
    memset(&probe, 0, sizeof probe);
    probe.name = (const uint8_t *)nm;
    probe.namelen = (size_t)k;
    return bsearch(&probe, z, n, sizeof *z, cmp_entry);
}

static int resolve(const uint8_t *b, size_t len, const char *file, const zentry *z, size_t nz, const char *prefix,
                   size_t plen, const kq_pkl_result *pr, kq_src_list *out, char *err, size_t errlen) {
    for (size_t i = 0; i < pr->n; i++) {
        const kq_pkl_tensor *pt = &pr->t[i];
        const zentry *e = lookup(z, nz, prefix, plen, pt->storage_key);
        if (!e) return z_fail(err, errlen, file, "storage %.*sdata/%s of tensor %s is missing from the archive", (int)plen, prefix,
                              pt->storage_key, pt->name);
        const uint8_t *data;
        if (entry_data(b, len, file, e, &data, err, errlen)) return -1;
        kq_src_tensor t;
        memset(&t, 0, sizeof t);
        t.name = pt->name;
        t.dtype = pt->dtype;
        t.dtype_name = pt->dtype_name;
        t.ndim = pt->ndim;
        uint64_t numel = 1;
        for (int d = 0; d < pt->ndim; d++) {
            t.shape[d] = pt->shape[d];
            numel *= (uint64_t)pt->shape[d]; /* bounded by the pickle reader */
        }
        const uint64_t el = kq_dtype_size(pt->dtype);
        if (!el) return z_fail(err, errlen, file, "tensor %s: storage type %s has no element size", pt->name, pt->dtype_name);
        /* storage_offset may be near INT64_MAX (the pickle only bounds it by its own numel claim). */
        const uint64_t off = (uint64_t)pt->storage_offset <= e->usize / el ? (uint64_t)pt->storage_offset * el : UINT64_MAX;
        const uint64_t nb = numel * el;
        if (numel && (off > e->usize || nb > e->usize - off))
            return z_fail(err, errlen, file, "tensor %s: %llu bytes at storage offset %llu exceed storage record of %llu bytes",
                          pt->name, (unsigned long long)nb, (unsigned long long)off, (unsigned long long)e->usize);
        t.data = numel ? data + off : data;
        t.nbytes = (size_t)nb;
        t.file = file;
        if (kq_src_list_add(out, &t)) return z_fail(err, errlen, file, "out of memory");
    }
    return 0;
}

int kq_torchzip_parse(const uint8_t *buf, size_t len, const char *file, kq_src_list *out, char *err,
                      size_t errlen) {
    if (!file) file = "(memory)";
    /* The legacy format starts with a pickled magic number: PROTO 2, LONG1 10 bytes 0x1950a86a20f9469cfc6c. */
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (len >= sizeof legacy && !memcmp(buf, legacy, sizeof legacy))
        return z_fail(err, errlen, file, "legacy (pre-1.6) torch.save format not supported");
    if (len < 4 || le(buf, 4) != ZIP_LFH_SIG) return z_fail(err, errlen, file, "not a PyTorch zip archive (no zip signature)");
    zentry *z = NULL;
    size_t nz = 0;
    if (read_cd(buf, len, file, &z, &nz, err, errlen)) return -1;
    qsort(z, nz, sizeof *z, cmp_entry);
    const zentry *pkl = NULL;
    for (size_t i = 0; i < nz; i++) {
        const char *tail = "data.pkl";
        if (z[i].namelen < 8 || memcmp(z[i].name + z[i].namelen - 8, tail, 8)) continue;
        size_t plen = z[i].namelen - 8;
        if (plen && z[i].name[plen - 1] != '/') continue;
        if (memchr(z[i].name, '/', plen ? plen - 1 : 0)) continue; /* only <archive>/data.pkl */
        if (pkl) { free(z); return z_fail(err, errlen, file, "zip holds more than one data.pkl"); }
        pkl = &z[i];
    }
    if (!pkl) { free(z); return z_fail(err, errlen, file, "zip holds no <archive>/data.pkl: not a torch.save file"); }
    const char *prefix = (const char *)pkl->name;
    const size_t plen = pkl->namelen - 8;
    const uint8_t *pdata;
    if (entry_data(buf, len, file, pkl, &pdata, err, errlen)) { free(z); return -1; }
    kq_pkl_result pr;
    if (kq_pickle_parse_state_dict(pdata, (size_t)pkl->usize, file, &pr, err, errlen)) { free(z); return -1; }
    const size_t n0 = out->n;
    int rc = resolve(buf, len, file, z, nz, prefix, plen, &pr, out, err, errlen);
    if (rc) {
        while (out->n > n0) {
            out->n--;
            free((char *)out->t[out->n].name);
            free((char *)out->t[out->n].dtype_name);
        }
    }
    kq_pkl_result_free(&pr);
    free(z);
    return rc;
}
