/* reduce_scatter for small and medium operands, and large ones over one line
 * (gen_collective_int.h), an axis at a time. Over an axis without wraparound (a line)
 * every slice's reduction flows along the line from both ends toward the chip that
 * keeps it, so a level costs p - 1 hop
 * latencies and each link direction carries at most (p - 1) / p of the level's data,
 * once. Over one with wraparound it flows toward its owner from both sides, half the
 * ring each ("half rings", below): floor(p / 2) hop latencies, about half the level's
 * data on each link direction.
 *
 * The data: slice j of the operand (padded to whole vreg tiles) is block j of the
 * working copy, by the rank of its chip over the op's axes (row-major, the first axis
 * major), as gen_reduce_scatter lays it out. Level k (axis k, p chips, this chip at q)
 * works on the region this chip kept from the levels before: p chunks of C bytes,
 * chunk j for the chip at coordinate j. A wrapping axis of more than two chips runs
 * half rings (ring_level), an axis of two one ring of gen_collective_ring.c on the same
 * layout; a line runs two flows:
 *
 *   rightward (R), event i = 0 .. p - 2, chunk j = p - 1 - i: chip q adds what came
 *     from its left (real when 1 <= q <= j) into its chunk j, and sends the partial to
 *     its right neighbour when q < j. Chip 0 sends its own chunk; the owner j combines
 *     and keeps it;
 *   leftward (L), the mirror image, event i for chunk j = i: chip q adds what came
 *     from its right (real when j <= q <= p - 2) and sends left when q > j.
 *
 * A chunk goes as up to LRS_MAX_SUBS sub-chunks, each combined and sent on as soon as
 * it has arrived, so a hop costs one sub-chunk's transfer. Chip q's R arrivals start
 * about q hops after the level starts, its L arrivals about p - 1 - q hops after, and
 * then each flow brings a sub-chunk per sub-chunk's transfer, so no one order of the two
 * flows suits every chip: a loop taking both flows' event i in turn costs 2 (p - 1)
 * hops (each end waits for what the other end sends last), and one flow's events before
 * the other's hold the second flow back on every chip it passes. Each chip works
 * through 2 (p - 1) subs slots (a sub-chunk of an event each) in an order of its own
 * instead, read from a table by its position (chip_order): first the slots that send
 * on, in the order their arrivals are expected, then those that only combine into the
 * chunk it keeps, last those with nothing to do. Every chip runs the same code: what a
 * slot does is chosen at run time (as in gen_collective_line.c):
 *   - its flow, event and sub-chunk: the offsets, whether something arrives and whether
 *     the partial goes on (table words);
 *   - a combine without an arrival reads and writes a junk scratch area instead of the
 *     chunk, so a chunk is never rewritten while a send of it is in flight;
 *   - a send with no receiver is a ghost: from a scratch area that nothing stores to,
 *     into another, signalling no one.
 * Where the first level is a line and each slice is one run of the operand (so the
 * working copy is the operand's bytes as they lie), the working copy fills a sub-chunk
 * at a time, in the order the chip's slots first read them, one copy in flight: the
 * first sends wait for one sub-chunk's copy instead of the whole operand's (62k cycles
 * for 32 MiB on v5e-like), and the rest land under the transfers.
 *
 * Over two lines of as many chips (and no other axis) a level per axis would leave one
 * axis's links idle while the other's carry the whole operand. There the data goes in
 * two parts instead (plan_parts): part i is bytes [i * len, (i + 1) * len) of every
 * slice and takes the axes in its own order, act[i] then the other, so in phase 0 each
 * axis's links carry one half and in phase 1 each carries 1/p of the other half. A
 * phase's slots of both parts run in one order per chip (chip_order over both, by
 * expected arrival), read from a table by both coordinates (a chip's order depends on
 * its place on both lines); each slot waits on both sides of both axes, with credits
 * for the three that bring it nothing. 32 MiB f32 over v5e-like's 8x8: 582,749
 * cycles, 1.06 times its busiest link's bytes (the levels one axis after the other:
 * 1,128,904; the rings in parts: 680,746).
 *
 * Each slice has one owner, which adds in an order fixed by its position (its own
 * chunk, then the partial of the flow that reaches it first, then the other's), so the
 * bits are the same on every run.
 *
 * Semaphores: arrivals from the left count on coll_recv_sem(c, 0, k), from the right on
 * coll_recv_sem(c, 1, k): one sender on another chip each, whose transfers arrive in
 * order. Every slot waits once on each side; a side with no arrival for it gets a
 * credit first (coll_credit_wait: issued just before its own wait). A flow's
 * real arrivals keep the order its sender sends them in, but on one semaphore credits
 * may come before, between and after them. That is sound because each credit is
 * issued immediately before the wait it is for: when a chip's n-th wait on a semaphore
 * passes, with m credit waits among the first n, at most m credits have been issued,
 * so at least n - m transfers of its sender have landed, and those are, in order, the
 * ones the n - m real waits so far expect (a credit wait may take the count of a
 * transfer that came early; the credit then stands in for it, and it has landed). Per
 * level the credits a chip issues equal its credit waits, and the level waits for
 * every credit to land before it ends, so no count is left behind for a later
 * collective but its sender's transfers.
 *
 * Buffers: the receive slots (per flow, one chunk per event) are written once per run;
 * a chunk is rewritten only by the combines of the flows that end at it (the owner,
 * which never sends it) or by the one combine before its single send; ghost and junk
 * scratch is a buffer no op names, so layout keeps it for the whole run and gives its
 * bytes to no one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dma_desc.h"
#include "gen_collective_int.h"

/* Sub-chunks per chunk at most: more overlap each hop with less of the transfer, each
 * costs two credits, a combine loop and a send. */
enum { LRS_MAX_SUBS = 4 };

/* Per event and sub-chunk: two credits and their waits, the address arithmetic, the
 * start of the combine loop and a send, about this many cycles (measured on the
 * emulator: a few dozen). */
enum { LRS_OVERHEAD = 40 };

/* Parts at most (LrsPlan.nparts): one per axis of a mesh of two lines. */
enum { LRS_MAX_PARTS = 2 };

/* An axis with wraparound whose slices flow half a ring each way (ring_level). */
static bool is_half_ring(const CollAxis *a) { return a->wrap && a->p > 2; }

/* On a ring of p, slice j's partials reach its owner from the h = floor(p / 2) chips
 * nearest it on each side; with even p the chip exactly across the ring is on both,
 * sending half its chunk each way where the sub-chunks split in halves (subs even),
 * else all of it toward - (ring_level). */
static int64_t half_hops(int64_t p) { return p / 2; }
/* Chunks a half ring's busier link carries per level, in halves. */
static int64_t half_link_halves(int64_t p, int64_t subs) {
  return p % 2 == 0 && subs % 2 ? p : p - 1;
}

