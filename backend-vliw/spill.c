/* Spill code for register allocation: one pass over the scheduled code moves every
 * register chosen in a round into memory, writing the code anew with the spill ops in
 * free slot words or in added bundles.
 *
 * Why adding bundles is safe: every timing rule the schedule satisfies is a lower bound
 * on the cycles between two ops (latencies, MXU spacing, store landings, DMA
 * completions), and a loop's back edge costs nothing. An empty bundle added anywhere only
 * lengthens the distance between the ops it falls between, so the schedule stays legal;
 * inside a loop the body grows by one bundle (the `loop` op's length follows) and a
 * software-pipelined kernel's initiation interval by one cycle.
 *
 * Vector registers go to VMEM, each to a buffer of one register of its own
 * (spill.vregs.N for virtual register N; vst/vld of the whole register, sublane stride
 * lanes * 4 bytes): the buffer lives only from the register's first spill op to its
 * last, so layout puts one group's spills where other groups' buffers are (one buffer
 * for all spanned the function and kept its bytes from every group: a prefill layer on
 * v5p-like spilled 5.4 MiB beside 272 MiB of buffers live across it). Scalar registers
 * go to an SMEM buffer of one word each (sst/sld). For a spilled register X:
 *   - each write of X goes to a fresh temporary T; once T lands (the write's latency
 *     later, in the same region: a run of bundles directly inside one loop) a store puts
 *     it in X's slot. Stores of X in a region keep the order of its writes, so the slot
 *     ends with the latest value. A write no later read needs gets no store.
 *   - each bundle reading X reads a fresh temporary U loaded from the slot the load
 *     latency before it. The load comes after every store of X earlier in the region
 *     has landed; a store anywhere else has landed once the region has run lat.store - 1
 *     bundles (control enters a region only at its first bundle, at least a cycle after
 *     any bundle elsewhere). A read close to a write of X in the same region reads that
 *     write's temporary directly: reloading would gain nothing.
 * Both address forms use one scalar register R holding lanes * 4, set once in bundle 0:
 * `vld U, R, R, off - R` reads sublane s at slot + s * (lanes * 4), and
 * `sld U, R, off - R` the word at the slot (imm relative to the spill buffer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "regalloc_internal.h"

/* How far past the earliest bundle a store (before the latest bundle a load) may move
 * to use a free slot word rather than a new bundle: each bundle moved keeps the
 * temporary live one bundle longer. */
enum { SPILL_WINDOW = 2 };


/* ---- spill state ---- */

void ra_spill_grow(RaSpill *sp, const TileMir *m) {
  if (m->nregs <= sp->cap) return;
  int32_t cap = sp->cap ? sp->cap : 64;
  while (cap < m->nregs) cap *= 2;
  sp->slot = ra_realloc(sp->slot, (size_t)cap * sizeof *sp->slot);
  sp->no_spill = ra_realloc(sp->no_spill, (size_t)cap);
  for (int32_t r = sp->cap; r < cap; r++) {
    sp->slot[r] = -1;
    sp->no_spill[r] = 0;
  }
  sp->cap = cap;
}

/* A fresh register of class cls that is never spilled itself. */
static int32_t temp_reg(TileMir *m, RaSpill *sp, uint8_t cls) {
  int32_t t = cls == TILE_MIR_VREG ? tile_mir_vreg(m) : tile_mir_sreg(m);
  ra_spill_grow(sp, m);
  sp->no_spill[t] = 1;
  return t;
}

static int64_t vreg_bytes(const TileTarget *t) {
  return (int64_t)t->vreg_sublanes * t->vreg_lanes * 4;
}

static void give_slot(TileMir *m, RaSpill *sp, int32_t r) {
  const TileTarget *t = m->target;
  if (m->reg_class[r] == TILE_MIR_VREG) {
    char name[32];
    snprintf(name, sizeof name, "spill.vregs.%d", (int)r);
    sp->slot[r] = tile_mir_buffer(m, name, TILE_SPACE_VMEM, vreg_bytes(t), 1, 64);
  } else {
    if (sp->sbuf < 0) sp->sbuf = tile_mir_buffer(m, "spill.sregs", TILE_SPACE_SMEM, 0, 1, 4);
    sp->slot[r] = sp->nsslots++;
    m->bufs[sp->sbuf].bytes = (int64_t)sp->nsslots * 4;
  }
}

