/* List scheduling of a straight-line stretch, cycle by cycle.
 *
 * Needs: a graph whose distance-0 edges all go forward in program order (sched_deps.c
 * builds them so) and an earliest cycle per node from the state at the stretch's start.
 * Gives: an issue cycle per node that satisfies every edge and never puts more ops of a
 * slot kind in one cycle than the target's `slots.<kind>`.
 *
 * Priority is the critical path: the longest latency path from the node to the end of
 * the stretch (its own latency when nothing follows), ties to program order. Each slot
 * kind has its own ready heap, so a cycle costs O(kinds + ops placed) and the whole
 * stretch O((n + e) log n + cycles). Ops whose predecessors are all placed wait in a
 * heap ordered by their earliest cycle until that cycle comes. */
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

/* A binary heap of node ids; `key` orders it (smallest first). */
typedef struct Heap {
  int32_t *a;
  int32_t n;
} Heap;

typedef struct Keys {
  const int64_t *k; /* per node; ties broken by node id (program order) */
} Keys;

static bool less(const Keys *ks, int32_t x, int32_t y) {
  if (ks->k[x] != ks->k[y]) return ks->k[x] < ks->k[y];
  return x < y;
}

static void heap_push(Heap *h, const Keys *ks, int32_t v) {
  int32_t i = h->n++;
  h->a[i] = v;
  while (i > 0) {
    int32_t p = (i - 1) / 2;
    if (!less(ks, h->a[i], h->a[p])) break;
    int32_t tmp = h->a[i];
    h->a[i] = h->a[p];
    h->a[p] = tmp;
    i = p;
  }
}

static int32_t heap_pop(Heap *h, const Keys *ks) {
  int32_t top = h->a[0];
  h->a[0] = h->a[--h->n];
  int32_t i = 0;
  for (;;) {
    int32_t l = 2 * i + 1, r = l + 1, s = i;
    if (l < h->n && less(ks, h->a[l], h->a[s])) s = l;
    if (r < h->n && less(ks, h->a[r], h->a[s])) s = r;
    if (s == i) break;
    int32_t tmp = h->a[i];
    h->a[i] = h->a[s];
    h->a[s] = tmp;
    i = s;
  }
  return top;
}

int32_t sched_list(const SchedCtx *cx, const SchedGraph *g, const int32_t *lb, int32_t *t) {
  const int32_t n = g->n;
  if (n == 0) return 0;
  int64_t *height = sched_calloc((size_t)n, sizeof *height); /* negated: smallest first */
  int64_t *est = sched_calloc((size_t)n, sizeof *est);
  int32_t *waiting = sched_calloc((size_t)n, sizeof *waiting);
  for (int32_t v = n - 1; v >= 0; v--) {
    int64_t h = sched_lat(cx, g->ins[v].op);
    for (int32_t k = g->succ_off[v]; k < g->succ_off[v + 1]; k++) {
      const SchedEdge *e = &g->e[g->succ[k]];
      if (e->dist == 0 && -height[e->to] + e->lat > h) h = -height[e->to] + e->lat;
    }
    height[v] = -h;
  }
  for (int32_t v = 0; v < n; v++) {
    est[v] = lb[v];
    waiting[v] = 0;
    t[v] = -1;
  }
  for (int32_t i = 0; i < g->nedges; i++)
    if (g->e[i].dist == 0) waiting[g->e[i].to]++;

  Keys by_est = {est}, by_height = {height};
  Heap pending = {sched_calloc((size_t)n, sizeof(int32_t)), 0};
  Heap ready[TILE_SLOT_COUNT];
  for (int s = 0; s < TILE_SLOT_COUNT; s++) ready[s] = (Heap){sched_calloc((size_t)n, sizeof(int32_t)), 0};
  for (int32_t v = 0; v < n; v++)
    if (waiting[v] == 0) heap_push(&pending, &by_est, v);

  int32_t placed = 0, len = 0;
  int64_t cycle = 0;
  while (placed < n) {
    int used[TILE_SLOT_COUNT] = {0};
    bool progress = true;
    while (progress) {
      progress = false;
      while (pending.n > 0 && est[pending.a[0]] <= cycle) {
        int32_t v = heap_pop(&pending, &by_est);
        heap_push(&ready[cx->info[g->ins[v].op].slot], &by_height, v);
      }
      for (int s = 0; s < TILE_SLOT_COUNT; s++) {
        while (ready[s].n > 0 && used[s] < cx->t->slots[s]) {
          int32_t v = heap_pop(&ready[s], &by_height);
          used[s]++;
          t[v] = (int32_t)cycle;
          placed++;
          progress = true;
          if (cycle + 1 > len) len = (int32_t)cycle + 1;
          for (int32_t k = g->succ_off[v]; k < g->succ_off[v + 1]; k++) {
            const SchedEdge *e = &g->e[g->succ[k]];
            if (e->dist != 0) continue;
            if (cycle + e->lat > est[e->to]) est[e->to] = cycle + e->lat;
            if (--waiting[e->to] == 0) heap_push(&pending, &by_est, e->to);
          }
        }
      }
    }
    bool any_ready = false;
    for (int s = 0; s < TILE_SLOT_COUNT; s++) any_ready |= ready[s].n > 0;
    if (any_ready || pending.n == 0) cycle++;
    else cycle = est[pending.a[0]] > cycle + 1 ? est[pending.a[0]] : cycle + 1;
  }

  free(height);
  free(est);
  free(waiting);
  free(pending.a);
  for (int s = 0; s < TILE_SLOT_COUNT; s++) free(ready[s].a);
  return len;
}

/* ---- bundles ---- */

void sched_code_reserve(TileMirCode *c, int32_t n) {
  if (n <= c->cap) return;
  c->b = sched_realloc(c->b, (size_t)n * sizeof *c->b);
  c->cap = n;
}

int32_t sched_code_append(TileMirCode *c, int32_t k) {
  if (c->nbundles + k > c->cap) {
    int32_t nc = c->cap ? c->cap : 64;
    while (nc < c->nbundles + k) nc *= 2;
    sched_code_reserve(c, nc);
  }
  int32_t first = c->nbundles;
  if (k > 0) {
    /* one empty bundle, then copies of it (kernels reach tens of thousands of bundles) */
    TileMirBundle *b = &c->b[first];
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++)
      b->slot[w] = tile_mir_inst(TILE_MOP_NOP, 0, 0, 0, 0, 0);
    for (int32_t i = 1; i < k; i++) memcpy(&c->b[first + i], b, sizeof *b);
  }
  c->nbundles += k;
  return first;
}

bool sched_code_put(const SchedCtx *cx, TileMirCode *c, int32_t b, const TileMirInst *in) {
  TileSlot s = (TileSlot)cx->info[in->op].slot;
  int first = tile_slot_first(s), n = cx->t->slots[s];
  for (int w = first; w < first + n; w++)
    if (c->b[b].slot[w].op == TILE_MOP_NOP) {
      c->b[b].slot[w] = *in;
      return true;
    }
  return false;
}
