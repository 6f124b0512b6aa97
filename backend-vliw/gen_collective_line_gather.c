/* all_gather over axes without wraparound (lines): every block flows straight outward
 * both ways, so a level takes p - 1 hop latencies (gen_collective_int.h).
 *
 * A level of the in-place all_gather holds p blocks, block j (the data of the chip at
 * coordinate j of the level's axis) at base + j * step, the same address on every chip;
 * each chip starts with its own block q and must end with all of them. Halfway round a
 * ring both ways (gen_collective_gather.c), whole blocks take p / 2 steps, but on a line
 * the ring's closing step routes across the whole line, so each step costs p - 1 hop
 * latencies somewhere. Here a block only ever moves to a neighbour, outward from its
 * owner, in iterations t = 0 .. p - 1:
 *
 *   rightward: at t >= 1 wait for one arrival from the left (block q - t, real iff
 *     t <= q); at t <= p - 2 send block q - t to the right neighbour (real iff
 *     q - t >= 0 and q <= p - 2);
 *   leftward: the mirror image (q' = p - 1 - q, block q + t, from the right).
 *
 * Block q - t reaches chip q at iteration t and goes on at once, so block j reaches chip
 * j + t after t hops: the last block arrives after p - 1 hops. Both directions run in
 * the same iterations, one on each one-way link of a pair, and every block goes as up
 * to LG_SUBS sub-chunks (parts of each of its runs), each sent on as soon as it has
 * arrived, so a chain of p - 1 hops costs one sub-chunk's transfer per hop rather than
 * a block's. The link into an end chip carries p - 1 blocks, so a level over one line
 * moves at the rate of one link; coll_line_all_gather therefore cuts each shard in one
 * part per axis where that is quicker, as coll_all_gather_parts does, and runs the
 * parts' lines (each level one line per axis, in rotated orders; an axis of 2 is a line
 * too) in the same iterations, so every axis's links carry data at once. Lines of
 * different lengths share the iterations, the shorter done early.
 *
 * Every chip runs the same code, with the tools of gen_collective_line.c (its module
 * comment): each send's peer and arrival semaphore are chosen at run time, and a wait
 * with no sender on its side is first given a "credit" (a 4-byte local DMA signalling
 * that side's semaphore). A send with no receiver (a "ghost") copies this chip's own
 * block onto itself and signals no one: the same bytes, in a place no other chip
 * writes, so it needs no scratch of the block's extent (a strided block spans much of
 * the result).
 *
 * Semaphores: arrivals from the left count on coll_recv_sem(c, 0, k), from the right on
 * coll_recv_sem(c, 1, k), each with one sender (the neighbour), whose transfers arrive
 * in order. Within a level a side's real arrivals come first (iterations 1 .. q from the
 * left) and its credits after, and a chip waits for its credits to land (two at a time,
 * one per side) before it waits on a side again. So when a wait for a real arrival
 * passes, every credit this chip gave itself on that semaphore has landed and been
 * matched by an earlier wait, and the count can only come from that arrival (or a later
 * one from the same sender, behind it). That also makes a later level on the same axis
 * (the parts rotate through the axes) and the next collective safe: a credit wait that
 * takes an early arrival leaves its credit for the wait that arrival was meant for.
 *
 * Each place of the result is written once per run (by the one neighbour that brings
 * its block), so an early arrival overwrites nothing a slower chip still reads.
 *
 * DMAs in flight: at most n * depth sends per direction over a level's n lines (a send
 * first waits for an earlier one of its direction to land), two credits, and nothing
 * from an earlier level (each drains its sends): coll_line_gather_inflight. */
#include "dma_desc.h"
#include "gen_collective_int.h"

/* Sub-chunks per block at most. */
enum { LG_SUBS = 4 };
/* One line keeps at most this many DMAs in flight (where dma.outstanding allows, less
 * the two that coll_depth also leaves): more sends than LG_SUBS per direction would gain
 * nothing, and the rest may go to a later matmul's weights (lower_prefetch.c). Several
 * lines at once take what the target allows: each needs a few sends in flight. */
