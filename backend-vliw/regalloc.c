/* tile_mir_regalloc: machine registers for the virtual registers of scheduled code.
 *
 * Needs: code from tile_mir_schedule (bundles, `loop` ops in the branch word, ends in
 * `halt`) whose register fields hold virtual registers of m. Guarantees: every register
 * field holds a machine register below the target's sregs/vregs, and running the code
 * gives no register hazard that the virtual-register schedule did not have: two values
 * share a machine register only when one's range of phases (regalloc_internal.h) ends
 * before the other's begins.
 *
 * Method: backward liveness over the bundle order with loop back edges (a value live
 * around a loop is therefore live through its whole body), then each register's range is
 * the hull of the phases where it is live, where its writes issue and where they land
 * (a write landing past the end of a loop body lands in the next iteration: the range
 * covers the body). Linear scan over the ranges in order of their start, per register
 * file, gives each the lowest free machine register. When none is free, the range with
 * the lowest spill cost per phase (uses weighted by 8 per loop level) among the holders
 * and the newcomer is spilled (spill.c), and allocation starts over on the rewritten
 * code. Spill temporaries are never spilled, so rounds end; when only they remain the
 * program needs more registers at one point than the machine has, and that is reported.
 * Everything is in a fixed order, so the result is deterministic. */
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "regalloc_internal.h"

enum { CHUNK_WORDS = 16 }; /* liveness runs over 1024 registers at a time */

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "tilec: out of memory in register allocation\n");
    abort();
  }
  return p;
}

static int branch_word(void) { return tile_slot_first(TILE_SLOT_BRANCH); }

typedef struct Ranges {
  int32_t *start, *end; /* phases; start -1 for a register the code never names */
  double *weight;       /* uses and writes, 8x per loop level */
} Ranges;

static void extend(Ranges *rg, int32_t r, int32_t phase) {
  if (rg->start[r] < 0 || phase < rg->start[r]) rg->start[r] = phase;
  if (phase > rg->end[r]) rg->end[r] = phase;
}

/* Successors of bundle p besides p + 1: the first bundles of the loops ending at p. */
typedef struct Succ {
  int32_t *off, *to; /* to[off[p] .. off[p+1]) */
  uint8_t *falls;    /* p + 1 follows p (no halt, not the last bundle) */
} Succ;

static void succ_build(const RaCode *rc, Succ *s) {
  int32_t n = rc->code->nbundles;
  s->off = xcalloc((size_t)n + 2, sizeof *s->off);
  s->to = xcalloc((size_t)rc->nloops + 1, sizeof *s->to);
  s->falls = xcalloc((size_t)n + 1, 1);
  for (int32_t l = 0; l < rc->nloops; l++) s->off[rc->loops[l].last + 1]++;
  for (int32_t p = 0; p < n; p++) s->off[p + 1] += s->off[p];
  int32_t *fill = xcalloc((size_t)n + 1, sizeof *fill);
  for (int32_t l = 0; l < rc->nloops; l++) {
    int32_t p = rc->loops[l].last;
    s->to[s->off[p] + fill[p]++] = rc->loops[l].first;
  }
  free(fill);
  for (int32_t p = 0; p + 1 < n; p++)
    s->falls[p] = rc->code->b[p].slot[branch_word()].op != TILE_MOP_HALT;
}

static void succ_free(Succ *s) {
  free(s->off);
  free(s->to);
  free(s->falls);
}

