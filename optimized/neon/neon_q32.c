/* kq NEON (baseline ARMv8-A): quantize/dequantize rows of the 32-element ggml formats.
 *
 * Every byte equals the reference (reference/quants.c). The rounding of each step is the
 * reference's: d and 1/d in float with IEEE division, codes from the float 1/d before d is rounded
 * to half, q8 codes by FCVTAS (= roundf, ties away), 4/5-bit codes by FCVTZU (truncation, NaN and
 * negatives to 0, saturating) then a clamp, and d rounded to half by FCVTN (round to nearest even,
 * as kq_f32_to_f16 for finite values). No fused multiply-add anywhere (-ffp-contract=off).
 *
 * quantize_row_q8_0/q8_1 quantize the activations of every matmul, so they are the hot path, tuned
 * for the tsv110 pipes (llvm-mca's model): groups of four blocks, their four scales in one float32x4
 * (one FDIV for d, one for 1/d, one FCVTN), software-pipelined so that no divide is waited for, the
 * work kept off the two FSU pipes that bound the loop wherever the integer and load/store pipes can
 * do it, and the codes narrowed by TRN1 + TBL. That fast path needs every scale d of the four blocks
 * to be a normal float: then |x * id| <= 127.0001 and the non-saturating narrow is exact. Groups
 * with a tiny or zero maximum (half d = 0) take the per-block path, which saturates exactly as the
 * reference does. */
#include <arm_neon.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "fp16.h"
#include "kq_neon.h"
#include "kq_neon_common.h"
#include "kq_ref.h"

/* ---- small helpers -------------------------------------------------------------------------- */

static inline void kq_store_half(void *p, uint16_t h) { memcpy(p, &h, 2); }

/* f32 -> fp16 by FCVTN (round to nearest even): identical to kq_f32_to_f16. */
static inline uint16_t kq_f32_to_half(float f) {
    return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(f))), 0);
}

static inline void kq_load32(const float *x, float32x4_t v[8]) {
    for (int k = 0; k < 8; k++) v[k] = vld1q_f32(x + 4 * k);
}

/* max |x| of one block, as a float32x4 of partial maxima (the exact maximum is its lane maximum) */
static inline float32x4_t kq_absmax_parts(const float32x4_t v[8]) {
    const float32x4_t a0 = vmaxq_f32(vabsq_f32(v[0]), vabsq_f32(v[1]));
    const float32x4_t a1 = vmaxq_f32(vabsq_f32(v[2]), vabsq_f32(v[3]));
    const float32x4_t a2 = vmaxq_f32(vabsq_f32(v[4]), vabsq_f32(v[5]));
    const float32x4_t a3 = vmaxq_f32(vabsq_f32(v[6]), vabsq_f32(v[7]));
    return vmaxq_f32(vmaxq_f32(a0, a1), vmaxq_f32(a2, a3));
}

/* Saturating int32 -> int8 of 16 lanes (the reference's clamp to [-128, 127]). */
static inline int8x16_t kq_narrow_sat(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    const int16x8_t lo = vqmovn_high_s32(vqmovn_s32(a), b);
    const int16x8_t hi = vqmovn_high_s32(vqmovn_s32(c), d);
    return vqmovn_high_s16(vqmovn_s16(lo), hi);
}

/* ---- q8_0 / q8_1 ---------------------------------------------------------------------------- */

/* One block by the reference's scalar formulas, saturating: every d, including 0 and subnormal. */
static float kq_q8_block(const float *x, int8_t *qs) {
    float32x4_t v[8];
    kq_load32(x, v);
    const float amax = vmaxvq_f32(kq_absmax_parts(v));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int32x4_t q[8];
    for (int k = 0; k < 8; k++) q[k] = vcvtaq_s32_f32(vmulq_n_f32(v[k], id));
    vst1q_s8(qs, kq_narrow_sat(q[0], q[1], q[2], q[3]));
    vst1q_s8(qs + 16, kq_narrow_sat(q[4], q[5], q[6], q[7]));
    return d;
}

