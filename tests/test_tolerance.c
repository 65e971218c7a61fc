/* kq check tolerance: metrics with known answers, Lloyd-Max floors, the thresholds file, broken
 * quantizers that must exceed their thresholds, ggml's figures on the golden input, and the exit
 * codes of the entry point. */
#include "kq_test.h"
#include "tolerance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Both builds: the nominal widths and figures the table quotes. */
static void test_nominal(void) {
    static const struct { const char *name; int bits; } cases[] = {
        {"q8_0", 8}, {"q6_K", 6}, {"q5_0", 5}, {"q5_1", 5}, {"q5_K", 5}, {"q4_0", 4}, {"q4_1", 4},
        {"q4_K", 4}, {"q3_K", 3}, {"q2_K", 2}, {"f16", 0}, {"bf16", 0}, {"f32", 0}, {"q8_K", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const kq_type_traits *t = kq_type_by_name(cases[i].name);
        KQ_CHECK(t && kq_tol_nominal_bits(t) == cases[i].bits, "nominal bits of %s: %d, want %d", cases[i].name,
                 t ? kq_tol_nominal_bits(t) : -1, cases[i].bits);
    }
    for (size_t i = 0; i < kq_ref_traits_count(); i++) {
        const kq_type_traits *t = kq_ref_traits_at(i);
        if (t->intn_bits)
            KQ_CHECK(kq_tol_nominal_bits(t) == t->intn_bits, "%s: nominal %d", t->name, kq_tol_nominal_bits(t));
    }
    KQ_CHECK(kq_tol_nominal(8) == 0.02 && kq_tol_nominal(6) == 0.04 && kq_tol_nominal(5) == 0.06 &&
                 kq_tol_nominal(4) == 0.10 && kq_tol_nominal(3) == 0.15 && kq_tol_nominal(2) == 0.20 &&
                 kq_tol_nominal(1) == 0.50,
             "nominal figures");
    KQ_CHECK(kq_tol_nominal(0) == 0.0 && kq_tol_nominal(7) == 0.0 && kq_tol_nominal(16) == 0.0, "no nominal");
    KQ_CHECK(!kq_tol_default_type(kq_type_by_name("q8_1")) && !kq_tol_default_type(kq_type_by_name("q8_K")) &&
                 !kq_tol_default_type(kq_type_by_name("f32")) && kq_tol_default_type(kq_type_by_name("q4_0")) &&
                 kq_tol_default_type(kq_type_by_name("bf16")),
             "default type set");
}

#if !KQ_TOL_AVAILABLE

int main(void) {
    test_nominal();
    char arg0[] = "tolerance";
    char *argv[] = {arg0, NULL};
    printf("(the next line is the expected message of a build without GSL/cJSON)\n");
    fflush(stdout);
    KQ_CHECK(kq_check_tolerance_main(1, argv) == 2, "without GSL/cJSON the command must refuse with 2");
    KQ_SKIP("tolerance: metrics, floors, thresholds and golden figures need GSL and cJSON (not in this build)");
    return kq_test_finish();
}

#else

#include <fcntl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fp16.h"
#include "gguf.h"

static int near(double a, double b, double rel) { return fabs(a - b) <= rel * fabs(b) + 1e-300; }

/* ---- metrics on vectors with known answers ---------------------------------------------------- */

static void test_metrics_scaled(void) {
    enum { N = 1000 };
    static float x[N], y[N];
    const double e = 1.0 / 64.0; /* x * (1 + e) is exact in float for these small integers */
    double sx2 = 0.0;
    for (int i = 0; i < N; i++) {
        x[i] = (float)((i * 7) % 13 - 6);
        y[i] = x[i] * (float)(1.0 + e);
        sx2 += (double)x[i] * x[i];
    }
    kq_tol_metrics m;
    KQ_CHECK(kq_tol_metrics_compute(x, y, N, &m) == 0, "metrics");
    KQ_CHECK(near(m.rel_frob, e, 1e-12), "rel_frob %.17g, want %.17g", m.rel_frob, e);
    KQ_CHECK(near(m.maxrel, e, 1e-12), "maxrel %.17g, want %.17g", m.maxrel, e);
    KQ_CHECK(near(m.cosine, 1.0, 1e-14), "cosine %.17g, want 1", m.cosine);
    KQ_CHECK(near(m.snr_db, -20.0 * log10(e), 1e-12), "snr %.17g, want %.17g", m.snr_db, -20.0 * log10(e));
    KQ_CHECK(near(m.rmse, e * sqrt(sx2 / N), 1e-12), "rmse %.17g", m.rmse);
    KQ_CHECK(m.n == N, "n");
}

static void test_metrics_small(void) {
    const float x[2] = {3.0f, 4.0f}, y[2] = {3.0f, 0.0f};
    kq_tol_metrics m;
    KQ_CHECK(kq_tol_metrics_compute(x, y, 2, &m) == 0, "metrics");
    /* y - x = (0, -4): ||d|| = 4, ||x|| = 5, <x,y> = 9, ||y|| = 3 */
    KQ_CHECK(near(m.rel_frob, 0.8, 1e-15), "rel_frob %.17g, want 0.8", m.rel_frob);
    KQ_CHECK(near(m.maxrel, 1.0, 1e-15), "maxrel %.17g, want 1", m.maxrel);
    KQ_CHECK(near(m.rmse, 4.0 / sqrt(2.0), 1e-15), "rmse %.17g", m.rmse);
    KQ_CHECK(near(m.cosine, 0.6, 1e-15), "cosine %.17g, want 0.6", m.cosine);
    KQ_CHECK(near(m.snr_db, 20.0 * log10(1.25), 1e-13), "snr %.17g", m.snr_db);

    const float a[3] = {1.0f, -2.0f, 0.5f}, na[3] = {-1.0f, 2.0f, -0.5f};
    KQ_CHECK(kq_tol_metrics_compute(a, a, 3, &m) == 0 && m.rel_frob == 0.0 && m.maxrel == 0.0 && m.rmse == 0.0 &&
                 near(m.cosine, 1.0, 1e-15) && isinf(m.snr_db) && m.snr_db > 0,
             "y == x: rel %g cos %g snr %g", m.rel_frob, m.cosine, m.snr_db);
    KQ_CHECK(kq_tol_metrics_compute(a, na, 3, &m) == 0 && near(m.rel_frob, 2.0, 1e-15) && near(m.cosine, -1.0, 1e-15),
             "y == -x: rel %g cos %g", m.rel_frob, m.cosine);
    const float e0[2] = {1.0f, 0.0f}, e1[2] = {0.0f, 1.0f};
    KQ_CHECK(kq_tol_metrics_compute(e0, e1, 2, &m) == 0 && near(m.rel_frob, sqrt(2.0), 1e-15) && m.cosine == 0.0 &&
                 near(m.maxrel, 1.0, 1e-15),
             "orthogonal: rel %g cos %g", m.rel_frob, m.cosine);
    KQ_CHECK(kq_tol_metrics_compute(a, a, 0, &m) == -1, "n = 0 is refused");
}

/* ---- Lloyd-Max floors: known values of the optimal Gaussian quantizer (Max 1960) ------------------- */

static void test_floors(void) {
    const double known[5] = {0.0, sqrt(1.0 - 2.0 / M_PI), 0.343, 0.186, 0.0975};
    const double half_unit[5] = {0.0, 5e-4, 5e-4, 5e-4, 5e-5}; /* agree to the digits given */
    for (int b = 1; b <= 4; b++) {
        const double f = kq_tol_lloyd_max_floor(b);
        KQ_CHECK(fabs(f - known[b]) <= half_unit[b], "Lloyd-Max %d bits: %.6f, want %.4g", b, f, known[b]);
    }
    KQ_CHECK(fabs(kq_tol_lloyd_max_floor(1) - sqrt(1.0 - 2.0 / M_PI)) < 1e-9, "1 bit floor is exact");
    KQ_CHECK(isnan(kq_tol_lloyd_max_floor(0)) && isnan(kq_tol_lloyd_max_floor(9)), "widths outside 1..8");
    /* the quoted 50%, 20%, 15% are below the floor; 10% is not */
    KQ_CHECK(kq_tol_lloyd_max_floor(1) > kq_tol_nominal(1) && kq_tol_lloyd_max_floor(2) > kq_tol_nominal(2) &&
                 kq_tol_lloyd_max_floor(3) > kq_tol_nominal(3) && kq_tol_lloyd_max_floor(4) < kq_tol_nominal(4),
             "which nominal figures are unreachable");
}

/* ---- generators ----------------------------------------------------------------------------------------- */

static double frac_above(const float *x, size_t n, double t) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += fabs(x[i]) > t;
    return (double)k / (double)n;
}