/* ---- the rewrite ---- */

/* What the pass knows about one spilled register in the current region. */
typedef struct XState {
  int32_t region;  /* the region the fields below belong to (-1: none yet) */
  int32_t def_out; /* bundle of the latest write of the region, -1 none */
  int32_t def_lat;
  int32_t tmp;        /* that write's temporary */
  int32_t store_out;  /* bundle of that write's store, -1 not placed (yet) */
  int32_t last_store; /* bundle of the region's latest placed store */
} XState;

typedef struct Pending {
  int32_t reg, tmp, earliest, def_out;
  int32_t src; /* TileMirInst.src */
} Pending;

typedef struct Rewrite {
  RaCode *rc;
  RaSpill *sp;
  const uint8_t *spill; /* the registers spilled this round (ids below nregs0) */
  int32_t nregs0;
  /* per register: -1, or the index in remat_def of the constant each read recomputes */
  int32_t *remat;
  TileMirInst *remat_def;
  XState *xs; /* per virtual register (only spilled ones used) */
  /* the new code */
  TileMirBundle *out;
  int32_t *oinner;
  int32_t nout, cap;
  int32_t region, region_start, region_loop;
  Pending *pend;
  int32_t npend, cap_pend;
  int32_t lat_ld[2], lat_st[2], addr_ready; /* [0] scalar, [1] vector */
} Rewrite;

static bool spilled(const Rewrite *w, int32_t r) { return r >= 0 && r < w->nregs0 && w->spill[r]; }

static const TileMirInst *remat_of(const Rewrite *w, int32_t r) {
  return w->remat[r] >= 0 ? &w->remat_def[w->remat[r]] : NULL;
}

static int cls_index(const Rewrite *w, int32_t r) {
  return w->rc->m->reg_class[r] == TILE_MIR_VREG;
}

/* The word of slot kind `kind` free in new bundle q (within the target's slots), or -1. */
static int free_word(const Rewrite *w, int32_t q, TileSlot kind) {
  int first = tile_slot_first(kind), n = w->rc->m->target->slots[kind];
  if (n > tile_slot_words(kind)) n = tile_slot_words(kind);
  for (int k = first; k < first + n; k++)
    if (w->out[q].slot[k].op == TILE_MOP_NOP) return k;
  return -1;
}

/* Appends a bundle (a copy of b, or empty) directly inside `loop`. A bundle added right
 * after a `loop` op of the same region takes the op along, so it still precedes its
 * body. */
static int32_t append(Rewrite *w, const TileMirBundle *b, int32_t loop) {
  if (w->nout == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 256;
    w->out = ra_realloc(w->out, (size_t)w->cap * sizeof *w->out);
    w->oinner = ra_realloc(w->oinner, (size_t)w->cap * sizeof *w->oinner);
  }
  int32_t q = w->nout++;
  if (b) {
    w->out[q] = *b;
  } else {
    for (int k = 0; k < TILE_BUNDLE_SLOTS; k++)
      w->out[q].slot[k] = tile_mir_inst(TILE_MOP_NOP, 0, 0, 0, 0, 0);
    w->sp->inserted++;
    const int bw = ra_branch_word();
    if (q > 0 && w->oinner[q - 1] == loop && w->out[q - 1].slot[bw].op == TILE_MOP_LOOP) {
      w->out[q].slot[bw] = w->out[q - 1].slot[bw];
      w->out[q - 1].slot[bw] = tile_mir_inst(TILE_MOP_NOP, 0, 0, 0, 0, 0);
    }
  }
  w->oinner[q] = loop;
  return q;
}

static TileMirInst spill_op(const Rewrite *w, bool store, int32_t x, int32_t reg, int32_t src) {
  const RaSpill *sp = w->sp;
  const TileTarget *t = w->rc->m->target;
  bool vec = cls_index(w, x);
  int64_t stride = (int64_t)t->vreg_lanes * 4;
  int32_t buf = vec ? sp->slot[x] : sp->sbuf;
  int64_t off = vec ? 0 : (int64_t)sp->slot[x] * 4;
  int op = vec ? (store ? TILE_MOP_VST : TILE_MOP_VLD) : (store ? TILE_MOP_SST : TILE_MOP_SLD);
  TileMirInst in =
      tile_mir_inst(op, reg, sp->addr_reg, vec ? sp->addr_reg : 0, 0, (int32_t)(off - stride));
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, store ? TILE_MIR_WRITE : TILE_MIR_READ, 0);
  in.src = src;
  return in;
}

