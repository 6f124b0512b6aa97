/* tile_mir_regalloc: machine registers for the virtual registers of scheduled code.
 *
 * Needs: code from tile_mir_schedule (bundles, `loop` ops in the branch word, ends in
 * `halt`) whose register fields hold virtual registers of m. Guarantees: every register
 * field holds a machine register below the target's sregs/vregs, and running the code
 * gives no register hazard that the virtual-register schedule did not have: two values
 * share a machine register only when the phases they occupy (regalloc_internal.h) do
 * not meet.
 *
 * Method: each web (writes and the reads they reach) becomes a register of its own, and
 * its live range is the exact set of phases it occupies, with holes (ra_live.c): in a
 * software-pipelined loop, whose prologue, kernel and epilogue hold copies of one
 * iteration's ops, a value occupies only the few bundles between each write and its
 * reads, and a value read across the back edge only the end and the start of the body.
 * Linear scan over the ranges in order of their start, per register file, with holes
 * (O. Traub, G. Holloway, M. D. Smith, "Quality and Speed in Linear-scan Register
 * Allocation", PLDI 1998; C. Wimmer, H. Mossenboeck, "Optimized Interval Splitting in a
 * Linear Scan Register Allocator", VEE 2005): a range may take a machine register whose
 * holders' ranges it does not meet, so short ranges fill the holes of long ones. When no
 * machine register is free, the cheapest of the newcomer and, per machine register, the
 * holders it meets is spilled (cost per phase freed, uses weighted by 8 per loop level,
 * constants at half cost since a read recomputes them), the code is rewritten (spill.c)
 * and allocation starts over. Spill temporaries are never spilled, so rounds end; when
 * only they remain the program needs more registers at one point than the machine has,
 * and that is reported. Everything is in a fixed order, so the result is deterministic;
 * ra_check.c then proves the assignment along every path. */
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "regalloc_internal.h"

/* ---- linear scan over live ranges with holes ---- */

/* A register holding one machine register whose range may still meet a later one:
 * its first segment not yet behind the scan, its last segment + 1 and where its range
 * ends, kept here so the scan, which asks the holders of the free machine registers
 * when each is next busy (and those of every one when it must spill), reads one small
 * array instead of the ranges. */
typedef struct Holder {
  int32_t reg, cur, segend, end;
} Holder;

typedef struct Holders {
  Holder *a;
  int32_t n, cap;
  int32_t min_end; /* the least end among the holders (INT32_MAX: none) */
} Holders;

typedef struct Scan {
  const RaCode *rc;
  const RaLive *lv;
  const RaSpill *sp;
  int32_t *phys;  /* per virtual register: machine register, -1 none */
  uint8_t *spill; /* per virtual register: chosen for spilling this round */
  int32_t nspill;
  Holders h[64];
  uint64_t held; /* bit x: machine register x has holders */
  /* Per phase, bit x set while a holder of machine register x occupies it. Whether a
   * range is free to take x is one OR over its own phases instead of a walk over every
   * holder's segments; a machine register's holders never overlap, so marking all the
   * ranges that get one costs at most the machine registers times the phases. */
  uint64_t *busy;
} Scan;

static int32_t range_end(const RaLive *lv, int32_t r) { return lv->seg[lv->off[r + 1] - 1].hi; }

/* What spilling r costs: its uses, weighted per loop level. A constant is recomputed
 * instead of stored and loaded: half the cost. */
static double spill_cost(const RaLive *lv, int32_t r) {
  return lv->weight[r] * (lv->remat[r] ? 0.5 : 1.0);
}

/* Spill cost per phase of range freed; lower is a better victim. */
static double spill_score(const Scan *s, int32_t r) {
  return spill_cost(s->lv, r) / (double)s->lv->len[r];
}

/* Where register r's range (segments a .. ae) first meets holder h's at or after
 * segment *cur of h (which moves past segments ending before r starts: later registers
 * start no earlier), or -1 when they never meet. */
static int32_t meet(const RaLive *lv, const RaSeg *a, const RaSeg *ae, const Holder *h,
                    int32_t *cur) {
  const RaSeg *b = lv->seg + *cur, *be = lv->seg + h->segend;
  while (b < be && b->hi < a->lo) b++;
  *cur = (int32_t)(b - lv->seg);
  while (a < ae && b < be) {
    if (a->hi < b->lo)
      a++;
    else if (b->hi < a->lo)
      b++;
    else
      return a->lo > b->lo ? a->lo : b->lo;
  }
  return -1;
}

