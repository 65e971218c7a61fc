/* Tests of `kq check bitexact`: it passes on identical tables, and it catches broken ones.
 *
 * The broken implementations are q8_0 rows with one function replaced by a close imitation of the
 * reference (ties rounded to even, lanes summed in another order, one bit flipped, a byte left
 * unwritten, ...). Each imitation is checked first in its correct form, so a reported mismatch is the
 * one deliberate defect and not a difference in how the test re-derives the format. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bitexact.h"
#include "fp16.h"
#include "gguf.h"
#include "kq_dispatch.h"
#include "kq_ref.h"
#include "kq_test.h"

static const kq_bitexact_options kq_quick = {1, 0x1234};

/* ---- q8_0 re-derived from the format (kq_types.h, golden README) with switchable defects ---- */

static int kq_ties_to_even; /* quantize: nearbyintf (ties to even) instead of roundf (ties away) */

static void kq_test_quantize_q8_0(const float *x, void *y, int64_t n) {
    kq_block_q8_0 *b = y;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float *xb = x + i * KQ_QK;
        float amax = 0.0f;
        for (int j = 0; j < KQ_QK; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < KQ_QK; j++) {
            const float r = kq_ties_to_even ? nearbyintf(xb[j] * id) : roundf(xb[j] * id);
            b[i].qs[j] = (int8_t)(r != r ? 0 : r >= 127.0f ? 127 : r <= -128.0f ? -128 : (int)r);
        }
        b[i].d = kq_f32_to_f16(d);
    }
}

/* Leaves the row's last byte as it found it. */
static void kq_test_quantize_q8_0_short(const float *x, void *y, int64_t n) {
    unsigned char tmp[sizeof(kq_block_q8_0) * 128];
    const size_t bytes = kq_row_size(KQ_TYPE_Q8_0, n);
    if (bytes > sizeof(tmp)) abort();
    kq_quantize_row_q8_0_ref(x, tmp, n);
    memcpy(y, tmp, bytes - 1);
}

/* Writes one byte past the end of the row. */
static void kq_test_quantize_q8_0_overrun(const float *x, void *y, int64_t n) {
    kq_quantize_row_q8_0_ref(x, y, n);
    ((unsigned char *)y)[kq_row_size(KQ_TYPE_Q8_0, n)] = 0;
}

static void kq_test_dequantize_q8_0_flip(const void *x, float *y, int64_t n) {
    kq_dequantize_row_q8_0_ref(x, y, n);
    y[n - 1] = kq_bits_f32(kq_f32_bits(y[n - 1]) ^ 1u);
}

/* Wrong only where the scale is NaN: a canonical NaN instead of the scale's quieted payload. Only
 * random bytes (NaN halfs) can show this. */
static void kq_test_dequantize_q8_0_nan(const void *x, float *y, int64_t n) {
    const kq_block_q8_0 *b = x;
    kq_dequantize_row_q8_0_ref(x, y, n);
    for (int64_t i = 0; i < n / KQ_QK; i++)
        if ((b[i].d & 0x7c00u) == 0x7c00u && (b[i].d & 0x3ffu))
            for (int j = 0; j < KQ_QK; j++) y[i * KQ_QK + j] = kq_bits_f32(0x7fc00000u);
}

static int kq_sequential; /* vec_dot: one running sum instead of the contract's 8 lanes */

static float kq_test_dot_q8_0(int64_t n, const kq_block_q8_0 *w, const kq_block_q8_0 *a) {
    float lane[8] = {0}, sum = 0.0f;
    for (int64_t b = 0; b < n / KQ_QK; b++) {
        int32_t isum = 0;
        for (int j = 0; j < KQ_QK; j++) isum += (int32_t)w[b].qs[j] * a[b].qs[j];
        const float c = (float)isum * (kq_f16_to_f32(w[b].d) * kq_f16_to_f32(a[b].d));
        if (kq_sequential) sum += c;
        else lane[b % 8] += c;
    }
    return kq_sequential ? sum : kq_reduce8(lane);
}

