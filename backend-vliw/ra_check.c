/* A check of every register assignment before it is written into the code: along every
 * path of the program (fall-through and loop back edges), the machine register an op
 * reads must last have been written for the virtual register the op means. The emulator
 * catches timing hazards, but a value overwritten by another in time would only give a
 * wrong result; this check turns such an allocation bug into a compile-time internal
 * error instead.
 *
 * Forward dataflow over the bundles: for each machine register, the virtual register
 * whose write was issued last (UNDEF before any, CONFLICT where paths disagree). Reads
 * happen before the writes of their bundle. A register read before any write (a value
 * the program never defines) is not checked. Only the first bundle of a loop body has a
 * predecessor besides the bundle before it (the body's last, by the back edge), so the
 * state is kept for those bundles alone and carried along the code in between: sweeps
 * until the body starts stop changing, then one more sweep checks the reads. */
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "regalloc_internal.h"

enum { UNDEF = -1, CONFLICT = -2, NPHYS = 128 }; /* 64 scalar then 64 vector */

static int32_t join(int32_t a, int32_t b) {
  if (a == UNDEF) return b;
  if (b == UNDEF || a == b) return a;
  return CONFLICT;
}

static int slot_of(const RaCode *rc, int32_t v, int32_t phys) {
  return (rc->m->reg_class[v] == TILE_MIR_VREG ? 64 : 0) + phys;
}

/* A register read or write of the code, by machine register. */
typedef struct Acc {
  int32_t slot; /* 0..63 scalar, 64..127 vector */
  int32_t v;    /* the virtual register meant */
  int32_t op;   /* index in rc->ops_* (for messages) */
  int32_t k;    /* its register operand */
} Acc;

typedef struct Check {
  const RaCode *rc;
  const int32_t *phys;
  int32_t *head;     /* per loop: the state at its body's first bundle, from back edges */
  int32_t *loop_at;  /* per bundle: the loop whose body starts there, or -1 */
  int32_t *end_off, *end_loop; /* per bundle p: the loops whose body ends at p */
  /* The reads and writes of bundle p: rd[rd_off[p] .. rd_off[p + 1]), likewise wr,
   * gathered once so the sweeps do not walk the code's slot words again. */
  int32_t *rd_off, *wr_off;
  Acc *rd, *wr;
  uint8_t *halts;    /* per bundle: it halts (the next is not reached by falling) */
} Check;

/* One sweep over the code; with check, reads are checked (the states are final). Returns
 * whether a body start's state changed, or with check, false after reporting a wrong
 * read (*ok cleared). */
static bool sweep(Check *k, bool check, bool *ok) {
  const RaCode *rc = k->rc;
  const TileMirCode *c = rc->code;
  int32_t cur[NPHYS];
  bool changed = false;
  for (int r = 0; r < NPHYS; r++) cur[r] = UNDEF;
  for (int32_t p = 0; p < c->nbundles; p++) {
    if (p > 0 && k->halts[p - 1]) /* not reached by falling */
      for (int r = 0; r < NPHYS; r++) cur[r] = UNDEF;
    int32_t l = k->loop_at[p];
    if (l >= 0)
      for (int r = 0; r < NPHYS; r++) cur[r] = join(cur[r], k->head[(size_t)l * NPHYS + r]);
    for (int32_t i = k->rd_off[p]; i < k->rd_off[p + 1] && check; i++) {
      const Acc *a = &k->rd[i];
      int32_t owner = cur[a->slot];
      if (owner != UNDEF && owner != a->v) {
        const TileMirInst *x = &c->b[p].slot[rc->ops[a->op].w];
        char file = rc->m->reg_class[a->v] == TILE_MIR_VREG ? 'v' : 's';
        *ok = tile_error(rc->d, tile_mir_src_loc(rc->m, x),
                         "internal error: register allocation gave %%%c%d and %s the same "
                         "machine register %c%d, and %s in bundle %d would read the wrong "
                         "one",
                         file, (int)a->v,
                         owner == CONFLICT ? "another value on some path" : "another value",
                         file, (int)k->phys[a->v], mir_op_name(x->op), (int)p);
        return false;
      }
    }
    for (int32_t i = k->wr_off[p]; i < k->wr_off[p + 1]; i++) cur[k->wr[i].slot] = k->wr[i].v;
    /* From a body's last bundle back to its first. */
    for (int32_t e = k->end_off[p]; e < k->end_off[p + 1]; e++) {
      int32_t *h = k->head + (size_t)k->end_loop[e] * NPHYS;
      for (int r = 0; r < NPHYS; r++) {
        int32_t j = join(h[r], cur[r]);
        if (j != h[r]) {
          h[r] = j;
          changed = true;
        }
      }
    }
  }
  return changed;
}

