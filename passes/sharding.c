/* Shardings as data (passes/sharding.h): parsing and printing `shard` attributes,
 * per-chip types, and the dim maps that say how each tensor op carries the
 * dimensions of its operands to its result. */
#include "sharding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/builder.h"
#include "tile/ops.h"

const TileMesh *shard_func_mesh(const TileModule *m, const TileFunc *f) {
  const TileAttr *a = tile_attr_get(&f->attrs, "mesh");
  if (a && a->kind == TILE_ATTR_SYMBOL) return tile_module_find_mesh(m, a->s);
  return m->meshes && !m->meshes->next ? m->meshes : NULL;
}

Shard shard_replicated(int rank) {
  Shard s;
  memset(&s, 0, sizeof s);
  s.rank = (uint8_t)rank;
  return s;
}

static int axis_index(const TileMesh *mesh, const char *name) {
  for (int i = 0; i < mesh->naxes; i++)
    if (name && strcmp(mesh->axes[i].name, name) == 0) return i;
  return -1;
}

static bool add_axis(const TileMesh *mesh, Shard *s, int d, const TileAttr *a) {
  int k = a->kind == TILE_ATTR_IDENT ? axis_index(mesh, a->s) : -1;
  if (k < 0 || s->n[d] >= TILE_MAX_MESH_AXES) return false;
  /* An axis of one chip splits nothing: leaving it out keeps such a dim replicated, so
   * no collective is ever made over it. */
  if (mesh->axes[k].size == 1) return true;
  s->ax[d][s->n[d]++] = (uint8_t)k;
  return true;
}

bool shard_from_attr(const TileMesh *mesh, const TileAttr *a, int rank, Shard *out) {
  if (!mesh || !a || a->kind != TILE_ATTR_ARRAY || a->n != rank || rank > TILE_MAX_RANK)
    return false;
  Shard s = shard_replicated(rank);
  for (int d = 0; d < rank; d++) {
    const TileAttr *e = &a->elems[d];
    if (e->kind == TILE_ATTR_NONE) continue;
    if (e->kind == TILE_ATTR_TUPLE) {
      for (int j = 0; j < e->n; j++)
        if (!add_axis(mesh, &s, d, &e->elems[j])) return false;
    } else if (!add_axis(mesh, &s, d, e)) {
      return false;
    }
  }
  *out = s;
  return true;
}

TileAttr shard_to_attr(TileModule *m, const TileMesh *mesh, const Shard *s) {
  TileAttr dims[TILE_MAX_RANK];
  for (int d = 0; d < s->rank; d++) {
    TileAttr ax[TILE_MAX_MESH_AXES];
    for (int j = 0; j < s->n[d]; j++) ax[j] = tile_attr_ident(m, mesh->axes[s->ax[d][j]].name);
    dims[d] = s->n[d] == 0   ? tile_attr_none()
              : s->n[d] == 1 ? ax[0]
                             : tile_attr_tuple(m, s->n[d], ax);
  }
  return tile_attr_array(m, s->rank, dims);
}

bool shard_dim_eq(const Shard *a, int da, const Shard *b, int db) {
  return a->n[da] == b->n[db] && memcmp(a->ax[da], b->ax[db], a->n[da]) == 0;
}

bool shard_eq(const Shard *a, const Shard *b) {
  if (a->rank != b->rank) return false;
  for (int d = 0; d < a->rank; d++)
    if (!shard_dim_eq(a, d, b, d)) return false;
  return true;
}

bool shard_is_replicated(const Shard *s) { return shard_used(s) == 0; }

uint32_t shard_dim_mask(const Shard *s, int d) {
  uint32_t m = 0;
  for (int j = 0; j < s->n[d]; j++) m |= 1u << s->ax[d][j];
  return m;
}

uint32_t shard_used(const Shard *s) {
  uint32_t m = 0;
  for (int d = 0; d < s->rank; d++) m |= shard_dim_mask(s, d);
  return m;
}

