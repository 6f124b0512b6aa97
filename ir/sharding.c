/* Meshes and shardings: the checks on mesh declarations, how an op finds its mesh,
 * and the checks on shardings, collective axes and DMA peers against that mesh. */
#include <stdio.h>
#include <string.h>

#include "rules.h"

/* Parent links are followed at most this far, so a corrupt structure cannot hang
 * the verifier. */
enum { MAX_NESTING = 1 << 16 };

/* Products of sizes saturate instead of wrapping, so a mesh with absurd sizes gives
 * a wrong-size error, never undefined arithmetic. */
static int64_t mul_sat(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

const TileMeshAxis *verify_mesh_axis(const TileMesh *mesh, const char *name) {
  int n = mesh->naxes < TILE_MAX_MESH_AXES ? mesh->naxes : TILE_MAX_MESH_AXES;
  for (int i = 0; i < n; i++)
    if (name && mesh->axes[i].name && strcmp(mesh->axes[i].name, name) == 0) return &mesh->axes[i];
  return NULL;
}

const TileFunc *verify_op_func(const TileOp *op) { return verify_block_func(op->block); }

const TileFunc *verify_block_func(const TileBlock *b) {
  for (int depth = 0; b && depth < MAX_NESTING; depth++) {
    if (b->func) return b->func;
    if (!b->parent) return NULL;
    b = b->parent->block;
  }
  return NULL;
}

const TileMesh *verify_func_mesh(const TileModule *m, const TileFunc *f, MeshWhy *why) {
  const TileAttr *a = f ? tile_attr_get(&f->attrs, "mesh") : NULL;
  if (a) {
    const TileMesh *mesh = a->kind == TILE_ATTR_SYMBOL ? tile_module_find_mesh(m, a->s) : NULL;
    *why = mesh ? MESH_FOUND : MESH_UNKNOWN;
    return mesh;
  }
  if (!m->meshes) {
    *why = MESH_NONE;
    return NULL;
  }
  if (m->meshes->next) {
    *why = MESH_AMBIGUOUS;
    return NULL;
  }
  *why = MESH_FOUND;
  return m->meshes;
}

const char *verify_mesh_why(MeshWhy why) {
  switch (why) {
  case MESH_NONE: return "the module declares no mesh";
  case MESH_AMBIGUOUS:
    return "the module declares several meshes; name one with `attributes {mesh = @name}` on "
           "the function";
  case MESH_UNKNOWN: return "the function's mesh attribute names no mesh of this module";
  default: return "no mesh";
  }
}

const TileMesh *rule_mesh(RuleCtx *c) {
  const TileAttr *own = attr(c, "mesh");
  if (own) {
    const TileMesh *mesh = tile_module_find_mesh(c->m, own->s);
    if (!mesh) rule_error(c, "names mesh @%s, which this module does not declare", own->s);
    return mesh;
  }
  MeshWhy why;
  const TileMesh *mesh = verify_func_mesh(c->m, c->func, &why);
  if (!mesh) rule_error(c, "needs a mesh: %s", verify_mesh_why(why));
  return mesh;
}

/* ---- mesh declarations ---- */

static bool verify_axis(const TileMesh *mesh, int k, TileDiag *d) {
  const TileMeshAxis *ax = &mesh->axes[k];
  const char *mn = mesh->name;
  if (!ax->name) return tile_error(d, mesh->loc, "mesh @%s: axis %d has no name", mn, k + 1);
  for (int j = 0; j < k; j++)
    if (mesh->axes[j].name && strcmp(mesh->axes[j].name, ax->name) == 0)
      return tile_error(d, mesh->loc, "mesh @%s: axis '%s' is declared twice", mn, ax->name);
  if (ax->ndims < 1 || ax->ndims > mesh->rank)
    return tile_error(d, mesh->loc, "mesh @%s: axis '%s' spans %d torus dims; it needs 1 to %d", mn,
                      ax->name, ax->ndims, mesh->rank);
  int64_t product = 1;
  for (int i = 0; i < ax->ndims; i++) {
    int dim = ax->dims[i];
    if (dim < 0 || dim >= mesh->rank)
      return tile_error(d, mesh->loc,
                        "mesh @%s: axis '%s' names torus dim %d, but the torus has rank %d", mn,
                        ax->name, dim, mesh->rank);
    for (int j = 0; j < i; j++)
      if (ax->dims[j] == dim)
        return tile_error(d, mesh->loc, "mesh @%s: axis '%s' names torus dim %d twice", mn,
                          ax->name, dim);
    product = mul_sat(product, mesh->dims[dim]);
  }
  if (ax->size < 1)
    return tile_error(d, mesh->loc, "mesh @%s: axis '%s' has size %lld; sizes are positive", mn,
                      ax->name, (long long)ax->size);
  if (ax->ndims > 1 && ax->size != product)
    return tile_error(d, mesh->loc,
                      "mesh @%s: axis '%s' spans %d torus dims of %lld chips in all, so its "
                      "size must be %lld, not %lld",
                      mn, ax->name, ax->ndims, (long long)product, (long long)product,
                      (long long)ax->size);
  return true;
}

/* Each torus dim is covered by one axis spanning it (alone), or by axes of that dim
 * alone whose sizes multiply to it. */
static bool verify_coverage(const TileMesh *mesh, TileDiag *d) {
  bool ok = true;
  for (int dim = 0; dim < mesh->rank; dim++) {
    int count = 0;
    const char *spanning = NULL;
    char names[160] = "";
    size_t len = 0;
    int64_t product = 1;
    for (int k = 0; k < mesh->naxes; k++) {
      const TileMeshAxis *ax = &mesh->axes[k];
      for (int i = 0; i < ax->ndims; i++) {
        if (ax->dims[i] != dim) continue;
        if (len < sizeof names)
          len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", count ? ", " : "",
                                  ax->name);
        count++;
        if (ax->ndims > 1)
          spanning = ax->name;
        else
          product = mul_sat(product, ax->size);
      }
    }
    const char *mn = mesh->name;
    long long size = (long long)mesh->dims[dim];
    if (count == 0)
      ok = tile_error(d, mesh->loc, "mesh @%s: torus dim %d is not covered by any axis", mn, dim);
    else if (spanning && count > 1)
      ok = tile_error(d, mesh->loc,
                      "mesh @%s: axis '%s' spans several torus dims and cannot share dim %d "
                      "with other axes (%s)",
                      mn, spanning, dim, names);
    else if (!spanning && product != mesh->dims[dim])
      ok = tile_error(d, mesh->loc,
                      "mesh @%s: the axes on torus dim %d (%s) multiply to %lld, not its size %lld",
                      mn, dim, names, (long long)product, size);
  }
  return ok;
}

