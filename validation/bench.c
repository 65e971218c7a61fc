/* kq bench: speed figures with their statistics, the read bandwidth and the roofline (bench.h). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "engine.h"

/* ============================== statistics ============================== */

int kq_bench_median_ci_ranks(int n, double level, int *lo, int *hi, double *coverage) {
    *lo = *hi = -1;
    if (coverage) *coverage = NAN;
    if (n < 1 || n > KQ_BENCH_MAX_RUNS || !(level > 0.0 && level < 1.0)) return -1;
    /* pmf_i = C(n,i) / 2^n. The pair (x_(j), x_(n+1-j)) misses the median when fewer than j runs fall
     * below it or fewer than j above: coverage(j) = 1 - 2 * sum_{i<j} pmf_i. It shrinks as j grows,
     * so the tightest pair is the last j that still reaches the level. */
    double binom = 1.0; /* C(n, i), exact while it fits in 53 bits, then within a few ulps */
    double tail = 0.0;
    int best = -1;
    double best_cov = 0.0;
    for (int j = 1; 2 * j <= n; j++) {
        const int i = j - 1;
        tail += ldexp(binom, -n);
        binom = binom * (double)(n - i) / (double)(i + 1);
        const double cov = 1.0 - 2.0 * tail;
        if (cov < level) break;
        best = j;
        best_cov = cov;
    }
    if (best < 0) return -1;
    *lo = best - 1;
    *hi = n - best;
    if (coverage) *coverage = best_cov;
    return 0;
}

static int kq_cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double kq_bench_median(const double *x, int n) {
    if (n < 1) return NAN;
    double *s = malloc((size_t)n * sizeof(*s));
    if (!s) return NAN;
    memcpy(s, x, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), kq_cmp_double);
    const double m = (n & 1) ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

int kq_bench_stat_compute(kq_bench_stat *st, const double *x, int n) {
    memset(st, 0, sizeof(*st));
    if (n < 1) return -1;
    st->samples = malloc((size_t)n * sizeof(double));
    double *sorted = malloc((size_t)n * sizeof(double));
    if (!st->samples || !sorted) {
        free(sorted);
        kq_bench_stat_free(st);
        return -1;
    }
    memcpy(st->samples, x, (size_t)n * sizeof(double));
    memcpy(sorted, x, (size_t)n * sizeof(double));
    qsort(sorted, (size_t)n, sizeof(double), kq_cmp_double);
    st->runs = n;
    st->min = sorted[0];
    st->max = sorted[n - 1];
    st->median = (n & 1) ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    int lo, hi;
    st->ci_lo = st->ci_hi = st->ci_coverage = NAN;
    if (kq_bench_median_ci_ranks(n, 0.95, &lo, &hi, &st->ci_coverage) == 0) {
        st->has_ci = 1;
        st->ci_lo = sorted[lo];
        st->ci_hi = sorted[hi];
        st->ci_rank_lo = lo + 1;
        st->ci_rank_hi = hi + 1;
    }
    free(sorted);
    return 0;
}

void kq_bench_stat_free(kq_bench_stat *st) {
    free(st->samples);
    st->samples = NULL;
}

/* ============================== the machine ============================== */