/* What the op does per level, from the padded slice. */
typedef struct LrsPlan {
  /* Slices smaller than a vreg tile combine a row (one sublane) at a time: the VPU
   * loads and stores all sublanes of the row with a stride of 0 (the same bytes each),
   * so a slice pads to a row, not to a tile, and far fewer bytes cross the links. */
  bool rows;
  int64_t grain;                        /* bytes combined per vreg: a tile or a row */
  int64_t padded, total;                /* bytes of a slice and of the working copy */
  int64_t chunk[TILE_MAX_TORUS_RANK];   /* per level */
  int64_t subs[TILE_MAX_TORUS_RANK];    /* sub-chunks per chunk of a line or half ring */
  int64_t scratch;                      /* largest sub-chunk of a line: the ghost and junk
                                         * areas (0: no line) */
  int64_t vmem;                         /* working copy, receive slots, scratch */
  bool lines_only;                      /* no level of more than one chip runs a ring of
                                         * gen_collective_ring.c: each is a line or a
                                         * half ring */
  /* The first level is a line and the working copy is the operand's bytes as they lie
   * (each slice one run, not padded): it copies its sub-chunks in as its slots need
   * them (LrsLevel.fetch), so its first sends wait for one sub-chunk's copy, not the
   * whole operand's. */
  bool fetch;
  int first; /* the first level of more than one chip */
  /* Over two lines of as many chips (plan_parts): the data in two parts, bytes
   * [i * len, (i + 1) * len) of every slice in part i (len = padded / nparts), which
   * takes the axes in its own
   * order, act[i] then act[1 - i], so both axes' links carry data at once. Phase l runs
   * every part's level l, their slots in one order per chip; chunk and subs are then
   * per phase, not per axis. nparts 1: a level per axis, one after the other. */
  int nparts;
  int act[LRS_MAX_PARTS];
} LrsPlan;

/* The pace of a level's flows a sub-chunk at a time (level_cycles, chip_order): each
 * flow's first chip sends a chunk every `every` cycles and a sub-chunk every `step`
 * (its transfer or its combine, whichever is longer), and a sub-chunk moves on a hop
 * every `hop` (the latency, its transfer and its combine, `combine` cycles with two
 * loads a vreg). */
typedef struct LrsPace {
  int64_t every, step, hop, combine;
} LrsPace;

static LrsPace level_pace(const Coll *c, int k, int64_t chunk, int64_t subs, int64_t grain) {
  const TileTarget *t = c->cx->target;
  int64_t sub = chunk / subs, per = LRS_OVERHEAD + 2 * (sub / grain);
  int64_t s = coll_link_cycles(t, sub), step = s > per ? s : per;
  int64_t hop = c->ax[k].hops * tile_target_hop_cycles(t) + s + per;
  return (LrsPace){subs * step, step, hop, per};
}

/* Estimated cycles of one level: a line's farthest chunk crossing p - 1 hops a
 * sub-chunk at a time; the links at its ends, each carrying p - 1 chunks of the flow
 * that starts there (chip_order keeps them busy), and the hops to the middle; and the
 * slots every chip works through (those of nparts parts, each on its own axis):
 * whichever is the longest. A half ring's the same
 * three, over floor(p / 2) hops. A ring's p - 1 steps. */
static int64_t level_cycles(const Coll *c, int k, int64_t chunk, int64_t subs,
                            int64_t grain, int nparts) {
  const TileTarget *t = c->cx->target;
  const CollAxis *a = &c->ax[k];
  /* a step between neighbours: a->hops torus hops (more on a share of a dim) */
  int64_t hop = a->hops * tile_target_hop_cycles(t), p = a->p;
  if (!coll_is_line(a) && !is_half_ring(a))
    return (p - 1) * (LRS_OVERHEAD + hop + coll_link_cycles(t, chunk));
  const LrsPace pace = level_pace(c, k, chunk, subs, grain);
  const int64_t per = pace.combine;
  if (is_half_ring(a)) {
    /* a chain of half_hops(p) hops a sub-chunk at a time (its last combine the
     * owner's); the busier link's chunks; the p + 1 events of every chip (a send per
     * chunk but its own, two combines into its own) */
    int64_t n = half_hops(p);
    int64_t chain = n * pace.hop + (subs - 1) * pace.step;
    int64_t link = hop + coll_link_cycles(t, half_link_halves(p, subs) * chunk / 2) + 2 * per;
    int64_t work = (p + 1) * subs * per;
    int64_t most = chain > link ? chain : link;
    return most > work ? most : work;
  }
  int64_t chain = (p - 1) * pace.hop + (subs - 1) * pace.step;
  int64_t link = ((p - 1) / 2 + 1) * hop + coll_link_cycles(t, (p - 1) * chunk) + per;
  int64_t work = nparts * 2 * (p - 1) * subs * per;
  int64_t most = chain > link ? chain : link;
  return most > work ? most : work;
}

/* Sends a level keeps in flight: beside two credits per part and a local copy, what
 * coll_line_inflight allows. */
static int64_t send_depth(const Coll *c, int nparts) {
  int64_t d = coll_line_inflight(c) - 1 - 2 * nparts;
  return d < 1 ? 1 : d;
}

/* r's combine of one row per vreg (LrsPlan.rows): a row's bytes, the sublane stride 0. */
static CollReduce row_reduce(const Coll *c, const CollReduce *r) {
  CollReduce rr = *r;
  rr.tile_bytes = r->tile_bytes / c->cx->target->vreg_sublanes;
  rr.stride_reg = tile_lower_zero(c->cx);
  return rr;
}

static int64_t line_smem(int64_t p, int64_t subs, int nparts);

/* The sub-chunks per chunk the estimate makes quickest for a line or half ring level
 * on axis k (nparts parts, each with its own axis, for a line): a divisor of `units`
 * (the whole pieces a chunk may split into) up to LRS_MAX_SUBS whose line table stays
 * within a quarter of SMEM. */
static int64_t best_subs(const Coll *c, int k, int64_t chunk, int64_t units, int64_t grain,
                         int nparts) {
  const CollAxis *a = &c->ax[k];
  int64_t subs = 1, best = INT64_MAX;
  for (int64_t s = 1; s <= LRS_MAX_SUBS; s++) {
    if (units % s) continue;
    if (s > 1 && !is_half_ring(a) &&
        line_smem(a->p, s, nparts) > c->cx->target->smem_bytes / 4)
      continue;
    int64_t e = level_cycles(c, k, chunk, s, grain, nparts);
    if (e < best) best = e, subs = s;
  }
  return subs;
}

/* tile: the bytes of a vreg tile of the element type; whole: each slice is one run of
 * the operand */