/* Liveness of registers [r0, r0 + 64 * W) and the phases where they are live. */
static void live_chunk(RaCode *rc, const Succ *sc, int32_t r0, int W, Ranges *rg) {
  const TileMirCode *c = rc->code;
  int32_t n = c->nbundles, nregs = rc->m->nregs;
  size_t cells = (size_t)n * (size_t)W;
  uint64_t *use = xcalloc(cells, 8), *def = xcalloc(cells, 8);
  uint64_t *in = xcalloc(cells, 8), *out = xcalloc(cells, 8);
  for (int32_t p = 0; p < n; p++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *x = &c->b[p].slot[w];
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, x->op, &ro);
      for (int i = 0; i < k; i++) {
        int32_t r = mir_field_get(x, ro[i].field) - r0;
        if (r < 0 || r >= 64 * W) continue;
        (ro[i].write ? def : use)[(size_t)p * W + r / 64] |= 1ull << (r % 64);
      }
    }
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t p = n - 1; p >= 0; p--) {
      uint64_t *o = out + (size_t)p * W, *i = in + (size_t)p * W;
      for (int k = 0; k < W; k++) {
        uint64_t v = sc->falls[p] ? in[(size_t)(p + 1) * W + k] : 0;
        for (int32_t e = sc->off[p]; e < sc->off[p + 1]; e++) v |= in[(size_t)sc->to[e] * W + k];
        uint64_t iv = use[(size_t)p * W + k] | (v & ~def[(size_t)p * W + k]);
        if (v != o[k] || iv != i[k]) changed = true;
        o[k] = v;
        i[k] = iv;
      }
    }
  }
  /* Which writes are read later (spilling stores only those). */
  for (int32_t p = 0; p < n; p++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *x = &c->b[p].slot[w];
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, x->op, &ro);
      for (int i = 0; i < k; i++) {
        int32_t r = mir_field_get(x, ro[i].field) - r0;
        if (ro[i].write && r >= 0 && r < 64 * W && (out[(size_t)p * W + r / 64] >> (r % 64) & 1))
          rc->live_def[p] |= (uint16_t)(1u << w);
      }
    }
  for (int32_t p = 0; p < n; p++)
    for (int k = 0; k < W; k++) {
      for (uint64_t v = in [(size_t)p * W + k]; v; v &= v - 1) {
        int32_t r = r0 + 64 * k + __builtin_ctzll(v);
        if (r < nregs) extend(rg, r, 2 * p);
      }
      for (uint64_t v = out[(size_t)p * W + k]; v; v &= v - 1) {
        int32_t r = r0 + 64 * k + __builtin_ctzll(v);
        if (r < nregs) extend(rg, r, 2 * p + 1);
      }
    }
  free(use);
  free(def);
  free(in);
  free(out);
}

static int loop_depth(const RaCode *rc, int32_t l) {
  int d = 0;
  for (; l >= 0; l = rc->loops[l].parent) d++;
  return d;
}

/* The range of every register: liveness, then writes and their landings. */
static void ranges_build(RaCode *rc, Ranges *rg) {
  const TileMir *m = rc->m;
  const TileMirCode *c = rc->code;
  int32_t n = c->nbundles, last_phase = 2 * n - 1;
  rg->start = xcalloc((size_t)m->nregs + 1, sizeof *rg->start);
  rg->end = xcalloc((size_t)m->nregs + 1, sizeof *rg->end);
  rg->weight = xcalloc((size_t)m->nregs + 1, sizeof *rg->weight);
  for (int32_t r = 0; r < m->nregs; r++) rg->start[r] = rg->end[r] = -1;
  memset(rc->live_def, 0, (size_t)n * sizeof *rc->live_def);
  Succ sc;
  succ_build(rc, &sc);
  for (int32_t r0 = 0; r0 < m->nregs; r0 += 64 * CHUNK_WORDS) {
    int32_t left = m->nregs - r0;
    int W = left >= 64 * CHUNK_WORDS ? CHUNK_WORDS : (left + 63) / 64;
    live_chunk(rc, &sc, r0, W, rg);
  }
  succ_free(&sc);
  for (int32_t p = 0; p < n; p++) {
    double wt = 1;
    for (int d = loop_depth(rc, rc->inner[p]); d > 0; d--) wt *= 8;
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *x = &c->b[p].slot[w];
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, x->op, &ro);
      for (int i = 0; i < k; i++) {
        int32_t r = mir_field_get(x, ro[i].field);
        rg->weight[r] += wt;
        if (!ro[i].write) continue;
        int32_t land = p + mir_latency(m->target, x->op);
        extend(rg, r, 2 * p + 1);
        extend(rg, r, 2 * land < last_phase ? 2 * land : last_phase);
        /* Landing past a loop's last bundle happens in its next iteration. */
        for (int32_t l = rc->inner[p]; l >= 0 && land > rc->loops[l].last;
             l = rc->loops[l].parent) {
          extend(rg, r, 2 * rc->loops[l].first);
          extend(rg, r, 2 * rc->loops[l].last + 1);
        }
      }
    }
  }
}

