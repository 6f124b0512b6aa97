/* The boundary state the schedulers carry from one stretch of code into the next
 * (sched_internal.h): for every register, MXU unit, the transpose buffer, each buffer's
 * stores and each semaphore's signals, how many cycles after the boundary the last
 * result in flight lands.
 *
 * MXU result queues are kept per result: when the number of results queued on a unit
 * is known, the state holds the landing time of each, oldest first, so the k-th pop
 * after a boundary waits only for the k-th result, not for the newest push. A loop
 * whose body pops results pushed before it (the matmul's pops trailing its pushes
 * across a block boundary) then starts at once instead of waiting for the last push
 * before it to land. Where the count is not known (a loop that pushes and pops a unit
 * unequally), every pop waits for the newest result (S_FIFO, the queue's maximum). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

void *sched_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "tilec: out of memory while scheduling\n");
    abort();
  }
  return p;
}

void *sched_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "tilec: out of memory while scheduling\n");
    abort();
  }
  return q;
}

static int32_t clamp32(int64_t x) {
  return x > INT32_MAX ? INT32_MAX : x < INT32_MIN ? INT32_MIN : (int32_t)x;
}

/* Entry i of v becomes x (>= 0), listed in live when nonzero. */
static void set_v(SchedState *s, int32_t i, int32_t x) {
  s->v[i] = x;
  if (x > 0 && !s->listed[i]) {
    s->listed[i] = 1;
    s->live[s->nlive++] = i;
  }
}

static void raise_to(SchedState *s, int32_t i, int64_t x) {
  if (x > s->v[i]) set_v(s, i, clamp32(x));
}

bool sched_fifo_known(const SchedState *s, int32_t u) { return s->fifo_n[u] < FIFO_UNKNOWN / 2; }

/* Makes room for n landing times on unit u. */
static void fifo_reserve(SchedState *s, int32_t u, int64_t n) {
  if (n <= s->fifo_cap[u]) return;
  int64_t cap = s->fifo_cap[u] ? s->fifo_cap[u] : 16;
  while (cap < n) cap *= 2;
  s->fifo_t[u] = sched_realloc(s->fifo_t[u], (size_t)cap * sizeof(int32_t));
  s->fifo_cap[u] = cap;
}

/* S_FIFO is the newest landing among the queued results (0 when none). */
static void fifo_summary(SchedState *s, int32_t u) {
  if (!sched_fifo_known(s, u)) return;
  int32_t m = 0;
  for (int64_t i = 0; i < s->fifo_n[u]; i++)
    if (s->fifo_t[u][i] > m) m = s->fifo_t[u][i];
  set_v(s, S_FIFO(s, u), m);
}

void sched_fifo_forget(SchedState *s, int32_t u) { s->fifo_n[u] = FIFO_UNKNOWN; }

void sched_state_fifo_fill(SchedState *s, int32_t u, int64_t n, int32_t at) {
  fifo_reserve(s, u, n);
  for (int64_t i = 0; i < n; i++) s->fifo_t[u][i] = at;
  s->fifo_n[u] = n;
  set_v(s, S_FIFO(s, u), n ? at : 0);
}

/* Arrays of a state of src's sizes, all zero. */
static void state_alloc(SchedState *s, const SchedState *dims) {
  s->nregs = dims->nregs;
  s->nunits = dims->nunits;
  s->nbufs = dims->nbufs;
  s->nsems = dims->nsems;
  s->len = dims->len;
  s->v = sched_calloc((size_t)s->len, sizeof(int32_t));
  s->live = sched_calloc((size_t)s->len, sizeof(int32_t));
  s->listed = sched_calloc((size_t)s->len, 1);
  s->nlive = 0;
  s->fifo_n = sched_calloc((size_t)s->nunits, sizeof(int64_t));
  s->fifo_t = sched_calloc((size_t)s->nunits, sizeof(int32_t *));
  s->fifo_cap = sched_calloc((size_t)s->nunits, sizeof(int64_t));
}

void sched_state_init(SchedState *s, const TileMir *m) {
  SchedState dims = {0};
  dims.nregs = m->nregs;
  dims.nunits = m->target->mxu_count > 0 ? m->target->mxu_count : 1;
  dims.nbufs = m->nbufs;
  dims.nsems = m->nsems;
  dims.len = dims.nregs + 3 * dims.nunits + 1 + dims.nbufs + dims.nsems;
  memset(s, 0, sizeof *s);
  state_alloc(s, &dims);
}

