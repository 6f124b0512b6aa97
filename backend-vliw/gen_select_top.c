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
 * chunk's head. Rows longer than `lanes` vreg tiles, or inputs whose rows do not fit
 * half of VMEM, fall back to k streaming passes: pass r keeps only elements after pass
 * r-1's winner in the order above (value and index compared, so ties and NaN are exact;
 * no element is overwritten), which makes its winner the r-th of the row -- exact for
 * every input but O(kV).
 *
 * Results go to VMEM staging (argmax [R] i32; topk values and indices [k][R], pass
 * major, so a wide zero-stride store only ever covers entries written later) and reach
 * HBM with one DMA each at the end (topk's transposes [k][R] to [R][k]). */
#include <inttypes.h>
#include <math.h>
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
 * chunk's head is its best element not yet taken. One streaming pass copies the rows
 * into VMEM (padded with -inf to whole blocks of tiles) and records every chunk's first
 * head, then k rounds each take the best head of the row (the row's next element in
 * the order) and recompute that one chunk's head from VMEM: its best element after the
 * winner in the order, which needs no record of what was taken, since the winners so
 * far are exactly the elements before it. The padding (-inf at indices >= V) loses
 * every tie and is never among the first k <= V.
 *
 * Keys. An element x at index i ranks by (x', key) descending, x' = x with NaN read as
 * +inf and key = -i, plus 2^24 for a NaN: NaNs then come before +inf and, among equal
 * x', the lower index first, while x' and key stay plain f32 that vmax, xlu.lmax and
 * the compares order (no NaN among them; indices are exact below 2^24). A head is kept
 * as (x', key); the integer -key masked to 24 bits gives the index back for both kinds.
 * The winner's own bits (a NaN's payload, -0 against +0) are read from the chunk.
 *
 * Heads of a row live in one vreg pair (tile t's chunk of sublane s at sublane s, lane
 * t), so a row has at most `lanes` tiles. The rounds run as a loop over rounds around a
 * software-pipelined loop over rows: every row's record (heads, and words that carry
 * values from one part of a round to a later one) is its own slot of an R-slot buffer,
 * so rows overlap. The modulo scheduler does not rename registers, so a value may live
 * no longer than one initiation interval: a round keeps none across its long waits (the
 * lane reductions, the winner's chunk address going vector -> VMEM -> SMEM by a 4-byte
 * DMA -> sld): what a later part needs it stores into the record and loads again, each
 * part addresses the record through its own induction register, and a load that must
 * not run early is ordered after a store to the record or takes its address from the
 * sld. */

enum { FAST_TILES = 4, RING = 3 };
#define KEY_NAN 16777216.0f /* 2^24: added to a NaN's key */

/* Uniform words of a row's record after the two head vregs (one lane row each). */
enum { W_XFER, W_GM, W_NB, W_CB, W_NM, W_NFI, W_COUNT };

typedef struct Fast {
  int L, S, TE;        /* lanes, sublanes, elements per vreg */
  int64_t ntp;         /* tiles per row in VMEM (whole blocks) */
  int64_t pitch_b;     /* bytes per row in VMEM */
  int64_t margin;      /* elements in front of a ring slot's block (the shifted last block) */
  int64_t dsz;         /* elements per DMA */
  bool masked;         /* blocks reach past V: lanes at indices >= V become -inf */
  int64_t rec_bytes;   /* per row: heads (x'), heads (key), the uniform words */
  int64_t hn_off, w_off;
  int64_t hp;          /* bytes per sublane row of the streaming pass's heads */
  int32_t rows, rec, sx, h0, sidx;
} Fast;

static int64_t word(const Fast *f, int w) { return f->w_off + (int64_t)w * f->L * 4; }

/* Plans the fast topk; false when a row has more tiles than a vreg has lanes or the
 * buffers do not fit half of VMEM (the k-pass method then runs). */
static bool fast_plan(Sel *s, Fast *f) {
  const TileTarget *t = s->t;
  f->L = t->vreg_lanes;
  f->S = t->vreg_sublanes;
  f->TE = f->L * f->S;
  int64_t ntiles = (s->V + f->TE - 1) / f->TE;
  /* tiles per block: a power of two (fast_heads finds a lane's block by a bit) */
  s->u = 1;
  while (s->u * 2 <= FAST_TILES && s->u * 2 * (int64_t)f->TE <= s->V) s->u *= 2;
  s->bc = (int64_t)s->u * f->TE;
  s->nblk = (ntiles + s->u - 1) / s->u;
  f->ntp = s->nblk * s->u;
  f->dsz = s->V < s->bc ? s->V : s->bc;
  s->lastcol = s->V - f->dsz;
  f->margin = s->nblk > 1 && s->V % s->bc ? s->bc : 0;
  f->masked = f->ntp * f->TE != s->V;
  s->slot_bytes = (f->margin + s->bc) * s->eb;
  f->pitch_b = f->ntp * f->TE * 4;
  f->hn_off = (int64_t)f->TE * 4;
  f->w_off = 2 * f->hn_off;
  f->rec_bytes = f->w_off + (int64_t)W_COUNT * f->L * 4;
  f->hp = (f->ntp - 1 + f->L) * 4; /* tile t's store reaches lane t + lanes - 1 */
  int64_t stage = s->R * s->k * 4 + f->L * 4;
  int64_t need = s->R * f->pitch_b + s->R * (f->rec_bytes + 4 * f->S * f->hp) +
                 RING * s->slot_bytes + stage;
  return f->ntp <= f->L && s->R * s->k <= INT32_MAX / 4 && s->R * s->V * s->eb <= INT32_MAX &&
         need <= s->t->vmem_bytes / 2 && s->R * s->k * 4 + s->R * 4 <= s->t->smem_bytes / 2;
}

/* A vector load or store of vreg v at (addr + imm) in buf, sublane stride in `stride`. */
static int32_t vmem(Sel *s, int op, int32_t v, int32_t addr, int32_t stride, int32_t buf,
                    int64_t imm, int access, int slot_ofs) {
  if (v < 0) v = tile_mir_vreg(s->m);
  TileMirInst in = tile_mir_inst(op, v, addr, stride, 0, (int32_t)imm);
  tile_mir_mem(&in, buf, access, slot_ofs);
  tile_mir_add(s->m, in);
  return v;
}

/* Issues the DMA of the block at (dp, dslot) and steps both. A row's last block is
 * shifted back to end at the row's end; it lands as far back in the slot's margin, so
 * every column sits at the same place of the slot. */
static void fast_issue(Sel *s, Fast *f, Pos dp, int32_t dslot, int slot_ofs) {
  int32_t col = pos_col_bytes(s, dp);
  int32_t bb = sop(s, TILE_MOP_MULI, dp.b, 0, (int32_t)(s->bc * s->eb));
  int32_t dst = sop(s, TILE_MOP_SUB, col, bb, 0);
  ins(s->m, TILE_MOP_ADD, dst, dst, dslot, 0, 0);
  ins(s->m, TILE_MOP_ADDI, dst, dst, 0, 0, (int32_t)(f->margin * s->eb));
  int32_t src = sop(s, TILE_MOP_ADD, col, dp.row_off, 0);
  TileMirInst in = tile_mir_inst(TILE_MOP_ADDI, src, src, 0, 0, 0);
  in.imm_buf = s->in_buf;
  tile_mir_add(s->m, in);
  tile_dma_issue(s->cx, &s->site, src, 0, dst, slot_ofs);
  pos_advance(s, dp);
  slot_advance(s, dslot);
}

/* The streaming pass: rows into VMEM, every chunk's first head into the row's heads.
 * Per tile: x' and the keys, the lane maximum (the head's x') and the first lane holding
 * it (the largest key among lanes with x' equal to it). Both are uniform along lanes and
 * are stored at lane t of a row of ntp - 1 + lanes; tile t's store also covers lanes t+1 ..,
 * which later tiles must overwrite, so two such stores must land in order. Blocks
 * alternate between the two slots of h0: the scheduler orders a block's stores after
 * those of the block two before (the same slot), and the block just before writes the
 * other copy. fast_heads takes each lane from the copy its block wrote. */
static void fast_stream(Sel *s, Fast *f) {
  TileMir *m = s->m;
  int32_t io = tile_mir_vreg(m);
  ins(m, TILE_MOP_VIOTA, io, 0, 0, 0, 2);
  int32_t niota_f = vop(s, TILE_MOP_VSUBF, s->vzero, vop(s, TILE_MOP_VCVTIF, io, 0));
  int32_t tef = vli(s, fbits((float)f->TE));
  int32_t big = vli(s, fbits(KEY_NAN)), pinf = vli(s, fbits(INFINITY));
  int32_t nvf = f->masked ? vli(s, fbits(-(float)s->V)) : -1;
  int32_t stride_in = sop(s, TILE_MOP_LI, 0, 0, f->L * s->eb);
  int32_t stride_row = sop(s, TILE_MOP_LI, 0, 0, f->L * 4);
  int32_t stride_h = sop(s, TILE_MOP_LI, 0, 0, (int32_t)f->hp);
  Pos dp = pos_start(s), cp = pos_start(s);
  int32_t dslot = li_buf(s, s->slot_buf, 0), cslot = li_buf(s, s->slot_buf, 0);
  int32_t rb = li_buf(s, f->rows, 0), rh = li_buf(s, f->h0, 0);
  int32_t copy = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t other = sop(s, TILE_MOP_LI, 0, 0, (int32_t)(s->R * 2 * f->S * f->hp));
  fast_issue(s, f, dp, dslot, 0);
  fast_issue(s, f, dp, dslot, 1);

  tile_mir_loop_begin(m, (int32_t)(s->R * s->nblk), TILE_MIR_PIPELINE);
  tile_dma_wait(s->cx, &s->site, 0, 0);
  fast_issue(s, f, dp, dslot, 2);
  int32_t c0 = sop(s, TILE_MOP_MULI, cp.b, 0, (int32_t)s->bc);
  int32_t ha = sop(s, TILE_MOP_MULI, cp.b, 0, s->u * 4);
  ins(m, TILE_MOP_ADD, ha, ha, rh, 0, 0);
  ins(m, TILE_MOP_ADD, ha, ha, copy, 0, 0);
  ins(m, TILE_MOP_XOR, copy, copy, other, 0, 0);
  int32_t nidx = vop(s, TILE_MOP_VSUBF, niota_f,
                     vop(s, TILE_MOP_VCVTIF, vop(s, TILE_MOP_VBCAST, c0, 0), 0));
  for (int j = 0; j < s->u; j++) {
    int32_t x = vmem(s, s->elem == TILE_ELEM_BF16 ? TILE_MOP_VLDBF : TILE_MOP_VLD, -1, cslot,
                     stride_in, s->slot_buf, (f->margin + (int64_t)j * f->TE) * s->eb,
                     TILE_MIR_READ, 0);
    /* Each value overwrites one that just died: the allocator gives every register of
     * a pipelined loop its own machine register, so their number is what counts. */
    if (f->masked) vset(s, TILE_MOP_VSEL, x, x, s->vneginf, vop(s, TILE_MOP_VCMPLTF, nvf, nidx));
    vmem(s, TILE_MOP_VST, x, rb, stride_row, f->rows, (int64_t)j * f->TE * 4, TILE_MIR_WRITE, 0);
    int32_t xp = vop(s, TILE_MOP_VCMPEQF, x, x);
    int32_t key = vop(s, TILE_MOP_VADDF, nidx, big);
    vset(s, TILE_MOP_VSEL, key, nidx, key, xp);
    vset(s, TILE_MOP_VSEL, xp, x, pinf, xp);
    int32_t mx = vop(s, TILE_MOP_XLMAX, xp, 0);
    vmem(s, TILE_MOP_VST, mx, ha, stride_h, f->h0, (int64_t)j * 4, TILE_MIR_WRITE, 0);
    int32_t fi = vop(s, TILE_MOP_VCMPLEF, mx, xp);
    vset(s, TILE_MOP_VSEL, fi, key, s->vneginf, fi);
    vset(s, TILE_MOP_XLMAX, fi, fi, 0, 0);
    vmem(s, TILE_MOP_VST, fi, ha, stride_h, f->h0, f->S * f->hp + (int64_t)j * 4, TILE_MIR_WRITE, 0);
    if (j + 1 < s->u) nidx = vop(s, TILE_MOP_VSUBF, nidx, tef);
  }
  int32_t last = pos_advance(s, cp);
  slot_advance(s, cslot);
  ins(m, TILE_MOP_ADDI, rb, rb, 0, 0, (int32_t)(s->bc * 4));
  int32_t step = sop(s, TILE_MOP_MULI, last, 0, (int32_t)(2 * f->S * f->hp));
  ins(m, TILE_MOP_ADD, rh, rh, step, 0, 0);
  tile_mir_loop_end(m);
  /* The two blocks issued past the end (re-reads of the last row's first block). */
  tile_dma_wait(s->cx, &s->site, 0, 0);
  tile_dma_wait(s->cx, &s->site, 0, 0);
}

/* The heads of every row from h0 into its record, lanes past the row's tiles -inf.
 * Lane t came from block t / u of the row, the stream's iteration r * nblk + t / u,
 * whose parity named the copy. */
static void fast_heads(Sel *s, Fast *f) {
  TileMir *m = s->m;
  int32_t li0 = vop(s, TILE_MOP_VIOTA, 0, 0);
  int32_t in_row = vop(s, TILE_MOP_VCMPLTI, li0, vli(s, (uint32_t)f->ntp));
  int32_t ub = vli(s, (uint32_t)s->u);
  int32_t odd = vop(s, TILE_MOP_VCMPEQI, vop(s, TILE_MOP_VAND, li0, ub), ub);
  int32_t flip = vli(s, (uint32_t)(s->nblk & 1));
  int32_t stride_h = sop(s, TILE_MOP_LI, 0, 0, (int32_t)f->hp);
  int32_t stride_row = sop(s, TILE_MOP_LI, 0, 0, f->L * 4);
  int32_t ha = li_buf(s, f->h0, 0), ra = li_buf(s, f->rec, 0);
  int64_t copy1 = s->R * 2 * f->S * f->hp;
  tile_mir_loop_begin(m, (int32_t)s->R, TILE_MIR_PIPELINE);
  for (int h = 0; h < 2; h++) {
    int64_t at = h * f->S * f->hp;
    int32_t v0 = vmem(s, TILE_MOP_VLD, -1, ha, stride_h, f->h0, at, TILE_MIR_READ, 0);
    int32_t v1 = vmem(s, TILE_MOP_VLD, -1, ha, stride_h, f->h0, at + copy1, TILE_MIR_READ, 1);
    vset(s, TILE_MOP_VSEL, v0, v1, v0, odd);
    vmem(s, TILE_MOP_VST, vsel(s, in_row, v0, s->vneginf), ra, stride_row, f->rec,
         h * f->hn_off, TILE_MIR_WRITE, 0);
  }
  vset(s, TILE_MOP_VXOR, odd, odd, flip, 0);
  ins(m, TILE_MOP_ADDI, ha, ha, 0, 0, (int32_t)(2 * f->S * f->hp));
  ins(m, TILE_MOP_ADDI, ra, ra, 0, 0, (int32_t)f->rec_bytes);
  tile_mir_loop_end(m);
}

/* Round constants. */
typedef struct RoundK {
  int32_t nlane_f, chunk_f, pinf, big, stride_row; /* vregs, then an sreg */
  int32_t mask_c, mask_i;                           /* sregs */
} RoundK;

/* Induction registers of the loop over rows, one per part of a round (a register read
 * at two far-apart cycles would hold the next iteration back). */
enum { P_HEAD, P_FIRST, P_XFER, P_CHUNK, P_NM, P_UPDATE, P_COUNT };

/* One round of one row (the body of the pipelined loop). */
static void round_body(Sel *s, Fast *f, const RoundK *c, TileDmaSite *xs, const int32_t *rp,
                       int32_t sa, int32_t rw, int32_t sv, int32_t si) {
  TileMir *m = s->m;
  int32_t z = s->zero, rec = f->rec, R = TILE_MIR_READ, W = TILE_MIR_WRITE;
  /* Values overwrite registers that just died (see fast_stream); each chain stays
   * short, since a register lives from its first write to its last read. */
  /* The row's best head x' ... */
  int32_t gm = vmem(s, TILE_MOP_VLD, -1, rp[P_HEAD], c->stride_row, rec, 0, R, 0);
  gm = vop(s, TILE_MOP_XSMAX, vop(s, TILE_MOP_XLMAX, gm, 0), 0);
  /* ... and the largest key among heads equal to it: the row's next element. The
   * heads are loaded again after gm's store, so they do not wait in registers. */
  vmem(s, TILE_MOP_VST, gm, rp[P_FIRST], z, rec, word(f, W_GM), W, 0);
  int32_t nb = vmem(s, TILE_MOP_VLD, -1, rp[P_FIRST], c->stride_row, rec, 0, R, 0);
  int32_t hn2 = vmem(s, TILE_MOP_VLD, -1, rp[P_FIRST], c->stride_row, rec, f->hn_off, R, 0);
  vset(s, TILE_MOP_VCMPEQF, nb, nb, gm, 0);
  vset(s, TILE_MOP_VSEL, nb, hn2, s->vneginf, nb);
  nb = vop(s, TILE_MOP_XSMAX, vop(s, TILE_MOP_XLMAX, nb, 0), 0);
  /* -key as an integer goes to SMEM: masked to 24 bits it is the index for both kinds
   * of key (the result); without the low bits of a chunk, the chunk's first index. */
  vmem(s, TILE_MOP_VST, nb, rp[P_XFER], z, rec, word(f, W_NB), W, 0);
  int32_t nk = vop(s, TILE_MOP_VCVTFI, nb, 0);
  vset(s, TILE_MOP_VSUBI, nk, s->vzero, nk, 0);
  vmem(s, TILE_MOP_VST, nk, rp[P_XFER], z, rec, word(f, W_XFER), W, 0);
  int32_t xa = sop(s, TILE_MOP_ADDI, rp[P_XFER], 0, (int32_t)word(f, W_XFER));
  tile_dma_issue(s->cx, xs, xa, 0, sa, 0);
  tile_dma_wait(s->cx, xs, 0, 0);
  int32_t cs = tile_mir_sreg(m);
  TileMirInst ld = tile_mir_inst(TILE_MOP_SLD, cs, sa, 0, 0, 0);
  tile_mir_mem(&ld, f->sx, TILE_MIR_READ, 0);
  tile_mir_add(m, ld);
  int32_t gi = sop(s, TILE_MOP_AND, cs, c->mask_i, 0);
  TileMirInst st = tile_mir_inst(TILE_MOP_SST, gi, si, 0, 0, 0);
  tile_mir_mem(&st, f->sidx, TILE_MIR_WRITE, 0);
  tile_mir_add(m, st);
  int32_t cbi = sop(s, TILE_MOP_AND, cs, c->mask_c, 0);

  /* The chunk (every sublane the same run), and gm and nb back, not before cs. */
  int32_t ca = sop(s, TILE_MOP_SHLI, cbi, 0, 2);
  ins(m, TILE_MOP_ADD, ca, ca, rw, 0, 0);
  int32_t x = vmem(s, TILE_MOP_VLD, -1, ca, z, f->rows, 0, R, 0);
  int32_t rd = sop(s, TILE_MOP_AND, cs, z, 0);
  ins(m, TILE_MOP_ADD, rd, rd, rp[P_CHUNK], 0, 0);
  int32_t gm2 = vmem(s, TILE_MOP_VLD, -1, rd, z, rec, word(f, W_GM), R, 0);
  int32_t nb2 = vmem(s, TILE_MOP_VLD, -1, rd, z, rec, word(f, W_NB), R, 0);
  int32_t cbf = vop(s, TILE_MOP_VBCAST, cbi, 0);
  vset(s, TILE_MOP_VCVTIF, cbf, cbf, 0, 0);
  vmem(s, TILE_MOP_VST, cbf, rd, z, rec, word(f, W_CB), W, 0);

  /* The chunk's elements after the winner: smaller x', or equal x' and smaller key. */
  int32_t xp = vop(s, TILE_MOP_VSUBF, c->nlane_f, cbf); /* -index, then x' */
  int32_t key = vop(s, TILE_MOP_VADDF, xp, c->big);
  int32_t e = vop(s, TILE_MOP_VCMPEQF, x, x);
  vset(s, TILE_MOP_VSEL, key, xp, key, e);
  vset(s, TILE_MOP_VSEL, xp, x, c->pinf, e);
  vset(s, TILE_MOP_VCMPEQF, e, xp, gm2, 0);
  int32_t xm = vop(s, TILE_MOP_VCMPLTF, key, nb2);
  vset(s, TILE_MOP_VCMPLTF, gm2, xp, gm2, 0);
  vset(s, TILE_MOP_VSEL, e, xm, gm2, e);            /* eligible */
  vset(s, TILE_MOP_VSEL, xm, xp, s->vneginf, e);
  int32_t km = gm2;
  vset(s, TILE_MOP_VSEL, km, key, s->vneginf, e);
  int32_t nm = vop(s, TILE_MOP_XLMAX, xm, 0);
  vmem(s, TILE_MOP_VST, nm, rp[P_NM], z, rec, word(f, W_NM), W, 0);
  int32_t nfi = xm;
  vset(s, TILE_MOP_VCMPEQF, nfi, xm, nm, 0);
  vset(s, TILE_MOP_VSEL, nfi, km, s->vneginf, nfi);
  nfi = vop(s, TILE_MOP_XLMAX, nfi, 0);
  /* The winner's own bits (x' reads a NaN as +inf; the heads' maximum takes +0 over an
   * equal -0). */
  int32_t wv = key;
  vset(s, TILE_MOP_VCMPEQF, wv, key, nb2, 0);
  vset(s, TILE_MOP_VSEL, wv, x, s->vneginf, wv);
  wv = vop(s, TILE_MOP_XLMAX, wv, 0);
  vst0(s, s->elem == TILE_ELEM_BF16 ? TILE_MOP_VSTBF : TILE_MOP_VST, wv, sv, s->vstage, 0);

  /* The chunk's new head into the row's heads, loaded again after nfi's store. */
  int32_t ru = rp[P_UPDATE];
  vmem(s, TILE_MOP_VST, nfi, ru, z, rec, word(f, W_NFI), W, 0);
  int32_t h3 = vmem(s, TILE_MOP_VLD, -1, ru, c->stride_row, rec, 0, R, 0);
  int32_t hn3 = vmem(s, TILE_MOP_VLD, -1, ru, c->stride_row, rec, f->hn_off, R, 0);
  int32_t hm = vmem(s, TILE_MOP_VLD, -1, ru, z, rec, word(f, W_CB), R, 0);
  int32_t nm3 = vmem(s, TILE_MOP_VLD, -1, ru, z, rec, word(f, W_NM), R, 0);
  vset(s, TILE_MOP_VCMPEQF, hm, c->chunk_f, hm, 0);
  vset(s, TILE_MOP_VSEL, h3, nm3, h3, hm);
  vset(s, TILE_MOP_VSEL, hn3, nfi, hn3, hm);
  vmem(s, TILE_MOP_VST, h3, ru, c->stride_row, rec, 0, W, 0);
  vmem(s, TILE_MOP_VST, hn3, ru, c->stride_row, rec, f->hn_off, W, 0);

  for (int p = 0; p < P_COUNT; p++) ins(m, TILE_MOP_ADDI, rp[p], rp[p], 0, 0, (int32_t)f->rec_bytes);
  ins(m, TILE_MOP_ADDI, sa, sa, 0, 0, 4);
  ins(m, TILE_MOP_ADDI, rw, rw, 0, 0, (int32_t)f->pitch_b);
  ins(m, TILE_MOP_ADDI, sv, sv, 0, 0, s->eb);
  ins(m, TILE_MOP_ADDI, si, si, 0, 0, 4);
}

/* The k rounds: a loop over rounds around a pipelined loop over rows. */
static void fast_rounds(Sel *s, Fast *f) {
  TileMir *m = s->m;
  RoundK c;
  int32_t li0 = vop(s, TILE_MOP_VIOTA, 0, 0);
  c.nlane_f = vop(s, TILE_MOP_VSUBF, s->vzero, vop(s, TILE_MOP_VCVTIF, li0, 0));
  /* The first index of the chunk at heads position (sublane s, lane t): t*TE + s*L. */
  int32_t si0 = tile_mir_vreg(m);
  ins(m, TILE_MOP_VIOTA, si0, 0, 0, 0, 1);
  int32_t cb = vop(s, TILE_MOP_VMULI, li0, vli(s, (uint32_t)f->S));
  vset(s, TILE_MOP_VADDI, cb, cb, si0, 0);
  vset(s, TILE_MOP_VMULI, cb, cb, vli(s, (uint32_t)f->L), 0);
  c.chunk_f = vop(s, TILE_MOP_VCVTIF, cb, 0);
  int32_t idx_bits = (1 << 24) - 1;
  c.mask_i = sop(s, TILE_MOP_LI, 0, 0, idx_bits);
  c.mask_c = sop(s, TILE_MOP_LI, 0, 0, idx_bits & ~(f->L - 1));
  c.pinf = vli(s, fbits(INFINITY));
  c.big = vli(s, fbits(KEY_NAN));
  c.stride_row = sop(s, TILE_MOP_LI, 0, 0, f->L * 4);
  TileDmaSite xs = tile_dma_site(s->cx, f->rec, word(f, W_XFER), f->sx, 0,
                                 (TileDmaShape){.count0 = 4, .count1 = 1, .count2 = 1});
  int32_t sv = sop(s, TILE_MOP_LI, 0, 0, 0), si = li_buf(s, f->sidx, 0);
  int32_t rp[P_COUNT];
  for (int p = 0; p < P_COUNT; p++) rp[p] = tile_mir_sreg(m);
  int32_t sa = tile_mir_sreg(m), rw = tile_mir_sreg(m);

  tile_mir_loop_begin(m, (int32_t)s->k, 0);
  for (int p = 0; p < P_COUNT; p++) {
    TileMirInst in = tile_mir_inst(TILE_MOP_LI, rp[p], 0, 0, 0, 0);
    in.imm_buf = f->rec;
    tile_mir_add(m, in);
  }
  TileMirInst in = tile_mir_inst(TILE_MOP_LI, sa, 0, 0, 0, 0);
  in.imm_buf = f->sx;
  tile_mir_add(m, in);
  in = tile_mir_inst(TILE_MOP_LI, rw, 0, 0, 0, 0);
  in.imm_buf = f->rows;
  tile_mir_add(m, in);
  tile_mir_loop_begin(m, (int32_t)s->R, TILE_MIR_PIPELINE);
  round_body(s, f, &c, &xs, rp, sa, rw, sv, si);
  tile_mir_loop_end(m);
  tile_mir_loop_end(m);
}

/* topk by the chunk tournament (fast_plan said it fits). */
static void fast_topk(Sel *s, Fast *f) {
  TileMir *m = s->m;
  f->rows = tile_mir_buffer(m, "topk.rows", TILE_SPACE_VMEM, s->R * f->pitch_b, 1, 64);
  f->rec = tile_mir_buffer(m, "topk.heads", TILE_SPACE_VMEM, f->rec_bytes, (int32_t)s->R, 64);
  f->sx = tile_mir_buffer(m, "topk.chunk", TILE_SPACE_SMEM, 4, (int32_t)s->R, 4);
  f->h0 = tile_mir_buffer(m, "topk.heads0", TILE_SPACE_VMEM, s->R * 2 * f->S * f->hp, 2, 64);
  f->sidx = tile_mir_buffer(m, "topk.idx", TILE_SPACE_SMEM, s->R * s->k * 4, 1, 4);
  s->istage = f->sidx;
  TileDmaShape shape = {.count0 = f->dsz * s->eb, .count1 = 1, .count2 = 1};
  s->site = tile_dma_site(s->cx, s->in_buf, 0, s->slot_buf, 0, shape);
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
  s.slot_buf = tile_mir_buffer(m, "select.blocks", TILE_SPACE_VMEM, s.slot_bytes, SLOTS, 64);
  if (!fast) s.istage = tile_mir_buffer(m, "select.idx", TILE_SPACE_VMEM, stage_bytes, 1, 64);
  if (s.topk) {
    s.vstage = tile_mir_buffer(m, "select.val", TILE_SPACE_VMEM, stage_bytes, 1, 64);
    if (!fast) s.prev = tile_mir_buffer(m, "select.prev", TILE_SPACE_VMEM, s.R * 2048, 1, 64);
  }
  s.nblkm1 = sop(&s, TILE_MOP_LI, 0, 0, (int32_t)(s.nblk - 1));
  s.lastcol_b = sop(&s, TILE_MOP_LI, 0, 0, (int32_t)(s.lastcol * s.eb));
  s.lastrow_b = sop(&s, TILE_MOP_LI, 0, 0, (int32_t)((s.R - 1) * s.V * s.eb));
  s.slot_end = li_buf(&s, s.slot_buf, SLOTS * s.slot_bytes);
  s.vzero = vli(&s, 0);
  s.vone = vli(&s, 1);
  s.vneginf = vli(&s, fbits(-INFINITY));
  if (fast) {
    fast_topk(&s, &f);
    return store_topk(&s);
  }
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
