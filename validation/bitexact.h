/* kq check bitexact: proves that an implementation's traits table equals the reference's, bit for
 * bit, function by function (quantize_row bytes, dequantize_row floats, vec_dot floats).
 *
 * The check is a loop over two traits rows of the same type: kq_ref_traits(t) against
 * kq_traits(impl, t). The comparison itself is exposed (kq_bitexact_compare) so tests can feed it a
 * deliberately broken row and see the mismatch reported. */
#ifndef KQ_BITEXACT_H
#define KQ_BITEXACT_H

#include <stdint.h>

#include "kq_types.h"

/* Index of a function in the result arrays: the same order as kq_fn (kq_dispatch.h). */
enum { KQ_BX_QUANTIZE = 0, KQ_BX_DEQUANTIZE = 1, KQ_BX_VEC_DOT = 2, KQ_BX_NFN = 3 };

typedef struct {
    int quick;     /* fewer lengths (what `make test` runs under qemu) */
    uint64_t seed; /* every input is a function of (seed, input case, n, row) */
} kq_bitexact_options;

/* Where two results first differed. Values are bytes (quantize_row, width 1) or float bits (width 4). */
typedef struct {
    int64_t n;              /* row length */
    char input[32];         /* input case, e.g. "ties-q8" */
    char source[24];        /* "float-input", "reference-bytes", "random-bytes", "all-bit-patterns" */
    char where[96];         /* "row 1 byte 17", "nrc=3 row 2: against nrc=1", "wrote past the row end" */
    char expected_from[16]; /* "reference" or "nrc=1" (the implementation's own single-row result) */
    int width;
    uint32_t expected, got;
} kq_bitexact_mismatch;

typedef struct {
    int present;              /* the reference type has this function */
    unsigned long cases;      /* comparisons made */
    unsigned long mismatches; /* comparisons that differed */
    int has_first;
    kq_bitexact_mismatch first;
} kq_bitexact_fn_result;

/* Compares impl's three functions with ref's, which must describe the same type and layout.
 * vec_dot activations are quantized by the reference table's quantizer of ref->vec_dot_type.
 * Fills res[KQ_BX_QUANTIZE .. KQ_BX_VEC_DOT]; returns the total number of mismatching comparisons,
 * or -1 if the rows cannot be compared (different types, out of memory). */
long kq_bitexact_compare(const kq_type_traits *ref, const kq_type_traits *impl, const kq_bitexact_options *opt,
                         kq_bitexact_fn_result res[KQ_BX_NFN]);

/* The same comparison on given rows: a model's own weights (`kq check bitexact --gguf`). x holds
 * rows x n finite floats (n a valid row of ref's type). Every row is quantized by both; the
 * reference's bytes are dequantized by both; vec_dot runs on them (nrc 1..4, groups of 4 rows,
 * wrapping around when rows < 4) against an activation quantized by the reference from ANOTHER row
 * of x (the row after each group). label names the rows in mismatch reports (e.g. the tensor).
 * Fills res like kq_bitexact_compare; returns the mismatches, or -1 (different types, bad n, out of
 * memory). */
long kq_bitexact_compare_rows(const kq_type_traits *ref, const kq_type_traits *impl, const float *x, int64_t rows,
                              int64_t n, const char *label, kq_bitexact_fn_result res[KQ_BX_NFN]);

/* The type the converter stores a tensor of row length n in when `wanted` cannot hold such rows
 * (convert.h's fallback rule: q8_0 when n is a multiple of 32, else f16); wanted itself when it can. */
kq_type kq_bitexact_fallback_type(kq_type wanted, int64_t n);

/* `kq check bitexact ...` with argv[0] = "bitexact". Returns 0 if every comparison was identical,
 * 1 on any mismatch, 2 on a usage error (unknown option, type or implementation, or an
 * implementation this binary/CPU cannot run). With --gguf FILE the check runs on the model's own
 * 2-D F32/F16/BF16 tensors instead of generated inputs (same exit codes; 2 also for an unreadable file). */
int kq_check_bitexact_main(int argc, char **argv);

#endif
