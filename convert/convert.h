/* kq conversion pipeline: checkpoint -> GGUF, streaming, tensor by tensor, row by row.
 *
 *   source rows (F32/F16/BF16, widened to f32)  [+ delta rows]  -> rotary permutation (q, k)
 *   -> NaN/Inf policy -> quantize_row of the chosen type (dispatch table, several threads)
 *   -> kq_gguf_write_data
 *
 * Memory: per chunk of rows (about 4M weights) an f32 buffer, a scratch buffer and the quantized
 * bytes; nothing else scales with the model. Checkpoint data is read through mmap.
 *
 * ---- Types (issue 9 section 6) ----
 *  - `type` (-t) applies to every 2-D weight, token embedding and output included (like
 *    llama-quantize --pure). 1-D tensors (norms) are always F32.
 *  - `mix` (--mix Q4_K_M ...) picks per tensor like llama-quantize (docs/mixes.md).
 *  - `keep` rules (--keep GLOB=TYPE, fnmatch on the GGUF name) override both, for 2-D tensors; the
 *    last matching rule wins.
 *  - Fallback: a row length the chosen type cannot hold (kq_row_ok) gets q8_0 if it is a multiple of
 *    32, else f16. Every fallback is listed in the metadata key KQ_KEY_FALLBACKS, one string per
 *    tensor "NAME:WANTED:ACTUAL" (e.g. "blk.0.ffn_down.weight:q4_K:f16").
 *  - general.file_type: llama.cpp's LLAMA_FTYPE of the -t type or mix (kq_file_type_of). A file whose
 *    -t type is INT-N gets KQ_FILE_TYPE_INTN_BASE + the kq type id (65536 + id: no llama.cpp value),
 *    and any file holding an INT-N tensor gets kq.intn_layout_version (u32, KQ_INTN_LAYOUT_VERSION).
 *  - general.quantization_version 2 when any tensor is quantized; general.alignment 32 always.
 *
 * ---- NaN/Inf policy ----
 *  A non-finite weight is an error naming the tensor, the row and the column (GGUF coordinates), and
 *  no output file is left. With allow_nonfinite, f32/f16/bf16 outputs carry them through unchanged
 *  (bf16/f16 conversion is exact for them); quantized outputs still refuse them (quantizers are
 *  defined for finite input only, kq_types.h).
 */
#ifndef KQ_CONVERT_H
#define KQ_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "family.h"
#include "gguf.h"
#include "kq_dispatch.h"
#include "kq_types.h"
#include "spm_vocab.h"

#define KQ_KEY_FALLBACKS "kq.fallbacks"
#define KQ_KEY_INTN_LAYOUT "kq.intn_layout_version"
#define KQ_KEY_OUTTYPE "kq.outtype" /* the -t type or mix name as asked, e.g. "q4_K", "Q4_K_M" */
#define KQ_FILE_TYPE_INTN_BASE 65536u

/* Named mixtures (llama-quantize ftypes). */
typedef enum {
    KQ_MIX_NONE = 0,
    KQ_MIX_Q4_0, KQ_MIX_Q4_1, KQ_MIX_Q5_0, KQ_MIX_Q5_1, KQ_MIX_Q8_0,
    KQ_MIX_Q2_K, KQ_MIX_Q3_K_S, KQ_MIX_Q3_K_M, KQ_MIX_Q3_K_L, KQ_MIX_Q4_K_S, KQ_MIX_Q4_K_M,
    KQ_MIX_Q5_K_S, KQ_MIX_Q5_K_M, KQ_MIX_Q6_K,
    KQ_MIX_COUNT
} kq_mix;

kq_mix kq_mix_by_name(const char *name); /* case-insensitive; KQ_MIX_NONE if unknown */
const char *kq_mix_name(kq_mix m);
uint32_t kq_mix_file_type(kq_mix m);     /* LLAMA_FTYPE_MOSTLY_* */
/* general.file_type of a file whose 2-D weights are all of type t (pure). */
uint32_t kq_file_type_of(kq_type t);

typedef struct {
    char glob[128];
    kq_type type;
} kq_keep_rule;
/* Parses "GLOB=TYPE". 0, or -1 with err. */
int kq_keep_parse(const char *arg, kq_keep_rule *r, char *err, size_t errlen);

typedef void (*kq_progress_fn)(void *ud, int64_t done, int64_t total);

