/* kq engine tokenizer: SentencePiece-style tokenization from GGUF metadata, as llama.cpp's
 * llm_tokenizer_spm does it (tokenizer.h says the rules). */
#include "tokenizer.h"
#include "kq_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* GGUF token types (tokenizer.ggml.token_type). Kept private: convert/tokenizer.h has its own names. */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

#define KQ_TOK_MAX_VOCAB (1 << 24)
#define KQ_TOK_MAX_TEXT ((size_t)1 << 30) /* keeps escaped offsets (<= 3x) inside uint32 */

struct kq_tokenizer {
    int32_t n;
    char *blob;        /* every piece, each followed by a NUL */
    size_t *off;       /* piece i = blob + off[i], len[i] bytes */
    uint32_t *len;
    float *score;
    int32_t *type;
    int32_t *slot;     /* open-addressing hash of the pieces: id or -1 */
    uint32_t mask;     /* slots - 1 */
    int32_t byte_id[256]; /* byte fallback token of each byte, -1 if none */
    uint8_t pair[65536 / 8]; /* bit x*256+y: bytes x, y are adjacent inside some piece */
    int32_t *ud;       /* USER_DEFINED ids in matching order */
    int32_t n_ud;
    int32_t bos, eos, unk;
    int add_bos, add_eos, add_space_prefix;
};

static void kq_tok_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void kq_tok_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- piece lookup */

/* FNV-1a: pieces are short, and a bigram lookup hashes a few bytes. */
static uint32_t kq_tok_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int32_t kq_tok_find(const kq_tokenizer *t, const char *s, size_t n) {
    for (uint32_t i = kq_tok_hash(s, n) & t->mask;; i = (i + 1) & t->mask) {
        const int32_t id = t->slot[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->blob + t->off[id], s, n) == 0) return id;
    }
}

/* Later ids replace earlier ones with the same text: llama.cpp fills its map with token_to_id[w] = i. */
static void kq_tok_insert(kq_tokenizer *t, int32_t id) {
    const char *s = t->blob + t->off[id];
    const uint32_t n = t->len[id];
    for (uint32_t i = kq_tok_hash(s, n) & t->mask;; i = (i + 1) & t->mask) {
        const int32_t o = t->slot[i];
        if (o < 0 || (t->len[o] == n && memcmp(t->blob + t->off[o], s, n) == 0)) {
            t->slot[i] = id;
            return;
        }
    }
}

/* ---------------------------------------------------------------- loading */

static int kq_tok_build_hash(kq_tokenizer *t) {
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)t->n) cap <<= 1;
    t->slot = malloc((size_t)cap * sizeof(*t->slot));
    if (!t->slot) return -1;
    memset(t->slot, 0xff, (size_t)cap * sizeof(*t->slot));
    t->mask = cap - 1;
    for (int32_t i = 0; i < t->n; i++) kq_tok_insert(t, i);
    return 0;
}

/* Where no piece has the last byte of one character next to the first byte of the following one,
 * no merge can ever cross between them: the text splits there into runs that merge independently
 * (in SentencePiece vocabularies, before nearly every U+2581), which keeps the queue small. */
static void kq_tok_build_pairs(kq_tokenizer *t) {
    memset(t->pair, 0, sizeof(t->pair));
    for (int32_t i = 0; i < t->n; i++) {
        const uint8_t *p = (const uint8_t *)t->blob + t->off[i];
        for (uint32_t j = 1; j < t->len[i]; j++) {
            const unsigned k = (unsigned)p[j - 1] << 8 | p[j];
            t->pair[k >> 3] |= (uint8_t)(1u << (k & 7));
        }
    }
}

static int kq_tok_may_join(const kq_tokenizer *t, uint8_t x, uint8_t y) {
    const unsigned k = (unsigned)x << 8 | y;
    return t->pair[k >> 3] >> (k & 7) & 1;
}

static void kq_tok_build_bytes(kq_tokenizer *t) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        const char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        const char one = (char)b;
        int32_t id = kq_tok_find(t, name, sizeof(name));
        if (id < 0) id = kq_tok_find(t, &one, 1);
        t->byte_id[b] = id;
    }
}

/* USER_DEFINED pieces, longest first: llama.cpp cuts them out of the text in that order. It sorts
 * with std::sort (equal lengths in no particular order); ties here go by id. */
