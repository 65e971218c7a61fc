/* kq generate -m MODEL.gguf -p PROMPT [-n N] [--temp T] [--seed S] [-t THREADS] [--impl I]
 * [--kv-type f16|f32]: let a person see the model speak. The text goes to stdout as it is made;
 * timings go to stderr. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"
#include "engine.h"
#include "kq_cli.h"

static void kq_generate_usage(FILE *f) {
    fprintf(f, "usage: kq generate -m MODEL.gguf -p PROMPT [options]\n\n"
               "Continues PROMPT with the model and prints the text as it is generated (stops at EOS).\n"
               "  -m MODEL.gguf     the model (llama family, any weight type kq runs)\n"
               "  -p PROMPT         the text to continue (BOS first when the vocabulary adds BOS)\n"
               "  -n N              tokens to generate (default 64)\n"
               "  --temp T          sampling temperature; 0 = greedy (default 0.8)\n"
               "  --seed S          random seed of the sampler (default: from the clock, printed)\n"
               "  -t, --threads N   threads (default: online CPUs)\n"
               "  --impl I          kernels: reference, neon, neon-plain, neon-dotprod, auto (default auto)\n"
               "  --kv-type T       KV cache f16 (default) or f32\n"
               "  -c, --ctx N       context positions (default: prompt + N)\n"
               "  --ids             also print the token ids (stderr)\n");
}

typedef struct {
    const char *model, *prompt;
    int64_t n, threads, ctx;
    double temp;
    uint64_t seed;
    int have_seed, ids;
    kq_impl impl;
    kq_type kv;
} kq_gen_args;

static int kq_gen_value(int argc, char **argv, int *i, const char **v) {
    if (*i + 1 >= argc) {
        kq_cli_error("generate", "%s needs a value", argv[*i]);
        return -1;
    }
    *v = argv[++*i];
    return 0;
}

static int kq_gen_option(kq_gen_args *a, const char *s, const char *v) {
    char err[256];
    if (!strcmp(s, "-m")) a->model = v;
    else if (!strcmp(s, "-p")) a->prompt = v;
    else if (!strcmp(s, "-n")) return kq_cli_parse_i64("generate", s, v, &a->n);
    else if (!strcmp(s, "-t") || !strcmp(s, "--threads")) return kq_cli_parse_i64("generate", s, v, &a->threads);
    else if (!strcmp(s, "-c") || !strcmp(s, "--ctx")) return kq_cli_parse_i64("generate", s, v, &a->ctx);
    else if (!strcmp(s, "--temp")) {
        char *end;
        a->temp = strtod(v, &end);
        if (*end || end == v || !(a->temp >= 0.0) || a->temp > 100.0) {
            kq_cli_error("generate", "--temp takes a number >= 0, not '%s'", v);
            return -1;
        }
    } else if (!strcmp(s, "--seed")) {
        char *end;
        a->seed = strtoull(v, &end, 10);
        if (*end || end == v) {
            kq_cli_error("generate", "--seed takes a whole number, not '%s'", v);
            return -1;
        }
        a->have_seed = 1;
    } else if (!strcmp(s, "--impl")) {
        if (kq_impl_parse(v, &a->impl, err, sizeof err)) {
            kq_cli_error("generate", "%s", err);
            return -1;
        }
    } else if (!strcmp(s, "--kv-type")) {
        if (!strcmp(v, "f16")) a->kv = KQ_TYPE_F16;
        else if (!strcmp(v, "f32")) a->kv = KQ_TYPE_F32;
        else {
            kq_cli_error("generate", "--kv-type takes f16 or f32, not '%s'", v);
            return -1;
        }
    } else {
        kq_cli_error("generate", "unknown option '%s' (see kq generate --help)", s);
        return -1;
    }
    return 0;
}

/* 0 ok, 1 help shown, 2 usage error. */
static int kq_gen_parse(int argc, char **argv, kq_gen_args *a) {
    memset(a, 0, sizeof *a);
    a->n = 64;
    a->temp = 0.8;
    a->impl = kq_impl_best();
    a->kv = KQ_TYPE_F16;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            kq_generate_usage(stdout);
            return 1;
        }
        if (!strcmp(s, "--ids")) {
            a->ids = 1;
            continue;
        }
        if (kq_gen_value(argc, argv, &i, &v) || kq_gen_option(a, s, v)) return 2;
    }
    if (!a->model || !a->prompt) {
        kq_generate_usage(stderr);
        return 2;
    }
    if (a->n > (1 << 24) || a->threads > 1024) {
        kq_cli_error("generate", "-n or -t too large");
        return 2;
    }
    return 0;
}

static uint64_t kq_gen_rand(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Greedy for temp 0, else a draw from softmax(logits / temp). */
static int32_t kq_gen_sample(const float *lg, int n, double temp, uint64_t *rng) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (lg[i] > lg[best]) best = i;
    if (temp <= 0.0) return best;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp(((double)lg[i] - lg[best]) / temp);
    const double u = (double)(kq_gen_rand(rng) >> 11) * (1.0 / 9007199254740992.0) * sum;
    double c = 0.0;
    for (int i = 0; i < n; i++) {
        c += exp(((double)lg[i] - lg[best]) / temp);
        if (u < c) return i;
    }
    return best;
}

