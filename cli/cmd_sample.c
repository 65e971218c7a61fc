/* kq sample: a token stream the model itself produces, for evaluating random-weight fixtures.
 *
 * Real text means nothing to a model with random weights: its perplexity on it is about the vocabulary
 * size for every type, and KLD measures noise. A stream sampled from the model (F32, or F16) at a low
 * temperature is text the model "believes", so perplexity and KLD of the quantized files against it
 * measure how much quantization moves the model away from its own predictions.
 *
 * Each window starts at BOS from an empty KV cache and holds exactly CTX tokens, so `kq perplexity
 * --tokens FILE -c CTX` sees the same windows (its BOS rule then changes nothing). The sampler is a
 * plain softmax at temperature T with a splitmix64 generator (no GSL: it is in the static binary too);
 * T = 0 is greedy. Output: ids separated by spaces on one line, as `kq tokenize` prints them. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "kq_cli.h"

typedef struct {
    const char *model, *out, *impl;
    int64_t windows, ctx, threads;
    double temp;
    uint64_t seed;
} kq_sample_args;

static uint64_t kq_sample_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Draws an id from softmax(logits / temp) (argmax when temp <= 0). */
static int32_t kq_sample_pick(const float *logits, int n, double temp, uint64_t *rng, double *p) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    if (temp <= 0.0) return best;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += p[i] = exp(((double)logits[i] - (double)logits[best]) / temp);
    double u = ((double)(kq_sample_next(rng) >> 11) + 0.5) * 0x1p-53 * sum;
    for (int i = 0; i < n; i++) {
        u -= p[i];
        if (u < 0.0) return i;
    }
    return best;
}

static int kq_sample_window(kq_session *s, const kq_model_hparams *hp, const kq_sample_args *a, uint64_t *rng,
                            int32_t *ids, float *logits, double *p, char *err, size_t errlen) {
    kq_session_reset(s);
    ids[0] = hp->bos_id >= 0 ? hp->bos_id : (int32_t)(kq_sample_next(rng) % (uint64_t)hp->n_vocab);
    for (int64_t j = 0; j + 1 < a->ctx; j++) {
        if (kq_session_eval(s, &ids[j], 1, logits, 0, err, errlen) != 0) return -1;
        ids[j + 1] = kq_sample_pick(logits, hp->n_vocab, a->temp, rng, p);
    }
    return 0;
}

static int kq_sample_parse(int argc, char **argv, kq_sample_args *a) {
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) return 1;
        if (!v) {
            kq_cli_error("sample", "%s needs a value (see --help)", o);
            return -1;
        }
        i++;
        if (!strcmp(o, "-m") || !strcmp(o, "--model")) a->model = v;
        else if (!strcmp(o, "-o") || !strcmp(o, "--output")) a->out = v;
        else if (!strcmp(o, "--impl")) a->impl = v;
        else if (!strcmp(o, "--windows")) { if (kq_cli_parse_i64("sample", o, v, &a->windows)) return -1; }
        else if (!strcmp(o, "-c") || !strcmp(o, "--ctx")) { if (kq_cli_parse_i64("sample", o, v, &a->ctx)) return -1; }
        else if (!strcmp(o, "-t") || !strcmp(o, "--threads")) { if (kq_cli_parse_i64("sample", o, v, &a->threads)) return -1; }
        else if (!strcmp(o, "--seed")) { char *e; a->seed = strtoull(v, &e, 0); if (!*v || *e) { kq_cli_error("sample", "bad seed '%s'", v); return -1; } }
        else if (!strcmp(o, "--temp")) {
            char *e;
            a->temp = strtod(v, &e);
            if (!*v || *e || !(a->temp >= 0.0) || a->temp > 100.0) {
                kq_cli_error("sample", "--temp wants a number in [0, 100], not '%s'", v);
                return -1;
            }
        } else {
            kq_cli_error("sample", "unknown option '%s' (see --help)", o);
            return -1;
        }
    }
    if (!a->model) kq_cli_error("sample", "-m MODEL.gguf is required");
    return a->model ? 0 : -1;
}

static int kq_sample_write(const kq_sample_args *a, const int32_t *ids, int64_t n) {
    kq_out_file of;
    FILE *f = stdout;
    if (a->out) {
        if (kq_out_open(&of, "sample", a->out) != 0) return 1;
        f = of.f;
    }
    for (int64_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? " " : "", ids[i]);
    fputc('\n', f);
    if (a->out) return kq_out_commit(&of, "sample") == 0 ? 0 : 1;
    return fflush(stdout) == 0 ? 0 : 1;
}

static int kq_sample_run(const kq_sample_args *a) {
    kq_engine_opts eo;
    kq_engine_opts_init(&eo);
    char err[512];
    if (a->impl && kq_impl_parse(a->impl, &eo.impl, err, sizeof(err)) != 0) {
        kq_cli_error("sample", "%s", err);
        return 2;
    }
    if (a->threads) eo.threads = (int)a->threads;
    kq_model *m = NULL;
    kq_session *s = NULL;
    if (kq_model_load(a->model, &eo, &m, err, sizeof(err)) != 0 || kq_session_new(m, (int)a->ctx, &s, err, sizeof(err)) != 0) {
        kq_cli_error("sample", "%s", err);
        kq_model_free(m);
        return 1;
    }
    const kq_model_hparams *hp = kq_model_hp(m);
    int32_t *ids = malloc((size_t)(a->windows * a->ctx) * sizeof(int32_t));
    float *logits = malloc((size_t)hp->n_vocab * sizeof(float));
    double *p = malloc((size_t)hp->n_vocab * sizeof(double));
    uint64_t rng = a->seed;
    int rc = ids && logits && p ? 0 : 1;
    if (rc) kq_cli_error("sample", "out of memory");
    for (int64_t w = 0; rc == 0 && w < a->windows; w++) {
        fprintf(stderr, "\rkq sample: window %lld of %lld", (long long)w + 1, (long long)a->windows);
        if (kq_sample_window(s, hp, a, &rng, ids + w * a->ctx, logits, p, err, sizeof(err)) != 0) {
            kq_cli_error("sample", "%s", err);
            rc = 1;
        }
    }
    fprintf(stderr, "\n");
    if (rc == 0) rc = kq_sample_write(a, ids, a->windows * a->ctx);
    free(ids);
    free(logits);
    free(p);
    kq_session_free(s);
    kq_model_free(m);
    return rc;
}

int kq_cmd_sample(int argc, char **argv) {
    kq_sample_args a = {NULL, NULL, NULL, 1, 256, 0, 0.5, 1};
    const int pr = kq_sample_parse(argc, argv, &a);
    if (pr == 1) {
        printf("usage: kq sample -m MODEL.gguf [--windows W] [-c CTX] [--temp T] [--seed S] [-t N] [--impl I] [-o FILE]\n"
               "Samples W windows of CTX tokens (default 1 x 256) from the model: each starts at BOS from an empty\n"
               "KV cache, then every next token is drawn from softmax(logits / T) (default T 0.5; 0 = greedy; seed 1).\n"
               "Prints the ids on one line separated by spaces (kq tokenize's format) to FILE (written to a temp\n"
               "file and renamed) or stdout; `kq perplexity --tokens FILE -c CTX` reads them. Its use: an evaluation\n"
               "stream for random-weight models, on which real text measures nothing.\n");
        return 0;
    }
    if (pr != 0) return 2;
    return kq_sample_run(&a);
}
