/* kq: model families as data. The engine runs one block graph; a family is a row of knobs.
 *
 *   x -> norm(attn_norm) -> Q K V (+bias) -> rotary (q, k) -> attention -> output (+bias) --+
 *   x ------------------------------------------------------------------------------------ + -> x'
 *   x' -> norm(ffn_norm) -> [gate ->] act, * up (+bias) -> down (+bias) --------------------+
 *   x' ----------------------------------------------------------------------------------- + -> x''
 * (parallel_block: the FFN reads norm(x) of the block input too, and both outputs add to x.)
 *
 * Today the engine implements llama's knob values; a row asking for another value is refused at load
 * with a message naming the knob, until the engine implements it. */
#ifndef KQ_ARCH_H
#define KQ_ARCH_H

typedef enum { KQ_NORM_RMS = 0, KQ_NORM_LAYER = 1 } kq_norm_kind;
/* NORM: rotate adjacent pairs (x[2i], x[2i+1]) (llama.cpp LLAMA_ROPE_TYPE_NORM);
 * NEOX: rotate (x[i], x[i + n_rot/2]) (LLAMA_ROPE_TYPE_NEOX). */
typedef enum { KQ_ROPE_NORM = 0, KQ_ROPE_NEOX = 1, KQ_ROPE_NONE = 2 } kq_rope_kind;
typedef enum { KQ_ACT_SILU = 0, KQ_ACT_GELU = 1 } kq_act_kind;

typedef struct {
    const char *name;      /* general.architecture; also the metadata key prefix */
    kq_norm_kind norm;
    kq_rope_kind rope;
    kq_act_kind act;
    int gated_ffn;         /* act(gate) * up (SwiGLU / GeGLU); 0: act(up) */
    int parallel_block;    /* attention and FFN both read the block input (GPT-J, Falcon) */
    int attn_bias;         /* attn_q/k/v/output biases */
    int ffn_bias;          /* ffn_up/gate/down biases */
    int norm_bias;         /* LayerNorm's bias */
    int alibi;             /* ALiBi position bias instead of rotary (BLOOM, MPT) */
    int partial_rotary;    /* rope.dimension_count may be smaller than the head size (Phi, NeoX) */
} kq_arch;

/* The row of general.architecture, or NULL if kq does not know the family. */
const kq_arch *kq_arch_find(const char *name, size_t len);
/* NULL if the engine runs every knob of the row; else the name of the first knob it does not. */
const char *kq_arch_unsupported(const kq_arch *a);

#endif
