/* Ring steps of the collectives: remote DMAs between neighbours on one torus axis, the
 * semaphores that say a chunk has landed, and the VPU reduction of a received chunk
 * into this chip's partial result (include/tile/lower.h, gen_collective_int.h). The
 * all-gathers, which work in place, are in gen_collective_gather.c.
 *
 * Every chip runs the same code (SPMD). Who it talks to comes from `coord` and
 * `chipid` at run time: the next chip on axis k is the one whose position is
 * (q + 1) mod p, i.e. chipid + stride, minus p * stride at the end of the axis. On a
 * share of a dim (several axes on it) the stride is inner times the dim's, and the
 * ring stays in its block of p * inner coordinates. On a whole dim with wraparound a
 * step is one hop; on any other ring the step from the last chip back to the first
 * routes across the dim (the emulator's dimension-order routing), which is slower but
 * still correct.
 *
 * Ring reduce-scatter over p chips (chip q, chunks of C bytes, step s = 0 .. p-2):
 * send the partial of chunk (q - 1 - s) mod p to the next chip's receive slot s; wait
 * for the previous chip's partial of chunk (q - 2 - s) mod p in my slot s; combine it
 * into my chunk (q - 2 - s) mod p, which the next step sends on. After step p-2 my
 * chunk q holds every chip's contribution. A ring toward -coordinate
 * is the mirror image, with the chip before as "next" and chunks q + 1 + s, q + 2 + s:
 * chunks lie by coordinate in both directions, so callers lay out data the same way
 * for either. With by_position a ring toward - indexes chunks by its ring position
 * (p - q) mod p instead and steps like one toward +, which is all_reduce's layout and
 * order of sums. Several rings (directions, axes) run in one step loop.
 *
 * Pipelining: each step's chunk goes as m sub-chunks, and each is combined and sent on
 * as soon as it arrives, while the rest of the chunk still crosses the link, so a link
 * idles for neither the hop latency nor the VPU between steps (sub_count). A level
 * whose data lies in HBM sends its first chunk from there (first_send), so its first
 * transfers wait for no copy; the combining loops take 8 tiles an iteration
 * (gen_collective_reduce.c), so the VPU work between an arrival and the send on is short.
 * Consecutive levels overlap: the next level's first sends go during this level's
 * last step, as soon as the chunk they read is final (Level, GLevel below), instead of
 * a hop after the level's last arrival. A level whose chunks come from HBM may combine
 * each arrival in its receive slot (CollRing.in_slots) and send it on from there, so
 * it needs one chunk of VMEM beside its slots rather than a working copy of its region.
 *
 * Scheduling: the scheduler holds a `sem.wait` that names a buffer some earlier `dma`
 * touched until that DMA's estimated completion (a static gap, paid again after any
 * run-time stall). The waits here name only what orders them: a wait for an arrival
 * names nothing (the loop that reads the slot starts after it), a wait for a send
 * names its descriptor, whose next address words are stored after it.
 *
 * Semaphores: a chip receives only from the previous chip of a ring, one per axis and
 * direction, and each such sender signals one semaphore of a band the lowering sets
 * aside for the whole function (tile_coll_sem_band; no other group numbers its
 * semaphores there; the axis's slot, CollAxis.slot, keeps the rings of axes that share
 * a dim apart). A fast peer may signal before this chip reaches the collective, or
 * while it still finishes the one before; the count stays right because one sender's
 * transfers take one route and arrive in the order they were sent (links are FIFO), so
 * when a wait finds the count positive, every earlier transfer from that sender has
 * landed. Receive buffers are written once per run, so an early arrival overwrites
 * nothing (an operand that streams through VMEM in pieces reuses them from piece to
 * piece: all_reduce's piece i + 1 starts only after all of piece i has reached this
 * chip, which needs every chip's last contribution to piece i, sent only once that
 * chip has combined everything it received in piece i; a reduce_scatter has its
 * receivers say so with tokens, and overlapping pieces send into slots the receiver
 * read early in piece i before their tokens: gen_collective.c, rs_piece). Completions
 * of this chip's own sends count on ordinary semaphores of the group, which drain
 * before it ends. */
#include <string.h>

#include "dma_desc.h"
#include "gen_collective_int.h"

/* ---- scalar code ---- */

static int32_t add_inst(Coll *c, TileMirInst in) { return tile_mir_add(c->m, in); }

int32_t coll_li(Coll *c, int64_t imm) { return tile_mir_li(c->m, imm, -1); }

int32_t coll_addr(Coll *c, int32_t buf, int64_t off) { return tile_mir_li(c->m, off, buf); }

void coll_rr(Coll *c, int op, int32_t d, int32_t a, int32_t b) {
  add_inst(c, tile_mir_inst(op, d, a, b, 0, 0));
}

void coll_ri(Coll *c, int op, int32_t d, int32_t a, int64_t imm) {
  add_inst(c, tile_mir_inst(op, d, a, 0, 0, (int32_t)imm));
}

