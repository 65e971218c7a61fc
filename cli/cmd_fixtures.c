/* kq fixtures: writes the tiny llama-family test checkpoints (fixtures/fixtures.h). */
#include <string.h>

#include "fixtures.h"
#include "kq_cli.h"

int kq_cmd_fixtures(int argc, char **argv);

static void kq_fixtures_usage(FILE *f) {
    fprintf(f, "usage: kq fixtures [--out DIR] [--large]\n\n"
               "Writes tiny llama-family checkpoints in the Hugging Face folder layout, the same bytes on\n"
               "every run (GSL mt19937, fixed seeds), one folder per fixture under DIR\n"
               "(default fixtures/generated):\n");
    for (size_t i = 0; i < kq_fixture_count(); i++) {
        const kq_fixture_spec *s = kq_fixture_at(i);
        fprintf(f, "  %-26s %s, %s, %llu parameters%s\n", s->name, s->arch, kq_dtype_str(s->dtype),
                (unsigned long long)kq_fixture_params(s), s->delta ? " (LLMZoo-style delta)" : "");
    }
    const kq_fixture_spec *l = kq_fixture_large();
    fprintf(f, "  --large: also %s, %s, %llu parameters (about 1.2 GB, for throughput and memory\n"
               "           measurements of kq convert)\n",
            l->name, kq_dtype_str(l->dtype), (unsigned long long)kq_fixture_params(l));
}

int kq_cmd_fixtures(int argc, char **argv) {
    const char *out = "fixtures/generated";
    int large = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            kq_fixtures_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--out") || !strcmp(argv[i], "-o")) {
            if (i + 1 >= argc) {
                kq_cli_error("fixtures", "%s needs a folder", argv[i]);
                return 2;
            }
            out = argv[++i];
        } else if (!strcmp(argv[i], "--large")) {
            large = 1;
        } else if (!strncmp(argv[i], "--out=", 6)) {
            out = argv[i] + 6;
        } else {
            kq_cli_error("fixtures", "unknown argument '%s' (see kq fixtures --help)", argv[i]);
            return 2;
        }
    }
    if (!*out) {
        kq_cli_error("fixtures", "--out needs a folder");
        return 2;
    }
    char err[1024];
    const size_t n = kq_fixture_count() + (size_t)large;
    for (size_t i = 0; i < n; i++) {
        const kq_fixture_spec *s = i < kq_fixture_count() ? kq_fixture_at(i) : kq_fixture_large();
        if (kq_fixture_write(s, out, err, sizeof err)) {
            kq_cli_error("fixtures", "%s", err);
            return 1;
        }
        printf("wrote %s/%s\n", out, s->name);
    }
    return 0;
}
