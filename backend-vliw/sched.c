/* tile_mir_schedule: MIR -> bundles (include/tile/mir.h).
 *
 * Walks the structured code: each straight-line stretch is list scheduled
 * (sched_list.c), each innermost loop flagged TILE_MIR_PIPELINE is modulo scheduled
 * (sched_modulo.c) into prologue, hardware-loop kernel and epilogue, and every other
 * loop becomes a hardware `loop` around its list-scheduled body.
 *
 * Latencies across boundaries. Between stretches the scheduler carries a boundary
 * state: for each register, MXU unit (busy, weights, result queue), the transpose
 * buffer, each buffer's stores and each semaphore's signals, how many cycles after the
 * boundary the last result in flight lands. The first ops after a boundary may issue no
 * earlier than that state allows, so results never need to be drained at a boundary.
 *
 * A loop body that is not pipelined is entered both from the code before it and from
 * its own end (the back edge). It is scheduled in a state E that bounds both: E starts
 * as the state before the loop; the body is scheduled and its end state X is compared
 * with E; while X exceeds E somewhere, E grows to max(E, X) and the body is scheduled
 * again (a few rounds). If that does not settle, empty bundles are added at the body's
 * end until X <= E, which always terminates because X shrinks by one per bundle. The
 * state after the loop is X. So a value produced late in a body and read early in the
 * next iteration, a loop entered right after the code before it, and results landing
 * after a loop exits are all accounted for, and the emulator's strict mode finds no
 * hazard.
 *
 * A pipelined loop is emitted as its flat modulo schedule (prologue, kernel run by
 * `loop`, epilogue), so its own edges hold everywhere; the state before it bounds the
 * first iteration's ops and the state after it is computed from the last iteration's.
 * A loop with fewer trips than stages, or with no schedule below the list-scheduled
 * body's length, is scheduled as a plain loop instead. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

/* The most bundles one `loop` can cover: its body length is the ISA's wide field. */
enum { MAX_LOOP_BODY = TILE_WIDE_MAX };

/* ---- checks the scheduler relies on ---- */

typedef struct Sched {
  SchedCtx cx;
  TileMirCode *code;
  int32_t *match; /* LOOP_BEGIN index -> its LOOP_END */
  SchedState next; /* the state after a stretch or pipelined loop, swapped in */
  /* Scratch states for loops, a stack (take_states, give_states): a state's arrays
   * span every register and buffer, so making them afresh for each loop of a big
   * program would clear more memory than scheduling it touches. */
  SchedState **pool;
  int32_t npool, made;
} Sched;

/* k scratch states from the pool's top; the caller copies into them before use. The
 * states stay where they are; the array returned holds them only until the next take. */
static SchedState **take_states(Sched *s, int32_t k) {
  if (s->npool + k > s->made) {
    s->pool = sched_realloc(s->pool, (size_t)(s->npool + k) * sizeof *s->pool);
    for (; s->made < s->npool + k; s->made++)
      s->pool[s->made] = sched_calloc(1, sizeof(SchedState));
  }
  s->npool += k;
  return s->pool + s->npool - k;
}

static void give_states(Sched *s, int32_t k) { s->npool -= k; }

/* st := s->next, by swapping their arrays (both are states of the same program). */
static void take_next(Sched *s, SchedState *st) {
  SchedState tmp = *st;
  *st = s->next;
  s->next = tmp;
}

static const char *op_name(int op) {
  if (op == TILE_MIR_LOOP_BEGIN) return "loop";
  if (op == TILE_MIR_LOOP_END) return "end of loop";
  return op >= 0 && op < TILE_MOP_COUNT ? tile_mop_info[op].mnemonic : "?";
}

