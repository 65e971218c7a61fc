/* kq check tolerance: see tolerance.h. */
#include "tolerance.h"

#include <stdio.h>
#include <string.h>

/* ---- always built: the facts about types, and the entry point's stub ------------------------- */

static const char *const kq_tol_dist_names[KQ_TOL_NDIST] = {"normal", "student-t3", "channels"};

const char *kq_tol_dist_name(kq_tol_dist d) {
    return (d >= 0 && d < KQ_TOL_NDIST) ? kq_tol_dist_names[d] : "?";
}

int kq_tol_nominal_bits(const kq_type_traits *t) {
    if (!t) return 0;
    if (t->intn_bits) return t->intn_bits;
    switch (t->type) {
    case KQ_TYPE_Q8_0: return 8;
    case KQ_TYPE_Q6_K: return 6;
    case KQ_TYPE_Q5_0: case KQ_TYPE_Q5_1: case KQ_TYPE_Q5_K: return 5;
    case KQ_TYPE_Q4_0: case KQ_TYPE_Q4_1: case KQ_TYPE_Q4_K: return 4;
    case KQ_TYPE_Q3_K: return 3;
    case KQ_TYPE_Q2_K: return 2;
    default: return 0; /* f32/f16/bf16 are not quantizers users quote a figure for; q8_1/q8_K are activations */
    }
}

double kq_tol_nominal(int bits) {
    /* The rules of thumb people quote, indexed by width; 7 bits has none. */
    static const double nominal[9] = {0.0, 0.50, 0.20, 0.15, 0.10, 0.06, 0.04, 0.0, 0.02};
    return (bits >= 1 && bits <= 8) ? nominal[bits] : 0.0;
}

int kq_tol_default_type(const kq_type_traits *t) {
    if (!t || !t->quantize_row || !t->dequantize_row) return 0;
    return t->type != KQ_TYPE_Q8_1 && t->type != KQ_TYPE_Q8_K && t->type != KQ_TYPE_F32;
}

#if !KQ_TOL_AVAILABLE

int kq_check_tolerance_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "kq check tolerance: not in this build (needs GSL and cJSON; the static aarch64 cross "
                    "build leaves them out)\n");
    return 2;
}

#else

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>

#include <cjson/cJSON.h>
#include "kq_file.h"
#include <gsl/gsl_blas.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_vector.h>

#define KQ_TOL_PREFIX "kq check tolerance: "

/* "channels": log-normal spread of column scales (sigma of the log), and 1 outlier column in 512 at
 * 20x, roughly what LLM weight matrices show per input channel. */
#define KQ_TOL_CHANNEL_SIGMA 0.5
#define KQ_TOL_OUTLIER_EVERY 512
#define KQ_TOL_OUTLIER_SCALE 20.0

static void kq_tol_errf(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- metrics --------------------------------------------------------------------------------- */

static double kq_tol_ratio(double num, double den) {
    if (den > 0.0) return num / den;
    return num > 0.0 ? INFINITY : 0.0;
}

int kq_tol_metrics_compute(const float *x, const float *y, size_t n, kq_tol_metrics *out) {
    if (n == 0) return -1;
    double *buf = malloc(3 * n * sizeof(double));
    if (!buf) return -1;
    double *xd = buf, *yd = buf + n, *dd = buf + 2 * n;
    for (size_t i = 0; i < n; i++) {
        xd[i] = x[i];
        yd[i] = y[i];
        dd[i] = (double)y[i] - (double)x[i];
    }
    gsl_vector_const_view xv = gsl_vector_const_view_array(xd, n);
    gsl_vector_const_view yv = gsl_vector_const_view_array(yd, n);
    gsl_vector_const_view dv = gsl_vector_const_view_array(dd, n);
    /* dnrm2 scales as it goes, so no overflow or underflow in the sums of squares */
    const double nx = gsl_blas_dnrm2(&xv.vector), ny = gsl_blas_dnrm2(&yv.vector);
    const double nd = gsl_blas_dnrm2(&dv.vector);
    double dot = 0.0;
    gsl_blas_ddot(&xv.vector, &yv.vector, &dot);
    const double mx = fabs(xd[gsl_blas_idamax(&xv.vector)]);
    const double md = fabs(dd[gsl_blas_idamax(&dv.vector)]);
    free(buf);

    out->n = n;
    out->rel_frob = kq_tol_ratio(nd, nx);
    out->maxrel = kq_tol_ratio(md, mx);
    out->rmse = nd / sqrt((double)n);
    if (nx > 0.0 && ny > 0.0) out->cosine = dot / (nx * ny);
    else out->cosine = (nx == 0.0 && ny == 0.0) ? 1.0 : 0.0;
    out->snr_db = nd > 0.0 ? 20.0 * log10(nx / nd) : INFINITY;
    return 0;
}

/* ---- synthetic data ---------------------------------------------------------------------------- */

/* Per-column scales of "channels": log-normal, then a few distinct columns set to the outlier scale. */
static int kq_tol_channel_scales(gsl_rng *r, int64_t row, double *scale) {
    for (int64_t j = 0; j < row; j++) scale[j] = gsl_ran_lognormal(r, 0.0, KQ_TOL_CHANNEL_SIGMA);
    size_t k = (size_t)(row / KQ_TOL_OUTLIER_EVERY);
    if (k == 0) k = 1;
    size_t *all = malloc((size_t)row * sizeof(size_t)), *pick = malloc(k * sizeof(size_t));
    if (!all || !pick) {
        free(all);
        free(pick);
        return -1;
    }
    for (int64_t j = 0; j < row; j++) all[j] = (size_t)j;
    gsl_ran_choose(r, pick, k, all, (size_t)row, sizeof(size_t));
    for (size_t i = 0; i < k; i++) scale[pick[i]] = KQ_TOL_OUTLIER_SCALE;
    free(all);
    free(pick);
    return 0;
}

static int kq_tol_fill(kq_tol_dist d, gsl_rng *r, int64_t rows, int64_t row, float *out) {
    double *scale = NULL;
    if (d == KQ_TOL_CHANNELS) {
        scale = malloc((size_t)row * sizeof(double));
        if (!scale || kq_tol_channel_scales(r, row, scale) != 0) {
            free(scale);
            return -1;
        }
    }
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < row; j++) {
            double v;
            if (d == KQ_TOL_STUDENT_T3) v = gsl_ran_tdist(r, 3.0);
            else v = gsl_ran_gaussian(r, 1.0);
            if (scale) v *= scale[j];
            out[i * row + j] = (float)v;
        }
    }
    free(scale);
    return 0;
}

int kq_tol_generate(kq_tol_dist d, unsigned long seed, int64_t rows, int64_t row, float *out) {
    if (d < 0 || d >= KQ_TOL_NDIST || rows <= 0 || row <= 0) return -1;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) return -1;
    /* one stream per distribution, so changing the rows of one leaves the others as they were */
    gsl_rng_set(r, seed * 31UL + (unsigned long)d + 1UL);
    const int rc = kq_tol_fill(d, r, rows, row, out);
    gsl_rng_free(r);
    return rc;
}

/* ---- Lloyd-Max floor ----------------------------------------------------------------------------- */

static double kq_lm_pdf(double t) { return isinf(t) ? 0.0 : gsl_ran_ugaussian_pdf(t); }

