/* Spilling for register allocation: the loop structure of scheduled code, bundle
 * insertion, and the spill code that moves one virtual register into memory.
 *
 * Why inserting bundles is safe: every timing rule the schedule satisfies is a lower
 * bound on the cycles between two ops (latencies, MXU spacing, store landings, DMA
 * completions), and a taken loop back edge costs nothing. An empty bundle added anywhere
 * only lengthens the distance between ops it falls between, so the schedule stays legal;
 * inside a loop the body grows by one bundle (the `loop` op's length follows).
 *
 * Spill code for a register X (vector: vst/vld of a whole register, sublane stride
 * lanes * 4 bytes, into a VMEM buffer of one 4 KiB slot per register; scalar: sst/sld
 * into an SMEM buffer of one word per register):
 *   - each write of X goes to a fresh temporary T; once T lands (the write's latency
 *     later, in the same region) a store puts it in X's slot. Stores of one region keep
 *     the order of their writes, so the slot always ends with the latest value.
 *   - each bundle reading X reads a fresh temporary U loaded from the slot the load
 *     latency before it; the load waits for the store of a write earlier in the same
 *     region to land, and for a store anywhere else it waits lat.store - 1 bundles after
 *     the region's first bundle (control enters a region only there, one cycle after the
 *     last bundle elsewhere). A read close to a write of the same region reads that
 *     write's temporary directly: reloading would gain nothing.
 * Spill ops use free slot words where the timing allows and new bundles where not.
 * Both address forms use one scalar register R holding lanes * 4, set in a bundle added
 * at the start: `vld U, R, R, off - R` reads sublane s at slot + s * (lanes * 4), and
 * `sld U, R, off - R` reads the word at the slot (imm relative to the spill buffer). */
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "regalloc_internal.h"

/* How far past the earliest bundle a store (before the latest bundle a load) may move
 * to use a free slot word rather than a new bundle: each bundle moved keeps the
 * temporary live one bundle longer. */
enum { SPILL_WINDOW = 2 };

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "tilec: out of memory in register allocation\n");
    abort();
  }
  return q;
}

static int branch_word(void) { return tile_slot_first(TILE_SLOT_BRANCH); }

static TileMirInst empty_inst(void) {
  TileMirInst in = tile_mir_inst(TILE_MOP_NOP, 0, 0, 0, 0, 0);
  return in;
}

/* ---- loop structure ---- */

void ra_code_free(RaCode *rc) {
  free(rc->loops);
  free(rc->inner);
  rc->loops = NULL;
  rc->inner = NULL;
  rc->nloops = 0;
  rc->cap_inner = 0;
}

bool ra_loops_build(RaCode *rc) {
  TileMirCode *c = rc->code;
  int32_t n = c->nbundles;
  free(rc->loops);
  rc->loops = NULL;
  rc->nloops = 0;
  rc->inner = xrealloc(rc->inner, ((size_t)n + 1) * sizeof *rc->inner);
  rc->cap_inner = n + 1;
  int32_t stack[8], depth = 0, cap = 0;
  for (int32_t p = 0; p < n; p++) {
    while (depth > 0 && rc->loops[stack[depth - 1]].last < p) depth--;
    rc->inner[p] = depth ? stack[depth - 1] : -1;
    const TileMirInst *in = &c->b[p].slot[branch_word()];
    if (in->op != TILE_MOP_LOOP) continue;
    int32_t last = p + in->c;
    if (in->c < 1 || last >= n)
      return tile_error(rc->d, in->src_loc,
                        "register allocation: the loop at bundle %d has a body of %d bundles, "
                        "outside the %d bundles of the code",
                        (int)p, (int)in->c, (int)n);
    if (depth >= 4 || (depth && last > rc->loops[stack[depth - 1]].last))
      return tile_error(rc->d, in->src_loc,
                        "register allocation: the loop at bundle %d does not nest inside the "
                        "loop around it (or nests more than 4 deep)",
                        (int)p);
    if (rc->nloops == cap) {
      cap = cap ? 2 * cap : 8;
      rc->loops = xrealloc(rc->loops, (size_t)cap * sizeof *rc->loops);
    }
    rc->loops[rc->nloops] =
        (RaLoop){.first = p + 1, .last = last, .parent = depth ? stack[depth - 1] : -1};
    stack[depth++] = rc->nloops++;
  }
  return true;
}

bool ra_loop_encloses(const RaCode *rc, int32_t outer, int32_t inner) {
  if (outer < 0) return true;
  for (int32_t l = inner; l >= 0; l = rc->loops[l].parent)
    if (l == outer) return true;
  return false;
}

