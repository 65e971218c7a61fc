/* kq's tiny test harness: every test binary ends with "N passed, N failed, N skipped". */
#ifndef KQ_TEST_H
#define KQ_TEST_H

#include <stddef.h>
#include <stdio.h>

extern int kq_test_passed, kq_test_failed, kq_test_skipped;

/* One check: counted as passed, or printed with file:line and counted as failed. */
#define KQ_CHECK(cond, ...)                                                   \
    do {                                                                      \
        if (cond) {                                                           \
            kq_test_passed++;                                                 \
        } else {                                                              \
            kq_test_failed++;                                                 \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                       \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
            fflush(stdout);                                                   \
        }                                                                     \
    } while (0)

/* A skipped check, with the reason ("SKIP golden: ../shared/golden/q4_0.bin not found"). */
#define KQ_SKIP(...)                                                          \
    do {                                                                      \
        kq_test_skipped++;                                                    \
        printf("SKIP ");                                                      \
        printf(__VA_ARGS__);                                                  \
        printf("\n");                                                         \
    } while (0)

/* Prints the closing line and returns the exit status (1 if anything failed). */
int kq_test_finish(void);

/* Path of a file under ../shared (or $KQ_SHARED), written to buf; tests run from the repo root. */
const char *kq_test_shared_path(const char *rel, char *buf, size_t len);
/* Reads a whole file; NULL if it cannot (then *len is 0). Caller frees. */
void *kq_test_read_file(const char *path, size_t *len);

#endif
