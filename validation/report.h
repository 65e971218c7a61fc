/* kq report: the figures `make validate` measured, written as reports/<model>/report.md, report.json and
 * gnuplot charts (PNG and SVG).
 *
 * Input: a work folder written by validation/validate.sh, one JSON file per step:
 *   manifest.json           {"model", "columns": [...] in table order, "qtypes", "source_dtype", "base",
 *                            "ctx", "chunks", "threads", "bench_args", "eval_kind", "models_dir", "seconds"}
 *   inspect-<col>.json      kq inspect --json of each converted file
 *   ppl-<col>.json          kq perplexity --json (with "kld" against the F16 base for the other columns)
 *   bench-<col>.json        kq bench --json
 *   bitexact-<run>.json, bitexact-model-<run>.json   kq check bitexact --json (generic / --gguf)
 *   tolerance.json, tolerance-model.json             kq check tolerance --json (synthetic / --gguf)
 *   eval.txt, commands.sh, make-command.txt, version.txt, version-aarch64.txt   plain text
 * and the llvm-mca estimates (build/kunpeng-cycles.json). A step whose file is missing is reported as
 * "not measured" with the step named, never left blank.
 *
 * report.md opens with the table the user guides leave to fill in:
 *   | Model | Measure | F32 (when the source is F32) | F16 | each QTYPE |   rows perplexity, file size, ms/tok
 * then KLD, top-1 agreement, delta ln p, per-tensor error, bits per weight, pp tokens/s, roofline
 * fraction, the Kunpeng 920 cycle estimates, host, versions and the commands to reproduce.
 * report.json holds every figure (the inputs themselves, parsed, plus the table). Every output is
 * written to a temporary file and renamed. Charts: gnuplot runs as an external program on a script
 * written beside the report (charts.gp); without gnuplot the report says so.
 *
 * Needs cJSON (host build); without it the functions say so and fail. */
#ifndef KQ_REPORT_H
#define KQ_REPORT_H

#include <stddef.h>
#include <stdio.h>

#ifndef KQ_HAVE_CJSON
#define KQ_HAVE_CJSON 0
#endif

typedef struct {
    const char *work;    /* the work folder (build/validate/<model>) */
    const char *out;     /* the report folder (reports/<model>) */
    const char *cycles;  /* build/kunpeng-cycles.json, or NULL */
    const char *gnuplot; /* the gnuplot program ("gnuplot"), or NULL: no charts */
    int quiet;           /* no progress on stderr */
} kq_report_opts;

/* Writes the report. 0, or -1 with err (a missing manifest, an unwritable folder, no cJSON). */
int kq_report_write(const kq_report_opts *o, char *err, size_t errlen);

/* `kq report --resolve NAME`: the registry entry's folder(s) and files, for validate.sh's cache:
 *   name N / format F / dtype f32|f16|bf16 (the source's weights) / dir D / file PATH (one per file)
 * A delta model lists the base's and the delta's folders and files. Returns 0, or -1 with err naming
 * the folder where the files were expected and their source. */
int kq_report_resolve(const char *name, FILE *out, char *err, size_t errlen);

#endif