static void test_generators(void) {
    const int64_t rows = 16, row = KQ_TOL_ROW;
    const size_t n = (size_t)(rows * row);
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    if (!a || !b) {
        KQ_CHECK(0, "out of memory");
        free(a);
        free(b);
        return;
    }
    KQ_CHECK(kq_tol_generate(KQ_TOL_NORMAL, 7, rows, row, a) == 0 && kq_tol_generate(KQ_TOL_NORMAL, 7, rows, row, b) == 0 &&
                 !memcmp(a, b, n * sizeof(float)),
             "same seed, same rows");
    KQ_CHECK(kq_tol_generate(KQ_TOL_NORMAL, 8, rows, row, b) == 0 && memcmp(a, b, n * sizeof(float)), "seeds differ");
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i], s2 += (double)a[i] * a[i];
    KQ_CHECK(fabs(s / n) < 0.02 && fabs(sqrt(s2 / n) - 1.0) < 0.02, "normal: mean %g sd %g", s / n, sqrt(s2 / n));
    /* P(|Z| > 3) = 0.0027; P(|T3| > 3) = 0.0577 */
    KQ_CHECK(frac_above(a, n, 3.0) < 0.005, "normal tail %g", frac_above(a, n, 3.0));
    KQ_CHECK(kq_tol_generate(KQ_TOL_STUDENT_T3, 7, rows, row, b) == 0 && fabs(frac_above(b, n, 3.0) - 0.0577) < 0.006,
             "student-t3 tail %g, want 0.0577", frac_above(b, n, 3.0));
    /* channels: columns of scale 20 stand out; there are row/512 of them */
    KQ_CHECK(kq_tol_generate(KQ_TOL_CHANNELS, 7, rows, row, b) == 0, "channels");
    int loud = 0;
    for (int64_t j = 0; j < row; j++) {
        double c2 = 0.0;
        for (int64_t i = 0; i < rows; i++) c2 += (double)b[i * row + j] * b[i * row + j];
        loud += sqrt(c2 / rows) > 12.0;
    }
    KQ_CHECK(loud == row / 512, "channels: %d outlier columns, want %d", loud, (int)(row / 512));
    KQ_CHECK(kq_tol_generate(KQ_TOL_NDIST, 7, rows, row, b) == -1, "unknown distribution");
    free(a);
    free(b);
}

