/* The matmul generator's DMA queue: the static list of blocks and of the pieces they
 * read, the VMEM rings the pieces land in, and when each copy is issued and waited for.
 *
 * Pieces are queued in the order blocks first read them; a piece is issued as soon as
 * its ring slot is free (the previous occupant's last read is emitted) and few enough
 * copies are in flight: two until the first block starts (so the first block's inputs
 * do not share HBM with later ones), then more, so HBM stays busy while the MXUs work.
 * In-flight counts are static upper bounds (a copy counts until its wait is emitted),
 * so the machine's limit on DMAs in flight always holds.
 *
 * Every copy has its own descriptor whose addresses layout fills in, so an issue is one
 * `dma` with nothing stored before it (no descriptor word can still be in flight when
 * the next copy of the same kind reads it). The copies of a ring are alike and signal
 * one semaphore, so they complete in issue order and are waited for in that order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_matmul_emit.h"

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "tilec: out of memory lowering a matmul\n");
    abort();
  }
  return p;
}

static int32_t li_buf(Gen *g, int32_t buf, int64_t off) {
  int32_t r = tile_mir_sreg(g->m);
  TileMirInst in = tile_mir_inst(TILE_MOP_LI, r, 0, 0, 0, (int32_t)off);
  in.imm_buf = buf;
  tile_mir_add(g->m, in);
  return r;
}

/* Descriptor words (docs/emulator.md, "DMA descriptors"). */
enum { W_SRC_SPACE, W_DST_SPACE, W_SRC_LO, W_SRC_HI, W_DST_LO, W_DST_HI, W_COUNT0,
       W_COUNT1, W_COUNT2, W_SRC_STRIDE1, W_SRC_STRIDE2, W_DST_STRIDE1, W_DST_STRIDE2,
       W_PEER, W_SRC_SEM, W_DST_SEM, W_WORDS };

static void put_word(uint8_t *bytes, int word, uint32_t v) {
  for (int i = 0; i < 4; i++) bytes[word * 4 + i] = (uint8_t)(v >> (8 * i));
}

Copy mm_copy(Gen *g, int32_t src_buf, int64_t src_off, int32_t dst_buf, int64_t dst_off,
             TileDmaShape sh, int32_t sem) {
  TileMir *m = g->m;
  Copy c = {.src_buf = src_buf, .dst_buf = dst_buf, .sem = sem};
  c.est = tile_lower_dma_cycles(tile_lower_target(g->cx), sh.count0 * sh.count1 * sh.count2);
  c.desc = tile_mir_buffer(m, "matmul.desc", TILE_SPACE_SMEM, W_WORDS * 4, 1, 4);
  uint8_t w[W_WORDS * 4];
  memset(w, 0, sizeof w);
  put_word(w, W_SRC_SPACE, m->bufs[src_buf].space);
  put_word(w, W_DST_SPACE, m->bufs[dst_buf].space);
  put_word(w, W_COUNT0, (uint32_t)sh.count0);
  put_word(w, W_COUNT1, (uint32_t)sh.count1);
  put_word(w, W_COUNT2, 1);
  put_word(w, W_SRC_STRIDE1, (uint32_t)(int32_t)sh.src_stride1);
  put_word(w, W_DST_STRIDE1, (uint32_t)(int32_t)sh.dst_stride1);
  put_word(w, W_PEER, UINT32_MAX);
  put_word(w, W_SRC_SEM, (uint32_t)sem);
  put_word(w, W_DST_SEM, UINT32_MAX);
  tile_mir_data(m, c.desc, w, sizeof w);
  tile_mir_reloc(m, c.desc, W_SRC_LO * 4, src_buf, src_off, false);
  tile_mir_reloc(m, c.desc, W_SRC_HI * 4, src_buf, src_off, true);
  tile_mir_reloc(m, c.desc, W_DST_LO * 4, dst_buf, dst_off, false);
  tile_mir_reloc(m, c.desc, W_DST_HI * 4, dst_buf, dst_off, true);
  return c;
}

