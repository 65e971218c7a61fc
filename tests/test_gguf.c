/* GGUF writer and reader: round trips, exact bytes, streaming, writer errors, the real
 * stories260K.gguf, hostile files built by hand (independently of the writer), kq inspect. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "kq_test.h"

int kq_cmd_inspect(int argc, char **argv);

static char tmpdir[256];

static const char *tpath(const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
    return buf;
}

static int dir_entries(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void clean_dir(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    char p[512];
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tpath(e->d_name, p, sizeof(p)));
    closedir(d);
}

static uint8_t pattern(int t, uint64_t i) { return (uint8_t)(i * 131u + (uint64_t)t * 17u + (i >> 8)); }

/* ---------------------------------------------------------------------------------------------
 * 1. exact bytes of a tiny file, built by hand from the specification */
static void test_exact_bytes(void) {
    char p[512], err[256];
    kq_gguf_writer *w = kq_gguf_writer_new();
    KQ_CHECK(kq_gguf_set_u32(w, "a", 7) == 0, "set");
    const int64_t ne[1] = {8};
    KQ_CHECK(kq_gguf_add_tensor(w, "t", 1, ne, KQ_TYPE_F32) == 0, "add");
    KQ_CHECK(kq_gguf_write_begin(w, tpath("exact.gguf", p, sizeof(p)), err, sizeof(err)) == 0, "begin: %s", err);
    uint8_t data[32];
    for (int i = 0; i < 32; i++) data[i] = (uint8_t)(0xa0 + i);
    KQ_CHECK(kq_gguf_write_data(w, 0, data, 32, err, sizeof(err)) == 0, "data: %s", err);
    KQ_CHECK(kq_gguf_write_finish(w, err, sizeof(err)) == 0, "finish: %s", err);
    kq_gguf_writer_free(w);

    uint8_t want[128] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                         /* key */ 1, 0, 0, 0, 0, 0, 0, 0, 'a', 4, 0, 0, 0, 7, 0, 0, 0,
                         /* tensor info */ 1, 0, 0, 0, 0, 0, 0, 0, 't', 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0,
                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    /* 74 bytes of header, zero padding to 96, then the data */
    memcpy(want + 96, data, 32);
    size_t len = 0;
    uint8_t *got = kq_test_read_file(p, &len);
    KQ_CHECK(got && len == 128, "exact file: %zu bytes, expected 128", len);
    if (got && len == 128) {
        int first = -1;
        for (int i = 0; i < 128 && first < 0; i++)
            if (got[i] != want[i]) first = i;
        KQ_CHECK(first < 0, "exact file differs at byte %d", first);
    }
    free(got);
}

/* ---------------------------------------------------------------------------------------------
 * 2. round trip of every value type and several tensor types, streamed in chunks */
typedef struct {
    const char *name;
    int n_dims;
    int64_t ne[4];
    kq_type type;
    uint64_t bytes; /* worked out by hand from the block layouts */
} tspec;

static const tspec kq_tensors[] = {
    {"f32.vec", 1, {7, 1, 1, 1}, KQ_TYPE_F32, 28},
    {"q4_0.mat", 2, {64, 3, 1, 1}, KQ_TYPE_Q4_0, 2 * 18 * 3},
    {"q8_0.3d", 3, {32, 5, 2, 1}, KQ_TYPE_Q8_0, 34 * 10},
    {"f16.mat", 2, {10, 3, 1, 1}, KQ_TYPE_F16, 60},
    {"i4_g32_sym.mat", 2, {64, 2, 1, 1}, KQ_INTN_ID(4, 1, 0), 2 * 2 * 18},
    {"i4_row_asym.mat", 2, {64, 3, 1, 1}, KQ_INTN_ID(4, 0, 1), 3 * (4 + 2 * 16)},
    {"q4_K.4d", 4, {256, 2, 1, 2}, KQ_TYPE_Q4_K, 144 * 4},
};
#define KQ_NT (int)(sizeof(kq_tensors) / sizeof(kq_tensors[0]))