static void kq_q8_0_block(const float *x, kq_block_q8_0 *yb) { yb->d = kq_f32_to_f16(kq_q8_block(x, yb->qs)); }

/* q8_1: s = half((float)sum(qs) * d), with the float d. */
static void kq_q8_1_block(const float *x, kq_block_q8_1 *yb) {
    const float d = kq_q8_block(x, yb->qs);
    const int8x16_t c0 = vld1q_s8(yb->qs), c1 = vld1q_s8(yb->qs + 16);
    const int32_t sum = vaddlvq_s16(vpadalq_s8(vpaddlq_s8(c0), c1));
    yb->d = kq_f32_to_f16(d);
    yb->s = kq_f32_to_f16((float)sum * d);
}

/* A group of four blocks with a tiny or zero scale: block by block, saturating. */
static __attribute__((noinline, cold)) void kq_q8_group_slow(int q8_1, const float *x, void *y) {
    for (int b = 0; b < 4; b++) {
        if (q8_1)
            kq_q8_1_block(x + 32 * b, (kq_block_q8_1 *)y + b);
        else
            kq_q8_0_block(x + 32 * b, (kq_block_q8_0 *)y + b);
    }
}

/* Narrowing int32 codes to bytes: on tsv110 TRN1 is one micro-op where UZP1/XTN take two. TRN1 of
 * the halfwords, then of the bytes, keeps the low byte of every lane but interleaves the four
 * registers: codes 0..15 end up in the order below, which one single-register TBL undoes. */
static const uint8_t kq_q8_trn_order[16] = {0, 4, 8, 12, 2, 6, 10, 14, 1, 5, 9, 13, 3, 7, 11, 15};

static inline int8x16_t kq_trn_bytes(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d, uint8x16_t order) {
    const int16x8_t ab = vtrn1q_s16(vreinterpretq_s16_s32(a), vreinterpretq_s16_s32(b));
    const int16x8_t cd = vtrn1q_s16(vreinterpretq_s16_s32(c), vreinterpretq_s16_s32(d));
    return vqtbl1q_s8(vtrn1q_s8(vreinterpretq_s8_s16(ab), vreinterpretq_s8_s16(cd)), order);
}

/* 16 codes roundf(x[j] * id) by FCVTAS (ties away), id = lane `lane` of id4; no saturation: the
 * fast path only runs with |x * id| <= 127.0001 (lane must be a constant, hence macros) */
#define KQ_Q8_CVT(x, id4, lane) vcvtaq_s32_f32(vmulq_laneq_f32(vld1q_f32(x), (id4), (lane)))
#define KQ_Q8_CODES16(x, id4, lane, order)                                                         \
    kq_trn_bytes(KQ_Q8_CVT((x), id4, lane), KQ_Q8_CVT((x) + 4, id4, lane),                         \
                 KQ_Q8_CVT((x) + 8, id4, lane), KQ_Q8_CVT((x) + 12, id4, lane), order)

static inline float32x4_t kq_absmax_block(const float *x) {
    float32x4_t v[8];
    kq_load32(x, v);
    return kq_absmax_parts(v);
}

static inline uint32_t kq_max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* The four block maxima from their partial maxima m[b], on the integer side: this loop is bound by
 * the two FSU pipes and the integer pipes are idle. The partial maxima are non-negative floats
 * (never NaN: quantizers take finite rows), ordered as their bits. The asm statements keep the
 * round trip through memory (no FSU micro-op, unlike UMOV/INS). */
static inline float32x4_t kq_lane_max4(const float32x4_t m[4]) {
    uint32_t w[16], a[4];
    for (int b = 0; b < 4; b++) vst1q_u32(w + 4 * b, vreinterpretq_u32_f32(m[b]));
    __asm__ volatile("" : "+m"(w));
    for (int b = 0; b < 4; b++)
        a[b] = kq_max_u32(kq_max_u32(w[4 * b], w[4 * b + 1]), kq_max_u32(w[4 * b + 2], w[4 * b + 3]));
    __asm__ volatile("" : "+m"(a));
    return vreinterpretq_f32_u32(vld1q_u32(a));
}

