/* Tests of the tokenizer import (convert/tokenizer.h):
 *  1. kq_spm_write -> kq_spm_read round trip (pieces with raw bytes, scores bit-exact, types, flags), and
 *     the first bytes of the file checked against the protobuf encoding worked out by hand;
 *  2. the writer refuses what SentencePiece refuses, and leaves no file behind;
 *  3. ModelProto bytes built here with unknown fields of every wire type (varint, 64-bit,
 *     length-delimited, 32-bit, groups) in every message; hostile encodings rejected;
 *  4. every truncation of two models parsed without a crash;
 *  5. llama2.c tok512.bin (../shared, skipped when absent) against the facts in shared/README.md and
 *     against stories260K.gguf's tokenizer.ggml.* arrays; llama2.c reader errors;
 *  6. real SentencePiece (spm_export_vocab / spm_encode, when installed) loads what kq_spm_write wrote;
 *  7. Hugging Face special-token JSON: valid, missing, malformed, wrong types, added tokens.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "kq_test.h"
#include "spm_vocab.h"

static char g_dir[64]; /* scratch folder */

static uint32_t t_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float t_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void path_in(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", g_dir, name); }

static int write_text(const char *name, const char *text) {
    char p[256];
    path_in(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void remove_in(const char *name) {
    char p[256];
    path_in(p, sizeof p, name);
    remove(p);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int piece_is(const kq_vocab *v, uint32_t i, const char *s, size_t len) {
    return i < v->n && v->token_lens[i] == len && memcmp(v->tokens[i], s, len) == 0;
}
#define PIECE_IS(v, i, lit) piece_is((v), (i), (lit), sizeof(lit) - 1)

/* ---- a llama-style vocabulary built here ------------------------------------------------------ */

#define RT_EXTRA 8
static const char *const rt_extra[RT_EXTRA] = {"\xE2\x96\x81t", "he", "\xE2\x96\x81", "a\0b", "<sep>", "<unused0>",
                                               "\xE2\x80\x8A", "\xE2\x96\x81the"};
static const size_t rt_extra_len[RT_EXTRA] = {4, 2, 3, 3, 5, 9, 3, 6};
static const int32_t rt_extra_type[RT_EXTRA] = {KQ_TOKEN_NORMAL, KQ_TOKEN_NORMAL, KQ_TOKEN_NORMAL,
                                                KQ_TOKEN_NORMAL, KQ_TOKEN_USER_DEFINED, KQ_TOKEN_UNUSED,
                                                KQ_TOKEN_NORMAL, KQ_TOKEN_NORMAL};
/* -0, a NaN with a payload, a denormal, -inf, huge, 1/3 */
static const uint32_t rt_extra_score[RT_EXTRA] = {0x80000000u, 0x7fc12345u, 0x00000001u, 0xff800000u,
                                                  0xf149f2cau, 0x3eaaaaabu, 0xbf800000u, 0xc2000000u};

static void build_vocab(kq_vocab *v, int with_nul_piece) {
    kq_vocab_init(v);
    kq_vocab_alloc(v, 3 + 256 + RT_EXTRA);
    kq_vocab_set_piece(v, 0, "<unk>", 5);
    kq_vocab_set_piece(v, 1, "<s>", 3);
    kq_vocab_set_piece(v, 2, "</s>", 4);
    v->types[0] = KQ_TOKEN_UNKNOWN;
    v->types[1] = v->types[2] = KQ_TOKEN_CONTROL;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        kq_vocab_set_piece(v, 3 + (uint32_t)b, name, 6);
        v->types[3 + b] = KQ_TOKEN_BYTE;
    }
    for (int k = 0; k < RT_EXTRA; k++) {
        uint32_t id = 259 + (uint32_t)k;
        if (k == 3 && !with_nul_piece) kq_vocab_set_piece(v, id, "ab", 2);
        else kq_vocab_set_piece(v, id, rt_extra[k], rt_extra_len[k]);
        v->types[id] = rt_extra_type[k];
        v->scores[id] = t_float(rt_extra_score[k]);
    }
    v->scores[0] = 0.0f;
    v->scores[1] = t_float(0x80000000u);
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
    v->pad_id = 259 + 4; /* "<sep>" used as pad: any id will do */
    v->byte_fallback = 1;
    v->add_dummy_prefix = 0;
    v->remove_extra_whitespaces = 1;
}

static void test_round_trip(void) {
    kq_vocab v, r;
    char err[512] = "", path[256];
    build_vocab(&v, 1);
    path_in(path, sizeof path, "rt.model");
    int rc = kq_spm_write(path, &v, err, sizeof err);
    KQ_CHECK(rc == 0, "kq_spm_write: %s", err);
    rc = kq_spm_read(path, &r, err, sizeof err);
    KQ_CHECK(rc == 0, "kq_spm_read: %s", err);
    KQ_CHECK(r.n == v.n, "round trip: %u pieces, wrote %u", r.n, v.n);
    uint32_t bad_piece = 0, bad_score = 0, bad_type = 0;
    for (uint32_t i = 0; i < v.n && i < r.n; i++) {
        bad_piece += !piece_is(&r, i, v.tokens[i], v.token_lens[i]);
        bad_score += t_bits(r.scores[i]) != t_bits(v.scores[i]);
        bad_type += r.types[i] != v.types[i];
    }
    KQ_CHECK(bad_piece == 0 && bad_score == 0 && bad_type == 0, "round trip: %u pieces, %u scores, %u types differ",
             bad_piece, bad_score, bad_type);
    KQ_CHECK(r.n > 262 && r.token_lens[262] == 3 && r.tokens[262][1] == '\0' && r.tokens[262][3] == '\0',
             "piece with an embedded NUL keeps its length and is NUL-terminated");
    KQ_CHECK(r.unk_id == 0 && r.bos_id == 1 && r.eos_id == 2 && r.pad_id == 263 && r.sep_id == -1,
             "ids: unk %lld bos %lld eos %lld pad %lld sep %lld", (long long)r.unk_id, (long long)r.bos_id,
             (long long)r.eos_id, (long long)r.pad_id, (long long)r.sep_id);
    KQ_CHECK(r.byte_fallback == 1 && r.add_dummy_prefix == 0 && r.remove_extra_whitespaces == 1 &&
                 r.escape_whitespaces == 1 && r.has_charsmap == 0,
             "flags: byte_fallback %d add_dummy_prefix %d remove_extra_ws %d escape %d charsmap %d", r.byte_fallback,
             r.add_dummy_prefix, r.remove_extra_whitespaces, r.escape_whitespaces, r.has_charsmap);
    KQ_CHECK(r.spm_model_type == KQ_SPM_BPE && r.spm_vocab_size == v.n && strcmp(r.normalizer_name, "identity") == 0 &&
                 r.model && strcmp(r.model, "llama") == 0,
             "model_type %d vocab_size %u normalizer '%s'", r.spm_model_type, r.spm_vocab_size, r.normalizer_name);
    KQ_CHECK(r.add_bos == -1 && r.add_eos == -1, "SentencePiece says nothing about add_bos/add_eos");
    kq_vocab_free(&r);

    /* add_dummy_prefix true, then the file's first piece against the wire format worked out by hand:
     * ModelProto.pieces (field 1, LEN) = 0x0a len; piece (1, LEN) 0x0a 05 "<unk>"; score (2, I32) 0x15 +
     * 4 bytes LE; type UNKNOWN (3, VARINT) 0x18 02. */
    v.add_dummy_prefix = 1;
    v.scores[0] = 1.5f; /* 0x3fc00000 */
    rc = kq_spm_write(path, &v, err, sizeof err);
    size_t len;
    uint8_t *buf = kq_test_read_file(path, &len);
    static const uint8_t first[] = {0x0a, 0x0e, 0x0a, 0x05, '<', 'u', 'n', 'k', '>',
                                    0x15, 0x00, 0x00, 0xc0, 0x3f, 0x18, 0x02};
    KQ_CHECK(rc == 0 && buf && len > sizeof first && memcmp(buf, first, sizeof first) == 0,
             "first piece not encoded as expected by hand");
    free(buf);
    rc = kq_spm_read(path, &r, err, sizeof err);
    KQ_CHECK(rc == 0 && r.add_dummy_prefix == 1 && t_bits(r.scores[0]) == 0x3fc00000u, "add_dummy_prefix 1: %s", err);
    kq_vocab_free(&r);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    KQ_CHECK(!file_exists(tmp), "temp file %s left behind", tmp);
    remove(path);
    kq_vocab_free(&v);
    KQ_CHECK(v.n == 0 && v.tokens == NULL, "kq_vocab_free zeroes the vocabulary");
}

/* ---- writer refusals ---------------------------------------------------------------------------- */

static void expect_write_error(kq_vocab *v, const char *what, const char *needle) {
    char err[512] = "", path[256];
    path_in(path, sizeof path, "bad.model");
    remove(path);
    int rc = kq_spm_write(path, v, err, sizeof err);
    KQ_CHECK(rc == -1 && strstr(err, needle) && strstr(err, "bad.model") && !file_exists(path),
             "writer accepted %s (err '%s')", what, err);
}

static void test_write_refusals(void) {
    kq_vocab v;
    build_vocab(&v, 0);
    kq_vocab_set_piece(&v, 260, "\xE2\x96\x81t", 4); /* same as 259 */
    expect_write_error(&v, "duplicate pieces", "pieces 259 and 260");
    kq_vocab_free(&v);

    build_vocab(&v, 0);
    v.types[0] = KQ_TOKEN_CONTROL;
    v.unk_id = -1;
    expect_write_error(&v, "no unknown piece", "unknown");
    kq_vocab_free(&v);

    build_vocab(&v, 0);
    v.byte_fallback = 0;
    expect_write_error(&v, "byte pieces without byte_fallback", "byte_fallback");
    kq_vocab_free(&v);

    build_vocab(&v, 0);
    v.types[3 + 65] = KQ_TOKEN_NORMAL;
    expect_write_error(&v, "byte_fallback with 255 byte pieces", "found 255");
    kq_vocab_free(&v);

    build_vocab(&v, 0);
    kq_vocab_set_piece(&v, 3 + 10, "<0x0a>", 6);
    expect_write_error(&v, "lower-case byte piece", "<0xNN>");
    kq_vocab_free(&v);

    build_vocab(&v, 0);
    kq_vocab_set_piece(&v, 261, "", 0);
    expect_write_error(&v, "an empty piece", "empty");
    kq_vocab_free(&v);

    build_vocab(&v, 0);
    v.unk_id = 1;
    expect_write_error(&v, "unk_id on a control piece", "unk_id");
    kq_vocab_free(&v);

    build_vocab(&v, 0);
    v.eos_id = v.n;
    expect_write_error(&v, "eos_id out of range", "eos_id");
    kq_vocab_free(&v);

    build_vocab(&v, 0);
    v.types[300 - 35] = 9;
    expect_write_error(&v, "type 9", "type 9");
    kq_vocab_free(&v);

    char err[256] = "";
    KQ_CHECK(kq_spm_write("/nonexistent-dir/x.model", &(kq_vocab){0}, err, sizeof err) == -1 && err[0],
             "empty vocabulary written");
}

/* ---- protobuf built by hand -------------------------------------------------------------------- */

typedef struct {
    uint8_t b[8192];
    size_t n;
} pb;

static void pb_raw(pb *p, const void *s, size_t n) {
    memcpy(p->b + p->n, s, n);
    p->n += n;
}
static void pb_var(pb *p, uint64_t v) {
    while (v >= 0x80) {
        p->b[p->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p->b[p->n++] = (uint8_t)v;
}
static void pb_key(pb *p, uint32_t f, int wt) { pb_var(p, (uint64_t)f << 3 | (uint64_t)wt); }
static void pb_vfield(pb *p, uint32_t f, uint64_t v) {
    pb_key(p, f, 0);
    pb_var(p, v);
}
static void pb_sfield(pb *p, uint32_t f, const void *s, size_t n) {
    pb_key(p, f, 2);
    pb_var(p, n);
    pb_raw(p, s, n);
}
static void pb_msg(pb *p, uint32_t f, const pb *sub) { pb_sfield(p, f, sub->b, sub->n); }
static void pb_f32(pb *p, uint32_t f, uint32_t bits) {
    uint8_t le[4] = {(uint8_t)bits, (uint8_t)(bits >> 8), (uint8_t)(bits >> 16), (uint8_t)(bits >> 24)};
    pb_key(p, f, 5);
    pb_raw(p, le, 4);
}
static void pb_f64(pb *p, uint32_t f, uint64_t bits) {
    pb_key(p, f, 1);
    for (int i = 0; i < 8; i++) p->b[p->n++] = (uint8_t)(bits >> (8 * i));
}
/* one unknown field of each wire type, numbered from base; a group holding a nested group */
static void pb_unknowns(pb *p, uint32_t base) {
    pb_vfield(p, base, 0xffffffffffffffffull); /* 10-byte varint */
    pb_f64(p, base + 1, 0x0123456789abcdefull);
    pb_sfield(p, base + 2, "\x0a\x05junk", 7);
    pb_f32(p, base + 3, 0xdeadbeefu);
    pb_key(p, base + 4, 3);
    pb_vfield(p, 1, 7);
    pb_key(p, 2, 3);
    pb_sfield(p, 1, "x", 1);
    pb_key(p, 2, 4);
    pb_key(p, base + 4, 4);
}

static void add_piece(pb *m, const char *s, uint32_t score_bits, int type, int unknowns) {
    pb p = {.n = 0};
    if (unknowns) pb_unknowns(&p, 200);
    pb_sfield(&p, 1, s, strlen(s));
    if (unknowns) pb_unknowns(&p, 300);
    pb_f32(&p, 2, score_bits);
    if (type) pb_vfield(&p, 3, (uint64_t)type);
    pb_msg(m, 1, &p);
}

/* 4 pieces, trainer_spec, normalizer_spec and self_test_data, unknown fields everywhere */
static void build_handmade(pb *m) {
    m->n = 0;
    pb_unknowns(m, 100);
    add_piece(m, "<unk>", 0, 2, 1);
    add_piece(m, "<s>", 0, 3, 0);
    pb_unknowns(m, 10);
    add_piece(m, "</s>", 0, 3, 0);
    add_piece(m, "\xE2\x96\x81" "a", 0xbfc00000u, 0, 1); /* -1.5, type left to its default */
    pb t = {.n = 0};
    pb_sfield(&t, 1, "corpus.txt", 10); /* input */
    pb_vfield(&t, 3, 2);                /* BPE */
    pb_unknowns(&t, 500);
    pb_vfield(&t, 4, 4);
    pb_f32(&t, 10, 0x3f7fdf3bu); /* character_coverage */
    pb_vfield(&t, 35, 0);
    pb_vfield(&t, 40, 0);
    pb_vfield(&t, 41, 1);
    pb_vfield(&t, 42, 2);
    pb_vfield(&t, 43, (uint64_t)-1); /* pad_id -1: sign-extended, 10 bytes */
    pb_sfield(&t, 45, "<unk>", 5);
    pb_msg(m, 2, &t);
    pb n = {.n = 0};
    pb_sfield(&n, 1, "identity", 8);
    pb_sfield(&n, 2, "", 0);
    pb_unknowns(&n, 600);
    pb_vfield(&n, 3, 0);
    pb_vfield(&n, 4, 0);
    pb_vfield(&n, 5, 1);
    pb_msg(m, 3, &n);
    pb s = {.n = 0};
    pb_sfield(&s, 1, "\x0a\x01x\x12\x01y", 6);
    pb_msg(m, 4, &s);
    pb_unknowns(m, 1000);
}

static void test_handmade(void) {
    static pb m;
    build_handmade(&m);
    kq_vocab v;
    char err[512] = "";
    int rc = kq_spm_parse(m.b, m.n, &v, err, sizeof err);
    KQ_CHECK(rc == 0, "hand-made model with unknown fields: %s", err);
    KQ_CHECK(v.n == 4 && PIECE_IS(&v, 0, "<unk>") && PIECE_IS(&v, 1, "<s>") && PIECE_IS(&v, 2, "</s>") &&
                 PIECE_IS(&v, 3, "\xE2\x96\x81" "a"),
             "hand-made pieces (n %u)", v.n);
    KQ_CHECK(v.n == 4 && v.types[0] == 2 && v.types[1] == 3 && v.types[2] == 3 && v.types[3] == 1, "hand-made types");
    KQ_CHECK(v.n == 4 && t_bits(v.scores[3]) == 0xbfc00000u && t_bits(v.scores[0]) == 0, "hand-made scores");
    KQ_CHECK(v.unk_id == 0 && v.bos_id == 1 && v.eos_id == 2 && v.pad_id == -1, "hand-made ids");
    KQ_CHECK(v.spm_model_type == KQ_SPM_BPE && v.spm_vocab_size == 4 && v.byte_fallback == 0 &&
                 v.add_dummy_prefix == 0 && v.remove_extra_whitespaces == 0 && v.escape_whitespaces == 1 &&
                 v.has_charsmap == 0 && strcmp(v.normalizer_name, "identity") == 0,
             "hand-made flags");
    kq_vocab_free(&v);

    /* no trainer_spec / normalizer_spec: proto2 defaults (unigram, dummy prefix on, ids 0/1/2) */
    pb d = {.n = 0};
    add_piece(&d, "<unk>", 0, 2, 0);
    add_piece(&d, "<s>", 0, 3, 0);
    add_piece(&d, "</s>", 0, 3, 0);
    rc = kq_spm_parse(d.b, d.n, &v, err, sizeof err);
    KQ_CHECK(rc == 0 && v.spm_model_type == KQ_SPM_UNIGRAM && v.add_dummy_prefix == 1 &&
                 v.remove_extra_whitespaces == 1 && v.unk_id == 0 && v.bos_id == 1 && v.eos_id == 2 &&
                 v.pad_id == -1 && v.byte_fallback == 0,
             "defaults: %s", err);
    kq_vocab_free(&v);
}

static void expect_parse_error(const uint8_t *b, size_t n, const char *what, const char *needle) {
    kq_vocab v;
    char err[512] = "";
    int rc = kq_spm_parse(b, n, &v, err, sizeof err);
    KQ_CHECK(rc == -1 && strstr(err, needle) && strstr(err, "tokenizer.model") && v.n == 0 && v.tokens == NULL,
             "%s: rc %d, err '%s'", what, rc, err);
    if (rc == 0) kq_vocab_free(&v);
}

static void test_hostile(void) {
    static pb m;
    pb p;
    /* a valid prefix so errors are not merely "no pieces" */
#define START(m)                            \
    do {                                    \
        (m).n = 0;                          \
        add_piece(&(m), "<unk>", 0, 2, 0); \
    } while (0)

    START(m);
    for (int i = 0; i < 11; i++) m.b[m.n++] = 0x80;
    m.b[m.n++] = 0;
    expect_parse_error(m.b, m.n, "11-byte varint", "varint");

    START(m);
    pb_raw(&m, "\x38\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11);
    expect_parse_error(m.b, m.n, "varint beyond 64 bits", "64 bits");

    /* a piece whose string length fits the file but not the piece message */
    START(m);
    pb_raw(&m, "\x0a\x07\x0a\x06<unk>", 9);
    expect_parse_error(m.b, m.n, "string longer than its message", "past the end");

    START(m);
    pb_raw(&m, "\x0a\x7f\x0a\x01x", 5);
    expect_parse_error(m.b, m.n, "message longer than the file", "past the end");

    START(m);
    pb_raw(&m, "\x3e\x00", 2); /* field 7, wire type 6 */
    expect_parse_error(m.b, m.n, "wire type 6", "wire type 6");

    START(m);
    pb_raw(&m, "\x3f\x00", 2); /* wire type 7 */
    expect_parse_error(m.b, m.n, "wire type 7", "wire type 7");

    START(m);
    pb_raw(&m, "\x3b\x08\x01\x44", 4); /* group 7 closed as group 8 */
    expect_parse_error(m.b, m.n, "mismatched end of group", "group");

    START(m);
    pb_raw(&m, "\x3c", 1);
    expect_parse_error(m.b, m.n, "end of group without start", "group");

    START(m);
    pb_raw(&m, "\x3b\x08\x01", 3);
    expect_parse_error(m.b, m.n, "unclosed group", "group");

    START(m);
    for (int i = 0; i < 100; i++) m.b[m.n++] = 0x3b; /* 100 nested groups */
    for (int i = 0; i < 100; i++) m.b[m.n++] = 0x3c;
    expect_parse_error(m.b, m.n, "deeply nested groups", "nested");

    START(m);
    pb_raw(&m, "\x00\x00", 2);
    expect_parse_error(m.b, m.n, "field number 0", "field number");

    START(m);
    p.n = 0;
    pb_sfield(&p, 1, "x", 1);
    pb_vfield(&p, 3, 7);
    pb_msg(&m, 1, &p);
    expect_parse_error(m.b, m.n, "piece type 7", "type 7");

    START(m);
    p.n = 0;
    pb_f32(&p, 2, 0);
    pb_msg(&m, 1, &p);
    expect_parse_error(m.b, m.n, "piece without a string", "piece 1 is empty");

    START(m);
    p.n = 0;
    pb_vfield(&p, 1, 5); /* piece as a varint */
    pb_msg(&m, 1, &p);
    expect_parse_error(m.b, m.n, "piece with the wrong wire type", "wire type");

    START(m);
    p.n = 0;
    pb_sfield(&p, 1, "x", 1);
    pb_vfield(&p, 2, 5); /* score as a varint */
    pb_msg(&m, 1, &p);
    expect_parse_error(m.b, m.n, "score with the wrong wire type", "wire type");

    START(m);
    pb_vfield(&m, 2, 1); /* trainer_spec as a varint */
    expect_parse_error(m.b, m.n, "trainer_spec with the wrong wire type", "wire type");

    START(m);
    p.n = 0;
    pb_vfield(&p, 41, 3);
    pb_vfield(&p, 42, 0);
    pb_msg(&m, 2, &p);
    expect_parse_error(m.b, m.n, "bos_id beyond the pieces", "bos_id 3");

    START(m);
    p.n = 0;
    pb_vfield(&p, 3, 9);
    pb_msg(&m, 2, &p);
    expect_parse_error(m.b, m.n, "model_type 9", "model_type");

    m.n = 0;
    pb_unknowns(&m, 20);
    expect_parse_error(m.b, m.n, "no pieces", "no pieces");
    expect_parse_error(m.b, 0, "empty buffer", "no pieces");
    expect_parse_error(NULL, 0, "NULL buffer", "no pieces");
#undef START
}

/* Every prefix of buf: parsed or refused with a message, never a crash; a parsed prefix has no more
 * pieces than the whole. Run under make SANITIZE=1 this also catches any read past the prefix. */
static void truncations(const uint8_t *buf, size_t len, const char *what) {
    uint32_t full_n = 0;
    kq_vocab v;
    char err[512];
    if (kq_spm_parse(buf, len, &v, err, sizeof err) == 0) full_n = v.n;
    kq_vocab_free(&v);
    size_t ok = 0, bad = 0, no_msg = 0, too_many = 0, not_empty = 0;
    for (size_t l = 0; l < len; l++) {
        uint8_t *copy = malloc(l ? l : 1); /* exact size so the sanitizer sees any overread */
        memcpy(copy, buf, l);
        err[0] = '\0';
        if (kq_spm_parse(copy, l, &v, err, sizeof err) == 0) {
            ok++;
            too_many += v.n > full_n;
        } else {
            bad++;
            no_msg += err[0] == '\0';
            not_empty += v.n != 0 || v.tokens != NULL;
        }
        kq_vocab_free(&v);
        free(copy);
    }
    KQ_CHECK(full_n > 0 && no_msg == 0 && too_many == 0 && not_empty == 0,
             "%s truncations: %zu parsed, %zu refused, %zu without message, %zu too many, %zu not emptied", what,
             ok, bad, no_msg, too_many, not_empty);
    /* most cuts land inside a field; a parser that accepted them would be skipping the bounds checks */
    KQ_CHECK(bad > len / 2, "%s: only %zu of %zu truncations refused", what, bad, len);
}

static void test_truncations(void) {
    static pb m;
    build_handmade(&m);
    truncations(m.b, m.n, "hand-made");
    kq_vocab v;
    char err[512] = "", path[256];
    build_vocab(&v, 1);
    path_in(path, sizeof path, "trunc.model");
    int rc = kq_spm_write(path, &v, err, sizeof err);
    kq_vocab_free(&v);
    size_t len;
    uint8_t *buf = rc == 0 ? kq_test_read_file(path, &len) : NULL;
    KQ_CHECK(buf != NULL, "written model for truncation: %s", err);
    if (buf) truncations(buf, len, "written");
    free(buf);
    remove(path);
}

/* ---- llama2.c tok512.bin and stories260K.gguf ---------------------------------------------------- */

static int is_byte_name(const kq_vocab *v, uint32_t id, int b) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    return piece_is(v, id, name, 6);
}

static int has_meta_space(const char *s, size_t len) {
    for (size_t i = 0; i + 3 <= len; i++)
        if (memcmp(s + i, "\xE2\x96\x81", 3) == 0) return 1;
    return 0;
}

static void check_tok512_facts(const kq_vocab *v) {
    KQ_CHECK(v->n == 512, "tok512: %u tokens", v->n);
    if (v->n != 512) return;
    KQ_CHECK(PIECE_IS(v, 0, "<unk>") && v->types[0] == KQ_TOKEN_UNKNOWN, "tok512: id 0 <unk> unknown");
    KQ_CHECK(PIECE_IS(v, 1, "<s>") && v->types[1] == KQ_TOKEN_CONTROL, "tok512: id 1 <s> control");
    KQ_CHECK(PIECE_IS(v, 2, "</s>") && v->types[2] == KQ_TOKEN_CONTROL, "tok512: id 2 </s> control");
    int bytes_ok = 1, zero_ok = 1, scores_ok = 1, spaces = 0, plain_space = 0;
    for (int b = 0; b < 256; b++) bytes_ok &= is_byte_name(v, 3 + (uint32_t)b, b) && v->types[3 + b] == KQ_TOKEN_BYTE;
    for (uint32_t i = 0; i < 259; i++) zero_ok &= t_bits(v->scores[i]) == 0;
    for (uint32_t i = 259; i < 512; i++) {
        /* -0.0, -1, ..., -252: the sign bit is set on all of them, -0.0 included */
        float want = -(float)(i - 259);
        scores_ok &= t_bits(v->scores[i]) == (t_bits(want) | 0x80000000u) && v->types[i] == KQ_TOKEN_NORMAL;
        spaces += has_meta_space(v->tokens[i], v->token_lens[i]);
        plain_space += memchr(v->tokens[i], ' ', v->token_lens[i]) != NULL;
    }
    KQ_CHECK(bytes_ok, "tok512: ids 3..258 are <0x00>..<0xFF> of type byte");
    KQ_CHECK(zero_ok, "tok512: ids 0..258 score +0");
    KQ_CHECK(scores_ok, "tok512: ids 259..511 normal, scores -0, -1, ..., -252");
    KQ_CHECK(t_bits(v->scores[259]) == 0x80000000u, "tok512: score of 259 is -0.0 (bits %08x)", t_bits(v->scores[259]));
    KQ_CHECK(spaces == 91 && plain_space == 0, "tok512: %d pieces with U+2581 (91 expected), %d with ' '", spaces,
             plain_space);
    KQ_CHECK(PIECE_IS(v, 259, "\xE2\x96\x81t"), "tok512: id 259 is \"\xE2\x96\x81t\"");
    KQ_CHECK(PIECE_IS(v, 410, "\xE2\x96\x81"), "tok512: id 410 is \"\xE2\x96\x81\"");
    KQ_CHECK(PIECE_IS(v, 511, "\xE2\x80\x8A"), "tok512: id 511 is U+200A");
    KQ_CHECK(v->bos_id == 1 && v->eos_id == 2 && v->unk_id == 0 && v->pad_id == -1 && v->sep_id == -1,
             "tok512: special ids");
    KQ_CHECK(v->byte_fallback == 1 && v->add_dummy_prefix == 1, "tok512: byte_fallback and dummy prefix");
}

/* The GGUF's tokenizer.ggml.* arrays, read with convert/gguf.h. */
static void compare_gguf(const kq_vocab *v, const char *gpath) {
    kq_gguf *g = NULL;
    char err[512] = "";
    if (kq_gguf_open(gpath, &g, err, sizeof err) != 0) {
        KQ_CHECK(0, "kq_gguf_open %s: %s", gpath, err);
        return;
    }
    int64_t kt = kq_gguf_find_key(g, "tokenizer.ggml.tokens"), ks = kq_gguf_find_key(g, "tokenizer.ggml.scores"),
            ky = kq_gguf_find_key(g, "tokenizer.ggml.token_type");
    KQ_CHECK(kt >= 0 && ks >= 0 && ky >= 0 && kq_gguf_arr_type(g, kt) == KQ_GGUF_STR &&
                 kq_gguf_arr_type(g, ks) == KQ_GGUF_F32 && kq_gguf_arr_type(g, ky) == KQ_GGUF_I32,
             "GGUF tokenizer arrays missing or of the wrong type");
    if (kt < 0 || ks < 0 || ky < 0) {
        kq_gguf_close(g);
        return;
    }
    uint64_t n = kq_gguf_arr_count(g, kt);
    KQ_CHECK(n == v->n && kq_gguf_arr_count(g, ks) == n && kq_gguf_arr_count(g, ky) == n,
             "GGUF holds %llu tokens, tok512 %u", (unsigned long long)n, v->n);
    const uint8_t *sc = kq_gguf_arr_data(g, ks), *ty = kq_gguf_arr_data(g, ky);
    uint32_t bad_piece = 0, bad_score = 0, bad_type = 0, first_bad = UINT32_MAX;
    for (uint32_t i = 0; i < n && i < v->n && sc && ty; i++) {
        const char *s;
        size_t len;
        uint32_t bits;
        int32_t t;
        if (kq_gguf_arr_str(g, kt, i, &s, &len) != 0 || !piece_is(v, i, s, len)) {
            bad_piece++;
            if (first_bad == UINT32_MAX) first_bad = i;
        }
        memcpy(&bits, sc + 4 * (size_t)i, 4);
        memcpy(&t, ty + 4 * (size_t)i, 4);
        bad_score += bits != t_bits(v->scores[i]);
        bad_type += t != v->types[i];
    }
    KQ_CHECK(bad_piece == 0, "GGUF vs tok512: %u pieces differ (first: %u)", bad_piece, first_bad);
    KQ_CHECK(bad_score == 0, "GGUF vs tok512: %u scores differ (bitwise)", bad_score);
    KQ_CHECK(bad_type == 0, "GGUF vs tok512: %u types differ", bad_type);
    uint32_t bos = 0, eos = 0, unk = 0, pad = 0;
    const char *model;
    size_t mlen;
    KQ_CHECK(kq_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos) == 0 &&
                 kq_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos) == 0 &&
                 kq_gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &unk) == 0 &&
                 kq_gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &pad) == 0 && bos == v->bos_id &&
                 eos == v->eos_id && unk == v->unk_id && pad == 0xffffffffu && v->pad_id == -1,
             "GGUF ids bos %u eos %u unk %u pad %u", bos, eos, unk, pad);
    KQ_CHECK(kq_gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen) == 0 && mlen == strlen(v->model) &&
                 memcmp(model, v->model, mlen) == 0,
             "tokenizer.ggml.model");
    kq_gguf_close(g);
}