static void kq_test_vec_dot_q8_0(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    for (int r = 0; r < nrc; r++) s[r] = kq_test_dot_q8_0(n, (const kq_block_q8_0 *)((const char *)w + (size_t)r * w_stride), a);
}

/* Assumes packed rows (stride = row size): right for nrc = 1 only. */
static void kq_test_vec_dot_q8_0_packed(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    (void)w_stride;
    kq_vec_dot_q8_0_q8_0_ref(n, s, w, kq_row_size(KQ_TYPE_Q8_0, n), a, nrc);
}

/* Right values, plus a store into s[nrc]. */
static void kq_test_vec_dot_q8_0_overrun(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_vec_dot_q8_0_q8_0_ref(n, s, w, w_stride, a, nrc);
    s[nrc] = 0.0f;
}

/* Rows depend on nrc: the last row of a multi-row call is off by one ulp. */
static void kq_test_vec_dot_q8_0_nrc(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) {
    kq_vec_dot_q8_0_q8_0_ref(n, s, w, w_stride, a, nrc);
    if (nrc > 1) s[nrc - 1] = kq_bits_f32(kq_f32_bits(s[nrc - 1]) ^ 1u);
}

/* ---- helpers ---- */

static kq_type_traits kq_q8_0_copy(void) { return *kq_ref_traits(KQ_TYPE_Q8_0); }

static long kq_compare(const kq_type_traits *ref, const kq_type_traits *impl, kq_bitexact_fn_result res[KQ_BX_NFN]) {
    return kq_bitexact_compare(ref, impl, &kq_quick, res);
}

/* Runs the command in a child so a crash (e.g. a reference still a stub that aborts) fails this
 * check instead of the whole binary. Returns the exit status, or 100 + signal. */