/* P(a < X < b) for X ~ N(0,1), from the tail that keeps precision. */
static double kq_lm_prob(double a, double b) {
    if (a >= 0.0) return (isinf(b) ? 0.0 : -gsl_cdf_ugaussian_Q(b)) + gsl_cdf_ugaussian_Q(a);
    return (isinf(b) ? 1.0 : gsl_cdf_ugaussian_P(b)) - (isinf(a) ? 0.0 : gsl_cdf_ugaussian_P(a));
}

/* One Lloyd step: cells from the midpoints of c, then each c the mean of its cell. Returns the
 * largest move and the distortion 1 - sum p_i c_i^2 (valid because every c is its cell's mean). */
static double kq_lm_step(double *c, int levels, double *mse) {
    double move = 0.0, kept = 0.0, lo = -INFINITY;
    double *old = malloc((size_t)levels * sizeof(double));
    if (!old) return NAN;
    memcpy(old, c, (size_t)levels * sizeof(double));
    for (int i = 0; i < levels; i++) {
        const double hi = i + 1 < levels ? 0.5 * (old[i] + old[i + 1]) : INFINITY;
        const double p = kq_lm_prob(lo, hi);
        c[i] = (kq_lm_pdf(lo) - kq_lm_pdf(hi)) / p;
        kept += p * c[i] * c[i];
        if (fabs(c[i] - old[i]) > move) move = fabs(c[i] - old[i]);
        lo = hi;
    }
    free(old);
    *mse = 1.0 - kept;
    return move;
}

double kq_tol_lloyd_max_floor(int bits) {
    if (bits < 1 || bits > 8) return NAN;
    const int levels = 1 << bits;
    double *c = malloc((size_t)levels * sizeof(double));
    if (!c) return NAN;
    /* Start from the high-resolution optimum (point density ~ pdf^(1/3), i.e. N(0, 3) quantiles),
     * which is close, so Lloyd's iteration needs few steps even for 256 levels. */
    for (int i = 0; i < levels; i++) c[i] = sqrt(3.0) * gsl_cdf_ugaussian_Pinv((i + 0.5) / levels);
    double mse = NAN;
    /* Convergence is linear and slows with the level count (8 bits: ~16000 steps); stopping when no
     * level moves by 1e-7 leaves the floor within 1e-8 of its limit, far below the digits shown. */
    for (int it = 0; it < 100000; it++) {
        const double move = kq_lm_step(c, levels, &mse);
        if (!(move > 1e-7)) break;
    }
    free(c);
    return mse > 0.0 ? sqrt(mse) : NAN;
}

/* ---- quantize -> dequantize ---------------------------------------------------------------- */

static void kq_tol_quantize(const kq_type_traits *t, kq_scale_mode mode, const float *x, void *q, int64_t n) {
    if (t->intn_bits) kq_quantize_row_intn_ref(t, x, q, n, mode);
    else t->quantize_row(x, q, n);
}

static void kq_tol_dequantize(const kq_type_traits *t, const void *q, float *y, int64_t n) {
    if (t->intn_bits && !t->dequantize_row) kq_dequantize_row_intn_ref(t, q, y, n);
    else t->dequantize_row(q, y, n);
}

static int kq_tol_check_args(const kq_type_traits *t, const float *x, int64_t rows, int64_t row, char *err,
                             size_t errlen) {
    if (!t->dequantize_row && !t->intn_bits) {
        kq_tol_errf(err, errlen, "%s has no dequantizer", t->name);
        return -1;
    }
    if (!t->quantize_row && !t->intn_bits) {
        kq_tol_errf(err, errlen, "%s has no quantizer", t->name);
        return -1;
    }
    if (rows <= 0 || !kq_row_ok(t->type, row)) {
        kq_tol_errf(err, errlen, "%s cannot quantize rows of %lld values", t->name, (long long)row);
        return -1;
    }
    int64_t bad = 0;
    if (!kq_row_finite(x, rows * row, &bad)) {
        kq_tol_errf(err, errlen, "non-finite input at row %lld, column %lld", (long long)(bad / row),
                    (long long)(bad % row));
        return -1;
    }
    return 0;
}

int kq_tol_measure(const kq_type_traits *t, kq_scale_mode mode, const float *x, int64_t rows, int64_t row,
                   kq_tol_metrics *out, char *err, size_t errlen) {
    if (kq_tol_check_args(t, x, rows, row, err, errlen) != 0) return -1;
    void *q = malloc(kq_row_size(t->type, row));
    float *y = malloc((size_t)(rows * row) * sizeof(float));
    int rc = -1;
    if (q && y) {
        for (int64_t i = 0; i < rows; i++) {
            kq_tol_quantize(t, mode, x + i * row, q, row);
            kq_tol_dequantize(t, q, y + i * row, row);
        }
        rc = kq_tol_metrics_compute(x, y, (size_t)(rows * row), out);
    }
    if (rc != 0) kq_tol_errf(err, errlen, "out of memory");
    free(q);
    free(y);
    return rc;
}

double kq_tol_calibrated(double measured) {
    const double v = measured * KQ_TOL_MARGIN;
    if (!(v > 0.0) || isinf(v)) return v;
    const double unit = pow(10.0, floor(log10(v)) - (KQ_TOL_SIG_DIGITS - 1));
    /* the small slack keeps an exact 0.128 (as printed) from going up to 0.129 */
    return ceil(v / unit - 1e-9) * unit;
}

/* ---- the tolerances file ------------------------------------------------------------------------ */

struct kq_tol_file {
    cJSON *root;
};

static char *kq_tol_slurp(const char *path, size_t *len, char *err, size_t errlen) {
    char *buf;
    if (kq_read_whole_file(path, 0, &buf, len, err, errlen) == 0) return buf;
    char why[512];
    snprintf(why, sizeof(why), "%s", err);
    kq_tol_errf(err, errlen, "cannot read file %s", why);
    return NULL;
}

/* Every entry of a thresholds object must be {dist: non-negative number}. */
static int kq_tol_check_section(const cJSON *sec, const char *path, const char *name, char *err, size_t errlen) {
    if (!cJSON_IsObject(sec)) {
        kq_tol_errf(err, errlen, "tolerances file %s: \"%s\" must be an object", path, name);
        return -1;
    }
    const cJSON *type = NULL;
    cJSON_ArrayForEach(type, sec) {
        if (!cJSON_IsObject(type)) {
            kq_tol_errf(err, errlen, "tolerances file %s: %s.%s must be an object of thresholds", path, name,
                        type->string);
            return -1;
        }
        const cJSON *v = NULL;
        cJSON_ArrayForEach(v, type) {
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0.0)) {
                kq_tol_errf(err, errlen, "tolerances file %s: %s.%s.%s is not a non-negative number", path, name,
                            type->string, v->string);
                return -1;
            }
        }
    }
    return 0;
}

static int kq_tol_check_root(const cJSON *root, const char *path, char *err, size_t errlen) {
    if (!cJSON_IsObject(root)) {
        kq_tol_errf(err, errlen, "tolerances file %s: the top level must be an object", path);
        return -1;
    }
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(root, "thresholds");
    if (!thr) {
        kq_tol_errf(err, errlen, "tolerances file %s: no \"thresholds\" object", path);
        return -1;
    }
    if (kq_tol_check_section(thr, path, "thresholds", err, errlen) != 0) return -1;
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(root, "thresholds_scale_max");
    return mx ? kq_tol_check_section(mx, path, "thresholds_scale_max", err, errlen) : 0;
}

