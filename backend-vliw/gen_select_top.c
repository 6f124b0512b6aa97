/* The selection generator: `argmax` and `topk` over the last axis (a SELECT_TOP group,
 * include/tile/lower.h).
 *
 * Order: NaN first, then larger values, and among equal values (+0 and -0 are equal)
 * the lower index, as numpy's argmax and a stable descending sort give. argmax returns
 * the first index of that order per row (i32); topk the first k of it, values (the
 * input's type) and i32 indices.
 *
 * One streaming pass per selected position. The rows [R, V] are read in blocks of
 * u vreg tiles, each tile 1024 consecutive elements of one row (sublane s holds
 * elements s*128 .. s*128+127 of the tile), so every lane of the VPU works whatever
 * the batch. Blocks of every row run in one flat, software-pipelined loop over R x nblk
 * blocks with the DMA of block i+2 in flight while block i computes (three VMEM slots);
 * a row's last block starts at V - u*1024 and overlaps the one before it instead of
 * being masked (a lane seeing an element twice keeps the first sighting: updates need
 * strict improvement). Rows shorter than one tile are masked.
 *
 * Per lane the pass keeps the best element seen (value m, index mi): an element
 * replaces it when m is not NaN and !(x <= m), i.e. x is larger or x is NaN. Within a
 * lane indices rise in scan order, so a lane records the first of its best values, and
 * the row's answer is the lowest index among lanes holding the best value (xlu.lmax and
 * xlu.smax of the value, then of the negated index, as f32: exact below 2^24). Every
 * block ends with that reduction and stores the row's answer so far (vst with a zero
 * stride into a staging row); the last block of the row stores the final one, so the
 * loop needs no branch at row ends, and its cost is hidden by the pipelining.
 *
 * topk runs a chunk tournament (gen_select_tour.c, its rounds in gen_select_rounds.c):
 * one streaming pass that keeps the rows in VMEM and each aligned run of `lanes`
 * elements' best element, then k rounds that each take the row's best chunk head and
 * recompute that chunk's head, 8 rows to a vreg. Rows longer than `lanes` vreg tiles, or
 * inputs whose rows do not fit half of VMEM, fall back to k streaming passes (here):
 * pass r keeps only elements after pass
 * r-1's winner in the order above (value and index compared, so ties and NaN are exact;
 * no element is overwritten), which makes its winner the r-th of the row -- exact for
 * every input but O(kV).
 *
 * Results go to VMEM staging (argmax [R] i32; topk values and indices [k][R], pass
 * major, so a wide store with a small or zero sublane stride only ever covers entries
 * written later) and reach HBM with one DMA each at the end (topk's transposes [k][R]
 * to [R][k]). */
#include "gen_select_int.h"

/* VMEM slot address that steps by one slot and wraps after SLOTS. */
static void slot_advance(Sel *s, int32_t slot) {
  ins(s->m, TILE_MOP_ADDI, slot, slot, 0, 0, (int32_t)s->slot_bytes);
  int32_t w = sop(s, TILE_MOP_SEQ, slot, s->slot_end, 0);
  int32_t back = sop(s, TILE_MOP_MULI, w, 0, (int32_t)(SLOTS * s->slot_bytes));
  ins(s->m, TILE_MOP_SUB, slot, slot, back, 0, 0);
}

/* Issues the DMA of the block at (dp, dslot) and steps both. */
static void issue_block(Sel *s, Pos dp, int32_t dslot, int slot_ofs) {
  int32_t src = pos_col_bytes(s, dp);
  ins(s->m, TILE_MOP_ADD, src, src, dp.row_off, 0, 0);
  TileMirInst in = tile_mir_inst(TILE_MOP_ADDI, src, src, 0, 0, 0);
  in.imm_buf = s->in_buf;
  tile_mir_add(s->m, in);
  tile_dma_issue(s->cx, &s->site, src, 0, dslot, slot_ofs);
  pos_advance(s, dp);
  slot_advance(s, dslot);
}