static int kq_run_main(const char *const *args, int argc, const char *stdout_path) {
    fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (stdout_path && !freopen(stdout_path, "w", stdout)) _exit(99);
        char *argv[16];
        for (int i = 0; i < argc && i < 15; i++) argv[i] = (char *)args[i];
        argv[argc] = NULL;
        const int rc = kq_check_bitexact_main(argc, argv);
        fflush(stdout);
        _exit(rc);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    if (WIFSIGNALED(st)) return 100 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* ---- (1) identical tables pass ---- */

static void test_identical(void) {
    kq_bitexact_fn_result res[KQ_BX_NFN];
    const kq_type_traits *q8 = kq_ref_traits(KQ_TYPE_Q8_0);
    KQ_CHECK(kq_compare(q8, q8, res) == 0, "q8_0 against itself: mismatches");
    for (int f = 0; f < KQ_BX_NFN; f++)
        KQ_CHECK(res[f].present && res[f].cases > 0 && res[f].mismatches == 0 && !res[f].has_first,
                 "q8_0 function %d: present %d cases %lu mismatches %lu", f, res[f].present, res[f].cases, res[f].mismatches);

    const kq_type_traits *q81 = kq_ref_traits(KQ_TYPE_Q8_1);
    KQ_CHECK(kq_compare(q81, q81, res) == 0, "q8_1 against itself");
    KQ_CHECK(res[KQ_BX_QUANTIZE].present && res[KQ_BX_QUANTIZE].cases > 0, "q8_1 quantize compared");
    KQ_CHECK(!res[KQ_BX_DEQUANTIZE].present && !res[KQ_BX_VEC_DOT].present && res[KQ_BX_VEC_DOT].cases == 0,
             "q8_1 has no dequantize_row / vec_dot to compare");

    const kq_type_traits *f16 = kq_ref_traits(KQ_TYPE_F16);
    KQ_CHECK(kq_compare(f16, f16, res) == 0, "f16 against itself (NaN/Inf inputs, all 65536 halfs)");

    const kq_type_traits *q4 = kq_ref_traits(KQ_TYPE_Q4_0);
    kq_type_traits other = *kq_ref_traits(KQ_TYPE_Q8_0);
    KQ_CHECK(kq_compare(q4, &other, res) < 0, "rows of different types are refused");

    const char *args[] = {"bitexact", "--impl", "reference", "--quick", "--quiet"};
    const int rc = kq_run_main(args, 5, NULL);
    KQ_CHECK(rc == 0, "kq check bitexact --impl reference --quick: exit %d (>= 100: killed by signal %d)", rc, rc - 100);
}

/* ---- (2) broken implementations are caught, in the function that is broken ---- */

static void kq_check_only(const kq_bitexact_fn_result res[KQ_BX_NFN], int fn, const char *what) {
    for (int f = 0; f < KQ_BX_NFN; f++) {
        if (f == fn)
            KQ_CHECK(res[f].mismatches > 0 && res[f].has_first, "%s: not caught (cases %lu)", what, res[f].cases);
        else
            KQ_CHECK(res[f].mismatches == 0, "%s: blamed on function %d too (%lu)", what, f, res[f].mismatches);
    }
}

static void test_quantize_defects(void) {
    kq_bitexact_fn_result res[KQ_BX_NFN];
    kq_type_traits t = kq_q8_0_copy();
    t.quantize_row = kq_test_quantize_q8_0;
    kq_ties_to_even = 0;
    KQ_CHECK(kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res) == 0, "the test's own q8_0 quantizer equals the reference");

    kq_ties_to_even = 1;
    kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res);
    kq_check_only(res, KQ_BX_QUANTIZE, "q8_0 quantize rounding ties to even");
    KQ_CHECK(res[KQ_BX_QUANTIZE].first.width == 1 && res[KQ_BX_QUANTIZE].first.expected != res[KQ_BX_QUANTIZE].first.got,
             "first mismatch holds two different bytes");
    kq_ties_to_even = 0;

    /* Only the ties input can tell the two roundings apart: the other inputs agree. */
    t.quantize_row = kq_test_quantize_q8_0;
    kq_ties_to_even = 1;
    float x[64], yr[64 * 2], yi[64 * 2];
    for (int j = 0; j < 64; j++) x[j] = j % 32 == 0 ? 127.0f : (float)(j % 7) + 0.5f; /* 2.5 -> 3 away, 2 even */
    kq_quantize_row_q8_0_ref(x, yr, 64);
    t.quantize_row(x, yi, 64);
    KQ_CHECK(memcmp(yr, yi, kq_row_size(KQ_TYPE_Q8_0, 64)) != 0, "ties to even differs from roundf on exact ties");
    kq_ties_to_even = 0;

    t.quantize_row = kq_test_quantize_q8_0_short;
    kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res);
    kq_check_only(res, KQ_BX_QUANTIZE, "q8_0 quantize leaving its last byte unwritten");
    KQ_CHECK(res[KQ_BX_QUANTIZE].mismatches == res[KQ_BX_QUANTIZE].cases, "an unwritten byte shows in every case (%lu of %lu)",
             res[KQ_BX_QUANTIZE].mismatches, res[KQ_BX_QUANTIZE].cases);

    t.quantize_row = kq_test_quantize_q8_0_overrun;
    kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res);
    kq_check_only(res, KQ_BX_QUANTIZE, "q8_0 quantize writing past the row");
    KQ_CHECK(strstr(res[KQ_BX_QUANTIZE].first.where, "past the end") != NULL, "overrun reported as such: '%s'",
             res[KQ_BX_QUANTIZE].first.where);
}