bool verify_meshes(const TileModule *m, TileDiag *d) {
  bool ok = true;
  for (const TileMesh *mesh = m->meshes; mesh && !tile_diag_full(d); mesh = mesh->next) {
    if (!mesh->name) {
      ok = tile_error(d, mesh->loc, "a mesh has no name");
      continue;
    }
    for (const TileMesh *prev = m->meshes; prev != mesh; prev = prev->next)
      if (prev->name && strcmp(prev->name, mesh->name) == 0) {
        ok = tile_error(d, mesh->loc, "mesh @%s is declared twice", mesh->name);
        break;
      }
    if (mesh->rank < 1 || mesh->rank > TILE_MAX_RANK) {
      ok = tile_error(d, mesh->loc, "mesh @%s: the torus has rank %d; it needs 1 to %d", mesh->name,
                      mesh->rank, TILE_MAX_RANK);
      continue;
    }
    bool dims_ok = true;
    for (int i = 0; i < mesh->rank; i++)
      if (mesh->dims[i] < 1 || mesh->dims[i] > (1 << 20))
        dims_ok = ok = tile_error(d, mesh->loc, "mesh @%s: torus dim %d has size %lld; sizes lie in "
                                  "1 to %d", mesh->name, i, (long long)mesh->dims[i], 1 << 20);
    if (!dims_ok) continue;
    if (mesh->naxes < 1 || mesh->naxes > TILE_MAX_MESH_AXES) {
      ok = tile_error(d, mesh->loc, "mesh @%s has %d axes; it needs 1 to %d", mesh->name,
                      mesh->naxes, TILE_MAX_MESH_AXES);
      continue;
    }
    bool axes_ok = true;
    for (int k = 0; k < mesh->naxes; k++)
      if (!verify_axis(mesh, k, d)) axes_ok = ok = false;
    if (axes_ok && !verify_coverage(mesh, d)) ok = false;
  }
  return ok;
}

/* ---- shardings ---- */