void ra_region(const RaCode *rc, int32_t p, int32_t *first, int32_t *last) {
  int32_t loop = rc->inner[p], a = p, b = p;
  while (a > 0 && rc->inner[a - 1] == loop) a--;
  while (b + 1 < rc->code->nbundles && rc->inner[b + 1] == loop) b++;
  *first = a;
  *last = b;
}

void ra_insert(RaCode *rc, int32_t k, int32_t loop) {
  TileMirCode *c = rc->code;
  int32_t n = c->nbundles;
  if (n + 1 > c->cap) {
    c->cap = c->cap ? 2 * c->cap : 16;
    while (c->cap < n + 1) c->cap *= 2;
    c->b = xrealloc(c->b, (size_t)c->cap * sizeof *c->b);
  }
  memmove(&c->b[k + 1], &c->b[k], (size_t)(n - k) * sizeof *c->b);
  for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) c->b[k].slot[w] = empty_inst();
  c->nbundles = n + 1;
  if (n + 2 > rc->cap_inner) {
    rc->cap_inner = 2 * (n + 2);
    rc->inner = xrealloc(rc->inner, (size_t)rc->cap_inner * sizeof *rc->inner);
  }
  memmove(&rc->inner[k + 1], &rc->inner[k], (size_t)(n - k) * sizeof *rc->inner);
  rc->inner[k] = loop;
  /* The pipelined-loop records follow the loop they describe (same body), else shift. */
  for (int32_t i = 0; i < c->nloops; i++) {
    struct TileMirLoopInfo *li = &c->loops[i];
    int32_t match = -1;
    for (int32_t l = 0; l < rc->nloops && match < 0; l++)
      if (rc->loops[l].first == li->first && rc->loops[l].last == li->last) match = l;
    if (match >= 0 && ra_loop_encloses(rc, match, loop)) {
      li->last++;
      li->ii++; /* the kernel takes one more cycle per iteration */
    }
    else if (li->first >= k) li->first++, li->last++;
    else if (li->last >= k && match < 0) li->last++;
  }
  for (int32_t l = 0; l < rc->nloops; l++) {
    RaLoop *lp = &rc->loops[l];
    if (loop >= 0 && ra_loop_encloses(rc, l, loop)) lp->last++;
    else if (lp->first >= k) lp->first++, lp->last++;
  }
  /* A bundle put between a `loop` op and its body takes the op along. */
  for (int32_t l = 0; l < rc->nloops; l++)
    if (rc->loops[l].first - 1 == k && k > 0 && c->b[k - 1].slot[branch_word()].op == TILE_MOP_LOOP) {
      c->b[k].slot[branch_word()] = c->b[k - 1].slot[branch_word()];
      c->b[k - 1].slot[branch_word()] = empty_inst();
    }
  for (int32_t l = 0; l < rc->nloops; l++) {
    TileMirInst *op = &c->b[rc->loops[l].first - 1].slot[branch_word()];
    op->c = rc->loops[l].last - rc->loops[l].first + 1;
  }
}

/* ---- spill state ---- */

void ra_spill_grow(RaSpill *sp, const TileMir *m) {
  if (m->nregs <= sp->cap) return;
  int32_t cap = sp->cap ? sp->cap : 64;
  while (cap < m->nregs) cap *= 2;
  sp->slot = xrealloc(sp->slot, (size_t)cap * sizeof *sp->slot);
  sp->no_spill = xrealloc(sp->no_spill, (size_t)cap);
  for (int32_t r = sp->cap; r < cap; r++) {
    sp->slot[r] = -1;
    sp->no_spill[r] = 0;
  }
  sp->cap = cap;
}

/* A fresh register of r's class that is never spilled itself. */
static int32_t temp_reg(TileMir *m, RaSpill *sp, uint8_t cls) {
  int32_t t = cls == TILE_MIR_VREG ? tile_mir_vreg(m) : tile_mir_sreg(m);
  ra_spill_grow(sp, m);
  sp->no_spill[t] = 1;
  return t;
}

/* The word of slot kind `kind` free in bundle p (within the target's slots), or -1. */
static int free_word(const RaCode *rc, int32_t p, TileSlot kind) {
  int first = tile_slot_first(kind), n = rc->m->target->slots[kind];
  if (n > tile_slot_words(kind)) n = tile_slot_words(kind);
  for (int w = first; w < first + n; w++)
    if (rc->code->b[p].slot[w].op == TILE_MOP_NOP) return w;
  return -1;
}

/* Bytes of one vector register in memory. */
static int64_t vreg_bytes(const TileTarget *t) {
  return (int64_t)t->vreg_sublanes * t->vreg_lanes * 4;
}

