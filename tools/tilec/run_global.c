/* Global arrays for a global program on a mesh: `tilec run FILE.tile` splits each
 * global input into the blocks the chips hold and assembles global outputs from
 * them (docs/compiler.md, "Running a global program").
 *
 * The compile partitions the program (backend-vliw/compile.c); it does not say how
 * the parameters ended up split, so the source is parsed once more here and
 * shard_prop, which decides that, runs on the copy. Both see the same module and
 * the pass is deterministic, so the shardings read here are those the compile used.
 *
 * Chips: ids are row-major over the target's torus, and the mesh must be that torus.
 * A chip's position on a mesh axis follows docs/tile-ir.md ("Modules"), as the
 * collectives compute it on the chip (backend-vliw/gen_collective.c): on a dim shared
 * by several axes, (coordinate / inner) mod size, inner the product of the sizes of
 * the axes declared after it on that dim; over several dims, row-major over them in
 * the order the axis lists them. */
#include <stdlib.h>
#include <string.h>

#include "run_global.h"
#include "tile/text.h"
#include "tile/verify.h"
#include "tilec.h"

int tilec_global_load(const char *path, const char *src, size_t len, const char *func,
                      TilecGlobal *g) {
  memset(g, 0, sizeof *g);
  TileDiag quiet;
  tile_diag_init(&quiet, NULL, path, src, len);
  g->m = tile_parse(src, len, path, &quiet);
  /* A source that does not parse or verify is the compile's to report. */
  if (!g->m || quiet.nerrors || !tile_verify_module(g->m, &quiet) || quiet.nerrors)
    return TILEC_OK;
  TileDiag d;
  tile_diag_init(&d, stderr, path, src, len);
  if (!tile_vliw_global_io(g->m, func, &g->io, &d)) {
    g->io.mesh = NULL;
    return strncmp(d.last, "internal error", 14) == 0 ? TILEC_INTERNAL : TILEC_BAD_INPUT;
  }
  return TILEC_OK;
}

void tilec_global_free(TilecGlobal *g) {
  tile_module_free(g->m);
  memset(g, 0, sizeof *g);
}

void tilec_global_torus(const TilecGlobal *g, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = '\0';
  for (int d = 0; d < g->io.mesh->rank && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? "x" : "", (long long)g->io.mesh->dims[d]);
}

int tilec_global_check(const TilecGlobal *g, const TileTarget *t) {
  const TileMesh *mesh = g->io.mesh;
  bool same = mesh->rank == t->torus_rank;
  for (int d = 0; same && d < mesh->rank; d++) same = mesh->dims[d] == t->torus[d];
  if (!same) {
    char want[64], have[64];
    size_t k = 0;
    tilec_global_torus(g, want, sizeof want);
    have[0] = '\0';
    for (int d = 0; d < t->torus_rank && k < sizeof have; d++)
      k += (size_t)snprintf(have + k, sizeof have - k, "%s%d", d ? "x" : "", (int)t->torus[d]);
    tilec_fail("run: the program runs on mesh @%s, a %s torus, but the machine is %s; run it "
               "with --torus %s", mesh->name, want, have, want);
    return TILEC_BAD_INPUT;
  }
  return TILEC_OK;
}

/* Chip coordinate `coord`'s position on axis a of mesh (see the top). */
static int64_t axis_position(const TileMesh *mesh, int a, const int64_t *coord) {
  const TileMeshAxis *ax = &mesh->axes[a];
  if (ax->ndims > 1) {
    int64_t q = 0;
    for (int i = 0; i < ax->ndims; i++) q = q * mesh->dims[ax->dims[i]] + coord[ax->dims[i]];
    return q;
  }
  int64_t inner = 1;
  for (int b = a + 1; b < mesh->naxes; b++)
    if (mesh->axes[b].ndims == 1 && mesh->axes[b].dims[0] == ax->dims[0])
      inner *= mesh->axes[b].size;
  return coord[ax->dims[0]] / inner % ax->size;
}

