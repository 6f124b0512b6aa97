/* Asynchronous permutes: a one-hop collective_permute sends in its own group and waits
 * where its result is needed, so the groups between run while the data crosses the
 * link (lower_internal.h).
 *
 * Groups run in program order and each drains its DMAs before the next starts (lower.c,
 * "Semaphores"), so a collective_permute would hold the chip for its whole transfer and
 * a matmul after it that does not read its result could not overlap it. A permute of
 * one hop (tile_coll_permute_one_hop: |shift| mod p is 1 or p - 1 along an axis of one
 * torus dim) is one remote DMA and two waits: for the arrival from the chip before (on
 * the band semaphore of that ring) and for this chip's own send (coll_exchange). The
 * plan takes the two waits out of its group and puts them in the first later group
 * that
 *   - reads its result (one of the group's inputs; a reshape of it is a group that
 *     reads it, and every reader of the reshape comes after that group), or
 *   - is any other collective: collectives count arrivals on the band semaphores, and a
 *     later one's first wait there would take this permute's arrival. A later deferred
 *     permute is not one of these: its waits queue behind the earlier ones; nor are
 *     ring_slice and ring_concat, local copies in layout groups (gen_layout_ring.c);
 * or at the end, before the results' copies, when no group needs it: at the start of a
 * collective, elsewhere before the group's first instruction that touches the permute's
 * buffers or the outermost loop holding it (first_touch). Waits are placed in the order
 * the sends were issued (a group that needs a permute's waits takes every
 * earlier pending send's too), so:
 *   - arrivals: two deferred permutes on one ring count on one band semaphore, each wait
 *     for 1. One sender's transfers over one route arrive in the order they were issued
 *     (the emulator's links serve transfers in the order they reach them, by (cycle,
 *     source chip, sequence); a later transfer starts on each link only after the
 *     earlier one has been sent on it, so it is delivered after it, whatever their
 *     sizes; deliveries of one cycle apply in sequence order), so when the n-th wait
 *     passes, the n-th transfer has landed. Another collective starts only after every
 *     deferred wait, so it finds the band semaphores as a synchronous permute would
 *     leave them: only a peer's early sends on them;
 *   - sends: they complete on one semaphore of the function (async_sem, below the band,
 *     as the prefetch's), never a group's own: groups number theirs from sems_base
 *     again (sems_recycle) and hand them on at zero, which a send still in flight on
 *     one of them would break. Each wait takes 1 in issue order; every send has landed
 *     once all have passed;
 *   - DMAs in flight: at most ASYNC_MAX_PENDING permutes cross a group (a deferred
 *     permute that would make one more first takes the oldest one's waits), each one
 *     send, or two with halves (one each way round). A group crossed by r sends, the
 *     ones whose waits it takes at its first touch included, is generated for a target
 *     with r fewer DMAs in flight (the generators size their rings by dma.outstanding),
 *     and its loops say so to the modulo scheduler (LOOP_BEGIN `b`); the prefetch
 *     counts them beside the groups it crosses;
 *   - memory: the arrival wait names the received buffer and the send's wait its
 *     descriptor and its source, as before. The scheduler keeps DMA-slot ops in program
 *     order, so the first DMA that reads the result comes after its arrival wait; the
 *     source and the result are HBM values written once per run (by their producer and
 *     by the peer), never shared with another buffer, and the descriptor has initial
 *     contents (live over the whole run); layout keeps every buffer of a DMA live up to
 *     the last wait that names its descriptor anyway. A received buffer is written by a
 *     peer that may run ahead, so it is never reused: that holds for every remote
 *     buffer written once per run, deferred or not. tile_lower_async_place checks on
 *     the MIR that no op between a send and its waits names its result or descriptor or
 *     writes its source.
 * A permute whose first later group would take its waits anyway (and that no earlier
 * send crosses) stays synchronous, exactly as before; so does every other collective. */
#include <stdlib.h>
#include <string.h>

#include "gen_collective.h"
#include "lower_internal.h"
#include "tile/ops.h"

/* Permutes in flight across a group, at most: each send takes one of the target's DMAs
 * in flight from the groups it crosses. Four: a ring's four pieces (coll_matmul's
 * scatter rings, and a whole ring's first hop sent piece by piece while the scatter
 * ring's last hops still travel). With two, a third piece's send took the first's
 * waits, which held the chip until the first piece from the chip before had landed
 * (layer_prefill_4 on v5e-like: 3,222,315 cycles with two, 3,171,417 with four). */
enum { ASYNC_MAX_PENDING = 4 };

/* One deferred permute's sends (two with halves, over one buffer pair), as its
 * generator reported them. */
typedef struct AsyncSend {
  int32_t group, until;     /* its live group; the group its waits go before (n: the end) */
  TileMirInst waits[4];
  int32_t nwaits;
  int32_t src_buf, dst_buf, desc[2]; /* desc[1]: the second half's, or -1 */
} AsyncSend;