kq_tol_file *kq_tol_file_load(const char *path, char *err, size_t errlen) {
    size_t len = 0;
    char *text = kq_tol_slurp(path, &len, err, errlen);
    if (!text) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        const size_t at = end && end >= text ? (size_t)(end - text) : 0;
        kq_tol_errf(err, errlen, "tolerances file %s: invalid JSON near byte %zu", path, at);
        free(text);
        return NULL;
    }
    free(text);
    if (kq_tol_check_root(root, path, err, errlen) != 0) {
        cJSON_Delete(root);
        return NULL;
    }
    kq_tol_file *f = malloc(sizeof(*f));
    if (!f) {
        cJSON_Delete(root);
        kq_tol_errf(err, errlen, "out of memory");
        return NULL;
    }
    f->root = root;
    return f;
}

void kq_tol_file_free(kq_tol_file *f) {
    if (!f) return;
    cJSON_Delete(f->root);
    free(f);
}

static int kq_tol_lookup(const cJSON *sec, const char *type, const char *dist, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sec, type), dist);
    if (!cJSON_IsNumber(v)) return -1;
    *out = v->valuedouble;
    return 0;
}

int kq_tol_file_threshold(const kq_tol_file *f, const char *type, const char *dist, kq_scale_mode mode,
                          double *out) {
    if (!f || !type || !dist) return -1;
    const kq_type_traits *t = kq_type_by_name(type);
    if (mode == KQ_SCALE_MAX && t && t->intn_bits)
        return kq_tol_lookup(cJSON_GetObjectItemCaseSensitive(f->root, "thresholds_scale_max"), type, dist, out);
    return kq_tol_lookup(cJSON_GetObjectItemCaseSensitive(f->root, "thresholds"), type, dist, out);
}

/* ---- the command: options ------------------------------------------------------------------------ */

typedef struct {
    int json, calibrate, help;
    const char *types, *tol_path, *input, *rows_spec, *gguf;
    int64_t row, rows_per_dist, first, last; /* input rows [first, last) */
    int64_t max_rows;                        /* --gguf: rows of each tensor, 0 = all */
    unsigned long seed;
    kq_scale_mode mode;
} kq_tol_opts;

static void kq_tol_usage(FILE *f) {
    fprintf(f,
            "usage: kq check tolerance [--json] [--types LIST] [--tolerances FILE] [--seed S]\n"
            "                          [--rows-per-dist K] [--scale search|max]\n"
            "                          [--input FILE.f32 --row N [--rows A:B]] [--calibrate]\n"
            "       kq check tolerance --gguf MODEL.gguf [--types LIST] [--max-rows N] [--scale ...] [--json]\n"
            "Quantizes rows with each type's reference quantizer, dequantizes, and compares with the input.\n"
            "  --types LIST        comma-separated type names, any case (default: every type with a quantizer\n"
            "                      and a dequantizer except f32, q8_1, q8_K)\n"
            "  --tolerances FILE   thresholds (default %s, relative to the current directory)\n"
            "  --seed S            seed of the synthetic rows (default %lu; thresholds are calibrated on it)\n"
            "  --rows-per-dist K   rows of %d values per distribution (default %d)\n"
            "  --scale search|max  INT-N scale mode (default search)\n"
            "  --input FILE.f32    also measure little-endian f32 rows of N values (distribution \"%s\")\n"
            "  --rows A:B          only rows A .. B-1 of the input\n"
            "  --calibrate         print a tolerances file: the largest figure over seeds S .. S+%d, x %.2g,\n"
            "                      rounded up to %d significant digits\n"
            "  --gguf FILE         per-tensor error of a model's own 2-D f32/f16/bf16 tensors instead (all rows,\n"
            "                      or the first --max-rows N): rel_frob, max rel, cosine, SNR per tensor and type,\n"
            "                      and a whole-model figure per type; a row length a type cannot hold is measured\n"
            "                      as kq convert's fallback (q8_0 if a multiple of 32, else f16), shown as a->b.\n"
            "                      No thresholds apply (exit 0 unless an error).\n"
            "  --json              machine-readable output on stdout\n"
            "Distributions: normal N(0,1); student-t3; channels (N(0,1) x per-column log-normal scale, a few\n"
            "columns x%g). Threshold metric: relative Frobenius error ||y-x||/||x|| over all rows.\n"
            "Exit: 0 pass, 1 a threshold exceeded, 2 usage or input error.\n",
            KQ_TOL_DEFAULT_FILE, KQ_TOL_DEFAULT_SEED, KQ_TOL_ROW, KQ_TOL_DEFAULT_ROWS, KQ_TOL_INPUT_KEY,
            KQ_TOL_CAL_SEEDS - 1, KQ_TOL_MARGIN, KQ_TOL_SIG_DIGITS, KQ_TOL_OUTLIER_SCALE);
}

static int kq_tol_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int64_t)v;
    return 0;
}

static int kq_tol_parse_rows(const char *s, kq_tol_opts *o) {
    const char *colon = strchr(s, ':');
    char a[32];
    if (!colon || (size_t)(colon - s) >= sizeof(a)) return -1;
    memcpy(a, s, (size_t)(colon - s));
    a[colon - s] = '\0';
    if (kq_tol_parse_i64(a, 0, INT64_MAX, &o->first) != 0) return -1;
    if (kq_tol_parse_i64(colon + 1, 1, INT64_MAX, &o->last) != 0) return -1;
    return o->last > o->first ? 0 : -1;
}

/* Applies one option with its value; -1 and a message if the value is bad. */
static int kq_tol_option(kq_tol_opts *o, const char *name, const char *val) {
    int64_t v = 0;
    if (!strcmp(name, "--types")) o->types = val;
    else if (!strcmp(name, "--tolerances")) o->tol_path = val;
    else if (!strcmp(name, "--input")) o->input = val;
    else if (!strcmp(name, "--gguf")) o->gguf = val;
    else if (!strcmp(name, "--max-rows")) {
        if (kq_tol_parse_i64(val, 1, INT64_C(1) << 40, &o->max_rows) == 0) return 0;
        fprintf(stderr, KQ_TOL_PREFIX "--max-rows wants a positive integer, not '%s'\n", val);
        return -1;
    }
    else if (!strcmp(name, "--rows")) {
        o->rows_spec = val;
        if (kq_tol_parse_rows(val, o) == 0) return 0;
        fprintf(stderr, KQ_TOL_PREFIX "--rows wants A:B with 0 <= A < B, not '%s'\n", val);
        return -1;
    } else if (!strcmp(name, "--row") || !strcmp(name, "--rows-per-dist")) {
        if (kq_tol_parse_i64(val, 1, INT64_C(1) << 30, &v) != 0) {
            fprintf(stderr, KQ_TOL_PREFIX "%s wants a positive integer, not '%s'\n", name, val);
            return -1;
        }
        if (!strcmp(name, "--row")) o->row = v;
        else o->rows_per_dist = v;
    } else if (!strcmp(name, "--seed")) {
        if (kq_tol_parse_i64(val, 0, INT64_C(0xffffffff), &v) != 0) {
            fprintf(stderr, KQ_TOL_PREFIX "--seed wants an integer in [0, 2^32), not '%s'\n", val);
            return -1;
        }
        o->seed = (unsigned long)v;
    } else if (!strcmp(name, "--scale")) {
        if (!strcmp(val, "search")) o->mode = KQ_SCALE_SEARCH;
        else if (!strcmp(val, "max")) o->mode = KQ_SCALE_MAX;
        else {
            fprintf(stderr, KQ_TOL_PREFIX "--scale wants search or max, not '%s'\n", val);
            return -1;
        }
    } else {
        fprintf(stderr, KQ_TOL_PREFIX "unknown option '%s' (see --help)\n", name);
        return -1;
    }
    return 0;
}

