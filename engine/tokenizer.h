/* kq engine tokenizer: a vocabulary read from GGUF metadata (tokenizer.ggml.*) and the SentencePiece-
 * style tokenizer llama.cpp runs for tokenizer.ggml.model "llama" (LLAMA_VOCAB_TYPE_SPM), so token
 * ids, and therefore perplexity figures, are the same as llama.cpp's.
 *
 * How text becomes ids (llama.cpp's llama_vocab::tokenize with add_special as asked and
 * parse_special = false, which is what llama-perplexity uses):
 *  1. USER_DEFINED pieces (token type 4) found in the text are cut out and become their ids, longest
 *     pieces first (equal lengths: lower id first; llama.cpp's std::sort leaves that order unspecified),
 *     each one's occurrences left to right (one pass over the text per such piece). CONTROL and
 *     UNKNOWN pieces ("<s>", "</s>", "<unk>") in the text are NOT special: they are plain text.
 *  2. Each stretch of text between them gets a leading space when the vocabulary adds a dummy prefix
 *     (tokenizer.ggml.add_space_prefix, default true) and it is the first stretch or follows a
 *     user-defined piece; then every ' ' becomes U+2581. Only ' ' is escaped: tabs, CR and LF stay.
 *  3. The stretch is split into UTF-8 characters (length from the lead byte alone, as llama.cpp does;
 *     the last one is cut at the end of the text). Then, repeatedly, the adjacent pair whose
 *     concatenation is a piece of the vocabulary with the HIGHEST score is merged; equal scores: the
 *     leftmost pair. A priority queue of candidate pairs keeps it O(n log n).
 *  4. Each final symbol is its piece's id; a symbol that is not a piece falls back to one byte token
 *     per byte: "<0xNN>" (upper-case hex) or, failing that, the one-byte piece. If some byte has
 *     neither (a vocabulary without byte tokens), the symbol becomes one unknown token, as
 *     SentencePiece does without byte_fallback (llama.cpp throws there).
 * add_bos prepends BOS. EOS is never appended (llama-perplexity refuses vocabularies that add EOS).
 * Identical pieces: the last id wins, as llama.cpp's map does. Empty pieces read as "[EMPTY_<id>]".
 * Not done (llama.cpp does them by model name or text, outside the GGUF's token types): phi-3's rstrip of
 * special pieces, promoting "<|eot_id|>"-like pieces to CONTROL.
 * SentencePiece itself (spm_encode) gives the same ids for valid UTF-8 (all 8,659 + 2,891 lines of
 * the two shared texts checked; tests/tokenize_test.sh checks 200 of each); it differs on invalid UTF-8, which it turns into U+FFFD while llama.cpp (and kq)
 * keep the raw bytes, grouped by the lead byte's length, as byte tokens. It would also differ for a
 * model with remove_extra_whitespaces, which llama.cpp ignores for SentencePiece vocabularies.
 *
 * The tokenizer owns copies of everything it needs: the GGUF may be closed after kq_tokenizer_from_gguf.
 * It is read-only after creation, so threads may share it. Nothing here needs GSL or cJSON. */
#ifndef KQ_ENGINE_TOKENIZER_H
#define KQ_ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct kq_tokenizer kq_tokenizer;

/* Reads tokenizer.ggml.{model,tokens,scores,token_type,bos_token_id,eos_token_id,unknown_token_id,
 * add_bos_token,add_space_prefix}. The model must be "llama" (SentencePiece); any other model
 * ("gpt2", "bert", ...) is an error naming it. Missing scores read as 0, missing types as NORMAL;
 * special ids outside the vocabulary keep the defaults (bos 1, eos 2, unk 0), as llama.cpp does.
 * 0, or -1 with one line "FILE: problem" in err. */
int kq_tokenizer_from_gguf(const kq_gguf *g, kq_tokenizer **out, char *err, size_t errlen);
void kq_tokenizer_free(kq_tokenizer *t);

/* Tokenizes text[0..len) (any bytes; NULs included). Writes at most max ids and returns how many
 * the text has: if that is more than max, call again with a bigger buffer (ids may be NULL when max
 * is 0). -1 on error: add_bos without a BOS id, a symbol with no byte token and no unknown token,
 * a text too long (> 1 GiB), out of memory. */
int64_t kq_tokenize(const kq_tokenizer *t, const char *text, size_t len, int add_bos, int32_t *ids, int64_t max);

int kq_tokenizer_add_bos(const kq_tokenizer *t);       /* tokenizer.ggml.add_bos_token, default 1 */
int kq_tokenizer_add_eos(const kq_tokenizer *t);       /* tokenizer.ggml.add_eos_token, default 0 */
int kq_tokenizer_add_space_prefix(const kq_tokenizer *t); /* default 1 */
int32_t kq_tokenizer_bos(const kq_tokenizer *t);       /* -1 if none */
int32_t kq_tokenizer_eos(const kq_tokenizer *t);       /* -1 if none */
int32_t kq_tokenizer_unk(const kq_tokenizer *t);       /* -1 if none */
int32_t kq_tokenizer_n_vocab(const kq_tokenizer *t);
int32_t kq_token_type(const kq_tokenizer *t, int32_t id); /* GGUF token type (1 normal ... 6 byte); 0 out of range */

/* The raw piece bytes (U+2581 for spaces, "<0x0A>" for a byte token); NULL if id is out of range. */
const char *kq_token_piece(const kq_tokenizer *t, int32_t id, size_t *len);

/* The text of one token as llama.cpp's token_to_piece gives it without special tokens: NORMAL pieces
 * with U+2581 turned back into ' ', BYTE tokens their byte, USER_DEFINED pieces as they are, CONTROL,
 * UNKNOWN and UNUSED tokens "". Writes at most cap bytes (no NUL) and returns the full length. */
size_t kq_detokenize_token(const kq_tokenizer *t, int32_t id, char *buf, size_t cap);

/* Reads a text file as llama.cpp's -f does (llama-perplexity's input): every byte, then ONE trailing
 * '\n' removed if there is one (a CR before it stays). *text is NUL-terminated (not counted in *len);
 * the caller frees it. 0, or -1 with "FILE: problem" in err. */
int kq_text_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen);

#endif
