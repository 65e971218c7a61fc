/* kq model families as data (see family.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "kq_file.h"

#if KQ_HAVE_CJSON
#include <cjson/cJSON.h>
#endif

/* ---- llama: LLaMA 1/2, Chimera (LLaMA + LLMZoo delta), TinyLlama, Mistral (GQA), llama2.c ---- */
static const kq_family_tensor kq_llama_tensors[] = {
    /* order here = order in the GGUF: globals first, then each block (as llama2.c's converter does) */
    {"model.embed_tokens.weight", "token_embd.weight", 0, 2, KQ_DIM_VOCAB, KQ_DIM_EMBD, KQ_XF_NONE,
     KQ_ROLE_TOKEN_EMBD, 0, 1},
    {"model.norm.weight", "output_norm.weight", 0, 1, KQ_DIM_EMBD, KQ_DIM_NONE, KQ_XF_NONE, KQ_ROLE_NORM, 0, 0},
    {"lm_head.weight", "output.weight", 0, 2, KQ_DIM_VOCAB, KQ_DIM_EMBD, KQ_XF_NONE, KQ_ROLE_OUTPUT, 1, 1},
    {"model.layers.%d.self_attn.q_proj.weight", "blk.%d.attn_q.weight", 1, 2, KQ_DIM_QDIM, KQ_DIM_EMBD,
     KQ_XF_ROPE_Q, KQ_ROLE_ATTN_Q, 0, 0},
    {"model.layers.%d.self_attn.k_proj.weight", "blk.%d.attn_k.weight", 1, 2, KQ_DIM_KVDIM, KQ_DIM_EMBD,
     KQ_XF_ROPE_K, KQ_ROLE_ATTN_K, 0, 0},
    {"model.layers.%d.self_attn.v_proj.weight", "blk.%d.attn_v.weight", 1, 2, KQ_DIM_KVDIM, KQ_DIM_EMBD,
     KQ_XF_NONE, KQ_ROLE_ATTN_V, 0, 0},
    {"model.layers.%d.self_attn.o_proj.weight", "blk.%d.attn_output.weight", 1, 2, KQ_DIM_EMBD, KQ_DIM_QDIM,
     KQ_XF_NONE, KQ_ROLE_ATTN_OUTPUT, 0, 0},
    {"model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", 1, 1, KQ_DIM_EMBD, KQ_DIM_NONE,
     KQ_XF_NONE, KQ_ROLE_NORM, 0, 0},
    {"model.layers.%d.mlp.gate_proj.weight", "blk.%d.ffn_gate.weight", 1, 2, KQ_DIM_FF, KQ_DIM_EMBD,
     KQ_XF_NONE, KQ_ROLE_FFN_GATE, 0, 0},
    {"model.layers.%d.mlp.down_proj.weight", "blk.%d.ffn_down.weight", 1, 2, KQ_DIM_EMBD, KQ_DIM_FF,
     KQ_XF_NONE, KQ_ROLE_FFN_DOWN, 0, 0},
    {"model.layers.%d.mlp.up_proj.weight", "blk.%d.ffn_up.weight", 1, 2, KQ_DIM_FF, KQ_DIM_EMBD, KQ_XF_NONE,
     KQ_ROLE_FFN_UP, 0, 0},
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", 1, 1, KQ_DIM_EMBD,
     KQ_DIM_NONE, KQ_XF_NONE, KQ_ROLE_NORM, 0, 0},
};