/* Loop state of one pass. */
typedef struct Pass {
  int32_t m, mi, have;      /* per-lane best: value, index (f32), any eligible seen */
  int32_t pv, pi, pnv;      /* topk: the previous winner (value, index), pv is NaN */
  int32_t prev_rd, prev_wr; /* topk: byte offsets of the read and write halves of prev */
  int32_t round_v, round_i; /* topk: byte offsets of this pass's staging rows */
} Pass;

/* One element tile x with indices idx (f32) into the lane state. */
static void update_argmax(Sel *s, Pass *ps, int32_t x, int32_t idx) {
  int32_t le = vop(s, TILE_MOP_VCMPLEF, x, ps->m);
  int32_t ok = vop(s, TILE_MOP_VCMPEQF, ps->m, ps->m);
  int32_t cond = vsel(s, le, s->vzero, ok);
  vset(s, TILE_MOP_VSEL, ps->mi, idx, ps->mi, cond);
  vset(s, TILE_MOP_VMAXF, ps->m, ps->m, x, 0);
}

/* topk: only elements after (pv, pi) in the order count. */
static void update_topk(Sel *s, Pass *ps, int32_t x, int32_t idx, int32_t valid) {
  int32_t xeq = vop(s, TILE_MOP_VCMPEQF, x, x);      /* x is not NaN */
  int32_t e1 = vop(s, TILE_MOP_VCMPEQF, x, ps->pv);
  int32_t gi = vop(s, TILE_MOP_VCMPLTF, ps->pi, idx);
  int32_t lt = vop(s, TILE_MOP_VCMPLTF, x, ps->pv);
  int32_t both_nan = vsel(s, xeq, s->vzero, ps->pnv);
  int32_t same = vop(s, TILE_MOP_VOR, e1, both_nan);
  int32_t later = vop(s, TILE_MOP_VAND, same, gi);
  int32_t elig = vop(s, TILE_MOP_VOR, later, lt);
  int32_t after_nan = vop(s, TILE_MOP_VAND, ps->pnv, xeq);
  vset(s, TILE_MOP_VOR, elig, elig, after_nan, 0);
  if (valid >= 0) vset(s, TILE_MOP_VAND, elig, elig, valid, 0);
  int32_t le = vop(s, TILE_MOP_VCMPLEF, x, ps->m);
  int32_t ok = vop(s, TILE_MOP_VCMPEQF, ps->m, ps->m);
  int32_t better = vsel(s, le, s->vzero, ok);
  int32_t none = vop(s, TILE_MOP_VXOR, ps->have, s->vone);
  int32_t take = vop(s, TILE_MOP_VOR, better, none);
  vset(s, TILE_MOP_VAND, take, take, elig, 0);
  vset(s, TILE_MOP_VSEL, ps->mi, idx, ps->mi, take);
  vset(s, TILE_MOP_VSEL, ps->m, x, ps->m, take);
  vset(s, TILE_MOP_VOR, ps->have, ps->have, elig, 0);
}

/* The row's best so far from the lane state: value gm and index (f32 and i32); with
 * want_value, *val gets the winner's own value (gm is the lanes' maximum, which takes
 * +0 over an equal -0 that may be the winner). */
