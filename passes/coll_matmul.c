/* coll_matmul: the collective-matmul decomposition of sequence-parallel blocks.
 *
 * A tensor-parallel block in sequence-parallel form reads activations split by rows
 * over a mesh axis, gathers them (all_gather, dim 0), runs row-local work on the whole
 * rows (matmuls by weights split by columns, elementwise ops, a matmul by weights split
 * by rows giving partial sums) and sums the partials back onto the rows
 * (reduce_scatter, dim 0, add). As written, the links work only before and after the
 * matmuls. This pass cuts the rows into the p chunks the gather brings and runs the
 * block once per chunk, so each step's matmuls run while the next chunk and the
 * running sums travel one hop round the axis's ring (collective_permute, shift 1,
 * which the VLIW lowering issues asynchronously):
 *
 *   xb0 = x                          step s holds chunk (r - s) mod p of the rows,
 *   xb(s+1) = permute(xb(s))         r the chip's position: what the chip before
 *   y(s) = block(xb(s))              held at step s - 1
 *   acc1 = y1, acc(s) = y(s) + permute(acc(s-1)) for s = 2 .. p-1
 *   result = y0 + permute(acc(p-1))
 *
 * The sum of chunk c starts on chip c + 1 (its step 1) and gathers one chip's partial
 * a hop, reaching chip c at the end, where the chip adds its own partial y0. Step 0
 * is cut in two (tail_start): its first part runs while the first hop is on the link,
 * the rest last, while the last hop of the sums is. The links carry what the
 * all_gather and the reduce_scatter carried on a ring,
 * one hop a step, and no chip ever indexes by its position: every step's shapes and
 * buffers are the same on every chip.
 *
 * Needs: a verified module after spmd (per-chip shapes; collectives over mesh axes).
 * Guarantees: the same values as the block it replaces, up to the order of the
 * partial sums' additions. Taken only where it pays:
 *   - one mesh axis of p >= 2 chips, on one torus dim (its ring is one hop a step);
 *   - chunks of at least COLL_MM_MIN_ROWS rows: each step reads every weight of the
 *     block again, and below that a step's matmuls would wait for HBM;
 *   - every value between the gather and the reduce_scatter is used only there, so
 *     nothing needs the whole rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sharding.h"
#include "tile/builder.h"
#include "tile/pass.h"
#include "tile/rewrite.h"

/* Rows per chunk from which the decomposition is taken. A step's matmuls do 2 * rows
 * FLOPs per weight element (2 bytes in bf16), so their intensity is `rows` FLOPs a
 * byte of weights: the critical intensity of the targets (FLOP/s over HBM bytes/s,
 * about 240 on v5e, 230 on v4, 165 on v5p) is below 256. */
enum { COLL_MM_MIN_ROWS = 256 };

/* Ops that act on each element alone (the pass runs before decompose, so the
 * elementwise composites are still whole). */
static bool elementwise(TileOpKind k) {
  return tile_op_is_elementwise(k) || k == TILE_OP_GELU || k == TILE_OP_SILU;
}

/* The values of the block between the gather and the reduce_scatter. */
typedef struct Region {
  TileOp **ops;        /* in program order */
  int n, cap;
  TileOp *ag, *rs;
  const TileMeshAxis *axis;
  int64_t p, rows;     /* chips on the axis; rows of a chunk */
} Region;

static bool region_has(const Region *R, const TileValue *v) {
  if (v == R->ag->res[0]) return true;
  for (int i = 0; i < R->n; i++)
    if (R->ops[i]->res[0] == v) return true;
  return false;
}

static bool region_add(Region *R, TileOp *op) {
  if (R->n == R->cap) {
    int cap = R->cap ? 2 * R->cap : 16;
    TileOp **o = realloc(R->ops, sizeof *o * (size_t)cap);
    if (!o) return false;
    R->ops = o;
    R->cap = cap;
  }
  R->ops[R->n++] = op;
  return true;
}

/* The one mesh axis a collective runs over, when it is on one torus dim. */
static const TileMeshAxis *one_axis(const TileMesh *mesh, const TileOp *op) {
  const TileAttr *a = tile_attr_get(&op->attrs, "axes");
  if (!a || a->kind != TILE_ATTR_ARRAY || a->n != 1 || a->elems[0].kind != TILE_ATTR_IDENT)
    return NULL;
  const TileMeshAxis *ax = tile_mesh_find_axis(mesh, a->elems[0].s);
  return ax && ax->ndims == 1 && ax->size >= 2 ? ax : NULL;
}