static inline float32x4_t kq_absmax4(const float *x) {
    const float32x4_t m[4] = {kq_absmax_block(x), kq_absmax_block(x + 32), kq_absmax_block(x + 64),
                              kq_absmax_block(x + 96)};
    return kq_lane_max4(m);
}

/* half(v) of four floats (FCVTN: as kq_f32_to_f16), to the integer side through memory */
static inline uint64_t kq_half4_bits(float32x4_t v) {
    uint16_t hb[4];
    uint64_t h;
    vst1_u16(hb, vreinterpret_u16_f16(vcvt_f16_f32(v)));
    __asm__ volatile("" : "+m"(hb));
    memcpy(&h, hb, 8);
    return h;
}

/* The fast path needs every d of the group to be a normal float, so that |x * id| <= 127.0001
 * and the codes need no saturation; a non-zero half d (d > 2^-25) guarantees it. d >= 0, so each
 * half is at most 0x7c00, and adding 0x7fff sets its bit 15 exactly when it is not zero. */
static inline int kq_q8_any_zero_half(uint64_t h) {
    return (~(h + 0x7fff7fff7fff7fffull) & 0x8000800080008000ull) != 0;
}

/* The scales of one group: id = 1/d and d in float, and the four halves of d. */
typedef struct {
    float32x4_t id, d;
    uint64_t h;
} kq_q8_scales;

typedef struct {
    uint8x16_t order;
    float32x4_t one, k127;
} kq_q8_consts;

static inline kq_q8_scales kq_q8_scales_of(float32x4_t d, kq_q8_consts k) {
    const kq_q8_scales s = {vdivq_f32(k.one, d), d, kq_half4_bits(d)};
    return s;
}

/* Block b of a fast group: 32 codes, d (and for q8_1 the int16 partial sums of the codes). */
#define KQ_Q8_FAST_BLOCK(q8_1, xq, yq, s, b, order, sums)                                            \
    do {                                                                                            \
        const int8x16_t c0_ = KQ_Q8_CODES16((xq) + 32 * (b), (s).id, b, order);                     \
        const int8x16_t c1_ = KQ_Q8_CODES16((xq) + 32 * (b) + 16, (s).id, b, order);                \
        const uint16_t h_ = (uint16_t)((s).h >> (16 * (b)));                                        \
        if (q8_1) {                                                                                 \
            kq_block_q8_1 *y_ = (kq_block_q8_1 *)(yq) + (b);                                        \
            (sums)[b] = vpadalq_s8(vpaddlq_s8(c0_), c1_);                                           \
            kq_store_half(&y_->d, h_);                                                              \
            vst1q_s8(y_->qs, c0_);                                                                  \
            vst1q_s8(y_->qs + 16, c1_);                                                             \
        } else {                                                                                    \
            kq_block_q8_0 *y_ = (kq_block_q8_0 *)(yq) + (b);                                        \
            kq_store_half(&y_->d, h_);                                                              \
            vst1q_s8(y_->qs, c0_);                                                                  \
            vst1q_s8(y_->qs + 16, c1_);                                                             \
        }                                                                                           \
    } while (0)

/* q8_1's s = half((float)sum * d) of a group is stored one stage late: the sums are ready at the end
 * of their stage and the conversion chain after them is long; in the next stage it does not hold up
 * retirement. The group's d waits in memory (a third d live across stages would cost a register
 * copy), the sums in a register; the first stage stores into a scratch group. */
typedef struct {
    int16x8_t sums; /* the group's code sums, block b in lanes 2b and 2b+1 */
    kq_block_q8_1 *y;
} kq_q8_1_tail;

