/* The row-wise generator's MIR (plan in gen_rowwise.c).
 *
 * Shape of the code for one group:
 *
 *   setup: constants, masks, resident tables and row inputs (one DMA each), buffers,
 *          DMA sites; the first `lookahead` pieces of block 0 are issued
 *   loop over whole blocks (all but the last one or two, which are peeled so that no
 *   DMA reaches past the tensor and the shorter last block gets its own DMA shape):
 *     per-row values of level 0 (row inputs)
 *     pass p = 0 .. passes-1:
 *       per-row values of level p (cross-lane reductions of pass p-1, ops on them)
 *       reset the reductions of pass p
 *       loop over DMA pieces along the row:
 *         pass 0: wait for the piece; issue the piece `lookahead` ahead
 *         last pass: wait until the output staging slot is free
 *         loop over 128-lane columns (software-pipelined): load, compute, accumulate,
 *         store (last pass)
 *         masked partial column
 *         last pass: issue the output piece
 *     per-row outputs: transposed into lanes, stored, written out
 *   wait for the outputs still in flight
 *
 * Streamed inputs and outputs have two block slots in VMEM (the block computed and the
 * next one arriving, or the one leaving). Every address stream (an input's loads, an
 * output's stores, a table's loads) has its own offset register, reset from the block's
 * slot at each pass: the modulo scheduler does not rename, so a shared register would
 * tie each iteration's first load to the previous iteration's last store.
 *
 * Output staging slots are credited up front (`sem.signal`), so every piece written
 * waits on its site unconditionally; the final waits take what is left. */
#include <string.h>

#include "gen_rowwise.h"

/* ---- small builders ---- */

static int32_t sli(Rw *w, int32_t imm) { return tile_mir_li(w->m, imm, -1); }

static int32_t sli_buf(Rw *w, int32_t buf) { return tile_mir_li(w->m, 0, buf); }

static void sop(Rw *w, int op, int32_t d, int32_t a, int32_t b) {
  tile_mir_add(w->m, tile_mir_inst(op, d, a, b, 0, 0));
}

static void saddi(Rw *w, int32_t d, int32_t a, int64_t imm) {
  if (imm == 0 && d == a) return;
  tile_mir_add(w->m, tile_mir_inst(TILE_MOP_ADDI, d, a, 0, 0, (int32_t)imm));
}

static int32_t vop1(Rw *w, int op, int32_t a, int32_t imm) {
  int32_t d = tile_mir_vreg(w->m);
  tile_mir_add(w->m, tile_mir_inst(op, d, a, 0, 0, imm));
  return d;
}

static int32_t vop2(Rw *w, int op, int32_t a, int32_t b) {
  int32_t d = tile_mir_vreg(w->m);
  tile_mir_add(w->m, tile_mir_inst(op, d, a, b, 0, 0));
  return d;
}

static int32_t vsel(Rw *w, int32_t c, int32_t a, int32_t b) {
  int32_t d = tile_mir_vreg(w->m);
  tile_mir_add(w->m, tile_mir_inst(TILE_MOP_VSEL, d, a, b, c, 0));
  return d;
}

/* A constant: from the pool, else a `vli` here. */
static int32_t vconst(Rw *w, uint32_t bits) {
  for (int i = 0; i < w->k.n; i++)
    if (w->k.bits[i] == bits) return w->k.vreg[i];
  return vop1(w, TILE_MOP_VLI, 0, (int32_t)bits);
}

static void pool_add(Rw *w, uint32_t bits) {
  for (int i = 0; i < w->k.n; i++)
    if (w->k.bits[i] == bits) return;
  if (w->k.n == TILE_EW_MAX_CONSTS) return;
  w->k.bits[w->k.n] = bits;
  w->k.vreg[w->k.n++] = vop1(w, TILE_MOP_VLI, 0, (int32_t)bits);
}

