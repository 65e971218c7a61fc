/* kq model families: how a Hugging Face checkpoint maps onto GGUF, as DATA rows.
 *
 * A family is three tables: tensors (HF name pattern -> GGUF name pattern, expected shape, transform,
 * role), hyperparameters (config.json key -> GGUF key, default) and names to skip. The conversion
 * loop (convert.c) reads these rows and is the same for every family; a new family is a new table.
 *
 * llama: q_proj / k_proj rows are stored by Hugging Face in the "rotate halves" order its
 * conversion script from Meta's checkpoints produced; llama.cpp (and llama2.c, Meta) expect the
 * interleaved-pairs order. Undone per head of hd = head_dim rows:
 *     GGUF row h*hd + 2*j + i  =  HF row h*hd + i*(hd/2) + j      (i in {0,1}, j < hd/2)
 * with n_head heads for q and n_head_kv heads for k (llama.cpp's convert_hf_to_gguf.py `permute`:
 * reshape(n_head, 2, hd/2, cols).swapaxes(1, 2)). */
#ifndef KQ_FAMILY_H
#define KQ_FAMILY_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef enum { KQ_XF_NONE = 0, KQ_XF_ROPE_Q, KQ_XF_ROPE_K } kq_xform;

/* What a tensor is, for the named mixtures (llama-quantize's per-tensor choices). */
typedef enum {
    KQ_ROLE_OTHER = 0,
    KQ_ROLE_TOKEN_EMBD,
    KQ_ROLE_OUTPUT,
    KQ_ROLE_ATTN_Q,
    KQ_ROLE_ATTN_K,
    KQ_ROLE_ATTN_V,
    KQ_ROLE_ATTN_OUTPUT,
    KQ_ROLE_FFN_GATE,
    KQ_ROLE_FFN_DOWN,
    KQ_ROLE_FFN_UP,
    KQ_ROLE_NORM
} kq_tensor_role;

/* Symbolic dimensions of the expected shapes. */
typedef enum { KQ_DIM_NONE = 0, KQ_DIM_EMBD, KQ_DIM_FF, KQ_DIM_VOCAB, KQ_DIM_QDIM, KQ_DIM_KVDIM } kq_dim;

typedef struct {
    const char *hf;        /* HF name; "%d" stands for the block index in per-block rows */
    const char *gguf;      /* GGUF name, same "%d" */
    int per_block;
    int n_dims;            /* 1 or 2 */
    kq_dim rows, cols;     /* HF shape [rows, cols] (1-D: [rows]) */
    kq_xform xform;
    kq_tensor_role role;
    int optional;          /* may be absent (lm_head when embeddings are tied) */
    int vocab_rows;        /* rows are the vocabulary: an LLMZoo delta may add rows */
} kq_family_tensor;

/* Hyperparameters, as the converter holds them (llama names; other families reuse the fields). */
typedef struct {
    int64_t n_ctx, n_embd, n_layer, n_ff, n_head, n_head_kv, n_rot, n_vocab;
    double rope_theta, rms_eps;
} kq_hparams;

typedef enum { KQ_HP_U32 = 0, KQ_HP_F32 } kq_hp_kind;
typedef enum {
    KQ_HPD_REQUIRED = 0, /* missing key: error naming file and key */
    KQ_HPD_CONST,        /* missing key: dflt_value */
    KQ_HPD_COPY,         /* missing key: the value of field dflt_field (head_count_kv = head_count) */
    KQ_HPD_HEAD_DIM      /* missing key: n_embd / n_head */
} kq_hp_default;

typedef struct {
    const char *gguf;      /* key after "<arch>.", e.g. "context_length" */
    const char *hf[3];     /* config.json keys, first present wins (NULL-terminated) */
    kq_hp_kind kind;
    size_t field;          /* offsetof(kq_hparams, ...) : int64_t for U32, double for F32 */
    kq_hp_default dflt;
    double dflt_value;
    size_t dflt_field;
} kq_family_hparam;

typedef struct {
    const char *name;                 /* registry "family" value: "llama" */
    const char *arch;                 /* general.architecture and the key prefix */
    const char *const *hf_architectures; /* config.json "architectures" accepted (NULL-terminated) */
    const kq_family_tensor *tensors;
    size_t n_tensors;
    const kq_family_hparam *hparams;
    size_t n_hparams;
    const char *const *skip_suffixes;  /* HF tensors ignored (NULL-terminated) */
} kq_family;

const kq_family *kq_family_find(const char *name); /* NULL if unknown */
const kq_family *kq_family_llama(void);

/* Expected extent of a symbolic dimension (-1 for KQ_DIM_NONE). */
int64_t kq_family_dim(const kq_hparams *hp, kq_dim d);

/* Formats a pattern with block b ("%d" replaced; no other conversions). -1 if it does not fit. */
int kq_family_format(const char *pattern, int block, char *out, size_t outlen);
/* Matches name against a pattern; returns 1 and the block (or -1) on a match. */
int kq_family_match(const char *pattern, const char *name, int *block);

/* The table row an HF name maps to (NULL: unknown), with its block. */
const kq_family_tensor *kq_family_map_hf(const kq_family *f, const char *hf_name, int *block);
/* The row a GGUF name belongs to (NULL: not in the table), with its block. */
const kq_family_tensor *kq_family_map_gguf(const kq_family *f, const char *gguf_name, int *block);
/* 1 if the HF name is one the family ignores. */
int kq_family_skip(const kq_family *f, const char *hf_name);

/* Source row of GGUF row r of a rotary-permuted tensor with heads of hd rows (hd even). */
static inline int64_t kq_rope_src_row(int64_t r, int64_t hd) {
    const int64_t h = r / hd, w = r % hd, half = hd / 2;
    return h * hd + (w % 2) * half + w / 2;
}

/* Reads the hyperparameters from a config.json (cJSON). Errors name the file and the key:
 * "DIR/config.json: key 'hidden_size' is missing" / "... is a string, expected an integer". */
int kq_family_read_config(const kq_family *f, const char *config_path, kq_hparams *hp, char *err,
                          size_t errlen);
/* Checks the values are usable (positive, heads divide, head_dim even); err names the key. */
int kq_family_check_hparams(const kq_hparams *hp, const char *what, char *err, size_t errlen);
/* Writes "<arch>.<key>" for every hparam row, plus "<arch>.vocab_size". 0 or -1. */
int kq_family_write_hparams(const kq_family *f, const kq_hparams *hp, kq_gguf_writer *w);

#endif
