/* spmd: rewrite each function on a mesh into the program one chip runs on its shard.
 *
 * Needs a verified module whose values carry shardings (run shard_prop first; a
 * value without `shard` counts as replicated). Walks the body in order and keeps,
 * per tensor value, the layout its per-chip value has now: a sharding, plus the
 * mesh axes over which it is still a partial result (a matmul or reduce that
 * contracted a split dim leaves each chip its part of a sum, max, ...).
 *
 * Each op states the layout it wants of its operands for the sharding of its
 * result: dims that map to result dims (shard_dim_map) take the result's split;
 * a contracted dim keeps the split one operand already has (the lhs's first, else
 * the rhs's), so a matmul of column- and row-split weights contracts locally and
 * its result is partial over those axes. A result dim the op cannot produce split
 * (the dim of a softmax, the last dim of a norm, a sliced dim, a dim reshape
 * cannot map, the positions and features of attention) is computed replicated.
 * Operands are brought to the wanted layout by inserting collectives before the op
 * (reshard): a partial value is reduced first, with reduce_scatter onto a dim the
 * target splits over exactly those axes, else all_reduce; then axes that move from
 * one dim to another go by all_to_all; dims split differently are all_gathered;
 * dims the target splits but the value has whole are cut to this chip's block by a
 * reduce_scatter with kind max (every chip holds the same data, so the max is that
 * data: the IR has no op that reads the chip's coordinate, and this cut needs none).
 * Returned values are brought to their declared sharding, fully reduced.
 *
 * Guarantees: each func on a mesh keeps its name, parameters and mesh attribute;
 * every tensor type in its body is per-chip (each split dim divided by the product
 * of its axes' sizes); parameter i is this chip's shard of global parameter i, and
 * result i is its shard of global result i, under the shardings shard_prop gave
 * them (`tilec --emit=sharded` prints them); no `shard` attribute remains in it.
 * The user's all_reduce ops in the global program (a global value is already
 * whole) are kept only where a partial sum needs them. Not yet handled, each a
 * clear error: `for`, `if` and `call` in a function on a mesh, and the other
 * collectives in the input (they are per-chip already). Ops with several results
 * (topk) run replicated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sharding.h"
#include "tile/builder.h"
#include "tile/pass.h"
#include "tile/rewrite.h"
#include "tile/verify.h"

typedef struct Layout {
  TileValue *v;
  Shard cur, decl;      /* what the per-chip value holds; what the program declared */
  TileType global;      /* the value's type in the global program */
  uint32_t partial;     /* axes over which it is a partial result */
  const char *kind;     /* how partials combine: add, mul, max, min */
} Layout;

typedef struct Spmd {
  TileModule *m;
  TileDiag *d;
  const TileMesh *mesh;
  TileFunc *f;
  TileBuilder b;
  TileNameSet names;
  Layout *lay;
  int n, cap;
  ShardMap map;
  TileOp *op; /* the op being rewritten */
  /* Values already brought to a layout: a value that several ops read in the same
   * layout (x by the gate and up projections) gets one collective, not one per use. */
  struct Reshard {
    const TileValue *from;
    Shard to;
    TileValue *res;
  } *done;
  int ndone, capdone;
  bool failed;
  bool internal; /* the failure reported was a compiler bug */
} Spmd;

static Layout *layout(Spmd *s, const TileValue *v) {
  int i = shard_map_get(&s->map, v);
  return i < 0 ? NULL : &s->lay[i];
}

static Layout *track(Spmd *s, TileValue *v, const Shard *decl) {
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    Layout *l = realloc(s->lay, sizeof *l * (size_t)cap);
    if (!l) return NULL;
    s->lay = l;
    s->cap = cap;
  }
  Layout *l = &s->lay[s->n];
  memset(l, 0, sizeof *l);
  l->v = v;
  l->decl = l->cur = *decl;
  l->global = v->type;
  if (!shard_map_put(&s->map, v, s->n)) return NULL;
  s->n++;
  return l;
}