static int kq_tok_build_ud(kq_tokenizer *t) {
    int32_t n = 0;
    for (int32_t i = 0; i < t->n; i++) n += t->type[i] == TT_USER_DEFINED;
    t->n_ud = n;
    if (!n) return 0;
    t->ud = malloc((size_t)n * sizeof(*t->ud));
    if (!t->ud) return -1;
    n = 0;
    for (int32_t i = 0; i < t->n; i++)
        if (t->type[i] == TT_USER_DEFINED) t->ud[n++] = i;
    /* insertion sort keeps id order among equal lengths; there are few such pieces */
    for (int32_t i = 1; i < n; i++) {
        const int32_t v = t->ud[i];
        int32_t j = i;
        for (; j > 0 && t->len[t->ud[j - 1]] < t->len[v]; j--) t->ud[j] = t->ud[j - 1];
        t->ud[j] = v;
    }
    return 0;
}

/* The pieces, copied into one blob (empty ones named as llama.cpp names them). */
static int kq_tok_read_pieces(kq_tokenizer *t, const kq_gguf *g, int64_t ki, char *err, size_t errlen) {
    const char *path = kq_gguf_path(g);
    size_t total = 0;
    for (int32_t i = 0; i < t->n; i++) {
        const char *s;
        size_t n;
        if (kq_gguf_arr_str(g, ki, (uint64_t)i, &s, &n)) {
            kq_tok_err(err, errlen, "%s: tokenizer.ggml.tokens[%d] cannot be read", path, (int)i);
            return -1;
        }
        if (n > UINT32_MAX / 2) {
            kq_tok_err(err, errlen, "%s: tokenizer.ggml.tokens[%d] is too long (%zu bytes)", path, (int)i, n);
            return -1;
        }
        total += (n ? n : 32) + 1;
    }
    t->blob = malloc(total ? total : 1);
    if (!t->blob) return -1;
    size_t at = 0;
    for (int32_t i = 0; i < t->n; i++) {
        const char *s;
        size_t n;
        kq_gguf_arr_str(g, ki, (uint64_t)i, &s, &n);
        t->off[i] = at;
        if (n) memcpy(t->blob + at, s, n);
        else n = (size_t)snprintf(t->blob + at, 32, "[EMPTY_%d]", (int)i);
        t->len[i] = (uint32_t)n;
        t->blob[at + n] = '\0';
        at += n + 1;
    }
    return 0;
}

/* An optional per-token array of elem_type with exactly n elements; NULL data if absent. */
static int kq_tok_arr(const kq_gguf *g, const char *key, int elem_type, int32_t n, const void **data, char *err,
                      size_t errlen) {
    *data = NULL;
    const int64_t k = kq_gguf_find_key(g, key);
    if (k < 0) return 0;
    if (kq_gguf_kv_type(g, k) != KQ_GGUF_ARR || kq_gguf_arr_type(g, k) != elem_type) {
        kq_tok_err(err, errlen, "%s: %s is not an array of %s", kq_gguf_path(g), key, kq_gguf_vtype_name(elem_type));
        return -1;
    }
    if (kq_gguf_arr_count(g, k) != (uint64_t)n) {
        kq_tok_err(err, errlen, "%s: %s has %llu elements for %d tokens", kq_gguf_path(g), key,
                   (unsigned long long)kq_gguf_arr_count(g, k), (int)n);
        return -1;
    }
    *data = kq_gguf_arr_data(g, k);
    return 0;
}

static int kq_tok_read_arrays(kq_tokenizer *t, const kq_gguf *g, char *err, size_t errlen) {
    const void *scores, *types;
    if (kq_tok_arr(g, "tokenizer.ggml.scores", KQ_GGUF_F32, t->n, &scores, err, errlen)) return -1;
    if (kq_tok_arr(g, "tokenizer.ggml.token_type", KQ_GGUF_I32, t->n, &types, err, errlen)) return -1;
    for (int32_t i = 0; i < t->n; i++) {
        float s = 0.0f;
        int32_t ty = TT_NORMAL;
        /* little-endian data in the map, unaligned: memcpy (the targets are little-endian) */
        if (scores) memcpy(&s, (const char *)scores + 4 * (size_t)i, 4);
        if (types) memcpy(&ty, (const char *)types + 4 * (size_t)i, 4);
        t->score[i] = s;
        t->type[i] = ty;
    }
    return 0;
}

/* A special id: the key's value when inside the vocabulary, else the default (llama.cpp keeps its
 * default for out-of-range ids); -1 when the default is outside the vocabulary too. */