enum { LG_INFLIGHT = 2 * LG_SUBS + 2 };
/* Estimated cycles each more sub-chunk adds per line (its sends, credits and waits, in
 * one program order); a hop costs each line COLL_STEP_OVERHEAD besides its latency and
 * transfer. */
enum { LG_SUB_OVERHEAD = 12 };

/* Sends per direction and line in flight, for n lines at once: what the bound leaves
 * beside two credits. */
static int64_t line_depth(const Coll *c, int n) {
  int64_t most = c->cx->target->dma_outstanding - 2;
  if (n == 1 && most > LG_INFLIGHT) most = LG_INFLIGHT;
  int64_t d = (most - 2) / (2 * n);
  return d < 1 ? 1 : d;
}

int32_t coll_line_gather_inflight(const Coll *c, int n) {
  return (int32_t)(2 * n * line_depth(c, n) + 2);
}

bool coll_line_gather_applies(const Coll *c, int k) {
  const CollAxis *a = &c->ax[k];
  return coll_is_line(a) &&
         coll_line_gather_inflight(c, 1) <= c->cx->target->dma_outstanding;
}


/* Estimated cycles of a level of n lines over axes like k with blocks of blk bytes in s
 * sub-chunks: the chain of p - 1 hops, each of one sub-chunk, then the rest of the
 * block; or the link into an end chip, busy with p - 1 blocks, where that is longer. */
static int64_t level_cycles(const Coll *c, int k, int64_t blk, int64_t s, int n) {
  const CollAxis *a = &c->ax[k];
  int64_t hop = a->hops * tile_target_hop_cycles(c->cx->target), sub = coll_link_cycles(c->cx->target, blk / s);
  int64_t chain = (a->p - 1) * (hop + n * COLL_STEP_OVERHEAD + sub) +
                  (s - 1) * (sub + n * LG_SUB_OVERHEAD);
  int64_t link = (a->p - 1) * coll_link_cycles(c->cx->target, blk) + hop + n * COLL_STEP_OVERHEAD;
  return chain > link ? chain : link;
}

/* Estimated cycles of a level of lines in s sub-chunks: its slowest line. */
static int64_t lines_cycles(const Coll *c, const CollLineBlocks *lines, int n, int64_t s) {
  int64_t most = 0;
  for (int i = 0; i < n; i++) {
    const TileDmaShape *sh = &lines[i].shape;
    int64_t blk = sh->count0 * sh->count1 * sh->count2;
    int64_t t = level_cycles(c, lines[i].k, blk, s, n);
    most = t > most ? t : most;
  }
  return most;
}

/* The sub-chunks of a level's blocks: each run of every line split in whole elements,
 * at most the send depth, the count the estimate finds quickest (the first of equals). */
static int64_t level_subs(const Coll *c, const CollLineBlocks *lines, int n, int eb) {
  int64_t most = line_depth(c, n) < LG_SUBS ? line_depth(c, n) : LG_SUBS, best = 1;
  for (int64_t s = 2; s <= most; s++) {
    bool fits = true;
    for (int i = 0; i < n; i++) fits &= lines[i].shape.count0 % (s * eb) == 0;
    if (fits && lines_cycles(c, lines, n, s) < lines_cycles(c, lines, n, best)) best = s;
  }
  return best;
}

static int64_t level_estimate(const Coll *c, const CollLineBlocks *lines, int n, int eb) {
  return lines_cycles(c, lines, n, level_subs(c, lines, n, eb));
}

int64_t coll_line_gather_estimate(const Coll *c, int k, int64_t blk, int eb) {
  CollLineBlocks l = {.k = k, .shape = coll_flat(blk)};
  return level_estimate(c, &l, 1, eb);
}

/* One direction of one line in an iteration: the site (peer and arrival semaphore
 * chosen at run time) and the address of the block it sends, which is also where the
 * block goes on the receiver (a ghost: where it lies here). */
typedef struct LineSend {
  TileDmaSite site;
  int32_t at;
} LineSend;

/* Rewrites a site's descriptor to move `shape` (the same strides both sides) rather
 * than the contiguous bytes coll_line_site gives it: the shape words are initial
 * contents, which no code stores. */
