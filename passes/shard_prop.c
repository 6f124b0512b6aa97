/* shard_prop: give every tensor value of a function on a mesh a sharding.
 *
 * Needs a verified module. The `shard` annotations people write (on parameters and
 * op results) are fixed points; from them shardings flow through the ops of the
 * function body, forward (operands to result) and backward (result to operands),
 * sweep after sweep until nothing changes. Each tensor op says how its operand
 * dims become result dims (shard_dim_map in passes/sharding.c): elementwise ops
 * keep every dim; matmul and dot_general keep batch and free dims and contract the
 * rest (backward, a contracted dim takes the sharding of its partner in the other
 * operand); reduce drops the reduced dims; broadcast, transpose, gather and the
 * composites map dims by position; reshape maps the major dim of each group of dims
 * whose products agree (heads in [tokens, heads * dim] <-> [tokens, heads, dim]);
 * slice and concatenate keep the dims they leave whole. A split moves only onto a
 * dim it cuts into equal blocks. A value,
 * once it has a sharding, keeps it, and sweeps visit ops in a fixed order, so the
 * result is deterministic. No mesh axis is used twice in one value.
 *
 * Two annotations that meet at one unannotated result with different splits of
 * the same dimension (the operands of an add, the batch dims of a matmul) are a conflict: an error at the op, naming both
 * annotations with their file:line:col, asking for an annotation that decides.
 *
 * Guarantees: every tensor parameter and every single-result tensor op of the body
 * of each func with a mesh carries `shard` (replicated, `[-, ...]`, where nothing
 * said otherwise). Ops nested in `for` and `if` regions are left as they are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sharding.h"
#include "tile/builder.h"
#include "tile/pass.h"
#include "tile/rewrite.h"

typedef struct VState {
  TileValue *v;
  bool set, user;
  Shard s;
  const TileValue *src; /* the annotated value this sharding came from */
} VState;

typedef struct Prop {
  TileModule *m;
  TileDiag *d;
  const TileMesh *mesh;
  TileFunc *f;
  VState *st;
  int n, cap;
  ShardMap map;
  bool failed;
} Prop;

static VState *state(Prop *p, const TileValue *v) {
  int i = shard_map_get(&p->map, v);
  return i < 0 ? NULL : &p->st[i];
}

static bool track(Prop *p, TileValue *v, const TileAttr *shard) {
  if (v->type.kind != TILE_TY_TENSOR || v->type.rank == 0) return true;
  if (p->n == p->cap) {
    int cap = p->cap ? 2 * p->cap : 64;
    VState *st = realloc(p->st, sizeof *st * (size_t)cap);
    if (!st) return false;
    p->st = st;
    p->cap = cap;
  }
  VState *s = &p->st[p->n];
  memset(s, 0, sizeof *s);
  s->v = v;
  if (shard_from_attr(p->mesh, shard, v->type.rank, &s->s)) {
    s->set = s->user = true;
    s->src = v;
  }
  return shard_map_put(&p->map, v, p->n++);
}

static TileLoc where(const TileValue *v) {
  if (v->loc.line) return v->loc;
  return v->def ? v->def->loc : (TileLoc){0};
}

static void describe(Prop *p, const VState *s, char *buf, size_t size) {
  char sh[128];
  shard_format(p->mesh, &s->s, sh, sizeof sh);
  TileLoc l = where(s->src);
  snprintf(buf, size, "%%%s is %s (from the annotation of %%%s at %s:%d:%d)",
           s->v->name ? s->v->name : "?", sh, s->src->name ? s->src->name : "?",
           l.file ? l.file : (p->m->filename ? p->m->filename : "<input>"), l.line, l.col);
}

/* A result takes, dim by dim, the first operand's split that maps there. Two
 * annotated splits of the same dim that differ are a conflict. */
static bool forward(Prop *p, TileOp *op) {
  VState *r = op->nres == 1 ? state(p, op->res[0]) : NULL;
  if (!r || r->set) return false;
  Shard out = shard_replicated(r->v->type.rank);
  const VState *from[TILE_MAX_RANK] = {0};
  const VState *first = NULL;
  uint32_t used = 0;
  for (int k = 0; k < op->nopnd; k++) {
    const VState *a = state(p, op->opnd[k].v);
    int map[TILE_MAX_RANK];
    if (!a || !a->set || !shard_dim_map(op, k, map)) continue;
    for (int i = 0; i < a->s.rank; i++) {
      int j = map[i];
      if (j < 0 || a->s.n[i] == 0) continue;
      if (from[j]) {
        if (!shard_dim_eq(&out, j, &a->s, i) && !p->failed) {
          char one[320], two[320];
          describe(p, from[j], one, sizeof one);
          describe(p, a, two, sizeof two);
          tile_error(p->d, op->loc,
                     "conflicting shardings meet at %s: dim %d of %s, but of %s; annotate the "
                     "result with `shard = [...]` to choose",
                     tile_op_name(op->kind), j, one, two);
          tile_note(p->d, where(from[j]->src), "first sharding annotated here");
          tile_note(p->d, where(a->src), "second sharding annotated here");
          p->failed = true;
        }
        continue;
      }
      if (used & shard_dim_mask(&a->s, i)) continue;
      if (!shard_dim_divides(p->mesh, &a->s, i, r->v->type.dims[j])) continue;
      shard_copy_dim(&out, j, &a->s, i);
      used |= shard_dim_mask(&a->s, i);
      from[j] = a;
      if (!first) first = a;
    }
    if (!first) first = a;
  }
  if (!first) return false;
  r->s = out;
  r->set = true;
  r->src = first->src;
  return true;
}

