/* Internal to the selection generator (gen_select_top.c: argmax and the k-pass topk;
 * gen_select_tour.c: the chunk tournament's plan, stream and heads; gen_select_rounds.c:
 * its rounds). The generator's state, the MIR building shorthands every part uses, and
 * the tournament's plan. */
#ifndef TILE_GEN_SELECT_INT_H
#define TILE_GEN_SELECT_INT_H

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

static inline int32_t ins(TileMir *m, int op, int32_t d, int32_t a, int32_t b, int32_t c, int32_t imm) {
  return tile_mir_add(m, tile_mir_inst(op, d, a, b, c, imm));
}
static inline int32_t sop(Sel *s, int op, int32_t a, int32_t b, int32_t imm) {
  int32_t d = tile_mir_sreg(s->m);
  ins(s->m, op, d, a, b, 0, imm);
  return d;
}
/* d := op(a, b, c) into an existing register d. */
static inline void vset(Sel *s, int op, int32_t d, int32_t a, int32_t b, int32_t c) {
  ins(s->m, op, d, a, b, c, 0);
}
static inline int32_t vop(Sel *s, int op, int32_t a, int32_t b) {
  int32_t d = tile_mir_vreg(s->m);
  ins(s->m, op, d, a, b, 0, 0);
  return d;
}
/* vsel: c != 0 ? a : b */
static inline int32_t vsel(Sel *s, int32_t c, int32_t a, int32_t b) {
  int32_t d = tile_mir_vreg(s->m);
  ins(s->m, TILE_MOP_VSEL, d, a, b, c, 0);
  return d;
}
static inline int32_t vli(Sel *s, uint32_t bits) {
  int32_t d = tile_mir_vreg(s->m);
  ins(s->m, TILE_MOP_VLI, d, 0, 0, 0, (int32_t)bits);
  return d;
}
static inline uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline int32_t li_buf(Sel *s, int32_t buf, int64_t off) {
  return tile_mir_li(s->m, off, buf);
}
/* A vector store of v with a zero sublane stride at (addr + imm) in buf. */
static inline void vst0(Sel *s, int op, int32_t v, int32_t addr, int32_t buf, int64_t imm) {
  TileMirInst in = tile_mir_inst(op, v, addr, s->zero, 0, (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, TILE_MIR_WRITE, 0);
  tile_mir_add(s->m, in);
}
static inline int32_t vld0(Sel *s, int32_t addr, int32_t buf, int64_t imm) {
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

static inline Pos pos_start(Sel *s) {
  Pos p = {tile_mir_sreg(s->m), tile_mir_sreg(s->m)};
  ins(s->m, TILE_MOP_LI, p.b, 0, 0, 0, 0);
  ins(s->m, TILE_MOP_LI, p.row_off, 0, 0, 0, 0);
  return p;
}
/* Returns the sreg that is 1 at the row's last block (computed before stepping). */
static inline int32_t pos_advance(Sel *s, Pos p) {
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
static inline int32_t pos_col_bytes(Sel *s, Pos p) {
  int32_t c = sop(s, TILE_MOP_MULI, p.b, 0, (int32_t)(s->bc * s->eb));
  ins(s->m, TILE_MOP_MIN, c, c, s->lastcol_b, 0, 0);
  return c;
}
static inline int64_t round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

/* A vector load or store of vreg v at (addr + imm) in buf, sublane stride in `stride`;
 * imm is relative to buf's address. */
static inline int32_t vmem(Sel *s, int op, int32_t v, int32_t addr, int32_t stride, int32_t buf,
                    int64_t imm, int access, int slot_ofs) {
  if (v < 0) v = tile_mir_vreg(s->m);
  TileMirInst in = tile_mir_inst(op, v, addr, stride, 0, (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, access, slot_ofs);
  tile_mir_add(s->m, in);
  return v;
}


/* ---- the chunk tournament (gen_select_tour.c has the method) ---- */

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
  bool overlap;        /* the rounds of each group run inside the next group's stream */
  int bs;              /* groups per batch (1 when overlapped) */
  int64_t nbatch;
  int32_t rows, h0, hb, rec, xf[FAST_BATCH], xs[FAST_BATCH];
} Fast;

/* Round constants and the registers of the loops around the rounds. */
typedef struct RoundK {
  /* vregs */
  int32_t nlane_f, pinf, big, lane_t, lane_s, in_row;
  /* the index's fields (low 24 bits; chunk, tile, slice) and their byte scalings */
  int32_t mask24, mcb, mtb, msv, neb, mcb_eb, nsp, msv_sp, ebv, spv;
  bool quick; /* the byte offsets by the shorter path (round_group) */
  int32_t sub[3]; /* sublane bit 1, 2, 4 */
  int32_t sio;    /* the sublane index, when the rounds combine loads in a chain; else -1 */
  int32_t br, bh;  /* this batch's rows and slices offsets, broadcast */
  int32_t zero, neginf; /* the rounds' own copies (made beside them, see round_vconsts) */
  int32_t lx, lk;       /* the group's line when carried in registers, else -1 */
  int32_t lgm, lnb;     /* and then its best x' and key (uniform along lanes) */
  /* sregs */
  int32_t s512, s4, seb, sgd, sngd, skoff, snkoff, gb, sv, si;
  TileDmaSite xsite[FAST_BATCH];
} RoundK;

/* Slots of `rows` in the overlapped schedule, which only tell the list scheduler what
 * may meet: the stream's DMAs write blocks no one reads yet, the stream's waits and loads
 * touch the blocks that have landed, the rounds read an earlier group's rows. */
enum { TAG_DMA = 0, TAG_STREAM = 1, TAG_ROUND = 2 };

/* The stream's constants. */
typedef struct StreamK {
  /* vregs: the key of each element of a tile, -(its index in the tile), and a NaN's (that
   * plus 2^24); +inf, -inf */
  int32_t niota_f, niota_big, pinf, neginf;
  int32_t stride_in, stride_h; /* sregs */
} StreamK;

enum { XROT = 2 }; /* the stream's tiles in flight in a list-scheduled body */

/* The overlapped schedule's stream: the next block to issue (dp, its row in `rows`
 * drow, stopping at the last row lastrow_d) and the next to compute (block cb of its row,
 * at rb in `rows`, the row's heads at rh in h0). */
typedef struct Stream {
  StreamK k;
  Pos dp;
  int32_t drow, lastrow_d, cb, rb, rh;
  int32_t xr[XROT]; /* the tiles' load registers, in rotation */
} Stream;

/* gen_select_tour.c */
/* Plans the tournament; false when it does not apply (the k-pass method runs). */
bool sel_tour_plan(Sel *s, Fast *f);
/* Entries of each of topk's staging buffers. */
int64_t sel_tour_stage(const Sel *s, const Fast *f);
/* The tournament's MIR: rows and heads, k rounds, the results. */
bool sel_tour_topk(Sel *s, Fast *f);
/* Every row's heads from h0 into slices and lines (see the function). */
void sel_tour_heads(Sel *s, Fast *f, int64_t nrows, int32_t ha, int32_t hr, int32_t gr);
void sel_stream_init(Sel *s, Fast *f, Stream *st);
/* The stream's constants (again: a loop body may make its own). */
void sel_stream_consts(Sel *s, Fast *f, StreamK *k);
/* Issues the next block's DMA. */
void sel_stream_issue(Sel *s, Fast *f, Stream *st);
/* Waits for the oldest block in flight. */
void sel_stream_wait(Sel *s);
/* The next block's heads (its DMA waited for). */
void sel_stream_block(Sel *s, Fast *f, Stream *st);

/* gen_select_rounds.c */
/* The k rounds of every group after the stream, batches of groups interleaved. */
void sel_rounds_batched(Sel *s, Fast *f);
/* The stream and the rounds overlapped: group g's rounds inside group g+1's stream. */
void sel_rounds_overlapped(Sel *s, Fast *f);

/* gen_select_top.c */
/* topk's staging ([k][R], round major) to the results. */
bool sel_store_topk(Sel *s);

#endif
