/* The matmul generator: lowers a MATMUL fusion group (a matmul or a dot_general in
 * matmul form and its fused elementwise epilogue) to MIR.
 *
 * Needs: the plan (gen_matmul_plan.c: units arranged nk x nn, blocks, chunks, the
 * pipeline's depths) and the tables (gen_matmul_dma.c). gen_matmul.h draws the blocking.
 *
 * The work is one stream of row-tile steps over the blocks (chunk, K step, column
 * block), T steps per block. Step s of block j pushes row tile s of block j and pops
 * the results of the row tile `skew` steps earlier, which for s < skew is one of block
 * j - 1's last tiles. So the MXU latency is covered by pushes and the units never drain
 * between blocks:
 *
 *   block j:  record words, wait for B piece j, weights (16 vld + mxu.ldw per unit),
 *             issue B piece j + min(depth, 2) and the next A piece (after waiting
 *             for the last)
 *             loop A (skew trips):  push j tiles 0.., pop j-1's last skew tiles
 *             copy j-1's last rows out (a last K step)
 *             loop B (T - skew):    push j tiles skew.., pop j tiles 0..
 *                                   (cut where a last K step copies rows out)
 *
 * Every loop is pipelined by the modulo scheduler. Blocks of one kind (same K step
 * kind of push and pop side) run as counted loops: blocks of a K step, the middle K
 * steps of a chunk, the chunks after the first (nest: chunk, K step, block, rows).
 * What differs between blocks comes from the tables through pointer registers.
 *
 * Guarantees: inputs are read from HBM once per column chunk (once in all when one
 * chunk spans N) and each result byte is written once (rows copied again where copies
 * overlap carry the same values); padded K adds zeros; rows and columns past the ends
 * are never stored. */
#include <stdlib.h>
#include <string.h>

#include "gen_matmul_emit.h"
#include "tile/ops.h"

/* B pieces in flight ahead of the block reading one (at most the plan's depth): a
 * piece takes a fraction of a block to copy, so two ahead always arrive in time, and
 * more at once would share HBM with the first slab and the next block's piece, which
 * are needed sooner. */
enum { MM_B_AHEAD = 2 };

static TileMirInst ins(int op, int32_t d, int32_t a, int32_t b, int32_t c, int64_t imm) {
  return tile_mir_inst(op, d, a, b, c, (int32_t)imm);
}

static void emit(Gen *g, TileMirInst in) { tile_mir_add(g->m, in); }

static int32_t li(Gen *g, int64_t v) {
  int32_t r = tile_mir_sreg(g->m);
  emit(g, ins(TILE_MOP_LI, r, 0, 0, 0, v));
  return r;
}

static int32_t li_buf(Gen *g, int32_t buf, int64_t off) {
  int32_t r = tile_mir_sreg(g->m);
  TileMirInst in = ins(TILE_MOP_LI, r, 0, 0, 0, off);
  in.imm_buf = buf;
  emit(g, in);
  return r;
}

static void addi(Gen *g, int32_t r, int64_t v) { emit(g, ins(TILE_MOP_ADDI, r, r, 0, 0, v)); }

static void vload(Gen *g, int32_t d, bool bf16, int32_t addr, int32_t stride, int64_t imm,
                  int32_t buf, int slot_ofs) {
  TileMirInst in = ins(bf16 ? TILE_MOP_VLDBF : TILE_MOP_VLD, d, addr, stride, 0, imm);
  tile_mir_mem(&in, buf, TILE_MIR_READ, slot_ofs);
  emit(g, in);
}

static void vstore(Gen *g, int32_t v, bool bf16, int32_t addr, int32_t stride, int64_t imm,
                   int32_t buf, int slot_ofs) {
  TileMirInst in = ins(bf16 ? TILE_MOP_VSTBF : TILE_MOP_VST, v, addr, stride, 0, imm);
  tile_mir_mem(&in, buf, TILE_MIR_WRITE, slot_ofs);
  emit(g, in);
}

/* A word of block j's record (prev: block j - 1's) into a new sreg. */
static int32_t rec_word(Gen *g, int word, bool prev) {
  int32_t r = tile_mir_sreg(g->m);
  TileMirInst in = ins(TILE_MOP_SLD, r, g->rp, 0, 0, (prev ? -g->rec_bytes : 0) + word * 4);
  tile_mir_mem(&in, g->rec, TILE_MIR_READ, 0);
  emit(g, in);
  return r;
}

