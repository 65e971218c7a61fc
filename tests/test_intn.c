/* Tests of kq's INT-N formats (docs/formats.md, layout version 1): traits, packing, hand-computed
 * bytes, row sizes, vec_dot against an independent evaluation of the contract, quality targets. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "kq_intn.h"
#include "kq_ref.h"
#include "kq_test.h"

/* ---- deterministic pseudo-normal input (xorshift64 + Box-Muller; no GSL, runs under qemu) ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double rng_unit(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; } /* (0,1) */

static void rng_normal(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 2) {
        const double r = sqrt(-2.0 * log(rng_unit())), t = 6.283185307179586 * rng_unit();
        x[i] = (float)(r * cos(t));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(t));
    }
}

/* ---- the layout, written independently of reference/kq_intn.h -------------------------------- */

/* Bit s of chunk byte k holds bit (s % b) of element (s / b) * 4b + k. */
static void t_unpack(const uint8_t *chunk, int b, uint8_t u[32]) {
    memset(u, 0, 32);
    for (int k = 0; k < 4 * b; k++)
        for (int s = 0; s < 8; s++)
            if (chunk[k] >> s & 1) u[(s / b) * 4 * b + k] |= (uint8_t)(1u << (s % b));
}

static size_t t_hdr(int asym) { return asym ? 4 : 2; }

static size_t t_row_size(int b, int g, int asym, int64_t n) {
    if (g == 0) return t_hdr(asym) + (size_t)n * (size_t)b / 8;
    return (size_t)(n / g) * (t_hdr(asym) + (size_t)g * (size_t)b / 8);
}

/* Reads (d, m) and the 32 codes of activation block blk of a row. */
static void t_block(const kq_type_traits *t, const uint8_t *row, int64_t blk, float *d, float *m, uint8_t u[32]) {
    const int b = t->intn_bits, g = t->intn_group, as = t->intn_asym;
    const uint8_t *h, *c;
    if (g == 0) {
        h = row;
        c = row + t_hdr(as) + (size_t)blk * 4 * (size_t)b;
    } else {
        const int64_t per = g / 32, gi = blk / per;
        h = row + (size_t)gi * (t_hdr(as) + (size_t)g * (size_t)b / 8);
        c = h + t_hdr(as) + (size_t)(blk % per) * 4 * (size_t)b;
    }
    *d = kq_f16_to_f32((uint16_t)(h[0] | h[1] << 8));
    *m = as ? kq_f16_to_f32((uint16_t)(h[2] | h[3] << 8)) : 0.0f;
    t_unpack(c, b, u);
}

static int t_level(int u, int b, int asym) {
    if (asym) return u;
    return b == 1 ? 2 * u - 1 : u - (1 << (b - 1));
}

/* ---- traits ----------------------------------------------------------------------------------- */

static void test_traits(void) {
    static const int bits[4] = {1, 2, 4, 8}, groups[4] = {0, 32, 64, 128};
    KQ_CHECK(kq_intn_traits_count() == 32, "count %zu", kq_intn_traits_count());
    size_t i = 0;
    for (int bi = 0; bi < 4; bi++)
        for (int gc = 0; gc < 4; gc++)
            for (int as = 0; as < 2; as++, i++) {
                const kq_type_traits *t = kq_intn_traits_at(i);
                const int b = bits[bi], g = groups[gc];
                char name[32];
                if (g) snprintf(name, sizeof name, "i%d_g%d_%s", b, g, as ? "asym" : "sym");
                else snprintf(name, sizeof name, "i%d_row_%s", b, as ? "asym" : "sym");
                if (!t) { KQ_CHECK(0, "row %zu missing", i); continue; }
                KQ_CHECK((int)t->type == 1000 + 10 * b + 2 * gc + as, "%s id %d", name, (int)t->type);
                KQ_CHECK(strcmp(t->name, name) == 0, "row %zu name %s, want %s", i, t->name, name);
                KQ_CHECK(t->intn_bits == b && t->intn_group == g && t->intn_asym == as, "%s fields", name);
                KQ_CHECK(t->vec_dot_type == (as ? KQ_TYPE_Q8_1 : KQ_TYPE_Q8_0), "%s vec_dot_type", name);
                KQ_CHECK(t->block_elems == (g ? g : 32), "%s block_elems %d", name, t->block_elems);
                KQ_CHECK(t->block_bytes == (g ? (size_t)(2 + 2 * as + g * b / 8) : (size_t)(4 * b)),
                         "%s block_bytes %zu", name, t->block_bytes);
                KQ_CHECK(t->row_overhead == (g ? 0u : (size_t)(2 + 2 * as)), "%s overhead", name);
                KQ_CHECK(t->quantize_row && t->dequantize_row && t->vec_dot, "%s functions", name);
                KQ_CHECK(kq_type_by_name(name) == t, "%s by name", name);
                KQ_CHECK(kq_ref_traits(t->type) == t, "%s by id", name);
                KQ_CHECK(kq_type_is_intn(t->type), "%s is intn", name);
            }
    KQ_CHECK(kq_intn_traits_at(32) == NULL, "past the end");
}

