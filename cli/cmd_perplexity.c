/* kq perplexity: llama-perplexity's figure (same windows, same scored positions, same BOS rule), KL
 * divergence against a base in llama.cpp's --kl-divergence-base format. docs/perplexity.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "kq_cli.h"
#include "perplexity.h"
/* by path: convert/ has a tokenizer.h too, and -Iconvert comes first */
#include "tokenizer.h"

#define KQ_PPL_CMD "perplexity"
#define KQ_PPL_DEFAULT_CTX 512

static void kq_ppl_usage(FILE *f) {
    fprintf(f,
            "usage: kq perplexity -m MODEL.gguf (-f TEXT | --tokens FILE | --kld-base FILE) [options]\n\n"
            "Perplexity exactly as llama.cpp's llama-perplexity computes it: non-overlapping windows of CTX\n"
            "tokens, token 0 of each replaced by BOS when the vocabulary adds BOS, each evaluated from an\n"
            "empty KV cache, the logits at positions CTX/2 .. CTX-2 scored against the next token.\n"
            "  -f TEXT             text file, tokenized whole with BOS prepended when the vocabulary adds it\n"
            "  --tokens FILE       token ids (kq tokenize output: whitespace-separated, or {\"ids\":[...]}),\n"
            "                      used as they are (nothing prepended; the window BOS rule still applies)\n"
            "  -c CTX              window length (default 512; a base file sets it when -c is absent)\n"
            "  --chunks N          score at most N windows\n"
            "  --save-logits FILE  write this run's log-probs as a llama.cpp --kl-divergence-base file\n"
            "  --kld-base FILE     compare with a base (llama.cpp's format): KL divergence, top-1\n"
            "                      agreement, paired ln p difference; without -f/--tokens its tokens are used\n"
            "  --json              one JSON object on stdout\n"
            "  -t THREADS          engine threads (default: online CPUs)\n"
            "  --impl I            kernels: reference | neon | auto (default auto)\n"
            "  --kv-type T         KV cache f16 (default, as llama.cpp) or f32\n"
            "  --progress          running PPL per window on stderr (default: when stderr is a terminal)\n"
            "Fewer than 2*CTX tokens is an error, as in llama-perplexity.\n");
}

typedef struct {
    const char *model, *text, *tokens, *save, *base;
    int ctx, ctx_given, chunks, json, progress, threads;
    const char *impl, *kv_type;
} kq_ppl_args;

