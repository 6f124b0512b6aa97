/* fuse: tag the ops of each `func` with fusion groups (`group = N`), the units the
 * VLIW lowering hands to one generator each (include/tile/lower.h).
 *
 * Needs a verified module, after decompose. Guarantees: every tensor op of a func
 * body but `constant` and `iota` carries `group = N` (N >= 0, numbered in program
 * order); ops with the same N form a group the lowering can run as one unit, and the
 * groups form no cycle (a group reads only values of groups numbered below it,
 * function inputs and constants). Kernels are left alone.
 *
 * The rules, for each op in program order:
 *   - `attention`, `gather`, `argmax`, `topk`, `rope`, and the layout ops (reshape,
 *     transpose, slice, concatenate) are groups of their own; a `matmul` or
 *     `dot_general` starts a matmul group.
 *   - An elementwise op, `convert` or `broadcast` joins the group of one of its
 *     producers when that group is a matmul group (an epilogue: the op has the
 *     matmul's result shape) or a row-wise group, and each of its other operands is a
 *     leaf (a function input, a constant, an iota, or a broadcast of one) or a value
 *     the group already reads. A last-axis `reduce` joins a row-wise group the same
 *     way. Joining a row-wise group also needs the op to run over the group's rows:
 *     its result is one value per row (the group's leading shape L) or a whole row
 *     (L followed by the group's row length).
 *   - Otherwise such an op starts a row-wise group of its own.
 *   - A broadcast of a leaf joins the group of the first op that reads it (so a bias
 *     or gamma is read in place); one nobody fused is a group of its own.
 * Since an op that joins a group brings in no value of a later group, every group reads
 * only from groups made before it: no cycles. Values used outside their group are
 * written to memory by the lowering. */
#include <stdlib.h>
#include <string.h>

#include "tile/ops.h"
#include "tile/pass.h"
#include "tile/rewrite.h"

typedef enum Kind { K_SOLO, K_MATMUL, K_ROWWISE } Kind;

typedef struct Group {
  Kind kind;
  int32_t rank;               /* ROWWISE: the leading shape L; MATMUL: the result shape */
  int64_t dims[TILE_MAX_RANK];
  int64_t row;                /* ROWWISE: the row length, 0 until a whole-row op joins */
  const TileValue **in;       /* values from outside the group it reads */
  int32_t nin, cap;
} Group;

typedef struct Fuse {
  TileModule *m;
  TileOp **ops;      /* the body in order */
  int32_t nops;
  int32_t *group_of; /* per op, -1 untagged */
  Group *groups;
  int32_t ngroups;
  bool oom;
} Fuse;

static int32_t index_of(const Fuse *f, const TileOp *op) {
  for (int32_t i = 0; i < f->nops; i++)
    if (f->ops[i] == op) return i;
  return -1;
}

static bool is_elementwise(TileOpKind k) {
  return (k >= TILE_OP_ADD && k <= TILE_OP_SELECT) || k == TILE_OP_CONVERT;
}

static bool is_solo(TileOpKind k) {
  switch (k) {
  case TILE_OP_ATTENTION:
  case TILE_OP_GATHER:
  case TILE_OP_ARGMAX:
  case TILE_OP_TOPK:
  case TILE_OP_ROPE:
  case TILE_OP_RESHAPE:
  case TILE_OP_TRANSPOSE:
  case TILE_OP_SLICE:
  case TILE_OP_CONCATENATE: return true;
  default: return false;
  }
}

/* Constants and iota are data, not work; ops of other families than tensor ops
 * (collectives, control) are no group's, and the lowering says why it cannot take
 * them. */
static bool is_untagged(TileOpKind k) {
  return k == TILE_OP_CONSTANT || k == TILE_OP_IOTA || tile_op_info[k].family != TILE_FAMILY_TENSOR;
}

/* A reduce over the last axis only. */
static bool is_row_reduce(const TileOp *op) {
  if (op->kind != TILE_OP_REDUCE) return false;
  const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
  int rank = op->opnd[0].v->type.rank;
  return dims && dims->kind == TILE_ATTR_ARRAY && dims->n == 1 && dims->elems[0].i == rank - 1;
}

/* A value made by no group's work: a parameter, a constant or an iota. */
static bool is_leaf(const TileValue *v) {
  return !v->def || v->def->kind == TILE_OP_CONSTANT || v->def->kind == TILE_OP_IOTA;
}

