/* The row-wise generator: fusion groups of elementwise ops, reductions over the last
 * axis, broadcasts and rope, on tensors whose last dim is the row (softmax, layernorm,
 * rmsnorm, gelu, silu after decomposition; rope kept whole).
 *
 * Needs: a group whose values each have the group's full shape [..., C], the shape
 * without its last dim (one number per row), or a shape broadcast along rows into the
 * full shape (gamma [C], cos/sin [S, C/2], a [S, C] table repeating every S rows).
 * Guarantees: MIR that streams blocks of 8 x subs rows x the whole row through VMEM with
 * DMA running ahead of the compute, makes every pass a block needs (one per dependent
 * reduction) with the row resident in VMEM, reduces across lanes on the XLU after
 * combining the row's 128-lane columns, and writes the group's outputs back. Softmax's
 * sum is found in the same pass as its max (a per-lane running max and rescaled sum), so
 * its rows are read twice, not three times. Partial 128-lane columns are masked to the
 * reduction's neutral value and never stored; a partial last block of rows has its own
 * DMA shape.
 *
 * This file decides the plan: each value's class and pass, the block and DMA piece
 * sizes, VMEM placement. gen_rowwise_emit.c writes the MIR. */
#include <string.h>

#include "gen_rowwise.h"
#include "lower_internal.h"

RwVal *rw_val(Rw *w, const TileValue *v) {
  for (int i = 0; i < w->nvals; i++)
    if (w->vals[i].v == v) return &w->vals[i];
  return NULL;
}

static bool same_dims(const TileType *t, int rank, const int64_t *dims) {
  if (t->rank != rank) return false;
  for (int i = 0; i < rank; i++)
    if (t->dims[i] != dims[i]) return false;
  return true;
}

static bool is_full(const Rw *w, const TileType *t) { return same_dims(t, w->rank, w->dims); }

static bool is_row_shape(const Rw *w, const TileType *t) {
  return same_dims(t, w->rank - 1, w->dims);
}

/* Adds v (once) with its class; NULL when the group has too many values. */
static RwVal *add_val(Rw *w, const TileValue *v) {
  RwVal *x = rw_val(w, v);
  if (x) return x;
  if (w->nvals == RW_MAX_VALS) return NULL;
  x = &w->vals[w->nvals++];
  memset(x, 0, sizeof *x);
  x->v = v;
  x->elem = v->type.elem;
  x->ebytes = tile_lower_elem_bytes((TileElem)v->type.elem);
  x->vbuf = -1;
  x->period = 1;
  double s;
  if (tile_lower_splat(v, &s)) x->cls = RW_SPLAT;
  else if (is_full(w, &v->type)) x->cls = RW_FULL;
  else if (is_row_shape(w, &v->type)) x->cls = RW_ROW;
  else x->cls = RW_TABLE;
  return x;
}

/* The group's full shape: that of its largest value. */
static void pick_shape(Rw *w) {
  int64_t best = -1;
  for (int32_t i = 0; i < w->g->nops; i++) {
    const TileOp *op = w->g->ops[i];
    for (int32_t j = 0; j < op->nres + op->nopnd; j++) {
      const TileValue *v = j < op->nres ? op->res[j] : op->opnd[j - op->nres].v;
      int64_t n = tile_type_numel(&v->type);
      if (n > best || (n == best && v->type.rank > w->rank)) {
        best = n;
        w->rank = v->type.rank;
        memcpy(w->dims, v->type.dims, sizeof w->dims);
      }
    }
  }
  if (w->rank == 0) { /* a scalar group: one row of one element */
    w->rank = 1;
    w->dims[0] = 1;
  }
  w->cols = w->dims[w->rank - 1];
  w->rows = 1;
  for (int i = 0; i + 1 < w->rank; i++) w->rows *= w->dims[i];
}

/* A broadcast of a table: operand dims must map its last dim onto the row and its
 * other dims onto the dims just before, sizes equal; it then repeats every `period`
 * rows. */