/* Reports the first failure only; one whose message starts "internal error" is a
 * compiler bug (TILE_PASS_INTERNAL), any other a program the pass cannot take. */
static bool fail(Spmd *s, TileLoc loc, const char *fmt, const char *what) {
  if (!s->failed) {
    tile_error(s->d, loc, fmt, what);
    s->internal = strncmp(fmt, "internal error", strlen("internal error")) == 0;
  }
  s->failed = true;
  return false;
}

static TileAttr axes_attr(Spmd *s, int n, const uint8_t *ax) {
  TileAttr a[TILE_MAX_MESH_AXES];
  for (int i = 0; i < n; i++) a[i] = tile_attr_ident(s->m, s->mesh->axes[ax[i]].name);
  return tile_attr_array(s->m, n, a);
}

static int mask_axes(const Spmd *s, uint32_t mask, uint8_t *ax) {
  int n = 0;
  for (int i = 0; i < s->mesh->naxes; i++)
    if (mask & (1u << i)) ax[n++] = (uint8_t)i;
  return n;
}

/* Builds one collective on v; its layout is v's with `next` in place. */
static Layout *collective(Spmd *s, Layout *v, TileOpKind kind, int nattr,
                          const TileNamedAttr *attrs, const char *sfx, const Shard *next,
                          uint32_t partial) {
  Shard nx = *next; /* next may point into the layouts, which track can move */
  TileUse use = {.v = v->v};
  TileOp *op = tile_build_op(&s->b, kind, 1, &use, nattr, attrs, 1, NULL);
  if (!op) {
    fail(s, s->op->loc, "internal error: spmd: cannot build a collective: %s", s->b.diag.last);
    return NULL;
  }
  op->loc = s->op->loc;
  TileValue *r = op->res[0];
  r->name = tile_names_fresh(&s->names, v->v->name, sfx);
  r->loc = s->op->loc;
  Shard decl = v->decl;
  const char *pk = v->kind;
  TileType global = v->global;
  Layout *l = track(s, r, &decl);
  if (!l) return NULL;
  l->global = global;
  l->cur = nx;
  l->partial = partial;
  l->kind = pk;
  return l;
}

/* Whether dim d of a is split over b's axes of dim d and then maybe more. */
static bool dim_starts_with(const Shard *a, const Shard *b, int d) {
  return a->n[d] >= b->n[d] && memcmp(a->ax[d], b->ax[d], b->n[d]) == 0;
}

/* Reduces the partial axes of v: onto a dim t splits over some of them after the
 * axes v already splits it over (reduce_scatter: the chip's block of its local rows
 * is its position on the new axes, the inner ones of the dim), the rest everywhere
 * (all_reduce). */
static Layout *reduce_partial(Spmd *s, Layout *v, const Shard *t) {
  for (int d = 0; d < t->rank && v && v->partial; d++) {
    int have = v->cur.n[d];
    if (t->n[d] <= have || !dim_starts_with(t, &v->cur, d)) continue;
    uint32_t want = 0;
    for (int j = have; j < t->n[d]; j++) want |= 1u << t->ax[d][j];
    if ((want & ~v->partial) != 0) continue;
    Shard next = v->cur;
    shard_copy_dim(&next, d, t, d);
    TileNamedAttr at[3] = {{"kind", tile_attr_ident(s->m, v->kind)},
                           {"dim", tile_attr_int(d)},
                           {"axes", axes_attr(s, t->n[d] - have, t->ax[d] + have)}};
    v = collective(s, v, TILE_OP_REDUCE_SCATTER, 3, at, "rs", &next, v->partial & ~want);
  }
  if (v && v->partial) {
    uint8_t ax[TILE_MAX_MESH_AXES];
    int n = mask_axes(s, v->partial, ax);
    TileNamedAttr at[2] = {{"kind", tile_attr_ident(s->m, v->kind)},
                           {"axes", axes_attr(s, n, ax)}};
    v = collective(s, v, TILE_OP_ALL_REDUCE, 2, at, "ar", &v->cur, 0);
  }
  return v;
}

