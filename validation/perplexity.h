/* kq perplexity: llama-perplexity's windows and scoring, KL divergence against a base, and the base
 * file in llama.cpp's --kl-divergence-base format (docs/perplexity.md has the facts and sources).
 *
 * Plain C and libm only (no GSL, no cJSON), so it is part of the static aarch64 binary. The model is a
 * callback: the library never calls the engine, so a test can feed it synthetic logits.
 *
 * The method, as llama.cpp's perplexity():
 *  - the token stream is cut into non-overlapping windows of n_ctx tokens, window k = tokens
 *    [k*n_ctx, (k+1)*n_ctx); n_chunks = floor(n_tokens / n_ctx), or fewer when asked;
 *  - token 0 of each window is replaced by BOS when the vocabulary adds BOS (the stream itself keeps
 *    the original token: the base file stores the stream, not what was fed);
 *  - each window is evaluated from an empty KV cache, and the logits at positions
 *    j = n_ctx/2 ... n_ctx-2 are scored against the token at j+1: n_ctx-1-n_ctx/2 tokens per window;
 *  - PPL = exp(mean nll), its standard error = PPL * sqrt(var(nll) / (N-1)). */
#ifndef KQ_PERPLEXITY_H
#define KQ_PERPLEXITY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- per-position scoring ------------------------------------------------------------------- */

/* -ln softmax(logits)[tok], computed as llama.cpp's log_softmax: the max subtracted in float, expf
 * of each difference, the sum accumulated in double, log in double. */
double kq_ppl_nll(const float *logits, int n_vocab, int32_t tok);

/* Scored positions of one window: n_ctx - 1 - n_ctx/2 (0 when n_ctx < 3). */
int kq_ppl_scored_per_window(int n_ctx);

/* ---- the base file (llama.cpp's --kl-divergence-base format, little-endian) ------------------
 *   char[8] "_logits_", int32 n_ctx, int32 n_vocab, int32 n_chunk, int32 tokens[n_chunk * n_ctx]
 *   then per chunk, per scored position (n_ctx - 1 - n_ctx/2 of them), one record of
 *   kq_logits_record_len(n_vocab) uint16: float scale, float min_log_prob (as 4 uint16), n_vocab
 *   uint16 q[i] (ln p_i = scale * q[i] + min_log_prob), and one zero uint16 when n_vocab is odd. */

#define KQ_LOGITS_MAGIC "_logits_"

size_t kq_logits_record_len(int n_vocab); /* in uint16 */

/* Encodes one position's logits as llama.cpp's log_softmax(..., uint16_t *) does: logits more than
 * 16 below the max are clamped to max - 16, the range split in 65535 steps. */
void kq_logits_encode(const float *logits, int n_vocab, uint16_t *rec);
/* ln p of token i as stored in a record. */
float kq_logits_decode(const uint16_t *rec, int i);

typedef struct {
    int32_t n_ctx, n_vocab, n_chunk;
    int32_t *tokens; /* n_chunk * n_ctx: the stream as tokenized (before the BOS rule) */
} kq_logits_header;

int kq_logits_header_write(FILE *f, int n_ctx, int n_vocab, int n_chunk, const int32_t *tokens, char *err,
                           size_t errlen);
/* Reads and checks a header; name is used in messages. The file must be seekable: its size must be
 * exactly what the header announces (a truncated or padded file is an error, before any work). */
int kq_logits_header_read(FILE *f, const char *name, kq_logits_header *h, char *err, size_t errlen);
void kq_logits_header_free(kq_logits_header *h);

/* ---- statistics --------------------------------------------------------------------------------- */

typedef struct {
    int64_t n;
    double mean, se;             /* se: standard error of the mean, sqrt(sum (x-mean)^2 / (n (n-1))) */
    double min, median, p99, max; /* percentiles interpolated as llama.cpp's (fraction * (n-1)) */
} kq_ppl_stats;

/* Sorts a copy; returns -1 only when out of memory. n == 0 gives all zeros. */
int kq_ppl_stats_compute(const double *x, int64_t n, kq_ppl_stats *s);

/* ---- the run -------------------------------------------------------------------------------------- */

/* Evaluates window[0..n) from an empty KV cache and writes n * n_vocab logits (row j = after token j).
 * Returns 0, or -1 with a message in err. */
typedef int (*kq_ppl_eval_fn)(void *user, const int32_t *window, int n, float *logits, char *err, size_t errlen);
/* Called after each window with the running PPL. */
typedef void (*kq_ppl_progress_fn)(void *user, int done, int n_chunks, double ppl);

typedef struct {
    int n_ctx, n_vocab;
    int add_bos;    /* the vocabulary adds BOS: token 0 of each window becomes bos_id */
    int32_t bos_id;
    int max_chunks; /* <= 0: every whole window */
    FILE *save;     /* NULL, or records are written here chunk by chunk (caller wrote the header) */
    FILE *base;     /* NULL, or records are read from here chunk by chunk (caller read the header) */
    const char *base_name;
    kq_ppl_progress_fn progress;
    void *progress_user;
} kq_ppl_opts;

typedef struct {
    int n_ctx, n_vocab, n_chunks;
    int64_t n_tokens, n_scored;
    double *nll; /* n_scored, in order */
    double nll_mean, nll_se, ppl, ppl_se;
    /* against a base (has_base) */
    int has_base;
    double *kld, *dlnp; /* per scored token: KL(base || this), ln p_this(tok) - ln p_base(tok) */
    int64_t n_same_top;
    kq_ppl_stats kld_stats, dlnp_stats;
    double top1, top1_se;       /* fraction of positions whose argmax agrees */
    double ppl_base, ppl_base_se; /* from the stored log-probs */
    double dlnp_z;              /* dlnp mean / se (0 when se is 0) */
    int dlnp_significant;       /* |z| > 1.96: the difference is significant at 5% (two-sided) */
} kq_ppl_result;

/* llama-perplexity's rule: fewer than 2 * n_ctx tokens is an error (message in err). */
int kq_ppl_check_stream(int64_t n_tokens, int n_ctx, char *err, size_t errlen);
/* Runs every window. The 2*n_ctx rule is the caller's (a base may hold a single chunk). */
int kq_ppl_run(const kq_ppl_opts *o, const int32_t *tokens, int64_t n_tokens, kq_ppl_eval_fn eval, void *user,
               kq_ppl_result *r, char *err, size_t errlen);
void kq_ppl_result_free(kq_ppl_result *r);

/* The JSON object of a result (keys in docs/perplexity.md), one line, no newline. */
void kq_ppl_result_json(FILE *f, const kq_ppl_result *r);

/* Reads a token stream: ids separated by white space (`kq tokenize` output) or {"ids":[...]}.
 * *ids is malloc'ed (caller frees). */
int kq_ppl_read_tokens(const char *path, int32_t **ids, int64_t *n, char *err, size_t errlen);

#endif
