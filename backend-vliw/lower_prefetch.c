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
 * move to the start of the earliest of those collectives (past its operand's load:
 * after_loads), and their waits, one per DMA naming the copies' destination, go right
 * after the last collective (but for the parts the group waits for itself). So:
 *   - the copies run exactly while the collectives do: the groups between the last
 *     collective and the matmul find them landed;
 *   - the semaphore is one of the function's own, below the collectives' band: the
 *     groups it crosses number theirs from the base as usual. Prefetches take two in
 *     turn (TilePfPlan.sems), since a matmul may wait for the last parts of its own
 *     copies inside its code (gen_matmul_dma.c, "Parts") while the next matmul's copies
 *     are in flight;
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
 * A matmul that computes from prefetched weights is a second kind of window: its
 * prefetched blocks run at the pace of their vector loads, with HBM idle once its own
 * remaining pieces are in (gen_matmul_dma.c, "Prefetch"). A matmul group whose weights
 * are a parameter and whose walk back (the same window, row-wise and layout groups
 * between) reaches such a matmul before any collective gets a budget of what HBM moves
 * while those blocks' weights are loaded into the vector registers: its copies move to
 * the start of that matmul and their waits go right after it. So a chain of matmuls
 * (w_gate, w_up, w_down; wq, wk, wv) streams one's weights while the one before
 * computes from VMEM. The window matmul reserves MM_WINDOW_DMAS (EXT_WINDOW_DMAS for
 * `ext`, below), the copies that cross it (TileLowerCtx.dma_reserve).
 * The matmuls after a collective's first one may join its window where what the
 * collective is expected to leave HBM covers their weights too ("joinable"): one DMA
 * each, in the collective, waited for right after it.
 * A matmul computing from its prefetch alone right before a collective starts the
 * window of the matmul after that collective (`ext`): its copies start at it.
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
/* Groups between a matmul that joins the window of an earlier one and that matmul, at
 * most (wo after wv: the layout groups, ropes and attention of a decode layer). */
enum { PF_JOIN_WINDOW = 12 };
/* The budget over the estimate: collectives on axes without wraparound, and sends that
 * share links, take longer than the ring model says (a one-shot all_reduce of 128 KiB
 * on 1x4 v5e-like: 17,000 cycles against 12,300). */
#define PF_MARGIN 2.0
/* DMAs of a prefetch moved across a matmul window; its generator leaves them free. */
enum { MM_WINDOW_DMAS = 2 };
/* DMAs a matmul reserves where its window runs on through the collectives after it
 * (`ext`): the copies there are the next matmul's whole weights, and the matmul (from
 * VMEM) issues few DMAs of its own (model_decode on v5e-like: 4,170,761 cycles with 2,
 * 4,115,860 with 4, the same with 6). */
enum { EXT_WINDOW_DMAS = 4 };
/* The budget over a matmul window's estimate: its blocks take longer than their vector
 * loads (a block of four units runs 73 bundles for its 64 weight loads on v5e-like),
 * and a copy that outlasts the window runs on beside the next matmul's own stream, HBM
 * busy all the while (layer_decode_64 on v5e-like: 147,021 cycles at 1.1, 146,603 at
 * 1.3, 146,196 at 1.8). */
#define MM_WINDOW_MARGIN 1.8

/* A prefetch: the copies [first, end) group `from` made (on its PfGroup.sem), to move
 * to the start of group `to`, and the waits for all but the last `inner` of them after
 * group `until` (live group indices). */
typedef struct PfBlock {
  int32_t to, until, from, first, end, inner;
} PfBlock;

