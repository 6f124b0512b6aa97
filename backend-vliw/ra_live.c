/* Live ranges with holes for register allocation: webs, liveness per bundle, write
 * flights.
 *
 * Needs: scheduled code whose register fields hold virtual registers, and its loop
 * structure (ra_loops_build). Guarantees: every register of the code is one web (each
 * read is reached only by writes of its own register, and every write reaching a read
 * of a register is a write of that register), and lv holds, per register, the exact
 * phases its value occupies (regalloc_internal.h), with rc->live_def marking the writes
 * some read needs.
 *
 * Control flow: a bundle falls through to the next unless it halts, and the last bundle
 * of a loop body also goes back to the body's first. The code splits into basic blocks
 * at bundle 0, at each body's first bundle, after each body's last bundle and after a
 * halt; only block ends branch, only block starts join.
 *
 * Method: one list of register occurrences (reads before writes within a bundle) per
 * register; per register, the blocks it is live into, propagated backward from the
 * blocks that read it before writing it through predecessors that do not write it.
 * Then one forward pass per register through its occurrences: within a block each read
 * belongs to the latest write before it, or to the value live into the block, which is
 * one union-find set with the values leaving every predecessor block (the reaching
 * definitions). The same pass gives the live segments: from a write (or the block
 * start) to the last read before the next write (or the block end when live out).
 * A write's flight, from its issue to its landing, follows the control flow forward
 * (into the next iteration and out of the loop). The sets are webs; the first web of a
 * register keeps it, the others get fresh registers. Cost: linear in the occurrences,
 * the segments and the live-in pairs (times a logarithm where a pass looks one up);
 * nothing per bundle and register, nor per block and register (whole kernels of 40k
 * bundles take about 15 ms, all of register allocation). */
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "regalloc_internal.h"

/* One register operand of one op. */
typedef struct Occ {
  int32_t p;     /* bundle */
  int32_t op_at; /* the op, in rc->ops */
  int32_t id;    /* union-find element: a write's own id; a read: the value it reads */
  uint16_t op;   /* its op number and slot word (from rc->ops[op_at], kept here: the */
  uint8_t w;     /* passes by register would otherwise fetch them from all over) */
  char field;    /* operand field */
  bool write;
} Occ;

typedef struct Seg3 {
  int32_t id, lo, hi;
} Seg3;

typedef struct Live {
  RaCode *rc;
  int32_t n;                /* bundles */
  uint8_t *falls;           /* bundle p falls through to p + 1 */
  int32_t *loop_off, *loop_first; /* per bundle p: firsts of the loops whose body ends at p */
  int32_t *next_fork;       /* per bundle: the first bundle at or after it that branches */
  /* blocks */
  int32_t nblocks;
  int32_t *blk;             /* per bundle: its block */
  int32_t *bstart, *bend;
  int32_t *succ_off, *succ; /* per block: successor blocks */
  int32_t *lin_off, *lin;   /* per register: the blocks it is live into, in order */
  /* occurrences, per register */
  int32_t nregs;
  int32_t *occ_off;
  Occ *occ;
  int32_t nocc, nids;
  int32_t *parent;          /* union-find over ids */
  /* segments (id, lo, hi) before webs are known */
  Seg3 *segs;
  int32_t nsegs, cap_segs;
  /* flight walks: per bundle, the least distance a walk of the current write entered */
  int32_t *walk_stamp, *walk_dist;
} Live;


