/* kq convert SRC -o OUT.gguf: Hugging Face folder | llama2.c .bin | registry name -> GGUF. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert.h"
#include "kq_cli.h"
#include "cmd_convert.h"
#include "registry.h"

static void kq_convert_usage(FILE *f) {
    fprintf(f,
            "usage: kq convert SRC -o OUT.gguf [options]\n"
            "  SRC                 a Hugging Face folder (config.json, tokenizer.model, safetensors or\n"
            "                      pytorch_model*.bin), a llama2.c .bin (with --vocab tokenizer.bin),\n"
            "                      or a registry name (fixtures/models/NAME.json: kq convert chimera-7b)\n"
            "  -t, --outtype TYPE  f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K or an\n"
            "                      INT-N type (kq types): every 2-D weight; 1-D tensors stay f32 (default f16)\n"
            "  --mix NAME          llama-quantize's mixture: Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S\n"
            "                      Q5_K_M Q6_K Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 (docs/mixes.md)\n"
            "  --keep GLOB=TYPE    this type for the 2-D tensors whose GGUF name matches (repeatable)\n"
            "  --delta DIR         LLMZoo delta folder added to SRC (Chimera)\n"
            "  --vocab FILE        tokenizer.model (HF) or tokenizer.bin (llama2.c)\n"
            "  --name NAME         general.name (default: the folder or file name)\n"
            "  --threads N         quantizer threads (default: all CPUs)\n"
            "  --impl NAME         quantizer implementation (auto, reference, neon; default auto)\n"
            "  --allow-nonfinite   keep NaN/Inf weights in f32/f16/bf16 outputs (default: refuse)\n"
            "  --progress          progress on stderr even when it is not a terminal\n"
            "Rows a type cannot hold fall back to q8_0 (multiple of 32) or f16; kq inspect lists them.\n");
}

static void kq_convert_progress(void *ud, int64_t done, int64_t total) {
    kq_progress *p = ud;
    p->total = total > 0 ? total : 1;
    kq_progress_update(p, done);
}


int kq_convert_parse(const char *cmd, int argc, char **argv, kq_convert_args *a) {
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = NULL;
        if (!strcmp(s, "-o") || !strcmp(s, "--output")) slot = &a->out;
        else if (!strcmp(s, "-t") || !strcmp(s, "--outtype")) slot = &a->type;
        else if (!strcmp(s, "--mix")) slot = &a->mix;
        else if (!strcmp(s, "--delta")) slot = &a->delta;
        else if (!strcmp(s, "--vocab")) slot = &a->vocab;
        else if (!strcmp(s, "--name")) slot = &a->name;
        else if (!strcmp(s, "--impl")) slot = &a->impl;
        if (slot) {
            if (!val) {
                kq_cli_error(cmd, "%s needs a value", s);
                return -1;
            }
            *slot = val;
            i++;
        } else if (!strcmp(s, "--keep")) {
            char err[512];
            if (!val || a->n_keep == KQ_MAX_KEEP || kq_keep_parse(val, &a->keep[a->n_keep], err, sizeof(err))) {
                kq_cli_error(cmd, "%s", !val ? "--keep needs GLOB=TYPE" : a->n_keep == KQ_MAX_KEEP ? "too many --keep" : err);
                return -1;
            }
            a->n_keep++;
            i++;
        } else if (!strcmp(s, "--threads")) {
            if (kq_cli_parse_i64(cmd, s, val, &a->threads)) return -1;
            i++;
        } else if (!strcmp(s, "--allow-nonfinite")) {
            a->allow_nonfinite = 1;
        } else if (!strcmp(s, "--progress")) {
            a->progress = 1;
        } else if (s[0] == '-' && s[1]) {
            kq_cli_error(cmd, "unknown option '%s' (see kq %s --help)", s, cmd);
            return -1;
        } else if (!a->src) {
            a->src = s;
        } else {
            kq_cli_error(cmd, "unexpected argument '%s'", s);
            return -1;
        }
    }
    return 0;
}

/* Fills the options shared by convert and quantize; prints its own errors. */
int kq_convert_opts_from(const char *cmd, const kq_convert_args *a, kq_convert_opts *o, kq_progress *p) {
    kq_convert_opts_init(o);
    kq_progress_init(p, cmd, 1, a->progress);
    if (p->enabled) {
        o->progress = kq_convert_progress;
        o->progress_ud = p;
    }
    o->on_tmp_file = kq_cli_cleanup_on_signal; /* Ctrl-C leaves no half-written GGUF behind */
    if (a->type && a->mix) {
        kq_cli_error(cmd, "give either -t TYPE or --mix NAME, not both");
        return -1;
    }
    if (a->type) {
        const kq_type_traits *tr = kq_type_by_name(a->type);
        if (!tr || tr->type == KQ_TYPE_Q8_K || tr->type == KQ_TYPE_Q8_1) {
            kq_cli_error(cmd, "unknown output type '%s' (see kq types; mixtures go with --mix)", a->type);
            return -1;
        }
        o->type = tr->type;
    }
    if (a->mix) {
        o->mix = kq_mix_by_name(a->mix);
        if (o->mix == KQ_MIX_NONE) {
            kq_cli_error(cmd, "unknown mixture '%s' (Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K "
                              "Q4_0 Q4_1 Q5_0 Q5_1 Q8_0)", a->mix);
            return -1;
        }
    }
    if (a->impl) {
        char err[256];
        if (kq_impl_parse(a->impl, &o->impl, err, sizeof(err))) {
            kq_cli_error(cmd, "%s", err);
            return -1;
        }
    }
    o->keep = a->keep;
    o->n_keep = a->n_keep;
    o->delta_dir = a->delta;
    o->vocab_path = a->vocab;
    o->name = a->name;
    o->threads = (int)(a->threads > 1024 ? 1024 : a->threads);
    o->allow_nonfinite = a->allow_nonfinite;
    return 0;
}