const char *kq_bench_arm_cpu_name(unsigned implementer, unsigned part) {
    static const struct {
        unsigned impl, part;
        const char *name;
    } known[] = {
        {0x48, 0xd01, "HiSilicon TSV110"},   /* Kunpeng 920 */
        {0x48, 0xd02, "HiSilicon TSV200"},
        {0x41, 0xd08, "ARM Cortex-A72"},     /* Kunpeng 916 */
        {0x41, 0xd0c, "ARM Neoverse-N1"},
        {0x41, 0xd40, "ARM Neoverse-V1"},
        {0x41, 0xd49, "ARM Neoverse-N2"},
        {0x41, 0xd4f, "ARM Neoverse-V2"},
        {0x41, 0xd03, "ARM Cortex-A53"},
        {0x41, 0xd07, "ARM Cortex-A57"},
        {0x41, 0xd0b, "ARM Cortex-A76"},
        {0x61, 0x000, "Apple"},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (known[i].impl == implementer && known[i].part == part) return known[i].name;
    return NULL;
}

/* Value of the first "key<spaces>: value" line of text, copied to out; 0 if found. */
static int kq_cpuinfo_field(const char *text, const char *key, char *out, size_t len) {
    const size_t klen = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        const size_t n = eol ? (size_t)(eol - line) : strlen(line);
        if (n > klen && !strncmp(line, key, klen) && (line[klen] == ' ' || line[klen] == '\t' || line[klen] == ':')) {
            const char *colon = memchr(line, ':', n);
            if (colon) {
                const char *v = colon + 1;
                while (v < line + n && (*v == ' ' || *v == '\t')) v++;
                size_t vn = (size_t)(line + n - v);
                while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t' || v[vn - 1] == '\r')) vn--;
                if (vn >= len) vn = len - 1;
                memcpy(out, v, vn);
                out[vn] = 0;
                return 0;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return -1;
}

void kq_bench_parse_cpuinfo(kq_bench_host *h, const char *text) {
    char model[128] = "", impl_s[32] = "", part_s[32] = "";
    kq_cpuinfo_field(text, "model name", model, sizeof(model));
    const int has_arm = kq_cpuinfo_field(text, "CPU implementer", impl_s, sizeof(impl_s)) == 0 &&
                        kq_cpuinfo_field(text, "CPU part", part_s, sizeof(part_s)) == 0;
    h->kunpeng920 = 0;
    h->emulated = 0;
    if (has_arm) {
        const unsigned impl = (unsigned)strtoul(impl_s, NULL, 0), part = (unsigned)strtoul(part_s, NULL, 0);
        const char *name = kq_bench_arm_cpu_name(impl, part);
        if (name) snprintf(h->cpu, sizeof(h->cpu), "%s", name);
        else snprintf(h->cpu, sizeof(h->cpu), "implementer 0x%02x part 0x%03x", impl, part);
        h->kunpeng920 = !strcmp(h->machine, "aarch64") && impl == 0x48 && part == 0xd01;
    } else if (model[0]) {
        snprintf(h->cpu, sizeof(h->cpu), "%s", model);
    } else {
        snprintf(h->cpu, sizeof(h->cpu), "unknown CPU");
    }
    /* qemu-user reports machine aarch64 but passes the host's /proc/cpuinfo through */
    if (!strcmp(h->machine, "aarch64") && !has_arm) h->emulated = 1;
}

static char *kq_read_text(const char *path, size_t max) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    const size_t n = fread(buf, 1, max, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* "491520K", "32M", "1024" -> bytes; 0 if unreadable. */
static uint64_t kq_parse_cache_size(const char *s) {
    char *end = NULL;
    const unsigned long long v = strtoull(s, &end, 10);
    if (end == s) return 0;
    if (*end == 'K' || *end == 'k') return (uint64_t)v << 10;
    if (*end == 'M' || *end == 'm') return (uint64_t)v << 20;
    if (*end == 'G' || *end == 'g') return (uint64_t)v << 30;
    return v;
}

static void kq_detect_llc(kq_bench_host *h) {
    int best_level = 0;
    uint64_t best = 0;
    for (int i = 0; i < 16; i++) {
        char path[96];
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        char *lv = kq_read_text(path, 16);
        if (!lv) continue;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        char *sz = kq_read_text(path, 32);
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        char *ty = kq_read_text(path, 32);
        const int level = atoi(lv);
        const uint64_t bytes = sz ? kq_parse_cache_size(sz) : 0;
        const int instr = ty && !strncmp(ty, "Instruction", 11);
        if (!instr && bytes && (level > best_level || (level == best_level && bytes > best))) {
            best_level = level;
            best = bytes;
        }
        free(lv);
        free(sz);
        free(ty);
    }
    if (best) {
        h->llc_bytes = best;
        snprintf(h->llc_source, sizeof(h->llc_source), "L%d of cpu0 (sysfs)", best_level);
    } else {
        h->llc_bytes = (uint64_t)32 << 20;
        snprintf(h->llc_source, sizeof(h->llc_source), "fallback 32 MiB (sysfs unreadable)");
    }
}

void kq_bench_host_detect(kq_bench_host *h) {
    memset(h, 0, sizeof(*h));
    struct utsname u;
    if (uname(&u) == 0) snprintf(h->machine, sizeof(h->machine), "%s", u.machine);
    else snprintf(h->machine, sizeof(h->machine), "unknown");
    char *text = kq_read_text("/proc/cpuinfo", (size_t)1 << 20);
    kq_bench_parse_cpuinfo(h, text ? text : "");
    free(text);
    kq_detect_llc(h);
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    h->n_cpus = n > 0 ? (int)n : 1;
    h->load1 = NAN;
    char *load = kq_read_text("/proc/loadavg", 256);
    if (load) h->load1 = strtod(load, NULL);
    free(load);
}

void kq_bench_host_label(const kq_bench_host *h, const char *impl, int threads, char *buf, size_t len) {
    const char *th = threads == 1 ? "thread" : "threads";
    if (h->kunpeng920)
        snprintf(buf, len, "Kunpeng 920 (%s), %s kernels, %d %s", h->cpu, impl, threads, th);
    else if (h->emulated)
        snprintf(buf, len, "aarch64 under emulation on %s (not Kunpeng timings), %s kernels, %d %s", h->cpu, impl,
                 threads, th);
    else if (!strcmp(h->machine, "x86_64"))
        snprintf(buf, len, "x86-64 host (%s), %s kernels, %d %s", h->cpu, impl, threads, th);
    else if (!strcmp(h->machine, "aarch64"))
        snprintf(buf, len, "aarch64 host (%s, not a Kunpeng 920), %s kernels, %d %s", h->cpu, impl, threads, th);
    else
        snprintf(buf, len, "%s host (%s), %s kernels, %d %s", h->machine, h->cpu, impl, threads, th);
}

/* ============================== read bandwidth ============================== */

static double kq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 16-byte vectors (GNU C, gcc and clang) so one load moves 16 bytes on x86-64 and aarch64 alike,
 * without target-specific intrinsics; four accumulators keep the loads independent. */
typedef uint64_t kq_v2u64 __attribute__((vector_size(16)));

static uint64_t kq_bw_sum(const unsigned char *p, size_t n) {
    kq_v2u64 a0 = {0, 0}, a1 = {0, 0}, a2 = {0, 0}, a3 = {0, 0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        kq_v2u64 x0, x1, x2, x3;
        memcpy(&x0, p + i, 16);
        memcpy(&x1, p + i + 16, 16);
        memcpy(&x2, p + i + 32, 16);
        memcpy(&x3, p + i + 48, 16);
        a0 += x0;
        a1 += x1;
        a2 += x2;
        a3 += x3;
    }
    const kq_v2u64 s = (a0 + a1) + (a2 + a3);
    uint64_t r = s[0] + s[1];
    for (; i < n; i++) r += p[i];
    return r;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t go_cv;
    int go;    /* 1: run, -1: abort (a thread could not be started) */
    pthread_barrier_t bar;
    unsigned char *buf;
    size_t bytes;
    int threads, reps;
    double *times; /* reps */
} kq_bw_shared;

typedef struct {
    kq_bw_shared *sh;
    int id;
    uint64_t sink;
} kq_bw_worker;

static void *kq_bw_thread(void *arg) {
    kq_bw_worker *w = arg;
    kq_bw_shared *sh = w->sh;
    /* the barrier counts every thread, so nobody starts before all of them exist */
    pthread_mutex_lock(&sh->mu);
    while (!sh->go) pthread_cond_wait(&sh->go_cv, &sh->mu);
    const int go = sh->go;
    pthread_mutex_unlock(&sh->mu);
    if (go < 0) return NULL;
    /* slices on cache-line boundaries; each thread first touches its own slice (NUMA placement) */
    const size_t lines = sh->bytes / 64;
    const size_t b = lines * (size_t)w->id / (size_t)sh->threads * 64;
    const size_t e = w->id == sh->threads - 1 ? sh->bytes : lines * (size_t)(w->id + 1) / (size_t)sh->threads * 64;
    memset(sh->buf + b, (w->id * 37 + 1) & 0xff, e - b);
    for (int r = -1; r < sh->reps; r++) { /* r = -1: untimed pass */
        pthread_barrier_wait(&sh->bar);
        const double t0 = w->id == 0 ? kq_now() : 0.0;
        w->sink += kq_bw_sum(sh->buf + b, e - b);
        pthread_barrier_wait(&sh->bar);
        if (w->id == 0 && r >= 0) sh->times[r] = kq_now() - t0;
    }
    return NULL;
}

/* Starts threads-1 workers, runs worker 0 on this thread, joins. 0, or -1 if a thread could not
 * be started (then nothing was measured). */
static int kq_bw_run_threads(kq_bw_shared *sh, kq_bw_worker *w, pthread_t *tid) {
    pthread_mutex_init(&sh->mu, NULL);
    pthread_cond_init(&sh->go_cv, NULL);
    pthread_barrier_init(&sh->bar, NULL, (unsigned)sh->threads);
    int started = 1;
    for (int i = 0; i < sh->threads; i++) w[i] = (kq_bw_worker){.sh = sh, .id = i};
    for (; started < sh->threads; started++)
        if (pthread_create(&tid[started], NULL, kq_bw_thread, &w[started]) != 0) break;
    const int ok = started == sh->threads;
    pthread_mutex_lock(&sh->mu);
    sh->go = ok ? 1 : -1;
    pthread_cond_broadcast(&sh->go_cv);
    pthread_mutex_unlock(&sh->mu);
    if (ok) kq_bw_thread(&w[0]);
    for (int i = 1; i < started; i++) pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&sh->bar);
    pthread_cond_destroy(&sh->go_cv);
    pthread_mutex_destroy(&sh->mu);
    return ok ? 0 : -1;
}

static volatile uint64_t kq_bw_sink;

static uint64_t kq_mem_available(void) {
    char *text = kq_read_text("/proc/meminfo", 1 << 16);
    uint64_t kb = 0;
    if (text) {
        const char *p = strstr(text, "MemAvailable:");
        if (p) kb = strtoull(p + 13, NULL, 10);
        free(text);
    }
    return kb << 10;
}

size_t kq_bench_bw_default_bytes(uint64_t llc_bytes) {
    uint64_t want = llc_bytes * 4;
    if (want < ((uint64_t)64 << 20)) want = (uint64_t)64 << 20;
    if (want > ((uint64_t)8 << 30)) want = (uint64_t)8 << 30;
    const uint64_t avail = kq_mem_available();
    if (avail && want > avail / 2) want = avail / 2;
    if (want > SIZE_MAX / 2) want = SIZE_MAX / 2;
    return (size_t)(want & ~(uint64_t)63);
}

int kq_bench_bandwidth(size_t buffer_bytes, int threads, int reps, kq_bench_bw *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (threads < 1 || reps < 1 || buffer_bytes < (size_t)64 * (size_t)threads) {
        snprintf(err, errlen, "bandwidth: bad arguments (%zu bytes, %d threads, %d reps)", buffer_bytes, threads, reps);
        return -1;
    }
    kq_bw_shared sh = {.bytes = buffer_bytes, .threads = threads, .reps = reps};
    void *mem = NULL;
    if (posix_memalign(&mem, 4096, buffer_bytes) != 0) mem = NULL;
    sh.buf = mem;
    sh.times = calloc((size_t)reps, sizeof(double));
    kq_bw_worker *w = calloc((size_t)threads, sizeof(*w));
    pthread_t *tid = calloc((size_t)threads, sizeof(*tid));
    if (!sh.buf || !sh.times || !w || !tid) {
        snprintf(err, errlen, "bandwidth: cannot allocate a %.0f MiB buffer", (double)buffer_bytes / 1048576.0);
        free(sh.buf), free(sh.times), free(w), free(tid);
        return -1;
    }
    int rc = 0;
    if (kq_bw_run_threads(&sh, w, tid) != 0) {
        snprintf(err, errlen, "bandwidth: cannot start %d threads", threads);
        rc = -1;
    }
    if (rc == 0) {
        double best = sh.times[0];
        for (int r = 1; r < reps; r++)
            if (sh.times[r] < best) best = sh.times[r];
        const double med = kq_bench_median(sh.times, reps);
        out->gbs = best > 0 ? (double)buffer_bytes / best / 1e9 : NAN;
        out->median_gbs = med > 0 ? (double)buffer_bytes / med / 1e9 : NAN;
        out->buffer_bytes = buffer_bytes;
        out->reps = reps;
        out->threads = threads;
        uint64_t sink = 0;
        for (int i = 0; i < threads; i++) sink += w[i].sink;
        kq_bw_sink = sink; /* the sums are used, so the reads cannot be optimized away */
    }
    free(sh.buf), free(sh.times), free(w), free(tid);
    return rc;
}

/* ============================== the benchmark ============================== */

void kq_bench_opts_init(kq_bench_opts *o) {
    memset(o, 0, sizeof(*o));
    o->n_prompt = 512;
    o->n_gen = 128;
    o->runs = 8;
    o->n_short = 16;
    o->impl = kq_impl_best();
    o->bw_reps = 5;
}

int32_t kq_bench_token(int64_t i, int n_vocab) {
    if (n_vocab <= 3) return (int32_t)(i % (n_vocab > 0 ? n_vocab : 1));
    /* a fixed pseudo-random walk over the vocabulary (64-bit LCG, high bits) */
    const uint64_t x = (uint64_t)(i + 1) * 6364136223846793005ull + 1442695040888963407ull;
    return (int32_t)(3 + (x >> 33) % (uint64_t)(n_vocab - 3));
}

static void kq_bench_progress(const kq_bench_opts *o, const char *what, int run, int runs) {
    if (!o->progress) return;
    if (run == 0) fprintf(stderr, "\rbench: %s warm-up        ", what);
    else fprintf(stderr, "\rbench: %s run %d/%d        ", what, run, runs);
    fflush(stderr);
}

/* Prompt processing: the whole prompt in one eval from an empty cache; tokens/s per run. */
static int kq_bench_pp(const kq_bench_opts *o, kq_session *s, const int32_t *tok, float *logits, double *tps,
                       char *err, size_t errlen) {
    for (int run = 0; run <= o->runs; run++) {
        kq_bench_progress(o, "prompt", run, o->runs);
        kq_session_reset(s);
        const double t0 = kq_now();
        if (kq_session_eval(s, tok, o->n_prompt, logits, 0, err, errlen) != 0) return -1;
        const double dt = kq_now() - t0;
        if (run > 0) tps[run - 1] = (double)o->n_prompt / dt;
    }
    return 0;
}

/* Generation: after a short prompt, one token per eval with its logits (no sampling); ms/token. */
static int kq_bench_tg(const kq_bench_opts *o, kq_session *s, const int32_t *tok, float *logits, double *ms,
                       char *err, size_t errlen) {
    for (int run = 0; run <= o->runs; run++) {
        kq_bench_progress(o, "generation", run, o->runs);
        kq_session_reset(s);
        if (kq_session_eval(s, tok, o->n_short, logits, 0, err, errlen) != 0) return -1;
        const double t0 = kq_now();
        for (int i = 0; i < o->n_gen; i++)
            if (kq_session_eval(s, tok + o->n_short + i, 1, logits, 0, err, errlen) != 0) return -1;
        const double dt = kq_now() - t0;
        if (run > 0) ms[run - 1] = dt * 1e3 / (double)o->n_gen;
    }
    return 0;
}

static void kq_bench_describe(kq_bench_result *r, const kq_bench_opts *o, const kq_model *m) {
    const kq_model_hparams *hp = kq_model_hp(m);
    const char *slash = strrchr(o->model_path, '/');
    snprintf(r->model_file, sizeof(r->model_file), "%s", slash ? slash + 1 : o->model_path);
    snprintf(r->model_name, sizeof(r->model_name), "%s", hp->name[0] ? hp->name : r->model_file);
    r->file_size = kq_gguf_file_size(kq_model_gguf(m));
    r->n_params = hp->n_params;
    r->weight_bytes = hp->weight_bytes;
    r->n_vocab = hp->n_vocab;
    r->threads = kq_model_opts(m)->threads;
    snprintf(r->impl, sizeof(r->impl), "%s", kq_impl_name(kq_model_opts(m)->impl));
    snprintf(r->kv_type, sizeof(r->kv_type), "%s", kq_model_opts(m)->kv_type == KQ_TYPE_F32 ? "f32" : "f16");
    r->n_prompt = o->n_prompt;
    r->n_gen = o->n_gen;
    r->n_short = o->n_short;
}

static int kq_bench_measure(const kq_bench_opts *o, kq_model *m, kq_bench_result *r, char *err, size_t errlen) {
    const int n_tok = o->n_prompt > o->n_short + o->n_gen ? o->n_prompt : o->n_short + o->n_gen;
    int32_t *tok = malloc((size_t)n_tok * sizeof(*tok));
    float *logits = malloc((size_t)r->n_vocab * sizeof(*logits));
    double *pp = malloc((size_t)o->runs * sizeof(double)), *tg = malloc((size_t)o->runs * sizeof(double));
    kq_session *s = NULL;
    int rc = 1;
    if (!tok || !logits || !pp || !tg) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_tok; i++) tok[i] = kq_bench_token(i, r->n_vocab);
    if (kq_session_new(m, n_tok, &s, err, errlen) != 0) goto done;
    if (kq_bench_pp(o, s, tok, logits, pp, err, errlen) != 0) goto done;
    if (kq_bench_tg(o, s, tok, logits, tg, err, errlen) != 0) goto done;
    if (o->progress) fprintf(stderr, "\rbench: done                      \n");
    if (kq_bench_stat_compute(&r->pp_tps, pp, o->runs) != 0 || kq_bench_stat_compute(&r->tg_ms, tg, o->runs) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    kq_session_free(s);
    free(tok), free(logits), free(pp), free(tg);
    return rc;
}

void kq_bench_roofline(kq_bench_result *r) {
    const double mib = 1048576.0;
    r->has_roofline = 0;
    r->roofline_fraction = NAN;
    r->roofline_bound_ms = NAN;
    if (!(r->bw.gbs > 0) || !isfinite(r->bw.gbs)) {
        snprintf(r->roofline_note, sizeof(r->roofline_note), "n/a (bandwidth not measured)");
        return;
    }
    r->roofline_bound_ms = (double)r->weight_bytes / (r->bw.gbs * 1e9) * 1e3;
    if (r->weight_bytes <= r->host.llc_bytes) {
        snprintf(r->roofline_note, sizeof(r->roofline_note),
                 "n/a (cache-resident): %.2f MiB of weights per token fit in the %.0f MiB last-level cache",
                 (double)r->weight_bytes / mib, (double)r->host.llc_bytes / mib);
        return;
    }
    if (!(r->tg_ms.median > 0)) {
        snprintf(r->roofline_note, sizeof(r->roofline_note), "n/a (no generation time)");
        return;
    }
    r->has_roofline = 1;
    r->roofline_fraction = r->roofline_bound_ms / r->tg_ms.median;
    snprintf(r->roofline_note, sizeof(r->roofline_note),
             "%.1f%% of the bandwidth roofline: %.1f MiB of weights per token / %.2f GB/s = %.3f ms/token lower bound",
             100.0 * r->roofline_fraction, (double)r->weight_bytes / mib, r->bw.gbs, r->roofline_bound_ms);
}

int kq_bench_run(const kq_bench_opts *o, kq_bench_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof(*r));
    if (!o->model_path || o->n_prompt < 1 || o->n_gen < 1 || o->n_short < 1 || o->runs < 1 ||
        o->runs > KQ_BENCH_MAX_RUNS || o->threads < 0 || o->bw_reps < 1) {
        snprintf(err, errlen, "bad benchmark options");
        return 2;
    }
    kq_bench_host_detect(&r->host);
    kq_engine_opts eo;
    kq_engine_opts_init(&eo);
    eo.impl = o->impl;
    if (o->threads > 0) eo.threads = o->threads;
    eo.kv_type = o->kv_f32 ? KQ_TYPE_F32 : KQ_TYPE_F16;
    eo.n_batch = o->n_prompt; /* the prompt is one forward step, as the option says */
    kq_model *m = NULL;
    if (kq_model_load(o->model_path, &eo, &m, err, errlen) != 0) return 2;
    kq_bench_describe(r, o, m);
    /* bandwidth first: its buffer is freed before the model runs */
    if (o->progress) fprintf(stderr, "bench: memory read bandwidth, %d threads\n", r->threads);
    const size_t bw_bytes = o->bw_bytes ? o->bw_bytes : kq_bench_bw_default_bytes(r->host.llc_bytes);
    char bw_err[128];
    if (kq_bench_bandwidth(bw_bytes, r->threads, o->bw_reps, &r->bw, bw_err, sizeof(bw_err)) != 0) {
        r->bw.gbs = NAN; /* reported as n/a; the speed figures stand on their own */
        if (o->progress) fprintf(stderr, "bench: %s\n", bw_err);
    }
    const int rc = kq_bench_measure(o, m, r, err, errlen);
    kq_model_free(m);
    if (rc == 0) kq_bench_roofline(r);
    return rc;
}

void kq_bench_result_free(kq_bench_result *r) {
    kq_bench_stat_free(&r->pp_tps);
    kq_bench_stat_free(&r->tg_ms);
}

/* ============================== reports ============================== */

static void kq_bench_text_stat(FILE *f, const char *what, const char *unit, const kq_bench_stat *s, int prec) {
    fprintf(f, "%-22s median %.*f %s", what, prec, s->median, unit);
    if (s->has_ci)
        fprintf(f, ", 95%% CI [%.*f, %.*f] (x(%d)..x(%d) of %d runs, coverage %.1f%%)", prec, s->ci_lo, prec, s->ci_hi,
                s->ci_rank_lo, s->ci_rank_hi, s->runs, 100.0 * s->ci_coverage);
    else
        fprintf(f, ", 95%% CI n/a (needs >= %d runs, got %d)", KQ_BENCH_MIN_CI_RUNS, s->runs);
    fprintf(f, ", min %.*f, max %.*f\n", prec, s->min, prec, s->max);
}

void kq_bench_write_text(FILE *f, const kq_bench_result *r) {
    char label[320];
    kq_bench_host_label(&r->host, r->impl, r->threads, label, sizeof(label));
    const double mib = 1048576.0;
    fprintf(f, "model: %s (%s, %.2f MiB, %.3f M parameters, %.2f MiB of weights read per token)\n", r->model_name,
            r->model_file, (double)r->file_size / mib, (double)r->n_params / 1e6, (double)r->weight_bytes / mib);
    fprintf(f, "host:  %s; KV cache %s\n", label, r->kv_type);
    if (r->host.load1 > 0.5 * (double)r->host.n_cpus)
        fprintf(f, "note:  load average %.2f on %d CPUs before the run: other work shares this machine, expect "
                   "slower and noisier figures\n", r->host.load1, r->host.n_cpus);
    char what[64];
    snprintf(what, sizeof(what), "prompt pp%d:", r->n_prompt);
    kq_bench_text_stat(f, what, "tokens/s", &r->pp_tps, 1);
    snprintf(what, sizeof(what), "generation tg%d:", r->n_gen);
    kq_bench_text_stat(f, what, "ms/token", &r->tg_ms, 4);
    if (r->bw.gbs > 0)
        fprintf(f, "%-22s %.2f GB/s best, %.2f GB/s median (%d %s, %.0f MiB buffer, %s %.0f MiB, %d reps)\n",
                "memory read bandwidth:", r->bw.gbs, r->bw.median_gbs, r->bw.threads,
                r->bw.threads == 1 ? "thread" : "threads",
                (double)r->bw.buffer_bytes / mib, r->host.llc_source, (double)r->host.llc_bytes / mib, r->bw.reps);
    else
        fprintf(f, "%-22s n/a (not measured)\n", "memory read bandwidth:");
    fprintf(f, "%-22s %s\n", "roofline:", r->roofline_note);
}

static void kq_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

static void kq_json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.9g", v);
    else fputs("null", f);
}

static void kq_json_stat(FILE *f, const kq_bench_stat *s) {
    fputs("{\"median\": ", f);
    kq_json_num(f, s->median);
    fputs(", \"ci95\": ", f);
    if (s->has_ci) {
        fputc('[', f);
        kq_json_num(f, s->ci_lo);
        fputs(", ", f);
        kq_json_num(f, s->ci_hi);
        fprintf(f, "], \"ci95_ranks\": [%d, %d], \"ci95_coverage\": ", s->ci_rank_lo, s->ci_rank_hi);
        kq_json_num(f, s->ci_coverage);
    } else {
        fprintf(f, "null, \"ci95_note\": \"n/a (needs >= %d runs)\"", KQ_BENCH_MIN_CI_RUNS);
    }
    fputs(", \"min\": ", f);
    kq_json_num(f, s->min);
    fputs(", \"max\": ", f);
    kq_json_num(f, s->max);
    fprintf(f, ", \"runs\": %d, \"samples\": [", s->runs);
    for (int i = 0; i < s->runs; i++) {
        if (i) fputs(", ", f);
        kq_json_num(f, s->samples ? s->samples[i] : NAN);
    }
    fputs("]}", f);
}

void kq_bench_write_json(FILE *f, const kq_bench_result *r) {
    char label[320];
    kq_bench_host_label(&r->host, r->impl, r->threads, label, sizeof(label));
    fputs("{\n  \"model\": {\"name\": ", f);
    kq_json_str(f, r->model_name);
    fputs(", \"file\": ", f);
    kq_json_str(f, r->model_file);
    fprintf(f, ", \"file_size\": %llu, \"n_params\": %llu, \"n_vocab\": %d},\n",
            (unsigned long long)r->file_size, (unsigned long long)r->n_params, r->n_vocab);
    fputs("  \"host\": {\"machine\": ", f);
    kq_json_str(f, r->host.machine);
    fputs(", \"cpu\": ", f);
    kq_json_str(f, r->host.cpu);
    fprintf(f, ", \"kunpeng\": %s, \"emulated\": %s, \"llc_bytes\": %llu, \"llc_source\": ",
            r->host.kunpeng920 ? "true" : "false", r->host.emulated ? "true" : "false",
            (unsigned long long)r->host.llc_bytes);
    kq_json_str(f, r->host.llc_source);
    fprintf(f, ", \"n_cpus\": %d, \"load1_before\": ", r->host.n_cpus);
    kq_json_num(f, r->host.load1);
    fputs(", \"label\": ", f);
    kq_json_str(f, label);
    fputs("},\n  \"impl\": ", f);
    kq_json_str(f, r->impl);
    fprintf(f, ",\n  \"threads\": %d,\n  \"kv_type\": \"%s\",\n", r->threads, r->kv_type);
    fprintf(f, "  \"pp_tokens\": %d,\n  \"pp_tokens_per_s\": ", r->n_prompt);
    kq_json_stat(f, &r->pp_tps);
    fprintf(f, ",\n  \"tg_tokens\": %d,\n  \"tg_prompt_tokens\": %d,\n  \"tg_ms_per_token\": ", r->n_gen, r->n_short);
    kq_json_stat(f, &r->tg_ms);
    fputs(",\n  \"bandwidth_gbs\": ", f);
    kq_json_num(f, r->bw.gbs);
    fputs(",\n  \"bandwidth\": {\"best_gbs\": ", f);
    kq_json_num(f, r->bw.gbs);
    fputs(", \"median_gbs\": ", f);
    kq_json_num(f, r->bw.median_gbs);
    fprintf(f, ", \"buffer_bytes\": %llu, \"reps\": %d, \"threads\": %d},\n", (unsigned long long)r->bw.buffer_bytes,
            r->bw.reps, r->bw.threads);
    fprintf(f, "  \"weight_bytes_per_token\": %llu,\n  \"roofline_bound_ms_per_token\": ",
            (unsigned long long)r->weight_bytes);
    kq_json_num(f, r->roofline_bound_ms);
    fputs(",\n  \"roofline_fraction\": ", f);
    kq_json_num(f, r->has_roofline ? r->roofline_fraction : NAN);
    fputs(",\n  \"roofline_note\": ", f);
    kq_json_str(f, r->roofline_note);
    fputs("\n}\n", f);
}
