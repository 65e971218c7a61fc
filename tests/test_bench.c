/* kq bench: the order-statistics interval against an exact binomial count, medians, the bandwidth
 * kernel, host labels, the roofline, well-formed JSON and the command's errors. No timing is asserted:
 * speed goals live in figures, not in tests. */
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "kq_test.h"

int kq_cmd_bench(int argc, char **argv);

/* ---- the interval: an independent brute force in exact integers ---- */

/* C(n, i) for n <= 62 from Pascal's triangle (no floating point). */
static uint64_t binom_exact(int n, int k) {
    uint64_t row[64] = {1};
    for (int r = 1; r <= n; r++)
        for (int i = r; i > 0; i--) row[i] += row[i - 1];
    return k < 0 || k > n ? 0 : row[k];
}

/* 1 if P(j <= B <= n-j) >= 0.95 for B ~ Bin(n, 1/2): 20 * count >= 19 * 2^n, exactly. */
static int covers95(int n, int j) {
    uint64_t count = 0;
    for (int i = j; i <= n - j; i++) count += binom_exact(n, i);
    return 20 * count >= 19 * ((uint64_t)1 << n);
}

static void test_ci_ranks(void) {
    for (int n = 1; n < 6; n++) {
        int lo = 7, hi = 7;
        double cov = 0;
        KQ_CHECK(kq_bench_median_ci_ranks(n, 0.95, &lo, &hi, &cov) == -1 && lo == -1 && hi == -1 && isnan(cov),
                 "n = %d has no 95%% interval (got ranks %d..%d)", n, lo, hi);
    }
    int bad = 0;
    for (int n = 6; n <= 50; n++) {
        int lo = -1, hi = -1;
        double cov = 0;
        if (kq_bench_median_ci_ranks(n, 0.95, &lo, &hi, &cov) != 0) {
            KQ_CHECK(0, "n = %d: no interval", n);
            bad++;
            continue;
        }
        const int j = lo + 1; /* 1-based rank of the lower end */
        int ok = hi == n - j && j >= 1 && 2 * j <= n;
        ok = ok && covers95(n, j);                          /* reaches the level */
        ok = ok && (2 * (j + 1) > n || !covers95(n, j + 1)); /* and is the tightest symmetric pair */
        uint64_t count = 0;
        for (int i = j; i <= n - j; i++) count += binom_exact(n, i);
        const double exact = (double)count / ldexp(1.0, n);
        ok = ok && fabs(cov - exact) <= 1e-12;
        if (!ok) {
            KQ_CHECK(0, "n = %d: ranks %d..%d coverage %.15f (exact %.15f)", n, lo + 1, hi + 1, cov, exact);
            bad++;
        }
    }
    KQ_CHECK(bad == 0, "%d sample sizes with a wrong interval", bad);
    /* textbook values (e.g. Conover, Practical Nonparametric Statistics, table A3 / sign test) */
    int lo, hi;
    double cov;
    KQ_CHECK(kq_bench_median_ci_ranks(6, 0.95, &lo, &hi, &cov) == 0 && lo == 0 && hi == 5 &&
                 fabs(cov - 62.0 / 64.0) < 1e-15,
             "n = 6: x(1)..x(6), coverage 62/64");
    KQ_CHECK(kq_bench_median_ci_ranks(10, 0.95, &lo, &hi, &cov) == 0 && lo == 1 && hi == 8, "n = 10: x(2)..x(9)");
    KQ_CHECK(kq_bench_median_ci_ranks(20, 0.95, &lo, &hi, &cov) == 0 && lo == 5 && hi == 14, "n = 20: x(6)..x(15)");
    KQ_CHECK(kq_bench_median_ci_ranks(0, 0.95, &lo, &hi, &cov) == -1, "n = 0 refused");
    KQ_CHECK(kq_bench_median_ci_ranks(KQ_BENCH_MAX_RUNS + 1, 0.95, &lo, &hi, &cov) == -1, "n too large refused");
    KQ_CHECK(kq_bench_median_ci_ranks(KQ_BENCH_MAX_RUNS, 0.95, &lo, &hi, &cov) == 0 && cov >= 0.95 && cov < 0.97 &&
                 isfinite(cov),
             "n = %d: coverage %.6f", KQ_BENCH_MAX_RUNS, cov);
}