/* What the plan knows of one live group. */
typedef struct PfGroup {
  int32_t to, until; /* -1, or where its copies and waits go */
  int64_t budget;    /* bytes (a matmul window's: set when entered) */
  int32_t reserve;   /* DMAs of a later prefetch in flight across it */
  int64_t copied;    /* bytes of weights its own prefetch copied */
  int64_t tail;      /* those it computes after its last wait for them */
  int32_t sem;       /* the semaphore of its prefetch */
  /* a matmul with parameter weights: their element and total bytes, its MXU cycles, the
   * bytes of its left operand and result, and whether it should copy all its weights */
  int32_t wsize;
  int64_t wbytes, busy, traffic;
  bool whole;
  bool joins;        /* it shares the collective window of the matmul before it */
  bool extends;      /* its window is a matmul and the collectives right after it */
  /* a collective window: the budget no matmul has taken yet, the DMAs its copies took,
   * and its first matmul (whose semaphore the ones joining it leave alone) */
  int64_t spare;
  int32_t used, first;
} PfGroup;

/* Whether a group copies move to is a matmul window (it reserves DMAs for them), not a
 * collective. */
static bool mm_window(const PfGroup *g) { return g->reserve > 0; }

/* Two semaphores, taken in turn by the prefetches in program order: a matmul window's
 * copies (of the next matmul) signal while the window waits for the last parts of its
 * own, and those waits must not count them. A prefetch's copies move no earlier than
 * the matmul before it (the walk back stops at any), whose waits all come before the
 * prefetch after it starts; so two prefetches at most are in flight at once. */
struct TilePfPlan {
  int32_t n;
  PfGroup *g;
  PfBlock *blocks;
  int32_t nblocks;
  int32_t sems[2];
};

int64_t tile_lower_prefetch_budget(TileLowerCtx *cx, int32_t *sem, int32_t *dmas) {
  *sem = cx->pf_sem;
  *dmas = cx->pf_dmas;
  return cx->pf_sem >= 0 && cx->pf_dmas > 0 ? cx->pf_budget : 0;
}

