/* libFuzzer harness for the torch.save readers: the input is parsed both as data.pkl (the pickle VM)
 * and as a whole zip archive; whatever is accepted is checked for consistency and read byte by
 * byte, so ASan sees any view outside the input. Rejections must leave a one-line error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "pickle.h"

static volatile uint64_t kq_sink;

static void kq_check_pickle(const kq_pkl_result *r) {
    for (size_t i = 0; i < r->n; i++) {
        const kq_pkl_tensor *t = &r->t[i];
        int64_t numel = 1;
        if (t->ndim < 0 || t->ndim > KQ_SRC_MAX_DIMS) __builtin_trap();
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) __builtin_trap();
            numel *= t->shape[d];
        }
        if (numel && t->storage_offset + numel > t->storage_numel) __builtin_trap();
        kq_sink += strlen(t->name) + strlen(t->storage_key) + strlen(t->dtype_name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    char err[512] = "";
    kq_pkl_result r;
    int rc = kq_pickle_parse_state_dict(buf, size, "fuzz.pkl", &r, err, sizeof err);
    if (rc && (!err[0] || strchr(err, '\n'))) __builtin_trap();
    if (!rc) {
        kq_check_pickle(&r);
        kq_pkl_result_free(&r);
    }
    kq_src_list l = {0};
    err[0] = 0;
    rc = kq_torchzip_parse(buf, size, "fuzz.bin", &l, err, sizeof err);
    if (rc && (!err[0] || strchr(err, '\n') || l.n)) __builtin_trap();
    for (size_t i = 0; i < l.n; i++) {
        uint64_t h = 0;
        for (size_t k = 0; k < l.t[i].nbytes; k++) h += l.t[i].data[k];
        const size_t el = kq_dtype_size(l.t[i].dtype);
        if ((uint64_t)kq_src_rows(&l.t[i]) * (uint64_t)kq_src_row_len(&l.t[i]) * el != l.t[i].nbytes) __builtin_trap();
        kq_sink += h;
    }
    kq_src_list_free(&l);
    free(buf);
    return 0;
}
