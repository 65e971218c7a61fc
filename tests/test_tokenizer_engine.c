/* Tests of the engine tokenizer (engine/tokenizer.h):
 *  1. stories260K's vocabulary (../shared, skipped when absent) against ids that SentencePiece itself
 *     produced (an independent oracle, see kq_oracle below);
 *  2. the same vocabulary against a deliberately naive tokenizer written here from the rule alone
 *     (rescan every adjacent pair, merge the best, repeat), on real lines and on random strings full
 *     of repeated letters that exercise the leftmost tie-break;
 *  3. properties: empty text, BOS, ids in range, the output buffer contract, detokenize(tokenize(x))
 *     == x on whole files, and the time of a 1.3 MB text (printed, not asserted);
 *  4. small vocabularies written here as GGUF: equal scores, user-defined pieces, the dummy prefix
 *     after them, unknown fallback without byte tokens, duplicate pieces, flags, special ids;
 *  5. errors: no tokenizer, no tokens, a non-SentencePiece model, bad arrays; kq_text_read_file.
 * `test_tokenizer_engine --write-spm-model OUT` writes the SentencePiece model the oracle ids came from
 * (tests/tokenize_test.sh feeds it to spm_encode) and exits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spm_vocab.h" /* only for --write-spm-model */
#include "tokenizer.h"
#include "gguf.h"
#include "kq_test.h"

#define ORACLE_MAX 96

/* Expected ids (without BOS) of stories260K's vocabulary, produced OUTSIDE kq by SentencePiece 0.1.97
 * (Debian python3-sentencepiece, the library behind spm_encode): tok512.bin was read with
 * kq_llama2c_tokenizer_read and written as a SentencePiece BPE model with kq_spm_write
 * (byte_fallback, add_dummy_prefix, remove_extra_whitespaces = false as in Llama's own model), then
 *     sp = sentencepiece.SentencePieceProcessor(model_file="tok512.model"); sp.encode(text)
 * (the whole text at once, so newlines inside are kept; spm_encode gives the same ids line by line).
 * Non-ASCII is written as octal escapes of its UTF-8 bytes. */