static void test_dequantize_defects(void) {
    kq_bitexact_fn_result res[KQ_BX_NFN];
    kq_type_traits t = kq_q8_0_copy();
    t.dequantize_row = kq_test_dequantize_q8_0_flip;
    kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res);
    kq_check_only(res, KQ_BX_DEQUANTIZE, "q8_0 dequantize flipping one bit");
    const kq_bitexact_mismatch *m = &res[KQ_BX_DEQUANTIZE].first;
    KQ_CHECK(res[KQ_BX_DEQUANTIZE].mismatches == res[KQ_BX_DEQUANTIZE].cases, "flip caught in every case (%lu of %lu)",
             res[KQ_BX_DEQUANTIZE].mismatches, res[KQ_BX_DEQUANTIZE].cases);
    KQ_CHECK(m->width == 4 && (m->expected ^ m->got) == 1u, "first mismatch shows the flipped bit: %08x vs %08x",
             (unsigned)m->expected, (unsigned)m->got);

    t.dequantize_row = kq_test_dequantize_q8_0_nan;
    kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res);
    kq_check_only(res, KQ_BX_DEQUANTIZE, "q8_0 dequantize losing NaN payloads");
    KQ_CHECK(strcmp(res[KQ_BX_DEQUANTIZE].first.source, "random-bytes") == 0, "NaN scales come from random bytes: '%s'",
             res[KQ_BX_DEQUANTIZE].first.source);
}

static void test_vec_dot_defects(void) {
    kq_bitexact_fn_result res[KQ_BX_NFN];
    kq_type_traits t = kq_q8_0_copy();
    t.vec_dot = kq_test_vec_dot_q8_0;
    kq_sequential = 0;
    KQ_CHECK(kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res) == 0, "the test's own 8-lane q8_0 dot equals the reference");

    kq_sequential = 1;
    kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res);
    kq_check_only(res, KQ_BX_VEC_DOT, "q8_0 vec_dot summing blocks in one running sum");
    kq_sequential = 0;

    t.vec_dot = kq_test_vec_dot_q8_0_packed;
    kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res);
    kq_check_only(res, KQ_BX_VEC_DOT, "q8_0 vec_dot ignoring the row stride");
    KQ_CHECK(strncmp(res[KQ_BX_VEC_DOT].first.where, "nrc=2", 5) == 0, "stride bug shows at nrc=2: '%s'",
             res[KQ_BX_VEC_DOT].first.where);

    t.vec_dot = kq_test_vec_dot_q8_0_overrun;
    kq_compare(kq_ref_traits(KQ_TYPE_Q8_0), &t, res);
    kq_check_only(res, KQ_BX_VEC_DOT, "q8_0 vec_dot storing s[nrc]");
    KQ_CHECK(strstr(res[KQ_BX_VEC_DOT].first.where, "past the end") != NULL, "s[] overrun reported as such: '%s'",
             res[KQ_BX_VEC_DOT].first.where);

    /* Both sides nrc-dependent alike: only the nrc > 1 vs nrc = 1 rule can see it. */
    t.vec_dot = kq_test_vec_dot_q8_0_nrc;
    kq_compare(&t, &t, res);
    kq_check_only(res, KQ_BX_VEC_DOT, "q8_0 vec_dot whose rows depend on nrc");
    KQ_CHECK(strcmp(res[KQ_BX_VEC_DOT].first.expected_from, "nrc=1") == 0, "reported against nrc=1: '%s'",
             res[KQ_BX_VEC_DOT].first.expected_from);
}

/* ---- (3) usage errors ---- */

static void test_usage(void) {
    const char *bogus[] = {"bitexact", "--impl", "bogus"};
    KQ_CHECK(kq_run_main(bogus, 3, NULL) == 2, "--impl bogus must exit 2");
    const char *unknown[] = {"bitexact", "--frobnicate"};
    KQ_CHECK(kq_run_main(unknown, 2, NULL) == 2, "unknown option must exit 2");
    const char *type[] = {"bitexact", "--impl", "reference", "--types", "q8_0,nosuch"};
    KQ_CHECK(kq_run_main(type, 5, NULL) == 2, "unknown type must exit 2");
    const char *noval[] = {"bitexact", "--seed"};
    KQ_CHECK(kq_run_main(noval, 2, NULL) == 2, "--seed without a value must exit 2");
    const char *badseed[] = {"bitexact", "--seed", "12x"};
    KQ_CHECK(kq_run_main(badseed, 3, NULL) == 2, "bad seed must exit 2");
    const char *help[] = {"bitexact", "--help"};
    KQ_CHECK(kq_run_main(help, 2, "/dev/null") == 0, "--help exits 0");

    const char *neon[] = {"bitexact", "--impl", "neon", "--quick", "--quiet", "--types", "q8_0"};
    const char *why = "";
    if (kq_impl_available(KQ_IMPL_NEON_PLAIN, &why)) {
        KQ_SKIP("--impl neon unavailable: NEON is available here (tested below)");
    } else {
        KQ_CHECK(kq_run_main(neon, 7, NULL) == 2, "--impl neon without NEON must exit 2 (%s)", why);
    }
}