/* The first phase after `end` where holder h is busy (INT32_MAX: none); moves h->cur
 * past segments that end before `start`, where no later range reaches. */
static int32_t busy_after(const RaLive *lv, Holder *h, int32_t start, int32_t end) {
  while (h->cur < h->segend && lv->seg[h->cur].hi < start) h->cur++;
  for (int32_t i = h->cur; i < h->segend; i++)
    if (lv->seg[i].hi > end) return lv->seg[i].lo > end ? lv->seg[i].lo : end + 1;
  return INT32_MAX;
}

/* Sets (on) or clears bit x over the phases of register r's range. */
static void mark(Scan *s, int32_t r, int32_t x, bool on) {
  const RaLive *lv = s->lv;
  uint64_t set = on ? 1ull << x : 0, keep = on ? ~0ull : ~(1ull << x);
  for (int32_t i = lv->off[r]; i < lv->off[r + 1]; i++) {
    uint64_t *busy = s->busy + lv->seg[i].lo;
    size_t n = (size_t)(lv->seg[i].hi - lv->seg[i].lo) + 1;
    for (size_t p = 0; p < n; p++) busy[p] = (busy[p] & keep) | set;
  }
}

/* The machine registers a holder of which occupies a phase of r's range. */
static uint64_t taken(const Scan *s, int32_t r) {
  const RaLive *lv = s->lv;
  uint64_t m = 0;
  for (int32_t i = lv->off[r]; i < lv->off[r + 1]; i++) {
    const uint64_t *busy = s->busy + lv->seg[i].lo;
    size_t n = (size_t)(lv->seg[i].hi - lv->seg[i].lo) + 1;
    for (size_t p = 0; p < n; p++) m |= busy[p];
  }
  return m;
}

static void hold(const RaLive *lv, Holders *h, int32_t r) {
  if (h->n == h->cap) {
    h->cap = h->cap ? 2 * h->cap : 8;
    h->a = ra_realloc(h->a, (size_t)h->cap * sizeof *h->a);
  }
  Holder x = {r, lv->off[r], lv->off[r + 1], range_end(lv, r)};
  h->a[h->n++] = x;
  if (x.end < h->min_end) h->min_end = x.end;
}

/* Drops the holders of machine register x whose ranges end before phase start. */
static void expire(Holders *h, int32_t start) {
  if (h->min_end >= start) return; /* none does */
  int32_t k = 0;
  h->min_end = INT32_MAX;
  for (int32_t i = 0; i < h->n; i++)
    if (h->a[i].end >= start) {
      h->a[k] = h->a[i];
      if (h->a[k].end < h->min_end) h->min_end = h->a[k].end;
      k++;
    }
  h->n = k;
}

/* Where the range of r starts, for messages: the inst that first names r. */
static const TileMirInst *first_ref(const RaCode *rc, int32_t r, int32_t *bundle) {
  for (int32_t p = 0; p < rc->ops_n; p++)
    for (int32_t i = rc->ops_off[p]; i < rc->ops_off[p + 1]; i++) {
      const RaOp *o = &rc->ops[i];
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, o->op, &ro);
      for (int j = 0; j < k; j++)
        if (ra_op_field_get(o, ro[j].field) == r) {
          *bundle = p;
          return &rc->code->b[p].slot[o->w];
        }
    }
  *bundle = -1;
  return NULL;
}

static bool no_room(const Scan *s, int32_t r, uint8_t cls, int32_t nphys) {
  const TileMir *m = s->rc->m;
  int32_t p;
  const TileMirInst *at = first_ref(s->rc, r, &p);
  const char *file = cls == TILE_MIR_VREG ? "vector" : "scalar";
  return tile_error(s->rc->d, at ? tile_mir_src_loc(m, at) : (TileLoc){0},
                    "register allocation: at bundle %d (%s) more than %d %s values are live at "
                    "once, the %s registers of target %s, and every one of them is already a "
                    "spill temporary or the spill address; the schedule keeps too many values "
                    "in flight to run on this machine",
                    (int)p, at ? mir_src_name(m, at) : "?", (int)nphys, file, file, m->target->name);
}

