/* kq: the type system shared by every layer.
 *
 * This header is the contract between the scalar reference (the specification), the optimized
 * kernels and everything above them. Block layouts are ggml's (so GGUF files we write load in
 * llama.cpp); kq's own INT-N types are described in docs/formats.md.
 *
 * Semantics of the three kernel functions (every implementation, every type):
 *  - quantize_row(x, y, n): n floats of ONE row -> the row's bytes (kq_row_size(type, n) bytes).
 *  - dequantize_row(y, x, n): the reverse.
 *  - vec_dot(n, s, w, w_stride, a, nrc): for r in [0, nrc): s[r] = dot(row r of w, a), where row r
 *    starts at (const char *)w + r * w_stride, both rows hold n elements, w is in this type and a is
 *    in this type's vec_dot_type. The result of each row does not depend on nrc.
 * n must satisfy kq_row_ok(type, n). Quantizers are defined for finite input only (the NaN/Inf
 * policy: callers check with kq_row_finite() and reject; see docs/formats.md). f32/f16/bf16
 * conversions handle NaN/Inf/denormals exactly.
 *
 * THE REDUCTION CONTRACT (DESIGN.md), which makes vec_dot bit-identical in every implementation:
 *  - 32-element families (q4_0 q4_1 q5_0 q5_1 q8_0 q8_1 and INT-N): the unit is the ACTIVATION block
 *    b (32 elements). Its integer dot isum_b (int32, exact) gives one float contribution c_b:
 *      sym   (vs q8_0): c_b = (float)isum_b * (d_w * d_a)
 *      asym  (vs q8_1): c_b = (float)isum_b * (d_w * d_a) + m_w * s_a
 *    d_w, m_w: the weight block's (or INT-N group's / row's) fp16 scale and offset widened to f32;
 *    d_a, s_a: the activation block's fp16 d and s widened to f32. For q4_0/q5_0/q8_0/INT-N sym, isum
 *    uses the signed weight code (u - 8, u - 16, qs, u - 2^(b-1); 1-bit sym: 2u - 1); for
 *    q4_1/q5_1/INT-N asym the unsigned code u.
 *  - K-quants (vs q8_K, d_a = q8_K's float d), per super-block b of 256, with sums over sub-blocks j:
 *      q2_K: c_b = (d_w * d_a) * (float)isum - (dmin_w * d_a) * (float)imin,
 *            isum = sum_j (scales[j] & 15) * dot_j (16 sub-blocks of 16), imin = sum_j (scales[j] >> 4) * bsums[j]
 *      q3_K: c_b = (d_w * d_a) * (float)isum, isum = sum_j (sc_j - 32) * dot_j, q in [-4, 3]
 *      q4_K, q5_K: c_b = (d_w * d_a) * (float)isum - (dmin_w * d_a) * (float)imin,
 *            isum = sum_j sc_j * dot_j (8 sub-blocks of 32), imin = sum_j m_j * (bsums[2j] + bsums[2j+1])
 *      q6_K: c_b = (d_w * d_a) * (float)isum, isum = sum_j scales[j] * dot_j (16 of 16), q in [-32, 31]
 *      q8_K: c_b = (d_w * d_a) * (float)isum
 *    Every product/difference is rounded as written (no FMA: build with -ffp-contract=off).
 *  - Contributions accumulate in 8 float lanes starting at +0.0f: unit b into lane b % 8, in order of b;
 *    then s = kq_reduce8(lanes) = ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)).
 *  - f32.f32, f16.f16, bf16.bf16 (widened to f32): element i into lane i % 16 with fmaf; then
 *    m_j = l_j + l_(j+8) for j < 8, then kq_reduce8(m).
 */
#ifndef KQ_TYPES_H
#define KQ_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef uint16_t kq_half; /* IEEE binary16 bits */
typedef uint16_t kq_bf16; /* bfloat16 bits */

/* ggml's ids for ggml's types (a GGUF tensor's type field). */
typedef enum {
    KQ_TYPE_F32 = 0,
    KQ_TYPE_F16 = 1,
    KQ_TYPE_Q4_0 = 2,
    KQ_TYPE_Q4_1 = 3,
    KQ_TYPE_Q5_0 = 6,
    KQ_TYPE_Q5_1 = 7,
    KQ_TYPE_Q8_0 = 8,
    KQ_TYPE_Q8_1 = 9,
    KQ_TYPE_Q2_K = 10,
    KQ_TYPE_Q3_K = 11,
    KQ_TYPE_Q4_K = 12,
    KQ_TYPE_Q5_K = 13,
    KQ_TYPE_Q6_K = 14,
    KQ_TYPE_Q8_K = 15,
    KQ_TYPE_BF16 = 30,
    /* kq's INT-N types: KQ_INTN_ID(bits, group code, asym), far beyond ggml's ids (docs/formats.md). */
    KQ_TYPE_INTN_FIRST = 1000,
    KQ_TYPE_INTN_LAST = 1099,
    KQ_TYPE_NONE = -1
} kq_type;