/* Sets up the address register and the spill buffer, and gives r its slot. */
static void spill_setup(RaCode *rc, RaSpill *sp, int32_t r) {
  TileMir *m = rc->m;
  const TileTarget *t = m->target;
  if (sp->addr_reg < 0) {
    sp->addr_reg = temp_reg(m, sp, TILE_MIR_SREG);
    /* Bundle 0 runs once, before everything (no loop body starts there). */
    if (free_word(rc, 0, TILE_SLOT_SCALAR) < 0) {
      ra_insert(rc, 0, -1);
      sp->inserted++;
    }
    TileMirInst li = tile_mir_inst(TILE_MOP_LI, sp->addr_reg, 0, 0, 0, t->vreg_lanes * 4);
    li.src_name = "spill";
    rc->code->b[0].slot[free_word(rc, 0, TILE_SLOT_SCALAR)] = li;
  }
  if (m->reg_class[r] == TILE_MIR_VREG) {
    if (sp->vbuf < 0) sp->vbuf = tile_mir_buffer(m, "spill.vregs", TILE_SPACE_VMEM, 0, 1, 64);
    sp->slot[r] = sp->nvslots++;
    m->bufs[sp->vbuf].bytes = sp->nvslots * vreg_bytes(t);
  } else {
    if (sp->sbuf < 0) sp->sbuf = tile_mir_buffer(m, "spill.sregs", TILE_SPACE_SMEM, 0, 1, 4);
    sp->slot[r] = sp->nsslots++;
    m->bufs[sp->sbuf].bytes = (int64_t)sp->nsslots * 4;
  }
}

/* ---- one register ---- */

typedef struct Ref {
  int32_t p; /* bundle */
  int w;     /* word */
} Ref;

typedef struct SpillJob {
  RaCode *rc;
  RaSpill *sp;
  int32_t r;
  bool vec;
  int32_t lat_ld, lat_st, addr_ready;
  /* the writes of r: bundle, word, temporary, store bundle (-1: dead, no store) */
  int32_t ndefs;
  Ref *def;
  int32_t *tmp, *store;
} SpillJob;

/* Bundle indices recorded by the job move with an insertion at k. */
static void job_insert(SpillJob *j, int32_t k, int32_t loop) {
  ra_insert(j->rc, k, loop);
  j->sp->inserted++;
  for (int32_t i = 0; i < j->ndefs; i++) {
    if (j->def[i].p >= k) j->def[i].p++;
    if (j->store[i] >= k) j->store[i]++;
  }
}

static bool reads_reg(const TileMirInst *in, int32_t r) {
  MirRegOperand ro[TILE_MAX_OPERANDS];
  int n = mir_reg_operands(in->op, ro);
  for (int k = 0; k < n; k++)
    if (!ro[k].write && mir_field_get(in, ro[k].field) == r) return true;
  return false;
}

/* Replaces r by t in the fields of in that the op reads (write = false) or writes. */
static void rename_reg(TileMirInst *in, int32_t r, int32_t t, bool write) {
  MirRegOperand ro[TILE_MAX_OPERANDS];
  int n = mir_reg_operands(in->op, ro);
  for (int k = 0; k < n; k++)
    if (ro[k].write == write && mir_field_get(in, ro[k].field) == r)
      *mir_field(in, ro[k].field) = t;
}

/* live_out[p]: r's value is still needed after bundle p (backward dataflow over the
 * bundles with loop back edges). */
static uint8_t *live_out_of(const RaCode *rc, int32_t r) {
  const TileMirCode *c = rc->code;
  int32_t n = c->nbundles;
  uint8_t *in = calloc((size_t)n + 1, 1), *out = calloc((size_t)n + 1, 1);
  uint8_t *use = calloc((size_t)n + 1, 1), *def = calloc((size_t)n + 1, 1);
  if (!in || !out || !use || !def) {
    fprintf(stderr, "tilec: out of memory in register allocation\n");
    abort();
  }
  for (int32_t p = 0; p < n; p++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *x = &c->b[p].slot[w];
      MirRegOperand ro[TILE_MAX_OPERANDS];
      int k = mir_reg_operands(x->op, ro);
      for (int i = 0; i < k; i++)
        if (mir_field_get(x, ro[i].field) == r) (ro[i].write ? def : use)[p] = 1;
    }
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t p = n - 1; p >= 0; p--) {
      uint8_t o = 0;
      if (c->b[p].slot[branch_word()].op != TILE_MOP_HALT && p + 1 < n) o = in[p + 1];
      for (int32_t l = 0; l < rc->nloops; l++)
        if (rc->loops[l].last == p) o |= in[rc->loops[l].first];
      uint8_t i = use[p] | (o & !def[p]);
      if (o != out[p] || i != in[p]) changed = true;
      out[p] = o;
      in[p] = i;
    }
  }
  free(in);
  free(use);
  free(def);
  return out;
}