static int32_t vload(Rw *w, int ebytes, int32_t a, int32_t b, int64_t imm, int32_t buf) {
  int32_t d = tile_mir_vreg(w->m);
  TileMirInst in = tile_mir_inst(ebytes == 2 ? TILE_MOP_VLDBF : TILE_MOP_VLD, d, a, b, 0,
                                 (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, TILE_MIR_READ, 0);
  tile_mir_add(w->m, in);
  return d;
}

static void vstore(Rw *w, int ebytes, int32_t v, int32_t a, int32_t b, int64_t imm, int32_t buf) {
  TileMirInst in = tile_mir_inst(ebytes == 2 ? TILE_MOP_VSTBF : TILE_MOP_VST, v, a, b, 0,
                                 (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, TILE_MIR_WRITE, 0);
  tile_mir_add(w->m, in);
}

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

enum { SIGN = 0x80000000u };

/* ---- reductions ---- */

static const TileOp *reduce_of(const RwVal *x) {
  const TileOp *op = x->v->def;
  return op && op->kind == TILE_OP_REDUCE ? op : NULL;
}

static char reduce_kind(const TileOp *op) { return tile_attr_get(&op->attrs, "kind")->s[1]; }

static uint32_t neutral(const TileOp *op) {
  switch (reduce_kind(op)) {
  case 'a': return f32_bits(-__builtin_inff()); /* max */
  case 'i': return f32_bits(__builtin_inff());  /* min */
  default: return 0;                            /* add */
  }
}

static int combine_op(const TileOp *op) {
  switch (reduce_kind(op)) {
  case 'a': return TILE_MOP_VMAXF;
  case 'i': return TILE_MOP_VMINF;
  default: return TILE_MOP_VADDF;
  }
}

/* ---- tiles of values, one inner iteration at a time ---- */

static int64_t sub_bytes(const Rw *w, int s, int ebytes) {
  return (int64_t)s * w->t->vreg_sublanes * w->cols_pad * ebytes;
}

/* Table row offset of sub-block s (static; gen_rowwise.c made blocks and periods line
 * up). */
static int64_t table_sub_offset(const Rw *w, const RwVal *x, int s) {
  int64_t r = (int64_t)s * w->t->vreg_sublanes;
  if (x->period <= 1) return 0;
  if (w->brows % x->period == 0) r %= x->period;
  return r * x->row_bytes;
}

static int32_t tile_of(Rw *w, RwVal *x, int s, int u, int64_t col);

static int32_t tile_of_value(Rw *w, const TileValue *v, int s, int u, int64_t col) {
  return tile_of(w, rw_val(w, v), s, u, col);
}

static int32_t rope_tile(Rw *w, const TileOp *op, int s, int u, int64_t col) {
  int32_t x = tile_of_value(w, op->opnd[0].v, s, u, col);
  int32_t c = tile_of_value(w, op->opnd[1].v, s, u, col);
  int32_t sn = tile_of_value(w, op->opnd[2].v, s, u, col);
  int lanes = w->t->vreg_lanes;
  int64_t h = w->cols / 2;
  int32_t rot;
  if (2 * h == lanes) {
    rot = vop1(w, TILE_MOP_XLROT, x, (int32_t)h);
  } else { /* lanes < h read x[l + h], lanes h .. D-1 read x[l - h] */
    int32_t up = vop1(w, TILE_MOP_XLROT, x, (int32_t)(lanes - h));
    int32_t down = vop1(w, TILE_MOP_XLROT, x, (int32_t)h);
    rot = vsel(w, w->lane_half, up, down);
  }
  /* [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin] = x [cos, cos] + [-x2, x1] [sin, sin] */
  int32_t rs = vop2(w, TILE_MOP_VXOR, rot, w->sign_half);
  int32_t xc = vop2(w, TILE_MOP_VMULF, x, c);
  int32_t d = tile_mir_vreg(w->m);
  tile_mir_add(w->m, tile_mir_inst(TILE_MOP_VFMAF, d, rs, sn, xc, 0));
  if (op->res[0]->type.elem == TILE_ELEM_BF16) d = vop1(w, TILE_MOP_VRNDBF, d, 0);
  return d;
}

static int32_t computed_tile(Rw *w, RwVal *x, int s, int u, int64_t col) {
  const TileOp *op = x->v->def;
  switch (op->kind) {
  case TILE_OP_BROADCAST: {
    RwVal *a = rw_val(w, op->opnd[0].v);
    return a->cls == RW_ROW ? a->row[s] : tile_of(w, a, s, u, col);
  }
  case TILE_OP_ROPE: return rope_tile(w, op, s, u, col);
  case TILE_OP_DIV: {
    const TileOp *b = op->opnd[1].v->def;
    RwVal *row = b && b->kind == TILE_OP_BROADCAST ? rw_val(w, b->opnd[0].v) : NULL;
    if (!row || !row->divisor || rw_val(w, op->opnd[0].v)->cls == RW_SPLAT) break;
    int32_t q = tile_ew_divide(w->m, tile_of_value(w, op->opnd[0].v, s, u, col), &row->div[s]);
    if (op->res[0]->type.elem == TILE_ELEM_BF16) q = vop1(w, TILE_MOP_VRNDBF, q, 0);
    return q;
  }
  case TILE_OP_CONVERT: {
    /* A float widening changes nothing in the lanes. */
    uint8_t from = op->opnd[0].v->type.elem, to = op->res[0]->type.elem;
    if (to == TILE_ELEM_F32 && (from == TILE_ELEM_F32 || from == TILE_ELEM_BF16))
      return tile_of_value(w, op->opnd[0].v, s, u, col);
    break;
  }
  default: break;
  }
  int32_t v[3] = {-1, -1, -1};
  for (int32_t j = 0; j < op->nopnd; j++) {
    RwVal *a = rw_val(w, op->opnd[j].v);
    if (a->cls != RW_SPLAT) v[j] = tile_of(w, a, s, u, col);
  }
  return tile_ew_emit_mir(w->m, op, v, &w->k);
}

/* The vreg holding value x for sub-block s, column u of this iteration (col: the static
 * byte offset of the column in 4-byte units of lanes, i.e. the column index times the
 * lane count, added to the running offsets). */
static int32_t tile_of(Rw *w, RwVal *x, int s, int u, int64_t col) {
  if (x->cls == RW_SPLAT) {
    double c = 0;
    tile_lower_splat(x->v, &c);
    uint32_t bits = tile_elem_is_float((TileElem)x->elem) ? f32_bits((float)c)
                    : x->elem == TILE_ELEM_I1 ? (c != 0) : (uint32_t)(int32_t)c;
    return vconst(w, bits);
  }
  if (x->cls == RW_ROW) return x->row[s];
  if (x->gen[s][u] == w->gen) return x->tile[s][u];
  int32_t r;
  int64_t lanes_off = col * x->ebytes;
  if (x->src == RW_STREAMED) {
    int32_t str = x->ebytes == 2 ? w->stride2 : w->stride4;
    r = vload(w, x->ebytes, x->reg_cur, str, sub_bytes(w, s, x->ebytes) + lanes_off, x->vbuf);
  } else if (x->src == RW_RESIDENT) {
    r = vload(w, x->ebytes, x->reg_cur, x->reg_stride, table_sub_offset(w, x, s) + lanes_off,
              x->vbuf);
  } else {
    r = computed_tile(w, x, s, u, col);
  }
  x->tile[s][u] = r;
  x->gen[s][u] = w->gen;
  return r;
}

/* One tile x into a running max m and a sum s of e^(x - m), per lane: with
 * d = x - m, e = e^-|d|; where x > m the sum was scaled to the old max, so
 * s = s e + 1, else s = s + e; then m = max(m, x). m starts at -FLT_MAX, not -inf, so
 * a lane that only sees -inf (a masked lane) keeps s = 0 instead of making NaN. */
static void online_step(Rw *w, int32_t m, int32_t s, int32_t x) {
  int32_t d = vop2(w, TILE_MOP_VSUBF, x, m);
  int32_t e = vop1(w, TILE_MOP_VEXP, vop2(w, TILE_MOP_VOR, d, vconst(w, SIGN)), 0);
  int32_t grew = vop2(w, TILE_MOP_VCMPLTF, m, x);
  int32_t scaled = tile_mir_vreg(w->m);
  tile_mir_add(w->m, tile_mir_inst(TILE_MOP_VFMAF, scaled, s, e, vconst(w, f32_bits(1.0f)), 0));
  int32_t added = vop2(w, TILE_MOP_VADDF, s, e);
  tile_mir_add(w->m, tile_mir_inst(TILE_MOP_VSEL, s, scaled, added, grew, 0));
  tile_mir_add(w->m, tile_mir_inst(TILE_MOP_VMAXF, m, m, x, 0, 0));
}

/* ---- one inner iteration: `ncols` columns of every sub-block ---- */

/* Whether x reads or writes VMEM column by column (in the last pass, outputs store). */
static bool has_stream(const RwVal *x, bool last_pass) {
  return x->src == RW_STREAMED || (x->src == RW_RESIDENT && x->cls == RW_TABLE) ||
         (last_pass && x->is_out && x->cls == RW_FULL);
}

static void iteration(Rw *w, int pass, int ncols, bool masked) {
  int lanes = w->t->vreg_lanes;
  w->gen++;
  bool last = pass == w->passes - 1;
  for (int u = 0; u < ncols; u++)
    for (int s = 0; s < w->subs; s++) {
      int64_t col = (int64_t)u * lanes;
      for (int i = 0; i < w->nvals; i++) {
        RwVal *x = &w->vals[i];
        const TileOp *red = reduce_of(x);
        if (!red || x->level - 1 != pass || x->online_of) continue;
        int32_t t = tile_of_value(w, red->opnd[0].v, s, u, col);
        if (masked) t = vsel(w, w->tail_mask, t, vconst(w, neutral(red)));
        int a = ncols == w->unroll ? u : 0;
        if (x->online) {
          online_step(w, x->acc[s][a], x->online->acc[s][a], t);
          continue;
        }
        tile_mir_add(w->m, tile_mir_inst(combine_op(red), x->acc[s][a], x->acc[s][a], t, 0, 0));
      }
      if (!last) continue;
      for (int i = 0; i < w->nvals; i++) {
        RwVal *x = &w->vals[i];
        if (!x->is_out || x->cls != RW_FULL) continue;
        int32_t t = tile_of(w, x, s, u, col);
        int32_t str = x->ebytes == 2 ? w->stride2 : w->stride4;
        vstore(w, x->ebytes, t, x->reg_cur, str, sub_bytes(w, s, x->ebytes) + col * x->ebytes, x->vbuf);
      }
    }
  /* Every address stream has its own register, so a late store does not hold back the
   * next iteration's loads (the modulo scheduler does not rename). */
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (has_stream(x, last)) saddi(w, x->reg_cur, x->reg_cur, (int64_t)ncols * lanes * x->ebytes);
  }
}

/* ---- per-row values ---- */

/* Row values that become available before pass p (p == passes: after the last). */
static void row_value(Rw *w, RwVal *x);

static void row_phase(Rw *w, int p) {
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (x->cls != RW_ROW || x->level != p) continue;
    row_value(w, x);
    if (x->divisor)
      for (int s = 0; s < w->subs; s++) x->div[s] = tile_ew_divisor(w->m, x->row[s], &w->k);
  }
}