static int kq_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int kq_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* 1 if the file starts like a zip archive (a PyTorch checkpoint, not llama2.c). */
static int kq_is_zip(const char *p) {
    unsigned char m[2] = {0, 0};
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    const size_t n = fread(m, 1, 2, f);
    fclose(f);
    return n == 2 && m[0] == 'P' && m[1] == 'K';
}

/* A registry name -> the folder(s) and format to convert; error (naming folder and source) if absent. */
static int kq_convert_registry(const char *cmd, const char *name, kq_convert_opts *o, const char *out) {
    kq_reg_entry e, base, delta;
    char err[1024];
    memset(&base, 0, sizeof(base));
    memset(&delta, 0, sizeof(delta));
    if (kq_registry_find(name, &e, err, sizeof(err))) {
        kq_cli_error(cmd, "%s: not a file or folder, and %s", name, err);
        return 2;
    }
    const kq_family *f = kq_family_find(e.family);
    int rc = 1;
    if (!f) {
        kq_cli_error(cmd, "%s: family '%s' is not one kq converts yet (%s)", name, e.family, e.json_path);
        goto done;
    }
    const int is_delta = e.base[0] != 0;
    if (is_delta && (kq_registry_find(e.base, &base, err, sizeof(err)) ||
                     kq_registry_find(e.delta, &delta, err, sizeof(err)))) {
        kq_cli_error(cmd, "%s (%s): %s", name, e.json_path, err);
        goto done;
    }
    const kq_reg_entry *need[2] = {is_delta ? &base : &e, is_delta ? &delta : NULL};
    char dir[2][KQ_REG_PATH];
    for (int k = 0; k < 2 && need[k]; k++) {
        char missing[256];
        if (!kq_registry_resolve(need[k], dir[k], sizeof(dir[k]), missing, sizeof(missing))) {
            kq_cli_error(cmd, "%s: the files of %s are not there: expected them in %s/ (missing %s; set KQ_MODELS "
                              "to look elsewhere). They come from: %s",
                         name, need[k]->name, dir[k], missing, need[k]->source ? need[k]->source : "(no source)");
            goto done;
        }
    }
    char cerr[2048];
    if (!strcmp(need[0]->format, "llama2c")) {
        char bin[KQ_REG_PATH + 300], tok[KQ_REG_PATH + 300];
        snprintf(bin, sizeof(bin), "%s/%s", dir[0], need[0]->files[0]);
        snprintf(tok, sizeof(tok), "%s/%s", dir[0], need[0]->files[1]);
        if (!o->name) o->name = need[0]->name;
        rc = kq_convert_llama2c(bin, o->vocab_path ? o->vocab_path : tok, out, o, cerr, sizeof(cerr)) ? 1 : 0;
    } else {
        if (is_delta) o->delta_dir = dir[1];
        if (!o->name) o->name = e.name;
        rc = kq_convert_hf(dir[0], f, out, o, cerr, sizeof(cerr)) ? 1 : 0;
    }
    if (rc) kq_cli_error(cmd, "%s", cerr);
done:
    kq_registry_free(&e);
    kq_registry_free(&base);
    kq_registry_free(&delta);
    return rc;
}

int kq_cmd_convert(int argc, char **argv) {
    const char *cmd = "convert";
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        kq_convert_usage(stdout);
        return 0;
    }
    kq_convert_args a;
    if (kq_convert_parse(cmd, argc, argv, &a)) return 2;
    if (!a.src || !a.out) {
        kq_convert_usage(stderr);
        return 2;
    }
    kq_convert_opts o;
    kq_progress p;
    if (kq_convert_opts_from(cmd, &a, &o, &p)) return 2;
    char err[2048];
    int rc;
    if (kq_is_dir(a.src)) {
        rc = kq_convert_hf(a.src, NULL, a.out, &o, err, sizeof(err)) ? 1 : 0;
    } else if (kq_exists(a.src)) {
        if (kq_is_zip(a.src)) {
            kq_cli_error(cmd, "%s: a PyTorch checkpoint: convert its folder (with config.json and the tokenizer)",
                         a.src);
            return 2;
        }
        rc = kq_convert_llama2c(a.src, a.vocab, a.out, &o, err, sizeof(err)) ? 1 : 0;
    } else if (kq_registry_is_name(a.src)) {
        rc = kq_convert_registry(cmd, a.src, &o, a.out);
        if (!rc) kq_progress_done(&p);
        return rc;
    } else {
        kq_cli_error(cmd, "%s: no such file or folder", a.src);
        return 2;
    }
    if (rc) kq_cli_error(cmd, "%s", err);
    else kq_progress_done(&p);
    return rc;
}