#define KQ_HP(f) offsetof(kq_hparams, f)
static const kq_family_hparam kq_llama_hparams[] = {
    /* 2048: what llama.cpp's converters assume when a config has no context length */
    {"context_length", {"max_position_embeddings", "max_sequence_length", NULL}, KQ_HP_U32, KQ_HP(n_ctx),
     KQ_HPD_CONST, 2048, 0},
    {"embedding_length", {"hidden_size", NULL}, KQ_HP_U32, KQ_HP(n_embd), KQ_HPD_REQUIRED, 0, 0},
    {"block_count", {"num_hidden_layers", NULL}, KQ_HP_U32, KQ_HP(n_layer), KQ_HPD_REQUIRED, 0, 0},
    {"feed_forward_length", {"intermediate_size", NULL}, KQ_HP_U32, KQ_HP(n_ff), KQ_HPD_REQUIRED, 0, 0},
    {"attention.head_count", {"num_attention_heads", NULL}, KQ_HP_U32, KQ_HP(n_head), KQ_HPD_REQUIRED, 0, 0},
    {"attention.head_count_kv", {"num_key_value_heads", NULL}, KQ_HP_U32, KQ_HP(n_head_kv), KQ_HPD_COPY, 0,
     KQ_HP(n_head)},
    {"rope.dimension_count", {"head_dim", NULL}, KQ_HP_U32, KQ_HP(n_rot), KQ_HPD_HEAD_DIM, 0, 0},
    {"rope.freq_base", {"rope_theta", NULL}, KQ_HP_F32, KQ_HP(rope_theta), KQ_HPD_CONST, 10000.0, 0},
    {"attention.layer_norm_rms_epsilon", {"rms_norm_eps", NULL}, KQ_HP_F32, KQ_HP(rms_eps), KQ_HPD_REQUIRED,
     0, 0},
    {"vocab_size", {"vocab_size", NULL}, KQ_HP_U32, KQ_HP(n_vocab), KQ_HPD_REQUIRED, 0, 0},
};

static const char *const kq_llama_archs[] = {"LlamaForCausalLM", "LLaMAForCausalLM", "MistralForCausalLM",
                                             NULL};
static const char *const kq_llama_skip[] = {"rotary_emb.inv_freq", NULL};

static const kq_family kq_families[] = {
    {"llama", "llama", kq_llama_archs, kq_llama_tensors, sizeof(kq_llama_tensors) / sizeof(kq_llama_tensors[0]),
     kq_llama_hparams, sizeof(kq_llama_hparams) / sizeof(kq_llama_hparams[0]), kq_llama_skip},
};

const kq_family *kq_family_llama(void) { return &kq_families[0]; }

const kq_family *kq_family_find(const char *name) {
    for (size_t i = 0; i < sizeof(kq_families) / sizeof(kq_families[0]); i++)
        if (!strcmp(kq_families[i].name, name)) return &kq_families[i];
    return NULL;
}

int64_t kq_family_dim(const kq_hparams *hp, kq_dim d) {
    switch (d) {
    case KQ_DIM_EMBD: return hp->n_embd;
    case KQ_DIM_FF: return hp->n_ff;
    case KQ_DIM_VOCAB: return hp->n_vocab;
    case KQ_DIM_QDIM: return hp->n_head * hp->n_rot;
    case KQ_DIM_KVDIM: return hp->n_head_kv * hp->n_rot;
    default: return -1;
    }
}

int kq_family_format(const char *pattern, int block, char *out, size_t outlen) {
    size_t o = 0;
    for (const char *p = pattern; *p; p++) {
        char num[16];
        const char *piece = p;
        size_t len = 1;
        if (p[0] == '%' && p[1] == 'd') {
            snprintf(num, sizeof(num), "%d", block);
            piece = num;
            len = strlen(num);
            p++;
        }
        if (o + len >= outlen) return -1;
        memcpy(out + o, piece, len);
        o += len;
    }
    out[o] = 0;
    return 0;
}

int kq_family_match(const char *pattern, const char *name, int *block) {
    *block = -1;
    const char *d = strstr(pattern, "%d");
    if (!d) return !strcmp(pattern, name);
    const size_t pre = (size_t)(d - pattern);
    if (strncmp(pattern, name, pre)) return 0;
    const char *s = name + pre;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9')) return 0;
    long b = 0;
    while (*s >= '0' && *s <= '9') {
        b = b * 10 + (*s++ - '0');
        if (b > 1000000) return 0;
    }
    if (strcmp(s, d + 2)) return 0;
    *block = (int)b;
    return 1;
}

const kq_family_tensor *kq_family_map_hf(const kq_family *f, const char *hf_name, int *block) {
    for (size_t i = 0; i < f->n_tensors; i++)
        if (kq_family_match(f->tensors[i].hf, hf_name, block)) return &f->tensors[i];
    return NULL;
}