void sched_state_free(SchedState *s) {
  for (int32_t u = 0; s->fifo_t && u < s->nunits; u++) free(s->fifo_t[u]);
  free(s->fifo_t);
  free(s->fifo_cap);
  free(s->v);
  free(s->live);
  free(s->listed);
  free(s->fifo_n);
  memset(s, 0, sizeof *s);
}

void sched_state_copy(SchedState *dst, const SchedState *src) {
  if (dst->len != src->len || dst->nunits != src->nunits || !dst->v) {
    sched_state_free(dst);
    state_alloc(dst, src);
  } else {
    for (int32_t j = 0; j < dst->nlive; j++) {
      dst->v[dst->live[j]] = 0;
      dst->listed[dst->live[j]] = 0;
    }
    dst->nlive = 0;
  }
  for (int32_t j = 0; j < src->nlive; j++) set_v(dst, src->live[j], src->v[src->live[j]]);
  memcpy(dst->fifo_n, src->fifo_n, (size_t)src->nunits * sizeof(int64_t));
  for (int32_t u = 0; u < src->nunits; u++) {
    if (!sched_fifo_known(src, u) || src->fifo_n[u] <= 0) continue;
    fifo_reserve(dst, u, src->fifo_n[u]);
    memcpy(dst->fifo_t[u], src->fifo_t[u], (size_t)src->fifo_n[u] * sizeof(int32_t));
  }
}

void sched_state_advance(SchedState *s, int32_t k) {
  if (k < 0) { /* values grow: every entry may become nonzero */
    for (int32_t i = 0; i < s->len; i++) set_v(s, i, s->v[i] > k ? s->v[i] - k : 0);
  } else {
    int32_t n = 0;
    for (int32_t j = 0; j < s->nlive; j++) {
      int32_t i = s->live[j];
      s->v[i] = s->v[i] > k ? s->v[i] - k : 0;
      if (s->v[i] > 0)
        s->live[n++] = i;
      else
        s->listed[i] = 0;
    }
    s->nlive = n;
  }
  for (int32_t u = 0; u < s->nunits; u++) {
    if (!sched_fifo_known(s, u)) continue;
    for (int64_t i = 0; i < s->fifo_n[u]; i++)
      s->fifo_t[u][i] = s->fifo_t[u][i] > k ? s->fifo_t[u][i] - k : 0;
  }
}

void sched_state_join(SchedState *dst, const SchedState *src) {
  for (int32_t j = 0; j < src->nlive; j++) raise_to(dst, src->live[j], src->v[src->live[j]]);
  for (int32_t u = 0; u < dst->nunits; u++) {
    if (!sched_fifo_known(dst, u)) continue;
    if (!sched_fifo_known(src, u) || src->fifo_n[u] != dst->fifo_n[u]) {
      sched_fifo_forget(dst, u); /* S_FIFO, joined above, bounds both */
      continue;
    }
    for (int64_t i = 0; i < dst->fifo_n[u]; i++)
      if (src->fifo_t[u][i] > dst->fifo_t[u][i]) dst->fifo_t[u][i] = src->fifo_t[u][i];
  }
}

bool sched_state_le(const SchedState *a, const SchedState *b) {
  /* entries a does not list are 0, and no value is negative */
  for (int32_t j = 0; j < a->nlive; j++)
    if (a->v[a->live[j]] > b->v[a->live[j]]) return false;
  /* Per-result times only where both queues are known and alike; S_FIFO bounds the
   * rest (and always shrinks as cycles pass, so padding a loop body terminates). */
  for (int32_t u = 0; u < a->nunits; u++) {
    if (!sched_fifo_known(a, u) || !sched_fifo_known(b, u) || a->fifo_n[u] != b->fifo_n[u])
      continue;
    for (int64_t i = 0; i < a->fifo_n[u]; i++)
      if (a->fifo_t[u][i] > b->fifo_t[u][i]) return false;
  }
  return true;
}

