/* The matmul generator: lowers a MATMUL fusion group (a matmul or a dot_general in
 * matmul form and its fused elementwise epilogue) to MIR.
 *
 * Needs: the plan (gen_matmul_plan.c: units arranged nk x nn, blocks, chunks, pieces)
 * and the DMA queue (gen_matmul_dma.c). gen_matmul.h draws the blocking.
 *
 * The work is one stream of row-tile steps over the static sequence of blocks
 * (chunk, K step, column block), T steps per block. Step s pushes row tile s and pops
 * the results of row tile s - skew, so the MXU latency is covered by pushes of the
 * same or the next block and the MXUs never drain between blocks:
 *
 *   step s:  nk LHS loads of tile s, nk*nn pushes           (push side, block s / T)
 *            per column tile: pop + popacc over ki (+ the accumulator read back),
 *            then the accumulator store, or on the last K step the epilogue and a
 *            store to the staging buffer                     (pop side, tile s - skew)
 *
 * The stream is cut where the push side enters a block (weight load: 16 vld +
 * mxu.ldw per unit, after the block's B piece has arrived) or an A piece, and where
 * the pop side enters or leaves a block (staging slot free; copy out when done); each
 * stretch between cuts is a counted loop the modulo scheduler pipelines. Nothing else
 * is a loop: the machine's `loop` holds at most 63 bundles, less than a weight load.
 *
 * Guarantees: inputs are read from HBM once per column chunk (once in all when one
 * chunk spans N) and each result byte is written once; padded K adds zeros; rows and
 * columns past the ends are never stored. */
#include <stdlib.h>
#include <string.h>

#include "gen_matmul_emit.h"
#include "tile/ops.h"

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
                  int32_t buf) {
  TileMirInst in = ins(bf16 ? TILE_MOP_VLDBF : TILE_MOP_VLD, d, addr, stride, 0, imm);
  tile_mir_mem(&in, buf, TILE_MIR_READ, 0);
  emit(g, in);
}