const kq_family_tensor *kq_family_map_gguf(const kq_family *f, const char *gguf_name, int *block) {
    for (size_t i = 0; i < f->n_tensors; i++)
        if (kq_family_match(f->tensors[i].gguf, gguf_name, block)) return &f->tensors[i];
    return NULL;
}

int kq_family_skip(const kq_family *f, const char *hf_name) {
    const size_t n = strlen(hf_name);
    for (const char *const *s = f->skip_suffixes; s && *s; s++) {
        const size_t k = strlen(*s);
        if (n >= k && !strcmp(hf_name + n - k, *s)) return 1;
    }
    return 0;
}

int kq_family_check_hparams(const kq_hparams *hp, const char *what, char *err, size_t errlen) {
    const struct { const char *key; int64_t v; } pos[] = {
        {"hidden_size", hp->n_embd}, {"num_hidden_layers", hp->n_layer}, {"intermediate_size", hp->n_ff},
        {"num_attention_heads", hp->n_head}, {"num_key_value_heads", hp->n_head_kv},
        {"vocab_size", hp->n_vocab}, {"max_position_embeddings", hp->n_ctx}, {"head_dim", hp->n_rot}};
    for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
        if (pos[i].v <= 0 || pos[i].v > 0xffffffffLL) {
            snprintf(err, errlen, "%s: key '%s' = %lld is not a positive 32-bit count", what, pos[i].key,
                     (long long)pos[i].v);
            return -1;
        }
    }
    if (hp->n_head % hp->n_head_kv) {
        snprintf(err, errlen, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", what,
                 (long long)hp->n_head, (long long)hp->n_head_kv);
        return -1;
    }
    if (hp->n_rot % 2) {
        snprintf(err, errlen, "%s: head dimension %lld is odd (rotary pairs need it even)", what,
                 (long long)hp->n_rot);
        return -1;
    }
    if (!(hp->rms_eps > 0) || !isfinite(hp->rope_theta) || !(hp->rope_theta > 0)) {
        snprintf(err, errlen, "%s: key '%s' is not a positive number", what,
                 !(hp->rms_eps > 0) ? "rms_norm_eps" : "rope_theta");
        return -1;
    }
    return 0;
}

int kq_family_write_hparams(const kq_family *f, const kq_hparams *hp, kq_gguf_writer *w) {
    for (size_t i = 0; i < f->n_hparams; i++) {
        const kq_family_hparam *r = &f->hparams[i];
        char key[128];
        snprintf(key, sizeof(key), "%s.%s", f->arch, r->gguf);
        const char *base = (const char *)hp;
        int rc;
        if (r->kind == KQ_HP_U32) {
            int64_t v;
            memcpy(&v, base + r->field, sizeof(v));
            rc = kq_gguf_set_u32(w, key, (uint32_t)v);
        } else {
            double v;
            memcpy(&v, base + r->field, sizeof(v));
            rc = kq_gguf_set_f32(w, key, (float)v);
        }
        if (rc) return -1;
    }
    return 0;
}

#if KQ_HAVE_CJSON
static const char *kq_json_kind(const cJSON *j) {
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsNumber(j)) return "a number";
    return "invalid";
}

static char *kq_slurp(const char *path, size_t max, char *err, size_t errlen) {
    char *buf;
    const int rc = kq_read_whole_file(path, max, &buf, NULL, err, errlen);
    if (rc == 0) return buf;
    if (rc == 1) snprintf(err, errlen, "%s: not found (every Hugging Face model folder has one)", path);
    return NULL;
}

static int kq_check_architectures(const kq_family *f, const cJSON *root, const char *path, char *err,
                                  size_t errlen) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsArray(a)) {
        snprintf(err, errlen, "%s: key 'architectures' is %s, expected an array of strings", path, kq_json_kind(a));
        return -1;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsString(e)) {
            snprintf(err, errlen, "%s: key 'architectures' holds %s, expected strings", path, kq_json_kind(e));
            return -1;
        }
        for (const char *const *k = f->hf_architectures; *k; k++)
            if (!strcmp(*k, e->valuestring)) return 0;
    }
    const cJSON *first = cJSON_GetArrayItem(a, 0);
    snprintf(err, errlen, "%s: key 'architectures' is %s, not a %s-family model (expected %s)", path,
             first ? first->valuestring : "[]", f->name, f->hf_architectures[0]);
    return -1;
}

