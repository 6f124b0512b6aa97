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
 * Staggered switches (long blocks, nk >= 2, no epilogue; MmPlan.koff): the single vector
 * load slot makes a switch of all units at once cost its 16 * units weight loads with
 * every unit idle. Instead K group ki (the nn units sharing an LHS vreg) switches at its
 * own step, pushing the block before's last koff[ki] - xwin tiles from the body's start
 * while the other groups push the new block's; the pops follow the last group, skew
 * steps behind. A body is T + xwin steps (pops skip group 0's window). The steps around
 * each switch are straight-line, so the list scheduler starts a group's weight loads
 * during its last old pushes and loads the rest while the other groups keep pushing:
 *
 *   block j:  steps 0..     group 0: j-1's last rows, weights, j's rows 0..
 *                           group 1: j-1's last rows ......., weights, j's rows 0..
 *             pops:         j-1's last skew rows, then j's rows 0..
 *
 * The pops of a straight-line stretch come before its pushes in program order (a pop
 * is matched with the pushes before it in the stretch) and add the accumulator first,
 * so they do not hold results in registers while the weights take the vector loads.
 * The copies that refill the slab and ring slot the late groups still read are issued
 * after their last read; the drain pushes the late groups' last rows of the final
 * block.
 *
 * Held A (MmPlan.ahold, lead > 1): the first chunk spans two column chunks, each K step
 * running both blocks on one slab and each block copying half of the next slab, so the
 * only chunk that reads A from HBM has twice the pushes to hide it under:
 *
 *   lead chunk:  (kp 0: col 0, col 1) (kp 1: col 0, col 1) ..   then col 2, col 3, ..
 *
 * Short blocks (a few row tiles) emit their row steps straight-line, not as loops.
 *
 * One row tile (T == 1, decode): a block's one push is popped two blocks later
 * (MmPlan.lag = 2), not by the next block, so the MXU latency (128 cycles on v5e-like)
 * spans two blocks' weight loads instead of holding each block for it:
 *
 *   block j:  weights j | pop j-2, push j               (row-loop form, block)
 *   block j:  pop j-2, push j-1 | weights j | acc of j-1  (block_one, prefetched weights)
 *
 * The drain pops the last two blocks. In block_one a block pushes the block before's
 * tile, whose weights are in by then, so the weight loads run back to back (73 bundles
 * a block of 4 units on v5e-like, against 132 with the next block popping each push).
 *
 * Guarantees: inputs are read from HBM once per column chunk (once in all when one
 * chunk spans N) and each result byte is written once (rows copied again where copies
 * overlap carry the same values); padded K adds zeros; rows and columns past the ends
 * are never stored. */
#include <stdlib.h>
#include <string.h>

#include "gen_matmul_emit.h"
#include "lower_internal.h"
#include "tile/ops.h"

static TileMirInst ins(int op, int32_t d, int32_t a, int32_t b, int32_t c, int64_t imm) {
  return tile_mir_inst(op, d, a, b, c, (int32_t)imm);
}

static void emit(Gen *g, TileMirInst in) { tile_mir_add(g->m, in); }

static int32_t li(Gen *g, int64_t v) { return tile_mir_li(g->m, v, -1); }

static int32_t li_buf(Gen *g, int32_t buf, int64_t off) { return tile_mir_li(g->m, off, buf); }

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

/* A word of the record of block j - back (j: the block rp points at) into a new sreg. */
static int32_t rec_word(Gen *g, int word, int64_t back) {
  int32_t r = tile_mir_sreg(g->m);
  TileMirInst in = ins(TILE_MOP_SLD, r, g->rp, 0, 0, -back * g->rec_bytes + word * 4);
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
  addi(g, ptr, DESC_BYTES);
}

/* Waits for the oldest copy on semaphore `sem`, naming the VMEM side it fills or
 * drains (the HBM tensors are shared by every copy of a kind: naming them would order
 * the wait after the newest copy). */
static void wait_on(Gen *g, int32_t sem_id, int32_t buf) {
  TileMirInst in = ins(TILE_MOP_WAIT, 0, 0, 0, sem_id, 1);
  tile_mir_mem(&in, buf, TILE_MIR_WRITE, 0);
  emit(g, in);
}

/* The same on one of the group's own semaphores (SEM_*). */
static void wait(Gen *g, int sem, int32_t buf) { wait_on(g, g->sem[sem], buf); }

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

/* The next B piece's copy, and the wait for a block's piece (edge: the padded K step's):
 * none where the group reads resident weights another group copied. */
static void issue_b(Gen *g) {
  if (!g->share) issue(g, g->bp, &g->bdesc, g->p->b.buf, g->bbuf, b_bytes(g->p));
}

static void wait_b(Gen *g, bool edge) {
  if (!g->share) wait(g, edge ? SEM_B_EDGE : SEM_B, g->bbuf);
}

/* ---- setup ---- */

static void make_buffers(Gen *g) {
  const MmPlan *p = g->p;
  int64_t edge = p->Kr < p->Kb ? 2 : 1;
  int64_t aslots = p->ahold ? p->nkp : edge * 2;
  g->abuf = tile_mir_buffer(g->m, "matmul.a", TILE_SPACE_VMEM, aslots * p->Mb * p->Kb * p->ae, 1, 128);
  g->bbuf = g->share ? g->res->vmem
                     : tile_mir_buffer(g->m, g->own ? "matmul.b.resident" : "matmul.b",
                                       TILE_SPACE_VMEM, mm_b_slots(p) * b_bytes(p), 1, 128);
  g->tile_bytes = (int64_t)p->sub * p->dim * 4;
  g->acc_row = p->nnp * p->lead * p->nn * g->tile_bytes;
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
  MmPlan *mp = (MmPlan *)p;
  for (int32_t i = 0; i < p->ntiles; i++) {
    MmInput *t = &mp->tiles[i];
    t->vmem = tile_mir_buffer(g->m, "matmul.in", TILE_SPACE_VMEM,
                              mm_tile_slots(p) * p->Mb * p->Nb * t->esize, 1, 128);
    g->c_ipitch[i] = li(g, p->Nb * t->esize);
  }
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
  /* A: the column tiles from the one holding K's end, every row tile of both padded
   * slabs (the one padded slot, the last, where A is held). */
  int64_t first = p->ahold ? p->nkp - 1 : 2, nslabs = p->ahold ? 1 : 2;
  int32_t ap = li_buf(g, g->abuf, first * p->Mb * p->Kb * p->ae);
  tile_mir_loop_begin(g->m, (int32_t)(nslabs * p->T), 0);
  for (int64_t c = p->Kr / p->dim; c < p->nk; c++)
    vstore(g, z, p->ae == 2, ap, g->c_apitch, c * p->dim * p->ae, g->abuf, 0);
  addi(g, ap, (int64_t)p->sub * p->Kb * p->ae);
  tile_mir_loop_end(g->m);
  /* B: the row groups from the one holding K's end, every column tile of every slot
   * (the owner's slots, where the weights are resident in another group's buffer). */
  if (g->share) return;
  int64_t r0 = p->Kr / p->sub * p->sub;
  for (int64_t s = 0; s < p->eslots; s++) {
    int32_t bp = li_buf(g, g->bbuf, (p->ring + s) * b_bytes(p) + r0 * p->Nb * p->be);
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
    MmInput *r = &p->rows[i];
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
  int32_t acc, stg, rows[MM_MAX_ROWS], tiles[MM_MAX_TILES];
  int64_t tile; /* the row tile the registers point at */
  bool loaded;  /* the accumulator tiles are in g->acc_next (block_one) */
} PopSide;

/* Bytes of one row tile of tile operand i's piece. */
static int64_t tile_row_bytes(const MmPlan *p, int32_t i) {
  return (int64_t)p->sub * p->Nb * p->tiles[i].esize;
}

/* Loads the pop side registers of block j - back pointing at row tile `tile`. */
static PopSide pop_side(Gen *g, PopKind kind, int64_t back, int64_t tile) {
  const MmPlan *p = g->p;
  PopSide s = {.kind = kind, .acc = -1, .stg = -1, .tile = tile};
  if (kind == POP_NONE) return s;
  if (g->acc >= 0) {
    s.acc = rec_word(g, REC_ACC, back);
    if (tile) addi(g, s.acc, tile * g->acc_row);
  }
  if (kind == POP_LAST) {
    s.stg = rec_word(g, REC_STAGE, back);
    if (tile) addi(g, s.stg, tile * p->sub * p->Nb * p->oe);
    for (int32_t i = 0; i < p->nrows; i++) s.rows[i] = rec_word(g, REC_ROW0 + i, back);
    for (int32_t i = 0; i < p->ntiles; i++) {
      s.tiles[i] = rec_word(g, rec_tile(p, i), back);
      if (tile) addi(g, s.tiles[i], tile * tile_row_bytes(p, i));
    }
  } else if (kind == POP_FIRST && p->bias >= 0) {
    s.rows[p->bias_row] = rec_word(g, REC_ROW0 + p->bias_row, back);
  }
  return s;
}

/* The push side of the steps in a stretch: which LHS pointer each K group reads
 * (-1: the group does not push) and at what offset. The pointers step one row tile per
 * step. */
typedef struct PushSide {
  int32_t src[16];
  int64_t imm[16];
  int32_t ptr[2]; /* the distinct pointers (-1: none), stepped after each step */
} PushSide;

/* The pushes of one row-tile step: the tiles `push` points at. */
static void step_push(Gen *g, const PushSide *push) {
  const MmPlan *p = g->p;
  int32_t l[16];
  for (int ki = 0; ki < p->nk; ki++) {
    if (push->src[ki] < 0) continue;
    l[ki] = tile_mir_vreg(g->m);
    vload(g, l[ki], p->ae == 2, push->src[ki], g->c_apitch, push->imm[ki], g->abuf, 0);
  }
  for (int ki = 0; ki < p->nk; ki++)
    if (push->src[ki] >= 0)
      for (int ni = 0; ni < p->nn; ni++)
        emit(g, ins(TILE_MOP_MXU_PUSH, 0, l[ki], 0, ki * p->nn + ni, 0));
  for (int i = 0; i < 2; i++)
    if (push->ptr[i] >= 0) addi(g, push->ptr[i], (int64_t)p->sub * p->Kb * p->ae);
}

/* Steps the pop side's registers past n row tiles (popped in straight-line
 * code, or one step of a loop). */
static void pop_skip(Gen *g, PopSide *pop, int64_t n) {
  if (pop->kind == POP_NONE || n == 0) return;
  if (pop->acc >= 0) addi(g, pop->acc, n * g->acc_row);
  if (pop->stg >= 0) addi(g, pop->stg, n * g->p->sub * g->p->Nb * g->p->oe);
  for (int32_t i = 0; i < g->p->ntiles && pop->kind == POP_LAST; i++)
    addi(g, pop->tiles[i], n * tile_row_bytes(g->p, i));
}

/* The pops of one row-tile step: side `pop`, row tile `tile` (the acc slot is named
 * for it). In a loop (k < 0) the registers point at the tile and step past it. In
 * straight-line code (k >= 0) they point k tiles before it and stay, so no pointer
 * step chains the steps' loads after the stores before them; the accumulator then
 * joins first (popacc onto its load), so the pops wait for it and their results are
 * not held in registers while the vector loads serve the weights. */
static void step_pop(Gen *g, PopSide *pop, int64_t tile, int64_t k) {
  const MmPlan *p = g->p;
  TileMir *m = g->m;
  if (pop->kind == POP_NONE) return;
  bool straight = k >= 0;
  if (!straight) k = 0;
  int so = acc_slot(g, tile);
  int64_t acc_off = k * g->acc_row, stg_off = k * p->sub * p->Nb * p->oe;
  /* The accumulator tiles are all loaded before any is stored: a store names the
   * same slot (row tile) as the loads, and a load after it would wait for it. */
  int32_t acc[16];
  bool add = pop->kind != POP_FIRST && g->acc >= 0;
  /* Where a tile's sum starts, it starts from the bias row (the epilogue skips its add) */
  bool bias = p->bias >= 0 && (pop->kind == POP_FIRST || (pop->kind == POP_LAST && !add));
  /* The accumulator joins the first pop (mxu.popacc) in straight-line code, and where
   * an epilogue follows: its vector ops bound that loop, and the join costs none. */
  bool join = add && (straight || (pop->kind == POP_LAST && p->nepi > 0));
  for (int ni = 0; ni < p->nn && add; ni++) {
    if (pop->loaded) {
      acc[ni] = g->acc_next[ni];
      continue;
    }
    acc[ni] = tile_mir_vreg(m);
    vload(g, acc[ni], false, pop->acc, g->c_tpitch, ni * g->tile_bytes + acc_off, g->acc, so);
  }
  for (int ni = 0; ni < p->nn && bias; ni++) {
    acc[ni] = tile_mir_vreg(m);
    vload(g, acc[ni], false, pop->rows[p->bias_row], g->zero, tile_col(p, ni) * 4,
          p->rows[p->bias_row].vmem, 0);
  }
  for (int ni = 0; ni < p->nn; ni++) {
    int32_t v = tile_mir_vreg(m);
    if (join || bias) emit(g, ins(TILE_MOP_MXU_POPACC, v, acc[ni], 0, ni, 0));
    else emit(g, ins(TILE_MOP_MXU_POP, v, 0, 0, ni, 0));
    for (int ki = 1; ki < p->nk; ki++) {
      int32_t w = tile_mir_vreg(m);
      emit(g, ins(TILE_MOP_MXU_POPACC, w, v, 0, ki * p->nn + ni, 0));
      v = w;
    }
    if (add && !join) { /* the accumulator joins last: the pops need not wait for its load */
      int32_t s = tile_mir_vreg(m);
      emit(g, ins(TILE_MOP_VADDF, s, v, acc[ni], 0, 0));
      v = s;
    }
    if (pop->kind == POP_LAST) {
      int64_t toff[MM_MAX_TILES];
      for (int32_t i = 0; i < p->ntiles; i++) toff[i] = k * tile_row_bytes(p, i);
      MmEpiAt at = {.row_addr = pop->rows, .zero_stride = g->zero, .tile_addr = pop->tiles,
                    .tile_pitch = g->c_ipitch, .tile_off = toff, .tcol = tile_col(p, ni)};
      int32_t r = mm_epilogue_emit(g->cx, p, v, &at);
      source(g);
      vstore(g, r, p->out_bf16, pop->stg, g->c_spitch, tile_col(p, ni) * p->oe + stg_off,
             g->stage, 0);
    } else {
      vstore(g, v, false, pop->acc, g->c_tpitch, ni * g->tile_bytes + acc_off, g->acc, so);
    }
  }
  if (straight) return;
  pop_skip(g, pop, 1);
}

/* Blocks of at most MM_SHORT_ROWS row tiles (but one) have their row steps
 * straight-line: a pipelined row loop's stages (the pops' epilogue makes an iteration
 * long) would outnumber its few trips, and a loop that cannot be pipelined runs each
 * step alone, MXU latency and all. One row tile stays a loop: the loop bounds the
 * stretch the list scheduler packs it into (measured on the decode matmul). */
static bool short_rows(const MmPlan *p) { return p->T >= 2 && p->T <= MM_SHORT_ROWS; }

/* Whether a one-row-tile block pops before it pushes: the scheduler matches a pop with
 * the pushes before it in a stretch, so pushing first would make the block wait out the
 * MXU latency after its own push; its pops are of the results queued before it. */
static bool pops_first(const MmPlan *p) { return p->T == 1; }

/* Whether blocks of one row tile run as block_one: where weights were prefetched
 * (MmPlan.pf), so the blocks are bound by their weight loads, not by HBM (measured: on
 * blocks that wait for HBM the row-loop form is a little faster). */
static bool one_tile(const MmPlan *p) { return p->lag > 1 && p->pf > 0; }

/* n row-tile steps as one pipelined loop (straight-line in short blocks). */
static void rows(Gen *g, const PushSide *push, PopSide *pop, int64_t n) {
  bool any = pop->kind != POP_NONE;
  for (int ki = 0; ki < g->p->nk; ki++) any = any || push->src[ki] >= 0;
  if (any && n > 0) { /* none: the first block's steps before its first group starts */
    source(g);
    if (short_rows(g->p)) {
      for (int64_t i = 0; i < n; i++) {
        step_push(g, push);
        step_pop(g, pop, pop->tile + i, -1);
      }
    } else {
      tile_mir_loop_begin(g->m, (int32_t)n, TILE_MIR_PIPELINE);
      if (pops_first(g->p)) {
        step_pop(g, pop, pop->tile, -1);
        step_push(g, push);
      } else {
        step_push(g, push);
        step_pop(g, pop, pop->tile, -1);
      }
      tile_mir_loop_end(g->m);
    }
  }
  pop->tile += n;
}

/* The step K group ki starts its switch at: its last push of the block before is the
 * step before. */
static int64_t switch_step(const MmPlan *p, int ki) { return p->koff[ki] - p->xwin; }

/* The push side at step s of a block: K group ki pushes the block's row s - koff[ki]
 * from step koff[ki] (lhs points at row s - koff[0]), nothing in its switch window, and
 * before it the block before's row T + s - switch_step(ki) (old points at row
 * T + s - switch_step(0); -1: none). */
static PushSide push_side(const Gen *g, int64_t s, int32_t lhs, int32_t old) {
  const MmPlan *p = g->p;
  PushSide ps = {.ptr = {-1, -1}};
  for (int ki = 0; ki < p->nk; ki++) {
    int32_t src = s >= p->koff[ki] ? lhs : s < switch_step(p, ki) ? old : -1;
    ps.src[ki] = src;
    ps.imm[ki] = -(p->koff[ki] - p->koff[0]) * p->sub * p->Kb * p->ae + (int64_t)ki * p->dim * p->ae;
    if (src < 0) continue;
    if (ps.ptr[0] < 0 || ps.ptr[0] == src) ps.ptr[0] = src;
    else ps.ptr[1] = src;
  }
  return ps;
}

/* Weights of K group ki of the block whose B piece starts at address `base`: unit
 * (ki, ni) gets rows ki*dim.. and columns tile_col(ni).. of the piece. */
static void load_weights(Gen *g, int32_t base, int ki) {
  const MmPlan *p = g->p;
  int groups = p->dim / p->sub;
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

/* Whether step s is straight-line: from MM_PRE steps before a switch to the group's
 * first new push. */
static bool unrolled(const MmPlan *p, int64_t s) {
  if (!p->stagger) return false;
  for (int ki = 0; ki < p->nk; ki++)
    if (s >= switch_step(p, ki) - p->pre && s <= p->koff[ki] + p->post) return true;
  return false;
}

/* Whether step s pops: all but group 0's switch window, so a body pops T row tiles in
 * its T + xwin steps. */
static bool pops_at(const MmPlan *p, int64_t s) {
  return !(p->stagger && s >= switch_step(p, 0) && s < p->koff[0]);
}

/* The first step after s where a loop must end: a straight-line stretch's start. */
static int64_t next_push_cut(const MmPlan *p, int64_t s) {
  int64_t c = p->T + p->xwin;
  for (int ki = 0; ki < p->nk && p->stagger; ki++) {
    int64_t a = switch_step(p, ki) - p->pre;
    if (a > s && a < c) c = a;
  }
  return c;
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

/* The first block, at the step its first group reaches row tile r: before the rows of
 * each piece of the first slab, wait for the piece. The pieces go two ahead of the rows
 * (piece 1 after the wait for piece 0: before it, the scheduler would hold that wait,
 * which names the slab, for piece 1's copy time): the one after next is issued as soon
 * as a piece is in, so HBM never waits for the rows to reach a piece; the next block's
 * B piece once the slab is nearly in (it shares HBM with the last pieces). */
static void first_slab(Gen *g, int64_t r) {
  const MmPlan *p = g->p;
  int64_t a0t = p->a0rows / p->sub;
  if (r < 0 || r % a0t || r / a0t >= p->a0pieces) return;
  int64_t piece = r / a0t;
  wait(g, SEM_A0, g->abuf);
  if (piece == 0 && p->a0pieces > 1) issue(g, g->a0, &g->a0desc, p->a.buf, g->abuf, a0_bytes(p));
  if (piece + 2 < p->a0pieces) issue(g, g->a0, &g->a0desc, p->a.buf, g->abuf, a0_bytes(p));
  if (piece == (p->a0pieces > 3 ? p->a0pieces - 3 : 0)) {
    issue_b(g);
    if (p->lead == 1) issue(g, g->ap, &g->adesc, p->a.buf, g->abuf, a_bytes(p));
  }
}

/* Whether the A copy a block issues (a piece of the slab after its own) may land in
 * the slot of the block before's slab: held A has a slot per K step, so with three or
 * more the next slab's is neither. */
static bool a_refills_read(const MmPlan *p) { return !(p->ahold && p->nkp >= 3); }

/* block_one's push of the block before's tile (block j - 1), at the start of block j. */
static void push_before(Gen *g) {
  int32_t l = rec_word(g, REC_A, 1);
  PushSide ps = push_side(g, 0, l, -1);
  step_push(g, &ps);
}

static void block_end(Gen *g, int64_t j);

/* Issues the copies of one last-step block's tile operand pieces (the next in idesc). */
static void copy_tiles(Gen *g) {
  const MmPlan *p = g->p;
  for (int32_t i = 0; i < p->ntiles; i++) {
    const MmInput *t = &p->tiles[i];
    issue(g, g->ip, &g->idesc, t->ref.buf, t->vmem, p->Mv * p->Nb * t->esize);
  }
}

/* Tile operands (MmPlan.tiles): block j of a last K step waits for its pieces, copied in
 * by the block before (the first of its step copies its own), then copies in the next
 * block's, which has this block's time to land. So only one block's pieces are ever in
 * flight on their semaphore, each waited for by count. The next block's go to a slot
 * neither this block nor the blocks whose last rows it still pops read. */
static void tiles_in(Gen *g, int64_t j) {
  const MmPlan *p = g->p;
  if (!p->ntiles || mm_pop_kind(g, j) != POP_LAST) return;
  if (mm_pop_kind(g, j - 1) != POP_LAST) copy_tiles(g);
  for (int32_t i = 0; i < p->ntiles; i++) wait(g, SEM_IN, p->tiles[i].vmem);
  if (mm_pop_kind(g, j + 1) == POP_LAST) copy_tiles(g);
}

/* Block j of one row tile loads the accumulator tiles the next block's pops add (of
 * block j + 1 - lag, after this block's pops stored theirs): the vector loads are the
 * block's bound, and the scheduler puts the weights' first, so a load the pops wait for
 * in their own block would come last and hold them past the weights. Loaded whatever
 * the next pops' kind (a first K step's adds nothing and leaves them unread); none where
 * there is no such block yet. */
static void load_acc_next(Gen *g, int64_t j) {
  const MmPlan *p = g->p;
  if (g->acc < 0 || j + 1 - p->lag < 0) return;
  int32_t a = rec_word(g, REC_ACC, p->lag - 1);
  for (int ni = 0; ni < p->nn; ni++)
    vload(g, g->acc_next[ni], false, a, g->c_tpitch, ni * g->tile_bytes, g->acc, acc_slot(g, 0));
}

/* Block j of one row tile (lag 2, one_tile), straight-line: the pops of block j - 2,
 * the push of block j - 1 (pops before pushes: the scheduler matches a pop with the
 * pushes before it in a stretch), then this block's weights, its copies (the A copy
 * first: the block ends by waiting for it, and the B copy can only follow the weight
 * loads, which name the ring) and the next pops' accumulator. Block j - 1's push waits
 * only for its weights, loaded at the end of block j - 1, so the weight loads of one
 * block follow those of the block before with no MXU latency between; the body is one
 * stretch in a one-trip loop, so blocks emitted one after another are scheduled apart
 * (in one stretch the wait for a B piece would be held for the copy the block before
 * issued). */
static void block_one(Gen *g, int64_t j) {
  const MmPlan *p = g->p;
  bool first = j == 0;
  PopKind ka = mm_pop_kind(g, j - p->lag);
  source(g);
  tiles_in(g, j);
  int32_t bw = rec_word(g, REC_B, 0);
  if (ka == POP_LAST) stage_free(g);
  PopSide pop = pop_side(g, ka, p->lag, 0);
  pop.loaded = true;
  step_pop(g, &pop, 0, 0);
  if (ka == POP_LAST) copy_out(g);
  if (!first) push_before(g);
  wait_b(g, g->blocks[j].edge);
  for (int ki = 0; ki < p->nk; ki++) load_weights(g, bw, ki);
  if (first) {
    first_slab(g, 0);
  } else {
    issue(g, g->ap, &g->adesc, p->a.buf, g->abuf, a_bytes(p));
    issue_b(g);
  }
  load_acc_next(g, j);
  block_end(g, j);
}

/* The body of block j (a representative of its kind when the body is a loop's). */
static void block(Gen *g, int64_t j) {
  const MmPlan *p = g->p;
  if (one_tile(p)) {
    tile_mir_loop_begin(g->m, 1, 0);
    block_one(g, j);
    tile_mir_loop_end(g->m);
    return;
  }
  bool first = j == 0, edge = g->blocks[j].edge;
  PopKind ka = mm_pop_kind(g, j - p->lag), kb = mm_pop_kind(g, j);
  int64_t T = p->T, D = p->skew, S = T + p->xwin, k0 = p->koff[0];
  int64_t R = switch_step(p, p->nk - 1); /* the last step reading the block before's rows: R - 1 */
  bool fine = j == g->nblocks - 1; /* the final block: smaller copies out */
  int64_t q = fine ? p->qf : p->q;
  /* Staggered, the late groups still read the block before's slab until step R: an A
   * copy that may refill it is issued after that, and so is the B piece (measured: it
   * then shares HBM with less of the block's A copy). */
  bool late = p->stagger && !first;
  bool defer_a = late && a_refills_read(p), defer_b = late;
  source(g);
  tiles_in(g, j);
  int32_t bw = rec_word(g, REC_B, 0);
  int32_t lhs = rec_word(g, REC_A, 0);
  int32_t old = -1;
  if (late) {
    old = rec_word(g, REC_A, 1);
    addi(g, old, (T - switch_step(p, 0)) * p->sub * p->Kb * p->ae);
  }
  wait_b(g, edge);
  if (!p->stagger)
    for (int ki = 0; ki < p->nk; ki++) load_weights(g, bw, ki);
  /* The first block issues the next slab's copy with the next B piece (first_slab):
   * earlier, it would share HBM with the first slab's pieces its own rows wait for. In
   * a lead chunk the next slab is read a block later: its copy waits for the block's
   * end, so the next B piece has HBM to itself. */
  if (!first && !defer_b) issue_b(g);
  if (!first && !defer_a) issue(g, g->ap, &g->adesc, p->a.buf, g->abuf, a_bytes(p));
  if ((T > D && kb == POP_LAST) || (T <= D && ka == POP_LAST)) stage_free(g);

  /* Cuts of the steps [0, S): the pop side changes block at pop D; the K groups switch
   * (straight-line around it when staggered); the first block waits for each piece of
   * the first slab before its rows; a last step copies rows out as they are popped. */
  int64_t a0t = p->a0rows / p->sub;
  PopSide pop = pop_side(g, ka, p->lag, T - D);
  int64_t s = 0, c = 0; /* c: pops so far */
  while (s < S || c < T) {
    if (s < S && unrolled(p, s)) {
      /* A switch's steps, straight-line: the pops of them all first (a pop in a
       * straight-line stretch is matched with the pushes before it in the stretch, so
       * pops after pushes would wait for those instead of the results queued before),
       * then the pushes, with the group's weights between its last old push and its
       * first new one. The stretch ends before the pop side changes (the plan makes
       * D large enough). */
      int64_t e = s, n = 0;
      while (e + 1 < S && unrolled(p, e + 1)) e++;
      source(g);
      for (int64_t t = s; t <= e; t++)
        if (first) first_slab(g, t - k0);
      for (int64_t t = s; t <= e; t++)
        if (pops_at(p, t)) {
          step_pop(g, &pop, pop.tile + n, n);
          n++;
        }
      pop_skip(g, &pop, n);
      pop.tile += n;
      c += n;
      for (int64_t t = s; t <= e; t++) {
        for (int ki = 0; ki < p->nk; ki++)
          if (t == switch_step(p, ki)) load_weights(g, bw, ki);
        if (defer_b && t == R) issue_b(g);
        if (defer_a && t == R) issue(g, g->ap, &g->adesc, p->a.buf, g->abuf, a_bytes(p));
        PushSide ps = push_side(g, t, lhs, first ? -1 : old);
        step_push(g, &ps);
      }
      s = e + 1;
      continue;
    }
    if (first && s < S) first_slab(g, s - k0);
    if (c == D && D < T) {
      if (ka == POP_LAST) copy_out(g);
      pop = pop_side(g, kb, 0, 0);
    }
    /* pops this stretch may do: up to the pop side's change and the next copy out */
    int64_t climit = c < D ? D : T;
    if (c >= D && kb == POP_LAST) {
      int64_t end = D + ((c - D) / q + 1) * q;
      if (end < climit) climit = end;
    }
    int64_t s1;
    if (s >= S) { /* pushes all done: the pops left (none when caught up in time) */
      s1 = s + (climit - c);
    } else {
      s1 = S;
      int64_t cut = next_push_cut(p, s);
      if (cut < s1) s1 = cut;
      if (first) {
        int64_t a = s < k0 ? k0 : k0 + ((s - k0) / a0t + 1) * a0t;
        if (a < s1) s1 = a;
      }
      if (s + (climit - c) < s1) s1 = s + (climit - c);
    }
    PushSide ps = push_side(g, s, s < S ? lhs : -1, first || s >= S ? -1 : old);
    rows(g, &ps, &pop, s1 - s);
    c += s1 - s;
    s = s1;
    if (c > D && kb == POP_LAST && ((c - D) % q == 0 || c == T)) {
      if (fine) copy_fine(g, c - D - ((c - D) % q ? (c - D) % q : q), c - D);
      else copy_out(g);
    }
  }
  if (D >= T && ka == POP_LAST) copy_out(g);
  /* Staggered, the first group's last rows are pushed after the body: their pieces of
   * the first slab are waited for here. */
  for (int64_t r = S - k0; first && r < T; r++) first_slab(g, r);
  block_end(g, j);
}

/* The end of block j: the first block's copies ahead, the wait for the A copy the block
 * issued, the step to the next record. */
static void block_end(Gen *g, int64_t j) {
  const MmPlan *p = g->p;
  bool first = j == 0;
  /* The B pieces of the blocks after the next only once the first slab is in and the
   * next block's piece nearly: they are needed a block later. From here on each block
   * issues one, so the lead stays. */
  if (first && p->lead > 1) issue(g, g->ap, &g->adesc, p->a.buf, g->abuf, a_bytes(p));
  if (first)
    for (int64_t i = 1; i < p->depth && i < MM_B_AHEAD; i++)
      issue_b(g);
  /* The A copy this block issued: the next slab's rows are in before its first block.
   * A K step of the lead chunk waits for its blocks' copies after its last block (the
   * slab's first reader is the step after), with only those in flight, so the waits
   * take them whatever order they complete in. */
  int64_t nwait = 1;
  if (p->lead > 1 && g->blocks[j].ng < p->lead)
    nwait = g->blocks[j].np == p->lead * p->nnp - 1 ? p->lead * p->nnp : 0;
  for (int64_t i = 0; i < nwait; i++) wait(g, SEM_A, g->abuf);
  addi(g, g->rp, g->rec_bytes);
}

/* After the last block: the late groups' last pushes (staggered), the last block's
 * final pops, its last copies, and the waits for everything still in flight. */
static void drain(Gen *g) {
  const MmPlan *p = g->p;
  int64_t T = p->T, D = p->skew, j = g->nblocks;
  source(g);
  /* Two blocks behind (lag 2): the block before the last pops as a block would. */
  for (int64_t back = p->lag; back > 1; back--) {
    PopKind k = mm_pop_kind(g, j - back);
    if (k == POP_LAST) stage_free(g);
    PopSide pb = pop_side(g, k, back, 0);
    pb.loaded = back == p->lag && one_tile(p);
    PushSide none = push_side(g, T + p->xwin, -1, -1);
    rows(g, &none, &pb, T);
    if (k == POP_LAST) copy_out(g);
  }
  if (one_tile(p)) push_before(g);
  if (T <= D) stage_free(g);
  PopSide pop = pop_side(g, mm_pop_kind(g, j - 1), 1, T - D);
  int32_t old = -1;
  if (p->stagger) {
    old = rec_word(g, REC_A, 1);
    addi(g, old, (T - switch_step(p, 0)) * p->sub * p->Kb * p->ae);
  }
  for (int64_t s = 0; s < D;) {
    int64_t c0 = s, c1 = D - s < p->qd ? D : s + p->qd;
    while (s < c1) {
      int64_t s1 = c1;
      for (int ki = 0; ki < p->nk && p->stagger; ki++)
        if (switch_step(p, ki) > s && switch_step(p, ki) < s1) s1 = switch_step(p, ki);
      PushSide ps = push_side(g, s, -1, old);
      rows(g, &ps, &pop, s1 - s);
      s = s1;
    }
    copy_fine(g, T - D + c0, T - D + c1);
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
 * copies out differ). With lag 2 the second block pops the step before's last block:
 * it runs on its own too where that one's kind differs. */
static void kstep(Gen *g, int64_t j) {
  const MmPlan *p = g->p;
  int64_t n = g->width, k = j + 1, end = j + n;
  /* The last block of a last step copies in no tile operand pieces: it runs alone. */
  bool peel = n > 1 && (j + n == g->nblocks || (p->ntiles && mm_pop_kind(g, j) == POP_LAST));
  if (peel) end--;
  block(g, j);
  while (k < end && mm_pop_kind(g, k - p->lag) != mm_pop_kind(g, end - 1 - p->lag)) block(g, k++);
  loop_of(g, end - k, k, block_rest);
  if (peel) block(g, j + n - 1);
}

/* The wait for the prefetch part starting at K step kp of the chunk at block c0, if
 * one does (gen_matmul_dma.c, "Parts"): the parts land in order, so the first signal
 * past those of the parts before is this one's. It names the ring, so the scheduler
 * keeps the blocks' weight loads after it. */
static void part_wait(Gen *g, int64_t c0, int64_t kp) {
  if (kp > 0 && mm_part_step(g, c0, kp - 1) == kp) wait_on(g, g->pf_sem, g->bbuf);
}

/* The middle K steps (one kind: mid pops on both sides). */
static void kstep_mid(Gen *g, int64_t j) { kstep(g, j); }

/* The chunk starting at block c0, `width` column blocks per K step: kp 0, kp 1 (pops
 * kp 0's), the middle steps as a loop from the first whose blocks all pop a middle
 * step's (kp 2, later where lag 2 reaches back past a one-block step), the last step
 * (maybe padded). */
static void chunk(Gen *g, int64_t c0, int64_t width) {
  const MmPlan *p = g->p;
  int64_t nnp = width, nkp = p->nkp, kp = 1;
  g->width = width;
  kstep(g, c0);
  for (; kp < nkp - 1 && (kp < 2 || (kp - 1) * nnp < p->lag); kp++) {
    part_wait(g, c0, kp);
    kstep(g, c0 + kp * nnp);
  }
  while (kp < nkp - 1) { /* loops cut where a prefetch part starts */
    int64_t end = mm_part_step(g, c0, kp);
    if (end > nkp - 1) end = nkp - 1;
    part_wait(g, c0, kp);
    loop_of(g, end - kp, c0 + kp * nnp, kstep_mid);
    kp = end;
  }
  if (nkp >= 2) {
    part_wait(g, c0, nkp - 1);
    kstep(g, c0 + (nkp - 1) * nnp);
  }
}

static void chunk_body(Gen *g, int64_t c0) { chunk(g, c0, g->p->nnp); }

/* Whether the chunks starting at blocks c0 and c1 (n blocks each) pop blocks of the
 * same kinds, so one can stand for the other in a loop: with lag 2 the first block of
 * the chunk after the lead chunk may pop a block of another kind (or none). */
static bool same_pops(const Gen *g, int64_t c0, int64_t c1, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (mm_pop_kind(g, c0 + i - g->p->lag) != mm_pop_kind(g, c1 + i - g->p->lag)) return false;
  return true;
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
  mm_resident_plan(g, &plan);
  int32_t pf_sem = -1, pf_dmas = 0;
  int64_t pf_budget = tile_lower_prefetch_budget(cx, &pf_sem, &pf_dmas);
  if (pf_budget > 0) mm_prefetch_plan(g, &plan, pf_budget, pf_sem, pf_dmas);
  g->zero = tile_lower_zero(cx);
  g->c_apitch = li(g, p->Kb * p->ae);
  g->c_bpitch = li(g, p->Nb * p->be);
  g->c_tpitch = li(g, (int64_t)p->dim * 4);
  g->c_spitch = li(g, p->Nb * p->oe);
  for (int ni = 0; ni < p->nn && one_tile(p); ni++) g->acc_next[ni] = tile_mir_vreg(g->m);
  make_buffers(g);
  mm_prefetch_emit(g);
  load_rows(g);
  mm_epilogue_consts(cx, &plan);
  mm_tables(g);
  /* The padding is zeroed after the first copies are issued (they take HBM's time, the
   * stores the store slot's), unless the first block is the padded step: its copies
   * write the padded slots' valid part, which must land after the zeros. */
  bool zero_first = g->blocks[0].edge;
  if (zero_first) zero_k_padding(g);
  source(g);
  g->rp = li_buf(g, g->rec, 0);
  if (!g->share) g->bp = li_buf(g, g->bdesc.buf, 0);
  g->ap = li_buf(g, g->adesc.buf, 0);
  g->op = li_buf(g, g->odesc.buf, 0);
  if (p->ntiles) g->ip = li_buf(g, g->idesc.buf, 0);
  /* Start-up: the first B piece and the first piece of the first slab alone (the first
   * push waits for both), the placeholder copies out; block 0 issues the rest. */
  g->a0 = li_buf(g, g->a0desc.buf, 0);
  issue_b(g);
  issue(g, g->a0, &g->a0desc, p->a.buf, g->abuf, a0_bytes(p));
  for (int64_t i = 0; i < 2 * p->nout; i++) issue(g, g->op, &g->odesc, g->scratch, g->scratch, 4);
  if (!zero_first) zero_k_padding(g);

  int64_t per_chunk = p->nkp * p->nnp, c = p->lead * per_chunk, left = p->chunks - p->lead;
  /* the first chunk (spanning lead column chunks), the middle ones as a loop (from the
   * first that pops as the ones after it), the last chunk on its own: it holds the
   * final block */
  chunk(g, 0, p->lead * p->nnp);
  for (; left > 2 && !same_pops(g, c, c + per_chunk, per_chunk); left--, c += per_chunk)
    chunk(g, c, p->nnp);
  loop_of(g, left - 1, c, chunk_body);
  if (left > 0) chunk(g, c + (left - 1) * per_chunk, p->nnp);
  drain(g);
  mm_tables_free(g);
  return true;
}
