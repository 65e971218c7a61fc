/* libFuzzer harness for the safetensors reader: parse, then read every byte and every row of what
 * the parse accepted, so ASan sees any view outside the input. A rejection must leave a one-line
 * error and an untouched list. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"

static volatile uint64_t kq_sink;

static void kq_check_err(int rc, const char *err, const kq_src_list *l, size_t n0) {
    if (rc && (!err[0] || strchr(err, '\n') || l->n != n0)) __builtin_trap();
}

static void kq_walk(const kq_src_tensor *t) {
    uint64_t h = 0;
    for (size_t i = 0; i < t->nbytes; i++) h += t->data[i];
    h += strlen(t->name) + strlen(t->dtype_name);
    const int64_t rows = kq_src_rows(t), rl = kq_src_row_len(t);
    if (rows < 0 || rl < 0) __builtin_trap();
    const size_t el = kq_dtype_size(t->dtype);
    if (el && (uint64_t)rows * (uint64_t)rl * el != t->nbytes) __builtin_trap();
    char err[256];
    if (rows > 0 && rl > 0 && (t->dtype == KQ_DT_F32 || t->dtype == KQ_DT_F16 || t->dtype == KQ_DT_BF16)) {
        float *f = malloc((size_t)rl * sizeof *f);
        if (!f) return;
        for (int64_t r = 0; r < rows; r++) {
            if (kq_src_read_rows_f32(t, r, 1, f, err, sizeof err)) __builtin_trap();
            h += (uint64_t)f[0];
        }
        free(f);
    }
    float one;
    if (!kq_src_read_rows_f32(t, rows, 1, &one, err, sizeof err)) __builtin_trap(); /* past the end */
    kq_sink += h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy: ASan then catches a read even one byte past the input. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    kq_src_list l = {0};
    char err[512] = "";
    int rc = kq_safetensors_parse(buf, size, "fuzz.safetensors", &l, err, sizeof err);
    kq_check_err(rc, err, &l, 0);
    for (size_t i = 0; i < l.n; i++) kq_walk(&l.t[i]);
    kq_src_list_free(&l);
    free(buf);
    return 0;
}