static inline void kq_q8_1_store_s(kq_q8_1_tail t, float td[4]) {
    __asm__ volatile("" : "+m"(*(float(*)[4])td));
    /* |sum| <= 32 * 127 fits int16 */
    const uint64_t hs = kq_half4_bits(vmulq_f32(vcvtq_f32_s32(vpaddlq_s16(t.sums)), vld1q_f32(td)));
    for (int b = 0; b < 4; b++) kq_store_half(&t.y[b].s, (uint16_t)(hs >> (16 * b)));
}

/* The code sums of a slow group, from its stored codes (the deferred s then equals the slow one) */
static __attribute__((noinline, cold)) int16x8_t kq_q8_1_group_sums(const kq_block_q8_1 *y) {
    int16x8_t s[4];
    for (int b = 0; b < 4; b++) s[b] = vpadalq_s8(vpaddlq_s8(vld1q_s8(y[b].qs)), vld1q_s8(y[b].qs + 16));
    return vpaddq_s16(vpaddq_s16(s[0], s[1]), vpaddq_s16(s[2], s[3]));
}

/* One stage of the pipeline below: the codes of the group at xq with its scales sq, interleaved
 * block by block with the maxima of the group at xa (into *amax, which held the maxima that give
 * *d_out); the scales of the next group from d_in; for q8_1 the s of the group before. */
static inline __attribute__((always_inline)) void kq_q8_stage(const int q8_1, const float *xq, void *yq, const float *xa,
                                                              kq_q8_scales sq, float32x4_t d_in, float32x4_t *amax,
                                                              float32x4_t *d_out, kq_q8_scales *s_out,
                                                              kq_q8_1_tail *tail, float td[4], kq_q8_consts k) {
    *s_out = kq_q8_scales_of(d_in, k);
    *d_out = vdivq_f32(*amax, k.k127);
    float32x4_t m[4];
    int16x8_t sums[4];
    if (__builtin_expect(kq_q8_any_zero_half(sq.h), 0)) {
        if (q8_1) kq_q8_1_store_s(*tail, td);
        kq_q8_group_slow(q8_1, xq, yq);
        if (q8_1) tail->sums = kq_q8_1_group_sums(yq);
        for (int b = 0; b < 4; b++) m[b] = kq_absmax_block(xa + 32 * b);
    } else {
        m[0] = kq_absmax_block(xa);
        KQ_Q8_FAST_BLOCK(q8_1, xq, yq, sq, 0, k.order, sums);
        if (q8_1) kq_q8_1_store_s(*tail, td);
        m[1] = kq_absmax_block(xa + 32);
        KQ_Q8_FAST_BLOCK(q8_1, xq, yq, sq, 1, k.order, sums);
        m[2] = kq_absmax_block(xa + 64);
        KQ_Q8_FAST_BLOCK(q8_1, xq, yq, sq, 2, k.order, sums);
        m[3] = kq_absmax_block(xa + 96);
        KQ_Q8_FAST_BLOCK(q8_1, xq, yq, sq, 3, k.order, sums);
        if (q8_1) tail->sums = vpaddq_s16(vpaddq_s16(sums[0], sums[1]), vpaddq_s16(sums[2], sums[3]));
    }
    if (q8_1) {
        vst1q_f32(td, sq.d);
        tail->y = yq;
    }
    *amax = kq_lane_max4(m);
}

/* Software pipeline over groups of four blocks. tsv110 retires in order from a 128-entry ROB,
 * about half a group's instructions, so a divide must find its operand long computed or it holds
 * up retirement: the stage of group g computes the maxima of group g+4, d of group g+2 (from the
 * maxima computed two stages before), id and half d of group g+1 (from the d of the stage before),
 * and the codes of group g. Two stages per iteration with even/odd variables, so that no register
 * is copied. Near the end of the row the look-ahead reads the last group again (unused). */
