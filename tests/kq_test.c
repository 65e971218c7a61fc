#include "kq_test.h"

#include <stdlib.h>

int kq_test_passed, kq_test_failed, kq_test_skipped;

int kq_test_finish(void) {
    printf("%d passed, %d failed, %d skipped\n", kq_test_passed, kq_test_failed, kq_test_skipped);
    fflush(stdout);
    return kq_test_failed ? 1 : 0;
}

const char *kq_test_shared_path(const char *rel, char *buf, size_t len) {
    const char *root = getenv("KQ_SHARED");
    snprintf(buf, len, "%s/%s", root && *root ? root : "../shared", rel);
    return buf;
}

void *kq_test_read_file(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
    void *p = malloc(sz ? (size_t)sz : 1);
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) { free(p); p = NULL; }
    fclose(f);
    if (p) *len = (size_t)sz;
    return p;
}
