/* kq convert / kq quantize: the option parsing both commands share (cli/cmd_convert.c). */
#ifndef KQ_CMD_CONVERT_H
#define KQ_CMD_CONVERT_H

#include <stdint.h>

#include "convert.h"
#include "kq_cli.h"

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
/* Conversion options from the parsed arguments, with progress reported into *p (shown on a TTY or
 * with --progress); prints its own errors. */
int kq_convert_opts_from(const char *cmd, const kq_convert_args *a, kq_convert_opts *o, kq_progress *p);

#endif