static void set_shape(TileMir *m, const TileDmaSite *s, const TileDmaShape *shape) {
  const int word[] = {DESC_COUNT0, DESC_COUNT1, DESC_COUNT2, DESC_SRC_STRIDE1,
                      DESC_SRC_STRIDE2, DESC_DST_STRIDE1, DESC_DST_STRIDE2};
  int64_t v[] = {shape->count0, shape->count1 < 1 ? 1 : shape->count1,
                 shape->count2 < 1 ? 1 : shape->count2, shape->src_stride1,
                 shape->src_stride2, shape->dst_stride1, shape->dst_stride2};
  for (int i = 0; i < 7; i++) {
    uint8_t *w = m->bufs[s->desc].init + word[i] * 4;
    for (int b = 0; b < 4; b++) w[b] = (uint8_t)((uint32_t)(int32_t)v[i] >> (8 * b));
  }
}

void coll_line_gather_level(Coll *c, const CollLineBlocks *lines, int n, int32_t buf, int eb) {
  TileMir *m = c->m;
  const int64_t S = level_subs(c, lines, n, eb), depth = n * line_depth(c, n);
  int64_t p = 0;
  for (int i = 0; i < n; i++) p = c->ax[lines[i].k].p > p ? c->ax[lines[i].k].p : p;
  int32_t credits = tile_mir_sem(m), none = coll_li(c, -1);
  int32_t own[TILE_MAX_TORUS_RANK], arrive[TILE_MAX_TORUS_RANK][2];
  TileDmaShape sub[TILE_MAX_TORUS_RANK];
  for (int i = 0; i < n; i++) {
    const CollLineBlocks *l = &lines[i];
    own[i] = tile_mir_sreg(m); /* block q: what a ghost copies onto itself */
    coll_ri(c, TILE_MOP_MULI, own[i], c->coord[l->k], l->step);
    coll_rr(c, TILE_MOP_ADD, own[i], own[i], l->base);
    /* d = 0: rightward, to the next chip toward +, which counts it on its left side's
     * semaphore (that of rings toward +); d = 1: leftward */
    for (int d = 0; d < 2; d++) arrive[i][d] = coll_li(c, coll_recv_sem(c, d, l->k));
    sub[i] = l->shape;
    sub[i].count0 /= S;
  }
  int64_t issued[2] = {0, 0}, waited[2] = {0, 0};
  for (int64_t t = 0; t < p; t++) {
    CollCredit cr[TILE_MAX_TORUS_RANK][2];
    LineSend s[TILE_MAX_TORUS_RANK][2];
    for (int i = 0; i < n; i++)
      for (int d = 0; d < 2; d++) {
        int k = lines[i].k;
        int64_t pk = c->ax[k].p;
        int32_t q = c->coord[k];
        if (t >= pk) continue; /* a shorter line is done */
        if (t >= 1) { /* an arrival is real iff block q -/+ t exists */
          int32_t real = d == 0 ? coll_in_range(c, q, t, pk - 1)
                                : coll_in_range(c, q, 0, pk - 1 - t);
          cr[i][d] = coll_credit(c, real, d, k, credits);
        }
        if (t > pk - 2) continue;
        /* a send is real iff block q -/+ t exists and a neighbour lies that way */
        int32_t real = d == 0 ? coll_in_range(c, q, t, pk - 2)
                              : coll_in_range(c, q, 1, pk - 1 - t);
        int32_t at = tile_mir_sreg(m);
        coll_ri(c, TILE_MOP_ADDI, at, own[i], (d == 0 ? -t : t) * lines[i].step);
        s[i][d].at = coll_sel(c, real, at, own[i]);
        int32_t peer = coll_sel(c, real, c->next[d][k], c->chipid);
        int32_t sem = coll_sel(c, real, arrive[i][d], none);
        int64_t bytes = sub[i].count0 * sub[i].count1 * sub[i].count2;
        s[i][d].site = coll_line_site(c, buf, buf, bytes, peer, sem, c->sem_sent[d], true);
        set_shape(m, &s[i][d].site, &sub[i]);
      }
    for (int64_t j = 0; j < S; j++)
      for (int i = 0; i < n; i++) {
        int64_t pk = c->ax[lines[i].k].p;
        if (t >= pk) continue;
        for (int d = 0; d < 2; d++) {
          if (t >= 1) coll_credit_wait(c, &cr[i][d]);
          if (t > pk - 2) continue;
          if (issued[d] - waited[d] >= depth) {
            coll_wait_sem(c, c->sem_sent[d], 1, -1);
            waited[d]++;
          }
          int32_t at = tile_mir_sreg(m);
          coll_ri(c, TILE_MOP_ADDI, at, s[i][d].at, j * sub[i].count0);
          tile_dma_issue(c->cx, &s[i][d].site, at, 0, at, 0);
          issued[d]++;
        }
        if (t >= 1) coll_wait_sem(c, credits, 2, -1); /* two credits in flight at most */
      }
  }
  for (int d = 0; d < 2; d++)
    if (issued[d] > waited[d]) coll_wait_sem(c, c->sem_sent[d], issued[d] - waited[d], -1);
}

