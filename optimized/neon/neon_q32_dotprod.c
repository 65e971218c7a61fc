/* kq NEON + SDOT (ARMv8.2 dotprod, Kunpeng 920 tsv110): vec_dot of the 32-element ggml formats,
 * q4_0 q5_0 q8_0 against q8_0 and q4_1 q5_1 against q8_1.
 *
 * Bit-identical to the reference by THE REDUCTION CONTRACT (kq_types.h): each block's integer dot
 * is exact; c_b = (float)isum_b * (d_w * d_a) (+ m_w * s_a) is evaluated with the reference's
 * roundings (d_w * d_a is exact: two widened halves); block b lands in float lane b % 8; the lanes
 * are reduced in the contract's order. Only the order of exact integer additions differs.
 *
 * Cost model (llvm-mca tsv110, which `make kunpeng-cycles` runs on these loops): two SIMD pipes;
 * 128-bit integer ALU ops (eor, and, add, addp, register mov) take both, while sdot, shifts,
 * shift-inserts, tbl, dup, conversions and float ops take one. Hence:
 *  - nibbles come out with shifts and shift-inserts (SRI/SLI against zero mask like AND, at half
 *    the price); 5th bits are spread by TBL (byte broadcast), USHL (bit to the sign) and SSHR/USHR;
 *  - four blocks share one pairwise reduction, one int->float conversion, one scale multiply and
 *    one lane add; q4_0 works on 16 * code and undoes the 16 inside the conversion (SCVTF #4);
 *  - four fp16 scales are gathered in a general register (plain loads and inserts, no SIMD work),
 *    moved over once and widened by one FCVTL;
 *  - SDOT accumulates, so every block needs a zeroed accumulator: it is loaded from memory (a
 *    load-pipe op) instead of copied from a zero register (a 128-bit mov: both SIMD pipes);
 *  - with nrc >= 2 two weight rows share each activation load and activation scale. */
#include <arm_neon.h>
#include <string.h>

#include "kq_mca.h"
#include "kq_neon.h"

/* ---- shared pieces ---------------------------------------------------------------------------- */

static inline uint64_t kq_u16(const void *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

static inline uint32_t kq_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Four fp16 values at p, p + stride, ... widened to f32 (FCVTL: exact, as kq_f16_to_f32). */
static inline float32x4_t kq_h4(const void *p, size_t stride) {
    const uint8_t *c = p;
    const uint64_t v = kq_u16(c) | kq_u16(c + stride) << 16 | kq_u16(c + 2 * stride) << 32 | kq_u16(c + 3 * stride) << 48;
    return vcvt_f32_f16(vreinterpret_f16_u64(vcreate_u64(v)));
}

/* The fp16 pairs (d, m) or (d, s) of blocks 0 and 2 (or 1 and 3) of a group at p: one 32-bit load
 * each, widened to [d0, m0, d2, m2]. */
static inline float32x4_t kq_pairs(const void *p, size_t stride) {
    const uint8_t *c = p;
    const uint64_t v = (uint64_t)kq_u32(c) | (uint64_t)kq_u32(c + 2 * stride) << 32;
    return vcvt_f32_f16(vreinterpret_f16_u64(vcreate_u64(v)));
}

static inline float kq_h1(const void *p) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u64(vcreate_u64(kq_u16(p)))), 0);
}

/* Constants, kept in registers across the loop. */
typedef struct {
    uint8x16_t zero, bcast_lo, bcast_hi;
    int8x16_t bitpos, t16;
} kq_k;

/* Loads the compiler must not merge with an equal one (volatile), at any alignment. */
typedef int32x4_t kq_s32x4_any __attribute__((aligned(1)));
typedef uint8x16_t kq_u8x16_any __attribute__((aligned(1)));
static const int32x4_t kq_zero_v = {0, 0, 0, 0};

/* A zeroed SDOT accumulator by a load, not a copy of one zero register: a 128-bit mov takes
 * both SIMD pipes on tsv110, the load takes none. */
static inline int32x4_t kq_zacc(kq_k *k) {
    (void)k;
    return *(const volatile kq_s32x4_any *)&kq_zero_v;
}

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