static void reduce_lanes(Sel *s, Pass *ps, int32_t *gm, int32_t *gi_f, int32_t *gi,
                         int32_t *val) {
  int32_t mm = ps->have >= 0 ? vsel(s, ps->have, ps->m, s->vneginf) : ps->m;
  int32_t r = vop(s, TILE_MOP_XLMAX, mm, 0);
  *gm = vop(s, TILE_MOP_XSMAX, r, 0);
  int32_t c1 = vop(s, TILE_MOP_VCMPEQF, ps->m, *gm);
  int32_t ok = vop(s, TILE_MOP_VCMPEQF, ps->m, ps->m);
  int32_t gok = vop(s, TILE_MOP_VCMPEQF, *gm, *gm);
  int32_t any_ok = vop(s, TILE_MOP_VOR, ok, gok);
  int32_t cand = vsel(s, any_ok, c1, s->vone); /* both NaN: a candidate too */
  if (ps->have >= 0) vset(s, TILE_MOP_VAND, cand, cand, ps->have, 0);
  int32_t nmi = vop(s, TILE_MOP_VSUBF, s->vzero, ps->mi);
  int32_t t = vsel(s, cand, nmi, s->vneginf);
  int32_t r2 = vop(s, TILE_MOP_XLMAX, t, 0);
  int32_t best = vop(s, TILE_MOP_XSMAX, r2, 0);
  *gi_f = vop(s, TILE_MOP_VSUBF, s->vzero, best);
  *gi = vop(s, TILE_MOP_VCVTFI, *gi_f, 0);
  if (!val) return;
  int32_t win = vop(s, TILE_MOP_VCMPEQF, t, best);
  vset(s, TILE_MOP_VAND, win, win, cand, 0);
  int32_t wv = vsel(s, win, ps->m, s->vneginf);
  int32_t r3 = vop(s, TILE_MOP_XLMAX, wv, 0);
  *val = vop(s, TILE_MOP_XSMAX, r3, 0);
}

/* One streaming pass over every row. */
static void pass(Sel *s, Pass *ps) {
  TileMir *m = s->m;
  Pos dp = pos_start(s), cp = pos_start(s);
  int32_t dslot = li_buf(s, s->slot_buf, 0), cslot = li_buf(s, s->slot_buf, 0);
  int32_t row4 = tile_mir_sreg(m); /* byte offset of the row's result entry */
  ins(m, TILE_MOP_LI, row4, 0, 0, 0, 0);
  int32_t row_prev = tile_mir_sreg(m); /* topk: offset of the row's prev entry */
  ins(m, TILE_MOP_LI, row_prev, 0, 0, 0, 0);
  int32_t stride = sop(s, TILE_MOP_LI, 0, 0, 128 * s->eb);
  issue_block(s, dp, dslot, 0);
  issue_block(s, dp, dslot, 1);

  int64_t total = s->R * s->nblk;
  tile_mir_loop_begin(m, (int32_t)total, TILE_MIR_PIPELINE);
  tile_dma_wait(s->cx, &s->site, 0, 0);
  issue_block(s, dp, dslot, 2);

  int32_t first = sop(s, TILE_MOP_SEQ, cp.b, s->zero, 0);
  int32_t col = pos_col_bytes(s, cp);
  if (s->eb != 1) ins(m, TILE_MOP_SRAI, col, col, 0, 0, s->eb == 4 ? 2 : 1);
  int32_t fv = vop(s, TILE_MOP_VBCAST, first, 0);
  int32_t cv = vop(s, TILE_MOP_VBCAST, col, 0);
  int32_t idx = vop(s, TILE_MOP_VCVTIF, cv, 0);
  vset(s, TILE_MOP_VADDF, idx, idx, s->viota_f, 0);
  vset(s, TILE_MOP_VSEL, ps->m, s->vneginf, ps->m, fv);
  vset(s, TILE_MOP_VSEL, ps->mi, idx, ps->mi, fv);
  if (s->topk) {
    vset(s, TILE_MOP_VSEL, ps->have, s->vzero, ps->have, fv);
    int32_t a = sop(s, TILE_MOP_ADD, row_prev, ps->prev_rd, 0);
    ps->pv = vld0(s, a, s->prev, 0);
    ps->pi = vld0(s, a, s->prev, 512);
    int32_t pok = vop(s, TILE_MOP_VCMPEQF, ps->pv, ps->pv);
    ps->pnv = vop(s, TILE_MOP_VXOR, pok, s->vone);
  }
  for (int k = 0; k < s->u; k++) {
    int32_t x = tile_mir_vreg(m);
    TileMirInst ld = tile_mir_inst(s->elem == TILE_ELEM_BF16 ? TILE_MOP_VLDBF : TILE_MOP_VLD, x,
                                   cslot, stride, 0, k * TILE_ELEMS_PER_VREG * s->eb);
    tile_mir_mem(&ld, s->slot_buf, TILE_MIR_READ, 0);
    tile_mir_add(m, ld);
    int32_t valid = -1;
    if (s->masked) {
      valid = vop(s, TILE_MOP_VCMPLTF, idx, s->vlen_f);
      if (!s->topk) x = vsel(s, valid, x, s->vneginf);
    }
    if (s->topk) update_topk(s, ps, x, idx, valid);
    else update_argmax(s, ps, x, idx);
    if (k + 1 < s->u) {
      int32_t next = vop(s, TILE_MOP_VADDF, idx, s->vc1024);
      idx = next;
    }
  }
  int32_t gm, gi_f, gi, val = -1;
  reduce_lanes(s, ps, &gm, &gi_f, &gi, s->topk ? &val : NULL);
  if (s->topk) {
    int32_t at = s->eb == 4 ? row4 : sop(s, TILE_MOP_SRAI, row4, 0, 1);
    at = sop(s, TILE_MOP_ADD, at, ps->round_v, 0);
    vst0(s, s->elem == TILE_ELEM_BF16 ? TILE_MOP_VSTBF : TILE_MOP_VST, val, at, s->vstage, 0);
    int32_t at_i = sop(s, TILE_MOP_ADD, row4, ps->round_i, 0);
    vst0(s, TILE_MOP_VST, gi, at_i, s->istage, 0);
    int32_t w = sop(s, TILE_MOP_ADD, row_prev, ps->prev_wr, 0);
    vst0(s, TILE_MOP_VST, gm, w, s->prev, 0);
    vst0(s, TILE_MOP_VST, gi_f, w, s->prev, 512);
  } else {
    vst0(s, TILE_MOP_VST, gi, row4, s->istage, 0);
  }
  int32_t last = pos_advance(s, cp);
  slot_advance(s, cslot);
  int32_t step = sop(s, TILE_MOP_MULI, last, 0, 4);
  ins(m, TILE_MOP_ADD, row4, row4, step, 0, 0);
  if (s->topk) {
    int32_t pstep = sop(s, TILE_MOP_MULI, last, 0, 1024);
    ins(m, TILE_MOP_ADD, row_prev, row_prev, pstep, 0, 0);
  }
  tile_mir_loop_end(m);
  /* The two blocks issued past the end (re-reads of the last one). */
  tile_dma_wait(s->cx, &s->site, 0, 0);
  tile_dma_wait(s->cx, &s->site, 0, 0);
}

