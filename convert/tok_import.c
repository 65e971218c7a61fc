/* Tokenizer import beside SentencePiece: llama2.c's tokenizer.bin, and the Hugging Face JSON files that
 * name special tokens and say whether BOS/EOS are added. */
#include "spm_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if KQ_HAVE_CJSON
#include <cjson/cJSON.h>
#endif

#define TOKBIN_FILE_MAX ((size_t)1 << 30)
#define JSON_FILE_MAX ((size_t)64 << 20)
/* llama.cpp's converter gives added tokens this score */
#define ADDED_TOKEN_SCORE (-1000.0f)

/* ---- llama2.c tokenizer.bin -------------------------------------------------------------------- */

static uint32_t rd_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walks the token records from off; counts them, or stops after want (0 = to the end). Returns the
 * count, with *end the offset after the last record, or -1 if a record is malformed (*end = its offset). */
static int64_t tokbin_walk(const uint8_t *buf, size_t len, size_t off, uint32_t want, size_t *end) {
    uint32_t n = 0;
    while (off < len && (want == 0 || n < want)) {
        if (len - off < 8 || n >= KQ_VOCAB_MAX) break;
        uint32_t tl = rd_u32le(buf + off + 4);
        if (tl == 0 || tl > KQ_PIECE_MAX || tl > len - off - 8) break;
        off += 8 + (size_t)tl;
        n++;
    }
    *end = off;
    if (off < len && (want == 0 || n < want)) return -1;
    return n;
}

/* The piece as SentencePiece has it: llama2.c wrote ' ' for U+2581 and wrapped <s>, </s> in newlines. */
static int tokbin_piece(kq_vocab *v, uint32_t id, const uint8_t *s, size_t len) {
    if ((id == 1 && len == 5 && memcmp(s, "\n<s>\n", 5) == 0) || (id == 2 && len == 6 && memcmp(s, "\n</s>\n", 6) == 0))
        return kq_vocab_set_piece(v, id, s + 1, len - 2);
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += s[i] == ' ';
    char *tmp = malloc(len + 2 * spaces + 1);
    if (!tmp) return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            memcpy(tmp + o, "\xE2\x96\x81", 3);
            o += 3;
        } else {
            tmp[o++] = (char)s[i];
        }
    }
    int rc = o > KQ_PIECE_MAX ? -1 : kq_vocab_set_piece(v, id, tmp, o);
    free(tmp);
    return rc;
}

static int is_byte_piece(const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    return len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && s[3] && s[4] && strchr(hex, s[3]) &&
           strchr(hex, s[4]);
}

static int32_t tokbin_type(uint32_t id, const char *s, size_t len) {
    if (id == 0) return KQ_TOKEN_UNKNOWN;
    if (id == 1 || id == 2) return KQ_TOKEN_CONTROL;
    return is_byte_piece(s, len) ? KQ_TOKEN_BYTE : KQ_TOKEN_NORMAL;
}

static int tokbin_parse(const char *path, const uint8_t *buf, size_t len, uint32_t vocab_size, kq_vocab *v,
                        char *err, size_t errlen) {
    if (len < 4 || (int32_t)rd_u32le(buf) <= 0) {
        snprintf(err, errlen, "%s: no llama2.c tokenizer header (max_token_length)", path);
        return -1;
    }
    size_t end;
    int64_t n = tokbin_walk(buf, len, 4, vocab_size, &end);
    if (n < 0) {
        snprintf(err, errlen, "%s: byte %zu: token record is truncated or has a bad length", path, end);
        return -1;
    }
    if (vocab_size && n < vocab_size) {
        snprintf(err, errlen, "%s: holds %lld tokens, the model needs %u", path, (long long)n, vocab_size);
        return -1;
    }
    if (end != len) {
        snprintf(err, errlen, "%s: %zu bytes left after %u tokens (a tokenizer for another vocabulary size?)",
                 path, len - end, vocab_size);
        return -1;
    }
    if (n < 3) {
        snprintf(err, errlen, "%s: %lld tokens; llama2.c needs at least <unk>, <s>, </s>", path, (long long)n);
        return -1;
    }
    if (kq_vocab_alloc(v, (uint32_t)n)) {
        snprintf(err, errlen, "%s: out of memory for %lld tokens", path, (long long)n);
        return -1;
    }
    size_t off = 4;
    for (uint32_t i = 0; i < v->n; i++) {
        uint32_t bits = rd_u32le(buf + off), tl = rd_u32le(buf + off + 4);
        memcpy(&v->scores[i], &bits, sizeof bits);
        if (tokbin_piece(v, i, buf + off + 8, tl)) {
            snprintf(err, errlen, "%s: token %u: out of memory or too long", path, i);
            return -1;
        }
        v->types[i] = tokbin_type(i, v->tokens[i], v->token_lens[i]);
        v->byte_fallback |= v->types[i] == KQ_TOKEN_BYTE;
        off += 8 + (size_t)tl;
    }
    return 0;
}