static int32_t find(int32_t *parent, int32_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

/* Joins two sets; the smaller id becomes the root so results do not depend on order. */
static void unite(int32_t *parent, int32_t a, int32_t b) {
  a = find(parent, a);
  b = find(parent, b);
  if (a == b) return;
  if (a < b)
    parent[b] = a;
  else
    parent[a] = b;
}

static void add_seg(Live *L, int32_t id, int32_t lo, int32_t hi) {
  if (L->nsegs == L->cap_segs) {
    L->cap_segs = L->cap_segs ? 2 * L->cap_segs : 1024;
    L->segs = ra_realloc(L->segs, (size_t)L->cap_segs * sizeof *L->segs);
  }
  L->segs[L->nsegs++] = (Seg3){id, lo, hi};
}

/* ---- control flow ---- */

static void cfg_build(Live *L) {
  const RaCode *rc = L->rc;
  int32_t n = L->n;
  L->falls = ra_calloc((size_t)n + 1, 1);
  for (int32_t p = 0; p + 1 < n; p++) L->falls[p] = 1;
  const int bw = ra_branch_word();
  for (int32_t p = 0; p + 1 < n; p++)
    for (int32_t i = rc->ops_off[p]; i < rc->ops_off[p + 1]; i++)
      if (rc->ops[i].w == bw && rc->ops[i].op == TILE_MOP_HALT) L->falls[p] = 0;
  L->loop_off = ra_calloc((size_t)n + 2, sizeof *L->loop_off);
  L->loop_first = ra_calloc((size_t)rc->nloops + 1, sizeof *L->loop_first);
  for (int32_t l = 0; l < rc->nloops; l++) L->loop_off[rc->loops[l].last + 1]++;
  for (int32_t p = 0; p < n; p++) L->loop_off[p + 1] += L->loop_off[p];
  int32_t *fill = ra_calloc((size_t)n + 1, sizeof *fill);
  for (int32_t l = 0; l < rc->nloops; l++) {
    int32_t p = rc->loops[l].last;
    L->loop_first[L->loop_off[p] + fill[p]++] = rc->loops[l].first;
  }
  free(fill);
  L->next_fork = ra_calloc((size_t)n + 1, sizeof *L->next_fork);
  for (int32_t p = n - 1; p >= 0; p--) {
    bool fork = !L->falls[p] || L->loop_off[p + 1] > L->loop_off[p];
    L->next_fork[p] = fork ? p : L->next_fork[p + 1];
  }
  /* Blocks. */
  uint8_t *head = ra_calloc((size_t)n + 1, 1);
  head[0] = 1;
  for (int32_t l = 0; l < rc->nloops; l++) {
    head[rc->loops[l].first] = 1;
    head[rc->loops[l].last + 1] = 1;
  }
  for (int32_t p = 0; p + 1 < n; p++)
    if (!L->falls[p]) head[p + 1] = 1;
  L->blk = ra_calloc((size_t)n + 1, sizeof *L->blk);
  int32_t nb = 0;
  for (int32_t p = 0; p < n; p++) nb += head[p];
  L->nblocks = nb;
  L->bstart = ra_calloc((size_t)nb + 1, sizeof *L->bstart);
  L->bend = ra_calloc((size_t)nb + 1, sizeof *L->bend);
  for (int32_t p = 0, b = -1; p < n; p++) {
    if (head[p]) L->bstart[++b] = p;
    L->blk[p] = b;
    L->bend[b] = p;
  }
  free(head);
  L->succ_off = ra_calloc((size_t)nb + 2, sizeof *L->succ_off);
  for (int pass = 0; pass < 2; pass++) {
    for (int32_t b = 0; b < nb; b++) {
      int32_t e = L->bend[b], k = 0;
      int32_t *to = pass ? L->succ + L->succ_off[b] : NULL;
      if (L->falls[e]) {
        if (to) to[k] = L->blk[e + 1];
        k++;
      }
      for (int32_t i = L->loop_off[e]; i < L->loop_off[e + 1]; i++) {
        if (to) to[k] = L->blk[L->loop_first[i]];
        k++;
      }
      if (!pass) L->succ_off[b + 1] = k;
    }
    if (!pass) {
      for (int32_t b = 0; b < nb; b++) L->succ_off[b + 1] += L->succ_off[b];
      L->succ = ra_realloc(NULL, ((size_t)L->succ_off[nb] + 1) * sizeof *L->succ);
    }
  }
}

/* ---- occurrences ---- */

static void occ_build(Live *L) {
  RaCode *rc = L->rc;
  int32_t nregs = L->nregs;
  L->occ_off = ra_calloc((size_t)nregs + 2, sizeof *L->occ_off);
  for (int32_t i = 0; i < rc->ops_off[L->n]; i++) {
    const RaOp *o = &rc->ops[i];
    const MirRegOperand *ro;
    int k = mir_regs_of(&rc->regs, o->op, &ro);
    for (int j = 0; j < k; j++) L->occ_off[ra_op_field_get(o, ro[j].field) + 1]++;
  }
  for (int32_t r = 0; r < nregs; r++) L->occ_off[r + 1] += L->occ_off[r];
  L->nocc = L->occ_off[nregs];
  L->occ = ra_realloc(NULL, ((size_t)L->nocc + 1) * sizeof *L->occ); /* all written below */
  int32_t *fill = ra_calloc((size_t)nregs + 1, sizeof *fill);
  /* The writes of one bundle, listed after all its reads (reads happen first). */
  struct {
    int32_t r, i;
    char field;
  } wr[TILE_BUNDLE_SLOTS * TILE_MAX_OPERANDS];
  for (int32_t p = 0; p < L->n; p++) {
    int nwr = 0;
    for (int32_t i = rc->ops_off[p]; i < rc->ops_off[p + 1]; i++) {
      const RaOp *o = &rc->ops[i];
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, o->op, &ro);
      for (int j = 0; j < k; j++) {
        int32_t r = ra_op_field_get(o, ro[j].field);
        if (ro[j].write) {
          wr[nwr].r = r;
          wr[nwr].i = i;
          wr[nwr++].field = ro[j].field;
          continue;
        }
        int32_t x = L->occ_off[r] + fill[r]++;
        L->occ[x] = (Occ){.p = p, .op_at = i, .id = x, .op = o->op, .w = o->w,
                          .field = ro[j].field, .write = false};
      }
    }
    for (int j = 0; j < nwr; j++) {
      const RaOp *o = &rc->ops[wr[j].i];
      int32_t x = L->occ_off[wr[j].r] + fill[wr[j].r]++;
      L->occ[x] = (Occ){.p = p, .op_at = wr[j].i, .id = x, .op = o->op, .w = o->w,
                        .field = wr[j].field, .write = true};
    }
  }
  free(fill);
}