void shard_copy_dim(Shard *dst, int dd, const Shard *src, int ds) {
  dst->n[dd] = src->n[ds];
  memcpy(dst->ax[dd], src->ax[ds], src->n[ds]);
}

bool shard_dim_divides(const TileMesh *mesh, const Shard *s, int d, int64_t size) {
  return size % shard_parts(mesh, s, d) == 0;
}

int64_t shard_parts(const TileMesh *mesh, const Shard *s, int d) {
  int64_t p = 1;
  for (int j = 0; j < s->n[d]; j++) p *= mesh->axes[s->ax[d][j]].size;
  return p;
}

TileType shard_local_type(const TileMesh *mesh, const Shard *s, TileType t) {
  if (t.kind != TILE_TY_TENSOR) return t;
  for (int d = 0; d < t.rank && d < s->rank; d++) t.dims[d] /= shard_parts(mesh, s, d);
  return t;
}

void shard_format(const TileMesh *mesh, const Shard *s, char *buf, size_t size) {
  size_t at = 0;
#define PUT(...)                                                                  \
  do {                                                                            \
    int w = snprintf(buf + at, at < size ? size - at : 0, __VA_ARGS__);           \
    if (w > 0) at += (size_t)w;                                                   \
  } while (0)
  PUT("[");
  for (int d = 0; d < s->rank; d++) {
    PUT("%s", d ? ", " : "");
    if (s->n[d] == 0) PUT("-");
    if (s->n[d] > 1) PUT("(");
    for (int j = 0; j < s->n[d]; j++) PUT("%s%s", j ? ", " : "", mesh->axes[s->ax[d][j]].name);
    if (s->n[d] > 1) PUT(")");
  }
  PUT("]");
#undef PUT
}

/* ---- dim maps ---- */

static const TileType *opnd_type(const TileOp *op, int k) { return &op->opnd[k].v->type; }

static bool identity(const TileOp *op, int k, int *map) {
  int r = opnd_type(op, k)->rank;
  if (r != op->res[0]->type.rank) return false;
  for (int i = 0; i < r; i++) map[i] = i;
  return true;
}

static bool in_list(const TileAttr *a, int64_t d, int *pos) {
  for (int i = 0; a && i < a->n; i++)
    if (a->elems[i].i == d) {
      if (pos) *pos = i;
      return true;
    }
  return false;
}

static bool map_dot_general(const TileOp *op, int k, int *map) {
  const TileAttr *lb = tile_attr_get(&op->attrs, "lhs_batch");
  const TileAttr *rb = tile_attr_get(&op->attrs, "rhs_batch");
  const TileAttr *lc = tile_attr_get(&op->attrs, "lhs_contract");
  const TileAttr *rc = tile_attr_get(&op->attrs, "rhs_contract");
  const TileAttr *batch = k == 0 ? lb : rb, *contract = k == 0 ? lc : rc;
  int lrank = opnd_type(op, 0)->rank;
  int next = lb->n + (k == 0 ? 0 : lrank - lb->n - lc->n); /* first free result dim */
  for (int i = 0; i < opnd_type(op, k)->rank; i++) {
    int pos;
    if (in_list(batch, i, &pos)) map[i] = pos;
    else if (in_list(contract, i, NULL)) map[i] = -1;
    else map[i] = next++;
  }
  return true;
}

static bool map_reduce(const TileOp *op, int *map, const TileAttr *dims, int64_t one) {
  int next = 0;
  for (int i = 0; i < opnd_type(op, 0)->rank; i++) {
    bool gone = dims ? in_list(dims, i, NULL) : i == one;
    map[i] = gone ? -1 : next++;
  }
  return true;
}