static void ranges_free(Ranges *rg) {
  free(rg->start);
  free(rg->end);
  free(rg->weight);
}

/* ---- linear scan ---- */

typedef struct Scan {
  const RaCode *rc;
  const Ranges *rg;
  const RaSpill *sp;
  int32_t *phys;  /* per virtual register: machine register, -1 none */
  uint8_t *spill; /* per virtual register: chosen for spilling this round */
  int32_t nspill;
} Scan;

/* qsort has no context argument in C11: sort the (start, id) keys instead. */
typedef struct Key {
  int32_t start, id;
} Key;

static int cmp_key(const void *a, const void *b) {
  const Key *x = a, *y = b;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* Lower is a better victim: spill cost per phase of range freed. */
static double spill_score(const Scan *s, int32_t r) {
  int32_t len = s->rg->end[r] - s->rg->start[r] + 1;
  return s->rg->weight[r] / (double)len;
}

static bool better_victim(const Scan *s, int32_t a, int32_t b) {
  if (b < 0) return true;
  double sa = spill_score(s, a), sb = spill_score(s, b);
  if (sa != sb) return sa < sb;
  if (s->rg->end[a] != s->rg->end[b]) return s->rg->end[a] > s->rg->end[b];
  return a > b;
}

/* Where the range of r starts, for messages: the inst that first names r. */
static const TileMirInst *first_ref(const RaCode *rc, int32_t r, int32_t *bundle) {
  for (int32_t p = 0; p < rc->code->nbundles; p++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *x = &rc->code->b[p].slot[w];
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, x->op, &ro);
      for (int i = 0; i < k; i++)
        if (mir_field_get(x, ro[i].field) == r) {
          *bundle = p;
          return x;
        }
    }
  *bundle = -1;
  return NULL;
}

static bool scan_class(Scan *s, uint8_t cls) {
  const TileMir *m = s->rc->m;
  const Ranges *rg = s->rg;
  int32_t nphys = cls == TILE_MIR_VREG ? m->target->nvregs : m->target->nsregs;
  if (nphys > 64) nphys = 64; /* the encoding's 6-bit register fields */
  Key *keys = xcalloc((size_t)m->nregs + 1, sizeof *keys);
  int32_t nk = 0;
  for (int32_t r = 0; r < m->nregs; r++)
    if (m->reg_class[r] == cls && rg->start[r] >= 0) keys[nk++] = (Key){rg->start[r], r};
  qsort(keys, (size_t)nk, sizeof *keys, cmp_key);
  int32_t free_at[64], holder[64];
  for (int i = 0; i < 64; i++) free_at[i] = holder[i] = -1;
  bool ok = true;
  for (int32_t i = 0; i < nk && ok; i++) {
    int32_t r = keys[i].id, start = rg->start[r], pick = -1;
    for (int32_t x = 0; x < nphys && pick < 0; x++)
      if (free_at[x] < start) pick = x;
    if (pick < 0) {
      int32_t victim = -1;
      if (!s->sp->no_spill[r]) victim = r;
      for (int32_t x = 0; x < nphys; x++) {
        int32_t h = holder[x];
        if (h >= 0 && !s->sp->no_spill[h] && better_victim(s, h, victim)) victim = h;
      }
      if (victim < 0) {
        int32_t p;
        const TileMirInst *at = first_ref(s->rc, r, &p);
        const char *file = cls == TILE_MIR_VREG ? "vector" : "scalar";
        ok = tile_error(s->rc->d, at ? at->src_loc : (TileLoc){0},
                        "register allocation: at bundle %d (%s) more than %d %s values are "
                        "live at once, the %s registers of target %s, and every one of them "
                        "is already a spill temporary or the spill address; the schedule "
                        "keeps too many values in flight to run on this machine",
                        (int)p, at ? mir_src_name(at) : "?", (int)nphys, file, file,
                        m->target->name);
        break;
      }
      s->spill[victim] = 1;
      s->nspill++;
      if (victim == r) continue;
      pick = s->phys[victim];
      s->phys[victim] = -1;
    }
    s->phys[r] = pick;
    free_at[pick] = rg->end[r];
    holder[pick] = r;
  }
  free(keys);
  return ok;
}

