/* kq: command-line entry point. One small file per subcommand in cli/. */
#include <string.h>

#include "kq_cli.h"

#ifndef KQ_VERSION
#define KQ_VERSION "0.0.0"
#endif
#ifndef KQ_GIT_REV
#define KQ_GIT_REV "unknown"
#endif

static void kq_usage(FILE *f) {
    fprintf(f,
            "kq %s: quantization formats for LLM weights, checked for Kunpeng 920\n\n"
            "usage: kq COMMAND [options]   (kq COMMAND --help for each)\n\n"
            "commands:\n"
            "  types             list the types, their block geometry and native kernels\n"
            "  quantize-raw      f32 rows -> raw blocks of a type\n"
            "  dequantize-raw    raw blocks -> f32 rows\n"
            "  check bitexact    optimized kernels vs the reference, bit for bit\n"
            "  check tolerance   quantize->dequantize error vs f32 on GSL-generated rows\n"
            "  --version         version, build and CPU features\n",
            KQ_VERSION);
}

static int kq_version(void) {
    printf("kq %s (git %s)\n", KQ_VERSION, KQ_GIT_REV);
#if defined(__aarch64__)
    printf("target: aarch64 (baseline ARMv8-A; SDOT kernels for Kunpeng 920 chosen at run time)\n");
#elif defined(__x86_64__)
    printf("target: x86-64 (reference kernels only)\n");
#else
    printf("target: other (reference kernels only)\n");
#endif
    printf("built with: %s, GSL %s, cJSON %s\n", __VERSION__, KQ_HAVE_GSL ? "yes" : "no", KQ_HAVE_CJSON ? "yes" : "no");
    if (!KQ_HAVE_GSL || !KQ_HAVE_CJSON)
        printf("left out of this build: check tolerance (needs GSL and cJSON, which the static cross build lacks)\n");
    const kq_cpu_features c = kq_cpu();
    printf("cpu: asimd %d, asimddp %d, fphp %d, asimdhp %d\n", c.asimd, c.asimddp, c.fphp, c.asimdhp);
    for (int i = 0; i < KQ_IMPL_COUNT; i++) {
        const char *why = "";
        const int ok = kq_impl_available((kq_impl)i, &why);
        printf("impl %-13s %s%s\n", kq_impl_name((kq_impl)i), ok ? "available" : "unavailable: ", ok ? "" : why);
    }
    printf("auto = %s\n", kq_impl_name(kq_impl_best()));
    return 0;
}

static int kq_check(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: kq check bitexact [options]   optimized vs reference, bit for bit\n"
                   "       kq check tolerance [options]  quantization error vs f32\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "bitexact")) return kq_check_bitexact_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tolerance")) return kq_check_tolerance_main(argc - 1, argv + 1);
    kq_cli_error("check", "unknown check '%s' (expected bitexact or tolerance)", argv[1]);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        kq_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        kq_usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) return kq_version();
    if (!strcmp(cmd, "types")) return kq_cmd_types(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize-raw")) return kq_cmd_quantize_raw(argc - 1, argv + 1);
    if (!strcmp(cmd, "dequantize-raw")) return kq_cmd_dequantize_raw(argc - 1, argv + 1);
    if (!strcmp(cmd, "check")) return kq_check(argc - 1, argv + 1);
    kq_cli_error(cmd, "unknown command (see kq --help)");
    return 2;
}
