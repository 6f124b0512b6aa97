/* Iterative modulo scheduling (B. R. Rau, "Iterative Modulo Scheduling", 1994) of
 * innermost loops flagged TILE_MIR_PIPELINE, and the code it turns into.
 *
 * Needs: a loop body graph with loop-carried edges (sched_deps.c) and an earliest cycle
 * per node from the state before the loop. Gives: an initiation interval II and an issue
 * cycle t[v] of each op within one iteration such that iteration i issues op v at
 * i * II + t[v] and every edge holds across iterations (to >= from + lat - II * dist),
 * no row of the modulo reservation table holds more ops of a slot kind than the target
 * has slots, and no more DMAs are in flight than `dma.outstanding`.
 *
 *   MII = max(ResMII, RecMII). ResMII: ops per slot kind over slots per bundle, and per
 *   MXU unit its pushes times mxu_push_cycles. RecMII: the least II with no cycle of
 *   positive weight lat - II * dist, found per strongly connected component by binary
 *   search with a Bellman-Ford check (components are small: address steps,
 *   accumulators, buffer slots).
 *   For II = MII, MII + 1, ...: ops in order of height (longest path to the end of the
 *   iteration) take the first free row in [Estart, Estart + II - 1]; when none is free
 *   the op takes Estart (or one past its last try) and evicts the op holding that row;
 *   successors whose edges it breaks are unscheduled. A budget of steps per II bounds
 *   the search.
 *
 * Code (sched_modulo_emit): S = stages. The prologue is the first (S - 1) * II cycles
 * of the flat schedule, the kernel one II-cycle row set run N - S + 1 times by the
 * hardware `loop` (no per-iteration cost), the epilogue the last (S - 1) * II cycles,
 * with trailing empty bundles dropped. Because the three parts issue exactly the flat
 * schedule, every latency across the back edge, at loop entry and at exit is the modulo
 * schedule's own. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

/* ---- MII ---- */

int32_t sched_res_mii(const SchedCtx *cx, const SchedGraph *g) {
  const TileTarget *t = cx->t;
  int32_t count[TILE_SLOT_COUNT] = {0};
  int32_t units = t->mxu_count > 0 ? t->mxu_count : 1;
  int32_t *push = sched_calloc((size_t)units, sizeof(int32_t));
  for (int32_t v = 0; v < g->n; v++) {
    const TileMirInst *in = &g->ins[v];
    if (in->op == TILE_MOP_NOP) continue;
    count[cx->info[in->op].slot]++;
    if (in->op == TILE_MOP_MXU_PUSH && in->c >= 0 && in->c < t->mxu_count) push[in->c]++;
  }
  int32_t mii = 1;
  for (int s = 0; s < TILE_SLOT_COUNT; s++) {
    int32_t k = t->slots[s] > 0 ? (count[s] + t->slots[s] - 1) / t->slots[s] : count[s];
    if (k > mii) mii = k;
  }
  for (int32_t u = 0; u < t->mxu_count; u++)
    if (push[u] * t->mxu_push_cycles > mii) mii = push[u] * t->mxu_push_cycles;
  free(push);
  return mii;
}

/* Tarjan's strongly connected components, iteratively; comp[v] gets the component. */
static int32_t scc(const SchedGraph *g, int32_t *comp) {
  int32_t n = g->n, ncomp = 0, index = 0, sp = 0, cs = 0;
  int32_t *idx = sched_calloc((size_t)n, sizeof(int32_t)), *low = sched_calloc((size_t)n, sizeof(int32_t));
  int32_t *stack = sched_calloc((size_t)n, sizeof(int32_t)), *call = sched_calloc((size_t)n, sizeof(int32_t));
  int32_t *edge_at = sched_calloc((size_t)n, sizeof(int32_t));
  bool *on = sched_calloc((size_t)n, sizeof(bool));
  for (int32_t v = 0; v < n; v++) idx[v] = -1;
  for (int32_t root = 0; root < n; root++) {
    if (idx[root] >= 0) continue;
    call[cs++] = root;
    idx[root] = low[root] = index++;
    stack[sp++] = root;
    on[root] = true;
    edge_at[root] = g->succ_off[root];
    while (cs > 0) {
      int32_t v = call[cs - 1];
      if (edge_at[v] < g->succ_off[v + 1]) {
        int32_t w = g->e[g->succ[edge_at[v]++]].to;
        if (idx[w] < 0) {
          idx[w] = low[w] = index++;
          stack[sp++] = w;
          on[w] = true;
          edge_at[w] = g->succ_off[w];
          call[cs++] = w;
        } else if (on[w] && idx[w] < low[v]) {
          low[v] = idx[w];
        }
        continue;
      }
      if (low[v] == idx[v]) {
        int32_t w;
        do {
          w = stack[--sp];
          on[w] = false;
          comp[w] = ncomp;
        } while (w != v);
        ncomp++;
      }
      cs--;
      if (cs > 0 && low[v] < low[call[cs - 1]]) low[call[cs - 1]] = low[v];
    }
  }
  free(idx);
  free(low);
  free(stack);
  free(call);
  free(edge_at);
  free(on);
  return ncomp;
}

