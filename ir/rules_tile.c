/* Type rules of collectives, tile ops on buffers, DMA and semaphores, and control
 * ops. Checks that need the enclosing region (yield and return against their op or
 * function, for's block arguments) live in verify.c, which sees the structure; the
 * rules here look at one op alone, so the builder can run them before linking it. */
#include <stdio.h>
#include <string.h>

#include "rules.h"

/* ---- collectives ---- */

bool rule_ALL_REDUCE(RuleCtx *c) {
  const TileMesh *mesh = rule_mesh(c);
  int64_t p;
  if (!rule_check_word(c, "kind", rule_reduce_kinds) || !mesh || !rule_check_axes(c, mesh, &p))
    return false;
  c->out[0] = *opnd_type(c, 0);
  return true;
}

bool rule_ALL_GATHER(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  const TileMesh *mesh = rule_mesh(c);
  int64_t p, dim = attr(c, "dim")->i;
  if (!rule_check_dim(c, "dim", dim, a->rank, a) || !mesh || !rule_check_axes(c, mesh, &p))
    return false;
  TileType r = *a;
  if (__builtin_mul_overflow(a->dims[dim], p, &r.dims[dim]))
    return rule_error(c, "gathered dim %lld is too large", (long long)dim);
  c->out[0] = r;
  return true;
}

/* Splits dim of r over p chips, which must divide it exactly. */
static bool split_dim(RuleCtx *c, TileType *r, int64_t dim, int64_t p) {
  if (r->dims[dim] % p)
    return rule_error(c, "dim %lld (size %lld) is not divisible by %lld, the size of its axes",
                      (long long)dim, (long long)r->dims[dim], (long long)p);
  r->dims[dim] /= p;
  return true;
}

bool rule_REDUCE_SCATTER(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  const TileMesh *mesh = rule_mesh(c);
  int64_t p, dim = attr(c, "dim")->i;
  if (!rule_check_word(c, "kind", rule_reduce_kinds) ||
      !rule_check_dim(c, "dim", dim, a->rank, a) || !mesh || !rule_check_axes(c, mesh, &p))
    return false;
  TileType r = *a;
  if (!split_dim(c, &r, dim, p)) return false;
  c->out[0] = r;
  return true;
}

bool rule_ALL_TO_ALL(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  const TileMesh *mesh = rule_mesh(c);
  int64_t p, sd = attr(c, "split_dim")->i, cd = attr(c, "concat_dim")->i;
  if (!rule_check_dim(c, "split_dim", sd, a->rank, a) ||
      !rule_check_dim(c, "concat_dim", cd, a->rank, a) || !mesh || !rule_check_axes(c, mesh, &p))
    return false;
  TileType r = *a;
  if (!split_dim(c, &r, sd, p)) return false;
  if (__builtin_mul_overflow(r.dims[cd], p, &r.dims[cd]))
    return rule_error(c, "concatenated dim %lld is too large", (long long)cd);
  c->out[0] = r;
  return true;
}

/* The axis of mesh that the op's `axis` attribute names; NULL (reported) for none. */
static const TileMeshAxis *named_axis(RuleCtx *c, const TileMesh *mesh) {
  const char *axis = attr(c, "axis")->s;
  const TileMeshAxis *a = verify_mesh_axis(mesh, axis);
  if (!a) rule_error(c, "axis '%s' is not an axis of mesh @%s", axis, mesh->name);
  return a;
}

