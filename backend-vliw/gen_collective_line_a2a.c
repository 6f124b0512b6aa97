/* all_to_all over an axis without wraparound (a line): one level of the exchange of
 * gen_collective_a2a.c, with every block going straight toward its chip
 * (gen_collective_int.h).
 *
 * A level works on slots (block-major: slot j, the block for or from rank j, at j * blk)
 * and, per part, on bytes [off, off + sub) of every slot. On axis k of p chips, "group
 * t" is the slots whose rank digit k is t: outer x inner runs of sub bytes (outer: the
 * chips of the axes before k, inner: after it). This chip, at q, keeps group q and sends
 * group t to the chip at t, where it lands as group q (the digit then names the sender).
 *
 * The ring schedule sends half the groups the long way round, and on a line the ring's
 * closing step routes across the whole axis, loading links that straight routes leave
 * alone. Here the groups for chips to the right go rightward, store and forward one hop
 * an iteration, and the mirror image leftward:
 *
 *   iteration 0: chip q sends its groups q + 1 .. p - 1 to q + 1;
 *   iteration i: chip q forwards what arrived at i - 1 (from chip q - i, groups q + 1 ..
 *     p - 1; q kept group q) to q + 1, for i <= q;
 *
 * so link q -> q + 1 carries (q + 1)(p - 1 - q) groups, what shortest paths put on it,
 * in p - 1 iterations. A send is two transfers: the tail (the groups for chips beyond
 * the next one) into the next chip's receive buffer, then the head (the next chip's
 * group) straight into its place in the next chip's result. The tail goes first: the
 * next chip forwards it as soon as it has landed, while the head still crosses the
 * link, so on 4 chips the middle link never waits for its upstream. Both signal the
 * receiver's arrival semaphore, the tail first; one sender's transfers land in the order
 * sent (links are FIFO), so the receiver waits for tail(0), head(0), tail(1), ... one
 * count each, in that order. Groups travel packed, [outer][group][inner][sub] nearest
 * group first (rightward; leftward in ascending order, the head last), so head and tail
 * are each a strided run per outer index, and every transfer is one descriptor. On
 * lines longer than 4 a link would still wait for whole tails from upstream, so large
 * parts go as up to LINE_A2A_SUBS sub-chunks (byte ranges of the part), each forwarded
 * as soon as it has landed; the arrivals of a side then come chunk by chunk within an
 * iteration, and the waits follow that order.
 *
 * Chips do different work from one program (gen_collective_line.c, module comment):
 *   - peers, arrival semaphores and the sizes and strides that depend on q (n = p - 1 - q
 *     groups a rightward send carries, head included) are descriptor words stored from
 *     registers, once per level;
 *   - a send with no receiver (i > q, or q = p - 1) is a ghost: its dma reads, from an
 *     address a register selects, the level's ghost descriptor instead, one byte within a
 *     buffer of this chip no op names, signalling no one;
 *   - a tail with no groups (the receiver is the line's end) is still sent, one byte
 *     into the receiver's buffer, so that every chip's arrivals on a side are real ones
 *     first (tail(i), head(i) for i < q) and credits after, never a credit before a real
 *     arrival on the same semaphore;
 *   - an arrival slot no peer fills (i >= q on the left) is a credit (coll_credit).
 *
 * Semaphores: arrivals from the left count on coll_recv_sem(c, 0, k), from the right on
 * coll_recv_sem(c, 1, k), each with one sender, the neighbour (see gen_collective_line.c
 * for why an early signal from a peer already in the next level or collective, and the
 * credits a chip gives itself, keep every wait right). Sends complete on sem_sent[0],
 * credits on sem_sent[1]: the ring exchanges of a level finish before the line parts
 * start, and this level drains both before it returns. Once dma.outstanding less three
 * sends are in flight (room for a blocking local copy and two credits), a send first
 * waits for one of them to land. A chip's arrival waits name no buffer, so the
 * scheduler places them at once and a late arrival stalls at run time only.
 *
 * Buffers: receive buffers are per level, side and sub-chunk, one region per iteration,
 * written once per run; the result slots are written once per run each (heads, and the own
 * group by a local copy after the first sends); ghosts go to a buffer no op names, which
 * layout keeps for the whole run and gives to no one. */
#include "dma_desc.h"
#include "gen_collective_int.h"

/* Sub-chunks of a part: each goes on as soon as it has arrived, so a link waits for a
 * sub-chunk of its upstream's tail rather than the whole (with 8 chips a whole tail
 * leaves the middle links idle for a fifth of the time); each adds two transfers a side
 * and iteration. */
