/* SentencePiece's tokenizer.model: the protobuf wire format of ModelProto (sentencepiece_model.proto),
 * read and written by hand for the few fields that matter. Field numbers used:
 *   ModelProto      1 pieces (SentencePiece, repeated), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
 *   TrainerSpec     3 model_type, 4 vocab_size, 35 byte_fallback, 40..43 unk/bos/eos/pad id,
 *                   45..48 unk/bos/eos/pad piece (written only)
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix, 4 remove_extra_whitespaces,
 *                   5 escape_whitespaces
 * Everything else is skipped by wire type, groups included. The reader trusts nothing: every length is
 * checked against the bytes of the message that holds it. */
#include "kq_file.h"
#include "spm_vocab.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };
/* Groups are long deprecated; nesting bounds the recursion that skipping them needs. */
#define PB_GROUP_DEPTH_MAX 32
/* A tokenizer.model is a few MiB at most; this only keeps a wrong file from being read whole. */
#define SPM_FILE_MAX ((size_t)1 << 30)

/* ---- kq_vocab ---------------------------------------------------------------------------------- */

void kq_vocab_init(kq_vocab *v) {
    memset(v, 0, sizeof *v);
    v->model = "llama";
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = v->sep_id = -1;
    v->add_bos = v->add_eos = -1;
    v->add_dummy_prefix = 1;
    v->remove_extra_whitespaces = 1;
    v->escape_whitespaces = 1;
}

void kq_vocab_free(kq_vocab *v) {
    if (v->tokens)
        for (uint32_t i = 0; i < v->n; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->token_lens);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}

int kq_vocab_alloc(kq_vocab *v, uint32_t n) {
    if (n > KQ_VOCAB_MAX) return -1;
    if (n == 0) return 0;
    v->tokens = calloc(n, sizeof *v->tokens);
    v->token_lens = calloc(n, sizeof *v->token_lens);
    v->scores = calloc(n, sizeof *v->scores);
    v->types = malloc(n * sizeof *v->types);
    if (!v->tokens || !v->token_lens || !v->scores || !v->types) {
        free(v->tokens);
        free(v->token_lens);
        free(v->scores);
        free(v->types);
        v->tokens = NULL;
        v->token_lens = NULL;
        v->scores = NULL;
        v->types = NULL;
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) v->types[i] = KQ_TOKEN_NORMAL;
    v->n = n;
    return 0;
}

int kq_vocab_set_piece(kq_vocab *v, uint32_t i, const void *s, size_t len) {
    if (i >= v->n || len > KQ_PIECE_MAX) return -1;
    char *p = malloc(len + 1);
    if (!p) return -1;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    free(v->tokens[i]);
    v->tokens[i] = p;
    v->token_lens[i] = len;
    return 0;
}

int64_t kq_vocab_find(const kq_vocab *v, const char *s, size_t len) {
    for (uint32_t i = 0; i < v->n; i++)
        if (v->token_lens[i] == len && (len == 0 || memcmp(v->tokens[i], s, len) == 0)) return i;
    return -1;
}

/* ---- reading: wire format ----------------------------------------------------------------------- */

typedef struct {
    const char *name;     /* file name for messages */
    const uint8_t *base;  /* start of the buffer: offsets in messages */
    char *err;
    size_t errlen;
} spm_ctx;

typedef struct {
    const uint8_t *p, *end;
} pb_span;

static int fail_at(const spm_ctx *c, const uint8_t *at, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->errlen) snprintf(c->err, c->errlen, "%s: byte %zu: %s", c->name, (size_t)(at - c->base), msg);
    return -1;
}

static int fail(const spm_ctx *c, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->errlen) snprintf(c->err, c->errlen, "%s: %s", c->name, msg);
    return -1;
}