static bool table_period(Rw *w, const TileOp *op, int64_t *period) {
  const TileValue *a = op->opnd[0].v;
  const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
  int q = a->type.rank;
  if (!dims || dims->kind != TILE_ATTR_ARRAY || dims->n != q || q < 1) return false;
  int64_t p = 1;
  for (int i = 0; i < q; i++) {
    int64_t want = w->rank - q + i;
    if (dims->elems[i].i != want || a->type.dims[i] != w->dims[want]) return false;
    if (i + 1 < q) p *= a->type.dims[i];
  }
  *period = p;
  return true;
}

static bool broadcast_dims_are_rows(const Rw *w, const TileOp *op) {
  const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
  if (!dims || dims->kind != TILE_ATTR_ARRAY || dims->n != w->rank - 1) return false;
  for (int i = 0; i < dims->n; i++)
    if (dims->elems[i].i != i) return false;
  return true;
}

static bool set_table(Rw *w, const TileOp *op, RwVal *t, int64_t period, int64_t row_bytes) {
  if (t->cls != RW_TABLE)
    return tile_lower_error(w->cx, op, "operand broadcast along rows must be a smaller tensor");
  if (t->row_bytes && ((t->src_period ? t->src_period : t->period) != period ||
                       t->row_bytes != row_bytes))
    return tile_lower_error(w->cx, op, "a tensor broadcast into the group in two different "
                                       "ways");
  int64_t sub = w->t->vreg_sublanes, planned = period;
  if (period > 1 && period % sub != 0) { /* VMEM repeats it to a multiple of a vreg's rows */
    int64_t a = period, b = sub;
    while (b) {
      int64_t r = a % b;
      a = b;
      b = r;
    }
    planned = period / a * sub;
    t->src_period = period;
  }
  t->period = planned;
  t->row_bytes = row_bytes;
  return true;
}

/* Whether v is made by the group or read by one of its ops before op i. */
static bool read_before(const Rw *w, int32_t i, const TileValue *v) {
  for (int32_t k = 0; k < w->g->nops; k++) {
    const TileOp *op = w->g->ops[k];
    if (op->nres == 1 && op->res[0] == v) return true;
    for (int32_t j = 0; j < op->nopnd && k < i; j++)
      if (op->opnd[j].v == v) return true;
  }
  return false;
}