/* The earliest cycle the pop that is the k-th of unit u in one iteration may issue,
 * given the results queued at the start: iteration i pops entry i * per_iter + k at
 * i * ii + t, so t >= time[i * per_iter + k] - i * ii for each such entry (ii = 0:
 * straight-line code, one iteration). ii must not exceed the loop's real II. */
static int64_t pop_bound(const SchedState *in, int32_t u, int64_t k, int64_t per_iter, int32_t ii,
                         bool fifo_all) {
  if (fifo_all || !sched_fifo_known(in, u)) return in->v[S_FIFO(in, u)];
  int64_t b = 0;
  for (int64_t i = 0, e = k; e < in->fifo_n[u]; i++, e += per_iter) {
    int64_t x = (int64_t)in->fifo_t[u][e] - (int64_t)i * ii;
    if (x > b) b = x;
    if (ii == 0 || per_iter <= 0) break;
  }
  return b;
}

void sched_lower_bounds(const SchedCtx *cx, const SchedGraph *g, const SchedState *in,
                        bool fifo_all, int32_t ii, int32_t *lb) {
  const TileMir *m = cx->m;
  int64_t *seen = sched_calloc((size_t)in->nunits, sizeof(int64_t));
  int64_t *per_iter = sched_calloc((size_t)in->nunits, sizeof(int64_t));
  for (int32_t v = 0; v < g->n; v++) {
    const TileMirInst *ins = &g->ins[v];
    if (sched_is_pop(ins->op) && ins->c >= 0 && ins->c < in->nunits) per_iter[ins->c]++;
  }
  for (int32_t v = 0; v < g->n; v++) {
    const TileMirInst *ins = &g->ins[v];
    const SchedOpInfo *oi = &cx->info[ins->op];
    int64_t b = 0;
    for (int k = 0; k < oi->nuse; k++) {
      int32_t r = sched_field(ins, oi->use[k]);
      if (r >= 0 && r < m->nregs && in->v[r] > b) b = in->v[r];
    }
    if (oi->def) {
      int32_t r = sched_field(ins, oi->def);
      /* land strictly after a write to the same register still in flight */
      if (r >= 0 && r < m->nregs && in->v[r] - sched_lat(cx, ins->op) + 1 > b)
        b = in->v[r] - sched_lat(cx, ins->op) + 1;
    }
    if (oi->unit) {
      int32_t u = sched_field(ins, oi->unit);
      if (u >= 0 && u < in->nunits) {
        if (ins->op == TILE_MOP_MXU_PUSH) {
          if (in->v[S_BUSY(in, u)] > b) b = in->v[S_BUSY(in, u)];
          if (in->v[S_W(in, u)] > b) b = in->v[S_W(in, u)];
        } else if (sched_is_pop(ins->op)) {
          if (fifo_all || !sched_fifo_known(in, u) || seen[u] < in->fifo_n[u]) {
            int64_t p = pop_bound(in, u, seen[u], per_iter[u], ii, fifo_all);
            if (p > b) b = p;
          }
          seen[u]++;
        }
      }
    }
    if (ins->op == TILE_MOP_XTRPOP && in->v[S_TR(in)] > b) b = in->v[S_TR(in)];
    if (ins->op == TILE_MOP_XTRPUSH && in->v[S_TR(in)] - sched_lat(cx, ins->op) + 1 > b)
      b = in->v[S_TR(in)] - sched_lat(cx, ins->op) + 1;
    for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
      const TileMirMem *mm = &ins->mem[k];
      if (mm->buf >= 0 && mm->buf < in->nbufs && (mm->access & TILE_MIR_READ) &&
          in->v[S_STORE(in, mm->buf)] > b)
        b = in->v[S_STORE(in, mm->buf)];
    }
    if (ins->op == TILE_MOP_WAIT && ins->c >= 0 && ins->c < in->nsems && in->v[S_SIG(in, ins->c)] > b)
      b = in->v[S_SIG(in, ins->c)];
    lb[v] = clamp32(b);
  }
  free(seen);
  free(per_iter);
}

/* The result queues after `trips` iterations of g (flat issue times t, one iteration
 * every ii cycles; trips 1 and ii 0 for straight-line code) that end len cycles after
 * they start from `in`: the queue is in's results then every push in order, less as
 * many from the front as were popped; times measured from the end. */