static bool attr_is(const TileOp *op, const char *name, int64_t v) {
  int64_t x;
  return tile_attr_get_int(&op->attrs, name, &x) && x == v;
}

static bool kind_is(const TileOp *op, const char *kind) {
  const TileAttr *a = tile_attr_get(&op->attrs, "kind");
  return a && a->kind == TILE_ATTR_IDENT && strcmp(a->s, kind) == 0;
}

/* Whether op, which reads a region value, can run on a chunk of rows: a matmul whose
 * left operand is in the region and whose right one is not, or an elementwise op
 * whose other tensor operands are in the region or splat constants. */
static bool row_local(const Region *R, const TileOp *op) {
  if (op->nres != 1 || op->nregion || op->res[0]->type.kind != TILE_TY_TENSOR) return false;
  const TileType *t = &op->res[0]->type;
  if (t->dims[0] != R->p * R->rows) return false;
  if (op->kind == TILE_OP_MATMUL)
    return t->rank == 2 && op->opnd[0].v->type.rank == 2 && region_has(R, op->opnd[0].v) &&
           !region_has(R, op->opnd[1].v);
  if (!elementwise((TileOpKind)op->kind)) return false;
  for (int k = 0; k < op->nopnd; k++) {
    const TileValue *v = op->opnd[k].v;
    if (v->type.kind != TILE_TY_TENSOR) continue;
    if (!region_has(R, v) && !tile_value_is_splat(v)) return false;
  }
  return true;
}

/* Whether an op other than the region's and the reduce_scatter reads a region value. */
static bool read_outside(const TileFunc *f, const Region *R) {
  for (const TileOp *op = f->body->first; op; op = op->next) {
    bool inside = op == R->rs;
    for (int i = 0; i < R->n && !inside; i++) inside = R->ops[i] == op;
    for (int k = 0; k < op->nopnd && !inside; k++)
      if (region_has(R, op->opnd[k].v)) return true;
  }
  return false;
}

/* Collects the region that starts at the all_gather ag; false when the block is not
 * one the decomposition takes. */
static bool find_region(const TileMesh *mesh, const TileFunc *f, TileOp *ag, Region *R) {
  R->n = 0;
  R->ag = ag;
  R->rs = NULL;
  R->axis = one_axis(mesh, ag);
  const TileType *in = &ag->opnd[0].v->type, *out = &ag->res[0]->type;
  if (!R->axis || !attr_is(ag, "dim", 0) || in->rank != 2 || in->dims[0] <= 0) return false;
  R->rows = in->dims[0];
  R->p = out->dims[0] / in->dims[0];
  if (R->p != R->axis->size || R->rows < COLL_MM_MIN_ROWS) return false;
  bool matmul = false;
  for (TileOp *op = ag->next; op; op = op->next) {
    bool reads = false;
    for (int k = 0; k < op->nopnd && !reads; k++) reads = region_has(R, op->opnd[k].v);
    if (!reads) continue;
    if (op->kind == TILE_OP_REDUCE_SCATTER) {
      if (R->rs || one_axis(mesh, op) != R->axis || !attr_is(op, "dim", 0) ||
          !kind_is(op, "add") || op->res[0]->type.dims[0] != R->rows)
        return false;
      R->rs = op;
      continue;
    }
    if (!row_local(R, op) || !region_add(R, op)) return false;
    matmul |= op->kind == TILE_OP_MATMUL;
  }
  return R->rs && matmul && region_has(R, R->rs->opnd[0].v) && !read_outside(f, R);
}

/* ---- the rewrite ---- */

typedef struct Rewrite {
  TileModule *m;
  TileBuilder *b;
  TileNameSet *names;
  const Region *R;
  TileValue **map; /* region op i's value in the step being built */
  bool failed;
} Rewrite;

static TileType chunk_type(const Rewrite *w, TileType t) {
  t.dims[0] = w->R->rows;
  return t;
}