int32_t coll_rank_sum(Coll *c, const int64_t *unit) {
  int32_t sum = coll_li(c, 0);
  for (int k = 0; k < c->naxes; k++) {
    if (!unit[k]) continue;
    int32_t t = tile_mir_sreg(c->m);
    coll_ri(c, TILE_MOP_MULI, t, c->coord[k], unit[k]);
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

/* d := a / div for a in [0, amax): a shift for a power of two, else a multiply by
 * ceil(2^s / div) and a shift, with s the first that is exact for every such a (checked
 * here, over the few coordinates a torus dim has). False where none is. */
static bool coll_divi(Coll *c, int32_t d, int32_t a, int64_t div, int64_t amax) {
  if ((div & (div - 1)) == 0) {
    int sh = 0;
    while ((INT64_C(1) << sh) < div) sh++;
    coll_ri(c, TILE_MOP_SHRI, d, a, sh);
    return true;
  }
  for (int s = 1; s < 31; s++) {
    int64_t mul = ((INT64_C(1) << s) + div - 1) / div;
    bool exact = (amax - 1) * mul < INT64_C(1) << 31;
    for (int64_t x = 0; exact && x < amax; x++) exact = (x * mul) >> s == x / div;
    if (!exact) continue;
    coll_ri(c, TILE_MOP_MULI, d, a, mul);
    coll_ri(c, TILE_MOP_SHRI, d, d, s);
    return true;
  }
  return false;
}

int32_t coll_position(Coll *c, const CollAxis *a) {
  int64_t size = c->cx->target->torus[a->dim];
  int32_t q = tile_mir_sreg(c->m);
  add_inst(c, tile_mir_inst(TILE_MOP_COORD, q, 0, 0, 0, a->dim));
  bool ok = true;
  if (a->inner > 1) ok &= coll_divi(c, q, q, a->inner, size);
  if (a->p * a->inner < size) { /* q - p * (q / p) */
    int32_t t = tile_mir_sreg(c->m);
    ok &= coll_divi(c, t, q, a->p, size / a->inner);
    coll_ri(c, TILE_MOP_MULI, t, t, a->p);
    coll_rr(c, TILE_MOP_SUB, q, q, t);
  }
  if (!ok)
    tile_lower_error(c->cx, c->op, "internal error: no exact multiply-shift finds positions "
                     "on axis '%s' from coordinates on torus dim %d", a->name, (int)a->dim);
  return q;
}

void coll_setup(Coll *c) {
  TileMir *m = c->m;
  int32_t zero = tile_lower_zero(c->cx);
  c->chipid = tile_mir_sreg(m);
  add_inst(c, tile_mir_inst(TILE_MOP_CHIPID, c->chipid, 0, 0, 0, 0));
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *a = &c->ax[k];
    int32_t q = c->coord[k] = coll_position(c, a);
    /* Toward +: next = chipid + stride, less p * stride at the last position (the ring
     * stays within its block of p * inner coordinates). */
    int32_t last = coll_li(c, a->p - 1), at_end = tile_mir_sreg(m), back = tile_mir_sreg(m);
    coll_rr(c, TILE_MOP_SEQ, at_end, q, last);
    coll_ri(c, TILE_MOP_MULI, back, at_end, -a->p * a->stride);
    c->next[0][k] = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_ADDI, c->next[0][k], c->chipid, a->stride);
    coll_rr(c, TILE_MOP_ADD, c->next[0][k], c->next[0][k], back);
    /* Toward -: next = chipid - stride, plus p * stride at position 0. */
    int32_t at_start = tile_mir_sreg(m), fwd = tile_mir_sreg(m);
    coll_rr(c, TILE_MOP_SEQ, at_start, q, zero);
    coll_ri(c, TILE_MOP_MULI, fwd, at_start, a->p * a->stride);
    c->next[1][k] = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_ADDI, c->next[1][k], c->chipid, -a->stride);
    coll_rr(c, TILE_MOP_ADD, c->next[1][k], c->next[1][k], fwd);
    /* Position toward -: (p - q) mod p, so that the next chip is one position on. */
    int32_t wrap = tile_mir_sreg(m);
    c->rpos[k] = coll_li(c, a->p);
    coll_rr(c, TILE_MOP_SUB, c->rpos[k], c->rpos[k], q);
    coll_ri(c, TILE_MOP_MULI, wrap, at_start, -a->p);
    coll_rr(c, TILE_MOP_ADD, c->rpos[k], c->rpos[k], wrap);
  }
  /* Sends and local copies complete on this chip: ordinary semaphores of the group.
   * Local copies are waited for one at a time, so one semaphore counts them all. */
  for (int d = 0; d < 2; d++) c->sem_sent[d] = tile_mir_sem(m);
  c->sem_local = tile_mir_sem(m);
}

/* The semaphore that counts arrivals from the previous chip of axis k, direction d:
 * one of the band the lowering sets aside in a mesh function (see the top). */
int32_t coll_recv_sem(Coll *c, int d, int k) {
  return c->cx->coll_band + 2 * c->ax[k].slot + d;
}

/* ---- remote descriptors ---- */

void coll_mark_remote(Coll *c, int32_t buf) {
  TileMirBuffer *b = &c->m->bufs[buf];
  if (!b->remote) {
    b->remote_after = c->anchor;
    b->remote_after_n = c->anchor_n;
  } else if (b->remote_after != c->anchor) {
    b->remote_after = -1; /* written in two collectives: from the first bundle */
  }
  b->remote = true;
  c->exchanges = true;
}

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
                                  coll_link_cycles(t, r.site.bytes));
  char name[64];
  snprintf(name, sizeof name, "coll%d.%.40s", (int)m->nbufs, m->bufs[dst_buf].name);
  r.site.desc = tile_dma_desc_buffer(m, name, src_buf, 0, dst_buf, 0, &shape, sent_sem);
  if (dst_sem >= 0) {
    uint8_t *w = m->bufs[r.site.desc].init + DESC_DST_SEM * 4;
    for (int i = 0; i < 4; i++) w[i] = (uint8_t)((uint32_t)dst_sem >> (8 * i));
  }
  r.site.desc_reg = coll_addr(c, r.site.desc, 0);
  if (peer_reg < 0) return r; /* a local copy keeps peer -1 */
  coll_mark_remote(c, dst_buf);
  TileMirInst st = tile_mir_inst(TILE_MOP_SST, peer_reg, r.site.desc_reg, 0, 0, DESC_PEER * 4);
  tile_mir_mem(&st, r.site.desc, TILE_MIR_WRITE, 0);
  add_inst(c, st);
  return r;
}

/* Waits for the transfer arriving from the sender of this level: after it, the
 * receive buffer may be read. It names the buffer this chip's own send writes, so the
 * scheduler places it the transfer's estimated cycles after that send (the two take
 * the same time): callers wait for arrivals before their own sends, whose waits name
 * only the descriptor and are placed at once. In the other order the wait for the send
 * would stall at run time and the scheduled gap before this one would follow it. */
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

/* Per-ring state of one level's step loop. */
typedef struct Step {
  CollRemote rm;
  CollRemote hbm;  /* the chunk copy to or from the ring's HBM buffer (has_hbm) */
  /* With first_direct, step 0's sub-chunks go from the HBM buffer straight to the next
   * chip (first: their descriptor, first_at: the HBM bytes between sub-chunks). */
  bool first_direct;
  CollRemote first;
  int64_t first_at;
  int32_t slots;   /* receive buffer, p - 1 chunks */
  int32_t off;     /* sreg: offset of the chunk this step fills (reduce or copy) */
  int32_t hoff;    /* sreg: that chunk's offset in the HBM buffer (has_hbm) */
  int32_t slot;    /* sreg: address of this step's receive slot */
  /* sreg: the sub-chunk every step of the level takes first (its j-th is (rot + j) mod
   * m); -1: in order. See Level. */
  int32_t rot;
} Step;