/* ---- JSON ---- */

/* Runs the command with stdout to a temporary file; returns the output (caller frees) or NULL. */
static char *kq_run_capture(const char *const *args, int argc, int *rc) {
    char path[] = "/tmp/kq_test_bitexact_XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return NULL;
    close(fd);
    *rc = kq_run_main(args, argc, path);
    size_t len = 0;
    char *s = kq_test_read_file(path, &len);
    unlink(path);
    char *t = s ? realloc(s, len + 1) : NULL;
    if (!t) {
        free(s);
        return NULL;
    }
    t[len] = 0;
    return t;
}

static int kq_json_balanced(const char *s) {
    int depth = 0, in_str = 0;
    for (const char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_str = 0;
            continue;
        }
        if (*p == '"') in_str = 1;
        else if (*p == '{' || *p == '[') depth++;
        else if ((*p == '}' || *p == ']') && --depth < 0) return 0;
    }
    return depth == 0 && !in_str && s[0] == '{';
}

static void test_json(void) {
    const char *args[] = {"bitexact", "--impl", "reference", "--quick", "--json", "--types", "Q8_0,q8_1"};
    int rc = -1;
    char *s = kq_run_capture(args, 7, &rc);
    if (!s) {
        KQ_SKIP("json: cannot capture the output in a temporary file");
        return;
    }
    KQ_CHECK(rc == 0, "--json run exits 0 (%d)", rc);
    KQ_CHECK(kq_json_balanced(s), "json brackets balance: %.80s", s);
    KQ_CHECK(strncmp(s, "{\"impl\":\"reference\",\"self_check\":true", 37) == 0, "json starts with the impl: %.60s", s);
    KQ_CHECK(strstr(s, "{\"type\":\"q8_0\",\"functions\":[{\"fn\":\"quantize_row\",\"native\":true,") != NULL, "q8_0 entry");
    KQ_CHECK(strstr(s, "{\"fn\":\"vec_dot\",\"native\":null,\"cases\":0,\"mismatches\":0,\"status\":\"n/a\"}") != NULL,
             "q8_1 has no vec_dot");
    KQ_CHECK(strstr(s, "\"cpu\":{\"asimd\":") != NULL && strstr(s, "],\"cases\":") != NULL &&
                 strstr(s, ",\"mismatches\":0,") != NULL,
             "cpu and totals");
    free(s);
}

/* The table says native or fallback exactly as the dispatcher does. */
static void test_native_flags(kq_impl impl, const char *name) {
    const char *args[] = {"bitexact", "--impl", name, "--quick", "--json", "--types", "f16,q4_0,q4_K,i4_g32_sym"};
    int rc = -1;
    char *s = kq_run_capture(args, 7, &rc);
    if (!s) {
        KQ_SKIP("json %s: cannot capture the output", name);
        return;
    }
    KQ_CHECK(kq_json_balanced(s), "%s json brackets balance", name);
    static const kq_type types[] = {KQ_TYPE_F16, KQ_TYPE_Q4_0, KQ_TYPE_Q4_K};
    static const char *const fns[] = {"quantize_row", "dequantize_row", "vec_dot"};
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        const char *at = strstr(s, kq_ref_traits(types[t])->name);
        for (int f = 0; f < 3 && at; f++) {
            const int native = kq_fn_native(impl, types[t], (kq_fn)f);
            char want[128];
            snprintf(want, sizeof(want), "{\"fn\":\"%s\",\"native\":%s,", fns[f], native ? "true" : "false");
            const char *hit = strstr(at, want);
            KQ_CHECK(hit != NULL, "%s %s %s: expected %s", name, kq_ref_traits(types[t])->name, fns[f], want);
            if (hit) {
                const char *st = strstr(hit, "\"status\":\"");
                const char *expect = native ? "pass" : "fallback";
                KQ_CHECK(st && strncmp(st + 10, expect, strlen(expect)) == 0, "%s %s %s: status %s", name,
                         kq_ref_traits(types[t])->name, fns[f], expect);
            }
        }
    }
    free(s);
}