static int write_model(const char *path, uint32_t alignment, int chunky) {
    char err[256];
    kq_gguf_writer *w = kq_gguf_writer_new();
    int bad = 0;
    bad |= kq_gguf_set_str(w, "general.architecture", "llama");
    if (alignment) bad |= kq_gguf_set_u32(w, "general.alignment", alignment);
    bad |= kq_gguf_set_u8(w, "t.u8", 250);
    bad |= kq_gguf_set_i8(w, "t.i8", -128);
    bad |= kq_gguf_set_u16(w, "t.u16", 65535);
    bad |= kq_gguf_set_i16(w, "t.i16", -32768);
    bad |= kq_gguf_set_u32(w, "t.u32", 4000000000u);
    bad |= kq_gguf_set_i32(w, "t.i32", -2000000000);
    bad |= kq_gguf_set_u64(w, "t.u64", 0xfedcba9876543210ull);
    bad |= kq_gguf_set_i64(w, "t.i64", INT64_MIN);
    bad |= kq_gguf_set_f32(w, "t.f32", 1e-5f);
    bad |= kq_gguf_set_f64(w, "t.f64", -2.5e300);
    bad |= kq_gguf_set_bool(w, "t.bool", 7); /* any non-zero is true */
    bad |= kq_gguf_set_str(w, "t.str", "replaced later");
    bad |= kq_gguf_set_strn(w, "t.strn", "a\0b", 3);
    const uint8_t au8[3] = {1, 2, 255};
    const int8_t ai8[2] = {-1, 127};
    const uint16_t au16[2] = {1, 65535};
    const int16_t ai16[2] = {-2, 300};
    const uint32_t au32[3] = {1, 2, 0xffffffffu};
    const int32_t ai32[2] = {-5, 5};
    const float af32[3] = {0.5f, -0.0f, 3.25f};
    const uint8_t abool[4] = {1, 0, 0, 1};
    const uint64_t au64[2] = {0, 0x8000000000000001ull};
    const int64_t ai64[2] = {-1, INT64_MAX};
    const double af64[2] = {1.0 / 3.0, -0.0};
    bad |= kq_gguf_set_arr(w, "a.u8", KQ_GGUF_U8, au8, 3);
    bad |= kq_gguf_set_arr(w, "a.i8", KQ_GGUF_I8, ai8, 2);
    bad |= kq_gguf_set_arr(w, "a.u16", KQ_GGUF_U16, au16, 2);
    bad |= kq_gguf_set_arr(w, "a.i16", KQ_GGUF_I16, ai16, 2);
    bad |= kq_gguf_set_arr(w, "a.u32", KQ_GGUF_U32, au32, 3);
    bad |= kq_gguf_set_arr(w, "a.i32", KQ_GGUF_I32, ai32, 2);
    bad |= kq_gguf_set_arr(w, "a.f32", KQ_GGUF_F32, af32, 3);
    bad |= kq_gguf_set_arr(w, "a.bool", KQ_GGUF_BOOL, abool, 4);
    bad |= kq_gguf_set_arr(w, "a.u64", KQ_GGUF_U64, au64, 2);
    bad |= kq_gguf_set_arr(w, "a.i64", KQ_GGUF_I64, ai64, 2);
    bad |= kq_gguf_set_arr(w, "a.f64", KQ_GGUF_F64, af64, 2);
    bad |= kq_gguf_set_arr(w, "a.empty", KQ_GGUF_F32, NULL, 0);
    const char *strs[4] = {"<unk>", "\xe2\x96\x81t", "", "x\0y"};
    const size_t lens[4] = {5, 4, 0, 3};
    bad |= kq_gguf_set_arr_str(w, "a.str", strs, lens, 4);
    const char *strs0[2] = {"one", "two"};
    bad |= kq_gguf_set_arr_str(w, "a.str0", strs0, NULL, 2);
    bad |= kq_gguf_set_str(w, "t.str", "value"); /* replaces in place */
    KQ_CHECK(!bad, "a setter failed");
    KQ_CHECK(kq_gguf_set_arr(w, "a.bad", KQ_GGUF_STR, au8, 1) == -1, "string elem type via set_arr accepted");
    KQ_CHECK(kq_gguf_set_arr(w, "a.bad", KQ_GGUF_ARR, au8, 1) == -1, "nested array accepted");
    KQ_CHECK(kq_gguf_set_u8(w, "", 1) == -1, "empty key accepted");
    KQ_CHECK(kq_gguf_set_u8(w, "caf\xc3\xa9", 1) == -1, "non-ASCII key accepted");

    for (int t = 0; t < KQ_NT; t++) {
        const int idx = kq_gguf_add_tensor(w, kq_tensors[t].name, kq_tensors[t].n_dims, kq_tensors[t].ne, kq_tensors[t].type);
        KQ_CHECK(idx == t, "add_tensor %s -> %d", kq_tensors[t].name, idx);
        KQ_CHECK(kq_gguf_writer_tensor_size(w, t) == kq_tensors[t].bytes, "%s: writer size %llu, expected %llu",
                 kq_tensors[t].name, (unsigned long long)kq_gguf_writer_tensor_size(w, t),
                 (unsigned long long)kq_tensors[t].bytes);
    }
    if (kq_gguf_write_begin(w, path, err, sizeof(err))) {
        KQ_CHECK(0, "begin: %s", err);
        kq_gguf_writer_free(w);
        return -1;
    }
    KQ_CHECK(kq_gguf_set_u8(w, "late", 1) == -1, "setter after write_begin accepted");
    const int64_t ne[1] = {32};
    KQ_CHECK(kq_gguf_add_tensor(w, "late", 1, ne, KQ_TYPE_F32) == -1, "add_tensor after write_begin accepted");
    uint8_t buf[1024];
    for (int t = 0; t < KQ_NT; t++) {
        const uint64_t n = kq_tensors[t].bytes;
        for (uint64_t i = 0; i < n; i++) buf[i] = pattern(t, i);
        /* chunky: 1 byte, 7 bytes, then rows of odd sizes; else one write */
        uint64_t done = 0;
        const uint64_t steps[3] = {1, 7, 13};
        for (int s = 0; done < n; s++) {
            uint64_t c = chunky ? steps[s < 3 ? s : 2] : n;
            if (c > n - done) c = n - done;
            if (kq_gguf_write_data(w, t, buf + done, (size_t)c, err, sizeof(err))) {
                KQ_CHECK(0, "write_data %s: %s", kq_tensors[t].name, err);
                kq_gguf_writer_free(w);
                return -1;
            }
            done += c;
        }
    }
    const int rc = kq_gguf_write_finish(w, err, sizeof(err));
    KQ_CHECK(rc == 0, "finish: %s", err);
    kq_gguf_writer_free(w);
    return rc;
}

