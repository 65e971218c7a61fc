/* kq CLI: shared helpers of the subcommands (one file per subcommand in cli/). */
#ifndef KQ_CLI_H
#define KQ_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "kq_dispatch.h"

/* Subcommands: each returns the process exit code (0 ok, 1 failure, 2 usage or input error). */
int kq_cmd_quantize_raw(int argc, char **argv);
int kq_cmd_dequantize_raw(int argc, char **argv);
int kq_cmd_types(int argc, char **argv);
int kq_cmd_fixtures(int argc, char **argv);
int kq_cmd_convert(int argc, char **argv);
int kq_cmd_quantize(int argc, char **argv);
int kq_cmd_inspect(int argc, char **argv);
int kq_cmd_bench(int argc, char **argv);
int kq_cmd_tokenize(int argc, char **argv);
int kq_cmd_generate(int argc, char **argv);
int kq_cmd_perplexity(int argc, char **argv);
int kq_cmd_report(int argc, char **argv);
int kq_cmd_sample(int argc, char **argv);
/* validation/: argv[0] is the check's name */
int kq_check_bitexact_main(int argc, char **argv);
int kq_check_tolerance_main(int argc, char **argv);

/* "kq: <cmd>: message" on stderr, one line. */
void kq_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a positive integer option value; 0 on success, -1 with an error printed. */
int kq_cli_parse_i64(const char *cmd, const char *opt, const char *s, int64_t *out);

/* Output written to a temp file beside the target and renamed at the end, so nothing
 * half-written is ever left behind (also on SIGINT/SIGTERM: the temp file is removed). */
typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4096];
} kq_out_file;
int kq_out_open(kq_out_file *o, const char *cmd, const char *path);
int kq_out_commit(kq_out_file *o, const char *cmd); /* flush, fsync, close, rename; removes on failure */
void kq_out_abort(kq_out_file *o);                  /* close and remove the temp file */

/* Progress on stderr: shown only on a TTY or when forced (--progress). */
typedef struct {
    int enabled;
    const char *what;
    int64_t total, last_pct;
} kq_progress;
void kq_progress_init(kq_progress *p, const char *what, int64_t total, int forced);
void kq_progress_update(kq_progress *p, int64_t done);
void kq_progress_done(kq_progress *p);

/* Registers a temp file (another writer's) to remove if a signal ends the process; NULL clears. */
void kq_cli_cleanup_on_signal(const char *tmp_path);

/* Writes s as a JSON string literal (quoted, escaped). */
void kq_json_string(FILE *f, const char *s);

#endif