/* No machine register is free for r: spill r, or the holders of the machine register
 * that meet r whose spilling costs least per phase freed, whichever is cheaper. Returns
 * the machine register r gets, -1 when r itself is spilled, -2 when nothing can be. */
static int32_t make_room(Scan *s, int32_t r, int32_t nphys) {
  const RaLive *lv = s->lv;
  const RaSeg *a = lv->seg + lv->off[r], *ae = lv->seg + lv->off[r + 1];
  int32_t best_x = -1;
  double best = s->sp->no_spill[r] ? 0 : spill_score(s, r);
  bool self = !s->sp->no_spill[r];
  for (int32_t x = 0; x < nphys; x++) {
    Holders *h = &s->h[x];
    double w = 0, len = 0;
    bool ok = true;
    for (int32_t i = 0; i < h->n && ok; i++) {
      int32_t cur = h->a[i].cur, reg = h->a[i].reg;
      if (meet(lv, a, ae, &h->a[i], &cur) < 0) continue;
      if (s->sp->no_spill[reg]) ok = false;
      w += spill_cost(lv, reg);
      len += (double)lv->len[reg];
    }
    if (!ok) continue;
    double score = w / len;
    if ((!self && best_x < 0) || score < best) {
      best = score;
      best_x = x;
    }
  }
  if (best_x < 0) {
    if (!self) return -2;
    s->spill[r] = 1;
    s->nspill++;
    return -1;
  }
  Holders *h = &s->h[best_x];
  int32_t k = 0;
  h->min_end = INT32_MAX;
  for (int32_t i = 0; i < h->n; i++) {
    int32_t cur = h->a[i].cur, reg = h->a[i].reg;
    if (meet(lv, a, ae, &h->a[i], &cur) >= 0) {
      s->spill[reg] = 1;
      s->phys[reg] = -1;
      s->nspill++;
      mark(s, reg, best_x, false);
    } else {
      h->a[k] = h->a[i];
      if (h->a[k].end < h->min_end) h->min_end = h->a[k].end;
      k++;
    }
  }
  h->n = k;
  return best_x;
}

/* Registers of class cls in order of where their ranges start (ties by number); each
 * takes the free machine register (no holder's range meets its own) that is next busy
 * soonest after its range ends, so ranges with holes fill each other's holes and
 * machine registers that stay free longest are left to the ranges that need them. */
static bool scan_class(Scan *s, uint8_t cls) {
  const TileMir *m = s->rc->m;
  const RaLive *lv = s->lv;
  int32_t nphys = cls == TILE_MIR_VREG ? m->target->nvregs : m->target->nsregs;
  if (nphys > 64) nphys = 64; /* the encoding's 6-bit register fields */
  /* the order: a counting sort by start, registers in increasing number within one */
  int32_t max_start = 0, max_end = 0, nk = 0;
  for (int32_t r = 0; r < lv->nregs; r++)
    if (m->reg_class[r] == cls && lv->off[r + 1] > lv->off[r]) {
      if (lv->seg[lv->off[r]].lo > max_start) max_start = lv->seg[lv->off[r]].lo;
      if (range_end(lv, r) > max_end) max_end = range_end(lv, r);
    }
  int32_t *at = ra_calloc((size_t)max_start + 2, sizeof *at);
  for (int32_t r = 0; r < lv->nregs; r++)
    if (m->reg_class[r] == cls && lv->off[r + 1] > lv->off[r]) {
      at[lv->seg[lv->off[r]].lo + 1]++;
      nk++;
    }
  for (int32_t p = 0; p <= max_start; p++) at[p + 1] += at[p];
  int32_t *order = ra_calloc((size_t)nk + 1, sizeof *order);
  for (int32_t r = 0; r < lv->nregs; r++)
    if (m->reg_class[r] == cls && lv->off[r + 1] > lv->off[r]) order[at[lv->seg[lv->off[r]].lo]++] = r;
  free(at);
  for (int x = 0; x < 64; x++) {
    s->h[x].n = 0;
    s->h[x].min_end = INT32_MAX;
  }
  s->held = 0;
  s->busy = ra_calloc((size_t)max_end + 1, sizeof *s->busy);
  bool ok = true;
  for (int32_t i = 0; i < nk && ok; i++) {
    int32_t r = order[i], start = lv->seg[lv->off[r]].lo, end = range_end(lv, r);
    int32_t pick = -1, pick_busy = -1;
    /* The free machine registers: held ones no holder of which occupies a phase of r's
     * range, and those without holders. The latter are never busy again, so of them only
     * the lowest can win (ties go to the lowest number): asking the free held ones and
     * that one, in increasing order, picks what asking every register would. */
    uint64_t all = nphys == 64 ? ~0ull : (1ull << nphys) - 1;
    uint64_t empty = all & ~s->held;
    for (uint64_t ask = (s->held & ~taken(s, r)) | (empty & -empty); ask; ask &= ask - 1) {
      int32_t x = __builtin_ctzll(ask);
      Holders *h = &s->h[x];
      expire(h, start);
      if (h->n == 0) s->held &= ~(1ull << x);
      int32_t busy = INT32_MAX;
      for (int32_t j = 0; j < h->n; j++) {
        int32_t b = busy_after(lv, &h->a[j], start, end);
        if (b < busy) busy = b;
      }
      if (pick < 0 || busy < pick_busy) {
        pick = x;
        pick_busy = busy;
      }
    }
    if (pick < 0) pick = make_room(s, r, nphys);
    if (pick == -2) ok = no_room(s, r, cls, nphys);
    if (pick < 0) continue;
    s->phys[r] = pick;
    hold(lv, &s->h[pick], r);
    s->held |= 1ull << pick;
    mark(s, r, pick, true);
  }
  free(order);
  free(s->busy);
  s->busy = NULL;
  return ok;
}