static void check_values(const kq_gguf *g) {
    /* order: insertion order, replacement in place */
    static const char *const order[] = {"general.architecture", "t.u8", "t.i8", "t.u16", "t.i16", "t.u32",
                                        "t.i32", "t.u64", "t.i64", "t.f32", "t.f64", "t.bool", "t.str"};
    const int off = kq_gguf_find_key(g, "general.alignment") >= 0; /* alignment is key 1 when set */
    for (int i = 0; i < 13; i++) {
        const char *k = kq_gguf_key(g, i + (i ? off : 0));
        KQ_CHECK(k && !strcmp(k, order[i]), "key %d is '%s', expected '%s'", i, k ? k : "(null)", order[i]);
    }
    kq_gguf_value v;
    int64_t i;
    KQ_CHECK((i = kq_gguf_find_key(g, "t.u8")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_U8 &&
                 !kq_gguf_kv_value(g, i, &v) && v.u == 250, "t.u8");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.i8")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_I8 &&
                 !kq_gguf_kv_value(g, i, &v) && v.i == -128, "t.i8");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.u16")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_U16 &&
                 !kq_gguf_kv_value(g, i, &v) && v.u == 65535, "t.u16");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.i16")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_I16 &&
                 !kq_gguf_kv_value(g, i, &v) && v.i == -32768, "t.i16");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.u32")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_U32 &&
                 !kq_gguf_kv_value(g, i, &v) && v.u == 4000000000u, "t.u32");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.i32")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_I32 &&
                 !kq_gguf_kv_value(g, i, &v) && v.i == -2000000000, "t.i32");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.u64")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_U64 &&
                 !kq_gguf_kv_value(g, i, &v) && v.u == 0xfedcba9876543210ull, "t.u64");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.i64")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_I64 &&
                 !kq_gguf_kv_value(g, i, &v) && v.i == INT64_MIN, "t.i64");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.f32")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_F32 &&
                 !kq_gguf_kv_value(g, i, &v) && v.f == (double)1e-5f, "t.f32");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.f64")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_F64 &&
                 !kq_gguf_kv_value(g, i, &v) && v.f == -2.5e300, "t.f64");
    KQ_CHECK((i = kq_gguf_find_key(g, "t.bool")) >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_BOOL &&
                 !kq_gguf_kv_value(g, i, &v) && v.u == 1, "t.bool");
    const char *s;
    size_t len;
    KQ_CHECK(kq_gguf_get_str(g, "t.str", &s, &len) == 0 && len == 5 && !memcmp(s, "value", 5), "t.str replaced");
    KQ_CHECK(kq_gguf_get_str(g, "t.strn", &s, &len) == 0 && len == 3 && !memcmp(s, "a\0b", 3), "t.strn");

    /* typed getters: integers of any type that fit, clear failures */
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f = 0;
    int b = 0;
    KQ_CHECK(kq_gguf_get_u32(g, "t.u8", &u32) == 0 && u32 == 250, "get_u32 of u8");
    KQ_CHECK(kq_gguf_get_u32(g, "t.u32", &u32) == 0 && u32 == 4000000000u, "get_u32 of u32");
    KQ_CHECK(kq_gguf_get_u32(g, "t.i8", &u32) == -2 && strstr(kq_gguf_last_error(g), "t.i8"), "get_u32 of -128: %s",
             kq_gguf_last_error(g));
    KQ_CHECK(kq_gguf_get_u32(g, "t.u64", &u32) == -2, "get_u32 of a u64 beyond u32");
    KQ_CHECK(kq_gguf_get_u32(g, "t.f32", &u32) == -2 && strstr(kq_gguf_last_error(g), "f32"),
             "get_u32 of f32: %s", kq_gguf_last_error(g));
    KQ_CHECK(kq_gguf_get_u32(g, "no.such.key", &u32) == -1 && strstr(kq_gguf_last_error(g), "missing"), "missing key");
    KQ_CHECK(kq_gguf_get_u64(g, "t.u64", &u64) == 0 && u64 == 0xfedcba9876543210ull, "get_u64");
    KQ_CHECK(kq_gguf_get_i64(g, "t.i64", &i64) == 0 && i64 == INT64_MIN, "get_i64");
    KQ_CHECK(kq_gguf_get_i64(g, "t.u64", &i64) == -2, "get_i64 of a u64 beyond i64");
    KQ_CHECK(kq_gguf_get_i64(g, "t.i16", &i64) == 0 && i64 == -32768, "get_i64 of i16");
    KQ_CHECK(kq_gguf_get_f32(g, "t.f32", &f) == 0 && f == 1e-5f, "get_f32");
    KQ_CHECK(kq_gguf_get_f32(g, "t.f64", &f) == -2, "get_f32 of -2.5e300");
    KQ_CHECK(kq_gguf_get_f32(g, "t.u8", &f) == -2, "get_f32 of u8");
    KQ_CHECK(kq_gguf_get_bool(g, "t.bool", &b) == 0 && b == 1, "get_bool");
    KQ_CHECK(kq_gguf_get_bool(g, "t.u8", &b) == -2, "get_bool of u8");
    KQ_CHECK(kq_gguf_get_str(g, "t.u8", &s, &len) == -2, "get_str of u8");

    /* arrays: raw little-endian bytes, written out by hand */
    struct {
        const char *key;
        int et;
        uint64_t n;
        uint8_t raw[24];
    } arrs[] = {
        {"a.u8", KQ_GGUF_U8, 3, {1, 2, 255}},
        {"a.i8", KQ_GGUF_I8, 2, {0xff, 0x7f}},
        {"a.u16", KQ_GGUF_U16, 2, {1, 0, 0xff, 0xff}},
        {"a.i16", KQ_GGUF_I16, 2, {0xfe, 0xff, 0x2c, 0x01}},
        {"a.u32", KQ_GGUF_U32, 3, {1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}},
        {"a.i32", KQ_GGUF_I32, 2, {0xfb, 0xff, 0xff, 0xff, 5, 0, 0, 0}},
        {"a.f32", KQ_GGUF_F32, 3, {0, 0, 0, 0x3f, 0, 0, 0, 0x80, 0, 0, 0x50, 0x40}},
        {"a.bool", KQ_GGUF_BOOL, 4, {1, 0, 0, 1}},
        {"a.u64", KQ_GGUF_U64, 2, {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x80}},
        {"a.i64", KQ_GGUF_I64, 2, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
        {"a.f64", KQ_GGUF_F64, 2, {0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0xd5, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x80}},
        {"a.empty", KQ_GGUF_F32, 0, {0}},
    };
    for (size_t k = 0; k < sizeof(arrs) / sizeof(arrs[0]); k++) {
        i = kq_gguf_find_key(g, arrs[k].key);
        KQ_CHECK(i >= 0 && kq_gguf_kv_type(g, i) == KQ_GGUF_ARR && kq_gguf_arr_type(g, i) == arrs[k].et &&
                     kq_gguf_arr_count(g, i) == arrs[k].n, "%s: array header", arrs[k].key);
        const void *raw = kq_gguf_arr_data(g, i);
        KQ_CHECK(raw && !memcmp(raw, arrs[k].raw, (size_t)arrs[k].n * kq_gguf_vtype_size(arrs[k].et)),
                 "%s: raw elements", arrs[k].key);
    }
    i = kq_gguf_find_key(g, "a.i64");
    KQ_CHECK(!kq_gguf_arr_elem(g, i, 1, &v) && v.i == INT64_MAX && kq_gguf_arr_elem(g, i, 2, &v) == -1, "a.i64 elements");
    i = kq_gguf_find_key(g, "a.str");
    KQ_CHECK(kq_gguf_arr_type(g, i) == KQ_GGUF_STR && kq_gguf_arr_count(g, i) == 4 && !kq_gguf_arr_data(g, i), "a.str header");
    static const char *const want[4] = {"<unk>", "\xe2\x96\x81t", "", "x\0y"};
    static const size_t wlen[4] = {5, 4, 0, 3};
    for (int j = 0; j < 4; j++)
        KQ_CHECK(!kq_gguf_arr_str(g, i, (uint64_t)j, &s, &len) && len == wlen[j] && !memcmp(s, want[j], len), "a.str[%d]", j);
    KQ_CHECK(kq_gguf_arr_str(g, i, 4, &s, &len) == -1, "a.str[4] out of range accepted");
    i = kq_gguf_find_key(g, "a.str0");
    KQ_CHECK(!kq_gguf_arr_str(g, i, 1, &s, &len) && len == 3 && !memcmp(s, "two", 3), "a.str0[1]");
}

static void check_tensors(const kq_gguf *g, uint32_t alignment) {
    KQ_CHECK(kq_gguf_alignment(g) == alignment, "alignment %u, expected %u", kq_gguf_alignment(g), alignment);
    KQ_CHECK(kq_gguf_data_offset(g) % alignment == 0, "data offset %llu not a multiple of %u",
             (unsigned long long)kq_gguf_data_offset(g), alignment);
    KQ_CHECK(kq_gguf_n_tensors(g) == KQ_NT, "n_tensors %lld", (long long)kq_gguf_n_tensors(g));
    uint64_t expect_off = 0;
    for (int t = 0; t < KQ_NT && t < kq_gguf_n_tensors(g); t++) {
        const kq_gguf_tensor *x = kq_gguf_tensor_at(g, t);
        const tspec *w = &kq_tensors[t];
        KQ_CHECK(!strcmp(x->name, w->name) && kq_gguf_find_tensor(g, w->name) == t, "tensor %d name '%s'", t, x->name);
        KQ_CHECK(x->n_dims == w->n_dims && x->type == w->type && x->size == w->bytes, "%s: dims/type/size", w->name);
        for (int d = 0; d < 4; d++) KQ_CHECK(x->ne[d] == w->ne[d], "%s: ne[%d] = %lld", w->name, d, (long long)x->ne[d]);
        KQ_CHECK(x->offset % alignment == 0 && x->offset == expect_off, "%s: offset %llu, expected %llu", w->name,
                 (unsigned long long)x->offset, (unsigned long long)expect_off);
        expect_off = (x->offset + x->size + alignment - 1) / alignment * alignment;
        int same = 1;
        for (uint64_t i = 0; i < x->size; i++)
            if (((const uint8_t *)x->data)[i] != pattern(t, i)) same = 0;
        KQ_CHECK(same, "%s: data differs", w->name);
        /* padding after each tensor (the last one too) is zero and inside the file */
        const uint64_t padded = (x->size + alignment - 1) / alignment * alignment;
        int zero = kq_gguf_data_offset(g) + x->offset + padded <= kq_gguf_file_size(g);
        for (uint64_t i = x->size; zero && i < padded; i++)
            if (((const uint8_t *)x->data)[i]) zero = 0;
        KQ_CHECK(zero, "%s: padding not zero", w->name);
    }
    KQ_CHECK(kq_gguf_find_tensor(g, "nope") == -1 && !kq_gguf_tensor_at(g, KQ_NT), "tensor lookups out of range");
}

