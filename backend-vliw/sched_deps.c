/* Dependence graphs for the schedulers: the edges every rule of include/tile/mir.h asks
 * for, between the insts of a straight-line stretch or of one loop body.
 *
 * The graph is built by walking the code and keeping, per resource (a register, a slot
 * of a buffer, an MXU unit's weights, pushes and result queue, the transpose buffer, a
 * semaphore), the last access that later ones must follow: the last writer and the
 * readers since it. Each new access gets edges from those only, so the graph has
 * O(accesses) edges and every ordering the rules imply follows by transitivity.
 *
 * A loop body is walked for D + 1 iterations (D large enough for every loop-carried
 * distance: one iteration for registers, nslots for multi-buffered slots, the queue
 * depth for MXU results) and only the edges into the last iteration are kept, with
 * their distance in iterations. Only the state each resource has when that iteration
 * starts matters, and each resource's state follows from its own accesses, so the
 * iterations before the last two replay only what reaches further back (see
 * replay_slots() and replay_fifos()): a body touching a 128-slot buffer costs about two
 * walks of it, not 129, and an MXU queue is written down rather than replayed.
 * Because MIR registers are not renamed, a register
 * redefined every iteration gets the anti-dependence of each read on the next
 * redefinition (distance 1 when that is in the next iteration): the modulo scheduler
 * then cannot let iteration i+1 overwrite a value iteration i still has to read. */
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

static SchedScratch *scratch_new(void);

void sched_ctx_init(SchedCtx *cx, const TileMir *m, TileDiag *d) {
  memset(cx, 0, sizeof *cx);
  cx->scratch = scratch_new();
  cx->m = m;
  cx->t = m->target;
  cx->d = d;
  for (int op = 0; op < TILE_MOP_COUNT; op++) {
    SchedOpInfo *in = &cx->info[op];
    in->slot = (uint8_t)tile_mop_info[op].slot;
    in->lat = (uint8_t)tile_mop_info[op].latency;
    TileOperand o[TILE_MAX_OPERANDS];
    int n = tile_mop_operands(op, o);
    for (int k = 0; k < n; k++) {
      switch (o[k].kind) {
      case 'S':
      case 'V': in->def = o[k].field; break;
      case 's':
      case 'v': in->use[in->nuse++] = o[k].field; break;
      case 'm': in->unit = o[k].field; break;
      case 'q': in->sem = o[k].field; break;
      default: break;
      }
    }
  }
}

int32_t sched_lat(const SchedCtx *cx, int op) {
  if (op < 0 || op >= TILE_MOP_COUNT) return 1;
  return cx->t->latency[cx->info[op].lat];
}

int32_t sched_field(const TileMirInst *in, char f) {
  switch (f) {
  case 'd': return in->d;
  case 'a': return in->a;
  case 'b': return in->b;
  case 'c': return in->c;
  default: return in->imm;
  }
}

/* ---- edges ---- */

static void add_edge(SchedGraph *g, int32_t from, int32_t to, int32_t lat, int32_t dist) {
  if (g->nedges == g->cap) {
    g->cap = g->cap ? g->cap * 2 : 64;
    g->e = sched_realloc(g->e, (size_t)g->cap * sizeof *g->e);
  }
  g->e[g->nedges++] = (SchedEdge){from, to, lat, dist};
}

static void index_edges(SchedGraph *g) {
  int32_t n = g->n;
  g->succ_off = sched_calloc((size_t)n + 1, sizeof(int32_t));
  g->pred_off = sched_calloc((size_t)n + 1, sizeof(int32_t));
  g->succ = sched_calloc((size_t)g->nedges, sizeof(int32_t));
  g->pred = sched_calloc((size_t)g->nedges, sizeof(int32_t));
  for (int32_t i = 0; i < g->nedges; i++) {
    g->succ_off[g->e[i].from + 1]++;
    g->pred_off[g->e[i].to + 1]++;
  }
  for (int32_t v = 0; v < n; v++) {
    g->succ_off[v + 1] += g->succ_off[v];
    g->pred_off[v + 1] += g->pred_off[v];
  }
  int32_t *fs = sched_calloc((size_t)n + 1, sizeof(int32_t)), *fp = sched_calloc((size_t)n + 1, sizeof(int32_t));
  for (int32_t i = 0; i < g->nedges; i++) {
    g->succ[g->succ_off[g->e[i].from] + fs[g->e[i].from]++] = i;
    g->pred[g->pred_off[g->e[i].to] + fp[g->e[i].to]++] = i;
  }
  free(fs);
  free(fp);
}