/* Real SentencePiece, when installed (Debian: sentencepiece): it must load what kq_spm_write wrote,
 * list the same pieces and scores, and apply the dummy prefix and byte fallback. */
static void check_with_sentencepiece(const kq_vocab *v) {
    if (access("/usr/bin/spm_export_vocab", X_OK) != 0 || access("/usr/bin/spm_encode", X_OK) != 0) {
        KQ_SKIP("sentencepiece: spm_export_vocab / spm_encode not installed (apt-get install sentencepiece)");
        return;
    }
    char err[512] = "", model[256], cmd[700], line[256];
    path_in(model, sizeof model, "tok512.model");
    int rc = kq_spm_write(model, v, err, sizeof err);
    KQ_CHECK(rc == 0, "writing tok512 as a SentencePiece model: %s", err);
    snprintf(cmd, sizeof cmd, "spm_export_vocab --model='%s' --output_format=vocab 2>/dev/null", model);
    FILE *p = popen(cmd, "r");
    uint32_t lines = 0, bad = 0;
    while (p && fgets(line, sizeof line, p)) {
        char *tab = strchr(line, '\t');
        if (!tab || lines >= v->n) {
            bad++;
            continue;
        }
        /* the vocab format prints scores with %g-like precision: compare as numbers */
        double sc = strtod(tab + 1, NULL);
        bad += !piece_is(v, lines, line, (size_t)(tab - line)) || fabs(sc - v->scores[lines]) > 1e-6;
        lines++;
    }
    int st = p ? pclose(p) : -1;
    KQ_CHECK(st == 0 && lines == v->n && bad == 0, "spm_export_vocab: status %d, %u lines, %u differ", st, lines, bad);
    /* "the \u4e2d": the dummy prefix makes "\u2581the"; U+4E2D is no piece, so byte fallback gives its
     * UTF-8 bytes E4 B8 AD = ids 3 + 0xE4, 3 + 0xB8, 3 + 0xAD; the space before it is the lone "\u2581" */
    snprintf(cmd, sizeof cmd, "printf 'the \\344\\270\\255\\n' | spm_encode --model='%s' --output_format=id 2>/dev/null",
             model);
    p = popen(cmd, "r");
    char out[256] = "", want[64];
    if (p && !fgets(out, sizeof out, p)) out[0] = '\0';
    st = p ? pclose(p) : -1;
    size_t ol = strlen(out);
    while (ol && (out[ol - 1] == '\n' || out[ol - 1] == ' ')) out[--ol] = '\0';
    snprintf(want, sizeof want, "%lld %lld %d %d %d", (long long)kq_vocab_find(v, "\xE2\x96\x81the", 6),
             (long long)kq_vocab_find(v, "\xE2\x96\x81", 3), 3 + 0xE4, 3 + 0xB8, 3 + 0xAD);
    KQ_CHECK(st == 0 && strcmp(out, want) == 0, "spm_encode 'the \\u4e2d': status %d, ids '%s', expected '%s'", st,
             out, want);
    /* bos/eos: SentencePiece finds them by the names the writer put in trainer_spec */
    snprintf(cmd, sizeof cmd,
             "printf 'the\\n' | spm_encode --model='%s' --output_format=id --extra_options=bos:eos 2>/dev/null", model);
    p = popen(cmd, "r");
    out[0] = '\0';
    if (p && !fgets(out, sizeof out, p)) out[0] = '\0';
    st = p ? pclose(p) : -1;
    ol = strlen(out);
    while (ol && (out[ol - 1] == '\n' || out[ol - 1] == ' ')) out[--ol] = '\0';
    snprintf(want, sizeof want, "%lld %lld %lld", (long long)v->bos_id, (long long)kq_vocab_find(v, "\xE2\x96\x81the", 6),
             (long long)v->eos_id);
    KQ_CHECK(st == 0 && strcmp(out, want) == 0, "spm_encode bos:eos 'the': status %d, ids '%s', expected '%s'", st, out,
             want);
    remove(model);
}