static int rd_varint(const spm_ctx *c, pb_span *s, uint64_t *out) {
    const uint8_t *start = s->p;
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (s->p >= s->end) return fail_at(c, start, "truncated varint");
        uint8_t b = *s->p++;
        /* the 10th byte holds bit 63 only */
        if (i == 9 && b > 1) return fail_at(c, start, "varint overflows 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return fail_at(c, start, "varint longer than 10 bytes");
}

static int rd_fixed(const spm_ctx *c, pb_span *s, size_t n, uint64_t *out) {
    if ((size_t)(s->end - s->p) < n) return fail_at(c, s->p, "truncated %zu-byte value", n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)s->p[i] << (8 * i);
    s->p += n;
    *out = v;
    return 0;
}

static int rd_len(const spm_ctx *c, pb_span *s, pb_span *sub) {
    const uint8_t *at = s->p;
    uint64_t n;
    if (rd_varint(c, s, &n)) return -1;
    size_t left = (size_t)(s->end - s->p);
    if (n > left)
        return fail_at(c, at, "length %llu runs past the end of its message (%zu bytes left)",
                       (unsigned long long)n, left);
    sub->p = s->p;
    sub->end = s->p + n;
    s->p += n;
    return 0;
}

static int rd_key(const spm_ctx *c, pb_span *s, uint32_t *field, int *wire) {
    const uint8_t *at = s->p;
    uint64_t k;
    if (rd_varint(c, s, &k)) return -1;
    if ((k >> 3) == 0 || (k >> 3) > 0x1fffffff) return fail_at(c, at, "invalid field number %llu", (unsigned long long)(k >> 3));
    *field = (uint32_t)(k >> 3);
    *wire = (int)(k & 7);
    return 0;
}

static int skip_field(const spm_ctx *c, pb_span *s, uint32_t field, int wire, int depth) {
    uint64_t u = 0;
    pb_span sub;
    switch (wire) {
    case WT_VARINT: return rd_varint(c, s, &u);
    case WT_I64: return rd_fixed(c, s, 8, &u);
    case WT_LEN: return rd_len(c, s, &sub);
    case WT_I32: return rd_fixed(c, s, 4, &u);
    case WT_SGROUP:
        if (depth >= PB_GROUP_DEPTH_MAX) return fail_at(c, s->p, "groups nested deeper than %d", PB_GROUP_DEPTH_MAX);
        for (;;) {
            uint32_t f;
            int w;
            if (s->p >= s->end) return fail_at(c, s->p, "group %u has no end", field);
            const uint8_t *at = s->p;
            if (rd_key(c, s, &f, &w)) return -1;
            if (w == WT_EGROUP) {
                if (f != field) return fail_at(c, at, "end of group %u inside group %u", f, field);
                return 0;
            }
            if (skip_field(c, s, f, w, depth + 1)) return -1;
        }
    case WT_EGROUP: return fail_at(c, s->p, "end of group %u without its start", field);
    default: return fail_at(c, s->p, "field %u has invalid wire type %d", field, wire);
    }
}

/* A known field arriving with another wire type means a different schema: refuse rather than guess. */
static int want_wire(const spm_ctx *c, const uint8_t *at, const char *what, int wire, int expected) {
    if (wire == expected) return 0;
    return fail_at(c, at, "%s has wire type %d, expected %d", what, wire, expected);
}

/* int32 fields travel as 64-bit varints (negative ones sign-extended); protobuf keeps the low 32 bits. */
static int64_t as_int32(uint64_t u) {
    int64_t x = (int64_t)(u & 0xffffffffu);
    return x >= 0x80000000LL ? x - 0x100000000LL : x;
}

/* ---- reading: messages ------------------------------------------------------------------------- */

/* trainer_spec values before validation against the piece count */
typedef struct {
    int64_t unk_id, bos_id, eos_id, pad_id;
} spm_ids;

static int parse_piece(const spm_ctx *c, pb_span s, kq_vocab *v, uint32_t idx) {
    const uint8_t *start = s.p;
    pb_span str = {NULL, NULL};
    uint32_t score_bits = 0;
    uint64_t type = KQ_TOKEN_NORMAL;
    while (s.p < s.end) {
        const uint8_t *at = s.p;
        uint32_t f;
        int w;
        uint64_t u = 0;
        if (rd_key(c, &s, &f, &w)) return -1;
        if (f == 1) {
            if (want_wire(c, at, "piece", w, WT_LEN) || rd_len(c, &s, &str)) return -1;
        } else if (f == 2) {
            if (want_wire(c, at, "score", w, WT_I32) || rd_fixed(c, &s, 4, &u)) return -1;
            score_bits = (uint32_t)u;
        } else if (f == 3) {
            if (want_wire(c, at, "type", w, WT_VARINT) || rd_varint(c, &s, &type)) return -1;
            if (type < KQ_TOKEN_NORMAL || type > KQ_TOKEN_BYTE)
                return fail_at(c, at, "piece %u has type %llu (known: 1..6)", idx, (unsigned long long)type);
        } else if (skip_field(c, &s, f, w, 0)) {
            return -1;
        }
    }
    size_t len = str.p ? (size_t)(str.end - str.p) : 0;
    if (len == 0) return fail_at(c, start, "piece %u is empty", idx);
    if (len > KQ_PIECE_MAX) return fail_at(c, start, "piece %u is %zu bytes long (limit %u)", idx, len, KQ_PIECE_MAX);
    if (kq_vocab_set_piece(v, idx, str.p, len)) return fail(c, "out of memory");
    memcpy(&v->scores[idx], &score_bits, sizeof score_bits);
    v->types[idx] = (int32_t)type;
    return 0;
}

static int parse_trainer(const spm_ctx *c, pb_span s, kq_vocab *v, spm_ids *ids) {
    while (s.p < s.end) {
        const uint8_t *at = s.p;
        uint32_t f;
        int w;
        uint64_t u = 0;
        if (rd_key(c, &s, &f, &w)) return -1;
        int known = f == 3 || f == 4 || f == 35 || (f >= 40 && f <= 43);
        if (!known) {
            if (skip_field(c, &s, f, w, 0)) return -1;
            continue;
        }
        if (want_wire(c, at, "trainer_spec field", w, WT_VARINT) || rd_varint(c, &s, &u)) return -1;
        int64_t x = as_int32(u);
        switch (f) {
        case 3:
            if (x < KQ_SPM_UNIGRAM || x > KQ_SPM_CHAR) return fail_at(c, at, "trainer_spec model_type %lld is unknown", (long long)x);
            v->spm_model_type = (int)x;
            break;
        case 4: v->spm_vocab_size = x < 0 ? 0 : (uint32_t)x; break;
        case 35: v->byte_fallback = u != 0; break;
        case 40: ids->unk_id = x; break;
        case 41: ids->bos_id = x; break;
        case 42: ids->eos_id = x; break;
        default: ids->pad_id = x; break;
        }
    }
    return 0;
}

static int parse_normalizer(const spm_ctx *c, pb_span s, kq_vocab *v) {
    while (s.p < s.end) {
        const uint8_t *at = s.p;
        uint32_t f;
        int w;
        uint64_t u = 0;
        pb_span str;
        if (rd_key(c, &s, &f, &w)) return -1;
        if (f == 1 || f == 2) {
            if (want_wire(c, at, f == 1 ? "normalizer name" : "precompiled_charsmap", w, WT_LEN) || rd_len(c, &s, &str))
                return -1;
            size_t len = (size_t)(str.end - str.p);
            if (f == 2) {
                v->has_charsmap = len > 0;
            } else {
                if (len >= sizeof v->normalizer_name) len = sizeof v->normalizer_name - 1;
                memcpy(v->normalizer_name, str.p, len);
                v->normalizer_name[len] = '\0';
            }
        } else if (f >= 3 && f <= 5) {
            if (want_wire(c, at, "normalizer flag", w, WT_VARINT) || rd_varint(c, &s, &u)) return -1;
            int b = u != 0;
            if (f == 3) v->add_dummy_prefix = b;
            else if (f == 4) v->remove_extra_whitespaces = b;
            else v->escape_whitespaces = b;
        } else if (skip_field(c, &s, f, w, 0)) {
            return -1;
        }
    }
    return 0;
}

/* First pass: checks the top level is well formed and counts the pieces, so the arrays are sized once. */
static int count_pieces(const spm_ctx *c, pb_span s, uint32_t *n) {
    uint64_t count = 0;
    while (s.p < s.end) {
        const uint8_t *at = s.p;
        uint32_t f;
        int w;
        if (rd_key(c, &s, &f, &w)) return -1;
        if (f == 1 || f == 2 || f == 3) {
            static const char *what[] = {"", "pieces", "trainer_spec", "normalizer_spec"};
            pb_span sub;
            if (want_wire(c, at, what[f], w, WT_LEN) || rd_len(c, &s, &sub)) return -1;
            if (f == 1 && ++count > KQ_VOCAB_MAX) return fail_at(c, at, "more than %u pieces", KQ_VOCAB_MAX);
        } else if (skip_field(c, &s, f, w, 0)) {
            return -1;
        }
    }
    *n = (uint32_t)count;
    return 0;
}

static int check_id(const spm_ctx *c, const char *name, int64_t id, uint32_t n, int64_t *out) {
    if (id < 0) {
        *out = -1;
        return 0;
    }
    if (id >= n) return fail(c, "trainer_spec %s %lld is not a piece id (%u pieces)", name, (long long)id, n);
    *out = id;
    return 0;
}

static int parse_model(const spm_ctx *c, pb_span all, kq_vocab *v) {
    uint32_t n = 0;
    if (count_pieces(c, all, &n)) return -1;
    if (n == 0) return fail(c, "holds no pieces (not a SentencePiece model?)");
    if (kq_vocab_alloc(v, n)) return fail(c, "out of memory for %u pieces", n);
    /* proto2 defaults of the fields read */
    spm_ids ids = {0, 1, 2, -1};
    v->spm_model_type = KQ_SPM_UNIGRAM;
    v->spm_vocab_size = 8000;
    uint32_t idx = 0;
    pb_span s = all;
    while (s.p < s.end) {
        uint32_t f;
        int w;
        pb_span sub;
        if (rd_key(c, &s, &f, &w)) return -1;
        if (f < 1 || f > 3) {
            if (skip_field(c, &s, f, w, 0)) return -1;
            continue;
        }
        if (rd_len(c, &s, &sub)) return -1;
        /* repeated sub-messages merge field by field, as protobuf does */
        int rc = f == 1 ? parse_piece(c, sub, v, idx++) : f == 2 ? parse_trainer(c, sub, v, &ids) : parse_normalizer(c, sub, v);
        if (rc) return -1;
    }
    if (check_id(c, "unk_id", ids.unk_id, n, &v->unk_id) || check_id(c, "bos_id", ids.bos_id, n, &v->bos_id) ||
        check_id(c, "eos_id", ids.eos_id, n, &v->eos_id) || check_id(c, "pad_id", ids.pad_id, n, &v->pad_id))
        return -1;
    return 0;
}

static int spm_parse_named(const char *name, const uint8_t *buf, size_t len, kq_vocab *v, char *err, size_t errlen) {
    spm_ctx c = {name, buf, err, errlen};
    kq_vocab_init(v);
    static const uint8_t nothing[1];
    pb_span all = {nothing, nothing}; /* a NULL buffer is an empty one (NULL + 0 is not valid C) */
    if (buf) {
        all.p = buf;
        all.end = buf + len;
    }
    c.base = all.p;
    if (parse_model(&c, all, v)) {
        kq_vocab_free(v);
        return -1;
    }
    return 0;
}

int kq_spm_parse(const uint8_t *buf, size_t len, kq_vocab *v, char *err, size_t errlen) {
    return spm_parse_named("tokenizer.model", buf, len, v, err, errlen);
}

int kq_tok_read_file(const char *path, size_t max, uint8_t **out, size_t *len, char *err, size_t errlen) {
    char *buf = NULL;
    const int rc = kq_read_whole_file(path, max, &buf, len, err, errlen);
    *out = (uint8_t *)buf;
    return rc;
}

int kq_spm_read(const char *path, kq_vocab *v, char *err, size_t errlen) {
    uint8_t *buf;
    size_t len;
    kq_vocab_init(v);
    int rc = kq_tok_read_file(path, SPM_FILE_MAX, &buf, &len, err, errlen);
    if (rc == 1) snprintf(err, errlen, "%s: not found (needed for the vocabulary; pass --vocab FILE)", path);
    if (rc) return -1;
    rc = spm_parse_named(path, buf, len, v, err, errlen);
    free(buf);
    return rc;
}

/* ---- writing ----------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->cap - b->len < n) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap - b->len < n) ncap *= 2;
        uint8_t *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_varint(wbuf *b, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) tmp[n] |= 0x80;
        n++;
    } while (v);
    put(b, tmp, n);
}

static void put_key(wbuf *b, uint32_t field, int wire) { put_varint(b, ((uint64_t)field << 3) | (uint64_t)wire); }

static void put_bytes_field(wbuf *b, uint32_t field, const void *s, size_t n) {
    put_key(b, field, WT_LEN);
    put_varint(b, n);
    put(b, s, n);
}

static void put_varint_field(wbuf *b, uint32_t field, uint64_t v) {
    put_key(b, field, WT_VARINT);
    put_varint(b, v);
}

/* negative int32s are sign-extended to 64 bits on the wire (10 bytes), as protobuf writes them */
static void put_int32_field(wbuf *b, uint32_t field, int64_t v) { put_varint_field(b, field, (uint64_t)v); }

static void put_float_field(wbuf *b, uint32_t field, float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint8_t le[4] = {(uint8_t)bits, (uint8_t)(bits >> 8), (uint8_t)(bits >> 16), (uint8_t)(bits >> 24)};
    put_key(b, field, WT_I32);
    put(b, le, 4);
}

/* "<0xNN>" with upper-case hex, as SentencePiece names byte pieces; -1 when not one */
static int byte_piece_value(const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
    if (!hi || !lo || !s[3] || !s[4]) return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

typedef struct {
    const char *s;
    size_t len;
    uint32_t id;
} piece_ref;

static int cmp_piece(const void *a, const void *b) {
    const piece_ref *x = a, *y = b;
    int r = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (r) return r;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int check_unique(const kq_vocab *v, const char *path, char *err, size_t errlen) {
    piece_ref *r = malloc((size_t)v->n * sizeof *r);
    if (!r) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (uint32_t i = 0; i < v->n; i++) r[i] = (piece_ref){v->tokens[i], v->token_lens[i], i};
    qsort(r, v->n, sizeof *r, cmp_piece);
    int rc = 0;
    for (uint32_t k = 1; k < v->n && !rc; k++) {
        if (r[k - 1].len == r[k].len && memcmp(r[k - 1].s, r[k].s, r[k].len) == 0) {
            snprintf(err, errlen, "%s: pieces %u and %u are the same (SentencePiece refuses duplicates)", path,
                     r[k - 1].id, r[k].id);
            rc = -1;
        }
    }
    free(r);
    return rc;
}

static int check_pieces(const kq_vocab *v, const char *path, char *err, size_t errlen) {
    unsigned char seen[256] = {0};
    uint32_t n_unk = 0, n_byte = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        int32_t t = v->types[i];
        if (!v->tokens[i] || v->token_lens[i] == 0 || v->token_lens[i] > KQ_PIECE_MAX) {
            snprintf(err, errlen, "%s: piece %u is empty or longer than %u bytes", path, i, KQ_PIECE_MAX);
            return -1;
        }
        if (t < KQ_TOKEN_NORMAL || t > KQ_TOKEN_BYTE) {
            snprintf(err, errlen, "%s: piece %u has type %d (known: 1..6)", path, i, (int)t);
            return -1;
        }
        n_unk += t == KQ_TOKEN_UNKNOWN;
        if (t != KQ_TOKEN_BYTE) continue;
        int b = byte_piece_value(v->tokens[i], v->token_lens[i]);
        if (b < 0) {
            snprintf(err, errlen, "%s: piece %u is of type byte but not named <0xNN>", path, i);
            return -1;
        }
        n_byte += !seen[b];
        seen[b] = 1;
    }
    if (n_unk != 1) {
        snprintf(err, errlen, "%s: %u pieces of type unknown (SentencePiece needs exactly one)", path, n_unk);
        return -1;
    }
    if (n_byte && !v->byte_fallback) {
        snprintf(err, errlen, "%s: byte pieces without byte_fallback (SentencePiece refuses them)", path);
        return -1;
    }
    if (v->byte_fallback && n_byte != 256) {
        snprintf(err, errlen, "%s: byte_fallback needs all 256 byte pieces, found %u", path, n_byte);
        return -1;
    }
    return check_unique(v, path, err, errlen);
}

static int check_writable(const kq_vocab *v, const char *path, char *err, size_t errlen) {
    if (v->n == 0 || v->n > KQ_VOCAB_MAX || !v->tokens || !v->token_lens || !v->scores || !v->types) {
        snprintf(err, errlen, "%s: vocabulary of %u pieces cannot be written", path, v->n);
        return -1;
    }
    const int64_t ids[4] = {v->unk_id, v->bos_id, v->eos_id, v->pad_id};
    static const char *names[4] = {"unk_id", "bos_id", "eos_id", "pad_id"};
    for (int k = 0; k < 4; k++) {
        if (ids[k] < -1 || ids[k] >= (int64_t)v->n) {
            snprintf(err, errlen, "%s: %s %lld is not a piece id (%u pieces)", path, names[k], (long long)ids[k], v->n);
            return -1;
        }
    }
    if (check_pieces(v, path, err, errlen)) return -1;
    if (v->unk_id >= 0 && v->types[v->unk_id] != KQ_TOKEN_UNKNOWN) {
        snprintf(err, errlen, "%s: unk_id %lld is not the piece of type unknown", path, (long long)v->unk_id);
        return -1;
    }
    return 0;
}

static void put_trainer(wbuf *b, const kq_vocab *v) {
    wbuf t = {0};
    int mt = v->spm_model_type >= KQ_SPM_UNIGRAM && v->spm_model_type <= KQ_SPM_CHAR ? v->spm_model_type : KQ_SPM_BPE;
    put_varint_field(&t, 3, (uint64_t)mt);
    put_int32_field(&t, 4, v->n);
    put_varint_field(&t, 35, v->byte_fallback ? 1 : 0);
    const int64_t ids[4] = {v->unk_id, v->bos_id, v->eos_id, v->pad_id};
    for (int k = 0; k < 4; k++) put_int32_field(&t, 40 + (uint32_t)k, ids[k]);
    /* SentencePiece finds <s>, </s>, <pad> at run time by these names: name the pieces the ids point at */
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0) put_bytes_field(&t, 45 + (uint32_t)k, v->tokens[ids[k]], v->token_lens[ids[k]]);
    if (t.oom) b->oom = 1;
    else put_bytes_field(b, 2, t.p, t.len);
    free(t.p);
}

static void put_normalizer(wbuf *b, const kq_vocab *v) {
    wbuf t = {0};
    put_bytes_field(&t, 1, "identity", 8);
    put_varint_field(&t, 3, v->add_dummy_prefix ? 1 : 0);
    put_varint_field(&t, 4, v->remove_extra_whitespaces ? 1 : 0);
    put_varint_field(&t, 5, 1);
    if (t.oom) b->oom = 1;
    else put_bytes_field(b, 3, t.p, t.len);
    free(t.p);
}

static void put_pieces(wbuf *b, const kq_vocab *v) {
    wbuf t = {0};
    for (uint32_t i = 0; i < v->n && !b->oom && !t.oom; i++) {
        t.len = 0;
        put_bytes_field(&t, 1, v->tokens[i], v->token_lens[i]);
        put_float_field(&t, 2, v->scores[i]);
        /* NORMAL is the default: left out, as SentencePiece's trainer does */
        if (v->types[i] != KQ_TOKEN_NORMAL) put_varint_field(&t, 3, (uint64_t)v->types[i]);
        if (!t.oom) put_bytes_field(b, 1, t.p, t.len);
    }
    if (t.oom) b->oom = 1;
    free(t.p);
}

static int write_file(const char *path, const wbuf *b, char *err, size_t errlen) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int ok = fwrite(b->p, 1, b->len, f) == b->len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: %s", ok ? path : tmp, ok ? strerror(errno) : "write failed");
        remove(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int kq_spm_write(const char *path, const kq_vocab *v, char *err, size_t errlen) {
    if (check_writable(v, path, err, errlen)) return -1;
    wbuf b = {0};
    put_pieces(&b, v);
    put_trainer(&b, v);
    put_normalizer(&b, v);
    int rc;
    if (b.oom) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = -1;
    } else {
        rc = write_file(path, &b, err, errlen);
    }
    free(b.p);
    return rc;
}
