/* kq tokenize -m MODEL.gguf (TEXT | -f FILE) [--json] [--no-bos] [--lines]: the token ids of a text,
 * as the engine (and llama.cpp) tokenizes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "gguf.h"
#include "kq_cli.h"

static void kq_tokenize_usage(FILE *f) {
    fprintf(f, "usage: kq tokenize -m MODEL.gguf (TEXT | -f FILE) [--json] [--no-bos] [--lines]\n\n"
               "Prints the token ids of TEXT (or of FILE) whitespace-separated on one line, BOS first when\n"
               "the vocabulary adds BOS (tokenizer.ggml.add_bos_token), as llama.cpp tokenizes it for\n"
               "llama-perplexity (special pieces such as <s> in the text are plain text).\n"
               "  -m MODEL.gguf  the model whose vocabulary is used (SentencePiece: tokenizer.ggml.model llama)\n"
               "  -f FILE        read the text from FILE; as llama.cpp's -f, one trailing newline is dropped\n"
               "  --json         print {\"ids\":[...]} instead\n"
               "  --no-bos       no BOS even if the vocabulary adds one\n"
               "  --lines        each line (split at LF) tokenized on its own, one output line per line,\n"
               "                 as SentencePiece's spm_encode does\n"
               "  --             the next argument is the TEXT even if it starts with '-'\n");
}

/* Writes the ids through a buffer: a 1 MB text has ~300k of them. */
static int kq_tokenize_print(FILE *f, const int32_t *ids, int64_t n, int json) {
    char buf[1 << 16];
    size_t at = 0;
    if (json) at += (size_t)snprintf(buf, sizeof(buf), "{\"ids\":[");
    for (int64_t i = 0; i < n; i++) {
        if (at > sizeof(buf) - 32) {
            if (fwrite(buf, 1, at, f) != at) return -1;
            at = 0;
        }
        const char *sep = i == 0 ? "" : json ? "," : " ";
        at += (size_t)snprintf(buf + at, sizeof(buf) - at, "%s%d", sep, (int)ids[i]);
    }
    at += (size_t)snprintf(buf + at, sizeof(buf) - at, json ? "]}\n" : "\n");
    return fwrite(buf, 1, at, f) == at ? 0 : -1;
}

typedef struct {
    const char *model, *file, *text;
    int json, no_bos, lines;
} kq_tokenize_args;

/* 0 ok, 1 help shown, 2 usage error. */
static int kq_tokenize_parse(int argc, char **argv, kq_tokenize_args *a) {
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            kq_tokenize_usage(stdout);
            return 1;
        }
        if (!strcmp(s, "--") && i + 1 < argc && !a->text) {
            a->text = argv[++i];
            continue;
        }
        if (!strcmp(s, "--json")) a->json = 1;
        else if (!strcmp(s, "--lines")) a->lines = 1;
        else if (!strcmp(s, "--no-bos")) a->no_bos = 1;
        else if (!strcmp(s, "-m") || !strcmp(s, "-f")) {
            if (i + 1 >= argc) {
                kq_cli_error("tokenize", "%s needs a value", s);
                return 2;
            }
            if (s[1] == 'm') a->model = argv[++i];
            else a->file = argv[++i];
        } else if (s[0] == '-' && s[1]) {
            kq_cli_error("tokenize", "unknown option '%s' (see kq tokenize --help)", s);
            return 2;
        } else if (a->text) {
            kq_cli_error("tokenize", "one text at a time (quote it: kq tokenize -m M \"two words\")");
            return 2;
        } else a->text = s;
    }
    if (!a->model || (!a->file && !a->text)) {
        kq_tokenize_usage(stderr);
        return 2;
    }
    if (a->file && a->text) {
        kq_cli_error("tokenize", "give TEXT or -f FILE, not both");
        return 2;
    }
    return 0;
}

static kq_tokenizer *kq_tokenize_load(const char *model) {
    char err[1024];
    kq_gguf *g = NULL;
    kq_tokenizer *t = NULL;
    if (kq_gguf_open(model, &g, err, sizeof(err)) || kq_tokenizer_from_gguf(g, &t, err, sizeof(err)))
        kq_cli_error("tokenize", "%s", err);
    kq_gguf_close(g);
    return t;
}

/* Tokenizes into *ids (grown as needed, *cap its size); the count, or -1 with the error printed. */
static int64_t kq_tokenize_text(const kq_tokenizer *t, const char *model, const char *text, size_t len, int bos,
                                int32_t **ids, int64_t *cap) {
    for (;;) {
        const int64_t n = kq_tokenize(t, text, len, bos, *ids, *cap);
        if (n < 0) {
            kq_cli_error("tokenize", "%s: the text cannot be tokenized with this vocabulary (a byte without a "
                                     "byte token and no unknown token, or the text is over 1 GiB)",
                         model);
            return -1;
        }
        if (n <= *cap) return n;
        int32_t *b = realloc(*ids, (size_t)n * sizeof(**ids));
        if (!b) {
            kq_cli_error("tokenize", "out of memory");
            return -1;
        }
        *ids = b;
        *cap = n;
    }
}

static int kq_tokenize_all(const kq_tokenize_args *a, const kq_tokenizer *t, const char *text, size_t len) {
    const int bos = !a->no_bos && kq_tokenizer_add_bos(t);
    /* one id per byte is enough unless spaces fall back to 3 byte tokens each: then a second pass */
    int64_t cap = a->lines ? 256 : (int64_t)len + 16;
    int32_t *ids = malloc((size_t)cap * sizeof(*ids));
    if (!ids) {
        kq_cli_error("tokenize", "out of memory");
        return 1;
    }
    int rc = 0;
    for (size_t at = 0; rc == 0;) {
        const char *nl = a->lines ? memchr(text + at, '\n', len - at) : NULL;
        const size_t end = nl ? (size_t)(nl - text) : len;
        const int64_t n = kq_tokenize_text(t, a->model, text + at, end - at, bos, &ids, &cap);
        if (n < 0) rc = 1;
        else if (kq_tokenize_print(stdout, ids, n, a->json)) rc = -1;
        if (!nl) break;
        at = end + 1;
    }
    free(ids);
    if (rc == -1 || (rc == 0 && (fflush(stdout) != 0 || ferror(stdout)))) {
        kq_cli_error("tokenize", "writing the output failed");
        rc = 1;
    }
    return rc;
}

int kq_cmd_tokenize(int argc, char **argv) {
    kq_tokenize_args a;
    const int prc = kq_tokenize_parse(argc, argv, &a);
    if (prc) return prc == 1 ? 0 : prc;
    char *owned = NULL;
    const char *text = a.text;
    size_t len = text ? strlen(text) : 0;
    if (a.file) {
        char err[1024];
        if (kq_text_read_file(a.file, &owned, &len, err, sizeof(err))) {
            kq_cli_error("tokenize", "%s", err);
            return 2;
        }
        text = owned;
    }
    kq_tokenizer *t = kq_tokenize_load(a.model);
    const int rc = t ? kq_tokenize_all(&a, t, text, len) : 2;
    kq_tokenizer_free(t);
    free(owned);
    return rc;
}