static void test_median(void) {
    const double odd[] = {3.0, 1.0, 2.0};
    const double even[] = {4.0, 1.0, 3.0, 2.0};
    const double one[] = {7.5};
    KQ_CHECK(kq_bench_median(odd, 3) == 2.0, "median of 3 values");
    KQ_CHECK(kq_bench_median(even, 4) == 2.5, "median of 4 values: mean of the middle two");
    KQ_CHECK(kq_bench_median(one, 1) == 7.5, "median of one value");
    KQ_CHECK(isnan(kq_bench_median(one, 0)), "median of nothing is NaN");
    KQ_CHECK(even[0] == 4.0 && even[3] == 2.0, "the input is not sorted in place");

    const double runs[8] = {5, 2, 8, 1, 7, 3, 6, 4};
    kq_bench_stat st;
    KQ_CHECK(kq_bench_stat_compute(&st, runs, 8) == 0, "stat of 8 runs");
    KQ_CHECK(st.median == 4.5 && st.min == 1 && st.max == 8 && st.runs == 8, "median 4.5, min 1, max 8");
    KQ_CHECK(st.has_ci && st.ci_lo == 1 && st.ci_hi == 8 && st.ci_rank_lo == 1 && st.ci_rank_hi == 8,
             "8 runs: CI = [x(1), x(8)] (got [%g, %g])", st.ci_lo, st.ci_hi);
    KQ_CHECK(st.samples && st.samples[0] == 5 && st.samples[7] == 4, "samples kept in measured order");
    kq_bench_stat_free(&st);
    KQ_CHECK(kq_bench_stat_compute(&st, runs, 5) == 0 && !st.has_ci && st.median == 5, "5 runs: median 5, no CI");
    kq_bench_stat_free(&st);
    double many[12];
    for (int i = 0; i < 12; i++) many[i] = (double)(12 - i);
    KQ_CHECK(kq_bench_stat_compute(&st, many, 12) == 0 && st.has_ci && st.ci_lo == 3 && st.ci_hi == 10,
             "12 runs: CI = [x(3), x(10)] (got [%g, %g])", st.ci_lo, st.ci_hi);
    kq_bench_stat_free(&st);
}

/* ---- the machine ---- */

static void test_bandwidth(void) {
    char err[128];
    for (int t = 1; t <= 3; t++) {
        kq_bench_bw bw;
        const int rc = kq_bench_bandwidth((size_t)8 << 20, t, 2, &bw, err, sizeof(err));
        KQ_CHECK(rc == 0 && isfinite(bw.gbs) && bw.gbs > 0 && isfinite(bw.median_gbs) && bw.median_gbs > 0 &&
                     bw.gbs >= bw.median_gbs && bw.threads == t && bw.reps == 2,
                 "bandwidth with %d threads: rc %d, %g GB/s best, %g median", t, rc, bw.gbs, bw.median_gbs);
    }
    kq_bench_bw bw;
    /* a buffer that is not a multiple of 64 bytes per thread still works */
    KQ_CHECK(kq_bench_bandwidth(100000, 3, 1, &bw, err, sizeof(err)) == 0 && bw.gbs > 0, "odd buffer size");
    KQ_CHECK(kq_bench_bandwidth(1 << 20, 0, 1, &bw, err, sizeof(err)) == -1, "0 threads refused");
    KQ_CHECK(kq_bench_bandwidth(1 << 20, 1, 0, &bw, err, sizeof(err)) == -1, "0 repetitions refused");
    const size_t def = kq_bench_bw_default_bytes((uint64_t)32 << 20);
    KQ_CHECK(def > 0 && def % 64 == 0 && def <= ((size_t)128 << 20), "default buffer for a 32 MiB LLC: %zu", def);
    kq_bench_host h;
    kq_bench_host_detect(&h);
    KQ_CHECK(h.llc_bytes > 0 && h.machine[0] && h.cpu[0] && h.llc_source[0], "host: %s, %s, LLC %llu (%s)",
             h.machine, h.cpu, (unsigned long long)h.llc_bytes, h.llc_source);
}