/* Brings v to layout t (no partial axes) with new collectives. */
static TileValue *reshard_new(Spmd *s, Layout *v, const Shard *t) {
  v = reduce_partial(s, v, t);
  /* Axes that move whole from dim d to a dim e that is whole: all_to_all. */
  for (int d = 0; v && d < t->rank; d++) {
    if (!v->cur.n[d] || shard_dim_eq(&v->cur, d, t, d)) continue;
    for (int e = 0; e < t->rank; e++) {
      if (e == d || v->cur.n[e] || !shard_dim_eq(&v->cur, d, t, e)) continue;
      Shard next = v->cur;
      shard_copy_dim(&next, e, &v->cur, d);
      next.n[d] = 0;
      TileNamedAttr at[3] = {{"split_dim", tile_attr_int(e)},
                             {"concat_dim", tile_attr_int(d)},
                             {"axes", axes_attr(s, v->cur.n[d], v->cur.ax[d])}};
      v = collective(s, v, TILE_OP_ALL_TO_ALL, 3, at, "a2a", &next, 0);
      break;
    }
  }
  for (int d = 0; v && d < t->rank; d++) {
    if (!v->cur.n[d] || shard_dim_eq(&v->cur, d, t, d)) continue;
    /* Axes t keeps at the front of the dim stay split: gather over the ones after. */
    int keep = t->n[d] < v->cur.n[d] && dim_starts_with(&v->cur, t, d) ? t->n[d] : 0;
    Shard next = v->cur;
    next.n[d] = (uint8_t)keep;
    TileNamedAttr at[2] = {{"dim", tile_attr_int(d)},
                           {"axes", axes_attr(s, v->cur.n[d] - keep, v->cur.ax[d] + keep)}};
    v = collective(s, v, TILE_OP_ALL_GATHER, 2, at, "ag", &next, 0);
  }
  for (int d = 0; v && d < t->rank; d++) {
    if (shard_dim_eq(&v->cur, d, t, d)) continue;
    Shard next = v->cur;
    shard_copy_dim(&next, d, t, d);
    TileNamedAttr at[3] = {{"kind", tile_attr_ident(s->m, "max")},
                           {"dim", tile_attr_int(d)},
                           {"axes", axes_attr(s, t->n[d], t->ax[d])}};
    v = collective(s, v, TILE_OP_REDUCE_SCATTER, 3, at, "cut", &next, 0);
  }
  return v ? v->v : NULL;
}

/* Remembers that val in layout t is res (res dominates every later op: the body is
 * one block, rewritten in order). */
static void reshard_done(Spmd *s, const TileValue *val, const Shard *t, TileValue *res) {
  if (s->ndone == s->capdone) {
    int cap = s->capdone ? 2 * s->capdone : 16;
    struct Reshard *d = realloc(s->done, sizeof *d * (size_t)cap);
    if (!d) return; /* only a missed reuse */
    s->done = d;
    s->capdone = cap;
  }
  s->done[s->ndone++] = (struct Reshard){val, *t, res};
}

/* Brings v to layout t (no partial axes), returning the per-chip value. */
static TileValue *reshard(Spmd *s, TileValue *val, const Shard *t) {
  Layout *v = layout(s, val);
  if (!v) return val; /* a scalar */
  for (int i = 0; i < s->ndone; i++)
    if (s->done[i].from == val && shard_eq(&s->done[i].to, t)) return s->done[i].res;
  TileValue *res = reshard_new(s, v, t);
  if (res && res != val) reshard_done(s, val, t, res);
  return res;
}

/* ---- what each op wants ---- */

static void clear_dim(Shard *r, int d) {
  if (d >= 0 && d < r->rank) r->n[d] = 0;
}