static void row_value(Rw *w, RwVal *x) {
  if (x->src == RW_RESIDENT) { /* lane 0 of sublane t holds row t's value: spread it */
    for (int s = 0; s < w->subs; s++) {
      int32_t v = vload(w, x->ebytes, x->reg_tab, x->reg_stride,
                        (int64_t)s * w->t->vreg_sublanes * x->ebytes, x->vbuf);
      v = vsel(w, w->lane0, v, vconst(w, 0));
      x->row[s] = vop1(w, TILE_MOP_XLSUM, v, 0);
    }
    return;
  }
  const TileOp *op = x->v->def;
  if (!op) return;
  if (op->kind == TILE_OP_REDUCE && x->online_of) {
    /* each lane's sum, rescaled from its own max to the row's, then summed */
    for (int s = 0; s < w->subs; s++) {
      int32_t a = -1;
      for (int u = 0; u < w->unroll; u++) {
        int32_t d = vop2(w, TILE_MOP_VSUBF, x->online_of->acc[s][u], x->online_of->row[s]);
        int32_t t = vop2(w, TILE_MOP_VMULF, x->acc[s][u], vop1(w, TILE_MOP_VEXP, d, 0));
        a = a < 0 ? t : vop2(w, TILE_MOP_VADDF, a, t);
      }
      x->row[s] = vop1(w, TILE_MOP_XLSUM, a, 0);
    }
    return;
  }
  if (op->kind == TILE_OP_REDUCE) {
    for (int s = 0; s < w->subs; s++) {
      int32_t a = x->acc[s][0];
      for (int u = 1; u < w->unroll; u++) a = vop2(w, combine_op(op), a, x->acc[s][u]);
      char k = reduce_kind(op);
      if (k == 'i') a = vop2(w, TILE_MOP_VXOR, a, vconst(w, SIGN)); /* min = -max(-x) */
      a = vop1(w, k == 'd' ? TILE_MOP_XLSUM : TILE_MOP_XLMAX, a, 0);
      if (k == 'i') a = vop2(w, TILE_MOP_VXOR, a, vconst(w, SIGN));
      x->row[s] = a;
    }
    return;
  }
  for (int s = 0; s < w->subs; s++) {
    int32_t v[3] = {-1, -1, -1};
    for (int32_t j = 0; j < op->nopnd; j++) {
      RwVal *a = rw_val(w, op->opnd[j].v);
      if (a->cls != RW_SPLAT) v[j] = a->row[s];
    }
    x->row[s] = tile_ew_emit_mir(w->m, op, v, &w->k);
  }
}