bool verify_sharding(const TileMesh *mesh, MeshWhy why, const TileAttr *s, const TileType *t,
                     TileDiag *d, TileLoc loc, const char *what) {
  if (s->kind != TILE_ATTR_ARRAY)
    return tile_error(d, loc, "sharding of %s must be an array with one entry per dim, like [-, x]",
                      what);
  if (t->kind != TILE_TY_TENSOR && t->kind != TILE_TY_BUFFER && t->kind != TILE_TY_SCALAR)
    return tile_error(d, loc, "%s has type %s, which cannot be sharded", what, TY(t));
  int rank = t->kind == TILE_TY_SCALAR ? 0 : t->rank;
  if (s->n != rank)
    return tile_error(d, loc, "sharding of %s has %d %s but its type %s has rank %d", what, s->n,
                      entries(s->n), TY(t), rank);
  bool used[TILE_MAX_MESH_AXES] = {0};
  bool ok = true, told_mesh = false;
  for (int i = 0; i < s->n; i++) {
    const TileAttr *e = &s->elems[i];
    if (e->kind == TILE_ATTR_NONE) continue;
    const TileAttr *names = e;
    int n = 1;
    if (e->kind == TILE_ATTR_TUPLE) {
      names = e->elems;
      n = e->n;
    }
    bool shape_ok = e->kind == TILE_ATTR_IDENT || (e->kind == TILE_ATTR_TUPLE && n > 0);
    for (int j = 0; shape_ok && j < n; j++) shape_ok = names[j].kind == TILE_ATTR_IDENT;
    if (!shape_ok) {
      ok = tile_error(d, loc, "sharding of %s: the entry for dim %d must be '-', an axis or a "
                      "tuple of axes", what, i);
      continue;
    }
    if (!mesh) {
      if (!told_mesh)
        ok = tile_error(d, loc, "sharding of %s needs a mesh: %s", what, verify_mesh_why(why));
      told_mesh = true;
      continue;
    }
    int64_t product = 1;
    bool axes_ok = true;
    for (int j = 0; j < n; j++) {
      const TileMeshAxis *ax = verify_mesh_axis(mesh, names[j].s);
      if (!ax) {
        axes_ok = ok = tile_error(d, loc, "sharding of %s names axis '%s', which mesh @%s does "
                                  "not have", what, names[j].s, mesh->name);
        continue;
      }
      int k = (int)(ax - mesh->axes);
      if (used[k])
        axes_ok = ok = tile_error(d, loc, "sharding of %s uses axis '%s' twice", what, ax->name);
      used[k] = true;
      product = mul_sat(product, ax->size);
    }
    if (axes_ok && t->dims[i] % product)
      ok = tile_error(d, loc, "sharding of %s: dim %d (size %lld) is not divisible by %lld, the "
                      "size of its axes", what, i, (long long)t->dims[i], (long long)product);
  }
  return ok;
}

bool rule_check_axes(RuleCtx *c, const TileMesh *mesh, int64_t *product) {
  const TileAttr *a = attr(c, "axes");
  if (a->n == 0) return rule_error(c, "axes must name at least one axis of mesh @%s", mesh->name);
  bool used[TILE_MAX_MESH_AXES] = {0};
  int64_t p = 1;
  for (int i = 0; i < a->n; i++) {
    const TileMeshAxis *ax = verify_mesh_axis(mesh, a->elems[i].s);
    if (!ax)
      return rule_error(c, "axis '%s' is not an axis of mesh @%s", a->elems[i].s, mesh->name);
    int k = (int)(ax - mesh->axes);
    if (used[k]) return rule_error(c, "axis '%s' is listed twice in axes", ax->name);
    used[k] = true;
    p = mul_sat(p, ax->size);
  }
  *product = p;
  return true;
}

bool rule_check_peer(RuleCtx *c) {
  const TileAttr *p = attr(c, "peer");
  if (p->kind != TILE_ATTR_TUPLE || p->n != 2 || p->elems[0].kind != TILE_ATTR_IDENT ||
      p->elems[1].kind != TILE_ATTR_INT)
    return rule_error(c, "peer must be a tuple (axis, offset), like (x, 1)");
  const TileMesh *mesh = rule_mesh(c);
  if (!mesh) return false;
  if (!verify_mesh_axis(mesh, p->elems[0].s))
    return rule_error(c, "peer axis '%s' is not an axis of mesh @%s", p->elems[0].s, mesh->name);
  return true;
}