/* The result layout op can produce for the declared sharding r. */
static Shard producible(const TileMesh *mesh, const TileOp *op, Shard r) {
  int rank = r.rank;
  switch (op->kind) {
  case TILE_OP_SOFTMAX: clear_dim(&r, (int)tile_attr_get(&op->attrs, "dim")->i); break;
  case TILE_OP_IOTA: clear_dim(&r, (int)tile_attr_get(&op->attrs, "dim")->i); break;
  case TILE_OP_LAYERNORM:
  case TILE_OP_RMSNORM: clear_dim(&r, rank - 1); break;
  case TILE_OP_ROPE:
    clear_dim(&r, rank - 1);
    clear_dim(&r, rank - 2);
    break;
  case TILE_OP_ATTENTION: {
    int64_t h = op->res[0]->type.dims[1], hkv = op->opnd[1].v->type.dims[1];
    clear_dim(&r, 2);
    clear_dim(&r, 3);
    if (hkv != 1 && hkv != h && !shard_dim_divides(mesh, &r, 1, hkv)) clear_dim(&r, 1);
    break;
  }
  case TILE_OP_CONSTANT:
    if (tile_attr_get(&op->attrs, "value")->kind == TILE_ATTR_ARRAY) r = shard_replicated(rank);
    break;
  default: {
    /* A result dim no operand dim maps to must be whole, except where broadcast
     * makes it: a broadcast value is the same in every block. So must one whose split
     * would not cut the operand dim it maps from into equal blocks (reshape). */
    if (op->kind == TILE_OP_BROADCAST || op->nopnd == 0) break;
    bool hit[TILE_MAX_RANK] = {0};
    for (int k = 0; k < op->nopnd; k++) {
      int map[TILE_MAX_RANK];
      if (!shard_dim_map(op, k, map)) continue;
      for (int i = 0; i < op->opnd[k].v->type.rank; i++)
        if (map[i] >= 0 && shard_dim_divides(mesh, &r, map[i], op->opnd[k].v->type.dims[i]))
          hit[map[i]] = true;
    }
    for (int j = 0; j < rank; j++)
      if (!hit[j]) clear_dim(&r, j);
  }
  }
  return r;
}

/* The operand layouts op wants to make result layout r, and the partial axes
 * (and their combining kind) the result then has. */
static void wants(Spmd *s, const TileOp *op, const TileOp *g, const Shard *r, Shard *req,
                  uint32_t *partial, const char **kind) {
  uint32_t used = shard_used(r);
  *partial = 0;
  *kind = "add";
  if (op->kind == TILE_OP_REDUCE) *kind = tile_attr_get(&op->attrs, "kind")->s;
  for (int k = 0; k < op->nopnd; k++) req[k] = shard_replicated(g->opnd[k].v->type.rank);
  for (int k = 0; k < op->nopnd; k++) {
    int map[TILE_MAX_RANK];
    if (!shard_dim_map(g, k, map)) continue;
    const Layout *a = layout(s, op->opnd[k].v);
    for (int i = 0; i < req[k].rank; i++) {
      if (map[i] >= 0) {
        if (shard_dim_divides(s->mesh, r, map[i], g->opnd[k].v->type.dims[i]))
          shard_copy_dim(&req[k], i, r, map[i]);
        continue;
      }
      int pd = shard_contract_partner(g, k, i);
      bool reduced = op->kind == TILE_OP_REDUCE;
      if (k == 1 || (pd < 0 && !reduced) || !a) continue;
      /* A contracted or reduced dim stays split where it is split already. */
      const Layout *b = pd >= 0 ? layout(s, op->opnd[1].v) : NULL;
      const Shard *src = NULL;
      int sd = i;
      if (a->cur.n[i] && !(used & shard_dim_mask(&a->cur, i))) src = &a->cur;
      else if (b && b->cur.n[pd] && !(used & shard_dim_mask(&b->cur, pd))) src = &b->cur, sd = pd;
      if (!src) continue;
      shard_copy_dim(&req[0], i, src, sd);
      if (pd >= 0) shard_copy_dim(&req[1], pd, src, sd);
      used |= shard_dim_mask(src, sd);
      *partial |= shard_dim_mask(src, sd);
    }
  }
}