void sched_graph_free(SchedGraph *g) {
  free(g->e);
  free(g->succ_off);
  free(g->succ);
  free(g->pred_off);
  free(g->pred);
  memset(g, 0, sizeof *g);
}

/* ---- the walk ---- */

typedef struct Ref {
  int32_t node, iter; /* node -1: none */
} Ref;

static const Ref NONE = {-1, 0};

/* Readers since the last write of a chain: a list threaded through a pool. */
typedef struct Reader {
  Ref r;
  int32_t next;
} Reader;

typedef struct Chain {
  Ref write;      /* last writer */
  Ref store;      /* last vst/sst writer (its bytes may still be landing) */
  int32_t readers; /* head in the pool, -1 none */
} Chain;

/* The walk's tables, kept from one graph to the next (a kernel has hundreds of
 * stretches and thousands of registers): a chain is valid only when its stamp is the
 * current walk's, so starting a walk costs nothing per register, buffer or semaphore. */
struct SchedScratch {
  int32_t nregs, nchains, nsems, nbufs;
  uint32_t gen;       /* the current walk */
  Chain *reg;         /* per register, plus one for the transpose buffer */
  uint32_t *reg_gen;
  Chain *mem;         /* per buffer slot */
  uint32_t *mem_gen;
  uint32_t *want_gen; /* per buffer slot: the last iteration of this walk accesses it */
  int32_t *mem_base;  /* first chain of each buffer */
  Ref *sem;           /* last op per semaphore */
  uint32_t *sem_gen;
  Reader *pool;
  int32_t cap_pool;
};

typedef struct Walk {
  const SchedCtx *cx;
  SchedGraph *g;
  SchedScratch *sc;
  int32_t last_iter;  /* edges are kept only into this iteration */
  int32_t npool;
  /* per MXU unit */
  Ref *push, *ldw, *pop;
  Ref **fifo;         /* queue of pushes per unit (node -1: queued before the code) */
  int32_t *fifo_head, *fifo_len, *fifo_cap;
  Ref dma;            /* last DMA-slot op */
} Walk;

static Chain *reg_chain(Walk *w, int32_t reg) {
  SchedScratch *sc = w->sc;
  if (sc->reg_gen[reg] != sc->gen) {
    sc->reg_gen[reg] = sc->gen;
    sc->reg[reg] = (Chain){NONE, NONE, -1};
  }
  return &sc->reg[reg];
}

static Chain *mem_chain(Walk *w, int32_t chain) {
  SchedScratch *sc = w->sc;
  if (sc->mem_gen[chain] != sc->gen) {
    sc->mem_gen[chain] = sc->gen;
    sc->mem[chain] = (Chain){NONE, NONE, -1};
  }
  return &sc->mem[chain];
}

static Ref *sem_ref(Walk *w, int32_t s) {
  SchedScratch *sc = w->sc;
  if (sc->sem_gen[s] != sc->gen) {
    sc->sem_gen[s] = sc->gen;
    sc->sem[s] = NONE;
  }
  return &sc->sem[s];
}

static void edge(Walk *w, Ref from, Ref to, int32_t lat) {
  if (from.node < 0 || to.iter != w->last_iter) return;
  if (from.iter == to.iter && from.node == to.node) return;
  add_edge(w->g, from.node, to.node, lat, to.iter - from.iter);
}

static void add_reader(Walk *w, Chain *c, Ref r) {
  SchedScratch *sc = w->sc;
  if (w->npool == sc->cap_pool) {
    sc->cap_pool = sc->cap_pool ? sc->cap_pool * 2 : 256;
    sc->pool = sched_realloc(sc->pool, (size_t)sc->cap_pool * sizeof *sc->pool);
  }
  sc->pool[w->npool] = (Reader){r, c->readers};
  c->readers = w->npool++;
}

/* The memory rule of mir.h for an access by node a, then one by node b, on one slot:
 * a_writes/b_writes say how each touches it. */