static const struct {
    const char *text;
    int32_t ids[ORACLE_MAX];
    int n;
} kq_oracle[] = {
    {"Once upon a time, there was a little girl named Lily.",
     {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}, 15},
    {"Spot. Spot saw the shiny car and said, \"Wow, Kitty, your car is so bright and clean!\"",
     {301, 427, 309, 426, 301, 427, 309, 394, 265, 262, 415, 271, 422, 280, 295, 269, 336, 432, 313, 448, 327, 432, 410, 462, 362, 422, 432, 364, 420, 280, 295, 410, 293, 384, 268, 325, 428, 415, 413, 269, 280, 305, 303, 443, 436}, 45},
    {"Hello  world",
     {346, 306, 414, 410, 263, 304, 341}, 7},
    {"   three leading spaces",
     {410, 410, 410, 308, 276, 411, 278, 411, 380, 299, 262, 427, 412, 331, 419}, 15},
    {"trailing spaces   ",
     {259, 420, 412, 290, 299, 262, 427, 412, 331, 419, 410, 410, 410}, 13},
    {" ",
     {410, 410}, 2},
    {"Numbers: 0 1 42 3.14159 1,000,000 and 2024-01-31",
     {410, 458, 425, 423, 430, 285, 419, 467, 410, 477, 410, 475, 410, 484, 479, 410, 472, 426, 475, 484, 475, 480, 483, 410, 475, 432, 477, 477, 477, 432, 477, 477, 477, 269, 410, 479, 477, 479, 484, 464, 477, 475, 464, 472, 475}, 45},
    {"Punctuation!? (yes); [no]: {maybe} - 'single' #hash $5 @at 100% a&b *star* ~tilde^ `tick` |pipe| back\\slash",
     {410, 460, 379, 429, 413, 425, 294, 417, 289, 443, 450, 410, 489, 422, 406, 488, 474, 410, 508, 416, 414, 509, 467, 410, 126, 423, 283, 430, 411, 128, 410, 464, 410, 439, 419, 299, 305, 439, 410, 38, 415, 412, 419, 415, 410, 494, 480, 410, 67, 294, 410, 475, 477, 477, 501, 261, 499, 430, 410, 497, 356, 295, 497, 410, 510, 413, 290, 418, 411, 97, 410, 495, 413, 417, 340, 495, 410, 506, 427, 417, 427, 411, 506, 268, 412, 340, 500, 419, 421, 412, 419, 415}, 92},
    {"line one\nline two\n\nline four\n",
     {278, 271, 411, 353, 411, 13, 421, 271, 411, 259, 424, 414, 13, 13, 421, 271, 411, 272, 277, 420, 13}, 21},
    {"tab\tseparated\tvalues",
     {259, 412, 430, 12, 372, 427, 295, 294, 266, 12, 435, 412, 421, 425, 406}, 15},
    {"CRLF line\r\nnext line\r\n",
     {410, 457, 461, 438, 453, 278, 271, 411, 16, 13, 416, 411, 444, 413, 278, 271, 411, 16, 13}, 19},
    {"caf\303\251 na\303\257ve r\303\251sum\303\251 se\303\261or",
     {280, 412, 431, 485, 297, 412, 198, 178, 360, 352, 485, 419, 425, 423, 485, 262, 411, 493, 304}, 19},
    {"\344\270\255\346\226\207\346\265\213\350\257\225",
     {410, 231, 187, 176, 233, 153, 138, 233, 184, 142, 235, 178, 152}, 13},
    {"emoji \360\237\230\200\360\237\216\211 done",
     {344, 423, 414, 449, 417, 410, 243, 162, 155, 131, 243, 162, 145, 140, 279, 289, 411}, 17},
    {"\342\200\234Hello,\342\200\235 she said. \342\200\230It\342\200\231s mine\342\200\231 \342\200\224 he said\342\200\246 \342\200\223 ok",
     {410, 465, 440, 411, 306, 414, 432, 466, 358, 336, 426, 410, 482, 442, 413, 468, 419, 284, 271, 411, 468, 410, 481, 281, 336, 486, 410, 476, 334, 433}, 30},
    {"aaaaaaa eeeee oooooo ll ll lll",
     {261, 412, 412, 412, 412, 412, 412, 344, 411, 411, 411, 411, 334, 347, 347, 414, 278, 421, 278, 421, 278, 306}, 22},
    {"<s> and </s> and <unk> are plain text here",
     {410, 504, 419, 505, 269, 410, 504, 492, 419, 505, 269, 410, 504, 379, 433, 505, 261, 276, 324, 412, 271, 259, 411, 444, 413, 281, 276}, 27},
    {"hair\342\200\212space and \302\240nbsp",
     {300, 315, 511, 419, 427, 412, 331, 269, 410, 498, 416, 430, 419, 427}, 14},
    {"Lily and Ben were friends. They liked to play in the park. One day, they saw a big dog.",
     {317, 269, 368, 302, 382, 276, 374, 419, 426, 342, 397, 355, 267, 337, 322, 265, 282, 295, 433, 426, 385, 328, 432, 366, 394, 261, 370, 400, 428, 426}, 30},
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Tokenizes into a fresh buffer; *n = -1 on error. */
static int32_t *tok_all(const kq_tokenizer *t, const char *s, size_t len, int bos, int64_t *n) {
    *n = kq_tokenize(t, s, len, bos, NULL, 0);
    if (*n < 0) return NULL;
    int32_t *ids = malloc((size_t)(*n + 1) * sizeof(*ids));
    if (!ids) {
        *n = -1;
        return NULL;
    }
    const int64_t m = kq_tokenize(t, s, len, bos, ids, *n);
    if (m != *n) *n = -1;
    return ids;
}

static int ids_equal(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(*a)) == 0);
}

static void print_ids(const char *what, const int32_t *ids, int64_t n) {
    printf("  %s:", what);
    for (int64_t i = 0; i < n && i < 64; i++) printf(" %d", (int)ids[i]);
    printf("%s\n", n > 64 ? " ..." : "");
}

/* ------------------------------------------------------------------ 1. the SentencePiece oracle */

static void test_oracle(const kq_tokenizer *t) {
    int bad = 0;
    for (size_t c = 0; c < sizeof(kq_oracle) / sizeof(kq_oracle[0]); c++) {
        const char *s = kq_oracle[c].text;
        int64_t n, nb;
        int32_t *ids = tok_all(t, s, strlen(s), 0, &n);
        int32_t *idb = tok_all(t, s, strlen(s), 1, &nb);
        const int ok = ids && ids_equal(ids, n, kq_oracle[c].ids, kq_oracle[c].n);
        KQ_CHECK(ok, "oracle case %zu (\"%.40s\"): %lld ids, SentencePiece has %d", c, s, (long long)n,
                 kq_oracle[c].n);
        if (!ok && bad++ < 3) {
            print_ids("kq", ids, n);
            print_ids("SentencePiece", kq_oracle[c].ids, kq_oracle[c].n);
        }
        KQ_CHECK(idb && nb == n + 1 && idb[0] == 1 && ids && ids_equal(idb + 1, nb - 1, ids, n),
                 "oracle case %zu with BOS: BOS then the same ids", c);
        free(ids);
        free(idb);
    }
}