enum { LINE_A2A_SUBS = 4 };

typedef struct Side {
  int32_t rb;            /* receive buffer: tails, one region per iteration */
  TileDmaSite head0, tail0;  /* iteration 0: from the source slots */
  TileDmaSite head, tail;    /* later: from the receive buffer */
} Side;

/* Bytes [off, off + sub) of every slot, the groups of one sub-chunk. */
typedef struct Chunk {
  int64_t off, sub;
  int64_t group;         /* a group packed: outer * inner * sub */
  int64_t run;           /* a group's bytes per outer index, packed: inner * sub */
  Side side[2];          /* 0: rightward (toward +coordinate), 1: leftward */
} Chunk;

typedef struct Part {
  int k;
  int64_t p, outer, inner;
  int64_t step;          /* bytes between neighbouring groups in the slots: inner * blk */
  int64_t ostride;       /* bytes between outer indices in the slots: p * inner * blk */
  int nch;
  Chunk ch[LINE_A2A_SUBS];
  /* Arrival slots waited for per side, in the order the neighbour sends: in iteration
   * i, chunk s's tail is slot 2 (i * nch + s), its head the one after. */
  int64_t waited[2];
} Part;

typedef struct Level {
  Coll *c;
  int32_t src, dst;      /* slot buffers */
  int32_t ghost;         /* where ghost sends land */
  int32_t ghost_desc;    /* a descriptor of one byte within ghost, on sem_sent[0] */
  int64_t blk;
  int64_t inflight, cap; /* sends not yet waited for, and the most there may be */
  int64_t credits;       /* credits issued: each completes on sem_sent[1] */
} Level;

/* A fresh sreg: groups a send of side d carries, head included: p - 1 - q rightward,
 * q leftward. */
static int32_t side_groups(Coll *c, const Part *x, int d) {
  int32_t n = tile_mir_sreg(c->m);
  if (d == 0) coll_rr(c, TILE_MOP_SUB, n, coll_li(c, x->p - 1), c->coord[x->k]);
  else coll_rr(c, TILE_MOP_MOV, n, c->coord[x->k], 0);
  return n;
}


/* Sets a descriptor word that is the same on every chip in the descriptor's initial
 * contents (no code). */
static void init_word(Coll *c, const TileDmaSite *s, int64_t v, int word) {
  uint8_t *w = c->m->bufs[s->desc].init + word * 4;
  for (int i = 0; i < 4; i++) w[i] = (uint8_t)((uint32_t)v >> (8 * i));
}

/* Estimated bytes of a tail: about half the far groups. */
static int64_t tail_estimate(const Part *x, const Chunk *h) {
  int64_t b = (x->p - 2) / 2 * h->group;
  return b < 1 ? 1 : b;
}

/* A descriptor to the neighbour on side d, into its arrival semaphore: peer and
 * semaphore are stored once, the addresses per transfer. */
static TileDmaSite side_site(Level *L, const Part *x, int d, int32_t src, int32_t dst,
                             int64_t bytes) {
  Coll *c = L->c;
  return coll_line_site(c, src, dst, bytes, c->next[d][x->k],
                        coll_li(c, coll_recv_sem(c, d, x->k)), c->sem_sent[0], true);
}

/* Stores counts that depend on this chip's position: cnt where `full`, else one byte
 * (a tail with no groups). */
static void put_counts(Coll *c, const TileDmaSite *s, int32_t full, const int32_t cnt[3]) {
  int32_t one = coll_li(c, 1);
  for (int i = 0; i < 3; i++)
    coll_store_desc_word(c, s, coll_sel(c, full, cnt[i], one), DESC_COUNT0 + i);
}

/* A fresh sreg: 1 where this chip's tails on side d carry groups (n > 1), else 0. */
static int32_t tails_full(Coll *c, int32_t n) {
  int32_t f = tile_mir_sreg(c->m);
  coll_rr(c, TILE_MOP_SLT, f, coll_li(c, 1), n);
  return f;
}

/* The receive buffer and the descriptors of a side's first iteration, which reads the
 * slots. */