/* Issues the copy at *ptr of table t and steps to the next. */
static void issue(Gen *g, int32_t ptr, const DescTable *t, int32_t src, int32_t dst, int64_t bytes) {
  TileMirInst in = ins(TILE_MOP_DMA, 0, ptr, 0, 0, 0);
  in.est_cycles = tile_lower_dma_cycles(tile_lower_target(g->cx), bytes);
  tile_mir_mem(&in, t->buf, TILE_MIR_READ, 0);
  tile_mir_mem(&in, src, TILE_MIR_READ, 0);
  tile_mir_mem(&in, dst, TILE_MIR_WRITE, 0);
  emit(g, in);
  addi(g, ptr, 64);
}

/* Waits for the oldest copy on semaphore `sem`, naming the VMEM side it fills or
 * drains (the HBM tensors are shared by every copy of a kind: naming them would order
 * the wait after the newest copy). */
static void wait(Gen *g, int sem, int32_t buf) {
  TileMirInst in = ins(TILE_MOP_WAIT, 0, 0, 0, g->sem[sem], 1);
  tile_mir_mem(&in, buf, TILE_MIR_WRITE, 0);
  emit(g, in);
}

static void source(Gen *g) { tile_mir_set_source(g->m, tile_op_name(g->p->mm->kind), g->p->mm->loc); }

/* The column of tile ni within its block (tiles overlap when N is narrower). */
static int64_t tile_col(const MmPlan *p, int ni) {
  int64_t c = (int64_t)ni * p->dim;
  if (p->Nv < p->Nb) {
    int64_t hi = p->Nv > p->dim ? p->Nv - p->dim : 0;
    if (c > hi) c = hi;
  }
  return c;
}

static int64_t b_bytes(const MmPlan *p) { return p->Kb * p->Nb * p->be; }
static int64_t a_bytes(const MmPlan *p) { return p->arows * p->Kb * p->ae; }
static int64_t a0_bytes(const MmPlan *p) { return p->a0rows * p->Kb * p->ae; }
static int64_t out_bytes(const MmPlan *p) { return p->q * p->sub * p->Nb * p->oe; }

/* ---- setup ---- */

static void make_buffers(Gen *g) {
  const MmPlan *p = g->p;
  int64_t edge = p->Kr < p->Kb ? 2 : 1;
  g->abuf = tile_mir_buffer(g->m, "matmul.a", TILE_SPACE_VMEM, edge * 2 * p->Mb * p->Kb * p->ae, 1, 128);
  g->bbuf = tile_mir_buffer(g->m, "matmul.b", TILE_SPACE_VMEM, edge * p->depth * b_bytes(p), 1, 128);
  g->tile_bytes = (int64_t)p->sub * p->dim * 4;
  g->acc_row = p->nnp * p->nn * g->tile_bytes;
  g->acc = -1;
  if (p->nkp > 1) {
    /* A slot per row tile (fewer when T is large: tiles a multiple apart share a name,
     * which only orders them), so a pipelined row loop's store of one tile does not
     * hold back the next tile's load. */
    int64_t slots = p->T < 64 ? p->T : 64;
    g->acc = tile_mir_buffer(g->m, "matmul.acc", TILE_SPACE_VMEM,
                             (p->T + slots - 1) / slots * g->acc_row, (int32_t)slots, 128);
  }
  g->stage_slot = p->Mb * p->Nb * p->oe;
  g->stage = tile_mir_buffer(g->m, "matmul.out", TILE_SPACE_VMEM, 2 * g->stage_slot, 1, 128);
}

static int acc_slot(const Gen *g, int64_t tile) {
  return g->acc >= 0 ? (int)(tile % g->m->bufs[g->acc].nslots) : 0;
}

/* Zeroes the padded slots beyond K (every one), so padded K adds nothing; the DMAs
 * never write there. */
