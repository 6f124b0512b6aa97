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
 * the program never defines) is not checked. */
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

bool ra_check_assignment(const RaCode *rc, const int32_t *phys) {
  const TileMirCode *c = rc->code;
  int32_t n = c->nbundles;
  int32_t *in = malloc(((size_t)n + 1) * NPHYS * sizeof *in);
  if (!in) return tile_error(rc->d, (TileLoc){0}, "out of memory checking register allocation");
  for (size_t i = 0; i < ((size_t)n + 1) * NPHYS; i++) in[i] = UNDEF;
  const int bw = tile_slot_first(TILE_SLOT_BRANCH);
  /* back[p] .. : the first bundles of the loops whose body ends at p */
  int32_t *off = calloc((size_t)n + 2, sizeof *off),
          *to = calloc((size_t)rc->nloops + 1, sizeof *to);
  if (!off || !to) {
    free(in);
    free(off);
    free(to);
    return tile_error(rc->d, (TileLoc){0}, "out of memory checking register allocation");
  }
  for (int32_t l = 0; l < rc->nloops; l++) off[rc->loops[l].last + 1]++;
  for (int32_t p = 0; p < n; p++) off[p + 1] += off[p];
  {
    int32_t *used = calloc((size_t)n + 1, sizeof *used);
    for (int32_t l = 0; used && l < rc->nloops; l++) {
      int32_t p = rc->loops[l].last;
      to[off[p] + used[p]++] = rc->loops[l].first;
    }
    free(used);
  }
  int32_t cur[NPHYS];
  bool changed = true, ok = true;
  /* Sweeps until nothing changes: each bundle's state is the join of what reaches it. */
  while (changed) {
    changed = false;
    for (int32_t p = 0; p < n; p++) {
      memcpy(cur, in + (size_t)p * NPHYS, sizeof cur);
      for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
        const TileMirInst *x = &c->b[p].slot[w];
        const MirRegOperand *ro;
        int k = mir_regs_of(&rc->regs, x->op, &ro);
        for (int i = 0; i < k; i++)
          if (ro[i].write) {
            int32_t v = mir_field_get(x, ro[i].field);
            cur[slot_of(rc, v, phys[v])] = v;
          }
      }
      /* To the next bundle, and from a body's last bundle back to its first. */
      bool falls = p + 1 < n && c->b[p].slot[bw].op != TILE_MOP_HALT;
      for (int32_t e = off[p] - (falls ? 1 : 0); e < off[p + 1]; e++) {
        int32_t *t = in + (size_t)(e < off[p] ? p + 1 : to[e]) * NPHYS;
        for (int r = 0; r < NPHYS; r++) {
          int32_t j = join(t[r], cur[r]);
          if (j != t[r]) {
            t[r] = j;
            changed = true;
          }
        }
      }
    }
  }
  for (int32_t p = 0; p < n && ok; p++) {
    const int32_t *st = in + (size_t)p * NPHYS;
    for (int w = 0; w < TILE_BUNDLE_SLOTS && ok; w++) {
      const TileMirInst *x = &c->b[p].slot[w];
      const MirRegOperand *ro;
      int k = mir_regs_of(&rc->regs, x->op, &ro);
      for (int i = 0; i < k && ok; i++) {
        if (ro[i].write) continue;
        int32_t v = mir_field_get(x, ro[i].field), owner = st[slot_of(rc, v, phys[v])];
        if (owner != UNDEF && owner != v)
          ok = tile_error(rc->d, x->src_loc,
                          "internal error: register allocation gave %%%c%d and %s the same "
                          "machine register %c%d, and %s in bundle %d would read the wrong one",
                          ro[i].cls == TILE_MIR_VREG ? 'v' : 's', (int)v,
                          owner == CONFLICT ? "another value on some path" : "another value",
                          ro[i].cls == TILE_MIR_VREG ? 'v' : 's', (int)phys[v], mir_op_name(x->op),
                          (int)p);
      }
    }
  }
  free(in);
  free(off);
  free(to);
  return ok;
}