/* One level of rings in one step loop. Its m sub-chunks per chunk go in a rotated
 * order, the same on every chip of a ring (rot depends only on the coordinates the
 * ring's chips share), chosen so that the sub-chunk first in that order holds the
 * chunk the next level sends first: at the last step, once that sub-chunk has arrived
 * and been combined, the chunk is final and the next level's first sends go at once,
 * while this level's other sub-chunks still cross their links (fused, below). A level
 * otherwise waits for its last sub-chunk, then a hop for the next level's first. */
typedef struct Level {
  const CollRing *rings;
  int n;
  int64_t p, m, depth;
  bool fuse;       /* the next level's first sends go from this level's last step */
  /* Before a level from both sides (gen_collective_half.c): at its last step, after
   * sub-chunk half_j of ring i, that level's first send F of ring i (its chunk q + 2
   * is final then). */
  int64_t half_j;
  /* Where F goes after sub-chunk 0 of m >= 2 (so every F goes before every M) and
   * depth >= 2: that level's other first send, M, after ring i's last sub-chunk. */
  bool half_second;
  Step st[COLL_MAX_RINGS];
} Level;

/* Chunks lie by coordinate: a ring toward + sends chunk q - 1 - s at step s and
 * receives chunk q - 2 - s (reduce-scatter; q - s and q - 1 - s for all-gather), a ring
 * toward - the mirror image, q + 1 + s and q + 2 + s. */
static void step_chunk(Coll *c, const CollRing *g, Step *s) {
  int64_t p = c->ax[g->k].p, hstep = g->hbm_step ? g->hbm_step : g->chunk;
  bool back = coll_ring_steps_back(g);
  if (back) coll_step_back(c, s->off, g->chunk, g->chunk * p);
  else coll_step_on(c, s->off, g->chunk, g->chunk * p);
  if (!g->has_hbm) return;
  if (back) coll_step_back(c, s->hoff, hstep, hstep * p);
  else coll_step_on(c, s->hoff, hstep, hstep * p);
}

int32_t coll_ring_index(const Coll *c, const CollRing *g) {
  return g->by_position && g->dir ? c->rpos[g->k] : c->coord[g->k];
}

bool coll_ring_steps_back(const CollRing *g) { return g->dir == 0 || g->by_position; }

/* Sub-chunks per chunk. A step's chunk goes as m transfers, and each is sent on as soon
 * as it has arrived and been combined here, while the rest of the chunk still crosses
 * the link: the link then stays busy across steps instead of idling for a hop latency
 * and the VPU work of every step, and a level's fill and drain cost one sub-chunk
 * rather than a chunk. m divides every ring's tiles and is at most the send depth
 * (with more sub-chunks than sends in flight, the first sends of a level wait for one
 * another, which was measured slower on the 4x4x4 torus). */
static bool hbm_sub_shape(const CollRing *g, int64_t m, TileDmaShape *s, int64_t *step);

static int64_t sub_count(const Coll *c, const CollRing *rings, int n, const CollReduce *r) {
  for (int64_t m = coll_depth(c, n, COLL_MAX_SUBS); m > 1; m--) {
    bool fits = true;
    for (int i = 0; i < n; i++) {
      TileDmaShape hs;
      int64_t at;
      fits &= (rings[i].chunk / r->tile_bytes) % m == 0;
      /* A ring that combines in its slots sends its first chunk from HBM, in m parts. */
      if (rings[i].in_slots) fits &= hbm_sub_shape(&rings[i], m, &hs, &at);
    }
    if (fits) return m;
  }
  return 1;
}

int64_t coll_depth(const Coll *c, int n, int64_t m) {
  int64_t d = (c->cx->target->dma_outstanding - 2) / n;
  return d < 1 ? 1 : d > m ? m : d;
}

int32_t coll_ring_slots(Coll *c, const CollRing *g) {
  const CollAxis *a = &c->ax[g->k];
  char name[64];
  snprintf(name, sizeof name, "rs.%s%c.%d", a->name, g->dir ? '-' : '+', (int)c->m->nbufs);
  return tile_mir_buffer(c->m, name, TILE_SPACE_VMEM, g->chunk * (a->p - 1), 1, 64);
}

/* The receive buffer (slots[i], or a new one where slots is NULL) and first offset of
 * each ring: step 0 sends chunk q -/+ 1. */
static void steps_begin(Coll *c, const CollRing *rings, int n, const int32_t *slots, Step *st) {
  TileMir *m = c->m;
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    st[i].slots = slots ? slots[i] : coll_ring_slots(c, g);
    st[i].off = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_MULI, st[i].off, coll_ring_index(c, g), g->chunk);
    if (g->has_hbm) {
      st[i].hoff = tile_mir_sreg(m);
      coll_ri(c, TILE_MOP_MULI, st[i].hoff, coll_ring_index(c, g),
              g->hbm_step ? g->hbm_step : g->chunk);
    }
    step_chunk(c, g, &st[i]);
    st[i].slot = coll_addr(c, st[i].slots, 0);
    st[i].rot = -1;
  }
}

/* A fresh sreg holding ((j + rot) mod m) * unit, the offset of the j-th sub-chunk in the
 * order that starts at sub-chunk rot (an sreg); -1 where rot < 0, the order is 0, 1, ...
 * (the offset is then j * unit). */
static int32_t sub_reg(Coll *c, int32_t rot, int64_t m, int64_t j, int64_t unit) {
  if (rot < 0) return -1;
  int32_t t = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_ADDI, t, rot, j);
  if (j) {
    int32_t past = tile_mir_sreg(c->m);
    coll_rr(c, TILE_MOP_SLT, past, coll_li(c, m - 1), t);
    coll_ri(c, TILE_MOP_MULI, past, past, m);
    coll_rr(c, TILE_MOP_SUB, t, t, past);
  }
  coll_ri(c, TILE_MOP_MULI, t, t, unit);
  return t;
}

/* d := a + the offset of sub_reg (o; o < 0: j * unit) + imm. */
static void at_sub(Coll *c, int32_t d, int32_t a, int32_t o, int64_t j, int64_t unit,
                   int64_t imm) {
  if (o >= 0) {
    coll_rr(c, TILE_MOP_ADD, d, a, o);
    if (imm) coll_ri(c, TILE_MOP_ADDI, d, d, imm);
  } else if (d != a || j * unit + imm) {
    coll_ri(c, TILE_MOP_ADDI, d, a, j * unit + imm);
  }
}