static void plan_levels(const Coll *c, int64_t slice, int64_t tile, bool whole, LrsPlan *pl) {
  int64_t n = 1;
  for (int k = 0; k < c->naxes; k++) n *= c->ax[k].p;
  int64_t row = tile / c->cx->target->vreg_sublanes;
  pl->rows = slice <= tile - row;
  pl->grain = pl->rows ? row : tile;
  pl->padded = (slice + pl->grain - 1) / pl->grain * pl->grain;
  pl->total = pl->padded * n;
  pl->scratch = 0; /* no line: none */
  pl->vmem = pl->total;
  pl->lines_only = true;
  pl->nparts = 1;
  pl->first = 0;
  while (pl->first < c->naxes && c->ax[pl->first].p < 2) pl->first++;
  pl->fetch = pl->first < c->naxes && coll_is_line(&c->ax[pl->first]) && whole &&
              pl->padded == slice;
  int64_t region = pl->total;
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *a = &c->ax[k];
    int64_t chunk = pl->chunk[k] = region / a->p;
    region = chunk;
    pl->subs[k] = 1;
    if (a->p < 2) continue;
    if (!coll_is_line(a) && !is_half_ring(a)) {
      pl->lines_only = false;
      pl->vmem += chunk * (a->p - 1); /* the ring's receive slots */
      continue;
    }
    pl->subs[k] = best_subs(c, k, chunk, chunk / pl->grain, pl->grain, 1);
    if (is_half_ring(a)) {
      pl->vmem += 2 * half_hops(a->p) * chunk; /* a receive slot per event */
      continue;
    }
    pl->vmem += 2 * (a->p - 1) * chunk;
    if (pl->scratch < pl->grain) pl->scratch = pl->grain;
    if (chunk / pl->subs[k] > pl->scratch) pl->scratch = chunk / pl->subs[k];
  }
  pl->vmem += 3 * pl->scratch;
}

static int64_t estimate(const Coll *c, const LrsPlan *pl) {
  const TileTarget *t = c->cx->target;
  /* the copies in and out; a fetching first level copies in under its transfers, all
   * but one sub-chunk */
  int l0 = pl->nparts > 1 ? 0 : pl->first;
  int64_t copied = pl->fetch ? pl->chunk[l0] / pl->subs[l0] + pl->padded : 2 * pl->total;
  int64_t cycles = tile_target_xfer_cycles(t, copied, t->hbm_bw);
  if (pl->nparts > 1) {
    for (int l = 0; l < pl->nparts; l++)
      cycles += level_cycles(c, pl->act[0], pl->chunk[l], pl->subs[l], pl->grain, pl->nparts);
    return cycles;
  }
  for (int k = 0; k < c->naxes; k++)
    if (c->ax[k].p > 1) cycles += level_cycles(c, k, pl->chunk[k], pl->subs[k], pl->grain, 1);
  return cycles;
}

/* The parts of two lines (LrsPlan.nparts) where they apply: exactly two axes of more
 * than one chip, both lines of p chips on two torus dims, and slices of whole tiles,
 * one run of the operand each, that halve into whole tiles. Part i's working region
 * (n * len bytes at i * n * len) lays its slices out by their chips' coordinates in its
 * axis order, [j on act[i]][j on act[1 - i]][len]: phase 0's chunk j is the p slices at
 * j on act[i] (p * len bytes), phase 1's the one at j on the other axis of the chunk
 * phase 0 kept. A sub-chunk of phase 0 is p / subs whole slices, so it copies in from
 * the operand as one strided DMA. */
static bool plan_parts(const Coll *c, const LrsPlan *seq, LrsPlan *pl) {
  CollParts cp = coll_parts(c, seq->padded);
  const int *act = cp.act;
  if (cp.nact != LRS_MAX_PARTS || !seq->fetch || seq->rows) return false;
  /* fetch: the first axis, act[0], is a line */
  const CollAxis *a = &c->ax[act[0]], *b = &c->ax[act[1]];
  int64_t p = a->p, len = seq->padded / LRS_MAX_PARTS;
  /* on two torus dims, so that the parts' links are not the same */
  if (!coll_is_line(b) || b->p != p || a->dim == b->dim || len % seq->grain) return false;
  *pl = *seq;
  pl->nparts = LRS_MAX_PARTS;
  pl->act[0] = act[0];
  pl->act[1] = act[1];
  pl->vmem = pl->total;
  pl->scratch = pl->grain;
  for (int l = 0; l < LRS_MAX_PARTS; l++) {
    /* phase 0's sub-chunks are whole slices (its copies in), phase 1's whole tiles */
    int64_t chunk = pl->chunk[l] = l == 0 ? p * len : len;
    pl->subs[l] = best_subs(c, act[0], chunk, l == 0 ? p : len / pl->grain, pl->grain,
                            pl->nparts);
    pl->vmem += pl->nparts * 2 * (p - 1) * chunk;
    if (chunk / pl->subs[l] > pl->scratch) pl->scratch = chunk / pl->subs[l];
  }
  pl->vmem += 3 * pl->scratch;
  return true;
}

/* A level per axis, or the parts where they apply and are estimated quicker. */
static void plan(const Coll *c, int64_t slice, int64_t tile, bool whole, LrsPlan *pl) {
  plan_levels(c, slice, tile, whole, pl);
  LrsPlan pp;
  if (plan_parts(c, pl, &pp) && pp.vmem <= c->cx->target->vmem_bytes &&
      estimate(c, &pp) < estimate(c, pl))
    *pl = pp;
}

bool coll_line_rs_wins(const Coll *c, int64_t operand, int64_t slice, bool whole,
                       const CollReduce *r) {
  bool any = false;
  for (int k = 0; k < c->naxes; k++) any |= coll_is_line(&c->ax[k]) || is_half_ring(&c->ax[k]);
  if (!any) return false;
  LrsPlan pl;
  plan(c, slice, r->tile_bytes, whole, &pl);
  if (pl.vmem > c->cx->target->vmem_bytes) return false;
  int64_t line = estimate(c, &pl);
  /* The others: the one-shot all_reduce keeping a slice, and the rings (one direction
   * on the padded slices, or in parts over the axes and directions), a reduce-scatter
   * being half an all_reduce's estimate. */
  int64_t oneshot = coll_oneshot_estimate(c, operand, r);
  int64_t ring = coll_ring_estimate(c, pl.total, 1) / 2;
  /* The parts run only on slices of whole tiles, at least one per part (else the rings
   * of one direction do: reduce_scatter_parts in gen_collective.c). */
  int nparts = coll_parts(c, slice).nparts;
  int64_t parts = slice % r->tile_bytes == 0 && slice / r->tile_bytes >= nparts
                      ? coll_ring_estimate(c, operand, nparts) / 2
                      : INT64_MAX;
  /* coll_ring_estimate counts a line's closing steps as sharing links with the other
   * direction's, which a ring of one direction does not: there its step costs a hop
   * and a chunk's transfer, the closing one p - 2 hops more. */
  const TileTarget *t = c->cx->target;
  int64_t one_way = 2 * tile_target_xfer_cycles(t, operand, t->hbm_bw), region = operand;
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *a = &c->ax[k];
    region /= a->p;
    if (a->p < 2) continue;
    one_way += (a->p - 1) * (LRS_OVERHEAD + a->hops * tile_target_hop_cycles(t) +
                             coll_link_cycles(t, region));
    if (!a->wrap) one_way += (a->p - 2) * tile_target_hop_cycles(t);
  }
  if (one_way < ring) ring = one_way;
  return line < oneshot && line < ring && line < parts;
}