/* topk's staging ([k][R], round major) to the results ([R][k]): element runs. */
bool sel_store_topk(Sel *s) {
  for (int r = 0; r < 2; r++) {
    TileTensorRef out = tile_lower_tensor(s->cx, s->op->res[r]);
    int64_t eb = r == 0 ? s->eb : 4;
    TileDmaShape tr = {.count0 = eb, .count1 = s->R, .count2 = s->k,
                       .src_stride1 = eb, .dst_stride1 = s->k * eb,
                       .src_stride2 = s->R * eb, .dst_stride2 = eb};
    TileDmaSite d = tile_dma_site(s->cx, r == 0 ? s->vstage : s->istage, 0, out.buf, 0, tr);
    tile_dma_issue(s->cx, &d, -1, 0, -1, 0);
    tile_dma_wait(s->cx, &d, 0, 0);
  }
  return true;
}


static bool select_top(TileLowerCtx *cx, const TileGroup *g) {
  const TileOp *op = g->ops[0];
  if (g->nops != 1)
    return tile_lower_error(cx, g->ops[1], "argmax and topk take no fused ops");
  Sel s = {.cx = cx, .m = tile_lower_mir(cx), .t = tile_lower_target(cx), .op = op};
  s.topk = op->kind == TILE_OP_TOPK;
  const TileType *in = &op->opnd[0].v->type;
  s.elem = (TileElem)in->elem;
  if (s.elem != TILE_ELEM_F32 && s.elem != TILE_ELEM_BF16)
    return tile_lower_error(cx, op, "selection over %s is not supported (f32 and bf16 are)",
                            tile_elem_name(s.elem));
  if (in->rank < 1) return tile_lower_error(cx, op, "the operand has no axis to select along");
  if (!s.topk) {
    int64_t dim = 0;
    tile_attr_get_int(&op->attrs, "dim", &dim);
    if (dim != in->rank - 1)
      return tile_lower_error(cx, op, "argmax along dim %" PRId64 " of a rank-%d tensor: only the "
                              "last dim is lowered; transpose it last first", dim, in->rank);
    s.k = 1;
  } else {
    tile_attr_get_int(&op->attrs, "k", &s.k);
  }
  s.eb = tile_lower_elem_bytes(s.elem);
  s.V = in->dims[in->rank - 1];
  s.R = 1;
  for (int i = 0; i + 1 < in->rank; i++) s.R *= in->dims[i];
  if (s.R == 0) return true;
  if (s.V < 1) return tile_lower_error(cx, op, "the selected axis is empty");
  if (s.V >= (1 << 24))
    return tile_lower_error(cx, op, "rows of %" PRId64 " elements: indices are exact in f32 only "
                            "below 2^24", s.V);
  Fast f;
  bool fast = s.topk && sel_tour_plan(&s, &f);
  int64_t stage_bytes = s.R * s.k * 4 + 512;
  if (!fast) {
    int maxu = s.topk ? TOPK_TILES : ARGMAX_TILES;
    s.masked = s.V < TILE_ELEMS_PER_VREG;
    s.u = s.masked ? 1 : (int)(s.V / TILE_ELEMS_PER_VREG < maxu ? s.V / TILE_ELEMS_PER_VREG : maxu);
    s.bc = (int64_t)s.u * TILE_ELEMS_PER_VREG;
    s.nblk = s.masked ? 1 : (s.V + s.bc - 1) / s.bc;
    s.lastcol = s.masked ? 0 : s.V - s.bc;
    s.slot_bytes = s.bc * s.eb;
    if (s.R * s.nblk > INT32_MAX || s.R * s.V * s.eb > INT32_MAX ||
        stage_bytes * 2 + SLOTS * s.slot_bytes + s.R * 2048 > s.t->vmem_bytes / 2)
      return tile_lower_error(cx, op, "%" PRId64 " rows of %" PRId64 " do not fit this lowering's "
                              "32-bit offsets or half of VMEM", s.R, s.V);
  }

  TileMir *m = s.m;
  tile_mir_set_source(m, tile_op_name((TileOpKind)op->kind), op->loc);
  TileTensorRef xin = tile_lower_tensor(cx, op->opnd[0].v);
  s.in_buf = xin.buf;
  s.zero = tile_lower_zero(cx);
  s.nblkm1 = sop(&s, TILE_MOP_LI, 0, 0, (int32_t)(s.nblk - 1));
  s.lastcol_b = sop(&s, TILE_MOP_LI, 0, 0, (int32_t)(s.lastcol * s.eb));
  s.lastrow_b = sop(&s, TILE_MOP_LI, 0, 0, (int32_t)((s.R - 1) * s.V * s.eb));
  s.vzero = vli(&s, 0);
  s.vone = vli(&s, 1);
  s.vneginf = vli(&s, fbits(-INFINITY));
  if (fast) {
    return sel_tour_topk(&s, &f);
  }
  s.slot_buf = tile_mir_buffer(m, "select.blocks", TILE_SPACE_VMEM, s.slot_bytes, SLOTS, 64);
  s.istage = tile_mir_buffer(m, "select.idx", TILE_SPACE_VMEM, stage_bytes, 1, 64);
  if (s.topk) {
    s.vstage = tile_mir_buffer(m, "select.val", TILE_SPACE_VMEM, stage_bytes, 1, 64);
    s.prev = tile_mir_buffer(m, "select.prev", TILE_SPACE_VMEM, s.R * 2048, 1, 64);
  }
  s.slot_end = li_buf(&s, s.slot_buf, SLOTS * s.slot_bytes);
  TileDmaShape shape = {.count0 = s.masked ? s.V * s.eb : s.slot_bytes, .count1 = 1, .count2 = 1};
  s.site = tile_dma_site(cx, s.in_buf, 0, s.slot_buf, 0, shape);
  s.vc1024 = vli(&s, fbits((float)TILE_ELEMS_PER_VREG));
  int32_t io = tile_mir_vreg(m);
  ins(m, TILE_MOP_VIOTA, io, 0, 0, 0, 2); /* s * lanes + l: the element within a tile */
  s.viota_f = vop(&s, TILE_MOP_VCVTIF, io, 0);
  if (s.masked) s.vlen_f = vli(&s, fbits((float)s.V));

  Pass ps = {.m = vli(&s, fbits(-INFINITY)), .mi = vli(&s, 0), .have = -1};
  if (!s.topk) {
    pass(&s, &ps);
  } else {
    ps.have = vli(&s, 0);
    /* The winner before the first pass: (NaN, -1), before every element. */
    int32_t nan = vli(&s, 0x7fc00000u), neg1 = vli(&s, fbits(-1.0f));
    int32_t a = tile_mir_sreg(m);
    ins(m, TILE_MOP_LI, a, 0, 0, 0, 0);
    tile_mir_loop_begin(m, (int32_t)s.R, 0);
    vst0(&s, TILE_MOP_VST, nan, a, s.prev, 0);
    vst0(&s, TILE_MOP_VST, neg1, a, s.prev, 512);
    ins(m, TILE_MOP_ADDI, a, a, 0, 0, 1024);
    tile_mir_loop_end(m);
    ps.prev_rd = sop(&s, TILE_MOP_LI, 0, 0, 0);
    ps.prev_wr = sop(&s, TILE_MOP_LI, 0, 0, (int32_t)(s.R * 1024));
    ps.round_v = sop(&s, TILE_MOP_LI, 0, 0, 0);
    ps.round_i = sop(&s, TILE_MOP_LI, 0, 0, 0);
    tile_mir_loop_begin(m, (int32_t)s.k, 0);
    pass(&s, &ps);
    int32_t tmp = sop(&s, TILE_MOP_MOV, ps.prev_rd, 0, 0);
    ins(m, TILE_MOP_MOV, ps.prev_rd, ps.prev_wr, 0, 0, 0);
    ins(m, TILE_MOP_MOV, ps.prev_wr, tmp, 0, 0, 0);
    ins(m, TILE_MOP_ADDI, ps.round_v, ps.round_v, 0, 0, (int32_t)(s.R * s.eb));
    ins(m, TILE_MOP_ADDI, ps.round_i, ps.round_i, 0, 0, (int32_t)(s.R * 4));
    tile_mir_loop_end(m);
  }

  /* Staging to the results. */
  if (!s.topk) {
    TileTensorRef out = tile_lower_tensor(cx, op->res[0]);
    TileDmaSite d = tile_dma_site(cx, s.istage, 0, out.buf, 0,
                                  (TileDmaShape){.count0 = s.R * 4, .count1 = 1, .count2 = 1});
    tile_dma_issue(cx, &d, -1, 0, -1, 0);
    tile_dma_wait(cx, &d, 0, 0);
    return true;
  }
  return sel_store_topk(&s);
}

/* Top-k over rows that do not fill the last 8-row group runs its rounds on the padded
 * rows too, and their heads come from VMEM no stream wrote: read as zero (memory never
 * written), they name in-range offsets and their results are dropped. So that layout
 * keeps them reading zero, the group's VMEM buffers get bytes no earlier buffer used. */
bool tile_gen_select_top(TileLowerCtx *cx, const TileGroup *g) {
  TileMir *m = tile_lower_mir(cx);
  int32_t first = m->nbufs;
  if (!select_top(cx, g)) return false;
  const TileType *in = &g->ops[0]->opnd[0].v->type;
  int64_t rows = 1;
  for (int i = 0; i + 1 < in->rank; i++) rows *= in->dims[i];
  if (g->ops[0]->kind == TILE_OP_TOPK && rows % tile_lower_target(cx)->vreg_sublanes != 0)
    for (int32_t b = first; b < m->nbufs; b++)
      if (m->bufs[b].space == TILE_SPACE_VMEM) m->bufs[b].zero_init = true;
  return true;
}