/* Scratch of the positive-cycle checks of one component. */
typedef struct CycleScratch {
  int64_t *dist;
  int32_t *pred;  /* per node: the node whose edge last raised dist, -1 none */
  int32_t *seen;  /* per node: the walk that last passed it, in pred_cycle */
} CycleScratch;

/* True when the predecessor pointers of the nodes close a cycle. */
static bool pred_cycle(const int32_t *nodes, int32_t nn, CycleScratch *cs) {
  for (int32_t k = 0; k < nn; k++) cs->seen[nodes[k]] = -1;
  for (int32_t k = 0; k < nn; k++) {
    int32_t v = nodes[k];
    while (v >= 0 && cs->seen[v] < 0) {
      cs->seen[v] = k;
      v = cs->pred[v];
    }
    if (v >= 0 && cs->seen[v] == k) return true;
  }
  return false;
}

/* True when the edges (all inside one component, listed in es) have a cycle of positive
 * weight lat - ii * dist: Bellman-Ford for longest paths from every node at 0. Without
 * such a cycle the values settle within nn rounds. With one they never do, and the
 * predecessor pointers (each node's last raise) soon close a cycle, which is then
 * positive (each pointer's edge weighs at least the raise it records, and the edge that
 * closed the cycle strictly more): the check returns as soon as they do instead of
 * running all nn rounds. The answer is the same either way. */
static bool positive_cycle(const SchedGraph *g, const int32_t *es, int32_t nes,
                           const int32_t *nodes, int32_t nn, int32_t ii, CycleScratch *cs) {
  int64_t *dist = cs->dist;
  for (int32_t k = 0; k < nn; k++) {
    dist[nodes[k]] = 0;
    cs->pred[nodes[k]] = -1;
  }
  for (int32_t round = 0; round <= nn; round++) {
    bool changed = false;
    for (int32_t k = 0; k < nes; k++) {
      const SchedEdge *e = &g->e[es[k]];
      int64_t w = (int64_t)e->lat - (int64_t)ii * e->dist;
      if (dist[e->from] + w > dist[e->to]) {
        dist[e->to] = dist[e->from] + w;
        cs->pred[e->to] = e->from;
        changed = true;
      }
    }
    if (!changed) return false;
    if (pred_cycle(nodes, nn, cs)) return true;
  }
  return true;
}

/* Components larger than this get a bound instead of the exact search (Bellman-Ford
 * per binary-search step is O(V E) and a large body can be one big component). */
enum { BIG_SCC = 96 };

/* The recurrences through one loop-carried edge u -> v of component c: the longest path
 * v -> u over the iteration's own edges (which go forward in program order) closes a
 * cycle of weight path + lat over dist iterations. A lower bound on RecMII; recurrences
 * through several carried edges are left to the scheduler, which never breaks an edge
 * (it raises II until every edge holds). */
