/* The mesh axes a collective names, as torus dims or shares of them (CollAxis,
 * gen_collective_int.h), and the semaphore band their rings count arrivals on
 * (tile_coll_sem_band): the checks a mesh must pass before any schedule is made. */
#include <inttypes.h>
#include <string.h>

#include "gen_collective.h"
#include "gen_collective_int.h"
#include "tile/ops.h"

/* Rings a torus dim of `size` chips can carry at once: one per axis on it, and an axis
 * has at least 2 chips, so at most the number of prime factors of size. */
static int32_t dim_slots(int64_t size) {
  int32_t n = 0;
  for (int64_t f = 2; f * f <= size; f++)
    while (size % f == 0) {
      size /= f;
      n++;
    }
  return n + (size > 1);
}

/* The first band slot of torus dim `dim`: each dim has dim_slots of them, in order. */
static int32_t dim_slot_base(const TileTarget *t, int dim) {
  int32_t base = 0;
  for (int d = 0; d < dim; d++) base += dim_slots(t->torus[d]);
  return base;
}

int32_t tile_coll_sem_band(const TileTarget *t) { return 2 * dim_slot_base(t, t->torus_rank); }

/* ---- the op's mesh and axes ---- */

static bool whole_dim(const TileMesh *mesh, const TileMeshAxis *ma) {
  return ma->ndims == 1 && ma->size == mesh->dims[ma->dims[0]];
}

static bool simple_mesh(const TileMesh *mesh) {
  for (int k = 0; k < mesh->naxes; k++)
    if (!whole_dim(mesh, &mesh->axes[k])) return false;
  return true;
}

/* Axis a on torus dim `dim`, p chips of it, its position step `inner` coordinates (the
 * sizes of the axes declared after it on the dim: docs/tile-ir.md, "Modules"), its
 * rings on band slot `slot`. */
static void dim_axis(const TileTarget *t, const char *name, int dim, int64_t p, int64_t inner,
                     int32_t slot, CollAxis *a) {
  int64_t size = t->torus[dim];
  *a = (CollAxis){.name = name, .dim = dim, .p = p, .inner = inner, .stride = inner,
                  .slot = slot, .wrap = p == size && t->wrap[dim]};
  for (int d = dim + 1; d < t->torus_rank; d++) a->stride *= t->torus[d];
  a->hops = (int32_t)(t->wrap[dim] && size - inner < inner ? size - inner : inner);
}

/* Adds mesh axis ma. An axis over several dims becomes one axis per dim, in the order it
 * lists them: a rank over those, row-major, is its position, so every collective is the
 * same, and each dim's ring is one hop a step (with the dim's wraparound) where a ring
 * over the whole axis would pay routed row changes. On a dim shared by several axes,
 * the j-th of more than one chip takes the dim's j-th band slot, so the rings of one
 * mesh never share a semaphore (a dim has dim_slots of them). */
static bool add_axis(Coll *c, const TileMesh *mesh, const TileMeshAxis *ma) {
  const TileTarget *t = c->cx->target;
  /* Band slots are laid out per mesh: a function whose collectives use another mesh
   * than its own could have two rings on one semaphore, unless both meshes are of
   * whole dims only (a whole dim's ring takes the same slot in every mesh). */
  const TileMesh *fm = tile_coll_func_mesh(c->cx->m, c->cx->f);
  if (!fm) /* no band reserved: the lowering reserves it for a function on a mesh */
    return tile_lower_error(c->cx, c->op, "a collective over mesh @%s in a function on no "
                            "mesh; give the function {mesh = @%s}", mesh->name, mesh->name);
  if (fm != mesh && (!simple_mesh(mesh) || !simple_mesh(fm)))
    return tile_lower_error(c->cx, c->op, "a collective over mesh @%s in a function on @%s: "
                            "over another mesh than the function's, collectives run only "
                            "where both meshes have one whole torus dim per axis",
                            mesh->name, fm->name);
  if (ma->ndims > 1) {
    for (int i = 0; i < ma->ndims; i++) {
      int dim = ma->dims[i];
      dim_axis(t, ma->name, dim, t->torus[dim], 1, dim_slot_base(t, dim), &c->ax[c->naxes++]);
    }
    return true;
  }
  int dim = ma->dims[0];
  int64_t inner = 1;
  int32_t before = 0;
  bool after = false;
  for (int j = 0; j < mesh->naxes; j++) {
    const TileMeshAxis *o = &mesh->axes[j];
    if (o == ma) after = true;
    else if (o->ndims == 1 && o->dims[0] == dim) {
      if (after) inner *= o->size;
      else before += o->size > 1;
    }
  }
  dim_axis(t, ma->name, dim, ma->size, inner, dim_slot_base(t, dim) + before,
           &c->ax[c->naxes++]);
  return true;
}