/* ---- packing ---------------------------------------------------------------------------------- */

static void test_pack(void) {
    static const int bits[4] = {1, 2, 4, 8};
    for (int bi = 0; bi < 4; bi++) {
        const int b = bits[bi], nv = 1 << b;
        int ok = 1, ok_ref = 1;
        /* every code value at every position (nv shifts of a pattern covering all values) */
        for (int k = 0; k < nv; k++) {
            uint8_t u[32], v[32], w[32], chunk[32];
            for (int j = 0; j < 32; j++) u[j] = (uint8_t)((j * 7 + k) % nv);
            memset(chunk, 0xA5, sizeof chunk);
            kq_intn_pack_chunk(u, b, chunk);
            kq_intn_unpack_chunk(chunk, b, v);
            t_unpack(chunk, b, w);
            ok &= memcmp(u, v, 32) == 0;
            ok_ref &= memcmp(u, w, 32) == 0;
            ok &= b == 8 || chunk[4 * b] == 0xA5; /* writes exactly 4b bytes (b = 8 fills the chunk) */
        }
        KQ_CHECK(ok, "b=%d pack/unpack round trip", b);
        KQ_CHECK(ok_ref, "b=%d pack agrees with the documented bit positions", b);
    }
    /* hand-written: b=4 like q4_0 (low nibble j, high nibble j+16); b=2 byte k = u[k] u[k+8] u[k+16] u[k+24] */
    uint8_t u[32], c[32];
    for (int j = 0; j < 32; j++) u[j] = (uint8_t)(j < 16 ? j : 15 - (j - 16));
    kq_intn_pack_chunk(u, 4, c);
    KQ_CHECK(c[0] == 0xF0 && c[1] == 0xE1 && c[15] == 0x0F, "b=4 bytes %02x %02x %02x", c[0], c[1], c[15]);
    for (int j = 0; j < 32; j++) u[j] = (uint8_t)(j / 8);
    kq_intn_pack_chunk(u, 2, c);
    int all = 1;
    for (int k = 0; k < 8; k++) all &= c[k] == 0xE4; /* 0b11100100 */
    KQ_CHECK(all, "b=2 bytes %02x", c[0]);
    for (int j = 0; j < 32; j++) u[j] = (uint8_t)(j == 5 || j == 31);
    kq_intn_pack_chunk(u, 1, c);
    KQ_CHECK(c[0] == 0 && c[1] == 0x02 && c[2] == 0 && c[3] == 0x80, "b=1 bytes %02x %02x %02x %02x", c[0], c[1],
             c[2], c[3]);
}

/* ---- hand-computed layouts --------------------------------------------------------------------- */

static void quantize(const kq_type_traits *t, const float *x, void *y, int64_t n, kq_scale_mode mode) {
    kq_quantize_row_intn_ref(t, x, y, n, mode);
}