/* Puts pending stores that are due into new bundle q: in queue order, a register's
 * stores in the order of its writes. With force, every store due by q goes in, into
 * bundles added after q when q has no free word. */
static void place_stores(Rewrite *w, int32_t q, bool force) {
  int32_t kept = 0;
  for (int32_t i = 0; i < w->npend; i++) {
    Pending pd = w->pend[i];
    bool blocked = false; /* an earlier store of the same register still waits */
    for (int32_t k = 0; k < kept && !blocked; k++) blocked = w->pend[k].reg == pd.reg;
    int32_t at = -1;
    XState *x = &w->xs[pd.reg];
    /* strictly after the register's previous store: two in one bundle land together */
    bool after_prev = x->region != w->region || x->last_store < q;
    if (!blocked && pd.earliest <= q) {
      TileSlot kind = cls_index(w, pd.reg) ? TILE_SLOT_VSTORE : TILE_SLOT_SCALAR;
      if (after_prev && free_word(w, q, kind) >= 0)
        at = q;
      else if (force || q >= pd.earliest + SPILL_WINDOW) {
        at = append(w, NULL, w->region_loop);
        q = at;
      }
      if (at >= 0) {
        w->out[at].slot[free_word(w, at, kind)] =
            spill_op(w, true, pd.reg, pd.tmp, pd.src);
        if (x->region == w->region) {
          x->last_store = at;
          if (x->def_out == pd.def_out) x->store_out = at;
        }
        continue;
      }
    }
    w->pend[kept++] = pd;
  }
  w->npend = kept;
}

/* Ends the current region: every store still pending goes in, in bundles added at the
 * region's end where needed (after the last write has landed). */
static void flush_region(Rewrite *w) {
  while (w->npend > 0) {
    int32_t due = w->pend[0].earliest;
    for (int32_t i = 1; i < w->npend; i++)
      if (w->pend[i].earliest < due) due = w->pend[i].earliest;
    if (due > w->nout - 1) {
      int32_t q = append(w, NULL, w->region_loop);
      place_stores(w, q, true);
    } else {
      place_stores(w, w->nout - 1, true);
    }
  }
}

/* The new bundle for an op of slot kind `kind` whose result (latency lat) the bundle
 * about to be appended (at index nout) reads, at or after bundle lo: best a free word
 * lat bundles before the read or a little earlier (no new bundle); else the earliest
 * one between that and the read (fewest new bundles); else a new bundle (the read moves
 * down to wait for it). Appends the bundles up to the result's landing. */
static int32_t place_before_read(Rewrite *w, int32_t lo, int32_t lat, TileSlot kind) {
  int32_t q = w->nout, l = -1;
  for (int32_t k = q - lat; k >= lo && k >= q - lat - SPILL_WINDOW && l < 0; k--)
    if (free_word(w, k, kind) >= 0) l = k;
  for (int32_t k = q - lat + 1 > lo ? q - lat + 1 : lo; k < q && l < 0; k++)
    if (free_word(w, k, kind) >= 0) l = k;
  if (l < 0) {
    l = lo > q ? lo : q;
    while (w->nout <= l) append(w, NULL, w->region_loop);
  }
  while (w->nout < l + lat) append(w, NULL, w->region_loop);
  return l;
}

/* A fresh temporary holding constant register x for the bundle about to be appended (at
 * index nout): its `li`/`vli` again, within the region (place_before_read). */
static int32_t recompute(Rewrite *w, int32_t x, const TileMirInst *k0) {
  TileSlot kind = tile_mop_info[k0->op].slot;
  int32_t l = place_before_read(w, w->region_start, mir_latency(w->rc->m->target, k0->op), kind);
  int32_t u = temp_reg(w->rc->m, w->sp, w->rc->m->reg_class[x]);
  TileMirInst in = *k0;
  in.d = u;
  w->out[l].slot[free_word(w, l, kind)] = in;
  return u;
}

