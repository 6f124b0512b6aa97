/* Cross-group prefetch: weights stream from HBM while a collective runs
 * (lower_internal.h).
 *
 * Groups run in program order, and a group's DMAs start only after the group before
 * has drained its own (lower.c, "Semaphores"). A collective keeps the links busy for
 * thousands of cycles and HBM idle, and the matmul after it then starts streaming its
 * weights from nothing. Weights are bound inputs: no group writes them, so their copies
 * may start at any point of the program.
 *
 * The plan: a matmul group whose weights are a parameter, preceded (within PF_WINDOW
 * groups, with only row-wise, layout and collective groups between) by collectives,
 * gets a budget of bytes: what HBM moves in the time those collectives are expected to
 * take (below). Its generator copies that many of its first weight pieces with a few
 * DMAs (gen_matmul_dma.c, "Prefetch") on the prefetch semaphore and reports them. They
 * move to the start of the earliest of those collectives, and their waits, one per DMA
 * naming the copies' destination, go right after the last collective. So:
 *   - the copies run exactly while the collectives do: the groups between the last
 *     collective and the matmul find them landed;
 *   - the semaphore is one of its own, below the collectives' band: the groups it
 *     crosses number theirs from the base as usual; a later prefetch moves to a group
 *     after this one's waits (the walk back stops at any matmul), so one serves all;
 *   - the copies are in flight while the collectives run, each of which drains its own
 *     DMAs before the next group starts: they may be as many as dma.outstanding leaves
 *     beside the most any of those groups issues in all (loops counted by their trips),
 *     or keeps in flight where its generator bounds that (TileLowerCtx.dma_cap), so
 *     the target's limit holds whatever order the DMAs complete in. A collective that
 *     streams many steps and bounds nothing leaves none and gets no prefetch;
 *   - the scheduler keeps DMA-slot ops in program order, so the copies issue before the
 *     collective's own, and layout keeps their destination live from there on (it
 *     computes lives from the scheduled code);
 *   - their descriptors are single 64-byte ones, never staged (lower_stage.c stages
 *     tables of 256 bytes or more at their group's start).
 * A function without a mesh, or without such a pair, is lowered exactly as before.
 *
 * Expected time of a collective over n chips of its axes (REFERENCE.md, ring α-β): an
 * all_reduce 2((n-1)α + (n-1)/n · V/W), an all_gather or reduce_scatter half that, any
 * other (n-1)α + V/W, with α the hop latency and W both directions of one link, times
 * PF_MARGIN. Too long an estimate costs VMEM and a wait after the collective with HBM
 * busy all the while; too short leaves HBM idle. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gen_collective.h"
#include "lower_internal.h"
#include "tile/ops.h"

/* Groups between a matmul and the collective its prefetch is moved to, at most. */
enum { PF_WINDOW = 4 };
/* The budget over the estimate: collectives on axes without wraparound, and sends that
 * share links, take longer than the ring model says (a one-shot all_reduce of 128 KiB
 * on 1x4 v5e-like: 17,000 cycles against 12,300). */
#define PF_MARGIN 2.0

/* A prefetch: the copies [first, end) group `from` made, to move to the start of group
 * `to`, and their waits after group `until` (live group indices). */
typedef struct PfBlock {
  int32_t to, until, from, first, end;
} PfBlock;

struct TilePfPlan {
  int32_t n;
  int32_t *to, *until; /* per group: -1, or where its copies and waits go */
  int64_t *budget;     /* per group: bytes */
  PfBlock *blocks;
  int32_t nblocks;
};

int64_t tile_lower_prefetch_budget(TileLowerCtx *cx, int32_t *sem, int32_t *dmas) {
  *sem = cx->pf_sem;
  *dmas = cx->pf_dmas;
  return cx->pf_sem >= 0 && cx->pf_dmas > 0 ? cx->pf_budget : 0;
}

void tile_lower_prefetch_block(TileLowerCtx *cx, int32_t first, int32_t end) {
  cx->pf_first = first;
  cx->pf_end = end;
}

int64_t tile_lower_prefetch_dma_count(const TileMir *m, int32_t first, int32_t end) {
  enum { MAX_DEPTH = 8 };
  int64_t mult[MAX_DEPTH + 1] = {1}, n = 0;
  int depth = 0;
  for (int32_t i = first; i < end; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MIR_LOOP_BEGIN && depth < MAX_DEPTH) {
      mult[depth + 1] = mult[depth] * in->imm;
      if (mult[depth + 1] > INT32_MAX) mult[depth + 1] = INT32_MAX; /* enough to refuse */
      depth++;
    } else if (in->op == TILE_MIR_LOOP_END && depth > 0) {
      depth--;
    } else if (in->op == TILE_MOP_DMA) {
      n += mult[depth];
    }
  }
  return n;
}

