/* kq: the family table (see arch.h). */
#include <stddef.h>
#include <string.h>

#include "arch.h"

static const kq_arch kq_archs[] = {
    /* name     norm         rope          act          gated par attnb ffnb normb alibi partial */
    {"llama", KQ_NORM_RMS, KQ_ROPE_NORM, KQ_ACT_SILU, 1, 0, 0, 0, 0, 0, 0},
};

const kq_arch *kq_arch_find(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof kq_archs / sizeof kq_archs[0]; i++)
        if (strlen(kq_archs[i].name) == len && !memcmp(kq_archs[i].name, name, len)) return &kq_archs[i];
    return NULL;
}

const char *kq_arch_unsupported(const kq_arch *a) {
    if (a->norm != KQ_NORM_RMS) return "LayerNorm";
    if (a->rope == KQ_ROPE_NONE) return "no rotary";
    if (a->act != KQ_ACT_SILU) return "GELU";
    if (!a->gated_ffn) return "ungated FFN";
    if (a->parallel_block) return "parallel attention+MLP";
    if (a->attn_bias || a->ffn_bias || a->norm_bias) return "biases";
    if (a->alibi) return "ALiBi";
    return NULL; /* NEOX rotary and partial rotary are implemented */
}
