/* Reading whole input files, for every tilec command. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tilec.h"

int tilec_read_file(const char *path, char **out, size_t *len) {
  bool is_stdin = strcmp(path, "-") == 0;
  errno = 0;
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    tilec_fail("cannot read '%s': %s", path, strerror(errno));
    return TILEC_BAD_INPUT;
  }
  /* One spare byte keeps the text NUL-terminated for callers that want a C string;
   * the length stays the file's, so binary input with NULs is read whole. */
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    if (n == cap) {
      char *bigger = cap < SIZE_MAX / 4 ? realloc(buf, cap * 2 + 1) : NULL;
      if (!bigger) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  int err = ferror(f) ? (errno ? errno : EIO) : 0;
  if (!is_stdin) fclose(f);
  if (!buf) {
    tilec_fail("out of memory reading '%s'", path);
    return TILEC_INTERNAL;
  }
  if (err) {
    free(buf);
    tilec_fail("cannot read '%s': %s", path, strerror(err));
    return TILEC_BAD_INPUT;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return TILEC_OK;
}