const TileVliwGlobalValue *tilec_global_find(const TilecGlobal *g, const char *name,
                                             size_t len) {
  for (int i = 0; g->io.mesh && i < g->io.nparams + g->io.nresults; i++)
    if (strlen(g->io.values[i].name) == len && memcmp(g->io.values[i].name, name, len) == 0)
      return &g->io.values[i];
  return NULL;
}

bool tilec_global_blocks_match(const TilecGlobal *g, const TileVliwGlobalValue *v, int rank,
                               const int64_t *dims) {
  int grank = v->global.kind == TILE_TY_TENSOR ? v->global.rank : 0;
  bool same = rank == grank;
  for (int d = 0; same && d < rank; d++) {
    int64_t parts = 1;
    for (int j = 0; j < v->naxes[d]; j++) parts *= g->io.mesh->axes[v->axes[d][j]].size;
    same = dims[d] * parts == v->global.dims[d];
  }
  if (!same)
    tilec_fail("run: internal error: the compiled '%s' is not its block under the sharding "
               "shard_prop gives it", v->name);
  return same;
}

void tilec_global_copy(const TilecGlobal *g, const TileVliwGlobalValue *v, const TileTarget *t,
                       int esize, void *global, void *per_chip, bool to_chips) {
  const TileMesh *mesh = g->io.mesh;
  int rank = v->global.kind == TILE_TY_TENSOR ? v->global.rank : 0;
  int64_t gdims[TILE_MAX_RANK], ldims[TILE_MAX_RANK], gstride[TILE_MAX_RANK + 1],
      lstride[TILE_MAX_RANK + 1];
  uint32_t used = 0;
  for (int d = 0; d < rank; d++) {
    int64_t parts = 1;
    for (int j = 0; j < v->naxes[d]; j++) {
      parts *= mesh->axes[v->axes[d][j]].size;
      used |= 1u << v->axes[d][j];
    }
    gdims[d] = v->global.dims[d];
    ldims[d] = gdims[d] / parts;
  }
  gstride[rank] = lstride[rank] = 1;
  for (int d = rank - 1; d >= 0; d--) {
    gstride[d] = gstride[d + 1] * gdims[d];
    lstride[d] = lstride[d + 1] * ldims[d];
  }
  int64_t local_numel = lstride[0], row = rank ? ldims[rank - 1] : 1;
  int64_t chips = 1;
  for (int k = 0; k < t->torus_rank; k++) chips *= t->torus[k];
  uint8_t *gb = global, *cb = per_chip;
  for (int64_t c = 0; c < chips; c++) {
    int64_t coord[TILE_MAX_TORUS_RANK], rest = c;
    for (int k = t->torus_rank - 1; k >= 0; k--) {
      coord[k] = rest % t->torus[k];
      rest /= t->torus[k];
    }
    bool first_replica = true;
    for (int a = 0; a < mesh->naxes; a++)
      if (!(used >> a & 1) && axis_position(mesh, a, coord) != 0) first_replica = false;
    if (!to_chips && !first_replica) continue;
    int64_t off[TILE_MAX_RANK];
    for (int d = 0; d < rank; d++) {
      int64_t blk = 0;
      for (int j = 0; j < v->naxes[d]; j++) {
        int a = v->axes[d][j];
        blk = blk * mesh->axes[a].size + axis_position(mesh, a, coord);
      }
      off[d] = blk * ldims[d];
    }
    /* One row (the last dim's block) at a time, the outer dims counted like digits. */
    int64_t idx[TILE_MAX_RANK] = {0};
    for (int64_t r = 0; r < local_numel / (row ? row : 1); r++) {
      int64_t go = 0, lo = c * local_numel;
      for (int d = 0; d < rank; d++) {
        go += (off[d] + idx[d]) * gstride[d + 1];
        lo += idx[d] * lstride[d + 1];
      }
      uint8_t *gp = gb + go * esize, *cp = cb + lo * esize;
      size_t n = (size_t)(row * esize);
      if (to_chips) memcpy(cp, gp, n);
      else memcpy(gp, cp, n);
      for (int d = rank - 2; d >= 0; d--) {
        if (++idx[d] < ldims[d]) break;
        idx[d] = 0;
      }
    }
  }
}