/* Value of an option that needs one; NULL (error printed) when missing. */
static const char *kq_ppl_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        kq_cli_error(KQ_PPL_CMD, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int kq_ppl_int_opt(int argc, char **argv, int *i, int *out) {
    int64_t v;
    const char *opt = argv[*i];
    const char *s = kq_ppl_value(argc, argv, i);
    if (!s || kq_cli_parse_i64(KQ_PPL_CMD, opt, s, &v)) return -1;
    if (v > (1 << 24)) {
        kq_cli_error(KQ_PPL_CMD, "%s %lld is too large", opt, (long long)v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* 0 ok, 1 help shown, -1 usage error (printed) */
static int kq_ppl_parse(int argc, char **argv, kq_ppl_args *a) {
    memset(a, 0, sizeof *a);
    a->ctx = KQ_PPL_DEFAULT_CTX;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char **str = NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            kq_ppl_usage(stdout);
            return 1;
        } else if (!strcmp(o, "-m") || !strcmp(o, "--model")) str = &a->model;
        else if (!strcmp(o, "-f") || !strcmp(o, "--file")) str = &a->text;
        else if (!strcmp(o, "--tokens")) str = &a->tokens;
        else if (!strcmp(o, "--save-logits")) str = &a->save;
        else if (!strcmp(o, "--kld-base")) str = &a->base;
        else if (!strcmp(o, "--impl")) str = &a->impl;
        else if (!strcmp(o, "--kv-type")) str = &a->kv_type;
        else if (!strcmp(o, "--json")) a->json = 1;
        else if (!strcmp(o, "--progress")) a->progress = 1;
        else if (!strcmp(o, "-c") || !strcmp(o, "--ctx-size")) {
            if (kq_ppl_int_opt(argc, argv, &i, &a->ctx)) return -1;
            a->ctx_given = 1;
        } else if (!strcmp(o, "--chunks")) {
            if (kq_ppl_int_opt(argc, argv, &i, &a->chunks)) return -1;
        } else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) {
            if (kq_ppl_int_opt(argc, argv, &i, &a->threads)) return -1;
        } else {
            kq_cli_error(KQ_PPL_CMD, "unknown option '%s' (see kq perplexity --help)", o);
            return -1;
        }
        if (str && !(*str = kq_ppl_value(argc, argv, &i))) return -1;
    }
    if (!a->model) {
        kq_cli_error(KQ_PPL_CMD, "-m MODEL.gguf is required");
        return -1;
    }
    if (a->text && a->tokens) {
        kq_cli_error(KQ_PPL_CMD, "give -f TEXT or --tokens FILE, not both");
        return -1;
    }
    if (!a->text && !a->tokens && !a->base) {
        kq_cli_error(KQ_PPL_CMD, "no input: give -f TEXT, --tokens FILE or --kld-base FILE");
        return -1;
    }
    if (a->ctx < 3) {
        kq_cli_error(KQ_PPL_CMD, "-c %d: the context must be at least 3 (positions CTX/2 .. CTX-2 are scored)",
                     a->ctx);
        return -1;
    }
    return 0;
}

static int kq_ppl_engine_opts(const kq_ppl_args *a, kq_engine_opts *eo) {
    char err[256];
    kq_engine_opts_init(eo);
    if (a->threads > 0) eo->threads = a->threads;
    if (a->impl && kq_impl_parse(a->impl, &eo->impl, err, sizeof err)) {
        kq_cli_error(KQ_PPL_CMD, "--impl: %s", err);
        return -1;
    }
    if (a->kv_type) {
        if (!strcmp(a->kv_type, "f16")) eo->kv_type = KQ_TYPE_F16;
        else if (!strcmp(a->kv_type, "f32")) eo->kv_type = KQ_TYPE_F32;
        else {
            kq_cli_error(KQ_PPL_CMD, "--kv-type takes f16 or f32, not '%s'", a->kv_type);
            return -1;
        }
    }
    return 0;
}

/* The whole text tokenized as llama-perplexity does (common_tokenize with add_special = true). */
static int kq_ppl_tokenize(const kq_model *m, const char *path, int32_t **ids, int64_t *n) {
    char err[512];
    char *text = NULL;
    size_t len = 0;
    kq_tokenizer *t = NULL;
    int rc = -1;
    *ids = NULL;
    if (kq_text_read_file(path, &text, &len, err, sizeof err) ||
        kq_tokenizer_from_gguf(kq_model_gguf(m), &t, err, sizeof err)) {
        kq_cli_error(KQ_PPL_CMD, "%s", err);
        goto done;
    }
    const int add_bos = kq_tokenizer_add_bos(t);
    const int64_t count = kq_tokenize(t, text, len, add_bos, NULL, 0);
    if (count >= 0) *ids = malloc((size_t)(count > 0 ? count : 1) * sizeof **ids);
    if (count < 0 || !*ids || kq_tokenize(t, text, len, add_bos, *ids, count) != count) {
        kq_cli_error(KQ_PPL_CMD, "%s: cannot tokenize the text", path);
        goto done;
    }
    *n = count;
    rc = 0;
done:
    if (rc) {
        free(*ids);
        *ids = NULL;
    }
    kq_tokenizer_free(t);
    free(text);
    return rc;
}

/* The stream must start with the base's tokens, window for window. */
static int kq_ppl_match_base(const kq_ppl_args *a, const kq_logits_header *h, const int32_t *ids, int64_t n) {
    const int64_t need = (int64_t)h->n_chunk * h->n_ctx;
    if (n < need) {
        kq_cli_error(KQ_PPL_CMD, "%s holds %d windows of %d tokens, but the input has only %lld tokens", a->base,
                     (int)h->n_chunk, (int)h->n_ctx, (long long)n);
        return -1;
    }
    for (int64_t i = 0; i < need; i++)
        if (ids[i] != h->tokens[i]) {
            kq_cli_error(KQ_PPL_CMD, "%s was computed on other tokens: token %lld is %d there, %d here", a->base,
                         (long long)i, (int)h->tokens[i], (int)ids[i]);
            return -1;
        }
    return 0;
}

static int kq_ppl_open_base(const kq_ppl_args *a, const kq_model_hparams *hp, FILE **f, kq_logits_header *h) {
    char err[512];
    *f = fopen(a->base, "rb");
    if (!*f) {
        kq_cli_error(KQ_PPL_CMD, "%s: cannot open", a->base);
        return -1;
    }
    if (kq_logits_header_read(*f, a->base, h, err, sizeof err)) {
        kq_cli_error(KQ_PPL_CMD, "%s", err);
        return -1;
    }
    if (h->n_vocab != hp->n_vocab) {
        kq_cli_error(KQ_PPL_CMD, "%s has a vocabulary of %d, the model %d: another model family", a->base,
                     (int)h->n_vocab, hp->n_vocab);
        return -1;
    }
    if (a->ctx_given && a->ctx != h->n_ctx) {
        kq_cli_error(KQ_PPL_CMD, "%s was computed with a context of %d, not -c %d", a->base, (int)h->n_ctx, a->ctx);
        return -1;
    }
    return 0;
}

static void kq_ppl_progress(void *user, int done, int n_chunks, double ppl) {
    (void)user;
    fprintf(stderr, "perplexity: window %d/%d: PPL %.4f\n", done, n_chunks, ppl);
}

static int kq_ppl_eval(void *user, const int32_t *window, int n, float *logits, char *err, size_t errlen) {
    kq_session *s = user;
    kq_session_reset(s); /* each window from an empty KV cache, as llama_memory_clear */
    return kq_session_eval(s, window, n, logits, 1, err, errlen) ? -1 : 0;
}

static void kq_ppl_print(FILE *f, const kq_ppl_args *a, const kq_ppl_result *r) {
    fprintf(f, "model %s: %lld tokens, ctx %d, %d windows, %lld scored tokens\n", a->model, (long long)r->n_tokens,
            r->n_ctx, r->n_chunks, (long long)r->n_scored);
    fprintf(f, "PPL = %.4f +/- %.5f\n", r->ppl, r->ppl_se);
    if (!r->has_base) return;
    fprintf(f, "base PPL (stored log-probs) = %.4f +/- %.5f\n", r->ppl_base, r->ppl_base_se);
    fprintf(f, "KLD: mean %.6f +/- %.6f, median %.6f, 99%% %.6f, max %.6f\n", r->kld_stats.mean, r->kld_stats.se,
            r->kld_stats.median, r->kld_stats.p99, r->kld_stats.max);
    fprintf(f, "top-1 agreement: %.3f%% +/- %.3f%%\n", 100 * r->top1, 100 * r->top1_se);
    fprintf(f, "delta ln p (this - base): %.6f +/- %.6f (z = %.2f): ", r->dlnp_stats.mean, r->dlnp_stats.se,
            r->dlnp_z);
    if (!r->dlnp_significant) fprintf(f, "no significant difference at 5%%\n");
    else fprintf(f, "this model is %s than the base (significant at 5%%)\n", r->dlnp_z < 0 ? "worse" : "better");
}

typedef struct {
    kq_model *model;
    kq_session *session;
    int32_t *ids;
    int64_t n_ids;
    FILE *base;
    kq_logits_header base_h;
    kq_out_file save;
    int saving;
} kq_ppl_state;

static void kq_ppl_state_free(kq_ppl_state *s) {
    if (s->saving) kq_out_abort(&s->save);
    if (s->base) fclose(s->base);
    kq_logits_header_free(&s->base_h);
    free(s->ids);
    kq_session_free(s->session);
    kq_model_free(s->model);
}

/* Loads the model, the stream and the base; 0, or the exit code. */
static int kq_ppl_prepare(kq_ppl_args *a, kq_ppl_state *s) {
    char err[512];
    kq_engine_opts eo;
    if (kq_ppl_engine_opts(a, &eo)) return 2;
    if (kq_model_load(a->model, &eo, &s->model, err, sizeof err)) {
        kq_cli_error(KQ_PPL_CMD, "%s", err);
        return 1;
    }
    const kq_model_hparams *hp = kq_model_hp(s->model);
    if (a->text && kq_ppl_tokenize(s->model, a->text, &s->ids, &s->n_ids)) return 2;
    if (a->tokens && kq_ppl_read_tokens(a->tokens, &s->ids, &s->n_ids, err, sizeof err)) {
        kq_cli_error(KQ_PPL_CMD, "%s", err);
        return 2;
    }
    if (a->base) {
        if (kq_ppl_open_base(a, hp, &s->base, &s->base_h)) return 2;
        a->ctx = s->base_h.n_ctx;
        if (s->ids && kq_ppl_match_base(a, &s->base_h, s->ids, s->n_ids)) return 2;
        if (!s->ids) { /* llama.cpp's --kl-divergence: the tokens come from the base */
            s->ids = s->base_h.tokens;
            s->n_ids = (int64_t)s->base_h.n_chunk * s->base_h.n_ctx;
            s->base_h.tokens = NULL;
        } else {
            s->n_ids = (int64_t)s->base_h.n_chunk * s->base_h.n_ctx; /* the windows the base has */
        }
    } else if (kq_ppl_check_stream(s->n_ids, a->ctx, err, sizeof err)) {
        kq_cli_error(KQ_PPL_CMD, "%s", err);
        return 2;
    }
    if (hp->n_ctx_train > 0 && a->ctx > hp->n_ctx_train)
        fprintf(stderr, "kq: perplexity: warning: the model was trained on %d tokens of context (-c %d)\n",
                hp->n_ctx_train, a->ctx);
    if (kq_session_new(s->model, a->ctx, &s->session, err, sizeof err)) {
        kq_cli_error(KQ_PPL_CMD, "%s", err);
        return 1;
    }
    return 0;
}

static int kq_ppl_save_header(const kq_ppl_args *a, kq_ppl_state *s, const kq_ppl_opts *o) {
    char err[256];
    int64_t n_chunk = s->n_ids / o->n_ctx;
    if (o->max_chunks > 0 && o->max_chunks < n_chunk) n_chunk = o->max_chunks;
    if (kq_out_open(&s->save, KQ_PPL_CMD, a->save)) return -1;
    s->saving = 1;
    if (kq_logits_header_write(s->save.f, o->n_ctx, o->n_vocab, (int)n_chunk, s->ids, err, sizeof err)) {
        kq_cli_error(KQ_PPL_CMD, "%s: %s", a->save, err);
        return -1;
    }
    return 0;
}

int kq_cmd_perplexity(int argc, char **argv) {
    kq_ppl_args a;
    const int pr = kq_ppl_parse(argc, argv, &a);
    if (pr) return pr > 0 ? 0 : 2;
    kq_ppl_state s;
    memset(&s, 0, sizeof s);
    int rc = kq_ppl_prepare(&a, &s);
    if (rc) goto done;
    const kq_model_hparams *hp = kq_model_hp(s.model);
    kq_ppl_opts o = {.n_ctx = a.ctx, .n_vocab = hp->n_vocab, .add_bos = hp->add_bos, .bos_id = hp->bos_id,
                     .max_chunks = a.chunks, .base = s.base, .base_name = a.base};
    if (a.progress || isatty(STDERR_FILENO)) o.progress = kq_ppl_progress;
    rc = 1;
    if (a.save && kq_ppl_save_header(&a, &s, &o)) goto done;
    o.save = s.saving ? s.save.f : NULL;
    kq_ppl_result r;
    char err[512];
    if (kq_ppl_run(&o, s.ids, s.n_ids, kq_ppl_eval, s.session, &r, err, sizeof err)) {
        kq_cli_error(KQ_PPL_CMD, "%s", err);
        goto done;
    }
    if (s.saving) {
        s.saving = 0;
        if (kq_out_commit(&s.save, KQ_PPL_CMD)) {
            kq_ppl_result_free(&r);
            goto done;
        }
    }
    if (a.json) {
        kq_ppl_result_json(stdout, &r);
        fputc('\n', stdout);
    } else {
        kq_ppl_print(stdout, &a, &r);
    }
    kq_ppl_result_free(&r);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    kq_ppl_state_free(&s);
    return rc;
}