/* ------------------------------------------------------------------ 2. a naive tokenizer */

/* The vocabulary straight from the GGUF, sorted for bsearch: independent of the code under test. */
typedef struct {
    const char *s;
    size_t n;
    int32_t id;
    float score;
} nv_piece;

typedef struct {
    nv_piece *p;
    int32_t n;
} nv_vocab;

static int nv_cmp_bytes(const char *a, size_t na, const char *b, size_t nb) {
    const int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

static int nv_cmp(const void *x, const void *y) {
    const nv_piece *a = x, *b = y;
    const int c = nv_cmp_bytes(a->s, a->n, b->s, b->n);
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

static int nv_load(const kq_gguf *g, nv_vocab *v) {
    const int64_t kt = kq_gguf_find_key(g, "tokenizer.ggml.tokens");
    const int64_t ks = kq_gguf_find_key(g, "tokenizer.ggml.scores");
    if (kt < 0 || ks < 0) return -1;
    v->n = (int32_t)kq_gguf_arr_count(g, kt);
    v->p = calloc((size_t)v->n, sizeof(*v->p));
    const char *scores = kq_gguf_arr_data(g, ks);
    if (!v->p || !scores) return -1;
    for (int32_t i = 0; i < v->n; i++) {
        kq_gguf_arr_str(g, kt, (uint64_t)i, &v->p[i].s, &v->p[i].n);
        v->p[i].id = i;
        memcpy(&v->p[i].score, scores + 4 * i, 4);
    }
    qsort(v->p, (size_t)v->n, sizeof(*v->p), nv_cmp);
    return 0;
}

/* The piece equal to s, the highest id among equal ones; NULL if none. */
static const nv_piece *nv_find(const nv_vocab *v, const char *s, size_t n) {
    int32_t lo = 0, hi = v->n - 1;
    const nv_piece *found = NULL;
    while (lo <= hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        const int c = nv_cmp_bytes(v->p[mid].s, v->p[mid].n, s, n);
        if (c == 0) found = &v->p[mid];
        if (c <= 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return found;
}

/* The rule, done the slow way: O(n^2) per text. Returns the id count (at most cap written). */
static int64_t nv_tokenize(const nv_vocab *v, const char *text, size_t len, int32_t *out, int64_t cap) {
    if (len == 0) return 0; /* no text, no dummy prefix either */
    char *e = malloc(3 * len + 4);
    size_t *st = malloc((3 * len + 4) * sizeof(*st)), *sn = malloc((3 * len + 4) * sizeof(*sn));
    size_t el = 0, ns = 0;
    memcpy(e, "\xe2\x96\x81", 3); /* the dummy prefix, escaped */
    el = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(e + el, "\xe2\x96\x81", 3);
            el += 3;
        } else e[el++] = text[i];
    }
    for (size_t i = 0; i < el;) {
        const unsigned char c = (unsigned char)e[i];
        size_t l = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        if (l > el - i) l = el - i;
        st[ns] = i;
        sn[ns++] = l;
        i += l;
    }
    for (;;) {
        size_t best = ns;
        float best_score = 0.0f;
        for (size_t i = 0; i + 1 < ns; i++) {
            const nv_piece *p = nv_find(v, e + st[i], sn[i] + sn[i + 1]);
            if (p && (best == ns || p->score > best_score)) { /* strictly better: the leftmost wins ties */
                best = i;
                best_score = p->score;
            }
        }
        if (best == ns) break;
        sn[best] += sn[best + 1];
        memmove(st + best + 1, st + best + 2, (ns - best - 2) * sizeof(*st));
        memmove(sn + best + 1, sn + best + 2, (ns - best - 2) * sizeof(*sn));
        ns--;
    }
    int64_t n = 0;
    for (size_t i = 0; i < ns; i++) {
        const nv_piece *p = nv_find(v, e + st[i], sn[i]);
        if (p) {
            if (n < cap) out[n] = p->id;
            n++;
            continue;
        }
        for (size_t j = 0; j < sn[i]; j++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned char)e[st[i] + j]);
            const nv_piece *b = nv_find(v, name, 6);
            if (n < cap) out[n] = b ? b->id : -1;
            n++;
        }
    }
    free(e);
    free(st);
    free(sn);
    return n;
}