static void zero_k_padding(Gen *g) {
  const MmPlan *p = g->p;
  if (p->Kr >= p->Kb) return;
  int32_t z = tile_mir_vreg(g->m);
  emit(g, ins(TILE_MOP_VLI, z, 0, 0, 0, 0));
  /* A: the column tiles from the one holding K's end, every row tile of both slabs. */
  int32_t ap = li_buf(g, g->abuf, 2 * p->Mb * p->Kb * p->ae);
  tile_mir_loop_begin(g->m, (int32_t)(2 * p->T), 0);
  for (int64_t c = p->Kr / p->dim; c < p->nk; c++)
    vstore(g, z, p->ae == 2, ap, g->c_apitch, c * p->dim * p->ae, g->abuf, 0);
  addi(g, ap, (int64_t)p->sub * p->Kb * p->ae);
  tile_mir_loop_end(g->m);
  /* B: the row groups from the one holding K's end, every column tile of every slot. */
  int64_t r0 = p->Kr / p->sub * p->sub;
  for (int64_t s = 0; s < p->depth; s++) {
    int32_t bp = li_buf(g, g->bbuf, (p->depth + s) * b_bytes(p) + r0 * p->Nb * p->be);
    tile_mir_loop_begin(g->m, (int32_t)((p->Kb - r0) / p->sub), 0);
    for (int ni = 0; ni < p->nn; ni++)
      vstore(g, z, p->be == 2, bp, g->c_bpitch, (int64_t)ni * p->dim * p->be, g->bbuf, 0);
    addi(g, bp, (int64_t)p->sub * p->Nb * p->be);
    tile_mir_loop_end(g->m);
  }
}

static TileDmaShape shape2(int64_t run, int64_t runs, int64_t src_stride, int64_t dst_stride) {
  return (TileDmaShape){.count0 = run, .count1 = runs, .count2 = 1,
                        .src_stride1 = src_stride, .dst_stride1 = dst_stride};
}

/* Copies every epilogue row to VMEM once. */
static void load_rows(Gen *g) {
  MmPlan *p = (MmPlan *)g->p;
  for (int32_t i = 0; i < p->nrows; i++) {
    MmRow *r = &p->rows[i];
    int64_t n = p->N > p->dim ? p->N : p->dim;
    r->vmem = tile_mir_buffer(g->m, "matmul.row", TILE_SPACE_VMEM, (n * r->esize + 63) / 64 * 64,
                              1, 128);
    TileDmaSite s = tile_dma_site(g->cx, r->ref.buf, 0, r->vmem, 0,
                                  shape2(p->N * r->esize, 1, 0, 0));
    tile_dma_issue(g->cx, &s, -1, 0, -1, 0);
    tile_dma_wait(g->cx, &s, 0, 0);
  }
}

/* ---- rows ---- */

/* The pop side of one block in a loop: its kind and address registers. */
typedef struct PopSide {
  PopKind kind;
  int32_t acc, stg, rows[MM_MAX_ROWS];
  int64_t tile; /* the row tile the registers point at */
} PopSide;

/* Loads the pop side registers of block j (prev: j - 1) pointing at row tile `tile`. */
static PopSide pop_side(Gen *g, PopKind kind, bool prev, int64_t tile) {
  const MmPlan *p = g->p;
  PopSide s = {.kind = kind, .acc = -1, .stg = -1, .tile = tile};
  if (kind == POP_NONE) return s;
  if (g->acc >= 0) {
    s.acc = rec_word(g, REC_ACC, prev);
    if (tile) addi(g, s.acc, tile * g->acc_row);
  }
  if (kind == POP_LAST) {
    s.stg = rec_word(g, REC_STAGE, prev);
    if (tile) addi(g, s.stg, tile * p->sub * p->Nb * p->oe);
    for (int32_t i = 0; i < p->nrows; i++) s.rows[i] = rec_word(g, REC_ROW0 + i, prev);
  }
  return s;
}

/* n row-tile steps as one pipelined loop: pushes of the tiles lhs points at (lhs < 0:
 * none) and pops of side `pop`. */