static int32_t mem_lat(const Walk *w, Ref a, bool a_writes, Ref b, bool b_writes) {
  const TileMirInst *ia = &w->g->ins[a.node], *ib = &w->g->ins[b.node];
  if (ia->op == TILE_MOP_DMA && ib->op == TILE_MOP_WAIT) return ia->est_cycles > 1 ? ia->est_cycles : 1;
  if (ia->op == TILE_MOP_WAIT) return 1;
  /* read -> write: a later bundle. In one bundle the emulator applies slot words in
   * order, so an sst (scalar word) would already be pending when a dma (a later word)
   * reads its descriptor, which strict mode reports as a store in flight. */
  if (!a_writes && b_writes) return 1;
  if (sched_is_store(ia->op) && !b_writes) return sched_lat(w->cx, ia->op);
  return 1;
}

static void mem_access(Walk *w, Ref r, int32_t chain, bool writes) {
  Chain *c = mem_chain(w, chain);
  /* A sem.wait names its DMA's buffers as writes. On a buffer the DMA only read (its
   * source) the wait orders later writes (they must not overwrite bytes the DMA has yet
   * to read) but not later reads, so it joins the readers: a DMA per iteration from one
   * source can then run iterations ahead of its wait. A buffer several DMAs wrote sees
   * their waits one after another, each a writer, so a later read follows them all. */
  if (writes && w->g->ins[r.node].op == TILE_MOP_WAIT && c->write.node >= 0 &&
      w->g->ins[c->write.node].op != TILE_MOP_DMA && w->g->ins[c->write.node].op != TILE_MOP_WAIT)
    writes = false; /* Otherwise the wait stays a writer: after a DMA or a wait (the
                     * next wait is for another DMA into the buffer), or with no writer
                     * seen in this stretch (the DMA was issued before it), so later
                     * reads follow it. */
  if (c->write.node >= 0) {
    int32_t lat = mem_lat(w, c->write, true, r, writes);
    /* A DMA that read the buffer after a DMA wrote it did so with that write landed, or
     * the write went to a peer's copy (a send): a wait after both is the reader's, and
     * takes the reader's time (its edge below), not the writer's. */
    const TileMirInst *ins = w->g->ins;
    if (writes && ins[r.node].op == TILE_MOP_WAIT && ins[c->write.node].op == TILE_MOP_DMA)
      for (int32_t i = c->readers; i >= 0 && lat > 1; i = w->sc->pool[i].next)
        if (ins[w->sc->pool[i].r.node].op == TILE_MOP_DMA) lat = 1;
    edge(w, c->write, r, lat);
  }
  if (!writes) {
    /* a store before the last writer may still be landing */
    if (c->store.node >= 0 && (c->store.node != c->write.node || c->store.iter != c->write.iter))
      edge(w, c->store, r, mem_lat(w, c->store, true, r, false));
    add_reader(w, c, r);
    return;
  }
  for (int32_t i = c->readers; i >= 0; i = w->sc->pool[i].next)
    edge(w, w->sc->pool[i].r, r, mem_lat(w, w->sc->pool[i].r, false, r, true));
  c->readers = -1;
  c->write = r;
  if (sched_is_store(w->g->ins[r.node].op)) c->store = r;
}

static void reg_read(Walk *w, Ref r, int32_t reg) {
  Chain *c = reg_chain(w, reg);
  if (c->write.node >= 0) edge(w, c->write, r, sched_lat(w->cx, w->g->ins[c->write.node].op));
  add_reader(w, c, r);
}

static void reg_write(Walk *w, Ref r, int32_t reg) {
  Chain *c = reg_chain(w, reg);
  int32_t lat = sched_lat(w->cx, w->g->ins[r.node].op);
  /* anti: the redefinition issues no earlier than each read of the old value */
  for (int32_t i = c->readers; i >= 0; i = w->sc->pool[i].next) edge(w, w->sc->pool[i].r, r, 0);
  if (c->write.node >= 0) {
    /* output: land strictly after the previous write, never in the same bundle */
    int32_t prev = sched_lat(w->cx, w->g->ins[c->write.node].op);
    int32_t l = prev - lat + 1;
    edge(w, c->write, r, l > 1 ? l : 1);
  }
  c->readers = -1;
  c->write = r;
}