/* Sends the j-th sub-chunk (of `sub` bytes, in s's order) of the chunk at off to the
 * next chip's slot at slot + ahead (0: this step's slot, chunk: the next step's). A
 * ring that combines in its slots (in_slots) sends step 0's chunk from its staging
 * copy at base and the others from this step's slot, where they were combined. */
static void sub_send(Coll *c, const CollRing *g, Step *s, int64_t m, int64_t j, int64_t sub,
                     int64_t ahead) {
  int32_t src = tile_mir_sreg(c->m), dst = tile_mir_sreg(c->m);
  int32_t o = sub_reg(c, s->rot, m, j, sub);
  if (g->in_slots) coll_ri(c, TILE_MOP_ADDI, src, ahead ? s->slot : g->base, 0);
  else coll_rr(c, TILE_MOP_ADD, src, g->base, s->off);
  at_sub(c, src, src, o, j, sub, 0);
  at_sub(c, dst, s->slot, o, j, sub, ahead);
  coll_remote_send(c, &s->rm, src, dst);
}

/* The shape of one of m sub-chunks of ring g's chunk in its HBM buffer, and the HBM
 * bytes from one sub-chunk to the next: sub-chunk j is bytes [j * chunk / m, (j + 1) *
 * chunk / m) of the chunk as it lies in work, which in a strided chunk (hbm_shape:
 * count2 blocks of count1 runs of count0 bytes) is the j-th m-th of its outermost
 * count above 1. False where m does not divide that count. */
static bool hbm_sub_shape(const CollRing *g, int64_t m, TileDmaShape *s, int64_t *step) {
  if (!g->hbm_step) {
    *s = coll_flat(g->chunk / m);
    *step = g->chunk / m;
    return true;
  }
  *s = g->hbm_shape;
  if (s->count2 > 1) {
    if (s->count2 % m) return false;
    s->count2 /= m;
    *step = s->count2 * s->src_stride2;
  } else if (s->count1 > 1) {
    if (s->count1 % m) return false;
    s->count1 /= m;
    *step = s->count1 * s->src_stride1;
  } else {
    if (s->count0 % m) return false;
    s->count0 /= m;
    *step = s->count0;
  }
  return true;
}

/* Sends the j-th sub-chunk of step 0's chunk from the ring's HBM buffer (first_direct). */
static void first_send(Coll *c, const CollRing *g, Step *s, int64_t m, int64_t j, int64_t sub) {
  int32_t src = tile_mir_sreg(c->m), dst = tile_mir_sreg(c->m);
  coll_rr(c, TILE_MOP_ADD, src, g->hbm_base, s->hoff);
  at_sub(c, src, src, sub_reg(c, s->rot, m, j, s->first_at), j, s->first_at, 0);
  at_sub(c, dst, s->slot, sub_reg(c, s->rot, m, j, sub), j, sub, 0);
  coll_remote_send(c, &s->first, src, dst);
}

/* Copies chunk off from the ring's HBM buffer into work and waits for it. The wait
 * names only the descriptor unless `first`: the loop that combines into the chunk
 * starts after it, and naming work, which the ring's sends read, would make the
 * scheduler hold it a whole remote transfer's estimate after the latest send. The
 * first copy, which the first sends read, names work, so they follow it; no send comes
 * before it. */
static void chunk_copy(Coll *c, const CollRing *g, Step *s, bool first) {
  int32_t w = tile_mir_sreg(c->m), h = tile_mir_sreg(c->m);
  if (g->in_slots) coll_ri(c, TILE_MOP_ADDI, w, g->base, 0); /* one staging chunk */
  else coll_rr(c, TILE_MOP_ADD, w, g->base, s->off);
  coll_rr(c, TILE_MOP_ADD, h, g->hbm_base, s->hoff);
  coll_remote_send(c, &s->hbm, h, w);
  TileMirInst wt = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, s->hbm.site.sem, 1);
  tile_mir_mem(&wt, s->hbm.site.desc, TILE_MIR_WRITE, 0);
  if (first) tile_mir_mem(&wt, g->work, TILE_MIR_WRITE, 0);
  add_inst(c, wt);
}

/* Waits for the previous chip's transfer into this chip's slot. The wait names no
 * buffer: the combining loop that reads the slot follows it (a loop starts after
 * everything before it), and naming the slot, which this chip's own sends also write
 * (on the next chip), would make the scheduler hold the wait a whole transfer's
 * estimate after the latest send, a gap per sub-chunk. */
static void wait_arrival_any(Coll *c, const CollRemote *r) {
  add_inst(c, tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, r->dst_sem, 1));
}

/* A sem.wait for one of s's sends to land (sem.wait sem_sent, which every ring of that
 * direction counts on) that names `desc`: the descriptor whose address words the send
 * after it stores. */
static void wait_sent_naming(Coll *c, const CollRemote *s, int32_t desc) {
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, s->site.sem, 1);
  tile_mir_mem(&in, desc, TILE_MIR_WRITE, 0);
  add_inst(c, in);
}

/* Level L's first sends of ring i, its j-th sub-chunk: from HBM (first_direct) or work. */
static void first_sends(Coll *c, Level *L, int i, int64_t j) {
  Step *s = &L->st[i];
  const CollRing *g = &L->rings[i];
  if (j >= L->depth) remote_wait_sent(c, &s->rm);
  if (s->first_direct) first_send(c, g, s, L->m, j, g->chunk / L->m);
  else sub_send(c, g, s, L->m, j, g->chunk / L->m, 0);
}

/* At L's last step, after ring i's j-th sub-chunk: B's (the next level's) first sends
 * of that ring. All of B's first chunk lies in L's first sub-chunk (Level), so they
 * could all go at j = 0; they go one per sub-chunk of L instead (the rest at L's last),
 * each after a wait for one of L's sends to land in place of L's trailing waits, so
 * that DMAs in flight stay as few as within a level: L's sends of the step before the
 * last land about as L's sub-chunks of this step arrive. Rings keep their direction
 * from level to level, so the wait counts on the semaphore of B's sends too. */