static void test_layout(void) {
    uint8_t y[64];
    float x[32];
    /* i4_g32_sym, x = 0.5 * (j%16 - 8): only d = 0.5 reproduces x, codes u = j % 16 */
    const kq_type_traits *t = kq_type_by_name("i4_g32_sym");
    for (int j = 0; j < 32; j++) x[j] = 0.5f * (float)(j % 16 - 8);
    memset(y, 0xEE, sizeof y);
    t->quantize_row(x, y, 32);
    int ok = y[0] == 0x00 && y[1] == 0x38 && y[18] == 0xEE;
    for (int k = 0; k < 16; k++) ok &= y[2 + k] == (uint8_t)(k | k << 4);
    KQ_CHECK(ok, "i4_g32_sym bytes %02x %02x %02x %02x", y[0], y[1], y[2], y[3]);
    /* the same 32 values as a whole row: header then one chunk, the same 18 bytes */
    uint8_t z[64];
    memset(z, 0xEE, sizeof z);
    kq_type_by_name("i4_row_sym")->quantize_row(x, z, 32);
    KQ_CHECK(memcmp(y, z, 19) == 0, "i4_row_sym n=32 bytes = i4_g32_sym bytes");

    /* i4_g32_asym, x = 0.25 * (j%16) - 1: d = 0.25 (0x3400), m = -1 (0xBC00) */
    t = kq_type_by_name("i4_g32_asym");
    for (int j = 0; j < 32; j++) x[j] = 0.25f * (float)(j % 16) - 1.0f;
    for (int mode = 0; mode < 2; mode++) {
        memset(y, 0xEE, sizeof y);
        quantize(t, x, y, 32, (kq_scale_mode)mode);
        ok = y[0] == 0x00 && y[1] == 0x34 && y[2] == 0x00 && y[3] == 0xBC && y[20] == 0xEE;
        for (int k = 0; k < 16; k++) ok &= y[4 + k] == (uint8_t)(k | k << 4);
        KQ_CHECK(ok, "i4_g32_asym mode %d bytes %02x %02x %02x %02x %02x", mode, y[0], y[1], y[2], y[3], y[4]);
    }

    /* i2_row_sym, n = 32, x = 1.5 * (j%4 - 2): header 0x3E00, byte k = (k%4) * 0x55 */
    t = kq_type_by_name("i2_row_sym");
    for (int j = 0; j < 32; j++) x[j] = 1.5f * (float)(j % 4 - 2);
    memset(y, 0xEE, sizeof y);
    t->quantize_row(x, y, 32);
    ok = y[0] == 0x00 && y[1] == 0x3E && y[10] == 0xEE;
    for (int k = 0; k < 8; k++) ok &= y[2 + k] == (uint8_t)((k % 4) * 0x55);
    KQ_CHECK(ok, "i2_row_sym bytes %02x %02x %02x %02x", y[0], y[1], y[2], y[3]);
    /* --scale max: d = amax / (2^(b-1) - 1) = 3 (0x4200) */
    quantize(t, x, y, 32, KQ_SCALE_MAX);
    KQ_CHECK(y[0] == 0x00 && y[1] == 0x42, "i2_row_sym max d %02x%02x", y[1], y[0]);

    /* i1_g32_sym: x = +-0.75: d = 0.75 (0x3A00), u = (x >= 0), element j in byte j%4 bit j/4 */
    t = kq_type_by_name("i1_g32_sym");
    for (int j = 0; j < 32; j++) x[j] = j % 3 == 0 ? -0.75f : 0.75f;
    memset(y, 0xEE, sizeof y);
    t->quantize_row(x, y, 32);
    ok = y[0] == 0x00 && y[1] == 0x3A && y[6] == 0xEE;
    for (int k = 0; k < 4; k++) {
        uint8_t want = 0;
        for (int s = 0; s < 8; s++) want |= (uint8_t)((4 * s + k) % 3 != 0) << s;
        ok &= y[2 + k] == want;
    }
    KQ_CHECK(ok, "i1_g32_sym bytes %02x %02x %02x", y[0], y[1], y[2]);

    /* i8_g32_sym: codes are bytes, u = q + 128; x = 2 * (j - 16) -> amax 32 on the negative side */
    t = kq_type_by_name("i8_g32_sym");
    for (int j = 0; j < 32; j++) x[j] = 0.25f * (float)(j - 16);
    t->quantize_row(x, y, 32);
    float dd = kq_f16_to_f32((uint16_t)(y[0] | y[1] << 8));
    ok = 1;
    for (int j = 0; j < 32; j++) ok &= dd * (float)(y[2 + j] - 128) == x[j];
    KQ_CHECK(ok, "i8_g32_sym exact for x on a grid (d=%g)", (double)dd);
}

/* ---- row sizes ----------------------------------------------------------------------------------- */

