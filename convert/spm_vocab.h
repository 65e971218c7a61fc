/* kq tokenizer import: SentencePiece tokenizer.model (protobuf ModelProto), llama2.c tokenizer.bin and
 * Hugging Face's special-token JSON files, read into the data GGUF stores as tokenizer.ggml.*.
 *
 * Every reader fills a kq_vocab from scratch (whatever *v held is overwritten, not freed) and, on
 * failure, leaves it empty (kq_vocab_free is still safe) and writes one line naming the file and the
 * problem into err. Return value: 0 on success, -1 on error. */
#ifndef KQ_SPM_VOCAB_H
#define KQ_SPM_VOCAB_H

#include <stddef.h>
#include <stdint.h>

/* Token types as GGUF's tokenizer.ggml.token_type stores them; SentencePiece's ModelProto uses the same
 * numbers for its piece types, so they pass through unchanged. */
enum {
    KQ_TOKEN_NORMAL = 1,
    KQ_TOKEN_UNKNOWN = 2,
    KQ_TOKEN_CONTROL = 3,
    KQ_TOKEN_USER_DEFINED = 4,
    KQ_TOKEN_UNUSED = 5,
    KQ_TOKEN_BYTE = 6
};

/* TrainerSpec.model_type */
enum { KQ_SPM_UNIGRAM = 1, KQ_SPM_BPE = 2, KQ_SPM_WORD = 3, KQ_SPM_CHAR = 4 };

/* Most pieces a vocabulary may hold (the largest real ones are ~256k). */
#define KQ_VOCAB_MAX (1u << 24)
/* Longest piece accepted, in bytes. */
#define KQ_PIECE_MAX (1u << 16)

typedef struct {
    char **tokens;     /* n pieces, raw bytes, each also NUL-terminated (a piece may hold a NUL: use token_lens) */
    size_t *token_lens;
    float *scores;
    int32_t *types;    /* KQ_TOKEN_* */
    uint32_t n;
    const char *model; /* tokenizer.ggml.model: "llama" for SentencePiece (static string, not freed) */
    int64_t bos_id, eos_id, unk_id, pad_id, sep_id; /* -1 = none */
    int add_bos, add_eos;                           /* -1 = not said, else 0/1 */
    int add_dummy_prefix;
    int byte_fallback;
    /* SentencePiece details the GGUF keys do not carry but that change tokenization; the converter may
     * refuse what llama.cpp's tokenizer does not do (a precompiled normalization map, no escaping). */
    int spm_model_type;           /* KQ_SPM_*, 0 = not SentencePiece */
    uint32_t spm_vocab_size;      /* trainer_spec.vocab_size as stored (informational) */
    int remove_extra_whitespaces; /* 0/1 */
    int escape_whitespaces;       /* 0/1 */
    int has_charsmap;             /* normalizer_spec.precompiled_charsmap is not empty */
    char normalizer_name[32];     /* normalizer_spec.name, truncated; "" when absent */
} kq_vocab;

/* Reads a SentencePiece model file. A missing file gives
 * "PATH: not found (needed for the vocabulary; pass --vocab FILE)". */
int kq_spm_read(const char *path, kq_vocab *v, char *err, size_t errlen);
/* Parses a ModelProto held in memory (errors name "tokenizer.model"). */
int kq_spm_parse(const uint8_t *buf, size_t len, kq_vocab *v, char *err, size_t errlen);
/* Writes v as a ModelProto that SentencePiece itself loads: trainer_spec model_type (BPE unless
 * spm_model_type says otherwise), vocab_size, byte_fallback, unk/bos/eos/pad ids and pieces;
 * normalizer_spec "identity" with add_dummy_prefix, remove_extra_whitespaces and escape_whitespaces
 * (always written as true: llama-style models need it). Refuses what SentencePiece would refuse on
 * load: empty or duplicate pieces, no UNKNOWN piece or more than one, a BYTE piece not named <0xNN>,
 * byte pieces without byte_fallback, byte_fallback without all 256 byte pieces. Written to PATH.tmp
 * and renamed. */
int kq_spm_write(const char *path, const kq_vocab *v, char *err, size_t errlen);

/* Reads llama2.c's tokenizer.bin (int32 max_token_length, then per token: float32 score, int32 length,
 * bytes) and undoes its export conventions so the pieces equal SentencePiece's: ' ' becomes U+2581,
 * "\n<s>\n" / "\n</s>\n" at ids 1 / 2 become "<s>" / "</s>". Types: id 0 unknown, 1 and 2 control,
 * "<0xNN>" byte, the rest normal. bos 1, eos 2, unk 0. vocab_size 0 reads every token the file holds;
 * otherwise exactly that many, and bytes left over are an error (a tokenizer of another model). */
int kq_llama2c_tokenizer_read(const char *path, uint32_t vocab_size, kq_vocab *v, char *err, size_t errlen);

/* Applies Hugging Face's files in model_dir to v, each only if present:
 *   added_tokens.json        {"piece": id}: ids >= v->n must continue the vocabulary without gaps;
 *                            they are appended as USER_DEFINED with score -1000 (what llama.cpp's
 *                            converter does); ids < v->n must name the piece already there.
 *   tokenizer_config.json    add_bos_token / add_eos_token (bool or null), add_prefix_space (bool or
 *                            null: sets add_dummy_prefix); bos_token, eos_token,
 *                            unk_token, pad_token, sep_token (string, {"content": string} or null),
 *                            looked up in the vocabulary (an unknown piece is an error).
 *   special_tokens_map.json  the same *_token keys, for those tokenizer_config.json does not name.
 *   generation_config.json   bos_token_id, eos_token_id (int or list of ints: the first), pad_token_id:
 *                            only for ids neither file above named.
 * Needs cJSON (KQ_HAVE_CJSON); without it, present files are an error saying so. Malformed JSON and
 * wrong types are errors naming the file and the key. */
int kq_hf_special_tokens(const char *model_dir, kq_vocab *v, char *err, size_t errlen);

/* Allocates n empty slots (pieces NULL with length 0, score 0, type NORMAL) after kq_vocab_init; -1 when out of memory
 * or n > KQ_VOCAB_MAX. kq_vocab_set_piece copies len bytes into slot i (replacing what was there). */
int kq_vocab_alloc(kq_vocab *v, uint32_t n);
int kq_vocab_set_piece(kq_vocab *v, uint32_t i, const void *s, size_t len);
/* Reads a whole file of at most max bytes into *out (caller frees): 0, 1 when the file does not exist
 * (nothing written to err), -1 on any other error (err written). */
int kq_tok_read_file(const char *path, size_t max, uint8_t **out, size_t *len, char *err, size_t errlen);
/* Id of the piece equal to s (len bytes), or -1. Linear: for a handful of look-ups. */
int64_t kq_vocab_find(const kq_vocab *v, const char *s, size_t len);
/* Frees everything and zeroes *v. */
void kq_vocab_free(kq_vocab *v);
/* An empty vocabulary with every id -1, add_bos/add_eos -1, SentencePiece defaults for the rest. */
void kq_vocab_init(kq_vocab *v);

#endif