static void next_first_sends(Coll *c, const Level *L, Level *B, int i, int64_t j) {
  int64_t hi = j + 1 == L->m ? B->m : j + 1 < B->m ? j + 1 : B->m;
  const Step *s = &B->st[i];
  for (int64_t jb = j; jb < hi; jb++) {
    if (jb < L->depth)
      wait_sent_naming(c, &L->st[i].rm, s->first_direct ? s->first.site.desc : s->rm.site.desc);
    first_sends(c, B, i, jb);
  }
}

/* One step of level L: per sub-chunk and ring, wait for it, combine it into the chunk,
 * and unless this is the last step send that part of the chunk on to the next chip's
 * next slot (after one of this ring's earlier sends has landed). At the last step of a
 * fused level, `next` is the next level, whose first sends go as soon as its first
 * chunk is final (next_first_sends). */
static void step_body(Coll *c, Level *L, const CollReduce *r, bool send, Level *next,
                      const CollHalf *half) {
  const CollRing *rings = L->rings;
  Step *st = L->st;
  int64_t m = L->m;
  for (int i = 0; i < L->n; i++) {
    step_chunk(c, &rings[i], &st[i]);
    if (rings[i].has_hbm) chunk_copy(c, &rings[i], &st[i], false);
  }
  for (int64_t j = 0; j < m; j++) {
    for (int i = 0; i < L->n; i++) {
      const CollRing *g = &rings[i];
      int64_t sub = g->chunk / m;
      wait_arrival_any(c, &st[i].rm);
      int32_t in = tile_mir_sreg(c->m), at = tile_mir_sreg(c->m);
      int32_t o = sub_reg(c, st[i].rot, m, j, sub);
      at_sub(c, in, st[i].slot, o, j, sub, 0);
      if (g->in_slots) coll_ri(c, TILE_MOP_ADDI, at, g->base, 0);
      else coll_rr(c, TILE_MOP_ADD, at, g->base, st[i].off);
      at_sub(c, at, at, o, j, sub, 0);
      coll_reduce_span(c, r, r->vop, st[i].slots, in, g->work, at, sub, g->in_slots);
      if (next) next_first_sends(c, L, next, i, j);
      if (half && j == L->half_j) { /* in place of one of L's trailing waits */
        wait_sent_naming(c, &L->st[i].rm, half->f[i].site.desc);
        coll_half_first(c, half, i);
      }
      if (half && L->half_second && j + 1 == L->m) { /* the same, once the chunk is final */
        wait_sent_naming(c, &L->st[i].rm, half->m[i].site.desc);
        coll_half_second(c, half, i);
      }
      if (!send) continue;
      remote_wait_sent(c, &st[i].rm);
      sub_send(c, g, &st[i], m, j, sub, g->chunk);
    }
  }
  for (int i = 0; i < L->n; i++)
    coll_ri(c, TILE_MOP_ADDI, st[i].slot, st[i].slot, rings[i].chunk);
}

/* A fresh sreg: which of m sub-chunks of a chunk of ring g's level holds the chunk its
 * next level nx sends first (chunk q -/+ 1 of nx's p, which must be a multiple of m);
 * -1 where no exact division finds it. */
static int32_t rot_reg(Coll *c, const CollRing *nx, int64_t m) {
  int64_t p = c->ax[nx->k].p;
  int32_t f = tile_mir_sreg(c->m), past = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_ADDI, f, coll_ring_index(c, nx), coll_ring_steps_back(nx) ? p - 1 : 1);
  coll_rr(c, TILE_MOP_SLT, past, coll_li(c, p - 1), f);
  coll_ri(c, TILE_MOP_MULI, past, past, p);
  coll_rr(c, TILE_MOP_SUB, f, f, past);
  if (p / m > 1 && !coll_divi(c, f, f, p / m, p)) return -1;
  return f;
}

/* Level L's state, descriptors and the copy its first sends read (where they do not
 * go from HBM); nx (NULL: none) is the next level, which L's last step starts where
 * that is possible (L->fuse): it runs on other axes (so every chip of one of L's rings
 * computes the same order), in the same directions, from VMEM. */
static void level_begin(Coll *c, Level *L, const CollRing *rings, int n, const CollReduce *r,
                        const int32_t *slots, const CollRing *nx) {
  L->rings = rings;
  L->n = n;
  L->p = c->ax[rings[0].k].p;
  steps_begin(c, rings, n, slots, L->st);
  L->m = sub_count(c, rings, n, r);
  L->depth = coll_depth(c, n, L->m);
  L->fuse = nx != NULL;
  L->half_j = 0;
  L->half_second = false;
  for (int i = 0; i < n && L->fuse; i++)
    L->fuse = !nx[i].has_hbm && nx[i].dir == rings[i].dir && nx[i].k != rings[i].k &&
              c->ax[nx[i].k].p % L->m == 0 && c->ax[nx[i].k].wrap;
  for (int i = 0; i < n && L->fuse && L->m > 1; i++) {
    L->st[i].rot = rot_reg(c, &nx[i], L->m);
    L->fuse = L->st[i].rot >= 0;
  }
  if (!L->fuse)
    for (int i = 0; i < n; i++) L->st[i].rot = -1;
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    Step *s = &L->st[i];
    s->first_direct = false;
    /* The estimate counts the axis's step hops (one for a whole dim): every step of a
     * wrapping ring, all but the closing step of a line. */
    s->rm = remote_make(c, g->in_slots ? s->slots : g->work, s->slots, c->next[g->dir][g->k],
                        coll_flat(g->chunk / L->m), c->ax[g->k].hops,
                        coll_recv_sem(c, g->dir, g->k), c->sem_sent[g->dir]);
    if (!g->has_hbm) continue;
    /* A chunk in HBM: hbm_shape (runs of it that lie apart there), else contiguous. */
    TileDmaShape hs = g->hbm_step ? g->hbm_shape : coll_flat(g->chunk);
    s->hbm = coll_copy_site(c, g->hbm, g->work, hs);
    /* Step 0 sends a chunk this chip never combines into: where it is contiguous in
     * HBM it goes from there straight to the next chip (a remote DMA does not wait for
     * a copy, and its bytes do not count against HBM), so the level starts sending at
     * once. Strided chunks (reduce_scatter's gathered runs) go so on a wrapping axis
     * only: there the copy before the first sends, at every piece, cost about 2k
     * cycles (v4-like's 16 MiB reduce_scatter); sent straight on v5e-like's lines they
     * made its 256 MiB reduce_scatter slower (4.43M -> 4.85M cycles). */
    TileDmaShape fs;
    s->first_direct = (!g->hbm_step || c->ax[g->k].wrap) &&
                      hbm_sub_shape(g, L->m, &fs, &s->first_at);
    if (s->first_direct)
      s->first = remote_make(c, g->hbm, s->slots, c->next[g->dir][g->k], fs,
                             c->ax[g->k].hops, coll_recv_sem(c, g->dir, g->k),
                             c->sem_sent[g->dir]);
    else if (g->in_slots) /* step 1's copy would overwrite what step 0 still sends */
      tile_lower_error(c->cx, c->op, "internal error: a ring that combines in its slots "
                       "must send its first chunk from HBM");
    else
      chunk_copy(c, g, s, true); /* what the first sends read */
  }
}

