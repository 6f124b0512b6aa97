/* The last level of a reduce-scatter from both sides (gen_collective_int.h,
 * coll_half_*): on an axis of 4 chips that wraps, each chunk's partial sums reach their
 * owner in 2 steps instead of the ring's 3.
 *
 * Why: the last level of a large reduce-scatter in parts moves a few KiB per ring and
 * step, so each of its ring steps costs about a hop, while every link is otherwise
 * idle: at each piece boundary and at the end. On v4-like's 16 MiB reduce_scatter this
 * took 73,842 cycles to 71,076 (docs/perf.md).
 *
 * Ring g toward direction d, chip q, s = +1 toward + and -1 toward -, its region's
 * chunks by coordinate (c[j] at base + j * chunk):
 *   step 0: c[q + 2] goes to the next chip toward d, into its slot 0 (F);
 *           c[q - s] goes to the next chip the other way, into its slot 1 (M);
 *   step 1: F arrives from q - s, holding that chip's c[q + s]; add it into c[q + s]
 *           and send that on toward d, into slot 2 (P);
 *   end:    M (from q + s: its c[q]) and P (from q - s: the sum of q - s's and
 *           q - 2s's c[q]) arrive; c[q] += M, then c[q] += P.
 * Every chip runs the same steps, so c[q] ends as the sum of all four chips' c[q], in
 * a fixed order (same bits on every run). Step 0 goes from the level before's last
 * step (gen_collective_ring.c, half_order): each F as soon as its chunk is final, each
 * M once its ring's last sub-chunk is in.
 *
 * Links: each ring has a partner on the same axis in the other direction, whose M
 * shares the link of this ring's F and P. So each link carries three chunks, as in the
 * ring. Every F goes before every M, and every M before any P. Each link then delivers
 * F, M and P in that order, from one sender, onto one semaphore (links are FIFO). The
 * waits follow the same order, so a count on that semaphore always stands for the
 * transfer it is waited for: the F's at step 1, then every M, then every P.
 *
 * Slots: a ring's three receive slots, reused from piece to piece as the ring's were:
 * the next piece writes them only after the receiver's token (gen_collective.c,
 * rs_piece). The sends read this chip's region, whose chunks are final from the level
 * before, and write only slots. */
#include "gen_collective_int.h"

bool coll_half_applies(const Coll *c, const CollRing *rings, int n) {
  if (n < 2 || 2 * n > c->cx->target->dma_outstanding - 2) return false;
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    const CollAxis *a = &c->ax[g->k];
    if (a->p != 4 || !a->wrap || g->by_position || g->in_slots || g->has_hbm) return false;
    int same = 0, partners = 0;
    for (int j = 0; j < n; j++) {
      if (rings[j].k != g->k) continue;
      same += rings[j].dir == g->dir;
      partners += rings[j].dir != g->dir;
    }
    if (same != 1 || partners != 1) return false;
  }
  return true;
}

/* A fresh sreg: the address of chunk (q + x) mod 4 of ring g's region. */
static int32_t chunk_at(Coll *c, const CollRing *g, int64_t x) {
  int32_t o = tile_mir_sreg(c->m), at = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_MULI, o, coll_ring_index(c, g), g->chunk);
  for (int64_t k = 0; k < ((x % 4) + 4) % 4; k++) coll_step_on(c, o, g->chunk, 4 * g->chunk);
  coll_rr(c, TILE_MOP_ADD, at, g->base, o);
  return at;
}

/* The ring on ring i's axis in the other direction. */
static int partner(const CollHalf *h, int i) {
  int j = 0;
  while (h->rings[j].k != h->rings[i].k || h->rings[j].dir == h->rings[i].dir) j++;
  return j;
}

/* slot[idx] of ring i's receive buffer, added into the chunk at `at` (left unmoved). */
static void add_slot(Coll *c, const CollRing *g, const CollReduce *r, int32_t slots, int idx,
                     int32_t at) {
  int32_t src = coll_addr(c, slots, idx * g->chunk), dst = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_ADDI, dst, at, 0);
  coll_reduce_span(c, r, r->vop, slots, src, g->work, dst, g->chunk, false);
}

void coll_half_begin(Coll *c, CollHalf *h, const CollRing *rings, int n, const CollReduce *r,
                     const int32_t *slots) {
  h->rings = rings;
  h->n = n;
  h->r = r;
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    TileDmaShape s = coll_flat(g->chunk);
    h->slots[i] = slots ? slots[i] : coll_ring_slots(c, g);
    h->f[i] = coll_remote(c, g->k, g->dir, g->work, h->slots[i], s);
    h->m[i] = coll_remote(c, g->k, 1 - g->dir, g->work, h->slots[i], s);
    h->p[i] = coll_remote(c, g->k, g->dir, g->work, h->slots[i], s);
  }
}

void coll_half_first(Coll *c, const CollHalf *h, int i) {
  coll_remote_send(c, &h->f[i], chunk_at(c, &h->rings[i], 2), coll_addr(c, h->slots[i], 0));
}

void coll_half_second(Coll *c, const CollHalf *h, int i) {
  const CollRing *g = &h->rings[i];
  coll_remote_send(c, &h->m[i], chunk_at(c, g, g->dir ? 1 : -1),
                   coll_addr(c, h->slots[i], g->chunk));
}

void coll_half_rest(Coll *c, const CollHalf *h, bool m_sent) {
  const CollRing *rings = h->rings;
  int n = h->n;
  for (int i = 0; i < n && !m_sent; i++) coll_half_second(c, h, i);
  /* Step 1: each F in, added and sent on as P, after one of this direction's sends has
   * landed (at most 2n in flight). */
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    int32_t at = chunk_at(c, g, g->dir ? -1 : 1);
    coll_wait_sem(c, h->f[i].dst_sem, 1, -1); /* names nothing: the loop after reads it */
    add_slot(c, g, h->r, h->slots[i], 0, at);
    coll_wait_sem(c, h->f[i].site.sem, 1, h->p[i].site.desc);
    coll_remote_send(c, &h->p[i], at, coll_addr(c, h->slots[i], 2 * g->chunk));
  }
  /* On each link's semaphore the partner's M, added while the P's still travel; and
   * one more of this chip's sends landed per ring, which leaves n in flight. */
  for (int i = 0; i < n; i++) {
    int j = partner(h, i);
    coll_wait_sem(c, h->p[i].dst_sem, 1, -1);
    add_slot(c, &rings[j], h->r, h->slots[j], 1, chunk_at(c, &rings[j], 0));
  }
  for (int i = 0; i < n; i++) coll_wait_sem(c, h->m[i].site.sem, 1, h->m[i].site.desc);
}

void coll_half_drain(Coll *c, const CollHalf *h) {
  for (int i = 0; i < h->n; i++) coll_wait_sem(c, h->p[i].site.sem, 1, h->p[i].site.desc);
}

void coll_half_end(Coll *c, const CollHalf *h) {
  for (int i = 0; i < h->n; i++) { /* each P, last on its link's semaphore, as it lands */
    coll_wait_sem(c, h->p[i].dst_sem, 1, -1);
    add_slot(c, &h->rings[i], h->r, h->slots[i], 2, chunk_at(c, &h->rings[i], 0));
  }
}