/* One text through both; prints the first few differences. */
static int nv_compare(const kq_tokenizer *t, const nv_vocab *v, const char *s, size_t len, int *shown) {
    int64_t n;
    int32_t *ids = tok_all(t, s, len, 0, &n);
    int32_t *ref = malloc((3 * len + 8) * sizeof(*ref));
    const int64_t nr = nv_tokenize(v, s, len, ref, (int64_t)(3 * len + 8));
    const int ok = ids && ids_equal(ids, n, ref, nr);
    if (!ok && (*shown)++ < 3) {
        printf("  naive tokenizer differs on \"%.60s\"\n", s);
        print_ids("kq", ids, n);
        print_ids("naive", ref, nr);
    }
    free(ids);
    free(ref);
    return ok;
}

/* Lines of at most max_len bytes (short ones: the naive tokenizer is quadratic). */
static void test_naive_lines(const kq_tokenizer *t, const nv_vocab *v, const char *rel, int want, size_t max_len) {
    char path[512];
    kq_test_shared_path(rel, path, sizeof path);
    size_t len;
    char *text = kq_test_read_file(path, &len);
    if (!text) {
        KQ_SKIP("naive comparison: %s not found", path);
        return;
    }
    int done = 0, bad = 0, shown = 0;
    for (size_t at = 0; at < len && done < want;) {
        const char *nl = memchr(text + at, '\n', len - at);
        const size_t end = nl ? (size_t)(nl - text) : len;
        if (end - at > 0 && end - at <= max_len) {
            bad += !nv_compare(t, v, text + at, end - at, &shown);
            done++;
        }
        at = end + 1;
    }
    KQ_CHECK(bad == 0 && done == want, "%s: %d of %d lines differ from the naive tokenizer", rel, bad, done);
    free(text);
}

/* Random strings from a small alphabet with many repeats ("lll", "oooo"): equal-score pairs side by
 * side, where only the leftmost rule decides. */
static void test_naive_random(const kq_tokenizer *t, const nv_vocab *v) {
    static const char *const alpha[] = {"a", "e", "o", "l", "l", "t", "h", "n", " ", " ", "\n",
                                        "\xc3\xa9", "\xe2\x80\x99", "d", "i", "s", "\xe2\x96\x81"};
    const int na = (int)(sizeof(alpha) / sizeof(alpha[0]));
    uint32_t seed = 12345;
    int bad = 0, shown = 0;
    char s[400];
    for (int k = 0; k < 300; k++) {
        size_t len = 0;
        seed = seed * 1664525u + 1013904223u;
        const int chars = 1 + (int)(seed >> 24) % 80;
        for (int c = 0; c < chars; c++) {
            seed = seed * 1664525u + 1013904223u;
            const char *a = alpha[(seed >> 16) % (uint32_t)na];
            memcpy(s + len, a, strlen(a));
            len += strlen(a);
        }
        s[len] = '\0';
        bad += !nv_compare(t, v, s, len, &shown);
    }
    KQ_CHECK(bad == 0, "%d of 300 random strings differ from the naive tokenizer", bad);
    /* any bytes at all: invalid UTF-8, lone continuation bytes, truncated sequences, NUL */
    bad = 0;
    for (int k = 0; k < 200; k++) {
        seed = seed * 1664525u + 1013904223u;
        const size_t len = (seed >> 24) % 60;
        for (size_t c = 0; c < len; c++) {
            seed = seed * 1664525u + 1013904223u;
            s[c] = (char)(seed >> 24);
        }
        bad += !nv_compare(t, v, s, len, &shown);
    }
    KQ_CHECK(bad == 0, "%d of 200 random byte strings differ from the naive tokenizer", bad);
}

/* ------------------------------------------------------------------ 3. properties */