static inline __attribute__((always_inline)) void kq_q8_row(const int q8_1, const float *x, void *y, int64_t n) {
    const size_t bsz = q8_1 ? sizeof(kq_block_q8_1) : sizeof(kq_block_q8_0);
    char *out = y;
    const int64_t nb = n / KQ_QK, ng = nb / 4;
    kq_q8_consts k = {vld1q_u8(kq_q8_trn_order), vdupq_n_f32(1.0f), vdupq_n_f32(127.0f)};
    /* opaque to the compiler: under register pressure it reloads them (a load) rather than
     * rebuilding them with FMOV/MOVI (an FSU micro-op) */
    __asm__("" : "+w"(k.order), "+w"(k.one), "+w"(k.k127));
    if (ng > 0) {
        const float *xl = x + (ng - 1) * 4 * KQ_QK;
#define KQ_GROUP_X(g) ((g) < ng ? x + (g) * 4 * KQ_QK : xl)
        kq_q8_scales s_e = kq_q8_scales_of(vdivq_f32(kq_absmax4(x), k.k127), k), s_o;
        float32x4_t d_e, d_o = vdivq_f32(kq_absmax4(KQ_GROUP_X(1)), k.k127);
        float32x4_t amax_e = kq_absmax4(KQ_GROUP_X(2)), amax_o = kq_absmax4(KQ_GROUP_X(3));
        kq_block_q8_1 scratch[4];
        float td[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        kq_q8_1_tail tail = {vdupq_n_s16(0), scratch};
        int64_t g = 0;
        for (; g + 1 < ng; g += 2) {
            if (q8_1)
                KQ_MCA_BEGIN("quantize_row_q8_1:256");
            else
                KQ_MCA_BEGIN("quantize_row_q8_0:256");
            const float *xg = x + g * 4 * KQ_QK;
            kq_q8_stage(q8_1, xg, out + 4 * g * bsz, KQ_GROUP_X(g + 4), s_e, d_o, &amax_e, &d_e, &s_o, &tail, td, k);
            kq_q8_stage(q8_1, xg + 4 * KQ_QK, out + (4 * g + 4) * bsz, KQ_GROUP_X(g + 5), s_o, d_e, &amax_o, &d_o, &s_e,
                        &tail, td, k);
            KQ_MCA_END();
        }
        if (g < ng) kq_q8_stage(q8_1, xl, out + 4 * g * bsz, xl, s_e, d_o, &amax_e, &d_e, &s_o, &tail, td, k);
        if (q8_1) kq_q8_1_store_s(tail, td);
#undef KQ_GROUP_X
    }
    for (int64_t i = 4 * ng; i < nb; i++) {
        if (q8_1)
            kq_q8_1_block(x + i * KQ_QK, (kq_block_q8_1 *)(void *)(out + i * bsz));
        else
            kq_q8_0_block(x + i * KQ_QK, (kq_block_q8_0 *)(void *)(out + i * bsz));
    }
}

static void kq_quantize_row_q8_0_neon(const float *x, void *y, int64_t n) { kq_q8_row(0, x, y, n); }
static void kq_quantize_row_q8_1_neon(const float *x, void *y, int64_t n) { kq_q8_row(1, x, y, n); }

/* ---- q4_0 / q5_0 / q4_1 / q5_1 quantize ------------------------------------------------------- */

/* The element of largest magnitude, sign kept, the first one on ties; +0 for an all-zero block
 * (the reference's strict comparison from amax = 0). */
static float kq_signed_absmax_neon(const float *x, const float32x4_t v[8]) {
    const float amax = vmaxvq_f32(kq_absmax_parts(v));
    if (amax == 0.0f) return 0.0f;
    for (int j = 0; j < KQ_QK; j++)
        if (fabsf(x[j]) == amax) return x[j];
    return 0.0f; /* unreachable for finite input */
}

/* The reference's min/max keep the first element on ties: that decides the sign of a zero. */
static float kq_first_equal(const float *x, float v) {
    for (int j = 0; j < KQ_QK; j++)
        if (x[j] == v) return x[j];
    return v;
}

static void kq_min_max_neon(const float *x, const float32x4_t v[8], float *min, float *max) {
    float32x4_t lo = vminq_f32(v[0], v[1]), hi = vmaxq_f32(v[0], v[1]);
    for (int k = 2; k < 8; k += 2) {
        lo = vminq_f32(lo, vminq_f32(v[k], v[k + 1]));
        hi = vmaxq_f32(hi, vmaxq_f32(v[k], v[k + 1]));
    }
    *min = vminvq_f32(lo);
    *max = vmaxvq_f32(hi);
    if (*min == 0.0f) *min = kq_first_equal(x, *min);
    if (*max == 0.0f) *max = kq_first_equal(x, *max);
}

/* 32 truncated codes: min(FCVTZU(v), hi) where v = (x + pre) * id + bias, in the reference's order
 * of roundings (sym: pre = 0, x * id + bias; asym: (x - min) * id + 0.5). */
static void kq_trunc_codes(const float32x4_t v[8], float pre, int sub, float id, float bias, uint32_t hi,
                           uint8x16_t u[2]) {
    const float32x4_t vb = vdupq_n_f32(bias), vp = vdupq_n_f32(pre);
    const uint32x4_t vh = vdupq_n_u32(hi);
    uint32x4_t q[8];
    for (int k = 0; k < 8; k++) {
        const float32x4_t t = sub ? vsubq_f32(v[k], vp) : v[k];
        q[k] = vminq_u32(vcvtq_u32_f32(vaddq_f32(vmulq_n_f32(t, id), vb)), vh);
    }
    for (int h = 0; h < 2; h++) {
        const uint16x8_t a = vcombine_u16(vmovn_u32(q[4 * h]), vmovn_u32(q[4 * h + 1]));
        const uint16x8_t b = vcombine_u16(vmovn_u32(q[4 * h + 2]), vmovn_u32(q[4 * h + 3]));
        u[h] = vcombine_u8(vmovn_u16(a), vmovn_u16(b));
    }
}

/* qs[j] = u[j] & 15 | u[j + 16] << 4 */
static inline void kq_store_nibbles(const uint8x16_t u[2], uint8_t *qs) {
    const uint8x16_t m = vdupq_n_u8(15);
    vst1q_u8(qs, vorrq_u8(vandq_u8(u[0], m), vshlq_n_u8(vandq_u8(u[1], m), 4)));
}

/* qh bit j = bit 4 of u[j], as a little-endian u32 */
static inline void kq_store_high_bits(const uint8x16_t u[2], uint8_t *qh) {
    static const int8_t sh[16] = {0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7};
    const int8x16_t s = vld1q_s8(sh);
    const uint8x16_t one = vdupq_n_u8(1);
    const uint8x16_t t0 = vshlq_u8(vandq_u8(vshrq_n_u8(u[0], 4), one), s);
    const uint8x16_t t1 = vshlq_u8(vandq_u8(vshrq_n_u8(u[1], 4), one), s);
    uint8x16_t p = vpaddq_u8(t0, t1);
    p = vpaddq_u8(p, p);
    p = vpaddq_u8(p, p);
    vst1q_lane_u32((uint32_t *)(void *)qh, vreinterpretq_u32_u8(p), 0);
}

static inline float kq_inverse(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

/* q4_0 / q5_0: d = max / -half_range, code = trunc(x * id + half_range + 0.5) */
static float kq_sym_block(const float *x, int half_range, uint8x16_t u[2]) {
    float32x4_t v[8];
    kq_load32(x, v);
    const float d = kq_signed_absmax_neon(x, v) / (float)-half_range;
    kq_trunc_codes(v, 0.0f, 0, kq_inverse(d), (float)half_range + 0.5f, (uint32_t)(2 * half_range - 1), u);
    return d;
}

/* q4_1 / q5_1: d = (max - min) / (levels - 1), code = trunc((x - min) * id + 0.5) */
static float kq_asym_block(const float *x, int levels, uint8x16_t u[2], float *min) {
    float32x4_t v[8];
    float max;
    kq_load32(x, v);
    kq_min_max_neon(x, v, min, &max);
    const float d = (max - *min) / (float)(levels - 1);
    kq_trunc_codes(v, *min, 1, kq_inverse(d), 0.5f, (uint32_t)(levels - 1), u);
    return d;
}

/* A row of q4_0 / q5_0 (sym: d) or q4_1 / q5_1 (asym: d, m), with qh for q5: the fields in block
 * order d [m] [qh] qs, qs the last 16 bytes and qh the 4 before them (checked below). */
KQ_AI void kq_quantize_row_q45(const float *x, void *y, int64_t n, size_t bsz, int levels, int asym, int q5) {
    uint8x16_t u[2];
    float min;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        uint8_t *b = (uint8_t *)y + (size_t)i * bsz;
        if (asym) {
            kq_store_half(b, kq_f32_to_half(kq_asym_block(x + i * KQ_QK, levels, u, &min)));
            kq_store_half(b + 2, kq_f32_to_half(min));
        } else {
            kq_store_half(b, kq_f32_to_half(kq_sym_block(x + i * KQ_QK, levels / 2, u)));
        }
        kq_store_nibbles(u, b + bsz - 16);
        if (q5) kq_store_high_bits(u, b + bsz - 20);
    }
}
_Static_assert(offsetof(kq_block_q4_0, qs) == sizeof(kq_block_q4_0) - 16 && offsetof(kq_block_q4_1, m) == 2 &&
                   offsetof(kq_block_q4_1, qs) == sizeof(kq_block_q4_1) - 16 &&
                   offsetof(kq_block_q5_0, qh) == sizeof(kq_block_q5_0) - 20 &&
                   offsetof(kq_block_q5_1, m) == 2 && offsetof(kq_block_q5_1, qh) == sizeof(kq_block_q5_1) - 20,
               "q4/q5 block layout");

static void kq_quantize_row_q4_0_neon(const float *x, void *y, int64_t n) { kq_quantize_row_q45(x, y, n, sizeof(kq_block_q4_0), 16, 0, 0); }
static void kq_quantize_row_q5_0_neon(const float *x, void *y, int64_t n) { kq_quantize_row_q45(x, y, n, sizeof(kq_block_q5_0), 32, 0, 1); }
static void kq_quantize_row_q4_1_neon(const float *x, void *y, int64_t n) { kq_quantize_row_q45(x, y, n, sizeof(kq_block_q4_1), 16, 1, 0); }
static void kq_quantize_row_q5_1_neon(const float *x, void *y, int64_t n) { kq_quantize_row_q45(x, y, n, sizeof(kq_block_q5_1), 32, 1, 1); }

/* ---- dequantize ------------------------------------------------------------------------------- */

/* the 32 5-bit codes of a q5 block: nibbles | (qh bit j) << 4 */
static inline void kq_unpack_5bit_neon(const uint8_t *qs, const uint8_t *qh, uint8x16_t u[2]) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t vbit = vld1q_u8(bit);
    const uint8x16_t v = vld1q_u8(qs);
    const uint8x8_t h = vreinterpret_u8_u32(vld1_dup_u32((const uint32_t *)(const void *)qh));
    /* bytes 0,1 of qh for elements 0..15, bytes 2,3 for 16..31 */
    const uint8x16_t h01 = vcombine_u8(vdup_lane_u8(h, 0), vdup_lane_u8(h, 1));
    const uint8x16_t h23 = vcombine_u8(vdup_lane_u8(h, 2), vdup_lane_u8(h, 3));
    const uint8x16_t m16 = vdupq_n_u8(16);
    u[0] = vorrq_u8(vandq_u8(v, vdupq_n_u8(15)), vandq_u8(vtstq_u8(h01, vbit), m16));
    u[1] = vorrq_u8(vshrq_n_u8(v, 4), vandq_u8(vtstq_u8(h23, vbit), m16));
}

