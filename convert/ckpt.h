/* kq: Hugging Face checkpoint readers (safetensors, PyTorch zip+pickle), lazily through mmap.
 *
 * A checkpoint is opened once; every tensor is a view (pointer + byte count) into a read-only
 * mapping of its file. Nothing is copied except the rows a caller asks kq_src_read_rows_f32 for,
 * so converting a 13 GB model needs no more than a row of anonymous memory.
 *
 * Errors are one line, name the file and the problem, and end up in the caller's err buffer.
 * Nothing in these readers executes anything a file says: the pickle reader is a data-only VM with a
 * fixed list of accepted globals (convert/pickle.h).
 */
#ifndef KQ_CKPT_H
#define KQ_CKPT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    KQ_DT_F32, KQ_DT_F16, KQ_DT_BF16, KQ_DT_F64, KQ_DT_I64, KQ_DT_I32, KQ_DT_I16, KQ_DT_I8, KQ_DT_U8,
    KQ_DT_BOOL, KQ_DT_OTHER
} kq_dtype;

#define KQ_SRC_MAX_DIMS 8

typedef struct {
    const char *name;
    kq_dtype dtype;
    const char *dtype_name;         /* as the file spells it: "BF16", "F8_E4M3", "LongStorage"... */
    int ndim;
    int64_t shape[KQ_SRC_MAX_DIMS]; /* row-major as in PyTorch: shape[ndim-1] contiguous */
    const uint8_t *data;            /* into the file's mapping; may be unaligned */
    size_t nbytes;
    const char *file;
} kq_src_tensor;

typedef struct kq_ckpt kq_ckpt;

/* path: a folder (model.safetensors.index.json | model.safetensors | pytorch_model.bin.index.json |
 * pytorch_model.bin, else a single *.safetensors or *.bin) or one of those files. 0 on success. */
int kq_ckpt_open(const char *path, kq_ckpt **out, char *err, size_t errlen);
size_t kq_ckpt_count(const kq_ckpt *c);
const kq_src_tensor *kq_ckpt_at(const kq_ckpt *c, size_t i);     /* in file order, shard by shard */
const kq_src_tensor *kq_ckpt_find(const kq_ckpt *c, const char *name); /* NULL if absent */
void kq_ckpt_close(kq_ckpt *c);

int64_t kq_src_rows(const kq_src_tensor *t);    /* product of the leading dims (1 for 0-/1-D) */
int64_t kq_src_row_len(const kq_src_tensor *t); /* last dim (1 for scalars) */
/* Rows [row0, row0 + nrows) widened exactly to f32 (F32, F16, BF16 only). 0 on success. */
int kq_src_read_rows_f32(const kq_src_tensor *t, int64_t row0, int64_t nrows, float *out, char *err,
                         size_t errlen);

/* Drops the tensor's pages from this process's resident set (they are re-read from the file if
 * touched again): call after converting a tensor so RssFile stays near one tensor, not the model. */
void kq_src_release(const kq_src_tensor *t);

/* Formats a reader's error into err as ONE line (control characters in tensor or file names become
 * '?') and returns -1: every checkpoint error goes through here. */
int kq_ckpt_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

size_t kq_dtype_size(kq_dtype dt);      /* bytes per element; 0 for KQ_DT_OTHER */
const char *kq_dtype_str(kq_dtype dt);  /* safetensors spelling: "F32", "BF16", "BOOL"... */

/* ---- parsers on memory (also what the fuzzers drive) ---------------------------------------------
 * A list of tensors whose name/dtype_name strings are owned by the list and whose data points into
 * the caller's buffer. `file` (not copied) names the buffer in errors and in each tensor. */
typedef struct {
    kq_src_tensor *t;
    size_t n, cap;
} kq_src_list;

void kq_src_list_free(kq_src_list *l);
/* Appends one tensor, copying name and dtype_name. 0 on success, -1 out of memory. */
int kq_src_list_add(kq_src_list *l, const kq_src_tensor *t);

/* A whole safetensors file in buf. Appends its tensors to out (left unchanged on error). */
int kq_safetensors_parse(const uint8_t *buf, size_t len, const char *file, kq_src_list *out, char *err,
                         size_t errlen);
/* A whole torch.save zip archive (state_dict) in buf. Appends its tensors to out. */
int kq_torchzip_parse(const uint8_t *buf, size_t len, const char *file, kq_src_list *out, char *err,
                      size_t errlen);

/* ---- writers (fixtures and tests; convert/ckpt_write.c) -------------------------------------------
 * Each writes to PATH.tmp and renames, so a failed write leaves no file behind. */
typedef struct {
    const char *name;
    kq_dtype dtype;                 /* not KQ_DT_OTHER */
    int ndim;
    int64_t shape[KQ_SRC_MAX_DIMS];
    const void *data;               /* product(shape) elements of dtype, row-major, little-endian */
} kq_wtensor;

/* safetensors: header padded with spaces to a multiple of 8, tensors in the given order. */
int kq_write_safetensors(const char *path, const kq_wtensor *t, size_t n, char *err, size_t errlen);

/* torch.save of an OrderedDict state_dict (zip format of PyTorch >= 1.6, pickle protocol 2), which
 * torch.load can read: records <archive>/data.pkl, <archive>/byteorder, <archive>/data/<i> (one storage
 * per tensor, 64-byte aligned like PyTorch's writer), <archive>/version. archive = file stem, as
 * PyTorch names it. KQ_TW_ZIP64 forces ZIP64 size/offset fields in every header (as files > 4 GiB
 * need), to exercise readers on small files. */
#define KQ_TW_ZIP64 1
int kq_write_torch_zip(const char *path, const kq_wtensor *t, size_t n, int flags, char *err,
                       size_t errlen);

/* {"metadata": {"total_size": N}, "weight_map": {name: file}} as transformers writes it. */
int kq_write_index_json(const char *path, const char *const *names, const char *const *files, size_t n,
                        uint64_t total_size, char *err, size_t errlen);

#endif