/* ---- DMA of streamed blocks ---- */

static int site_of_block(const Rw *w, int64_t b) {
  return b == w->nblocks - 1 && w->last_rows != w->brows ? 1 : 0;
}

static int64_t piece_bytes(const Rw *w, const RwVal *x) {
  return w->pieces == 1 ? w->cols * x->ebytes : w->piece_vcols * w->t->vreg_lanes * x->ebytes;
}

/* What the input address registers jump by after the last piece of a block. */
static int64_t block_jump(const Rw *w, const RwVal *x) {
  return w->brows * w->cols * x->ebytes - w->pieces * piece_bytes(w, x);
}

/* Issues the next piece of every streamed input (through the site of block `site`). */
static void issue_inputs(Rw *w, int site) {
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (x->src != RW_STREAMED) continue;
    tile_dma_issue(w->cx, &x->site[site], x->reg_src, 0, x->reg_dst, 0);
    saddi(w, x->reg_src, x->reg_src, piece_bytes(w, x));
    saddi(w, x->reg_dst, x->reg_dst, piece_bytes(w, x));
  }
}

static void jump_inputs(Rw *w) {
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (x->src == RW_STREAMED) saddi(w, x->reg_src, x->reg_src, block_jump(w, x));
  }
}

/* reg_dst of every streamed input := its buffer + (slot of this block, or the other
 * slot) + piece `first`'s offset. */