/* Classes, levels and the checks that each op fits the row-wise scheme. */
static bool analyse(Rw *w) {
  const TileGroup *g = w->g;
  for (int32_t i = 0; i < g->nops; i++) {
    const TileOp *op = g->ops[i];
    RwVal *opnd[3] = {NULL, NULL, NULL};
    for (int32_t j = 0; j < op->nopnd && j < 3; j++) opnd[j] = add_val(w, op->opnd[j].v);
    RwVal *r = op->nres == 1 ? add_val(w, op->res[0]) : NULL;
    if (!r || op->nopnd > 3 || (op->nopnd > 0 && !opnd[op->nopnd - 1]))
      return tile_lower_error(w->cx, op, "the row-wise group is too large (more than %d values)",
                              RW_MAX_VALS);
    int lvl = 0;
    for (int32_t j = 0; j < op->nopnd; j++)
      if (opnd[j]->level > lvl) lvl = opnd[j]->level;
    switch (op->kind) {
    case TILE_OP_REDUCE: {
      const TileAttr *kind = tile_attr_get(&op->attrs, "kind");
      const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
      bool last = dims && dims->kind == TILE_ATTR_ARRAY && dims->n == 1 &&
                  dims->elems[0].i == w->rank - 1;
      if (opnd[0]->cls != RW_FULL || r->cls != RW_ROW || !last)
        return tile_lower_error(w->cx, op, "row-wise groups reduce only the last dim of the "
                                           "group's full shape");
      if (!kind || (strcmp(kind->s, "add") && strcmp(kind->s, "max") && strcmp(kind->s, "min")))
        return tile_lower_error(w->cx, op, "reduce kind '%s' has no cross-lane unit op (add, "
                                           "max, min do)", kind ? kind->s : "?");
      if (!tile_elem_is_float((TileElem)opnd[0]->elem))
        return tile_lower_error(w->cx, op, "the cross-lane unit reduces f32 lanes; reduce of "
                                           "%s is not supported",
                                tile_elem_name((TileElem)opnd[0]->elem));
      r->level = opnd[0]->level + 1;
      break;
    }
    case TILE_OP_BROADCAST: {
      if (r->cls != RW_FULL)
        return tile_lower_error(w->cx, op, "row-wise groups broadcast into the full shape only");
      RwVal *a = opnd[0];
      /* Where rows are as long as there are of them ([n, n]), a vector the group reads
       * from outside (a norm's scale) has the rows' shape too: broadcast along the
       * row's elements, it is a table (unless an op before took it as per-row). */
      if (a->cls == RW_ROW && !broadcast_dims_are_rows(w, op) && !read_before(w, i, a->v))
        a->cls = RW_TABLE;
      if (a->cls == RW_ROW && !broadcast_dims_are_rows(w, op))
        return tile_lower_error(w->cx, op, "a per-row value must be broadcast along the row");
      if (a->cls == RW_TABLE) {
        int64_t period;
        if (!table_period(w, op, &period))
          return tile_lower_error(w->cx, op, "this broadcast is not along rows: the operand's "
                                             "last dim must become the row and its other dims "
                                             "the dims just before it");
        if (!set_table(w, op, a, period, w->cols * a->ebytes)) return false;
      }
      r->level = lvl;
      break;
    }
    case TILE_OP_ROPE: {
      if (opnd[0]->cls != RW_FULL || w->rank < 2)
        return tile_lower_error(w->cx, op, "rope's operand must be the group's full shape");
      int64_t d = w->cols, s = w->dims[w->rank - 2];
      if (d % 2 || d > w->t->vreg_lanes)
        return tile_lower_error(w->cx, op, "rope on rows of %lld elements: rows of up to %d "
                                           "(even) are supported", (long long)d,
                                (int)w->t->vreg_lanes);
      for (int j = 1; j < 3; j++) {
        /* the table doubles in VMEM: [cos, cos] and [sin, sin] per row */
        opnd[j]->cls = RW_TABLE;
        if (!set_table(w, op, opnd[j], s, d * opnd[j]->ebytes)) return false;
        opnd[j]->rope = j;
      }
      r->level = lvl;
      break;
    }
    default:
      if (!tile_ew_supported(op))
        return tile_lower_error(w->cx, op, "this op is not supported in a row-wise group (on "
                                           "these element types)");
      for (int32_t j = 0; j < op->nopnd; j++)
        if (opnd[j]->cls != RW_SPLAT && opnd[j]->cls != r->cls)
          return tile_lower_error(w->cx, op, "operand %d has a different shape class than the "
                                             "result", (int)j + 1);
      r->level = lvl;
      break;
    }
  }
  return true;
}

/* Tables computed in the group take their geometry from the broadcast that reads them
 * (set_table); their operands are tables of the same shape. Walk back so every table
 * feeding one has period and row bytes. */
static bool propagate_tables(Rw *w) {
  for (int32_t i = w->g->nops - 1; i >= 0; i--) {
    const TileOp *op = w->g->ops[i];
    if (op->nres != 1 || op->kind == TILE_OP_BROADCAST || op->kind == TILE_OP_ROPE) continue;
    RwVal *r = rw_val(w, op->res[0]);
    if (r->cls != RW_TABLE) continue;
    if (!r->row_bytes)
      return tile_lower_error(w->cx, op, "a smaller tensor that is never broadcast along rows");
    for (int32_t j = 0; j < op->nopnd; j++) {
      RwVal *a = rw_val(w, op->opnd[j].v);
      if (a->cls != RW_TABLE) continue;
      int64_t rb = r->row_bytes / r->ebytes * a->ebytes;
      if (a->row_bytes && (a->period != r->period || a->row_bytes != rb))
        return tile_lower_error(w->cx, op, "a tensor broadcast into the group in two different "
                                           "ways");
      a->period = r->period;
      a->src_period = r->src_period;
      a->row_bytes = rb;
    }
  }
  return true;
}