/* ---- the thresholds file ------------------------------------------------------------------------------ */

static kq_tol_file *load_shipped(void) {
    char err[512] = "";
    kq_tol_file *f = kq_tol_file_load(KQ_TOL_DEFAULT_FILE, err, sizeof(err));
    KQ_CHECK(f != NULL, "%s must load: %s", KQ_TOL_DEFAULT_FILE, err);
    return f;
}

static void test_file_complete(const kq_tol_file *f) {
    int missing = 0, types = 0;
    for (size_t i = 0; i < kq_ref_traits_count(); i++) {
        const kq_type_traits *t = kq_ref_traits_at(i);
        if (!kq_tol_default_type(t)) continue;
        types++;
        for (int d = 0; d <= KQ_TOL_NDIST; d++) {
            const char *dist = d < KQ_TOL_NDIST ? kq_tol_dist_name((kq_tol_dist)d) : KQ_TOL_INPUT_KEY;
            double v = -1.0;
            for (int mode = 0; mode < (t->intn_bits ? 2 : 1); mode++) {
                if (kq_tol_file_threshold(f, t->name, dist, (kq_scale_mode)mode, &v) != 0 || !(v > 0.0 && isfinite(v))) {
                    missing++;
                    KQ_CHECK(0, "no usable threshold for %s / %s (mode %d)", t->name, dist, mode);
                }
            }
        }
    }
    KQ_CHECK(missing == 0 && types >= 12, "thresholds for all %d default types (%d missing)", types, missing);
}

static const char *write_tmp(const char *dir, const char *name, const char *text, char *path, size_t len) {
    snprintf(path, len, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    return path;
}

static void test_file_errors(const char *dir) {
    char err[512], path[512];
    kq_tol_file *f = kq_tol_file_load("/nonexistent/tol.json", err, sizeof(err));
    KQ_CHECK(!f && strstr(err, "/nonexistent/tol.json"), "missing file names it: %s", err);
    f = kq_tol_file_load(write_tmp(dir, "bad.json", "{\"thresholds\": {\"q4_0\": ", path, sizeof(path)), err,
                         sizeof(err));
    KQ_CHECK(!f && strstr(err, path) && strstr(err, "JSON"), "invalid JSON names the file: %s", err);
    f = kq_tol_file_load(write_tmp(dir, "neg.json", "{\"thresholds\": {\"q4_0\": {\"normal\": -1}}}", path, sizeof(path)),
                         err, sizeof(err));
    KQ_CHECK(!f && strstr(err, "q4_0"), "negative threshold refused: %s", err);
    f = kq_tol_file_load(write_tmp(dir, "none.json", "{\"x\": 1}", path, sizeof(path)), err, sizeof(err));
    KQ_CHECK(!f && strstr(err, "thresholds"), "no thresholds object: %s", err);
    f = kq_tol_file_load(write_tmp(dir, "ok.json", "{\"thresholds\": {\"q4_0\": {\"normal\": 0.25}}}", path,
                                   sizeof(path)),
                         err, sizeof(err));
    double v = 0.0;
    KQ_CHECK(f && kq_tol_file_threshold(f, "q4_0", "normal", KQ_SCALE_SEARCH, &v) == 0 && v == 0.25 &&
                 kq_tol_file_threshold(f, "q4_0", "channels", KQ_SCALE_SEARCH, &v) == -1,
             "lookup in a small file");
    kq_tol_file_free(f);
    KQ_CHECK(kq_tol_calibrated(0.1160) > 0.1276 - 1e-12 && kq_tol_calibrated(0.1160) < 0.1280 + 1e-12 &&
                 fabs(kq_tol_calibrated(0.1) - 0.11) < 1e-12,
             "calibration rule: %.17g, %.17g", kq_tol_calibrated(0.1160), kq_tol_calibrated(0.1));
}

/* ---- stand-in quantizers: one right, three broken ----------------------------------------------------- */

/* The 32-block with the largest magnitude, sign kept (q4_0 scales by it). */
static float signed_absmax(const float *x) {
    float m = 0.0f, a = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > a) a = fabsf(x[j]), m = x[j];
    return m;
}

typedef enum { Q4_RIGHT, Q4_TRUNCATES, Q4_THREE_BITS } q4_variant;

