/* The torus network: routes, one-way links, arbitration, delivery.
 *
 * Chips are numbered row-major over their coordinates: on an X x Y x Z torus chip
 * (x, y, z) has id (x * Y + y) * Z + z. Every chip has one outgoing link per axis and
 * direction (+ and -) to its neighbour, where one exists: an axis with wraparound joins
 * its ends, an axis without it has no link off its ends, and an axis of length 1 has no
 * links.
 *
 * Routing is dimension order: first along axis 0 (x), then 1, then 2, each the shorter
 * way round where the axis wraps (ties go +). A transfer of S bytes serializes for
 * ser = ceil(S * clock_hz / ici_bw) cycles on each link and its head moves one hop in
 * hop = ceil(ici_hop_ns * clock_hz / 1e9) cycles. A link is a resource that serves one
 * transfer at a time, in the order transfers reach it: by (arrival cycle, source chip,
 * sequence number). Arriving at a link at cycle a, a transfer starts there at
 * s = max(a, the link's free cycle), holds the link until s + ser, and reaches the next
 * link at s + hop. After the last link it is delivered at s_last + hop + ser. On free
 * links a transfer over k hops thus takes k * hop + ser cycles (cut-through). A remote
 * semaphore signal is a transfer of 0 bytes: it waits its turn at each link but holds
 * none.
 *
 * The network steps between windows (run.c), on one thread: every step it takes the
 * transfers the chips started in the window and moves every transfer up to the window's
 * end. Since each step after an arrival takes at least one hop, and a window is at most
 * one hop long, every delivery it computes lies in a later window. */
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

int32_t emu_link_index(const Emu *e, int32_t chip, int axis, int dir) {
  return (chip * e->t.torus_rank + axis) * 2 + (dir < 0 ? 1 : 0);
}

static int32_t chip_at(const Emu *e, const int32_t coord[]) {
  int32_t id = 0;
  for (int k = 0; k < e->t.torus_rank; k++) id = id * e->t.torus[k] + coord[k];
  return id;
}

/* The neighbour of chip along axis in direction dir (+1/-1), or -1 if no link. */
static int32_t neighbour(const Emu *e, int32_t chip, int axis, int dir) {
  const EmuChip *c = &e->chips[chip];
  int32_t n = e->t.torus[axis], x = c->coord[axis] + dir;
  if (n == 1) return -1;
  if (x < 0 || x >= n) {
    if (!e->t.wrap[axis]) return -1;
    x = (x + n) % n;
  }
  int32_t coord[TILE_MAX_TORUS_RANK];
  memcpy(coord, c->coord, sizeof coord);
  coord[axis] = x;
  return chip_at(e, coord);
}

bool emu_net_init(Emu *e) {
  EmuNet *n = &e->net;
  memset(n, 0, sizeof *n);
  n->hop = e->nchips > 1 ? tile_target_hop_cycles(&e->t) : 1;
  n->nlinks = e->nchips * e->t.torus_rank * 2;
  n->link_free = calloc((size_t)n->nlinks, sizeof *n->link_free);
  n->links = calloc((size_t)n->nlinks, sizeof *n->links);
  if (!n->link_free || !n->links) return false;
  for (int32_t c = 0; c < e->nchips; c++)
    for (int axis = 0; axis < e->t.torus_rank; axis++)
      for (int dir = 1; dir >= -1; dir -= 2) {
        TileEmuLinkStats *l = &n->links[emu_link_index(e, c, axis, dir)];
        l->chip = c;
        l->axis = axis;
        l->dir = dir;
        l->peer = neighbour(e, c, axis, dir);
      }
  return true;
}

void emu_net_free(Emu *e) {
  EmuNet *n = &e->net;
  for (int i = 0; i < n->n; i++) {
    EmuXfer *x = n->heap[i];
    free(x->payload);
    free(x->dma);
    free(x);
  }
  free(n->heap);
  free(n->link_free);
  free(n->links);
  free(n->tr.r);
  memset(n, 0, sizeof *n);
}

/* ---- the heap of transfers, by (next step, source chip, sequence) ---- */

static bool xfer_before(const EmuXfer *a, const EmuXfer *b) {
  if (a->t != b->t) return a->t < b->t;
  if (a->src != b->src) return a->src < b->src;
  return a->seq < b->seq;
}