static void test_basics(const kq_tokenizer *t) {
    int32_t ids[8] = {-7, -7, -7, -7, -7, -7, -7, -7};
    KQ_CHECK(kq_tokenizer_n_vocab(t) == 512 && kq_tokenizer_bos(t) == 1 && kq_tokenizer_eos(t) == 2 &&
                 kq_tokenizer_unk(t) == 0,
             "stories260K: 512 pieces, bos 1, eos 2, unk 0 (shared/README.md)");
    KQ_CHECK(kq_tokenizer_add_bos(t) == 1 && kq_tokenizer_add_eos(t) == 0 && kq_tokenizer_add_space_prefix(t) == 1,
             "stories260K: no add_* keys, so llama.cpp's SentencePiece defaults: BOS yes, EOS no, prefix yes");
    KQ_CHECK(kq_tokenize(t, "", 0, 1, ids, 8) == 1 && ids[0] == 1 && ids[1] == -7, "empty text with BOS: just BOS");
    KQ_CHECK(kq_tokenize(t, "", 0, 0, ids, 8) == 0, "empty text without BOS: nothing");
    KQ_CHECK(kq_tokenize(t, NULL, 0, 0, NULL, 0) == 0, "NULL text of length 0");
    /* "Hello  world" is 7 ids (oracle): with max 3 only 3 are written, the count is still 8 with BOS */
    int32_t small[5] = {-7, -7, -7, -7, -7};
    KQ_CHECK(kq_tokenize(t, "Hello  world", 12, 1, small, 3) == 8 && small[0] == 1 && small[1] == 346 &&
                 small[2] == 306 && small[3] == -7,
             "a short buffer: the full count returned, only max ids written");
    KQ_CHECK(kq_tokenize(t, "x", 1, 0, NULL, 5) == -1, "NULL ids with max > 0 is an error");
    size_t len;
    const char *p = kq_token_piece(t, 259, &len);
    KQ_CHECK(p && len == 4 && !memcmp(p, "\xe2\x96\x81t", 4), "piece 259 is U+2581 t (shared/README.md)");
    KQ_CHECK(kq_token_piece(t, 512, &len) == NULL && len == 0 && kq_token_piece(t, -1, NULL) == NULL,
             "pieces out of range: NULL");
    KQ_CHECK(kq_token_type(t, 0) == 2 && kq_token_type(t, 1) == 3 && kq_token_type(t, 3) == 6 && kq_token_type(t, 300) == 1,
             "token types as the GGUF stores them");
    char buf[16];
    KQ_CHECK(kq_detokenize_token(t, 259, buf, sizeof buf) == 2 && !memcmp(buf, " t", 2), "detokenize U+2581 t -> \" t\"");
    KQ_CHECK(kq_detokenize_token(t, 3 + 0x41, buf, sizeof buf) == 1 && buf[0] == 'A', "detokenize <0x41> -> 'A'");
    KQ_CHECK(kq_detokenize_token(t, 3 + 0xe2, buf, sizeof buf) == 1 && (unsigned char)buf[0] == 0xe2,
             "detokenize <0xE2> -> the raw byte 0xE2");
    KQ_CHECK(kq_detokenize_token(t, 1, buf, sizeof buf) == 0 && kq_detokenize_token(t, 2, buf, sizeof buf) == 0 &&
                 kq_detokenize_token(t, 0, buf, sizeof buf) == 0,
             "control and unknown tokens detokenize to \"\"");
    buf[0] = 'z';
    KQ_CHECK(kq_detokenize_token(t, 259, buf, 1) == 2 && buf[0] == ' ', "a 1-byte buffer: full length, 1 byte written");
    KQ_CHECK(kq_detokenize_token(t, 259, NULL, 0) == 2 && kq_detokenize_token(t, 9999, buf, 16) == 0,
             "length query; out of range gives 0");
}

/* Whole file: ids in range, detokenized back to the same bytes, and the time it takes. */
static void test_file(const kq_tokenizer *t, const char *rel) {
    char path[512];
    kq_test_shared_path(rel, path, sizeof path);
    size_t len;
    char *text = kq_test_read_file(path, &len);
    if (!text) {
        KQ_SKIP("%s not found", path);
        return;
    }
    const double t0 = now_s();
    int64_t n;
    int32_t *ids = tok_all(t, text, len, 1, &n);
    const double dt = now_s() - t0;
    KQ_CHECK(ids && n > 1 && ids[0] == 1, "%s: tokenized", rel);
    if (!ids || n < 1) {
        free(text);
        return;
    }
    printf("  %s: %zu bytes -> %lld ids in %.3f s (two passes: count, then write)\n", rel, len, (long long)n, dt);
    int64_t out_of_range = 0;
    for (int64_t i = 0; i < n; i++) out_of_range += ids[i] < 0 || ids[i] >= 512;
    KQ_CHECK(out_of_range == 0, "%s: %lld ids out of range", rel, (long long)out_of_range);
    char *back = malloc(len + 64);
    size_t at = 0;
    int overflow = 0;
    for (int64_t i = 1; i < n && !overflow; i++) { /* skip BOS */
        const size_t k = kq_detokenize_token(t, ids[i], back + at, len + 64 - at);
        overflow = at + k > len + 64;
        at += k;
    }
    /* the dummy prefix adds one leading space */
    KQ_CHECK(!overflow && at == len + 1 && back[0] == ' ' && !memcmp(back + 1, text, len),
             "%s: detokenize(tokenize(text)) == \" \" + text (%zu bytes back for %zu)", rel, at, len);
    free(back);
    free(ids);
    free(text);
}

/* ------------------------------------------------------------------ 4, 5. small vocabularies */

