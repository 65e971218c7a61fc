/* kq bench -m MODEL.gguf: prompt tokens/s and generation ms/token with their 95% confidence
 * intervals, the memory read bandwidth and the roofline (validation/bench.h, docs/bench.md). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "kq_cli.h"

#define KQ_BENCH_CMD "bench"
#define KQ_BENCH_MAX_TOKENS (1 << 20)

static void kq_bench_usage(FILE *f) {
    fprintf(f,
            "usage: kq bench -m MODEL.gguf [-t N] [-p 512] [-n 128] [-r 8] [--impl NAME] [--kv-type f16|f32] [--json]\n\n"
            "Speed of a model on this machine, labelled with the host and the kernels that ran:\n"
            "  prompt processing  -p tokens in one batched eval from an empty cache: tokens/s\n"
            "  generation         after a %d-token prompt, -n tokens one at a time: ms/token\n"
            "Each is run once to warm up, then -r times; the figure is the median with a distribution-free\n"
            "95%% confidence interval from order statistics (needs -r >= %d, else n/a), min and max.\n"
            "The memory read bandwidth is measured in the same run with the same threads, and the\n"
            "generation time is compared with its roofline (weight bytes per token / bandwidth).\n\n"
            "  -m FILE         the GGUF model\n"
            "  -t N            threads (default: online CPUs)\n"
            "  -p N            prompt tokens (default 512)\n"
            "  -n N            generated tokens (default 128)\n"
            "  -r N            counted runs of each, 1..%d (default 8)\n"
            "  --impl NAME     reference | neon | neon-plain | neon-dotprod | auto (default auto)\n"
            "  --kv-type T     f16 (default) or f32\n"
            "  --bw-mib N      bandwidth buffer in MiB (default: 4x the last-level cache, >= 64 MiB)\n"
            "  --json          one JSON object on stdout\n",
            16, KQ_BENCH_MIN_CI_RUNS, KQ_BENCH_MAX_RUNS);
}

/* A positive integer option no larger than max; -1 with a one-line error. */
static int kq_bench_int(const char *opt, const char *v, int64_t max, int *out) {
    int64_t x;
    if (kq_cli_parse_i64(KQ_BENCH_CMD, opt, v, &x) != 0) return -1;
    if (x > max) {
        kq_cli_error(KQ_BENCH_CMD, "%s is at most %lld, not %lld", opt, (long long)max, (long long)x);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* Parses argv into o; 0, 1 for --help, or -1 on a usage error (already reported). */
static int kq_bench_parse(int argc, char **argv, kq_bench_opts *o, int *json) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0, bw_mib = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
        else if (!strcmp(a, "--json")) { *json = 1; continue; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!v) { kq_cli_error(KQ_BENCH_CMD, "%s needs a file", a); return -1; }
            o->model_path = v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) rc = kq_bench_int(a, v, 4096, &o->threads);
        else if (!strcmp(a, "-p")) rc = kq_bench_int(a, v, KQ_BENCH_MAX_TOKENS, &o->n_prompt);
        else if (!strcmp(a, "-n")) rc = kq_bench_int(a, v, KQ_BENCH_MAX_TOKENS, &o->n_gen);
        else if (!strcmp(a, "-r")) rc = kq_bench_int(a, v, KQ_BENCH_MAX_RUNS, &o->runs);
        else if (!strcmp(a, "--bw-mib")) {
            rc = kq_bench_int(a, v, 1 << 20, &bw_mib);
            o->bw_bytes = (size_t)bw_mib << 20;
        } else if (!strcmp(a, "--impl")) {
            char err[256];
            if (!v) { kq_cli_error(KQ_BENCH_CMD, "--impl needs a name"); return -1; }
            if (kq_impl_parse(v, &o->impl, err, sizeof(err)) != 0) { kq_cli_error(KQ_BENCH_CMD, "%s", err); return -1; }
        } else if (!strcmp(a, "--kv-type")) {
            if (v && !strcmp(v, "f16")) o->kv_f32 = 0;
            else if (v && !strcmp(v, "f32")) o->kv_f32 = 1;
            else { kq_cli_error(KQ_BENCH_CMD, "--kv-type takes f16 or f32, not '%s'", v ? v : ""); return -1; }
        } else {
            kq_cli_error(KQ_BENCH_CMD, "unknown option '%s' (see kq bench --help)", a);
            return -1;
        }
        if (rc != 0) return -1;
        i++; /* the option's value */
    }
    if (!o->model_path) {
        kq_cli_error(KQ_BENCH_CMD, "no model: -m MODEL.gguf is required");
        return -1;
    }
    return 0;
}

int kq_cmd_bench(int argc, char **argv) {
    kq_bench_opts o;
    kq_bench_opts_init(&o);
    int json = 0;
    const int p = kq_bench_parse(argc, argv, &o, &json);
    if (p == 1) {
        kq_bench_usage(stdout);
        return 0;
    }
    if (p != 0) return 2;
    o.progress = isatty(STDERR_FILENO);
    kq_bench_result r;
    char err[512] = "";
    const int rc = kq_bench_run(&o, &r, err, sizeof(err));
    if (rc != 0) {
        kq_cli_error(KQ_BENCH_CMD, "%s", err[0] ? err : "failed");
        kq_bench_result_free(&r);
        return rc;
    }
    if (json) kq_bench_write_json(stdout, &r);
    else kq_bench_write_text(stdout, &r);
    kq_bench_result_free(&r);
    return fflush(stdout) == 0 ? 0 : 1;
}