static const TileOp *def_of(Rw *w, const TileValue *v, int kind) {
  const TileOp *op = v->def;
  if (!op || op->kind != kind || !rw_val(w, v)) return NULL;
  for (int32_t i = 0; i < w->g->nops; i++)
    if (w->g->ops[i] == op) return op;
  return NULL;
}

static bool reduce_is(const TileOp *op, const char *kind) {
  const TileAttr *k = op ? tile_attr_get(&op->attrs, "kind") : NULL;
  return k && strcmp(k->s, kind) == 0;
}

/* sum(exp(x - broadcast(max(x)))) next to its max(x): both in the pass of x, so softmax
 * reads its rows twice, not three times. Levels are then recomputed. */
static void find_online(Rw *w) {
  for (int i = 0; i < w->nvals; i++) {
    RwVal *sum = &w->vals[i];
    const TileOp *r2 = def_of(w, sum->v, TILE_OP_REDUCE);
    if (!reduce_is(r2, "add")) continue;
    const TileOp *e = def_of(w, r2->opnd[0].v, TILE_OP_EXP);
    const TileOp *d = e ? def_of(w, e->opnd[0].v, TILE_OP_SUB) : NULL;
    const TileOp *b = d ? def_of(w, d->opnd[1].v, TILE_OP_BROADCAST) : NULL;
    const TileOp *r1 = b ? def_of(w, b->opnd[0].v, TILE_OP_REDUCE) : NULL;
    if (!reduce_is(r1, "max") || r1->opnd[0].v != d->opnd[0].v) continue;
    RwVal *max = rw_val(w, r1->res[0]);
    if (max->is_out || max->online || e->res[0]->type.elem != TILE_ELEM_F32) continue;
    max->online = sum;
    sum->online_of = max;
  }
  for (int32_t i = 0; i < w->g->nops; i++) {
    const TileOp *op = w->g->ops[i];
    RwVal *r = rw_val(w, op->res[0]);
    int lvl = 0;
    for (int32_t j = 0; j < op->nopnd; j++) {
      RwVal *a = rw_val(w, op->opnd[j].v);
      if (a->level > lvl) lvl = a->level;
    }
    if (op->kind == TILE_OP_REDUCE) lvl = r->online_of ? r->online_of->level : lvl + 1;
    r->level = lvl;
  }
}

/* Per-row divisors (softmax's sum): the reciprocal is made once per block, not per
 * tile. */
static void mark_divisors(Rw *w) {
  for (int32_t i = 0; i < w->g->nops; i++) {
    const TileOp *op = w->g->ops[i];
    if (op->kind != TILE_OP_DIV || !tile_elem_is_float((TileElem)op->res[0]->type.elem))
      continue;
    const TileOp *b = op->opnd[1].v->def;
    RwVal *bv = rw_val(w, op->opnd[1].v);
    if (!b || b->kind != TILE_OP_BROADCAST || bv->cls != RW_FULL) continue;
    RwVal *row = rw_val(w, b->opnd[0].v);
    if (row && row->cls == RW_ROW) row->divisor = true;
  }
}

/* Inputs and outputs: where each lives. */
static bool place(Rw *w) {
  const TileGroup *g = w->g;
  for (int32_t i = 0; i < g->nin; i++) {
    RwVal *x = rw_val(w, g->in[i]);
    if (!x) continue;
    x->src = x->cls == RW_FULL ? RW_STREAMED : RW_RESIDENT;
    if (x->cls == RW_TABLE && !x->row_bytes)
      return tile_lower_error(w->cx, g->ops[0], "an input of the group is neither the full "
                                                "shape, one value per row, nor broadcast along "
                                                "rows");
    x->ref = tile_lower_tensor(w->cx, g->in[i]);
  }
  for (int i = 0; i < w->nvals; i++)
    if (w->vals[i].rope && w->vals[i].src != RW_RESIDENT)
      return tile_lower_error(w->cx, g->ops[0], "rope's cos and sin must be inputs of its group "
                                                "(computed tables are not supported)");
  for (int32_t i = 0; i < g->nout; i++) {
    RwVal *x = rw_val(w, g->out[i]);
    if (!x) continue;
    if (x->cls != RW_FULL && x->cls != RW_ROW)
      return tile_lower_error(w->cx, x->v->def, "a row-wise group writes full-shape or per-row "
                                                "values only");
    x->is_out = true;
    x->ref = tile_lower_tensor(w->cx, g->out[i]);
  }
  /* Levels of outputs and reductions fix the passes. */
  int last = 0;
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (x->is_out && x->cls == RW_FULL && x->level > last) last = x->level;
    if (x->v->def && x->v->def->kind == TILE_OP_REDUCE && x->level - 1 > last)
      last = x->level - 1;
    if (x->is_out && x->cls == RW_ROW && x->level - 1 > last) last = x->level - 1;
  }
  if (last + 1 > RW_MAX_PASSES)
    return tile_lower_error(w->cx, g->ops[0], "the group needs %d passes over each row (chained "
                                              "reductions); at most %d are supported",
                            last + 1, RW_MAX_PASSES);
  w->passes = last + 1;
  return true;
}

