/* The matmul generator's analysis: which op is the matmul, its shapes and types, the
 * fused epilogue it can evaluate per result tile, how the target's MXUs are arranged
 * and how big the blocks and chunks are (gen_matmul.h describes the plan). Everything
 * is read from the target; nothing here emits code. */
#include <string.h>

#include "gen_matmul.h"
#include "tile/ops.h"

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

static int elem_bytes(uint8_t e) { return e == TILE_ELEM_BF16 ? 2 : 4; }
static bool mxu_elem(uint8_t e) { return e == TILE_ELEM_BF16 || e == TILE_ELEM_F32; }

/* ---- the matmul op: shapes ---- */

static bool ints_are(const TileAttrDict *d, const char *name, int64_t first, int32_t n) {
  const TileAttr *a = tile_attr_get(d, name);
  if (!a || a->kind != TILE_ATTR_ARRAY || a->n != n) return false;
  for (int32_t i = 0; i < n; i++)
    if (a->elems[i].kind != TILE_ATTR_INT || a->elems[i].i != first + i) return false;
  return true;
}

/* Reads [batch.., M, K] x [K, N] or [batch.., K, N] from a matmul, or a dot_general
 * whose dims say the same (batch dims leading on both sides, contracting the last of
 * the LHS and the first non-batch dim of the RHS). */
static bool read_shapes(TileLowerCtx *cx, const TileOp *op, MmPlan *p) {
  const TileType *ta = &op->opnd[0].v->type, *tb = &op->opnd[1].v->type;
  int ra = ta->rank, rb = tb->rank;
  if (ra < 2 || rb < 2)
    return tile_lower_error(cx, op, "cannot lower %s with an operand of rank below 2",
                            tile_op_name(op->kind));
  int nbatch = ra - 2;
  if (op->kind == TILE_OP_DOT_GENERAL) {
    if (rb != ra || !ints_are(&op->attrs, "lhs_batch", 0, nbatch) ||
        !ints_are(&op->attrs, "rhs_batch", 0, nbatch) ||
        !ints_are(&op->attrs, "lhs_contract", ra - 1, 1) ||
        !ints_are(&op->attrs, "rhs_contract", nbatch, 1))
      return tile_lower_error(cx, op,
                              "cannot lower dot_general that is not in matmul form (leading "
                              "batch dims, LHS [.., M, K] contracting its last dim with RHS "
                              "[.., K, N]); transpose the operands first");
  } else if (rb != 2 && rb != ra) {
    return tile_lower_error(cx, op, "cannot lower matmul of rank %d by rank %d", ra, rb);
  }
  p->b_batched = rb > 2;
  p->batch = 1;
  for (int i = 0; i < nbatch; i++) {
    if (p->b_batched && ta->dims[i] != tb->dims[i])
      return tile_lower_error(cx, op, "cannot lower %s whose batch dim %d differs (%lld vs %lld)",
                              tile_op_name(op->kind), i, (long long)ta->dims[i],
                              (long long)tb->dims[i]);
    p->batch *= ta->dims[i];
  }
  p->M = ta->dims[ra - 2];
  p->K = ta->dims[ra - 1];
  p->N = tb->dims[rb - 1];
  if (tb->dims[rb - 2] != p->K)
    return tile_lower_error(cx, op, "cannot lower %s: K is %lld on the left, %lld on the right",
                            tile_op_name(op->kind), (long long)p->K,
                            (long long)tb->dims[rb - 2]);
  if (!mxu_elem(ta->elem) || !mxu_elem(tb->elem))
    return tile_lower_error(cx, op, "cannot lower %s of %s x %s: the MXU takes bf16 or f32 inputs",
                            tile_op_name(op->kind), tile_elem_name(ta->elem),
                            tile_elem_name(tb->elem));
  p->ae = elem_bytes(ta->elem);
  p->be = elem_bytes(tb->elem);
  return true;
}

/* ---- the epilogue ---- */

static bool in_group(const TileGroup *g, const TileValue *v) {
  for (int32_t i = 0; i < g->nops; i++)
    if (v->def == g->ops[i]) return true;
  return false;
}