static void test_sizes(void) {
    for (size_t i = 0; i < kq_intn_traits_count(); i++) {
        const kq_type_traits *t = kq_intn_traits_at(i);
        const int b = t->intn_bits, g = t->intn_group, as = t->intn_asym;
        const int64_t ns[3] = {4096, 384, 11008};
        for (int k = 0; k < 3; k++)
            KQ_CHECK(kq_row_size(t->type, ns[k]) == t_row_size(b, g, as, ns[k]), "%s n=%lld size %zu", t->name,
                     (long long)ns[k], kq_row_size(t->type, ns[k]));
        KQ_CHECK(kq_row_ok(t->type, 96) == (g == 0 || g == 32), "%s row_ok 96", t->name);
        KQ_CHECK(!kq_row_ok(t->type, 48) && !kq_row_ok(t->type, 0), "%s row_ok 48/0", t->name);
        const double bpw = kq_bits_per_weight(t->type, 4096);
        const double want = 8.0 * (double)t_row_size(b, g, as, 4096) / 4096.0;
        KQ_CHECK(fabs(bpw - want) < 1e-12, "%s bpw %g", t->name, bpw);
    }
    /* spot values written out: i4_g128_sym = 66 bytes per 128, i2_row_asym = 4 + n/4 */
    KQ_CHECK(kq_row_size(KQ_INTN_ID(4, 3, 0), 4096) == 32 * 66, "i4_g128_sym 4096");
    KQ_CHECK(kq_row_size(KQ_INTN_ID(2, 0, 1), 4096) == 1028, "i2_row_asym 4096");
    KQ_CHECK(kq_row_size(KQ_INTN_ID(1, 1, 1), 64) == 2 * 8, "i1_g32_asym 64");
}

/* ---- dequantize and vec_dot against the documented formulas ---------------------------------------- */

/* Activation blocks made directly (any valid q8_0 / q8_1 block is a legal input). */
static void make_act(int asym, int64_t n, void *a) {
    for (int64_t blk = 0; blk < n / 32; blk++) {
        int8_t qs[32];
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            qs[j] = (int8_t)((int)(rng_next() % 255) - 127);
            sum += qs[j];
        }
        const float d = (float)(0.001 + 0.05 * rng_unit());
        if (asym) {
            kq_block_q8_1 *p = (kq_block_q8_1 *)a + blk;
            memcpy(p->qs, qs, 32);
            p->d = kq_f32_to_f16(d);
            p->s = kq_f32_to_f16(d * (float)sum);
        } else {
            kq_block_q8_0 *p = (kq_block_q8_0 *)a + blk;
            memcpy(p->qs, qs, 32);
            p->d = kq_f32_to_f16(d);
        }
    }
}

static float t_vec_dot(const kq_type_traits *t, const uint8_t *row, const void *a, int64_t n) {
    float lanes[8] = {0};
    for (int64_t blk = 0; blk < n / 32; blk++) {
        float dw, mw, c;
        uint8_t u[32];
        int32_t isum = 0;
        t_block(t, row, blk, &dw, &mw, u);
        if (t->intn_asym) {
            const kq_block_q8_1 *p = (const kq_block_q8_1 *)a + blk;
            for (int j = 0; j < 32; j++) isum += u[j] * p->qs[j];
            const float da = kq_f16_to_f32(p->d), sa = kq_f16_to_f32(p->s);
            const float prod = dw * da, first = (float)isum * prod, second = mw * sa;
            c = first + second;
        } else {
            const kq_block_q8_0 *p = (const kq_block_q8_0 *)a + blk;
            for (int j = 0; j < 32; j++) isum += t_level(u[j], t->intn_bits, 0) * p->qs[j];
            const float prod = dw * kq_f16_to_f32(p->d);
            c = (float)isum * prod;
        }
        lanes[blk % 8] = lanes[blk % 8] + c;
    }
    const float s04 = lanes[0] + lanes[4], s15 = lanes[1] + lanes[5];
    const float s26 = lanes[2] + lanes[6], s37 = lanes[3] + lanes[7];
    return (s04 + s15) + (s26 + s37);
}