int kq_llama2c_tokenizer_read(const char *path, uint32_t vocab_size, kq_vocab *v, char *err, size_t errlen) {
    kq_vocab_init(v);
    uint8_t *buf;
    size_t len;
    int rc = kq_tok_read_file(path, TOKBIN_FILE_MAX, &buf, &len, err, errlen);
    if (rc == 1) snprintf(err, errlen, "%s: not found (the llama2.c tokenizer.bin; pass --vocab FILE)", path);
    if (rc) return -1;
    /* what llama2.c's tokenizers are: SentencePiece BPE as Llama trained it */
    v->bos_id = 1;
    v->eos_id = 2;
    v->unk_id = 0;
    v->spm_model_type = KQ_SPM_BPE;
    v->remove_extra_whitespaces = 0;
    memcpy(v->normalizer_name, "identity", 9);
    rc = tokbin_parse(path, buf, len, vocab_size, v, err, errlen);
    free(buf);
    if (rc) {
        kq_vocab_free(v);
        return -1;
    }
    v->spm_vocab_size = v->n;
    return 0;
}

/* ---- Hugging Face JSON ------------------------------------------------------------------------- */

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

#if KQ_HAVE_CJSON

/* The start of a JSON string for an error message, control bytes shown as '?': messages stay one line. */
static const char *shown(const char *s, char buf[65]) {
    size_t i = 0;
    for (; s && s[i] && i < 64; i++) buf[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* Which ids a file has named, so later files with lower precedence leave them alone. */
enum { SP_BOS, SP_EOS, SP_UNK, SP_PAD, SP_SEP, SP_COUNT };
static const char *const sp_token_key[SP_COUNT] = {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token"};

static int64_t *sp_slot(kq_vocab *v, int k) {
    int64_t *slots[SP_COUNT] = {&v->bos_id, &v->eos_id, &v->unk_id, &v->pad_id, &v->sep_id};
    return slots[k];
}

/* 0 parsed, 1 absent, -1 error. *path_out is the file's path (caller frees) for messages. */
static int load_json(const char *dir, const char *name, cJSON **out, char **path_out, char *err, size_t errlen) {
    *out = NULL;
    *path_out = join_path(dir, name);
    if (!*path_out) {
        snprintf(err, errlen, "%s/%s: out of memory", dir, name);
        return -1;
    }
    uint8_t *buf;
    size_t len;
    int rc = kq_tok_read_file(*path_out, JSON_FILE_MAX, &buf, &len, err, errlen);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)buf, len, &end, 0);
    if (!j) {
        size_t at = end && end >= (const char *)buf && end <= (const char *)buf + len ? (size_t)(end - (const char *)buf) : 0;
        snprintf(err, errlen, "%s: malformed JSON near byte %zu", *path_out, at);
    } else if (!cJSON_IsObject(j)) {
        snprintf(err, errlen, "%s: top level is not a JSON object", *path_out);
        cJSON_Delete(j);
        j = NULL;
    }
    free(buf);
    *out = j;
    return j ? 0 : -1;
}

/* A token named as "piece", {"content": "piece", ...} (an AddedToken) or null (none): its id or -1. */
static int token_ref_id(const cJSON *item, const kq_vocab *v, const char *path, const char *key, int64_t *id,
                        char *err, size_t errlen) {
    if (cJSON_IsNull(item)) {
        *id = -1;
        return 0;
    }
    const cJSON *s = item;
    if (cJSON_IsObject(item)) s = cJSON_GetObjectItemCaseSensitive(item, "content");
    if (!cJSON_IsString(s) || !s->valuestring) {
        snprintf(err, errlen, "%s: %s must be a string, {\"content\": string} or null", path, key);
        return -1;
    }
    *id = kq_vocab_find(v, s->valuestring, strlen(s->valuestring));
    if (*id < 0) {
        char b[65];
        snprintf(err, errlen, "%s: %s \"%s\" is not in the vocabulary", path, key, shown(s->valuestring, b));
        return -1;
    }
    return 0;
}

static int apply_token_names(const cJSON *j, kq_vocab *v, int named[SP_COUNT], const char *path, char *err,
                             size_t errlen) {
    for (int k = 0; k < SP_COUNT; k++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, sp_token_key[k]);
        if (!item || named[k]) continue;
        int64_t id;
        if (token_ref_id(item, v, path, sp_token_key[k], &id, err, errlen)) return -1;
        *sp_slot(v, k) = id;
        named[k] = 1;
    }
    return 0;
}

