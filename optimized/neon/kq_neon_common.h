/* kq: private helpers shared by the NEON kernel files in optimized/neon, not a public interface.
 *
 * Everything is `static inline` (or a macro), so each file compiles its own copy with its own flags:
 * the plain files for baseline ARMv8-A (-mtune=tsv110), the *_dotprod.c files for tsv110 + dotprod.
 * Hence only baseline intrinsics here (no SDOT, no fp16 arithmetic); where a plain file and its
 * dotprod twin differ only in the integer dot, the driver here takes the file's dot as a macro
 * argument or as a constant function pointer into always_inline code, which gcc and clang fold and
 * inline (a call left in a measured loop would fail `make kunpeng-cycles`). The kernels compiled
 * from this header are instruction for instruction the ones written out per file before it. */
#ifndef KQ_NEON_COMMON_H
#define KQ_NEON_COMMON_H

#include <arm_neon.h>
#include <string.h>

#include "kq_dispatch.h"
#include "kq_intn.h"
#include "kq_mca.h"
#include "kq_types.h"

#define KQ_AI static inline __attribute__((always_inline))

/* ---- loads and fp16 ---------------------------------------------------------------------------- */

/* kq_load_half and kq_half_to_f32 are always_inline as the INT-N kernels had them: when they are
 * inlined changes gcc's register choices there. */

KQ_AI uint16_t kq_load_half(const void *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

static inline uint32_t kq_load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* fp16 -> f32 by FCVTL: identical to kq_f16_to_f32 for every half, NaN included. */
KQ_AI float kq_half_to_f32(uint16_t h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

/* ---- dequantize: 16 codes to floats --------------------------------------------------------------- */

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
    const float32x4_t vm = vdupq_n_f32(m);
    vst1q_f32(y, vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))), d), vm));
    vst1q_f32(y + 4, vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_high_u16(lo)), d), vm));
    vst1q_f32(y + 8, vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))), d), vm));
    vst1q_f32(y + 12, vaddq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_high_u16(hi)), d), vm));
}

/* ==== vec_dot of the 32-element formats (neon_q32_dot.c, neon_q32_dotprod.c) ======================== */

/* Four fp16 values at p, p + stride, ... widened to f32 (FCVTL: exact, as kq_f16_to_f32). */
static inline float32x4_t kq_h4(const void *p, size_t stride) {
    const uint8_t *c = p;
    const uint64_t v = (uint64_t)kq_load_half(c) | (uint64_t)kq_load_half(c + stride) << 16 |
                       (uint64_t)kq_load_half(c + 2 * stride) << 32 | (uint64_t)kq_load_half(c + 3 * stride) << 48;
    return vcvt_f32_f16(vreinterpret_f16_u64(vcreate_u64(v)));
}

/* The fp16 pairs (d, m) or (d, s) of blocks 0 and 2 (or 1 and 3) of a group at p: one 32-bit load
 * each, widened to [d0, m0, d2, m2]. */
static inline float32x4_t kq_pairs(const void *p, size_t stride) {
    const uint8_t *c = p;
    const uint64_t v = (uint64_t)kq_load_u32(c) | (uint64_t)kq_load_u32(c + 2 * stride) << 32;
    return vcvt_f32_f16(vreinterpret_f16_u64(vcreate_u64(v)));
}

static inline float kq_h1(const void *p) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u64(vcreate_u64(kq_load_half(p)))), 0);
}

/* Constants, kept in registers across the loop. nib is the file's TBL from a q4_0 nibble u to its
 * int8 weight (u - 8, or 16 * (u - 8)). */
typedef struct {
    uint8x16_t zero, bcast_lo, bcast_hi;
    int8x16_t bitpos, nib;
} kq_k;

static inline kq_k kq_consts_nib(const int8_t nib[16]) {
    static const uint8_t lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t hi[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    static const int8_t pos[16] = {7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0};
    kq_k k;
    k.zero = vdupq_n_u8(0);
    k.bcast_lo = vld1q_u8(lo);
    k.bcast_hi = vld1q_u8(hi);
    k.bitpos = vld1q_s8(pos);
    k.nib = vld1q_s8(nib);
    return k;
}

/* Loads the compiler must not merge with an equal one (volatile), at any alignment. */
typedef uint8x16_t kq_u8x16_any __attribute__((aligned(1)));

/* The 16 bytes at p, loaded once more. A shift-insert overwrites its destination, so a value that
 * also feeds another instruction is copied first (a 128-bit mov) whenever the scheduler puts the
 * shift-insert first; a second load gives it its own copy for free. */
static inline uint8x16_t kq_reload(const uint8_t *p) { return *(const volatile kq_u8x16_any *)p; }

/* Four blocks' int32x4 partial sums -> the four block sums (exact). */
static inline int32x4_t kq_sum4(int32x4_t s0, int32x4_t s1, int32x4_t s2, int32x4_t s3) {
    return vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));
}

/* Four activation blocks: codes (lo/hi 16 of each block), d (q8_0) or the (d, s) pairs of blocks
 * 0, 2 and 1, 3 (q8_1). */
typedef struct {
    int8x16_t q[8];
    float32x4_t d, ds02, ds13;
} kq_agrp;

static inline void kq_load4_q8_0(const kq_block_q8_0 *a, kq_agrp *g) {
    for (int i = 0; i < 4; i++) {
        g->q[2 * i] = vld1q_s8(a[i].qs);
        g->q[2 * i + 1] = vld1q_s8(a[i].qs + 16);
    }
    g->d = kq_h4(&a->d, sizeof(*a));
}