/* Operands without a sharding take the result's split of the dims they map to,
 * and a contracted dim its partner's. */
static bool backward(Prop *p, TileOp *op) {
  const VState *r = op->nres == 1 ? state(p, op->res[0]) : NULL;
  if (!r || !r->set) return false;
  bool changed = false;
  for (int k = 0; k < op->nopnd; k++) {
    VState *a = state(p, op->opnd[k].v);
    int map[TILE_MAX_RANK];
    if (!a || a->set || !shard_dim_map(op, k, map)) continue;
    Shard s = shard_replicated(a->v->type.rank);
    uint32_t used = 0;
    for (int i = 0; i < s.rank; i++) {
      if (map[i] >= 0 && !(used & shard_dim_mask(&r->s, map[i])) &&
          shard_dim_divides(p->mesh, &r->s, map[i], a->v->type.dims[i])) {
        shard_copy_dim(&s, i, &r->s, map[i]);
        used |= shard_dim_mask(&r->s, map[i]);
      }
    }
    for (int i = 0; i < s.rank; i++) {
      int pd = map[i] < 0 ? shard_contract_partner(op, k, i) : -1;
      const VState *other = pd >= 0 ? state(p, op->opnd[1 - k].v) : NULL;
      if (other && other->set && !(used & shard_dim_mask(&other->s, pd))) {
        shard_copy_dim(&s, i, &other->s, pd);
        used |= shard_dim_mask(&other->s, pd);
      }
    }
    a->s = s;
    a->set = true;
    a->src = r->src;
    changed = true;
  }
  return changed;
}

static void set_param_shard(TileModule *m, TileFunc *f, int i, TileAttr val) {
  if (!f->arg_attrs) f->arg_attrs = tile_alloc(m, sizeof *f->arg_attrs * (size_t)f->body->nargs);
  TileAttrDict *d = &f->arg_attrs[i];
  for (int k = 0; k < d->n; k++)
    if (strcmp(d->items[k].name, "shard") == 0) {
      d->items[k].val = val;
      return;
    }
  TileNamedAttr *items = tile_alloc(m, sizeof *items * (size_t)(d->n + 1));
  if (d->n) memcpy(items, d->items, sizeof *items * (size_t)d->n);
  items[d->n].name = "shard";
  items[d->n].val = val;
  d->items = items;
  d->n++;
}

static TilePassStatus propagate(Prop *p) {
  TileFunc *f = p->f;
  for (int i = 0; i < f->body->nargs; i++) {
    const TileAttr *a = f->arg_attrs ? tile_attr_get(&f->arg_attrs[i], "shard") : NULL;
    if (!track(p, f->body->args[i], a)) goto oom;
  }
  int nops = 0;
  for (TileOp *op = f->body->first; op; op = op->next, nops++)
    for (int i = 0; i < op->nres; i++)
      if (!track(p, op->res[i], op->nres == 1 ? tile_attr_get(&op->attrs, "shard") : NULL))
        goto oom;
  TileOp **ops = malloc(sizeof *ops * (size_t)(nops + 1));
  if (!ops) goto oom;
  nops = 0;
  for (TileOp *op = f->body->first; op; op = op->next) ops[nops++] = op;
  for (bool changed = true; changed && !p->failed;) {
    changed = false;
    for (int i = 0; i < nops; i++) changed |= forward(p, ops[i]);
    for (int i = nops - 1; i >= 0; i--) changed |= backward(p, ops[i]);
  }
  free(ops);
  if (p->failed) return TILE_PASS_FAILED;
  for (int i = 0; i < p->n; i++) {
    VState *s = &p->st[i];
    if (!s->set) s->s = shard_replicated(s->v->type.rank);
    TileAttr a = shard_to_attr(p->m, p->mesh, &s->s);
    if (s->v->def) {
      if (s->v->def->nres == 1) tile_op_set_attr(p->m, s->v->def, "shard", a);
    } else {
      set_param_shard(p->m, f, s->v->index, a);
    }
  }
  return TILE_PASS_OK;
oom:
  tile_error(p->d, f->loc, "internal error: shard_prop: out of memory");
  return TILE_PASS_INTERNAL;
}

TilePassStatus tile_pass_shard_prop(TileModule *m, TileDiag *d) {
  TilePassStatus rc = TILE_PASS_OK;
  for (TileFunc *f = m->funcs; f && rc == TILE_PASS_OK; f = f->next) {
    const TileMesh *mesh = shard_func_mesh(m, f);
    if (f->is_kernel || !mesh) continue;
    Prop p = {.m = m, .d = d, .mesh = mesh, .f = f};
    rc = propagate(&p);
    free(p.st);
    shard_map_free(&p.map);
  }
  return rc;
}
