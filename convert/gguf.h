/* kq: GGUF v3 files: a streaming writer and a reader written from the specification
 * (ggml docs/gguf.md), independent of each other.
 *
 * Layout (little-endian): "GGUF", u32 version 3, u64 n_tensors, u64 n_kv; n_kv metadata pairs
 * (string key, u32 value type, value); n_tensors tensor infos (string name, u32 n_dims,
 * u64 ne[n_dims] with ne[0] the contiguous row length, u32 type, u64 offset from the data start);
 * zero padding to `general.alignment` (u32, default 32); tensor data, each tensor at an aligned
 * offset. A string is u64 length + bytes, no NUL. An array is u32 element type, u64 count, elements.
 *
 * Tensor types are ggml's ids plus kq's INT-N ids (>= 1000, kq_types.h): llama.cpp cannot load a
 * file holding INT-N tensors. Neither file needs GSL or cJSON.
 */
#ifndef KQ_GGUF_H
#define KQ_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "kq_types.h"

/* Metadata value types (the file's ids). */
typedef enum {
    KQ_GGUF_U8 = 0,
    KQ_GGUF_I8 = 1,
    KQ_GGUF_U16 = 2,
    KQ_GGUF_I16 = 3,
    KQ_GGUF_U32 = 4,
    KQ_GGUF_I32 = 5,
    KQ_GGUF_F32 = 6,
    KQ_GGUF_BOOL = 7,
    KQ_GGUF_STR = 8,
    KQ_GGUF_ARR = 9,
    KQ_GGUF_U64 = 10,
    KQ_GGUF_I64 = 11,
    KQ_GGUF_F64 = 12,
    KQ_GGUF_VTYPE_COUNT = 13
} kq_gguf_vtype;

#define KQ_GGUF_VERSION 3
#define KQ_GGUF_DEFAULT_ALIGNMENT 32
#define KQ_GGUF_MAX_DIMS 4          /* GGML_MAX_DIMS */
#define KQ_GGUF_MAX_NAME 63         /* tensor name bytes: ggml keeps names in char[64] with the NUL */
#define KQ_GGUF_MAX_KEY 65535       /* key bytes (specification) */
#define KQ_GGUF_MAX_KV (1 << 20)    /* keys in one file (a vocabulary is ONE key: an array) */
#define KQ_GGUF_MAX_TENSORS (1 << 20)

/* "u8", "f32", "string", "array"...; "?" if unknown. */
const char *kq_gguf_vtype_name(int vtype);
/* Bytes of one element of a fixed-size value type; 0 for string, array and unknown types. */
size_t kq_gguf_vtype_size(int vtype);

/* Tensor type name for any id the reader accepts: kq's types (kq_ref_traits) and the ggml types kq
 * has no kernels for (iq2_xxs, i32, f64, ...); NULL for ids no GGUF reader knows. */
const char *kq_gguf_type_name(uint32_t type);
/* Bytes of a tensor of this type and shape; 0 if ne[0] is not a valid row or the size overflows. */
uint64_t kq_gguf_tensor_bytes(uint32_t type, int n_dims, const int64_t *ne);

/* ============================== writer ==============================
 * Usage: set metadata, add tensor descriptors, kq_gguf_write_begin (writes header and tensor infos
 * to PATH.kqtmp.XXXXXX beside PATH), then kq_gguf_write_data for each tensor in the order added, in
 * chunks of any size (row by row), then kq_gguf_write_finish (flush, fsync, rename to PATH). On any
 * error call kq_gguf_write_abort (or just kq_gguf_writer_free): the temp file is removed, so nothing
 * half-written is left. Only metadata and descriptors are held in memory, never tensor data.
 * Setters return 0, or -1 (bad key, bad element type, out of memory, or called after write_begin).
 * Keys must be 1..65535 bytes of ASCII without NUL. Setting an existing key replaces its value in
 * place (insertion order is kept). */
typedef struct kq_gguf_writer kq_gguf_writer;

kq_gguf_writer *kq_gguf_writer_new(void);
void kq_gguf_writer_free(kq_gguf_writer *w); /* aborts an unfinished write */