/* q4_0 as ggml defines it (RIGHT), one that truncates x/d instead of rounding, and one with 8 levels. */
static void standin_q4_0(const float *x, void *y, int64_t n, q4_variant v) {
    kq_block_q4_0 *b = y;
    const float half = v == Q4_THREE_BITS ? 4.0f : 8.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        const float d = signed_absmax(x + i * 32) / -half;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const float bias = v == Q4_TRUNCATES ? half : half + 0.5f;
        uint8_t u[32];
        for (int j = 0; j < 32; j++) {
            int q = (int)(x[i * 32 + j] * id + bias);
            if (q > 2 * (int)half - 1) q = 2 * (int)half - 1;
            u[j] = (uint8_t)(q + 8 - (int)half); /* codes centred on 8, as q4_0's dequantizer expects */
        }
        for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)(u[j] | (u[j + 16] << 4));
        b[i].d = kq_f32_to_f16(d);
    }
}

/* q8_0 with d = amax/63: seven bits instead of eight. */
static void standin_q8_0_seven_bits(const float *x, void *y, int64_t n) {
    kq_block_q8_0 *b = y;
    for (int64_t i = 0; i < n / 32; i++) {
        float a = 0.0f;
        for (int j = 0; j < 32; j++) a = fmaxf(a, fabsf(x[i * 32 + j]));
        const float d = a / 63.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) b[i].qs[j] = (int8_t)roundf(x[i * 32 + j] * id);
        b[i].d = kq_f32_to_f16(d);
    }
}

static q4_variant g_variant;
static void standin_q4_fn(const float *x, void *y, int64_t n) { standin_q4_0(x, y, n, g_variant); }

static double roundtrip(kq_quantize_row_fn q, kq_dequantize_row_fn dq, size_t bsize, const float *x, int64_t rows,
                        int64_t row) {
    void *buf = malloc((size_t)(row / 32) * bsize);
    float *y = malloc((size_t)(rows * row) * sizeof(float));
    kq_tol_metrics m = {0};
    if (buf && y) {
        for (int64_t i = 0; i < rows; i++) {
            q(x + i * row, buf, row);
            dq(buf, y + i * row, row);
        }
        kq_tol_metrics_compute(x, y, (size_t)(rows * row), &m);
    }
    free(buf);
    free(y);
    return m.rel_frob;
}

static void test_broken_quantizers(const kq_tol_file *f) {
    const int64_t rows = KQ_TOL_DEFAULT_ROWS, row = KQ_TOL_ROW;
    float *x = malloc((size_t)(rows * row) * sizeof(float));
    if (!x) return;
    for (int d = 0; d < KQ_TOL_NDIST; d++) {
        const char *dist = kq_tol_dist_name((kq_tol_dist)d);
        double t4 = NAN, t8 = NAN;
        kq_tol_generate((kq_tol_dist)d, KQ_TOL_DEFAULT_SEED, rows, row, x);
        if (kq_tol_file_threshold(f, "q4_0", dist, KQ_SCALE_SEARCH, &t4) != 0 ||
            kq_tol_file_threshold(f, "q8_0", dist, KQ_SCALE_SEARCH, &t8) != 0) {
            KQ_CHECK(0, "thresholds for q4_0/q8_0 %s", dist);
            continue;
        }
        double e[3];
        for (int v = 0; v < 3; v++) {
            g_variant = (q4_variant)v;
            e[v] = roundtrip(standin_q4_fn, kq_dequantize_row_q4_0_ref, sizeof(kq_block_q4_0), x, rows, row);
        }
        kq_tol_metrics ref;
        char err[256] = "";
        KQ_CHECK(kq_tol_measure(kq_type_by_name("q4_0"), KQ_SCALE_SEARCH, x, rows, row, &ref, err, sizeof(err)) == 0,
                 "measure q4_0: %s", err);
        KQ_CHECK(near(e[Q4_RIGHT], ref.rel_frob, 1e-9), "%s: stand-in q4_0 %.6f vs reference %.6f", dist, e[Q4_RIGHT],
                 ref.rel_frob);
        KQ_CHECK(e[Q4_RIGHT] <= t4, "%s: a right q4_0 (%.5f) passes %.5f", dist, e[Q4_RIGHT], t4);
        KQ_CHECK(e[Q4_TRUNCATES] > t4, "%s: q4_0 that truncates (%.5f) must exceed %.5f", dist, e[Q4_TRUNCATES], t4);
        KQ_CHECK(e[Q4_THREE_BITS] > t4, "%s: 3-bit q4_0 (%.5f) must exceed %.5f", dist, e[Q4_THREE_BITS], t4);
        const double e8 = roundtrip(standin_q8_0_seven_bits, kq_dequantize_row_q8_0_ref, sizeof(kq_block_q8_0), x, rows, row);
        KQ_CHECK(e8 > t8, "%s: 7-bit q8_0 (%.5f) must exceed %.5f", dist, e8, t8);
        printf("  %-10s q4_0 right %.5f, truncating %.5f, 3-bit %.5f (threshold %.4g); q8_0 7-bit %.5f (threshold %.4g)\n",
               dist, e[0], e[1], e[2], t4, e8, t8);
    }
    free(x);
}