/* ---- the pass ---- */

/* The code's register fields must name virtual registers of the right class. */
static bool check_code(const RaCode *rc, const TileMir *m, const TileMirCode *c, TileDiag *d) {
  for (int32_t p = 0; p < c->nbundles; p++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *x = &c->b[p].slot[w];
      if (!mir_is_isa_op(x->op))
        return tile_error(d, x->src_loc,
                          "register allocation: bundle %d holds %s, which is not a machine op",
                          (int)p, mir_op_name(x->op));
      if (tile_slot_of_word(w) != tile_mop_info[x->op].slot && x->op != TILE_MOP_NOP)
        return tile_error(d, x->src_loc,
                          "register allocation: bundle %d has %s in word %d, a %s slot", (int)p,
                          mir_op_name(x->op), w, tile_slot_name(tile_slot_of_word(w)));
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, x->op, &ro);
      for (int i = 0; i < k; i++) {
        int32_t r = mir_field_get(x, ro[i].field);
        if (r < 0 || r >= m->nregs || m->reg_class[r] != ro[i].cls)
          return tile_error(d, x->src_loc,
                            "register allocation: %s in bundle %d names register %d in field "
                            "%c, which is not a %s virtual register",
                            mir_op_name(x->op), (int)p, (int)r, ro[i].field,
                            ro[i].cls == TILE_MIR_SREG ? "scalar" : "vector");
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
  if (!check_code(&rc, m, code, d)) return false;
  RaSpill sp = {.addr_reg = -1, .vbuf = -1, .sbuf = -1};
  bool ok = ra_loops_build(&rc);
  int32_t *phys = NULL;
  while (ok) {
    ra_spill_grow(&sp, m);
    Ranges rg;
    ranges_build(&rc, &rg);
    free(phys);
    phys = xcalloc((size_t)m->nregs + 1, sizeof *phys);
    uint8_t *spill = xcalloc((size_t)m->nregs + 1, 1);
    for (int32_t r = 0; r < m->nregs; r++) phys[r] = -1;
    Scan s = {.rc = &rc, .rg = &rg, .sp = &sp, .phys = phys, .spill = spill};
    ok = scan_class(&s, TILE_MIR_SREG) && scan_class(&s, TILE_MIR_VREG);
    ranges_free(&rg);
    if (!ok || s.nspill == 0) {
      free(spill);
      break;
    }
    ok = ra_spill_round(&rc, &sp, spill);
    free(spill);
    ok = ok && check_loop_lengths(&rc);
  }
  ok = ok && ra_check_assignment(&rc, phys);
  code->allocated = ok;
  if (ok)
    for (int32_t p = 0; p < code->nbundles; p++)
      for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
        TileMirInst *x = &code->b[p].slot[w];
        const MirRegOperand *ro;
        int k = mir_regs_of(&rc.regs, x->op, &ro);
        for (int i = 0; i < k; i++)
          *mir_field(x, ro[i].field) = phys[mir_field_get(x, ro[i].field)];
      }
  free(phys);
  free(sp.slot);
  free(sp.no_spill);
  ra_code_free(&rc);
  return ok;
}