static int32_t carried_bound(const SchedGraph *g, const int32_t *comp, int32_t c, const int32_t *es,
                             int32_t nes, int64_t *dist) {
  int32_t best = 1;
  for (int32_t k = 0; k < nes; k++) {
    const SchedEdge *ce = &g->e[es[k]];
    if (ce->dist == 0) continue;
    int32_t u = ce->from, v = ce->to;
    if (v > u) continue; /* forward paths only reach later nodes */
    for (int32_t x = v; x <= u; x++) dist[x] = INT64_MIN / 4;
    dist[v] = 0;
    for (int32_t x = v; x < u; x++) {
      if (dist[x] == INT64_MIN / 4) continue;
      for (int32_t j = g->succ_off[x]; j < g->succ_off[x + 1]; j++) {
        const SchedEdge *e = &g->e[g->succ[j]];
        if (e->dist != 0 || e->to > u || comp[e->to] != c) continue;
        if (dist[x] + e->lat > dist[e->to]) dist[e->to] = dist[x] + e->lat;
      }
    }
    if (dist[u] == INT64_MIN / 4) continue;
    int64_t w = dist[u] + ce->lat, b = (w + ce->dist - 1) / ce->dist;
    if (b > best) best = b > INT32_MAX ? INT32_MAX : (int32_t)b;
  }
  return best;
}

int32_t sched_rec_mii(const SchedGraph *g, int32_t floor) {
  int32_t n = g->n;
  if (n == 0) return 1;
  int32_t *comp = sched_calloc((size_t)n, sizeof(int32_t));
  int32_t ncomp = scc(g, comp);
  int32_t mii = floor > 1 ? floor : 1;
  /* group nodes and internal edges by component */
  int32_t *noff = sched_calloc((size_t)ncomp + 1, sizeof(int32_t)), *eoff = sched_calloc((size_t)ncomp + 1, sizeof(int32_t));
  for (int32_t v = 0; v < n; v++) noff[comp[v] + 1]++;
  for (int32_t i = 0; i < g->nedges; i++)
    if (comp[g->e[i].from] == comp[g->e[i].to]) eoff[comp[g->e[i].from] + 1]++;
  for (int32_t c = 0; c < ncomp; c++) {
    noff[c + 1] += noff[c];
    eoff[c + 1] += eoff[c];
  }
  int32_t *nodes = sched_calloc((size_t)n, sizeof(int32_t)), *es = sched_calloc((size_t)g->nedges, sizeof(int32_t));
  int32_t *nf = sched_calloc((size_t)ncomp, sizeof(int32_t)), *ef = sched_calloc((size_t)ncomp, sizeof(int32_t));
  for (int32_t v = 0; v < n; v++) nodes[noff[comp[v]] + nf[comp[v]]++] = v;
  for (int32_t i = 0; i < g->nedges; i++)
    if (comp[g->e[i].from] == comp[g->e[i].to]) es[eoff[comp[g->e[i].from]] + ef[comp[g->e[i].from]]++] = i;
  int64_t *dist = sched_calloc((size_t)n, sizeof(int64_t));
  CycleScratch cs = {dist, sched_calloc((size_t)n, sizeof(int32_t)), sched_calloc((size_t)n, sizeof(int32_t))};
  for (int32_t c = 0; c < ncomp; c++) {
    int32_t nes = eoff[c + 1] - eoff[c];
    if (nes == 0) continue;
    if (noff[c + 1] - noff[c] > BIG_SCC) {
      int32_t b = carried_bound(g, comp, c, es + eoff[c], nes, dist);
      if (b > mii) mii = b;
      continue;
    }
    int64_t hi = 1;
    for (int32_t k = eoff[c]; k < eoff[c + 1]; k++)
      if (g->e[es[k]].lat > 0) hi += g->e[es[k]].lat;
    if (hi > INT32_MAX) hi = INT32_MAX;
    int32_t lo = mii;
    if (!positive_cycle(g, es + eoff[c], nes, nodes + noff[c], noff[c + 1] - noff[c], lo, &cs))
      continue;
    /* lo fails, hi (the sum of latencies) passes: every cycle has dist >= 1 */
    int32_t h = (int32_t)hi;
    while (lo + 1 < h) {
      int32_t mid = lo + (h - lo) / 2;
      if (positive_cycle(g, es + eoff[c], nes, nodes + noff[c], noff[c + 1] - noff[c], mid, &cs))
        lo = mid;
      else
        h = mid;
    }
    mii = h;
  }
  free(comp);
  free(noff);
  free(eoff);
  free(nodes);
  free(es);
  free(nf);
  free(ef);
  free(dist);
  free(cs.pred);
  free(cs.seen);
  return mii;
}

/* ---- iterative modulo scheduling ---- */

