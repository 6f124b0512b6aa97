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
 * topk runs a chunk tournament (below, "topk by a chunk tournament"): one streaming
 * pass that keeps the rows in VMEM and each aligned run of `lanes` elements' best
 * element, then k rounds that each take the row's best chunk head and recompute that
 * chunk's head, 8 rows to a vreg. Rows longer than `lanes` vreg tiles, or inputs whose rows do not fit
 * half of VMEM, fall back to k streaming passes: pass r keeps only elements after pass
 * r-1's winner in the order above (value and index compared, so ties and NaN are exact;
 * no element is overwritten), which makes its winner the r-th of the row -- exact for
 * every input but O(kV).
 *
 * Results go to VMEM staging (argmax [R] i32; topk values and indices [k][R], pass
 * major, so a wide store with a small or zero sublane stride only ever covers entries
 * written later) and reach
 * HBM with one DMA each at the end (topk's transposes [k][R] to [R][k]). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tile/lower.h"
#include "tile/ops.h"

enum { TILE_ELEMS_PER_VREG = 1024, SLOTS = 3, ARGMAX_TILES = 12, TOPK_TILES = 3 };

typedef struct Sel {
  TileLowerCtx *cx;
  TileMir *m;
  const TileTarget *t;
  const TileOp *op;
  bool topk;
  TileElem elem;
  int eb;
  int64_t R, V, k;
  int u;             /* vreg tiles per block */
  int64_t bc;        /* columns per block (u * 1024) */
  int64_t nblk;      /* blocks per row */
  bool masked;       /* V < 1024: one partial tile per row */
  int64_t lastcol;   /* first column of a row's last block */
  int32_t in_buf, slot_buf, vstage, istage, prev;
  int64_t slot_bytes;
  TileDmaSite site;
  /* scalar constants */
  int32_t zero, nblkm1, lastcol_b, lastrow_b, slot_end;
  /* vector constants */
  int32_t vzero, vone, vneginf, vc1024, viota_f, vlen_f, vnan, vneg1;
} Sel;

static int32_t ins(TileMir *m, int op, int32_t d, int32_t a, int32_t b, int32_t c, int32_t imm) {
  return tile_mir_add(m, tile_mir_inst(op, d, a, b, c, imm));
}
static int32_t sop(Sel *s, int op, int32_t a, int32_t b, int32_t imm) {
  int32_t d = tile_mir_sreg(s->m);
  ins(s->m, op, d, a, b, 0, imm);
  return d;
}
/* d := op(a, b, c) into an existing register d. */
static void vset(Sel *s, int op, int32_t d, int32_t a, int32_t b, int32_t c) {
  ins(s->m, op, d, a, b, c, 0);
}
static int32_t vop(Sel *s, int op, int32_t a, int32_t b) {
  int32_t d = tile_mir_vreg(s->m);
  ins(s->m, op, d, a, b, 0, 0);
  return d;
}
/* vsel: c != 0 ? a : b */
static int32_t vsel(Sel *s, int32_t c, int32_t a, int32_t b) {
  int32_t d = tile_mir_vreg(s->m);
  ins(s->m, TILE_MOP_VSEL, d, a, b, c, 0);
  return d;
}
static int32_t vli(Sel *s, uint32_t bits) {
  int32_t d = tile_mir_vreg(s->m);
  ins(s->m, TILE_MOP_VLI, d, 0, 0, 0, (int32_t)bits);
  return d;
}
static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static int32_t li_buf(Sel *s, int32_t buf, int64_t off) {
  int32_t d = tile_mir_sreg(s->m);
  TileMirInst in = tile_mir_inst(TILE_MOP_LI, d, 0, 0, 0, (int32_t)off);
  in.imm_buf = buf;
  tile_mir_add(s->m, in);
  return d;
}
/* A vector store of v with a zero sublane stride at (addr + imm) in buf. */
static void vst0(Sel *s, int op, int32_t v, int32_t addr, int32_t buf, int64_t imm) {
  TileMirInst in = tile_mir_inst(op, v, addr, s->zero, 0, (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, TILE_MIR_WRITE, 0);
  tile_mir_add(s->m, in);
}
static int32_t vld0(Sel *s, int32_t addr, int32_t buf, int64_t imm) {
  int32_t d = tile_mir_vreg(s->m);
  TileMirInst in = tile_mir_inst(TILE_MOP_VLD, d, addr, s->zero, 0, (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, TILE_MIR_READ, 0);
  tile_mir_add(s->m, in);
  return d;
}

/* Block position registers: block b of the row (0 .. nblk-1) and the row's byte offset
 * in the input; advance() steps to the next block, wrapping to the next row (the row
 * offset stops at the last row, so DMAs issued past the end re-read the last block). */
typedef struct Pos {
  int32_t b, row_off;
} Pos;

static Pos pos_start(Sel *s) {
  Pos p = {tile_mir_sreg(s->m), tile_mir_sreg(s->m)};
  ins(s->m, TILE_MOP_LI, p.b, 0, 0, 0, 0);
  ins(s->m, TILE_MOP_LI, p.row_off, 0, 0, 0, 0);
  return p;
}
/* Returns the sreg that is 1 at the row's last block (computed before stepping). */
static int32_t pos_advance(Sel *s, Pos p) {
  TileMir *m = s->m;
  int32_t last = sop(s, TILE_MOP_SEQ, p.b, s->nblkm1, 0);
  ins(m, TILE_MOP_ADDI, p.b, p.b, 0, 0, 1);
  int32_t wrap = sop(s, TILE_MOP_MULI, last, 0, (int32_t)s->nblk);
  ins(m, TILE_MOP_SUB, p.b, p.b, wrap, 0, 0);
  int32_t step = sop(s, TILE_MOP_MULI, last, 0, (int32_t)(s->V * s->eb));
  ins(m, TILE_MOP_ADD, p.row_off, p.row_off, step, 0, 0);
  ins(m, TILE_MOP_MIN, p.row_off, p.row_off, s->lastrow_b, 0, 0);
  return last;
}
/* Byte offset of the block's first column: min(b * bc, lastcol) elements. */
static int32_t pos_col_bytes(Sel *s, Pos p) {
  int32_t c = sop(s, TILE_MOP_MULI, p.b, 0, (int32_t)(s->bc * s->eb));
  ins(s->m, TILE_MOP_MIN, c, c, s->lastcol_b, 0, 0);
  return c;
}
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
static bool store_topk(Sel *s) {
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

/* ---- topk by a chunk tournament ----
 *
 * Chunks are the rows' aligned runs of `lanes` elements (one sublane of a vreg tile). A
 * chunk's head is its best element not yet taken. One streaming pass brings the rows
 * into VMEM and records every chunk's first head; then k rounds each take the best head
 * of the row (the row's next element in the order) and recompute that one chunk's head
 * from VMEM: its best element after the winner in the order, which needs no record of
 * what was taken, since the winners so far are exactly the elements before it. The rows'
 * tails (indices V .. whole blocks) hold -inf, which loses every tie and is never among
 * the first k <= V.
 *
 * Keys. An element x at index i ranks by (x', key) descending, x' = x with NaN read as
 * +inf and key = -i, plus 2^24 for a NaN: NaNs then come before +inf and, among equal
 * x', the lower index first, while x' and key stay plain f32 that vmax, xlu.lmax and
 * the compares order (no NaN among them; indices are exact below 2^24). A head is kept
 * as (x', key); the integer -key masked to 24 bits gives the index back for both kinds.
 * The winner's own bits (a NaN's payload, -0 against +0) are read from the chunk.
 *
 * The stream. DMAs land each block of u tiles straight in its place in `rows` (a row's
 * last block shifted back to end at the row's end), three in flight; the loop reads the
 * tiles there and stores every chunk's head. The tails were filled with -inf before.
 *
 * Heads. Chunk (tile t, sublane s) of row r has its head at lane t of slice (r, s) in
 * `hb`; a row's 8 slices each have one level-2 head, the best of the slice, at lane s of
 * row r's line in `rec` (lanes past 8 -inf). Rows are packed 8 to a vreg, sublane =
 * row, so a round advances 8 rows (a group) with one op per step: the row's best from
 * its line in rec; the winner's chunk and slice offsets go vector -> VMEM -> SMEM (one
 * 64-byte DMA) -> sld, and 8 loads (one per row, sublane-stride 0, combined by a tree of
 * vsel on sublane bits) fetch the chunks and the slices; the chunks' new heads go into
 * the slices, whose new maxima go into rec. A slice goes back with one vst per row whose
 * sublane stride is the guard distance D (or -D): the row's own sublane lands in place,
 * the other seven in guard space (3 D below to 7 D above the real slices, never read).
 * With several groups the store slot binds, so a row's x' and key slices go back in one
 * vst (the keys rotated one sublane next to the x', stride = the key slices' offset).
 *
 * A round's steps depend on each other, so the loop over groups is unrolled by a batch
 * of up to FAST_BATCH groups whose chains the list scheduler interleaves; each group of
 * the batch names its own slot of the shared buffers (the groups' rows are disjoint, so
 * no two groups of a batch touch the same real bytes). */

enum { FAST_TILES = 8, RING = 3, FAST_BATCH = 4, GUARD_BELOW = 3, GUARD_ABOVE = 7 };
#define KEY_NAN 16777216.0f /* 2^24: added to a NaN's key */

typedef struct Fast {
  int L, S, TE;        /* lanes, sublanes, elements per vreg */
  int64_t ntp;         /* tiles per row in VMEM (whole blocks) */
  int64_t pitch_b;     /* bytes per row in `rows` (the input's element type) */
  int64_t dsz;         /* elements per DMA */
  int64_t hp;          /* bytes per sublane row of the stream's heads */
  int64_t sp;          /* bytes per slice in hb (a multiple of 128) */
  int64_t rpx;         /* bytes per row of slices (room for the last slice's 128 lanes) */
  int64_t koff;        /* offset of the key slices after the x' slices */
  int64_t gd;          /* guard distance: the real slices' extent, rounded */
  int64_t R8;          /* rows rounded up to whole batches of groups */
  int bs;              /* groups per batch */
  int64_t nbatch;
  int32_t rows, h0, hb, rec, xf[FAST_BATCH], xs[FAST_BATCH];
} Fast;

static int64_t round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

/* Plans the fast topk; false when a row has more tiles than a vreg has lanes or the
 * buffers do not fit half of VMEM (the k-pass method then runs). */
static bool fast_plan(Sel *s, Fast *f) {
  const TileTarget *t = s->t;
  f->L = t->vreg_lanes;
  f->S = t->vreg_sublanes;
  f->TE = f->L * f->S;
  if (f->S != 8) return false; /* the sublane tree below has three levels */
  int64_t ntiles = (s->V + f->TE - 1) / f->TE;
  /* tiles per block: a power of two (fast_heads finds a lane's block by a bit) */
  s->u = 1;
  while (s->u * 2 <= FAST_TILES && s->u * 2 * (int64_t)f->TE <= s->V) s->u *= 2;
  while (s->u > 1 && (ntiles + s->u - 1) / s->u * s->u > f->L) s->u /= 2;
  s->bc = (int64_t)s->u * f->TE;
  s->nblk = (ntiles + s->u - 1) / s->u;
  f->ntp = s->nblk * s->u;
  f->dsz = s->V < s->bc ? s->V : s->bc;
  s->lastcol = s->V - f->dsz;
  s->slot_bytes = 0;
  f->pitch_b = f->ntp * f->TE * s->eb;
  f->hp = (f->ntp - 1 + f->L) * 4; /* tile t's store reaches lane t + lanes - 1 */
  f->sp = round_up(f->ntp * 4, 128);
  f->rpx = 7 * f->sp + f->L * 4;
  int64_t groups = (s->R + f->S - 1) / f->S;
  f->bs = groups < FAST_BATCH ? (int)groups : FAST_BATCH;
  f->nbatch = (groups + f->bs - 1) / f->bs;
  f->R8 = f->nbatch * f->bs * f->S;
  f->koff = f->R8 * f->rpx;
  f->gd = round_up(2 * f->koff, 512);
  int64_t stage = (s->R * s->k + f->R8 + f->L) * 4;
  int64_t slices = (GUARD_BELOW + 1 + GUARD_ABOVE) * f->gd;
  int64_t need = f->R8 * f->pitch_b + slices + s->R * 4 * f->S * f->hp + 2 * f->R8 * f->L * 4 +
                 2 * stage + f->bs * 8 * (int64_t)f->TE;
  return f->ntp <= f->L && s->R * s->k <= INT32_MAX / 4 && f->R8 * f->pitch_b <= INT32_MAX &&
         s->R * s->V * s->eb <= INT32_MAX && slices <= INT32_MAX &&
         need <= s->t->vmem_bytes / 2;
}

/* A vector load or store of vreg v at (addr + imm) in buf, sublane stride in `stride`;
 * imm is relative to buf's address. */
static int32_t vmem(Sel *s, int op, int32_t v, int32_t addr, int32_t stride, int32_t buf,
                    int64_t imm, int access, int slot_ofs) {
  if (v < 0) v = tile_mir_vreg(s->m);
  TileMirInst in = tile_mir_inst(op, v, addr, stride, 0, (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, access, slot_ofs);
  tile_mir_add(s->m, in);
  return v;
}

/* Issues the DMA of the block at (dp, drow) and steps both: columns min(b * bc, V - dsz)
 * of the row, from x to the same columns of the row in `rows`. */
static void fast_issue(Sel *s, Fast *f, Pos dp, int32_t drow, int32_t lastrow_d, int slot_ofs) {
  int32_t col = pos_col_bytes(s, dp);
  int32_t dst = sop(s, TILE_MOP_ADD, col, drow, 0);
  TileMirInst in = tile_mir_inst(TILE_MOP_ADDI, dst, dst, 0, 0, 0);
  in.imm_buf = f->rows;
  tile_mir_add(s->m, in);
  int32_t src = sop(s, TILE_MOP_ADD, col, dp.row_off, 0);
  in = tile_mir_inst(TILE_MOP_ADDI, src, src, 0, 0, 0);
  in.imm_buf = s->in_buf;
  tile_mir_add(s->m, in);
  tile_dma_issue(s->cx, &s->site, src, 0, dst, slot_ofs);
  int32_t last = pos_advance(s, dp);
  int32_t step = sop(s, TILE_MOP_MULI, last, 0, (int32_t)f->pitch_b);
  ins(s->m, TILE_MOP_ADD, drow, drow, step, 0, 0);
  ins(s->m, TILE_MOP_MIN, drow, drow, lastrow_d, 0, 0);
}

/* -inf over each row's tail in `rows` (indices V .. ntp * TE), by whole tiles ending at
 * the row's end; a tile reaching back before V is rewritten by the row's DMA later. */
static void fast_fill(Sel *s, Fast *f) {
  int64_t tail = f->ntp * f->TE - s->V;
  if (tail <= 0) return;
  int64_t n = (tail + f->TE - 1) / f->TE;
  int32_t a = li_buf(s, f->rows, 0), stride = sop(s, TILE_MOP_LI, 0, 0, f->L * s->eb);
  int op = s->elem == TILE_ELEM_BF16 ? TILE_MOP_VSTBF : TILE_MOP_VST;
  tile_mir_loop_begin(s->m, (int32_t)s->R, 0);
  for (int64_t q = 0; q < n; q++) {
    TileMirInst in = tile_mir_inst(op, s->vneginf, a, stride, 0,
                                   (int32_t)((f->ntp - 1 - q) * f->TE * s->eb));
    tile_mir_mem(&in, f->rows, TILE_MIR_WRITE, 0);
    tile_mir_add(s->m, in);
  }
  ins(s->m, TILE_MOP_ADDI, a, a, 0, 0, (int32_t)f->pitch_b);
  tile_mir_loop_end(s->m);
}

/* The streaming pass: rows into VMEM, every chunk's first head into h0. Per tile: x' and
 * the keys, the lane maximum (the head's x') and the first lane holding it (the largest
 * key among lanes with x' equal to it). Both are uniform along lanes and are stored at
 * lane t of a row of ntp - 1 + lanes; tile t's store also covers lanes t+1 .., which
 * later tiles must overwrite, so two such stores must land in order. Blocks alternate
 * between the two slots of h0: the scheduler orders a block's stores after those of the
 * block two before (the same slot), and the block just before writes the other copy.
 * fast_heads takes each lane from the copy its block wrote. */
static void fast_stream(Sel *s, Fast *f) {
  TileMir *m = s->m;
  int32_t io = tile_mir_vreg(m);
  ins(m, TILE_MOP_VIOTA, io, 0, 0, 0, 2);
  int32_t niota_f = vop(s, TILE_MOP_VSUBF, s->vzero, vop(s, TILE_MOP_VCVTIF, io, 0));
  int32_t tef = vli(s, fbits((float)f->TE));
  int32_t big = vli(s, fbits(KEY_NAN)), pinf = vli(s, fbits(INFINITY));
  int32_t stride_in = sop(s, TILE_MOP_LI, 0, 0, f->L * s->eb);
  int32_t stride_h = sop(s, TILE_MOP_LI, 0, 0, (int32_t)f->hp);
  int32_t lastrow_d = sop(s, TILE_MOP_LI, 0, 0, (int32_t)((s->R - 1) * f->pitch_b));
  Pos dp = pos_start(s), cp = pos_start(s);
  int32_t drow = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t rb = li_buf(s, f->rows, 0), rh = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t copy = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t other = sop(s, TILE_MOP_LI, 0, 0, (int32_t)(s->R * 2 * f->S * f->hp));
  fast_issue(s, f, dp, drow, lastrow_d, 0);
  fast_issue(s, f, dp, drow, lastrow_d, 1);

  tile_mir_loop_begin(m, (int32_t)(s->R * s->nblk), TILE_MIR_PIPELINE);
  tile_dma_wait(s->cx, &s->site, 0, 0);
  fast_issue(s, f, dp, drow, lastrow_d, 2);
  int32_t c0 = sop(s, TILE_MOP_MULI, cp.b, 0, (int32_t)s->bc);
  int32_t ha = sop(s, TILE_MOP_MULI, cp.b, 0, s->u * 4);
  ins(m, TILE_MOP_ADD, ha, ha, rh, 0, 0);
  ins(m, TILE_MOP_ADD, ha, ha, copy, 0, 0);
  ins(m, TILE_MOP_XOR, copy, copy, other, 0, 0);
  int32_t nidx = vop(s, TILE_MOP_VSUBF, niota_f,
                     vop(s, TILE_MOP_VCVTIF, vop(s, TILE_MOP_VBCAST, c0, 0), 0));
  int ld = s->elem == TILE_ELEM_BF16 ? TILE_MOP_VLDBF : TILE_MOP_VLD;
  for (int j = 0; j < s->u; j++) {
    /* Each value overwrites one that just died, which keeps the loop's registers few. */
    TileMirInst in = tile_mir_inst(ld, tile_mir_vreg(m), rb, stride_in, 0,
                                   (int32_t)((int64_t)j * f->TE * s->eb));
    tile_mir_mem(&in, f->rows, TILE_MIR_READ, 0);
    int32_t x = in.d;
    tile_mir_add(m, in);
    int32_t xp = vop(s, TILE_MOP_VCMPEQF, x, x);
    int32_t key = vop(s, TILE_MOP_VADDF, nidx, big);
    vset(s, TILE_MOP_VSEL, key, nidx, key, xp);
    vset(s, TILE_MOP_VSEL, xp, x, pinf, xp);
    int32_t mx = vop(s, TILE_MOP_XLMAX, xp, 0);
    vmem(s, TILE_MOP_VST, mx, ha, stride_h, f->h0, (int64_t)j * 4, TILE_MIR_WRITE, 0);
    int32_t fi = vop(s, TILE_MOP_VCMPLEF, mx, xp);
    vset(s, TILE_MOP_VSEL, fi, key, s->vneginf, fi);
    vset(s, TILE_MOP_XLMAX, fi, fi, 0, 0);
    vmem(s, TILE_MOP_VST, fi, ha, stride_h, f->h0, f->S * f->hp + (int64_t)j * 4, TILE_MIR_WRITE,
         0);
    if (j + 1 < s->u) nidx = vop(s, TILE_MOP_VSUBF, nidx, tef);
  }
  int32_t last = pos_advance(s, cp);
  ins(m, TILE_MOP_ADDI, rb, rb, 0, 0, (int32_t)(s->bc * s->eb));
  int32_t step = sop(s, TILE_MOP_MULI, last, 0, (int32_t)(2 * f->S * f->hp));
  ins(m, TILE_MOP_ADD, rh, rh, step, 0, 0);
  tile_mir_loop_end(m);
  /* The two blocks issued past the end (re-reads of the last row's last block). */
  tile_dma_wait(s->cx, &s->site, 0, 0);
  tile_dma_wait(s->cx, &s->site, 0, 0);
}

/* Every row's heads from h0 into its slices in hb (lanes past the row's tiles -inf) and
 * the slices' maxima into its line in rec. Lane t came from block t / u of the row, the
 * stream's iteration r * nblk + t / u, whose parity named the copy. A slice's maximum
 * (uniform along its sublane after xlu.lmax) reaches lane s through the diagonal: the
 * sublane maximum of "lane == sublane ? value : -inf". */
static void fast_heads(Sel *s, Fast *f) {
  TileMir *m = s->m;
  int32_t li0 = vop(s, TILE_MOP_VIOTA, 0, 0);
  int32_t si0 = tile_mir_vreg(m);
  ins(m, TILE_MOP_VIOTA, si0, 0, 0, 0, 1);
  int32_t diag = vop(s, TILE_MOP_VCMPEQI, li0, si0);
  int32_t in_row = vop(s, TILE_MOP_VCMPLTI, li0, vli(s, (uint32_t)f->ntp));
  int32_t ub = vli(s, (uint32_t)s->u);
  int32_t odd = vop(s, TILE_MOP_VCMPEQI, vop(s, TILE_MOP_VAND, li0, ub), ub);
  int32_t flip = vli(s, (uint32_t)(s->nblk & 1));
  int32_t stride_h = sop(s, TILE_MOP_LI, 0, 0, (int32_t)f->hp);
  int32_t stride_sp = sop(s, TILE_MOP_LI, 0, 0, (int32_t)f->sp);
  int32_t ha = sop(s, TILE_MOP_LI, 0, 0, 0), hr = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t gr = sop(s, TILE_MOP_LI, 0, 0, 0);
  int64_t copy1 = s->R * 2 * f->S * f->hp, real = GUARD_BELOW * f->gd;
  int32_t h[2];
  tile_mir_loop_begin(m, (int32_t)s->R, TILE_MIR_PIPELINE);
  for (int k = 0; k < 2; k++) {
    int64_t at = k * f->S * f->hp;
    int32_t v0 = vmem(s, TILE_MOP_VLD, -1, ha, stride_h, f->h0, at, TILE_MIR_READ, 0);
    int32_t v1 = vmem(s, TILE_MOP_VLD, -1, ha, stride_h, f->h0, at + copy1, TILE_MIR_READ, 1);
    vset(s, TILE_MOP_VSEL, v0, v1, v0, odd);
    h[k] = vsel(s, in_row, v0, s->vneginf);
    vmem(s, TILE_MOP_VST, h[k], hr, stride_sp, f->hb, real + k * f->koff, TILE_MIR_WRITE, 0);
  }
  int32_t a = vop(s, TILE_MOP_XLMAX, h[0], 0);
  int32_t kf = vop(s, TILE_MOP_VCMPEQF, h[0], a);
  vset(s, TILE_MOP_VSEL, kf, h[1], s->vneginf, kf);
  vset(s, TILE_MOP_XLMAX, kf, kf, 0, 0);
  vset(s, TILE_MOP_VSEL, a, a, s->vneginf, diag);
  vset(s, TILE_MOP_XSMAX, a, a, 0, 0);
  vset(s, TILE_MOP_VSEL, kf, kf, s->vneginf, diag);
  vset(s, TILE_MOP_XSMAX, kf, kf, 0, 0);
  vmem(s, TILE_MOP_VST, a, gr, s->zero, f->rec, 0, TILE_MIR_WRITE, 0);
  vmem(s, TILE_MOP_VST, kf, gr, s->zero, f->rec, f->R8 * f->L * 4, TILE_MIR_WRITE, 0);
  vset(s, TILE_MOP_VXOR, odd, odd, flip, 0);
  ins(m, TILE_MOP_ADDI, ha, ha, 0, 0, (int32_t)(2 * f->S * f->hp));
  ins(m, TILE_MOP_ADDI, hr, hr, 0, 0, (int32_t)f->rpx);
  ins(m, TILE_MOP_ADDI, gr, gr, 0, 0, f->L * 4);
  tile_mir_loop_end(m);
}

/* Round constants and the registers of the loop over batches. */
typedef struct RoundK {
  /* vregs */
  int32_t nlane_f, pinf, big, mask24, m127, m1023, lane_t, lane_s, ebv, spv, in_row;
  int32_t sub[3]; /* sublane bit 1, 2, 4 */
  int32_t br, bh;  /* this batch's rows and slices offsets, broadcast */
  /* sregs */
  int32_t s512, s4, seb, sgd, sngd, skoff, snkoff, gb, sv, si;
  TileDmaSite xsite[FAST_BATCH];
} RoundK;

/* Combines eight loads, one per sublane: sublane r of the result from v[r]. */
static int32_t sublane_tree(Sel *s, const RoundK *c, int32_t *v) {
  for (int w = 1, lvl = 0; w < 8; w *= 2, lvl++)
    for (int r = 0; r < 8; r += 2 * w) vset(s, TILE_MOP_VSEL, v[r], v[r + w], v[r], c->sub[lvl]);
  return v[0];
}

/* One round of group j of the batch: 8 rows, sublane r = row r. */
static void round_group(Sel *s, Fast *f, const RoundK *c, int j) {
  TileMir *m = s->m;
  int32_t z = s->zero, R = TILE_MIR_READ, W = TILE_MIR_WRITE;
  int64_t line = (int64_t)j * f->S * f->L * 4, keys = f->R8 * f->L * 4;
  /* The rows' best heads from their lines: x', then the largest key with that x'. */
  int32_t gx = vmem(s, TILE_MOP_VLD, -1, c->gb, c->s512, f->rec, line, R, j);
  int32_t gk = vmem(s, TILE_MOP_VLD, -1, c->gb, c->s512, f->rec, keys + line, R, j);
  int32_t gm = vop(s, TILE_MOP_XLMAX, gx, 0);
  int32_t nb = vop(s, TILE_MOP_VCMPEQF, gx, gm);
  vset(s, TILE_MOP_VSEL, nb, gk, s->vneginf, nb);
  vset(s, TILE_MOP_XLMAX, nb, nb, 0, 0);
  /* The index, its chunk's first index cb and tile's tb, and the slice's s * 128. */
  int32_t idx = vop(s, TILE_MOP_VCVTFI, nb, 0);
  vset(s, TILE_MOP_VSUBI, idx, s->vzero, idx, 0);
  vset(s, TILE_MOP_VAND, idx, idx, c->mask24, 0);
  int32_t cb = vop(s, TILE_MOP_VAND, idx, c->m127);
  int32_t tb = vop(s, TILE_MOP_VAND, idx, c->m1023);
  int32_t sv = vop(s, TILE_MOP_VSUBI, cb, tb);
  /* Byte offsets of the chunk in rows and of the slice in hb, through SMEM. */
  int32_t co = vop(s, TILE_MOP_VMULI, cb, c->ebv);
  vset(s, TILE_MOP_VADDI, co, co, c->br, 0);
  int32_t ho = vop(s, TILE_MOP_VMULI, sv, c->spv);
  vset(s, TILE_MOP_VADDI, ho, ho, c->bh, 0);
  vmem(s, TILE_MOP_VST, co, z, c->s512, f->xf[j], 0, W, 0);
  vmem(s, TILE_MOP_VST, ho, z, c->s512, f->xf[j], f->S * f->L * 4, W, 0);
  tile_dma_issue(s->cx, &c->xsite[j], -1, 0, -1, 0);
  tile_dma_wait(s->cx, &c->xsite[j], 0, 0);
  int32_t cr[8], hr[8], ck[8], px[8], pk[8];
  int ld = s->elem == TILE_ELEM_BF16 ? TILE_MOP_VLDBF : TILE_MOP_VLD;
  int64_t real = GUARD_BELOW * f->gd;
  for (int r = 0; r < 8; r++) {
    int64_t row = (int64_t)j * 8 + r;
    cr[r] = tile_mir_sreg(m);
    hr[r] = tile_mir_sreg(m);
    for (int q = 0; q < 2; q++) {
      TileMirInst in = tile_mir_inst(TILE_MOP_SLD, q ? hr[r] : cr[r], z, 0, 0, 32 * q + 4 * r);
      in.imm_buf = f->xs[j];
      tile_mir_mem(&in, f->xs[j], R, 0);
      tile_mir_add(m, in);
    }
    ck[r] = vmem(s, ld, -1, cr[r], z, f->rows, row * f->pitch_b, R, j);
    px[r] = vmem(s, TILE_MOP_VLD, -1, hr[r], z, f->hb, real + row * f->rpx, R, j);
    pk[r] = vmem(s, TILE_MOP_VLD, -1, hr[r], z, f->hb, real + f->koff + row * f->rpx, R, j);
  }
  int32_t x = sublane_tree(s, c, ck);

  /* The chunk's elements after the winner: smaller x', or equal x' and smaller key. */
  int32_t key = vop(s, TILE_MOP_VCVTIF, cb, 0);
  vset(s, TILE_MOP_VSUBF, key, c->nlane_f, key, 0); /* -index */
  int32_t e = vop(s, TILE_MOP_VCMPEQF, x, x);
  int32_t kn = vop(s, TILE_MOP_VADDF, key, c->big);
  vset(s, TILE_MOP_VSEL, key, key, kn, e);
  int32_t xp = vsel(s, e, x, c->pinf);
  int32_t lt = vop(s, TILE_MOP_VCMPLTF, xp, gm);
  vset(s, TILE_MOP_VCMPEQF, e, xp, gm, 0);
  vset(s, TILE_MOP_VCMPLTF, kn, key, nb, 0);
  vset(s, TILE_MOP_VSEL, e, kn, lt, e); /* eligible */
  int32_t xm = vsel(s, e, xp, s->vneginf);
  int32_t km = vsel(s, e, key, s->vneginf);
  int32_t nm = vop(s, TILE_MOP_XLMAX, xm, 0);
  vset(s, TILE_MOP_VCMPEQF, xm, xm, nm, 0);
  vset(s, TILE_MOP_VSEL, km, km, s->vneginf, xm);
  int32_t nk = vop(s, TILE_MOP_XLMAX, km, 0);
  /* The winner's own bits (x' reads a NaN as +inf; the heads' maximum takes +0 over an
   * equal -0), and its index: sublane r to word r of the round's staging run. */
  int32_t wv = vop(s, TILE_MOP_VCMPEQF, key, nb);
  vset(s, TILE_MOP_VSEL, wv, x, s->vneginf, wv);
  vset(s, TILE_MOP_XLMAX, wv, wv, 0, 0);
  vmem(s, s->elem == TILE_ELEM_BF16 ? TILE_MOP_VSTBF : TILE_MOP_VST, wv, c->sv, c->seb, s->vstage,
       (int64_t)j * 8 * s->eb, W, 0);
  vmem(s, TILE_MOP_VST, idx, c->si, c->s4, s->istage, (int64_t)j * 32, W, 0);

  /* The chunk's new head into its slice, the slice back (guarded), its maximum into
   * the row's line. */
  int32_t sx = sublane_tree(s, c, px), sk = sublane_tree(s, c, pk);
  int32_t lm = vop(s, TILE_MOP_VCMPEQI, c->lane_t, tb);
  vset(s, TILE_MOP_VSEL, sx, nm, sx, lm);
  vset(s, TILE_MOP_VSEL, sk, nk, sk, lm);
  if (f->bs == 1) {
    /* One group: the round's chain is the bound, so each slice goes back as soon as it
     * is ready. Rows 0-3 step the other sublanes up by D, rows 4-7 down by -D: every
     * stray sublane lands 3 D below to 7 D above the real slices. */
    for (int r = 0; r < 8; r++) {
      bool up = r < 4;
      int64_t at = real + ((int64_t)j * 8 + r) * f->rpx + (up ? -r : r) * f->gd;
      vmem(s, TILE_MOP_VST, sx, hr[r], up ? c->sgd : c->sngd, f->hb, at, W, j);
      vmem(s, TILE_MOP_VST, sk, hr[r], up ? c->sgd : c->sngd, f->hb, at + f->koff, W, j);
    }
  } else {
    /* Several groups: the store slot is the bound, so one store per row writes both of
     * its slices: x' in sublane r and the key in sublane r+1 (even r) or r-1 (odd r),
     * from the keys rotated by one sublane, at the sublane stride koff (-koff) that takes
     * the key's sublane to the key slice. Sublane q lands (q - r) koff (even r) or
     * (r - q) koff (odd r) from the row's x' slice: -6 to +7 koff, guard space
     * (3 D >= 6 koff below, 7 D above). */
    int32_t kup = tile_mir_vreg(m), kdn = tile_mir_vreg(m);
    ins(m, TILE_MOP_XSROT, kup, sk, 0, 0, 1);
    ins(m, TILE_MOP_XSROT, kdn, sk, 0, 0, f->S - 1);
    int32_t pair[2] = {vsel(s, c->sub[0], kup, sx), vsel(s, c->sub[0], sx, kdn)};
    for (int r = 0; r < 8; r++) {
      bool even = (r & 1) == 0;
      int64_t at = real + ((int64_t)j * 8 + r) * f->rpx + (even ? -r : r) * f->koff;
      vmem(s, TILE_MOP_VST, pair[r & 1], hr[r], even ? c->skoff : c->snkoff, f->hb, at, W, j);
    }
  }
  if (c->in_row >= 0) {
    sx = vsel(s, c->in_row, sx, s->vneginf);
    sk = vsel(s, c->in_row, sk, s->vneginf);
  }
  int32_t tx = vop(s, TILE_MOP_XLMAX, sx, 0);
  vset(s, TILE_MOP_VCMPEQF, lm, sx, tx, 0);
  vset(s, TILE_MOP_VSEL, lm, sk, s->vneginf, lm);
  int32_t tk = vop(s, TILE_MOP_XLMAX, lm, 0);
  int32_t ls = vop(s, TILE_MOP_VCMPEQI, c->lane_s, sv);
  vset(s, TILE_MOP_VSEL, gx, tx, gx, ls);
  vset(s, TILE_MOP_VSEL, gk, tk, gk, ls);
  vmem(s, TILE_MOP_VST, gx, c->gb, c->s512, f->rec, line, W, j);
  vmem(s, TILE_MOP_VST, gk, c->gb, c->s512, f->rec, keys + line, W, j);
}

/* The k rounds: a loop over rounds around a loop over batches of groups. */
static void fast_rounds(Sel *s, Fast *f) {
  TileMir *m = s->m;
  RoundK c;
  int32_t li0 = vop(s, TILE_MOP_VIOTA, 0, 0);
  c.nlane_f = vop(s, TILE_MOP_VSUBF, s->vzero, vop(s, TILE_MOP_VCVTIF, li0, 0));
  c.lane_t = vop(s, TILE_MOP_VMULI, li0, vli(s, (uint32_t)f->TE));
  c.lane_s = vop(s, TILE_MOP_VMULI, li0, vli(s, (uint32_t)f->L));
  int32_t si0 = tile_mir_vreg(m);
  ins(m, TILE_MOP_VIOTA, si0, 0, 0, 0, 1);
  for (int b = 0; b < 3; b++) c.sub[b] = vop(s, TILE_MOP_VAND, si0, vli(s, 1u << b));
  c.in_row = f->sp < f->L * 4 ? vop(s, TILE_MOP_VCMPLTI, li0, vli(s, (uint32_t)f->ntp)) : -1;
  c.pinf = vli(s, fbits(INFINITY));
  c.big = vli(s, fbits(KEY_NAN));
  c.mask24 = vli(s, (1u << 24) - 1);
  c.m127 = vli(s, ~(uint32_t)(f->L - 1));
  c.m1023 = vli(s, ~(uint32_t)(f->TE - 1));
  c.ebv = vli(s, (uint32_t)s->eb);
  c.spv = vli(s, (uint32_t)(f->sp / f->L));
  c.s512 = sop(s, TILE_MOP_LI, 0, 0, f->L * 4);
  c.s4 = sop(s, TILE_MOP_LI, 0, 0, 4);
  c.seb = sop(s, TILE_MOP_LI, 0, 0, s->eb);
  /* the slices' store strides (round_group) */
  int64_t sstep = f->bs == 1 ? f->gd : f->koff;
  c.sgd = c.skoff = sop(s, TILE_MOP_LI, 0, 0, (int32_t)sstep);
  c.sngd = c.snkoff = sop(s, TILE_MOP_LI, 0, 0, (int32_t)-sstep);
  TileDmaShape xshape = {.count0 = 4, .count1 = 8, .count2 = 2,
                         .src_stride1 = f->L * 4, .src_stride2 = f->S * f->L * 4,
                         .dst_stride1 = 4, .dst_stride2 = 32};
  for (int j = 0; j < f->bs; j++)
    c.xsite[j] = tile_dma_site(s->cx, f->xf[j], 0, f->xs[j], 0, xshape);
  int32_t rv = sop(s, TILE_MOP_LI, 0, 0, 0), ri = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t brow = tile_mir_sreg(m), bhs = tile_mir_sreg(m);
  c.gb = tile_mir_sreg(m);
  c.sv = tile_mir_sreg(m);
  c.si = tile_mir_sreg(m);

  tile_mir_loop_begin(m, (int32_t)s->k, 0);
  ins(m, TILE_MOP_LI, brow, 0, 0, 0, 0);
  ins(m, TILE_MOP_LI, bhs, 0, 0, 0, 0);
  ins(m, TILE_MOP_LI, c.gb, 0, 0, 0, 0);
  ins(m, TILE_MOP_MOV, c.sv, rv, 0, 0, 0);
  ins(m, TILE_MOP_MOV, c.si, ri, 0, 0, 0);
  tile_mir_loop_begin(m, (int32_t)f->nbatch, 0);
  c.br = vop(s, TILE_MOP_VBCAST, brow, 0);
  c.bh = vop(s, TILE_MOP_VBCAST, bhs, 0);
  for (int j = 0; j < f->bs; j++) round_group(s, f, &c, j);
  int64_t rows = (int64_t)f->bs * f->S;
  ins(m, TILE_MOP_ADDI, brow, brow, 0, 0, (int32_t)(rows * f->pitch_b));
  ins(m, TILE_MOP_ADDI, bhs, bhs, 0, 0, (int32_t)(rows * f->rpx));
  ins(m, TILE_MOP_ADDI, c.gb, c.gb, 0, 0, (int32_t)(rows * f->L * 4));
  ins(m, TILE_MOP_ADDI, c.sv, c.sv, 0, 0, (int32_t)(rows * s->eb));
  ins(m, TILE_MOP_ADDI, c.si, c.si, 0, 0, (int32_t)(rows * 4));
  tile_mir_loop_end(m);
  ins(m, TILE_MOP_ADDI, rv, rv, 0, 0, (int32_t)(s->R * s->eb));
  ins(m, TILE_MOP_ADDI, ri, ri, 0, 0, (int32_t)(s->R * 4));
  tile_mir_loop_end(m);
}

/* topk by the chunk tournament (fast_plan said it fits). Buffers whose slots are the
 * groups of a batch (rows' DMA ring: the three blocks in flight) are addressed as one
 * region; the slots only tell the scheduler which accesses may meet. */
static void fast_topk(Sel *s, Fast *f) {
  TileMir *m = s->m;
  int bs = f->bs;
  f->rows = tile_mir_buffer(m, "topk.rows", TILE_SPACE_VMEM,
                            round_up((f->R8 * f->pitch_b + RING - 1) / RING, 64), RING, 64);
  f->hb = tile_mir_buffer(m, "topk.slices", TILE_SPACE_VMEM,
                          round_up(((GUARD_BELOW + 1 + GUARD_ABOVE) * f->gd + bs - 1) / bs, 64),
                          bs, 64);
  f->rec = tile_mir_buffer(m, "topk.lines", TILE_SPACE_VMEM,
                           round_up((2 * f->R8 * f->L * 4 + bs - 1) / bs, 64), bs, 64);
  f->h0 = tile_mir_buffer(m, "topk.heads0", TILE_SPACE_VMEM, s->R * 2 * f->S * f->hp, 2, 64);
  for (int j = 0; j < bs; j++) {
    char name[32];
    snprintf(name, sizeof name, "topk.xfer%d", j);
    f->xf[j] = tile_mir_buffer(m, name, TILE_SPACE_VMEM, 2 * f->S * f->L * 4, 1, 64);
    snprintf(name, sizeof name, "topk.xoff%d", j);
    f->xs[j] = tile_mir_buffer(m, name, TILE_SPACE_SMEM, 64, 1, 4);
  }
  int64_t stage = s->R * s->k + f->R8 + f->L;
  s->vstage = tile_mir_buffer(m, "topk.val", TILE_SPACE_VMEM, round_up(stage * s->eb, 64), 1, 64);
  s->istage = tile_mir_buffer(m, "topk.idx", TILE_SPACE_VMEM, round_up(stage * 4, 64), 1, 64);
  TileDmaShape shape = {.count0 = f->dsz * s->eb, .count1 = 1, .count2 = 1};
  s->site = tile_dma_site(s->cx, s->in_buf, 0, f->rows, 0, shape);
  fast_fill(s, f);
  fast_stream(s, f);
  fast_heads(s, f);
  fast_rounds(s, f);
}


bool tile_gen_select_top(TileLowerCtx *cx, const TileGroup *g) {
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
  bool fast = s.topk && fast_plan(&s, &f);
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
    fast_topk(&s, &f);
    return store_topk(&s);
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
  return store_topk(&s);
}