static void test_host(void) {
    const char *kunpeng = "processor\t: 0\nBogoMIPS\t: 200.00\nFeatures\t: fp asimd asimddp\n"
                          "CPU implementer\t: 0x48\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd01\n";
    const char *a72 = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n";
    const char *xeon = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6148  \n";
    kq_bench_host h;
    char label[320];
    memset(&h, 0, sizeof(h));
    snprintf(h.machine, sizeof(h.machine), "aarch64");
    kq_bench_parse_cpuinfo(&h, kunpeng);
    kq_bench_host_label(&h, "neon-dotprod", 4, label, sizeof(label));
    KQ_CHECK(!strcmp(h.cpu, "HiSilicon TSV110") && h.kunpeng920 && !h.emulated, "Kunpeng 920: '%s'", h.cpu);
    KQ_CHECK(strstr(label, "Kunpeng 920") && strstr(label, "neon-dotprod kernels") && strstr(label, "4 threads"),
             "label '%s'", label);

    kq_bench_parse_cpuinfo(&h, a72);
    kq_bench_host_label(&h, "neon-plain", 1, label, sizeof(label));
    KQ_CHECK(!strcmp(h.cpu, "ARM Cortex-A72") && !h.kunpeng920, "Cortex-A72: '%s'", h.cpu);
    KQ_CHECK(strstr(label, "not a Kunpeng 920") && strstr(label, "1 thread,") == NULL && strstr(label, "1 thread"),
             "label '%s'", label);

    kq_bench_parse_cpuinfo(&h, xeon); /* qemu-user: machine aarch64, the host's cpuinfo */
    kq_bench_host_label(&h, "neon-dotprod", 2, label, sizeof(label));
    KQ_CHECK(h.emulated && !h.kunpeng920 && !strcmp(h.cpu, "Intel(R) Xeon(R) Gold 6148"), "emulated: '%s'", h.cpu);
    KQ_CHECK(strstr(label, "emulation") && strstr(label, "not Kunpeng"), "label '%s'", label);

    snprintf(h.machine, sizeof(h.machine), "x86_64");
    kq_bench_parse_cpuinfo(&h, xeon);
    kq_bench_host_label(&h, "reference", 2, label, sizeof(label));
    KQ_CHECK(!h.emulated && !h.kunpeng920 && strstr(label, "x86-64 host") && strstr(label, "reference kernels") &&
                 !strstr(label, "Kunpeng"),
             "x86-64 label '%s'", label);
    kq_bench_parse_cpuinfo(&h, kunpeng); /* an x86 machine never claims Kunpeng */
    KQ_CHECK(!h.kunpeng920, "x86_64 with Kunpeng cpuinfo text is not a Kunpeng");
    kq_bench_parse_cpuinfo(&h, "");
    KQ_CHECK(!strcmp(h.cpu, "unknown CPU"), "no cpuinfo: '%s'", h.cpu);
    KQ_CHECK(kq_bench_arm_cpu_name(0x48, 0xd01) && !strcmp(kq_bench_arm_cpu_name(0x48, 0xd01), "HiSilicon TSV110") &&
                 kq_bench_arm_cpu_name(0x99, 0x123) == NULL,
             "ARM part table");
}

static void test_tokens(void) {
    int bad = 0;
    for (int v = 4; v < 300; v += 37)
        for (int i = 0; i < 1000; i++) {
            const int32_t t = kq_bench_token(i, v);
            if (t < 3 || t >= v || t != kq_bench_token(i, v)) bad++;
        }
    KQ_CHECK(bad == 0, "bench tokens inside the vocabulary, past the specials, deterministic (%d bad)", bad);
}