static inline void kq_load4_q8_1(const kq_block_q8_1 *a, kq_agrp *g) {
    for (int i = 0; i < 4; i++) {
        g->q[2 * i] = vld1q_s8(a[i].qs);
        g->q[2 * i + 1] = vld1q_s8(a[i].qs + 16);
    }
    g->ds02 = kq_pairs(&a[0].d, sizeof(*a));
    g->ds13 = kq_pairs(&a[1].d, sizeof(*a));
}

/* 5th bits of a q5 block: lane j of *lo (element j) / *hi (element 16 + j) gets bit j / 16 + j of
 * qh in its sign bit (the other bits are garbage). */
static inline void kq_qh_sign(uint32_t qh, kq_k *k, uint8x16_t *lo, uint8x16_t *hi) {
    const uint8x16_t q = vreinterpretq_u8_u32(vdupq_n_u32(qh));
    *lo = vshlq_u8(vqtbl1q_u8(q, k->bcast_lo), k->bitpos);
    *hi = vshlq_u8(vqtbl1q_u8(q, k->bcast_hi), k->bitpos);
}

/* ---- the int8 weights of one block: *lo = elements 0..15, *hi = 16..31 ----------------------------- */

/* TBL maps a nibble u to k->nib[u]; the nibbles are qs >> 4 and qs & 0x0F (SLI of zero: a
 * one-micro-op AND). */
static inline void kq_codes_q4_0(const kq_block_q4_0 *w, kq_k *k, int8x16_t *lo, int8x16_t *hi) {
    *hi = vqtbl1q_s8(k->nib, vshrq_n_u8(vld1q_u8(w->qs), 4));
    *lo = vqtbl1q_s8(k->nib, vsliq_n_u8(kq_reload(w->qs), k->zero, 4));
}

/* The unsigned codes: hi = qs >> 4; SLI of zero keeps qs & 0x0F. */
static inline void kq_codes_q4_1(const kq_block_q4_1 *w, kq_k *k, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t h = vshrq_n_u8(vld1q_u8(w->qs), 4);
    const uint8x16_t l = vsliq_n_u8(kq_reload(w->qs), k->zero, 4);
    *lo = vreinterpretq_s8_u8(l);
    *hi = vreinterpretq_s8_u8(h);
}

/* u - 16. With qh inverted (in a general register: a 32-bit mvn), a lane's sign bit says "5th bit
 * clear"; SSHR #3 copies it over the top nibble, and 0xF0 | nibble is the int8 nibble - 16. SRI
 * keeps the mask's top nibble and brings in the nibble from qs >> 4 or (qs << 4) >> 4. */
static inline void kq_codes_q5_0(const kq_block_q5_0 *w, kq_k *k, int8x16_t *lo, int8x16_t *hi) {
    uint32_t inv = ~kq_load_u32(w->qh);
    __asm__("" : "+r"(inv)); /* keep the inversion in the integer pipes */
    uint8x16_t slo, shi;
    kq_qh_sign(inv, k, &slo, &shi);
    const uint8x16_t b = vld1q_u8(w->qs);
    const uint8x16_t mlo = vreinterpretq_u8_s8(vshrq_n_s8(vreinterpretq_s8_u8(slo), 3));
    const uint8x16_t mhi = vreinterpretq_u8_s8(vshrq_n_s8(vreinterpretq_s8_u8(shi), 3));
    *hi = vreinterpretq_s8_u8(vsriq_n_u8(mhi, b, 4));
    *lo = vreinterpretq_s8_u8(vsriq_n_u8(mlo, vshlq_n_u8(b, 4), 4));
}

/* u = bit << 4 | nibble: USHR #3 puts the bit at 4 with zeros above, SRI adds the nibble. */
static inline void kq_codes_q5_1(const kq_block_q5_1 *w, kq_k *k, int8x16_t *lo, int8x16_t *hi) {
    uint32_t qh = kq_load_u32(w->qh);
    __asm__("" : "+r"(qh)); /* DUP from a general register (one micro-op), not load + lane DUP */
    uint8x16_t slo, shi;
    kq_qh_sign(qh, k, &slo, &shi);
    const uint8x16_t b = vld1q_u8(w->qs);
    *hi = vreinterpretq_s8_u8(vsriq_n_u8(vshrq_n_u8(shi, 3), b, 4));
    *lo = vreinterpretq_s8_u8(vsriq_n_u8(vshrq_n_u8(slo, 3), vshlq_n_u8(b, 4), 4));
}

static inline void kq_codes_q8_0(const kq_block_q8_0 *w, kq_k *k, int8x16_t *lo, int8x16_t *hi) {
    (void)k;
    *lo = vld1q_s8(w->qs);
    *hi = vld1q_s8(w->qs + 16);
}

/* ---- contributions of four blocks (one float lane each), or of one ---------------------------------- */

static inline float32x4_t kq_c_sym(int32x4_t isum, float32x4_t dw, float32x4_t da) {
    return vmulq_f32(vcvtq_f32_s32(isum), vmulq_f32(dw, da));
}

/* One multiply gives d_w * d_a and m_w * s_a of two blocks; TRN1/TRN2 (one micro-op each) sort
 * them into the four d_w * d_a and the four m_w * s_a. */
static inline float32x4_t kq_c_asym(int32x4_t isum, const void *wdm, size_t stride, const kq_agrp *g) {
    const float32x4_t p02 = vmulq_f32(kq_pairs(wdm, stride), g->ds02);
    const float32x4_t p13 = vmulq_f32(kq_pairs((const uint8_t *)wdm + stride, stride), g->ds13);
    return vaddq_f32(vmulq_f32(vcvtq_f32_s32(isum), vtrn1q_f32(p02, p13)), vtrn2q_f32(p02, p13));
}