static int kq_tok_special(const kq_tokenizer *t, const kq_gguf *g, const char *key, int32_t def, int32_t *out,
                          char *err, size_t errlen) {
    uint32_t v;
    const int rc = kq_gguf_get_u32(g, key, &v);
    if (rc == -2) {
        kq_tok_err(err, errlen, "%s", kq_gguf_last_error(g));
        return -1;
    }
    *out = rc == 0 && v < (uint32_t)t->n ? (int32_t)v : def < t->n ? def : -1;
    return 0;
}

static int kq_tok_flag(const kq_gguf *g, const char *key, int def, int *out, char *err, size_t errlen) {
    int v;
    const int rc = kq_gguf_get_bool(g, key, &v);
    if (rc == -2) {
        kq_tok_err(err, errlen, "%s", kq_gguf_last_error(g));
        return -1;
    }
    *out = rc == 0 ? v : def;
    return 0;
}

static int kq_tok_check_model(const kq_gguf *g, char *err, size_t errlen) {
    const char *path = kq_gguf_path(g);
    const char *m;
    size_t n;
    const int rc = kq_gguf_get_str(g, "tokenizer.ggml.model", &m, &n);
    if (rc == -1) {
        kq_tok_err(err, errlen, "%s: no tokenizer in this file (no tokenizer.ggml.model key)", path);
        return -1;
    }
    if (rc) {
        kq_tok_err(err, errlen, "%s", kq_gguf_last_error(g));
        return -1;
    }
    if (n == 5 && !memcmp(m, "llama", 5)) return 0;
    kq_tok_err(err, errlen,
               "%s: tokenizer model '%.*s' is not supported: kq tokenizes SentencePiece vocabularies "
               "(tokenizer.ggml.model 'llama')",
               path, (int)(n > 64 ? 64 : n), m);
    return -1;
}

static int kq_tok_load(kq_tokenizer *t, const kq_gguf *g, char *err, size_t errlen) {
    const char *path = kq_gguf_path(g);
    if (kq_tok_check_model(g, err, errlen)) return -1;
    const int64_t ki = kq_gguf_find_key(g, "tokenizer.ggml.tokens");
    if (ki < 0) {
        kq_tok_err(err, errlen, "%s: no tokenizer in this file (no tokenizer.ggml.tokens key)", path);
        return -1;
    }
    if (kq_gguf_kv_type(g, ki) != KQ_GGUF_ARR || kq_gguf_arr_type(g, ki) != KQ_GGUF_STR) {
        kq_tok_err(err, errlen, "%s: tokenizer.ggml.tokens is not an array of strings", path);
        return -1;
    }
    const uint64_t n = kq_gguf_arr_count(g, ki);
    if (n == 0 || n > KQ_TOK_MAX_VOCAB) {
        kq_tok_err(err, errlen, "%s: tokenizer.ggml.tokens has %llu pieces (1..%d accepted)", path,
                   (unsigned long long)n, KQ_TOK_MAX_VOCAB);
        return -1;
    }
    t->n = (int32_t)n;
    t->off = malloc(n * sizeof(*t->off));
    t->len = malloc(n * sizeof(*t->len));
    t->score = malloc(n * sizeof(*t->score));
    t->type = malloc(n * sizeof(*t->type));
    if (!t->off || !t->len || !t->score || !t->type) goto oom;
    if (kq_tok_read_pieces(t, g, ki, err, errlen)) return -1;
    if (kq_tok_read_arrays(t, g, err, errlen)) return -1;
    if (kq_tok_special(t, g, "tokenizer.ggml.bos_token_id", 1, &t->bos, err, errlen) ||
        kq_tok_special(t, g, "tokenizer.ggml.eos_token_id", 2, &t->eos, err, errlen) ||
        kq_tok_special(t, g, "tokenizer.ggml.unknown_token_id", 0, &t->unk, err, errlen))
        return -1;
    if (kq_tok_flag(g, "tokenizer.ggml.add_bos_token", 1, &t->add_bos, err, errlen) ||
        kq_tok_flag(g, "tokenizer.ggml.add_eos_token", 0, &t->add_eos, err, errlen) ||
        kq_tok_flag(g, "tokenizer.ggml.add_space_prefix", 1, &t->add_space_prefix, err, errlen))
        return -1;
    if (kq_tok_build_hash(t) || kq_tok_build_ud(t)) goto oom;
    kq_tok_build_bytes(t);
    kq_tok_build_pairs(t);
    return 0;
oom:
    kq_tok_err(err, errlen, "%s: out of memory reading the vocabulary", path);
    return -1;
}