static void fifo_add(Walk *w, int32_t u, Ref r) {
  if (w->fifo_len[u] == w->fifo_cap[u]) {
    int32_t nc = w->fifo_cap[u] ? w->fifo_cap[u] * 2 : 16;
    Ref *q = sched_calloc((size_t)nc, sizeof *q);
    for (int32_t i = 0; i < w->fifo_len[u]; i++)
      q[i] = w->fifo[u][(w->fifo_head[u] + i) % w->fifo_cap[u]];
    free(w->fifo[u]);
    w->fifo[u] = q;
    w->fifo_cap[u] = nc;
    w->fifo_head[u] = 0;
  }
  w->fifo[u][(w->fifo_head[u] + w->fifo_len[u]) % w->fifo_cap[u]] = r;
  w->fifo_len[u]++;
}

static Ref fifo_take(Walk *w, int32_t u) {
  if (w->fifo_len[u] == 0) return NONE;
  Ref r = w->fifo[u][w->fifo_head[u]];
  w->fifo_head[u] = (w->fifo_head[u] + 1) % w->fifo_cap[u];
  w->fifo_len[u]--;
  return r;
}

/* The chain of the buffer slot that mm names in iteration iter. */
static int32_t slot_chain(const Walk *w, const TileMirMem *mm, int32_t iter) {
  int32_t ns = w->cx->m->bufs[mm->buf].nslots;
  int32_t slot = (int32_t)((((int64_t)iter + mm->slot_ofs) % ns + ns) % ns);
  return w->sc->mem_base[mm->buf] + slot;
}

/* The iterations before the last two. Edges go only into the last iteration L, so what
 * counts is the state each resource has when L - 1 starts, and each resource's state
 * follows from its own accesses alone (so the resources may be brought there one after
 * another):
 *   - a register, the transpose buffer, a semaphore, an MXU unit's last push, weight
 *     load and pop, the last DMA: the body touches each in every iteration it touches
 *     it at all, so its state at L follows from iteration L - 1 (which visit() walks
 *     whole; with no write in the body a register's readers never get edges);
 *   - a slot of a buffer of ns slots: the body's accesses repeat with period ns, and
 *     within the ns iterations before L come the last write that is not a sem.wait
 *     (after which the chain is the same whatever came before), the last store and
 *     the readers since, or, with only waits writing, the last wait. So its accesses
 *     from L - ns on are replayed (replay_slots), and only for the slots L accesses;
 *   - an MXU unit's result queue: which result a pop takes depends on every push and
 *     pop since the loop started (replay_fifos).
 * Each resource thus sees the same accesses, in the same order, from a point where the
 * full walk's state and this one's agree, and iteration L gets the same edges in the
 * same order. */

/* One memory entry of the body on a buffer of several slots. */
typedef struct SlotUse {
  int32_t node, ns;
  const TileMirMem *mm;
} SlotUse;

static void replay_slots(Walk *w, int32_t n) {
  const TileMir *m = w->cx->m;
  int32_t last = w->last_iter, nuse = 0, max_ns = 0;
  SlotUse *use = sched_calloc((size_t)n * TILE_MIR_MAX_MEM + 1, sizeof *use);
  for (int32_t v = 0; v < n; v++)
    for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
      const TileMirMem *mm = &w->g->ins[v].mem[k];
      if (mm->buf < 0 || mm->buf >= m->nbufs || m->bufs[mm->buf].nslots < 2) continue;
      use[nuse++] = (SlotUse){v, m->bufs[mm->buf].nslots, mm};
      if (m->bufs[mm->buf].nslots > max_ns) max_ns = m->bufs[mm->buf].nslots;
    }
  for (int32_t it = last - max_ns > 0 ? last - max_ns : 0; it < last - 1; it++)
    for (int32_t i = 0; i < nuse; i++) {
      if (it < last - use[i].ns) continue;
      int32_t chain = slot_chain(w, use[i].mm, it);
      if (w->sc->want_gen[chain] != w->sc->gen) continue;
      Ref r = {use[i].node, it};
      if (use[i].mm->access & TILE_MIR_READ) mem_access(w, r, chain, false);
      if (use[i].mm->access & TILE_MIR_WRITE) mem_access(w, r, chain, true);
    }
  free(use);
}

