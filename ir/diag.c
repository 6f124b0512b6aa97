/* Diagnostics in the form compilers share: `file:line:col: error: message`, the
 * source line, and a caret under the column. Unprintable bytes in the shown line are
 * replaced, so binary input cannot garble the terminal. */
#include <stdio.h>
#include <string.h>

#include "tile/diag.h"

enum { SHOW_MAX = 160 };

void tile_diag_init(TileDiag *d, FILE *out, const char *file, const char *src, size_t len) {
  memset(d, 0, sizeof *d);
  d->out = out;
  d->file = file ? file : "<input>";
  d->src = src;
  d->src_len = len;
  d->max_errors = 20;
}

bool tile_diag_full(const TileDiag *d) { return d->nerrors >= (d->max_errors ? d->max_errors : 20); }

/* Finds the start and length of 1-based line `line` in the source. */
static bool find_line(const TileDiag *d, int line, const char **start, size_t *len) {
  if (!d->src || line < 1) return false;
  const char *p = d->src, *end = d->src + d->src_len;
  for (int l = 1; l < line; l++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return false;
    p = nl + 1;
  }
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  *start = p;
  *len = (size_t)((nl ? nl : end) - p);
  return true;
}

static void show_source(const TileDiag *d, TileLoc loc) {
  const char *line;
  size_t len;
  if (loc.line < 1 || !find_line(d, loc.line, &line, &len)) return;
  if (len > SHOW_MAX) len = SHOW_MAX;
  char buf[SHOW_MAX + 1];
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)line[i];
    buf[i] = c == '\t' ? ' ' : (c < 32 || c > 126) ? '?' : (char)c;
  }
  buf[len] = 0;
  fprintf(d->out, "%s\n", buf);
  int col = loc.col < 1 ? 1 : loc.col > SHOW_MAX ? SHOW_MAX : loc.col;
  fprintf(d->out, "%*s^\n", col - 1, "");
}

static void emit(TileDiag *d, TileLoc loc, const char *kind, const char *msg) {
  if (!d->out) return;
  const char *file = loc.file ? loc.file : d->file;
  if (loc.line > 0)
    fprintf(d->out, "%s:%d:%d: %s: %s\n", file, loc.line, loc.col, kind, msg);
  else
    fprintf(d->out, "%s: %s: %s\n", file, kind, msg);
  show_source(d, loc);
}

bool tile_verror(TileDiag *d, TileLoc loc, const char *fmt, va_list ap) {
  int limit = d->max_errors ? d->max_errors : 20;
  d->nerrors++;
  vsnprintf(d->last, sizeof d->last, fmt, ap);
  if (d->nerrors <= limit) emit(d, loc, "error", d->last);
  if (d->nerrors == limit && d->out)
    fprintf(d->out, "%s: note: too many errors, stopping here\n", d->file);
  return false;
}

bool tile_error(TileDiag *d, TileLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tile_verror(d, loc, fmt, ap);
  va_end(ap);
  return false;
}

void tile_note(TileDiag *d, TileLoc loc, const char *fmt, ...) {
  int limit = d->max_errors ? d->max_errors : 20;
  if (d->nerrors > limit) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(d, loc, "note", msg);
}