void mm_copy_issue(Gen *g, const Copy *c) {
  int32_t d = li_buf(g, c->desc, 0);
  TileMirInst in = tile_mir_inst(TILE_MOP_DMA, 0, d, 0, 0, 0);
  in.est_cycles = c->est;
  tile_mir_mem(&in, c->desc, TILE_MIR_READ, 0);
  tile_mir_mem(&in, c->src_buf, TILE_MIR_READ, 0);
  tile_mir_mem(&in, c->dst_buf, TILE_MIR_WRITE, 0);
  tile_mir_add(g->m, in);
}

void mm_copy_wait(Gen *g, const Copy *c) {
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, c->sem, 1);
  tile_mir_mem(&in, c->src_buf, TILE_MIR_WRITE, 0);
  tile_mir_mem(&in, c->dst_buf, TILE_MIR_WRITE, 0);
  tile_mir_add(g->m, in);
}

int32_t mm_piece_addr(Gen *g, int32_t i, int64_t off) {
  const Piece *pc = &g->pieces[i];
  const Ring *r = &g->ring[pc->ring];
  return li_buf(g, r->bufs[pc->slot], off);
}

static int32_t add_piece(Gen *g, int ring, int64_t src_off) {
  Ring *r = &g->ring[ring];
  Piece *pc = &g->pieces[g->npieces];
  pc->ring = ring;
  pc->src_off = src_off;
  pc->slot = r->used++ % r->nslots;
  pc->copy = mm_copy(g, r->src_buf, src_off, r->bufs[pc->slot], 0, r->shape, r->sem);
  return g->npieces++;
}

void mm_dma_plan(Gen *g) {
  const MmPlan *p = g->p;
  int64_t groups = p->chunks * p->nkp;
  g->nblocks = groups * p->nnp;
  g->blocks = xcalloc((size_t)g->nblocks, sizeof(Block));
  g->pieces = xcalloc((size_t)(groups * (p->ra + p->nnp)), sizeof(Piece));
  int64_t k = 0, nlast = 0;
  for (int64_t b = 0; b < p->batch; b++)
    for (int64_t mc = 0; mc < p->MC; mc++)
      for (int64_t ng = 0; ng < p->NG; ng++) {
        int64_t ms = p->MC > 1 ? (mc * p->Mb < p->M - p->Mb ? mc * p->Mb : p->M - p->Mb) : 0;
        int64_t ns = p->NG > 1 ? (ng * p->Ng < p->N - p->Ng ? ng * p->Ng : p->N - p->Ng) : 0;
        for (int64_t kp = 0; kp < p->nkp; kp++) {
          bool edge = kp == p->nkp - 1 && p->Kr < p->Kb;
          int64_t a_off = (b * p->M * p->K + ms * p->K + kp * p->Kb) * p->ae;
          int64_t b_off = ((p->b_batched ? b * p->K * p->N : 0) + kp * p->Kb * p->N + ns) * p->be;
          int32_t a0 = -1;
          for (int64_t np = 0; np < p->nnp; np++) {
            Block *bk = &g->blocks[k++];
            int64_t bmax = p->Nv > p->Nb ? p->Nv - p->Nb : 0;
            *bk = (Block){.b = b, .mc = mc, .ng = ng, .kp = kp, .np = np, .mstart = ms,
                          .nstart = ns, .bcol = np * p->Nb < bmax ? np * p->Nb : bmax,
                          .first = kp == 0, .last = kp == p->nkp - 1, .edge = edge};
            bk->bpiece = add_piece(g, edge ? RING_B_EDGE : RING_B, b_off + bk->bcol * p->be);
            if (np == 0) {
              for (int64_t r = 0; r < p->ra; r++) {
                int32_t i = add_piece(g, edge ? RING_A_EDGE : RING_A,
                                      a_off + r * p->Mr * p->K * p->ae);
                if (r == 0) a0 = i;
              }
            }
            bk->apiece0 = a0;
            if (bk->last) bk->stage_slot = (int32_t)(nlast++ % 2);
          }
        }
      }
  g->out_copy = xcalloc((size_t)(nlast ? nlast : 1), sizeof(Copy));
  g->out_slot_dma = xcalloc(2, sizeof(int32_t));
  g->out_slot_dma[0] = g->out_slot_dma[1] = -1;
  for (int i = 0; i < RING_COUNT; i++)
    if (g->ring[i].live) {
      g->ring[i].occupant = xcalloc((size_t)g->ring[i].nslots, sizeof(int32_t));
      for (int64_t s = 0; s < g->ring[i].nslots; s++) g->ring[i].occupant[s] = -1;
    }
}