/* ---- all_gather over lines, in parts ---- */

/* An axis the parts may run as a line: no wraparound (of 2 chips too: each sends its
 * block to the other, one link each way). */
static bool line_axis(const Coll *c, int k) { return !c->ax[k].wrap && c->ax[k].p >= 2; }

bool coll_line_all_gather_applies(const Coll *c) {
  int longer = 0;
  for (int k = 0; k < c->naxes; k++) {
    if (c->ax[k].p < 2) continue;
    if (!line_axis(c, k)) return false;
    longer += c->ax[k].p > 2;
  }
  return longer > 0 && coll_line_gather_inflight(c, 1) <= c->cx->target->dma_outstanding;
}

/* How the shards go in parts: part i is bytes [at[i], at[i + 1]) of every shard and
 * gathers over the axes in its own order, so that each level keeps n axes busy. */
typedef struct LinePlan {
  int n, nact, act[TILE_MAX_TORUS_RANK];
  int64_t stride[TILE_MAX_TORUS_RANK]; /* bytes between neighbouring coordinates */
  int64_t at[TILE_MAX_TORUS_RANK + 1];
} LinePlan;

/* The axis part i gathers at level l: one part goes innermost first (the order of
 * gather_halfway), n parts start at axis i each and go on in the order of the axes. */
static int plan_axis(const LinePlan *pl, int i, int l) {
  return pl->n == 1 ? pl->act[pl->nact - 1 - l] : pl->act[(i + l) % pl->nact];
}

static LinePlan make_plan(const Coll *c, int64_t run, int eb, int n) {
  CollParts pp = coll_parts(c, run);
  LinePlan pl = {.n = n, .nact = pp.nact};
  for (int k = 0; k < pp.nact; k++) pl.act[k] = pp.act[k];
  for (int k = 0; k < c->naxes; k++) pl.stride[k] = pp.stride[k];
  /* Whole granules of LG_SUBS elements where the shard allows (so that a part's runs
   * split into sub-chunks), as evenly as they go. */
  int64_t gran = run % (LG_SUBS * eb) == 0 ? LG_SUBS * eb : eb, ngran = run / gran;
  for (int i = 0; i < n; i++) pl.at[i + 1] = pl.at[i] + (ngran / n + (i < ngran % n)) * gran;
  return pl;
}

/* Level l's line of each part: block j of part i is its slice of every shard whose rank
 * differs from this chip's only on the axes it gathered before, runs at strides of
 * those axes; done[i][k]: part i gathered axis k before. Bases are left to plan_bases. */
static void plan_level(const Coll *c, const LinePlan *pl, int l, CollLineBlocks *lines,
                       bool done[][TILE_MAX_TORUS_RANK]) {
  for (int i = 0; i < pl->n; i++) {
    int ax = plan_axis(pl, i, l);
    TileDmaShape s = {.count0 = pl->at[i + 1] - pl->at[i], .count1 = 1, .count2 = 1};
    for (int k = 0; k < TILE_MAX_TORUS_RANK; k++) done[i][k] = false;
    for (int e = 0; e < l; e++) {
      int k = plan_axis(pl, i, e);
      done[i][k] = true;
      if (s.count1 == 1) {
        s.count1 = c->ax[k].p;
        s.src_stride1 = s.dst_stride1 = pl->stride[k];
      } else {
        s.count2 = c->ax[k].p;
        s.src_stride2 = s.dst_stride2 = pl->stride[k];
      }
    }
    lines[i] = (CollLineBlocks){.k = ax, .base = -1, .step = pl->stride[ax], .shape = s};
  }
}