static inline float kq_one_sym(int32_t isum, const void *dw, const void *da) {
    return (float)isum * (kq_h1(dw) * kq_h1(da));
}

static inline float kq_one_asym(int32_t isum, const void *dw, const void *mw, const kq_block_q8_1 *a) {
    return (float)isum * (kq_h1(dw) * kq_h1(&a->d)) + kq_h1(mw) * kq_h1(&a->s);
}

static inline int32_t kq_hsum_s16(int16x8_t p) { return vaddvq_s32(vpaddlq_s16(p)); }
static inline int32_t kq_hsum_s32(int32x4_t p) { return vaddvq_s32(p); }
#define kq_hsum(v) _Generic((v), int16x8_t: kq_hsum_s16, int32x4_t: kq_hsum_s32)(v)

/* The 8 lanes in the contract's order: acc0 holds lanes 0-3, acc1 lanes 4-7. Blocks first..nb-1
 * (fewer than 4) are added one by one into their lanes, as the reference does. */
static inline float kq_finish(float32x4_t acc0, float32x4_t acc1, const float *tail, int64_t first, int64_t nb) {
    float lane[8];
    vst1q_f32(lane, acc0);
    vst1q_f32(lane + 4, acc1);
    for (int64_t b = first; b < nb; b++) lane[b % 8] += tail[b - first];
    return kq_reduce8(lane);
}

/* ---- the drivers ------------------------------------------------------------------------------------ */

/* The body of kq_grp_FMT per kind of contribution: the four blocks' c from their isums.
 * q4: d_w * d_a first (the order of the original q4_0 kernels, which the scheduler keeps);
 * q4x16: the same with isums of 16 * isum (a nibble table of 16 * (u - 8)), undone inside the
 * conversion (SCVTF #4: exact). */
#define KQ_Q32_GRP_sym(isum, w, g) return kq_c_sym(isum, kq_h4(&(w)->d, sizeof(*(w))), (g)->d)
#define KQ_Q32_GRP_asym(isum, w, g) return kq_c_asym(isum, &(w)->d, sizeof(*(w)), g)
#define KQ_Q32_GRP_q4(isum, w, g)                                                                   \
    const float32x4_t dd = vmulq_f32(kq_h4(&(w)->d, sizeof(*(w))), (g)->d);                        \
    return vmulq_f32(vcvtq_f32_s32(isum), dd)
#define KQ_Q32_GRP_q4x16(isum, w, g)                                                                \
    const float32x4_t dd = vmulq_f32(kq_h4(&(w)->d, sizeof(*(w))), (g)->d);                        \
    return vmulq_f32(vcvtq_n_f32_s32(isum, 4), dd)
/* and one block's c (q4x16: an exact division) */
#define KQ_Q32_ONE_sym(isum, w, a) kq_one_sym(isum, &(w)->d, &(a)->d)
#define KQ_Q32_ONE_asym(isum, w, a) kq_one_asym(isum, &(w)->d, &(w)->m, a)
#define KQ_Q32_ONE_q4(isum, w, a) KQ_Q32_ONE_sym(isum, w, a)
#define KQ_Q32_ONE_q4x16(isum, w, a) kq_one_sym((isum) / 16, &(w)->d, &(a)->d)

/* kq_blk_FMT: one block's partial sums (type T) of w . a by the file's dot2(k, w0, a0, w1, a1). */
#define KQ_Q32_BLK(T, fmt, dot2)                                                                    \
    static inline T kq_blk_##fmt(const kq_block_##fmt *w, int8x16_t a0, int8x16_t a1, kq_k *k) {    \
        int8x16_t lo, hi;                                                                           \
        kq_codes_##fmt(w, k, &lo, &hi);                                                             \
        return dot2(k, lo, a0, hi, a1);                                                             \
    }

