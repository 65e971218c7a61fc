/* kq NEON (baseline ARMv8-A): quantize/dequantize rows of the 32-element ggml formats.
 *
 * Every byte equals the reference (reference/quants.c). The rounding of each step is the
 * reference's: d and 1/d in float with IEEE division, codes from the float 1/d before d is rounded
 * to half, q8 codes by FCVTAS (= roundf, ties away), 4/5-bit codes by FCVTZU (truncation, NaN and
 * negatives to 0, saturating) then a clamp, and d rounded to half by FCVTN (round to nearest even,
 * as kq_f32_to_f16 for finite values). No fused multiply-add anywhere (-ffp-contract=off).
 *
 * quantize_row_q8_0/q8_1 quantize the activations of every matmul, so they are the hot path: four
 * blocks at a time, with the four scales computed in one float32x4 (one FDIV for d, one for 1/d,
 * one FCVTN) and the codes narrowed by TBL. That fast path needs every scale d of the four blocks
 * to be a normal float: then |x * id| <= 127.0001 and the non-saturating narrow is exact. Blocks
 * with a tiny or zero maximum (d subnormal or 0) take the per-block path, which saturates exactly
 * as the reference does. */
#include <arm_neon.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "fp16.h"
#include "kq_mca.h"
#include "kq_neon.h"
#include "kq_ref.h"

/* ---- small helpers -------------------------------------------------------------------------- */