static void side_begin(Level *L, Part *x, Chunk *h, int d) {
  Coll *c = L->c;
  Side *s = &h->side[d];
  int64_t most = 0; /* chip q receives q (p - 1 - q) groups rightward, as many leftward */
  for (int64_t q = 0; q < x->p; q++) most = q * (x->p - 1 - q) > most ? q * (x->p - 1 - q) : most;
  char name[64];
  snprintf(name, sizeof name, "a2a.line%c.%d", d ? '-' : '+', (int)c->m->nbufs);
  s->rb = tile_mir_buffer(c->m, name, TILE_SPACE_HBM, most * h->group > 64 ? most * h->group : 64,
                          1, 64);
  s->head0 = side_site(L, x, d, L->src, L->dst, h->group);
  s->tail0 = side_site(L, x, d, L->src, s->rb, tail_estimate(x, h));
  /* head from the slots: group runs in place, to the same places there */
  init_word(c, &s->head0, h->sub, DESC_COUNT0);
  init_word(c, &s->head0, x->inner, DESC_COUNT1);
  init_word(c, &s->head0, x->outer, DESC_COUNT2);
  init_word(c, &s->head0, L->blk, DESC_SRC_STRIDE1);
  init_word(c, &s->head0, x->ostride, DESC_SRC_STRIDE2);
  init_word(c, &s->head0, L->blk, DESC_DST_STRIDE1);
  init_word(c, &s->head0, x->ostride, DESC_DST_STRIDE2);
  /* tail from the slots: (n - 1) * inner runs blk apart per outer index, packed */
  int32_t n = side_groups(c, x, d), n1 = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_ADDI, n1, n, -1);
  int32_t cnt[3] = {coll_li(c, h->sub), coll_times(c, n1, x->inner), coll_li(c, x->outer)};
  put_counts(c, &s->tail0, tails_full(c, n), cnt);
  init_word(c, &s->tail0, L->blk, DESC_SRC_STRIDE1);
  init_word(c, &s->tail0, x->ostride, DESC_SRC_STRIDE2);
  init_word(c, &s->tail0, h->sub, DESC_DST_STRIDE1);
  coll_store_desc_word(c, &s->tail0, coll_times(c, n1, h->run), DESC_DST_STRIDE2);
}

/* The descriptors of the later iterations, which read the receive buffer: made after
 * the first sends, so that those leave at once. */
static void side_later(Level *L, Part *x, Chunk *h, int d) {
  Coll *c = L->c;
  Side *s = &h->side[d];
  s->head = side_site(L, x, d, s->rb, L->dst, h->group);
  s->tail = side_site(L, x, d, s->rb, s->rb, tail_estimate(x, h));
  int32_t n = side_groups(c, x, d), n1 = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_ADDI, n1, n, -1);
  int32_t n_run = coll_times(c, n, h->run), n1_run = coll_times(c, n1, h->run);
  /* head from a bundle of n groups: inner runs per outer index, to their places */
  init_word(c, &s->head, h->sub, DESC_COUNT0);
  init_word(c, &s->head, x->inner, DESC_COUNT1);
  init_word(c, &s->head, x->outer, DESC_COUNT2);
  init_word(c, &s->head, h->sub, DESC_SRC_STRIDE1);
  coll_store_desc_word(c, &s->head, n_run, DESC_SRC_STRIDE2);
  init_word(c, &s->head, L->blk, DESC_DST_STRIDE1);
  init_word(c, &s->head, x->ostride, DESC_DST_STRIDE2);
  /* tail from a bundle: n - 1 groups per outer index, packed again */
  int32_t cnt[3] = {n1_run, coll_li(c, x->outer), coll_li(c, 1)};
  put_counts(c, &s->tail, tails_full(c, n), cnt);
  coll_store_desc_word(c, &s->tail, n_run, DESC_SRC_STRIDE1);
  coll_store_desc_word(c, &s->tail, n1_run, DESC_DST_STRIDE1);
}

/* One transfer of site s from src_at to dst_at where `real`; elsewhere the level's
 * ghost descriptor (one byte between two places of the ghost buffer, signalling no one)
 * takes its place: the dma reads the descriptor whose address a register selects. */
static void send(Level *L, const TileDmaSite *s, int32_t real, int32_t src_at, int32_t dst_at) {
  Coll *c = L->c;
  coll_store_desc_word(c, s, src_at, DESC_SRC_LO);
  coll_store_desc_word(c, s, dst_at, DESC_DST_LO);
  TileDmaSite at = *s;
  at.desc_reg = coll_sel(c, real, s->desc_reg, coll_addr(c, L->ghost_desc, 0));
  if (L->inflight >= L->cap) { /* one of this chip's sends lands first */
    coll_wait_sem(c, c->sem_sent[0], 1, -1);
    L->inflight--;
  }
  tile_dma_issue(c->cx, &at, -1, 0, -1, 0);
  L->inflight++;
}