/* bool or null (null = not said, leaves *flag alone) */
static int get_flag(const cJSON *j, const char *key, int *flag, const char *path, char *err, size_t errlen) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!item || cJSON_IsNull(item)) return 0;
    if (!cJSON_IsBool(item)) {
        snprintf(err, errlen, "%s: %s must be true, false or null", path, key);
        return -1;
    }
    *flag = cJSON_IsTrue(item) ? 1 : 0;
    return 0;
}

static int tokenizer_config(const char *dir, kq_vocab *v, int named[SP_COUNT], char *err, size_t errlen) {
    cJSON *j;
    char *path;
    int rc = load_json(dir, "tokenizer_config.json", &j, &path, err, errlen);
    if (rc == 0) {
        rc = get_flag(j, "add_bos_token", &v->add_bos, path, err, errlen) ||
                     get_flag(j, "add_eos_token", &v->add_eos, path, err, errlen) ||
                     get_flag(j, "add_prefix_space", &v->add_dummy_prefix, path, err, errlen) ||
                     apply_token_names(j, v, named, path, err, errlen)
                 ? -1
                 : 0;
    }
    cJSON_Delete(j);
    free(path);
    return rc < 0 ? -1 : 0;
}

static int special_tokens_map(const char *dir, kq_vocab *v, int named[SP_COUNT], char *err, size_t errlen) {
    cJSON *j;
    char *path;
    int rc = load_json(dir, "special_tokens_map.json", &j, &path, err, errlen);
    if (rc == 0) rc = apply_token_names(j, v, named, path, err, errlen);
    cJSON_Delete(j);
    free(path);
    return rc < 0 ? -1 : 0;
}

/* An id: an integer in [0, n), or the first of a list of them (newer models list several EOS ids). */
static int json_token_id(const cJSON *item, const kq_vocab *v, const char *path, const char *key, int64_t *id,
                         char *err, size_t errlen) {
    if (cJSON_IsNull(item)) {
        *id = -1;
        return 0;
    }
    if (cJSON_IsArray(item)) item = cJSON_GetArrayItem(item, 0);
    double d = item && cJSON_IsNumber(item) ? item->valuedouble : -1.5;
    if (!(d >= 0 && d < (double)v->n) || d != (double)(int64_t)d) {
        snprintf(err, errlen, "%s: %s must be a token id in [0, %u), or a list of them", path, key, v->n);
        return -1;
    }
    *id = (int64_t)d;
    return 0;
}

static int generation_config(const char *dir, kq_vocab *v, const int named[SP_COUNT], char *err, size_t errlen) {
    static const char *const keys[3] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    static const int slot[3] = {SP_BOS, SP_EOS, SP_PAD};
    cJSON *j;
    char *path;
    int rc = load_json(dir, "generation_config.json", &j, &path, err, errlen);
    for (int k = 0; k < 3 && rc == 0; k++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        int64_t id;
        if (!item) continue;
        if (json_token_id(item, v, path, keys[k], &id, err, errlen)) rc = -1;
        else if (!named[slot[k]]) *sp_slot(v, slot[k]) = id;
    }
    cJSON_Delete(j);
    free(path);
    return rc < 0 ? -1 : 0;
}

static int vocab_grow(kq_vocab *v, uint32_t n) {
    char **t = realloc(v->tokens, n * sizeof *t);
    if (t) v->tokens = t;
    size_t *l = realloc(v->token_lens, n * sizeof *l);
    if (l) v->token_lens = l;
    float *s = realloc(v->scores, n * sizeof *s);
    if (s) v->scores = s;
    int32_t *ty = realloc(v->types, n * sizeof *ty);
    if (ty) v->types = ty;
    if (!t || !l || !s || !ty) return -1;
    for (uint32_t i = v->n; i < n; i++) {
        v->tokens[i] = NULL;
        v->token_lens[i] = 0;
        v->scores[i] = ADDED_TOKEN_SCORE;
        v->types[i] = KQ_TOKEN_USER_DEFINED;
    }
    v->n = n;
    return 0;
}