/* ---- a minimal JSON validator (RFC 8259 grammar; no cJSON in the static aarch64 build) ---- */

static const char *js_ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

static const char *js_value(const char *p, int depth);

static const char *js_string(const char *p) {
    if (*p++ != '"') return NULL;
    while (*p && *p != '"') {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p) || !*p) return NULL;
        }
        p++;
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *js_number(const char *p) {
    const char *s = p;
    if (*p == '-') p++;
    if (!isdigit((unsigned char)*p)) return NULL;
    if (*p == '0') p++;
    else while (isdigit((unsigned char)*p)) p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    return p > s ? p : NULL;
}

static const char *js_container(const char *p, int depth, char close) {
    const int obj = close == '}';
    p = js_ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
        if (obj) {
            p = js_string(js_ws(p));
            if (!p) return NULL;
            p = js_ws(p);
            if (*p++ != ':') return NULL;
        }
        p = js_value(p, depth + 1);
        if (!p) return NULL;
        p = js_ws(p);
        if (*p == close) return p + 1;
        if (*p++ != ',') return NULL;
    }
}

static const char *js_value(const char *p, int depth) {
    if (depth > 32) return NULL;
    p = js_ws(p);
    if (*p == '{') return js_container(p, depth, '}');
    if (*p == '[') return js_container(p, depth, ']');
    if (*p == '"') return js_string(p);
    if (!strncmp(p, "true", 4)) return p + 4;
    if (!strncmp(p, "false", 5)) return p + 5;
    if (!strncmp(p, "null", 4)) return p + 4;
    return js_number(p);
}

static int json_valid(const char *s) {
    const char *e = js_value(s, 0);
    return e && *js_ws(e) == 0;
}

static char *capture_json(const kq_bench_result *r) {
    FILE *f = tmpfile();
    if (!f) return NULL;
    kq_bench_write_json(f, r);
    const long n = ftell(f);
    char *buf = malloc((size_t)n + 1);
    rewind(f);
    if (buf) buf[fread(buf, 1, (size_t)n, f)] = 0;
    fclose(f);
    return buf;
}

static const char *const bench_keys[] = {
    "\"tg_ms_per_token\": {\"median\": ", "\"pp_tokens_per_s\": {\"median\": ", "\"ci95\": ", "\"min\": ",
    "\"max\": ", "\"runs\": ", "\"bandwidth_gbs\": ", "\"roofline_fraction\": ", "\"roofline_note\": ",
    "\"weight_bytes_per_token\": ", "\"threads\": ", "\"impl\": ", "\"host\": {\"machine\": ", "\"cpu\": ",
    "\"kunpeng\": ", "\"model\": {\"name\": ", "\"file_size\": ", "\"n_params\": ",
};

static void check_json_keys(const char *js, const char *what) {
    int missing = 0;
    for (size_t i = 0; i < sizeof(bench_keys) / sizeof(bench_keys[0]); i++)
        if (!strstr(js, bench_keys[i])) {
            KQ_CHECK(0, "%s: key %s missing", what, bench_keys[i]);
            missing++;
        }
    KQ_CHECK(missing == 0, "%s: every key present", what);
}

/* A result filled by hand: the report writers and the roofline without any model. */
static void fake_result(kq_bench_result *r, int runs, uint64_t weight_bytes, uint64_t llc) {
    memset(r, 0, sizeof(*r));
    kq_bench_host_detect(&r->host);
    r->host.llc_bytes = llc;
    snprintf(r->impl, sizeof(r->impl), "reference");
    snprintf(r->kv_type, sizeof(r->kv_type), "f16");
    snprintf(r->model_name, sizeof(r->model_name), "quote\" back\\slash\ttab");
    snprintf(r->model_file, sizeof(r->model_file), "m.gguf");
    r->threads = 2;
    r->weight_bytes = weight_bytes;
    r->n_prompt = 512;
    r->n_gen = 128;
    double x[16];
    for (int i = 0; i < runs; i++) x[i] = 10.0 + i;
    kq_bench_stat_compute(&r->tg_ms, x, runs);
    kq_bench_stat_compute(&r->pp_tps, x, runs);
    r->bw.gbs = 20.0;
    r->bw.median_gbs = 19.0;
}

