/* Diagnostics: `file:line:col: error: message`, then the source line and a caret.
 * One engine collects every error of a run, so a parser or verifier can report
 * several problems from one file and the driver decides the exit code. */
#ifndef TILE_DIAG_H
#define TILE_DIAG_H

#include <stdarg.h>
#include <stdio.h>

#include "tile/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TileDiag {
  FILE *out;          /* where messages go; NULL keeps them silent */
  const char *file;   /* the source's name, for messages with no location */
  const char *src;    /* the source text, to show the line; may be NULL */
  size_t src_len;
  int nerrors;
  int max_errors;     /* stop reporting after this many (0: 20) */
  char last[512];     /* the text of the last error, for the C API */
} TileDiag;

void tile_diag_init(TileDiag *d, FILE *out, const char *file, const char *src, size_t len);
/* Reports an error at loc (line 0: no position). Returns false, so callers can
 * `return tile_error(...)`. */
bool tile_error(TileDiag *d, TileLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool tile_verror(TileDiag *d, TileLoc loc, const char *fmt, va_list ap);
/* A note attached to the previous error (not counted). */
void tile_note(TileDiag *d, TileLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool tile_diag_full(const TileDiag *d);

#ifdef __cplusplus
}
#endif
#endif
