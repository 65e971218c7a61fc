/* kq convert / kq quantize: the option parsing both commands share (cli/cmd_convert.c). */
#ifndef KQ_CMD_CONVERT_H
#define KQ_CMD_CONVERT_H

#include <stdint.h>

#include "convert.h"

#define KQ_MAX_KEEP 64

typedef struct {
    const char *src, *out, *type, *mix, *delta, *vocab, *name, *impl;
    kq_keep_rule keep[KQ_MAX_KEEP];
    size_t n_keep;
    int64_t threads;
    int allow_nonfinite, progress;
} kq_convert_args;

/* Options and the first positional argument (src) of argv[1..argc); prints its own errors. */
int kq_convert_parse(const char *cmd, int argc, char **argv, kq_convert_args *a);
/* Conversion options from the parsed arguments; prints its own errors. */
int kq_convert_opts_from(const char *cmd, const kq_convert_args *a, kq_convert_opts *o);
/* kq_progress_fn over a kq_progress (cli/kq_cli.h). */
void kq_convert_progress(void *ud, int64_t done, int64_t total);

#endif