static void test_round_trip(void) {
    char p[512], err[512];
    const uint32_t aligns[2] = {0, 64};
    for (int a = 0; a < 2; a++) {
        for (int chunky = 0; chunky < 2; chunky++) {
            if (write_model(tpath("rt.gguf", p, sizeof(p)), aligns[a], chunky)) continue;
            KQ_CHECK(dir_entries() == 1, "temp file left beside the output");
            kq_gguf *g = NULL;
            if (kq_gguf_open(p, &g, err, sizeof(err))) {
                KQ_CHECK(0, "open round trip: %s", err);
                continue;
            }
            KQ_CHECK(kq_gguf_version(g) == 3, "version");
            check_values(g);
            check_tensors(g, aligns[a] ? aligns[a] : 32);
            struct stat st;
            const mode_t um = umask(0);
            umask(um);
            KQ_CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == (0666 & ~um), "output file mode %o, umask %o",
                     (unsigned)st.st_mode & 0777, (unsigned)um);
            kq_gguf_close(g);
            unlink(p);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * 3. writer errors: nothing is left behind */
static kq_gguf_writer *two_tensor_writer(void) {
    kq_gguf_writer *w = kq_gguf_writer_new();
    const int64_t a[2] = {32, 2}, b[1] = {64};
    kq_gguf_set_str(w, "general.architecture", "llama");
    kq_gguf_add_tensor(w, "a", 2, a, KQ_TYPE_Q8_0); /* 68 bytes */
    kq_gguf_add_tensor(w, "b", 1, b, KQ_TYPE_F32);  /* 256 bytes */
    return w;
}

static void test_writer_errors(void) {
    char p[512], err[512];
    uint8_t buf[512] = {0};
    clean_dir();
    tpath("out.gguf", p, sizeof(p));

    kq_gguf_writer *w = two_tensor_writer();
    KQ_CHECK(kq_gguf_write_begin(w, p, err, sizeof(err)) == 0, "begin: %s", err);
    KQ_CHECK(dir_entries() == 1 && access(p, F_OK) != 0, "only the temp file exists while writing");
    KQ_CHECK(strstr(kq_gguf_writer_tmp_path(w), ".kqtmp.") != NULL, "temp path '%s'", kq_gguf_writer_tmp_path(w));
    KQ_CHECK(kq_gguf_write_data(w, 0, buf, 69, err, sizeof(err)) == -1 && strstr(err, "'a'"), "too many bytes: %s", err);
    KQ_CHECK(dir_entries() == 0, "temp file left after too many bytes");
    KQ_CHECK(kq_gguf_write_finish(w, err, sizeof(err)) == -1, "finish after a failure accepted");
    kq_gguf_writer_free(w);
    KQ_CHECK(dir_entries() == 0 && access(p, F_OK) != 0, "output after a failure");

    w = two_tensor_writer();
    KQ_CHECK(kq_gguf_write_begin(w, p, err, sizeof(err)) == 0, "begin: %s", err);
    KQ_CHECK(kq_gguf_write_data(w, 0, buf, 60, err, sizeof(err)) == 0, "partial write");
    KQ_CHECK(kq_gguf_write_data(w, 1, buf, 8, err, sizeof(err)) == -1 && strstr(err, "order"), "out of order: %s", err);
    kq_gguf_writer_free(w);
    KQ_CHECK(dir_entries() == 0, "temp file left after out-of-order write");

    w = two_tensor_writer();
    KQ_CHECK(kq_gguf_write_begin(w, p, err, sizeof(err)) == 0, "begin: %s", err);
    KQ_CHECK(kq_gguf_write_data(w, 0, buf, 68, err, sizeof(err)) == 0, "tensor a");
    KQ_CHECK(kq_gguf_write_data(w, 1, buf, 255, err, sizeof(err)) == 0, "tensor b, short");
    KQ_CHECK(kq_gguf_write_finish(w, err, sizeof(err)) == -1 && strstr(err, "'b'") && strstr(err, "255 of 256"),
             "too few bytes: %s", err);
    KQ_CHECK(dir_entries() == 0, "temp file left after too few bytes");
    kq_gguf_writer_free(w);

    w = two_tensor_writer();
    KQ_CHECK(kq_gguf_write_begin(w, p, err, sizeof(err)) == 0, "begin: %s", err);
    KQ_CHECK(kq_gguf_write_data(w, 0, buf, 68, err, sizeof(err)) == 0, "tensor a");
    KQ_CHECK(kq_gguf_write_data(w, 0, buf, 1, err, sizeof(err)) == -1 && strstr(err, "complete"), "rewrite: %s", err);
    kq_gguf_writer_free(w);
    KQ_CHECK(dir_entries() == 0, "temp file left after rewrite");

    w = two_tensor_writer(); /* abandoned: free alone cleans up */
    KQ_CHECK(kq_gguf_write_begin(w, p, err, sizeof(err)) == 0, "begin: %s", err);
    kq_gguf_write_abort(w);
    KQ_CHECK(dir_entries() == 0, "temp file left after abort");
    kq_gguf_writer_free(w);

    /* bad alignment values */
    w = two_tensor_writer();
    kq_gguf_set_u32(w, "general.alignment", 48);
    KQ_CHECK(kq_gguf_write_begin(w, p, err, sizeof(err)) == -1 && strstr(err, "48"), "alignment 48: %s", err);
    kq_gguf_set_u16(w, "general.alignment", 64);
    KQ_CHECK(kq_gguf_write_begin(w, p, err, sizeof(err)) == -1 && strstr(err, "u32"), "alignment u16: %s", err);
    kq_gguf_writer_free(w);
    KQ_CHECK(dir_entries() == 0, "file left after bad alignment");

    /* a directory that does not exist */
    w = two_tensor_writer();
    KQ_CHECK(kq_gguf_write_begin(w, "/nonexistent-dir-kq/x.gguf", err, sizeof(err)) == -1 && strstr(err, "nonexistent"),
             "bad dir: %s", err);
    kq_gguf_writer_free(w);

    /* add_tensor rejections */
    w = kq_gguf_writer_new();
    const int64_t ok[2] = {32, 2}, zero[2] = {32, 0}, q48[1] = {48}, big[4] = {1ll << 40, 1ll << 40, 1, 1};
    KQ_CHECK(kq_gguf_add_tensor(w, "x", 2, ok, KQ_TYPE_Q4_0) == 0, "first add");
    KQ_CHECK(kq_gguf_add_tensor(w, "x", 2, ok, KQ_TYPE_Q4_0) == -1, "duplicate name accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "y", 0, ok, KQ_TYPE_F32) == -1, "0 dims accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "y", 5, big, KQ_TYPE_F32) == -1, "5 dims accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "y", 2, zero, KQ_TYPE_F32) == -1, "ne 0 accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "y", 1, q48, KQ_TYPE_Q4_0) == -1, "q4_0 row of 48 accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "y", 1, q48, KQ_TYPE_Q8_K) == -1, "q8_K row of 48 accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "y", 1, q48, (kq_type)4) == -1, "removed type 4 accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "y", 2, big, KQ_TYPE_F32) == -1, "2^80 bytes accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123", 2, ok, KQ_TYPE_F32) == -1,
             "64-byte name accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "", 2, ok, KQ_TYPE_F32) == -1, "empty name accepted");
    KQ_CHECK(kq_gguf_add_tensor(w, "y", 1, q48, KQ_TYPE_F16) == 1, "f16 row of 48");
    kq_gguf_writer_free(w);
}

