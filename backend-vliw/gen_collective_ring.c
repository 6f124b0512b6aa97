/* Ring steps of the collectives: remote DMAs between neighbours on one torus axis, the
 * semaphores that say a chunk has landed, and the VPU reduction of a received chunk
 * into this chip's partial result (include/tile/lower.h, gen_collective_int.h).
 *
 * Every chip runs the same code (SPMD). Who it talks to comes from `coord` and
 * `chipid` at run time: the next chip on axis k is the one whose coordinate is
 * (q + 1) mod p, i.e. chipid + stride, minus p * stride at the end of the axis. On an
 * axis with wraparound that is one hop; without, the step from the last chip back to
 * the first routes straight across the axis (the emulator's dimension-order routing),
 * which is slower but still correct.
 *
 * Ring reduce-scatter over p chips (chip q, chunks of C bytes, step s = 0 .. p-2):
 * send the partial of chunk (q - 1 - s) mod p to the next chip's receive slot s; wait
 * for the previous chip's partial of chunk (q - 2 - s) mod p in my slot s; combine it
 * into my chunk (q - 2 - s) mod p, which the next step sends on. After step p-2 my
 * chunk q holds every chip's contribution. All-gather: step s sends chunk (q - s) mod p
 * (complete) to the next chip's slot s and copies the one arriving in my slot s, chunk
 * (q - 1 - s) mod p, into place; the next step forwards it. A ring toward -coordinate
 * is the same with the chip before as "next" and position (p - q) mod p; the two
 * directions of a level issue their sends first in each step, so both links carry
 * data at once.
 *
 * Semaphores: a chip receives only from the previous chip of a ring, one per axis and
 * direction, and each such sender signals one semaphore of a band the lowering sets
 * aside for the whole function (tile_coll_sem_band; no other group numbers its
 * semaphores there). A fast peer may signal before this chip reaches the collective, or
 * while it still finishes the one before; the count stays right because one sender's
 * transfers take one route and arrive in the order they were sent (links are FIFO), so
 * when a wait finds the count positive, every earlier transfer from that sender has
 * landed. Receive buffers are written once per run, so an early arrival overwrites
 * nothing. Completions of this chip's own sends count on ordinary semaphores of the
 * group, which drain before it ends. */
#include <string.h>

#include "dma_desc.h"
#include "gen_collective_int.h"

/* ---- scalar code ---- */

static int32_t add_inst(Coll *c, TileMirInst in) { return tile_mir_add(c->m, in); }

int32_t coll_li(Coll *c, int64_t imm) {
  int32_t r = tile_mir_sreg(c->m);
  add_inst(c, tile_mir_inst(TILE_MOP_LI, r, 0, 0, 0, (int32_t)imm));
  return r;
}

int32_t coll_addr(Coll *c, int32_t buf, int64_t off) {
  int32_t r = tile_mir_sreg(c->m);
  TileMirInst li = tile_mir_inst(TILE_MOP_LI, r, 0, 0, 0, (int32_t)off);
  li.imm_buf = buf;
  add_inst(c, li);
  return r;
}

void coll_rr(Coll *c, int op, int32_t d, int32_t a, int32_t b) {
  add_inst(c, tile_mir_inst(op, d, a, b, 0, 0));
}

void coll_ri(Coll *c, int op, int32_t d, int32_t a, int64_t imm) {
  add_inst(c, tile_mir_inst(op, d, a, 0, 0, (int32_t)imm));
}

int32_t coll_rank_sum(Coll *c, int dir, const int64_t *unit) {
  int32_t sum = coll_li(c, 0);
  for (int k = 0; k < c->naxes; k++) {
    if (!unit[k]) continue;
    int32_t t = tile_mir_sreg(c->m);
    coll_ri(c, TILE_MOP_MULI, t, c->pos[dir][k], unit[k]);
    coll_rr(c, TILE_MOP_ADD, sum, sum, t);
  }
  return sum;
}

/* off := (off - chunk) mod region, for off in [0, region). */
void coll_step_back(Coll *c, int32_t off, int64_t chunk, int64_t region) {
  int32_t lt = tile_mir_sreg(c->m), w = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_ADDI, off, off, -chunk);
  coll_rr(c, TILE_MOP_SLT, lt, off, tile_lower_zero(c->cx));
  coll_ri(c, TILE_MOP_MULI, w, lt, region);
  coll_rr(c, TILE_MOP_ADD, off, off, w);
}