/* ---- liveness between blocks ---- */

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Per register, the blocks it is live into, by backward propagation from the blocks
 * that read it before writing it, through predecessors that do not write it. This is
 * the least fixpoint of the usual dataflow, found in time linear in the live-in pairs
 * (a program of thousands of blocks and a hundred thousand registers would need
 * gigabytes of bit sets, nearly all zero, swept until nothing changes). */
static void block_liveness(Live *L) {
  int32_t nb = L->nblocks;
  /* predecessors, from the successor lists */
  int32_t *pred_off = ra_calloc((size_t)nb + 2, sizeof *pred_off);
  for (int32_t e = 0; e < L->succ_off[nb]; e++) pred_off[L->succ[e] + 1]++;
  for (int32_t b = 0; b < nb; b++) pred_off[b + 1] += pred_off[b];
  int32_t *pred = ra_realloc(NULL, ((size_t)pred_off[nb] + 1) * sizeof *pred);
  int32_t *fill = ra_calloc((size_t)nb + 1, sizeof *fill);
  for (int32_t b = 0; b < nb; b++)
    for (int32_t e = L->succ_off[b]; e < L->succ_off[b + 1]; e++)
      pred[pred_off[L->succ[e]] + fill[L->succ[e]]++] = b;
  free(fill);

  /* per block: the last register found writing it, or live into it */
  int32_t *writes = ra_realloc(NULL, ((size_t)nb + 1) * sizeof *writes);
  int32_t *live = ra_realloc(NULL, ((size_t)nb + 1) * sizeof *live);
  int32_t *work = ra_realloc(NULL, ((size_t)nb + 1) * sizeof *work);
  for (int32_t b = 0; b < nb; b++) writes[b] = live[b] = -1;
  L->lin_off = ra_calloc((size_t)L->nregs + 2, sizeof *L->lin_off);
  int32_t len = 0, cap = 1024;
  L->lin = ra_realloc(NULL, (size_t)cap * sizeof *L->lin);
  for (int32_t r = 0; r < L->nregs; r++) {
    int32_t o0 = L->occ_off[r], o1 = L->occ_off[r + 1], nwork = 0;
    L->lin_off[r] = len;
    for (int32_t o = o0; o < o1; o++)
      if (L->occ[o].write) writes[L->blk[L->occ[o].p]] = r;
    /* blocks whose first occurrence of r is a read (reads come before writes within a
     * bundle) */
    for (int32_t o = o0, cur = -1; o < o1; o++) {
      int32_t b = L->blk[L->occ[o].p];
      if (b == cur) continue;
      cur = b;
      if (!L->occ[o].write && live[b] != r) live[b] = r, work[nwork++] = b;
    }
    while (nwork > 0) {
      int32_t b = work[--nwork];
      if (len == cap) L->lin = ra_realloc(L->lin, (size_t)(cap *= 2) * sizeof *L->lin);
      L->lin[len++] = b;
      for (int32_t e = pred_off[b]; e < pred_off[b + 1]; e++) {
        int32_t q = pred[e];
        if (live[q] != r && writes[q] != r) live[q] = r, work[nwork++] = q;
      }
    }
    /* in block order, as register_pass walks them */
    qsort(L->lin + L->lin_off[r], (size_t)(len - L->lin_off[r]), sizeof *L->lin, cmp_i32);
  }
  L->lin_off[L->nregs] = len;
  L->nids = L->nocc + len;
  free(writes);
  free(live);
  free(work);
  free(pred_off);
  free(pred);
}