typedef struct Ims {
  const SchedCtx *cx;
  const SchedGraph *g;
  int32_t ii;
  int32_t *mrt;    /* [row][kind][k]: node or -1 */
  int32_t width;   /* entries per row: sum of slot counts */
  int32_t kind_at[TILE_SLOT_COUNT];
  int32_t *t, *prev;
  int64_t *prio;   /* negated height: smaller first */
  int32_t *heap, nheap;
  bool *queued;
} Ims;

static bool prio_less(const Ims *s, int32_t a, int32_t b) {
  if (s->prio[a] != s->prio[b]) return s->prio[a] < s->prio[b];
  return a < b;
}

static void q_push(Ims *s, int32_t v) {
  if (s->queued[v]) return;
  s->queued[v] = true;
  int32_t i = s->nheap++;
  s->heap[i] = v;
  while (i > 0) {
    int32_t p = (i - 1) / 2;
    if (!prio_less(s, s->heap[i], s->heap[p])) break;
    int32_t x = s->heap[i];
    s->heap[i] = s->heap[p];
    s->heap[p] = x;
    i = p;
  }
}

static int32_t q_pop(Ims *s) {
  int32_t top = s->heap[0];
  s->heap[0] = s->heap[--s->nheap];
  int32_t i = 0;
  for (;;) {
    int32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < s->nheap && prio_less(s, s->heap[l], s->heap[m])) m = l;
    if (r < s->nheap && prio_less(s, s->heap[r], s->heap[m])) m = r;
    if (m == i) break;
    int32_t x = s->heap[i];
    s->heap[i] = s->heap[m];
    s->heap[m] = x;
    i = m;
  }
  s->queued[top] = false;
  return top;
}

static int32_t *row_of(Ims *s, int32_t t, int kind) {
  return s->mrt + (size_t)(t % s->ii) * (size_t)s->width + s->kind_at[kind];
}

static void unschedule(Ims *s, int32_t v) {
  int kind = s->cx->info[s->g->ins[v].op].slot;
  int32_t *row = row_of(s, s->t[v], kind);
  for (int k = 0; k < s->cx->t->slots[kind]; k++)
    if (row[k] == v) row[k] = -1;
  s->t[v] = -1;
  q_push(s, v);
}

static bool try_ii(Ims *s, const int32_t *lb) {
  const SchedGraph *g = s->g;
  const TileTarget *t = s->cx->t;
  int32_t n = g->n, ii = s->ii;
  for (size_t i = 0; i < (size_t)ii * (size_t)s->width; i++) s->mrt[i] = -1;
  for (int32_t v = 0; v < n; v++) {
    s->t[v] = s->prev[v] = -1;
    s->queued[v] = false;
  }
  s->nheap = 0;
  for (int32_t v = 0; v < n; v++) q_push(s, v);
  int64_t budget = (int64_t)n * 8 + 64;
  while (s->nheap > 0) {
    if (budget-- <= 0) return false;
    int32_t v = q_pop(s);
    int64_t est = lb[v];
    for (int32_t k = g->pred_off[v]; k < g->pred_off[v + 1]; k++) {
      const SchedEdge *e = &g->e[g->pred[k]];
      if (e->from == v) {
        if (e->lat - (int64_t)ii * e->dist > 0) return false;
        continue;
      }
      if (s->t[e->from] < 0) continue;
      int64_t x = (int64_t)s->t[e->from] + e->lat - (int64_t)ii * e->dist;
      if (x > est) est = x;
    }
    if (est > INT32_MAX / 4) return false;
    int kind = s->cx->info[g->ins[v].op].slot;
    int slots = t->slots[kind];
    int64_t at = -1;
    for (int64_t c = est; c < est + ii && at < 0; c++) {
      int32_t *row = row_of(s, (int32_t)c, kind);
      for (int k = 0; k < slots; k++)
        if (row[k] < 0) {
          at = c;
          break;
        }
    }
    if (at < 0) {
      at = (s->prev[v] < 0 || est > s->prev[v]) ? est : (int64_t)s->prev[v] + 1;
      int32_t *row = row_of(s, (int32_t)at, kind);
      unschedule(s, row[0]); /* frees row[0] */
    }
    int32_t *row = row_of(s, (int32_t)at, kind);
    for (int k = 0; k < slots; k++)
      if (row[k] < 0) {
        row[k] = v;
        break;
      }
    s->t[v] = s->prev[v] = (int32_t)at;
    /* successors this placement now breaks go back to the queue */
    for (int32_t k = g->succ_off[v]; k < g->succ_off[v + 1]; k++) {
      const SchedEdge *e = &g->e[g->succ[k]];
      if (e->to == v || s->t[e->to] < 0) continue;
      if ((int64_t)s->t[e->to] < at + e->lat - (int64_t)ii * e->dist) unschedule(s, e->to);
    }
  }
  return true;
}

