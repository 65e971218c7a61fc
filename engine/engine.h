/* kq engine: a transformer forward pass over a GGUF file (mmap: weights are never copied).
 *
 * One block graph for every family; a family is a row of data (engine/arch.c) that sets the knobs
 * (norm kind, rotary style, activation, biases, ...). Today: llama (RMSNorm, rotary on adjacent
 * pairs as llama.cpp's LLAMA_ROPE_TYPE_NORM, SwiGLU, grouped-query attention).
 *
 * Numerics follow llama.cpp's CPU backend so figures compare (README "How each weight type runs"):
 *  - a quantized weight takes its activation row quantized to the type's vec_dot_type (q8_0, q8_1,
 *    q8_K) by the implementation's quantize_row, then the integer vec_dot;
 *  - an F16 weight takes the activation rounded to F16, F16.F16 dot widened and accumulated in F32;
 *  - an F32 weight runs in F32;
 *  - the KV cache is F16 by default (K rows and the attention probabilities rounded to F16 for the
 *    F16 dots, V stored transposed as llama.cpp does), or F32 with kv_type = KQ_TYPE_F32.
 * Every matmul goes through the dispatch table of opts.impl, and every other operation (norms,
 * rotary, softmax, activation) is the same scalar code whatever the implementation, so
 * --impl reference and --impl neon give bit-identical logits (DESIGN.md's reduction contract).
 * Results do not depend on the number of threads (each output row is computed by one thread). */
#ifndef KQ_ENGINE_H
#define KQ_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "kq_dispatch.h"

typedef struct {
    kq_impl impl;      /* kernels (default: kq_impl_best()) */
    int threads;       /* worker threads, >= 1 (default: online CPUs) */
    kq_type kv_type;   /* KQ_TYPE_F16 (default) or KQ_TYPE_F32 */
    int n_batch;       /* tokens per forward step in prompt processing (default 512) */
} kq_engine_opts;

void kq_engine_opts_init(kq_engine_opts *o);

typedef struct {
    char arch[32];        /* general.architecture */
    char name[128];       /* general.name, or the file name */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_rot, n_ctx_train;
    float norm_eps, rope_base;
    int32_t bos_id, eos_id; /* -1 if none */
    int add_bos;            /* tokenizer.ggml.add_bos_token, default 1 for SentencePiece models */
    uint64_t weight_bytes;  /* bytes of the weights read for one token (every matmul weight + norms) */
    uint64_t n_params;
} kq_model_hparams;

typedef struct kq_model kq_model;

/* Loads (maps) a GGUF model; checks every tensor the family needs, its shape and that its type has
 * a vec_dot. Errors name the file and the problem. */
int kq_model_load(const char *path, const kq_engine_opts *o, kq_model **out, char *err, size_t errlen);
void kq_model_free(kq_model *m);
const kq_model_hparams *kq_model_hp(const kq_model *m);
const kq_gguf *kq_model_gguf(const kq_model *m); /* the open file: metadata for the tokenizer */
const kq_engine_opts *kq_model_opts(const kq_model *m);

/* A session: KV cache for n_ctx positions (n_ctx <= 0: the model's context_length), the scratch
 * buffers of one sequence and its own pool of opts.threads threads. One call at a time per session;
 * sessions of one model may run side by side (the model is read-only after loading). */
typedef struct kq_session kq_session;

int kq_session_new(kq_model *m, int n_ctx, kq_session **out, char *err, size_t errlen);
void kq_session_free(kq_session *s);
void kq_session_reset(kq_session *s); /* back to position 0 */
int kq_session_pos(const kq_session *s);
int kq_session_n_ctx(const kq_session *s); /* positions the KV cache holds */

/* Evaluates tokens[0..n) at the current position and appends them to the KV cache, in batches of
 * opts.n_batch (matrix x matrix: each weight row is used for every token of the batch while it is
 * in cache). logits: NULL, or when all_logits n * n_vocab floats (row i = logits after token i),
 * else n_vocab floats for the last token. Fails (and changes nothing) past n_ctx or for a token id
 * outside the vocabulary. */
int kq_session_eval(kq_session *s, const int32_t *tokens, int n, float *logits, int all_logits, char *err,
                    size_t errlen);

#endif