/* off := (off + chunk) mod region, for off in [0, region). */
void coll_step_on(Coll *c, int32_t off, int64_t chunk, int64_t region) {
  int32_t last = coll_li(c, region - chunk - 1), past = tile_mir_sreg(c->m);
  int32_t w = tile_mir_sreg(c->m);
  coll_rr(c, TILE_MOP_SLT, past, last, off); /* off + chunk >= region */
  coll_ri(c, TILE_MOP_MULI, w, past, -region);
  coll_ri(c, TILE_MOP_ADDI, off, off, chunk);
  coll_rr(c, TILE_MOP_ADD, off, off, w);
}

void coll_setup(Coll *c) {
  TileMir *m = c->m;
  int32_t zero = tile_lower_zero(c->cx);
  c->chipid = tile_mir_sreg(m);
  add_inst(c, tile_mir_inst(TILE_MOP_CHIPID, c->chipid, 0, 0, 0, 0));
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *a = &c->ax[k];
    int32_t q = c->pos[0][k] = tile_mir_sreg(m);
    add_inst(c, tile_mir_inst(TILE_MOP_COORD, q, 0, 0, 0, a->dim));
    /* Toward +: next = chipid + stride, less p * stride at the last coordinate. */
    int32_t last = coll_li(c, a->p - 1), at_end = tile_mir_sreg(m), back = tile_mir_sreg(m);
    coll_rr(c, TILE_MOP_SEQ, at_end, q, last);
    coll_ri(c, TILE_MOP_MULI, back, at_end, -a->p * a->stride);
    c->next[0][k] = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_ADDI, c->next[0][k], c->chipid, a->stride);
    coll_rr(c, TILE_MOP_ADD, c->next[0][k], c->next[0][k], back);
    /* Toward -: next = chipid - stride, plus p * stride at coordinate 0; the ring
     * position is (p - q) mod p, so that the next chip is one position on. */
    int32_t at_start = tile_mir_sreg(m), fwd = tile_mir_sreg(m);
    coll_rr(c, TILE_MOP_SEQ, at_start, q, zero);
    coll_ri(c, TILE_MOP_MULI, fwd, at_start, a->p * a->stride);
    c->next[1][k] = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_ADDI, c->next[1][k], c->chipid, -a->stride);
    coll_rr(c, TILE_MOP_ADD, c->next[1][k], c->next[1][k], fwd);
    int32_t wrap = tile_mir_sreg(m);
    c->pos[1][k] = coll_li(c, a->p);
    coll_rr(c, TILE_MOP_SUB, c->pos[1][k], c->pos[1][k], q);
    coll_ri(c, TILE_MOP_MULI, wrap, at_start, -a->p);
    coll_rr(c, TILE_MOP_ADD, c->pos[1][k], c->pos[1][k], wrap);
  }
  /* Sends and local copies complete on this chip: ordinary semaphores of the group.
   * Local copies are waited for one at a time, so one semaphore counts them all. */
  for (int d = 0; d < 2; d++) c->sem_sent[d] = tile_mir_sem(m);
  c->sem_local = tile_mir_sem(m);
}

/* The semaphore that counts arrivals from the previous chip of axis k, direction d:
 * one of the band the lowering sets aside in a mesh function (see the top). */
static int32_t recv_sem(Coll *c, int d, int k) {
  int32_t band = tile_coll_sem_band(c->cx->target);
  return c->cx->sems_base - band + 2 * c->ax[k].dim + d;
}

/* ---- remote descriptors ---- */

TileDmaShape coll_flat(int64_t bytes) {
  return (TileDmaShape){.count0 = bytes, .count1 = 1, .count2 = 1};
}

CollAround coll_around(const TileTensorRef *t, int64_t dim) {
  CollAround a = {1, t->dims[dim], tile_lower_elem_bytes((TileElem)t->elem)};
  for (int64_t i = 0; i < dim; i++) a.outer *= t->dims[i];
  for (int i = (int)dim + 1; i < t->rank; i++) a.inner_bytes *= t->dims[i];
  return a;
}