/* Level L comes before the level from both sides hr (gen_collective_half.c):
 * its sub-chunks go in an order that starts with the one holding hr's first chunk
 * (q + 2 of hr's axis), as a fused level's do, so that its last step sends that chunk
 * on as soon as it is final (Level.half_j 0). That order depends on hr's axis only, so
 * every chip of one of L's rings computes the same. Where m does not divide 4 or L runs
 * on hr's axis, the order stays and the first sends wait for the last sub-chunk. */
static void half_order(Coll *c, Level *L, const CollRing *hr) {
  L->half_j = 0;
  if (L->m == 1) return;
  bool ok = 4 % L->m == 0;
  for (int i = 0; i < L->n; i++) ok &= hr[i].k != L->rings[i].k;
  L->half_j = L->m - 1;
  if (!ok) return;
  for (int i = 0; i < L->n; i++) {
    int32_t f = tile_mir_sreg(c->m), past = tile_mir_sreg(c->m);
    coll_ri(c, TILE_MOP_ADDI, f, coll_ring_index(c, &hr[i]), 2);
    coll_rr(c, TILE_MOP_SLT, past, coll_li(c, 3), f);
    coll_ri(c, TILE_MOP_MULI, past, past, 4);
    coll_rr(c, TILE_MOP_SUB, f, f, past);
    if (!coll_divi(c, f, f, 4 / L->m, 4))
      tile_lower_error(c->cx, c->op, "internal error: no sub-chunk order for a level before "
                       "one from both sides");
    L->st[i].rot = f;
  }
  L->half_j = 0;
  L->half_second = L->depth >= 2;
}

/* The p - 1 steps of each level's rings: the first step's sends, then p - 2 steps that
 * receive and send on, a last one that only receives (and, fused, starts the next
 * level), and the waits for the sends still in flight. With pc->tokens, level 0's
 * first of those p - 2 steps runs alone, then the wait for the tokens (every send
 * after it may write a slot the piece before still read); with pc->then, the last
 * level's last step starts the next piece's level 0 as a fused level starts the next
 * level (next_first_sends), the two in the same directions. A last level after the
 * first that coll_half_applies to runs from both sides instead (gen_collective_half.c,
 * 2 steps instead of 3): the level before's last step sends its first chunks
 * (half_order), and the next piece's first sends go before its last adds. */
void coll_ring_reduce_scatter_piece(Coll *c, const CollRing *rings, int nlev, int n,
                                    const CollReduce *r, const int32_t *slots,
                                    const CollRsPiece *pc) {
  Level lv[2], T;
  bool begun = false;
  bool half = nlev >= 2 && coll_half_applies(c, rings + (size_t)(nlev - 1) * n, n);
  int nring = half ? nlev - 1 : nlev; /* the levels that run as rings */
  const CollRing *hr = rings + (size_t)nring * n;
  CollHalf H;
  for (int l = 0; l < nring; l++) {
    Level *L = &lv[l & 1], *B = &lv[(l + 1) & 1];
    const CollRing *g = rings + (size_t)l * n, *nx = l + 1 < nring ? g + n : NULL;
    const int32_t *sl = slots ? slots + (size_t)l * n : NULL;
    if (!begun) {
      level_begin(c, L, g, n, r, sl, nx);
      if (half && l == nring - 1) half_order(c, L, hr);
      for (int64_t j = 0; j < L->m && !(l == 0 && pc->first_sent); j++)
        for (int i = 0; i < n; i++) first_sends(c, L, i, j);
    }
    int64_t loop = L->p - 2;
    if (l == 0 && pc->tokens) {
      if (!pc->first_sent || L->p < 4)
        tile_lower_error(c->cx, c->op, "internal error: a piece waits for tokens within "
                         "its first level only after first sends, on rings of 4 or more");
      step_body(c, L, r, true, NULL, NULL);
      coll_ring_tokens(c, pc->tokens, true, -1);
      loop--;
    }
    if (loop > 0) {
      tile_mir_loop_begin(c->m, (int32_t)loop, 0);
      step_body(c, L, r, true, NULL, NULL);
      tile_mir_loop_end(c->m);
    }
    Level *F = NULL; /* the level this one's last step starts */
    if (L->fuse) {
      level_begin(c, B, nx, n, r, sl ? sl + n : NULL, l + 2 < nring ? nx + n : NULL);
      if (half && l + 1 == nring - 1) half_order(c, B, hr);
      F = B;
    } else if (!nx && pc->then && !half) {
      const CollNextPiece *t = pc->then;
      level_begin(c, &T, t->rings, n, t->r, t->slots, t->after);
      for (int i = 0; i < n; i++)
        if (t->rings[i].dir != g[i].dir)
          tile_lower_error(c->cx, c->op, "internal error: the next piece's first rings "
                           "are not in this piece's last directions");
      F = &T;
    }
    bool last = half && l == nring - 1;
    if (last) coll_half_begin(c, &H, hr, n, r, slots ? slots + (size_t)nring * n : NULL);
    step_body(c, L, r, false, F, last ? &H : NULL);
    int64_t done = F ? (F->m < L->depth ? F->m : L->depth) : last ? 1 + L->half_second : 0;
    for (int64_t j = done; j < L->depth; j++)
      for (int i = 0; i < n; i++) remote_wait_sent(c, &L->st[i].rm);
    begun = L->fuse;
  }
  if (!half) return;
  coll_half_rest(c, &H, lv[(nring - 1) & 1].half_second);
  if (!pc->then) {
    coll_half_end(c, &H);
    coll_half_drain(c, &H);
    return;
  }
  /* The next piece's first sends, the first sub-chunks while this level's last sends
   * still land, the rest after them, all before the last adds. */
  const CollNextPiece *t = pc->then;
  level_begin(c, &T, t->rings, n, t->r, t->slots, t->after);
  if (nring == 1) half_order(c, &T, hr); /* the next piece's level 0 comes before hr */
  for (int64_t j = 0; j < T.m; j++) {
    for (int i = 0; i < n; i++) first_sends(c, &T, i, j);
    if (j == 0) coll_half_drain(c, &H);
  }
  coll_half_end(c, &H);
}