/* The value bundle p's reads of x see, as a register of the new code; adds the reload
 * before the bundle about to be appended (at index nout). */
static int32_t read_value(Rewrite *w, int32_t x, const TileMirInst *src) {
  const TileMirInst *k0 = remat_of(w, x);
  if (k0) return recompute(w, x, k0);
  XState *xs = &w->xs[x];
  int ci = cls_index(w, x);
  int32_t q = w->nout;
  if (xs->region == w->region && xs->def_out >= 0) {
    bool near = q - xs->def_out <= xs->def_lat + w->lat_st[ci] + w->lat_ld[ci];
    if (near || xs->store_out < 0 || xs->store_out + w->lat_st[ci] + w->lat_ld[ci] > q)
      return xs->tmp;
  }
  int32_t lo = w->region_start + w->lat_st[ci] - 1;
  if (xs->region == w->region && xs->last_store >= 0 && xs->last_store + w->lat_st[ci] > lo)
    lo = xs->last_store + w->lat_st[ci];
  if (lo < w->region_start) lo = w->region_start;
  if (lo < w->addr_ready) lo = w->addr_ready;
  TileSlot kind = ci ? TILE_SLOT_VLOAD : TILE_SLOT_SCALAR;
  int32_t l = place_before_read(w, lo, w->lat_ld[ci], kind);
  int32_t u = temp_reg(w->rc->m, w->sp, w->rc->m->reg_class[x]);
  w->out[l].slot[free_word(w, l, kind)] = spill_op(w, false, x, u, src->src);
  return u;
}

static void rename_fields(const Rewrite *w, TileMirInst *in, int32_t r, int32_t t, bool write) {
  const MirRegOperand *ro;
  int n = mir_regs_of(&w->rc->regs, in->op, &ro);
  for (int k = 0; k < n; k++)
    if (ro[k].write == write && mir_field_get(in, ro[k].field) == r)
      *mir_field(in, ro[k].field) = t;
}

/* Whether an op of bundle p names a spilled register (from rc->ops, which describe the
 * code: a few bytes an op where the bundle is hundreds). */
static bool names_spilled(const Rewrite *w, int32_t p) {
  const RaCode *rc = w->rc;
  for (int32_t i = rc->ops_off[p]; i < rc->ops_off[p + 1]; i++) {
    const RaOp *o = &rc->ops[i];
    const MirRegOperand *ro;
    int n = mir_regs_of(&rc->regs, o->op, &ro);
    for (int j = 0; j < n; j++)
      if (spilled(w, ra_op_field_get(o, ro[j].field))) return true;
  }
  return false;
}

/* One original bundle p: reloads before it, the bundle itself with renamed registers,
 * its writes' stores queued, and stores now due placed. */
