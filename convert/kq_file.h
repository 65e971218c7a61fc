/* kq: reading a whole (small) file, the one place that does it. */
#ifndef KQ_FILE_H
#define KQ_FILE_H

#include <stddef.h>

/* Reads all of path into a malloc'd, NUL-terminated buffer (*len bytes before the NUL). max: the
 * largest size accepted (0: no limit). Returns 0; 1 if the file does not exist (err says so too);
 * -1 with "PATH: reason" in err (a directory, unreadable, larger than max, out of memory). */
int kq_read_whole_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);

#endif