/* The result queue of each MXU unit after `upto` iterations of the body's pushes and
 * pops, on top of what was queued before the loop. A pop from an empty queue takes
 * nothing, so when the body pushes at least as many results as it pops and no pop of
 * the first iteration finds the queue empty, none ever does: the queue then holds the
 * pushes of the whole run from the (upto * pops)-th on, written down directly. Any
 * other unit has its pushes and pops replayed one by one. */
static void replay_fifos(Walk *w, int32_t n, int32_t upto) {
  const SchedCtx *cx = w->cx;
  int32_t *push = sched_calloc((size_t)n + 1, sizeof *push);
  for (int32_t u = 0; u < cx->t->mxu_count; u++) {
    int32_t np = 0, npop = 0;
    int64_t len = w->fifo_len[u];
    bool empty_pop = false;
    for (int32_t v = 0; v < n; v++) {
      const TileMirInst *in = &w->g->ins[v];
      const SchedOpInfo *oi = &cx->info[in->op];
      if (!oi->unit || in->op == TILE_MOP_MXU_LDW || sched_field(in, oi->unit) != u) continue;
      if (in->op == TILE_MOP_MXU_PUSH) {
        push[np++] = v;
        len++;
      } else {
        empty_pop |= len == 0;
        len -= len > 0;
        npop++;
      }
    }
    if (np + npop == 0) continue;
    if (!empty_pop && np >= npop) {
      int64_t pend = w->fifo_len[u], from = (int64_t)upto * npop, to = pend + (int64_t)upto * np;
      Ref *before = sched_calloc((size_t)pend + 1, sizeof *before);
      for (int64_t i = 0; i < pend; i++) before[i] = fifo_take(w, u);
      for (int64_t g = from; g < to; g++)
        fifo_add(w, u, g < pend ? before[g]
                                : (Ref){push[(g - pend) % np], (int32_t)((g - pend) / np)});
      free(before);
      continue;
    }
    for (int32_t it = 0; it < upto; it++)
      for (int32_t v = 0; v < n; v++) {
        const TileMirInst *in = &w->g->ins[v];
        const SchedOpInfo *oi = &cx->info[in->op];
        if (!oi->unit || in->op == TILE_MOP_MXU_LDW || sched_field(in, oi->unit) != u) continue;
        if (in->op == TILE_MOP_MXU_PUSH)
          fifo_add(w, u, (Ref){v, it});
        else
          fifo_take(w, u);
      }
  }
  free(push);
}

static void visit(Walk *w, int32_t node, int32_t iter, bool loop) {
  const SchedCtx *cx = w->cx;
  const TileMir *m = cx->m;
  const TileMirInst *in = &w->g->ins[node];
  const SchedOpInfo *oi = &cx->info[in->op];
  const TileTarget *t = cx->t;
  Ref r = {node, iter};

  for (int k = 0; k < oi->nuse; k++) {
    int32_t reg = sched_field(in, oi->use[k]);
    if (reg >= 0 && reg < m->nregs) reg_read(w, r, reg);
  }

  for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
    const TileMirMem *mm = &in->mem[k];
    if (mm->buf < 0 || mm->buf >= m->nbufs) continue;
    int32_t chain = slot_chain(w, mm, iter);
    if (mm->access & TILE_MIR_READ) mem_access(w, r, chain, false);
    if (mm->access & TILE_MIR_WRITE) mem_access(w, r, chain, true);
  }

  if (oi->unit) {
    int32_t u = sched_field(in, oi->unit);
    if (u >= 0 && u < t->mxu_count) {
      switch (in->op) {
      case TILE_MOP_MXU_LDW:
        /* the push before keeps the weights it issued with (lands after it issues) */
        edge(w, w->push[u], r, 1);
        edge(w, w->ldw[u], r, 1);
        w->ldw[u] = r;
        break;
      case TILE_MOP_MXU_PUSH:
        edge(w, w->ldw[u], r, t->latency[TILE_LAT_MXU_WEIGHTS]);
        edge(w, w->push[u], r, t->mxu_push_cycles);
        w->push[u] = r;
        fifo_add(w, u, r);
        break;
      default: { /* pop, popacc: the oldest result, in push order */
        Ref p = fifo_take(w, u);
        edge(w, p, r, t->latency[TILE_LAT_MXU_RESULT]);
        edge(w, w->pop[u], r, 1);
        w->pop[u] = r;
        break;
      }
      }
    }
  }

  /* the transpose buffer is one more register: trpush writes it, trpop reads it */
  if (in->op == TILE_MOP_XTRPUSH) reg_write(w, r, m->nregs);
  if (in->op == TILE_MOP_XTRPOP) reg_read(w, r, m->nregs);

  if (oi->sem) {
    int32_t s = sched_field(in, oi->sem);
    if (s >= 0 && s < m->nsems) {
      Ref *last = sem_ref(w, s), prev = *last;
      int32_t lat = 1;
      if (prev.node >= 0 && w->g->ins[prev.node].op == TILE_MOP_SIGNAL) lat = t->latency[TILE_LAT_SALU];
      edge(w, prev, r, lat);
      *last = r;
    }
  }

  if (oi->slot == TILE_SLOT_DMA) {
    /* within an iteration only: a pipelined loop may issue DMAs iterations ahead */
    if (!loop || w->dma.iter == iter) edge(w, w->dma, r, 1);
    w->dma = r;
  }

  if (oi->def) {
    int32_t reg = sched_field(in, oi->def);
    if (reg >= 0 && reg < m->nregs) reg_write(w, r, reg);
  }
}