static char g_dir[64];

typedef struct {
    const char *model;   /* NULL: no tokenizer.ggml.model key */
    int n;               /* 0: no tokens key */
    const char *const *pieces;
    const float *scores; /* NULL: no key */
    int n_scores;
    const int32_t *types;
    int add_bos, add_space_prefix; /* -1: no key */
    int64_t bos_id;                /* -1: no key */
} vocab_spec;

static kq_gguf *write_vocab(const char *name, const vocab_spec *v) {
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    kq_gguf_writer *w = kq_gguf_writer_new();
    int rc = kq_gguf_set_str(w, "general.architecture", "llama");
    if (v->model) rc |= kq_gguf_set_str(w, "tokenizer.ggml.model", v->model);
    if (v->n) rc |= kq_gguf_set_arr_str(w, "tokenizer.ggml.tokens", v->pieces, NULL, (uint64_t)v->n);
    if (v->scores) rc |= kq_gguf_set_arr(w, "tokenizer.ggml.scores", KQ_GGUF_F32, v->scores, (uint64_t)v->n_scores);
    if (v->types) rc |= kq_gguf_set_arr(w, "tokenizer.ggml.token_type", KQ_GGUF_I32, v->types, (uint64_t)v->n);
    if (v->add_bos >= 0) rc |= kq_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    if (v->add_space_prefix >= 0) rc |= kq_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix);
    if (v->bos_id >= 0) rc |= kq_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos_id);
    rc |= kq_gguf_write_begin(w, path, err, sizeof err) || kq_gguf_write_finish(w, err, sizeof err);
    kq_gguf_writer_free(w);
    kq_gguf *g = NULL;
    if (rc || kq_gguf_open(path, &g, err, sizeof err)) {
        printf("  cannot write %s: %s\n", path, err);
        return NULL;
    }
    return g;
}

/* Tokenizes s with the vocabulary and compares with the expected ids. */
static void expect(const kq_tokenizer *t, const char *s, int bos, const int32_t *want, int64_t nw, const char *why) {
    int64_t n;
    int32_t *ids = tok_all(t, s, strlen(s), bos, &n);
    const int ok = ids && ids_equal(ids, n, want, nw);
    KQ_CHECK(ok, "%s: \"%s\"", why, s);
    if (!ok) {
        print_ids("got", ids, n);
        print_ids("want", want, nw);
    }
    free(ids);
}
#define EXPECT(t, s, bos, why, ...)                                                                                  \
    do {                                                                                                             \
        const int32_t w_[] = {__VA_ARGS__};                                                                          \
        expect(t, s, bos, w_, (int64_t)(sizeof(w_) / sizeof(w_[0])), why);                                          \
    } while (0)

/*  0 <unk>  1 <s>  2 </s>  3 a  4 b  5 ab  6 ba  7 <pad> (user-defined)  8 U+2581  9 <pad>x (user-defined)
 * 10 U+2581a: "ab" and "ba" have the same score; no byte tokens. */
static const char *const k_pieces[] = {"<unk>", "<s>", "</s>", "a", "b", "ab", "ba", "<pad>", "\xe2\x96\x81",
                                       "<pad>x", "\342\226\201a"};
static const float k_scores[] = {0, 0, 0, -10, -10, -1, -1, 0, -20, 0, -30};
static const int32_t k_types[] = {2, 3, 3, 1, 1, 1, 1, 4, 1, 4, 1};
#define K_N 11