static bool fail(Sched *s, const TileMirInst *in, int32_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool fail(Sched *s, const TileMirInst *in, int32_t at, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (s->cx.d)
    tile_error(s->cx.d, tile_mir_src_loc(s->cx.m, in),
               "cannot schedule machine code: inst %d (%s): %s", (int)at, op_name(in->op), msg);
  return false;
}

static bool check_mir(Sched *s) {
  const TileMir *m = s->cx.m;
  const TileTarget *t = s->cx.t;
  int32_t stack[5], depth = 0;
  for (int32_t i = 0; i < m->ninsts; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MIR_LOOP_BEGIN) {
      if (in->imm < 1) return fail(s, in, i, "loop trip count %d is below 1", (int)in->imm);
      if (depth == 4) return fail(s, in, i, "loops nest deeper than 4 (the machine's limit)");
      stack[depth++] = i;
      continue;
    }
    if (in->op == TILE_MIR_LOOP_END) {
      if (depth == 0) return fail(s, in, i, "end of loop without a loop to close");
      s->match[stack[--depth]] = i;
      continue;
    }
    if (in->op >= TILE_MOP_COUNT)
      return fail(s, in, i, "unknown op number %d", (int)in->op);
    if (in->op == TILE_MOP_JMP || in->op == TILE_MOP_BNZ || in->op == TILE_MOP_BZ ||
        in->op == TILE_MOP_LOOP || in->op == TILE_MOP_HALT)
      return fail(s, in, i, "%s is control flow, which MIR expresses only as counted loops",
                  op_name(in->op));
    const SchedOpInfo *oi = &s->cx.info[in->op];
    char regs[4] = {oi->def, 0, 0, 0};
    for (int k = 0; k < oi->nuse; k++) regs[1 + k] = oi->use[k];
    for (int k = 0; k < 4; k++) {
      if (!regs[k]) continue;
      int32_t r = sched_field(in, regs[k]);
      if (r < 0 || r >= m->nregs)
        return fail(s, in, i, "names virtual register %d, but only %d exist", (int)r, (int)m->nregs);
    }
    if (oi->unit) {
      int32_t u = sched_field(in, oi->unit);
      if (u < 0 || u >= t->mxu_count)
        return fail(s, in, i, "names MXU unit %d, but target %s has %d", (int)u, t->name, (int)t->mxu_count);
    }
    if (oi->sem) {
      int32_t q = sched_field(in, oi->sem);
      if (q < 0 || q >= m->nsems)
        return fail(s, in, i, "names semaphore %d, but only %d exist", (int)q, (int)m->nsems);
    }
    for (int k = 0; k < TILE_MIR_MAX_MEM; k++)
      if (in->mem[k].buf >= m->nbufs || (in->mem[k].buf < -1))
        return fail(s, in, i, "names buffer %d, but only %d exist", (int)in->mem[k].buf, (int)m->nbufs);
  }
  if (depth > 0) return fail(s, &m->insts[stack[depth - 1]], stack[depth - 1], "loop is never closed");
  return true;
}

/* ---- the walk ---- */

static bool region(Sched *s, int32_t lo, int32_t hi, SchedState *st, bool *tail_free);

/* Pushes minus pops per MXU unit of insts [lo, hi), loops counted with their trips. */
static void fifo_delta(Sched *s, int32_t lo, int32_t hi, int64_t *delta) {
  const TileMir *m = s->cx.m;
  for (int32_t i = lo; i < hi; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MIR_LOOP_BEGIN) {
      int32_t e = s->match[i];
      int64_t *inner = sched_calloc((size_t)(s->cx.t->mxu_count + 1), sizeof(int64_t));
      fifo_delta(s, i + 1, e, inner);
      for (int32_t u = 0; u < s->cx.t->mxu_count; u++) delta[u] += inner[u] * in->imm;
      free(inner);
      i = e;
      continue;
    }
    if (in->op == TILE_MOP_MXU_PUSH) delta[in->c]++;
    if (sched_is_pop(in->op)) delta[in->c]--;
  }
}

/* Pops of results never pushed are a generator bug the machine would fault on. */
static bool check_pops(Sched *s, int32_t lo, int32_t n, const SchedState *st) {
  const TileMir *m = s->cx.m;
  int64_t *q = sched_calloc((size_t)st->nunits, sizeof(int64_t));
  memcpy(q, st->fifo_n, (size_t)st->nunits * sizeof(int64_t));
  bool ok = true;
  for (int32_t i = lo; i < lo + n && ok; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MOP_MXU_PUSH) q[in->c]++;
    if (sched_is_pop(in->op) && --q[in->c] < 0)
      ok = fail(s, in, i, "pops MXU unit %d, whose result queue is empty there (more pops than pushes)",
                (int)in->c);
  }
  free(q);
  return ok;
}

static void note_loop(TileMirCode *c, int32_t first, int32_t last, int32_t ii, int32_t stages,
                      int32_t res_mii, int32_t rec_mii) {
  c->loops = sched_realloc(c->loops, (size_t)(c->nloops + 1) * sizeof *c->loops);
  c->loops[c->nloops++] = (struct TileMirLoopInfo){first, last, ii, stages, res_mii, rec_mii};
}