struct TileAsyncPlan {
  int32_t n;
  int32_t *until;   /* per group: -1 (not deferred), or where its waits go (n: the end) */
  int32_t *reserve; /* per group: deferred sends of earlier groups in flight while it runs */
  bool *inside;     /* per group: waits may go before its first touch (not a collective) */
  AsyncSend *sends;
  int32_t nsends;
  int32_t cur;      /* the group being generated */
};

static bool reads(const TileGroup *g, const TileValue *v) {
  for (int32_t i = 0; i < g->nin; i++)
    if (g->in[i] == v) return true;
  return false;
}

void tile_lower_async_plan(TileLowerCtx *cx, TileGroup *const *groups, int32_t n) {
  struct TileAsyncPlan *ap = tile_alloc(cx->m, sizeof *ap);
  ap->n = n;
  ap->until = tile_alloc(cx->m, sizeof *ap->until * (size_t)(n + 1));
  ap->reserve = tile_alloc(cx->m, sizeof *ap->reserve * (size_t)(n + 1));
  ap->sends = tile_alloc(cx->m, sizeof *ap->sends * (size_t)(n + 1));
  ap->inside = tile_alloc(cx->m, (size_t)n + 1);
  int32_t *fifo = tile_alloc(cx->m, sizeof *fifo * (size_t)(n + 1));
  bool *crossed = tile_alloc(cx->m, (size_t)n + 1); /* another send was in flight */
  int32_t *nsend = tile_alloc(cx->m, sizeof *nsend * (size_t)(n + 1)); /* DMAs of each */
  int32_t nfifo = 0, most = cx->target->dma_outstanding / 4;
  if (most > ASYNC_MAX_PENDING) most = ASYNC_MAX_PENDING;
  for (int32_t j = 0; j < n; j++) {
    const TileGroup *g = groups[j];
    ap->until[j] = -1;
    bool one_hop = most > 0 && g->kind == TILE_GROUP_COLLECTIVE && g->nops == 1 &&
                   tile_coll_permute_one_hop(cx->m, cx->f, g->ops[0]);
    int32_t drain = 0; /* the first `drain` pending sends take their waits here */
    if (g->kind == TILE_GROUP_COLLECTIVE && !one_hop) drain = nfifo;
    for (int32_t i = 0; i < nfifo; i++)
      if (reads(g, groups[fifo[i]]->ops[0]->res[0])) drain = i + 1;
    if (one_hop && nfifo - drain >= most) drain = nfifo - most + 1;
    int32_t dmas = 0, drained = 0; /* the DMAs of the pending sends and of those drained */
    for (int32_t i = 0; i < nfifo; i++) {
      if (i < drain) ap->until[fifo[i]] = j, drained += nsend[fifo[i]];
      else dmas += nsend[fifo[i]];
    }
    memmove(fifo, fifo + drain, sizeof *fifo * (size_t)(nfifo - drain));
    nfifo -= drain;
    /* a collective counts on the band semaphores from its start: the waits go first;
     * any other group takes them at its first touch, so the sends stay in flight over
     * its start */
    ap->inside[j] = g->kind != TILE_GROUP_COLLECTIVE;
    ap->reserve[j] = dmas + (ap->inside[j] ? drained : 0);
    if (one_hop) {
      nsend[j] = tile_coll_permute_sends(g->ops[0]);
      crossed[j] = nfifo > 0;
      fifo[nfifo++] = j;
    }
  }
  for (int32_t i = 0; i < nfifo; i++) ap->until[fifo[i]] = n;
  int32_t count = 0;
  for (int32_t j = 0; j < n; j++) {
    /* nothing runs between its send and its waits: synchronous, as before */
    if (ap->until[j] == j + 1 && !crossed[j]) ap->until[j] = -1;
    count += ap->until[j] >= 0;
  }
  cx->async = ap;
  if (count > 0) cx->async_sem = tile_lower_function_sem(cx);
}

bool tile_lower_async_deferred(const TileLowerCtx *cx, int32_t k) {
  const struct TileAsyncPlan *ap = cx->async;
  return ap && k < ap->n && ap->until[k] >= 0;
}

int32_t tile_lower_async_reserve(const TileLowerCtx *cx, int32_t k) {
  const struct TileAsyncPlan *ap = cx->async;
  return ap && k < ap->n ? ap->reserve[k] : 0;
}

void tile_lower_async_enter(TileLowerCtx *cx, int32_t k) {
  struct TileAsyncPlan *ap = cx->async;
  if (!ap || k >= ap->n) return;
  ap->cur = k;
  cx->async_now = ap->until[k] >= 0;
  cx->dma_reserve += ap->reserve[k];
}

void tile_lower_async_leave(TileLowerCtx *cx, int32_t k) {
  struct TileAsyncPlan *ap = cx->async;
  if (!ap || k >= ap->n) return;
  cx->async_now = false;
}

int32_t tile_lower_async_sem(TileLowerCtx *cx) { return cx->async_now ? cx->async_sem : -1; }

