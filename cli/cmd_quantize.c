/* kq quantize IN.gguf OUT.gguf TYPE|MIX: requantize an f32/f16/bf16 GGUF, copying its metadata. */
#include <stdio.h>
#include <string.h>

#include "cmd_convert.h"
#include "kq_cli.h"

/* kq quantize IN.gguf OUT.gguf TYPE|MIX [--mix NAME] [--keep GLOB=TYPE]... */
int kq_cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize";
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: kq quantize IN.gguf OUT.gguf TYPE [--keep GLOB=TYPE]... [--threads N] [--progress]\n"
               "       kq quantize IN.gguf OUT.gguf --mix NAME [...]\n"
               "  requantizes an f32/f16/bf16 GGUF, copying its metadata. TYPE is a kq type (every 2-D weight,\n"
               "  like llama-quantize --pure) or a mixture name (Q4_K_M ...; docs/mixes.md).\n");
        return 0;
    }
    /* positional: IN OUT [TYPE]; reuse the convert parser for the options */
    const char *pos[3] = {NULL, NULL, NULL};
    int np = 0;
    char *rest[256];
    int nr = 0;
    rest[nr++] = argv[0];
    for (int i = 1; i < argc && nr < 255; i++) {
        const int takes_value = !strcmp(argv[i], "--keep") || !strcmp(argv[i], "--mix") ||
                                !strcmp(argv[i], "--threads") || !strcmp(argv[i], "--impl");
        if (argv[i][0] == '-' && argv[i][1]) {
            rest[nr++] = argv[i];
            if (takes_value && i + 1 < argc && nr < 255) rest[nr++] = argv[++i];
        } else if (np < 3) {
            pos[np++] = argv[i];
        } else {
            kq_cli_error(cmd, "unexpected argument '%s'", argv[i]);
            return 2;
        }
    }
    kq_convert_args a;
    if (kq_convert_parse(cmd, nr, rest, &a)) return 2;
    if (np < 2 || (np < 3 && !a.mix)) {
        fprintf(stderr, "usage: kq quantize IN.gguf OUT.gguf TYPE|MIX [--keep GLOB=TYPE]... (kq quantize --help)\n");
        return 2;
    }
    if (np == 3) {
        const kq_type_traits *tr = kq_type_by_name(pos[2]);
        if (tr) a.type = pos[2];
        else if (kq_mix_by_name(pos[2]) != KQ_MIX_NONE) a.mix = pos[2];
        else {
            kq_cli_error(cmd, "'%s' is neither a type (kq types) nor a mixture (Q4_K_M ...)", pos[2]);
            return 2;
        }
    }
    kq_convert_opts o;
    kq_progress p;
    if (kq_convert_opts_from(cmd, &a, &o, &p)) return 2;
    char err[2048];
    if (kq_requantize_gguf(pos[0], pos[1], &o, err, sizeof(err))) {
        kq_cli_error(cmd, "%s", err);
        return 1;
    }
    kq_progress_done(&p);
    return 0;
}
