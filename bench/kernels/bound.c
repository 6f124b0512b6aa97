/* The work a tensor-level program asks of the machine, counted op by op, and the
 * lower bound on its cycles that follows (bound.h).
 *
 * Counts are minimums, so the bound never claims more than a perfect schedule needs:
 *   - data lives in vreg tiles of sublanes x lanes, rows on sublanes and the last dim
 *     on lanes (the layout every generator uses): a tensor of R rows of length L is
 *     ceil(R / sublanes) * ceil(L / lanes) tiles;
 *   - every input is read from HBM once and every result written once, each input
 *     tile loaded into a vreg once and each result tile stored once; a gather moves
 *     only the rows it takes, HBM to HBM, and the emulator charges such a DMA's bytes
 *     once against hbm.bw (docs/emulator.md, DMA timing), so they count once;
 *     ring_slice and ring_concat are such copies, of their result's bytes;
 *   - the matrix units do only the real MACs (no padding), on every unit at once;
 *   - a vector op handles one tile; the composites count the fewest ops a careful
 *     kernel needs per tile (the table in docs/perf.md), using vfma where it merges
 *     a multiply and an add; type conversions ride on loads and stores (vld.bf16,
 *     vst.bf16), broadcasts on stride-0 loads, so neither costs a vector op;
 *   - a lane reduction (xlu.lsum / xlu.lmax) is needed once per 8-row group per
 *     reduced row, after the row's tiles are combined by vector ops.
 * An op the table does not know is an error: a bound that skips work is no bound. */
#include <math.h>
#include <string.h>

#include "bound.h"
#include "ici.h"
#include "tile/ops.h"

const char *bound_resource_name(BoundResource r) {
  static const char *const names[] = {
#define X(e, n) n,
      BOUND_RESOURCES(X)
#undef X
  };
  return (unsigned)r < BOUND_COUNT ? names[r] : "?";
}

static double ceil_div(double a, double b) { return ceil(a / b); }

static int64_t elem_bytes_x8(uint8_t elem) {
  int bits = tile_elem_bits((TileElem)elem);
  return bits < 8 ? 8 : bits; /* i1 is stored a byte per element */
}

static double type_bytes(const TileType *t) {
  return (double)tile_type_numel(t) * (double)elem_bytes_x8(t->elem) / 8.0;
}

/* Rows of a tensor (every dim but the last) and the last dim's length. */
static void rows_of(const TileType *t, const TileTarget *tg, double *groups, double *chunks) {
  if (t->rank == 0) {
    *groups = *chunks = 1;
    return;
  }
  double len = (double)t->dims[t->rank - 1];
  double rows = (double)tile_type_numel(t) / len;
  *groups = ceil_div(rows, tg->vreg_sublanes);
  *chunks = ceil_div(len, tg->vreg_lanes);
}

static double tiles(const TileType *t, const TileTarget *tg) {
  double g, c;
  rows_of(t, tg, &g, &c);
  return g * c;
}

static double row_groups(const TileType *t, const TileTarget *tg) {
  double g, c;
  rows_of(t, tg, &g, &c);
  return g;
}

/* Vector ops per input tile of each composite, and lane reductions per 8-row group.
 *   softmax    max-combine, x - max, exp, sum-combine, times 1/sum;   lmax, lsum
 *   layernorm  sum-combine, x - mean, fma square-accumulate, times rstd,
 *              fma gamma + beta;                                       lsum x 2
 *   rmsnorm    fma square-accumulate, times rstd, times gamma;         lsum
 *   gelu       x*x, fma (c*a) x^2 + c, times x, tanh, x/2, fma;        none
 *   silu       x/2, tanh, fma h tanh(h) + h (x logistic(x));           none
 *   rope       x * cos, fma rot(x) * (-sin | sin);                     one lrot per tile */
typedef struct CompositeCost {
  TileOpKind kind;
  double vector_per_tile, xlu_per_group, xlu_per_tile;
} CompositeCost;

static const CompositeCost composites[] = {
    {TILE_OP_SOFTMAX, 5, 2, 0}, {TILE_OP_LAYERNORM, 5, 2, 0}, {TILE_OP_RMSNORM, 3, 1, 0},
    {TILE_OP_GELU, 6, 0, 0},    {TILE_OP_SILU, 3, 0, 0},      {TILE_OP_ROPE, 2, 0, 1},
};

/* Ops that cost nothing on the vector unit: they change types on the way through a
 * load or store, or only how a value is indexed. */
static bool is_free(TileOpKind k) {
  return k == TILE_OP_CONVERT || k == TILE_OP_BROADCAST || k == TILE_OP_RESHAPE ||
         k == TILE_OP_CONSTANT || k == TILE_OP_IOTA;
}