static void aim_inputs(Rw *w, bool next_slot, int64_t first) {
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (x->src != RW_STREAMED) continue;
    int32_t slot = x->ebytes == 2 ? w->slot2 : w->slot4, sb = x->ebytes == 2 ? w->sb2 : w->sb4;
    if (next_slot) {
      sop(w, TILE_MOP_SUB, x->reg_dst, sb, slot);
      sop(w, TILE_MOP_ADD, x->reg_dst, x->reg_dst, x->reg_vbase);
    } else {
      sop(w, TILE_MOP_ADD, x->reg_dst, slot, x->reg_vbase);
    }
    saddi(w, x->reg_dst, x->reg_dst, first * piece_bytes(w, x));
  }
}

/* ---- one block ---- */

typedef enum PieceIssue { ISSUE_NONE, ISSUE_THIS, ISSUE_NEXT } PieceIssue;

static void piece(Rw *w, int pass, int64_t block, PieceIssue issue) {
  int lanes = w->t->vreg_lanes;
  bool last = pass == w->passes - 1;
  int site = block < 0 ? 0 : site_of_block(w, block);
  if (pass == 0) {
    for (int i = 0; i < w->nvals; i++)
      if (w->vals[i].src == RW_STREAMED) tile_dma_wait(w->cx, &w->vals[i].site[site], 0, 0);
    if (issue == ISSUE_THIS) issue_inputs(w, site);
    if (issue == ISSUE_NEXT) issue_inputs(w, block < 0 ? 0 : site_of_block(w, block + 1));
  }
  if (last)
    for (int i = 0; i < w->nvals; i++)
      if (w->vals[i].is_out && w->vals[i].cls == RW_FULL)
        tile_dma_wait(w->cx, &w->vals[i].site[0], 0, 0);
  int64_t ncols = w->piece_vcols - (w->tail_lanes ? 1 : 0);
  int64_t trips = ncols / w->unroll, rem = ncols % w->unroll;
  if (trips > 1) tile_mir_loop_begin(w->m, (int32_t)trips, TILE_MIR_PIPELINE);
  if (trips >= 1) iteration(w, pass, w->unroll, false);
  if (trips > 1) tile_mir_loop_end(w->m);
  for (int64_t r = 0; r < rem; r++) iteration(w, pass, 1, false);
  if (w->tail_lanes) iteration(w, pass, 1, true);
  if (!last) return;
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (!x->is_out || x->cls != RW_FULL) continue;
    sop(w, TILE_MOP_ADD, x->reg_src, x->reg_cur, x->reg_vbase);
    saddi(w, x->reg_src, x->reg_src, -(int64_t)w->piece_vcols * lanes * x->ebytes);
    tile_dma_issue(w->cx, &x->site[site], x->reg_src, 0, x->reg_dst, 0);
    saddi(w, x->reg_dst, x->reg_dst, piece_bytes(w, x));
  }
}

/* Pieces [from, to) of pass `pass`, as a loop when more than one. */
static void piece_range(Rw *w, int pass, int64_t block, int64_t from, int64_t to,
                        PieceIssue issue) {
  if (to <= from) return;
  if (to - from > 1) tile_mir_loop_begin(w->m, (int32_t)(to - from), 0);
  piece(w, pass, block, issue);
  if (to - from > 1) tile_mir_loop_end(w->m);
  if (pass == w->passes - 1 && to == w->pieces) /* the outputs move on to the next block */
    for (int i = 0; i < w->nvals; i++) {
      RwVal *x = &w->vals[i];
      if (x->is_out && x->cls == RW_FULL) saddi(w, x->reg_dst, x->reg_dst, block_jump(w, x));
    }
}

static void reset_offsets(Rw *w, int pass) {
  bool last = pass == w->passes - 1;
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (!has_stream(x, last)) continue;
    int32_t from = x->src == RW_RESIDENT ? x->reg_tab : x->ebytes == 2 ? w->slot2 : w->slot4;
    sop(w, TILE_MOP_MOV, x->reg_cur, from, 0);
  }
}

static void row_outputs(Rw *w, int64_t block) {
  int site = block < 0 ? 0 : site_of_block(w, block);
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (!x->is_out || x->cls != RW_ROW) continue;
    tile_dma_wait(w->cx, &x->site[0], 0, 0);
    /* Transposed, lane l of every sublane holds row l's value. */
    for (int s = 0; s < w->subs; s++)
      tile_mir_add(w->m, tile_mir_inst(TILE_MOP_XTRPUSH, 0, x->row[s], 0, 0, s));
    int32_t v = vop1(w, TILE_MOP_XTRPOP, 0, 0);
    if (x->ebytes == 2) v = vop1(w, TILE_MOP_VRNDBF, v, 0);
    vstore(w, x->ebytes, v, x->reg_slot, w->zero, 0, x->vbuf);
    sop(w, TILE_MOP_ADD, x->reg_src, x->reg_slot, x->reg_vbase);
    tile_dma_issue(w->cx, &x->site[site], x->reg_src, 0, x->reg_dst, 0);
    saddi(w, x->reg_dst, x->reg_dst, w->brows * x->ebytes);
  }
}