/* ---- (4) NEON on an aarch64 CPU ----
 * "--impl neon" is the best layer this CPU runs: neon-dotprod under -cpu neoverse-n1 (its table
 * holds the plain kernels wherever it has no SDOT one), neon-plain under -cpu cortex-a72. Running
 * both CPUs covers both layers without running the slow check twice on one. */
static void test_neon(void) {
    kq_impl best;
    char err[256];
    if (kq_impl_parse("neon", &best, err, sizeof(err)) != 0) {
        KQ_SKIP("bitexact --impl neon: %s", err);
        return;
    }
    const char *args[] = {"bitexact", "--impl", "neon", "--quick", "--quiet"};
    const int rc = kq_run_main(args, 5, NULL);
    KQ_CHECK(rc == 0, "kq check bitexact --impl neon (%s) --quick: exit %d", kq_impl_name(best), rc);
    test_native_flags(best, kq_impl_name(best));

    const char *why = "";
    if (!kq_impl_available(KQ_IMPL_NEON_DOTPROD, &why)) {
        const char *dp[] = {"bitexact", "--impl", "neon-dotprod", "--quick", "--types", "q8_0"};
        KQ_CHECK(kq_run_main(dp, 6, NULL) == 2, "neon-dotprod on a CPU without dotprod must exit 2");
        KQ_SKIP("bitexact neon-dotprod: %s", why);
    }
}

/* ---- (5) a model's own rows: kq_bitexact_compare_rows and --gguf ---- */

static void test_fallback_rule(void) {
    KQ_CHECK(kq_bitexact_fallback_type(KQ_TYPE_Q4_0, 64) == KQ_TYPE_Q4_0, "q4_0 holds rows of 64");
    KQ_CHECK(kq_bitexact_fallback_type(KQ_TYPE_Q4_0, 172) == KQ_TYPE_F16, "rows of 172: f16 (not a multiple of 32)");
    KQ_CHECK(kq_bitexact_fallback_type(KQ_TYPE_Q4_K, 64) == KQ_TYPE_Q8_0, "q4_K on rows of 64: q8_0");
    KQ_CHECK(kq_bitexact_fallback_type(KQ_TYPE_Q4_K, 512) == KQ_TYPE_Q4_K, "q4_K on rows of 512");
    const kq_type_traits *i4 = kq_type_by_name("i4_g128_asym");
    KQ_CHECK(i4 && kq_bitexact_fallback_type(i4->type, 64) == KQ_TYPE_Q8_0, "i4_g128 on rows of 64: q8_0");
    KQ_CHECK(i4 && kq_bitexact_fallback_type(i4->type, 256) == i4->type, "i4_g128 on rows of 256");
}

/* Rows on the q8_0 tie grid (amax 127, values k + 0.5), so a ties-to-even quantizer differs. */
static void kq_tie_rows(float *x, int rows, int n) {
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++)
            x[r * n + i] = i % KQ_QK == 0 ? 127.0f : (float)((r * 7 + i * 13) % 200 - 100) + 0.5f;
}