/* ---- the pass ---- */

void ra_ops_free(RaCode *rc) {
  free(rc->ops_off);
  free(rc->ops);
  rc->ops_off = NULL;
  rc->ops = NULL;
  rc->ops_n = 0;
}

void ra_ops_flush(RaCode *rc) {
  for (int32_t p = 0; p < rc->ops_n; p++)
    for (int32_t i = rc->ops_off[p]; i < rc->ops_off[p + 1]; i++) {
      const RaOp *o = &rc->ops[i];
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, o->op, &ro);
      TileMirInst *x = &rc->code->b[p].slot[o->w];
      for (int j = 0; j < k; j++) *mir_field(x, ro[j].field) = ra_op_field_get(o, ro[j].field);
    }
}

void ra_ops_build(RaCode *rc) {
  const TileMirCode *c = rc->code;
  int32_t n = c->nbundles, count = 0, cap = n + 64;
  ra_ops_free(rc);
  rc->ops_n = n;
  rc->ops_off = ra_calloc((size_t)n + 1, sizeof *rc->ops_off);
  rc->ops = ra_realloc(NULL, (size_t)cap * sizeof *rc->ops); /* filled as listed */
  for (int32_t p = 0; p < n; p++) {
    rc->ops_off[p] = count;
    if (count + TILE_BUNDLE_SLOTS > cap) {
      cap *= 2;
      rc->ops = ra_realloc(rc->ops, (size_t)cap * sizeof *rc->ops);
    }
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *x = &c->b[p].slot[w];
      if (x->op == TILE_MOP_NOP) continue;
      rc->ops[count++] = (RaOp){.op = x->op, .w = (uint8_t)w, .d = x->d, .a = x->a, .b = x->b,
                                .c = x->c, .imm = x->imm, .imm_buf = x->imm_buf};
    }
  }
  rc->ops_off[n] = count;
}

/* The code's register fields must name virtual registers of the right class. Lists the
 * ops (rc->ops_*) on the way: the one walk over every slot word. */