static const char *step_name(Rewrite *w, const TileValue *v, const char *what, int s) {
  char sfx[32];
  snprintf(sfx, sizeof sfx, "%s%d", what, s);
  return tile_names_fresh(w->names, v->name ? v->name : "cm", sfx);
}

static TileValue *build(Rewrite *w, TileOpKind kind, int n, TileUse *opnds, int nattr,
                        const TileNamedAttr *attrs, TileType type, const TileValue *like,
                        const char *what, int s) {
  TileOp *op = w->failed ? NULL : tile_build_op(w->b, kind, n, opnds, nattr, attrs, 1, &type);
  if (!op) {
    w->failed = true;
    return NULL;
  }
  op->loc = like->def ? like->def->loc : w->R->ag->loc;
  op->res[0]->name = step_name(w, like, what, s);
  op->res[0]->loc = op->loc;
  return op->res[0];
}

/* One hop round the axis's ring: what the chip before holds. A `late` hop is expected
 * to land only as the work after it ends (the last hop of the sums, which the end of
 * step 0 is cut to cover): the fuse pass keeps its reader out of a matmul's epilogue,
 * which would wait for it in the middle of the matmul. */
static TileValue *hop(Rewrite *w, TileValue *v, const TileValue *like, const char *what, int s,
                      bool late) {
  TileNamedAttr at[3] = {{"axis", tile_attr_ident(w->m, w->R->axis->name)},
                         {"shift", tile_attr_int(1)},
                         {"late", tile_attr_int(1)}};
  TileUse u = {.v = v};
  return build(w, TILE_OP_COLLECTIVE_PERMUTE, 1, &u, late ? 3 : 2, at, v->type, like, what, s);
}

static TileValue *add(Rewrite *w, TileValue *a, TileValue *b, const TileValue *like, int s) {
  TileUse u[2] = {{.v = a}, {.v = b}};
  return build(w, TILE_OP_ADD, 2, u, 0, NULL, a->type, like, "acc", s);
}

/* Region ops lo .. hi - 1 on chunk xb, their values in map (one map per step, so a
 * step may be built in two parts); returns the value the reduce_scatter read once it
 * is built. */
static TileValue *step(Rewrite *w, TileValue **map, TileValue *xb, int s, int lo, int hi) {
  const Region *R = w->R;
  for (int i = lo; i < hi && !w->failed; i++) {
    const TileOp *op = R->ops[i];
    TileUse u[8];
    if (op->nopnd > 8) return w->failed = true, NULL;
    for (int k = 0; k < op->nopnd; k++) {
      const TileValue *v = op->opnd[k].v;
      u[k] = op->opnd[k];
      if (v == R->ag->res[0]) {
        u[k].v = xb;
        continue;
      }
      for (int j = 0; j < i; j++)
        if (R->ops[j]->res[0] == v) u[k].v = map[j];
      if (tile_value_is_splat(v) && v->type.kind == TILE_TY_TENSOR && v->type.rank)
        u[k].v = build(w, TILE_OP_CONSTANT, 0, NULL, v->def->attrs.n, v->def->attrs.items,
                       chunk_type(w, v->type), v, "s", s);
    }
    map[i] = build(w, (TileOpKind)op->kind, op->nopnd, u, op->attrs.n, op->attrs.items,
                   chunk_type(w, op->res[0]->type), op->res[0], "s", s);
  }
  for (int i = lo; i < hi; i++)
    if (R->ops[i]->res[0] == R->rs->opnd[0].v) return map[i];
  return NULL;
}

/* The bytes of one chunk of v. */
static double chunk_bytes(const Region *R, const TileValue *v) {
  return (double)tile_type_numel(&v->type) / (double)R->p *
         (double)tile_elem_bits((TileElem)v->type.elem) / 8.0;
}

/* Where the chip's own chunk (step 0) is cut: the ops before the cut run first, while
 * the next chunk's hop is on the link, and the rest at the end, while the last hop of
 * the sums is. Both hops cross the same link, so the cut splits step 0's matmul work
 * in the ratio of the bytes the two hops carry (the chunk of x against the chunk of
 * sums): where the step outlasts both hops, each is then hidden, and where it does
 * not, neither side waits longer than its share. The cut is made right before a
 * matmul other than the first, where the FLOPs before it come nearest that share, so
 * a matmul runs at each end (a block of one matmul runs the ops before it first). */