/* The mesh must be the machine's torus: chip ids and coordinates are the target's. */
static bool check_mesh(Coll *c, const TileMesh *mesh) {
  const TileTarget *t = c->cx->target;
  bool same = mesh->rank == t->torus_rank;
  for (int d = 0; same && d < mesh->rank; d++) same = mesh->dims[d] == t->torus[d];
  if (same) return true;
  char want[64] = "", have[64] = "";
  for (int d = 0; d < mesh->rank; d++)
    snprintf(want + strlen(want), sizeof want - strlen(want), "%s%" PRId64, d ? "x" : "",
             mesh->dims[d]);
  for (int d = 0; d < t->torus_rank; d++)
    snprintf(have + strlen(have), sizeof have - strlen(have), "%s%d", d ? "x" : "",
             (int)t->torus[d]);
  return tile_lower_error(c->cx, c->op, "mesh @%s is a %s torus but target %s has %s; compile "
                          "with --torus %s", mesh->name, want, t->name, have, want);
}

bool coll_resolve_axes(Coll *c) {
  const TileMesh *mesh = tile_coll_op_mesh(c->cx->m, c->cx->f, c->op);
  if (!mesh)
    return tile_lower_error(c->cx, c->op, "no mesh: give the function {mesh = @name}");
  if (!check_mesh(c, mesh)) return false;
  const TileAttr *a = tile_coll_axes_attr(c->op);
  if (!a) return tile_lower_error(c->cx, c->op, "no axes");
  const TileAttr *names = a;
  int32_t n = 1;
  if (a->kind != TILE_ATTR_IDENT) {
    if (a->kind != TILE_ATTR_ARRAY && a->kind != TILE_ATTR_TUPLE)
      return tile_lower_error(c->cx, c->op, "axes must be mesh axis names");
    names = a->elems;
    n = a->n;
  }
  if (n > TILE_MAX_TORUS_RANK)
    return tile_lower_error(c->cx, c->op, "%d axes; a collective runs over at most %d",
                            (int)n, TILE_MAX_TORUS_RANK);
  const TileMeshAxis *ma[TILE_MAX_TORUS_RANK];
  int32_t digits = 0;
  for (int32_t i = 0; i < n; i++) {
    if (names[i].kind != TILE_ATTR_IDENT)
      return tile_lower_error(c->cx, c->op, "axes must be mesh axis names");
    ma[i] = tile_mesh_find_axis(mesh, names[i].s);
    if (!ma[i])
      return tile_lower_error(c->cx, c->op, "mesh @%s has no axis '%s'", mesh->name,
                              names[i].s);
    for (int32_t j = 0; j < i; j++)
      if (ma[j] == ma[i])
        return tile_lower_error(c->cx, c->op, "axis '%s' is named twice", names[i].s);
    digits += ma[i]->ndims;
  }
  /* An axis over several dims runs as one axis per dim (add_axis). */
  if (digits > TILE_MAX_TORUS_RANK)
    return tile_lower_error(c->cx, c->op, "the axes cover %d torus dims and shares of dims in "
                            "all; a collective runs over at most %d", (int)digits,
                            TILE_MAX_TORUS_RANK);
  for (int32_t i = 0; i < n; i++)
    if (!add_axis(c, mesh, ma[i])) return false;
  c->span = n == 1 && ma[0]->ndims > 1;
  /* A permute along a cycle (gen_collective_cycle.c) takes its second axis too; the
   * cycle steps one position on one axis at a time, a chip-id stride on each. */
  const TileAttr *cyc = tile_attr_get(&c->op->attrs, "cycle");
  if (!cyc || c->op->kind != TILE_OP_COLLECTIVE_PERMUTE) return true;
  const TileMeshAxis *cm = cyc->kind == TILE_ATTR_IDENT ? tile_mesh_find_axis(mesh, cyc->s) : NULL;
  if (!cm) return tile_lower_error(c->cx, c->op, "the cycle must name an axis of mesh @%s",
                                   mesh->name);
  if (c->span || cm->ndims != 1)
    return tile_lower_error(c->cx, c->op, "a permute along a cycle runs over two axes of one "
                            "torus dim each; '%s' spans several", c->span ? names[0].s : cyc->s);
  return add_axis(c, mesh, cm);
}
