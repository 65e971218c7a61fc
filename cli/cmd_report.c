/* kq report: writes reports/<model>/ from the work folder of `make validate` (validation/report.h). */
#include <stdlib.h>
#include <string.h>

#include "kq_cli.h"
#include "report.h"

static void kq_report_usage(FILE *f) {
    fprintf(f, "usage: kq report -w WORKDIR -o OUTDIR [--cycles FILE] [--gnuplot PROG | --no-charts] [--quiet]\n"
               "       kq report --resolve NAME\n"
               "Writes OUTDIR/report.md, report.json and the charts (ppl_vs_bpw, ms_vs_size, tensor_error as .png\n"
               "and .svg, with their .dat files and charts.gp) from the JSON outputs `make validate` leaves in\n"
               "WORKDIR (build/validate/<model>; the files are listed in validation/report.h). A step whose output\n"
               "is missing is reported as not measured. Every file is written to a temporary name and renamed.\n"
               "  --cycles FILE   llvm-mca estimates (default build/kunpeng-cycles.json when it exists)\n"
               "  --gnuplot PROG  the gnuplot program (default gnuplot); --no-charts: none\n"
               "  --resolve NAME  print the registry entry's source folder(s), files and weight type (dtype\n"
               "                  f32|f16|bf16), one 'key value' per line; exit 4 naming the expected folder and\n"
               "                  the source when files are missing (validate.sh's cache key)\n"
               "Needs cJSON (host build only).\n");
}

int kq_cmd_report(int argc, char **argv) {
    kq_report_opts o = {NULL, NULL, NULL, "gnuplot", 0};
    const char *resolve = NULL;
    int cycles_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            kq_report_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            o.quiet = 1;
        } else if (!strcmp(a, "--no-charts")) {
            o.gnuplot = NULL;
        } else if (has_val && (!strcmp(a, "-w") || !strcmp(a, "--work"))) {
            o.work = argv[++i];
        } else if (has_val && (!strcmp(a, "-o") || !strcmp(a, "--out"))) {
            o.out = argv[++i];
        } else if (has_val && !strcmp(a, "--cycles")) {
            o.cycles = argv[++i];
            cycles_given = 1;
        } else if (has_val && !strcmp(a, "--gnuplot")) {
            o.gnuplot = argv[++i];
        } else if (has_val && !strcmp(a, "--resolve")) {
            resolve = argv[++i];
        } else {
            kq_cli_error("report", "unknown or incomplete argument '%s' (see kq report --help)", a);
            return 2;
        }
    }
    char err[1024] = "";
    if (resolve) {
        if (kq_report_resolve(resolve, stdout, err, sizeof(err)) == 0) return 0;
        kq_cli_error("report", "%s", err);
        return 4;
    }
    if (!o.work || !o.out) {
        kq_report_usage(stderr);
        return 2;
    }
    if (!cycles_given) {
        FILE *f = fopen("build/kunpeng-cycles.json", "r");
        if (f) {
            fclose(f);
            o.cycles = "build/kunpeng-cycles.json";
        }
    }
    if (kq_report_write(&o, err, sizeof(err)) != 0) {
        kq_cli_error("report", "%s", err);
        return 1;
    }
    return 0;
}