static void wait_out_oldest(Gen *g) {
  mm_copy_wait(g, &g->out_copy[g->out_waited]);
  g->out_waited++;
}

static int32_t inflight(const Gen *g) { return g->inflight_in + g->out_issued - g->out_waited; }

/* Issues the next queued piece if its slot is free; false if not. */
static bool issue_next(Gen *g) {
  if (g->next_issue >= g->npieces) return false;
  Piece *pc = &g->pieces[g->next_issue];
  Ring *r = &g->ring[pc->ring];
  int32_t prev = r->occupant[pc->slot];
  if (prev >= 0 && !g->pieces[prev].released) return false;
  int32_t hard = tile_lower_target(g->cx)->dma_outstanding;
  while (inflight(g) >= hard && g->out_waited < g->out_issued) wait_out_oldest(g);
  if (inflight(g) >= hard) return false;
  mm_copy_issue(g, &pc->copy);
  r->occupant[pc->slot] = g->next_issue;
  pc->issued = true;
  g->inflight_in++;
  g->next_issue++;
  return true;
}

void mm_dma_pump(Gen *g) {
  const TileTarget *t = tile_lower_target(g->cx);
  int32_t soft = g->started ? t->dma_outstanding - 3 : 2;
  if (soft > 8) soft = 8;
  if (soft < 1) soft = 1;
  while (g->inflight_in < soft && issue_next(g)) {
  }
}

/* Waits for piece i: first for every earlier piece of its ring (one site, in order). */
static void wait_piece(Gen *g, int32_t i) {
  for (int32_t j = 0; j <= i; j++) {
    Piece *q = &g->pieces[j];
    if (q->ring != g->pieces[i].ring || q->waited) continue;
    mm_copy_wait(g, &q->copy);
    q->waited = true;
    g->inflight_in--;
  }
}

void mm_dma_need(Gen *g, int32_t i) {
  Piece *pc = &g->pieces[i];
  if (pc->waited) return;
  while (!pc->issued && !issue_next(g)) {
    /* The queue is ordered by first use, so a full slot holds a piece read before
     * piece i and released by now; only the in-flight limit can hold the queue back:
     * wait for the oldest copy in flight, which is needed no later than piece i. */
    int32_t j = 0;
    while (j < g->next_issue && g->pieces[j].waited) j++;
    if (j >= g->next_issue) break;
    wait_piece(g, j);
  }
  wait_piece(g, i);
}

void mm_dma_release(Gen *g, int32_t i) { g->pieces[i].released = true; }

void mm_dma_stage_free(Gen *g, int32_t s) {
  int32_t d = g->out_slot_dma[s];
  while (d >= 0 && g->out_waited <= d) wait_out_oldest(g);
}

void mm_dma_out(Gen *g, const Block *k) {
  const MmPlan *p = g->p;
  const TileTarget *t = tile_lower_target(g->cx);
  while (inflight(g) >= t->dma_outstanding && g->out_waited < g->out_issued) wait_out_oldest(g);
  Copy *c = &g->out_copy[g->out_issued];
  *c = mm_copy(g, g->stage[k->stage_slot], 0, p->out.buf,
               ((k->b * p->M + k->mstart) * p->N + k->nstart + k->bcol) * p->oe, g->out_shape,
               g->out_sem);
  mm_copy_issue(g, c);
  g->out_slot_dma[k->stage_slot] = g->out_issued++;
}