/* DMAs in flight in the steady state: each DMA from its issue to the first sem.wait
 * that its edges say waits for it; within dma.outstanding less those code before the
 * loop keeps in flight across it (its LOOP_BEGIN's `b`). */
static bool dma_within_limit(const SchedCtx *cx, const SchedGraph *g, const int32_t *t, int32_t ii) {
  int64_t limit = cx->t->dma_outstanding;
  if (g->first > 0 && cx->m->insts[g->first - 1].op == TILE_MIR_LOOP_BEGIN)
    limit -= cx->m->insts[g->first - 1].b;
  int64_t *cnt = sched_calloc((size_t)ii, sizeof(int64_t));
  bool ok = true;
  for (int32_t v = 0; v < g->n && ok; v++) {
    if (g->ins[v].op != TILE_MOP_DMA) continue;
    int64_t retire = -1;
    for (int32_t k = g->succ_off[v]; k < g->succ_off[v + 1]; k++) {
      const SchedEdge *e = &g->e[g->succ[k]];
      if (g->ins[e->to].op != TILE_MOP_WAIT) continue;
      int64_t r = (int64_t)t[e->to] + (int64_t)ii * e->dist;
      if (retire < 0 || r < retire) retire = r;
    }
    if (retire < 0) retire = t[v];
    int64_t span = retire - t[v] + 1;
    for (int32_t r = 0; r < ii; r++) {
      int64_t off = ((r - t[v]) % ii + ii) % ii;
      cnt[r] += span / ii + (off < span % ii ? 1 : 0);
    }
  }
  for (int32_t r = 0; r < ii; r++)
    if (cnt[r] > limit) ok = false;
  free(cnt);
  return ok;
}

static bool attempt(Ims *s, const int32_t *lb, int32_t ii) {
  s->ii = ii;
  free(s->mrt);
  s->mrt = sched_calloc((size_t)ii * (size_t)s->width, sizeof(int32_t));
  return try_ii(s, lb) && dma_within_limit(s->cx, s->g, s->t, ii);
}