static bool check_code(RaCode *rc, const TileMir *m, const TileMirCode *c, TileDiag *d) {
  ra_ops_build(rc);
  for (int32_t p = 0; p < c->nbundles; p++)
    for (int32_t i = rc->ops_off[p]; i < rc->ops_off[p + 1]; i++) {
      const RaOp *o = &rc->ops[i];
      const TileMirInst *x = &c->b[p].slot[o->w]; /* for messages */
      if (!mir_is_isa_op(o->op))
        return tile_error(d, tile_mir_src_loc(m, x),
                          "register allocation: bundle %d holds %s, which is not a machine op",
                          (int)p, mir_op_name(o->op));
      if (tile_slot_of_word(o->w) != tile_mop_info[o->op].slot)
        return tile_error(d, tile_mir_src_loc(m, x),
                          "register allocation: bundle %d has %s in word %d, a %s slot", (int)p,
                          mir_op_name(o->op), o->w, tile_slot_name(tile_slot_of_word(o->w)));
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, o->op, &ro);
      for (int j = 0; j < k; j++) {
        int32_t r = ra_op_field_get(o, ro[j].field);
        if (r < 0 || r >= m->nregs || m->reg_class[r] != ro[j].cls)
          return tile_error(d, tile_mir_src_loc(m, x),
                            "register allocation: %s in bundle %d names register %d in field "
                            "%c, which is not a %s virtual register",
                            mir_op_name(o->op), (int)p, (int)r, ro[j].field,
                            ro[j].cls == TILE_MIR_SREG ? "scalar" : "vector");
      }
    }
  return true;
}

static bool check_loop_lengths(const RaCode *rc) {
  for (int32_t l = 0; l < rc->nloops; l++) {
    int32_t len = rc->loops[l].last - rc->loops[l].first + 1;
    if (len > RA_MAX_LOOP_BODY)
      return tile_error(rc->d, (TileLoc){0},
                        "register allocation: spill code makes the loop at bundle %d %d bundles "
                        "long, more than the %d a `loop` op can hold; the loop keeps more "
                        "values live than target %s has registers",
                        (int)(rc->loops[l].first - 1), (int)len, RA_MAX_LOOP_BODY,
                        rc->m->target->name);
  }
  return true;
}

bool tile_mir_regalloc(TileMir *m, TileMirCode *code, TileDiag *d) {
  if (code->allocated)
    return tile_error(d, (TileLoc){0},
                      "internal error: register allocation ran twice on the same code");
  RaCode rc = {.m = m, .code = code, .d = d};
  mir_reg_table_init(&rc.regs);
  if (!check_code(&rc, m, code, d)) {
    ra_ops_free(&rc);
    return false;
  }
  RaSpill sp = {.addr_reg = -1, .sbuf = -1};
  bool ok = ra_loops_build(&rc), synced = true; /* rc.ops describe the code */
  int32_t *phys = NULL;
  while (ok) {
    ra_spill_grow(&sp, m);
    RaLive lv;
    ra_live_build(&rc, &sp, &lv);
    free(phys);
    phys = ra_calloc((size_t)m->nregs + 1, sizeof *phys);
    uint8_t *spill = ra_calloc((size_t)m->nregs + 1, 1);
    for (int32_t r = 0; r < m->nregs; r++) phys[r] = -1;
    Scan s = {.rc = &rc, .lv = &lv, .sp = &sp, .phys = phys, .spill = spill};
    ok = scan_class(&s, TILE_MIR_SREG) && scan_class(&s, TILE_MIR_VREG);
    for (int x = 0; x < 64; x++) free(s.h[x].a);
    if (ok && s.nspill > 0) {
      ra_ops_flush(&rc);
      ok = ra_spill_round(&rc, &sp, &lv, spill);
      ok = ok && check_loop_lengths(&rc);
      if (ok) ra_ops_build(&rc); /* the code is new */
      synced = ok;
    }
    ra_live_free(&lv);
    free(spill);
    if (!ok || s.nspill == 0) break;
  }
  ok = ok && ra_check_assignment(&rc, phys);
  code->allocated = ok;
  if (!ok && synced) ra_ops_flush(&rc); /* the renamed webs, as a failed allocation leaves them */
  if (ok)
    for (int32_t p = 0; p < code->nbundles; p++)
      for (int32_t i = rc.ops_off[p]; i < rc.ops_off[p + 1]; i++) {
        const RaOp *o = &rc.ops[i];
        const MirRegOperand *ro;
        int k = mir_regs_of(&rc.regs, o->op, &ro);
        TileMirInst *x = &code->b[p].slot[o->w];
        for (int j = 0; j < k; j++) *mir_field(x, ro[j].field) = phys[ra_op_field_get(o, ro[j].field)];
      }
  free(phys);
  free(sp.slot);
  free(sp.no_spill);
  ra_ops_free(&rc);
  ra_code_free(&rc);
  return ok;
}