/* INT-N id: 1000 + 10*bits + 2*gcode + asym, gcode 0 = whole row, 1 = g32, 2 = g64, 3 = g128. */
#define KQ_INTN_ID(bits, gcode, asym) ((kq_type)(1000 + 10 * (bits) + 2 * (gcode) + (asym)))

#define KQ_QK 32   /* elements of a 32-block (q4_0 ... q8_1, INT-N activation unit) */
#define KQ_QK_K 256 /* elements of a K-quant super-block */
#define KQ_K_SCALE_SIZE 12

/* ---- ggml block layouts (little-endian; sizes asserted) ---- */
typedef struct { kq_half d; uint8_t qs[KQ_QK / 2]; } kq_block_q4_0;
typedef struct { kq_half d; kq_half m; uint8_t qs[KQ_QK / 2]; } kq_block_q4_1;
typedef struct { kq_half d; uint8_t qh[4]; uint8_t qs[KQ_QK / 2]; } kq_block_q5_0;
typedef struct { kq_half d; kq_half m; uint8_t qh[4]; uint8_t qs[KQ_QK / 2]; } kq_block_q5_1;
typedef struct { kq_half d; int8_t qs[KQ_QK]; } kq_block_q8_0;
typedef struct { kq_half d; kq_half s; int8_t qs[KQ_QK]; } kq_block_q8_1; /* s = half(d * sum(qs)) */
typedef struct { uint8_t scales[KQ_QK_K / 16]; uint8_t qs[KQ_QK_K / 4]; kq_half d; kq_half dmin; } kq_block_q2_K;
typedef struct { uint8_t hmask[KQ_QK_K / 8]; uint8_t qs[KQ_QK_K / 4]; uint8_t scales[12]; kq_half d; } kq_block_q3_K;
typedef struct { kq_half d; kq_half dmin; uint8_t scales[KQ_K_SCALE_SIZE]; uint8_t qs[KQ_QK_K / 2]; } kq_block_q4_K;
typedef struct { kq_half d; kq_half dmin; uint8_t scales[KQ_K_SCALE_SIZE]; uint8_t qh[KQ_QK_K / 8]; uint8_t qs[KQ_QK_K / 2]; } kq_block_q5_K;
typedef struct { uint8_t ql[KQ_QK_K / 2]; uint8_t qh[KQ_QK_K / 4]; int8_t scales[KQ_QK_K / 16]; kq_half d; } kq_block_q6_K;
typedef struct { float d; int8_t qs[KQ_QK_K]; int16_t bsums[KQ_QK_K / 16]; } kq_block_q8_K;

_Static_assert(sizeof(kq_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(kq_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(kq_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(kq_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(kq_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(kq_block_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(kq_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(kq_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(kq_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(kq_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(kq_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(kq_block_q8_K) == 292, "q8_K block");

typedef void (*kq_quantize_row_fn)(const float *x, void *y, int64_t n);
typedef void (*kq_dequantize_row_fn)(const void *x, float *y, int64_t n);
typedef void (*kq_vec_dot_fn)(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc);

/* One row per type. In the reference table every function is set (q8_1 has no dequantizer, as in
 * ggml: NULL). Optimized tables are built by kq_dispatch from overrides over this one. */
typedef struct {
    kq_type type;
    const char *name;       /* lower case: "q4_0", "q4_K" keeps ggml's capital K, "i4_g128_sym" */
    int block_elems;        /* 1 (f32/f16/bf16), 32, 256; INT-N: the group, or 32 for whole-row types */
    size_t block_bytes;     /* bytes of one block */
    size_t row_overhead;    /* bytes at the start of each row before its blocks (INT-N whole-row header) */
    kq_type vec_dot_type;   /* activation type of vec_dot (KQ_TYPE_NONE: no vec_dot) */
    kq_quantize_row_fn quantize_row;
    kq_dequantize_row_fn dequantize_row;
    kq_vec_dot_fn vec_dot;
    int intn_bits;          /* INT-N only: 1, 2, 4, 8 (0 for others) */
    int intn_group;         /* INT-N only: 32, 64, 128, or 0 = whole row */
    int intn_asym;          /* INT-N only: 1 asymmetric (x = d*u + m), 0 symmetric */
} kq_type_traits;

/* The reference table (reference/traits.c: ggml's types, then the INT-N types of reference/intn.c). */
size_t kq_ref_traits_count(void);
const kq_type_traits *kq_ref_traits_at(size_t i);           /* i < kq_ref_traits_count() */

const kq_type_traits *kq_ref_traits(kq_type t);             /* NULL if unknown */
const kq_type_traits *kq_type_by_name(const char *name);    /* case-insensitive; NULL if unknown */
int kq_type_is_intn(kq_type t);
size_t kq_row_size(kq_type t, int64_t n);                   /* bytes of one row of n elements */
/* 1 if n elements form a valid row of t (n > 0, a multiple of the block / group / 32). */
int kq_row_ok(kq_type t, int64_t n);
int kq_row_finite(const float *x, int64_t n, int64_t *first_bad); /* 1 if all finite */
double kq_bits_per_weight(kq_type t, int64_t n);

/* The 8-lane reduction of the contract. */
static inline float kq_reduce8(const float l[8]) {
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

#endif