static void block_end(Rw *w) {
  sop(w, TILE_MOP_SUB, w->slot4, w->sb4, w->slot4);
  sop(w, TILE_MOP_SUB, w->slot2, w->sb2, w->slot2);
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (x->is_out && x->cls == RW_ROW) {
      int32_t sb = sli(w, x->slot_bytes);
      sop(w, TILE_MOP_SUB, x->reg_slot, sb, x->reg_slot);
    }
    if (x->src != RW_RESIDENT) continue;
    if (x->cls == RW_ROW) {
      saddi(w, x->reg_tab, x->reg_tab, w->brows * x->ebytes);
    } else if (x->period > 1 && x->period % w->brows == 0 && x->period != w->brows) {
      /* the table row of the next block, wrapping at the period */
      int64_t wrap = x->period * x->row_bytes;
      saddi(w, x->reg_tab, x->reg_tab, w->brows * x->row_bytes);
      int32_t lim = sli(w, (int32_t)wrap), t = tile_mir_sreg(w->m);
      sop(w, TILE_MOP_SEQ, t, x->reg_tab, lim);
      sop(w, TILE_MOP_MUL, t, t, lim);
      sop(w, TILE_MOP_SUB, x->reg_tab, x->reg_tab, t);
    }
  }
}

/* One block: `block` is its index when peeled, -1 in the steady loop (whose next block
 * always exists and is whole). */
static void emit_block(Rw *w, int64_t block) {
  int64_t k = w->pieces, d = w->lookahead;
  bool has_next = block < 0 || block + 1 < w->nblocks;
  for (int i = 0; i < w->nvals; i++) w->vals[i].gen[0][0] = -1;
  row_phase(w, 0);
  for (int p = 0; p < w->passes; p++) {
    if (p > 0) row_phase(w, p);
    for (int i = 0; i < w->nvals; i++) {
      RwVal *x = &w->vals[i];
      const TileOp *red = reduce_of(x);
      if (!red || x->level - 1 != p) continue;
      uint32_t init = x->online ? 0xff7fffffu /* -FLT_MAX */ : neutral(red);
      for (int s = 0; s < w->subs; s++)
        for (int u = 0; u < w->unroll; u++)
          tile_mir_add(w->m, tile_mir_inst(TILE_MOP_VLI, x->acc[s][u], 0, 0, 0, (int32_t)init));
    }
    reset_offsets(w, p);
    if (p == 0) {
      if (k - d > 0) {
        aim_inputs(w, false, d);
        piece_range(w, p, block, 0, k - d, ISSUE_THIS);
        jump_inputs(w);
      }
      if (has_next) aim_inputs(w, true, 0);
      piece_range(w, p, block, k - d, k, has_next ? ISSUE_NEXT : ISSUE_NONE);
      if (has_next && d == k) jump_inputs(w);
    } else {
      piece_range(w, p, block, 0, k, ISSUE_NONE);
    }
  }
  row_phase(w, w->passes);
  row_outputs(w, block);
  block_end(w);
}

/* ---- setup ---- */

static int32_t new_vbuf(Rw *w, const RwVal *x, const char *what, int64_t bytes) {
  char name[64];
  snprintf(name, sizeof name, "%s.%s", what, x->v->name ? x->v->name : "v");
  return tile_mir_buffer(w->m, name, TILE_SPACE_VMEM, bytes, 1, 512);
}

/* One wait for the n oldest transfers of a site, naming its buffers (so every later
 * access of them follows it). */
static void wait_n(Rw *w, const TileDmaSite *site, int64_t n) {
  if (n <= 0) return;
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, site->sem, (int32_t)n);
  tile_mir_mem(&in, site->src_buf, TILE_MIR_WRITE, 0);
  tile_mir_mem(&in, site->dst_buf, TILE_MIR_WRITE, 0);
  tile_mir_add(w->m, in);
}

/* A whole table or row input into VMEM. Rope tables are doubled along the row ([cos,
 * cos]); a table whose period is not a multiple of 8 rows is repeated up to one (the
 * period gen_rowwise.c planned with), so every sublane of a vreg reads its own row.
 * One DMA site per table: its copies differ only in where they land. */