/* A row vector: N elements along its last dim, every other dim 1. */
static bool is_row(const TileValue *v, int64_t N) {
  const TileType *t = &v->type;
  if (t->kind != TILE_TY_TENSOR || t->rank < 1 || t->dims[t->rank - 1] != N) return false;
  return tile_type_numel(t) == N;
}

static int32_t input_index(const MmInput *list, int32_t n, const TileValue *v) {
  for (int32_t i = 0; i < n; i++)
    if (list[i].v == v) return i;
  return -1;
}

int32_t mm_row_index(const MmPlan *p, const TileValue *v) {
  return input_index(p->rows, p->nrows, v);
}

int32_t mm_tile_index(const MmPlan *p, const TileValue *v) {
  return input_index(p->tiles, p->ntiles, v);
}

/* Adds group input v, once, to the plan's inputs of one kind (`one`, `many`: row and
 * rows, or operand and values of the matmul's shape). */
static bool take_input(TileLowerCtx *cx, const TileOp *op, const TileValue *v, MmInput *list,
                       int32_t *n, int32_t max, const char *one, const char *many) {
  if (input_index(list, *n, v) >= 0) return true;
  if (*n == max)
    return tile_lower_error(cx, op, "cannot lower a matmul epilogue reading more than %d %s",
                            max, many);
  if (!mxu_elem(v->type.elem))
    return tile_lower_error(cx, op, "cannot lower a matmul epilogue %s of %s (bf16 or f32 only)",
                            one, tile_elem_name(v->type.elem));
  list[(*n)++] = (MmInput){.v = v, .ref = tile_lower_tensor(cx, v),
                           .esize = elem_bytes(v->type.elem), .vmem = -1};
  return true;
}

static bool same_shape(const TileValue *a, const TileValue *b) {
  return a->type.kind == TILE_TY_TENSOR && a->type.rank == b->type.rank &&
         !memcmp(a->type.dims, b->type.dims, sizeof(int64_t) * (size_t)a->type.rank);
}

/* Checks one operand of an epilogue op; group inputs become rows, or tile operands. */
static bool epi_operand(TileLowerCtx *cx, const TileGroup *g, MmPlan *p, const TileOp *op,
                        const TileValue *v) {
  double s;
  if (tile_lower_splat(v, &s) || v == p->mm->res[0] || in_group(g, v)) return true;
  if (is_row(v, p->N))
    return take_input(cx, op, v, p->rows, &p->nrows, MM_MAX_ROWS, "row", "rows");
  if (same_shape(v, p->mm->res[0]))
    return take_input(cx, op, v, p->tiles, &p->ntiles, MM_MAX_TILES, "operand",
                      "values of the matmul's shape");
  return tile_lower_error(cx, op,
                          "cannot lower %s in a matmul epilogue: operand %s must be the "
                          "matmul's result, a value of its shape, a splat or a row vector "
                          "of %lld elements",
                          tile_op_name(op->kind), v->name ? v->name : "(unnamed)",
                          (long long)p->N);
}

static bool plan_epilogue(TileLowerCtx *cx, const TileGroup *g, MmPlan *p) {
  for (int32_t i = 0; i < g->nops; i++) {
    const TileOp *op = g->ops[i];
    if (op == p->mm) continue;
    if (op->kind == TILE_OP_MATMUL || op->kind == TILE_OP_DOT_GENERAL)
      return tile_lower_error(cx, op, "cannot lower a fusion group with two matmuls");
    if (op->kind == TILE_OP_CONSTANT) {
      double s;
      if (!tile_lower_splat(op->res[0], &s))
        return tile_lower_error(cx, op, "cannot lower a non-splat constant in a matmul epilogue");
      continue;
    }
    bool bcast = op->kind == TILE_OP_BROADCAST;
    if (!bcast && !tile_ew_supported(op))
      return tile_lower_error(cx, op, "cannot lower %s in a matmul epilogue",
                              tile_op_name(op->kind));
    if (bcast) {
      const TileType *rt = &op->res[0]->type, *ot = &op->opnd[0].v->type;
      const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
      double s;
      bool splat = tile_lower_splat(op->opnd[0].v, &s) || tile_type_numel(ot) == 1;
      bool last_to_last = dims && dims->kind == TILE_ATTR_ARRAY && ot->rank >= 1 &&
                          dims->n == ot->rank &&
                          dims->elems[ot->rank - 1].i == rt->rank - 1;
      if (!splat && !(is_row(op->opnd[0].v, p->N) && last_to_last))
        return tile_lower_error(cx, op,
                                "cannot lower broadcast in a matmul epilogue: only a splat or "
                                "a row of %lld elements along the last dim",
                                (long long)p->N);
    }
    for (int32_t j = 0; j < op->nopnd; j++)
      if (!epi_operand(cx, g, p, op, op->opnd[j].v)) return false;
    for (int32_t j = 0; j < op->nres; j++)
      if (tile_elem_bits(op->res[j]->type.elem) > 32)
        return tile_lower_error(cx, op, "cannot lower %s of %s in a matmul epilogue",
                                tile_op_name(op->kind), tile_elem_name(op->res[j]->type.elem));
    if (p->nepi == MM_MAX_EPI)
      return tile_lower_error(cx, op, "cannot lower a matmul epilogue of more than %d ops",
                              MM_MAX_EPI);
    p->epi[p->nepi++] = op;
  }
  return true;
}