static void test_compare_rows(void) {
    enum { R = 6, N = 320 }; /* 6 rows: groups of 4 wrap around; 10 blocks: past the 8 lanes */
    static float x[R * N];
    kq_tie_rows(x, R, N);
    kq_bitexact_fn_result res[KQ_BX_NFN];
    const kq_type_traits *q8 = kq_ref_traits(KQ_TYPE_Q8_0);
    KQ_CHECK(kq_bitexact_compare_rows(q8, q8, x, R, N, "t", res) == 0, "q8_0 rows against themselves");
    KQ_CHECK(res[KQ_BX_QUANTIZE].cases == 8 && res[KQ_BX_DEQUANTIZE].cases == 8 && res[KQ_BX_VEC_DOT].cases == 14,
             "two groups of 4 rows: 8 quantize, 8 dequantize, 2 x (4 + 3) vec_dot cases (got %lu %lu %lu)",
             res[0].cases, res[1].cases, res[2].cases);
    kq_type_traits broken = kq_q8_0_copy();
    broken.quantize_row = kq_test_quantize_q8_0;
    KQ_CHECK(kq_bitexact_compare_rows(q8, &broken, x, R, N, "t", res) == 0, "the imitation matches in its correct form");
    kq_ties_to_even = 1;
    KQ_CHECK(kq_bitexact_compare_rows(q8, &broken, x, R, N, "blk.0.attn_q.weight", res) > 0 &&
                 res[KQ_BX_QUANTIZE].mismatches > 0 && res[KQ_BX_DEQUANTIZE].mismatches == 0,
             "ties to even on the model's rows: caught in quantize_row only");
    KQ_CHECK(!strcmp(res[KQ_BX_QUANTIZE].first.input, "blk.0.attn_q.weight") &&
                 !strncmp(res[KQ_BX_QUANTIZE].first.source, "rows 0+", 7),
             "the mismatch names the tensor and the rows: %s / %s", res[KQ_BX_QUANTIZE].first.input,
             res[KQ_BX_QUANTIZE].first.source);
    kq_ties_to_even = 0;
    broken = kq_q8_0_copy();
    broken.dequantize_row = kq_test_dequantize_q8_0_flip;
    KQ_CHECK(kq_bitexact_compare_rows(q8, &broken, x, R, N, "t", res) > 0 && res[KQ_BX_DEQUANTIZE].mismatches == 8,
             "a flipped bit in dequantize_row: every row (%lu)", res[KQ_BX_DEQUANTIZE].mismatches);
    broken = kq_q8_0_copy();
    broken.vec_dot = kq_test_vec_dot_q8_0_nrc;
    KQ_CHECK(kq_bitexact_compare_rows(q8, &broken, x, R, N, "t", res) > 0 && res[KQ_BX_VEC_DOT].mismatches > 0,
             "vec_dot depending on nrc: caught");
    KQ_CHECK(kq_bitexact_compare_rows(q8, q8, x, R, 100, "t", res) < 0, "rows of 100 are not q8_0 rows: refused");
    KQ_CHECK(kq_bitexact_compare_rows(q8, kq_ref_traits(KQ_TYPE_Q4_0), x, R, N, "t", res) < 0, "different types refused");
}

/* A GGUF like a tiny model: a 2-D f32 tensor (rows of 64), a 2-D f16 one (rows of 172: fallback),
 * a 1-D norm (not checked). Returns 0 when written. */
static int kq_write_model(const char *path) {
    kq_gguf_writer *w = kq_gguf_writer_new();
    const int64_t ne_a[2] = {64, 9}, ne_b[2] = {172, 5}, ne_n[1] = {64};
    char err[256];
    int rc = !w || kq_gguf_set_str(w, "general.architecture", "llama") != 0 ||
             kq_gguf_add_tensor(w, "a.weight", 2, ne_a, KQ_TYPE_F32) < 0 ||
             kq_gguf_add_tensor(w, "b.weight", 2, ne_b, KQ_TYPE_F16) < 0 ||
             kq_gguf_add_tensor(w, "norm.weight", 1, ne_n, KQ_TYPE_F32) < 0 || kq_gguf_write_begin(w, path, err, sizeof(err)) != 0;
    static float a[64 * 9], n[64];
    static uint16_t b[172 * 5];
    kq_tie_rows(a, 9, 64);
    for (int i = 0; i < 172 * 5; i++) b[i] = kq_f32_to_f16((float)((i * 37) % 101 - 50) * 0.01f);
    for (int i = 0; i < 64; i++) n[i] = 1.0f;
    if (!rc) rc = kq_gguf_write_data(w, 0, a, sizeof(a), err, sizeof(err)) || kq_gguf_write_data(w, 1, b, sizeof(b), err, sizeof(err)) ||
                  kq_gguf_write_data(w, 2, n, sizeof(n), err, sizeof(err)) || kq_gguf_write_finish(w, err, sizeof(err));
    kq_gguf_writer_free(w);
    return rc ? -1 : 0;
}