/* A descriptor moving `bytes` from src_buf to dst_buf on the chip in peer_reg (-1: this
 * chip), signalling sent_sem here and dst_sem (-1: none) there when it lands: the local
 * descriptor of lower_dma.c with the arrival semaphore and the peer added. The address
 * words change per transfer (`sst`, tile_dma_issue); the peer is stored once. */
void coll_remote_send(Coll *c, const CollRemote *r, int32_t src_reg, int32_t dst_reg) {
  tile_dma_issue(c->cx, &r->site, src_reg, 0, dst_reg, 0);
}

static CollRemote remote_make(Coll *c, int32_t src_buf, int32_t dst_buf, int32_t peer_reg,
                              TileDmaShape shape, int32_t hops, int32_t dst_sem,
                              int32_t sent_sem) {
  TileMir *m = c->m;
  const TileTarget *t = c->cx->target;
  CollRemote r = {.site = {.sem = sent_sem, .src_buf = src_buf, .dst_buf = dst_buf},
                  .dst_sem = dst_sem};
  r.site.bytes = shape.count0 * shape.count1 * shape.count2;
  if (peer_reg < 0)
    r.site.est_cycles = tile_lower_dma_cycles(t, r.site.bytes);
  else
    r.site.est_cycles = (int32_t)(t->dma_issue_cycles + hops * tile_target_hop_cycles(t) +
                                  tile_target_xfer_cycles(t, r.site.bytes, t->ici_bw));
  char name[64];
  snprintf(name, sizeof name, "coll%d.%.40s", (int)m->nbufs, m->bufs[dst_buf].name);
  r.site.desc = tile_dma_desc_buffer(m, name, src_buf, 0, dst_buf, 0, &shape, sent_sem);
  if (dst_sem >= 0) {
    uint8_t *w = m->bufs[r.site.desc].init + DESC_DST_SEM * 4;
    for (int i = 0; i < 4; i++) w[i] = (uint8_t)((uint32_t)dst_sem >> (8 * i));
  }
  r.site.desc_reg = coll_addr(c, r.site.desc, 0);
  if (peer_reg < 0) return r; /* a local copy keeps peer -1 */
  m->bufs[dst_buf].remote = true; /* peers write it: layout keeps it from the start */
  TileMirInst st = tile_mir_inst(TILE_MOP_SST, peer_reg, r.site.desc_reg, 0, 0, DESC_PEER * 4);
  tile_mir_mem(&st, r.site.desc, TILE_MIR_WRITE, 0);
  add_inst(c, st);
  return r;
}

/* Waits for the transfer arriving from the sender of this level: after it, the
 * receive buffer may be read. */
static void remote_wait_arrival(Coll *c, const CollRemote *r) {
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, r->dst_sem, 1);
  tile_mir_mem(&in, r->site.dst_buf, TILE_MIR_WRITE, 0);
  add_inst(c, in);
}

/* Waits for this chip's own send to land, so DMAs in flight stay few and the
 * descriptor may be rewritten. */
static void remote_wait_sent(Coll *c, const CollRemote *r) {
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, r->site.sem, 1);
  tile_mir_mem(&in, r->site.desc, TILE_MIR_WRITE, 0);
  add_inst(c, in);
}

/* ---- the phases ---- */

/* dst[i] := dst[i] OP src[i] over `bytes` (a whole number of tiles) at the addresses in
 * the registers (which it leaves moved past the data); with vop < 0 a plain copy. */
static void reduce_into(Coll *c, const CollReduce *r, int vop, int32_t src_buf, int32_t src,
                        int32_t dst_buf, int32_t dst, int64_t bytes) {
  TileMir *m = c->m;
  int64_t tiles = bytes / r->tile_bytes;
  tile_mir_loop_begin(m, (int32_t)tiles, TILE_MIR_PIPELINE);
  int32_t a = tile_mir_vreg(m), s = a;
  TileMirInst ld = tile_mir_inst(r->load, a, src, r->stride_reg, 0, 0);
  tile_mir_mem(&ld, src_buf, TILE_MIR_READ, 0);
  add_inst(c, ld);
  if (vop >= 0) {
    int32_t b = tile_mir_vreg(m);
    s = tile_mir_vreg(m);
    ld = tile_mir_inst(r->load, b, dst, r->stride_reg, 0, 0);
    tile_mir_mem(&ld, dst_buf, TILE_MIR_READ, 0);
    add_inst(c, ld);
    add_inst(c, tile_mir_inst(vop, s, b, a, 0, 0));
  }
  TileMirInst st = tile_mir_inst(r->store, s, dst, r->stride_reg, 0, 0);
  tile_mir_mem(&st, dst_buf, TILE_MIR_WRITE, 0);
  add_inst(c, st);
  coll_ri(c, TILE_MOP_ADDI, src, src, r->tile_bytes);
  coll_ri(c, TILE_MOP_ADDI, dst, dst, r->tile_bytes);
  tile_mir_loop_end(m);
}