/* ---- the order of events ----
 *
 * Every chip works through 2 (p - 1) subs slots per part, each a sub-chunk of one event
 * of one flow of one part; which it is depends on the chip's position. Per position
 * and slot a table word says what the slot does: */
enum {
  W_REAL_L,       /* 1: a transfer arrives from the left (R flow) */
  W_REAL_R,       /* 1: one arrives from the right (L flow) */
  W_SEND_R,       /* 1: the partial goes to the right neighbour */
  W_SEND_L,       /* 1: to the left one */
  W_PART,         /* the part (its axis, its region) */
  W_OWN,          /* offset of the sub-chunk in its part's region of the level */
  W_SLOT,         /* offset of its receive slot (per part, R slots, then L slots) */
  /* the s-th sub-chunk copied in from the operand (fetch_order): its offsets in the
   * operand and in the working copy, and the operand's bytes between its slices */
  W_FETCH_SRC,
  W_FETCH_DST,
  W_FETCH_STRIDE,
  W_WORDS
};

/* Positions a level's table has a row for: p per part (a chip's order depends on its
 * place on every part's axis). */
static int64_t table_rows(int64_t p, int nparts) { return nparts > 1 ? p * p : p; }

/* The SMEM a line level of p chips in subs sub-chunks per part takes: per slot its row
 * of the table for every position and its DMA descriptors (a send, two credits a part
 * and their words). plan() splits chunks no further where it would pass a quarter of
 * SMEM. */
static int64_t line_smem(int64_t p, int64_t subs, int nparts) {
  return nparts * 2 * (p - 1) * subs *
         (table_rows(p, nparts) * W_WORDS * 4 + (1 + 2 * nparts) * DESC_WORDS * 4 +
          2 * nparts * 8);
}

typedef struct LrsSlot {
  int part;
  bool r;     /* the R flow (else L) */
  int64_t i;  /* its event */
  int64_t j;  /* the sub-chunk */
} LrsSlot;

/* What sub-chunk j of event i of flow r does on the chip at q of its part's axis
 * (module comment). */
static void slot_words(int64_t p, int64_t q, LrsSlot e, int64_t chunk, int64_t sub,
                       int32_t *w) {
  int64_t i = e.i;
  w[W_REAL_L] = e.r && q >= 1 && q <= p - 1 - i;
  w[W_REAL_R] = !e.r && q >= i && q <= p - 2;
  w[W_SEND_R] = e.r && q <= p - 2 - i;
  w[W_SEND_L] = !e.r && q >= i + 1;
  w[W_PART] = e.part;
  w[W_OWN] = (int32_t)((e.r ? p - 1 - i : i) * chunk + e.j * sub);
  w[W_SLOT] = (int32_t)((e.part * 2 * (p - 1) + (e.r ? i : p - 1 + i)) * chunk + e.j * sub);
}

/* When the chip at q can forward slot e at the earliest. */
static int64_t ready_at(int64_t p, int64_t q, LrsSlot e, LrsPace pace) {
  return e.i * pace.every + e.j * pace.step + (e.r ? q : p - 1 - q) * pace.hop;
}

/* The slots of a chip, at q[i] on part i's axis, in order: those that send, in the
 * order their arrivals are expected (ready_at; on a tie the earlier part's, then the
 * flow that reaches the chip first, R left of the middle, L right of it), so that in
 * steady state the chip forwards every flow at its pace and no send waits long behind
 * an arrival it does not carry; then those that only combine (the chunks this chip
 * keeps), and last those with nothing to do. Each flow's slots keep their order, which
 * is the order its sender sends them in. No chip waits for itself through its
 * neighbours: a slot waits for the slots before it, whose arrivals are expected no
 * later, and for a neighbour's send of the same sub-chunk, expected a hop earlier. */
static void chip_order(int64_t p, int nparts, const int64_t *q, int64_t subs, LrsPace pace,
                       LrsSlot *order) {
  int n = 0;
  for (int cls = 0; cls < 3; cls++) {
    int first = n;
    for (int part = 0; part < nparts; part++) {
      bool r_first = q[part] <= (p - 1) / 2;
      for (int f = 0; f < 2; f++) {
        bool r = f == 0 ? r_first : !r_first;
        for (int64_t i = 0; i + 1 < p; i++)
          for (int64_t j = 0; j < subs; j++) {
            LrsSlot e = {part, r, i, j};
            int32_t w[W_WORDS];
            slot_words(p, q[part], e, 1, 1, w);
            bool send = w[W_SEND_R] || w[W_SEND_L], real = w[W_REAL_L] || w[W_REAL_R];
            int c = send ? 0 : real ? 1 : 2;
            if (c == cls) order[n++] = e;
          }
      }
    }
    if (cls) continue;
    /* the sends by expected arrival: an insertion sort, stable, so ties keep the
     * order above */
    for (int a = first + 1; a < n; a++) {
      LrsSlot e = order[a];
      int64_t at = ready_at(p, q[e.part], e, pace);
      int b = a;
      for (; b > first && ready_at(p, q[order[b - 1].part], order[b - 1], pace) > at; b--)
        order[b] = order[b - 1];
      order[b] = e;
    }
  }
}

/* Where the sub-chunks a level copies in from the operand lie (LrsLevel.fetch): one
 * part's region of the working copy starts at dst0 and holds entries of len bytes,
 * entry e = j0 * p1 + j1 being the operand's bytes at src0 + j0 * unit0 + j1 * unit1.
 * With p1 = 1, unit0 = len and src0 = dst0 the region is the operand as it lies. */
typedef struct LrsFetch {
  int64_t dst0, src0, len, p1, unit0, unit1;
} LrsFetch;

/* The words of the copy of the sub-chunk at offset own of part g's region. */
static void fetch_words(const LrsFetch *g, int64_t own, int32_t *w) {
  int64_t e = own / g->len, j0 = e / g->p1, j1 = e % g->p1;
  w[W_FETCH_SRC] = (int32_t)(g->src0 + j0 * g->unit0 + j1 * g->unit1 + own % g->len);
  w[W_FETCH_DST] = (int32_t)(g->dst0 + own);
  w[W_FETCH_STRIDE] = (int32_t)g->unit1;
}

/* The chip's p * subs sub-chunks per part, into fetch (their slots' words), in the
 * order its slots first read them (a combine with an arrival or a send; every
 * sub-chunk is one or the other: the owner combines, the others send). The first level
 * copies them in from the operand one at a time in this order, and slot s waits for
 * the s-th: each slot reads one sub-chunk, so the s-th is first read in slot s or
 * later. */