static void kq_dequantize_row_q4_0_neon(const void *x, float *y, int64_t n) {
    const kq_block_q4_0 *b = x;
    const int8x16_t k8 = vdupq_n_s8(8);
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_half_to_f32(kq_load_half(&b[i].d));
        const uint8x16_t v = vld1q_u8(b[i].qs);
        kq_store_scaled_s8(vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))), k8), d, y + i * KQ_QK);
        kq_store_scaled_s8(vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), k8), d, y + i * KQ_QK + 16);
    }
}

static void kq_dequantize_row_q5_0_neon(const void *x, float *y, int64_t n) {
    const kq_block_q5_0 *b = x;
    const int8x16_t k16 = vdupq_n_s8(16);
    uint8x16_t u[2];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_half_to_f32(kq_load_half(&b[i].d));
        kq_unpack_5bit_neon(b[i].qs, b[i].qh, u);
        kq_store_scaled_s8(vsubq_s8(vreinterpretq_s8_u8(u[0]), k16), d, y + i * KQ_QK);
        kq_store_scaled_s8(vsubq_s8(vreinterpretq_s8_u8(u[1]), k16), d, y + i * KQ_QK + 16);
    }
}

static void kq_dequantize_row_q4_1_neon(const void *x, float *y, int64_t n) {
    const kq_block_q4_1 *b = x;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_half_to_f32(kq_load_half(&b[i].d)), m = kq_half_to_f32(kq_load_half(&b[i].m));
        const uint8x16_t v = vld1q_u8(b[i].qs);
        kq_store_affine_u8(vandq_u8(v, vdupq_n_u8(15)), d, m, y + i * KQ_QK);
        kq_store_affine_u8(vshrq_n_u8(v, 4), d, m, y + i * KQ_QK + 16);
    }
}