/* Lookahead and output credits such that the group's DMAs in flight stay within the
 * target's dma.outstanding: each streamed input has `lookahead` pieces in flight, each
 * full-shape output `out_credit` pieces and each per-row output `row_credit` blocks.
 * Two blocks of output credit (and a lookahead of two pieces) overlap the most; when
 * that is too many, one block of credit; then whole-block DMAs, one in flight per
 * stream. A group with more streams than the target has DMAs is refused. */
static bool dma_plan(Rw *w) {
  int64_t in = 0, full = 0, row = 0;
  for (int i = 0; i < w->nvals; i++) {
    const RwVal *x = &w->vals[i];
    in += x->src == RW_STREAMED;
    full += x->is_out && x->cls == RW_FULL;
    row += x->is_out && x->cls == RW_ROW;
  }
  int64_t limit = w->t->dma_outstanding;
  for (int step = 0; step < 3; step++) {
    if (step == 2) w->pieces = 1;
    w->lookahead = w->pieces >= 2 ? 2 : 1;
    w->out_credit = step == 0 ? 2 * w->pieces : w->pieces;
    w->row_credit = step == 0 ? 2 : 1;
    int64_t streams = in * w->lookahead + full * w->out_credit + row * w->row_credit;
    if (streams <= limit) {
      /* Stated to the lowering (TileLowerCtx.dma_cap), so that a prefetch may cross the
       * group: the streams, or the resident inputs' copies before them (a table's in
       * runs of half the limit, each waited for; rows in one). */
      int64_t cap = streams;
      for (int i = 0; i < w->nvals; i++) {
        const RwVal *x = &w->vals[i];
        int64_t res = x->cls == RW_TABLE ? (limit / 2 > 0 ? limit / 2 : 1) : 1;
        if (x->src == RW_RESIDENT && res > cap) cap = res;
      }
      w->cx->dma_cap = (int32_t)cap;
      return true;
    }
  }
  return tile_lower_error(w->cx, w->g->ops[0],
                          "the fused group streams %lld input%s and writes %lld output%s, which "
                          "needs %lld DMAs in flight; %s allows %lld (dma.outstanding): split "
                          "the computation so that fewer values are read and written together",
                          (long long)in, in == 1 ? "" : "s", (long long)(full + row),
                          full + row == 1 ? "" : "s", (long long)(in + full + row), w->t->name,
                          (long long)limit);
}

