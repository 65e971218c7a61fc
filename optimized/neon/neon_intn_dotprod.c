/* kq NEON + SDOT (ARMv8.2 dotprod, compiled -mcpu=tsv110+dotprod): INT-N vec_dot.
 *
 * The same kernels as neon_intn.c (the layout walk and per-4-block float contributions of
 * kq_neon_common.h, so the same bits as the reference), with the exact int32 block dot done by SDOT. The 8-bit asym codes
 * are unsigned: u * a = (u - 128) * a + 128 * a, 128 * sum(a) = SDOT(a, 1) << 7.
 * Dequantize stays in neon_intn.c (this layer only adds vec_dot). */
#include <arm_neon.h>

#include "kq_neon.h"
#include "kq_neon_common.h"

/* Partial sums (int32x4) of sum_j w[j] * a[j] over 32 elements: two SDOTs. */
KQ_AI int32x4_t kq_isum_parts(const int8x16_t w[2], const int8x16_t a[2], int bits) {
    (void)bits;
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w[0], a[0]), w[1], a[1]);
}

/* 128 * sum(a), as partial sums (for 8-bit asym) */
KQ_AI int32x4_t kq_sum128(const int8x16_t a[2]) {
    const int8x16_t one = vdupq_n_s8(1);
    return vshlq_n_s32(vdotq_s32(vdotq_s32(vdupq_n_s32(0), a[0], one), a[1], one), 7);
}

/* ---- one function per type ----------------------------------------------------------------------- */

#define KQ_INTN_FNS(name, b, g, gc, as)                                                               \
    static void kq_vec_dot_##name##_sdot(int64_t n, float *s, const void *w, size_t ws, const void *a, int nrc) { \
        kq_intn_vec_dot(n, s, w, ws, a, nrc, b, g, as, kq_isum_parts, kq_sum128);                                  \
    }
KQ_INTN_EACH(KQ_INTN_FNS)

#define KQ_INTN_ROW(name, b, g, gc, as) \
    {KQ_INTN_ID(b, gc, as), NULL, NULL, kq_vec_dot_##name##_sdot},
static const kq_kernel_override kq_neon_intn_dotprod_rows[] = {KQ_INTN_EACH(KQ_INTN_ROW)};

const kq_override_list kq_neon_intn_dotprod_list = {kq_neon_intn_dotprod_rows,
                                                    sizeof(kq_neon_intn_dotprod_rows) / sizeof(kq_neon_intn_dotprod_rows[0])};