#define KQ_SUM4X(sum, fmt, w, g, k)                                                              \
    sum(kq_blk_##fmt((w) + 0, (g)->q[0], (g)->q[1], k), kq_blk_##fmt((w) + 1, (g)->q[2], (g)->q[3], k), \
            kq_blk_##fmt((w) + 2, (g)->q[4], (g)->q[5], k), kq_blk_##fmt((w) + 3, (g)->q[6], (g)->q[7], k))

/* One format against activations act: 8 blocks (two groups of 4, lanes 0-3 and 4-7) per pass, 1 or
 * 2 rows; sum4 reduces four kq_blk_FMT results to their isums; kind: see KQ_Q32_GRP_. */
#define KQ_Q32_FMT(fmt, act, kind, sum4, suffix, name1, name2)                                      \
    static inline float32x4_t kq_grp_##fmt(const kq_block_##fmt *w, const kq_agrp *g, kq_k *k) {    \
        KQ_Q32_GRP_##kind(KQ_SUM4X(sum4, fmt, w, g, k), w, g);                                      \
    }                                                                                               \
    static float kq_one_##fmt(const kq_block_##fmt *w, const kq_block_##act *a, kq_k *k) {          \
        return KQ_Q32_ONE_##kind(kq_hsum(kq_blk_##fmt(w, vld1q_s8(a->qs), vld1q_s8(a->qs + 16), k)), w, a); \
    }                                                                                               \
    static float kq_dot1_##fmt(int64_t nb, const kq_block_##fmt *w, const kq_block_##act *a) {      \
        kq_k k = kq_consts();                                                                       \
        float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);                             \
        kq_agrp g;                                                                                  \
        int64_t b = 0;                                                                              \
        for (; b + 8 <= nb; b += 8) {                                                               \
            KQ_MCA_BEGIN(name1);                                                                    \
            kq_load4_##act(a + b, &g);                                                              \
            acc0 = vaddq_f32(acc0, kq_grp_##fmt(w + b, &g, &k));                                    \
            kq_load4_##act(a + b + 4, &g);                                                          \
            acc1 = vaddq_f32(acc1, kq_grp_##fmt(w + b + 4, &g, &k));                                \
            KQ_MCA_END();                                                                           \
        }                                                                                           \
        if (b + 4 <= nb) {                                                                          \
            kq_load4_##act(a + b, &g);                                                              \
            acc0 = vaddq_f32(acc0, kq_grp_##fmt(w + b, &g, &k));                                    \
            b += 4;                                                                                 \
        }                                                                                           \
        float tail[3];                                                                              \
        for (int64_t t = b; t < nb; t++) tail[t - b] = kq_one_##fmt(w + t, a + t, &k);              \
        return kq_finish(acc0, acc1, tail, b, nb);                                                  \
    }                                                                                               \
    static void kq_dot2_##fmt(int64_t nb, float *s, const kq_block_##fmt *w0, const kq_block_##fmt *w1, \
                              const kq_block_##act *a) {                                            \
        kq_k k = kq_consts();                                                                       \
        float32x4_t acc00 = vdupq_n_f32(0.0f), acc01 = vdupq_n_f32(0.0f);                           \
        float32x4_t acc10 = vdupq_n_f32(0.0f), acc11 = vdupq_n_f32(0.0f);                           \
        kq_agrp g;                                                                                  \
        int64_t b = 0;                                                                              \
        for (; b + 8 <= nb; b += 8) {                                                               \
            KQ_MCA_BEGIN(name2);                                                                    \
            kq_load4_##act(a + b, &g);                                                              \
            acc00 = vaddq_f32(acc00, kq_grp_##fmt(w0 + b, &g, &k));                                 \
            acc10 = vaddq_f32(acc10, kq_grp_##fmt(w1 + b, &g, &k));                                 \
            kq_load4_##act(a + b + 4, &g);                                                          \
            acc01 = vaddq_f32(acc01, kq_grp_##fmt(w0 + b + 4, &g, &k));                             \
            acc11 = vaddq_f32(acc11, kq_grp_##fmt(w1 + b + 4, &g, &k));                             \
            KQ_MCA_END();                                                                           \
        }                                                                                           \
        if (b + 4 <= nb) {                                                                          \
            kq_load4_##act(a + b, &g);                                                              \
            acc00 = vaddq_f32(acc00, kq_grp_##fmt(w0 + b, &g, &k));                                 \
            acc10 = vaddq_f32(acc10, kq_grp_##fmt(w1 + b, &g, &k));                                 \
            b += 4;                                                                                 \
        }                                                                                           \
        float tail0[3], tail1[3];                                                                   \
        for (int64_t t = b; t < nb; t++) {                                                          \
            tail0[t - b] = kq_one_##fmt(w0 + t, a + t, &k);                                         \
            tail1[t - b] = kq_one_##fmt(w1 + t, a + t, &k);                                         \
        }                                                                                           \
        s[0] = kq_finish(acc00, acc01, tail0, b, nb);                                               \
        s[1] = kq_finish(acc10, acc11, tail1, b, nb);                                               \
    }                                                                                               \
    static void kq_vec_dot_##fmt##_##suffix(int64_t n, float *s, const void *w, size_t w_stride, const void *a, \
                                            int nrc) {                                              \
        const int64_t nb = n / KQ_QK;                                                               \
        const char *wr = w;                                                                         \
        int r = 0;                                                                                  \
        for (; r + 2 <= nrc; r += 2)                                                                \
            kq_dot2_##fmt(nb, s + r, (const kq_block_##fmt *)(wr + (size_t)r * w_stride),           \
                          (const kq_block_##fmt *)(wr + (size_t)(r + 1) * w_stride), a);            \
        if (r < nrc) s[r] = kq_dot1_##fmt(nb, (const kq_block_##fmt *)(wr + (size_t)r * w_stride), a); \
    }

/* All five vec_dots of a file (kq_vec_dot_FMT_SUFFIX) and its override list `list`, from its
 * kq_consts() and its integer dots:
 *   T, dot2       the partial sums of one q4/q5 block and the dot that makes them (see KQ_Q32_BLK);
 *   dot2_q8       the same for q8_0 weights, as int32x4 (+-128 * +-128 products);
 *   sum4_q4, sum4_q5, sum4_q8   four blocks' partial sums -> their isums (int32x4);
 *   q4_0_kind     q4, or q4x16 when kq_consts() maps a nibble to 16 * (u - 8). */
#define KQ_Q32_DEFINE_VEC_DOTS(suffix, list, T, dot2, dot2_q8, sum4_q4, sum4_q5, sum4_q8, q4_0_kind)  \
    KQ_Q32_BLK(T, q4_0, dot2)                                                                       \
    KQ_Q32_BLK(T, q4_1, dot2)                                                                       \
    KQ_Q32_BLK(T, q5_0, dot2)                                                                       \
    KQ_Q32_BLK(T, q5_1, dot2)                                                                       \
    KQ_Q32_BLK(int32x4_t, q8_0, dot2_q8)                                                            \
    KQ_Q32_FMT(q4_0, q8_0, q4_0_kind, sum4_q4, suffix, "vec_dot_q4_0_q8_0:256", "vec_dot_q4_0_q8_0_x2:512") \
    KQ_Q32_FMT(q4_1, q8_1, asym, sum4_q4, suffix, "vec_dot_q4_1_q8_1:256", "vec_dot_q4_1_q8_1_x2:512")      \
    KQ_Q32_FMT(q5_0, q8_0, sym, sum4_q5, suffix, "vec_dot_q5_0_q8_0:256", "vec_dot_q5_0_q8_0_x2:512")       \
    KQ_Q32_FMT(q5_1, q8_1, asym, sum4_q5, suffix, "vec_dot_q5_1_q8_1:256", "vec_dot_q5_1_q8_1_x2:512")      \
    KQ_Q32_FMT(q8_0, q8_0, sym, sum4_q8, suffix, "vec_dot_q8_0_q8_0:256", "vec_dot_q8_0_q8_0_x2:512")       \
    static const kq_kernel_override kq_rows[] = {                                                   \
        {KQ_TYPE_Q4_0, NULL, NULL, kq_vec_dot_q4_0_##suffix},                                       \
        {KQ_TYPE_Q4_1, NULL, NULL, kq_vec_dot_q4_1_##suffix},                                       \
        {KQ_TYPE_Q5_0, NULL, NULL, kq_vec_dot_q5_0_##suffix},                                       \
        {KQ_TYPE_Q5_1, NULL, NULL, kq_vec_dot_q5_1_##suffix},                                       \
        {KQ_TYPE_Q8_0, NULL, NULL, kq_vec_dot_q8_0_##suffix},                                       \
    };                                                                                              \
    const kq_override_list list = {kq_rows, sizeof(kq_rows) / sizeof(kq_rows[0])};

/* ==== K-quants . q8_K (neon_k.c, neon_k_dotprod.c) ==================================================== */

/* Two adjacent fp16 fields (d, dmin) widened by FCVTL, which is exact like kq_f16_to_f32. */
static inline float32x4_t kq_k_h2f_pair(const void *p) {
    return vcvt_f32_f16(vreinterpret_f16_u32(vdup_n_u32(kq_load_u32(p))));
}

/* q4_K/q5_K's 12 scale bytes as two rows of 8 six-bit values (what kq_get_scale_min_k4 reads),
 * four at a time: bytes 0..3 and 4..7 hold sc/m of sub-blocks 0..3 in their low 6 bits; bytes 8..11
 * hold the low nibbles of sub-blocks 4..7 and the top bits of bytes 0..7 their high two bits. */
static inline void kq_k_scales_k4(const uint8_t *s12, uint8x8_t *sc, uint8x8_t *mn) {
    const uint32_t w0 = kq_load_u32(s12), w1 = kq_load_u32(s12 + 4), w2 = kq_load_u32(s12 + 8);
    const uint32_t sc_lo = w0 & 0x3f3f3f3fu, mn_lo = w1 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | ((w0 >> 2) & 0x30303030u);
    const uint32_t mn_hi = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 2) & 0x30303030u);
    *sc = vcreate_u8((uint64_t)sc_lo | (uint64_t)sc_hi << 32);
    *mn = vcreate_u8((uint64_t)mn_lo | (uint64_t)mn_hi << 32);
}

/* The contract's final reduction: ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)); FADDP pairs as written. */
static inline float kq_k_reduce8(const float lanes[8]) {
    return vaddvq_f32(vaddq_f32(vld1q_f32(lanes), vld1q_f32(lanes + 4)));
}

/* Sum over 8 sub-blocks of sc_j * (sum of the four lanes of s[j]), exact in int32. */
static inline int32_t kq_k_scaled8(const int32x4_t s[8], uint8x8_t sc) {
    const int32x4_t s0 = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
    const int32x4_t s1 = vpaddq_s32(vpaddq_s32(s[4], s[5]), vpaddq_s32(s[6], s[7]));
    const uint16x8_t w = vmovl_u8(sc);
    int32x4_t t = vmulq_s32(s0, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w))));
    t = vmlaq_s32(t, s1, vreinterpretq_s32_u32(vmovl_high_u16(w)));
    return vaddvq_s32(t);
}

/* imin = sum_j m_j * (bsums[2j] + bsums[2j+1]); the pair sums widen first so that any bsums add
 * exactly as the reference's int arithmetic does. */
static inline int32_t kq_k_mins8(const int16_t *bsums, uint8x8_t mn) {
    /* p0 lanes: b0+b1, b2+b3, b4+b5, b6+b7 = the sums of sub-blocks 0..3; p1: sub-blocks 4..7 */
    const int32x4_t p0 = vpaddlq_s16(vld1q_s16(bsums)), p1 = vpaddlq_s16(vld1q_s16(bsums + 8));
    const uint16x8_t w = vmovl_u8(mn);
    int32x4_t t = vmulq_s32(p0, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w))));
    t = vmlaq_s32(t, p1, vreinterpretq_s32_u32(vmovl_high_u16(w)));
    return vaddvq_s32(t);
}

/* Sum over 16 sub-blocks of scales[j] * (sum of the lanes of s[j]). */
static inline int32_t kq_k_scaled16(const int32x4_t s[16], const int8_t *scales) {
    const int8x16_t sc8 = vld1q_s8(scales);
    const int16x8_t lo = vmovl_s8(vget_low_s8(sc8)), hi = vmovl_high_s8(sc8);
    const int32x4_t sc[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_high_s16(lo), vmovl_s16(vget_low_s16(hi)),
                             vmovl_high_s16(hi)};
    int32x4_t t = vdupq_n_s32(0);
    for (int g = 0; g < 4; g++) {
        const int32x4_t *v = s + 4 * g;
        t = vmlaq_s32(t, vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3])), sc[g]);
    }
    return vaddvq_s32(t);
}

/* c_b = (d_w * d_a) * (float)isum - (dmin_w * d_a) * (float)imin, as written. */
static inline float kq_k_asym(float32x4_t dd, float da, int32_t isum, int32_t imin) {
    const float dw = vgetq_lane_f32(dd, 0), dm = vgetq_lane_f32(dd, 1);
    return (dw * da) * (float)isum - (dm * da) * (float)imin;
}

/* q6_K's unsigned codes (0..63) of one 128-half, 16-lane part p (l = 16p .. 16p+15): u[k] is
 * quarter k. Low nibble from ql[l + 32(k&1)] (low half for k < 2), high two bits at bits 2k of qh[l]. */
static inline void kq_k_q6_quarters(const uint8_t *ql, const uint8_t *qh, int p, uint8x16_t u[4]) {
    const uint8x16_t m6 = vdupq_n_u8(0x3F);
    const uint8x16_t la = vld1q_u8(ql + 16 * p), lb = vld1q_u8(ql + 32 + 16 * p);
    const uint8x16_t h = vld1q_u8(qh + 16 * p);
    u[0] = vandq_u8(vsliq_n_u8(la, h, 4), m6);
    u[1] = vandq_u8(vsliq_n_u8(lb, vshrq_n_u8(h, 2), 4), m6);
    u[2] = vandq_u8(vsriq_n_u8(h, la, 4), m6);
    u[3] = vsriq_n_u8(vshrq_n_u8(h, 2), lb, 4); /* top bits already 0 */
}

/* ---- the contribution of one super-block, with the file's integer dot --------------------------- */

/* dot32(w0, w1, a): the exact dot of 32 codes (w0: elements 0..15, w1: 16..31, as int8) with the
 * 32 activations at a, as int32x4 partial sums. */
typedef int32x4_t kq_k_dot32_fn(int8x16_t w0, int8x16_t w1, const int8_t *a);

KQ_AI float kq_k_c_q4_K(const kq_block_q4_K *w, const kq_block_q8_K *a, kq_k_dot32_fn *dot32) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    uint8x8_t sc, mn;
    kq_k_scales_k4(w->scales, &sc, &mn);
    int32x4_t s[8];
    for (int c = 0; c < 4; c++) {
        const uint8x16_t q0 = vld1q_u8(w->qs + 32 * c), q1 = vld1q_u8(w->qs + 32 * c + 16);
        const int8_t *q8 = a->qs + 64 * c;
        s[2 * c] = dot32(vreinterpretq_s8_u8(vandq_u8(q0, m4)), vreinterpretq_s8_u8(vandq_u8(q1, m4)), q8);
        s[2 * c + 1] = dot32(vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), q8 + 32);
    }
    const int32_t isum = kq_k_scaled8(s, sc), imin = kq_k_mins8(a->bsums, mn);
    return kq_k_asym(kq_k_h2f_pair(&w->d), a->d, isum, imin);
}

