/* libFuzzer harness for the GGUF reader: parse, then walk every accessor over everything the parse
 * accepted (reads every byte the accessors expose, so ASan sees any pointer outside the input). */
#include <stdint.h>
#include <string.h>

#include "gguf.h"

static volatile uint64_t kq_sink;

static void kq_touch(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint64_t h = 0;
    for (uint64_t i = 0; i < n; i++) h += b[i];
    kq_sink += h;
}

static void kq_walk_kv(const kq_gguf *g, int64_t i) {
    const char *key = kq_gguf_key(g, i);
    kq_touch(key, strlen(key));
    if (kq_gguf_find_key(g, key) != i) __builtin_trap();
    const int t = kq_gguf_kv_type(g, i);
    kq_gguf_value v;
    if (t != KQ_GGUF_ARR) {
        if (kq_gguf_kv_value(g, i, &v)) __builtin_trap();
        if (t == KQ_GGUF_STR) kq_touch(v.s, v.len);
        uint32_t u32;
        uint64_t u64;
        int64_t i64;
        float f;
        int b;
        const char *s;
        size_t len;
        kq_sink += (uint64_t)kq_gguf_get_u32(g, key, &u32) + (uint64_t)kq_gguf_get_u64(g, key, &u64);
        kq_sink += (uint64_t)kq_gguf_get_i64(g, key, &i64) + (uint64_t)kq_gguf_get_f32(g, key, &f);
        kq_sink += (uint64_t)kq_gguf_get_bool(g, key, &b) + (uint64_t)kq_gguf_get_str(g, key, &s, &len);
        kq_touch(kq_gguf_last_error(g), strlen(kq_gguf_last_error(g)));
        return;
    }
    const int et = kq_gguf_arr_type(g, i);
    const uint64_t n = kq_gguf_arr_count(g, i);
    if (et != KQ_GGUF_STR) kq_touch(kq_gguf_arr_data(g, i), n * kq_gguf_vtype_size(et));
    for (uint64_t j = 0; j < n; j++) {
        if (kq_gguf_arr_elem(g, i, j, &v)) __builtin_trap();
        if (et == KQ_GGUF_STR) {
            const char *s;
            size_t len;
            if (kq_gguf_arr_str(g, i, j, &s, &len)) __builtin_trap();
            kq_touch(s, len);
        }
    }
    if (kq_gguf_arr_elem(g, i, n, &v) == 0) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kq_gguf *g = NULL;
    char err[512];
    if (kq_gguf_parse(data, size, &g, err, sizeof(err))) {
        kq_touch(err, strlen(err));
        return 0;
    }
    kq_sink += kq_gguf_version(g) + kq_gguf_alignment(g) + kq_gguf_header_end(g) + kq_gguf_data_offset(g) +
               kq_gguf_file_size(g);
    for (int64_t i = 0; i < kq_gguf_n_kv(g); i++) kq_walk_kv(g, i);
    for (int64_t i = 0; i < kq_gguf_n_tensors(g); i++) {
        const kq_gguf_tensor *t = kq_gguf_tensor_at(g, i);
        if (kq_gguf_find_tensor(g, t->name) != i) __builtin_trap();
        if (!kq_gguf_type_name((uint32_t)t->type)) __builtin_trap();
        if (kq_gguf_tensor_bytes((uint32_t)t->type, t->n_dims, t->ne) != t->size) __builtin_trap();
        kq_touch(t->name, strlen(t->name));
        kq_touch(t->data, t->size);
    }
    if (kq_gguf_tensor_at(g, kq_gguf_n_tensors(g)) || kq_gguf_key(g, kq_gguf_n_kv(g))) __builtin_trap();
    kq_gguf_close(g);
    return 0;
}