/* ---- INT-N: the scale mode reaches the quantizer, and each mode meets its own thresholds ------------ */

static void test_intn_modes(const kq_tol_file *f) {
    static const char *const names[] = {"i4_g128_sym", "i2_row_asym", "i8_g32_asym"};
    const int64_t rows = KQ_TOL_DEFAULT_ROWS, row = KQ_TOL_ROW;
    float *x = malloc((size_t)(rows * row) * sizeof(float));
    if (!x || kq_tol_generate(KQ_TOL_NORMAL, KQ_TOL_DEFAULT_SEED, rows, row, x) != 0) {
        KQ_CHECK(0, "generate");
        free(x);
        return;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const kq_type_traits *t = kq_type_by_name(names[i]);
        if (!t) {
            KQ_SKIP("INT-N type %s not in this build's table", names[i]);
            continue;
        }
        kq_tol_metrics ms, mm;
        double ts = NAN, tm = NAN;
        char err[256] = "";
        KQ_CHECK(kq_tol_measure(t, KQ_SCALE_SEARCH, x, rows, row, &ms, err, sizeof(err)) == 0 &&
                     kq_tol_measure(t, KQ_SCALE_MAX, x, rows, row, &mm, err, sizeof(err)) == 0,
                 "%s: %s", names[i], err);
        KQ_CHECK(ms.rel_frob < mm.rel_frob, "%s: the error-minimising scale (%.5f) beats max scaling (%.5f)", names[i],
                 ms.rel_frob, mm.rel_frob);
        KQ_CHECK(kq_tol_file_threshold(f, names[i], "normal", KQ_SCALE_SEARCH, &ts) == 0 && ms.rel_frob <= ts,
                 "%s search %.5f within %g", names[i], ms.rel_frob, ts);
        KQ_CHECK(kq_tol_file_threshold(f, names[i], "normal", KQ_SCALE_MAX, &tm) == 0 && mm.rel_frob <= tm,
                 "%s max %.5f within %g", names[i], mm.rel_frob, tm);
    }
    free(x);
}

/* ---- ggml's figures on the golden input ---------------------------------------------------------------- */

typedef struct {
    const char *type;
    double rel_frob; /* as quoted: relative Frobenius error, rows 0..39 */
    double decimals; /* 10^-digits of the quoted figure */
    double rmse;     /* ../shared/golden/README.md, ggml's RMSE over rows 0..39 */
} ggml_figure;

static const ggml_figure g_ggml[] = {
    {"q8_0", 0.0041, 1e-4, 0.00990357633}, {"q6_K", 0.0131, 1e-4, 0.0314657539}, {"q5_0", 0.0337, 1e-4, 0.0811236943},
    {"q5_1", 0.0313, 1e-4, 0.0751670106},  {"q5_K", 0.0298, 1e-4, 0.0716704478}, {"q4_0", 0.0696, 1e-4, 0.167377581},
    {"q4_1", 0.0643, 1e-4, 0.154692959},   {"q4_K", 0.0589, 1e-4, 0.141669306}, {"q3_K", 0.1226, 1e-4, 0.294622841},
    {"q2_K", 0.2319, 1e-4, 0.55748188},
};

static float *read_rows(const char *rel, int64_t rows, int64_t row) {
    char path[512];
    size_t len = 0;
    unsigned char *p = kq_test_read_file(kq_test_shared_path(rel, path, sizeof(path)), &len);
    if (!p || len < (size_t)(rows * row) * 4) {
        free(p);
        return NULL;
    }
    float *x = malloc((size_t)(rows * row) * sizeof(float));
    for (int64_t i = 0; x && i < rows * row; i++) {
        const uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                           (uint32_t)p[4 * i + 3] << 24;
        memcpy(&x[i], &u, 4);
    }
    free(p);
    return x;
}

static void test_ggml_figures(const kq_tol_file *f) {
    const int64_t rows = 40, row = 4096;
    char path[512];
    float *x = read_rows("golden/input.f32", rows, row);
    if (!x) {
        KQ_SKIP("golden: %s not found", kq_test_shared_path("golden/input.f32", path, sizeof(path)));
        return;
    }
    for (size_t i = 0; i < sizeof(g_ggml) / sizeof(g_ggml[0]); i++) {
        const ggml_figure *g = &g_ggml[i];
        kq_tol_metrics m;
        char err[256] = "", rel[64];
        KQ_CHECK(kq_tol_measure(kq_type_by_name(g->type), KQ_SCALE_SEARCH, x, rows, row, &m, err, sizeof(err)) == 0,
                 "%s: %s", g->type, err);
        KQ_CHECK(fabs(m.rel_frob - g->rel_frob) <= 0.5 * g->decimals, "%s: rel_frob %.5f, ggml %.4f", g->type,
                 m.rel_frob, g->rel_frob);
        KQ_CHECK(near(m.rmse, g->rmse, 2e-8), "%s: rmse %.10g, ggml's README %.10g", g->type, m.rmse, g->rmse);
        /* ggml's own dequantized output measured the same way gives the same figure */
        snprintf(rel, sizeof(rel), "golden/%s.deq.f32", g->type);
        float *y = read_rows(rel, rows, row);
        kq_tol_metrics mg;
        if (y && kq_tol_metrics_compute(x, y, (size_t)(rows * row), &mg) == 0)
            KQ_CHECK(near(m.rel_frob, mg.rel_frob, 1e-12), "%s: %.9f vs ggml's dequantized %.9f", g->type, m.rel_frob,
                     mg.rel_frob);
        else KQ_SKIP("golden: %s not found", kq_test_shared_path(rel, path, sizeof(path)));
        free(y);
        double thr = 0.0;
        KQ_CHECK(kq_tol_file_threshold(f, g->type, KQ_TOL_INPUT_KEY, KQ_SCALE_SEARCH, &thr) == 0 && m.rel_frob <= thr &&
                     thr < 1.25 * m.rel_frob,
                 "%s: input threshold %g for %.5f", g->type, thr, m.rel_frob);
    }
    free(x);
}