KQ_AI float kq_k_c_q5_K(const kq_block_q5_K *w, const kq_block_q8_K *a, kq_k_dot32_fn *dot32) {
    const uint8x16_t m5 = vdupq_n_u8(0x1F);
    uint8x8_t sc, mn;
    kq_k_scales_k4(w->scales, &sc, &mn);
    uint8x16_t h0 = vld1q_u8(w->qh), h1 = vld1q_u8(w->qh + 16);
    int32x4_t s[8];
    for (int c = 0; c < 4; c++) {
        const uint8x16_t q0 = vld1q_u8(w->qs + 32 * c), q1 = vld1q_u8(w->qs + 32 * c + 16);
        const int8_t *q8 = a->qs + 64 * c;
        /* code = nibble | (qh bit 2c or 2c+1) << 4: SLI/SRI merge the nibble and the shifted qh byte */
        const uint8x16_t l0 = vandq_u8(vsliq_n_u8(q0, h0, 4), m5), l1 = vandq_u8(vsliq_n_u8(q1, h1, 4), m5);
        const uint8x16_t u0 = vandq_u8(vsriq_n_u8(vshlq_n_u8(h0, 3), q0, 4), m5);
        const uint8x16_t u1 = vandq_u8(vsriq_n_u8(vshlq_n_u8(h1, 3), q1, 4), m5);
        s[2 * c] = dot32(vreinterpretq_s8_u8(l0), vreinterpretq_s8_u8(l1), q8);
        s[2 * c + 1] = dot32(vreinterpretq_s8_u8(u0), vreinterpretq_s8_u8(u1), q8 + 32);
        h0 = vshrq_n_u8(h0, 2);
        h1 = vshrq_n_u8(h1, 2);
    }
    const int32_t isum = kq_k_scaled8(s, sc), imin = kq_k_mins8(a->bsums, mn);
    return kq_k_asym(kq_k_h2f_pair(&w->d), a->d, isum, imin);
}

