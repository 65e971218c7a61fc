/* libFuzzer harness for the SentencePiece ModelProto reader (convert/spm.c): any input is parsed or
 * refused with a message, and what is accepted keeps the promises of tokenizer.h. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spm_vocab.h"

static void check(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kq_vocab v;
    char err[256];
    err[0] = '\0';
    if (kq_spm_parse(data, size, &v, err, sizeof err) == 0) {
        check(v.n > 0 && v.n <= KQ_VOCAB_MAX);
        for (uint32_t i = 0; i < v.n; i++) {
            check(v.tokens[i] != NULL && v.token_lens[i] > 0 && v.token_lens[i] <= KQ_PIECE_MAX);
            check(v.tokens[i][v.token_lens[i]] == '\0');
            check(v.types[i] >= KQ_TOKEN_NORMAL && v.types[i] <= KQ_TOKEN_BYTE);
        }
        const int64_t ids[4] = {v.unk_id, v.bos_id, v.eos_id, v.pad_id};
        for (int k = 0; k < 4; k++) check(ids[k] >= -1 && ids[k] < (int64_t)v.n);
        check(memchr(v.normalizer_name, '\0', sizeof v.normalizer_name) != NULL);
    } else {
        check(err[0] != '\0' && v.n == 0 && v.tokens == NULL);
    }
    kq_vocab_free(&v);
    return 0;
}