static TileMirInst spill_op(const SpillJob *j, bool store, int32_t reg, const TileMirInst *src) {
  const RaSpill *sp = j->sp;
  int64_t stride = (int64_t)j->rc->m->target->vreg_lanes * 4;
  int32_t buf = j->vec ? sp->vbuf : sp->sbuf;
  int64_t off = (int64_t)sp->slot[j->r] * (j->vec ? vreg_bytes(j->rc->m->target) : 4);
  int op = j->vec ? (store ? TILE_MOP_VST : TILE_MOP_VLD) : (store ? TILE_MOP_SST : TILE_MOP_SLD);
  TileMirInst in = tile_mir_inst(op, reg, sp->addr_reg, j->vec ? sp->addr_reg : 0, 0,
                                 (int32_t)(off - stride));
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, store ? TILE_MIR_WRITE : TILE_MIR_READ, 0);
  in.src_name = src->src_name;
  in.src_loc = src->src_loc;
  return in;
}

/* Places the store of write i: the first bundle of its region at or after the landing
 * (and after the region's previous store of r) with a free store word, else new
 * bundles. */
static bool place_store(SpillJob *j, int32_t i, int32_t prev) {
  RaCode *rc = j->rc;
  int32_t p = j->def[i].p, r0, r1;
  ra_region(rc, p, &r0, &r1);
  int32_t loop = rc->inner[p];
  const TileMirInst *def = &rc->code->b[p].slot[j->def[i].w];
  int32_t lo = p + mir_latency(rc->m->target, def->op);
  int32_t prev_store = prev >= 0 ? j->store[prev] : -1;
  if (prev_store >= r0 && prev_store <= r1 && prev_store + 1 > lo) lo = prev_store + 1;
  if (lo < j->addr_ready) lo = j->addr_ready;
  TileSlot kind = j->vec ? TILE_SLOT_VSTORE : TILE_SLOT_SCALAR;
  int32_t s = -1;
  for (int32_t q = lo; q <= r1 && q <= lo + SPILL_WINDOW && s < 0; q++)
    if (free_word(rc, q, kind) >= 0) s = q;
  if (s < 0) {
    if (lo <= r1) {
      job_insert(j, lo, loop);
    } else {
      bool at_end = loop >= 0 && r1 == rc->loops[loop].last;
      bool before_body = rc->code->b[r1].slot[branch_word()].op == TILE_MOP_LOOP;
      if (!at_end && !before_body)
        return tile_error(rc->d, def->src_loc,
                          "register allocation: no place to spill the result of %s at bundle "
                          "%d (the region ends at bundle %d)",
                          mir_op_name(def->op), (int)p, (int)r1);
      for (int32_t k = r1 + 1; k <= lo; k++) job_insert(j, k, loop);
    }
    s = lo;
  }
  int w = free_word(rc, s, kind);
  const TileMirInst src = rc->code->b[j->def[i].p].slot[j->def[i].w];
  rc->code->b[s].slot[w] = spill_op(j, true, j->tmp[i], &src);
  j->store[i] = s;
  return true;
}

/* Gives bundle q's reads of r a value: the temporary of a nearby write of the same
 * region, or a reload. */