bool rule_PERMUTE(RuleCtx *c) {
  const TileMesh *mesh = rule_mesh(c);
  const TileMeshAxis *a = mesh ? named_axis(c, mesh) : NULL;
  if (!a) return false;
  const char *axis = attr(c, "axis")->s;
  const TileAttr *cyc = tile_attr_get(&c->op->attrs, "cycle");
  if (cyc) {
    const TileMeshAxis *b = verify_mesh_axis(mesh, cyc->s);
    if (!b) return rule_error(c, "cycle axis '%s' is not an axis of mesh @%s", cyc->s, mesh->name);
    if (b == a) return rule_error(c, "cycle axis '%s' is the permute's axis", cyc->s);
    if (tile_mesh_cycle_pos(a->size, b->size, 0, 0) < 0)
      return rule_error(c, "no cycle through %lld x %lld chips moves one step at a time: "
                        "one of axes '%s' and '%s' needs an even size", (long long)a->size,
                        (long long)b->size, axis, cyc->s);
  }
  const TileType *t = opnd_type(c, 0);
  int64_t halves = 0;
  if (tile_attr_get_int(&c->op->attrs, "halves", &halves) && halves != 0) {
    if (halves != 1) return rule_error(c, "halves must be 0 or 1, got %lld", (long long)halves);
    if (t->rank < 1 || t->dims[0] % 2)
      return rule_error(c, "halves = 1 needs an even dim 0, got %s", TY(t));
  }
  c->out[0] = *t;
  return true;
}

/* The chips on the axis a ring op names (one of its mesh's axes), in *p. */
static bool ring_axis(RuleCtx *c, int64_t *p) {
  const TileMesh *mesh = rule_mesh(c);
  const TileMeshAxis *a = mesh ? named_axis(c, mesh) : NULL;
  if (!a) return false;
  *p = a->size;
  return true;
}

bool rule_RING_SLICE(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  int64_t p = 0, step = attr(c, "step")->i;
  if (!ring_axis(c, &p)) return false;
  if (step < 0 || step >= p)
    return rule_error(c, "step %lld is not a step of a ring of %lld chips (0 .. %lld)",
                      (long long)step, (long long)p, (long long)(p - 1));
  if (a->rank < 1) return rule_error(c, "needs a tensor of rank 1 or more, got %s", TY(a));
  int64_t dim = attr_int_or(c, "dim", 0);
  if (!rule_check_dim(c, "dim", dim, a->rank, a)) return false;
  TileType r = *a;
  if (!split_dim(c, &r, dim, p)) return false;
  c->out[0] = r;
  return true;
}

bool rule_RING_CONCAT(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  int64_t p = 0;
  if (!ring_axis(c, &p)) return false;
  if (c->op->nopnd != p)
    return rule_error(c, "takes one operand per chip on its axis: %lld, got %d", (long long)p,
                      c->op->nopnd);
  if (a->rank < 1) return rule_error(c, "needs tensors of rank 1 or more, got %s", TY(a));
  int64_t dim = attr_int_or(c, "dim", 0);
  if (!rule_check_dim(c, "dim", dim, a->rank, a)) return false;
  for (int k = 1; k < c->op->nopnd; k++)
    if (!tile_type_eq(opnd_type(c, k), a))
      return rule_error_at(c, opnd_loc(c, k), "operand %d %s must have the type of operand 1 %s",
                           k + 1, TY(opnd_type(c, k)), TY(a));
  TileType r = *a;
  if (__builtin_mul_overflow(a->dims[dim], p, &r.dims[dim]))
    return rule_error(c, "the joined dim %lld is too large", (long long)dim);
  c->out[0] = r;
  return true;
}

/* ---- tile ops on buffers ---- */

/* load and store touch only the core's own memories; hbm is reached by DMA. */
static bool check_local(RuleCtx *c, int k) {
  const TileType *b = opnd_type(c, k);
  if (b->space == TILE_SPACE_VMEM || b->space == TILE_SPACE_SMEM) return true;
  return rule_error(c, "works only on vmem or smem buffers, got %s (copy it with dma_start)",
                    TY(b));
}

/* Checks that a block of the given shape, placed at the indices of access operand
 * k, lies inside the buffer: it covers the buffer's trailing dims, and where an
 * index is a constant the block must end before the dim does. */