static void place(Sched *s, int32_t base, const SchedGraph *g, const int32_t *t) {
  for (int32_t v = 0; v < g->n; v++) {
    if (g->ins[v].op == TILE_MOP_NOP) continue;
    if (!sched_code_put(&s->cx, s->code, base + t[v], &g->ins[v])) {
      fprintf(stderr, "tilec: internal error: list schedule overfills bundle %d\n", (int)(base + t[v]));
      abort();
    }
  }
}

static bool stretch(Sched *s, int32_t lo, int32_t n, SchedState *st) {
  if (!check_pops(s, lo, n, st)) return false;
  SchedGraph g;
  sched_graph_build(&s->cx, lo, n, false, NULL, &g);
  int32_t *lb = sched_calloc((size_t)n, sizeof(int32_t)), *t = sched_calloc((size_t)n, sizeof(int32_t));
  sched_lower_bounds(&s->cx, &g, st, false, 0, lb);
  int32_t len = sched_list(&s->cx, &g, lb, t);
  int32_t base = sched_code_append(s->code, len);
  place(s, base, &g, t);
  sched_state_after(&s->cx, &g, t, len, st, &s->next);
  take_next(s, st);
  free(lb);
  free(t);
  sched_graph_free(&g);
  return true;
}

/* The bundle that holds a loop's `loop` op: the last one of the code before it when
 * that is free, else a new empty bundle (one cycle, so the state advances). */
static int32_t loop_op_bundle(Sched *s, SchedState *st, bool tail_free, bool *added) {
  *added = !tail_free;
  if (tail_free) return s->code->nbundles - 1;
  sched_state_advance(st, 1);
  return sched_code_append(s->code, 1);
}

/* Tries to software-pipeline the loop at inst b. Returns 1 when done, 0 when the loop
 * should be scheduled plainly instead. */
static int pipelined(Sched *s, int32_t b, SchedState *st, bool *tail_free) {
  const TileMir *m = s->cx.m;
  const TileMirInst *lb_in = &m->insts[b];
  int32_t lo = b + 1, n = s->match[b] - lo, trips = lb_in->imm;
  for (int32_t u = 0; u < st->nunits; u++)
    if (!sched_fifo_known(st, u)) return 0;
  SchedGraph g;
  sched_graph_build(&s->cx, lo, n, true, st->fifo_n, &g);
  int32_t *lb = sched_calloc((size_t)n, sizeof(int32_t)), *t = sched_calloc((size_t)n, sizeof(int32_t));
  /* ResMII is at most the II found, so bounds that assume it are safe for any II */
  sched_lower_bounds(&s->cx, &g, st, false, g.res_mii, lb);
  int32_t len = sched_list(&s->cx, &g, lb, t);
  SchedModulo ms;
  /* an II of the list-scheduled body's length gains nothing over the plain loop */
  bool ok = sched_modulo(&s->cx, &g, lb, len + 1, &ms) && ms.ii <= MAX_LOOP_BODY;
  if (ok && ms.ii > g.res_mii) {
    /* The bounds assumed II = ResMII; with the II found, pops of results queued before
     * the loop may start earlier. A schedule whose II is at least the one the bounds
     * assume keeps them safe. */
    int32_t *lb2 = sched_calloc((size_t)n, sizeof(int32_t));
    sched_lower_bounds(&s->cx, &g, st, false, ms.ii, lb2);
    SchedModulo ms2 = {0};
    /* the same bounds give the same schedule again */
    if (memcmp(lb, lb2, (size_t)n * sizeof(int32_t)) != 0 &&
        sched_modulo(&s->cx, &g, lb2, len + 1, &ms2) && ms2.ii >= ms.ii) {
      free(ms.t);
      ms = ms2;
      memcpy(lb, lb2, (size_t)n * sizeof(int32_t));
    } else {
      free(ms2.t);
    }
    free(lb2);
  }
  int32_t delay = 0;
  for (int round = 0; round < 2 && ok && trips < ms.stages; round++) {
    /* Results in flight before the loop (pops of a queue still landing) stretched the
     * first iteration into more stages than the loop has trips: wait before the loop
     * (first as little as the schedule's length asks, then for everything), which
     * leaves the same work in a shorter schedule. */
    int32_t last = 0, most = 0;
    for (int32_t v = 0; v < n; v++) {
      if (ms.t[v] > last) last = ms.t[v];
      if (lb[v] > most) most = lb[v];
    }
    int32_t d = round == 0 ? last + 1 - trips * ms.ii : most;
    if (d <= 0 || d > most) d = most;
    if (d <= 0) break;
    SchedState *later = take_states(s, 1)[0];
    sched_state_copy(later, st);
    sched_state_advance(later, delay + d);
    int32_t ii = ms.ii;
    sched_lower_bounds(&s->cx, &g, later, false, ii, lb);
    give_states(s, 1);
    SchedModulo ms2;
    if (sched_modulo(&s->cx, &g, lb, len + 1, &ms2) && ms2.ii >= ii) {
      free(ms.t);
      ms = ms2;
      delay += d;
    } else {
      free(ms2.t);
      break;
    }
  }
  ok = ok && trips >= ms.stages;
  if (ok && delay > 0) {
    sched_code_append(s->code, delay);
    sched_state_advance(st, delay);
    *tail_free = true;
  }
  int done = 0;
  if (ok) {
    int32_t loop_bundle = -1;
    bool added = false;
    if (ms.stages == 1) loop_bundle = loop_op_bundle(s, st, *tail_free, &added);
    int32_t kernel = sched_modulo_emit(&s->cx, s->code, &g, &ms, trips, loop_bundle);
    int32_t tail = s->code->nbundles - (kernel + ms.ii);
    sched_state_after_loop(&s->cx, &g, ms.t, ms.ii, trips, ms.ii + tail, st, &s->next);
    take_next(s, st);
    note_loop(s->code, kernel, kernel + ms.ii - 1, ms.ii, ms.stages, ms.res_mii, ms.rec_mii);
    *tail_free = tail > 0;
    done = 1;
  }
  free(ms.t);
  free(lb);
  free(t);
  sched_graph_free(&g);
  return done;
}