void tile_lower_async_defer(TileLowerCtx *cx, const TileMirInst *waits, int32_t n,
                            int32_t src_buf, int32_t dst_buf, int32_t desc) {
  struct TileAsyncPlan *ap = cx->async;
  AsyncSend *s = ap->nsends ? &ap->sends[ap->nsends - 1] : NULL;
  /* the second half's send joins the first's: one buffer pair, waits placed together */
  if (!s || s->group != ap->cur) {
    s = &ap->sends[ap->nsends++];
    *s = (AsyncSend){.group = ap->cur, .until = ap->until[ap->cur], .src_buf = src_buf,
                     .dst_buf = dst_buf, .desc = {desc, -1}};
  } else {
    s->desc[1] = desc;
  }
  for (int32_t i = 0; i < n && s->nwaits < 4; i++) {
    TileMirInst *w = &s->waits[s->nwaits++];
    *w = waits[i];
    w->src = cx->mir->cur_src; /* the permute's */
  }
}

/* Whether buffers a and b share bytes: the same buffer, or views (or a view and its
 * buffer) whose ranges meet. */
static bool meet(const TileMir *m, int32_t a, int32_t b) {
  if (a == b) return true;
  if (tile_mir_buffer_root(m, a) != tile_mir_buffer_root(m, b)) return false;
  int64_t xl = tile_mir_buffer_offset(m, a), yl = tile_mir_buffer_offset(m, b);
  int64_t xh = xl + m->bufs[a].bytes * m->bufs[a].nslots;
  int64_t yh = yl + m->bufs[b].bytes * m->bufs[b].nslots;
  return xl < yh && yl < xh;
}

/* Whether inst `in` touches what a send in flight needs kept: its result (any access),
 * its descriptor, or its source (a write). The wait for a local copy names the copy's
 * source as written, to keep later writes of it after the copy, but writes nothing
 * itself: a copy that reads the source too (a join of the pieces a whole ring's first
 * hop sends one by one) does not touch it. */
static bool touches(const TileMir *m, const TileMirInst *in, const AsyncSend *s) {
  for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
    int32_t b = in->mem[k].buf;
    if (b < 0) continue;
    bool writes = in->mem[k].access & TILE_MIR_WRITE && in->op != TILE_MOP_WAIT;
    if (meet(m, b, s->dst_buf) || b == s->desc[0] || b == s->desc[1] ||
        (writes && meet(m, b, s->src_buf)))
      return true;
  }
  return false;
}

/* Where in group g (insts from .. end - 1) send s's waits go: before the first inst
 * that touches its buffers, or before the outermost loop holding that inst (a wait in
 * a loop would take a count every iteration); the group's start when none does. A
 * matmul whose epilogue reads the permute's result first copies it in for its last K
 * step, so the steps before run while the data crosses the link. */
static int32_t first_touch(const TileMir *m, const AsyncSend *s, int32_t from, int32_t end) {
  int32_t depth = 0, outer = from;
  for (int32_t j = from; j < end; j++) {
    const TileMirInst *in = &m->insts[j];
    if (in->op == TILE_MIR_LOOP_BEGIN && depth++ == 0) outer = j;
    if (in->op == TILE_MIR_LOOP_END) depth--;
    if (touches(m, in, s)) return depth > 0 ? outer : j;
  }
  return from;
}

bool tile_lower_async_place(TileLowerCtx *cx, TileStageGroup *starts, int32_t nstarts) {
  const struct TileAsyncPlan *ap = cx->async;
  TileMir *m = cx->mir;
  int32_t after = 0; /* the end of the waits placed last: waits keep the sends' order */
  for (int32_t i = 0; ap && i < ap->nsends; i++) {
    const AsyncSend *s = &ap->sends[i];
    int32_t start = s->until < nstarts ? starts[s->until].first_inst : m->ninsts;
    int32_t end = s->until + 1 < nstarts ? starts[s->until + 1].first_inst : m->ninsts;
    int32_t at = s->until < nstarts && ap->inside[s->until] ? first_touch(m, s, start, end)
                                                             : start;
    if (at < after) at = after;
    int32_t from = s->group + 1 < nstarts ? starts[s->group + 1].first_inst : m->ninsts;
    for (int32_t j = from; j < at; j++)
      if (touches(m, &m->insts[j], s)) {
        const TileMirInst *in = &m->insts[j];
        const char *name = tile_mir_src_name(m, in);
        tile_error(cx->d, tile_mir_src_loc(m, in), "internal error: '%s' touches a buffer of "
                   "the collective_permute before its deferred waits", name ? name : "?");
        return false;
      }
    int32_t first = m->ninsts;
    for (int32_t k = 0; k < s->nwaits; k++) {
      int32_t w = tile_mir_add(m, s->waits[k]);
      m->insts[w].src = s->waits[k].src;
    }
    if (at < first && !tile_mir_move_insts(m, at, first, m->ninsts)) {
      tile_error(cx->d, cx->f->loc, "internal error: out of memory placing a permute's waits");
      return false;
    }
    after = at + s->nwaits;
    /* the groups after move; the chosen one too where the waits go at its start */
    for (int32_t g = s->until + (at != start); g < nstarts; g++) starts[g].first_inst += s->nwaits;
  }
  return true;
}