static void fifo_after(const SchedCtx *cx, const SchedGraph *g, const int32_t *t, int32_t ii,
                       int64_t trips, int64_t len, const SchedState *in, SchedState *out) {
  int32_t lat = cx->t->latency[TILE_LAT_MXU_RESULT];
  int32_t *pushes = sched_calloc((size_t)g->n, sizeof(int32_t));
  for (int32_t u = 0; u < out->nunits; u++) {
    if (!sched_fifo_known(in, u)) {
      sched_fifo_forget(out, u);
      continue;
    }
    int64_t npush = 0, npop = 0;
    for (int32_t v = 0; v < g->n; v++) {
      if (t[v] < 0 || g->ins[v].c != u) continue;
      if (g->ins[v].op == TILE_MOP_MXU_PUSH) pushes[npush++] = v;
      else if (sched_is_pop(g->ins[v].op)) npop++;
    }
    int64_t nin = in->fifo_n[u], total = nin + trips * npush, first = trips * npop;
    if (first > total) first = total; /* check_pops reports the underflow */
    int64_t n = total - first;
    fifo_reserve(out, u, n);
    for (int64_t i = 0; i < n; i++) {
      int64_t e = first + i, at;
      if (e < nin) {
        at = (int64_t)in->fifo_t[u][e] - len;
      } else {
        int64_t p = e - nin;
        at = (p / npush) * ii + t[pushes[p % npush]] + lat - len;
      }
      out->fifo_t[u][i] = at > 0 ? clamp32(at) : 0;
    }
    out->fifo_n[u] = n;
    fifo_summary(out, u);
  }
  free(pushes);
}

void sched_state_after_loop(const SchedCtx *cx, const SchedGraph *g, const int32_t *t, int32_t ii,
                            int32_t trips, int32_t last_len, const SchedState *in,
                            SchedState *out) {
  const TileMir *m = cx->m;
  const TileTarget *tg = cx->t;
  int64_t len = (int64_t)(trips - 1) * ii + last_len;
  /* everything but the result queues: the last iteration, from a state advanced to
   * its start (every earlier iteration's results land no later than its own) */
  sched_state_copy(out, in);
  sched_state_advance(out, clamp32((int64_t)(trips - 1) * ii));
  sched_state_advance(out, last_len);
  for (int32_t v = 0; v < g->n; v++) {
    if (t[v] < 0) continue;
    const TileMirInst *ins = &g->ins[v];
    const SchedOpInfo *oi = &cx->info[ins->op];
    int64_t at = (int64_t)t[v] - last_len, lat = sched_lat(cx, ins->op);
    if (oi->def) {
      int32_t r = sched_field(ins, oi->def);
      if (r >= 0 && r < m->nregs) raise_to(out, r, at + lat);
    }
    if (oi->unit) {
      int32_t u = sched_field(ins, oi->unit);
      if (u >= 0 && u < out->nunits) {
        if (ins->op == TILE_MOP_MXU_PUSH) {
          raise_to(out, S_BUSY(out, u), at + tg->mxu_push_cycles);
          raise_to(out, S_FIFO(out, u), at + tg->latency[TILE_LAT_MXU_RESULT]);
        } else if (ins->op == TILE_MOP_MXU_LDW) {
          raise_to(out, S_W(out, u), at + lat);
        }
      }
    }
    if (ins->op == TILE_MOP_XTRPUSH) raise_to(out, S_TR(out), at + lat);
    if (sched_is_store(ins->op))
      for (int k = 0; k < TILE_MIR_MAX_MEM; k++)
        if (ins->mem[k].buf >= 0 && ins->mem[k].buf < out->nbufs && (ins->mem[k].access & TILE_MIR_WRITE))
          raise_to(out, S_STORE(out, ins->mem[k].buf), at + lat);
    if (ins->op == TILE_MOP_SIGNAL && ins->c >= 0 && ins->c < out->nsems)
      raise_to(out, S_SIG(out, ins->c), at + lat);
  }
  fifo_after(cx, g, t, ii, trips, len, in, out);
}

void sched_state_after(const SchedCtx *cx, const SchedGraph *g, const int32_t *t, int32_t len,
                       const SchedState *in, SchedState *out) {
  sched_state_after_loop(cx, g, t, 0, 1, len, in, out);
}