static void kq_dequantize_row_q5_1_neon(const void *x, float *y, int64_t n) {
    const kq_block_q5_1 *b = x;
    uint8x16_t u[2];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_half_to_f32(kq_load_half(&b[i].d)), m = kq_half_to_f32(kq_load_half(&b[i].m));
        kq_unpack_5bit_neon(b[i].qs, b[i].qh, u);
        kq_store_affine_u8(u[0], d, m, y + i * KQ_QK);
        kq_store_affine_u8(u[1], d, m, y + i * KQ_QK + 16);
    }
}

static void kq_dequantize_row_q8_0_neon(const void *x, float *y, int64_t n) {
    const kq_block_q8_0 *b = x;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        const float d = kq_half_to_f32(kq_load_half(&b[i].d));
        kq_store_scaled_s8(vld1q_s8(b[i].qs), d, y + i * KQ_QK);
        kq_store_scaled_s8(vld1q_s8(b[i].qs + 16), d, y + i * KQ_QK + 16);
    }
}

static const kq_kernel_override kq_neon_q32_rows[] = {
    {KQ_TYPE_Q4_0, kq_quantize_row_q4_0_neon, kq_dequantize_row_q4_0_neon, NULL},
    {KQ_TYPE_Q4_1, kq_quantize_row_q4_1_neon, kq_dequantize_row_q4_1_neon, NULL},
    {KQ_TYPE_Q5_0, kq_quantize_row_q5_0_neon, kq_dequantize_row_q5_0_neon, NULL},
    {KQ_TYPE_Q5_1, kq_quantize_row_q5_1_neon, kq_dequantize_row_q5_1_neon, NULL},
    {KQ_TYPE_Q8_0, kq_quantize_row_q8_0_neon, kq_dequantize_row_q8_0_neon, NULL},
    {KQ_TYPE_Q8_1, kq_quantize_row_q8_1_neon, NULL, NULL},
};

const kq_override_list kq_neon_q32_list = {kq_neon_q32_rows, sizeof(kq_neon_q32_rows) / sizeof(kq_neon_q32_rows[0])};