static void test_gguf(void) {
    char path[] = "/tmp/kq_test_bitexact_model_XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0 || (close(fd), kq_write_model(path)) != 0) {
        KQ_SKIP("--gguf: cannot write a GGUF in /tmp");
        if (fd >= 0) unlink(path);
        return;
    }
    const char *args[] = {"bitexact", "--impl", "reference", "--gguf", path, "--types", "q4_0,q8_0", "--json"};
    int rc = -1;
    char *s = kq_run_capture(args, 8, &rc);
    KQ_CHECK(s && rc == 0, "--gguf --json exits 0 (%d)", rc);
    if (s) {
        KQ_CHECK(kq_json_balanced(s), "--gguf json balances: %.80s", s);
        KQ_CHECK(strstr(s, "\"tensors\":2,\"tensors_not_checked\":1,") != NULL, "2 tensors checked, the norm not");
        KQ_CHECK(strstr(s, "{\"tensor\":\"a.weight\",\"shape\":[64,9],\"source_type\":\"f32\",\"rows\":9,\"type\":\"q4_0\","
                           "\"checked_type\":\"q4_0\",\"type_fallback\":false,") != NULL, "a.weight as q4_0");
        KQ_CHECK(strstr(s, "{\"tensor\":\"b.weight\",\"shape\":[172,5],\"source_type\":\"f16\",\"rows\":5,\"type\":\"q8_0\","
                           "\"checked_type\":\"f16\",\"type_fallback\":true,") != NULL, "b.weight: q8_0 falls back to f16");
        KQ_CHECK(strstr(s, "\"mismatches\":0,\"native_pass\"") != NULL, "no mismatch");
        KQ_CHECK(strstr(s, "\"functions\":[{\"fn\":\"quantize_row\",\"native\":true,\"cases\":12,") != NULL,
                 "9 rows of a.weight: 3 groups of 4 rows (the last wraps around) quantized");
    }
    free(s);
    const char *few[] = {"bitexact", "--impl", "reference", "--gguf", path, "--types", "q8_0", "--max-rows", "2", "--json"};
    s = kq_run_capture(few, 10, &rc);
    KQ_CHECK(s && rc == 0 && strstr(s, "\"rows\":2,") && !strstr(s, "\"rows\":9,"), "--max-rows 2 limits the rows");
    free(s);
    const char *zero[] = {"bitexact", "--gguf", path, "--max-rows", "0"};
    KQ_CHECK(kq_run_main(zero, 5, NULL) == 2, "--max-rows 0 is a usage error");
    const char *none[] = {"bitexact", "--impl", "reference", "--gguf", "/nonexistent/model.gguf"};
    KQ_CHECK(kq_run_main(none, 5, NULL) == 2, "a missing --gguf file exits 2");
    kq_impl best;
    char err[256];
    if (kq_impl_parse("neon", &best, err, sizeof(err)) == 0) {
        const char *neon[] = {"bitexact", "--impl", "neon", "--gguf", path, "--types", "f16,q4_0,q8_0,i4_g128_asym", "--quiet"};
        KQ_CHECK(kq_run_main(neon, 8, "/dev/null") == 0, "--impl neon (%s) on the model's tensors", kq_impl_name(best));
    } else {
        KQ_SKIP("--gguf --impl neon: %s", err);
    }
    unlink(path);
}

int main(void) {
    test_identical();
    test_quantize_defects();
    test_dequantize_defects();
    test_vec_dot_defects();
    test_usage();
    test_json();
    test_neon();
    test_fallback_rule();
    test_compare_rows();
    test_gguf();
    return kq_test_finish();
}