static void check_type_n(const kq_type_traits *t, int64_t n) {
    const size_t rs = kq_row_size(t->type, n), stride = rs + 7; /* a stride that is not the row size */
    uint8_t *w = calloc(3, stride);
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    void *a = malloc((size_t)(n / 32) * sizeof(kq_block_q8_1));
    int deq_ok = 1;
    for (int r = 0; r < 3; r++) {
        rng_normal(x, n);
        for (int64_t i = 0; i < n; i++) x[i] = x[i] * 0.03f + (t->intn_asym ? 0.01f * (float)r : 0.0f);
        t->quantize_row(x, w + (size_t)r * stride, n);
        t->dequantize_row(w + (size_t)r * stride, y, n);
        for (int64_t blk = 0; blk < n / 32; blk++) {
            float d, m;
            uint8_t u[32];
            t_block(t, w + (size_t)r * stride, blk, &d, &m, u);
            for (int j = 0; j < 32; j++) {
                float want = d * (float)t_level(u[j], t->intn_bits, t->intn_asym);
                if (t->intn_asym) want = want + m;
                deq_ok &= memcmp(&want, &y[blk * 32 + j], 4) == 0;
            }
        }
    }
    KQ_CHECK(deq_ok, "%s n=%lld dequantize = d*q (+m)", t->name, (long long)n);
    make_act(t->intn_asym, n, a);
    for (int nrc = 1; nrc <= 3; nrc++) {
        float s[3] = {NAN, NAN, NAN};
        t->vec_dot(n, s, w, stride, a, nrc);
        int ok = 1;
        for (int r = 0; r < nrc; r++) {
            const float want = t_vec_dot(t, w + (size_t)r * stride, a, n);
            ok &= memcmp(&want, &s[r], 4) == 0;
        }
        ok &= nrc == 3 || isnan(s[nrc]); /* writes exactly nrc results */
        KQ_CHECK(ok, "%s n=%lld nrc=%d vec_dot = contract (%.9g)", t->name, (long long)n, nrc, (double)s[0]);
    }
    free(w);
    free(x);
    free(y);
    free(a);
}

static void test_vec_dot(void) {
    for (size_t i = 0; i < kq_intn_traits_count(); i++) {
        const kq_type_traits *t = kq_intn_traits_at(i);
        check_type_n(t, 384); /* 12 activation blocks: every lane, two passes over lanes 0..3 */
        if (t->intn_group <= 32) check_type_n(t, 96);
    }
    /* semantic check: vec_dot is close to the float dot of the dequantized weights and activations */
    const kq_type_traits *t = kq_type_by_name("i4_g64_asym");
    const int64_t n = 256;
    float x[256], wd[256];
    uint8_t w[512];
    kq_block_q8_1 a[8];
    rng_normal(x, n);
    t->quantize_row(x, w, n);
    t->dequantize_row(w, wd, n);
    make_act(1, n, a);
    double ref = 0.0;
    for (int64_t i = 0; i < n; i++) ref += (double)wd[i] * kq_f16_to_f32(a[i / 32].d) * a[i / 32].qs[i % 32];
    float s;
    t->vec_dot(n, &s, w, 0, a, 1);
    KQ_CHECK(fabs(s - ref) <= 1e-2 * (1.0 + fabs(ref)), "i4_g64_asym dot %g vs %g", (double)s, ref);
}

/* ---- quality ---------------------------------------------------------------------------------------- */

#define QROWS 4
#define QN 4096

static double rel_error(const kq_type_traits *t, kq_scale_mode mode) {
    float *x = malloc(QN * sizeof(float)), *y = malloc(QN * sizeof(float));
    uint8_t *q = malloc(kq_row_size(t->type, QN));
    double num = 0.0, den = 0.0;
    rng_state = 0x2545F4914F6CDD1Dull; /* the same rows for every type */
    for (int r = 0; r < QROWS; r++) {
        rng_normal(x, QN);
        quantize(t, x, q, QN, mode);
        t->dequantize_row(q, y, QN);
        for (int i = 0; i < QN; i++) {
            num += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            den += (double)x[i] * x[i];
        }
    }
    free(x);
    free(y);
    free(q);
    return sqrt(num / den);
}

/* Targets: relative Frobenius error of an error-minimising quantizer on N(0,1) rows of 4096
 * (1-bit: sqrt(1 - 2/pi) = 0.603 is the row limit of any sign code). Index: [bits][gcode][asym]. */
static double target(int b, int gc, int as) {
    static const double t4[4][2] = {{0.107, 0.106}, {0.086, 0.071}, {0.094, 0.082}, {0.100, 0.090}};
    static const double t2[4][2] = {{0.39, 0.345}, {0.37, 0.29}, {0.38, 0.315}, {0.385, 0.33}};
    if (b == 8) return 0.008;
    if (b == 4) return t4[gc][as];
    if (b == 2) return t2[gc][as];
    return 0.605;
}