/* Per-ring state of one level's step loop. */
typedef struct Step {
  CollRemote rm;
  int32_t slots;         /* receive buffer, p - 1 chunks */
  int32_t off, slot;     /* sregs: the chunk sent next; this step's receive slot */
  int32_t src, in, at;   /* sregs for the step's addresses */
} Step;

/* The receive buffer, descriptor and first offsets of each ring of level k; `back`
 * makes step 0 send chunk pos - 1 (reduce-scatter) instead of chunk pos. */
static void steps_begin(Coll *c, const CollRing *rings, int n, Step *st, const char *phase,
                        bool back) {
  TileMir *m = c->m;
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    int k = g->k;
    const CollAxis *a = &c->ax[k];
    char name[64];
    snprintf(name, sizeof name, "%s.%s%c.%d", phase, a->name, g->dir ? '-' : '+', (int)m->nbufs);
    st[i].slots = tile_mir_buffer(m, name, TILE_SPACE_VMEM, g->chunk * (a->p - 1), 1, 64);
    /* The estimate counts one hop: every step of a wrapping ring, all but the closing
     * step of a line. */
    st[i].rm = remote_make(c, g->work, st[i].slots, c->next[g->dir][k], coll_flat(g->chunk), 1,
                           recv_sem(c, g->dir, k), c->sem_sent[g->dir]);
    st[i].off = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_MULI, st[i].off, c->pos[g->dir][k], g->chunk);
    if (back) coll_step_back(c, st[i].off, g->chunk, g->chunk * a->p);
    st[i].slot = coll_addr(c, st[i].slots, 0);
    st[i].src = tile_mir_sreg(m);
    st[i].in = tile_mir_sreg(m);
    st[i].at = tile_mir_sreg(m);
  }
}

/* Every ring's send of this step first, so the directions overlap on their links. */
static void steps_send(Coll *c, const CollRing *rings, int n, Step *st) {
  for (int i = 0; i < n; i++) {
    coll_rr(c, TILE_MOP_ADD, st[i].src, rings[i].base, st[i].off);
    coll_remote_send(c, &st[i].rm, st[i].src, st[i].slot);
  }
}

/* Combines (or, vop < 0, copies) what arrived in each ring's slot into its chunk, which
 * the next step sends on. */
static void steps_receive(Coll *c, const CollRing *rings, int n, Step *st, const CollReduce *r,
                          int vop) {
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    coll_step_back(c, st[i].off, g->chunk, g->chunk * c->ax[g->k].p);
    remote_wait_arrival(c, &st[i].rm);
    coll_rr(c, TILE_MOP_MOV, st[i].in, st[i].slot, 0);
    coll_rr(c, TILE_MOP_ADD, st[i].at, g->base, st[i].off);
    reduce_into(c, r, vop, st[i].slots, st[i].in, g->work, st[i].at, g->chunk);
  }
  for (int i = 0; i < n; i++) {
    remote_wait_sent(c, &st[i].rm);
    coll_ri(c, TILE_MOP_ADDI, st[i].slot, st[i].slot, rings[i].chunk);
  }
}

void coll_ring_reduce_scatter(Coll *c, const CollRing *rings, int n, const CollReduce *r) {
  int64_t p = c->ax[rings[0].k].p;
  if (p < 2) return; /* one chip: its chunk is the whole answer */
  Step st[COLL_MAX_RINGS];
  steps_begin(c, rings, n, st, "rs", true);
  tile_mir_loop_begin(c->m, (int32_t)(p - 1), 0);
  steps_send(c, rings, n, st);
  steps_receive(c, rings, n, st, r, r->vop);
  tile_mir_loop_end(c->m);
}