/* ---- the entry point -------------------------------------------------------------------------------------- */

/* Runs the command with stdout and stderr sent to files. */
static int run_main(const char *dir, const char *const *args, char *out, char *errtxt, size_t len) {
    char *argv[24];
    int argc = 0;
    argv[argc++] = "tolerance";
    for (; *args && argc < 23; args++) argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    char po[512], pe[512];
    snprintf(po, sizeof(po), "%s/out.txt", dir);
    snprintf(pe, sizeof(pe), "%s/err.txt", dir);
    fflush(stdout);
    fflush(stderr);
    const int so = dup(1), se = dup(2);
    const int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0600), fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    const int rc = kq_check_tolerance_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    size_t n = 0;
    char *t = kq_test_read_file(po, &n);
    snprintf(out, len, "%.*s", (int)n, t ? t : "");
    free(t);
    t = kq_test_read_file(pe, &n);
    snprintf(errtxt, len, "%.*s", (int)n, t ? t : "");
    free(t);
    return rc;
}

static void test_json_output(const char *out) {
    cJSON *root = cJSON_Parse(out);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "results");
    KQ_CHECK(cJSON_IsArray(res) && cJSON_GetArraySize(res) == 6, "--json: 6 results (2 types x 3 dists)");
    const cJSON *r = NULL;
    cJSON_ArrayForEach(r, res) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(r, "rel_frob");
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(r, "threshold");
        KQ_CHECK(cJSON_IsString(st) && !strcmp(st->valuestring, "PASS") && cJSON_IsNumber(rf) && cJSON_IsNumber(th) &&
                     rf->valuedouble <= th->valuedouble,
                 "--json result fields");
    }
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(root, "lloyd_max_floors");
    KQ_CHECK(cJSON_IsArray(fl) && cJSON_GetArraySize(fl) == 2, "--json: floors of widths 4 and 8");
    cJSON_Delete(root);
}