static bool check_fits(RuleCtx *c, int k, int rank, const int64_t *dims, const char *what) {
  const TileUse *u = &c->op->opnd[k];
  const TileType *b = &u->v->type;
  if (rank > b->rank)
    return rule_error(c, "%s has rank %d, more than the rank of operand %d %s", what, rank, k + 1,
                      TY(b));
  for (int j = 0; j < rank; j++) {
    int bd = b->rank - rank + j;
    const TileIndex *ix = &u->idx[bd];
    int64_t start = ix->v ? 0 : ix->c;
    if (dims[j] > b->dims[bd] - start) {
      if (ix->v)
        return rule_error(c, "%s does not fit in dim %d (size %lld) of operand %d %s", what, bd,
                          (long long)b->dims[bd], k + 1, TY(b));
      return rule_error(c, "%s at index %lld overruns dim %d (size %lld) of operand %d %s", what,
                        (long long)start, bd, (long long)b->dims[bd], k + 1, TY(b));
    }
  }
  return true;
}

/* A tile moved by load or store: a tensor or scalar of the buffer's element type
 * covering its trailing dims. */
static bool check_tile(RuleCtx *c, const TileType *tile, int k) {
  const TileType *b = opnd_type(c, k);
  if (!type_is_value(tile))
    return rule_error(c, "tile must be a tensor or scalar, got %s", TY(tile));
  if (tile->elem != b->elem)
    return rule_error(c, "tile %s must have the element type of operand %d %s", TY(tile), k + 1,
                      TY(b));
  char what[220];
  snprintf(what, sizeof what, "tile %s", TY(tile));
  return check_local(c, k) && check_fits(c, k, tile->rank, tile->dims, what);
}

bool rule_ALLOC(RuleCtx *c) {
  const TileType *r = rule_need_declared(c, 0);
  if (!r) return false;
  if (r->kind != TILE_TY_BUFFER || (r->space != TILE_SPACE_VMEM && r->space != TILE_SPACE_SMEM))
    return rule_error(c, "makes only vmem or smem buffers, got %s", TY(r));
  c->out[0] = *r;
  c->inferred = false;
  return true;
}

bool rule_LOAD(RuleCtx *c) {
  const TileType *r = rule_need_declared(c, 0);
  if (!r || !check_tile(c, r, 0)) return false;
  c->out[0] = *r;
  c->inferred = false;
  return true;
}

bool rule_STORE(RuleCtx *c) { return check_tile(c, opnd_type(c, 0), 1); }

bool rule_TILE_MATMUL(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0), *b = opnd_type(c, 1), *acc = opnd_type(c, 2);
  if (a->rank != 2 || b->rank != 2 || a->dims[1] != b->dims[0] || a->elem != b->elem)
    return rule_error(c, "needs a [M, K] and b [K, N] of one element type, got %s and %s", TY(a),
                      TY(b));
  TileType want = tile_type_tensor(TILE_ELEM_F32, 2, (int64_t[]){a->dims[0], b->dims[1]});
  if (!tile_type_eq(acc, &want))
    return rule_error(c, "accumulator must be %s, got %s", TY(&want), TY(acc));
  c->out[0] = want;
  return true;
}

/* ---- DMA and semaphores ---- */

bool rule_DMA_START(RuleCtx *c) {
  const TileType *src = opnd_type(c, 0), *dst = opnd_type(c, 1);
  const TileAttr *shape = attr(c, "shape");
  if (src->elem != dst->elem)
    return rule_error(c, "source %s and destination %s must have one element type", TY(src),
                      TY(dst));
  if (shape->n < 1 || shape->n > TILE_MAX_RANK)
    return rule_error(c, "shape must have 1 to %d entries, got %d", TILE_MAX_RANK, shape->n);
  int64_t dims[TILE_MAX_RANK];
  for (int i = 0; i < shape->n; i++) {
    dims[i] = shape->elems[i].i;
    if (dims[i] < 1)
      return rule_error(c, "shape dim %d is %lld; sizes are positive", i, (long long)dims[i]);
  }
  char what[200];
  size_t k = (size_t)snprintf(what, sizeof what, "block ");
  for (int i = 0; i < shape->n && k < sizeof what; i++)
    k += (size_t)snprintf(what + k, sizeof what - k, "%s%lld", i ? "x" : "", (long long)dims[i]);
  if (!check_fits(c, 0, shape->n, dims, what) || !check_fits(c, 1, shape->n, dims, what))
    return false;
  if (attr(c, "peer") && !rule_check_peer(c)) return false;
  c->out[0] = tile_type_token();
  return true;
}