/* ---- units and blocks ---- */

/* Arranges up to `units` MXUs as nk x nn, using no more K or N tiles than there are,
 * with the fewest vector loads per row tile (nk LHS loads, nn accumulator loads). */
static void arrange_units(MmPlan *p, int32_t units) {
  int64_t kt = ceil_div(p->K, p->dim), nt = ceil_div(p->N, p->dim);
  for (int32_t u = units; u >= 1; u--) {
    int32_t best = 0;
    for (int32_t nk = 1; nk <= u; nk++) {
      if (u % nk || nk > kt || u / nk > nt) continue;
      if (!best || nk + u / nk < best + u / best ||
          (nk + u / nk == best + u / best && nk < best))
        best = nk;
    }
    if (best) {
      p->nk = best;
      p->nn = u / best;
      p->units = u;
      return;
    }
  }
  p->nk = p->nn = p->units = 1;
}

/* B pieces copied ahead, as the VMEM budget counts them (the plan may use fewer). */
enum { MM_MAX_DEPTH = 4 };

/* K steps from which a matmul with an epilogue staggers its weight switches. */
enum { MM_STAGGER_EPI_STEPS = 8 };

int64_t mm_plan_vmem(const MmPlan *p) {
  int64_t edge = p->Kr < p->Kb ? 2 : 1;
  int64_t a = (p->ahold ? p->nkp : edge * 2) * p->Mb * p->Kb * p->ae;
  int64_t b = mm_b_slots(p) * p->Kb * p->Nb * p->be;
  int64_t acc = (p->nkp > 1 ? 1 : 0) * p->Mb * p->nnp * (p->lead > 1 ? p->lead : 1) * p->Nb * 4;
  int64_t stage = 2 * p->Mb * p->Nb * p->oe;
  int64_t rows = 0;
  for (int32_t i = 0; i < p->nrows; i++)
    rows += round_up((p->N > p->dim ? p->N : p->dim) * p->rows[i].esize, 64);
  for (int32_t i = 0; i < p->ntiles; i++)
    rows += mm_tile_slots(p) * p->Mb * p->Nb * p->tiles[i].esize;
  return a + b + acc + stage + rows;
}

/* Copies out per last-step block beyond the one after its last rows: more where the
 * target lets more DMAs fly. */
static int64_t out_segments(const TileTarget *t) { return t->dma_outstanding >= 16 ? 3 : 1; }

/* B pieces copied ahead: what the DMAs in flight leave after two blocks' copies out
 * (at most out_segments + 1 each) and one A piece, with room for start-up. */
static int64_t plan_depth(const TileTarget *t) {
  int64_t d = t->dma_outstanding - 2 * (out_segments(t) + 1) - 3;
  return d > MM_MAX_DEPTH ? MM_MAX_DEPTH : d < 1 ? 1 : d;
}

/* The pipeline: pops trail pushes by `skew` row tiles, enough for the MXU latency at one
 * row tile per push period; a last K step copies its results out in nout pieces of q row
 * tiles as they are popped (so little is left to copy at the end); B pieces are copied
 * `depth` blocks ahead and A slabs in one piece per block of the step before, all within
 * the target's limit of DMAs in flight. */