static int kq_tol_flag(kq_tol_opts *o, const char *arg) {
    if (!strcmp(arg, "--json")) o->json = 1;
    else if (!strcmp(arg, "--calibrate")) o->calibrate = 1;
    else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) o->help = 1;
    else return 0;
    return 1;
}

static int kq_tol_parse(int argc, char **argv, kq_tol_opts *o) {
    memset(o, 0, sizeof(*o));
    o->tol_path = KQ_TOL_DEFAULT_FILE;
    o->seed = KQ_TOL_DEFAULT_SEED;
    o->rows_per_dist = KQ_TOL_DEFAULT_ROWS;
    o->mode = KQ_SCALE_SEARCH;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (kq_tol_flag(o, arg)) continue;
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, KQ_TOL_PREFIX "unexpected argument '%s' (see --help)\n", arg);
            return -1;
        }
        const char *eq = strchr(arg, '=');
        char name[32];
        const char *val;
        if (eq) {
            if ((size_t)(eq - arg) >= sizeof(name)) return fprintf(stderr, KQ_TOL_PREFIX "unknown option '%s'\n", arg), -1;
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", arg);
            if (i + 1 >= argc) return fprintf(stderr, KQ_TOL_PREFIX "%s needs a value\n", arg), -1;
            val = argv[++i];
        }
        if (kq_tol_option(o, name, val) != 0) return -1;
    }
    if ((o->row || o->rows_spec) && !o->input) return fprintf(stderr, KQ_TOL_PREFIX "--row/--rows need --input\n"), -1;
    if (o->input && !o->row) return fprintf(stderr, KQ_TOL_PREFIX "--input needs --row N (values per row)\n"), -1;
    if (o->gguf && (o->input || o->calibrate))
        return fprintf(stderr, KQ_TOL_PREFIX "--gguf goes with neither --input nor --calibrate\n"), -1;
    if (o->max_rows && !o->gguf) return fprintf(stderr, KQ_TOL_PREFIX "--max-rows needs --gguf\n"), -1;
    return 0;
}

/* ---- the command: types and data -------------------------------------------------------------- */

typedef struct {
    const kq_type_traits **v;
    size_t n;
} kq_tol_types;

static int kq_tol_add_named(kq_tol_types *ts, const char *name) {
    const kq_type_traits *t = kq_type_by_name(name);
    if (!t) return fprintf(stderr, KQ_TOL_PREFIX "unknown type '%s' (see kq types)\n", name), -1;
    if (!t->intn_bits && (!t->quantize_row || !t->dequantize_row))
        return fprintf(stderr, KQ_TOL_PREFIX "%s has no quantize/dequantize pair to check\n", t->name), -1;
    ts->v[ts->n++] = t;
    return 0;
}

static int kq_tol_pick_types(const char *list, kq_tol_types *ts) {
    const size_t count = kq_ref_traits_count();
    ts->n = 0;
    ts->v = malloc((count + (list ? strlen(list) : 0) + 1) * sizeof(*ts->v));
    if (!ts->v) return -1;
    if (!list) {
        for (size_t i = 0; i < count; i++)
            if (kq_tol_default_type(kq_ref_traits_at(i))) ts->v[ts->n++] = kq_ref_traits_at(i);
        return 0;
    }
    char *copy = strdup(list);
    if (!copy) return -1;
    int rc = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        char *e = tok + strlen(tok);
        while (e > tok && isspace((unsigned char)e[-1])) *--e = '\0';
        if (*tok) rc = kq_tol_add_named(ts, tok);
    }
    free(copy);
    if (rc == 0 && ts->n == 0) return fprintf(stderr, KQ_TOL_PREFIX "--types lists no type\n"), -1;
    return rc;
}

typedef struct {
    const char *name;
    float *x;
    int64_t rows, row;
} kq_tol_data;

static int kq_tol_read_input(const kq_tol_opts *o, kq_tol_data *s) {
    size_t len = 0;
    char err[512];
    unsigned char *bytes = (unsigned char *)kq_tol_slurp(o->input, &len, err, sizeof(err));
    if (!bytes) return fprintf(stderr, KQ_TOL_PREFIX "cannot read input %s\n", o->input), -1;
    const size_t rowbytes = (size_t)o->row * 4;
    int rc = -1;
    if (len == 0 || len % rowbytes) {
        fprintf(stderr, KQ_TOL_PREFIX "%s: %zu bytes is not a whole number of rows of %lld f32 values\n", o->input,
                len, (long long)o->row);
    } else if (o->rows_spec && (size_t)o->last > len / rowbytes) {
        fprintf(stderr, KQ_TOL_PREFIX "%s has %zu rows, --rows %s asks for more\n", o->input, len / rowbytes,
                o->rows_spec);
    } else {
        const int64_t first = o->rows_spec ? o->first : 0;
        s->rows = o->rows_spec ? o->last - o->first : (int64_t)(len / rowbytes);
        s->row = o->row;
        s->name = KQ_TOL_INPUT_KEY;
        s->x = malloc((size_t)(s->rows * s->row) * sizeof(float));
        const unsigned char *p = bytes + (size_t)first * rowbytes;
        for (int64_t i = 0; s->x && i < s->rows * s->row; i++, p += 4) {
            const uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&s->x[i], &u, 4); /* the file is little-endian whatever the host */
        }
        rc = s->x ? 0 : -1;
        if (rc) fprintf(stderr, KQ_TOL_PREFIX "out of memory reading %s\n", o->input);
    }
    free(bytes);
    return rc;
}

static int kq_tol_make_sets(const kq_tol_opts *o, kq_tol_data *sets, size_t *nsets) {
    *nsets = 0;
    for (int d = 0; d < KQ_TOL_NDIST; d++) {
        kq_tol_data *s = &sets[(*nsets)++];
        s->name = kq_tol_dist_name((kq_tol_dist)d);
        s->rows = o->rows_per_dist;
        s->row = KQ_TOL_ROW;
        s->x = malloc((size_t)(s->rows * s->row) * sizeof(float));
        if (!s->x || kq_tol_generate((kq_tol_dist)d, o->seed, s->rows, s->row, s->x) != 0)
            return fprintf(stderr, KQ_TOL_PREFIX "out of memory\n"), -1;
    }
    if (!o->input) return 0;
    if (kq_tol_read_input(o, &sets[*nsets]) != 0) return -1;
    int64_t bad = 0;
    const kq_tol_data *in = &sets[(*nsets)++];
    if (!kq_row_finite(in->x, in->rows * in->row, &bad))
        return fprintf(stderr, KQ_TOL_PREFIX "%s: non-finite value at row %lld, column %lld\n", o->input,
                       (long long)((o->rows_spec ? o->first : 0) + bad / in->row), (long long)(bad % in->row)), -1;
    return 0;
}