void coll_ring_reduce_scatter_levels(Coll *c, const CollRing *rings, int nlev, int n,
                                     const CollReduce *r, const int32_t *slots) {
  CollRsPiece pc = {.first_sent = false};
  coll_ring_reduce_scatter_piece(c, rings, nlev, n, r, slots, &pc);
}

void coll_ring_tokens(Coll *c, const bool used[][2], bool wait, int32_t work) {
  for (int k = 0; k < c->naxes; k++)
    for (int d = 0; d < 2; d++) {
      if (!used[k][d]) continue;
      int32_t sem = coll_recv_sem(c, 1 - d, k);
      TileMirInst in = wait ? tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, sem, 1)
                            : tile_mir_inst(TILE_MOP_SIGNALR, 0, c->next[1 - d][k], 0, sem, 1);
      if (wait && work >= 0) tile_mir_mem(&in, work, TILE_MIR_WRITE, 0);
      add_inst(c, in);
    }
}

void coll_ring_reduce_scatter(Coll *c, const CollRing *rings, int n, const CollReduce *r) {
  coll_ring_reduce_scatter_in(c, rings, n, r, NULL);
}

void coll_ring_reduce_scatter_in(Coll *c, const CollRing *rings, int n, const CollReduce *r,
                                 const int32_t *slots) {
  if (c->ax[rings[0].k].p < 2) return; /* one chip: its chunk is the whole answer */
  coll_ring_reduce_scatter_levels(c, rings, 1, n, r, slots);
}


/* ---- all-gather levels in one run ----
 *
 * all_reduce's all-gather in place (as coll_ring_gather_in_place, gen_collective_
 * gather.c: each block goes straight to the same place on the next chip, its place
 * written once per run or held by the sender only once the receiver is done with it),
 * its levels run one after the other with the next level started early: level G's
 * region is the next level B's block, sent as B's sub-chunks. B takes them in an
 * order that starts with the one holding the block G receives first (index q -/+ 1),
 * which with at most 2 of G's blocks to a sub-chunk is complete before G's last step
 * (the other block is this chip's own or the one of G's second step). So B's first
 * sub-chunk goes during G's last step, as soon as this chip's own sends of the step
 * before have landed (each B send takes the place of one of G's trailing waits, so
 * DMAs in flight stay as few as within a level), the rest as soon as G's last block
 * is in. As with the reduce-scatter levels, every chip of one of B's rings computes
 * the same order: it depends on G's axis only. */
typedef struct GLevel {
  CollRing rings[COLL_MAX_RINGS];
  int n;
  int64_t p, m, depth;
  bool fuse;                   /* B's first sends go from G's last step */
  CollRemote rm[COLL_MAX_RINGS][COLL_MAX_SUBS]; /* one descriptor per ring and sub-chunk */
  int32_t off[COLL_MAX_RINGS]; /* sreg: offset of the block this step sends or receives */
  int32_t rot[COLL_MAX_RINGS]; /* sreg: the sub-chunk taken first; -1: in order */
  int32_t at;                  /* sreg: the address of a send */
} GLevel;

/* sem.wait sem, 1, naming buf_a and (>= 0) buf_b as written: what it orders (see the
 * top of gen_collective_gather.c). */
static void gwait(Coll *c, int32_t sem, int32_t buf_a, int32_t buf_b) {
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, sem, 1);
  tile_mir_mem(&in, buf_a, TILE_MIR_WRITE, 0);
  if (buf_b >= 0) tile_mir_mem(&in, buf_b, TILE_MIR_WRITE, 0);
  add_inst(c, in);
}

/* Sends the j-th sub-chunk (in G's order) of ring i's block at off to the same place on
 * the next chip. */
static void gsend(Coll *c, GLevel *G, int i, int64_t j) {
  const CollRing *g = &G->rings[i];
  int64_t sub = g->chunk / G->m;
  coll_rr(c, TILE_MOP_ADD, G->at, g->base, G->off[i]);
  at_sub(c, G->at, G->at, sub_reg(c, G->rot[i], G->m, j, sub), j, sub, 0);
  coll_remote_send(c, &G->rm[i][j], G->at, G->at);
}

/* Sub-chunks per block: at most the send depth, each whole elements of eb bytes. */
static int64_t gsub_count(const Coll *c, const CollRing *rings, int n, int eb) {
  for (int64_t m = coll_depth(c, n, COLL_MAX_SUBS); m > 1; m--) {
    bool fits = true;
    for (int i = 0; i < n; i++) fits &= rings[i].chunk % (m * eb) == 0;
    if (fits) return m;
  }
  return 1;
}

/* Level G from rings, moved into buf by delta where buf >= 0 (see the header). */
static void glevel_begin(Coll *c, GLevel *G, const CollRing *rings, int n, int eb,
                         const CollRing *nx, int32_t buf, int32_t delta) {
  memcpy(G->rings, rings, (size_t)n * sizeof *rings);
  for (int i = 0; i < n && buf >= 0; i++) {
    G->rings[i].work = buf;
    G->rings[i].base = tile_mir_sreg(c->m);
    coll_rr(c, TILE_MOP_ADD, G->rings[i].base, rings[i].base, delta);
  }
  rings = G->rings;
  G->n = n;
  G->p = c->ax[rings[0].k].p;
  G->m = gsub_count(c, rings, n, eb);
  G->depth = coll_depth(c, n, G->m);
  G->at = tile_mir_sreg(c->m);
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    for (int64_t j = 0; j < G->m; j++)
      G->rm[i][j] = coll_remote(c, g->k, g->dir, g->work, g->work, coll_flat(g->chunk / G->m));
    G->off[i] = tile_mir_sreg(c->m);
    coll_ri(c, TILE_MOP_MULI, G->off[i], coll_ring_index(c, g), g->chunk); /* step 0: mine */
    G->rot[i] = -1;
  }
  int64_t mb = nx ? gsub_count(c, nx, n, eb) : 0;
  G->fuse = nx && G->p >= 3 && G->p % mb == 0 && G->p / mb <= 2;
  for (int i = 0; i < n && G->fuse; i++)
    G->fuse = nx[i].k != rings[i].k && nx[i].dir == rings[i].dir &&
              nx[i].chunk == G->p * rings[i].chunk && c->ax[nx[i].k].wrap;
}