/* dot16(u, a): the exact dot of 16 q6_K codes minus 32 (u: the unsigned codes 0..63) with the 16
 * activations at a, as int32x4 partial sums (|product| <= 32 * 128). */
typedef int32x4_t kq_k_dot16_fn(uint8x16_t u, const int8_t *a);

KQ_AI float kq_k_c_q6_K(const kq_block_q6_K *w, const kq_block_q8_K *a, kq_k_dot16_fn *dot16) {
    int32x4_t s[16];
    for (int h = 0; h < 2; h++) {
        for (int p = 0; p < 2; p++) {
            uint8x16_t u[4];
            kq_k_q6_quarters(w->ql + 64 * h, w->qh + 32 * h, p, u);
            for (int k = 0; k < 4; k++) /* sub-block 8h + 2k + p: elements 128h + 32k + 16p .. */
                s[8 * h + 2 * k + p] = dot16(u[k], a->qs + 128 * h + 32 * k + 16 * p);
        }
    }
    const int32_t isum = kq_k_scaled16(s, w->scales);
    return (kq_half_to_f32(w->d) * a->d) * (float)isum;
}

/* Defines kq_vec_dot_FMT_q8_K_SUFFIX (FMT q4_K, q5_K, q6_K) from kq_k_c_FMT with the file's integer
 * dot: super-block b into lane b % 8. name is the llvm-mca region of one super-block. */