static inline void kq_store_half(void *p, uint16_t h) { memcpy(p, &h, 2); }
static inline uint16_t kq_load_half(const void *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/* fp16 -> f32 by FCVTL: identical to kq_f16_to_f32 for every half, NaN included. */
static inline float kq_half_to_f32(uint16_t h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

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

/* The low byte of 16 int32 lanes: UZP1 twice (low halves, then low bytes). Not TBL of a register
 * tuple: gcc 12 builds the tuple on the stack in this loop. */
static inline int8x16_t kq_low_bytes(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    const int16x8_t ab = vuzp1q_s16(vreinterpretq_s16_s32(a), vreinterpretq_s16_s32(b));
    const int16x8_t cd = vuzp1q_s16(vreinterpretq_s16_s32(c), vreinterpretq_s16_s32(d));
    return vuzp1q_s8(vreinterpretq_s8_s16(ab), vreinterpretq_s8_s16(cd));
}

/* 16 codes: roundf(x[j] * id) for lane `lane` of id4 (the fast path: no saturation needed) */
#define KQ_Q8_CODES16(x, id4, lane)                                                            \
    kq_low_bytes(vcvtaq_s32_f32(vmulq_laneq_f32(vld1q_f32(x), (id4), (lane))),                      \
                 vcvtaq_s32_f32(vmulq_laneq_f32(vld1q_f32((x) + 4), (id4), (lane))),                \
                 vcvtaq_s32_f32(vmulq_laneq_f32(vld1q_f32((x) + 8), (id4), (lane))),                \
                 vcvtaq_s32_f32(vmulq_laneq_f32(vld1q_f32((x) + 12), (id4), (lane))))

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

/* Register pressure: 32 vectors of x would not stay in registers across the division, so the
 * second pass reloads them from L1 (load slots are idle here) rather than spilling; the empty asm
 * keeps the compiler from merging the two loads. */
#define KQ_RELOAD_BARRIER() __asm__ volatile("" ::: "memory")

/* The 32 codes of block `lane` of a 4-block group */
#define KQ_Q8_CODES(x, id4, lane, out)                                                         \
    do {                                                                                            \
        (out)[0] = KQ_Q8_CODES16((x), (id4), (lane));                                        \
        (out)[1] = KQ_Q8_CODES16((x) + 16, (id4), (lane));                                   \
    } while (0)

#define KQ_Q8_0_STORE(xb, yb, id, b, h)                                                        \
    do {                                                                                            \
        int8x16_t c_[2];                                                                            \
        KQ_Q8_CODES((xb) + 32 * (b), (id), (b), c_);                                         \
        kq_store_half(&(yb)[b].d, (uint16_t)((h) >> (16 * (b))));                                   \
        vst1q_s8((yb)[b].qs, c_[0]);                                                                \
        vst1q_s8((yb)[b].qs + 16, c_[1]);                                                           \
    } while (0)

/* amax of four consecutive blocks, one per lane */
static inline float32x4_t kq_absmax4(const float *x) {
    float32x4_t m[4];
    for (int b = 0; b < 4; b++) {
        float32x4_t v[8];
        kq_load32(x + 32 * b, v);
        m[b] = kq_absmax_parts(v);
    }
    return vpmaxq_f32(vpmaxq_f32(m[0], m[1]), vpmaxq_f32(m[2], m[3]));
}

/* Smallest amax whose d = amax/127 is a normal float (127 * 2^-126 is exact). */
#define KQ_Q8_FAST_MIN (127.0f * FLT_MIN)

/* Codes and scales of the 4-block group at xb whose maxima are amax; d and id come from the
 * caller, which computes them one group ahead so the divisions overlap the previous group. */
static inline __attribute__((always_inline)) void kq_q8_0_group(const float *xb, kq_block_q8_0 *yb, float32x4_t amax, float32x4_t d,
                                 float32x4_t id) {
    if (vminvq_f32(amax) < KQ_Q8_FAST_MIN) {
        for (int b = 0; b < 4; b++) yb[b].d = kq_f32_to_f16(kq_q8_block(xb + 32 * b, yb[b].qs));
        return;
    }
    const uint64_t h = vget_lane_u64(vreinterpret_u64_f16(vcvt_f16_f32(d)), 0);
    /* block by block: each block's 8 vectors are loaded, scaled, converted, narrowed and stored */
    KQ_Q8_0_STORE(xb, yb, id, 0, h);
    KQ_Q8_0_STORE(xb, yb, id, 1, h);
    KQ_Q8_0_STORE(xb, yb, id, 2, h);
    KQ_Q8_0_STORE(xb, yb, id, 3, h);
}

static void kq_quantize_row_q8_0_neon(const float *x, void *y, int64_t n) {
    kq_block_q8_0 *out = y;
    const int64_t nb = n / KQ_QK, ng = nb / 4;
    const float32x4_t one = vdupq_n_f32(1.0f), k127 = vdupq_n_f32(127.0f);
    if (ng > 0) {
        float32x4_t amax = kq_absmax4(x);
        float32x4_t d = vdivq_f32(amax, k127);
        float32x4_t id = vdivq_f32(one, d);
        for (int64_t g = 0; g + 1 < ng; g++) {
            KQ_MCA_BEGIN("quantize_row_q8_0:128");
            const float *xb = x + g * 4 * KQ_QK;
            /* the next group's scales first: their divisions overlap this group's codes */
            const float32x4_t amax_next = kq_absmax4(xb + 4 * KQ_QK);
            const float32x4_t d_next = vdivq_f32(amax_next, k127);
            const float32x4_t id_next = vdivq_f32(one, d_next);
            KQ_RELOAD_BARRIER();
            kq_q8_0_group(xb, out + 4 * g, amax, d, id);
            amax = amax_next, d = d_next, id = id_next;
            KQ_MCA_END();
        }
        kq_q8_0_group(x + (ng - 1) * 4 * KQ_QK, out + 4 * (ng - 1), amax, d, id);
    }
    for (int64_t i = 4 * ng; i < nb; i++) out[i].d = kq_f32_to_f16(kq_q8_block(x + i * KQ_QK, out[i].qs));
}

/* sum of the 32 codes of one block, as 8 int16 partial sums */
static inline int16x8_t kq_code_sums(const int8x16_t c[2]) {
    return vpadalq_s8(vpaddlq_s8(c[0]), c[1]);
}

/* q8_1: s = half((float)sum(qs) * d), with the float d. */
static void kq_q8_1_block(const float *x, kq_block_q8_1 *yb) {
    const float d = kq_q8_block(x, yb->qs);
    const int8x16_t c[2] = {vld1q_s8(yb->qs), vld1q_s8(yb->qs + 16)};
    const int32_t sum = vaddlvq_s16(kq_code_sums(c));
    yb->d = kq_f32_to_f16(d);
    yb->s = kq_f32_to_f16((float)sum * d);
}

static inline __attribute__((always_inline)) void kq_q8_1_group(const float *xb, kq_block_q8_1 *yb, float32x4_t amax,
                                                                float32x4_t d, float32x4_t id) {
    if (vminvq_f32(amax) < KQ_Q8_FAST_MIN) {
        for (int b = 0; b < 4; b++) kq_q8_1_block(xb + 32 * b, &yb[b]);
        return;
    }
    int8x16_t c[4][2];
    KQ_Q8_CODES(xb, id, 0, c[0]);
    KQ_Q8_CODES(xb + 32, id, 1, c[1]);
    KQ_Q8_CODES(xb + 64, id, 2, c[2]);
    KQ_Q8_CODES(xb + 96, id, 3, c[3]);
    /* the four blocks' code sums (|sum| <= 4064 fits int16) in lanes 0..3 */
    const int16x8_t s01 = vpaddq_s16(kq_code_sums(c[0]), kq_code_sums(c[1]));
    const int16x8_t s23 = vpaddq_s16(kq_code_sums(c[2]), kq_code_sums(c[3]));
    const int16x8_t s4 = vpaddq_s16(s01, s23);
    const int16x8_t s2 = vpaddq_s16(s4, s4);
    const float32x4_t sd = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(s2))), d);
    const uint64_t hd = vget_lane_u64(vreinterpret_u64_f16(vcvt_f16_f32(d)), 0);
    const uint64_t hs = vget_lane_u64(vreinterpret_u64_f16(vcvt_f16_f32(sd)), 0);
    for (int b = 0; b < 4; b++) {
        kq_store_half(&yb[b].d, (uint16_t)(hd >> (16 * b)));
        kq_store_half(&yb[b].s, (uint16_t)(hs >> (16 * b)));
        vst1q_s8(yb[b].qs, c[b][0]);
        vst1q_s8(yb[b].qs + 16, c[b][1]);
    }
}