/* Gathers the reads and writes of every bundle, in word order. */
static bool gather(Check *k) {
  const RaCode *rc = k->rc;
  const TileMirCode *c = rc->code;
  const int bw = tile_slot_first(TILE_SLOT_BRANCH);
  int32_t n = c->nbundles, nops = rc->ops_off[n], nrd = 0, nwr = 0;
  for (int32_t i = 0; i < nops; i++) {
    const MirRegOperand *ro;
    int m = mir_regs_of(&rc->regs, rc->ops[i].op, &ro);
    for (int j = 0; j < m; j++) {
      if (ro[j].write)
        nwr++;
      else
        nrd++;
    }
  }
  k->rd_off = malloc(((size_t)n + 1) * sizeof *k->rd_off);
  k->wr_off = malloc(((size_t)n + 1) * sizeof *k->wr_off);
  k->rd = malloc(((size_t)nrd + 1) * sizeof *k->rd);
  k->wr = malloc(((size_t)nwr + 1) * sizeof *k->wr);
  k->halts = calloc((size_t)n + 1, 1);
  if (!k->rd_off || !k->wr_off || !k->rd || !k->wr || !k->halts) return false;
  nrd = nwr = 0;
  for (int32_t p = 0; p < n; p++) {
    k->rd_off[p] = nrd;
    k->wr_off[p] = nwr;
    for (int32_t i = rc->ops_off[p]; i < rc->ops_off[p + 1]; i++) {
      const RaOp *o = &rc->ops[i];
      if (o->w == bw && o->op == TILE_MOP_HALT) k->halts[p] = 1;
      const MirRegOperand *ro;
      int m = mir_regs_of(&rc->regs, o->op, &ro);
      for (int j = 0; j < m; j++) {
        int32_t v = ra_op_field_get(o, ro[j].field);
        Acc a = {slot_of(rc, v, k->phys[v]), v, i, j};
        if (ro[j].write)
          k->wr[nwr++] = a;
        else
          k->rd[nrd++] = a;
      }
    }
  }
  k->rd_off[n] = nrd;
  k->wr_off[n] = nwr;
  return true;
}

bool ra_check_assignment(const RaCode *rc, const int32_t *phys) {
  int32_t n = rc->code->nbundles, nl = rc->nloops;
  Check k = {.rc = rc, .phys = phys};
  k.head = malloc(((size_t)nl + 1) * NPHYS * sizeof *k.head);
  k.loop_at = malloc(((size_t)n + 1) * sizeof *k.loop_at);
  k.end_off = calloc((size_t)n + 2, sizeof *k.end_off);
  k.end_loop = calloc((size_t)nl + 1, sizeof *k.end_loop);
  int32_t *fill = calloc((size_t)n + 1, sizeof *fill);
  bool ok = k.head && k.loop_at && k.end_off && k.end_loop && fill && gather(&k);
  if (ok) {
    for (size_t i = 0; i < ((size_t)nl + 1) * NPHYS; i++) k.head[i] = UNDEF;
    for (int32_t p = 0; p <= n; p++) k.loop_at[p] = -1;
    for (int32_t l = 0; l < nl; l++) {
      k.loop_at[rc->loops[l].first] = l;
      k.end_off[rc->loops[l].last + 1]++;
    }
    for (int32_t p = 0; p < n; p++) k.end_off[p + 1] += k.end_off[p];
    for (int32_t l = 0; l < nl; l++) {
      int32_t p = rc->loops[l].last;
      k.end_loop[k.end_off[p] + fill[p]++] = l;
    }
    while (sweep(&k, false, &ok)) {
    }
    sweep(&k, true, &ok);
  } else {
    ok = tile_error(rc->d, (TileLoc){0}, "out of memory checking register allocation");
  }
  free(k.head);
  free(k.loop_at);
  free(k.end_off);
  free(k.end_loop);
  free(k.rd_off);
  free(k.wr_off);
  free(k.rd);
  free(k.wr);
  free(k.halts);
  free(fill);
  return ok;
}