static void test_quality(void) {
    printf("type            search     max  target\n");
    for (size_t i = 0; i < kq_intn_traits_count(); i++) {
        const kq_type_traits *t = kq_intn_traits_at(i);
        const int b = t->intn_bits, g = t->intn_group, as = t->intn_asym;
        const int gc = g == 0 ? 0 : g == 32 ? 1 : g == 64 ? 2 : 3;
        const double es = rel_error(t, KQ_SCALE_SEARCH), em = rel_error(t, KQ_SCALE_MAX);
        const double want = target(b, gc, as);
        printf("%-14s %7.4f %7.4f %7.3f\n", t->name, es, em, want);
        KQ_CHECK(es <= want * 1.03, "%s error %.4f above target %.3f", t->name, es, want);
        KQ_CHECK(es <= em, "%s search %.4f worse than max %.4f", t->name, es, em);
        if (b == 2) KQ_CHECK(es < 0.9 * em, "%s: search %.4f not clearly better than max %.4f", t->name, es, em);
        if (b == 1) KQ_CHECK(es > (g == 0 && !as ? 0.595 : 0.5), "%s 1-bit error %.4f too good to be true", t->name, es);
    }
}

/* ---- special inputs ----------------------------------------------------------------------------------- */

static void test_special(void) {
    float x[256], y[256];
    uint8_t q[512];
    for (size_t i = 0; i < kq_intn_traits_count(); i++) {
        const kq_type_traits *t = kq_intn_traits_at(i);
        for (int mode = 0; mode < 2; mode++) {
            /* zeros give zeros (and d = 0, no NaN) */
            memset(x, 0, sizeof x);
            quantize(t, x, q, 256, (kq_scale_mode)mode);
            t->dequantize_row(q, y, 256);
            int ok = 1;
            for (int j = 0; j < 256; j++) ok &= y[j] == 0.0f;
            ok &= q[0] == 0 && (q[1] & 0x7f) == 0;
            KQ_CHECK(ok, "%s mode %d zeros", t->name, mode);
            /* a constant row comes back as the fp16 constant (asym) or near it (sym) */
            for (int j = 0; j < 256; j++) x[j] = 0.3f;
            quantize(t, x, q, 256, (kq_scale_mode)mode);
            t->dequantize_row(q, y, 256);
            ok = 1;
            for (int j = 0; j < 256; j++) ok &= fabsf(y[j] - 0.3f) <= (t->intn_asym || t->intn_bits == 1 ? 2e-4f : 0.3f / 2);
            KQ_CHECK(ok, "%s mode %d constant: %g", t->name, mode, (double)y[0]);
            /* tiny values below fp16's range: finite output, no NaN */
            for (int j = 0; j < 256; j++) x[j] = (float)(j % 7 - 3) * 1e-30f;
            quantize(t, x, q, 256, (kq_scale_mode)mode);
            t->dequantize_row(q, y, 256);
            ok = 1;
            for (int j = 0; j < 256; j++) ok &= fabsf(y[j]) < 1e-6f;
            KQ_CHECK(ok, "%s mode %d tiny", t->name, mode);
            /* huge values saturate fp16 instead of producing Inf */
            for (int j = 0; j < 256; j++) x[j] = (j % 2 ? 1e9f : -1e9f);
            quantize(t, x, q, 256, (kq_scale_mode)mode);
            t->dequantize_row(q, y, 256);
            ok = 1;
            for (int j = 0; j < 256; j++) ok &= isfinite(y[j]);
            KQ_CHECK(ok, "%s mode %d huge stays finite", t->name, mode);
        }
    }
    /* determinism: same bytes twice */
    const kq_type_traits *t = kq_type_by_name("i2_g128_asym");
    uint8_t q2[512];
    rng_normal(x, 256);
    t->quantize_row(x, q, 256);
    t->quantize_row(x, q2, 256);
    KQ_CHECK(memcmp(q, q2, kq_row_size(t->type, 256)) == 0, "deterministic");
}

int main(void) {
    test_traits();
    test_pack();
    test_layout();
    test_sizes();
    test_vec_dot();
    test_special();
    test_quality();
    return kq_test_finish();
}