static void test_entry_point(const char *dir) {
    static char out[1 << 16], err[1 << 16];
    char p1[512], p2[512], p3[512], p4[512];
    const char *help[] = {"--help", NULL};
    KQ_CHECK(run_main(dir, help, out, err, sizeof(out)) == 0 && strstr(out, "--tolerances"), "--help");
    const char *bad[] = {"--frobnicate", NULL};
    KQ_CHECK(run_main(dir, bad, out, err, sizeof(out)) == 2 && strstr(err, "--frobnicate"), "unknown option: %s", err);
    const char *badtype[] = {"--types", "q4_0,nosuch", NULL};
    KQ_CHECK(run_main(dir, badtype, out, err, sizeof(out)) == 2 && strstr(err, "nosuch"), "unknown type: %s", err);
    const char *nofile[] = {"--types", "q4_0", "--tolerances", "/nonexistent/t.json", NULL};
    KQ_CHECK(run_main(dir, nofile, out, err, sizeof(out)) == 2 && strstr(err, "/nonexistent/t.json"),
             "missing tolerances file: %s", err);
    const char *pass[] = {"--types", "Q4_0,q8_0", "--json", NULL};
    KQ_CHECK(run_main(dir, pass, out, err, sizeof(out)) == 0, "q4_0,q8_0 within the shipped thresholds: %s", err);
    test_json_output(out);
    write_tmp(dir, "tight.json",
              "{\"thresholds\": {\"q4_0\": {\"normal\": 0.01, \"student-t3\": 0.5, \"channels\": 0.5}}}", p1, sizeof(p1));
    const char *tight[] = {"--types", "q4_0", "--tolerances", p1, "--rows-per-dist", "2", NULL};
    KQ_CHECK(run_main(dir, tight, out, err, sizeof(out)) == 1 && strstr(out, "FAIL"), "a tight threshold fails with 1");
    write_tmp(dir, "other.json", "{\"thresholds\": {\"q8_0\": {\"normal\": 0.5}}}", p2, sizeof(p2));
    const char *lacking[] = {"--types", "q4_0", "--tolerances", p2, "--rows-per-dist", "2", NULL};
    KQ_CHECK(run_main(dir, lacking, out, err, sizeof(out)) == 2 && strstr(err, "q4_0"), "no threshold: 2 (%s)", err);
    write_tmp(dir, "odd.f32", "0123456789", p3, sizeof(p3));
    const char *oddin[] = {"--types", "q4_0", "--input", p3, "--row", "32", NULL};
    KQ_CHECK(run_main(dir, oddin, out, err, sizeof(out)) == 2 && strstr(err, p3), "input of 10 bytes: %s", err);
    const char *norow[] = {"--types", "q4_0", "--input", p3, NULL};
    KQ_CHECK(run_main(dir, norow, out, err, sizeof(out)) == 2, "--input without --row");
    const char *maxmode[] = {"--types", "i4_g64_asym", "--scale", "max", "--rows-per-dist", "4", NULL};
    KQ_CHECK(run_main(dir, maxmode, out, err, sizeof(out)) == 0, "--scale max uses its own thresholds: %s", err);
    const char *badscale[] = {"--scale", "median", NULL};
    KQ_CHECK(run_main(dir, badscale, out, err, sizeof(out)) == 2, "--scale median");
    /* an input row of 32 values: fine for q4_0 (then no "input" threshold: exit 2), skipped by q4_K */
    float ones[64];
    for (int i = 0; i < 64; i++) ones[i] = (float)(i % 5) - 2.0f;
    snprintf(p4, sizeof(p4), "%s/small.f32", dir);
    FILE *fp = fopen(p4, "wb");
    if (fp) {
        fwrite(ones, sizeof(float), 64, fp); /* the test hosts are little-endian */
        fclose(fp);
    }
    const char *small[] = {"--types", "q4_K", "--input", p4, "--row", "32", "--rows", "0:2", "--rows-per-dist", "2", NULL};
    KQ_CHECK(run_main(dir, small, out, err, sizeof(out)) == 0 && strstr(out, "SKIP"), "q4_K skips rows of 32: %s", out);
    const char *far[] = {"--types", "q4_0", "--input", p4, "--row", "32", "--rows", "1:3", NULL};
    KQ_CHECK(run_main(dir, far, out, err, sizeof(out)) == 2 && strstr(err, "1:3"), "--rows beyond the file: %s", err);
}

/* ---- --gguf: per-tensor error of a model's tensors ---------------------------------------------------- */

/* A tiny model: "exact.weight" (f32, rows of 64) holds whole numbers with one +-127 in every 32-block, so
 * q8_0 (d = 1) stores it exactly; "odd.weight" (f16, rows of 172: no 32-block type holds them, stored as
 * f16) holds values f16 represents exactly; "gauss.weight" (f32, rows of 256) is N(0,1); a 1-D norm. */
static int write_model(const char *path) {
    static float ex[64 * 4], ga[256 * 16], nm[64];
    static uint16_t od[172 * 3];
    for (int i = 0; i < 64 * 4; i++) ex[i] = i % 32 == 0 ? (i % 64 ? -127.0f : 127.0f) : (float)((i * 29) % 255 - 127);
    kq_tol_generate(KQ_TOL_NORMAL, 7, 16, 256, ga);
    for (int i = 0; i < 172 * 3; i++) od[i] = kq_f32_to_f16((float)(i % 50 - 25) * 0.25f);
    for (int i = 0; i < 64; i++) nm[i] = 1.0f;
    kq_gguf_writer *w = kq_gguf_writer_new();
    const int64_t ne_e[2] = {64, 4}, ne_o[2] = {172, 3}, ne_g[2] = {256, 16}, ne_n[1] = {64};
    char err[256];
    int bad = !w || kq_gguf_add_tensor(w, "exact.weight", 2, ne_e, KQ_TYPE_F32) < 0 ||
              kq_gguf_add_tensor(w, "odd.weight", 2, ne_o, KQ_TYPE_F16) < 0 ||
              kq_gguf_add_tensor(w, "gauss.weight", 2, ne_g, KQ_TYPE_F32) < 0 ||
              kq_gguf_add_tensor(w, "norm.weight", 1, ne_n, KQ_TYPE_F32) < 0 || kq_gguf_write_begin(w, path, err, sizeof(err));
    if (!bad)
        bad = kq_gguf_write_data(w, 0, ex, sizeof(ex), err, sizeof(err)) || kq_gguf_write_data(w, 1, od, sizeof(od), err, sizeof(err)) ||
              kq_gguf_write_data(w, 2, ga, sizeof(ga), err, sizeof(err)) || kq_gguf_write_data(w, 3, nm, sizeof(nm), err, sizeof(err)) ||
              kq_gguf_write_finish(w, err, sizeof(err));
    kq_gguf_writer_free(w);
    return bad ? -1 : 0;
}