static void rewrite_bundle(Rewrite *w, int32_t p) {
  RaCode *rc = w->rc;
  /* Most bundles of a round name no spilled register: with no store waiting for a
   * free word, such a bundle goes as it is. */
  if (w->npend == 0 && !names_spilled(w, p)) {
    append(w, &rc->code->b[p], rc->inner[p]);
    return;
  }
  TileMirBundle b = rc->code->b[p];
  const TileMirInst *src_of[TILE_BUNDLE_SLOTS];
  for (int k = 0; k < TILE_BUNDLE_SLOTS; k++) src_of[k] = &rc->code->b[p].slot[k];
  /* Reads first: the bundle reads before it writes. One value per register. */
  for (int k = 0; k < TILE_BUNDLE_SLOTS; k++) {
    const MirRegOperand *ro;
    int n = mir_regs_of(&rc->regs, b.slot[k].op, &ro);
    for (int i = 0; i < n; i++) {
      int32_t x = mir_field_get(&rc->code->b[p].slot[k], ro[i].field);
      if (ro[i].write || !spilled(w, x)) continue;
      if (mir_field_get(&b.slot[k], ro[i].field) != x) continue; /* done for this word */
      int32_t v = read_value(w, x, src_of[k]);
      for (int k2 = 0; k2 < TILE_BUNDLE_SLOTS; k2++) rename_fields(w, &b.slot[k2], x, v, false);
    }
  }
  /* Writes: fresh temporaries, stores queued once they land. */
  int32_t q = w->nout;
  for (int k = 0; k < TILE_BUNDLE_SLOTS; k++) {
    const MirRegOperand *ro;
    int n = mir_regs_of(&rc->regs, b.slot[k].op, &ro);
    for (int i = 0; i < n; i++) {
      int32_t x = mir_field_get(&b.slot[k], ro[i].field);
      if (!ro[i].write || !spilled(w, x)) continue;
      if (remat_of(w, x)) { /* every read recomputes it: the write goes */
        b.slot[k] = tile_mir_inst(TILE_MOP_NOP, 0, 0, 0, 0, 0);
        break;
      }
      int32_t t = temp_reg(rc->m, w->sp, rc->m->reg_class[x]);
      *mir_field(&b.slot[k], ro[i].field) = t;
      XState *xs = &w->xs[x];
      if (xs->region != w->region) *xs = (XState){.region = w->region, .last_store = -1};
      xs->def_out = q;
      xs->def_lat = mir_latency(rc->m->target, b.slot[k].op);
      xs->tmp = t;
      xs->store_out = -1;
      if (!(rc->live_def[p] >> k & 1)) continue; /* no later read needs it */
      if (w->npend == w->cap_pend) {
        w->cap_pend = w->cap_pend ? 2 * w->cap_pend : 16;
        w->pend = ra_realloc(w->pend, (size_t)w->cap_pend * sizeof *w->pend);
      }
      w->pend[w->npend++] = (Pending){.reg = x,
                                      .tmp = t,
                                      .earliest = q + xs->def_lat,
                                      .def_out = q,
                                      .src = b.slot[k].src};
    }
  }
  if (q < w->addr_ready) /* spill ops need the address register */
    for (int32_t i = 0; i < w->npend; i++)
      if (w->pend[i].earliest < w->addr_ready) w->pend[i].earliest = w->addr_ready;
  append(w, &b, rc->inner[p]);
  place_stores(w, q, false);
}

/* Loop bodies, `loop` lengths and pipelined-loop records for the new code. */
static bool relink_loops(Rewrite *w) {
  RaCode *rc = w->rc;
  TileMirCode *c = rc->code;
  int32_t *old_len = ra_realloc(NULL, ((size_t)rc->nloops + 1) * sizeof *old_len);
  for (int32_t l = 0; l < rc->nloops; l++) {
    old_len[l] = rc->loops[l].last - rc->loops[l].first + 1;
    rc->loops[l].first = INT32_MAX;
    rc->loops[l].last = -1;
  }
  for (int32_t q = 0; q < w->nout; q++)
    for (int32_t l = w->oinner[q]; l >= 0; l = rc->loops[l].parent) {
      if (q < rc->loops[l].first) rc->loops[l].first = q;
      if (q > rc->loops[l].last) rc->loops[l].last = q;
    }
  bool ok = true;
  const int bw = ra_branch_word();
  for (int32_t l = 0; l < rc->nloops && ok; l++) {
    RaLoop *lp = &rc->loops[l];
    if (lp->first < 1 || w->out[lp->first - 1].slot[bw].op != TILE_MOP_LOOP)
      ok = tile_error(rc->d, (TileLoc){0},
                      "internal error: spilling lost the `loop` op of a loop body");
    else
      w->out[lp->first - 1].slot[bw].c = lp->last - lp->first + 1;
  }
  for (int32_t i = 0; i < c->nloops && ok; i++) {
    int32_t l = rc->info_loop[i];
    if (l < 0) continue;
    c->loops[i].ii += rc->loops[l].last - rc->loops[l].first + 1 - old_len[l];
    c->loops[i].first = rc->loops[l].first;
    c->loops[i].last = rc->loops[l].last;
  }
  free(old_len);
  return ok;
}

