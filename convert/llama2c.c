/* llama2.c legacy (version 0) checkpoints -> GGUF.
 *
 * Layout (run.c): 7 int32 dim hidden_dim n_layers n_heads n_kv_heads vocab_size seq_len (a negative
 * vocab_size means a separate classifier follows), then float32 arrays, matrices [out][in] row-major:
 *   token_embedding_table [vocab][dim], rms_att_weight [L][dim], wq [L][dim][dim],
 *   wk [L][kv_dim][dim], wv [L][kv_dim][dim], wo [L][dim][dim], rms_ffn_weight [L][dim],
 *   w1 [L][hidden][dim], w2 [L][dim][hidden], w3 [L][hidden][dim], rms_final_weight [dim],
 *   freq_cis_real [seq_len][head_size/2], freq_cis_imag [seq_len][head_size/2], (wcls [vocab][dim]).
 * q/k are already in Meta's interleaved order: no permutation. A shared classifier is written as
 * output.weight equal to token_embd (as llama.cpp's convert-llama2c-to-ggml does). The file size
 * must match the header exactly, so a truncated or foreign file is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert.h"

static int kq_l2c_rows(void *ctx, const kq_conv_tensor *t, int64_t row0, int64_t nrows, float *out, float *scratch,
                       char *err, size_t errlen) {
    (void)ctx;
    (void)scratch;
    if (nrows == 0) return 0;
    (void)err;
    (void)errlen;
    const float *src = t->src;
    memcpy(out, src + row0 * t->ne[0], (size_t)(nrows * t->ne[0]) * sizeof(float));
    return 0;
}

static int kq_l2c_header(const uint8_t *p, size_t size, const char *path, kq_llama2c_config *c, char *err,
                         size_t errlen) {
    if (size < 28) {
        snprintf(err, errlen, "%s: %zu bytes: too short for a llama2.c checkpoint header", path, size);
        return -1;
    }
    int32_t h[7];
    memcpy(h, p, sizeof(h));
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = h[5] < 0 ? -h[5] : h[5];
    c->seq_len = h[6];
    if (h[5] == INT32_MIN || c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->vocab_size <= 0 || c->seq_len <= 0 || c->dim % c->n_heads ||
        c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2 || c->dim > (1 << 20) || c->hidden_dim > (1 << 22) ||
        c->n_layers > 4096 || c->vocab_size > (1 << 22) || c->seq_len > (1 << 24)) {
        snprintf(err, errlen,
                 "%s: header %d %d %d %d %d %d %d is not a llama2.c checkpoint (dim hidden_dim n_layers n_heads "
                 "n_kv_heads vocab seq_len)",
                 path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        return -1;
    }
    return 0;
}

typedef struct {
    const char *gguf;
    int per_layer;
    int64_t rows, cols; /* cols 0: 1-D of rows elements */
    kq_tensor_role role;
} kq_l2c_part;