/* Reshape: walk both shapes in row-major order, cutting them into groups of dims
 * whose products agree ([8, 4096] -> [8, 1, 32, 128] has the groups {8}={8} and
 * {4096}={1, 32, 128}). Within a group the major dim of the operand (its first dim
 * larger than one) maps to the major dim of the result: a block of p consecutive
 * slices of one is a block of the other whenever p divides both sizes (callers check
 * that with shard_dim_divides), which is how heads split over chips survive a
 * [tokens, heads * dim] <-> [tokens, heads, dim] reshape. Minor dims of a group have no
 * block counterpart. */
static int major_dim(const TileType *t, int from, int to) {
  for (int i = from; i < to; i++)
    if (t->dims[i] > 1) return i;
  return -1;
}

static bool map_reshape(const TileOp *op, int *map) {
  const TileType *x = opnd_type(op, 0), *y = &op->res[0]->type;
  for (int i = 0; i < x->rank; i++) map[i] = -1;
  int i = 0, j = 0;
  while (i < x->rank && j < y->rank) {
    int i0 = i, j0 = j;
    int64_t px = x->dims[i++], py = y->dims[j++];
    while (px != py) {
      if (px < py && i < x->rank) px *= x->dims[i++];
      else if (py < px && j < y->rank) py *= y->dims[j++];
      else return true; /* the verifier guarantees equal products; stay safe */
    }
    int a = major_dim(x, i0, i), b = major_dim(y, j0, j);
    if (a >= 0 && b >= 0) map[a] = b;
  }
  return true;
}

bool shard_dim_map(const TileOp *op, int k, int *map) {
  if (op->nres != 1 || op->res[0]->type.kind != TILE_TY_TENSOR) return false;
  if (opnd_type(op, k)->kind != TILE_TY_TENSOR) return false;
  const TileType *a = opnd_type(op, k), *r = &op->res[0]->type;
  switch (op->kind) {
  case TILE_OP_MATMUL:
    for (int i = 0; i < a->rank; i++) map[i] = i;
    if (k == 0) map[a->rank - 1] = -1;
    else {
      map[a->rank - 2] = -1;
      map[a->rank - 1] = r->rank - 1;
    }
    return true;
  case TILE_OP_DOT_GENERAL: return map_dot_general(op, k, map);
  case TILE_OP_REDUCE: return map_reduce(op, map, tile_attr_get(&op->attrs, "dims"), -1);
  case TILE_OP_ARGMAX: return map_reduce(op, map, NULL, tile_attr_get(&op->attrs, "dim")->i);
  case TILE_OP_BROADCAST: {
    const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
    for (int i = 0; i < a->rank; i++) {
      int j = (int)dims->elems[i].i;
      map[i] = a->dims[i] == r->dims[j] ? j : -1;
    }
    return true;
  }
  case TILE_OP_TRANSPOSE: {
    const TileAttr *perm = tile_attr_get(&op->attrs, "perm");
    for (int j = 0; j < r->rank; j++) map[perm->elems[j].i] = j;
    return true;
  }
  case TILE_OP_RESHAPE: return map_reshape(op, map);
  case TILE_OP_SLICE: {
    const TileAttr *start = tile_attr_get(&op->attrs, "start");
    const TileAttr *stride = tile_attr_get(&op->attrs, "stride");
    for (int i = 0; i < a->rank; i++) {
      bool whole = start->elems[i].i == 0 && r->dims[i] == a->dims[i] &&
                   (!stride || stride->elems[i].i == 1);
      map[i] = whole ? i : -1;
    }
    return true;
  }
  case TILE_OP_CONCATENATE:
    identity(op, k, map);
    map[tile_attr_get(&op->attrs, "dim")->i] = -1;
    return true;
  case TILE_OP_GATHER: {
    int axis = (int)tile_attr_get(&op->attrs, "axis")->i;
    int nidx = opnd_type(op, 1)->rank;
    for (int i = 0; i < a->rank; i++)
      map[i] = k == 1 ? i : i == axis ? -1 : nidx + (i < axis ? i : i - 1);
    return true;
  }
  case TILE_OP_LAYERNORM:
  case TILE_OP_RMSNORM:
    if (k == 0) return identity(op, k, map);
    map[0] = r->rank - 1;
    return true;
  case TILE_OP_ROPE:
    if (k == 0) return identity(op, k, map);
    map[0] = r->rank - 2;
    map[1] = -1;
    return true;
  case TILE_OP_ATTENTION:
    if (k == 0) return identity(op, k, map);
    map[0] = 0;
    /* Heads: with G = H / Hkv query heads per key/value head, a block of H/p query
     * heads reads exactly the block of Hkv/p key/value heads, whenever p divides Hkv
     * (callers check; a single shared head, Hkv = 1, is never split). */
    map[1] = 1;
    map[2] = -1;
    map[3] = 3;
    return true;
  case TILE_OP_ALL_REDUCE: return identity(op, k, map);
  default: break;
  }
  /* Elementwise ops, convert and the shape-keeping composites. */
  const TileOpInfo *info = &tile_op_info[op->kind];
  if (info->family != TILE_FAMILY_TENSOR || op->nopnd == 0) return false;
  if (a->rank != r->rank || memcmp(a->dims, r->dims, sizeof(int64_t) * (size_t)a->rank) != 0)
    return false;
  return identity(op, k, map);
}