static double kq_gen_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void kq_gen_put(const kq_tokenizer *tk, int32_t id) {
    char buf[256];
    const size_t n = kq_detokenize_token(tk, id, buf, sizeof buf);
    fwrite(buf, 1, n < sizeof buf ? n : sizeof buf, stdout);
    fflush(stdout);
}

typedef struct {
    kq_model *m;
    kq_session *s;
    kq_tokenizer *tk;
    int32_t *ids;
    float *logits;
} kq_gen_state;

static void kq_gen_free(kq_gen_state *g) {
    kq_session_free(g->s);
    kq_tokenizer_free(g->tk);
    kq_model_free(g->m);
    free(g->ids);
    free(g->logits);
}

static int kq_gen_run(const kq_gen_args *a, kq_gen_state *g) {
    char err[1024];
    kq_engine_opts o;
    kq_engine_opts_init(&o);
    o.impl = a->impl;
    o.kv_type = a->kv;
    if (a->threads) o.threads = (int)a->threads;
    if (kq_model_load(a->model, &o, &g->m, err, sizeof err) ||
        kq_tokenizer_from_gguf(kq_model_gguf(g->m), &g->tk, err, sizeof err)) {
        kq_cli_error("generate", "%s", err);
        return 1;
    }
    const kq_model_hparams *hp = kq_model_hp(g->m);
    const size_t plen = strlen(a->prompt);
    const int add_bos = kq_tokenizer_add_bos(g->tk);
    const int64_t np = kq_tokenize(g->tk, a->prompt, plen, add_bos, NULL, 0);
    if (np < 0 || np + a->n > (1 << 30)) {
        kq_cli_error("generate", "cannot tokenize the prompt");
        return 1;
    }
    const int64_t total = np + a->n;
    g->ids = malloc((size_t)(total > 0 ? total : 1) * sizeof(int32_t));
    g->logits = malloc((size_t)hp->n_vocab * sizeof(float));
    if (!g->ids || !g->logits || kq_tokenize(g->tk, a->prompt, plen, add_bos, g->ids, np) != np) {
        kq_cli_error("generate", "cannot tokenize the prompt");
        return 1;
    }
    if (np == 0) {
        kq_cli_error("generate", "the prompt is empty and the vocabulary adds no BOS");
        return 2;
    }
    const int64_t ctx = a->ctx ? a->ctx : total;
    if (ctx < np + 1 || ctx > (1 << 30)) {
        kq_cli_error("generate", "a context of %lld positions is too small: the prompt alone has %lld tokens",
                     (long long)ctx, (long long)np);
        return 2;
    }
    if (kq_session_new(g->m, (int)ctx, &g->s, err, sizeof err)) {
        kq_cli_error("generate", "%s", err);
        return 1;
    }
    uint64_t rng = a->have_seed ? a->seed : (uint64_t)time(NULL);
    if (!a->have_seed && a->temp > 0) fprintf(stderr, "kq: generate: seed %llu\n", (unsigned long long)rng);

    fwrite(a->prompt, 1, plen, stdout);
    fflush(stdout);
    const double t0 = kq_gen_now();
    if (kq_session_eval(g->s, g->ids, (int)np, g->logits, 0, err, sizeof err)) {
        kq_cli_error("generate", "%s", err);
        return 1;
    }
    const double t1 = kq_gen_now();
    int64_t made = 0;
    while (made < a->n && kq_session_pos(g->s) < kq_session_n_ctx(g->s)) {
        const int32_t id = kq_gen_sample(g->logits, hp->n_vocab, a->temp, &rng);
        g->ids[np + made++] = id;
        if (id == hp->eos_id) break;
        kq_gen_put(g->tk, id);
        if (made == a->n || kq_session_pos(g->s) >= kq_session_n_ctx(g->s)) break;
        if (kq_session_eval(g->s, &id, 1, g->logits, 0, err, sizeof err)) {
            kq_cli_error("generate", "%s", err);
            return 1;
        }
    }
    const double t2 = kq_gen_now();
    printf("\n");
    fflush(stdout); /* the text before the timings on stderr */
    if (a->ids) {
        for (int64_t i = 0; i < np + made; i++) fprintf(stderr, "%s%d", i ? " " : "ids: ", (int)g->ids[i]);
        fprintf(stderr, "\n");
    }
    fprintf(stderr, "kq: generate: %s, %s kernels, %d threads, KV %s: prompt %lld tokens in %.1f ms (%.1f tokens/s), "
                    "%lld tokens generated at %.2f ms/token\n",
            hp->name, kq_impl_name(o.impl), o.threads, a->kv == KQ_TYPE_F16 ? "f16" : "f32", (long long)np,
            (t1 - t0) * 1e3, (double)np / (t1 - t0 > 0 ? t1 - t0 : 1e-9), (long long)made,
            made > 1 ? (t2 - t1) * 1e3 / (double)(made - 1) : 0.0);
    return 0;
}

int kq_cmd_generate(int argc, char **argv) {
    kq_gen_args a;
    const int rc = kq_gen_parse(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    kq_gen_state g = {0};
    const int r = kq_gen_run(&a, &g);
    kq_gen_free(&g);
    return r;
}