static void fetch_order(const int32_t *words, int64_t nslots, int64_t nfetch,
                        LrsSlot *fetch) {
  int64_t n = 0;
  for (int64_t s = 0; s < nslots && n < nfetch; s++) {
    const int32_t *w = words + s * W_WORDS;
    bool use = w[W_SEND_R] || w[W_SEND_L] || w[W_REAL_L] || w[W_REAL_R], seen = false;
    for (int64_t k = 0; k < n; k++)
      seen |= fetch[k].part == w[W_PART] && fetch[k].i == w[W_OWN];
    if (use && !seen) fetch[n++] = (LrsSlot){.part = w[W_PART], .i = w[W_OWN]};
  }
}

/* A line level, and what its slots share: the sends in flight and the credits. Its
 * nparts parts run one over each of their axes k[i], in their regions at base[i]. */
typedef struct LrsLevel {
  int nparts;
  int k[LRS_MAX_PARTS];
  int rowax[LRS_MAX_PARTS];    /* the axes the table's rows go by, the first major */
  int64_t p, chunk, sub, subs;
  int32_t work, in, scratch, table; /* buffers */
  int32_t base[LRS_MAX_PARTS]; /* sregs: each part's region */
  int32_t row;                 /* sreg: this chip's words of slot 0 in the table */
  int32_t credits;             /* semaphore the credits complete on */
  int64_t depth, sends, ncredits;
  const CollReduce *r;
  /* The first level may copy its sub-chunks in from the operand as it goes
   * (fetch_order), where the working copy holds the operand's slices whole. */
  bool fetch;
  LrsFetch geo[LRS_MAX_PARTS];
  CollRemote fetch_site;
  int32_t operand, work0; /* sregs: the operand's and the working copy's addresses */
} LrsLevel;

static int64_t level_slots(const LrsLevel *lv) {
  return lv->nparts * 2 * (lv->p - 1) * lv->subs;
}

/* The table: words of slot s for the chip in row q at ((s * rows + q) * W_WORDS) * 4,
 * q the chip's positions on rowax, the first major. */
static int32_t slot_table(Coll *c, const LrsLevel *lv, LrsPace pace) {
  const int64_t p = lv->p, rows = table_rows(p, lv->nparts), slots = level_slots(lv);
  const int64_t n = slots * rows * W_WORDS, nfetch = lv->nparts * p * lv->subs;
  int32_t *w = calloc((size_t)n, sizeof *w), *mine = calloc((size_t)slots * W_WORDS, 4);
  LrsSlot *order = calloc((size_t)slots, sizeof *order);
  LrsSlot *fetch = calloc((size_t)nfetch, sizeof *fetch);
  if (!w || !mine || !order || !fetch) {
    free(w);
    free(mine);
    free(order);
    free(fetch);
    return -1;
  }
  for (int64_t row = 0; row < rows; row++) {
    int64_t q[LRS_MAX_PARTS];
    for (int i = 0; i < lv->nparts; i++) {
      int m = lv->rowax[0] == lv->k[i] ? 0 : 1; /* where part i's axis is in the row */
      q[i] = lv->nparts > 1 ? (m == 0 ? row / p : row % p) : row;
    }
    chip_order(p, lv->nparts, q, lv->subs, pace, order);
    for (int64_t s = 0; s < slots; s++)
      slot_words(p, q[order[s].part], order[s], lv->chunk, lv->sub, mine + s * W_WORDS);
    if (lv->fetch) fetch_order(mine, slots, nfetch, fetch);
    for (int64_t s = 0; s < slots; s++) {
      int32_t *ws = w + (s * rows + row) * W_WORDS;
      for (int k = 0; k < W_WORDS; k++) ws[k] = mine[s * W_WORDS + k];
      if (lv->fetch && s < nfetch) fetch_words(&lv->geo[fetch[s].part], fetch[s].i, ws);
    }
  }
  char name[64];
  snprintf(name, sizeof name, "lrs.slots.%d", (int)c->m->nbufs);
  int32_t buf = tile_mir_buffer(c->m, name, TILE_SPACE_SMEM, n * 4, 1, 4);
  tile_mir_data(c->m, buf, w, n * 4);
  free(w);
  free(mine);
  free(order);
  free(fetch);
  return buf;
}

static int32_t table_word(Coll *c, const LrsLevel *lv, int64_t s, int w) {
  int32_t d = tile_mir_sreg(c->m);
  int64_t rows = table_rows(lv->p, lv->nparts);
  TileMirInst in = tile_mir_inst(TILE_MOP_SLD, d, lv->row, 0, 0,
                                 (int32_t)((s * rows * W_WORDS + w) * 4));
  tile_mir_mem(&in, lv->table, TILE_MIR_READ, 0);
  tile_mir_add(c->m, in);
  return d;
}

/* Starts copy i of the sub-chunks (fetch_order); with parts, the operand's stride
 * between the slices of a sub-chunk is its part's. */
static void fetch_issue(Coll *c, LrsLevel *lv, int64_t i) {
  int32_t src = table_word(c, lv, i, W_FETCH_SRC), dst = src; /* one part: the same */
  if (lv->nparts > 1) {
    dst = table_word(c, lv, i, W_FETCH_DST);
    coll_store_desc_word(c, &lv->fetch_site.site, table_word(c, lv, i, W_FETCH_STRIDE),
                         DESC_SRC_STRIDE1);
  }
  coll_remote_send(c, &lv->fetch_site, coll_plus(c, src, lv->operand),
                   coll_plus(c, dst, lv->work0));
}

/* v[part]: the value of the slot's part (part: its sreg, 0 or 1; unused with one). */
static int32_t by_part(Coll *c, const LrsLevel *lv, int32_t part, const int32_t *v) {
  return lv->nparts > 1 ? coll_sel(c, part, v[1], v[0]) : v[0];
}

/* Slot s on this chip: its words from the table, the waits (one on each side of every
 * part's axis), the combine and the send (module comment). */
