/* kq: the data-only pickle VM for torch.save state_dicts, and the matching writer.
 *
 * The VM interprets the opcodes Python's pickler emits for an OrderedDict of tensors (protocols 2 to
 * 5) and builds plain values; it calls nothing. GLOBAL is accepted for a fixed list of names
 * (collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter[...],
 * torch.*Storage), which the VM only recognises as symbols; any other global is an error naming it.
 * Stack, memo and value counts are bounded by the input length and by fixed limits.
 */
#ifndef KQ_PICKLE_H
#define KQ_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"

typedef struct {
    char *name;
    char *storage_key;              /* zip record <archive>/data/<storage_key> */
    kq_dtype dtype;
    const char *dtype_name;         /* static: "FloatStorage", ... */
    int64_t storage_numel;          /* elements of the storage, as the pickle claims */
    int64_t storage_offset;         /* elements */
    int ndim;
    int64_t shape[KQ_SRC_MAX_DIMS];
    int64_t stride[KQ_SRC_MAX_DIMS];
} kq_pkl_tensor;

typedef struct {
    kq_pkl_tensor *t;
    size_t n;
} kq_pkl_result;

/* Parses data.pkl of a torch.save'd state_dict. Every tensor must be contiguous row-major and lie
 * inside its storage as the pickle describes it. 0 on success (then free with kq_pkl_result_free). */
int kq_pickle_parse_state_dict(const uint8_t *pkl, size_t len, const char *file, kq_pkl_result *out,
                               char *err, size_t errlen);
void kq_pkl_result_free(kq_pkl_result *r);

/* Storage class name for a dtype ("FloatStorage"), NULL for KQ_DT_OTHER. */
const char *kq_pkl_storage_name(kq_dtype dt);

/* Writes the protocol-2 pickle torch.save produces for an OrderedDict of these tensors, with the
 * _metadata attribute state_dict() carries ({'': {'version': 1}}): byte-identical to PyTorch 1.13's
 * data.pkl for the same state_dict. *out is malloc'd. 0 on success. */
int kq_pickle_write_state_dict(const kq_pkl_tensor *t, size_t n, uint8_t **out, size_t *outlen);

#endif