int kq_tokenizer_from_gguf(const kq_gguf *g, kq_tokenizer **out, char *err, size_t errlen) {
    if (!out) return -1;
    *out = NULL;
    if (!g) {
        kq_tok_err(err, errlen, "no GGUF file");
        return -1;
    }
    kq_tokenizer *t = calloc(1, sizeof(*t));
    if (!t) {
        kq_tok_err(err, errlen, "%s: out of memory", kq_gguf_path(g));
        return -1;
    }
    if (kq_tok_load(t, g, err, errlen)) {
        kq_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void kq_tokenizer_free(kq_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->slot);
    free(t->ud);
    free(t);
}

/* ---------------------------------------------------------------- the merge loop */

typedef struct {
    int32_t *ids;
    int64_t max, n;
} kq_tok_out;

static void kq_tok_emit(kq_tok_out *o, int32_t id) {
    if (o->n < o->max) o->ids[o->n] = id;
    o->n++;
}

typedef struct {
    int32_t prev, next; /* neighbours in the chain, -1 at the ends */
    uint32_t off, n;    /* bytes of the escaped text; n = 0 once merged into the left neighbour */
} kq_sym;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the pair when queued: a pair whose symbols changed since is stale */
} kq_bigram;

typedef struct {
    kq_bigram *a;
    size_t n, cap;
} kq_heap;