static SchedScratch *scratch_new(void) { return sched_calloc(1, sizeof(SchedScratch)); }

/* Sizes the scratch tables for m (growing them when m has gained registers, buffers
 * or semaphores since the last walk) and starts a new walk. */
static void scratch_begin(SchedScratch *sc, const TileMir *m) {
  if (m->nbufs + 1 > sc->nbufs) {
    free(sc->mem_base);
    sc->nbufs = m->nbufs + 1;
    sc->mem_base = sched_calloc((size_t)sc->nbufs, sizeof *sc->mem_base);
  }
  int32_t nchains = 0;
  for (int32_t b = 0; b < m->nbufs; b++) {
    sc->mem_base[b] = nchains;
    nchains += m->bufs[b].nslots;
  }
  if (m->nregs + 1 > sc->nregs) {
    free(sc->reg);
    free(sc->reg_gen);
    sc->nregs = m->nregs + 1;
    sc->reg = sched_calloc((size_t)sc->nregs, sizeof *sc->reg);
    sc->reg_gen = sched_calloc((size_t)sc->nregs, sizeof *sc->reg_gen);
  }
  if (nchains + 1 > sc->nchains) {
    free(sc->mem);
    free(sc->mem_gen);
    free(sc->want_gen);
    sc->nchains = nchains + 1;
    sc->mem = sched_calloc((size_t)sc->nchains, sizeof *sc->mem);
    sc->mem_gen = sched_calloc((size_t)sc->nchains, sizeof *sc->mem_gen);
    sc->want_gen = sched_calloc((size_t)sc->nchains, sizeof *sc->want_gen);
  }
  if (m->nsems + 1 > sc->nsems) {
    free(sc->sem);
    free(sc->sem_gen);
    sc->nsems = m->nsems + 1;
    sc->sem = sched_calloc((size_t)sc->nsems, sizeof *sc->sem);
    sc->sem_gen = sched_calloc((size_t)sc->nsems, sizeof *sc->sem_gen);
  }
  if (++sc->gen == 0) { /* wrapped: every stamp could look current */
    memset(sc->reg_gen, 0, (size_t)sc->nregs * sizeof *sc->reg_gen);
    memset(sc->mem_gen, 0, (size_t)sc->nchains * sizeof *sc->mem_gen);
    memset(sc->want_gen, 0, (size_t)sc->nchains * sizeof *sc->want_gen);
    memset(sc->sem_gen, 0, (size_t)sc->nsems * sizeof *sc->sem_gen);
    sc->gen = 1;
  }
}

void sched_ctx_free(SchedCtx *cx) {
  SchedScratch *sc = cx->scratch;
  if (sc) {
    free(sc->reg);
    free(sc->reg_gen);
    free(sc->mem);
    free(sc->mem_gen);
    free(sc->want_gen);
    free(sc->mem_base);
    free(sc->sem);
    free(sc->sem_gen);
    free(sc->pool);
    free(sc);
  }
  cx->scratch = NULL;
}