int shard_contract_partner(const TileOp *op, int k, int i) {
  if (op->kind == TILE_OP_MATMUL) {
    int ra = opnd_type(op, 0)->rank, rb = opnd_type(op, 1)->rank;
    if (k == 0 && i == ra - 1) return rb - 2;
    if (k == 1 && i == rb - 2) return ra - 1;
    return -1;
  }
  if (op->kind != TILE_OP_DOT_GENERAL) return -1;
  const TileAttr *mine = tile_attr_get(&op->attrs, k == 0 ? "lhs_contract" : "rhs_contract");
  const TileAttr *other = tile_attr_get(&op->attrs, k == 0 ? "rhs_contract" : "lhs_contract");
  int pos;
  return in_list(mine, i, &pos) ? (int)other->elems[pos].i : -1;
}

/* ---- values to states ---- */

static size_t slot_of(const void *p, size_t cap) { return tile_hash_ptr(p) & (cap - 1); }

void shard_map_free(ShardMap *mp) {
  free(mp->keys);
  free(mp->vals);
  memset(mp, 0, sizeof *mp);
}

int shard_map_get(const ShardMap *mp, const TileValue *v) {
  if (!mp->cap) return -1;
  for (size_t i = slot_of(v, mp->cap);; i = (i + 1) & (mp->cap - 1)) {
    if (mp->keys[i] == v) return mp->vals[i];
    if (!mp->keys[i]) return -1;
  }
}

bool shard_map_put(ShardMap *mp, const TileValue *v, int idx) {
  if (2 * (mp->n + 1) > mp->cap) {
    size_t cap = mp->cap ? 2 * mp->cap : 64;
    const TileValue **keys = calloc(cap, sizeof *keys);
    int *vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
      free(keys);
      free(vals);
      return false;
    }
    for (size_t i = 0; i < mp->cap; i++) {
      if (!mp->keys[i]) continue;
      size_t j = slot_of(mp->keys[i], cap);
      while (keys[j]) j = (j + 1) & (cap - 1);
      keys[j] = mp->keys[i];
      vals[j] = mp->vals[i];
    }
    free(mp->keys);
    free(mp->vals);
    mp->keys = keys;
    mp->vals = vals;
    mp->cap = cap;
  }
  size_t i = slot_of(v, mp->cap);
  while (mp->keys[i] && mp->keys[i] != v) i = (i + 1) & (mp->cap - 1);
  if (!mp->keys[i]) mp->n++;
  mp->keys[i] = v;
  mp->vals[i] = idx;
  return true;
}