void coll_ring_all_gather(Coll *c, const CollRing *rings, int n, const CollReduce *r) {
  int64_t p = c->ax[rings[0].k].p;
  if (p < 2) return;
  Step st[COLL_MAX_RINGS];
  steps_begin(c, rings, n, st, "ag", false);
  tile_mir_loop_begin(c->m, (int32_t)(p - 1), 0);
  steps_send(c, rings, n, st);
  steps_receive(c, rings, n, st, r, -1);
  tile_mir_loop_end(c->m);
}

void coll_ring_gather_in_place(Coll *c, int k, const CollRing *rings, int n,
                               const TileDmaShape *shapes) {
  TileMir *m = c->m;
  const CollAxis *a = &c->ax[k];
  if (a->p < 2) return;
  CollRemote rm[2];
  int32_t off[2], at[2];
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    rm[i] = remote_make(c, g->work, g->work, c->next[g->dir][k], shapes[i], 1,
                        recv_sem(c, g->dir, k), c->sem_sent[g->dir]);
    off[i] = tile_mir_sreg(m);
    at[i] = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_MULI, off[i], c->pos[0][k], g->chunk); /* step 0 sends my chunk */
  }
  tile_mir_loop_begin(m, (int32_t)(a->p - 1), 0);
  for (int i = 0; i < n; i++) {
    coll_rr(c, TILE_MOP_ADD, at[i], rings[i].base, off[i]);
    coll_remote_send(c, &rm[i], at[i], at[i]);
  }
  /* Chunks sit by coordinate here, so a ring toward - receives chunk q + 1 + s. */
  for (int i = 0; i < n; i++) {
    if (rings[i].dir) coll_step_on(c, off[i], rings[i].chunk, rings[i].chunk * a->p);
    else coll_step_back(c, off[i], rings[i].chunk, rings[i].chunk * a->p);
    remote_wait_arrival(c, &rm[i]);
  }
  for (int i = 0; i < n; i++) remote_wait_sent(c, &rm[i]);
  tile_mir_loop_end(m);
}

CollRemote coll_remote(Coll *c, int k, int dir, int32_t src_buf, int32_t dst_buf,
                       TileDmaShape shape) {
  return remote_make(c, src_buf, dst_buf, c->next[dir][k], shape, 1, recv_sem(c, dir, k),
                     c->sem_sent[dir]);
}

void coll_remote_wait(Coll *c, const CollRemote *r) {
  remote_wait_sent(c, r);
  remote_wait_arrival(c, r);
}

CollRemote coll_copy_site(Coll *c, int32_t src_buf, int32_t dst_buf, TileDmaShape shape) {
  return remote_make(c, src_buf, dst_buf, -1, shape, 0, -1, c->sem_local);
}

void coll_copy(Coll *c, const CollRemote *s, int32_t src_reg, int32_t dst_reg) {
  coll_remote_send(c, s, src_reg, dst_reg);
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, s->site.sem, 1);
  tile_mir_mem(&in, s->site.desc, TILE_MIR_WRITE, 0);
  tile_mir_mem(&in, s->site.src_buf, TILE_MIR_WRITE, 0);
  tile_mir_mem(&in, s->site.dst_buf, TILE_MIR_WRITE, 0);
  add_inst(c, in);
}

void coll_local_copy(Coll *c, int32_t src_buf, int64_t src_off, int32_t src_reg,
                     int32_t dst_buf, int64_t dst_off, int32_t dst_reg, TileDmaShape shape) {
  CollRemote s = coll_copy_site(c, src_buf, dst_buf, shape);
  coll_copy(c, &s, src_reg >= 0 ? src_reg : coll_addr(c, src_buf, src_off),
            dst_reg >= 0 ? dst_reg : coll_addr(c, dst_buf, dst_off));
}

void coll_exchange(Coll *c, int k, int dir, int32_t src_buf, int32_t src_reg,
                   int32_t dst_buf, int32_t dst_reg, int64_t bytes) {
  CollRemote rm = remote_make(c, src_buf, dst_buf, c->next[dir][k], coll_flat(bytes), 1,
                          recv_sem(c, dir, k), c->sem_sent[dir]);
  coll_remote_send(c, &rm, src_reg, dst_reg);
  remote_wait_sent(c, &rm);
  remote_wait_arrival(c, &rm);
}