/* ---- the command: measuring --------------------------------------------------------------------- */

typedef enum { KQ_TOL_PASS, KQ_TOL_FAIL, KQ_TOL_NOTHR, KQ_TOL_SKIP } kq_tol_status;
static const char *const kq_tol_status_names[] = {"PASS", "FAIL", "NO-THRESHOLD", "SKIP"};

typedef struct {
    const kq_type_traits *t;
    const kq_tol_data *set;
    kq_scale_mode mode;
    kq_tol_metrics m;
    double threshold, bpw;
    kq_tol_status status;
    char why[160];
} kq_tol_result;

static void kq_tol_judge(kq_tol_result *r, const kq_tol_file *f) {
    if (!f) return; /* calibrating: nothing to judge against */
    if (kq_tol_file_threshold(f, r->t->name, r->set->name, r->mode, &r->threshold) != 0) {
        r->status = KQ_TOL_NOTHR;
        r->threshold = NAN;
        return;
    }
    r->status = r->m.rel_frob <= r->threshold ? KQ_TOL_PASS : KQ_TOL_FAIL;
}

static void kq_tol_run_one(kq_tol_result *r, const kq_tol_file *f) {
    r->bpw = kq_bits_per_weight(r->t->type, r->set->row);
    r->threshold = NAN;
    r->status = KQ_TOL_PASS;
    if (!kq_row_ok(r->t->type, r->set->row)) {
        snprintf(r->why, sizeof(r->why), "rows of %lld values are not valid for %s", (long long)r->set->row,
                 r->t->name);
        r->status = KQ_TOL_SKIP;
        return;
    }
    if (kq_tol_measure(r->t, r->mode, r->set->x, r->set->rows, r->set->row, &r->m, r->why, sizeof(r->why)) != 0) {
        r->status = KQ_TOL_SKIP;
        return;
    }
    kq_tol_judge(r, f);
}

/* ---- the command: output ------------------------------------------------------------------------ */

/* "within", "above", or "unreachable" when even the Lloyd-Max floor is above the nominal figure. */
static const char *kq_tol_vs_nominal(const kq_tol_result *r, const double *floors) {
    const int b = kq_tol_nominal_bits(r->t);
    const double nom = kq_tol_nominal(b);
    if (nom <= 0.0 || r->status == KQ_TOL_SKIP) return "";
    if (floors[b] > nom) return "unreachable";
    return r->m.rel_frob <= nom ? "within" : "above";
}

static void kq_tol_print_row(const kq_tol_result *r, const double *floors) {
    if (r->status == KQ_TOL_SKIP) {
        printf("%-14s %5s  %-10s  SKIP: %s\n", r->t->name, "", r->set->name, r->why);
        return;
    }
    const double nom = kq_tol_nominal(kq_tol_nominal_bits(r->t));
    char nomtxt[16] = "-";
    if (nom > 0.0) snprintf(nomtxt, sizeof(nomtxt), "%g%%", 100.0 * nom);
    char thr[16] = "none";
    if (r->status != KQ_TOL_NOTHR) snprintf(thr, sizeof(thr), "%.4g", r->threshold);
    printf("%-14s %5.2f  %-10s  %8.5f  %9s  %8.5f  %9.3e  %9.6f  %6.2f  %4s %-11s  %s\n", r->t->name, r->bpw,
           r->set->name, r->m.rel_frob, thr, r->m.maxrel, r->m.rmse, r->m.cosine, r->m.snr_db, nomtxt,
           kq_tol_vs_nominal(r, floors), kq_tol_status_names[r->status]);
}

/* The widths among the results that have a nominal figure, as a bit mask. */
static unsigned kq_tol_widths(const kq_tol_result *res, size_t n) {
    unsigned mask = 0;
    for (size_t i = 0; i < n; i++) {
        const int b = kq_tol_nominal_bits(res[i].t);
        if (kq_tol_nominal(b) > 0.0) mask |= 1u << b;
    }
    return mask;
}

static void kq_tol_print_floors(unsigned widths, const double *floors) {
    if (!widths) return;
    printf("\nNominal tolerances are what users quote per width; the threshold column is what this check enforces.\n"
           "Lloyd-Max floor: relative error of the optimal 2^b-level scalar quantizer for N(0,1), i.e. the least\n"
           "any fixed quantizer of the whole row can reach (per-group scaling with small groups adapts to each\n"
           "group and can go slightly below it):\n");
    for (int b = 1; b <= 8; b++) {
        if (!(widths & (1u << b))) continue;
        const double nom = kq_tol_nominal(b);
        printf("  %d bit%s: floor %.4f, nominal %g%%: %s\n", b, b > 1 ? "s" : " ", floors[b], 100.0 * nom,
               floors[b] > nom ? "cannot be met by ANY quantizer of this width on N(0,1)" : "reachable");
    }
}

static void kq_tol_print_text(const kq_tol_opts *o, const kq_tol_result *res, size_t n, const double *floors) {
    printf("kq check tolerance: seed %lu, %lld rows x %d per distribution, INT-N scale %s, thresholds %s\n",
           o->seed, (long long)o->rows_per_dist, KQ_TOL_ROW, o->mode == KQ_SCALE_MAX ? "max" : "search",
           o->tol_path);
    if (o->input)
        printf("input: %s, rows %s of %lld values\n", o->input, o->rows_spec ? o->rows_spec : "all",
               (long long)o->row);
    printf("%-14s %5s  %-10s  %8s  %9s  %8s  %9s  %9s  %6s  %-16s  %s\n", "type", "bpw", "dist", "rel_frob",
           "threshold", "maxrel", "rmse", "cosine", "snr_dB", "nominal", "status");
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && res[i].t != res[i - 1].t) printf("\n");
        kq_tol_print_row(&res[i], floors);
    }
    kq_tol_print_floors(kq_tol_widths(res, n), floors);
}

static void kq_tol_add_num(cJSON *obj, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(obj, key, v);
    else cJSON_AddNullToObject(obj, key); /* JSON has no Inf/NaN */
}

static cJSON *kq_tol_json_result(const kq_tol_result *r, const double *floors) {
    cJSON *o = cJSON_CreateObject();
    const int b = kq_tol_nominal_bits(r->t);
    cJSON_AddStringToObject(o, "type", r->t->name);
    cJSON_AddStringToObject(o, "dist", r->set->name);
    cJSON_AddNumberToObject(o, "rows", (double)r->set->rows);
    cJSON_AddNumberToObject(o, "row", (double)r->set->row);
    cJSON_AddStringToObject(o, "status", kq_tol_status_names[r->status]);
    if (r->status == KQ_TOL_SKIP) {
        cJSON_AddStringToObject(o, "reason", r->why);
        return o;
    }
    kq_tol_add_num(o, "bits_per_weight", r->bpw);
    kq_tol_add_num(o, "rel_frob", r->m.rel_frob);
    kq_tol_add_num(o, "threshold", r->threshold);
    kq_tol_add_num(o, "maxrel", r->m.maxrel);
    kq_tol_add_num(o, "rmse", r->m.rmse);
    kq_tol_add_num(o, "cosine", r->m.cosine);
    kq_tol_add_num(o, "snr_db", r->m.snr_db);
    kq_tol_add_num(o, "nominal_bits", b);
    kq_tol_add_num(o, "nominal", kq_tol_nominal(b) > 0.0 ? kq_tol_nominal(b) : NAN);
    cJSON_AddStringToObject(o, "vs_nominal", kq_tol_vs_nominal(r, floors));
    return o;
}

