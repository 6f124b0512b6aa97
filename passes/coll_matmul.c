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
 * Over two mesh axes (a gather and a reduce_scatter over [a, b], each on one torus dim)
 * the ring is the cycle through both (collective_permute's `cycle`): every step is one
 * hop, also where neither axis wraps. Its permutes take `halves`: the first half of
 * each chunk's rows goes round one way and the second the other way, so each step puts
 * half the bytes on each direction of the links (a ring over lines would send its
 * closing step back across the line, which the cycle has none of).
 *
 * Needs: a verified module after spmd (per-chip shapes; collectives over mesh axes).
 * Guarantees: the same values as the block it replaces, up to the order of the
 * partial sums' additions. Taken only where it pays:
 *   - one mesh axis of p >= 2 chips, on one torus dim (its ring is one hop a step),
 *     with chunks of at least COLL_MM_MIN_ROWS rows: each step reads every weight of
 *     the block again, and below that a step's matmuls would wait for HBM;
 *   - or two such axes with a cycle through them, chunks of at least
 *     COLL_MM_CYCLE_MIN_ROWS rows (an even number), and a step's weights read from HBM
 *     taking no longer than its hops (cycle_pays: the steps then run at the links'
 *     pace, which the collectives alone need);
 *   - every value between the gather and the reduce_scatter is used only there, so
 *     nothing needs the whole rows.
 * Where the block is not row-local, its gather end alone may run as steps (a gather
 * ring, below: one axis, the same rows), each of the values read after it joined with
 * ring_concat: the values the gather and the ops gave; and a reduce_scatter of a
 * matmul's partial sums may run as steps (a scatter ring, below), the row-wise ops
 * after it on each piece of the rows as its sums come in. */
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
/* Rows per chunk from which a cycle is taken: there a step runs at the links' pace
 * (cycle_pays), but its matmuls load every weight tile into the MXUs for its rows, and
 * below the MXUs' 128 rows (every target's mxu.dim) those loads outnumber the rows
 * pushed. mlp_prefill_64 on v5e-like (32 rows a chip): 1,014,999 cycles with the
 * collectives, 1,022,347 round the cycle. */
enum { COLL_MM_CYCLE_MIN_ROWS = 128 };
/* Values a gather ring joins, at most (a block's few matmuls). */
enum { REGION_MAX_VALUES = 8 };
/* Pieces a gather or scatter ring cuts its chunks into, at most. */
enum { MAX_PIECES = 4 };

/* Ops that act on each element alone (the pass runs before decompose, so the
 * elementwise composites are still whole). */
static bool elementwise(TileOpKind k) {
  return tile_op_is_elementwise(k) || k == TILE_OP_GELU || k == TILE_OP_SILU;
}

/* The values of the block between the gather and the reduce_scatter. */
typedef struct Region {
  TileOp **ops;        /* in program order */
  int *rdim;           /* the dim of each op's result that holds the rows */
  int n, cap;
  TileOp *ag, *rs;     /* rs NULL: a gather ring */
  const TileMeshAxis *axis, *cycle; /* cycle: the second axis of a two-axis ring, or NULL */
  int64_t p, rows;     /* chips on the ring; rows of a chunk */
  /* A gather ring's ops whose values ops after it read (each joined by ring_concat),
   * and the whole-row values its ops read beside the chunk (rope's tables: each step
   * slices its chunk of them, ring_slice). */
  int exits[REGION_MAX_VALUES];
  TileValue *ins[REGION_MAX_VALUES];
  int nexits, nins;
  TileOp *at;          /* a gather ring: the first op after it that reads its values */
  int pieces;          /* gather and scatter rings: the pieces a chunk's rows are cut
                        * into, piece k rows [poff[k], poff[k] + prow[k]) of each chunk */
  int64_t poff[MAX_PIECES], prow[MAX_PIECES];
} Region;

/* The dim of v that holds the rows, for the gathered value and the region's; -1 for
 * any other value. */
static int row_dim_of(const Region *R, const TileValue *v) {
  if (v == R->ag->res[0]) return 0;
  for (int i = 0; i < R->n; i++)
    if (R->ops[i]->res[0] == v) return R->rdim[i];
  return -1;
}

static bool region_has(const Region *R, const TileValue *v) { return row_dim_of(R, v) >= 0; }

static bool region_add(Region *R, TileOp *op, int rdim) {
  if (R->n == R->cap) {
    int cap = R->cap ? 2 * R->cap : 16;
    TileOp **o = realloc(R->ops, sizeof *o * (size_t)cap);
    if (o) R->ops = o;
    int *d = o ? realloc(R->rdim, sizeof *d * (size_t)cap) : NULL;
    if (!d) return false;
    R->rdim = d;
    R->cap = cap;
  }
  R->rdim[R->n] = rdim;
  R->ops[R->n++] = op;
  return true;
}

/* The ring a collective runs round: its one mesh axis, or its two with a cycle through
 * them (*cycle the second), each on one torus dim; false for any other axes. */
static bool ring_of(const TileMesh *mesh, const TileOp *op, const TileMeshAxis **axis,
                    const TileMeshAxis **cycle) {
  const TileAttr *a = tile_attr_get(&op->attrs, "axes");
  if (!a || a->kind != TILE_ATTR_ARRAY || a->n < 1 || a->n > 2) return false;
  const TileMeshAxis *ax[2] = {NULL, NULL};
  for (int i = 0; i < a->n; i++) {
    if (a->elems[i].kind != TILE_ATTR_IDENT) return false;
    ax[i] = tile_mesh_find_axis(mesh, a->elems[i].s);
    if (!ax[i] || ax[i]->ndims != 1 || ax[i]->size < 2) return false;
  }
  *axis = ax[0];
  *cycle = ax[1];
  return !ax[1] || tile_mesh_cycle_pos(ax[0]->size, ax[1]->size, 0, 0) >= 0;
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

/* Whether an op of f other than R's and the reduce_scatter reads v. */
static bool used_outside(const TileFunc *f, const Region *R, const TileValue *v) {
  for (const TileOp *op = f->body->first; op; op = op->next) {
    bool inside = op == R->rs;
    for (int i = 0; i < R->n && !inside; i++) inside = R->ops[i] == op;
    for (int k = 0; k < op->nopnd && !inside; k++)
      if (op->opnd[k].v == v) return true;
  }
  return false;
}

/* Whether an op other than the region's and the reduce_scatter reads a region value. */
static bool read_outside(const TileFunc *f, const Region *R) {
  if (used_outside(f, R, R->ag->res[0])) return true;
  for (int i = 0; i < R->n; i++)
    if (used_outside(f, R, R->ops[i]->res[0])) return true;
  return false;
}

/* The bytes of one chunk of v. */
static double chunk_bytes(const Region *R, const TileValue *v) {
  return (double)tile_type_bytes(&v->type) / (double)R->p;
}

/* Whether the steps round a cycle run at the links' pace: a step reads the block's
 * weights (the matmuls' right operands) from HBM and puts half a chunk of x and half a
 * chunk of sums on each direction of a link, so the weights' bytes must be at most
 * hbm_per_link times those. And only on lines: where a dim wraps, the collectives run a
 * ring on each of its links and the cycle would leave half of a chip's links idle
 * (mlp_prefill_16 on v5p-like's wrapped 4x4: 516,318 cycles with the collectives,
 * 522,175 round the cycle). The VLIW lowering keeps weights that several steps read in
 * VMEM where they fit (lower_resident.c), so this errs toward the collectives. */
static bool cycle_pays(const TileModule *m, const Region *R) {
  if (m->wrap_dims >> R->axis->dims[0] & 1 || m->wrap_dims >> R->cycle->dims[0] & 1)
    return false;
  double weights = 0;
  for (int i = 0; i < R->n; i++) {
    if (R->ops[i]->kind != TILE_OP_MATMUL) continue;
    weights += (double)tile_type_bytes(&R->ops[i]->opnd[1].v->type);
  }
  double hop = (chunk_bytes(R, R->ag->res[0]) + chunk_bytes(R, R->rs->opnd[0].v)) / 2;
  return m->hbm_per_link > 0 && weights <= m->hbm_per_link * hop;
}

/* Collects the region that starts at the all_gather ag; false when the block is not
 * one the decomposition takes. */
static bool find_region(const TileModule *m, const TileMesh *mesh, const TileFunc *f,
                        TileOp *ag, Region *R) {
  *R = (Region){.ops = R->ops, .rdim = R->rdim, .cap = R->cap, .ag = ag};
  const TileType *in = &ag->opnd[0].v->type, *out = &ag->res[0]->type;
  if (!ring_of(mesh, ag, &R->axis, &R->cycle) || !attr_is(ag, "dim", 0) || in->rank != 2 ||
      in->dims[0] <= 0)
    return false;
  R->rows = in->dims[0];
  R->p = out->dims[0] / in->dims[0];
  if (R->p != R->axis->size * (R->cycle ? R->cycle->size : 1)) return false;
  if (R->rows < (R->cycle ? COLL_MM_CYCLE_MIN_ROWS : COLL_MM_MIN_ROWS) || R->rows % 2)
    return false;
  bool matmul = false;
  for (TileOp *op = ag->next; op; op = op->next) {
    bool reads = false;
    for (int k = 0; k < op->nopnd && !reads; k++) reads = region_has(R, op->opnd[k].v);
    if (!reads) continue;
    if (op->kind == TILE_OP_REDUCE_SCATTER) {
      const TileMeshAxis *axis, *cycle;
      if (R->rs || !ring_of(mesh, op, &axis, &cycle) || axis != R->axis ||
          cycle != R->cycle || !attr_is(op, "dim", 0) || !kind_is(op, "add") ||
          op->res[0]->type.dims[0] != R->rows)
        return false;
      R->rs = op;
      continue;
    }
    if (!row_local(R, op) || !region_add(R, op, 0)) return false;
    matmul |= op->kind == TILE_OP_MATMUL;
  }
  return R->rs && matmul && region_has(R, R->rs->opnd[0].v) && !read_outside(f, R) &&
         (!R->cycle || cycle_pays(m, R));
}

/* ---- gather rings ---- */

/* Where a block's rows are not all local (attention reads every row's keys), the whole
 * ring does not apply, but its gather end still does: the ops right after the gather
 * that work on each row alone (the q, k and v projections, their reshapes and
 * transposes to heads, the ropes on the step's chunk of their tables) run one chunk a
 * step while the next chunk travels, and each of their values read after them is
 * joined from its chunks in row order along the dim that holds the rows (ring_concat,
 * which reads the chip's position: one axis). The scatter end was
 * tried the same way (the output projection on chunk (r - s) of its rows at step s,
 * ring_slice) and lost: its steps are a few matmul blocks against a hop of f32 sums,
 * and each hop then waits for the add of the one before in HBM, where the line
 * reduce_scatter adds in VMEM as the chunks stream (layer_prefill_4 on v5e-like
 * 3,458,196 cycles -> 3,461,172, layer_prefill_64 3,416,393 -> 3,540,066). */

static int input_index(const Region *R, const TileValue *v) {
  for (int i = 0; i < R->nins; i++)
    if (R->ins[i] == v) return i;
  return -1;
}

static bool single_axis_ring(const TileMesh *mesh, const TileOp *op, Region *R) {
  return ring_of(mesh, op, &R->axis, &R->cycle) && !R->cycle && attr_is(op, "dim", 0);
}

static bool has_matmul(const Region *R) {
  for (int i = 0; i < R->n; i++)
    if (R->ops[i]->kind == TILE_OP_MATMUL) return true;
  return false;
}

static int64_t dims_product(const TileType *t, int from, int to) {
  int64_t n = 1;
  for (int i = from; i < to; i++) n *= t->dims[i];
  return n;
}

/* Whether v is a whole-row table a step slices along dim 0 (rope's cos and sin). */
static bool whole_rows(const Region *R, const TileValue *v) {
  return row_dim_of(R, v) < 0 && v->type.kind == TILE_TY_TENSOR && v->type.rank == 2 &&
         v->type.dims[0] == R->p * R->rows;
}

/* The dim of op's result that holds the rows where op can run on a chunk of them, -1
 * where it cannot: a matmul of rows (dim 0) by a value from outside, an elementwise op
 * on values with their rows in one dim (and splats), a reshape that keeps the rows'
 * dim whole with the same elements before and after it, a transpose, and a rope over
 * the rows (dim rank - 2) by whole-row tables. */
static int gather_row_dim(const Region *R, const TileOp *op) {
  if (op->nres != 1 || op->nregion || op->res[0]->type.kind != TILE_TY_TENSOR) return -1;
  const TileType *t = &op->res[0]->type, *a = &op->opnd[0].v->type;
  int k = row_dim_of(R, op->opnd[0].v), d = -1;
  switch (op->kind) {
  case TILE_OP_MATMUL:
    if (k == 0 && t->rank == 2 && a->rank == 2 && row_dim_of(R, op->opnd[1].v) < 0) d = 0;
    break;
  case TILE_OP_RESHAPE:
    for (int j = 0; k >= 0 && j < t->rank && d < 0; j++)
      if (t->dims[j] == a->dims[k] && dims_product(t, 0, j) == dims_product(a, 0, k)) d = j;
    break;
  case TILE_OP_TRANSPOSE: {
    const TileAttr *perm = tile_attr_get(&op->attrs, "perm");
    for (int j = 0; k >= 0 && perm && j < perm->n; j++)
      if (perm->elems[j].i == k) d = j;
    break;
  }
  case TILE_OP_ROPE:
    if (k == a->rank - 2 && whole_rows(R, op->opnd[1].v) && whole_rows(R, op->opnd[2].v)) d = k;
    break;
  default:
    if (!elementwise((TileOpKind)op->kind)) return -1;
    for (int j = 0; j < op->nopnd; j++) {
      const TileValue *v = op->opnd[j].v;
      if (v->type.kind != TILE_TY_TENSOR || tile_value_is_splat(v)) continue;
      int e = row_dim_of(R, v);
      if (e < 0 || (d >= 0 && e != d)) return -1;
      d = e;
    }
  }
  return d >= 0 && t->dims[d] == R->p * R->rows ? d : -1;
}

/* Pieces a gather ring cuts each chunk's rows into, each hopping on its own, so the
 * last chunk's work starts when its first piece lands (layer_prefill_4 on v5e-like,
 * 3,237,407 cycles in one piece, 3,205,634 in two, 3,221,048 in four, whose steps'
 * matmuls are too short; layer_prefill_64 3,297,505, 3,228,443, 3,250,271). */
enum { GATHER_RING_PIECES = 2 };
/* The last piece's share of a chunk's rows, in eighths: the last step's work on it is
 * what runs after the last hop has landed, and its first piece's runs while the last
 * travels, so the last piece is the smaller (layer_prefill_4 on v5e-like: 3,171,417
 * cycles with even pieces, 3,164,482 with three eighths, 3,178,201 with two, 3,177,491
 * with five; layer_prefill_64 3,193,314, 3,192,323, 3,196,245, 3,195,584). */
enum { GATHER_LAST_EIGHTHS = 3 };
/* Pieces keep whole 8-row tiles (the targets' vreg sublanes). */
enum { SUBLANE_ROWS = 8 };

/* Cuts R's chunks (R->rows rows) into m pieces: even ones, or with `eighths` the last
 * piece that many eighths of the rows (whole tiles) and the others even over the
 * rest. */
static void cut_pieces(Region *R, int m, int eighths) {
  int64_t last = R->rows / m;
  if (eighths && m > 1)
    last = (R->rows * eighths / 8 + SUBLANE_ROWS - 1) / SUBLANE_ROWS * SUBLANE_ROWS;
  int64_t rest = R->rows - last, off = 0;
  R->pieces = m;
  for (int k = 0; k < m; k++) {
    R->prow[k] = k + 1 < m ? rest / (m - 1) : last;
    if (k + 1 < m && k < rest % (m - 1)) R->prow[k]++;
    R->poff[k] = off;
    off += R->prow[k];
  }
}

/* The ops after the gather ag that can run on a chunk of its rows, up to the first op
 * that reads their values and cannot (R->at); their values read after it are the
 * exits, rope's tables the inputs. Chunks of whole 8-row tiles go in pieces. */
static bool find_gather_ring(const TileModule *m, const TileMesh *mesh, const TileFunc *f,
                             TileOp *ag, Region *R) {
  *R = (Region){.ops = R->ops, .rdim = R->rdim, .cap = R->cap, .ag = ag};
  const TileType *in = &ag->opnd[0].v->type, *out = &ag->res[0]->type;
  if (!single_axis_ring(mesh, ag, R) || in->rank != 2 || in->dims[0] <= 0) return false;
  /* Its hops go one way round; where the dim wraps, the all_gather runs rings both
   * ways and moves the chunks in half the time (layer_prefill_4 on v4-like: 2,216,552
   * cycles with the all_gather, 2,223,850 with the ring; on v5e-like's lines the ring
   * takes what the line all_gather took). */
  if (m->wrap_dims >> R->axis->dims[0] & 1) return false;
  R->rows = in->dims[0];
  R->p = out->dims[0] / in->dims[0];
  if (R->p != R->axis->size || R->rows < COLL_MM_MIN_ROWS) return false;
  for (TileOp *op = ag->next; op && !R->at; op = op->next) {
    bool reads = false;
    for (int k = 0; k < op->nopnd && !reads; k++) reads = row_dim_of(R, op->opnd[k].v) >= 0;
    if (!reads) continue;
    int d = gather_row_dim(R, op);
    if (d < 0) R->at = op;
    else if (!region_add(R, op, d)) return false;
  }
  if (!R->at || !has_matmul(R) || used_outside(f, R, ag->res[0])) return false;
  for (int i = 0; i < R->n; i++) {
    const TileOp *op = R->ops[i];
    for (int k = 1; op->kind == TILE_OP_ROPE && k < 3; k++) {
      if (input_index(R, op->opnd[k].v) >= 0) continue;
      if (R->nins == REGION_MAX_VALUES) return false;
      R->ins[R->nins++] = op->opnd[k].v;
    }
    if (!used_outside(f, R, op->res[0])) continue;
    if (R->nexits == REGION_MAX_VALUES) return false;
    R->exits[R->nexits++] = i;
  }
  cut_pieces(R, R->rows % SUBLANE_ROWS ? 1 : GATHER_RING_PIECES, GATHER_LAST_EIGHTHS);
  return R->nexits > 0;
}

/* ---- scatter rings ---- */

/* Where the rows a block's output projection reads are not all local (the attention's
 * output), the whole ring does not apply either, but its scatter end does: the
 * matmul whose partial sums the reduce_scatter adds runs one chunk of its rows a step
 * (ring_slice of its left operand), each step adding what came from the chip before
 * and sending the sum on, as the whole ring's sums go. Its chunks' rows are cut into
 * SCATTER_RING_PIECES rings that run side by side, each with its own hops: a chip adds
 * one piece while the next piece is on the link, where one ring would hold the link
 * idle while each hop's whole add runs in HBM (layer_prefill_4 on v5e-like, 3,411,615
 * cycles with the reduce_scatter: one ring 3,422,508, two 3,315,179, four 3,298,624,
 * eight 3,392,524; layer_prefill_64 3,382,973: one 3,510,538, two 3,333,234, four
 * 3,325,440). The same lines as gather rings: where the dim wraps, the reduce_scatter
 * runs half rings both ways. */
enum { SCATTER_RING_PIECES = 4 };

/* Whether v is defined before op in f's body (or is an argument): an op moved up to
 * op's place may read it. */
static bool defined_before(const TileFunc *f, const TileValue *v, const TileOp *op) {
  if (!v->def) return true;
  for (const TileOp *o = f->body->first; o && o != op; o = o->next)
    if (o == v->def) return true;
  return false;
}

/* Whether v holds a scatter ring's result rows: the reduce_scatter's result or a value
 * of its tail. */
static bool in_tail(const Region *R, const TileValue *v) {
  if (v == R->rs->res[0]) return true;
  for (int i = 1; i < R->n; i++)
    if (R->ops[i]->res[0] == v) return true;
  return false;
}

/* Whether op, which reads the reduce_scatter's result or its tail, acts on each of its
 * rows alone, so it can run on a piece of them as the piece's sums are made: an
 * elementwise op whose other tensors are tail values, splats or tables of the same
 * rows from before the reduce_scatter (each piece slices its rows of them), or a norm
 * over the last dim (its scale and shift read whole). Those tables are R's inputs. */
static bool tail_op(const TileFunc *f, Region *R, const TileOp *op) {
  if (op->nres != 1 || op->nregion || op->res[0]->type.kind != TILE_TY_TENSOR) return false;
  const TileType *t = &op->res[0]->type;
  int64_t rows = R->rs->res[0]->type.dims[0];
  bool norm = op->kind == TILE_OP_RMSNORM || op->kind == TILE_OP_LAYERNORM;
  if (t->rank < (norm ? 2 : 1) || t->dims[0] != rows) return false;
  if (!norm && !elementwise((TileOpKind)op->kind)) return false;
  for (int k = 0; k < op->nopnd; k++) {
    TileValue *v = op->opnd[k].v;
    if (in_tail(R, v)) {
      if (norm && k > 0) return false;
      continue;
    }
    if (!defined_before(f, v, R->rs)) return false;
    if (norm && k > 0) continue;
    if (v->type.kind != TILE_TY_TENSOR || tile_value_is_splat(v)) continue;
    if (norm || v->type.rank != t->rank || v->type.dims[0] != rows) return false;
    if (input_index(R, v) < 0) {
      if (R->nins == REGION_MAX_VALUES) return false;
      R->ins[R->nins++] = v;
    }
  }
  return true;
}

static bool find_scatter_ring(const TileModule *m, const TileMesh *mesh, const TileFunc *f,
                              TileOp *rs, Region *R) {
  *R = (Region){.ops = R->ops, .rdim = R->rdim, .cap = R->cap, .rs = rs};
  TileOp *mm = rs->opnd[0].v->def;
  if (!single_axis_ring(mesh, rs, R) || !kind_is(rs, "add") || !mm ||
      mm->kind != TILE_OP_MATMUL || mm->res[0]->type.rank != 2 ||
      mm->opnd[0].v->type.rank != 2 || m->wrap_dims >> R->axis->dims[0] & 1)
    return false;
  int64_t rows = rs->res[0]->type.dims[0];
  R->p = R->axis->size;
  R->rows = rows;
  if (rows < COLL_MM_MIN_ROWS || rows % SCATTER_RING_PIECES ||
      mm->res[0]->type.dims[0] != R->p * rows || !region_add(R, mm, 0))
    return false;
  cut_pieces(R, SCATTER_RING_PIECES, 0);
  for (TileOp *op = rs->next; op && !R->at; op = op->next) {
    bool reads = false;
    for (int k = 0; k < op->nopnd && !reads; k++) reads = in_tail(R, op->opnd[k].v);
    if (!reads) continue;
    if (!tail_op(f, R, op)) R->at = op;
    else if (!region_add(R, op, 0)) return false;
  }
  if (used_outside(f, R, mm->res[0])) return false;
  /* exits: op indices, 0 standing for the reduce_scatter's result */
  for (int i = 0; i < R->n; i++) {
    if (!used_outside(f, R, i ? R->ops[i]->res[0] : rs->res[0])) continue;
    if (R->nexits == REGION_MAX_VALUES) return false;
    R->exits[R->nexits++] = i;
  }
  return R->nexits > 0;
}

/* ---- the rewrite ---- */

typedef struct Rewrite {
  TileModule *m;
  TileBuilder *b;
  TileNameSet *names;
  const Region *R;
  TileValue **map; /* region op i's value in the step being built */
  TileValue *sliced[REGION_MAX_VALUES]; /* the step's chunk of each input, once made */
  TileValue *joined[REGION_MAX_VALUES]; /* a scatter ring's exits, joined */
  int64_t rows; /* rows of the chunk (or piece of it) being built */
  TileValue *const *tables; /* where each input's chunks are sliced from, or NULL: the
                             * inputs themselves (a gather ring's piece: its tables) */
  TileOp *early[MAX_PIECES]; /* a whole ring's first hops of pieces, to move up */
  int nearly;
  bool failed;
} Rewrite;

/* t with a chunk of the rows in dim d. */
static TileType chunk_type(const Rewrite *w, TileType t, int d) {
  t.dims[d] = w->rows;
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
  op->loc = like->def ? like->def->loc : (w->R->ag ? w->R->ag : w->R->rs)->loc;
  op->res[0]->name = step_name(w, like, what, s);
  op->res[0]->loc = op->loc;
  return op->res[0];
}

/* One hop round the ring: what the chip before holds (on a cycle, the first half of
 * the rows from the chip before, the second from the chip after). A `late` hop is
 * expected to land only as the work after it ends (the last hop of the sums, which the
 * end of step 0 is cut to cover): the fuse pass keeps its reader out of a matmul's
 * epilogue, which would wait for it in the middle of the matmul. */
static TileValue *hop_by(Rewrite *w, TileValue *v, int64_t shift, const TileValue *like,
                         const char *what, int s, bool late) {
  const Region *R = w->R;
  TileNamedAttr at[5] = {{"axis", tile_attr_ident(w->m, R->axis->name)},
                         {"shift", tile_attr_int(shift)}};
  int n = 2;
  if (R->cycle) {
    at[n++] = (TileNamedAttr){"cycle", tile_attr_ident(w->m, R->cycle->name)};
    at[n++] = (TileNamedAttr){"halves", tile_attr_int(1)};
  }
  if (late) at[n++] = (TileNamedAttr){"late", tile_attr_int(1)};
  TileUse u = {.v = v};
  return build(w, TILE_OP_COLLECTIVE_PERMUTE, 1, &u, n, at, v->type, like, what, s);
}

static TileValue *hop(Rewrite *w, TileValue *v, const TileValue *like, const char *what, int s,
                      bool late) {
  return hop_by(w, v, 1, like, what, s, late);
}

static TileValue *add(Rewrite *w, TileValue *a, TileValue *b, const TileValue *like, int s) {
  TileUse u[2] = {{.v = a}, {.v = b}};
  return build(w, TILE_OP_ADD, 2, u, 0, NULL, a->type, like, "acc", s);
}

/* The chunk of whole-row table v (rows in dim 0) that step s holds: chunk (r - s) mod
 * p, the rows that travelled s hops. */
static TileValue *ring_slice(Rewrite *w, TileValue *v, int s) {
  TileNamedAttr at[2] = {{"axis", tile_attr_ident(w->m, w->R->axis->name)},
                         {"step", tile_attr_int(s)}};
  TileUse u = {.v = v};
  return build(w, TILE_OP_RING_SLICE, 1, &u, 2, at, chunk_type(w, v->type, 0), v, "c", s);
}

/* Region ops lo .. hi - 1 on chunk xb, their values in map (one map per step, so a
 * step may be built in two parts); returns the value the reduce_scatter read once it
 * is built. */
static TileValue *step(Rewrite *w, TileValue **map, TileValue *xb, int s, int lo, int hi) {
  const Region *R = w->R;
  if (lo == 0) memset(w->sliced, 0, sizeof w->sliced);
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
      int in = input_index(R, v);
      if (in >= 0 && !w->sliced[in])
        w->sliced[in] = ring_slice(w, w->tables ? w->tables[in] : R->ins[in], s);
      if (in >= 0) u[k].v = w->sliced[in];
      if (tile_value_is_splat(v) && v->type.kind == TILE_TY_TENSOR && v->type.rank)
        u[k].v = build(w, TILE_OP_CONSTANT, 0, NULL, v->def->attrs.n, v->def->attrs.items,
                       chunk_type(w, v->type, R->rdim[i]), v, "s", s);
    }
    map[i] = build(w, (TileOpKind)op->kind, op->nopnd, u, op->attrs.n, op->attrs.items,
                   chunk_type(w, op->res[0]->type, R->rdim[i]), op->res[0], "s", s);
  }
  for (int i = lo; i < hi && R->rs; i++) /* a gather ring has no sum */
    if (R->ops[i]->res[0] == R->rs->opnd[0].v) return map[i];
  return NULL;
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

/* The block's residual: the reduce_scatter's one reader, an add of a value v of the
 * same type made before the steps. The chip's own partial takes v first, in the last
 * matmul's epilogue while the last hop of the sums is on the link, so what is left once
 * it lands reads two values, not three (layer_prefill_4 on v5e-like: 3,188,454 cycles
 * -> 3,178,100). v may be a join of a scatter ring's tail (placed before its first
 * reader, this add): it moves up to before the steps' last matmul, beside which the
 * hop is still travelling. NULL where there is no such add. */
static TileOp *residual(TileFunc *f, const Region *R) {
  const TileValue *rs = R->rs->res[0];
  TileOp *res = NULL;
  for (TileOp *op = f->body->first; op; op = op->next)
    for (int k = 0; k < op->nopnd; k++) {
      if (op->opnd[k].v != rs) continue;
      if (res) return NULL;
      res = op;
    }
  if (!res || res->kind != TILE_OP_ADD || res->nopnd != 2 ||
      res->opnd[0].v == res->opnd[1].v || !tile_type_eq(&res->res[0]->type, &rs->type))
    return NULL;
  TileValue *v = res->opnd[res->opnd[0].v == rs].v;
  if (!tile_type_eq(&v->type, &rs->type)) return NULL;
  if (defined_before(f, v, R->ag)) return res;
  TileOp *join = v->def;
  if (join->kind != TILE_OP_CONCATENATE) return NULL;
  for (int k = 0; k < join->nopnd; k++)
    if (!defined_before(f, join->opnd[k].v, R->ag)) return NULL;
  return res;
}

/* Where the ring's x is a scatter ring's join of pieces made before it (the block's
 * norm, row by row as the sums came in), its first hop goes piece by piece, each sent
 * right after its piece is made (rewrite moves it there): the first piece leaves as
 * soon as the links are free, not after the last piece and the join; the chip after
 * joins them before its step 1 (layer_prefill_4 on v5e-like: 3,178,100 cycles ->
 * 3,171,417; layer_prefill_64 3,215,826 -> 3,193,314). The join, or NULL where x is
 * not one. */
static const TileOp *first_pieces(const TileFunc *f, const Region *R) {
  const TileOp *join = R->ag->opnd[0].v->def;
  if (R->cycle || !join || join->kind != TILE_OP_CONCATENATE || !attr_is(join, "dim", 0) ||
      join->nopnd > MAX_PIECES)
    return NULL;
  for (int k = 0; k < join->nopnd; k++)
    if (!join->opnd[k].v->def || !defined_before(f, join->opnd[k].v, R->ag)) return NULL;
  return join;
}

/* A whole ring's steps, built before the reduce_scatter; false when they do not build. */
static bool whole_steps(Rewrite *w, TileFunc *f) {
  const Region *R = w->R;
  TileValue **own_map = w->map + R->n + 1;
  int tail = tail_start(R);
  /* Each permute is placed as soon as what it sends is made, so it runs beside the
   * matmuls that follow it. Over one axis of 4 chips the last step's chunk comes the
   * other way round, one hop back from the chip after, sent beside the second step's
   * chunk, while that step's matmuls leave the links idle: one hop a step would put it
   * on the links between the first and the second sums, which the third step's last
   * matmul then waits for (v5e-like: mlp_prefill_4 1,691,262 -> 1,681,866 cycles,
   * layer_prefill_4 3,199,802 -> 3,190,406; over 8, layer_prefill_64 3,225,524 ->
   * 3,230,021, so not there). */
  TileValue *x = R->ag->opnd[0].v, *xb = x, *recv = NULL, *last = NULL;
  const TileValue *like = R->rs->res[0];
  bool back = !R->cycle && R->p == 4;
  const TileOp *join = first_pieces(f, R);
  TileUse first[MAX_PIECES];
  for (int s = 0; s < R->p && !w->failed; s++) {
    if (join && s == 1) { /* the first chunk, from its pieces, before step 1 reads it */
      TileNamedAttr dim = {"dim", tile_attr_int(0)};
      xb = build(w, TILE_OP_CONCATENATE, join->nopnd, first, 1, &dim, x->type, x, "x", 1);
    }
    TileValue *next = back && s + 1 == R->p - 1 ? last
                      : s + 1 < R->p && !(join && s == 0) ? hop(w, xb, x, "x", s + 1, false)
                                                          : NULL;
    for (int k = 0; join && s == 0 && k < join->nopnd && !w->failed; k++) {
      first[k] = (TileUse){.v = hop(w, join->opnd[k].v, x, "x", 1, false)};
      if (first[k].v) w->early[w->nearly++] = first[k].v->def;
    }
    if (back && s == 1) last = hop_by(w, x, R->p - 1, x, "x", (int)R->p - 1, false);
    if (s == 0) {
      step(w, own_map, xb, 0, 0, tail);
    } else {
      TileValue *y = step(w, w->map, xb, s, 0, R->n);
      TileValue *acc = s == 1 ? y : add(w, y, recv, like, s);
      recv = acc ? hop(w, acc, like, "recv", s + 1, s + 1 == R->p) : NULL;
    }
    xb = next;
  }
  TileValue *own = w->failed ? NULL : step(w, own_map, x, 0, tail, R->n);
  TileOp *res = own ? residual(f, R) : NULL;
  if (res) {
    TileValue *v = res->opnd[res->opnd[0].v == R->rs->res[0]].v;
    if (!defined_before(f, v, R->ag)) { /* a join: up to before the last matmul */
      tile_op_erase(v->def);
      tile_op_insert_before(v->def, own->def);
    }
    own = add(w, own, v, like, 0);
  }
  TileValue *sum = w->failed || !own ? NULL : add(w, own, recv, like, (int)R->p);
  if (!sum) return false;
  tile_replace_all_uses(f, res ? res->res[0] : R->rs->res[0], sum);
  if (res) tile_op_erase(res);
  return true;
}

/* v ([p * rows, K], the rows of the p chunks) as [p, rows, K]: a view (a reshape) whose
 * dim 1 a slice cuts a piece of every chunk from. */
static TileValue *pieces_view(Rewrite *w, TileValue *v) {
  TileType t = v->type;
  t.rank = 3;
  int64_t d[3] = {w->R->p, w->R->rows, v->type.dims[1]};
  memcpy(t.dims, d, sizeof d);
  TileUse u = {.v = v};
  return build(w, TILE_OP_RESHAPE, 1, &u, 0, NULL, t, v, "pieces", 0);
}

/* Piece k of every chunk of v (the view above), chunk after chunk as [p * prow[k], K],
 * so a step takes its piece with ring_slice. */
static TileValue *piece_table(Rewrite *w, TileValue *view, const TileValue *v, int k) {
  const Region *R = w->R;
  int64_t K = v->type.dims[1], start[3] = {0, R->poff[k], 0},
          limit[3] = {R->p, R->poff[k] + R->prow[k], K};
  TileType t1 = view->type, t2 = v->type;
  t1.dims[1] = R->prow[k];
  t2.dims[0] = R->p * R->prow[k];
  TileNamedAttr at[2] = {{"start", tile_attr_ints(w->m, 3, start)},
                         {"limit", tile_attr_ints(w->m, 3, limit)}};
  TileUse u = {.v = view};
  u.v = build(w, TILE_OP_SLICE, 1, &u, 2, at, t1, v, "piece", k);
  return build(w, TILE_OP_RESHAPE, 1, &u, 0, NULL, t2, v, "rows", k);
}

/* Piece k's rows of v, a chunk's rows in dim 0 (the own chunk, a table the tail reads). */
static TileValue *row_piece(Rewrite *w, TileValue *v, int k) {
  int64_t start[TILE_MAX_RANK] = {0}, limit[TILE_MAX_RANK];
  for (int d = 0; d < v->type.rank; d++) limit[d] = v->type.dims[d];
  start[0] = w->R->poff[k];
  limit[0] = start[0] + w->R->prow[k];
  TileNamedAttr at[2] = {{"start", tile_attr_ints(w->m, v->type.rank, start)},
                         {"limit", tile_attr_ints(w->m, v->type.rank, limit)}};
  TileUse u = {.v = v};
  TileType t = v->type;
  t.dims[0] = w->R->prow[k];
  return build(w, TILE_OP_SLICE, 1, &u, 2, at, t, v, "p", k);
}

/* A gather ring's steps, built before R->at: step s runs the region on the chunk that
 * travelled s hops while the next one travels, piece by piece (each piece its own
 * hops, so a piece's work starts as it lands); each exit joins a step's pieces in row
 * order and its p chunks by position. False when they do not build. */
static bool gather_steps(Rewrite *w, TileFunc *f) {
  const Region *R = w->R;
  int m = R->pieces;
  TileUse *parts = calloc((size_t)(R->nexits * R->p), sizeof *parts);
  TileValue *x = R->ag->opnd[0].v, *xb[MAX_PIECES], *next[MAX_PIECES] = {0};
  TileValue *tables[MAX_PIECES][REGION_MAX_VALUES], *views[REGION_MAX_VALUES];
  for (int in = 0; in < R->nins && m > 1; in++) views[in] = pieces_view(w, R->ins[in]);
  for (int s = 0; s < R->p && parts && !w->failed; s++) {
    TileUse pieces[MAX_PIECES][REGION_MAX_VALUES];
    for (int k = 0; k < m && !w->failed; k++) {
      w->rows = R->prow[k];
      if (s == 0) xb[k] = m > 1 ? row_piece(w, x, k) : x;
      next[k] = s + 1 < R->p ? hop(w, xb[k], x, "x", s + 1, false) : NULL;
      /* a piece's tables cut right after its first hop leaves */
      for (int in = 0; in < R->nins && m > 1 && s == 0; in++)
        tables[k][in] = piece_table(w, views[in], R->ins[in], k);
      w->tables = m > 1 ? tables[k] : NULL;
      step(w, w->map, xb[k], s, 0, R->n);
      for (int e = 0; e < R->nexits; e++) pieces[k][e] = (TileUse){.v = w->map[R->exits[e]]};
    }
    for (int e = 0; e < R->nexits && !w->failed; e++) {
      const TileValue *v = R->ops[R->exits[e]]->res[0];
      int d = R->rdim[R->exits[e]];
      TileUse u[MAX_PIECES];
      for (int k = 0; k < m; k++) u[k] = pieces[k][e];
      TileNamedAttr dim = {"dim", tile_attr_int(d)};
      TileType t = v->type;
      t.dims[d] = R->rows;
      parts[e * R->p + s].v =
          m > 1 ? build(w, TILE_OP_CONCATENATE, m, u, 1, &dim, t, v, "c", s) : u[0].v;
    }
    memcpy(xb, next, sizeof xb);
  }
  w->tables = NULL;
  TileValue *joined[REGION_MAX_VALUES] = {0};
  for (int e = 0; e < R->nexits && parts && !w->failed; e++) {
    const TileValue *v = R->ops[R->exits[e]]->res[0];
    int d = R->rdim[R->exits[e]];
    TileNamedAttr at[2] = {{"axis", tile_attr_ident(w->m, R->axis->name)},
                           {"dim", tile_attr_int(d)}};
    joined[e] = build(w, TILE_OP_RING_CONCAT, (int)R->p, parts + e * R->p, d ? 2 : 1, at,
                      v->type, v, "j", 0);
  }
  bool ok = parts && !w->failed;
  free(parts);
  for (int e = 0; e < R->nexits && ok; e++)
    tile_replace_all_uses(f, R->ops[R->exits[e]]->res[0], joined[e]);
  return ok;
}

/* The tail's ops on piece k, z its sums (the reduce_scatter's rows of the piece): their
 * values in map, the inputs' rows of the piece in ins[input][k]. */
static void tail_piece(Rewrite *w, TileValue *z, int k, TileValue **map,
                       TileValue *ins[][MAX_PIECES]) {
  const Region *R = w->R;
  for (int i = 1; i < R->n && !w->failed; i++) {
    const TileOp *op = R->ops[i];
    TileUse u[8];
    if (op->nopnd > 8) {
      w->failed = true;
      return;
    }
    for (int j = 0; j < op->nopnd; j++) {
      const TileValue *v = op->opnd[j].v;
      int in = input_index(R, v);
      u[j] = op->opnd[j];
      if (v == R->rs->res[0]) u[j].v = z;
      for (int q = 1; q < i; q++)
        if (R->ops[q]->res[0] == v) u[j].v = map[q];
      if (in >= 0) u[j].v = ins[in][k];
      else if (tile_value_is_splat(v) && v->type.kind == TILE_TY_TENSOR &&
               v->type.rank == op->res[0]->type.rank && v->type.dims[0] == R->rows)
        u[j].v = build(w, TILE_OP_CONSTANT, 0, NULL, v->def->attrs.n, v->def->attrs.items,
                       chunk_type(w, v->type, 0), v, "p", k);
    }
    map[i] = build(w, (TileOpKind)op->kind, op->nopnd, u, op->attrs.n, op->attrs.items,
                   chunk_type(w, op->res[0]->type, 0), op->res[0], "p", k);
  }
}

/* A scatter ring's exit e: the reduce_scatter's result (op index 0) or a tail value. */
static const TileValue *exit_value(const Region *R, int e) {
  return R->exits[e] ? R->ops[R->exits[e]]->res[0] : R->rs->res[0];
}

/* A scatter ring's steps, built before the reduce_scatter: at step s each piece's ring
 * runs the matmul on chunk (r - s) mod p of its rows and sends on its sum, the chip's
 * own chunk (s = 0) last, each of its pieces going on through the tail as soon as its
 * sums are in; each exit's pieces joined in row order (rewrite moves each join to
 * right before its first reader). False when they do not build. */
static bool scatter_steps(Rewrite *w, TileFunc *f) {
  const Region *R = w->R;
  const TileOp *mm = R->ops[0];
  const TileValue *like = R->rs->res[0];
  TileValue *table[MAX_PIECES], *recv[MAX_PIECES] = {0}, *ins[REGION_MAX_VALUES][MAX_PIECES];
  TileUse parts[REGION_MAX_VALUES][MAX_PIECES];
  memset(parts, 0, sizeof parts);
  TileValue *view = pieces_view(w, mm->opnd[0].v);
  for (int i = 1; i <= R->p && !w->failed; i++) {
    int s = (int)(i % R->p); /* the own chunk last */
    /* the tail's tables cut while the last hops are on the links */
    for (int in = 0; in < R->nins && !s; in++)
      for (int k = 0; k < R->pieces; k++) ins[in][k] = row_piece(w, R->ins[in], k);
    for (int k = 0; k < R->pieces && !w->failed; k++) {
      /* each piece's table right before its first step, so the later ones are cut
       * while the first hops are on the links */
      if (i == 1) table[k] = piece_table(w, view, mm->opnd[0].v, k);
      w->rows = R->prow[k];
      TileUse u[2] = {{.v = ring_slice(w, table[k], s)}, mm->opnd[1]};
      TileType t = chunk_type(w, mm->res[0]->type, 0);
      TileValue *y = build(w, TILE_OP_MATMUL, 2, u, mm->attrs.n, mm->attrs.items, t,
                           mm->res[0], "s", s);
      TileValue *acc = i == 1 ? y : add(w, y, recv[k], like, s);
      if (!acc) break;
      if (s) {
        recv[k] = hop(w, acc, like, "recv", i + 1, i + 1 == R->p);
        continue;
      }
      tail_piece(w, acc, k, w->map, ins);
      for (int e = 0; e < R->nexits; e++) parts[e][k].v = R->exits[e] ? w->map[R->exits[e]] : acc;
    }
  }
  for (int e = 0; e < R->nexits && !w->failed; e++) {
    const TileValue *v = exit_value(R, e);
    TileNamedAttr dim = {"dim", tile_attr_int(0)};
    w->joined[e] = build(w, TILE_OP_CONCATENATE, R->pieces, parts[e], 1, &dim, v->type, v, "j", 0);
  }
  if (w->failed) return false;
  for (int e = 0; e < R->nexits; e++)
    tile_replace_all_uses(f, exit_value(R, e), w->joined[e]);
  return true;
}

/* Moves each of a scatter ring's joins to right before its first reader, so the tail's
 * later readers (the block's residual, read at its end) do not hold the first. */
static void place_joins(TileValue *const *joins, int n) {
  for (int e = 0; e < n; e++) {
    TileOp *join = joins[e]->def, *op = join->next;
    while (op) {
      bool reads = false;
      for (int k = 0; k < op->nopnd && !reads; k++) reads = op->opnd[k].v == joins[e];
      if (reads) break;
      op = op->next;
    }
    if (!op || op == join->next) continue;
    tile_op_erase(join);
    tile_op_insert_before(join, op);
  }
}

/* Replaces the region by its steps (a whole ring's, or a gather ring's where R->rs is
 * NULL); false (an internal error reported) when they do not build. */
static bool rewrite(TileModule *m, TileFunc *f, const Region *R, TileDiag *d) {
  TileBuilder b;
  tile_builder_init(&b, m);
  tile_builder_set_block(&b, f->body);
  TileNameSet names;
  tile_names_init(&names, m, f);
  Rewrite w = {.m = m, .b = &b, .names = &names, .R = R, .rows = R->rows,
               .map = calloc(2 * ((size_t)R->n + 1), sizeof(TileValue *))};
  TileInsertPoint ip;
  tile_insert_begin(&ip, &b, R->rs ? R->rs : R->at);
  bool ok = w.map && !w.failed &&
            (!R->ag ? scatter_steps(&w, f) : R->rs ? whole_steps(&w, f) : gather_steps(&w, f));
  ok = ok && !w.failed;
  tile_insert_end(&ip, &b, ok);
  if (ok) {
    if (R->rs) tile_op_erase(R->rs);
    for (int i = R->n - 1; i >= 0; i--) tile_op_erase(R->ops[i]);
    if (R->ag) tile_op_erase(R->ag);
    else place_joins(w.joined, R->nexits);
    for (int k = 0; k < w.nearly; k++) { /* right after the piece it sends */
      TileOp *piece = w.early[k]->opnd[0].v->def;
      tile_op_erase(w.early[k]);
      tile_op_insert_before(w.early[k], piece->next);
    }
  } else {
    tile_error(d, (R->ag ? R->ag : R->rs)->loc, "internal error: coll_matmul: cannot build the steps: %s",
               b.diag.nerrors ? b.diag.last : "out of memory");
  }
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
      bool found = op->kind == TILE_OP_ALL_GATHER
                       ? find_region(m, mesh, f, op, &R) || find_gather_ring(m, mesh, f, op, &R)
                       : op->kind == TILE_OP_REDUCE_SCATTER && find_scatter_ring(m, mesh, f, op, &R);
      if (!found) continue;
      if (!rewrite(m, f, &R, d)) {
        free(R.ops);
        free(R.rdim);
        return TILE_PASS_INTERNAL;
      }
      next = f->body->first; /* the steps leave the collective behind */
    }
    free(R.ops);
    free(R.rdim);
  }
  return TILE_PASS_OK;
}