bool rule_DMA_WAIT(RuleCtx *c) { return true; }

bool rule_SEMAPHORE(RuleCtx *c) {
  c->out[0] = tile_type_sem();
  return true;
}

static bool check_count(RuleCtx *c) {
  int64_t n = attr_int_or(c, "count", 1);
  if (n < 1) return rule_error(c, "count must be 1 or more, got %lld", (long long)n);
  return true;
}

bool rule_SEM_SIGNAL(RuleCtx *c) {
  return check_count(c) && (!attr(c, "peer") || rule_check_peer(c));
}

bool rule_SEM_WAIT(RuleCtx *c) { return check_count(c); }

/* ---- control ---- */

bool rule_FOR(RuleCtx *c) {
  int64_t lo = attr(c, "lower")->i, hi = attr(c, "upper")->i, step = attr(c, "step")->i;
  if (step < 1) return rule_error(c, "step must be 1 or more, got %lld", (long long)step);
  if (lo > hi)
    return rule_error(c, "lower bound %lld is above the upper bound %lld", (long long)lo,
                      (long long)hi);
  /* The induction variable is an i32. */
  if (lo < INT32_MIN || hi > INT32_MAX)
    return rule_error(c, "bounds %lld to %lld do not fit the i32 induction variable", (long long)lo,
                      (long long)hi);
  for (int i = 0; i < c->op->nopnd; i++) c->out[i] = *opnd_type(c, i);
  return true;
}

bool rule_IF(RuleCtx *c) {
  const TileType *cond = opnd_type(c, 0);
  if (cond->elem != TILE_ELEM_I1) return rule_error(c, "condition must be i1, got %s", TY(cond));
  for (int i = 0; i < c->op->nres; i++) {
    const TileType *r = rule_need_declared(c, i);
    if (!r) return false;
    if (!type_is_value(r))
      return rule_error(c, "result %d must be a tensor or scalar, got %s", i + 1, TY(r));
    c->out[i] = *r;
  }
  c->inferred = false;
  return true;
}

bool rule_YIELD(RuleCtx *c) { return true; }
bool rule_RETURN(RuleCtx *c) { return true; }

bool rule_CALL(RuleCtx *c) {
  const char *name = attr(c, "callee")->s;
  const TileFunc *f = tile_module_find_func(c->m, name);
  if (!f) return rule_error(c, "callee @%s is not a function of this module", name);
  if (f->is_kernel) return rule_error(c, "callee @%s is a kernel; only a func can be called", name);
  int nargs = f->body ? f->body->nargs : 0;
  if (c->op->nopnd != nargs)
    return rule_error(c, "passes %d arguments but @%s takes %d", c->op->nopnd, name, nargs);
  for (int i = 0; i < nargs; i++) {
    const TileType *want = &f->body->args[i]->type, *got = opnd_type(c, i);
    if (!tile_type_eq(want, got))
      return rule_error_at(c, opnd_loc(c, i), "argument %d has type %s but @%s takes %s", i + 1,
                           TY(got), name, TY(want));
  }
  if (c->op->nres != f->nret)
    return rule_error(c, "has %d results but @%s returns %d", c->op->nres, name, f->nret);
  for (int i = 0; i < f->nret; i++) c->out[i] = f->ret[i];
  return true;
}