static cJSON *kq_tol_json_floors(unsigned widths, const double *floors) {
    cJSON *arr = cJSON_CreateArray();
    for (int b = 1; b <= 8; b++) {
        if (!(widths & (1u << b))) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "bits", b);
        kq_tol_add_num(o, "lloyd_max_rel", floors[b]);
        cJSON_AddNumberToObject(o, "nominal", kq_tol_nominal(b));
        cJSON_AddBoolToObject(o, "nominal_reachable", !(floors[b] > kq_tol_nominal(b)));
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static void kq_tol_print_json(const kq_tol_opts *o, const kq_tol_result *res, size_t n, const double *floors,
                              int code) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    cJSON_AddNumberToObject(root, "rows_per_dist", (double)o->rows_per_dist);
    cJSON_AddNumberToObject(root, "row", KQ_TOL_ROW);
    cJSON_AddStringToObject(root, "scale", o->mode == KQ_SCALE_MAX ? "max" : "search");
    cJSON_AddStringToObject(root, "tolerances", o->tol_path);
    if (o->input) cJSON_AddStringToObject(root, "input", o->input);
    cJSON *arr = cJSON_AddArrayToObject(root, "results");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, kq_tol_json_result(&res[i], floors));
    cJSON_AddItemToObject(root, "lloyd_max_floors", kq_tol_json_floors(kq_tol_widths(res, n), floors));
    cJSON_AddStringToObject(root, "floor_note",
                            "floor = optimal fixed 2^b-level quantizer of a whole N(0,1) row; per-group scaling "
                            "with small groups can go slightly below it");
    cJSON_AddNumberToObject(root, "exit_code", code);
    char *s = cJSON_Print(root);
    if (s) puts(s);
    free(s);
    cJSON_Delete(root);
}

/* --calibrate: a whole tolerances file. */
static void kq_tol_print_calibration(const kq_tol_opts *o, const kq_tol_result *res, size_t n) {
    char comment[1536];
    snprintf(comment, sizeof(comment),
             "Thresholds of `kq check tolerance` on the relative Frobenius error ||dequant(quant(x)) - x|| / ||x||"
             " over all rows of a distribution. Rule: the reference quantizer's figure x %.2g, rounded UP to %d "
             "significant digits, where the figure is the largest over seeds %lu .. %lu (%lld rows of %d per "
             "distribution; the default seed is the first: other seeds move heavy-tailed and whole-row figures "
             "by up to ~50%%). \"%s\" is ../shared/golden/input.f32 rows 0:40 (row 4096), where kq's figures are "
             "ggml's. thresholds_scale_max: INT-N with --scale max. A bug that costs one bit or rounds the "
             "wrong way about doubles the error and must fail. Regenerate only after checking the figures: "
             "kq check tolerance --calibrate --input ../shared/golden/input.f32 --row 4096 --rows 0:40",
             KQ_TOL_MARGIN, KQ_TOL_SIG_DIGITS, o->seed, o->seed + KQ_TOL_CAL_SEEDS - 1, (long long)o->rows_per_dist, KQ_TOL_ROW, KQ_TOL_INPUT_KEY);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "_comment", comment);
    cJSON *sec[2] = {cJSON_AddObjectToObject(root, "thresholds"),
                     cJSON_AddObjectToObject(root, "thresholds_scale_max")};
    for (size_t i = 0; i < n; i++) {
        if (res[i].status == KQ_TOL_SKIP) continue;
        cJSON *s = sec[res[i].mode == KQ_SCALE_MAX];
        cJSON *t = cJSON_GetObjectItemCaseSensitive(s, res[i].t->name);
        if (!t) t = cJSON_AddObjectToObject(s, res[i].t->name);
        char num[32];
        snprintf(num, sizeof(num), "%.*g", KQ_TOL_SIG_DIGITS, kq_tol_calibrated(res[i].m.rel_frob));
        cJSON_AddItemToObject(t, res[i].set->name, cJSON_CreateNumber(strtod(num, NULL)));
    }
    char *s = cJSON_Print(root);
    if (s) puts(s);
    free(s);
    cJSON_Delete(root);
}

/* ---- --gguf: per-tensor error of a model's own weights ------------------------------------------ */

#include "fp16.h"
#include "gguf.h"

typedef struct {
    const kq_gguf_tensor *t;
    const kq_type_traits *want, *chk; /* chk: what the converter stores (the fallback rule) */
    kq_tol_metrics m;
    double norm, bpw;                 /* ||x|| of the rows measured, for the whole-model figure */
    int64_t rows;
    char why[160];                    /* non-empty: not measured */
} kq_tol_tensor_result;

/* convert.h's rule: a row length the type cannot hold gets q8_0 (a multiple of 32) or f16. */
static const kq_type_traits *kq_tol_stored_type(const kq_type_traits *want, int64_t n) {
    if (kq_row_ok(want->type, n)) return want;
    return kq_ref_traits(n % KQ_QK == 0 ? KQ_TYPE_Q8_0 : KQ_TYPE_F16);
}

static int kq_tol_float_tensor(const kq_gguf_tensor *t) {
    return t->n_dims == 2 && (t->type == KQ_TYPE_F32 || t->type == KQ_TYPE_F16 || t->type == KQ_TYPE_BF16);
}

/* The first rows of a 2-D float tensor, widened to f32 as the converter does. */
static float *kq_tol_tensor_rows(const kq_gguf_tensor *t, int64_t rows) {
    const int64_t n = t->ne[0];
    float *x = malloc((size_t)(rows * n) * sizeof(float));
    if (!x) return NULL;
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < rows * n; i++) {
        if (t->type == KQ_TYPE_F32) {
            memcpy(&x[i], p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            x[i] = t->type == KQ_TYPE_F16 ? kq_f16_to_f32(h) : kq_bf16_to_f32(h);
        }
    }
    return x;
}

static double kq_tol_norm(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return sqrt(s);
}

static void kq_tol_gguf_print_row(const kq_tol_tensor_result *r) {
    char tname[48], shape[40];
    if (r->chk != r->want) snprintf(tname, sizeof(tname), "%s->%s", r->want->name, r->chk->name);
    else snprintf(tname, sizeof(tname), "%s", r->want->name);
    snprintf(shape, sizeof(shape), "%lldx%lld", (long long)r->t->ne[0], (long long)r->t->ne[1]);
    if (r->why[0]) {
        printf("%-28s %-10s %-18s SKIP: %s\n", r->t->name, shape, tname, r->why);
        return;
    }
    printf("%-28s %-10s %-18s %6.2f  %9.6f  %8.5f  %9.6f  %7.2f\n", r->t->name, shape, tname, r->bpw, r->m.rel_frob,
           r->m.maxrel, r->m.cosine, r->m.snr_db);
}