/* Block rows, unroll, DMA pieces, VMEM budget. */
static bool tile_plan(Rw *w) {
  const TileTarget *t = w->t;
  int lanes = t->vreg_lanes, sub = t->vreg_sublanes;
  w->vcols = (w->cols + lanes - 1) / lanes;
  w->cols_pad = w->vcols * lanes;
  w->tail_lanes = w->cols % lanes;
  int64_t stream_bytes = 0, resident = 0; /* per element of a row; whole tables */
  bool rows = false;
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (x->src == RW_STREAMED || (x->is_out && x->cls == RW_FULL)) stream_bytes += x->ebytes;
    if (x->src == RW_RESIDENT)
      resident += x->cls == RW_ROW ? (w->rows + lanes) * x->ebytes
                                   : (x->period + 1) * x->row_bytes + lanes * 4;
    rows |= x->cls == RW_ROW;
  }
  if (stream_bytes == 0) stream_bytes = 4;
  /* Blocks of at least 32 KiB of streamed data keep the per-block work (waits, cross-lane
   * reductions) small next to the transfer; per-row values take registers per 8 rows. */
  int max_subs = rows ? 2 : RW_MAX_SUBS;
  int64_t row_stream = w->cols_pad * stream_bytes;
  int subs = 1;
  while (subs < max_subs && (int64_t)sub * subs * row_stream < 32768 &&
         (int64_t)sub * subs < w->rows)
    subs *= 2;
  for (int i = 0; i < w->nvals; i++) { /* tables must line up with blocks */
    int64_t p = w->vals[i].period;
    if (w->vals[i].cls != RW_TABLE || p <= 1) continue;
    while (subs > 1 && p % (sub * subs) != 0 && (sub * subs) % p != 0) subs /= 2;
  }
  w->subs = subs;
  w->brows = (int64_t)sub * subs;
  /* Four tiles per inner iteration: the modulo scheduler keeps each value in its own
   * register for at most one iteration, so an iteration must be long enough to cover a
   * transcendental's latency with work. */
  w->unroll = subs >= 4 ? 1 : 4 / subs;
  if (w->unroll > w->vcols) w->unroll = (int)w->vcols;
  if (w->unroll < 1) w->unroll = 1;
  /* ... but not so many that registers spill: per tile, its accumulators and about six
   * temporaries; per block, the per-row values; a few constants. */
  int accs = 0, row_vals = 0;
  for (int i = 0; i < w->nvals; i++) {
    accs += w->vals[i].v->def && w->vals[i].v->def->kind == TILE_OP_REDUCE;
    row_vals += w->vals[i].cls == RW_ROW;
  }
  while (w->unroll > 1 &&
         (accs + 6) * subs * w->unroll + row_vals * subs + 6 > t->nvregs)
    w->unroll /= 2;
  w->nblocks = (w->rows + w->brows - 1) / w->brows;
  w->last_rows = w->rows - (w->nblocks - 1) * w->brows;
  /* Pieces: a long row block is moved in pieces along the row, so the first pass starts
   * on the first piece while the others are still arriving. */
  w->pieces = 1;
  int64_t block_bytes = w->brows * row_stream;
  if (w->tail_lanes == 0 && block_bytes > 256 * 1024) {
    for (int64_t k = 2; k <= w->vcols; k++)
      if (w->vcols % k == 0 && block_bytes / k <= 128 * 1024) {
        w->pieces = k;
        break;
      }
  }
  if (!dma_plan(w)) return false;
  w->piece_vcols = w->vcols / w->pieces;
  int64_t need = 2 * block_bytes + resident;
  /* VMEM is shared with the other groups' buffers and spills: take at most a quarter. */
  if (need > t->vmem_bytes / 4)
    return tile_lower_error(w->cx, w->g->ops[0], "rows of %lld elements need %lld bytes of VMEM "
                                                 "per block; %s has %lld (a quarter is the "
                                                 "budget of one group)",
                            (long long)w->cols, (long long)need, t->name,
                            (long long)t->vmem_bytes);
  return true;
}

bool tile_gen_rowwise(TileLowerCtx *cx, const TileGroup *g) {
  static Rw w; /* large; generators run one at a time */
  memset(&w, 0, sizeof w);
  w.cx = cx;
  w.m = tile_lower_mir(cx);
  w.t = tile_lower_target(cx);
  w.g = g;
  w.loc = g->ops[0]->loc;
  w.tail_mask = w.lane0 = w.sign_half = w.lane_half = -1;
  pick_shape(&w);
  if (!analyse(&w) || !propagate_tables(&w)) return false;
  find_online(&w);
  if (!place(&w) || !tile_plan(&w)) return false;
  mark_divisors(&w);
  return rw_emit(&w);
}