/* Block 0's address of each line: its part's offset, plus this chip's coordinates on
 * the axes still to gather (0 on those gathered: the block spans them). */
static void plan_bases(Coll *c, const LinePlan *pl, int32_t ybuf, CollLineBlocks *lines,
                       bool done[][TILE_MAX_TORUS_RANK]) {
  for (int i = 0; i < pl->n; i++) {
    int32_t base = coll_addr(c, ybuf, pl->at[i]);
    for (int k = 0; k < c->naxes; k++) {
      if (done[i][k] || k == lines[i].k || c->ax[k].p < 2) continue;
      int32_t t = tile_mir_sreg(c->m);
      coll_ri(c, TILE_MOP_MULI, t, c->coord[k], pl->stride[k]);
      coll_rr(c, TILE_MOP_ADD, base, base, t);
    }
    lines[i].base = base;
  }
}

static int64_t plan_estimate(const Coll *c, const LinePlan *pl, int eb) {
  int64_t cycles = 0;
  for (int l = 0; l < pl->nact; l++) {
    CollLineBlocks lines[TILE_MAX_TORUS_RANK];
    bool done[TILE_MAX_TORUS_RANK][TILE_MAX_TORUS_RANK];
    plan_level(c, pl, l, lines, done);
    cycles += level_estimate(c, lines, pl->n, eb);
  }
  return cycles;
}

/* One part per axis (each level then has a line on every axis) where the estimate says
 * it is quicker than one part (small shards pay more DMAs for nothing) and every part
 * gets a granule. */
static LinePlan choose_plan(const Coll *c, int64_t run, int eb) {
  LinePlan one = make_plan(c, run, eb, 1);
  int n = one.nact;
  if (n < 2 || coll_line_gather_inflight(c, n) > c->cx->target->dma_outstanding) return one;
  LinePlan many = make_plan(c, run, eb, n);
  if (many.at[n] == many.at[n - 1]) return one; /* fewer granules than parts */
  return plan_estimate(c, &many, eb) < plan_estimate(c, &one, eb) ? many : one;
}

int64_t coll_line_all_gather_estimate(const Coll *c, int64_t run, int eb) {
  LinePlan pl = choose_plan(c, run, eb);
  return plan_estimate(c, &pl, eb);
}

/* Shard r (rank r, row-major over the op's axes) lies at r * run in the result, as in
 * coll_all_gather_parts. */
void coll_line_all_gather(Coll *c, TileTensorRef x, TileTensorRef y, int64_t run) {
  int eb = tile_lower_elem_bytes((TileElem)x.elem);
  LinePlan pl = choose_plan(c, run, eb);
  c->cx->dma_cap = coll_line_gather_inflight(c, pl.n);
  int32_t mine = coll_addr(c, y.buf, 0);
  for (int k = 0; k < c->naxes; k++) {
    int32_t t = tile_mir_sreg(c->m);
    coll_ri(c, TILE_MOP_MULI, t, c->coord[k], pl.stride[k]);
    coll_rr(c, TILE_MOP_ADD, mine, mine, t);
  }
  coll_local_copy(c, x.buf, 0, -1, y.buf, 0, mine, coll_flat(run));
  for (int l = 0; l < pl.nact; l++) {
    CollLineBlocks lines[TILE_MAX_TORUS_RANK];
    bool done[TILE_MAX_TORUS_RANK][TILE_MAX_TORUS_RANK];
    plan_level(c, &pl, l, lines, done);
    plan_bases(c, &pl, y.buf, lines, done);
    coll_line_gather_level(c, lines, pl.n, y.buf, eb);
  }
}