static int64_t value_bytes(const TileValue *v) {
  return tile_type_numel(&v->type) * tile_lower_elem_bytes((TileElem)v->type.elem);
}

/* Chips on the axes an op's `axes` (or `axis`) names; 1 when none is found. */
static int64_t axes_chips(const TileMesh *mesh, const TileOp *op) {
  const TileAttr *a = tile_attr_get(&op->attrs, "axes");
  if (!a) a = tile_attr_get(&op->attrs, "axis");
  if (!a) return 1;
  const TileAttr *names = a->kind == TILE_ATTR_IDENT ? a : a->elems;
  int32_t n = a->kind == TILE_ATTR_IDENT ? 1 : a->n;
  int64_t chips = 1;
  for (int32_t i = 0; i < n; i++) {
    if (names[i].kind != TILE_ATTR_IDENT) continue;
    for (int32_t k = 0; k < mesh->naxes; k++)
      if (strcmp(mesh->axes[k].name, names[i].s) == 0) chips *= mesh->axes[k].size;
  }
  return chips;
}

/* Expected cycles of a collective group (its one op; see the top). */
static int64_t collective_cycles(const TileTarget *t, const TileMesh *mesh, const TileGroup *g) {
  const TileOp *op = g->ops[0];
  int64_t n = axes_chips(mesh, op);
  if (n <= 1 || op->nopnd < 1 || op->nres < 1) return 0;
  int64_t v = value_bytes(op->opnd[0].v), r = value_bytes(op->res[0]);
  if (r > v) v = r; /* an all_gather moves its result */
  double alpha = (double)tile_target_hop_cycles(t);
  double w = 2.0 * (double)t->ici_bw / (double)t->clock_hz; /* bytes per cycle, both ways */
  double ring = (double)(n - 1) * alpha + (double)(n - 1) / (double)n * (double)v / w;
  double c;
  switch ((TileOpKind)op->kind) {
  case TILE_OP_ALL_REDUCE: c = 2 * ring; break;
  case TILE_OP_ALL_GATHER:
  case TILE_OP_REDUCE_SCATTER: c = ring; break;
  default: c = (double)(n - 1) * alpha + (double)v / w; break;
  }
  return (int64_t)c;
}

/* Whether a matmul group's weights (the matmul's right operand) are a parameter. */
static bool weights_are_parameter(const TileGroup *g) {
  for (int32_t i = 0; i < g->nops; i++) {
    const TileOp *op = g->ops[i];
    if (op->kind != TILE_OP_MATMUL && op->kind != TILE_OP_DOT_GENERAL) continue;
    return op->nopnd >= 2 && op->opnd[1].v->def == NULL;
  }
  return false;
}

void tile_lower_prefetch_plan(TileLowerCtx *cx, TileGroup *const *groups, int32_t n) {
  const TileTarget *t = cx->target;
  const TileMesh *mesh = tile_coll_func_mesh(cx->m, cx->f);
  struct TilePfPlan *pf = tile_alloc(cx->m, sizeof *pf);
  pf->n = n;
  pf->to = tile_alloc(cx->m, sizeof *pf->to * (size_t)(n + 1));
  pf->until = tile_alloc(cx->m, sizeof *pf->until * (size_t)(n + 1));
  pf->budget = tile_alloc(cx->m, sizeof *pf->budget * (size_t)(n + 1));
  pf->blocks = tile_alloc(cx->m, sizeof *pf->blocks * (size_t)(n + 1));
  int32_t count = 0;
  for (int32_t i = 0; i < n; i++) pf->to[i] = pf->until[i] = -1;
  for (int32_t i = 0; i < n && mesh && t->clock_hz > 0; i++) {
    if (groups[i]->kind != TILE_GROUP_MATMUL || !weights_are_parameter(groups[i])) continue;
    int64_t cycles = 0;
    int32_t to = -1, until = -1;
    for (int32_t j = i - 1; j >= 0 && i - j <= PF_WINDOW; j--) {
      TileGroupKind k = groups[j]->kind;
      if (k == TILE_GROUP_COLLECTIVE) {
        /* a permute that only sends ends at once (lower_async.c): no time to fill */
        if (!tile_lower_async_deferred(cx, j)) cycles += collective_cycles(t, mesh, groups[j]);
        to = j;
        if (until < 0) until = j;
      } else if (k != TILE_GROUP_ROWWISE && k != TILE_GROUP_LAYOUT) {
        break; /* a group that streams HBM itself, or a matmul with its own prefetch */
      }
    }
    if (to < 0 || cycles <= 0) continue;
    pf->to[i] = to;
    pf->until[i] = until;
    pf->budget[i] = (int64_t)(PF_MARGIN * (double)cycles * (double)t->hbm_bw / (double)t->clock_hz);
    count++;
  }
  cx->pf = pf;
  if (count > 0) cx->pf_sem = tile_lower_function_sem(cx);
}