bool sched_modulo(const SchedCtx *cx, const SchedGraph *g, const int32_t *lb, int32_t max_ii,
                  SchedModulo *out) {
  const TileTarget *t = cx->t;
  int32_t n = g->n;
  out->res_mii = g->res_mii > 0 ? g->res_mii : sched_res_mii(cx, g);
  out->rec_mii = g->res_mii > 0 ? g->rec_mii : sched_rec_mii(g, out->res_mii);
  out->ii = out->stages = 0;
  out->t = NULL;
  if (n == 0) return false;
  int32_t mii = out->res_mii > out->rec_mii ? out->res_mii : out->rec_mii;
  if (max_ii <= mii) max_ii = mii + 1;

  Ims s;
  memset(&s, 0, sizeof s);
  s.cx = cx;
  s.g = g;
  for (int k = 0; k < TILE_SLOT_COUNT; k++) {
    s.kind_at[k] = s.width;
    s.width += t->slots[k];
  }
  s.t = sched_calloc((size_t)n, sizeof(int32_t));
  s.prev = sched_calloc((size_t)n, sizeof(int32_t));
  s.prio = sched_calloc((size_t)n, sizeof(int64_t));
  s.heap = sched_calloc((size_t)n, sizeof(int32_t));
  s.queued = sched_calloc((size_t)n, sizeof(bool));
  /* height over the iteration's own edges (they go forward in program order) */
  for (int32_t v = n - 1; v >= 0; v--) {
    int64_t h = sched_lat(cx, g->ins[v].op);
    for (int32_t k = g->succ_off[v]; k < g->succ_off[v + 1]; k++) {
      const SchedEdge *e = &g->e[g->succ[k]];
      if (e->dist == 0 && e->to > v && -s.prio[e->to] + e->lat > h) h = -s.prio[e->to] + e->lat;
    }
    s.prio[v] = -h;
  }
  /* II = MII first (the usual answer), then growing steps until one succeeds, then a
   * binary search below it: O(log) attempts where a linear search could take hundreds
   * on a large body. Success is not strictly monotone in II, so the answer is the
   * least II found to work, not necessarily the least that would. */
  int32_t *best = sched_calloc((size_t)n, sizeof(int32_t));
  int32_t best_ii = 0, bad = mii - 1;
  for (int64_t step = 1, ii = mii; ii < max_ii; step *= 2) {
    if (attempt(&s, lb, (int32_t)ii)) {
      best_ii = (int32_t)ii;
      memcpy(best, s.t, (size_t)n * sizeof(int32_t));
      break;
    }
    bad = (int32_t)ii;
    ii = bad + step;
    if (ii >= max_ii && bad + 1 < max_ii) ii = max_ii - 1; /* the last II worth trying */
  }
  while (best_ii > 0 && bad + 1 < best_ii) {
    int32_t mid = bad + (best_ii - bad) / 2;
    if (attempt(&s, lb, mid)) {
      best_ii = mid;
      memcpy(best, s.t, (size_t)n * sizeof(int32_t));
    } else {
      bad = mid;
    }
  }
  bool found = best_ii > 0;
  for (int32_t i = 0; found && i < g->nedges; i++) /* the invariant try_ii keeps */
    found = (int64_t)best[g->e[i].to] >= (int64_t)best[g->e[i].from] + g->e[i].lat - (int64_t)best_ii * g->e[i].dist;
  memcpy(s.t, best, (size_t)n * sizeof(int32_t));
  s.ii = best_ii;
  free(best);
  free(s.mrt);
  free(s.prev);
  free(s.prio);
  free(s.heap);
  free(s.queued);
  if (!found) {
    free(s.t);
    return false;
  }
  int32_t last = 0;
  for (int32_t v = 0; v < n; v++)
    if (s.t[v] > last) last = s.t[v];
  out->ii = s.ii;
  out->stages = last / s.ii + 1;
  out->t = s.t;
  return true;
}

/* ---- code ---- */

static void put(const SchedCtx *cx, TileMirCode *c, int32_t b, const TileMirInst *in) {
  if (in->op == TILE_MOP_NOP) return;
  if (!sched_code_put(cx, c, b, in)) {
    /* the reservation table admits every row; a full word here is a scheduler bug */
    fprintf(stderr, "tilec: internal error: modulo schedule overfills bundle %d\n", (int)b);
    abort();
  }
}

int32_t sched_modulo_emit(const SchedCtx *cx, TileMirCode *c, const SchedGraph *g,
                          const SchedModulo *ms, int32_t trips, int32_t loop_bundle) {
  const int32_t ii = ms->ii, S = ms->stages;
  const int32_t pro = (S - 1) * ii;
  int32_t base = sched_code_append(c, pro + ii);
  int32_t kernel = base + pro;
  for (int32_t v = 0; v < g->n; v++) {
    for (int64_t tau = ms->t[v]; tau < pro; tau += ii) put(cx, c, base + (int32_t)tau, &g->ins[v]);
    put(cx, c, kernel + ms->t[v] % ii, &g->ins[v]);
  }
  if (S > 1) loop_bundle = kernel - 1;
  TileMirInst lp = tile_mir_inst(TILE_MOP_LOOP, 0, 0, 0, ii, trips - S + 1);
  lp.src = g->ins[0].src;
  c->b[loop_bundle].slot[tile_slot_first(TILE_SLOT_BRANCH)] = lp;

  int32_t epi = sched_code_append(c, pro);
  int32_t used = 0;
  for (int32_t v = 0; v < g->n; v++) {
    int32_t st = ms->t[v] / ii;
    for (int32_t k = 1; k <= st; k++) {
      int32_t at = ms->t[v] - k * ii;
      put(cx, c, epi + at, &g->ins[v]);
      if (g->ins[v].op != TILE_MOP_NOP && at + 1 > used) used = at + 1;
    }
  }
  c->nbundles = epi + used; /* trailing empty bundles of the epilogue go */
  return kernel;
}