/* ---------------------------------------------------------------------------------------------
 * 4. the real stories260K.gguf (layout facts from ../shared/README.md) */
static void test_stories(void) {
    char p[512], err[512];
    kq_test_shared_path("models/stories260K/stories260K.gguf", p, sizeof(p));
    if (access(p, R_OK) != 0) {
        KQ_SKIP("stories260K: %s not found", p);
        return;
    }
    kq_gguf *g = NULL;
    if (kq_gguf_open(p, &g, err, sizeof(err))) {
        KQ_CHECK(0, "open stories260K: %s", err);
        return;
    }
    KQ_CHECK(kq_gguf_n_kv(g) == 19 && kq_gguf_n_tensors(g) == 48, "19 keys and 48 tensors: %lld, %lld",
             (long long)kq_gguf_n_kv(g), (long long)kq_gguf_n_tensors(g));
    KQ_CHECK(kq_gguf_header_end(g) == 14152 && kq_gguf_data_offset(g) == 14176 && kq_gguf_file_size(g) == 1185376,
             "header end %llu, data %llu, size %llu", (unsigned long long)kq_gguf_header_end(g),
             (unsigned long long)kq_gguf_data_offset(g), (unsigned long long)kq_gguf_file_size(g));
    KQ_CHECK(kq_gguf_alignment(g) == 32 && kq_gguf_find_key(g, "general.alignment") < 0, "default alignment");
    KQ_CHECK(!strcmp(kq_gguf_key(g, 0), "tokenizer.ggml.tokens") && !strcmp(kq_gguf_key(g, 18), "llama.attention.layer_norm_rms_epsilon"),
             "key order");
    const int64_t tok = kq_gguf_find_key(g, "tokenizer.ggml.tokens");
    const char *s = NULL;
    size_t len = 0;
    KQ_CHECK(kq_gguf_arr_type(g, tok) == KQ_GGUF_STR && kq_gguf_arr_count(g, tok) == 512, "tokens: 512 strings");
    KQ_CHECK(!kq_gguf_arr_str(g, tok, 259, &s, &len) && len == 4 && !memcmp(s, "\xe2\x96\x81t", 4), "token 259 is U+2581 t");
    KQ_CHECK(!kq_gguf_arr_str(g, tok, 1, &s, &len) && len == 3 && !memcmp(s, "<s>", 3), "token 1 is <s>");
    KQ_CHECK(!kq_gguf_arr_str(g, tok, 410, &s, &len) && len == 3 && !memcmp(s, "\xe2\x96\x81", 3), "token 410 is U+2581");
    KQ_CHECK(!kq_gguf_arr_str(g, tok, 3, &s, &len) && len == 6 && !memcmp(s, "<0x00>", 6), "token 3 is <0x00>");
    const int64_t sc = kq_gguf_find_key(g, "tokenizer.ggml.scores");
    kq_gguf_value v;
    KQ_CHECK(kq_gguf_arr_type(g, sc) == KQ_GGUF_F32 && kq_gguf_arr_count(g, sc) == 512 && !kq_gguf_arr_elem(g, sc, 511, &v) &&
                 v.f == -252.0, "scores: 512 f32, id 511 = -252");
    const int64_t tt = kq_gguf_find_key(g, "tokenizer.ggml.token_type");
    int counts[8] = {0};
    for (uint64_t j = 0; j < kq_gguf_arr_count(g, tt); j++)
        if (!kq_gguf_arr_elem(g, tt, j, &v) && v.i >= 0 && v.i < 8) counts[v.i]++;
    KQ_CHECK(kq_gguf_arr_type(g, tt) == KQ_GGUF_I32 && counts[1] == 253 && counts[2] == 1 && counts[3] == 2 && counts[6] == 256,
             "token types %d %d %d %d", counts[1], counts[2], counts[3], counts[6]);
    uint32_t u = 0;
    KQ_CHECK(!kq_gguf_get_u32(g, "llama.embedding_length", &u) && u == 64, "embedding_length %u", u);
    KQ_CHECK(!kq_gguf_get_u32(g, "llama.feed_forward_length", &u) && u == 172, "feed_forward_length");
    KQ_CHECK(!kq_gguf_get_u32(g, "llama.attention.head_count_kv", &u) && u == 4, "head_count_kv");
    KQ_CHECK(!kq_gguf_get_u32(g, "llama.context_length", &u) && u == 2048, "context_length");
    KQ_CHECK(!kq_gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &u) && u == 4294967295u, "padding id");
    float eps = 0;
    uint32_t bits = 0;
    KQ_CHECK(!kq_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps), "eps");
    memcpy(&bits, &eps, 4);
    KQ_CHECK(bits == 0x3727C5ACu, "eps bits %08x", bits);
    KQ_CHECK(!kq_gguf_get_str(g, "general.architecture", &s, &len) && len == 5 && !memcmp(s, "llama", 5), "architecture");
    KQ_CHECK(kq_gguf_find_key(g, "general.file_type") < 0, "no general.file_type");

    static const struct {
        const char *name;
        int64_t ne0, ne1;
        uint64_t off0;
    } layer[] = {{"attn_q", 64, 64, 262400},         {"attn_k", 64, 32, 278784},   {"attn_v", 64, 32, 286976},
                 {"attn_output", 64, 64, 295168},    {"attn_norm", 64, 1, 311552}, {"ffn_gate", 64, 172, 311808},
                 {"ffn_down", 172, 64, 355840},      {"ffn_up", 64, 172, 399872},  {"ffn_norm", 64, 1, 443904}};
    int ok = 1;
    for (int n = 0; n < 5; n++)
        for (size_t k = 0; k < sizeof(layer) / sizeof(layer[0]); k++) {
            char name[64];
            snprintf(name, sizeof(name), "blk.%d.%s.weight", n, layer[k].name);
            const kq_gguf_tensor *t = kq_gguf_tensor_at(g, kq_gguf_find_tensor(g, name));
            const int nd = layer[k].ne1 == 1 ? 1 : 2;
            if (!t || t->type != KQ_TYPE_F32 || t->n_dims != nd || t->ne[0] != layer[k].ne0 || t->ne[1] != layer[k].ne1 ||
                t->offset != layer[k].off0 + (uint64_t)n * 181760 || t->size != (uint64_t)(4 * layer[k].ne0 * layer[k].ne1)) {
                ok = 0;
                printf("  %s: wrong\n", name);
            }
        }
    KQ_CHECK(ok, "block tensors: names, shapes, offsets");
    const kq_gguf_tensor *e = kq_gguf_tensor_at(g, kq_gguf_find_tensor(g, "token_embd.weight"));
    const kq_gguf_tensor *o = kq_gguf_tensor_at(g, kq_gguf_find_tensor(g, "output.weight"));
    const kq_gguf_tensor *on = kq_gguf_tensor_at(g, kq_gguf_find_tensor(g, "output_norm.weight"));
    KQ_CHECK(e && e->offset == 0 && e->ne[0] == 64 && e->ne[1] == 512 && on && on->offset == 131072 && o &&
                 o->offset == 131328, "token_embd / output_norm / output offsets");
    KQ_CHECK(e && o && e->size == o->size && !memcmp(e->data, o->data, (size_t)e->size), "output.weight equals token_embd");
    const kq_gguf_tensor *last = kq_gguf_tensor_at(g, kq_gguf_find_tensor(g, "blk.4.ffn_norm.weight"));
    KQ_CHECK(last && (const uint8_t *)last->data == (const uint8_t *)e->data + 443904 + 4 * 181760,
             "data pointer of blk.4.ffn_norm.weight");
    kq_gguf_close(g);
}