typedef struct {
    kq_type type;              /* KQ_TYPE_NONE: f16 (when no mix) */
    kq_mix mix;
    const kq_keep_rule *keep;
    size_t n_keep;
    const char *delta_dir;     /* LLMZoo delta folder, or NULL */
    const char *vocab_path;    /* tokenizer.model / tokenizer.bin override, or NULL */
    const char *name;          /* general.name; NULL: the source's folder/file name */
    int allow_nonfinite;
    int threads;               /* 0: every online CPU */
    kq_impl impl;              /* quantizer table (kq_impl_best() by default) */
    kq_progress_fn progress;   /* called with weights done / total, or NULL */
    void *progress_ud;
    /* told the output's temp file once it exists and NULL when it is gone (renamed or removed),
     * so the CLI can remove it if a signal ends the process; NULL: not told */
    void (*on_tmp_file)(const char *tmp_path);
} kq_convert_opts;

void kq_convert_opts_init(kq_convert_opts *o);

/* One output tensor and where its rows come from (the source's own fields). */
typedef struct {
    char name[KQ_GGUF_MAX_NAME + 1];
    int n_dims;
    int64_t ne[KQ_GGUF_MAX_DIMS]; /* GGUF order: ne[0] = row length */
    kq_tensor_role role;
    int layer;                    /* block index or -1 */
    kq_type wanted, type;         /* before and after the fallback rule */
    /* source bookkeeping */
    const void *src, *delta;      /* source tensors (kq_src_tensor / kq_gguf_tensor / NULL) */
    int64_t src_rows;             /* rows the base holds (delta may add more) */
    kq_xform xform;
    int64_t head_dim;
    const char *src_name;         /* for error messages */
    const char *src_file;
    const char *delta_file;
} kq_conv_tensor;

/* Fills out[0..nrows) * ne[0] floats with GGUF rows [row0, row0+nrows) of t. Thread-safe.
 * scratch holds nrows * ne[0] floats. Called once more with nrows == 0 (out, scratch NULL) when the
 * tensor is written: the source may drop its mapped pages then, so a conversion's resident memory
 * stays at one tensor's worth instead of growing with the model. */
typedef int (*kq_rows_fn)(void *ctx, const kq_conv_tensor *t, int64_t row0, int64_t nrows, float *out,
                          float *scratch, char *err, size_t errlen);

/* The type of one tensor by the rules above. wanted receives the type before the fallback. */
kq_type kq_pick_type(const kq_convert_opts *o, const kq_conv_tensor *t, int n_layer, int n_gqa, kq_type *wanted);

/* Chooses every tensor's type, then writes general.file_type, general.quantization_version,
 * general.alignment, kq.outtype, kq.fallbacks and kq.intn_layout_version into w. */
int kq_conv_plan(kq_gguf_writer *w, kq_conv_tensor *t, size_t n, const kq_convert_opts *o, int n_layer, int n_gqa,
                 char *err, size_t errlen);
/* Adds the tensors, writes the file (temp + rename) and streams every row through rows(). */
int kq_conv_run(kq_gguf_writer *w, const kq_conv_tensor *t, size_t n, kq_rows_fn rows, void *ctx,
                const kq_convert_opts *o, const char *out_path, char *err, size_t errlen);

/* tokenizer.ggml.* from a vocabulary. */
int kq_conv_write_vocab(kq_gguf_writer *w, const kq_vocab *v, int spm_keys);

/* ---- the three front ends ---- */
/* A Hugging Face folder of family f (NULL: llama), optionally + opts->delta_dir. */
int kq_convert_hf(const char *dir, const kq_family *f, const char *out_path, const kq_convert_opts *o, char *err,
                  size_t errlen);
/* A llama2.c legacy (version 0) checkpoint + its tokenizer.bin (convert/llama2c.c). */
int kq_convert_llama2c(const char *bin_path, const char *vocab_path, const char *out_path,
                       const kq_convert_opts *o, char *err, size_t errlen);
/* Requantizes an F32/F16/BF16 GGUF, copying its metadata (kq quantize). */
int kq_requantize_gguf(const char *in_path, const char *out_path, const kq_convert_opts *o, char *err,
                       size_t errlen);

/* llama2.c checkpoint header (exposed for tests). */
typedef struct {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier;
} kq_llama2c_config;

#endif
