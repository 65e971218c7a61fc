/* kq bench: prompt-processing and generation speed of a GGUF model, with statistics a reader can
 * trust, the memory read bandwidth of the same machine and the roofline it implies.
 *
 * - Each measurement is repeated (a warm-up run first, not counted); the figure is the median with a
 *   distribution-free 95% confidence interval from order statistics: (x_(j), x_(n+1-j)) covers the
 *   median with probability P(j <= B <= n-j), B ~ Binomial(n, 1/2), whatever the distribution of the
 *   runs. The tightest such pair with coverage >= 0.95 needs n >= 6 (n = 5 gives 0.9375).
 * - Generation is memory-bound: ms/token >= bytes of weights read per token / read bandwidth. The
 *   bandwidth comes from a STREAM-like read kernel run in the same process with the same threads over
 *   a buffer >= 4x the last-level cache; when the weights themselves fit in that cache the bound says
 *   nothing, and the fraction is reported as n/a (cache-resident).
 * - Everything is labelled with the host, the kernels that ran and the thread count: a figure from an
 *   x86-64 host or from qemu is never a Kunpeng 920 figure.
 * Needs neither GSL nor cJSON (it is in the static aarch64 binary). */
#ifndef KQ_BENCH_H
#define KQ_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kq_dispatch.h"

#define KQ_BENCH_MIN_CI_RUNS 6  /* fewest runs with a 95% order-statistics interval */
#define KQ_BENCH_MAX_RUNS 1000  /* C(n, n/2) stays finite in double */

/* ---- statistics ---- */

/* The tightest symmetric pair of order statistics covering the median with probability >= level
 * (0 < level < 1): 0-based indices *lo = j-1 and *hi = n-j into the sorted sample, and the exact
 * binomial coverage. Returns 0, or -1 (with *lo = *hi = -1) when no pair reaches the level
 * (n < 6 at 0.95) or n is outside 1..KQ_BENCH_MAX_RUNS. */
int kq_bench_median_ci_ranks(int n, double level, int *lo, int *hi, double *coverage);

/* Median of x[0..n) (mean of the two middle values for even n); x is not changed. NAN if n < 1. */
double kq_bench_median(const double *x, int n);

typedef struct {
    int runs;
    double median, min, max;
    int has_ci;           /* 0: fewer than KQ_BENCH_MIN_CI_RUNS runs, the interval is n/a */
    double ci_lo, ci_hi;  /* x_(j), x_(n+1-j) */
    int ci_rank_lo, ci_rank_hi; /* 1-based j and n+1-j */
    double ci_coverage;   /* exact binomial coverage of the pair */
    double *samples;      /* the runs in measured order (owned) */
} kq_bench_stat;

/* Fills st from x[0..n) (copied). Returns 0, or -1 out of memory / n < 1. */
int kq_bench_stat_compute(kq_bench_stat *st, const double *x, int n);
void kq_bench_stat_free(kq_bench_stat *st);

/* ---- the machine ---- */

typedef struct {
    char machine[65];    /* uname -m */
    char cpu[128];       /* "Intel(R) Xeon(R) ...", "HiSilicon TSV110", ... */
    int kunpeng920;      /* aarch64 and CPU implementer 0x48 part 0xd01 */
    int emulated;        /* uname says aarch64 but /proc/cpuinfo describes another CPU (qemu-user) */
    uint64_t llc_bytes;  /* last-level cache of cpu0 */
    char llc_source[64]; /* "L3 of cpu0 (sysfs)", or "fallback: 32 MiB (sysfs unreadable)" */
    int n_cpus;          /* online */
    double load1;        /* 1-minute load average before the run (NAN if unknown): other work skews figures */
} kq_bench_host;

void kq_bench_host_detect(kq_bench_host *h);
/* Name of an aarch64 core from /proc/cpuinfo's implementer and part (0x48, 0xd01 -> "HiSilicon TSV110");
 * NULL if unknown. */
const char *kq_bench_arm_cpu_name(unsigned implementer, unsigned part);
/* Parses /proc/cpuinfo text into h->cpu, h->kunpeng920 (machine must be set). */
void kq_bench_parse_cpuinfo(kq_bench_host *h, const char *text);
/* One-line label: "x86-64 host (Intel ...), reference kernels, 2 threads". */
void kq_bench_host_label(const kq_bench_host *h, const char *impl, int threads, char *buf, size_t len);

/* ---- memory read bandwidth ---- */

typedef struct {
    double gbs;          /* best repetition, 1e9 bytes/s */
    double median_gbs;   /* median repetition */
    size_t buffer_bytes;
    int reps, threads;
} kq_bench_bw;

/* Default buffer: 4x the last-level cache, at least 64 MiB, at most half the available memory
 * (and 8 GiB). */
size_t kq_bench_bw_default_bytes(uint64_t llc_bytes);
/* Sums buffer_bytes of memory with `threads` threads, reps times (after one untimed pass that
 * faults the pages in). 0, or -1 with a message (out of memory, thread creation). */
int kq_bench_bandwidth(size_t buffer_bytes, int threads, int reps, kq_bench_bw *out, char *err, size_t errlen);

/* ---- the benchmark ---- */

typedef struct {
    const char *model_path;
    int threads;         /* 0: the engine's default */
    int n_prompt;        /* tokens evaluated in one batch from an empty cache (default 512) */
    int n_gen;           /* tokens generated one at a time (default 128) */
    int runs;            /* counted runs of each (default 8), after one warm-up */
    int n_short;         /* prompt evaluated before generation (default 16) */
    kq_impl impl;
    int kv_f32;          /* 1: F32 KV cache; 0: F16 */
    size_t bw_bytes;     /* 0: kq_bench_bw_default_bytes */
    int bw_reps;         /* default 5 */
    int progress;        /* progress lines on stderr */
} kq_bench_opts;

void kq_bench_opts_init(kq_bench_opts *o);

typedef struct {
    kq_bench_host host;
    char impl[32];
    int threads;
    char kv_type[8];
    char model_name[256];
    char model_file[256];
    uint64_t file_size, n_params, weight_bytes;
    int n_vocab, n_prompt, n_gen, n_short;
    kq_bench_stat pp_tps;   /* prompt processing, tokens/s per run */
    kq_bench_stat tg_ms;    /* generation, ms/token per run */
    kq_bench_bw bw;
    double roofline_bound_ms;  /* weight_bytes / bandwidth */
    int has_roofline;          /* 0: cache-resident */
    double roofline_fraction;  /* bound / median ms/token */
    char roofline_note[192];
} kq_bench_result;

/* Runs the whole benchmark. 0; 2 with a message when the model cannot be loaded (input error); 1
 * when a run fails. */
int kq_bench_run(const kq_bench_opts *o, kq_bench_result *r, char *err, size_t errlen);
void kq_bench_result_free(kq_bench_result *r);

/* Fills roofline fields from weight_bytes, bw.gbs, host.llc_bytes and tg_ms.median. */
void kq_bench_roofline(kq_bench_result *r);

void kq_bench_write_text(FILE *f, const kq_bench_result *r);
void kq_bench_write_json(FILE *f, const kq_bench_result *r);

/* The deterministic token of position i for a vocabulary of n_vocab (never 0..2: unk/bos/eos). */
int32_t kq_bench_token(int64_t i, int n_vocab);

#endif