/* The queue's order, llama.cpp's llm_bigram_spm comparator: higher score first, then leftmost. */
static int kq_bigram_before(const kq_bigram *x, const kq_bigram *y) {
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static int kq_heap_push(kq_heap *h, kq_bigram b) {
    if (h->n == h->cap) {
        const size_t cap = h->cap ? 2 * h->cap : 64;
        kq_bigram *a = realloc(h->a, cap * sizeof(*a));
        if (!a) return -1;
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        const size_t p = (i - 1) / 2;
        if (!kq_bigram_before(&b, &h->a[p])) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = b;
    return 0;
}

static kq_bigram kq_heap_pop(kq_heap *h) {
    const kq_bigram top = h->a[0];
    const kq_bigram last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && kq_bigram_before(&h->a[c + 1], &h->a[c])) c++;
        if (!kq_bigram_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

typedef struct {
    const kq_tokenizer *t;
    const char *text; /* escaped */
    kq_sym *sym;
    kq_heap heap;
} kq_spm;

/* Queues the pair (left, right) if its concatenation is a piece. */
static int kq_spm_try_pair(kq_spm *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return 0;
    const uint32_t size = s->sym[left].n + s->sym[right].n;
    const int32_t id = kq_tok_find(s->t, s->text + s->sym[left].off, size);
    if (id < 0) return 0;
    const kq_bigram b = {s->t->score[id], left, right, size};
    return kq_heap_push(&s->heap, b);
}

/* UTF-8 length from the lead byte alone (llama.cpp's unicode_len_utf8): continuation and invalid
 * lead bytes count 1, 0xF8..0xFF count 4. */
static uint32_t kq_utf8_len(uint8_t c) {
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

static int32_t kq_spm_split(kq_sym *sym, const char *text, uint32_t n) {
    int32_t k = 0;
    for (uint32_t at = 0; at < n; k++) {
        uint32_t l = kq_utf8_len((uint8_t)text[at]);
        if (l > n - at) l = n - at;
        sym[k].off = at;
        sym[k].n = l;
        sym[k].prev = k - 1;
        at += l;
        sym[k].next = at == n ? -1 : k + 1;
    }
    return k;
}

/* Merges the run of symbols [first, end): nothing outside it can join them (kq_tok_build_pairs), so
 * runs done one after the other give what one queue over the whole text gives. */
static int kq_spm_merge_run(kq_spm *s, int32_t first, int32_t end) {
    for (int32_t i = first + 1; i < end; i++)
        if (kq_spm_try_pair(s, i - 1, i)) return -1;
    while (s->heap.n) {
        const kq_bigram b = kq_heap_pop(&s->heap);
        kq_sym *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = b.left;
        if (kq_spm_try_pair(s, l->prev, b.left) || kq_spm_try_pair(s, b.left, l->next)) return -1;
    }
    return 0;
}

static int kq_spm_merge(kq_spm *s, int32_t nsym) {
    int32_t first = 0;
    for (int32_t i = 1; i <= nsym; i++) {
        if (i < nsym) {
            const kq_sym *a = &s->sym[i - 1], *b = &s->sym[i];
            if (kq_tok_may_join(s->t, (uint8_t)s->text[a->off + a->n - 1], (uint8_t)s->text[b->off])) continue;
        }
        if (kq_spm_merge_run(s, first, i)) return -1;
        first = i;
    }
    return 0;
}

/* A final symbol: its piece, else its bytes as byte tokens, else one unknown token. */
static int kq_spm_emit(const kq_tokenizer *t, const char *p, uint32_t n, kq_tok_out *o) {
    const int32_t id = kq_tok_find(t, p, n);
    if (id >= 0) {
        kq_tok_emit(o, id);
        return 0;
    }
    uint32_t j = 0;
    while (j < n && t->byte_id[(uint8_t)p[j]] >= 0) j++;
    if (j == n) {
        for (j = 0; j < n; j++) kq_tok_emit(o, t->byte_id[(uint8_t)p[j]]);
        return 0;
    }
    if (t->unk < 0) return -1;
    kq_tok_emit(o, t->unk);
    return 0;
}

/* One stretch of plain text: dummy prefix, ' ' -> U+2581, merges, ids. */
static int kq_spm_fragment(const kq_tokenizer *t, const char *text, size_t len, int prefix, kq_tok_out *o) {
    size_t spaces = (size_t)(prefix != 0);
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    const size_t esc_len = len + (size_t)(prefix != 0) + 2 * spaces;
    char *esc = malloc(esc_len ? esc_len : 1);
    kq_sym *sym = malloc((esc_len ? esc_len : 1) * sizeof(*sym));
    kq_spm s = {t, esc, sym, {NULL, 0, 0}};
    int rc = -1;
    if (!esc || !sym) goto done;
    size_t at = 0;
    for (size_t i = 0; i < len + (size_t)(prefix != 0); i++) {
        const char c = prefix ? (i ? text[i - 1] : ' ') : text[i];
        if (c == ' ') {
            memcpy(esc + at, "\xe2\x96\x81", 3);
            at += 3;
        } else esc[at++] = c;
    }
    const int32_t nsym = kq_spm_split(sym, esc, (uint32_t)esc_len);
    if (kq_spm_merge(&s, nsym)) goto done;
    rc = 0;
    for (int32_t i = nsym ? 0 : -1; i != -1 && rc == 0; i = sym[i].next)
        rc = kq_spm_emit(t, esc + sym[i].off, sym[i].n, o);
done:
    free(s.heap.a);
    free(sym);
    free(esc);
    return rc;
}

/* ---------------------------------------------------------------- user-defined pieces */

typedef struct {
    size_t off, len;
    int32_t id; /* -1: plain text */
} kq_frag;

typedef struct {
    kq_frag *a;
    size_t n, cap;
} kq_frags;

static int kq_frags_add(kq_frags *f, size_t off, size_t len, int32_t id) {
    if (f->n == f->cap) {
        const size_t cap = f->cap ? 2 * f->cap : 16;
        kq_frag *a = realloc(f->a, cap * sizeof(*a));
        if (!a) return -1;
        f->a = a;
        f->cap = cap;
    }
    f->a[f->n++] = (kq_frag){off, len, id};
    return 0;
}

/* First occurrence of p (pn >= 1 bytes) in s[from, end), or end. */
static size_t kq_find_bytes(const char *s, size_t from, size_t end, const char *p, size_t pn) {
    while (from + pn <= end) {
        const char *c = memchr(s + from, p[0], end - from - pn + 1);
        if (!c) break;
        const size_t at = (size_t)(c - s);
        if (!memcmp(c, p, pn)) return at;
        from = at + 1;
    }
    return end;
}

/* Cuts every occurrence of piece id out of the plain-text fragments of in. */
static int kq_frags_cut(const kq_tokenizer *t, const char *text, const kq_frags *in, int32_t id, kq_frags *out) {
    const char *p = t->blob + t->off[id];
    const size_t pn = t->len[id];
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        const kq_frag f = in->a[i];
        if (f.id >= 0) {
            if (kq_frags_add(out, f.off, f.len, f.id)) return -1;
            continue;
        }
        size_t at = f.off;
        const size_t end = f.off + f.len;
        for (;;) {
            const size_t m = kq_find_bytes(text, at, end, p, pn);
            if (m == end) break;
            if (m > at && kq_frags_add(out, at, m - at, -1)) return -1;
            if (kq_frags_add(out, m, pn, id)) return -1;
            at = m + pn;
        }
        if (at < end && kq_frags_add(out, at, end - at, -1)) return -1;
    }
    return 0;
}

static int kq_partition(const kq_tokenizer *t, const char *text, size_t len, kq_frags *f) {
    kq_frags tmp = {NULL, 0, 0};
    int rc = kq_frags_add(f, 0, len, -1);
    for (int32_t u = 0; rc == 0 && u < t->n_ud; u++) {
        rc = kq_frags_cut(t, text, f, t->ud[u], &tmp);
        const kq_frags sw = *f;
        *f = tmp;
        tmp = sw;
    }
    free(tmp.a);
    return rc;
}

/* ---------------------------------------------------------------- public */

int64_t kq_tokenize(const kq_tokenizer *t, const char *text, size_t len, int add_bos, int32_t *ids, int64_t max) {
    if (!t || (!text && len) || len > KQ_TOK_MAX_TEXT || max < 0 || (!ids && max > 0)) return -1;
    kq_tok_out o = {ids, max, 0};
    if (add_bos) {
        if (t->bos < 0) return -1;
        kq_tok_emit(&o, t->bos);
    }
    if (len == 0) return o.n;
    kq_frags f = {NULL, 0, 0};
    int rc = kq_partition(t, text, len, &f);
    int prev_special = 1; /* the first stretch gets the dummy prefix */
    for (size_t i = 0; rc == 0 && i < f.n; i++) {
        if (f.a[i].id >= 0) {
            kq_tok_emit(&o, f.a[i].id);
            prev_special = 1;
            continue;
        }
        rc = kq_spm_fragment(t, text + f.a[i].off, f.a[i].len, t->add_space_prefix && prev_special, &o);
        prev_special = 0;
    }
    free(f.a);
    return rc ? -1 : o.n;
}

int kq_tokenizer_add_bos(const kq_tokenizer *t) { return t && t->add_bos && t->bos >= 0; }
int kq_tokenizer_add_eos(const kq_tokenizer *t) { return t && t->add_eos && t->eos >= 0; }
int kq_tokenizer_add_space_prefix(const kq_tokenizer *t) { return t && t->add_space_prefix; }
int32_t kq_tokenizer_bos(const kq_tokenizer *t) { return t ? t->bos : -1; }
int32_t kq_tokenizer_eos(const kq_tokenizer *t) { return t ? t->eos : -1; }
int32_t kq_tokenizer_unk(const kq_tokenizer *t) { return t ? t->unk : -1; }
int32_t kq_tokenizer_n_vocab(const kq_tokenizer *t) { return t ? t->n : 0; }

int32_t kq_token_type(const kq_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n ? t->type[id] : 0;
}

const char *kq_token_piece(const kq_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->len[id];
    return t->blob + t->off[id];
}

static int kq_hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static size_t kq_put(char *buf, size_t cap, size_t at, const char *s, size_t n) {
    if (at < cap) memcpy(buf + at, s, n < cap - at ? n : cap - at);
    return at + n;
}

size_t kq_detokenize_token(const kq_tokenizer *t, int32_t id, char *buf, size_t cap) {
    if (!t || id < 0 || id >= t->n) return 0;
    if (!buf) cap = 0;
    const char *p = t->blob + t->off[id];
    const size_t n = t->len[id];
    switch (t->type[id]) {
    case TT_USER_DEFINED:
        return kq_put(buf, cap, 0, p, n);
    case TT_BYTE: {
        /* "<0xNN>": llama.cpp reads the two hex digits at offset 3 */
        const int hi = n >= 5 ? kq_hex_digit(p[3]) : -1, lo = n >= 5 ? kq_hex_digit(p[4]) : -1;
        if (hi < 0 || lo < 0) return 0;
        const char b = (char)(hi * 16 + lo);
        return kq_put(buf, cap, 0, &b, 1);
    }
    case TT_NORMAL: {
        size_t at = 0;
        for (size_t i = 0; i < n;) {
            if (n - i >= 3 && !memcmp(p + i, "\xe2\x96\x81", 3)) {
                at = kq_put(buf, cap, at, " ", 1);
                i += 3;
            } else at = kq_put(buf, cap, at, p + i++, 1);
        }
        return at;
    }
    default: /* CONTROL, UNKNOWN, UNUSED and types llama.cpp does not know */
        return 0;
    }
}

int kq_text_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen) {
    if (kq_read_whole_file(path, 0, text, len, err, errlen) != 0) return -1;
    /* as llama.cpp's -f: one trailing newline is not part of the text */
    if (*len && (*text)[*len - 1] == '\n') (*text)[--*len] = '\0';
    return 0;
}