/* A broadcast of a leaf, not yet in a group (it joins its first reader's). */
static bool is_free_broadcast(const Fuse *f, const TileValue *v) {
  if (!v->def || v->def->kind != TILE_OP_BROADCAST || !is_leaf(v->def->opnd[0].v)) return false;
  int32_t i = index_of(f, v->def);
  return i >= 0 && f->group_of[i] < 0;
}

static bool group_reads(const Group *g, const TileValue *v) {
  for (int32_t i = 0; i < g->nin; i++)
    if (g->in[i] == v) return true;
  return false;
}

static void add_input(Fuse *f, Group *g, const TileValue *v) {
  if (group_reads(g, v)) return;
  if (g->nin == g->cap) {
    int32_t cap = g->cap ? 2 * g->cap : 8;
    const TileValue **in = realloc(g->in, sizeof *in * (size_t)cap);
    if (!in) {
      f->oom = true;
      return;
    }
    g->in = in;
    g->cap = cap;
  }
  g->in[g->nin++] = v;
}

static bool shape_is(const TileType *t, int rank, const int64_t *dims) {
  if (t->rank != rank) return false;
  for (int i = 0; i < rank; i++)
    if (t->dims[i] != dims[i]) return false;
  return true;
}

/* Whether op runs over g's rows: one value per row, or whole rows of g's length. */
static bool fits_rows(const Group *g, const TileOp *op) {
  const TileType *t = &op->res[0]->type;
  if (op->kind == TILE_OP_REDUCE)
    return shape_is(t, g->rank, g->dims) &&
           (g->row == 0 || op->opnd[0].v->type.dims[t->rank] == g->row);
  if (op->kind != TILE_OP_BROADCAST && shape_is(t, g->rank, g->dims)) return true;
  return t->rank == g->rank + 1 &&
         memcmp(t->dims, g->dims, sizeof(int64_t) * (size_t)g->rank) == 0 &&
         (g->row == 0 || t->dims[g->rank] == g->row);
}

/* Whether op may join group gi: the kind rule and, for each operand from outside the
 * group, that it brings no new dependence. */
static bool may_join(const Fuse *f, int32_t gi, const TileOp *op) {
  const Group *g = &f->groups[gi];
  TileOpKind k = (TileOpKind)op->kind;
  if (g->kind == K_SOLO) return false;
  if (g->kind == K_MATMUL) {
    if (!is_elementwise(k) || !shape_is(&op->res[0]->type, g->rank, g->dims)) return false;
  } else {
    if (!is_elementwise(k) && k != TILE_OP_BROADCAST && !is_row_reduce(op)) return false;
    if (!fits_rows(g, op)) return false;
  }
  for (int32_t i = 0; i < op->nopnd; i++) {
    const TileValue *v = op->opnd[i].v;
    int32_t d = v->def ? index_of(f, v->def) : -1;
    if (d >= 0 && f->group_of[d] == gi) continue;
    if (is_leaf(v) || is_free_broadcast(f, v)) continue;
    if (g->kind == K_ROWWISE && group_reads(g, v)) continue;
    return false;
  }
  return true;
}

static int32_t new_group(Fuse *f, Kind kind, const TileOp *op) {
  Group *g = &f->groups[f->ngroups];
  memset(g, 0, sizeof *g);
  g->kind = kind;
  const TileType *t = &op->res[0]->type;
  if (kind == K_MATMUL) {
    g->rank = t->rank;
    memcpy(g->dims, t->dims, sizeof g->dims);
  } else if (kind == K_ROWWISE) {
    if (op->kind == TILE_OP_REDUCE) {
      g->rank = t->rank;
      memcpy(g->dims, t->dims, sizeof g->dims);
      g->row = op->opnd[0].v->type.dims[t->rank];
    } else if (t->rank > 0) {
      g->rank = t->rank - 1;
      memcpy(g->dims, t->dims, sizeof(int64_t) * (size_t)g->rank);
      g->row = t->dims[t->rank - 1];
    }
  }
  return f->ngroups++;
}

static void tag(Fuse *f, int32_t i, int32_t gi) {
  f->group_of[i] = gi;
  tile_op_set_attr(f->m, f->ops[i], "group", tile_attr_int(gi));
}

/* Puts op i in group gi: pulls in the free broadcasts it reads and records the
 * values it reads from outside. */