static void test_tok512(void) {
    char path[512], gpath[512];
    kq_test_shared_path("models/stories260K/tok512.bin", path, sizeof path);
    if (!file_exists(path)) {
        KQ_SKIP("tok512: %s not found", path);
        return;
    }
    kq_vocab v;
    char err[512] = "";
    int rc = kq_llama2c_tokenizer_read(path, 512, &v, err, sizeof err);
    KQ_CHECK(rc == 0, "kq_llama2c_tokenizer_read: %s", err);
    if (rc) return;
    check_tok512_facts(&v);
    kq_vocab w;
    rc = kq_llama2c_tokenizer_read(path, 0, &w, err, sizeof err);
    KQ_CHECK(rc == 0 && w.n == 512, "vocab_size 0 reads all %u tokens: %s", w.n, err);
    kq_vocab_free(&w);
    rc = kq_llama2c_tokenizer_read(path, 511, &w, err, sizeof err);
    KQ_CHECK(rc == -1 && strstr(err, "tok512.bin") && strstr(err, "left after"), "vocab 511: '%s'", err);
    rc = kq_llama2c_tokenizer_read(path, 513, &w, err, sizeof err);
    KQ_CHECK(rc == -1 && strstr(err, "tok512.bin") && strstr(err, "needs 513"), "vocab 513: '%s'", err);

    kq_test_shared_path("models/stories260K/stories260K.gguf", gpath, sizeof gpath);
    if (file_exists(gpath)) compare_gguf(&v, gpath);
    else KQ_SKIP("stories260K: %s not found", gpath);

    /* through the SentencePiece writer and back: the same vocabulary */
    char mpath[256];
    path_in(mpath, sizeof mpath, "tok512rt.model");
    kq_vocab r;
    rc = kq_spm_write(mpath, &v, err, sizeof err) || kq_spm_read(mpath, &r, err, sizeof err);
    KQ_CHECK(rc == 0, "tok512 via tokenizer.model: %s", err);
    if (rc == 0) {
        check_tok512_facts(&r);
        kq_vocab_free(&r);
    }
    remove(mpath);
    check_with_sentencepiece(&v);
    kq_vocab_free(&v);
}