void tile_lower_prefetch_enter(TileLowerCtx *cx, int32_t k, const TileStageGroup *starts) {
  const struct TilePfPlan *pf = cx->pf;
  cx->pf_budget = 0;
  cx->pf_dmas = 0;
  cx->pf_first = cx->pf_end = 0;
  if (!pf || k >= pf->n || pf->to[k] < 0) return;
  int64_t most = 0; /* the groups it crosses, generated before it */
  for (int32_t j = pf->to[k]; j <= pf->until[k]; j++) {
    int64_t n = tile_lower_prefetch_dma_count(cx->mir, starts[j].first_inst,
                                              starts[j + 1].first_inst);
    if (starts[j].dma_cap > 0 && starts[j].dma_cap < n) n = starts[j].dma_cap;
    n += tile_lower_async_reserve(cx, j); /* permutes' sends in flight across it */
    if (n > most) most = n;
  }
  int64_t left = cx->target->dma_outstanding - most;
  cx->pf_dmas = left > 0 ? (int32_t)left : 0;
  cx->pf_budget = pf->budget[k];
}

void tile_lower_prefetch_leave(TileLowerCtx *cx, int32_t k) {
  struct TilePfPlan *pf = cx->pf;
  if (pf && k < pf->n && pf->to[k] >= 0 && cx->pf_end > cx->pf_first)
    pf->blocks[pf->nblocks++] = (PfBlock){pf->to[k], pf->until[k], k, cx->pf_first, cx->pf_end};
  cx->pf_budget = 0;
  cx->pf_dmas = 0;
}

bool tile_lower_prefetch_place(TileLowerCtx *cx, TileStageGroup *starts, int32_t nstarts) {
  const struct TilePfPlan *pf = cx->pf;
  TileMir *m = cx->mir;
  int32_t added = 0; /* waits inserted so far: later blocks sit that much further on */
  for (int32_t i = 0; pf && i < pf->nblocks; i++) {
    PfBlock b = pf->blocks[i];
    b.first += added;
    b.end += added;
    int32_t n = b.end - b.first, at = starts[b.to].first_inst;
    if (n <= 0 || at >= b.first) continue;
    /* the copies to the start of the first collective */
    if (!tile_mir_move_insts(m, at, b.first, b.end)) return false;
    for (int32_t g = b.to + 1; g <= b.from; g++) starts[g].first_inst += n;
    /* The collectives between a copy and its wait take time the schedule does not see
     * (each of their waits is one bundle), so the copy's expected latency on that edge
     * would only pad the schedule with empty bundles after them, stalling on top of
     * the waits that already took the time. The wait stalls by itself if the copy is
     * late. */
    for (int32_t j = at; j < at + n; j++)
      if (m->insts[j].op == TILE_MOP_DMA) m->insts[j].est_cycles = 1;
    /* a wait per copy after the last collective, naming what the copy writes */
    int32_t from = m->ninsts, waits = 0;
    for (int32_t j = at; j < at + n; j++) {
      const TileMirInst *dma = &m->insts[j];
      if (dma->op != TILE_MOP_DMA) continue;
      TileMirInst w = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, cx->pf_sem, 1);
      tile_mir_mem(&w, dma->mem[2].buf, TILE_MIR_WRITE, 0);
      int32_t k = tile_mir_add(m, w);
      m->insts[k].src_name = m->insts[j].src_name; /* the matmul's */
      m->insts[k].src_loc = m->insts[j].src_loc;
      waits++;
    }
    if (!tile_mir_move_insts(m, starts[b.until + 1].first_inst, from, m->ninsts)) return false;
    for (int32_t g = b.until + 1; g < nstarts; g++) starts[g].first_inst += waits;
    added += waits;
  }
  return true;
}