#define KQ_K_DEFINE_VEC_DOT(fmt, suffix, name, dot)                                                 \
    static float kq_k_row_##fmt(int64_t nb, const kq_block_##fmt *w, const kq_block_q8_K *a) {       \
        float lanes[8] = {0};                                                                       \
        for (int64_t b = 0; b < nb; b++) {                                                          \
            KQ_MCA_BEGIN(name);                                                                     \
            lanes[b & 7] += kq_k_c_##fmt(&w[b], &a[b], dot);                                        \
            KQ_MCA_END();                                                                           \
        }                                                                                           \
        return kq_k_reduce8(lanes);                                                                 \
    }                                                                                               \
    static void kq_vec_dot_##fmt##_q8_K_##suffix(int64_t n, float *s, const void *w, size_t w_stride, \
                                                  const void *a, int nrc) {                         \
        for (int r = 0; r < nrc; r++)                                                               \
            s[r] = kq_k_row_##fmt(n / KQ_QK_K, (const kq_block_##fmt *)((const char *)w + (size_t)r * w_stride), a); \
    }

/* The three of a file; region names "vec_dot_q4_K_q8_K" TAG ":256" (TAG "_plain" or empty). */
#define KQ_K_DEFINE_VEC_DOTS(suffix, tag, dot32, dot16)                                             \
    KQ_K_DEFINE_VEC_DOT(q4_K, suffix, "vec_dot_q4_K_q8_K" tag ":256", dot32)                        \
    KQ_K_DEFINE_VEC_DOT(q5_K, suffix, "vec_dot_q5_K_q8_K" tag ":256", dot32)                        \
    KQ_K_DEFINE_VEC_DOT(q6_K, suffix, "vec_dot_q6_K_q8_K" tag ":256", dot16)

/* ==== INT-N (neon_intn.c, neon_intn_dotprod.c; layout: reference/kq_intn.h) ============================ */

/* Byte offsets of element i's header and chunk in a row (the kq_intn.h layout, constants folded). */
KQ_AI size_t kq_hdr_off(int64_t i, int bits, int group, int asym) {
    if (!group) return 0;
    return (size_t)(i / group) * (kq_intn_header_bytes(asym) + (size_t)(group / 32) * kq_intn_chunk_bytes(bits));
}

KQ_AI size_t kq_chunk_off(int64_t i, int bits, int group, int asym) {
    const size_t hb = kq_intn_header_bytes(asym), cb = kq_intn_chunk_bytes(bits);
    if (!group) return hb + (size_t)(i / 32) * cb;
    return kq_hdr_off(i, bits, group, asym) + hb + (size_t)((i % group) / 32) * cb;
}

/* The 32 codes of a chunk: u[0] = elements 0..15, u[1] = 16..31. */
KQ_AI void kq_unpack(const uint8_t *c, int bits, uint8x16_t u[2]) {
    if (bits == 8) {
        u[0] = vld1q_u8(c), u[1] = vld1q_u8(c + 16);
    } else if (bits == 4) {
        const uint8x16_t v = vld1q_u8(c);
        u[0] = vandq_u8(v, vdupq_n_u8(15)), u[1] = vshrq_n_u8(v, 4);
    } else if (bits == 2) {
        const uint8x8_t v = vld1_u8(c), m = vdup_n_u8(3);
        u[0] = vcombine_u8(vand_u8(v, m), vand_u8(vshr_n_u8(v, 2), m));
        u[1] = vcombine_u8(vand_u8(vshr_n_u8(v, 4), m), vshr_n_u8(v, 6));
    } else { /* 1 bit: element j is bit j / 4 of byte j % 4 */
        static const int8_t s0[16] = {0, 0, 0, 0, -1, -1, -1, -1, -2, -2, -2, -2, -3, -3, -3, -3};
        static const int8_t s1[16] = {-4, -4, -4, -4, -5, -5, -5, -5, -6, -6, -6, -6, -7, -7, -7, -7};
        uint32_t w;
        memcpy(&w, c, 4);
        const uint8x16_t v = vreinterpretq_u8_u32(vdupq_n_u32(w)), one = vdupq_n_u8(1);
        u[0] = vandq_u8(vshlq_u8(v, vld1q_s8(s0)), one);
        u[1] = vandq_u8(vshlq_u8(v, vld1q_s8(s1)), one);
    }
}

/* int8 weights for the integer dot: the sym level, the asym code, or for 8-bit asym u - 128. */
KQ_AI int8x16_t kq_levels(uint8x16_t u, int bits, int asym) {
    if (bits == 8) return vreinterpretq_s8_u8(veorq_u8(u, vdupq_n_u8(0x80)));
    if (asym) return vreinterpretq_s8_u8(u);
    if (bits == 1) return vsubq_s8(vreinterpretq_s8_u8(vshlq_n_u8(u, 1)), vdupq_n_s8(1));
    return vsubq_s8(vreinterpretq_s8_u8(u), vdupq_n_s8((int8_t)(1 << (bits - 1))));
}