static void line_slot(Coll *c, LrsLevel *lv, int64_t s) {
  const int64_t sub = lv->sub;
  const int np = lv->nparts;
  /* copy s has landed and copy s + 1 starts, one at a time so that each lands at HBM's
   * whole rate. The wait names nothing: the combine after it is a loop, which no
   * instruction crosses. */
  int64_t nfetch = np * lv->p * lv->subs;
  if (lv->fetch && s < nfetch) {
    coll_wait_sem(c, lv->fetch_site.site.sem, 1, -1);
    if (s + 1 < nfetch) fetch_issue(c, lv, s + 1);
  }
  int32_t real_l = table_word(c, lv, s, W_REAL_L), real_r = table_word(c, lv, s, W_REAL_R);
  int32_t send_r = table_word(c, lv, s, W_SEND_R), send_l = table_word(c, lv, s, W_SEND_L);
  int32_t own = table_word(c, lv, s, W_OWN), slot = table_word(c, lv, s, W_SLOT);
  int32_t part = np > 1 ? table_word(c, lv, s, W_PART) : -1;
  coll_rr(c, TILE_MOP_ADD, own, own, by_part(c, lv, part, lv->base));
  coll_rr(c, TILE_MOP_ADD, slot, slot, coll_addr(c, lv->in, 0));
  int32_t real = coll_plus(c, real_l, real_r), send = coll_plus(c, send_r, send_l);
  /* scratch: [0, sub) read by ghosts and junk combines, never stored to; [sub, 2 sub)
   * where ghosts land; [2 sub, 3 sub) junk, stored to by combines without an arrival */
  int32_t never = coll_addr(c, lv->scratch, 0), junk = coll_addr(c, lv->scratch, 2 * sub);
  int32_t csrc = coll_sel(c, real, slot, never), cdst = coll_sel(c, real, own, junk);
  int32_t ssrc = coll_sel(c, send, own, never);
  int32_t sdst = coll_sel(c, send, slot, coll_addr(c, lv->scratch, sub));
  /* per part: the neighbours on its axis, and a rightward send counts on the
   * receiver's semaphore from its left, a leftward one on the one from its right */
  int32_t right[LRS_MAX_PARTS] = {0}, left[LRS_MAX_PARTS] = {0};
  int32_t sem_r[LRS_MAX_PARTS] = {0}, sem_l[LRS_MAX_PARTS] = {0};
  for (int i = 0; i < np; i++) {
    right[i] = c->next[0][lv->k[i]];
    left[i] = c->next[1][lv->k[i]];
    sem_r[i] = coll_li(c, coll_recv_sem(c, 0, lv->k[i]));
    sem_l[i] = coll_li(c, coll_recv_sem(c, 1, lv->k[i]));
  }
  int32_t peer = coll_sel(c, send_r, by_part(c, lv, part, right),
                          coll_sel(c, send_l, by_part(c, lv, part, left), c->chipid));
  int32_t sem = coll_sel(c, send_r, by_part(c, lv, part, sem_r),
                         coll_sel(c, send_l, by_part(c, lv, part, sem_l), coll_li(c, -1)));
  CollCredit cr[2 * LRS_MAX_PARTS];
  int32_t zero = np > 1 ? coll_li(c, 0) : -1;
  for (int i = 0; i < np; i++) {
    int32_t rl = real_l, rr = real_r; /* what arrives on part i's axis */
    if (np > 1) {
      rl = i ? coll_sel(c, part, real_l, zero) : coll_sel(c, part, zero, real_l);
      rr = i ? coll_sel(c, part, real_r, zero) : coll_sel(c, part, zero, real_r);
    }
    cr[2 * i] = coll_credit(c, rl, 0, lv->k[i], lv->credits);
    cr[2 * i + 1] = coll_credit(c, rr, 1, lv->k[i], lv->credits);
  }
  TileDmaSite site = coll_line_site(c, lv->work, lv->in, sub, peer, sem, c->sem_sent[0], true);
  for (int d = 0; d < 2 * np; d++) coll_credit_wait(c, &cr[d]);
  lv->ncredits += 2 * np;
  coll_reduce_into(c, lv->r, lv->r->vop, lv->in, csrc, lv->work, cdst, sub);
  /* at most depth sends in flight: the wait names nothing, so the scheduler puts no
   * static gap before it (DMA-slot ops keep their order, and a descriptor is read when
   * its DMA issues, so the next one may be rewritten at once) */
  if (lv->sends >= lv->depth) coll_wait_sem(c, c->sem_sent[0], 1, -1);
  tile_dma_issue(c->cx, &site, ssrc, 0, sdst, 0);
  lv->sends++;
}

/* One line level: its slots, then the waits for its sends and credits. */
static void line_level(Coll *c, LrsLevel *lv) {
  lv->row = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_MULI, lv->row, c->coord[lv->rowax[0]], lv->nparts > 1 ? lv->p : 1);
  if (lv->nparts > 1) coll_rr(c, TILE_MOP_ADD, lv->row, lv->row, c->coord[lv->rowax[1]]);
  coll_ri(c, TILE_MOP_MULI, lv->row, lv->row, W_WORDS * 4);
  coll_rr(c, TILE_MOP_ADD, lv->row, lv->row, coll_addr(c, lv->table, 0));
  if (lv->fetch) fetch_issue(c, lv, 0);
  for (int64_t s = 0; s < level_slots(lv); s++) line_slot(c, lv, s);
  int64_t left = lv->sends < lv->depth ? lv->sends : lv->depth;
  if (left) coll_wait_sem(c, c->sem_sent[0], left, -1);
  coll_wait_sem(c, lv->credits, lv->ncredits, -1);
}

/* ---- half rings ----
 *
 * On an axis with wraparound every chip is alike: for slice j (owner j) the chip at q
 * is (j - q) mod p chips before the owner and (q - j) mod p after it, and sends its
 * part of the slice the shorter way. So every chip runs the same events at the same
 * times; only the chunks they name depend on q (modulo p, across the wrap). With
 * h = floor(p / 2):
 *
 *   flow toward + (F0), event i = 0 .. h - 1, chunk q + h - i: add what came from the
 *     previous chip into the chunk and send it to the next one, whose event i + 1 it
 *     is; flow toward - (F1), event i, chunk q - h + i: the mirror image;
 *   event h of each flow: add its partial into the chip's own chunk q.
 *
 * With odd p each side has h chips. With even p the chip h away is on both sides:
 * where the chunk's sub-chunks split in halves its first half goes toward + and its
 * second toward -, so each link carries h - 1/2 chunks a level, not h; else all of it
 * goes toward - (F0's event 0 sends nothing). So sub-chunk j of a flow's chain starts
 * at event start(f, j), 0 or 1: it is sent from there on and arrives after it.
 *
 * The code runs in stages: in stage d every chain takes its step d, so each send waits
 * only for the arrival it forwards (ring_level). The owner of every slice adds its two
 * partials in an order fixed by the sub-chunk (the shorter chain's first, F0's where
 * both are as long), the same on every chip and run. Every chunk but the own is
 * combined into at most once per sub-chunk and then sent once; the own chunk is never
 * sent.
 *
 * Semaphores: F0's arrivals count on coll_recv_sem(c, 0, k), F1's on coll_recv_sem(c,
 * 1, k), each from one neighbour, in the order it sends them: a chip waits for (f, i, j)
 * exactly where its neighbour, running the same code, sent (f, i - 1, j). Every wait is
 * for a real arrival (every chip has both neighbours here), so no credits. Receive
 * slots: one chunk per flow and event, written once per run. */