static void strip_shard(TileAttrDict *d) {
  int n = 0;
  for (int i = 0; i < d->n; i++)
    if (strcmp(d->items[i].name, "shard") != 0) d->items[n++] = d->items[i];
  d->n = n;
}

static const Shard *declared(Spmd *s, const TileValue *v, Shard *buf) {
  const Layout *l = layout(s, v);
  if (l) return &l->decl;
  *buf = shard_replicated(v->type.kind == TILE_TY_TENSOR ? v->type.rank : 0);
  return buf;
}

/* Rewrites one op of the body; new collectives go right before it. */
static bool rewrite_op(Spmd *s, TileOp *op) {
  s->op = op;
  const TileOpInfo *info = &tile_op_info[op->kind];
  if (op->nregion || op->kind == TILE_OP_CALL)
    return fail(s, op->loc, "spmd: '%s' in a function on a mesh is not supported yet; "
                "partition the function without it", info->name);
  if (info->family == TILE_FAMILY_COLLECTIVE && op->kind != TILE_OP_ALL_REDUCE)
    return fail(s, op->loc, "spmd: '%s' works on per-chip values; the spmd pass takes "
                "programs written in global shapes, where it inserts collectives itself",
                info->name);
  TileInsertPoint ip;
  tile_insert_begin(&ip, &s->b, op);
  if (op->kind == TILE_OP_RETURN) {
    for (int k = 0; k < op->nopnd; k++) {
      Shard buf;
      TileValue *v = reshard(s, op->opnd[k].v, declared(s, op->opnd[k].v, &buf));
      if (!v) break;
      op->opnd[k].v = v;
      s->f->ret[k] = v->type;
    }
    tile_insert_end(&ip, &s->b, !s->failed);
    return !s->failed;
  }
  Shard req[TILE_MAX_RANK + 3];
  if (op->nopnd > (int)(sizeof req / sizeof req[0]))
    return fail(s, op->loc, "spmd: '%s' has more operands than the pass handles", info->name);
  /* The op as it stands in the global program: its operands are per-chip by now,
   * but how it maps dims is a matter of global shapes. */
  TileOp g = *op;
  TileUse guse[TILE_MAX_RANK + 3];
  TileValue gval[TILE_MAX_RANK + 3];
  for (int k = 0; k < op->nopnd; k++) {
    const Layout *l = layout(s, op->opnd[k].v);
    gval[k] = *op->opnd[k].v;
    if (l) gval[k].type = l->global;
    guse[k] = op->opnd[k];
    guse[k].v = &gval[k];
  }
  g.opnd = guse;
  bool mapped = op->nres == 1 && op->res[0]->type.kind == TILE_TY_TENSOR;
  Shard decl = mapped ? layout(s, op->res[0])->decl : shard_replicated(0);
  Shard r = mapped ? producible(s->mesh, &g, decl) : decl;
  uint32_t partial = 0;
  const char *kind = "add";
  if (mapped) {
    wants(s, op, &g, &r, req, &partial, &kind);
  } else {
    for (int k = 0; k < op->nopnd; k++)
      req[k] = shard_replicated(op->opnd[k].v->type.kind == TILE_TY_TENSOR ? op->opnd[k].v->type.rank : 0);
  }
  for (int k = 0; k < op->nopnd && !s->failed; k++) {
    TileValue *v = reshard(s, op->opnd[k].v, &req[k]);
    if (v) op->opnd[k].v = v;
  }
  tile_insert_end(&ip, &s->b, !s->failed);
  if (s->failed) return false;
  if (op->kind == TILE_OP_ALL_REDUCE) {
    /* In the global program this value is whole already: the reshard made it so. */
    Layout *l = layout(s, op->opnd[0].v);
    TileValue *res = op->res[0];
    Shard keep = layout(s, res)->decl;
    tile_replace_all_uses(s->f, res, op->opnd[0].v);
    tile_op_erase(op);
    l->decl = keep;
    return true;
  }
  strip_shard(&op->attrs);
  if (mapped) {
    Layout *l = layout(s, op->res[0]);
    l->cur = r;
    l->partial = partial;
    l->kind = kind;
    op->res[0]->type = shard_local_type(s->mesh, &r, op->res[0]->type);
    if (op->kind == TILE_OP_SLICE) {
      const TileAttr *lim = tile_attr_get(&op->attrs, "limit");
      int64_t limit[TILE_MAX_RANK];
      for (int d = 0; d < lim->n; d++)
        limit[d] = r.n[d] ? op->res[0]->type.dims[d] : lim->elems[d].i;
      tile_op_set_attr(s->m, op, "limit", tile_attr_ints(s->m, lim->n, limit));
    }
  }
  TileType out[8];
  bool inferred[8];
  TileDiag quiet;
  tile_diag_init(&quiet, NULL, NULL, NULL, 0);
  if (op->nres <= 8 && !tile_infer_types(s->m, op, out, inferred, &quiet))
    return fail(s, op->loc, "internal error: spmd: the per-chip op does not type: %s",
                quiet.last);
  return true;
}