static inline void kq_load_q8_0x4(const kq_block_q8_0 *a, kq_agrp *g) {
    for (int i = 0; i < 4; i++) {
        g->q[2 * i] = vld1q_s8(a[i].qs);
        g->q[2 * i + 1] = vld1q_s8(a[i].qs + 16);
    }
    g->d = kq_h4(&a->d, sizeof(*a));
}

static inline void kq_load_q8_1x4(const kq_block_q8_1 *a, kq_agrp *g) {
    for (int i = 0; i < 4; i++) {
        g->q[2 * i] = vld1q_s8(a[i].qs);
        g->q[2 * i + 1] = vld1q_s8(a[i].qs + 16);
    }
    g->ds02 = kq_pairs(&a[0].d, sizeof(*a));
    g->ds13 = kq_pairs(&a[1].d, sizeof(*a));
}

static inline kq_k kq_consts(void) {
    static const uint8_t lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t hi[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    static const int8_t pos[16] = {7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0};
    kq_k k;
    static const int8_t t16[16] = {-128, -112, -96, -80, -64, -48, -32, -16, 0, 16, 32, 48, 64, 80, 96, 112};
    k.zero = vdupq_n_u8(0);
    k.bcast_lo = vld1q_u8(lo);
    k.bcast_hi = vld1q_u8(hi);
    k.bitpos = vld1q_s8(pos);
    k.t16 = vld1q_s8(t16);
    return k;
}

/* 5th bits of a q5 block: lane j of *lo (element j) / *hi (element 16 + j) gets bit j / 16 + j of
 * qh in its sign bit (the other bits are garbage). */
static inline void kq_qh_sign(uint32_t qh, kq_k *k, uint8x16_t *lo, uint8x16_t *hi) {
    const uint8x16_t q = vreinterpretq_u8_u32(vdupq_n_u32(qh));
    *lo = vshlq_u8(vqtbl1q_u8(q, k->bcast_lo), k->bitpos);
    *hi = vshlq_u8(vqtbl1q_u8(q, k->bcast_hi), k->bitpos);
}

static inline int32x4_t kq_sdot2(kq_k *k, int8x16_t w0, int8x16_t a0, int8x16_t w1, int8x16_t a1) {
    return vdotq_s32(vdotq_s32(kq_zacc(k), w0, a0), w1, a1);
}

/* ---- per-block integer dots: int32x4 partial sums of (scale *) isum ---------------------------- */

/* 16 * isum. TBL maps a nibble u to 16 * (u - 8) (fits int8); the nibbles are qs >> 4 and qs & 0x0F
 * (SLI of zero: a one-micro-op AND). */
static inline int32x4_t kq_blk_q4_0(const kq_block_q4_0 *w, int8x16_t a0, int8x16_t a1, kq_k *k) {
    const int8x16_t hi = vqtbl1q_s8(k->t16, vshrq_n_u8(vld1q_u8(w->qs), 4));
    const int8x16_t lo = vqtbl1q_s8(k->t16, vsliq_n_u8(kq_reload(w->qs), k->zero, 4));
    return kq_sdot2(k, lo, a0, hi, a1);
}

/* isum of the unsigned codes: hi = qs >> 4; SLI of zero keeps qs & 0x0F. */
static inline int32x4_t kq_blk_q4_1(const kq_block_q4_1 *w, int8x16_t a0, int8x16_t a1, kq_k *k) {
    const uint8x16_t b = vld1q_u8(w->qs);
    const uint8x16_t hi = vshrq_n_u8(b, 4);
    const uint8x16_t lo = vsliq_n_u8(kq_reload(w->qs), k->zero, 4);
    return kq_sdot2(k, vreinterpretq_s8_u8(lo), a0, vreinterpretq_s8_u8(hi), a1);
}

/* isum of u - 16. With qh inverted (in a general register: a 32-bit mvn), a lane's sign bit says
 * "5th bit clear"; SSHR #3 copies it over the top nibble, and 0xF0 | nibble is the int8 nibble - 16.
 * SRI keeps the mask's top nibble and brings in the nibble from qs >> 4 or (qs << 4) >> 4. */
static inline int32x4_t kq_blk_q5_0(const kq_block_q5_0 *w, int8x16_t a0, int8x16_t a1, kq_k *k) {
    uint32_t inv = ~kq_u32(w->qh);
    __asm__("" : "+r"(inv)); /* keep the inversion in the integer pipes */
    uint8x16_t slo, shi;
    kq_qh_sign(inv, k, &slo, &shi);
    const uint8x16_t b = vld1q_u8(w->qs);
    const uint8x16_t mlo = vreinterpretq_u8_s8(vshrq_n_s8(vreinterpretq_s8_u8(slo), 3));
    const uint8x16_t mhi = vreinterpretq_u8_s8(vshrq_n_s8(vreinterpretq_s8_u8(shi), 3));
    const uint8x16_t hi = vsriq_n_u8(mhi, b, 4);
    const uint8x16_t lo = vsriq_n_u8(mlo, vshlq_n_u8(b, 4), 4);
    return kq_sdot2(k, vreinterpretq_s8_u8(lo), a0, vreinterpretq_s8_u8(hi), a1);
}

/* isum of u = bit << 4 | nibble: USHR #3 puts the bit at 4 with zeros above, SRI adds the nibble. */
static inline int32x4_t kq_blk_q5_1(const kq_block_q5_1 *w, int8x16_t a0, int8x16_t a1, kq_k *k) {
    uint32_t qh = kq_u32(w->qh);
    __asm__("" : "+r"(qh)); /* DUP from a general register (one micro-op), not load + lane DUP */
    uint8x16_t slo, shi;
    kq_qh_sign(qh, k, &slo, &shi);
    const uint8x16_t b = vld1q_u8(w->qs);
    const uint8x16_t hi = vsriq_n_u8(vshrq_n_u8(shi, 3), b, 4);
    const uint8x16_t lo = vsriq_n_u8(vshrq_n_u8(slo, 3), vshlq_n_u8(b, 4), 4);
    return kq_sdot2(k, vreinterpretq_s8_u8(lo), a0, vreinterpretq_s8_u8(hi), a1);
}

static inline int32x4_t kq_blk_q8_0(const kq_block_q8_0 *w, int8x16_t a0, int8x16_t a1, kq_k *k) {
    (void)k;
    return kq_sdot2(k, vld1q_s8(w->qs), a0, vld1q_s8(w->qs + 16), a1);
}

/* ---- contributions of four blocks (one float lane each) ---------------------------------------- */

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

#define KQ_SUM4(fmt, w, g, k)                                                                    \
    kq_sum4(kq_blk_##fmt((w) + 0, (g)->q[0], (g)->q[1], k), kq_blk_##fmt((w) + 1, (g)->q[2], (g)->q[3], k), \
            kq_blk_##fmt((w) + 2, (g)->q[4], (g)->q[5], k), kq_blk_##fmt((w) + 3, (g)->q[6], (g)->q[7], k))

static inline float32x4_t kq_grp_q4_0(const kq_block_q4_0 *w, const kq_agrp *g, kq_k *k) {
    const float32x4_t dd = vmulq_f32(kq_h4(&w->d, sizeof(*w)), g->d);
    return vmulq_f32(vcvtq_n_f32_s32(KQ_SUM4(q4_0, w, g, k), 4), dd); /* exact: 16 * isum / 16 */
}

static inline float32x4_t kq_grp_q5_0(const kq_block_q5_0 *w, const kq_agrp *g, kq_k *k) {
    return kq_c_sym(KQ_SUM4(q5_0, w, g, k), kq_h4(&w->d, sizeof(*w)), g->d);
}

static inline float32x4_t kq_grp_q8_0(const kq_block_q8_0 *w, const kq_agrp *g, kq_k *k) {
    return kq_c_sym(KQ_SUM4(q8_0, w, g, k), kq_h4(&w->d, sizeof(*w)), g->d);
}

static inline float32x4_t kq_grp_q4_1(const kq_block_q4_1 *w, const kq_agrp *g, kq_k *k) {
    return kq_c_asym(KQ_SUM4(q4_1, w, g, k), &w->d, sizeof(*w), g);
}

static inline float32x4_t kq_grp_q5_1(const kq_block_q5_1 *w, const kq_agrp *g, kq_k *k) {
    return kq_c_asym(KQ_SUM4(q5_1, w, g, k), &w->d, sizeof(*w), g);
}

/* ---- one block at a time (the < 4 blocks after the last group) --------------------------------- */

static inline float kq_one_sym(int32_t isum, const void *dw, const void *da) {
    return (float)isum * (kq_h1(dw) * kq_h1(da));
}

static inline float kq_one_asym(int32_t isum, const void *dw, const void *mw, const kq_block_q8_1 *a) {
    return (float)isum * (kq_h1(dw) * kq_h1(&a->d)) + kq_h1(mw) * kq_h1(&a->s);
}

#define KQ_ISUM1(fmt, w, a, k) vaddvq_s32(kq_blk_##fmt(w, vld1q_s8((a)->qs), vld1q_s8((a)->qs + 16), k))

static float kq_one_q4_0(const kq_block_q4_0 *w, const kq_block_q8_0 *a, kq_k *k) {
    return kq_one_sym(KQ_ISUM1(q4_0, w, a, k) / 16, &w->d, &a->d); /* exact division */
}
static float kq_one_q5_0(const kq_block_q5_0 *w, const kq_block_q8_0 *a, kq_k *k) {
    return kq_one_sym(KQ_ISUM1(q5_0, w, a, k), &w->d, &a->d);
}
static float kq_one_q8_0(const kq_block_q8_0 *w, const kq_block_q8_0 *a, kq_k *k) {
    return kq_one_sym(KQ_ISUM1(q8_0, w, a, k), &w->d, &a->d);
}
static float kq_one_q4_1(const kq_block_q4_1 *w, const kq_block_q8_1 *a, kq_k *k) {
    return kq_one_asym(KQ_ISUM1(q4_1, w, a, k), &w->d, &w->m, a);
}
static float kq_one_q5_1(const kq_block_q5_1 *w, const kq_block_q8_1 *a, kq_k *k) {
    return kq_one_asym(KQ_ISUM1(q5_1, w, a, k), &w->d, &w->m, a);
}

/* The 8 lanes in the contract's order: acc0 holds lanes 0-3, acc1 lanes 4-7. Blocks first..nb-1
 * (fewer than 4) are added one by one into their lanes, as the reference does. */
static inline float kq_finish(float32x4_t acc0, float32x4_t acc1, const float *tail, int64_t first, int64_t nb) {
    float lane[8];
    vst1q_f32(lane, acc0);
    vst1q_f32(lane + 4, acc1);
    for (int64_t b = first; b < nb; b++) lane[b % 8] += tail[b - first];
    return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

/* ---- the drivers: 8 blocks (two groups of 4, lanes 0-3 and 4-7) per pass, 1 or 2 rows ---------- */

#define KQ_DEFINE_VEC_DOT(fmt, wtype, atype, aload, name1, name2)                                   \
    static float kq_dot1_##fmt(int64_t nb, const wtype *w, const atype *a) {                        \
        kq_k k = kq_consts();                                                                 \
        float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);                             \
        kq_agrp g;                                                                                  \
        int64_t b = 0;                                                                              \
        for (; b + 8 <= nb; b += 8) {                                                               \
            KQ_MCA_BEGIN(name1);                                                                    \
            aload(a + b, &g);                                                                       \
            acc0 = vaddq_f32(acc0, kq_grp_##fmt(w + b, &g, &k));                                    \
            aload(a + b + 4, &g);                                                                   \
            acc1 = vaddq_f32(acc1, kq_grp_##fmt(w + b + 4, &g, &k));                                \
            KQ_MCA_END();                                                                           \
        }                                                                                           \
        if (b + 4 <= nb) {                                                                          \
            aload(a + b, &g);                                                                       \
            acc0 = vaddq_f32(acc0, kq_grp_##fmt(w + b, &g, &k));                                    \
            b += 4;                                                                                 \
        }                                                                                           \
        float tail[3];                                                                              \
        for (int64_t t = b; t < nb; t++) tail[t - b] = kq_one_##fmt(w + t, a + t, &k);              \
        return kq_finish(acc0, acc1, tail, b, nb);                                                  \
    }                                                                                               \
    static void kq_dot2_##fmt(int64_t nb, float *s, const wtype *w0, const wtype *w1, const atype *a) { \
        kq_k k = kq_consts();                                                                 \
        float32x4_t acc00 = vdupq_n_f32(0.0f), acc01 = vdupq_n_f32(0.0f);                           \
        float32x4_t acc10 = vdupq_n_f32(0.0f), acc11 = vdupq_n_f32(0.0f);                           \
        kq_agrp g;                                                                                  \
        int64_t b = 0;                                                                              \
        for (; b + 8 <= nb; b += 8) {                                                               \
            KQ_MCA_BEGIN(name2);                                                                    \
            aload(a + b, &g);                                                                       \
            acc00 = vaddq_f32(acc00, kq_grp_##fmt(w0 + b, &g, &k));                                 \
            acc10 = vaddq_f32(acc10, kq_grp_##fmt(w1 + b, &g, &k));                                 \
            aload(a + b + 4, &g);                                                                   \
            acc01 = vaddq_f32(acc01, kq_grp_##fmt(w0 + b + 4, &g, &k));                             \
            acc11 = vaddq_f32(acc11, kq_grp_##fmt(w1 + b + 4, &g, &k));                             \
            KQ_MCA_END();                                                                           \
        }                                                                                           \
        if (b + 4 <= nb) {                                                                          \
            aload(a + b, &g);                                                                       \
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
    static void kq_vec_dot_##fmt##_dp(int64_t n, float *s, const void *w, size_t w_stride, const void *a, int nrc) { \
        const int64_t nb = n / KQ_QK;                                                               \
        const char *wr = w;                                                                         \
        int r = 0;                                                                                  \
        for (; r + 2 <= nrc; r += 2)                                                                \
            kq_dot2_##fmt(nb, s + r, (const wtype *)(wr + (size_t)r * w_stride),                    \
                          (const wtype *)(wr + (size_t)(r + 1) * w_stride), a);                     \
        if (r < nrc) s[r] = kq_dot1_##fmt(nb, (const wtype *)(wr + (size_t)r * w_stride), a);       \
    }

KQ_DEFINE_VEC_DOT(q4_0, kq_block_q4_0, kq_block_q8_0, kq_load_q8_0x4, "vec_dot_q4_0_q8_0:256", "vec_dot_q4_0_q8_0_x2:512")
KQ_DEFINE_VEC_DOT(q4_1, kq_block_q4_1, kq_block_q8_1, kq_load_q8_1x4, "vec_dot_q4_1_q8_1:256", "vec_dot_q4_1_q8_1_x2:512")
KQ_DEFINE_VEC_DOT(q5_0, kq_block_q5_0, kq_block_q8_0, kq_load_q8_0x4, "vec_dot_q5_0_q8_0:256", "vec_dot_q5_0_q8_0_x2:512")
KQ_DEFINE_VEC_DOT(q5_1, kq_block_q5_1, kq_block_q8_1, kq_load_q8_1x4, "vec_dot_q5_1_q8_1:256", "vec_dot_q5_1_q8_1_x2:512")
KQ_DEFINE_VEC_DOT(q8_0, kq_block_q8_0, kq_block_q8_0, kq_load_q8_0x4, "vec_dot_q8_0_q8_0:256", "vec_dot_q8_0_q8_0_x2:512")

static const kq_kernel_override kq_rows[] = {
    {KQ_TYPE_Q4_0, NULL, NULL, kq_vec_dot_q4_0_dp},
    {KQ_TYPE_Q4_1, NULL, NULL, kq_vec_dot_q4_1_dp},
    {KQ_TYPE_Q5_0, NULL, NULL, kq_vec_dot_q5_0_dp},
    {KQ_TYPE_Q5_1, NULL, NULL, kq_vec_dot_q5_1_dp},
    {KQ_TYPE_Q8_0, NULL, NULL, kq_vec_dot_q8_0_dp},
};

const kq_override_list kq_neon_q32_dotprod_list = {kq_rows, sizeof(kq_rows) / sizeof(kq_rows[0])};