static bool heap_push(EmuNet *n, EmuXfer *x) {
  if (n->n == n->cap) {
    int nc = n->cap ? n->cap * 2 : 64;
    EmuXfer **h = realloc(n->heap, (size_t)nc * sizeof *h);
    if (!h) return false;
    n->heap = h;
    n->cap = nc;
  }
  int i = n->n++;
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!xfer_before(x, n->heap[p])) break;
    n->heap[i] = n->heap[p];
    i = p;
  }
  n->heap[i] = x;
  return true;
}

static EmuXfer *heap_pop(EmuNet *n) {
  EmuXfer *top = n->heap[0], *last = n->heap[--n->n];
  int i = 0;
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    const EmuXfer *best = last;
    if (l < n->n && xfer_before(n->heap[l], best)) m = l, best = n->heap[l];
    if (r < n->n && xfer_before(n->heap[r], best)) m = r;
    if (m == i) break;
    n->heap[i] = n->heap[m];
    i = m;
  }
  if (n->n > 0) n->heap[i] = last;
  return top;
}

int64_t emu_net_next(const Emu *e) { return e->net.n > 0 ? e->net.heap[0]->t : EMU_NEVER; }

/* ---- routing ---- */

/* The next hop from x->cur towards x->dst: axis and direction. */
static void route(const Emu *e, const EmuXfer *x, int *axis, int *dir) {
  const int32_t *cur = e->chips[x->cur].coord, *dst = e->chips[x->dst].coord;
  for (int k = 0; k < e->t.torus_rank; k++) {
    if (cur[k] == dst[k]) continue;
    int32_t n = e->t.torus[k];
    *axis = k;
    if (e->t.wrap[k]) {
      int32_t fwd = ((dst[k] - cur[k]) % n + n) % n;
      *dir = fwd <= n - fwd ? 1 : -1;
    } else {
      *dir = dst[k] > cur[k] ? 1 : -1;
    }
    return;
  }
  *axis = 0;
  *dir = 1;
}

static bool deliver(Emu *e, EmuXfer *x, int64_t when) {
  if (when > e->net.last_delivery) e->net.last_delivery = when;
  EmuChip *dst = &e->chips[x->dst];
  if (x->kind == XF_SIGNAL) {
    EmuEvent ev = {.time = when, .src = x->src, .seq = x->seq, .kind = EV_REMOTE_SIGNAL,
                   .index = x->sem, .value = x->count};
    free(x);
    if (!emu_heap_push(&dst->heap, &ev)) return false;
    if (when < dst->next_event) dst->next_event = when;
    return true;
  }
  EmuChip *src = &e->chips[x->src];
  EmuEvent done = {.time = when, .src = x->src, .seq = x->seq, .kind = EV_REMOTE_DONE,
                   .ptr = x->dma};
  EmuEvent data = {.time = when, .src = x->src, .seq = x->seq, .kind = EV_REMOTE_DATA, .ptr = x};
  x->dma = NULL;
  if (!emu_heap_push(&src->heap, &done)) return false;
  if (when < src->next_event) src->next_event = when;
  if (!emu_heap_push(&dst->heap, &data)) return false;
  if (when < dst->next_event) dst->next_event = when;
  return true;
}

bool emu_net_step(Emu *e, int64_t t_end) {
  EmuNet *n = &e->net;
  for (int32_t i = 0; i < e->nchips; i++) {
    EmuChip *c = &e->chips[i];
    for (int k = 0; k < c->nout; k++)
      if (!heap_push(n, c->out[k])) return false;
    c->nout = 0;
  }
  while (n->n > 0 && n->heap[0]->t < t_end) {
    EmuXfer *x = heap_pop(n);
    int axis, dir;
    route(e, x, &axis, &dir);
    int32_t li = emu_link_index(e, x->cur, axis, dir);
    int64_t s = x->t > n->link_free[li] ? x->t : n->link_free[li];
    n->link_free[li] = s + x->ser;
    TileEmuLinkStats *l = &n->links[li];
    l->bytes += x->bytes;
    l->busy += x->ser;
    l->transfers++;
    if (e->o.trace && x->ser > 0) {
      EmuTraceRec r = {.start = s, .end = s + x->ser, .a = x->bytes, .b = x->src, .track = li,
                       .kind = TK_LINK};
      if (!emu_trace_add(&n->tr, &r)) return false;
    }
    x->cur = l->peer;
    x->hops++;
    if (x->cur == x->dst) {
      if (!deliver(e, x, s + n->hop + x->ser)) return false;
    } else {
      x->t = s + n->hop;
      if (!heap_push(n, x)) return false;
    }
  }
  return true;
}