static void rows(Gen *g, int32_t lhs, PopSide *pop, int64_t n) {
  const MmPlan *p = g->p;
  TileMir *m = g->m;
  source(g);
  tile_mir_loop_begin(m, (int32_t)n, TILE_MIR_PIPELINE);
  if (lhs >= 0) {
    int32_t l[16];
    for (int ki = 0; ki < p->nk; ki++) {
      l[ki] = tile_mir_vreg(m);
      vload(g, l[ki], p->ae == 2, lhs, g->c_apitch, (int64_t)ki * p->dim * p->ae, g->abuf, 0);
    }
    for (int ki = 0; ki < p->nk; ki++)
      for (int ni = 0; ni < p->nn; ni++)
        emit(g, ins(TILE_MOP_MXU_PUSH, 0, l[ki], 0, ki * p->nn + ni, 0));
    addi(g, lhs, (int64_t)p->sub * p->Kb * p->ae);
  }
  if (pop->kind != POP_NONE) {
    int so = acc_slot(g, pop->tile);
    /* The accumulator tiles are all loaded before any is stored: a store names the
     * same slot (row tile) as the loads, and a load after it would wait for it. */
    int32_t acc[16];
    bool add = pop->kind != POP_FIRST && g->acc >= 0;
    for (int ni = 0; ni < p->nn && add; ni++) {
      acc[ni] = tile_mir_vreg(m);
      vload(g, acc[ni], false, pop->acc, g->c_tpitch, ni * g->tile_bytes, g->acc, so);
    }
    for (int ni = 0; ni < p->nn; ni++) {
      int32_t v = tile_mir_vreg(m);
      emit(g, ins(TILE_MOP_MXU_POP, v, 0, 0, ni, 0));
      for (int ki = 1; ki < p->nk; ki++) {
        int32_t w = tile_mir_vreg(m);
        emit(g, ins(TILE_MOP_MXU_POPACC, w, v, 0, ki * p->nn + ni, 0));
        v = w;
      }
      if (add) { /* the accumulator joins last: the pops need not wait for its load */
        int32_t s = tile_mir_vreg(m);
        emit(g, ins(TILE_MOP_VADDF, s, v, acc[ni], 0, 0));
        v = s;
      }
      if (pop->kind == POP_LAST) {
        int32_t r = mm_epilogue_emit(g->cx, p, v, pop->rows, g->zero, tile_col(p, ni));
        source(g);
        vstore(g, r, p->out_bf16, pop->stg, g->c_spitch, tile_col(p, ni) * p->oe, g->stage, 0);
      } else {
        vstore(g, v, false, pop->acc, g->c_tpitch, ni * g->tile_bytes, g->acc, so);
      }
    }
    if (pop->acc >= 0) addi(g, pop->acc, g->acc_row);
    if (pop->stg >= 0) addi(g, pop->stg, (int64_t)p->sub * p->Nb * p->oe);
  }
  tile_mir_loop_end(m);
  pop->tile += n;
}

/* Weights of the block whose B piece starts at address `base` into every unit: unit
 * (ki, ni) gets rows ki*dim.. and columns tile_col(ni).. of the piece. */
static void load_weights(Gen *g, int32_t base) {
  const MmPlan *p = g->p;
  int groups = p->dim / p->sub;
  for (int ki = 0; ki < p->nk; ki++)
    for (int ni = 0; ni < p->nn; ni++)
      for (int r = 0; r < groups; r++) {
        int32_t w = tile_mir_vreg(g->m);
        vload(g, w, p->be == 2, base, g->c_bpitch,
              ((int64_t)ki * p->dim + (int64_t)r * p->sub) * p->Nb * p->be +
                  tile_col(p, ni) * p->be,
              g->bbuf, 0);
        emit(g, ins(TILE_MOP_MXU_LDW, 0, w, 0, ki * p->nn + ni, r));
      }
}

/* The staging slot a block's pops fill was last read by the copies out of the block two
 * last-step blocks before: wait for those (placeholders at first). */
static void stage_free(Gen *g) {
  for (int64_t i = 0; i < g->p->nout; i++) wait(g, SEM_OUT, g->stage);
}

static void copy_out(Gen *g) { issue(g, g->op, &g->odesc, g->stage, g->p->out.buf, out_bytes(g->p)); }

/* A copy out of the final block's rows [lo, hi) (row tiles). Past its first nout, each
 * first waits for one older copy, so no more are in flight than the plan budgets. The
 * wait names the result (written by every copy out), so it follows the copy before
 * it, and the copy after it follows it. */
static void copy_fine(Gen *g, int64_t lo, int64_t hi) {
  const MmPlan *p = g->p;
  if (g->nfine++ >= p->nout) {
    TileMirInst in = ins(TILE_MOP_WAIT, 0, 0, 0, g->sem[SEM_OUT], 1);
    tile_mir_mem(&in, p->out.buf, TILE_MIR_WRITE, 0);
    emit(g, in);
  }
  issue(g, g->op, &g->odesc, g->stage, p->out.buf, (hi - lo) * p->sub * p->Nb * p->oe);
}