int kq_gguf_set_u8(kq_gguf_writer *w, const char *key, uint8_t v);
int kq_gguf_set_i8(kq_gguf_writer *w, const char *key, int8_t v);
int kq_gguf_set_u16(kq_gguf_writer *w, const char *key, uint16_t v);
int kq_gguf_set_i16(kq_gguf_writer *w, const char *key, int16_t v);
int kq_gguf_set_u32(kq_gguf_writer *w, const char *key, uint32_t v);
int kq_gguf_set_i32(kq_gguf_writer *w, const char *key, int32_t v);
int kq_gguf_set_u64(kq_gguf_writer *w, const char *key, uint64_t v);
int kq_gguf_set_i64(kq_gguf_writer *w, const char *key, int64_t v);
int kq_gguf_set_f32(kq_gguf_writer *w, const char *key, float v);
int kq_gguf_set_f64(kq_gguf_writer *w, const char *key, double v);
int kq_gguf_set_bool(kq_gguf_writer *w, const char *key, int v); /* stored as 0 or 1 */
int kq_gguf_set_str(kq_gguf_writer *w, const char *key, const char *v);
int kq_gguf_set_strn(kq_gguf_writer *w, const char *key, const char *v, size_t len); /* may hold NULs */
/* Numeric (or bool) array: elems holds n host-order values of elem_type (bool: one byte each, 0/1). */
int kq_gguf_set_arr(kq_gguf_writer *w, const char *key, kq_gguf_vtype elem_type, const void *elems, uint64_t n);
/* String array; lens NULL: the strings are NUL-terminated. */
int kq_gguf_set_arr_str(kq_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                        uint64_t n);

/* Adds a tensor descriptor; returns its index, or -1: empty/too long (> 63 bytes)/duplicate name,
 * n_dims outside 1..4, an ne < 1, ne[0] not a valid row of the type (kq_row_ok), or a size overflow.
 * Size = kq_row_size(type, ne[0]) * ne[1] * ne[2] * ne[3]. */
int kq_gguf_add_tensor(kq_gguf_writer *w, const char *name, int n_dims, const int64_t *ne, kq_type type);
int64_t kq_gguf_writer_n_tensors(const kq_gguf_writer *w);
uint64_t kq_gguf_writer_tensor_size(const kq_gguf_writer *w, int tensor_index); /* 0 if out of range */

/* Computes the layout and writes the header and tensor infos. general.alignment, if set, must be a
 * u32 power of two and a multiple of 8. 0 on success; -1 with a message in err. */
int kq_gguf_write_begin(kq_gguf_writer *w, const char *path, char *err, size_t errlen);
/* Appends n bytes to tensor tensor_index, which must be the first tensor not yet complete; a
 * tensor's bytes may come in any number of chunks but must add up to exactly its size. */
int kq_gguf_write_data(kq_gguf_writer *w, int tensor_index, const void *bytes, size_t n, char *err, size_t errlen);
/* Checks every tensor is complete, flushes, fsyncs and renames the temp file to the path. On
 * failure the temp file is removed. */
int kq_gguf_write_finish(kq_gguf_writer *w, char *err, size_t errlen);
void kq_gguf_write_abort(kq_gguf_writer *w);
/* The temp file being written ("" if none), e.g. for a signal handler that removes it. */
const char *kq_gguf_writer_tmp_path(const kq_gguf_writer *w);

/* ============================== reader ==============================
 * kq_gguf_open maps the file read-only and checks all of it before returning: magic, version 3
 * (versions 1 and 2 and big-endian files are refused), counts (at most KQ_GGUF_MAX_KV keys and
 * KQ_GGUF_MAX_TENSORS tensors, and no more than the bytes left could hold), every string and array
 * inside the file, value types known, bools 0/1, no nested arrays (ggml writes none), keys ASCII
 * without NUL (<= 65535 bytes), no duplicate keys or tensor names, tensor names 1..64 bytes without
 * NUL, n_dims <= 4, every ne >= 1, element count and byte size without overflow, tensor types known
 * (ggml's ids and kq's INT-N ids) with a row length valid for the type, offsets multiples of the
 * alignment, every tensor's data inside the file, no two tensors overlapping. general.alignment, if
 * present, must be a u32 power of two. Errors are one line: "FILE: problem".
 * The handle is read-only after open; kq_gguf_last_error is the only state getters change. */
typedef struct kq_gguf kq_gguf;