static void place_reload(SpillJob *j, int32_t q) {
  RaCode *rc = j->rc;
  int32_t r0, r1;
  ra_region(rc, q, &r0, &r1);
  int32_t loop = rc->inner[q], local = -1;
  for (int32_t i = 0; i < j->ndefs; i++)
    if (j->def[i].p >= r0 && j->def[i].p < q && (local < 0 || j->def[i].p > j->def[local].p))
      local = i;
  int32_t lo;
  if (local >= 0) {
    int32_t p = j->def[local].p, s = j->store[local];
    int32_t lat_d = mir_latency(rc->m->target, rc->code->b[p].slot[j->def[local].w].op);
    bool near = q - p <= lat_d + j->lat_st + j->lat_ld;
    if (near || s < 0 || s + j->lat_st + j->lat_ld > q) {
      for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) rename_reg(&rc->code->b[q].slot[w], j->r, j->tmp[local], false);
      return;
    }
    lo = s + j->lat_st;
  } else {
    lo = r0 + j->lat_st - 1;
  }
  if (lo < r0) lo = r0;
  if (lo < j->addr_ready) lo = j->addr_ready;
  TileSlot kind = j->vec ? TILE_SLOT_VLOAD : TILE_SLOT_SCALAR;
  /* Best a free word the load latency before the read or a little earlier (no new
   * bundle); else the earliest one between that and the read (fewest new bundles). */
  int32_t l = -1;
  for (int32_t x = q - j->lat_ld; x >= lo && x >= q - j->lat_ld - SPILL_WINDOW && l < 0; x--)
    if (free_word(rc, x, kind) >= 0) l = x;
  for (int32_t x = q - j->lat_ld + 1 > lo ? q - j->lat_ld + 1 : lo; x < q && l < 0; x++)
    if (free_word(rc, x, kind) >= 0) l = x;
  int32_t k = l >= 0 ? j->lat_ld - (q - l) : (lo > q ? lo : q) - q + j->lat_ld;
  if (k < 0) k = 0;
  for (int32_t i = 0; i < k; i++) job_insert(j, q, loop);
  if (l < 0) l = lo > q ? lo : q;
  q += k;
  int32_t u = temp_reg(rc->m, j->sp, rc->m->reg_class[j->r]);
  const TileMirInst *src = NULL;
  for (int w = 0; w < TILE_BUNDLE_SLOTS && !src; w++)
    if (reads_reg(&rc->code->b[q].slot[w], j->r)) src = &rc->code->b[q].slot[w];
  TileMirInst ld = spill_op(j, false, u, src);
  rc->code->b[l].slot[free_word(rc, l, kind)] = ld;
  for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) rename_reg(&rc->code->b[q].slot[w], j->r, u, false);
}

bool ra_spill_reg(RaCode *rc, RaSpill *sp, int32_t r) {
  TileMir *m = rc->m;
  const TileTarget *t = m->target;
  ra_spill_grow(sp, m);
  spill_setup(rc, sp, r);
  SpillJob j = {.rc = rc, .sp = sp, .r = r, .vec = m->reg_class[r] == TILE_MIR_VREG};
  j.lat_ld = mir_latency(t, j.vec ? TILE_MOP_VLD : TILE_MOP_SLD);
  j.lat_st = mir_latency(t, j.vec ? TILE_MOP_VST : TILE_MOP_SST);
  j.addr_ready = mir_latency(t, TILE_MOP_LI);
  TileMirCode *c = rc->code;
  int32_t cap = 0;
  for (int32_t p = 0; p < c->nbundles; p++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      MirRegOperand ro[TILE_MAX_OPERANDS];
      const TileMirInst *in = &c->b[p].slot[w];
      int n = mir_reg_operands(in->op, ro);
      for (int k = 0; k < n; k++)
        if (ro[k].write && mir_field_get(in, ro[k].field) == r) {
          if (j.ndefs == cap) {
            cap = cap ? 2 * cap : 8;
            j.def = xrealloc(j.def, (size_t)cap * sizeof *j.def);
            j.tmp = xrealloc(j.tmp, (size_t)cap * sizeof *j.tmp);
            j.store = xrealloc(j.store, (size_t)cap * sizeof *j.store);
          }
          j.def[j.ndefs++] = (Ref){p, w};
        }
    }
  uint8_t *live = live_out_of(rc, r);
  bool ok = true;
  /* Writes in program order, so stores of one region keep the writes' order. */
  for (int32_t i = 0; i < j.ndefs; i++) {
    j.tmp[i] = temp_reg(m, sp, m->reg_class[r]);
    j.store[i] = -1;
  }
  bool *needed = calloc((size_t)j.ndefs + 1, 1);
  for (int32_t i = 0; i < j.ndefs; i++) needed[i] = live[j.def[i].p];
  free(live);
  int32_t prev = -1; /* the last write given a store */
  for (int32_t i = 0; i < j.ndefs && ok; i++) {
    rename_reg(&c->b[j.def[i].p].slot[j.def[i].w], r, j.tmp[i], true);
    if (!needed[i]) continue;
    ok = place_store(&j, i, prev);
    prev = i;
  }
  free(needed);
  /* Reads from the last bundle back: insertions before a read move only what follows. */
  for (int32_t q = c->nbundles - 1; q >= 0 && ok; q--) {
    bool reads = false;
    for (int w = 0; w < TILE_BUNDLE_SLOTS && !reads; w++) reads = reads_reg(&c->b[q].slot[w], r);
    if (reads) place_reload(&j, q);
  }
  free(j.def);
  free(j.tmp);
  free(j.store);
  return ok;
}