static void vstore(Gen *g, int32_t v, bool bf16, int32_t addr, int32_t stride, int64_t imm,
                   int32_t buf) {
  TileMirInst in = ins(bf16 ? TILE_MOP_VSTBF : TILE_MOP_VST, v, addr, stride, 0, imm);
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

/* ---- setup ---- */

static TileDmaShape shape2(int64_t run, int64_t runs, int64_t src_stride, int64_t dst_stride) {
  return (TileDmaShape){.count0 = run, .count1 = runs, .count2 = 1,
                        .src_stride1 = src_stride, .dst_stride1 = dst_stride};
}

static void make_buffers(Gen *g) {
  const MmPlan *p = g->p;
  static const char *names[RING_COUNT] = {"matmul.a", "matmul.a_edge", "matmul.b", "matmul.b_edge"};
  bool edge = p->Kr < p->Kb;
  for (int i = 0; i < RING_COUNT; i++) {
    Ring *r = &g->ring[i];
    bool is_a = i == RING_A || i == RING_A_EDGE, is_edge = i == RING_A_EDGE || i == RING_B_EDGE;
    if (is_edge && !edge) continue;
    int64_t kr = is_edge ? p->Kr : p->Kb;
    r->live = true;
    r->nslots = is_a ? p->ring_a : p->ring_b;
    r->slot_bytes = is_a ? p->Mr * p->Kb * p->ae : p->Kb * p->Nb * p->be;
    r->bufs = calloc((size_t)r->nslots, sizeof(int32_t));
    if (!r->bufs) abort();
    for (int64_t k = 0; k < r->nslots; k++)
      r->bufs[k] = tile_mir_buffer(g->m, names[i], TILE_SPACE_VMEM, r->slot_bytes, 1, 128);
    int64_t arows = p->ra > 1 ? p->Mr : p->Mv;
    int64_t bcols = p->Nb < p->Nv ? p->Nb : p->Nv;
    r->src_buf = is_a ? p->a.buf : p->b.buf;
    r->sem = tile_mir_sem(g->m);
    r->shape = is_a ? shape2(kr * p->ae, arows, p->K * p->ae, p->Kb * p->ae)
                    : shape2(bcols * p->be, kr, p->N * p->be, p->Nb * p->be);
  }
  g->tile_bytes = (int64_t)p->sub * p->dim * 4;
  /* Two accumulators, written by alternate K steps: a step reads one and writes the
   * other, so its pipelined loop has no memory recurrence between the store of one
   * tile and the load of the next. */
  for (int i = 0; i < (p->nkp > 2 ? 2 : p->nkp > 1 ? 1 : 0); i++)
    g->acc[i] = tile_mir_buffer(g->m, i ? "matmul.acc1" : "matmul.acc0", TILE_SPACE_VMEM,
                                p->Mb * p->nnp * p->Nb * 4, 1, 128);
  g->stage_slot = p->Mb * p->Nb * p->oe;
  for (int i = 0; i < 2; i++)
    g->stage[i] = tile_mir_buffer(g->m, "matmul.out", TILE_SPACE_VMEM, g->stage_slot, 1, 128);
  int64_t width = p->Nb < p->Nv ? p->Nb : p->Nv;
  g->out_sem = tile_mir_sem(g->m);
  g->out_shape = shape2(width * p->oe, p->Mv, p->Nb * p->oe, p->N * p->oe);
}

/* Zeroes the edge rings beyond K (every slot), so padded K adds nothing; the DMAs
 * never write there. */
static void zero_k_padding(Gen *g) {
  const MmPlan *p = g->p;
  if (p->Kr >= p->Kb) return;
  int32_t z = tile_mir_vreg(g->m);
  emit(g, ins(TILE_MOP_VLI, z, 0, 0, 0, 0));
  Ring *a = &g->ring[RING_A_EDGE], *b = &g->ring[RING_B_EDGE];
  /* A: the column tiles from the one holding K's end, every row tile of every slot. */
  for (int64_t s = 0; s < a->nslots; s++) {
    int32_t ap = li_buf(g, a->bufs[s], 0);
    tile_mir_loop_begin(g->m, (int32_t)(p->Mr / p->sub), 0);
    for (int64_t c = p->Kr / p->dim; c < p->nk; c++)
      vstore(g, z, p->ae == 2, ap, g->c_apitch, c * p->dim * p->ae, a->bufs[s]);
    addi(g, ap, (int64_t)p->sub * p->Kb * p->ae);
    tile_mir_loop_end(g->m);
  }
  /* B: the row groups from the one holding K's end, every column tile of every slot. */
  int64_t r0 = p->Kr / p->sub * p->sub;
  for (int64_t s = 0; s < b->nslots; s++) {
    int32_t bp = li_buf(g, b->bufs[s], r0 * p->Nb * p->be);
    tile_mir_loop_begin(g->m, (int32_t)((p->Kb - r0) / p->sub), 0);
    for (int ni = 0; ni < p->nn; ni++)
      vstore(g, z, p->be == 2, bp, g->c_bpitch, (int64_t)ni * p->dim * p->be, b->bufs[s]);
    addi(g, bp, (int64_t)p->sub * p->Nb * p->be);
    tile_mir_loop_end(g->m);
  }
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

/* ---- the step stream ---- */

/* Weights of block k into every unit: unit (ki, ni) gets rows ki*dim.. and columns
 * tile_col(ni).. of the block's B piece. */
static void load_weights(Gen *g, const Block *k) {
  const MmPlan *p = g->p;
  mm_dma_need(g, k->bpiece);
  source(g);
  int32_t base = mm_piece_addr(g, k->bpiece, 0);
  int32_t buf = g->ring[g->pieces[k->bpiece].ring].bufs[g->pieces[k->bpiece].slot];
  int groups = p->dim / p->sub;
  for (int ki = 0; ki < p->nk; ki++)
    for (int ni = 0; ni < p->nn; ni++)
      for (int r = 0; r < groups; r++) {
        int32_t w = tile_mir_vreg(g->m);
        vload(g, w, p->be == 2, base, g->c_bpitch,
              ((int64_t)ki * p->dim + (int64_t)r * p->sub) * p->Nb * p->be +
                  tile_col(p, ni) * p->be,
              buf);
        emit(g, ins(TILE_MOP_MXU_LDW, 0, w, 0, ki * p->nn + ni, r));
      }
  mm_dma_release(g, k->bpiece);
  g->started = true;
}

typedef struct Side {
  const Block *k;
  int64_t tile;
} Side;

/* Steps [s, s + n): the push side of one block (push.k != NULL) and the pop side of
 * one block (pop.k != NULL), as a pipelined loop when n > 1. */
static void segment(Gen *g, Side push, Side pop, int64_t n) {
  const MmPlan *p = g->p;
  TileMir *m = g->m;
  int64_t tpp = p->Mr / p->sub;
  int32_t lhs = -1, abuf = -1, acc_ld = -1, acc_st = -1, st = -1, ld_buf = -1, st_buf = -1;
  int32_t rows[MM_MAX_ROWS] = {0};
  source(g);
  if (push.k) {
    int32_t piece = push.k->apiece0 + (int32_t)(push.tile / tpp);
    abuf = g->ring[g->pieces[piece].ring].bufs[g->pieces[piece].slot];
    lhs = mm_piece_addr(g, piece, push.tile % tpp * p->sub * p->Kb * p->ae);
  }
  if (pop.k) {
    int64_t acc_off = (pop.tile * p->nnp + pop.k->np) * p->nn * g->tile_bytes;
    ld_buf = g->acc[(pop.k->kp + 1) & 1];
    st_buf = g->acc[pop.k->kp & 1];
    if (!pop.k->first) acc_ld = li_buf(g, ld_buf, acc_off);
    if (!pop.k->last) acc_st = li_buf(g, st_buf, acc_off);
    if (pop.k->last) {
      st = li_buf(g, g->stage[pop.k->stage_slot], pop.tile * p->sub * p->Nb * p->oe);
      for (int32_t i = 0; i < p->nrows; i++)
        rows[i] = li_buf(g, p->rows[i].vmem, (pop.k->nstart + pop.k->bcol) * p->rows[i].esize);
    }
  }
  bool loop = n > 1 && p->skew == 0;
  if (loop) tile_mir_loop_begin(m, (int32_t)n, TILE_MIR_PIPELINE);
  for (int64_t it = 0; it < (loop ? 1 : n); it++) {
  if (push.k) {
    int32_t l[16];
    for (int ki = 0; ki < p->nk; ki++) {
      l[ki] = tile_mir_vreg(m);
      vload(g, l[ki], p->ae == 2, lhs, g->c_apitch, (int64_t)ki * p->dim * p->ae, abuf);
    }
    for (int ki = 0; ki < p->nk; ki++)
      for (int ni = 0; ni < p->nn; ni++)
        emit(g, ins(TILE_MOP_MXU_PUSH, 0, l[ki], 0, ki * p->nn + ni, 0));
    addi(g, lhs, (int64_t)p->sub * p->Kb * p->ae);
  }
  if (pop.k) {
    for (int ni = 0; ni < p->nn; ni++) {
      int32_t v = tile_mir_vreg(m);
      if (pop.k->first) {
        emit(g, ins(TILE_MOP_MXU_POP, v, 0, 0, ni, 0));
      } else {
        int32_t a = tile_mir_vreg(m);
        vload(g, a, false, acc_ld, g->c_tpitch, ni * g->tile_bytes, ld_buf);
        emit(g, ins(TILE_MOP_MXU_POPACC, v, a, 0, ni, 0));
      }
      for (int ki = 1; ki < p->nk; ki++) {
        int32_t w = tile_mir_vreg(m);
        emit(g, ins(TILE_MOP_MXU_POPACC, w, v, 0, ki * p->nn + ni, 0));
        v = w;
      }
      if (pop.k->last) {
        int32_t r = mm_epilogue_emit(g->cx, p, v, rows, g->zero, tile_col(p, ni));
        source(g);
        vstore(g, r, p->out_bf16, st, g->c_spitch, tile_col(p, ni) * p->oe,
               g->stage[pop.k->stage_slot]);
      } else {
        vstore(g, v, false, acc_st, g->c_tpitch, ni * g->tile_bytes, st_buf);
      }
    }
    int64_t acc_step = p->nnp * p->nn * g->tile_bytes;
    if (acc_ld >= 0) addi(g, acc_ld, acc_step);
    if (acc_st >= 0) addi(g, acc_st, acc_step);
    if (st >= 0) addi(g, st, (int64_t)p->sub * p->Nb * p->oe);
  }
  }
  if (loop) tile_mir_loop_end(m);
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static void walk(Gen *g) {
  const MmPlan *p = g->p;
  int64_t T = p->T, D = p->skew, G = g->nblocks * T, tpp = p->Mr / p->sub;
  for (int64_t s = 0; s < G + D;) {
    int64_t q = s - D, s1 = G + D;
    bool pushing = s < G, popping = q >= 0 && q < G;
    if (pushing) s1 = min64(s1, min64(s / T * T + T, s / T * T + (s % T / tpp + 1) * tpp));
    if (!popping && q < 0) s1 = min64(s1, D);
    if (popping) s1 = min64(s1, q / T * T + T + D);
    if (pushing) s1 = min64(s1, G);
    if (!pushing && !popping) { /* more blocks' pops than steps: nothing until the skew */
      s = s1;
      continue;
    }
    Side push = {0}, pop = {0};
    if (pushing) {
      push = (Side){&g->blocks[s / T], s % T};
      if (s % T == 0) load_weights(g, push.k);
      if (s % T % tpp == 0) mm_dma_need(g, push.k->apiece0 + (int32_t)(s % T / tpp));
    }
    if (popping) {
      pop = (Side){&g->blocks[q / T], q % T};
      if (q % T == 0 && pop.k->last) mm_dma_stage_free(g, pop.k->stage_slot);
    }
    mm_dma_pump(g);
    segment(g, push, pop, s1 - s);
    if (pushing && s1 % T == 0) {
      /* The push side left a block: the last of its slab frees the slab's pieces. */
      const Block *k = push.k;
      if (k->np == p->nnp - 1)
        for (int64_t r = 0; r < p->ra; r++) mm_dma_release(g, k->apiece0 + (int32_t)r);
    }
    if (popping && (s1 - D) % T == 0 && pop.k->last) {
      source(g);
      mm_dma_out(g, pop.k);
    }
    s = s1;
  }
}

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
  mm_dma_plan(g);
  walk(g);
  for (int i = 0; i < RING_COUNT; i++) {
    free(g->ring[i].occupant);
    free(g->ring[i].bufs);
  }
  free(g->blocks);
  free(g->pieces);
  free(g->out_slot_dma);
  free(g->out_copy);
  return true;
}