/* The body of block j (a representative of its kind when the body is a loop's). */
static void block(Gen *g, int64_t j) {
  const MmPlan *p = g->p;
  bool first = j == 0, edge = g->blocks[j].edge;
  PopKind ka = mm_pop_kind(g, j - 1), kb = mm_pop_kind(g, j);
  int64_t T = p->T, D = p->skew;
  bool fine = j == g->nblocks - 1; /* the final block: smaller copies out */
  int64_t q = fine ? p->qf : p->q;
  source(g);
  int32_t bw = rec_word(g, REC_B, false);
  int32_t lhs = rec_word(g, REC_A, false);
  wait(g, edge ? SEM_B_EDGE : SEM_B, g->bbuf);
  load_weights(g, bw);
  if (!first) issue(g, g->bp, &g->bdesc, p->b.buf, g->bbuf, b_bytes(p));
  issue(g, g->ap, &g->adesc, p->a.buf, g->abuf, a_bytes(p));
  if (first && p->a0pieces > 1) issue(g, g->a0, &g->a0desc, p->a.buf, g->abuf, a0_bytes(p));
  if ((T > D && kb == POP_LAST) || (T <= D && ka == POP_LAST)) stage_free(g);

  /* Cuts of the step range [0, T): the pop side changes block at D; the first block
   * waits for each piece of the first slab before its rows; a last step copies rows
   * out as they are popped. */
  int64_t a0t = p->a0rows / p->sub;
  PopSide pop = pop_side(g, ka, true, T - D);
  int64_t s = 0;
  while (s < T) {
    if (first && s % a0t == 0 && s / a0t < p->a0pieces) {
      /* The first slab's pieces two ahead of the rows (piece 1 came with the block's
       * start): the one after next is issued as soon as a piece is in, so HBM never
       * waits for the rows to reach a piece; the next block's B piece once the slab is
       * nearly in (it shares HBM with the last pieces). */
      int64_t piece = s / a0t;
      wait(g, SEM_A0, g->abuf);
      if (piece + 2 < p->a0pieces) issue(g, g->a0, &g->a0desc, p->a.buf, g->abuf, a0_bytes(p));
      if (piece == (p->a0pieces > 3 ? p->a0pieces - 3 : 0))
        issue(g, g->bp, &g->bdesc, p->b.buf, g->bbuf, b_bytes(p));
    }
    if (s == D && D < T) {
      if (ka == POP_LAST) copy_out(g);
      pop = pop_side(g, kb, false, 0);
    }
    int64_t s1 = s < D ? D : T;
    if (first && (s / a0t + 1) * a0t < s1) s1 = (s / a0t + 1) * a0t;
    if (s >= D && kb == POP_LAST) {
      int64_t c = (s - D) / q; /* the copy this segment's pops complete */
      int64_t end = D + (c + 1) * q;
      if (end < s1) s1 = end;
    }
    rows(g, lhs, &pop, s1 - s);
    s = s1;
    if (s > D && kb == POP_LAST && ((s - D) % q == 0 || s == T)) {
      if (fine) copy_fine(g, s - D - ((s - D) % q ? (s - D) % q : q), s - D);
      else copy_out(g);
    }
  }
  if (D >= T && ka == POP_LAST) copy_out(g);
  /* The B pieces of the blocks after the next only once the first slab is in and the
   * next block's piece nearly: they are needed a block later. From here on each block
   * issues one, so the lead stays. */
  if (first)
    for (int64_t i = 1; i < p->depth && i < MM_B_AHEAD; i++)
      issue(g, g->bp, &g->bdesc, p->b.buf, g->bbuf, b_bytes(p));
  /* the A copy this block issued: the next slab's rows are in before its first block */
  wait(g, SEM_A, g->abuf);
  addi(g, g->rp, g->rec_bytes);
}

/* The pops after the last push: the last block's final rows, its last copy, and the
 * waits for everything still in flight. */
static void drain(Gen *g) {
  const MmPlan *p = g->p;
  int64_t T = p->T, D = p->skew, j = g->nblocks;
  source(g);
  if (T <= D) stage_free(g);
  PopSide pop = pop_side(g, mm_pop_kind(g, j - 1), true, T - D);
  for (int64_t s = 0; s < D; s += p->qd) {
    int64_t n = D - s < p->qd ? D - s : p->qd;
    rows(g, -1, &pop, n);
    copy_fine(g, T - D + s, T - D + s + n);
  }
  /* the copies not yet waited for: nout of the block before (its staging slot's
   * waits come with the block after, which there is not) and the final block's, but
   * those its own copies waited for */
  int64_t left = p->nout + (g->nfine < p->nout ? g->nfine : p->nout);
  for (int64_t i = 0; i < left; i++) {
    TileMirInst in = ins(TILE_MOP_WAIT, 0, 0, 0, g->sem[SEM_OUT], 1);
    /* later groups that read the result see it whole */
    tile_mir_mem(&in, g->stage, TILE_MIR_WRITE, 0);
    tile_mir_mem(&in, p->out.buf, TILE_MIR_WRITE, 0);
    emit(g, in);
  }
}