/* Steps to the block ring i receives next. */
static void gstep(Coll *c, GLevel *G, int i) {
  const CollRing *g = &G->rings[i];
  if (coll_ring_steps_back(g)) coll_step_back(c, G->off[i], g->chunk, g->chunk * G->p);
  else coll_step_on(c, G->off[i], g->chunk, g->chunk * G->p);
}

/* B's first sends of ring i from sub-chunk jb on to before `end`, each after a wait for
 * one of G's sends while G's trailing waits last (*carried of them left). */
static void gnext(Coll *c, GLevel *G, GLevel *B, int i, int64_t jb, int64_t end,
                  int64_t *carried) {
  for (; jb < end; jb++) {
    if (carried[i] > 0) {
      gwait(c, G->rm[i][0].site.sem, B->rm[i][jb].site.desc, -1);
      carried[i]--;
    }
    gsend(c, B, i, jb);
  }
}

void coll_ring_gather_levels(Coll *c, const CollRing *rings, int nlev, int n, int eb,
                             int32_t buf, int32_t delta) {
  GLevel lv[2];
  bool begun = false;
  for (int l = 0; l < nlev; l++) {
    GLevel *G = &lv[l & 1], *B = &lv[(l + 1) & 1];
    const CollRing *g = rings + (size_t)l * n, *nx = l + 1 < nlev ? g + n : NULL;
    if (!begun) {
      glevel_begin(c, G, g, n, eb, nx, buf, delta);
      for (int64_t j = 0; j < G->m; j++)
        for (int i = 0; i < n; i++) {
          if (j >= G->depth)
            gwait(c, G->rm[i][j - G->depth].site.sem, G->rm[i][j - G->depth].site.desc, -1);
          gsend(c, G, i, j);
        }
    }
    /* Steps 1 .. p - 2 receive a block and send it on; the last only receives. */
    if (G->p > 2) {
      tile_mir_loop_begin(c->m, (int32_t)(G->p - 2), 0);
      for (int i = 0; i < n; i++) gstep(c, G, i);
      for (int64_t j = 0; j < G->m; j++)
        for (int i = 0; i < n; i++) {
          gwait(c, G->rm[i][j].dst_sem, G->rm[i][j].site.desc, -1);
          gwait(c, G->rm[i][j].site.sem, G->rm[i][j].site.desc, -1); /* an earlier send */
          gsend(c, G, i, j);
        }
      tile_mir_loop_end(c->m);
    }
    int64_t carried[COLL_MAX_RINGS];
    for (int i = 0; i < n; i++) carried[i] = G->depth;
    if (G->fuse) {
      glevel_begin(c, B, nx, n, eb, l + 2 < nlev ? nx + n : NULL, buf, delta);
      for (int i = 0; i < n; i++) B->rot[i] = rot_reg(c, &g[i], B->m);
    }
    for (int i = 0; i < n; i++) gstep(c, G, i);
    for (int64_t j = 0; j < G->m; j++)
      for (int i = 0; i < n; i++) {
        /* The last arrivals also name the result, which later groups read; not
         * where B's first sends, which touch it, come before some of them (the
         * scheduler would hold such a wait until their estimated end; the last
         * level's name it). */
        gwait(c, G->rm[i][j].dst_sem, G->rm[i][j].site.desc,
              G->fuse ? -1 : G->rings[i].work);
        if (!G->fuse) continue;
        if (j == 0) gnext(c, G, B, i, 0, 1, carried);
        if (j + 1 == G->m) gnext(c, G, B, i, 1, B->m, carried);
      }
    for (int64_t left = G->depth; left > 0; left--)
      for (int i = 0; i < n; i++)
        if (carried[i] >= left) {
          const CollRemote *s = &G->rm[i][G->m - left];
          gwait(c, s->site.sem, s->site.desc, -1);
        }
    begun = G->fuse;
  }
}

CollRemote coll_remote(Coll *c, int k, int dir, int32_t src_buf, int32_t dst_buf,
                       TileDmaShape shape) {
  return remote_make(c, src_buf, dst_buf, c->next[dir][k], shape, c->ax[k].hops,
                     coll_recv_sem(c, dir, k), c->sem_sent[dir]);
}

void coll_remote_wait(Coll *c, const CollRemote *r) {
  remote_wait_arrival(c, r);
  remote_wait_sent(c, r);
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

void coll_exchange_async(Coll *c, int k, int dir, int32_t src_buf, int32_t dst_buf,
                         int64_t off, int64_t bytes, int32_t sent_sem) {
  CollRemote rm = remote_make(c, src_buf, dst_buf, c->next[dir][k], coll_flat(bytes),
                              c->ax[k].hops, coll_recv_sem(c, dir, k), sent_sem);
  /* The groups between this send and its waits take time the schedule of this stretch
   * does not see: the transfer's expected latency would only pad the stretch the waits
   * land in with empty bundles (paid again after any stall those groups have), so the
   * waits stall by themselves if the data is late. */
  rm.site.est_cycles = 1;
  coll_remote_send(c, &rm, coll_addr(c, src_buf, off), coll_addr(c, dst_buf, off));
  /* The same two waits as coll_remote_wait's, in that order: the arrival names the
   * received buffer, so nothing reads it before; this chip's own send names its
   * descriptor and its source, so neither is reused before it has landed. */
  TileMirInst w[2];
  w[0] = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, rm.dst_sem, 1);
  tile_mir_mem(&w[0], dst_buf, TILE_MIR_WRITE, 0);
  w[1] = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, sent_sem, 1);
  tile_mir_mem(&w[1], rm.site.desc, TILE_MIR_WRITE, 0);
  tile_mir_mem(&w[1], src_buf, TILE_MIR_WRITE, 0);
  tile_lower_async_defer(c->cx, w, 2, src_buf, dst_buf, rm.site.desc);
}