static bool plain_loop(Sched *s, int32_t b, SchedState *st, bool *tail_free) {
  const TileMir *m = s->cx.m;
  TileMirCode *c = s->code;
  int32_t lo = b + 1, hi = s->match[b], trips = m->insts[b].imm;
  int32_t start = c->nbundles, nl0;
  bool added;
  SchedState **three = take_states(s, 3), *pre = three[0], *e = three[1], *x = three[2];
  sched_state_copy(pre, st);
  int32_t p = loop_op_bundle(s, pre, *tail_free, &added);
  int32_t body = c->nbundles;
  int64_t *delta = sched_calloc((size_t)pre->nunits, sizeof(int64_t));
  fifo_delta(s, lo, hi, delta);
  sched_state_copy(e, pre);
  for (int32_t u = 0; u < e->nunits; u++)
    if (delta[u] != 0) sched_fifo_forget(e, u); /* the queue differs per iteration */
  nl0 = c->nloops;
  bool settled = false, ok = true;
  for (int round = 0; round < 4 && ok && !settled; round++) {
    c->nbundles = body;
    c->nloops = nl0;
    sched_state_copy(x, e);
    bool tf = false;
    ok = region(s, lo, hi, x, &tf);
    if (ok && !(settled = sched_state_le(x, e))) sched_state_join(e, x);
  }
  if (ok && !settled) {
    /* pad the body's end until nothing in flight at the back edge exceeds E */
    while (!sched_state_le(x, e)) {
      sched_code_append(c, 1);
      sched_state_advance(x, 1);
    }
  }
  if (ok) {
    int32_t count = c->nbundles - body;
    if (count > MAX_LOOP_BODY) {
      ok = fail(s, &m->insts[b], b,
                "the loop body takes %d bundles, but `loop` covers at most %d; split the loop in "
                "the generator",
                (int)count, MAX_LOOP_BODY);
    } else if (count == 0) {
      if (added) c->nbundles = start; /* an empty loop does nothing */
    } else {
      TileMirInst lp = tile_mir_inst(TILE_MOP_LOOP, 0, 0, 0, count, trips);
      lp.src = m->insts[b].src;
      c->b[p].slot[tile_slot_first(TILE_SLOT_BRANCH)] = lp;
      for (int32_t u = 0; u < x->nunits; u++) {
        if (delta[u] == 0) continue; /* the body's own queue, per result */
        if (!sched_fifo_known(pre, u)) {
          sched_fifo_forget(x, u);
          continue;
        }
        int64_t n = pre->fifo_n[u] + delta[u] * trips;
        if (n < 0) {
          ok = fail(s, &m->insts[b], b, "the loop pops %lld more results from MXU unit %d than were pushed",
                    (long long)-n, (int)u);
          continue;
        }
        /* the count is known again, each result's landing only as the newest's */
        x->fifo_n[u] = 0;
        sched_state_fifo_fill(x, u, n, n ? x->v[S_FIFO(x, u)] : 0);
      }
      sched_state_copy(st, x);
      note_loop(c, body, c->nbundles - 1, count, 1, 0, 0);
      *tail_free = false;
    }
  }
  free(delta);
  give_states(s, 3);
  return ok;
}