static int32_t chunk_at(Coll *c, int k, int32_t base, int64_t off, int64_t chunk) {
  int64_t p = c->ax[k].p;
  int32_t t = tile_mir_sreg(c->m), over = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_ADDI, t, c->coord[k], ((off % p) + p) % p);
  coll_rr(c, TILE_MOP_SLT, over, coll_li(c, p - 1), t); /* t >= p: wrap */
  coll_ri(c, TILE_MOP_MULI, over, over, -p);
  coll_rr(c, TILE_MOP_ADD, t, t, over);
  coll_ri(c, TILE_MOP_MULI, t, t, chunk);
  coll_rr(c, TILE_MOP_ADD, t, t, base);
  return t;
}

/* The first event of flow f's chain for sub-chunk j of subs (module comment above). */
static int64_t chain_start(int64_t p, int f, int64_t j, int64_t subs) {
  if (p % 2) return 0;
  if (subs % 2) return f == 0;
  return (j < subs / 2) != (f == 0);
}

/* Sub-chunk n of flow f's order: those whose chain starts at event 0 first (F0: the
 * first half; F1: the second), so that in every stage the chains that go on come
 * before those that end at the owner (ring_level). */
static int64_t sub_of(int f, int64_t n, int64_t subs) {
  return f == 0 ? n : subs - 1 - n;
}

/* One event of flow f for sub-chunk j on this chip: with from >= 0, wait for the
 * partial from the previous chip (in receive slot `from`) and add it into the chunk at
 * `own`; with to >= 0, send the chunk's sub-chunk on into receive slot `to` of the next
 * chip. */
typedef struct HalfRing {
  int k;
  int64_t sub, depth, sends[2];
  int32_t work, in, in0;
  CollRemote rm[2];
  const CollReduce *r;
} HalfRing;

static void half_event(Coll *c, HalfRing *hr, int f, int32_t own, int64_t j, int64_t from,
                       int64_t to) {
  TileMir *m = c->m;
  if (from >= 0) {
    int32_t src = tile_mir_sreg(m), dst = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_ADDI, src, hr->in0, from + j * hr->sub);
    coll_ri(c, TILE_MOP_ADDI, dst, own, j * hr->sub);
    coll_wait_sem(c, coll_recv_sem(c, f, hr->k), 1, -1);
    coll_reduce_into(c, hr->r, hr->r->vop, hr->in, src, hr->work, dst, hr->sub);
  }
  if (to < 0) return;
  /* the waits for earlier sends name nothing (line_slot says why) */
  if (hr->sends[f] >= hr->depth) coll_wait_sem(c, c->sem_sent[f], 1, -1);
  int32_t at = tile_mir_sreg(m), dst = tile_mir_sreg(m);
  coll_ri(c, TILE_MOP_ADDI, at, own, j * hr->sub);
  coll_ri(c, TILE_MOP_ADDI, dst, hr->in0, to + j * hr->sub);
  coll_remote_send(c, &hr->rm[f], at, dst);
  hr->sends[f]++;
}

/* A level over a wrapping axis. The code runs in stages d = 0 .. h: in stage d each
 * chain takes its step d (event start + d), first every step that sends on, both flows,
 * then those that end in the kept chunk. A flow's arrivals are waited for in the order
 * its neighbour, one stage earlier, sent them: per stage in sub_of order, in which the
 * chains that go on precede those that end. Each sub-chunk of the kept chunk combines
 * its two partials in a fixed order (F0's first where both chains are as long), the same
 * on every chip and run. */
static void ring_level(Coll *c, int k, int32_t work, int32_t base, int64_t chunk,
                       int64_t subs, const CollReduce *r) {
  TileMir *m = c->m;
  const int64_t p = c->ax[k].p, h = half_hops(p);
  HalfRing hr = {.k = k, .sub = chunk / subs, .work = work, .r = r};
  /* sends in flight per flow: beside them, one local copy */
  hr.depth = (coll_line_inflight(c) - 1) / 2;
  if (hr.depth < 1) hr.depth = 1;
  char name[64];
  snprintf(name, sizeof name, "lrs.ring.%s.%d", c->ax[k].name, (int)m->nbufs);
  /* receive slots: flow f's event i at (f * h + i) * chunk */
  hr.in = tile_mir_buffer(m, name, TILE_SPACE_VMEM, 2 * h * chunk, 1, 64);
  hr.in0 = coll_addr(c, hr.in, 0);
  for (int f = 0; f < 2; f++) hr.rm[f] = coll_remote(c, k, f, work, hr.in, coll_flat(hr.sub));
  int32_t kept = chunk_at(c, k, base, 0, chunk);
  for (int64_t d = 0; d <= h; d++)
    for (int ends = 0; ends < 2; ends++)
      for (int f = 0; f < 2; f++) {
        int32_t own = -1;
        int64_t own_i = -1;
        for (int64_t n = 0; n < subs; n++) {
          int64_t j = sub_of(f, n, subs), i = chain_start(p, f, j, subs) + d;
          if (i > h || (i == h) != ends) continue;
          int64_t from = d > 0 ? (f * h + i - 1) * chunk : -1;
          if (i == h) {
            half_event(c, &hr, f, kept, j, from, -1);
            continue;
          }
          if (own_i != i) /* F0's event i: chunk q + h - i; F1's: q - h + i */
            own = chunk_at(c, k, base, f == 0 ? h - i : i - h, chunk), own_i = i;
          half_event(c, &hr, f, own, j, from, (f * h + i) * chunk);
        }
      }
  for (int f = 0; f < 2; f++) {
    int64_t left = hr.sends[f] < hr.depth ? hr.sends[f] : hr.depth;
    if (left) coll_wait_sem(c, c->sem_sent[f], left, -1);
  }
}

/* A line level's buffers and table: nparts parts (each on its axis k[i], rows of the
 * table by rowax), chunks of `chunk` bytes in subs sub-chunks; false (reported) where
 * out of memory. */
static bool level_make(Coll *c, LrsLevel *lv, int64_t grain) {
  TileMir *m = c->m;
  char name[64];
  if (lv->nparts > 1)
    snprintf(name, sizeof name, "lrs.parts.%d", (int)m->nbufs);
  else
    snprintf(name, sizeof name, "lrs.%s.%d", c->ax[lv->k[0]].name, (int)m->nbufs);
  lv->sub = lv->chunk / lv->subs;
  lv->in = tile_mir_buffer(m, name, TILE_SPACE_VMEM, lv->nparts * 2 * (lv->p - 1) * lv->chunk,
                           1, 64);
  lv->table = slot_table(c, lv, level_pace(c, lv->k[0], lv->chunk, lv->subs, grain));
  lv->depth = send_depth(c, lv->nparts);
  return lv->table >= 0 || tile_lower_error(c->cx, c->op, "out of memory");
}

/* The fetching first level's copy site (lv->fetch set before level_make, whose table
 * holds the copies' words): a sub-chunk flat, or with parts p / subs slices of
 * geo[0].len bytes, the operand's stride between them stored per copy. */