/* as q8_0: the scales of the next group are computed ahead, overlapping this group's codes */
static void kq_quantize_row_q8_1_neon(const float *x, void *y, int64_t n) {
    kq_block_q8_1 *out = y;
    const int64_t nb = n / KQ_QK, ng = nb / 4;
    const float32x4_t one = vdupq_n_f32(1.0f), k127 = vdupq_n_f32(127.0f);
    if (ng > 0) {
        float32x4_t amax = kq_absmax4(x);
        float32x4_t d = vdivq_f32(amax, k127);
        float32x4_t id = vdivq_f32(one, d);
        for (int64_t g = 0; g + 1 < ng; g++) {
            KQ_MCA_BEGIN("quantize_row_q8_1:128");
            const float *xb = x + g * 4 * KQ_QK;
            const float32x4_t amax_next = kq_absmax4(xb + 4 * KQ_QK);
            const float32x4_t d_next = vdivq_f32(amax_next, k127);
            const float32x4_t id_next = vdivq_f32(one, d_next);
            KQ_RELOAD_BARRIER();
            kq_q8_1_group(xb, out + 4 * g, amax, d, id);
            amax = amax_next, d = d_next, id = id_next;
            KQ_MCA_END();
        }
        kq_q8_1_group(x + (ng - 1) * 4 * KQ_QK, out + 4 * (ng - 1), amax, d, id);
    }
    for (int64_t i = 4 * ng; i < nb; i++) kq_q8_1_block(x + i * KQ_QK, &out[i]);
}

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

static void kq_quantize_row_q4_0_neon(const float *x, void *y, int64_t n) {
    kq_block_q4_0 *b = y;
    uint8x16_t u[2];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        kq_store_half(&b[i].d, kq_f32_to_half(kq_sym_block(x + i * KQ_QK, 8, u)));
        kq_store_nibbles(u, b[i].qs);
    }
}

static void kq_quantize_row_q5_0_neon(const float *x, void *y, int64_t n) {
    kq_block_q5_0 *b = y;
    uint8x16_t u[2];
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        kq_store_half(&b[i].d, kq_f32_to_half(kq_sym_block(x + i * KQ_QK, 16, u)));
        kq_store_nibbles(u, b[i].qs);
        kq_store_high_bits(u, b[i].qh);
    }
}

static void kq_quantize_row_q4_1_neon(const float *x, void *y, int64_t n) {
    kq_block_q4_1 *b = y;
    uint8x16_t u[2];
    float min;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        kq_store_half(&b[i].d, kq_f32_to_half(kq_asym_block(x + i * KQ_QK, 16, u, &min)));
        kq_store_half(&b[i].m, kq_f32_to_half(min));
        kq_store_nibbles(u, b[i].qs);
    }
}

static void kq_quantize_row_q5_1_neon(const float *x, void *y, int64_t n) {
    kq_block_q5_1 *b = y;
    uint8x16_t u[2];
    float min;
    for (int64_t i = 0; i < n / KQ_QK; i++) {
        kq_store_half(&b[i].d, kq_f32_to_half(kq_asym_block(x + i * KQ_QK, 32, u, &min)));
        kq_store_half(&b[i].m, kq_f32_to_half(min));
        kq_store_nibbles(u, b[i].qs);
        kq_store_high_bits(u, b[i].qh);
    }
}

/* ---- dequantize ------------------------------------------------------------------------------- */

/* 16 signed codes (already offset) times d: y[j] = (float)c[j] * d */
static inline void kq_store_scaled_s8(int8x16_t c, float d, float *y) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(c)), hi = vmovl_high_s8(c);
    vst1q_f32(y, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
    vst1q_f32(y + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d));
    vst1q_f32(y + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
    vst1q_f32(y + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d));
}

/* 16 unsigned codes: y[j] = (float)u[j] * d + m, two roundings as in the reference */
static inline void kq_store_affine_u8(uint8x16_t u, float d, float m, float *y) {
    const uint16x8_t lo = vmovl_u8(vget_low_u8(u)), hi = vmovl_high_u8(u);
    const uint32x4_t w[4] = {vmovl_u16(vget_low_u16(lo)), vmovl_high_u16(lo), vmovl_u16(vget_low_u16(hi)),
                             vmovl_high_u16(hi)};
    const float32x4_t vm = vdupq_n_f32(m);
    for (int k = 0; k < 4; k++) vst1q_f32(y + 4 * k, vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(w[k]), d), vm));
}

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
