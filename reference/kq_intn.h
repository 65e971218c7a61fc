/* kq INT-N layout helpers (INT-N layout version 1, docs/formats.md), shared by the reference and the
 * optimized kernels so both find headers and chunks the same way.
 *
 * A chunk holds 32 consecutive codes in 4*b bytes: element j (0..31) sits in byte j % (4*b) at bit
 * shift (j / (4*b)) * b. With this rule every byte of a chunk holds codes 4*b apart, so a SIMD
 * unpack is "load 4*b bytes, shift right by k*b, mask" for k = 0 .. 8/b - 1, each giving 4*b
 * consecutive codes (for b = 4 this is q4_0's nibble order). */
#ifndef KQ_INTN_H
#define KQ_INTN_H

#include <stddef.h>
#include <stdint.h>

#include "kq_types.h"

#define KQ_INTN_LAYOUT_VERSION 1

static inline size_t kq_intn_chunk_bytes(int bits) { return (size_t)(4 * bits); }
static inline size_t kq_intn_header_bytes(int asym) { return asym ? 4u : 2u; }

/* Unpacks one chunk into 32 unsigned codes u in [0, 2^bits - 1]. */
static inline void kq_intn_unpack_chunk(const uint8_t *chunk, int bits, uint8_t u[32]) {
    const int nb = 4 * bits;
    const unsigned mask = (1u << bits) - 1u;
    for (int j = 0; j < 32; j++) u[j] = (uint8_t)((chunk[j % nb] >> ((j / nb) * bits)) & mask);
}

/* Packs 32 codes (each already < 2^bits) into one chunk of 4*bits bytes. */
static inline void kq_intn_pack_chunk(const uint8_t u[32], int bits, uint8_t *chunk) {
    const int nb = 4 * bits;
    for (int k = 0; k < nb; k++) chunk[k] = 0;
    for (int j = 0; j < 32; j++) chunk[j % nb] = (uint8_t)(chunk[j % nb] | (u[j] << ((j / nb) * bits)));
}

/* Bytes of the group (or whole-row header) block of t that holds element i, from the row start.
 * Group types: block i/group; whole-row types: the single header at offset 0. */
static inline size_t kq_intn_header_offset(const kq_type_traits *t, int64_t i) {
    if (t->intn_group == 0) return 0;
    return (size_t)(i / t->intn_group) * t->block_bytes;
}

/* Offset from the row start of the chunk holding elements i .. i+31 (i a multiple of 32). */
static inline size_t kq_intn_chunk_offset(const kq_type_traits *t, int64_t i) {
    const size_t hb = kq_intn_header_bytes(t->intn_asym);
    const size_t cb = kq_intn_chunk_bytes(t->intn_bits);
    if (t->intn_group == 0) return hb + (size_t)(i / 32) * cb;
    return kq_intn_header_offset(t, i) + hb + (size_t)((i % t->intn_group) / 32) * cb;
}

/* The fp16 header fields, little-endian whatever the host. */
static inline uint16_t kq_intn_read_half(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void kq_intn_write_half(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)(h & 0xffu);
    p[1] = (uint8_t)(h >> 8);
}

#endif