/* ---------------------------------------------------------------------------------------------
 * 5. hostile files, built by hand */
typedef struct {
    uint8_t b[4096];
    size_t n;
} hb;

static void h_raw(hb *h, const void *p, size_t n) {
    if (h->n + n <= sizeof(h->b)) memcpy(h->b + h->n, p, n);
    h->n += n;
}
static void h_le(hb *h, uint64_t v, int n) {
    for (int i = 0; i < n; i++) {
        const uint8_t c = (uint8_t)(v >> (8 * i));
        h_raw(h, &c, 1);
    }
}
static void h_str(hb *h, const char *s) {
    h_le(h, strlen(s), 8);
    h_raw(h, s, strlen(s));
}
static void h_pad(hb *h, size_t a) {
    while (h->n % a) h_le(h, 0, 1);
}

/* The parameters of a small file; each hostile case changes one. */
typedef struct {
    const char *magic;
    uint32_t version;
    uint64_t n_t, n_kv; /* UINT64_MAX: the real counts */
    uint32_t kv1_type;  /* type of key 1 (normally u32) */
    uint64_t str_len;   /* length field of key 0's value (normally 5) */
    const char *key1;   /* name of key 1 */
    uint32_t align_type, align;
    uint32_t t1_ndims;
    uint64_t t1_ne0, t1_ne1;
    uint32_t t1_type;
    uint64_t t1_off;
    const char *t1_name;
    int nested, bool_val;
} hspec;

static hspec h_default(void) {
    return (hspec){"GGUF", 3, UINT64_MAX, UINT64_MAX, KQ_GGUF_U32, 100, "b.count", 0, 0, 2, 32, 2, KQ_TYPE_Q8_0, 64, "w",
                   0, 1};
}

/* keys: a.name (string "llama" x 20), key1 (u32 7), c.flag (bool), [d.nested], [general.alignment];
 * tensors: "n" f32 [16] at 0, t1 at t1_off (q8_0 [32, 2] = 68 bytes); data up to the last tensor end */
static void h_build(hb *h, const hspec *s) {
    h->n = 0;
    const uint64_t nkv = 3 + (s->nested ? 1 : 0) + (s->align_type ? 1 : 0);
    h_raw(h, s->magic, 4);
    h_le(h, s->version, 4);
    h_le(h, s->n_t == UINT64_MAX ? 2 : s->n_t, 8);
    h_le(h, s->n_kv == UINT64_MAX ? nkv : s->n_kv, 8);
    h_str(h, "a.name");
    h_le(h, KQ_GGUF_STR, 4);
    /* a long value, so that files cut in the keys after it pass the count checks */
    h_le(h, s->str_len, 8);
    for (int i = 0; i < 20; i++) h_raw(h, "llama", 5);
    h_str(h, s->key1);
    h_le(h, s->kv1_type, 4);
    h_le(h, 7, 4);
    h_str(h, "c.flag");
    h_le(h, KQ_GGUF_BOOL, 4);
    h_le(h, (uint64_t)s->bool_val, 1);
    if (s->nested) {
        h_str(h, "d.nested");
        h_le(h, KQ_GGUF_ARR, 4);
        h_le(h, KQ_GGUF_ARR, 4);
        h_le(h, 1, 8);
        h_le(h, KQ_GGUF_U8, 4);
        h_le(h, 1, 8);
        h_le(h, 1, 1);
    }
    if (s->align_type) {
        h_str(h, "general.alignment");
        h_le(h, s->align_type, 4);
        h_le(h, s->align, (int)kq_gguf_vtype_size((int)s->align_type));
    }
    h_str(h, "n");
    h_le(h, 1, 4);
    h_le(h, 16, 8);
    h_le(h, KQ_TYPE_F32, 4);
    h_le(h, 0, 8);
    h_str(h, s->t1_name);
    h_le(h, s->t1_ndims, 4);
    h_le(h, s->t1_ne0, 8);
    if (s->t1_ndims > 1) h_le(h, s->t1_ne1, 8);
    for (uint32_t d = 2; d < s->t1_ndims && d < 8; d++) h_le(h, 1, 8);
    h_le(h, s->t1_type, 4);
    h_le(h, s->t1_off, 8);
    h_pad(h, s->align_type == KQ_GGUF_U32 && s->align >= 32 && s->align <= 256 ? s->align : 32);
    /* 64 bytes for "n" (and its padding), then 68 of t1 */
    for (int i = 0; i < 64 + 68; i++) h_le(h, (uint64_t)(i * 37 + 1), 1);
}

/* Parses; expects success (want NULL) or an error containing want. */
static void h_expect(const char *what, const hspec *s, const char *want) {
    hb h;
    h_build(&h, s);
    if (h.n > sizeof(h.b)) {
        KQ_CHECK(0, "%s: builder overflow", what);
        return;
    }
    kq_gguf *g = NULL;
    char err[512] = "";
    const int rc = kq_gguf_parse(h.b, h.n, &g, err, sizeof(err));
    if (!want) KQ_CHECK(rc == 0 && g, "%s: rejected: %s", what, err);
    else KQ_CHECK(rc == -1 && !g && strstr(err, want) && !strncmp(err, "<memory>: ", 10), "%s: expected an error with '%s', got rc %d '%s'", what, want, rc, err);
    kq_gguf_close(g);
}