static int write_bytes(const char *name, const void *b, size_t n) {
    char p[256];
    path_in(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    int ok = fwrite(b, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void put_record(pb *b, uint32_t score_bits, const char *s) {
    uint32_t len = (uint32_t)strlen(s);
    uint8_t h[8];
    for (int i = 0; i < 4; i++) {
        h[i] = (uint8_t)(score_bits >> (8 * i));
        h[4 + i] = (uint8_t)(len >> (8 * i));
    }
    pb_raw(b, h, 8);
    pb_raw(b, s, len);
}

static void test_llama2c_small(void) {
    pb b = {.n = 0};
    pb_raw(&b, "\x06\x00\x00\x00", 4);
    put_record(&b, 0, "<unk>");
    put_record(&b, 0, "\n<s>\n");
    put_record(&b, 0, "\n</s>\n");
    put_record(&b, 0x80000000u, " a b ");
    put_record(&b, 0xc0000000u, "<0x41>");
    put_record(&b, 0xc0400000u, "<0x4g>");
    KQ_CHECK(write_bytes("tok.bin", b.b, b.n) == 0, "writing tok.bin");
    char path[256], err[512] = "";
    path_in(path, sizeof path, "tok.bin");
    kq_vocab v;
    int rc = kq_llama2c_tokenizer_read(path, 6, &v, err, sizeof err);
    KQ_CHECK(rc == 0, "small tokenizer.bin: %s", err);
    if (rc == 0) {
        KQ_CHECK(PIECE_IS(&v, 1, "<s>") && PIECE_IS(&v, 2, "</s>") &&
                     PIECE_IS(&v, 3, "\xE2\x96\x81" "a\xE2\x96\x81" "b\xE2\x96\x81"),
                 "small tokenizer.bin pieces");
        KQ_CHECK(v.types[0] == KQ_TOKEN_UNKNOWN && v.types[1] == KQ_TOKEN_CONTROL && v.types[3] == KQ_TOKEN_NORMAL &&
                     v.types[4] == KQ_TOKEN_BYTE && v.types[5] == KQ_TOKEN_NORMAL,
                 "small tokenizer.bin types");
        KQ_CHECK(t_bits(v.scores[3]) == 0x80000000u && t_bits(v.scores[5]) == 0xc0400000u, "small tokenizer.bin scores");
        kq_vocab_free(&v);
    }
    /* every truncation refused with a message naming the file */
    size_t bad = 0;
    for (size_t l = 0; l < b.n; l++) {
        write_bytes("tok.bin", b.b, l);
        err[0] = '\0';
        rc = kq_llama2c_tokenizer_read(path, 6, &v, err, sizeof err);
        bad += rc != -1 || !strstr(err, "tok.bin") || v.n != 0;
        if (rc == 0) kq_vocab_free(&v);
    }
    KQ_CHECK(bad == 0, "%zu truncations of tokenizer.bin not refused", bad);
    /* a negative length */
    b.b[4 + 8 + 5 + 4] = 0xff;
    b.b[4 + 8 + 5 + 7] = 0xff;
    write_bytes("tok.bin", b.b, b.n);
    rc = kq_llama2c_tokenizer_read(path, 6, &v, err, sizeof err);
    KQ_CHECK(rc == -1 && strstr(err, "bad length"), "negative token length: '%s'", err);
    remove(path);
    rc = kq_llama2c_tokenizer_read(path, 6, &v, err, sizeof err);
    KQ_CHECK(rc == -1 && strstr(err, "not found"), "missing tokenizer.bin: '%s'", err);
}

static void test_missing_model(void) {
    char path[256], want[400], err[512] = "";
    path_in(path, sizeof path, "tokenizer.model");
    kq_vocab v;
    int rc = kq_spm_read(path, &v, err, sizeof err);
    snprintf(want, sizeof want, "%s: not found (needed for the vocabulary; pass --vocab FILE)", path);
    KQ_CHECK(rc == -1 && strcmp(err, want) == 0 && v.n == 0, "missing tokenizer.model: '%s'", err);
    write_text("tokenizer.model", "this is not protobuf");
    rc = kq_spm_read(path, &v, err, sizeof err);
    KQ_CHECK(rc == -1 && strncmp(err, path, strlen(path)) == 0, "text as tokenizer.model: '%s'", err);
    remove_in("tokenizer.model");
}

/* ---- Hugging Face JSON ----------------------------------------------------------------------- */

static const char *const hf_files[] = {"tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                                       "added_tokens.json"};

static void hf_clean(void) {
    for (size_t k = 0; k < sizeof hf_files / sizeof hf_files[0]; k++) remove_in(hf_files[k]);
}

static void small_vocab(kq_vocab *v) {
    static const char *const p[6] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81\x61", "<pad>", "<|eot|>"};
    kq_vocab_init(v);
    kq_vocab_alloc(v, 6);
    for (uint32_t i = 0; i < 6; i++) kq_vocab_set_piece(v, i, p[i], strlen(p[i]));
    v->unk_id = 0;
    v->bos_id = 1;
    v->eos_id = 2;
}

/* applies the files now in g_dir to a fresh small vocabulary */
static int hf_apply(kq_vocab *v, char *err, size_t errlen) {
    small_vocab(v);
    err[0] = '\0';
    return kq_hf_special_tokens(g_dir, v, err, errlen);
}

static void expect_hf_error(const char *file, const char *text, const char *needle) {
    hf_clean();
    write_text(file, text);
    kq_vocab v;
    char err[512];
    int rc = hf_apply(&v, err, sizeof err);
    KQ_CHECK(rc == -1 && strstr(err, file) && strstr(err, needle) && !strchr(err, '\n'), "%s %s: rc %d, err '%s'",
             file, text, rc, err);
    kq_vocab_free(&v);
}

static void test_hf_json(void) {
    kq_vocab v;
    char err[512];
    hf_clean();
    int rc = hf_apply(&v, err, sizeof err);
    KQ_CHECK(rc == 0 && v.n == 6 && v.bos_id == 1 && v.eos_id == 2 && v.pad_id == -1 && v.add_bos == -1 &&
                 v.add_eos == -1,
             "no JSON files: nothing changes (%s)", err);
    kq_vocab_free(&v);
#if KQ_HAVE_CJSON
    write_text("tokenizer_config.json",
               "{\"add_bos_token\": true, \"add_eos_token\": false, \"legacy\": false,"
               " \"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<s>\", \"lstrip\": false},"
               " \"eos_token\": \"<|eot|>\", \"unk_token\": \"<unk>\", \"pad_token\": null, \"add_prefix_space\": false,"
               " \"model_max_length\": 1000000000000000019884624838656}");
    write_text("special_tokens_map.json", "{\"pad_token\": \"<pad>\", \"sep_token\": \"<pad>\"}");
    write_text("generation_config.json", "{\"bos_token_id\": 3, \"eos_token_id\": [2, 5], \"pad_token_id\": 4}");
    rc = hf_apply(&v, err, sizeof err);
    KQ_CHECK(rc == 0, "valid HF files: %s", err);
    /* tokenizer_config.json names bos, eos, unk and pad (null: none); special_tokens_map.json adds sep
     * only; generation_config.json changes nothing already named */
    KQ_CHECK(v.add_bos == 1 && v.add_eos == 0 && v.add_dummy_prefix == 0, "add_bos %d add_eos %d add_dummy_prefix %d",
             v.add_bos, v.add_eos, v.add_dummy_prefix);
    KQ_CHECK(v.bos_id == 1 && v.eos_id == 5 && v.unk_id == 0 && v.pad_id == -1 && v.sep_id == 4,
             "ids bos %lld eos %lld unk %lld pad %lld sep %lld", (long long)v.bos_id, (long long)v.eos_id,
             (long long)v.unk_id, (long long)v.pad_id, (long long)v.sep_id);
    kq_vocab_free(&v);

    remove_in("tokenizer_config.json");
    rc = hf_apply(&v, err, sizeof err);
    KQ_CHECK(rc == 0 && v.pad_id == 4 && v.sep_id == 4 && v.bos_id == 3 && v.eos_id == 2 && v.add_bos == -1,
             "special_tokens_map + generation_config: pad %lld bos %lld eos %lld (%s)", (long long)v.pad_id,
             (long long)v.bos_id, (long long)v.eos_id, err);
    kq_vocab_free(&v);

    hf_clean();
    write_text("added_tokens.json", "{\"[PAD]\": 6, \"<s>\": 1, \"<extra>\": 7}");
    write_text("special_tokens_map.json", "{\"pad_token\": {\"content\": \"[PAD]\"}}");
    rc = hf_apply(&v, err, sizeof err);
    KQ_CHECK(rc == 0 && v.n == 8 && PIECE_IS(&v, 6, "[PAD]") && PIECE_IS(&v, 7, "<extra>") &&
                 v.types[6] == KQ_TOKEN_USER_DEFINED && v.scores[7] == -1000.0f && v.pad_id == 6,
             "added tokens: n %u pad %lld (%s)", v.n, (long long)v.pad_id, err);
    kq_vocab_free(&v);

    expect_hf_error("added_tokens.json", "{\"[PAD]\": 7}", "gap");
    expect_hf_error("added_tokens.json", "{\"a\": 6, \"b\": 6}", "twice");
    expect_hf_error("added_tokens.json", "{\"<x>\": 1}", "another piece");
    expect_hf_error("added_tokens.json", "{\"<x>\": \"7\"}", "token id");
    expect_hf_error("tokenizer_config.json", "{\"add_bos_token\": tru", "malformed JSON");
    expect_hf_error("tokenizer_config.json", "", "malformed JSON");
    expect_hf_error("tokenizer_config.json", "[1, 2]", "not a JSON object");
    expect_hf_error("tokenizer_config.json", "{\"add_bos_token\": \"yes\"}", "add_bos_token");
    expect_hf_error("tokenizer_config.json", "{\"add_eos_token\": 1}", "add_eos_token");
    expect_hf_error("tokenizer_config.json", "{\"bos_token\": 1}", "bos_token");
    expect_hf_error("tokenizer_config.json", "{\"eos_token\": {\"text\": \"</s>\"}}", "eos_token");
    expect_hf_error("tokenizer_config.json", "{\"unk_token\": \"<nope>\"}", "not in the vocabulary");
    expect_hf_error("tokenizer_config.json", "{\"unk_token\": \"<no\\npe>\"}", "\"<no?pe>\" is not in");
    expect_hf_error("tokenizer_config.json", "{\"add_prefix_space\": 0}", "add_prefix_space");
    expect_hf_error("special_tokens_map.json", "{\"pad_token\": [\"<pad>\"]}", "pad_token");
    expect_hf_error("special_tokens_map.json", "{\"pad_token\": ", "malformed JSON");
    expect_hf_error("generation_config.json", "{\"eos_token_id\": \"2\"}", "eos_token_id");
    expect_hf_error("generation_config.json", "{\"bos_token_id\": 6}", "bos_token_id");
    expect_hf_error("generation_config.json", "{\"pad_token_id\": 1.5}", "pad_token_id");
    expect_hf_error("generation_config.json", "{\"eos_token_id\": []}", "eos_token_id");
#else
    expect_hf_error("tokenizer_config.json", "{}", "without cJSON");
    KQ_SKIP("HF JSON: built without cJSON (KQ_HAVE_CJSON=0)");
#endif
    hf_clean();
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/kq_test_tok_XXXXXX");
    if (!mkdtemp(g_dir)) {
        printf("FAIL cannot create a scratch folder: %s\n", strerror(errno));
        return 1;
    }
    test_round_trip();
    test_write_refusals();
    test_handmade();
    test_hostile();
    test_truncations();
    test_missing_model();
    test_llama2c_small();
    test_tok512();
    test_hf_json();
    remove_in("bad.model");
    rmdir(g_dir);
    return kq_test_finish();
}