static void fetch_make(Coll *c, LrsLevel *lv, TileTensorRef x) {
  TileDmaShape sh = coll_flat(lv->sub);
  int64_t len = lv->geo[0].len;
  if (lv->nparts > 1)
    sh = (TileDmaShape){.count0 = len, .count1 = lv->sub / len, .count2 = 1,
                        .src_stride1 = len, .dst_stride1 = len};
  lv->fetch_site = coll_copy_site(c, x.buf, lv->work, sh);
  lv->operand = coll_addr(c, x.buf, 0);
  lv->work0 = coll_addr(c, lv->work, 0);
}

/* The n kept runs of len bytes at from[i] in work to y, one after the other. The wait
 * names y alone: naming work would hold it an estimated hop after the last send into
 * it (every level waited for its sends to land already), and nothing writes work after
 * the copies. */
static void kept_to_y(Coll *c, int32_t work, TileTensorRef y, const int32_t *from, int n,
                      int64_t len) {
  CollRemote out = coll_copy_site(c, work, y.buf, coll_flat(len));
  for (int i = 0; i < n; i++) coll_remote_send(c, &out, from[i], coll_addr(c, y.buf, i * len));
  coll_wait_sem(c, out.site.sem, n, y.buf);
}

/* The parts over two lines (LrsPlan.nparts): phase 0 runs part i over act[i], phase 1
 * over the other axis, each phase's slots in one order per chip; then each part's
 * kept len bytes to its place in y. */
static bool parts_reduce_scatter(Coll *c, TileTensorRef x, TileTensorRef y, const LrsPlan *pl,
                                 const CollReduce *grain, int32_t work, int32_t scratch,
                                 int32_t credits) {
  const int np = pl->nparts;
  const int64_t p = c->ax[pl->act[0]].p, n = pl->total / pl->padded, len = pl->padded / np;
  const int64_t *unit = coll_parts(c, pl->padded).stride; /* the operand's bytes per step */
  int32_t base[LRS_MAX_PARTS];
  for (int i = 0; i < np; i++) base[i] = coll_addr(c, work, i * n * len);
  for (int l = 0; l < np; l++) {
    LrsLevel lv = {.nparts = np, .p = p, .chunk = pl->chunk[l], .subs = pl->subs[l],
                   .work = work, .scratch = scratch, .credits = credits, .r = grain};
    for (int i = 0; i < np; i++) {
      int a0 = pl->act[i], a1 = pl->act[(i + 1) % np];
      lv.k[i] = l == 0 ? a0 : a1;
      lv.rowax[i] = pl->act[i];
      lv.base[i] = base[i];
      lv.geo[i] = (LrsFetch){.dst0 = i * n * len, .src0 = i * len, .len = len, .p1 = p,
                             .unit0 = unit[a0], .unit1 = unit[a1]};
    }
    lv.fetch = l == 0;
    if (!level_make(c, &lv, pl->grain)) return false;
    if (lv.fetch) fetch_make(c, &lv, x);
    line_level(c, &lv);
    for (int i = 0; i < np; i++) /* the next phase works on this chip's chunk */
      base[i] = coll_plus(c, base[i], coll_times(c, c->coord[lv.k[i]], lv.chunk));
  }
  kept_to_y(c, work, y, base, np, len);
  return true;
}

bool coll_line_reduce_scatter(Coll *c, TileTensorRef x, TileTensorRef y, const CollReduce *r,
                              int64_t dim) {
  TileMir *m = c->m;
  LrsPlan pl;
  CollAround a = coll_around(&y, dim);
  int64_t run = a.mid * a.inner_bytes;
  plan(c, y.bytes, r->tile_bytes, a.outer == 1, &pl);
  CollReduce grain = pl.rows ? row_reduce(c, r) : *r; /* what every combine uses */
  if (pl.vmem > c->cx->target->vmem_bytes)
    return tile_lower_error(c->cx, c->op, "needs %lld bytes of VMEM for its working copy "
                            "and receive buffers, more than the %lld target %s has",
                            (long long)pl.vmem, (long long)c->cx->target->vmem_bytes,
                            c->cx->target->name);
  int64_t n = pl.total / pl.padded;
  char name[64];
  snprintf(name, sizeof name, "lrs.work.%d", (int)m->nbufs);
  int32_t work = tile_mir_buffer(m, name, TILE_SPACE_VMEM, pl.total, 1, 64);
  int32_t scratch = -1, credits = -1; /* what the lines' slots share */
  if (pl.scratch) {
    snprintf(name, sizeof name, "lrs.scratch.%d", (int)m->nbufs);
    scratch = tile_mir_buffer(m, name, TILE_SPACE_VMEM, 3 * pl.scratch, 1, 64);
  }
  /* Slice j of the input ([outer, j * mid .. (j + 1) * mid, inner]) to block j: all at
   * once, or a sub-chunk at a time as the first level's slots need them (LrsPlan.fetch). */
  TileDmaShape in = {.count0 = run, .count1 = n, .count2 = a.outer, .src_stride1 = run,
                     .src_stride2 = n * run, .dst_stride1 = pl.padded, .dst_stride2 = run};
  if (!pl.fetch) coll_local_copy(c, x.buf, 0, -1, work, 0, -1, in);
  /* Over lines only, the DMAs in flight stay few, which leaves the rest to a later
   * matmul's weights (lower_prefetch.c). */
  if (pl.lines_only) c->cx->dma_cap = coll_line_inflight(c);
  if (pl.scratch) credits = tile_mir_sem(m);
  if (pl.nparts > 1) return parts_reduce_scatter(c, x, y, &pl, &grain, work, scratch, credits);
  int32_t base = coll_addr(c, work, 0);
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *ax = &c->ax[k];
    if (ax->p < 2) continue;
    if (is_half_ring(ax)) {
      ring_level(c, k, work, base, pl.chunk[k], pl.subs[k], &grain);
    } else if (!coll_is_line(ax)) {
      CollRing ring = {.k = k, .dir = 0, .work = work, .base = base, .chunk = pl.chunk[k]};
      coll_ring_reduce_scatter(c, &ring, 1, &grain);
    } else {
      LrsLevel lv = {.nparts = 1, .k = {k}, .rowax = {k}, .p = ax->p, .chunk = pl.chunk[k],
                     .subs = pl.subs[k], .work = work, .scratch = scratch, .base = {base},
                     .credits = credits, .r = &grain};
      lv.geo[0] = (LrsFetch){.len = lv.chunk / lv.subs, .p1 = 1, .unit0 = lv.chunk / lv.subs};
      lv.fetch = pl.fetch && k == pl.first;
      if (!level_make(c, &lv, pl.grain)) return false;
      if (lv.fetch) fetch_make(c, &lv, x);
      line_level(c, &lv);
    }
    /* the next level works on this chip's chunk */
    base = coll_plus(c, base, coll_times(c, c->coord[k], pl.chunk[k]));
  }
  kept_to_y(c, work, y, &base, 1, y.bytes);
  return true;
}