static void join(Fuse *f, int32_t i, int32_t gi) {
  Group *g = &f->groups[gi];
  const TileOp *op = f->ops[i];
  tag(f, i, gi);
  if (g->kind == K_ROWWISE && g->row == 0 && op->res[0]->type.rank == g->rank + 1 &&
      op->kind != TILE_OP_REDUCE)
    g->row = op->res[0]->type.dims[g->rank];
  for (int32_t k = 0; k < op->nopnd; k++) {
    const TileValue *v = op->opnd[k].v;
    if (is_free_broadcast(f, v)) {
      int32_t b = index_of(f, v->def);
      tag(f, b, gi);
      add_input(f, g, v->def->opnd[0].v);
      continue;
    }
    int32_t d = v->def ? index_of(f, v->def) : -1;
    if (d < 0 || f->group_of[d] != gi) add_input(f, g, v);
  }
}

static void place_op(Fuse *f, int32_t i) {
  TileOp *op = f->ops[i];
  TileOpKind k = (TileOpKind)op->kind;
  if (is_untagged(k) || f->group_of[i] >= 0) return;
  if (k == TILE_OP_BROADCAST && is_leaf(op->opnd[0].v)) return; /* joins its first reader */
  bool rowwise = is_elementwise(k) || k == TILE_OP_BROADCAST || is_row_reduce(op);
  if (!rowwise)
    /* A matmul or a solo op reads a broadcast from memory: it gets a group of its own
     * now, before the reader's, so no later group can end up holding it. */
    for (int32_t o = 0; o < op->nopnd; o++)
      if (is_free_broadcast(f, op->opnd[o].v)) {
        const TileOp *b = op->opnd[o].v->def;
        join(f, index_of(f, b), new_group(f, K_ROWWISE, b));
      }
  if (is_solo(k) || op->nres != 1) {
    join(f, i, new_group(f, K_SOLO, op));
    return;
  }
  if (k == TILE_OP_MATMUL || k == TILE_OP_DOT_GENERAL) {
    join(f, i, new_group(f, K_MATMUL, op));
    return;
  }
  if (rowwise) {
    for (int32_t o = 0; o < op->nopnd; o++) {
      const TileValue *v = op->opnd[o].v;
      int32_t d = v->def ? index_of(f, v->def) : -1;
      if (d >= 0 && f->group_of[d] >= 0 && may_join(f, f->group_of[d], op)) {
        join(f, i, f->group_of[d]);
        return;
      }
    }
  }
  join(f, i, new_group(f, rowwise ? K_ROWWISE : K_SOLO, op));
}

static bool fuse_func(TileModule *m, TileFunc *fn) {
  Fuse f = {.m = m};
  for (TileOp *op = fn->body->first; op; op = op->next) f.nops++;
  f.ops = calloc((size_t)f.nops + 1, sizeof *f.ops);
  f.group_of = calloc((size_t)f.nops + 1, sizeof *f.group_of);
  f.groups = calloc((size_t)f.nops + 1, sizeof *f.groups);
  if (!f.ops || !f.group_of || !f.groups) f.oom = true;
  if (!f.oom) {
    int32_t n = 0;
    for (TileOp *op = fn->body->first; op; op = op->next) {
      f.group_of[n] = -1;
      f.ops[n++] = op;
    }
    for (int32_t i = 0; i < f.nops; i++) place_op(&f, i);
    /* Broadcasts of leaves that no fused op read (a matmul operand, a result). */
    for (int32_t i = 0; i < f.nops; i++)
      if (f.ops[i]->kind == TILE_OP_BROADCAST && f.group_of[i] < 0)
        join(&f, i, new_group(&f, K_ROWWISE, f.ops[i]));
  }
  for (int32_t g = 0; g < f.ngroups; g++) free(f.groups[g].in);
  free(f.ops);
  free(f.group_of);
  free(f.groups);
  return !f.oom;
}

TilePassStatus tile_pass_fuse(TileModule *m, TileDiag *d) {
  for (TileFunc *fn = m->funcs; fn; fn = fn->next) {
    if (fn->is_kernel) continue;
    if (!fuse_func(m, fn)) {
      tile_error(d, fn->loc, "internal error: fuse: out of memory in '@%s'", fn->name);
      return TILE_PASS_INTERNAL;
    }
  }
  return TILE_PASS_OK;
}