static void test_hostile(void) {
    hspec s = h_default();
    h_expect("baseline", &s, NULL);
    s = h_default(); s.magic = "GGML"; h_expect("bad magic", &s, "not a GGUF file");
    s = h_default(); s.version = 1; h_expect("version 1", &s, "version 1 is not supported");
    s = h_default(); s.version = 2; h_expect("version 2", &s, "version 2 is not supported");
    s = h_default(); s.version = 0x03000000; h_expect("big-endian", &s, "big-endian");
    s = h_default(); s.n_kv = 1ull << 60; h_expect("n_kv 2^60", &s, "n_kv 1152921504606846976 is absurd");
    s = h_default(); s.n_kv = 200; h_expect("n_kv 200", &s, "n_kv 200 is absurd");
    s = h_default(); s.n_kv = 5; h_expect("n_kv two too many", &s, "key 4 is empty");
    s = h_default(); s.n_t = 1ull << 62; h_expect("n_tensors 2^62", &s, "n_tensors 4611686018427387904 is absurd");
    s = h_default(); s.n_t = 3; h_expect("n_tensors one too many", &s, "tensor 2");
    s = h_default(); s.kv1_type = 13; h_expect("unknown value type", &s, "unknown value type 13 in key 1 'b.count'");
    s = h_default(); s.kv1_type = 0xffffffffu; h_expect("value type 2^32-1", &s, "unknown value type");
    s = h_default(); s.str_len = 1ull << 40; h_expect("string length beyond the file", &s, "beyond the end of the file");
    s = h_default(); s.str_len = UINT64_MAX; h_expect("string length 2^64-1", &s, "beyond the end of the file");
    s = h_default(); s.key1 = "a.name"; h_expect("duplicate key", &s, "duplicate key 'a.name'");
    s = h_default(); s.key1 = ""; h_expect("empty key", &s, "key 1 is empty");
    s = h_default(); s.key1 = "b.\xff"; h_expect("non-ASCII key", &s, "not ASCII");
    s = h_default(); s.bool_val = 2; h_expect("bool 2", &s, "bool value 2");
    s = h_default(); s.nested = 1; h_expect("nested array", &s, "nested arrays are not supported");
    s = h_default(); s.align_type = KQ_GGUF_U32; s.align = 64; s.t1_off = 64; h_expect("alignment 64", &s, NULL);
    s = h_default(); s.align_type = KQ_GGUF_U32; s.align = 64; s.t1_off = 96; h_expect("offset 96 with alignment 64", &s, "not a multiple of the alignment 64");
    s = h_default(); s.align_type = KQ_GGUF_U16; s.align = 32; h_expect("alignment u16", &s, "general.alignment is u16, not u32");
    s = h_default(); s.align_type = KQ_GGUF_U32; s.align = 48; h_expect("alignment 48", &s, "not a power of two");
    s = h_default(); s.align_type = KQ_GGUF_U32; s.align = 0; h_expect("alignment 0", &s, "not a power of two");
    s = h_default(); s.t1_off = 40; h_expect("misaligned offset", &s, "tensor 'w' offset 40 is not a multiple of the alignment 32");
    s = h_default(); s.t1_off = 0; h_expect("overlapping tensors", &s, "overlap");
    s = h_default(); s.t1_off = 32; h_expect("overlapping tensors (partly)", &s, "overlap");
    s = h_default(); s.t1_off = 96; h_expect("data beyond the end", &s, "tensor 'w' data [");
    s = h_default(); s.t1_off = 1ull << 63; h_expect("offset 2^63", &s, "outside the file");
    s = h_default(); s.t1_off = UINT64_MAX - 31; h_expect("offset 2^64-32", &s, "outside the file");
    s = h_default(); s.t1_type = KQ_TYPE_F32; s.t1_ne0 = 1ull << 32; s.t1_ne1 = 1ull << 32; h_expect("dims overflow", &s, "overflows");
    s = h_default(); s.t1_type = KQ_TYPE_F32; s.t1_ne0 = 1ull << 62; s.t1_ne1 = 1; h_expect("byte size overflow", &s, "byte size overflows");
    s = h_default(); s.t1_ne0 = 0; h_expect("ne 0", &s, "dimension 0 is 0");
    s = h_default(); s.t1_ne0 = 1ull << 63; h_expect("ne 2^63", &s, "dimension 0 is 9223372036854775808");
    s = h_default(); s.t1_ndims = 5; h_expect("5 dims", &s, "5 dimensions");
    s = h_default(); s.t1_type = 4; h_expect("removed type 4", &s, "unknown type id 4");
    s = h_default(); s.t1_type = 999; h_expect("type 999", &s, "unknown type id 999");
    s = h_default(); s.t1_type = 1100; h_expect("type 1100", &s, "unknown type id 1100");
    s = h_default(); s.t1_type = KQ_INTN_ID(4, 1, 0); s.t1_ne0 = 32; s.t1_ne1 = 2; h_expect("INT-N type", &s, NULL);
    s = h_default(); s.t1_type = KQ_TYPE_Q4_0; s.t1_ne0 = 48; s.t1_ne1 = 1; h_expect("q4_0 row of 48", &s, "a row of 48 elements is not valid for type q4_0");
    s = h_default(); s.t1_type = 20; s.t1_ne0 = 32; s.t1_ne1 = 2; h_expect("ggml iq4_nl (no kq kernels)", &s, NULL);
    s = h_default(); s.t1_name = "n"; h_expect("duplicate tensor name", &s, "duplicate tensor name 'n'");
    s = h_default(); s.t1_name = "0123456789012345678901234567890123456789012345678901234567890123456789"; h_expect("long tensor name", &s, "1..64 allowed");

    /* truncation: every prefix of the baseline must be rejected or parse, never crash; the data of
     * "w" ends at 64 + 68 bytes after the data start, so shorter prefixes must all be rejected */
    s = h_default();
    hb h;
    h_build(&h, &s);
    size_t parsed = 0, first_ok = 0;
    int named = 1;
    for (size_t n = 0; n <= h.n; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan catches any read past the prefix */
        memcpy(copy, h.b, n);
        kq_gguf *g = NULL;
        char err[512] = "";
        if (kq_gguf_parse(copy, n, &g, err, sizeof(err)) == 0) {
            if (!parsed) first_ok = n;
            parsed++;
        } else if (!err[0] || strncmp(err, "<memory>: ", 10)) named = 0;
        kq_gguf_close(g);
        free(copy);
    }
    KQ_CHECK(parsed == 1 && first_ok == h.n, "prefixes: %zu parse, the first at %zu of %zu", parsed, first_ok, h.n);
    KQ_CHECK(named, "a rejected prefix had no error message");
    /* the message says where the file ended */
    kq_gguf *g = NULL;
    char err[512] = "";
    /* key 0 ends at 150, key 1 'b.count' at 173 (name at 158..165, value at 169..173) */
    KQ_CHECK(kq_gguf_parse(h.b, 160, &g, err, sizeof(err)) == -1 && strstr(err, "truncated in key 1: string length 7"), "cut in key 1's name: %s", err);
    KQ_CHECK(kq_gguf_parse(h.b, 170, &g, err, sizeof(err)) == -1 && strstr(err, "truncated in key 1 'b.count'"), "cut in key 1's value: %s", err);
    KQ_CHECK(kq_gguf_parse(h.b, 40, &g, err, sizeof(err)) == -1 && strstr(err, "n_kv 3 is absurd"), "cut in key 0: %s", err);
    KQ_CHECK(kq_gguf_parse(h.b, 10, &g, err, sizeof(err)) == -1 && strstr(err, "truncated in the header"), "cut in the header: %s", err);
    KQ_CHECK(kq_gguf_parse(NULL, 0, &g, err, sizeof(err)) == -1 && strstr(err, "not a GGUF file"), "empty: %s", err);

    /* the same through a file: the error names it */
    char p[512];
    tpath("hostile.gguf", p, sizeof(p));
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(h.b, 1, 100, f);
        fclose(f);
    }
    KQ_CHECK(kq_gguf_open(p, &g, err, sizeof(err)) == -1 && !strncmp(err, p, strlen(p)), "file error names the file: %s", err);
    unlink(p);
    KQ_CHECK(kq_gguf_open("/nonexistent-kq.gguf", &g, err, sizeof(err)) == -1 && strstr(err, "/nonexistent-kq.gguf"),
             "missing file: %s", err);
}