static void plan_pipeline(const TileTarget *t, MmPlan *p) {
  int64_t outstanding = t->dma_outstanding;
  p->skew = ceil_div(t->latency[TILE_LAT_MXU_RESULT], t->mxu_push_cycles) + 1;
  /* Stagger the K groups' weight switches where the blocks are long enough to absorb
   * the offsets (a block of T row tiles: the last group switches `last` steps after the
   * first, so its pops come that much later, and the pops and pushes of the other
   * steps still run as pipelined loops). With an epilogue only where the last K step is
   * at most an eighth of the blocks: its switches' straight-line steps pop through the
   * epilogue unpipelined, which costs more than the switch saves (the 1024-row matmul
   * with bias and gelu, 4 K steps: 74,935 -> 82,011 cycles), while every other step
   * gains (512 x 4096 x 3584 with silu: 149,566 -> 140,409). */
  int64_t pre = MM_PRE, xw = MM_XWIN, post = MM_POST, gap = MM_GAP;
  int64_t last = pre + (int64_t)(p->nk - 1) * (xw + 1 + post + gap + pre);
  memset(p->koff, 0, sizeof p->koff);
  p->xwin = p->pre = p->post = 0;
  /* (the pop side changes block after the last straight-line stretch: its pops are of
   * the block before) */
  p->stagger = p->nk >= 2 && (p->nepi == 0 || p->nkp >= MM_STAGGER_EPI_STEPS) &&
               p->skew > xw + post + 1 && p->T >= last + xw + post + p->skew;
  if (p->stagger) {
    p->xwin = xw;
    p->pre = pre;
    p->post = post;
    for (int32_t k = 0; k < p->nk; k++)
      p->koff[k] = pre + (int64_t)k * (xw + 1 + post + gap + pre) + xw;
    p->skew += last;
  }
  if (p->skew > p->T) p->skew = p->T;
  /* One row tile: its pops come two blocks later, so the MXU latency spans two blocks'
   * weight loads (gen_matmul.c, "One row tile") */
  p->lag = p->T == 1 ? 2 : 1;
  int64_t segs = out_segments(t);
  p->nout = 0;
  if (p->T > p->skew) {
    /* Every copy is q tiles and the one after a block's last pops covers its last skew.
     * Where it can, the skew grows to make the copies tile the block (T = nout * q, or
     * nearly): overlapping copies would move rows twice, and in the last K step the
     * copies out are most of HBM's work. */
    for (int64_t n = segs + 1; n >= 2 && !p->nout; n--) {
      int64_t q = ceil_div(p->T, n), d = p->T - (n - 1) * q;
      if (d >= p->skew && d <= q) {
        p->q = q;
        p->skew = d;
        p->nout = n;
      }
    }
    if (!p->nout) {
      p->q = ceil_div(p->T - p->skew, segs);
      if (p->q < p->skew) p->q = p->skew;
      p->nout = ceil_div(p->T - p->skew, p->q) + 1;
    }
  } else {
    p->q = p->T;
    p->nout = 1;
  }
  /* The final block: nothing follows it to hide its copies out, so they are smaller
   * (each waits for an older one, keeping the DMAs in flight as budgeted): a third of q
   * while it pushes, a quarter of the drain's pops (at least what HBM moves in one push
   * period) after, so the last copy is short. */
  int64_t tile_out = (int64_t)p->sub * p->Nb * p->oe;
  int64_t per_push = (int64_t)((double)t->mxu_push_cycles * (double)t->hbm_bw /
                               (double)t->clock_hz);
  p->qd = ceil_div(p->skew, 4);
  if (per_push / tile_out > p->qd) p->qd = per_push / tile_out;
  if (p->qd > p->skew) p->qd = p->skew;
  p->qf = ceil_div(p->q, 3);
  if (p->qf < p->qd) p->qf = p->qd;
  /* one A piece per block of a step but its first (all of them when it has one); held
   * A, in a slot of its own per K step, one per block of the first chunk's steps */
  p->apieces = p->lead > 1 ? p->lead : p->nnp > 1 ? p->nnp - 1 : 1;
  if (p->apieces > p->T) p->apieces = p->T;
  p->arows = ceil_div(p->T, p->apieces) * p->sub;
  int64_t a0 = outstanding - p->depth - 2;
  if (a0 > 8) a0 = 8;
  if (a0 > p->T) a0 = p->T;
  if (a0 < 1) a0 = 1;
  p->a0rows = ceil_div(p->T, a0) * p->sub;
  p->a0pieces = ceil_div(p->T, p->a0rows / p->sub);
}