/* The id of register r's value live into block b, or -1 where it is not live in: the
 * ids of the values live into blocks follow the occurrence ids, in the order of lin. */
static int32_t ent_id(const Live *L, int32_t b, int32_t r) {
  int32_t lo = L->lin_off[r], hi = L->lin_off[r + 1];
  while (lo < hi) {
    int32_t mid = lo + (hi - lo) / 2;
    if (L->lin[mid] < b)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < L->lin_off[r + 1] && L->lin[lo] == b ? L->nocc + lo : -1;
}

/* ---- segments ---- */

/* The flight of a write: bundles entered at distance k .. from the write's bundle. */
static void flight_walk(Live *L, int32_t id, int32_t q, int32_t k, int32_t lat) {
  for (;;) {
    if (L->walk_stamp[q] == id && L->walk_dist[q] <= k) return;
    L->walk_stamp[q] = id;
    L->walk_dist[q] = k;
    int32_t e = L->next_fork[q];
    if (e - q > lat - k) e = q + (lat - k);
    int32_t kend = k + (e - q);
    add_seg(L, id, 2 * q, kend < lat ? 2 * e + 1 : 2 * e);
    if (kend >= lat) return;
    /* e branches: back to the first bundles of the loops ending there, or on. */
    for (int32_t i = L->loop_off[e]; i < L->loop_off[e + 1]; i++)
      flight_walk(L, id, L->loop_first[i], kend + 1, lat);
    if (!L->falls[e]) return;
    q = e + 1;
    k = kend + 1;
  }
}

static void flight(Live *L, const Occ *o, int32_t lat) {
  add_seg(L, o->id, 2 * o->p + 1, 2 * o->p + 1);
  if (lat < 1) return;
  for (int32_t i = L->loop_off[o->p]; i < L->loop_off[o->p + 1]; i++)
    flight_walk(L, o->id, L->loop_first[i], 1, lat);
  if (L->falls[o->p]) flight_walk(L, o->id, o->p + 1, 1, lat);
}

/* The current segment of one register in one block. */
typedef struct Open {
  int32_t id, lo, hi; /* hi < lo: nothing live yet (a write no read needs so far) */
  int32_t def;        /* the occurrence of the write that starts it, or -1 */
} Open;

static void close_seg(Live *L, Open *s) {
  if (s->id < 0 || s->hi < s->lo) return;
  add_seg(L, s->id, s->lo, s->hi);
  if (s->def >= 0)
    L->rc->live_def[L->occ[s->def].p] |= (uint16_t)(1u << L->occ[s->def].w);
}

/* Finishes register r in block b: the segment open at the end, and the value leaving
 * the block joins the values live into its successors. */
static void block_end(Live *L, int32_t r, int32_t b, Open *s) {
  if (s->id >= 0)
    for (int32_t e = L->succ_off[b]; e < L->succ_off[b + 1]; e++) {
      int32_t in = ent_id(L, L->succ[e], r);
      if (in < 0) continue;
      s->hi = 2 * L->bend[b] + 1; /* live out */
      unite(L->parent, s->id, in);
    }
  close_seg(L, s);
}

/* Register r block by block: the blocks it is live into or names, in order. */
static void register_pass(Live *L, int32_t r) {
  const TileTarget *t = L->rc->m->target;
  int32_t o = L->occ_off[r], oend = L->occ_off[r + 1];
  int32_t li = L->lin_off[r], lend = L->lin_off[r + 1];
  while (o < oend || li < lend) {
    int32_t b = o < oend ? L->blk[L->occ[o].p] : INT32_MAX;
    if (li < lend && L->lin[li] < b) b = L->lin[li];
    bool live_in = li < lend && L->lin[li] == b;
    if (live_in) li++;
    Open s = {.id = -1, .def = -1};
    if (live_in) s = (Open){.id = L->nocc + li - 1, .lo = 2 * L->bstart[b],
                            .hi = 2 * L->bstart[b], .def = -1};
    for (; o < oend && L->blk[L->occ[o].p] == b; o++) {
      Occ *x = &L->occ[o];
      if (!x->write) {
        if (s.id < 0) /* read before any write on every path: a value of its own */
          s = (Open){.id = x->id, .lo = 2 * x->p, .hi = 2 * x->p, .def = -1};
        x->id = s.id;
        s.hi = 2 * x->p;
        continue;
      }
      close_seg(L, &s);
      s = (Open){.id = x->id, .lo = 2 * x->p + 1, .hi = 2 * x->p, .def = o};
      flight(L, x, mir_latency(t, x->op));
    }
    block_end(L, r, b, &s);
  }
}

/* ---- webs and the result ---- */

static int loop_depth(const RaCode *rc, int32_t l) {
  int d = 0;
  for (; l >= 0; l = rc->loops[l].parent) d++;
  return d;
}

/* Whether two writes compute the same constant (rematerializable together). */
static bool same_const(const RaOp *a, const RaOp *b) {
  return a->op == b->op && a->imm == b->imm && a->imm_buf == b->imm_buf;
}

static void live_free_scratch(Live *L) {
  free(L->falls);
  free(L->loop_off);
  free(L->loop_first);
  free(L->next_fork);
  free(L->blk);
  free(L->bstart);
  free(L->bend);
  free(L->succ_off);
  free(L->succ);
  free(L->lin_off);
  free(L->lin);
  free(L->occ_off);
  free(L->occ);
  free(L->parent);
  free(L->segs);
  free(L->walk_stamp);
  free(L->walk_dist);
}

void ra_live_build(RaCode *rc, RaSpill *sp, RaLive *lv) {
  TileMir *m = rc->m;
  TileMirCode *c = rc->code;
  Live L = {.rc = rc, .n = c->nbundles, .nregs = m->nregs};
  memset(rc->live_def, 0, (size_t)L.n * sizeof *rc->live_def);
  cfg_build(&L);
  occ_build(&L);
  block_liveness(&L);
  L.parent = ra_realloc(NULL, ((size_t)L.nids + 1) * sizeof *L.parent);
  for (int32_t i = 0; i < L.nids; i++) L.parent[i] = i;
  L.walk_stamp = ra_realloc(NULL, ((size_t)L.n + 1) * sizeof *L.walk_stamp);
  L.walk_dist = ra_realloc(NULL, ((size_t)L.n + 1) * sizeof *L.walk_dist); /* read under its stamp */
  for (int32_t p = 0; p <= L.n; p++) L.walk_stamp[p] = -1;
  for (int32_t r = 0; r < L.nregs; r++) register_pass(&L, r);
  /* Every union makes the smaller id the root and halving keeps parents below their
   * children, so one pass in id order points each id at its root: finds below are one
   * load. */
  for (int32_t i = 0; i < L.nids; i++) L.parent[i] = L.parent[L.parent[i]];

  /* Webs: the first (in code order) keeps its register, the others get new ones. */
  int32_t *reg_of = ra_realloc(NULL, ((size_t)L.nids + 1) * sizeof *reg_of);
  for (int32_t i = 0; i < L.nids; i++) reg_of[i] = -1;
  int32_t nregs0 = m->nregs;
  for (int32_t r = 0; r < nregs0; r++)
    for (int32_t o = L.occ_off[r]; o < L.occ_off[r + 1]; o++) {
      int32_t root = L.parent[L.occ[o].id];
      if (reg_of[root] >= 0) continue;
      if (o == L.occ_off[r]) {
        reg_of[root] = r;
      } else {
        reg_of[root] = m->reg_class[r] == TILE_MIR_VREG ? tile_mir_vreg(m) : tile_mir_sreg(m);
        ra_spill_grow(sp, m);
        sp->no_spill[reg_of[root]] = sp->no_spill[r];
      }
    }
  int32_t nregs = m->nregs;
  lv->nregs = nregs;
  lv->renamed = nregs - nregs0;
  lv->weight = ra_calloc((size_t)nregs + 1, sizeof *lv->weight);
  lv->len = ra_calloc((size_t)nregs + 1, sizeof *lv->len);
  lv->remat = ra_calloc((size_t)nregs + 1, 1);
  /* Rename, weigh, and find the registers whose writes all load one constant. */
  double *loop_weight = ra_calloc((size_t)rc->nloops + 1, sizeof *loop_weight);
  for (int32_t l = 0; l < rc->nloops; l++) {
    loop_weight[l] = 1;
    for (int d = loop_depth(rc, l); d > 0; d--) loop_weight[l] *= 8;
  }
  const RaOp **first_def = ra_calloc((size_t)nregs + 1, sizeof *first_def);
  for (int32_t r = 0; r < nregs; r++) lv->remat[r] = 1;
  for (int32_t r = 0; r < nregs0; r++)
    for (int32_t o = L.occ_off[r]; o < L.occ_off[r + 1]; o++) {
      const Occ *x = &L.occ[o];
      int32_t nr = reg_of[L.parent[x->id]];
      RaOp *in = &rc->ops[x->op_at];
      if (nr != r) *ra_op_field(in, x->field) = nr; /* the code follows: ra_ops_flush */
      lv->weight[nr] += rc->inner[x->p] >= 0 ? loop_weight[rc->inner[x->p]] : 1;
      if (!x->write) continue;
      if (x->op != TILE_MOP_LI && x->op != TILE_MOP_VLI)
        lv->remat[nr] = 0;
      else if (!first_def[nr])
        first_def[nr] = in;
      else if (!same_const(first_def[nr], in))
        lv->remat[nr] = 0;
    }
  for (int32_t r = 0; r < nregs; r++)
    if (!first_def[r]) lv->remat[r] = 0;
  free(first_def);
  free(loop_weight);

  /* Segments per register, sorted and merged: bucket by register, then insertion sort
   * (each register's segments come nearly in order). */
  lv->off = ra_calloc((size_t)nregs + 2, sizeof *lv->off);
  for (int32_t i = 0; i < L.nsegs; i++) {
    L.segs[i].id = reg_of[L.parent[L.segs[i].id]];
    lv->off[L.segs[i].id + 1]++;
  }
  for (int32_t r = 0; r < nregs; r++) lv->off[r + 1] += lv->off[r];
  RaSeg *seg = ra_realloc(NULL, ((size_t)L.nsegs + 1) * sizeof *seg); /* all written below */
  int32_t *fill = ra_calloc((size_t)nregs + 1, sizeof *fill);
  for (int32_t i = 0; i < L.nsegs; i++) {
    int32_t r = L.segs[i].id;
    seg[lv->off[r] + fill[r]++] = (RaSeg){L.segs[i].lo, L.segs[i].hi};
  }
  free(fill);
  int32_t nout = 0;
  for (int32_t r = 0; r < nregs; r++) {
    int32_t a = lv->off[r], e = lv->off[r + 1];
    for (int32_t i = a + 1; i < e; i++) {
      RaSeg v = seg[i];
      int32_t j = i;
      while (j > a && (seg[j - 1].lo > v.lo || (seg[j - 1].lo == v.lo && seg[j - 1].hi > v.hi))) {
        seg[j] = seg[j - 1];
        j--;
      }
      seg[j] = v;
    }
    lv->off[r] = nout;
    for (int32_t i = a; i < e; i++) {
      if (nout > lv->off[r] && seg[i].lo <= seg[nout - 1].hi + 1) {
        if (seg[i].hi > seg[nout - 1].hi) seg[nout - 1].hi = seg[i].hi;
      } else {
        seg[nout++] = seg[i];
      }
    }
    for (int32_t i = lv->off[r]; i < nout; i++) lv->len[r] += seg[i].hi - seg[i].lo + 1;
  }
  lv->off[nregs] = nout;
  lv->seg = seg;
  free(reg_of);
  live_free_scratch(&L);
}

void ra_live_free(RaLive *lv) {
  free(lv->off);
  free(lv->seg);
  free(lv->weight);
  free(lv->len);
  free(lv->remat);
  memset(lv, 0, sizeof *lv);
}