/* ---- the nest of blocks ---- */

static void loop_of(Gen *g, int64_t trips, int64_t j, void (*body)(Gen *, int64_t)) {
  if (trips <= 0) return;
  tile_mir_loop_begin(g->m, (int32_t)trips, 0);
  body(g, j);
  tile_mir_loop_end(g->m);
}

static void block_rest(Gen *g, int64_t j) { block(g, j); }

/* K step kp of the chunk starting at block c0: its first block, then the others (one
 * kind) as a loop; the final block of all comes after that loop, on its own (its
 * copies out differ). */
static void kstep(Gen *g, int64_t j) {
  int64_t n = g->p->nnp;
  bool peel = n > 1 && j + n == g->nblocks;
  block(g, j);
  loop_of(g, n - 1 - (peel ? 1 : 0), j + 1, block_rest);
  if (peel) block(g, j + n - 1);
}

/* The middle K steps 2 .. nkp-2 (one kind: mid pops on both sides). */
static void kstep_mid(Gen *g, int64_t j) { kstep(g, j); }

static void chunk(Gen *g, int64_t c0) {
  const MmPlan *p = g->p;
  int64_t nnp = p->nnp, nkp = p->nkp;
  kstep(g, c0);
  if (nkp >= 3) kstep(g, c0 + nnp);                              /* kp 1: pops kp 0's */
  if (nkp >= 4) loop_of(g, nkp - 3, c0 + 2 * nnp, kstep_mid);    /* kp 2 .. nkp-2 */
  if (nkp >= 2) kstep(g, c0 + (nkp - 1) * nnp);                  /* the last, maybe padded */
}

static void chunk_body(Gen *g, int64_t c0) { chunk(g, c0); }

bool tile_gen_matmul(TileLowerCtx *cx, const TileGroup *grp) {
  MmPlan plan;
  if (!mm_plan(cx, grp, &plan)) return false;
  Gen gs;
  memset(&gs, 0, sizeof gs);
  Gen *g = &gs;
  g->cx = cx;
  g->m = tile_lower_mir(cx);
  g->p = &plan;
  const MmPlan *p = &plan;
  source(g);
  g->zero = tile_lower_zero(cx);
  g->c_apitch = li(g, p->Kb * p->ae);
  g->c_bpitch = li(g, p->Nb * p->be);
  g->c_tpitch = li(g, (int64_t)p->dim * 4);
  g->c_spitch = li(g, p->Nb * p->oe);
  make_buffers(g);
  zero_k_padding(g);
  load_rows(g);
  mm_epilogue_consts(cx, &plan);
  mm_tables(g);
  source(g);
  g->rp = li_buf(g, g->rec, 0);
  g->bp = li_buf(g, g->bdesc.buf, 0);
  g->ap = li_buf(g, g->adesc.buf, 0);
  g->op = li_buf(g, g->odesc.buf, 0);
  /* Start-up: the first B piece and the first piece of the first slab alone (the first
   * push waits for both), the placeholder copies out; block 0 issues the rest. */
  g->a0 = li_buf(g, g->a0desc.buf, 0);
  issue(g, g->bp, &g->bdesc, p->b.buf, g->bbuf, b_bytes(p));
  issue(g, g->a0, &g->a0desc, p->a.buf, g->abuf, a0_bytes(p));
  for (int64_t i = 0; i < 2 * p->nout; i++) issue(g, g->op, &g->odesc, g->scratch, g->scratch, 4);

  int64_t per_chunk = p->nkp * p->nnp;
  /* the last chunk on its own: it holds the final block */
  chunk(g, 0);
  loop_of(g, p->chunks - 2, per_chunk, chunk_body);
  if (p->chunks > 1) chunk(g, (p->chunks - 1) * per_chunk);
  drain(g);
  mm_tables_free(g);
  return true;
}