static bool is_elementwise(TileOpKind k) {
  return (k >= TILE_OP_ADD && k <= TILE_OP_SELECT);
}

/* Attention of q [B, H, Sq, D] over k, v [B, Hkv, Sk, D]: two contractions over the
 * visible (query, key) pairs, and per score tile: running max, fma of scale and
 * max, exp, sum-combine; a max and a sum lane reduction per 8 query rows per head. */
static void attention_work(const TileOp *op, const TileTarget *t, KernelWork *w) {
  const TileType *q = &op->opnd[0].v->type, *k = &op->opnd[1].v->type;
  double b = (double)q->dims[0], h = (double)q->dims[1], sq = (double)q->dims[2];
  double d = (double)q->dims[3], sk = (double)k->dims[2];
  int64_t causal = 0;
  tile_attr_get_int(&op->attrs, "causal", &causal);
  double visible = 0;
  if (causal) {
    for (int64_t i = 0; i < q->dims[2]; i++) visible += fmin((double)(i + 1), sk);
  } else {
    visible = sq * sk;
  }
  w->macs += b * h * d * 2 * visible;
  double score_tiles = ceil_div(b * h * visible, (double)t->vreg_sublanes * t->vreg_lanes);
  w->vector_ops += 4 * score_tiles;
  w->xlu_ops += 2 * b * h * ceil_div(sq, t->vreg_sublanes);
}

/* ring_slice and ring_concat read the chip's position on an axis (so they are of the
 * COLLECTIVE family) but move nothing between chips: local copies, not ICI work. */
static bool is_ring_copy(TileOpKind k) {
  return k == TILE_OP_RING_SLICE || k == TILE_OP_RING_CONCAT;
}

static bool is_collective(TileOpKind k) {
  return tile_op_info[k].family == TILE_FAMILY_COLLECTIVE && !is_ring_copy(k);
}

static bool op_work(const TileOp *op, const TileMesh *mesh, const TileTarget *t, KernelWork *w,
                    TileDiag *d) {
  TileOpKind kind = (TileOpKind)op->kind;
  const TileType *res = op->nres > 0 ? &op->res[0]->type : NULL;
  const TileType *in = op->nopnd > 0 ? &op->opnd[0].v->type : NULL;
  if (op->nregion > 0) {
    tile_error(d, op->loc, "the kernel bound has no count for '%s' (regions)",
                    tile_op_name(kind));
    return false;
  }
  if (kind == TILE_OP_RETURN || is_free(kind) || kind == TILE_OP_GATHER) return true;
  if (is_ring_copy(kind)) {
    /* HBM to HBM, one DMA per chunk (backend-vliw/gen_layout_ring.c): the result's
     * bytes read and written by DMAs the machine charges once against hbm.bw */
    w->hbm_bytes += type_bytes(res);
    return true;
  }
  if (is_collective(kind)) {
    double c = 0;
    if (!mesh) {
      tile_error(d, op->loc, "the bound of '%s' needs the program's mesh", tile_op_name(kind));
      return false;
    }
    if (!ici_collective_cycles(op, mesh, t, &c, d)) return false;
    w->ici_cycles += c;
    return true;
  }
  if (is_elementwise(kind)) {
    w->vector_ops += tiles(res, t);
    return true;
  }
  for (size_t i = 0; i < sizeof composites / sizeof composites[0]; i++) {
    if (composites[i].kind != kind) continue;
    if (kind == TILE_OP_SOFTMAX) {
      int64_t dim = -1;
      tile_attr_get_int(&op->attrs, "dim", &dim);
      if (dim != in->rank - 1) {
        tile_error(d, op->loc, "the kernel bound counts softmax over the last dim only");
        return false;
      }
    }
    w->vector_ops += composites[i].vector_per_tile * tiles(in, t);
    w->xlu_ops += composites[i].xlu_per_group * row_groups(in, t) +
                  composites[i].xlu_per_tile * tiles(in, t);
    return true;
  }
  switch (kind) {
  case TILE_OP_MATMUL: {
    /* [..., M, K] x [K, N] or [..., K, N]: batch * M * K * N */
    double kdim = (double)in->dims[in->rank - 1];
    w->macs += (double)tile_type_numel(res) * kdim;
    return true;
  }
  case TILE_OP_DOT_GENERAL: {
    const TileAttr *lc = tile_attr_get(&op->attrs, "lhs_contract");
    double contract = 1;
    for (int i = 0; lc && i < lc->n; i++) contract *= (double)in->dims[lc->elems[i].i];
    w->macs += (double)tile_type_numel(res) * contract;
    return true;
  }
  case TILE_OP_REDUCE: {
    w->vector_ops += tiles(in, t);
    const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
    for (int i = 0; dims && i < dims->n; i++)
      if (dims->elems[i].i == in->rank - 1) w->xlu_ops += row_groups(in, t);
    return true;
  }
  case TILE_OP_ARGMAX:
  case TILE_OP_TOPK:
    /* one pass over the data; a max and an index reduction across lanes per group */
    w->vector_ops += tiles(in, t);
    w->xlu_ops += 2 * row_groups(in, t);
    return true;
  case TILE_OP_ATTENTION:
    attention_work(op, t, w);
    return true;
  case TILE_OP_TRANSPOSE: {
    /* Keeping the last dim in place only reorders whole rows: DMA addresses, no vector
     * work. Moving it needs a cross-lane transpose of every tile. */
    const TileAttr *perm = tile_attr_get(&op->attrs, "perm");
    if (perm && perm->elems[in->rank - 1].i != in->rank - 1) w->xlu_ops += tiles(in, t);
    return true;
  }
  default:
    tile_error(d, op->loc, "the kernel bound has no count for '%s'", tile_op_name(kind));
    return false;
  }
}