static void test_small_vocab(void) {
    char err[512];
    vocab_spec v = {"llama", K_N, k_pieces, k_scores, K_N, k_types, 0, 0, -1};
    kq_gguf *g = write_vocab("small.gguf", &v);
    kq_tokenizer *t = NULL;
    KQ_CHECK(g && kq_tokenizer_from_gguf(g, &t, err, sizeof err) == 0, "small vocabulary loads: %s", g ? err : "-");
    kq_gguf_close(g); /* the tokenizer owns copies */
    if (!t) return;
    KQ_CHECK(kq_tokenizer_add_bos(t) == 0 && kq_tokenizer_add_space_prefix(t) == 0 && kq_tokenizer_bos(t) == 1,
             "add_bos_token false and add_space_prefix false are read; bos keeps the default 1");
    EXPECT(t, "aba", 0, "equal scores: the leftmost pair merges first", 5, 3);
    EXPECT(t, "bab", 0, "equal scores: the leftmost pair merges first", 6, 4);
    EXPECT(t, "abab", 0, "equal scores, then the new pair", 5, 5);
    EXPECT(t, "acb", 0, "no byte tokens: an unknown character becomes <unk>", 3, 0, 4);
    EXPECT(t, "a\303\251b", 0, "no byte tokens: one <unk> for a 2-byte character", 3, 0, 4);
    EXPECT(t, "a<pad>b", 0, "a user-defined piece in the text is its id", 3, 7, 4);
    EXPECT(t, "<pad>x<pad>", 0, "the longer user-defined piece is cut first", 9, 7);
    EXPECT(t, "<s>", 0, "control pieces in the text are plain text (parse_special = false)", 0, 0, 0);
    EXPECT(t, "", 1, "explicit BOS even when the vocabulary does not add it", 1);
    EXPECT(t, "a a", 0, "no dummy prefix; the inner space is U+2581 and joins the next a", 3, 10);
    EXPECT(t, "a ", 0, "a trailing space alone is the U+2581 piece", 3, 8);
    kq_tokenizer_free(t);

    /* the same pieces with the dummy prefix: it goes before the first stretch and after each user-defined piece */
    vocab_spec vp = {"llama", K_N, k_pieces, k_scores, K_N, k_types, -1, 1, 0xffffffffLL};
    g = write_vocab("prefix.gguf", &vp);
    t = NULL;
    KQ_CHECK(g && kq_tokenizer_from_gguf(g, &t, err, sizeof err) == 0, "prefix vocabulary loads: %s", g ? err : "-");
    kq_gguf_close(g);
    if (!t) return;
    KQ_CHECK(kq_tokenizer_add_bos(t) == 1 && kq_tokenizer_bos(t) == 1,
             "bos_token_id 0xFFFFFFFF (outside the vocabulary) keeps the default 1, as llama.cpp does");
    EXPECT(t, "a", 0, "dummy prefix: U+2581 a is a piece", 10);
    EXPECT(t, "a<pad>b", 1, "dummy prefix again after a user-defined piece", 1, 10, 7, 8, 4);
    EXPECT(t, "<pad>", 0, "a text that is one user-defined piece: no prefix token", 7);
    kq_tokenizer_free(t);

    /* duplicate pieces: the last id wins (llama.cpp's token_to_id map); no scores, no types */
    static const char *const dup[] = {"<unk>", "<s>", "</s>", "x", "x"};
    vocab_spec vd = {"llama", 5, dup, NULL, 0, NULL, -1, 0, -1};
    g = write_vocab("dup.gguf", &vd);
    t = NULL;
    KQ_CHECK(g && kq_tokenizer_from_gguf(g, &t, err, sizeof err) == 0, "vocabulary without scores/types loads: %s",
             g ? err : "-");
    kq_gguf_close(g);
    if (!t) return;
    EXPECT(t, "x", 0, "a duplicate piece: the last id", 4);
    char b[8];
    KQ_CHECK(kq_token_type(t, 1) == 1 && kq_detokenize_token(t, 1, b, sizeof b) == 3 && !memcmp(b, "<s>", 3),
             "without token types every piece is NORMAL (so <s> detokenizes as text)");
    kq_tokenizer_free(t);
}

static void expect_error(const char *name, const vocab_spec *v, const char *needle, const char *why) {
    char err[512] = "";
    kq_gguf *g = write_vocab(name, v);
    kq_tokenizer *t = (kq_tokenizer *)1;
    const int rc = g ? kq_tokenizer_from_gguf(g, &t, err, sizeof err) : 0;
    KQ_CHECK(g && rc == -1 && t == NULL && strstr(err, needle) && strstr(err, name),
             "%s: an error naming the file and '%s' (got \"%s\")", why, needle, err);
    kq_gguf_close(g);
}

static void test_errors(void) {
    vocab_spec none = {NULL, 0, NULL, NULL, 0, NULL, -1, -1, -1};
    expect_error("none.gguf", &none, "no tokenizer", "a GGUF without any tokenizer key");
    vocab_spec notok = {"llama", 0, NULL, NULL, 0, NULL, -1, -1, -1};
    expect_error("notok.gguf", &notok, "tokenizer.ggml.tokens", "tokenizer.ggml.model without tokens");
    vocab_spec gpt2 = {"gpt2", K_N, k_pieces, k_scores, K_N, k_types, -1, -1, -1};
    expect_error("gpt2.gguf", &gpt2, "'gpt2'", "a BPE (gpt2) vocabulary");
    vocab_spec bert = {"bert", K_N, k_pieces, NULL, 0, NULL, -1, -1, -1};
    expect_error("bert.gguf", &bert, "'bert'", "a WordPiece (bert) vocabulary");
    vocab_spec short_scores = {"llama", K_N, k_pieces, k_scores, K_N - 1, NULL, -1, -1, -1};
    expect_error("scores.gguf", &short_scores, "tokenizer.ggml.scores", "scores with one element too few");
    char err[64];
    kq_tokenizer *t = (kq_tokenizer *)1;
    KQ_CHECK(kq_tokenizer_from_gguf(NULL, &t, err, sizeof err) == -1 && t == NULL, "NULL file: an error");
    kq_tokenizer_free(NULL);
    KQ_CHECK(kq_tokenize(NULL, "a", 1, 0, NULL, 0) == -1, "NULL tokenizer: -1");
}