static const cJSON *find_entry(const cJSON *arr, const char *tensor, const char *type) {
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, arr) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "tensor"), *ty = cJSON_GetObjectItemCaseSensitive(e, "type");
        if (cJSON_IsString(t) && cJSON_IsString(ty) && !strcmp(t->valuestring, tensor) && !strcmp(ty->valuestring, type))
            return e;
    }
    return NULL;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void test_gguf(const char *dir) {
    static char out[1 << 16], err[1 << 16];
    char path[600];
    snprintf(path, sizeof(path), "%s/model.gguf", dir);
    if (write_model(path) != 0) {
        KQ_CHECK(0, "cannot write the test GGUF %s", path);
        return;
    }
    const char *args[] = {"--gguf", path, "--types", "q8_0,q4_0", "--json", NULL};
    KQ_CHECK(run_main(dir, args, out, err, sizeof(out)) == 0, "--gguf --json exits 0: %s", err);
    cJSON *root = cJSON_Parse(out);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    KQ_CHECK(cJSON_GetArraySize(arr) == 6, "3 tensors x 2 types (the norm left out): %d", cJSON_GetArraySize(arr));
    KQ_CHECK(num(root, "tensors_not_measured") == 1, "one tensor not measured");
    const cJSON *e = find_entry(arr, "exact.weight", "q8_0");
    KQ_CHECK(e && num(e, "rel_frob") == 0.0 && num(e, "maxrel") == 0.0 && num(e, "cosine") == 1.0 &&
                 cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "snr_db")),
             "q8_0 stores whole numbers with amax 127 exactly: rel_frob 0, SNR +Inf (null)");
    e = find_entry(arr, "exact.weight", "q4_0");
    KQ_CHECK(e && num(e, "rel_frob") > 0.01, "q4_0 cannot store them exactly (%g)", num(e, "rel_frob"));
    e = find_entry(arr, "odd.weight", "q4_0");
    const cJSON *ck = cJSON_GetObjectItemCaseSensitive(e, "checked_type");
    KQ_CHECK(e && cJSON_IsString(ck) && !strcmp(ck->valuestring, "f16") &&
                 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "type_fallback")) && num(e, "rel_frob") == 0.0 &&
                 num(e, "bits_per_weight") == 16.0,
             "rows of 172: measured as the f16 fallback (exact for f16 values, 16 bits per weight)");
    e = find_entry(arr, "gauss.weight", "q4_0");
    KQ_CHECK(e && num(e, "rel_frob") > 0.05 && num(e, "rel_frob") < 0.2 && num(e, "bits_per_weight") == 4.5,
             "q4_0 on N(0,1) rows: a 4-bit error (%g), 4.5 bits per weight", num(e, "rel_frob"));
    /* the whole-model figure: sqrt(sum (rel * norm)^2 / sum norm^2) over the three tensors */
    double e2 = 0.0, x2 = 0.0;
    const cJSON *it = NULL;
    cJSON_ArrayForEach(it, arr) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(it, "type");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "q4_0")) continue;
        e2 += pow(num(it, "rel_frob") * num(it, "norm"), 2.0);
        x2 += pow(num(it, "norm"), 2.0);
    }
    const cJSON *sum = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "summary"), 1);
    KQ_CHECK(sum && near(num(sum, "rel_frob"), sqrt(e2 / x2), 1e-9) && num(sum, "fallbacks") == 1,
             "summary q4_0: whole-model rel_frob %g, expected %g", num(sum, "rel_frob"), sqrt(e2 / x2));
    cJSON_Delete(root);
    const char *text[] = {"--gguf", path, "--types", "q4_0", "--max-rows", "2", NULL};
    KQ_CHECK(run_main(dir, text, out, err, sizeof(out)) == 0 && strstr(out, "q4_0->f16") && strstr(out, "gauss.weight"),
             "text table names the fallback as q4_0->f16");
    const char *none[] = {"--gguf", "/nonexistent/m.gguf", "--types", "q4_0", NULL};
    KQ_CHECK(run_main(dir, none, out, err, sizeof(out)) == 2 && strstr(err, "/nonexistent/m.gguf"), "missing file: %s", err);
    const char *both[] = {"--gguf", path, "--calibrate", NULL};
    KQ_CHECK(run_main(dir, both, out, err, sizeof(out)) == 2, "--gguf with --calibrate is a usage error");
    const char *rows[] = {"--max-rows", "3", NULL};
    KQ_CHECK(run_main(dir, rows, out, err, sizeof(out)) == 2, "--max-rows without --gguf is a usage error");
    unlink(path);
}

int main(void) {
    test_nominal();
    test_metrics_scaled();
    test_metrics_small();
    test_floors();
    test_generators();
    char dir[] = "/tmp/kq_test_tolerance_XXXXXX";
    if (!mkdtemp(dir)) {
        KQ_CHECK(0, "mkdtemp");
        return kq_test_finish();
    }
    test_file_errors(dir);
    kq_tol_file *f = load_shipped();
    if (f) {
        test_file_complete(f);
        test_broken_quantizers(f);
        test_intn_modes(f);
        test_ggml_figures(f);
        kq_tol_file_free(f);
    }
    test_entry_point(dir);
    test_gguf(dir);
    static const char *const names[] = {"bad.json", "neg.json", "none.json", "ok.json", "tight.json", "other.json",
                                        "odd.f32", "small.f32", "out.txt", "err.txt"};
    char p[600];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return kq_test_finish();
}

#endif
