/* The pass manager (include/tile/pass.h): the pass table as data, the pipeline, and
 * running passes in order with a verification and an optional dump after each.
 *
 * Needs: a verified module (passes may rely on what the verifier checks).
 * Guarantees: after each pass that succeeds the module verifies again, or the run
 * stops with TILE_PASS_INTERNAL and a message naming the pass and the first thing
 * the verifier found wrong. */
#include <stdlib.h>
#include <string.h>

#include "tile/pass.h"
#include "tile/text.h"
#include "tile/verify.h"

const TilePass tile_passes[] = {
#define X(name, fn, summary) {#name, fn, summary},
    TILE_PASSES(X)
#undef X
};
const int tile_npasses = (int)(sizeof tile_passes / sizeof tile_passes[0]);

/* Later stages append their passes here, in the order they run. */
const char *const tile_pipeline[] = {
    "decompose",
    "fuse",
};
const int tile_pipeline_len = (int)(sizeof tile_pipeline / sizeof tile_pipeline[0]);

const TilePass *tile_pass_find(const char *name) {
  for (int i = 0; name && i < tile_npasses; i++)
    if (strcmp(tile_passes[i].name, name) == 0) return &tile_passes[i];
  return NULL;
}

int tile_pipeline_index(const char *name) {
  for (int i = 0; name && i < tile_pipeline_len; i++)
    if (strcmp(tile_pipeline[i], name) == 0) return i;
  return -1;
}

void tile_pass_names(char *buf, size_t size) {
  if (!size) return;
  buf[0] = 0;
  size_t k = 0;
  for (int i = 0; i < tile_npasses && k < size; i++)
    k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? ", " : "", tile_passes[i].name);
}

static void dump(const TilePassPrint *print, const TilePass *pass, const TileModule *m) {
  if (!print || !print->out) return;
  if (!print->after_all && !(print->after && strcmp(print->after, pass->name) == 0)) return;
  fprintf(print->out, "// ----- IR after pass '%s' -----\n", pass->name);
  tile_print_module(print->out, m);
}

/* Verifies m after pass; on failure reports the verifier's first message as an
 * internal error. The verifier's own report is not shown: its messages describe
 * IR the user never wrote. It is written to memory, limited to one error, and the
 * message is read from its first line (`where: error: message`), since the diag
 * remembers the last error it counted, not the first. */
static bool verify_after(const TilePass *pass, TileModule *m, TileDiag *d) {
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  if (!mem) {
    tile_error(d, (TileLoc){0}, "internal error: out of memory verifying after pass '%s'",
               pass->name);
    return false;
  }
  TileDiag vd;
  tile_diag_init(&vd, mem, d->file, NULL, 0);
  vd.max_errors = 1;
  bool ok = tile_verify_module(m, &vd) && vd.nerrors == 0;
  fclose(mem);
  if (!ok) {
    const char *msg = text ? strstr(text, ": error: ") : NULL;
    int n = 0;
    if (msg) {
      msg += strlen(": error: ");
      n = (int)strcspn(msg, "\n");
    } else {
      msg = vd.nerrors ? vd.last : "the verifier rejected the module";
      n = (int)strlen(msg);
    }
    tile_error(d, (TileLoc){0}, "internal error: after pass '%s': %.*s", pass->name, n, msg);
  }
  free(text);
  return ok;
}

TilePassStatus tile_run_passes(TileModule *m, const TilePass *const *passes, int n,
                               const TilePassPrint *print, TileDiag *d) {
  for (int i = 0; i < n; i++) {
    const TilePass *pass = passes[i];
    int before = d->nerrors;
    TilePassStatus st = pass->run(m, d);
    if (st == TILE_PASS_OK && d->nerrors > before) {
      tile_error(d, (TileLoc){0}, "internal error: pass '%s' reported errors but succeeded",
                 pass->name);
      return TILE_PASS_INTERNAL;
    }
    if (st != TILE_PASS_OK) {
      if (d->nerrors == before) /* a failure must say why */
        tile_error(d, (TileLoc){0}, "%spass '%s' failed without a message",
                   st == TILE_PASS_INTERNAL ? "internal error: " : "", pass->name);
      return st;
    }
    /* Printed before verifying, so a dump shows the IR a broken pass left. */
    dump(print, pass, m);
    if (!verify_after(pass, m, d)) return TILE_PASS_INTERNAL;
  }
  return TILE_PASS_OK;
}

TilePassStatus tile_run_pipeline(TileModule *m, const char *const *names, int n,
                                 const TilePassPrint *print, TileDiag *d) {
  const TilePass *passes[64];
  if (n > (int)(sizeof passes / sizeof passes[0])) {
    tile_error(d, (TileLoc){0}, "internal error: a pipeline of %d passes is longer than %d", n,
               (int)(sizeof passes / sizeof passes[0]));
    return TILE_PASS_INTERNAL;
  }
  for (int i = 0; i < n; i++) {
    passes[i] = tile_pass_find(names[i]);
    if (!passes[i]) {
      char list[512];
      tile_pass_names(list, sizeof list);
      tile_error(d, (TileLoc){0}, "unknown pass '%s' (passes: %s)", names[i], list);
      return TILE_PASS_FAILED;
    }
  }
  return tile_run_passes(m, passes, n, print, d);
}