void tile_lower_prefetch_block(TileLowerCtx *cx, int32_t first, int32_t end, int64_t bytes,
                               int32_t inner, int64_t tail) {
  cx->pf_first = first;
  cx->pf_end = end;
  cx->pf_copied = bytes;
  cx->pf_inner = inner;
  cx->pf_tail = tail;
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

/* Expected cycles of a collective group (its one op; see the top). */
static int64_t collective_cycles(const TileTarget *t, const TileMesh *mesh, const TileGroup *g) {
  const TileOp *op = g->ops[0];
  const TileAttr *axes = tile_coll_axes_attr(op);
  int64_t n = axes ? tile_mesh_axes_size(mesh, axes) : 1;
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

/* The weights of a matmul group that may copy them early: a parameter that does not
 * stay in VMEM (lower_resident.c; its owner copies all of it for the groups after). */
static const TileValue *streamed_weights(TileLowerCtx *cx, const TileGroup *g, const TileOp **mm) {
  const TileValue *w = tile_lower_group_weights(g, mm);
  return w && !tile_lower_resident(cx, w) ? w : NULL;
}

/* Cycles of a matmul's MXU work (bench/kernels/bound.c's rate: a push of vreg.sublanes
 * rows through an mxu.dim square every mxu.push_cycles, on every unit). */
static int64_t mxu_cycles(const TileTarget *t, const TileOp *mm, const TileValue *w) {
  int64_t out = tile_type_numel(&mm->res[0]->type), r = w->type.rank;
  int64_t k = r >= 2 ? w->type.dims[r - 2] : 1;
  double rate = (double)t->vreg_sublanes * t->mxu_dim * t->mxu_dim / t->mxu_push_cycles *
                (t->mxu_count > 0 ? t->mxu_count : 1);
  return rate > 0 ? (int64_t)((double)out * (double)k / rate) : 0;
}

/* Bytes HBM moves in `cycles`. */
static double hbm_moved(const TileTarget *t, double cycles) {
  return cycles * (double)t->hbm_bw / (double)t->clock_hz;
}

/* Bytes HBM can move while matmul group j computes from `bytes` of its weights copied
 * early: the longer of its MXU work and its vector loads of them (a tile of
 * vreg.sublanes x vreg.lanes elements each), less the time of its own other traffic
 * (the left operand in, the result out), which takes HBM meanwhile; the MXU work and
 * the traffic in the share of its weights those bytes are. */
static int64_t window_bytes(const TileTarget *t, const PfGroup *j, int64_t bytes) {
  int64_t tile = (int64_t)t->vreg_sublanes * t->vreg_lanes * j->wsize;
  int64_t slots = t->slots[TILE_SLOT_VLOAD] > 0 ? t->slots[TILE_SLOT_VLOAD] : 1;
  if (tile <= 0 || j->wbytes <= 0) return 0;
  double share = (double)bytes / (double)j->wbytes;
  double cycles = (double)(bytes / tile / slots), busy = share * (double)j->busy;
  if (busy > cycles) cycles = busy;
  double moved = hbm_moved(t, cycles) * MM_WINDOW_MARGIN;
  double traffic = share * (double)j->traffic;
  return moved > traffic ? (int64_t)(moved - traffic) : 0;
}

/* Whether a budget is expected to copy all of matmul group i's weights early: it covers
 * them, they fit the eighth of VMEM a prefetch may take (gen_matmul_dma.c), and the
 * group's other traffic is smaller (a long left operand's slabs take VMEM too, and its
 * stream keeps HBM busy anyway). */
static bool covers(const TileTarget *t, const PfGroup *i, int64_t budget) {
  return budget >= i->wbytes && i->wbytes <= t->vmem_bytes / 8 && i->traffic < i->wbytes;
}

/* The budget of copies during collectives expected to take `cycles`: what HBM moves in
 * that time, with the margin. */
static int64_t collective_budget(const TileTarget *t, int64_t cycles) {
  return (int64_t)(PF_MARGIN * hbm_moved(t, (double)cycles));
}

/* Whether matmul group i may join the collective window of matmul group j, the group
 * right before it (with the row-wise and layout groups between): j copies all its
 * weights during that window, and what the window is expected to move beyond them
 * covers all of i's. A collective often lasts longer than the copies of the one matmul
 * after it (the all_reduce that ends a decode layer: 19.3k cycles on 8x8 v5e-like, wq's
 * shard 7.8k), and the matmuls after that one would stream their weights later with
 * HBM idle now. The copies of a matmul that joins are all waited for right after the
 * collective, on the semaphore its first matmul's do not use (that one may wait for
 * parts of its own inside its code), so they are done before any later prefetch
 * starts. */
static bool joinable(const TileTarget *t, TileGroup *const *groups, const struct TilePfPlan *pf,
                     int32_t j, const PfGroup *i) {
  const PfGroup *g = &pf->g[j];
  if (!g->whole || g->to < 0 || groups[g->to]->kind != TILE_GROUP_COLLECTIVE) return false;
  return covers(t, i, pf->g[g->to].spare);
}

/* The matmul whose collective window matmul group i joins, or -1: the first matmul
 * before i, over row-wise and layout groups and past an attention (which streams its
 * own operands, after the joined copies have landed), if i may join its window. */
static int32_t join_host(const TileTarget *t, TileGroup *const *groups,
                         const struct TilePfPlan *pf, int32_t i) {
  for (int32_t j = i - 1; j >= 0 && i - j <= PF_JOIN_WINDOW; j--) {
    TileGroupKind k = groups[j]->kind;
    if (k == TILE_GROUP_MATMUL) return joinable(t, groups, pf, j, &pf->g[i]) ? j : -1;
    if (k != TILE_GROUP_ROWWISE && k != TILE_GROUP_LAYOUT && k != TILE_GROUP_ATTENTION) break;
  }
  return -1;
}

void tile_lower_prefetch_plan(TileLowerCtx *cx, TileGroup *const *groups, int32_t n) {
  const TileTarget *t = cx->target;
  const TileMesh *mesh = tile_coll_func_mesh(cx->m, cx->f);
  struct TilePfPlan *pf = tile_alloc(cx->m, sizeof *pf);
  pf->n = n;
  pf->g = tile_alloc(cx->m, sizeof *pf->g * (size_t)(n + 1));
  pf->blocks = tile_alloc(cx->m, sizeof *pf->blocks * (size_t)(n + 1));
  int32_t count = 0;
  for (int32_t i = 0; i < n; i++) pf->g[i] = (PfGroup){.to = -1, .until = -1, .first = -1};
  pf->sems[0] = pf->sems[1] = -1;
  for (int32_t i = 0; i < n && mesh && t->clock_hz > 0; i++) {
    const TileOp *mm = NULL;
    const TileValue *w = streamed_weights(cx, groups[i], &mm);
    if (!w) continue;
    PfGroup *gi = &pf->g[i];
    gi->wsize = tile_lower_elem_bytes((TileElem)w->type.elem);
    gi->wbytes = value_bytes(w);
    gi->busy = mxu_cycles(t, mm, w);
    gi->traffic = value_bytes(mm->opnd[0].v) + value_bytes(mm->res[0]);
    int64_t cycles = 0;
    int32_t to = -1, until = -1, ext = -1, host = join_host(t, groups, pf, i);
    if (host >= 0) {
      to = until = pf->g[host].to;
      gi->joins = true;
    }
    for (int32_t j = i - 1; !gi->joins && j >= 0 && i - j <= PF_WINDOW; j--) {
      TileGroupKind k = groups[j]->kind;
      if (k == TILE_GROUP_MATMUL && to == j + 1 && pf->g[j].whole) {
        /* A matmul computing from its prefetch alone right before the collective: the
         * copies start there, HBM idle in both (a decode layer's wo before the
         * attention's all_reduce, w_gate's copies). */
        ext = j;
        break;
      }
      if (k == TILE_GROUP_COLLECTIVE) {
        /* a permute that only sends ends at once (lower_async.c): no time to fill */
        if (!tile_lower_async_deferred(cx, j)) cycles += collective_cycles(t, mesh, groups[j]);
        to = j;
        if (until < 0) until = j;
      } else if (k == TILE_GROUP_MATMUL && to < 0 && pf->g[j].whole) {
        /* A matmul computing from its prefetch alone: one that streams a remainder
         * would share HBM with these copies from its start and reach its prefetched
         * blocks' tail with them done. */
        to = until = j;
        pf->g[j].reserve = MM_WINDOW_DMAS;
        break;
      } else if (k != TILE_GROUP_ROWWISE && k != TILE_GROUP_LAYOUT) {
        break; /* a group that streams HBM itself, or a matmul with its own prefetch */
      }
    }
    if (to < 0 || (!gi->joins && groups[to]->kind == TILE_GROUP_COLLECTIVE && cycles <= 0))
      continue;
    gi->to = ext >= 0 ? ext : to;
    gi->until = until;
    gi->extends = ext >= 0;
    /* a matmul window's budget is what it is expected to give; set when entered */
    if (gi->extends) {
      pf->g[ext].reserve = EXT_WINDOW_DMAS;
      gi->budget = collective_budget(t, cycles) + window_bytes(t, &pf->g[ext], pf->g[ext].wbytes);
    } else if (gi->joins) {
      gi->budget = pf->g[to].spare;
    } else if (groups[to]->kind == TILE_GROUP_COLLECTIVE) {
      gi->budget = collective_budget(t, cycles);
    } else {
      gi->budget = window_bytes(t, &pf->g[to], pf->g[to].wbytes);
    }
    gi->whole = covers(t, gi, gi->budget);
    if (gi->joins) {
      pf->g[to].spare -= gi->wbytes;
    } else if (!gi->extends && groups[to]->kind == TILE_GROUP_COLLECTIVE) {
      /* what the collective is expected to leave HBM for beyond the first matmul's
       * copies, without the margin: copies that join wait right after it */
      pf->g[to].first = i;
      int64_t expected = (int64_t)hbm_moved(t, (double)cycles);
      pf->g[to].spare = gi->whole && expected > gi->wbytes ? expected - gi->wbytes : 0;
    }
    count++;
  }
  cx->pf = pf;
  if (count > 0) pf->sems[0] = pf->sems[1] = tile_lower_function_sem(cx);
  if (count > 1) pf->sems[1] = tile_lower_function_sem(cx);
}

/* DMAs the groups [from, to] keep in flight at most, generated by now: each counted as
 * its generator bounds them, or every DMA it issues, plus the permutes' sends that
 * cross it. */
static int64_t most_in_flight(const TileLowerCtx *cx, const TileStageGroup *starts, int32_t from,
                              int32_t to) {
  int64_t most = 0;
  for (int32_t j = from; j <= to; j++) {
    int64_t n = tile_lower_prefetch_dma_count(cx->mir, starts[j].first_inst,
                                              starts[j + 1].first_inst);
    if (starts[j].dma_cap > 0 && starts[j].dma_cap < n) n = starts[j].dma_cap;
    n += tile_lower_async_reserve(cx, j);
    if (n > most) most = n;
  }
  return most;
}

void tile_lower_prefetch_enter(TileLowerCtx *cx, int32_t k, const TileStageGroup *starts) {
  struct TilePfPlan *pf = cx->pf;
  cx->pf_budget = 0;
  cx->pf_dmas = 0;
  cx->pf_first = cx->pf_end = cx->pf_inner = 0;
  cx->pf_copied = cx->pf_tail = 0;
  cx->pf_sem = -1;
  if (!pf || k >= pf->n) return;
  cx->pf_sem = pf->sems[pf->nblocks % 2];
  int32_t to = pf->g[k].to, until = pf->g[k].until;
  int64_t outstanding = cx->target->dma_outstanding - cx->dma_reserve;
  if (to >= 0 && pf->g[k].joins) {
    /* one DMA beside the window's others, waited for right after it ("joinable") */
    int32_t first = pf->g[to].first;
    int64_t left = outstanding - most_in_flight(cx, starts, to, until) - pf->g[to].used;
    cx->pf_sem = first >= 0 && pf->g[first].sem == pf->sems[0] ? pf->sems[1] : pf->sems[0];
    cx->pf_dmas = left > 0 ? 1 : 0;
    cx->pf_budget = pf->g[k].budget;
  } else if (to >= 0) {
    /* the window: a matmul leaves the DMAs it reserved, a collective what it keeps */
    bool mm = mm_window(&pf->g[to]);
    int64_t left = mm ? pf->g[to].reserve : outstanding - most_in_flight(cx, starts, to, until);
    if (mm && until > to) { /* the copies cross the collectives after the matmul too */
      int64_t coll = outstanding - most_in_flight(cx, starts, to + 1, until);
      if (coll < left) left = coll;
    }
    /* The waits go right before this group when the row-wise and layout groups after
     * the window leave as many DMAs (or enough for a prefetch's runs): the copies then
     * run on under them too, where HBM is mostly idle. */
    if (until + 1 < k) {
      int64_t rest = outstanding - most_in_flight(cx, starts, until + 1, k - 1);
      if (rest >= left || rest >= MM_WINDOW_DMAS) {
        if (rest < left) left = rest;
        pf->g[k].until = k - 1;
      }
    }
    cx->pf_dmas = left > 0 ? (int32_t)left : 0;
    if (!mm || pf->g[k].extends)
      cx->pf_budget = pf->g[k].budget;
    else if (pf->g[to].copied >= pf->g[to].wbytes) /* it did copy all its weights early */
      cx->pf_budget = window_bytes(cx->target, &pf->g[to], pf->g[to].tail);
  }
  cx->dma_reserve += pf->g[k].reserve; /* a later matmul's copies cross this one */
}

void tile_lower_prefetch_leave(TileLowerCtx *cx, int32_t k) {
  struct TilePfPlan *pf = cx->pf;
  if (pf && k < pf->n && pf->g[k].to >= 0 && cx->pf_end > cx->pf_first) {
    pf->blocks[pf->nblocks++] = (PfBlock){pf->g[k].to, pf->g[k].until, k, cx->pf_first,
                                          cx->pf_end, cx->pf_inner};
    pf->g[k].copied = cx->pf_copied;
    pf->g[k].tail = cx->pf_tail;
    pf->g[k].sem = cx->pf_sem;
    int32_t to = pf->g[k].to;
    if (!mm_window(&pf->g[to]))
      pf->g[to].used += (int32_t)tile_lower_prefetch_dma_count(cx->mir, cx->pf_first, cx->pf_end);
  }
  cx->pf_budget = 0;
  cx->pf_dmas = 0;
}

/* Whether `in` names buffer `buf`. */
static bool names(const TileMirInst *in, int32_t buf) {
  for (int k = 0; k < TILE_MIR_MAX_MEM; k++)
    if (in->mem[k].buf == buf) return true;
  return false;
}

/* Where copies moved to the collective whose code is insts [at, end) go: after its
 * first wait where that wait is for a local copy (it names the copy's source and
 * destination, as a send's waits do not: the one for its arrival names the
 * destination, the one for its departure the source), else at its start. That copy is
 * the collective's operand into VMEM, which its first step waits for; copies in flight
 * together share HBM evenly (docs/emulator.md), so copies issued beside it would make
 * it, and the whole collective after it, several times as long. */
static int32_t after_loads(const TileMir *m, int32_t at, int32_t end) {
  const TileMirInst *dma = NULL;
  for (int32_t j = at; j < end; j++) {
    const TileMirInst *in = &m->insts[j];
    if (in->op == TILE_MIR_LOOP_BEGIN) break;
    if (in->op == TILE_MOP_DMA) dma = in;
    if (in->op != TILE_MOP_WAIT) continue;
    bool local = dma && dma->mem[1].buf >= 0 && dma->mem[2].buf >= 0 &&
                 names(in, dma->mem[1].buf) && names(in, dma->mem[2].buf);
    return local ? j + 1 : at;
  }
  return at;
}

/* Where copies moved to the matmul window whose code is insts [at, end) go: after its
 * last wait for a part of its own prefetch (on semaphore sem, outside its loops), else
 * at its start. Before that wait its own parts are landing, and copies issued beside
 * them would share HBM with them and hold the blocks that wait; after it the window
 * computes its last part with HBM idle (the budget is that part's time, tail). */
static int32_t after_parts(const TileMir *m, int32_t at, int32_t end, int32_t sem) {
  int32_t depth = 0, last = at;
  for (int32_t j = at; j < end && sem >= 0; j++) {
    const TileMirInst *in = &m->insts[j];
    if (in->op == TILE_MIR_LOOP_BEGIN) depth++;
    else if (in->op == TILE_MIR_LOOP_END) depth--;
    else if (in->op == TILE_MOP_WAIT && depth == 0 && in->c == sem) last = j + 1;
  }
  return last;
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
    if (!mm_window(&pf->g[b.to])) at = after_loads(m, at, starts[b.to + 1].first_inst);
    else at = after_parts(m, at, starts[b.to + 1].first_inst, pf->g[b.to].sem);
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
    /* a wait per copy after the last collective, naming what the copy writes (but for
     * the last `inner`, which the group waits for itself) */
    int32_t from = m->ninsts, waits = 0;
    int64_t outer = tile_lower_prefetch_dma_count(m, at, at + n) - b.inner;
    for (int32_t j = at; j < at + n && waits < outer; j++) {
      const TileMirInst *dma = &m->insts[j];
      if (dma->op != TILE_MOP_DMA) continue;
      TileMirInst w = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, pf->g[b.from].sem, 1);
      tile_mir_mem(&w, dma->mem[2].buf, TILE_MIR_WRITE, 0);
      int32_t k = tile_mir_add(m, w);
      m->insts[k].src = m->insts[j].src; /* the matmul's */
      waits++;
    }
    if (!tile_mir_move_insts(m, starts[b.until + 1].first_inst, from, m->ninsts)) return false;
    for (int32_t g = b.until + 1; g < nstarts; g++) starts[g].first_inst += waits;
    added += waits;
  }
  return true;
}