typedef struct {
    const char *name;   /* NUL-terminated copy */
    int n_dims;         /* 0..4; ne[i] = 1 for i >= n_dims */
    int64_t ne[KQ_GGUF_MAX_DIMS];
    kq_type type;       /* the file's type id (may be a ggml type kq has no kernels for) */
    uint64_t offset;    /* from the data start */
    uint64_t size;      /* bytes */
    int64_t n_elements;
    const void *data;   /* into the map */
} kq_gguf_tensor;

/* One metadata value or array element, decoded (kq_gguf_kv_value, kq_gguf_arr_elem). */
typedef struct {
    int type;           /* kq_gguf_vtype */
    uint64_t u;         /* unsigned integer types and bool; also set for non-negative signed values */
    int64_t i;          /* signed integer types; also set for unsigned values that fit */
    double f;           /* f32 and f64 (f32 widened exactly) */
    const char *s;      /* strings: into the map, NOT NUL-terminated */
    size_t len;
} kq_gguf_value;

int kq_gguf_open(const char *path, kq_gguf **out, char *err, size_t errlen);
/* Same checks on memory ("<memory>" in messages); buf must outlive the handle (it is not copied). */
int kq_gguf_parse(const uint8_t *buf, size_t len, kq_gguf **out, char *err, size_t errlen);
void kq_gguf_close(kq_gguf *g);

uint32_t kq_gguf_version(const kq_gguf *g);
uint32_t kq_gguf_alignment(const kq_gguf *g);
uint64_t kq_gguf_header_end(const kq_gguf *g);  /* end of the tensor infos */
uint64_t kq_gguf_data_offset(const kq_gguf *g); /* header end rounded up to the alignment */
uint64_t kq_gguf_file_size(const kq_gguf *g);
const char *kq_gguf_path(const kq_gguf *g);

/* Metadata by index (file order) and by key. */
int64_t kq_gguf_n_kv(const kq_gguf *g);
int64_t kq_gguf_find_key(const kq_gguf *g, const char *key); /* index or -1 */
const char *kq_gguf_key(const kq_gguf *g, int64_t i);       /* NUL-terminated copy */
int kq_gguf_kv_type(const kq_gguf *g, int64_t i);           /* kq_gguf_vtype */
int kq_gguf_kv_value(const kq_gguf *g, int64_t i, kq_gguf_value *v); /* scalars and strings; -1 for arrays */
int kq_gguf_arr_type(const kq_gguf *g, int64_t i);          /* element type; -1 if not an array */
uint64_t kq_gguf_arr_count(const kq_gguf *g, int64_t i);    /* 0 if not an array */
/* Numeric/bool arrays: the raw little-endian elements in the map (unaligned: read with memcpy);
 * NULL for string arrays and non-arrays. */
const void *kq_gguf_arr_data(const kq_gguf *g, int64_t i);
/* Element j of string array i, in O(1); -1 if i is not a string array or j is out of range. */
int kq_gguf_arr_str(const kq_gguf *g, int64_t i, uint64_t j, const char **s, size_t *len);
/* Element j of any array, decoded; -1 if out of range. */
int kq_gguf_arr_elem(const kq_gguf *g, int64_t i, uint64_t j, kq_gguf_value *v);

/* Typed getters by key: 0, -1 if the key is missing, -2 if its type does not match or the value
 * does not fit; on -1/-2 kq_gguf_last_error says which ("FILE: key 'x' is f32, not an integer").
 * get_u32/u64/i64 take any integer type whose value fits; get_f32 takes f32 or f64 (finite f64
 * beyond float's range is a mismatch); get_str returns a pointer into the map (not NUL-terminated). */
int kq_gguf_get_u32(const kq_gguf *g, const char *key, uint32_t *out);
int kq_gguf_get_u64(const kq_gguf *g, const char *key, uint64_t *out);
int kq_gguf_get_i64(const kq_gguf *g, const char *key, int64_t *out);
int kq_gguf_get_f32(const kq_gguf *g, const char *key, float *out);
int kq_gguf_get_bool(const kq_gguf *g, const char *key, int *out);
int kq_gguf_get_str(const kq_gguf *g, const char *key, const char **s, size_t *len);
const char *kq_gguf_last_error(const kq_gguf *g);

/* Tensors by index (file order) and by name. */
int64_t kq_gguf_n_tensors(const kq_gguf *g);
const kq_gguf_tensor *kq_gguf_tensor_at(const kq_gguf *g, int64_t i); /* NULL if out of range */
int64_t kq_gguf_find_tensor(const kq_gguf *g, const char *name);      /* index or -1 */

#endif