/* The largest rows-per-chunk (a multiple of the sublanes, at most M rounded up) whose
 * buffers fit `budget` with Ng columns per chunk; 0 if not even one row tile fits. */
static int64_t fit_rows(MmPlan *p, int64_t Ng, int64_t budget) {
  int64_t mp = round_up(p->M, p->sub), lo = 0;
  p->Ng = Ng;
  p->nnp = Ng / p->Nb;
  for (int64_t hi = mp; hi >= p->sub; hi = round_up(hi / 2, p->sub)) {
    p->Mb = hi;
    p->Mv = hi;
    if (mm_plan_vmem(p) <= budget) {
      lo = hi;
      break;
    }
    if (hi == p->sub) break;
  }
  if (!lo) return 0;
  /* Grow back towards the next power-of-two step in row tiles. */
  for (int64_t step = lo / 2; step >= p->sub; step = round_up(step / 2, p->sub)) {
    int64_t cand = lo + step;
    if (cand <= mp) {
      p->Mb = p->Mv = cand;
      if (mm_plan_vmem(p) <= budget) lo = cand;
    }
    if (step == p->sub) break;
  }
  return lo;
}

static bool plan_blocks(TileLowerCtx *cx, MmPlan *p) {
  const TileTarget *t = tile_lower_target(cx);
  p->Kb = (int64_t)p->nk * p->dim;
  p->nkp = ceil_div(p->K, p->Kb);
  p->Kr = p->K - (p->nkp - 1) * p->Kb;
  p->Nb = (int64_t)p->nn * p->dim;
  /* A tile operand's copies (one per operand) fly beside the B pieces. */
  int64_t depth = plan_depth(t) - p->ntiles;
  p->depth = depth > 0 ? depth : 1;
  p->ring = p->eslots = p->depth;
  /* Half of VMEM: the rest is for other groups' buffers and register spills. */
  int64_t budget = t->vmem_bytes / 2;
  int64_t full = ceil_div(p->N, p->Nb) * p->Nb;
  int64_t want = round_up(p->M, p->sub) < 64 * p->sub ? round_up(p->M, p->sub) : 64 * p->sub;
  int64_t mb = 0, ng = full;
  /* Prefer every column in one chunk (A read once); give columns up until enough rows
   * fit for the MXU pipeline to run long between weight switches. */
  for (ng = full;; ng = round_up(ng / 2, p->Nb)) {
    mb = fit_rows(p, ng, budget);
    if (mb >= want || ng == p->Nb) break;
  }
  if (!mb)
    return tile_lower_error(cx, p->mm,
                            "cannot lower %s: even one %lld-row block (%lld bytes) does not "
                            "fit half of VMEM (%lld bytes) on target %s",
                            tile_op_name(p->mm->kind), (long long)p->sub,
                            (long long)mm_plan_vmem(p), (long long)budget, t->name);
  /* One chunk spanning N writes all its results in its last K step. Where that copy
   * out takes HBM longer than the step's pushes, the copies would stall the end; then
   * a chunk is one column block instead, and A is held in VMEM (a slot per K step) so
   * the chunks after a row chunk's first do not read it again: each chunk's results
   * copy out while the next one runs, and only the final chunk's are left. */
  if (mb && ng == full && p->nkp > 1 && full > p->Nb) {
    int64_t T = round_up(ceil_div(p->M, ceil_div(p->M, mb)), p->sub) / p->sub;
    double step = (double)(full / p->Nb) * (double)T * t->mxu_push_cycles;
    double out = (double)round_up(p->M, p->sub) * (double)p->N * p->oe * t->clock_hz /
                 t->hbm_bw;
    if (mb >= round_up(p->M, p->sub) && out > step) {
      p->ahold = true;
      int64_t held = fit_rows(p, p->Nb, budget);
      if (held >= mb) ng = p->Nb;
      else p->ahold = false;
    }
  }
  p->MC = ceil_div(p->M, mb);
  p->Mb = round_up(ceil_div(p->M, p->MC), p->sub);
  p->Mv = p->MC == 1 ? p->M : p->Mb;
  p->T = p->Mb / p->sub;
  p->NG = ceil_div(p->N, ng);
  p->Ng = round_up(ceil_div(p->N, p->NG), p->Nb);
  p->nnp = p->Ng / p->Nb;
  p->Nv = p->Ng < p->N ? p->Ng : p->N;
  p->chunks = p->batch * p->MC * p->NG;
  if (p->NG == 1) p->ahold = false;
  /* Held A is read from HBM by the first chunk alone, a slab per K step: where a slab
   * takes HBM about as long as a block's pushes, that chunk would wait for each. So
   * the first chunk spans two column chunks, each K step running both (one slab, two
   * blocks), and the first chunk's results copy out while the next chunk runs. Not
   * with short blocks, whose fixed costs, not HBM, bound that chunk (measured). */
  p->lead = 1;
  if (p->ahold && p->batch == 1 && p->NG >= 3 && p->T > MM_SHORT_ROWS) {
    p->lead = 2;
    if (mm_plan_vmem(p) > budget) p->lead = 1;
  }
  plan_pipeline(t, p);
  return true;
}