/* A parameter whose every use is the table of a gather is read only where the gathers
 * take rows: their results' bytes. Returns -1 for any other parameter. */
static double gathered_bytes(const TileFunc *f, const TileValue *p) {
  double bytes = 0;
  bool used = false;
  for (const TileOp *op = f->body->first; op; op = op->next)
    for (int i = 0; i < op->nopnd; i++) {
      if (op->opnd[i].v != p) continue;
      if (op->kind != TILE_OP_GATHER || i != 0) return -1;
      used = true;
      bytes += type_bytes(&op->res[0]->type);
    }
  return used ? bytes : -1;
}

static bool is_gather_result(const TileOp *ret, int i) {
  const TileValue *v = ret->opnd[i].v;
  return v->def && v->def->kind == TILE_OP_GATHER;
}

bool kernel_work(const TileFunc *f, const TileTarget *t, KernelWork *w, TileDiag *d) {
  return program_work(f, NULL, t, w, d);
}

bool program_work(const TileFunc *f, const TileMesh *mesh, const TileTarget *t, KernelWork *w,
                  TileDiag *d) {
  memset(w, 0, sizeof *w);
  if (f->is_kernel) {
    tile_error(d, f->loc, "the kernel bound needs a tensor-level func, not a kernel");
    return false;
  }
  for (int i = 0; i < f->body->nargs; i++) {
    const TileValue *p = f->body->args[i];
    double g = gathered_bytes(f, p);
    w->hbm_bytes += g >= 0 ? g : type_bytes(&p->type);
    /* a gathered table moves HBM to HBM; ids go to SMEM: neither passes through vregs */
    if (g < 0 && tile_elem_is_float((TileElem)p->type.elem)) w->vloads += tiles(&p->type, t);
  }
  const TileOp *ret = NULL;
  for (const TileOp *op = f->body->first; op; op = op->next) {
    if (!op_work(op, mesh, t, w, d)) return false;
    if (op->kind == TILE_OP_RETURN) ret = op;
  }
  for (int i = 0; i < f->nret; i++) {
    /* gathered rows go HBM to HBM: one DMA moves them, charged once against hbm.bw
     * (docs/emulator.md), and their bytes are already counted as the table's */
    if (ret && is_gather_result(ret, i)) continue;
    w->hbm_bytes += type_bytes(&f->ret[i]);
    w->vstores += tiles(&f->ret[i], t);
  }
  double unit_macs_per_cycle =
      (double)t->vreg_sublanes * t->mxu_dim * t->mxu_dim / t->mxu_push_cycles;
  w->cycles[BOUND_MXU] = w->macs / (unit_macs_per_cycle * t->mxu_count);
  w->cycles[BOUND_HBM] = w->hbm_bytes * (double)t->clock_hz / (double)t->hbm_bw;
  w->cycles[BOUND_VECTOR] = w->vector_ops / t->slots[TILE_SLOT_VECTOR];
  w->cycles[BOUND_XLU] = w->xlu_ops / t->slots[TILE_SLOT_XLU];
  w->cycles[BOUND_VLOAD] = w->vloads / t->slots[TILE_SLOT_VLOAD];
  w->cycles[BOUND_VSTORE] = w->vstores / t->slots[TILE_SLOT_VSTORE];
  w->cycles[BOUND_ICI] = w->ici_cycles;
  w->bound = 0;
  for (int r = 0; r < BOUND_COUNT; r++)
    if (w->cycles[r] > w->bound) {
      w->bound = w->cycles[r];
      w->binding = (BoundResource)r;
    }
  return true;
}