static void test_roofline_json(void) {
    kq_bench_result r;
    /* 400 MB of weights, 20 GB/s: 20 ms/token lower bound; median of 10..17 = 13.5 ms */
    fake_result(&r, 8, 400000000ull, (uint64_t)32 << 20);
    kq_bench_roofline(&r);
    KQ_CHECK(r.has_roofline && fabs(r.roofline_bound_ms - 20.0) < 1e-9 &&
                 fabs(r.roofline_fraction - 20.0 / 13.5) < 1e-12,
             "roofline: bound %g ms, fraction %g", r.roofline_bound_ms, r.roofline_fraction);
    char *js = capture_json(&r);
    KQ_CHECK(js && json_valid(js), "JSON well-formed (8 runs):\n%s", js ? js : "(none)");
    if (js) {
        check_json_keys(js, "8 runs");
        KQ_CHECK(strstr(js, "\"ci95\": [10, 17]") != NULL, "ci95 = [x(1), x(8)]");
        KQ_CHECK(strstr(js, "\"roofline_fraction\": 1.48") != NULL, "roofline fraction in JSON");
        KQ_CHECK(strstr(js, "\"kunpeng\": false") != NULL || r.host.kunpeng920, "kunpeng false off Kunpeng");
    }
    free(js);
    kq_bench_result_free(&r);

    fake_result(&r, 3, 1u << 20, (uint64_t)32 << 20); /* 1 MiB of weights in a 32 MiB cache; 3 runs */
    kq_bench_roofline(&r);
    KQ_CHECK(!r.has_roofline && !strncmp(r.roofline_note, "n/a (cache-resident)", 20), "cache-resident: '%s'",
             r.roofline_note);
    js = capture_json(&r);
    KQ_CHECK(js && json_valid(js), "JSON well-formed (3 runs):\n%s", js ? js : "(none)");
    if (js) {
        check_json_keys(js, "3 runs");
        KQ_CHECK(strstr(js, "\"roofline_fraction\": null") && strstr(js, "\"ci95\": null") &&
                     strstr(js, "n/a (cache-resident)"),
                 "nulls for the cache-resident roofline and the 3-run CI");
    }
    free(js);
    kq_bench_result_free(&r);

    KQ_CHECK(json_valid("{\"a\": [1, -2.5e3, null, true, \"x\\n\"]}") && !json_valid("{\"a\": nan}") &&
                 !json_valid("{\"a\": 1,}") && !json_valid("{\"a\" 1}") && !json_valid("[1, 2"),
             "the validator itself tells good JSON from bad");
}

/* ---- the command: runs kq_cmd_bench with stdout and stderr captured ---- */

typedef struct {
    int rc;
    char out[16384], err[4096];
} cmd_result;

static void slurp(int fd, char *buf, size_t len) {
    lseek(fd, 0, SEEK_SET);
    const ssize_t n = read(fd, buf, len - 1);
    buf[n > 0 ? n : 0] = 0;
}