/* A loop body can be modulo scheduled when every unit's queue is known and each
 * iteration finds the same queue position for its pops: the unit is balanced (as many
 * pushes as pops), only pushed, or only popped from results queued before the loop. */
static bool pipelinable(Sched *s, int32_t lo, int32_t hi, int64_t trips, const SchedState *st) {
  int32_t units = s->cx.t->mxu_count > 0 ? s->cx.t->mxu_count : 1;
  int64_t *push = sched_calloc((size_t)units, sizeof(int64_t)), *pop = sched_calloc((size_t)units, sizeof(int64_t));
  sched_count_fifo(&s->cx, lo, hi - lo, push, pop);
  bool ok = true;
  for (int32_t u = 0; u < st->nunits && u < units && ok; u++)
    ok = push[u] == pop[u] || pop[u] == 0 ||
         (push[u] == 0 && sched_fifo_known(st, u) && pop[u] * trips <= st->fifo_n[u]);
  free(push);
  free(pop);
  return ok;
}

static bool loop(Sched *s, int32_t b, SchedState *st, bool *tail_free) {
  const TileMir *m = s->cx.m;
  const TileMirInst *in = &m->insts[b];
  int32_t lo = b + 1, hi = s->match[b];
  if (in->imm == 1) return region(s, lo, hi, st, tail_free); /* straight-line code */
  bool innermost = true;
  for (int32_t i = lo; i < hi; i++) innermost &= m->insts[i].op != TILE_MIR_LOOP_BEGIN;
  if ((in->a & TILE_MIR_PIPELINE) && innermost && hi > lo && pipelinable(s, lo, hi, in->imm, st) &&
      pipelined(s, b, st, tail_free))
    return true;
  return plain_loop(s, b, st, tail_free);
}

static bool region(Sched *s, int32_t lo, int32_t hi, SchedState *st, bool *tail_free) {
  const TileMir *m = s->cx.m;
  int32_t i = lo;
  while (i < hi) {
    if (m->insts[i].op == TILE_MIR_LOOP_BEGIN) {
      if (!loop(s, i, st, tail_free)) return false;
      i = s->match[i] + 1;
      continue;
    }
    int32_t k = i;
    while (k < hi && m->insts[k].op != TILE_MIR_LOOP_BEGIN) k++;
    if (!stretch(s, i, k - i, st)) return false;
    *tail_free = true;
    i = k;
  }
  return true;
}

bool tile_mir_schedule(const TileMir *m, TileMirCode *out, TileDiag *d) {
  memset(out, 0, sizeof *out);
  if (!m || !m->target) {
    if (d) tile_error(d, (TileLoc){0}, "cannot schedule machine code without a target");
    return false;
  }
  Sched s;
  memset(&s, 0, sizeof s);
  sched_ctx_init(&s.cx, m, d);
  s.code = out;
  /* Room for a bundle per two insts up front (kernels come out near one per three), so
   * the code, up to hundreds of MiB for a whole layer, is seldom moved while it grows:
   * moving it costs a copy and a page fault per page of the new place, where room
   * reserved but not reached costs no page at all. */
  sched_code_reserve(out, m->ninsts / 2 + 64);
  s.match = sched_calloc((size_t)m->ninsts + 1, sizeof(int32_t));
  bool ok = check_mir(&s);
  SchedState st = {0};
  if (ok) {
    sched_state_init(&st, m);
    bool tail_free = false;
    ok = region(&s, 0, m->ninsts, &st, &tail_free);
    if (ok) {
      int32_t last = tail_free ? out->nbundles - 1 : sched_code_append(out, 1);
      out->b[last].slot[tile_slot_first(TILE_SLOT_BRANCH)] = tile_mir_inst(TILE_MOP_HALT, 0, 0, 0, 0, 0);
    }
    sched_state_free(&st);
  }
  sched_state_free(&s.next);
  for (int32_t i = 0; i < s.made; i++) {
    sched_state_free(s.pool[i]);
    free(s.pool[i]);
  }
  free(s.pool);
  free(s.match);
  sched_ctx_free(&s.cx);
  if (!ok) tile_mir_code_free(out);
  return ok;
}