static void load_resident(Rw *w, RwVal *x) {
  int lanes = w->t->vreg_lanes;
  TileDmaShape sh = {0};
  if (x->cls == RW_ROW) {
    x->vbuf = new_vbuf(w, x, "rows", (w->rows + lanes) * x->ebytes);
    sh.count0 = x->ref.bytes;
    TileDmaSite site = tile_dma_site(w->cx, x->ref.buf, 0, x->vbuf, 0, sh);
    tile_dma_issue(w->cx, &site, -1, 0, -1, 0);
    tile_dma_wait(w->cx, &site, 0, 0);
    x->reg_stride = sli(w, x->ebytes);
    x->reg_tab = sli(w, 0);
    return;
  }
  int64_t src_period = x->src_period ? x->src_period : x->period;
  int64_t copies = x->period / src_period, halves = x->rope ? 2 : 1;
  x->vbuf = new_vbuf(w, x, "table", (x->period + 1) * x->row_bytes + lanes * 4);
  int64_t src_row = x->row_bytes / halves;
  sh.count0 = src_row;
  sh.count1 = src_period;
  sh.src_stride1 = src_row;
  sh.dst_stride1 = x->row_bytes;
  TileDmaSite site = tile_dma_site(w->cx, x->ref.buf, 0, x->vbuf, 0, sh);
  int32_t base = sli_buf(w, x->vbuf);
  int inflight = 0, limit = w->t->dma_outstanding / 2 > 0 ? w->t->dma_outstanding / 2 : 1;
  for (int64_t c = 0; c < copies; c++)
    for (int64_t half = 0; half < halves; half++) {
      if (inflight == limit) { /* stay well inside the machine's DMAs in flight */
        wait_n(w, &site, inflight);
        inflight = 0;
      }
      int32_t dst = tile_mir_sreg(w->m);
      saddi(w, dst, base, c * src_period * x->row_bytes + half * src_row);
      tile_dma_issue(w->cx, &site, -1, 0, dst, 0);
      inflight++;
    }
  wait_n(w, &site, inflight);
  x->reg_stride = x->period > 1 ? sli(w, (int32_t)x->row_bytes) : w->zero;
  x->reg_tab = sli(w, 0);
  x->reg_cur = tile_mir_sreg(w->m);
}

/* Streamed inputs and full-shape outputs: two block slots in VMEM, a DMA site for whole
 * blocks and one for the shorter last block. */
static void stream_setup(Rw *w, RwVal *x, bool out) {
  int64_t slot = w->brows * w->cols_pad * x->ebytes;
  x->vbuf = new_vbuf(w, x, out ? "out" : "in", 2 * slot);
  x->reg_vbase = sli_buf(w, x->vbuf);
  for (int site = 0; site < 2; site++) {
    int64_t rows = site ? w->last_rows : w->brows;
    if (site && rows == w->brows) {
      x->site[1] = x->site[0];
      break;
    }
    TileDmaShape sh = {.count0 = piece_bytes(w, x), .count1 = rows, .count2 = 1};
    int64_t hbm_stride = w->cols * x->ebytes, vmem_stride = w->cols_pad * x->ebytes;
    sh.src_stride1 = out ? vmem_stride : hbm_stride;
    sh.dst_stride1 = out ? hbm_stride : vmem_stride;
    x->site[site] = out ? tile_dma_site(w->cx, x->vbuf, 0, x->ref.buf, 0, sh)
                        : tile_dma_site(w->cx, x->ref.buf, 0, x->vbuf, 0, sh);
  }
  int32_t hbm = sli_buf(w, x->ref.buf);
  if (!out || x->src != RW_STREAMED) x->reg_cur = tile_mir_sreg(w->m);
  if (out) {
    x->reg_dst = hbm;
    x->reg_src = tile_mir_sreg(w->m);
    /* The staging slots start free: out_credit pieces (two blocks' worth, or one when
     * the target allows fewer DMAs in flight) may be written before the first wait
     * needs a finished transfer. */
    tile_mir_add(w->m, tile_mir_inst(TILE_MOP_SIGNAL, 0, 0, 0, x->site[0].sem,
                                     (int32_t)w->out_credit));
  } else {
    x->reg_src = hbm;
    x->reg_dst = tile_mir_sreg(w->m);
  }
}

static void row_output_setup(Rw *w, RwVal *x) {
  int lanes = w->t->vreg_lanes;
  x->slot_bytes = (int32_t)(((w->brows + lanes) * x->ebytes + 511) / 512 * 512);
  x->vbuf = new_vbuf(w, x, "rowout", 2 * (int64_t)x->slot_bytes);
  x->reg_vbase = sli_buf(w, x->vbuf);
  for (int site = 0; site < 2; site++) {
    int64_t rows = site ? w->last_rows : w->brows;
    if (site && rows == w->brows) {
      x->site[1] = x->site[0];
      break;
    }
    TileDmaShape sh = {.count0 = rows * x->ebytes, .count1 = 1, .count2 = 1};
    x->site[site] = tile_dma_site(w->cx, x->vbuf, 0, x->ref.buf, 0, sh);
  }
  x->reg_dst = sli_buf(w, x->ref.buf);
  x->reg_src = tile_mir_sreg(w->m);
  x->reg_slot = sli(w, 0);
  tile_mir_add(w->m, tile_mir_inst(TILE_MOP_SIGNAL, 0, 0, 0, x->site[0].sem, w->row_credit));
}

/* Constants held in vregs for the whole group: those of the elementwise ops (as many as
 * leave room for the work), the reductions' neutral values, masks. */