int kq_convert_llama2c(const char *bin_path, const char *vocab_path, const char *out_path,
                       const kq_convert_opts *o, char *err, size_t errlen) {
    int rc = -1;
    if (!vocab_path) {
        snprintf(err, errlen, "%s: a llama2.c checkpoint needs its tokenizer: pass --vocab tokenizer.bin", bin_path);
        return -1;
    }
    const int fd = open(bin_path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", bin_path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) || st.st_size < 28) {
        snprintf(err, errlen, "%s: too short for a llama2.c checkpoint", bin_path);
        close(fd);
        return -1;
    }
    const size_t size = (size_t)st.st_size;
    const uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        snprintf(err, errlen, "%s: cannot map: %s", bin_path, strerror(errno));
        return -1;
    }
    kq_llama2c_config c;
    kq_vocab v;
    kq_vocab_init(&v);
    kq_gguf_writer *w = NULL;
    kq_conv_tensor *t = NULL;
    if (kq_l2c_header(map, size, bin_path, &c, err, errlen)) goto done;
    const int64_t dim = c.dim, hid = c.hidden_dim, L = c.n_layers, V = c.vocab_size, hs = c.dim / c.n_heads;
    const int64_t kv = hs * c.n_kv_heads;
    /* file order; -1 rows for freq_cis which is skipped */
    const kq_l2c_part parts[] = {
        {"token_embd.weight", 0, V, dim, KQ_ROLE_TOKEN_EMBD}, {"blk.%d.attn_norm.weight", 1, dim, 0, KQ_ROLE_NORM},
        {"blk.%d.attn_q.weight", 1, dim, dim, KQ_ROLE_ATTN_Q}, {"blk.%d.attn_k.weight", 1, kv, dim, KQ_ROLE_ATTN_K},
        {"blk.%d.attn_v.weight", 1, kv, dim, KQ_ROLE_ATTN_V},
        {"blk.%d.attn_output.weight", 1, dim, dim, KQ_ROLE_ATTN_OUTPUT},
        {"blk.%d.ffn_norm.weight", 1, dim, 0, KQ_ROLE_NORM}, {"blk.%d.ffn_gate.weight", 1, hid, dim, KQ_ROLE_FFN_GATE},
        {"blk.%d.ffn_down.weight", 1, dim, hid, KQ_ROLE_FFN_DOWN}, {"blk.%d.ffn_up.weight", 1, hid, dim, KQ_ROLE_FFN_UP},
        {"output_norm.weight", 0, dim, 0, KQ_ROLE_NORM}, {"(freq_cis)", 0, 2 * (int64_t)c.seq_len, hs / 2, KQ_ROLE_OTHER},
        {"output.weight", 0, V, dim, KQ_ROLE_OUTPUT}};
    const size_t np = sizeof(parts) / sizeof(parts[0]);
    const float *at[sizeof(parts) / sizeof(parts[0])];
    uint64_t off = 28;
    for (size_t i = 0; i < np; i++) {
        if (i == np - 1 && c.shared_classifier) {
            at[i] = at[0];
            break;
        }
        at[i] = (const float *)(map + off);
        const uint64_t el = (uint64_t)parts[i].rows * (uint64_t)(parts[i].cols ? parts[i].cols : 1);
        off += el * 4 * (uint64_t)(parts[i].per_layer ? L : 1);
    }
    if (off != size) {
        snprintf(err, errlen, "%s: %zu bytes, but its header (dim %d, hidden %d, %d layers, vocab %d%s, seq_len %d) "
                              "needs %llu: truncated or not a version-0 llama2.c checkpoint",
                 bin_path, size, c.dim, c.hidden_dim, c.n_layers, c.vocab_size,
                 c.shared_classifier ? " shared" : " + classifier", c.seq_len, (unsigned long long)off);
        goto done;
    }
    if (kq_llama2c_tokenizer_read(vocab_path, (uint32_t)V, &v, err, errlen)) goto done;
    /* GGUF order: token_embd, output_norm, output, then per block as family.h's llama table */
    static const char *const block_order[] = {"blk.%d.attn_q.weight",    "blk.%d.attn_k.weight",
                                              "blk.%d.attn_v.weight",    "blk.%d.attn_output.weight",
                                              "blk.%d.attn_norm.weight", "blk.%d.ffn_gate.weight",
                                              "blk.%d.ffn_down.weight",  "blk.%d.ffn_up.weight",
                                              "blk.%d.ffn_norm.weight"};
    const size_t nt = 3 + 9 * (size_t)L;
    t = calloc(nt, sizeof(*t));
    w = kq_gguf_writer_new();
    if (!t || !w) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    size_t k = 0;
    const char *globals[] = {"token_embd.weight", "output_norm.weight", "output.weight"};
    for (int64_t b = -1; b < L; b++) {
        const size_t count = b < 0 ? 3 : 9;
        for (size_t j = 0; j < count; j++) {
            const char *pat = b < 0 ? globals[j] : block_order[j];
            size_t p = 0;
            while (strcmp(parts[p].gguf, pat)) p++;
            kq_conv_tensor *x = &t[k++];
            kq_family_format(pat, (int)b, x->name, sizeof(x->name));
            x->n_dims = parts[p].cols ? 2 : 1;
            for (int d = 0; d < KQ_GGUF_MAX_DIMS; d++) x->ne[d] = 1;
            x->ne[0] = parts[p].cols ? parts[p].cols : parts[p].rows;
            if (parts[p].cols) x->ne[1] = parts[p].rows;
            x->role = parts[p].role;
            x->layer = parts[p].per_layer ? (int)b : -1;
            x->src = at[p] + (parts[p].per_layer ? b * parts[p].rows * (parts[p].cols ? parts[p].cols : 1) : 0);
            x->src_rows = x->ne[1];
            x->src_name = parts[p].gguf;
            x->src_file = bin_path;
        }
    }
    char name[256];
    if (o->name) {
        snprintf(name, sizeof(name), "%s", o->name);
    } else {
        const char *b = strrchr(bin_path, '/');
        snprintf(name, sizeof(name), "%s", b ? b + 1 : bin_path);
        char *dot = strrchr(name, '.');
        if (dot && dot != name) *dot = 0;
    }
    kq_hparams hp = {c.seq_len, dim, L, hid, c.n_heads, c.n_kv_heads, hs, V, 10000.0, 1e-5};
    int mrc = kq_gguf_set_str(w, "general.architecture", "llama");
    mrc |= kq_gguf_set_str(w, "general.name", name);
    if (mrc || kq_conv_plan(w, t, nt, o, (int)L, c.n_heads / c.n_kv_heads, err, errlen)) {
        if (mrc) snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (kq_family_write_hparams(kq_family_llama(), &hp, w) || kq_conv_write_vocab(w, &v, 0)) {
        snprintf(err, errlen, "cannot set metadata (out of memory)");
        goto done;
    }
    rc = kq_conv_run(w, t, nt, kq_l2c_rows, NULL, o, out_path, err, errlen);
done:
    if (w) kq_gguf_writer_free(w);
    free(t);
    kq_vocab_free(&v);
    munmap((void *)map, size);
    return rc;
}