/* Waits for the next arrival slot of side d: a real arrival, or where the neighbour
 * sends nothing in that iteration, a credit. Rightward, chip q - 1 sends in iterations
 * 0 .. q - 1; leftward chip q + 1 in 0 .. p - 2 - q. */
static void slot_wait(Level *L, Part *x, int d) {
  Coll *c = L->c;
  int64_t i = x->waited[d] / (2 * x->nch);
  int32_t q = c->coord[x->k];
  int32_t real = d == 0 ? coll_in_range(c, q, i + 1, x->p - 1) : coll_in_range(c, q, 0, x->p - 2 - i);
  CollCredit cr = coll_credit(c, real, d, x->k, c->sem_sent[1]);
  coll_credit_wait(c, &cr);
  L->credits++;
  x->waited[d]++;
}

/* Iteration it of chunk h's side d: the waits up to its tail that arrived at it - 1
 * (every slot the neighbour sent before included), then the tail and the head this chip
 * sends. */
static void side_step(Level *L, Part *x, Chunk *h, int d, int64_t it) {
  Coll *c = L->c;
  Side *s = &h->side[d];
  int64_t tail_slot = 2 * ((it - 1) * x->nch + (h - x->ch));
  if (it == 1) side_later(L, x, h, d);
  while (it > 0 && x->waited[d] <= tail_slot) slot_wait(L, x, d);
  int32_t q = c->coord[x->k], n = side_groups(c, x, d);
  int32_t real = d == 0 ? coll_in_range(c, q, it, x->p - 2) : coll_in_range(c, q, 1, x->p - 1 - it);
  int32_t full = tails_full(c, n), n1 = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_ADDI, n1, n, -1);
  int32_t rb = coll_addr(c, s->rb, 0), q_step = coll_times(c, q, x->step);

  /* the tail: into the next chip's region of this iteration, (n - 1) groups of its n - 1;
   * a tail with no groups moves one byte from the start of its source */
  int32_t dst_at = it ? coll_plus(c, rb, coll_times(c, n1, it * h->group)) : rb;
  int32_t at = -1; /* what arrived at it - 1 */
  if (it == 0) {
    int32_t from = coll_addr(c, L->src, h->off); /* groups q + 2 .. p - 1, or 0 .. q - 2 */
    if (d == 0) {
      from = coll_plus(c, from, q_step);
      coll_ri(c, TILE_MOP_ADDI, from, from, 2 * x->step);
    }
    send(L, &s->tail0, real, coll_sel(c, full, from, coll_addr(c, L->src, 0)), dst_at);
  } else {
    at = coll_plus(c, rb, coll_times(c, n, (it - 1) * h->group));
    int32_t from = at;
    if (d == 0) { /* the groups after the head */
      from = tile_mir_sreg(c->m);
      coll_ri(c, TILE_MOP_ADDI, from, at, h->run);
    }
    send(L, &s->tail, real, coll_sel(c, full, from, rb), dst_at);
  }

  /* the head: the next chip's group, from the chip at q -/+ it, to its place there */
  int32_t origin = coll_plus(c, coll_addr(c, L->dst, h->off), q_step);
  if (it) coll_ri(c, TILE_MOP_ADDI, origin, origin, d == 0 ? -it * x->step : it * x->step);
  if (it == 0) {
    int32_t from = coll_plus(c, coll_addr(c, L->src, h->off), q_step);
    coll_ri(c, TILE_MOP_ADDI, from, from, d == 0 ? x->step : -x->step);
    send(L, &s->head0, real, from, origin);
  } else {
    int32_t from = d == 0 ? at : coll_plus(c, at, coll_times(c, n1, h->run)); /* leftward: the last */
    send(L, &s->head, real, from, origin);
  }
}

/* Sub-chunks of a part of sub bytes on x's axis, one of nparts. They shorten each
 * level's fill and drain, and on lines longer than 4 the waits of links for whole tails
 * from upstream; each adds its step's work (scalar code, two DMAs a side, credits) at
 * every iteration. So each sub-chunk's group should take at least LINE_A2A_MIN_CYCLES
 * on a link (measured on v5e-like: shorter ones cost more than they save), and the
 * sends of one iteration (two a side, part and sub-chunk) should about fit what may be
 * in flight, else a chip stalls for its own sends to land while arrivals wait to be
 * forwarded. */
