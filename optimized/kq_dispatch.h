/* kq: one traits table per implementation, chosen at run time.
 *
 * An implementation is the reference table with some functions replaced. Each optimized layer
 * lists its replacements (kq_kernel_override); a NULL function keeps what the layer below has.
 * Layers: reference <- neon-plain (ARMv8.0 NEON) <- neon-dotprod (adds the SDOT kernels).
 * Nothing is chosen from the compiling machine's flags: "auto" and "neon" ask the CPU (HWCAP). */
#ifndef KQ_DISPATCH_H
#define KQ_DISPATCH_H

#include "kq_types.h"

typedef enum {
    KQ_IMPL_REFERENCE = 0,
    KQ_IMPL_NEON_PLAIN = 1,   /* baseline ARMv8-A NEON: every aarch64 CPU (Kunpeng 916, Cortex-A72) */
    KQ_IMPL_NEON_DOTPROD = 2, /* NEON + SDOT (ARMv8.2 dotprod: Kunpeng 920 tsv110, Neoverse N1) */
    KQ_IMPL_COUNT
} kq_impl;

typedef struct {
    kq_type type;
    kq_quantize_row_fn quantize_row;
    kq_dequantize_row_fn dequantize_row;
    kq_vec_dot_fn vec_dot;
} kq_kernel_override;

typedef enum { KQ_FN_QUANTIZE = 0, KQ_FN_DEQUANTIZE = 1, KQ_FN_VEC_DOT = 2 } kq_fn;

/* The override lists, defined by the layers built for this target (optimized/neon/ on aarch64).
 * A layer absent from the build has count 0. */
typedef struct {
    const kq_kernel_override *rows;
    size_t count;
} kq_override_list;

const char *kq_impl_name(kq_impl impl);
/* Parses "reference", "neon", "neon-plain", "neon-dotprod", "auto" (case-insensitive). "neon" is the
 * best NEON layer this CPU runs; "auto" the best implementation of all. Returns 0, or -1 with a
 * message in err (unknown name, or an implementation this build or CPU cannot run). */
int kq_impl_parse(const char *name, kq_impl *out, char *err, size_t errlen);
/* 1 if this binary has the layer and this CPU can run it; else 0 and *why says which is missing. */
int kq_impl_available(kq_impl impl, const char **why);
kq_impl kq_impl_best(void);

/* The merged traits row of type t in implementation impl (NULL for an unknown type). */
const kq_type_traits *kq_traits(kq_impl impl, kq_type t);
/* 1 if function fn of type t in impl is the implementation's own code, 0 if it falls back to a lower
 * layer (ultimately the reference), -1 if the type has no such function at all. */
int kq_fn_native(kq_impl impl, kq_type t, kq_fn fn);

/* CPU features the dispatcher looked at (aarch64 HWCAP); all 0 elsewhere. */
typedef struct { int asimd, asimddp, fphp, asimdhp; } kq_cpu_features;
kq_cpu_features kq_cpu(void);

#endif