/* ---------------------------------------------------------------------------------------------
 * 6. kq inspect */
static char *run_inspect(int argc, char **argv, int *rc) {
    char p[512];
    tpath("inspect.out", p, sizeof(p));
    /* stdout and stderr both into the file */
    fflush(stdout);
    fflush(stderr);
    const int saved = dup(1), saved2 = dup(2);
    const int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || saved2 < 0 || fd < 0) return NULL;
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    *rc = kq_cmd_inspect(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, 1);
    dup2(saved2, 2);
    close(saved);
    close(saved2);
    size_t len = 0;
    char *out = kq_test_read_file(p, &len);
    unlink(p);
    if (!out) return NULL;
    char *z = realloc(out, len + 1);
    if (!z) {
        free(out);
        return NULL;
    }
    z[len] = 0;
    return z;
}

static void test_inspect(void) {
    char p[512], err[512];
    tpath("insp.gguf", p, sizeof(p));
    kq_gguf_writer *w = kq_gguf_writer_new();
    kq_gguf_set_strn(w, "x.weird", "q\"\x01\xff\xe2\x96\x81", 7);
    const int64_t a[2] = {32, 4}, b[1] = {32};
    kq_gguf_add_tensor(w, "i4", 2, a, KQ_INTN_ID(4, 1, 0)); /* 4 x 18 bytes */
    kq_gguf_add_tensor(w, "f", 1, b, KQ_TYPE_F32);          /* 128 bytes */
    uint8_t buf[128] = {0};
    int ok = !kq_gguf_write_begin(w, p, err, sizeof(err)) && !kq_gguf_write_data(w, 0, buf, 72, err, sizeof(err)) &&
             !kq_gguf_write_data(w, 1, buf, 128, err, sizeof(err)) && !kq_gguf_write_finish(w, err, sizeof(err));
    kq_gguf_writer_free(w);
    KQ_CHECK(ok, "inspect fixture: %s", err);
    if (!ok) return;
    int rc = -1;
    char *argv1[] = {"inspect", p, "--json", NULL};
    char *out = run_inspect(3, argv1, &rc);
    KQ_CHECK(rc == 0 && out, "inspect --json: rc %d", rc);
    if (out) {
        KQ_CHECK(strstr(out, "\"value\": \"q\\\"\\u0001\\ufffd\xe2\x96\x81\"") != NULL, "JSON escaping:\n%s", out);
        KQ_CHECK(strstr(out, "\"intn_tensors\": 1") && strstr(out, "llama.cpp cannot load this file"), "INT-N note in JSON");
        KQ_CHECK(strstr(out, "\"parameters\": 160") && strstr(out, "\"tensor_bytes\": 200"), "totals in JSON");
        KQ_CHECK(strstr(out, "\"bits_per_weight\": 10.000000"), "bpw in JSON (8 * 200 / 160)");
        KQ_CHECK(strstr(out, "\"name\": \"i4\", \"shape\": [32, 4], \"type\": \"i4_g32_sym\", \"type_id\": 1042, \"bytes\": 72, \"offset\": 0"),
                 "tensor row in JSON:\n%s", out);
        KQ_CHECK(strstr(out, "\"name\": \"f\", \"shape\": [32], \"type\": \"f32\", \"type_id\": 0, \"bytes\": 128, \"offset\": 96"),
                 "tensor f in JSON");
    }
    free(out);
    char *argv2[] = {"inspect", p, NULL};
    out = run_inspect(2, argv2, &rc);
    KQ_CHECK(rc == 0 && out && strstr(out, "note: tensors of kq's INT-N types: llama.cpp cannot load this file"),
             "INT-N note in text");
    free(out);
    unlink(p);
    char *argv3[] = {"inspect", "--bogus", NULL};
    out = run_inspect(2, argv3, &rc);
    KQ_CHECK(rc == 2 && out && strstr(out, "kq: inspect: unknown option '--bogus'"), "unknown option: rc %d", rc);
    free(out);
    char *argv4[] = {"inspect", "/nonexistent-kq.gguf", NULL};
    out = run_inspect(2, argv4, &rc);
    KQ_CHECK(rc == 2 && out && strstr(out, "kq: inspect: /nonexistent-kq.gguf: cannot open"), "missing file: rc %d", rc);
    free(out);

    kq_test_shared_path("models/stories260K/stories260K.gguf", p, sizeof(p));
    if (access(p, R_OK) != 0) {
        KQ_SKIP("stories260K: %s not found", p);
        return;
    }
    char *argv5[] = {"inspect", p, NULL};
    out = run_inspect(2, argv5, &rc);
    /* 260,032 weights plus output.weight, stored separately: 64 * 512 */
    KQ_CHECK(rc == 0 && out && strstr(out, "parameters: 292800") && strstr(out, "metadata: 19 keys") &&
                 strstr(out, "tensors: 48") && strstr(out, "32.0000 bits per weight") && !strstr(out, "note:"),
             "inspect stories260K:\n%s", out ? out : "");
    free(out);
}

int main(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kq_test_gguf.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        KQ_CHECK(0, "mkdtemp");
        return kq_test_finish();
    }
    test_exact_bytes();
    clean_dir();
    test_round_trip();
    clean_dir();
    test_writer_errors();
    clean_dir();
    test_stories();
    test_hostile();
    test_inspect();
    clean_dir();
    rmdir(tmpdir);
    return kq_test_finish();
}