enum { LINE_A2A_MIN_CYCLES = 250 };
static int line_chunks(const Level *L, const Part *x, int64_t sub, int nparts) {
  const TileTarget *t = L->c->cx->target;
  int64_t ser = coll_link_cycles(t, x->outer * x->inner * sub);
  int64_t n = ser / LINE_A2A_MIN_CYCLES;
  int64_t fit = L->cap / (4 * nparts);
  if (ser / 2 > tile_target_hop_cycles(t)) fit = (L->cap + 4 * nparts - 1) / (4 * nparts);
  n = n < fit ? n : fit;
  n = n < LINE_A2A_SUBS ? n : LINE_A2A_SUBS;
  n = n < sub ? n : sub;
  return n < 1 ? 1 : (int)n;
}

/* This chip's own group stays, at the same place. */
static void own_copy(Level *L, const Part *x, int64_t off, int64_t sub) {
  Coll *c = L->c;
  TileDmaShape own = {.count0 = sub, .count1 = x->inner, .count2 = x->outer,
                      .src_stride1 = L->blk, .src_stride2 = x->ostride,
                      .dst_stride1 = L->blk, .dst_stride2 = x->ostride};
  int32_t at = coll_times(c, c->coord[x->k], x->step);
  coll_ri(c, TILE_MOP_ADDI, at, at, off);
  coll_local_copy(c, L->src, 0, coll_plus(c, coll_addr(c, L->src, 0), at), L->dst, 0,
                  coll_plus(c, coll_addr(c, L->dst, 0), at), own);
}

void coll_line_a2a_level(Coll *c, const CollLinePart *parts, int n, int32_t src, int32_t dst,
                         int64_t blk) {
  if (n == 0) return;
  Level L = {.c = c, .src = src, .dst = dst, .blk = blk};
  char name[64];
  snprintf(name, sizeof name, "a2a.ghost.%d", (int)c->m->nbufs);
  L.ghost = tile_mir_buffer(c->m, name, TILE_SPACE_HBM, 64, 1, 64);
  snprintf(name, sizeof name, "a2a.ghostdesc.%d", (int)c->m->nbufs);
  TileDmaShape byte = coll_flat(1);
  L.ghost_desc = tile_dma_desc_buffer(c->m, name, L.ghost, 0, L.ghost, 32, &byte, c->sem_sent[0]);
  L.cap = c->cx->target->dma_outstanding - 3;
  if (L.cap < 1) L.cap = 1;
  Part xs[TILE_MAX_TORUS_RANK];
  int64_t iters = 0;
  for (int i = 0; i < n; i++) {
    Part *x = &xs[i];
    int k = parts[i].k;
    *x = (Part){.k = k, .p = c->ax[k].p, .outer = 1, .inner = 1};
    for (int j = 0; j < k; j++) x->outer *= c->ax[j].p;
    for (int j = k + 1; j < c->naxes; j++) x->inner *= c->ax[j].p;
    x->step = x->inner * blk;
    x->ostride = x->p * x->step;
    x->nch = line_chunks(&L, x, parts[i].sub, n);
    for (int s = 0; s < x->nch; s++) {
      Chunk *h = &x->ch[s];
      h->off = parts[i].off + parts[i].sub * s / x->nch;
      h->sub = parts[i].off + parts[i].sub * (s + 1) / x->nch - h->off;
      h->run = x->inner * h->sub;
      h->group = x->outer * h->run;
      for (int d = 0; d < 2; d++) side_begin(&L, x, h, d);
    }
    iters = x->p - 1 > iters ? x->p - 1 : iters;
  }
  for (int64_t it = 0; it < iters; it++) {
    for (int s = 0; s < LINE_A2A_SUBS; s++)
      for (int i = 0; i < n; i++)
        for (int d = 0; d < 2; d++)
          if (it < xs[i].p - 1 && s < xs[i].nch) side_step(&L, &xs[i], &xs[i].ch[s], d, it);
    /* The own groups after the first sends, under their transfers. */
    if (it == 0)
      for (int i = 0; i < n; i++)
        own_copy(&L, &xs[i], parts[i].off, parts[i].sub);
  }
  for (int i = 0; i < n; i++)
    for (int d = 0; d < 2; d++)
      while (xs[i].waited[d] < 2 * xs[i].nch * (xs[i].p - 1)) slot_wait(&L, &xs[i], d);
  if (L.inflight) coll_wait_sem(c, c->sem_sent[0], L.inflight, -1);
  if (L.credits) coll_wait_sem(c, c->sem_sent[1], L.credits, -1);
}