static void constants(Rw *w, int budget) {
  TileMir scratch;
  tile_mir_init(&scratch, w->t);
  TileEwConsts want = {0};
  for (int32_t i = 0; i < w->g->nops; i++)
    if (tile_ew_supported(w->g->ops[i])) tile_ew_consts(&scratch, w->g->ops[i], &want);
  tile_mir_free(&scratch);
  for (int i = 0; i < w->nvals; i++) {
    const TileOp *red = reduce_of(&w->vals[i]);
    if (red && w->k.n < budget) pool_add(w, neutral(red));
  }
  for (int i = 0; i < want.n && w->k.n < budget; i++) pool_add(w, want.bits[i]);
  int lanes = w->t->vreg_lanes;
  bool reduces = false, row_in = false, rope = false;
  for (int i = 0; i < w->nvals; i++) {
    reduces |= reduce_of(&w->vals[i]) != NULL;
    row_in |= w->vals[i].cls == RW_ROW && w->vals[i].src == RW_RESIDENT;
    rope |= w->vals[i].rope != 0;
  }
  if (!(reduces && w->tail_lanes) && !row_in && !rope) return;
  int32_t iota = vop1(w, TILE_MOP_VIOTA, 0, 0);
  if (reduces && w->tail_lanes)
    w->tail_mask = vop2(w, TILE_MOP_VCMPLTI, iota, vconst(w, (uint32_t)w->tail_lanes));
  if (row_in) w->lane0 = vop2(w, TILE_MOP_VCMPEQI, iota, vconst(w, 0));
  if (rope) {
    int64_t h = w->cols / 2;
    int32_t lo = vop2(w, TILE_MOP_VCMPLTI, iota, vconst(w, (uint32_t)h));
    w->sign_half = vsel(w, lo, vconst(w, SIGN), vconst(w, 0));
    if (2 * h != lanes) w->lane_half = lo;
  }
}

bool rw_emit(Rw *w) {
  TileMir *m = w->m;
  w->zero = tile_lower_zero(w->cx);
  /* Registers for the work: per sub-block and column, a few temporaries, the
   * accumulators and per-row values; the rest may hold constants. */
  int live = 0;
  for (int i = 0; i < w->nvals; i++) {
    if (reduce_of(&w->vals[i])) live += w->subs * w->unroll;
    if (w->vals[i].cls == RW_ROW) live += w->subs;
  }
  int budget = w->t->nvregs - live - 8 * w->subs * w->unroll;
  if (budget > TILE_EW_MAX_CONSTS) budget = TILE_EW_MAX_CONSTS;
  if (budget < 0) budget = 0;
  constants(w, budget);
  w->stride4 = sli(w, (int32_t)(w->cols_pad * 4));
  w->stride2 = sli(w, (int32_t)(w->cols_pad * 2));
  w->sb4 = sli(w, (int32_t)(w->brows * w->cols_pad * 4));
  w->sb2 = sli(w, (int32_t)(w->brows * w->cols_pad * 2));
  w->slot4 = sli(w, 0);
  w->slot2 = sli(w, 0);
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (x->src == RW_RESIDENT) load_resident(w, x);
    else if (x->src == RW_STREAMED) stream_setup(w, x, false);
    if (x->is_out && x->cls == RW_FULL) stream_setup(w, x, true);
    if (x->is_out && x->cls == RW_ROW) row_output_setup(w, x);
    if (reduce_of(x))
      for (int s = 0; s < w->subs; s++)
        for (int u = 0; u < w->unroll; u++) x->acc[s][u] = tile_mir_vreg(m);
  }
  /* The first pieces of block 0. */
  int64_t d = w->lookahead;
  aim_inputs(w, false, 0);
  for (int64_t j = 0; j < d; j++) issue_inputs(w, site_of_block(w, 0));
  if (d == w->pieces) jump_inputs(w);

  int64_t peel = w->nblocks >= 2 && w->last_rows != w->brows ? 2 : 1;
  int64_t steady = w->nblocks - peel;
  if (steady > 1) tile_mir_loop_begin(m, (int32_t)steady, 0);
  if (steady >= 1) emit_block(w, steady > 1 ? -1 : 0);
  if (steady > 1) tile_mir_loop_end(m);
  for (int64_t b = steady < 0 ? 0 : steady; b < w->nblocks; b++) emit_block(w, b);

  /* Outputs still in flight: those not yet consumed by a wait. Site 0's semaphore holds
   * the credit less the last block's pieces when they went through site 1. */
  for (int i = 0; i < w->nvals; i++) {
    RwVal *x = &w->vals[i];
    if (!x->is_out) continue;
    int64_t per_block = x->cls == RW_FULL ? w->pieces : 1;
    int64_t credit = x->cls == RW_FULL ? w->out_credit : w->row_credit;
    bool partial = w->last_rows != w->brows;
    int64_t regular_left = credit - (partial ? per_block : 0);
    /* Naming the buffers orders later readers of the result after the transfers. */
    wait_n(w, &x->site[0], regular_left);
    if (partial) wait_n(w, &x->site[1], per_block);
  }
  return true;
}
