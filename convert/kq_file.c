/* kq: reading a whole (small) file: configs, tokenizer files, JSON, evaluation text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kq_file.h"

int kq_read_whole_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, errno == ENOENT ? "not found" : strerror(errno));
        return errno == ENOENT ? 1 : -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        snprintf(err, errlen, "%s: is a directory", path);
        return -1;
    }
    /* a regular file's size is the first guess; pipes and devices grow the buffer as they go */
    size_t cap = (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? (size_t)st.st_size : 0) + 4096, n = 0;
    if (max && cap > max + 1) cap = max + 1;
    char *buf = malloc(cap + 1);
    const char *why = buf ? NULL : "out of memory";
    while (buf && !why) {
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) why = "read error";
        else if (max && n > max) why = "too large";
        else if (n < cap) break;
        else {
            size_t ncap = 2 * cap;
            if (max && ncap > max + 1) ncap = max + 1;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) why = "out of memory";
            else buf = nb, cap = ncap;
        }
    }
    fclose(f);
    if (why) {
        if (!strcmp(why, "too large")) snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        else snprintf(err, errlen, "%s: %s", path, why);
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return 0;
}