static cJSON *kq_tol_gguf_json_row(const kq_tol_tensor_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tensor", r->t->name);
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)r->t->ne[0]));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)r->t->ne[1]));
    cJSON_AddStringToObject(o, "source_type", kq_ref_traits(r->t->type)->name);
    cJSON_AddNumberToObject(o, "rows", (double)r->rows);
    cJSON_AddStringToObject(o, "type", r->want->name);
    cJSON_AddStringToObject(o, "checked_type", r->chk->name);
    cJSON_AddBoolToObject(o, "type_fallback", r->chk != r->want);
    if (r->why[0]) {
        cJSON_AddStringToObject(o, "status", "SKIP");
        cJSON_AddStringToObject(o, "reason", r->why);
        return o;
    }
    kq_tol_add_num(o, "bits_per_weight", r->bpw);
    kq_tol_add_num(o, "rel_frob", r->m.rel_frob);
    kq_tol_add_num(o, "maxrel", r->m.maxrel);
    kq_tol_add_num(o, "rmse", r->m.rmse);
    kq_tol_add_num(o, "cosine", r->m.cosine);
    kq_tol_add_num(o, "snr_db", r->m.snr_db);
    kq_tol_add_num(o, "norm", r->norm);
    return o;
}

/* Whole-model figure of one type: sqrt(sum ||y - x||^2 / sum ||x||^2) over its tensors. */
static void kq_tol_gguf_summary(const kq_tol_tensor_result *res, size_t n, const kq_type_traits *want, cJSON *arr) {
    double err2 = 0.0, x2 = 0.0, wbits = 0.0, weights = 0.0;
    int tensors = 0, fallbacks = 0;
    for (size_t i = 0; i < n; i++) {
        const kq_tol_tensor_result *r = &res[i];
        if (r->want != want || r->why[0]) continue;
        const double e = r->m.rel_frob * r->norm;
        err2 += e * e;
        x2 += r->norm * r->norm;
        const double w = (double)r->rows * (double)r->t->ne[0];
        wbits += r->bpw * w;
        weights += w;
        tensors++;
        fallbacks += r->chk != r->want;
    }
    const double rel = x2 > 0.0 ? sqrt(err2 / x2) : 0.0;
    if (arr) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", want->name);
        cJSON_AddNumberToObject(o, "tensors", tensors);
        cJSON_AddNumberToObject(o, "fallbacks", fallbacks);
        kq_tol_add_num(o, "rel_frob", rel);
        kq_tol_add_num(o, "snr_db", rel > 0.0 ? -20.0 * log10(rel) : INFINITY);
        kq_tol_add_num(o, "bits_per_weight", weights > 0.0 ? wbits / weights : NAN);
        cJSON_AddItemToArray(arr, o);
    } else {
        printf("%-18s %3d tensors (%d as a fallback type): whole-model rel_frob %.6f, SNR %.2f dB, %.3f bits/weight\n",
               want->name, tensors, fallbacks, rel, rel > 0.0 ? -20.0 * log10(rel) : INFINITY,
               weights > 0.0 ? wbits / weights : NAN);
    }
}

static void kq_tol_gguf_output(const kq_tol_opts *o, const kq_tol_types *ts, const kq_tol_tensor_result *res, size_t n,
                               int skipped) {
    if (!o->json) {
        printf("kq check tolerance: per-tensor quantize -> dequantize error of %s (reference quantizers, INT-N scale "
               "%s)\n", o->gguf, o->mode == KQ_SCALE_MAX ? "max" : "search");
        printf("%-28s %-10s %-18s %6s  %9s  %8s  %9s  %7s\n", "tensor", "ne0xne1", "type", "bpw", "rel_frob", "maxrel",
               "cosine", "snr_dB");
        for (size_t i = 0; i < n; i++) kq_tol_gguf_print_row(&res[i]);
        printf("\n%d tensors not measured (1-D or already quantized). \"a->b\": rows type a cannot hold, stored as b "
               "by kq convert.\n", skipped);
        for (size_t k = 0; k < ts->n; k++) kq_tol_gguf_summary(res, n, ts->v[k], NULL);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "gguf", o->gguf);
    cJSON_AddStringToObject(root, "scale", o->mode == KQ_SCALE_MAX ? "max" : "search");
    if (o->max_rows) cJSON_AddNumberToObject(root, "max_rows", (double)o->max_rows);
    cJSON *types = cJSON_AddArrayToObject(root, "types");
    for (size_t k = 0; k < ts->n; k++) cJSON_AddItemToArray(types, cJSON_CreateString(ts->v[k]->name));
    cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, kq_tol_gguf_json_row(&res[i]));
    cJSON_AddNumberToObject(root, "tensors_not_measured", skipped);
    cJSON *sum = cJSON_AddArrayToObject(root, "summary");
    for (size_t k = 0; k < ts->n; k++) kq_tol_gguf_summary(res, n, ts->v[k], sum);
    cJSON_AddStringToObject(root, "note", "rel_frob = ||y-x||/||x||, maxrel = max|y-x|/max|x|, snr_db = "
                                          "20 log10(||x||/||y-x||); summary rel_frob over all tensors of a type");
    char *s = cJSON_Print(root);
    if (s) puts(s);
    free(s);
    cJSON_Delete(root);
}

/* One tensor against every type: fills res[0 .. ts->n). Returns -1 only when out of memory. */
static int kq_tol_gguf_tensor(const kq_tol_opts *o, const kq_tol_types *ts, const kq_gguf_tensor *t,
                              kq_tol_tensor_result *res) {
    const int64_t n = t->ne[0];
    const int64_t rows = o->max_rows && o->max_rows < t->ne[1] ? o->max_rows : t->ne[1];
    float *x = kq_tol_tensor_rows(t, rows);
    if (!x) return -1;
    const double norm = kq_tol_norm(x, (size_t)(rows * n));
    for (size_t k = 0; k < ts->n; k++) {
        kq_tol_tensor_result *r = &res[k];
        memset(r, 0, sizeof(*r));
        r->t = t, r->want = ts->v[k], r->chk = kq_tol_stored_type(ts->v[k], n), r->rows = rows, r->norm = norm;
        r->bpw = kq_bits_per_weight(r->chk->type, n);
        if (kq_tol_measure(r->chk, o->mode, x, rows, n, &r->m, r->why, sizeof(r->why)) != 0 && !r->why[0])
            snprintf(r->why, sizeof(r->why), "cannot measure");
    }
    free(x);
    return 0;
}

