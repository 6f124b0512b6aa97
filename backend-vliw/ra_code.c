/* Scheduled code as register allocation sees it: the loop structure read from the
 * `loop` ops, which loop directly holds each bundle, and which writes are read later.
 * Spill code is added by rewriting the code in one pass (spill.c), which gives the new
 * code's loop membership per bundle back through ra_code_set_inner. */
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "regalloc_internal.h"

void *ra_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) {
    fprintf(stderr, "tilec: out of memory in register allocation\n");
    abort();
  }
  return p;
}

void *ra_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "tilec: out of memory in register allocation\n");
    abort();
  }
  return q;
}


void ra_code_free(RaCode *rc) {
  free(rc->loops);
  free(rc->info_loop);
  free(rc->inner);
  free(rc->live_def);
  rc->loops = NULL;
  rc->info_loop = NULL;
  rc->inner = NULL;
  rc->live_def = NULL;
  rc->nloops = rc->n = rc->cap = 0;
}

static void size_arrays(RaCode *rc, int32_t n) {
  if (n <= rc->cap) return;
  int32_t cap = rc->cap ? rc->cap : 64;
  while (cap < n) cap *= 2;
  rc->inner = ra_realloc(rc->inner, (size_t)cap * sizeof *rc->inner);
  rc->live_def = ra_realloc(rc->live_def, (size_t)cap * sizeof *rc->live_def);
  rc->cap = cap;
}

bool ra_loops_build(RaCode *rc) {
  TileMirCode *c = rc->code;
  int32_t n = c->nbundles;
  free(rc->loops);
  rc->loops = NULL;
  rc->nloops = 0;
  rc->n = n;
  size_arrays(rc, n + 1);
  memset(rc->live_def, 0, (size_t)rc->cap * sizeof *rc->live_def);
  int32_t stack[8], depth = 0, cap = 0;
  for (int32_t p = 0; p < n; p++) {
    while (depth > 0 && rc->loops[stack[depth - 1]].last < p) depth--;
    rc->inner[p] = depth ? stack[depth - 1] : -1;
    const TileMirInst *in = &c->b[p].slot[ra_branch_word()];
    if (in->op != TILE_MOP_LOOP) continue;
    int32_t last = p + in->c;
    if (in->c < 1 || last >= n)
      return tile_error(rc->d, tile_mir_src_loc(rc->m, in),
                        "register allocation: the loop at bundle %d has a body of %d bundles, "
                        "outside the %d bundles of the code",
                        (int)p, (int)in->c, (int)n);
    if (depth >= 4 || (depth && last > rc->loops[stack[depth - 1]].last))
      return tile_error(rc->d, tile_mir_src_loc(rc->m, in),
                        "register allocation: the loop at bundle %d does not nest inside the "
                        "loop around it (or nests more than 4 deep)",
                        (int)p);
    if (rc->nloops == cap) {
      cap = cap ? 2 * cap : 8;
      rc->loops = ra_realloc(rc->loops, (size_t)cap * sizeof *rc->loops);
    }
    rc->loops[rc->nloops] =
        (RaLoop){.first = p + 1, .last = last, .parent = depth ? stack[depth - 1] : -1};
    stack[depth++] = rc->nloops++;
  }
  /* The pipelined-loop records name their loop by its body. */
  rc->info_loop = ra_realloc(rc->info_loop, ((size_t)c->nloops + 1) * sizeof *rc->info_loop);
  for (int32_t i = 0, l = 0; i < c->nloops; i++) {
    rc->info_loop[i] = -1;
    for (l = 0; l < rc->nloops; l++)
      if (rc->loops[l].first == c->loops[i].first && rc->loops[l].last == c->loops[i].last)
        rc->info_loop[i] = l;
  }
  return true;
}

bool ra_loop_encloses(const RaCode *rc, int32_t outer, int32_t inner) {
  if (outer < 0) return true;
  for (int32_t l = inner; l >= 0; l = rc->loops[l].parent)
    if (l == outer) return true;
  return false;
}

void ra_code_set_inner(RaCode *rc, int32_t *inner, int32_t n) {
  free(rc->inner);
  rc->inner = inner;
  rc->live_def = ra_realloc(rc->live_def, ((size_t)n + 1) * sizeof *rc->live_def);
  memset(rc->live_def, 0, ((size_t)n + 1) * sizeof *rc->live_def);
  rc->n = rc->cap = n;
}