static void run_cmd(cmd_result *res, int argc, char **argv) {
    FILE *fo = tmpfile(), *fe = tmpfile();
    fflush(stdout);
    fflush(stderr);
    const int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    res->rc = kq_cmd_bench(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    slurp(fileno(fo), res->out, sizeof(res->out));
    slurp(fileno(fe), res->err, sizeof(res->err));
    fclose(fo);
    fclose(fe);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_cli_errors(const char *model) {
    const char *m = model ? model : "/nonexistent/model.gguf";
    char *cases[][8] = {
        {"bench", "-m", (char *)m, "-t", "0", NULL},
        {"bench", "-m", (char *)m, "-p", "0", NULL},
        {"bench", "-m", (char *)m, "-n", "-3", NULL},
        {"bench", "-m", (char *)m, "-r", "abc", NULL},
        {"bench", "-t", "2", NULL},
        {"bench", "-m", "/nonexistent/model.gguf", "-r", "1", "--bw-mib", "1", NULL},
        {"bench", "-m", (char *)m, "--impl", "nosuch", NULL},
        {"bench", "-m", (char *)m, "--kv-type", "q8", NULL},
        {"bench", "-m", (char *)m, "--bogus", NULL},
        {"bench", "-m", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int argc = 0;
        while (cases[i][argc]) argc++;
        cmd_result res;
        run_cmd(&res, argc, cases[i]);
        KQ_CHECK(res.rc == 2 && count_lines(res.err) == 1 && !strncmp(res.err, "kq: bench: ", 11) && !res.out[0],
                 "case %zu (%s %s): exit %d, stderr '%s'", i, cases[i][1] ? cases[i][1] : "",
                 cases[i][2] ? cases[i][2] : "", res.rc, res.err);
    }
    char *help[] = {"bench", "--help", NULL};
    cmd_result res;
    run_cmd(&res, 2, help);
    KQ_CHECK(res.rc == 0 && strstr(res.out, "usage: kq bench"), "--help: exit %d", res.rc);
}

/* ---- a real model (once the engine exists) ---- */

static void test_model(const char *model) {
    if (!model) {
        KQ_SKIP("bench on a model: ../shared/models/stories260K/stories260K.gguf not found");
        return;
    }
    /* small sizes: this also runs under qemu */
    char *json6[] = {"bench", "-m", (char *)model, "-t", "2", "-p", "16", "-n", "4", "-r", "6", "--bw-mib", "4",
                     "--json", NULL};
    cmd_result res;
    run_cmd(&res, 14, json6);
    KQ_CHECK(res.rc == 0, "bench --json -r 6: exit %d, stderr '%s'", res.rc, res.err);
    KQ_CHECK(json_valid(res.out), "bench --json output is valid JSON:\n%s", res.out);
    check_json_keys(res.out, "bench --json on stories260K");
    KQ_CHECK(strstr(res.out, "\"ci95\": [") && strstr(res.out, "\"runs\": 6") && strstr(res.out, "\"threads\": 2"),
             "6 runs: a CI, 2 threads");
    KQ_CHECK(strstr(res.out, "\"roofline_fraction\": null") && strstr(res.out, "n/a (cache-resident)"),
             "stories260K (1 MiB) is cache-resident on any machine with >= 2 MiB of LLC");

    char *text3[] = {"bench", "-m", (char *)model, "-t", "1", "-p", "8", "-n", "2", "-r", "3", "--bw-mib", "4", NULL};
    run_cmd(&res, 13, text3);
    KQ_CHECK(res.rc == 0, "bench -r 3: exit %d, stderr '%s'", res.rc, res.err);
    KQ_CHECK(strstr(res.out, "95% CI n/a") && strstr(res.out, "tokens/s") && strstr(res.out, "ms/token") &&
                 strstr(res.out, "kernels, 1 thread"),
             "-r 3 prints n/a for the CI:\n%s", res.out);
    char *json3[] = {"bench", "-m", (char *)model, "-p", "8", "-n", "2", "-r", "1", "--bw-mib", "4", "--json", NULL};
    run_cmd(&res, 12, json3);
    KQ_CHECK(res.rc == 0 && json_valid(res.out) && strstr(res.out, "\"ci95\": null"), "-r 1 --json: ci95 null:\n%s",
             res.out);
}

int main(void) {
    test_ci_ranks();
    test_median();
    test_bandwidth();
    test_host();
    test_tokens();
    test_roofline_json();
    char path[4096];
    kq_test_shared_path("models/stories260K/stories260K.gguf", path, sizeof(path));
    const char *model = access(path, R_OK) == 0 ? path : NULL;
    test_cli_errors(model);
    test_model(model);
    return kq_test_finish();
}