static TilePassStatus partition(Spmd *s) {
  TileFunc *f = s->f;
  for (int i = 0; i < f->body->nargs; i++) {
    TileValue *p = f->body->args[i];
    if (p->type.kind != TILE_TY_TENSOR) continue;
    const TileAttr *a = f->arg_attrs ? tile_attr_get(&f->arg_attrs[i], "shard") : NULL;
    Shard sh = shard_replicated(p->type.rank);
    if (a) shard_from_attr(s->mesh, a, p->type.rank, &sh);
    if (!track(s, p, &sh)) goto oom;
    p->type = shard_local_type(s->mesh, &sh, p->type);
    if (f->arg_attrs) strip_shard(&f->arg_attrs[i]);
  }
  for (TileOp *op = f->body->first; op; op = op->next) {
    if (op->nres != 1 || op->res[0]->type.kind != TILE_TY_TENSOR) continue;
    Shard sh = shard_replicated(op->res[0]->type.rank);
    const TileAttr *a = tile_attr_get(&op->attrs, "shard");
    if (a) shard_from_attr(s->mesh, a, sh.rank, &sh);
    if (!track(s, op->res[0], &sh)) goto oom;
  }
  for (TileOp *op = f->body->first, *next; op && !s->failed; op = next) {
    next = op->next;
    rewrite_op(s, op);
  }
  if (!s->failed) return TILE_PASS_OK;
  return s->internal ? TILE_PASS_INTERNAL : TILE_PASS_FAILED;
oom:
  tile_error(s->d, f->loc, "internal error: spmd: out of memory");
  return TILE_PASS_INTERNAL;
}

TilePassStatus tile_pass_spmd(TileModule *m, TileDiag *d) {
  TilePassStatus rc = TILE_PASS_OK;
  for (TileFunc *f = m->funcs; f && rc == TILE_PASS_OK; f = f->next) {
    const TileMesh *mesh = shard_func_mesh(m, f);
    if (f->is_kernel || !mesh) continue;
    Spmd s = {.m = m, .d = d, .mesh = mesh, .f = f};
    tile_builder_init(&s.b, m);
    tile_builder_set_block(&s.b, f->body);
    tile_names_init(&s.names, m, f);
    rc = partition(&s);
    tile_names_free(&s.names);
    free(s.lay);
    free(s.done);
    shard_map_free(&s.map);
  }
  return rc;
}