/* The constants among the spilled registers: one of each one's writes (all equal). */
static void find_remat(Rewrite *w, const RaLive *lv) {
  const RaCode *rc = w->rc;
  w->remat = ra_realloc(NULL, ((size_t)w->nregs0 + 1) * sizeof *w->remat);
  int32_t n = 0;
  for (int32_t r = 0; r < w->nregs0; r++) {
    w->remat[r] = -1;
    n += w->spill[r] && lv->remat[r];
  }
  w->remat_def = ra_realloc(NULL, ((size_t)n + 1) * sizeof *w->remat_def);
  n = 0;
  for (int32_t p = 0; p < rc->code->nbundles; p++)
    for (int k = 0; k < TILE_BUNDLE_SLOTS; k++) {
      const TileMirInst *in = &rc->code->b[p].slot[k];
      if (in->op != TILE_MOP_LI && in->op != TILE_MOP_VLI) continue;
      int32_t x = in->d;
      if (!spilled(w, x) || !lv->remat[x] || w->remat[x] >= 0) continue;
      w->remat[x] = n;
      w->remat_def[n++] = *in;
    }
}

bool ra_spill_round(RaCode *rc, RaSpill *sp, const RaLive *lv, const uint8_t *spill) {
  TileMir *m = rc->m;
  const TileTarget *t = m->target;
  int32_t nregs = m->nregs;
  ra_spill_grow(sp, m);
  Rewrite w = {.rc = rc, .sp = sp, .spill = spill, .nregs0 = nregs, .region = -1};
  find_remat(&w, lv);
  bool stores = false; /* some spilled register lives in memory (needs the address) */
  for (int32_t r = 0; r < nregs; r++)
    if (spill[r] && w.remat[r] < 0) {
      give_slot(m, sp, r);
      stores = true;
    }
  w.xs = ra_realloc(NULL, ((size_t)nregs + 1) * sizeof *w.xs);
  for (int32_t r = 0; r < nregs; r++)
    w.xs[r] = (XState){.region = -1, .def_out = -1, .last_store = -1};
  w.lat_ld[0] = mir_latency(t, TILE_MOP_SLD);
  w.lat_ld[1] = mir_latency(t, TILE_MOP_VLD);
  w.lat_st[0] = mir_latency(t, TILE_MOP_SST);
  w.lat_st[1] = mir_latency(t, TILE_MOP_VST);
  int32_t n = rc->code->nbundles;
  /* The address register: set in bundle 0, which runs once before everything (no loop
   * body starts there); a bundle is added in front when bundle 0 has no free word. */
  bool first_spill = stores && sp->addr_reg < 0;
  if (first_spill) sp->addr_reg = temp_reg(m, sp, TILE_MIR_SREG);
  TileMirInst li = tile_mir_inst(TILE_MOP_LI, sp->addr_reg, 0, 0, 0, t->vreg_lanes * 4);
  li.src = tile_mir_src(m, "spill", (TileLoc){0});
  w.addr_ready = mir_latency(t, TILE_MOP_LI); /* the `li` sits in bundle 0 */
  /* Room for the code and an eighth more up front (see tile_mir_schedule's reserve). */
  w.cap = n + n / 8 + 256;
  w.out = ra_realloc(NULL, (size_t)w.cap * sizeof *w.out);
  w.oinner = ra_realloc(NULL, (size_t)w.cap * sizeof *w.oinner);
  int32_t region_id = 0;
  for (int32_t p = 0; p < n; p++) {
    if (p == 0 || rc->inner[p] != rc->inner[p - 1]) {
      flush_region(&w);
      w.region = region_id++;
      w.region_start = w.nout;
      w.region_loop = rc->inner[p];
    }
    if (p == 0 && first_spill) {
      int sw = tile_slot_first(TILE_SLOT_SCALAR), k = sw;
      int nsc = t->slots[TILE_SLOT_SCALAR];
      while (k < sw + nsc && rc->code->b[0].slot[k].op != TILE_MOP_NOP) k++;
      if (k == sw + nsc) { /* no free scalar word in bundle 0 */
        int32_t q = append(&w, NULL, -1);
        w.out[q].slot[sw] = li;
      } else {
        rc->code->b[0].slot[k] = li;
      }
    }
    rewrite_bundle(&w, p);
  }
  w.npend = 0; /* stores still waiting after the last bundle (the halt): nothing reads them */
  free(w.xs);
  free(w.remat);
  free(w.remat_def);
  free(w.pend);
  free(rc->code->b);
  rc->code->b = w.out;
  rc->code->nbundles = rc->code->cap = w.nout;
  bool ok = relink_loops(&w);
  ra_code_set_inner(rc, w.oinner, w.nout);
  return ok;
}