/* ---- vec_dot, with the file's integer dot ------------------------------------------------------------ */

/* The file's integer dots, passed as constants and folded in: isum_parts(w, a, bits), the partial
 * sums (int32x4) of sum_j w[j] * a[j] over 32 elements (levels of `bits` bits), and sum128(a), those
 * of 128 * sum(a) (for 8-bit asym: u * a = (u - 128) * a + 128 * a). */
typedef int32x4_t kq_intn_isum_fn(const int8x16_t w[2], const int8x16_t a[2], int bits);
typedef int32x4_t kq_intn_sum128_fn(const int8x16_t a[2]);
#define KQ_INTN_DOTS kq_intn_isum_fn *isum_parts, kq_intn_sum128_fn *sum128

/* The isum parts of activation block b, and its header fields (as raw halves). */
KQ_AI int32x4_t kq_block_isum(const uint8_t *row, const uint8_t *act, int64_t b, int bits, int group, int asym,
                              uint16_t *dw, uint16_t *mw, uint16_t *da, uint16_t *sa, KQ_INTN_DOTS) {
    const int64_t i = 32 * b;
    const uint8_t *h = row + kq_hdr_off(i, bits, group, asym);
    const uint8_t *ab = act + (size_t)b * (asym ? sizeof(kq_block_q8_1) : sizeof(kq_block_q8_0));
    uint8x16_t u[2];
    kq_unpack(row + kq_chunk_off(i, bits, group, asym), bits, u);
    const int8x16_t w[2] = {kq_levels(u[0], bits, asym), kq_levels(u[1], bits, asym)};
    const int8_t *qs = (const int8_t *)ab + (asym ? 4 : 2);
    const int8x16_t a[2] = {vld1q_s8(qs), vld1q_s8(qs + 16)};
    *dw = kq_load_half(h), *da = kq_load_half(ab);
    if (asym) *mw = kq_load_half(h + 2), *sa = kq_load_half(ab + 2);
    int32x4_t s = isum_parts(w, a, bits);
    if (asym && bits == 8) s = vaddq_s32(s, sum128(a));
    return s;
}

KQ_AI float32x4_t kq_halves4(const uint16_t h[4]) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h))); }

/* Per activation block b an exact int32 isum, c_b = (float)isum * (d_w * d_a) [+ m_w * s_a] rounded
 * as written, c_b into lane b % 8. Four blocks at once: their isums in one int32x4, their
 * contributions in one float32x4 added to lanes 0-3 or 4-7 (the same roundings per lane). */
KQ_AI float kq_intn_dot_row(const uint8_t *row, const uint8_t *act, int64_t n, int bits, int group, int asym,
                            KQ_INTN_DOTS) {
    const int64_t nb = n / 32;
    float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
    uint16_t dw[4], mw[4] = {0, 0, 0, 0}, da[4], sa[4] = {0, 0, 0, 0};
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        int32x4_t s[4];
        for (int k = 0; k < 4; k++)
            s[k] = kq_block_isum(row, act, b + k, bits, group, asym, &dw[k], &mw[k], &da[k], &sa[k], isum_parts, sum128);
        const int32x4_t isum = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
        float32x4_t c = vmulq_f32(vcvtq_f32_s32(isum), vmulq_f32(kq_halves4(dw), kq_halves4(da)));
        if (asym) c = vaddq_f32(c, vmulq_f32(kq_halves4(mw), kq_halves4(sa)));
        if (b & 4) hi = vaddq_f32(hi, c);
        else lo = vaddq_f32(lo, c);
    }
    float l[8];
    vst1q_f32(l, lo), vst1q_f32(l + 4, hi);
    for (; b < nb; b++) {
        const int32_t isum =
            vaddvq_s32(kq_block_isum(row, act, b, bits, group, asym, &dw[0], &mw[0], &da[0], &sa[0], isum_parts, sum128));
        float c = (float)isum * (kq_half_to_f32(dw[0]) * kq_half_to_f32(da[0]));
        if (asym) c = c + kq_half_to_f32(mw[0]) * kq_half_to_f32(sa[0]);
        l[b % 8] += c;
    }
    return kq_reduce8(l);
}

KQ_AI void kq_intn_vec_dot(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc, int bits,
                           int group, int asym, KQ_INTN_DOTS) {
    for (int r = 0; r < nrc; r++)
        s[r] = kq_intn_dot_row((const uint8_t *)w + (size_t)r * w_stride, a, n, bits, group, asym, isum_parts, sum128);
}

/* Every INT-N type: X(name, bits, group, group code, asym). */
#define KQ_INTN_BITS(X, b)                                                                            \
    X(i##b##_row_sym, b, 0, 0, 0) X(i##b##_row_asym, b, 0, 0, 1) X(i##b##_g32_sym, b, 32, 1, 0)       \
    X(i##b##_g32_asym, b, 32, 1, 1) X(i##b##_g64_sym, b, 64, 2, 0) X(i##b##_g64_asym, b, 64, 2, 1)    \
    X(i##b##_g128_sym, b, 128, 3, 0) X(i##b##_g128_asym, b, 128, 3, 1)
#define KQ_INTN_EACH(X) KQ_INTN_BITS(X, 1) KQ_INTN_BITS(X, 2) KQ_INTN_BITS(X, 4) KQ_INTN_BITS(X, 8)

#endif