void sched_graph_build(const SchedCtx *cx, int32_t first, int32_t n, bool loop,
                       const int64_t *fifo_pending, SchedGraph *g) {
  const TileMir *m = cx->m;
  const TileTarget *t = cx->t;
  memset(g, 0, sizeof *g);
  g->n = n;
  g->first = first;
  g->ins = m->insts + first;

  Walk w;
  memset(&w, 0, sizeof w);
  w.cx = cx;
  w.g = g;
  w.sc = cx->scratch;
  scratch_begin(w.sc, m);
  int32_t units = t->mxu_count > 0 ? t->mxu_count : 1;
  int32_t max_slots = 1;
  /* Slots reach back as many iterations as the buffers this code touches have. */
  for (int32_t v = 0; v < n; v++)
    for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
      int32_t b = g->ins[v].mem[k].buf;
      if (b >= 0 && b < m->nbufs && m->bufs[b].nslots > max_slots) max_slots = m->bufs[b].nslots;
    }
  w.push = sched_calloc((size_t)units, sizeof(Ref));
  w.ldw = sched_calloc((size_t)units, sizeof(Ref));
  w.pop = sched_calloc((size_t)units, sizeof(Ref));
  w.fifo = sched_calloc((size_t)units, sizeof(Ref *));
  w.fifo_head = sched_calloc((size_t)units, sizeof(int32_t));
  w.fifo_len = sched_calloc((size_t)units, sizeof(int32_t));
  w.fifo_cap = sched_calloc((size_t)units, sizeof(int32_t));
  for (int32_t u = 0; u < units; u++) w.push[u] = w.ldw[u] = w.pop[u] = NONE;
  w.dma = NONE;

  /* How many iterations back a loop-carried edge can reach. */
  int32_t last = 0;
  if (loop) {
    last = max_slots > 1 ? max_slots : 1;
    int64_t *push = sched_calloc((size_t)units, sizeof(int64_t)), *pop = sched_calloc((size_t)units, sizeof(int64_t));
    sched_count_fifo(cx, first, n, push, pop);
    for (int32_t u = 0; u < units && u < t->mxu_count; u++) {
      int64_t k = fifo_pending ? fifo_pending[u] : 0;
      if (push[u] > 0 && k > 0) {
        int64_t back = 1 + (k + push[u] - 1) / push[u];
        if (back > last) last = (int32_t)(back < 64 ? back : 64);
      }
    }
    free(push);
    free(pop);
  }
  w.last_iter = last;
  for (int32_t u = 0; u < units && u < t->mxu_count && fifo_pending; u++)
    for (int64_t k = 0; k < fifo_pending[u]; k++) fifo_add(&w, u, NONE);

  if (last >= 2) {
    /* the slots the last iteration accesses */
    for (int32_t v = 0; v < n; v++)
      for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
        const TileMirMem *mm = &g->ins[v].mem[k];
        if (mm->buf >= 0 && mm->buf < m->nbufs)
          w.sc->want_gen[slot_chain(&w, mm, last)] = w.sc->gen;
      }
    replay_slots(&w, n);
    replay_fifos(&w, n, last - 1);
  }
  for (int32_t it = last >= 1 ? last - 1 : 0; it <= last; it++)
    for (int32_t v = 0; v < n; v++) visit(&w, v, it, loop);

  index_edges(g);
  if (loop) { /* every II tried for this body needs them */
    g->res_mii = sched_res_mii(cx, g);
    g->rec_mii = sched_rec_mii(g, g->res_mii);
  }
  for (int32_t u = 0; u < units; u++) free(w.fifo[u]);
  free(w.fifo);
  free(w.fifo_head);
  free(w.fifo_len);
  free(w.fifo_cap);
  free(w.push);
  free(w.ldw);
  free(w.pop);
}

void sched_count_fifo(const SchedCtx *cx, int32_t first, int32_t n, int64_t *push, int64_t *pop) {
  const TileMir *m = cx->m;
  for (int32_t i = first; i < first + n; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op >= TILE_MOP_COUNT || !cx->info[in->op].unit) continue;
    int32_t u = sched_field(in, cx->info[in->op].unit);
    if (u < 0 || u >= cx->t->mxu_count) continue;
    if (in->op == TILE_MOP_MXU_PUSH) push[u]++;
    else if (sched_is_pop(in->op)) pop[u]++;
  }
}