static double mm_work(const TileOp *op) {
  return op->kind == TILE_OP_MATMUL
             ? (double)tile_type_numel(&op->res[0]->type) * (double)op->opnd[0].v->type.dims[1]
             : 0;
}

static int tail_start(const Region *R) {
  double total = 0, xb = chunk_bytes(R, R->ag->res[0]), sb = chunk_bytes(R, R->rs->opnd[0].v);
  for (int i = 0; i < R->n; i++) total += mm_work(R->ops[i]);
  double want = total * xb / (xb + sb), head = 0, best = -1;
  int cut = 0, matmuls = 0;
  for (int i = 0; i < R->n; i++) {
    if (R->ops[i]->kind != TILE_OP_MATMUL) continue;
    double miss = head > want ? head - want : want - head;
    if (matmuls++ == 0) cut = i; /* one matmul: the ops before it run first */
    else if (best < 0 || miss < best) best = miss, cut = i;
    head += mm_work(R->ops[i]);
  }
  return cut;
}

/* Replaces the region by its steps; false (an internal error reported) when they do not build. */
static bool rewrite(TileModule *m, TileFunc *f, const Region *R, TileDiag *d) {
  TileBuilder b;
  tile_builder_init(&b, m);
  tile_builder_set_block(&b, f->body);
  TileNameSet names;
  tile_names_init(&names, m, f);
  Rewrite w = {.m = m, .b = &b, .names = &names, .R = R,
               .map = calloc(2 * ((size_t)R->n + 1), sizeof(TileValue *))};
  TileValue **own_map = w.map ? w.map + R->n + 1 : NULL;
  int tail = tail_start(R);
  TileInsertPoint ip;
  tile_insert_begin(&ip, &b, R->rs);
  /* Each permute is placed as soon as what it sends is made, so it runs beside the
   * matmuls that follow it. */
  TileValue *x = R->ag->opnd[0].v, *xb = x, *own = NULL, *recv = NULL;
  const TileValue *like = R->rs->res[0];
  for (int s = 0; s < R->p && w.map && !w.failed; s++) {
    TileValue *next = s + 1 < R->p ? hop(&w, xb, x, "x", s + 1, false) : NULL;
    if (s == 0) {
      step(&w, own_map, xb, 0, 0, tail);
    } else {
      TileValue *y = step(&w, w.map, xb, s, 0, R->n);
      TileValue *acc = s == 1 ? y : add(&w, y, recv, like, s);
      recv = acc ? hop(&w, acc, like, "recv", s + 1, s + 1 == R->p) : NULL;
    }
    xb = next;
  }
  own = w.failed ? NULL : step(&w, own_map, x, 0, tail, R->n);
  TileValue *sum = w.failed || !own ? NULL : add(&w, own, recv, like, (int)R->p);
  bool ok = !w.failed && sum && w.map;
  tile_insert_end(&ip, &b, ok);
  if (ok) {
    tile_replace_all_uses(f, R->rs->res[0], sum);
    tile_op_erase(R->rs);
    for (int i = R->n - 1; i >= 0; i--) tile_op_erase(R->ops[i]);
    tile_op_erase(R->ag);
  }
  if (!ok)
    tile_error(d, R->ag->loc, "internal error: coll_matmul: cannot build the steps: %s",
               b.diag.nerrors ? b.diag.last : "out of memory");
  free(w.map);
  tile_names_free(&names);
  return ok;
}

TilePassStatus tile_pass_coll_matmul(TileModule *m, TileDiag *d) {
  for (TileFunc *f = m->funcs; f; f = f->next) {
    const TileMesh *mesh = shard_func_mesh(m, f);
    if (f->is_kernel || !mesh || !tile_attr_get(&f->attrs, "mesh")) continue;
    Region R = {0};
    for (TileOp *op = f->body->first, *next; op; op = next) {
      next = op->next;
      if (op->kind != TILE_OP_ALL_GATHER || !find_region(mesh, f, op, &R)) continue;
      if (!rewrite(m, f, &R, d)) {
        free(R.ops);
        return TILE_PASS_INTERNAL;
      }
      next = f->body->first; /* the steps leave no all_gather behind */
    }
    free(R.ops);
  }
  return TILE_PASS_OK;
}