static int kq_tol_run_gguf(const kq_tol_opts *o, const kq_tol_types *ts) {
    char err[512];
    kq_gguf *g = NULL;
    if (kq_gguf_open(o->gguf, &g, err, sizeof(err)) != 0) {
        fprintf(stderr, KQ_TOL_PREFIX "%s\n", err);
        return 2;
    }
    const int64_t nt = kq_gguf_n_tensors(g);
    kq_tol_tensor_result *res = calloc((size_t)(nt ? nt : 1) * ts->n, sizeof(*res));
    size_t n = 0;
    int skipped = 0, rc = res ? 0 : -1;
    for (int64_t i = 0; i < nt && rc == 0; i++) {
        const kq_gguf_tensor *t = kq_gguf_tensor_at(g, i);
        if (!kq_tol_float_tensor(t)) {
            skipped++;
            continue;
        }
        fprintf(stderr, KQ_TOL_PREFIX "%s\n", t->name); /* progress */
        rc = kq_tol_gguf_tensor(o, ts, t, res + n);
        n += ts->n;
    }
    int code = 2;
    if (rc != 0) fprintf(stderr, KQ_TOL_PREFIX "out of memory\n");
    else if (n == 0) fprintf(stderr, KQ_TOL_PREFIX "%s has no 2-D f32/f16/bf16 tensor\n", o->gguf);
    else {
        kq_tol_gguf_output(o, ts, res, n, skipped);
        code = 0;
    }
    free(res);
    kq_gguf_close(g);
    return code;
}

/* ---- the command ---------------------------------------------------------------------------------- */

/* Results in table order: type by type, each over every data set; calibration adds INT-N max mode. */
static kq_tol_result *kq_tol_run_all(const kq_tol_opts *o, const kq_tol_types *ts, const kq_tol_data *sets,
                                     size_t nsets, const kq_tol_file *f, size_t *n) {
    kq_tol_result *res = calloc(2 * ts->n * nsets, sizeof(*res));
    *n = 0;
    if (!res) return NULL;
    for (int pass = 0; pass < (o->calibrate ? 2 : 1); pass++) {
        for (size_t i = 0; i < ts->n; i++) {
            if (pass == 1 && !ts->v[i]->intn_bits) continue;
            for (size_t s = 0; s < nsets; s++) {
                kq_tol_result *r = &res[(*n)++];
                r->t = ts->v[i];
                r->set = &sets[s];
                r->mode = o->calibrate ? (pass ? KQ_SCALE_MAX : KQ_SCALE_SEARCH) : o->mode;
                kq_tol_run_one(r, f);
            }
        }
    }
    return res;
}

static int kq_tol_exit_code(const kq_tol_result *res, size_t n) {
    int fail = 0, missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (res[i].status == KQ_TOL_FAIL) fail++;
        if (res[i].status == KQ_TOL_NOTHR) {
            missing++;
            fprintf(stderr, KQ_TOL_PREFIX "no threshold for %s / %s%s\n", res[i].t->name, res[i].set->name,
                    res[i].mode == KQ_SCALE_MAX && res[i].t->intn_bits ? " (scale max)" : "");
        }
    }
    if (missing) return 2;
    return fail ? 1 : 0;
}

static int kq_tol_report(const kq_tol_opts *o, const kq_tol_result *res, size_t n) {
    if (o->calibrate) {
        kq_tol_print_calibration(o, res, n);
        return 0;
    }
    double floors[9] = {0};
    const unsigned widths = kq_tol_widths(res, n);
    for (int b = 1; b <= 8; b++) floors[b] = (widths & (1u << b)) ? kq_tol_lloyd_max_floor(b) : 0.0;
    const int code = kq_tol_exit_code(res, n);
    if (o->json) kq_tol_print_json(o, res, n, floors, code);
    else kq_tol_print_text(o, res, n, floors);
    if (!o->json && code == 1) printf("\nFAIL: some errors exceed their thresholds\n");
    return code;
}

/* Keeps in res the larger error of each (type, distribution, mode) that more also measured. */
static void kq_tol_fold_max(kq_tol_result *res, size_t n, const kq_tol_result *more, size_t nmore) {
    for (size_t j = 0; j < nmore; j++) {
        for (size_t i = 0; i < n; i++) {
            kq_tol_result *r = &res[i];
            if (r->t != more[j].t || r->mode != more[j].mode || strcmp(r->set->name, more[j].set->name)) continue;
            if (more[j].status == KQ_TOL_SKIP) r->status = KQ_TOL_SKIP;
            else if (more[j].m.rel_frob > r->m.rel_frob) r->m = more[j].m;
        }
    }
}

/* --calibrate: the figures of seeds seed+1 .. seed+KQ_TOL_CAL_SEEDS-1 too, since the heavy-tailed and
 * whole-row cases move with the extremes a seed happens to draw (the input file does not change). */
static int kq_tol_calibrate_more(const kq_tol_opts *o, const kq_tol_types *ts, kq_tol_result *res, size_t n) {
    int rc = 0;
    for (unsigned long k = 1; k < KQ_TOL_CAL_SEEDS && rc == 0; k++) {
        kq_tol_opts ok = *o;
        ok.seed = o->seed + k;
        ok.input = NULL;
        kq_tol_data sets[KQ_TOL_NDIST];
        memset(sets, 0, sizeof(sets));
        size_t nsets = 0, nmore = 0;
        kq_tol_result *more = NULL;
        rc = kq_tol_make_sets(&ok, sets, &nsets);
        if (rc == 0) more = kq_tol_run_all(&ok, ts, sets, nsets, NULL, &nmore);
        if (rc == 0 && !more) rc = -1;
        if (more) kq_tol_fold_max(res, n, more, nmore);
        free(more);
        for (size_t i = 0; i < KQ_TOL_NDIST; i++) free(sets[i].x);
    }
    return rc;
}

static int kq_tol_run(const kq_tol_opts *o, const kq_tol_types *ts, kq_tol_data *sets, size_t nsets) {
    char err[512] = "";
    kq_tol_file *f = NULL;
    if (!o->calibrate && !(f = kq_tol_file_load(o->tol_path, err, sizeof(err)))) {
        fprintf(stderr, KQ_TOL_PREFIX "%s\n", err);
        return 2;
    }
    size_t n = 0;
    kq_tol_result *res = kq_tol_run_all(o, ts, sets, nsets, f, &n);
    if (res && o->calibrate && kq_tol_calibrate_more(o, ts, res, n) != 0) {
        free(res);
        res = NULL;
    }
    int code = 2;
    if (res) code = kq_tol_report(o, res, n);
    else fprintf(stderr, KQ_TOL_PREFIX "out of memory\n");
    free(res);
    kq_tol_file_free(f);
    return code;
}

int kq_check_tolerance_main(int argc, char **argv) {
    kq_tol_opts o;
    if (kq_tol_parse(argc, argv, &o) != 0) return 2;
    if (o.help) {
        kq_tol_usage(stdout);
        return 0;
    }
    kq_tol_types ts = {NULL, 0};
    if (o.gguf) {
        const int code = kq_tol_pick_types(o.types, &ts) == 0 ? kq_tol_run_gguf(&o, &ts) : 2;
        free(ts.v);
        fflush(stdout);
        return code;
    }
    kq_tol_data sets[KQ_TOL_NDIST + 1];
    memset(sets, 0, sizeof(sets));
    size_t nsets = 0;
    int code = 2;
    if (kq_tol_pick_types(o.types, &ts) == 0 && kq_tol_make_sets(&o, sets, &nsets) == 0)
        code = kq_tol_run(&o, &ts, sets, nsets);
    for (size_t i = 0; i < KQ_TOL_NDIST + 1; i++) free(sets[i].x);
    free(ts.v);
    fflush(stdout);
    return code;
}

#endif
