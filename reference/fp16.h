/* IEEE binary16 and bfloat16 <-> binary32, round to nearest even, exact for NaN/Inf/denormals.
 * NaN policy (matches AArch64 FCVT/FCVTL/FCVTN and x86 F16C with default NaN off): a NaN keeps its
 * sign and the top bits of its payload and comes out quiet. */
#ifndef KQ_FP16_H
#define KQ_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t kq_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float kq_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float kq_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) /* Inf, or NaN made quiet */
        return kq_bits_f32(sign | 0x7f800000u | (mant ? 0x00400000u | (mant << 13) : 0));
    if (exp == 0) {
        if (mant == 0) return kq_bits_f32(sign);
        /* subnormal: normalise */
        exp = 1;
        while (!(mant & 0x400u)) { mant <<= 1; exp--; }
        mant &= 0x3ffu;
    }
    return kq_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

static inline uint16_t kq_f32_to_f16(float f) {
    const uint32_t u = kq_f32_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t exp = (u >> 23) & 0xffu;
    const uint32_t mant = u & 0x7fffffu;
    if (exp == 0xff) /* Inf, or NaN made quiet with its top payload bits */
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
    const int32_t e = (int32_t)exp - 127 + 15; /* biased f16 exponent */
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00u); /* overflow -> Inf */
    if (e <= 0) {
        /* subnormal f16 (or zero): value = m * 2^-24 with m = (1.mant) * 2^(e + 23 - 14 ...) */
        if (e < -10) return sign; /* below half the smallest subnormal: rounds to 0 */
        const uint32_t m = mant | 0x800000u;            /* 24-bit significand */
        const uint32_t shift = (uint32_t)(14 - e);      /* bits to drop: 14..24 */
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r); /* a carry into bit 10 gives the smallest normal, correctly */
    }
    uint32_t r = ((uint32_t)e << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++; /* carry may reach Inf: correct */
    return (uint16_t)(sign | r);
}

/* bf16 is the top half of a binary32: widening is exact, NaN payloads included. */
static inline float kq_bf16_to_f32(uint16_t h) { return kq_bits_f32((uint32_t)h << 16); }

static inline uint16_t kq_f32_to_bf16(float f) {
    const uint32_t u = kq_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#endif
