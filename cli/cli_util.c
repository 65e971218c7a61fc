/* kq CLI helpers: errors, numbers, atomic output files, progress, JSON strings. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kq_cli.h"

void kq_cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kq: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int kq_cli_parse_i64(const char *cmd, const char *opt, const char *s, int64_t *out) {
    if (!s) {
        kq_cli_error(cmd, "%s needs a value", opt);
        return -1;
    }
    char *end = NULL;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno || !end || *end || end == s || v <= 0) {
        kq_cli_error(cmd, "%s takes a positive whole number, not '%s'", opt, s);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* The temp file of the output being written, removed if a signal ends the process. */
static volatile sig_atomic_t kq_tmp_active;
static char kq_tmp_path[4096];

static void kq_on_signal(int sig) {
    if (kq_tmp_active) unlink(kq_tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void kq_install_handlers(void) {
    signal(SIGINT, kq_on_signal);
    signal(SIGTERM, kq_on_signal);
    signal(SIGHUP, kq_on_signal);
}

void kq_cli_cleanup_on_signal(const char *tmp_path) {
    kq_tmp_active = 0;
    if (!tmp_path) return;
    snprintf(kq_tmp_path, sizeof(kq_tmp_path), "%s", tmp_path);
    kq_tmp_active = 1;
    kq_install_handlers();
}

int kq_out_open(kq_out_file *o, const char *cmd, const char *path) {
    memset(o, 0, sizeof(*o));
    if (strlen(path) + 16 >= sizeof(o->tmp)) {
        kq_cli_error(cmd, "output path too long: %s", path);
        return -1;
    }
    snprintf(o->path, sizeof(o->path), "%s", path);
    snprintf(o->tmp, sizeof(o->tmp), "%s.kqtmp.XXXXXX", path);
    const int fd = mkstemp(o->tmp);
    if (fd < 0) {
        kq_cli_error(cmd, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        kq_cli_error(cmd, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        unlink(o->tmp);
        return -1;
    }
    /* mkstemp makes the file 0600; give the output the mode the umask allows, as creat() would */
    const mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) { /* not fatal: the output is still written */ }
    kq_cli_cleanup_on_signal(o->tmp);
    return 0;
}

void kq_out_abort(kq_out_file *o) {
    if (o->f) fclose(o->f);
    o->f = NULL;
    if (o->tmp[0]) unlink(o->tmp);
    kq_tmp_active = 0;
}

int kq_out_commit(kq_out_file *o, const char *cmd) {
    int bad = fflush(o->f) != 0 || ferror(o->f);
    if (!bad) bad = fsync(fileno(o->f)) != 0;
    const int saved = errno;
    if (fclose(o->f) != 0) bad = 1;
    o->f = NULL;
    if (bad) {
        kq_cli_error(cmd, "writing %s failed: %s", o->path, strerror(saved ? saved : EIO));
        kq_out_abort(o);
        return -1;
    }
    if (rename(o->tmp, o->path) != 0) {
        kq_cli_error(cmd, "cannot rename the finished output to %s: %s", o->path, strerror(errno));
        kq_out_abort(o);
        return -1;
    }
    kq_tmp_active = 0;
    return 0;
}

void kq_progress_init(kq_progress *p, const char *what, int64_t total, int forced) {
    p->enabled = forced || isatty(STDERR_FILENO);
    p->what = what;
    p->total = total > 0 ? total : 1;
    p->last_pct = -1;
}

void kq_progress_update(kq_progress *p, int64_t done) {
    if (!p->enabled) return;
    const int64_t pct = done * 100 / p->total;
    if (pct == p->last_pct) return;
    p->last_pct = pct;
    fprintf(stderr, "\r%s: %3d%%", p->what, (int)pct);
    fflush(stderr);
}

void kq_progress_done(kq_progress *p) {
    if (!p->enabled) return;
    fprintf(stderr, "\r%s: done\n", p->what);
}

void kq_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c == '\n') fputs("\\n", f);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}
