/* kq check tolerance: quantize -> dequantize error against the F32 input.
 *
 * For each type and each input distribution (synthetic data drawn with GSL, and optionally rows of an
 * f32 file), rows are quantized with the reference quantizer, dequantized, and compared with the
 * input. The threshold metric is the relative Frobenius error ||y - x|| / ||x|| over all rows; the
 * thresholds live in validation/tolerances.json (cJSON). Beside the measured error the table shows
 * the nominal tolerance users quote for the type's bit width and, where no quantizer of that width
 * can reach it on N(0,1), the Lloyd-Max floor that proves so.
 *
 * Everything but the entry point needs GSL and cJSON (KQ_HAVE_GSL, KQ_HAVE_CJSON from the Makefile);
 * without them the entry point says so and returns 2. */
#ifndef KQ_TOLERANCE_H
#define KQ_TOLERANCE_H

#include <stddef.h>
#include <stdint.h>

#include "kq_ref.h"

#ifndef KQ_HAVE_GSL
#define KQ_HAVE_GSL 0
#endif
#ifndef KQ_HAVE_CJSON
#define KQ_HAVE_CJSON 0
#endif
#define KQ_TOL_AVAILABLE (KQ_HAVE_GSL && KQ_HAVE_CJSON)

/* `kq check tolerance ...` (argv[0] = "tolerance"). Returns 0 all within threshold, 1 some threshold
 * exceeded, 2 usage or input error (including a type/distribution the tolerances file has no
 * threshold for). */
int kq_check_tolerance_main(int argc, char **argv);

#define KQ_TOL_DEFAULT_FILE "validation/tolerances.json"
#define KQ_TOL_DEFAULT_SEED 20240611UL
#define KQ_TOL_DEFAULT_ROWS 16
#define KQ_TOL_ROW 4096
/* The rule the shipped thresholds follow (and --calibrate applies): measured * margin, rounded up. */
#define KQ_TOL_MARGIN 1.1
#define KQ_TOL_SIG_DIGITS 3
/* ... of the largest figure over this many consecutive seeds from the default one. */
#define KQ_TOL_CAL_SEEDS 8

/* Synthetic distributions. */
typedef enum {
    KQ_TOL_NORMAL = 0,   /* N(0, 1) */
    KQ_TOL_STUDENT_T3,   /* Student t, nu = 3 (heavy tails) */
    KQ_TOL_CHANNELS,     /* N(0,1) * per-column log-normal scale, a few columns x20 (LLM-like) */
    KQ_TOL_NDIST
} kq_tol_dist;

const char *kq_tol_dist_name(kq_tol_dist d); /* "normal", "student-t3", "channels" */
#define KQ_TOL_INPUT_KEY "input"              /* the distribution name of --input rows */

typedef struct {
    double rel_frob; /* ||y - x|| / ||x|| */
    double maxrel;   /* max|y - x| / max|x| */
    double rmse;     /* sqrt(mean((y - x)^2)) */
    double cosine;   /* <x, y> / (||x|| ||y||) */
    double snr_db;   /* 20 log10(||x|| / ||y - x||); +Inf when y == x */
    size_t n;        /* values compared */
} kq_tol_metrics;

/* Nominal width of a type for the quoted tolerances (q8_0, i8: 8; q6_K: 6; q5_x: 5; q4_x, i4: 4; q3_K: 3;
 * q2_K, i2: 2; i1: 1); 0 when no nominal figure applies (f16, bf16, f32, q8_1, q8_K). */
int kq_tol_nominal_bits(const kq_type_traits *t);
/* The relative error users quote for a width (8: 0.02, 6: 0.04, 5: 0.06, 4: 0.10, 3: 0.15, 2: 0.20,
 * 1: 0.50); 0 for any other width. */
double kq_tol_nominal(int bits);
/* 1 if the default run measures t: it has both a quantizer and a dequantizer and is not q8_1, q8_K
 * or f32. */
int kq_tol_default_type(const kq_type_traits *t);

#if KQ_TOL_AVAILABLE
/* Metrics of y against x (n values), in double precision. Returns 0, or -1 if n == 0. */
int kq_tol_metrics_compute(const float *x, const float *y, size_t n, kq_tol_metrics *out);

/* rows x row values of distribution d, from gsl_rng_mt19937 seeded from (seed, d). 0 or -1. */
int kq_tol_generate(kq_tol_dist d, unsigned long seed, int64_t rows, int64_t row, float *out);

/* Relative error sqrt(MSE) / sigma of the Lloyd-Max quantizer with 2^bits levels for N(0,1): the
 * least error ANY fixed scalar quantizer of that width reaches on a Gaussian row (per-group scales
 * adapt to each group and may go slightly below it). Computed by Lloyd's iteration with GSL's
 * Gaussian cdf/pdf; bits in 1..8, otherwise NaN. */
double kq_tol_lloyd_max_floor(int bits);

/* Quantizes each of the rows (row values each) of x with t, dequantizes into y (same shape) and
 * measures. INT-N types use kq_quantize_row_intn_ref with mode. Returns 0, or -1 with err (the row
 * length is not valid for t, t lacks a function, non-finite input, out of memory). */
int kq_tol_measure(const kq_type_traits *t, kq_scale_mode mode, const float *x, int64_t rows,
                   int64_t row, kq_tol_metrics *out, char *err, size_t errlen);

/* The tolerances file. */
typedef struct kq_tol_file kq_tol_file;
kq_tol_file *kq_tol_file_load(const char *path, char *err, size_t errlen);
void kq_tol_file_free(kq_tol_file *f);
/* The threshold of type name for distribution dist (KQ_SCALE_MAX looks in "thresholds_scale_max"
 * first for INT-N types). Returns 0 and *out, or -1 if the file has none. */
int kq_tol_file_threshold(const kq_tol_file *f, const char *type, const char *dist, kq_scale_mode mode,
                          double *out);
/* measured * KQ_TOL_MARGIN rounded up to KQ_TOL_SIG_DIGITS significant digits. */
double kq_tol_calibrated(double measured);
#endif

#endif