static void test_read_file(void) {
    static const struct {
        const char *in, *out;
    } c[] = {{"ab\n\n", "ab\n"}, {"x\r\n", "x\r"}, {"no newline", "no newline"}, {"\n", ""}, {"", ""}};
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/text.txt", g_dir);
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        FILE *f = fopen(path, "wb");
        fputs(c[i].in, f);
        fclose(f);
        char *text = NULL;
        size_t len = 99;
        const int rc = kq_text_read_file(path, &text, &len, err, sizeof err);
        KQ_CHECK(rc == 0 && len == strlen(c[i].out) && !memcmp(text, c[i].out, len) && text[len] == '\0',
                 "kq_text_read_file: case %zu drops exactly one trailing LF", i);
        free(text);
    }
    remove(path);
    char *text = (char *)1;
    size_t len = 5;
    KQ_CHECK(kq_text_read_file(path, &text, &len, err, sizeof err) == -1 && text == NULL && len == 0 &&
                 strstr(err, "text.txt"),
             "kq_text_read_file: a missing file is an error naming it");
    KQ_CHECK(kq_text_read_file(g_dir, &text, &len, err, sizeof err) == -1 && strstr(err, "directory"),
             "kq_text_read_file: a directory is an error");
}

/* The test preparation step: tok512.bin -> a SentencePiece model with Llama's normalizer settings. */
static int write_spm_model(const char *out) {
    char path[512], err[1024];
    kq_test_shared_path("models/stories260K/tok512.bin", path, sizeof path);
    kq_vocab v;
    kq_vocab_init(&v);
    int rc = kq_llama2c_tokenizer_read(path, 512, &v, err, sizeof err);
    if (rc == 0) {
        v.spm_model_type = KQ_SPM_BPE;
        v.byte_fallback = 1;
        v.add_dummy_prefix = 1;
        v.remove_extra_whitespaces = 0; /* llama.cpp never collapses spaces; Llama's model says false too */
        rc = kq_spm_write(out, &v, err, sizeof err);
    }
    kq_vocab_free(&v);
    if (rc) fprintf(stderr, "test_tokenizer_engine: %s\n", err);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-spm-model")) return write_spm_model(argv[2]);
    (void)argc;
    snprintf(g_dir, sizeof g_dir, "/tmp/kq_test_tok.XXXXXX");
    if (!mkdtemp(g_dir)) {
        KQ_CHECK(0, "cannot create a scratch folder");
        return kq_test_finish();
    }
    test_small_vocab();
    test_errors();
    test_read_file();

    char path[512], err[1024];
    kq_test_shared_path("models/stories260K/stories260K.gguf", path, sizeof path);
    kq_gguf *g = NULL;
    kq_tokenizer *t = NULL;
    if (access(path, R_OK) != 0) {
        KQ_SKIP("stories260K: %s not found", path);
    } else if (kq_gguf_open(path, &g, err, sizeof err) || kq_tokenizer_from_gguf(g, &t, err, sizeof err)) {
        KQ_CHECK(0, "stories260K tokenizer: %s", err);
    } else {
        test_basics(t);
        test_oracle(t);
        nv_vocab v = {NULL, 0};
        KQ_CHECK(nv_load(g, &v) == 0, "naive tokenizer: vocabulary read from the GGUF");
        if (v.p) {
            test_naive_lines(t, &v, "text/tinystories_val.txt", 100, 200);
            test_naive_lines(t, &v, "text/wiki.test.raw", 60, 200);
            test_naive_random(t, &v);
        }
        free(v.p);
        test_file(t, "text/tinystories_val.txt");
        test_file(t, "text/wiki.test.raw");
    }
    kq_tokenizer_free(t);
    kq_gguf_close(g);
    /* the scratch files */
    static const char *const files[] = {"small.gguf", "prefix.gguf", "dup.gguf", "none.gguf", "notok.gguf",
                                        "gpt2.gguf", "bert.gguf", "scores.gguf"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, files[i]);
        remove(path);
    }
    rmdir(g_dir);
    return kq_test_finish();
}