bool mm_plan(TileLowerCtx *cx, const TileGroup *g, MmPlan *p) {
  memset(p, 0, sizeof *p);
  const TileTarget *t = tile_lower_target(cx);
  for (int32_t i = 0; i < g->nops && !p->mm; i++)
    if (g->ops[i]->kind == TILE_OP_MATMUL || g->ops[i]->kind == TILE_OP_DOT_GENERAL)
      p->mm = g->ops[i];
  if (!p->mm) return tile_lower_error(cx, g->ops[0], "cannot lower a matmul group without a matmul");
  if (t->mxu_count < 1 || t->mxu_dim != t->vreg_lanes || t->mxu_dim % t->vreg_sublanes)
    return tile_lower_error(cx, p->mm,
                            "cannot lower %s on target %s: it needs MXUs whose side (%d) is the "
                            "vector lane count (%d) and a multiple of the sublanes (%d)",
                            tile_op_name(p->mm->kind), t->name, t->mxu_dim, t->vreg_lanes,
                            t->vreg_sublanes);
  p->dim = t->mxu_dim;
  p->sub = t->vreg_sublanes;
  if (!read_shapes(cx, p->mm, p)) return false;
  if (g->nout != 1)
    return tile_lower_error(cx, p->mm, "cannot lower a matmul group with %d results (one only)",
                            g->nout);
  p->out_value = g->out[0];
  const TileType *ot = &p->out_value->type, *mt = &p->mm->res[0]->type;
  if (ot->rank != mt->rank || memcmp(ot->dims, mt->dims, sizeof(int64_t) * (size_t)ot->rank))
    return tile_lower_error(cx, p->mm,
                            "cannot lower a matmul group whose result is not the shape of "
                            "the matmul");
  if (!mxu_elem(ot->elem))
    return tile_lower_error(cx, p->mm, "cannot lower a matmul group with a %s result (f32 or bf16)",
                            tile_elem_name(ot->elem));
  p->out_bf16 = ot->elem == TILE_ELEM_BF16;
  p->mm_bf16 = mt->elem == TILE_ELEM_BF16;
  p->oe = elem_bytes(ot->elem);
  if (!plan_epilogue(cx, g, p)) return false;
  mm_plan_folds(p);
  p->a = tile_lower_tensor(cx, p->mm->opnd[0].v);
  p->b = tile_lower_tensor(cx, p->mm->opnd[1].v);
  p->out = tile_lower_tensor(cx, p->out_value);
  /* Addresses and strides live in 32-bit scalar registers. */
  int64_t big = p->a.bytes > p->b.bytes ? p->a.bytes : p->b.bytes;
  if (p->out.bytes > big) big = p->out.bytes;
  if (big >= ((int64_t)1 << 31))
    return tile_lower_error(cx, p->mm, "cannot lower %s of a %lld-byte tensor (2 GiB at most)",
                            tile_op_name(p->mm->kind), (long long)big);
  /* Unit numbers share the register fields; 16 units are more than any target has. */
  arrange_units(p, t->mxu_count < 16 ? t->mxu_count : 16);
  return plan_blocks(cx, p);
}