/* Checks ids and pieces; returns how many new pieces there are, or -1. New ids must lie in
 * [n, n + count); that none repeats is checked while filling, which then leaves no gap. */
static int64_t added_check(const cJSON *j, const kq_vocab *v, const char *path, char *err, size_t errlen) {
    int64_t n_new = 0;
    const cJSON *it;
    char b[65];
    cJSON_ArrayForEach(it, j) {
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!(d >= 0 && d < (double)KQ_VOCAB_MAX) || d != (double)(int64_t)d || !it->string) {
            snprintf(err, errlen, "%s: \"%s\" must map to a token id", path, shown(it->string, b));
            return -1;
        }
        n_new += (int64_t)d >= (int64_t)v->n;
    }
    cJSON_ArrayForEach(it, j) {
        int64_t id = (int64_t)it->valuedouble;
        if (id < v->n) {
            size_t sl = strlen(it->string);
            if (v->token_lens[id] != sl || memcmp(v->tokens[id], it->string, sl) != 0) {
                snprintf(err, errlen, "%s: \"%s\" has id %lld, which is another piece", path, shown(it->string, b),
                         (long long)id);
                return -1;
            }
        } else if (id >= (int64_t)v->n + n_new) {
            snprintf(err, errlen, "%s: id %lld of \"%s\" leaves a gap after the %u pieces", path, (long long)id,
                     shown(it->string, b), v->n);
            return -1;
        }
    }
    return n_new;
}

static int added_tokens(const char *dir, kq_vocab *v, char *err, size_t errlen) {
    cJSON *j;
    char *path;
    int rc = load_json(dir, "added_tokens.json", &j, &path, err, errlen);
    if (rc != 0) {
        free(path);
        return rc < 0 ? -1 : 0;
    }
    int64_t n_new = added_check(j, v, path, err, errlen);
    uint32_t old_n = v->n;
    rc = n_new < 0 ? -1 : 0;
    if (rc == 0 && n_new > 0 && (old_n + (uint64_t)n_new > KQ_VOCAB_MAX || vocab_grow(v, old_n + (uint32_t)n_new))) {
        snprintf(err, errlen, "%s: cannot grow the vocabulary to %lld pieces", path, (long long)(old_n + n_new));
        rc = -1;
    }
    const cJSON *it;
    char b[65];
    cJSON_ArrayForEach(it, j) {
        int64_t id = (int64_t)it->valuedouble;
        if (rc || id < old_n) continue;
        /* the ids fill [old_n, old_n + n_new) without gaps only if none is taken twice */
        if (v->tokens[id]) {
            snprintf(err, errlen, "%s: id %lld is given twice", path, (long long)id);
            rc = -1;
        } else if (kq_vocab_set_piece(v, (uint32_t)id, it->string, strlen(it->string))) {
            snprintf(err, errlen, "%s: \"%s\": out of memory or too long", path, shown(it->string, b));
            rc = -1;
        }
    }
    cJSON_Delete(j);
    free(path);
    return rc;
}

int kq_hf_special_tokens(const char *model_dir, kq_vocab *v, char *err, size_t errlen) {
    int named[SP_COUNT] = {0};
    if (added_tokens(model_dir, v, err, errlen)) return -1;
    if (tokenizer_config(model_dir, v, named, err, errlen)) return -1;
    if (special_tokens_map(model_dir, v, named, err, errlen)) return -1;
    return generation_config(model_dir, v, named, err, errlen);
}

#else /* no cJSON: the files cannot be read, and silently ignoring them would give a wrong GGUF */

int kq_hf_special_tokens(const char *model_dir, kq_vocab *v, char *err, size_t errlen) {
    static const char *const files[] = {"added_tokens.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "generation_config.json"};
    (void)v;
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char *path = join_path(model_dir, files[k]);
        FILE *f = path ? fopen(path, "rb") : NULL;
        if (f) {
            fclose(f);
            snprintf(err, errlen, "%s: cannot be read: kq was built without cJSON", path);
        } else if (!path) {
            snprintf(err, errlen, "%s: out of memory", model_dir);
        }
        free(path);
        if (f || !path) return -1;
    }
    return 0;
}

#endif