static int kq_read_hparam(const kq_family_hparam *r, const cJSON *root, const char *path, kq_hparams *hp,
                          char *err, size_t errlen) {
    char *base = (char *)hp;
    const cJSON *j = NULL;
    const char *key = r->hf[0];
    for (int k = 0; k < 3 && r->hf[k] && !j; k++) {
        j = cJSON_GetObjectItemCaseSensitive(root, r->hf[k]);
        if (j && cJSON_IsNull(j)) j = NULL;
        if (j) key = r->hf[k];
    }
    if (!j) {
        if (r->dflt == KQ_HPD_REQUIRED) {
            snprintf(err, errlen, "%s: key '%s' is missing", path, r->hf[0]);
            return -1;
        }
        return 1; /* defaulted after the pass */
    }
    if (!cJSON_IsNumber(j)) {
        snprintf(err, errlen, "%s: key '%s' is %s, expected %s", path, key, kq_json_kind(j),
                 r->kind == KQ_HP_U32 ? "an integer" : "a number");
        return -1;
    }
    const double v = j->valuedouble;
    if (r->kind == KQ_HP_U32) {
        if (!(v >= 1 && v <= 4294967295.0) || v != floor(v)) {
            snprintf(err, errlen, "%s: key '%s' = %g is not a positive whole number", path, key, v);
            return -1;
        }
        const int64_t iv = (int64_t)v;
        memcpy(base + r->field, &iv, sizeof(iv));
    } else {
        if (!isfinite(v) || !(v > 0) || v > 3.4e38) {
            snprintf(err, errlen, "%s: key '%s' = %g is not a positive finite number", path, key, v);
            return -1;
        }
        memcpy(base + r->field, &v, sizeof(v));
    }
    return 0;
}

int kq_family_read_config(const kq_family *f, const char *config_path, kq_hparams *hp, char *err,
                          size_t errlen) {
    memset(hp, 0, sizeof(*hp));
    char *text = kq_slurp(config_path, 16u << 20, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: not a JSON object (malformed JSON)", config_path);
        cJSON_Delete(root);
        return -1;
    }
    int rc = kq_check_architectures(f, root, config_path, err, errlen);
    int defaulted[32] = {0};
    for (size_t i = 0; !rc && i < f->n_hparams && i < 32; i++) {
        const int r = kq_read_hparam(&f->hparams[i], root, config_path, hp, err, errlen);
        if (r < 0) rc = -1;
        defaulted[i] = r == 1;
    }
    cJSON_Delete(root);
    if (rc) return -1;
    char *base = (char *)hp;
    for (size_t i = 0; i < f->n_hparams && i < 32; i++) {
        const kq_family_hparam *r = &f->hparams[i];
        if (!defaulted[i]) continue;
        if (r->kind == KQ_HP_F32) {
            const double v = r->dflt_value;
            memcpy(base + r->field, &v, sizeof(v));
            continue;
        }
        int64_t v = (int64_t)r->dflt_value;
        if (r->dflt == KQ_HPD_COPY) memcpy(&v, base + r->dflt_field, sizeof(v));
        if (r->dflt == KQ_HPD_HEAD_DIM) v = hp->n_head > 0 && hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
        if (r->dflt == KQ_HPD_HEAD_DIM && v == 0) {
            snprintf(err, errlen, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", config_path,
                     (long long)hp->n_embd, (long long)hp->n_head);
            return -1;
        }
        memcpy(base + r->field, &v, sizeof(v));
    }
    return kq_family_check_hparams(hp, config_path, err, errlen);
}
#else
int kq_family_read_config(const kq_family *f, const char *config_path, kq_hparams *hp, char *err,
                          size_t errlen) {
    (void)f;
    memset(hp, 0, sizeof(*hp));
    snprintf(err, errlen, "%s: this build has no cJSON, so it cannot read Hugging Face folders", config_path);
    return -1;
}
#endif
