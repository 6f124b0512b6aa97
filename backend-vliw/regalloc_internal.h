/* Shared state of register allocation (regalloc.c: the pass and the linear scan;
 * ra_live.c: webs and live ranges; spill.c: spill code; ra_code.c: loop structure;
 * ra_check.c: the proof of the result).
 *
 * Positions: bundle p of the scheduled code has two phases, 2p (its ops read their
 * registers) and 2p + 1 (its ops issue their writes). A value occupies a set of phases
 * (a live range with holes, RaLive): every phase where it is live, and every phase from
 * the issue of one of its writes to the landing (a write issued at p with latency L
 * lands before the reads of bundle p + L, phase 2(p + L), following the code's control
 * flow: around a loop's back edge and out of the loop). Two values may share a machine
 * register exactly when their sets do not meet: then every write issues at or after the
 * other value's last read before it (the emulator reads a register before the writes
 * of the same bundle) and after the other value's write has landed (no "early read" and
 * no "write order" hazard). */
#ifndef TILE_VLIW_REGALLOC_INTERNAL_H
#define TILE_VLIW_REGALLOC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir_util.h"
#include "tile/mir.h"

enum { RA_MAX_LOOP_BODY = TILE_WIDE_MAX }; /* the `loop` op's body length field */

/* A `loop` op of the code: its body is bundles first .. last, its op sits in bundle
 * first - 1. Loops are kept in the order of their op bundles, parents before children. */
typedef struct RaLoop {
  int32_t first, last;
  int32_t parent; /* index of the enclosing loop, -1 at top level */
} RaLoop;

/* Scheduled code under allocation (ra_code.c). */
typedef struct RaCode {
  TileMir *m;
  TileMirCode *code;
  TileDiag *d;
  int32_t nloops;
  RaLoop *loops;
  int32_t *info_loop; /* per code->loops record: the loop it describes, or -1 */
  int32_t n, cap;     /* bundles, and the size of the per-bundle arrays */
  int32_t *inner;     /* per bundle: the innermost loop whose body holds it, or -1 */
  uint16_t *live_def; /* per bundle: bit w set when word w's result is read later */
  MirRegTable regs;   /* register operands per op */
  /* The ops of the code, bundle by bundle, copied out of the bundles by one walk over
   * them: most slot words are nops (a kernel of 40k bundles holds some 25k ops in 440k
   * words) and the bundles are tens of MiB, so the passes after that walk read these
   * instead of every word, or every op's scattered inst. Bundle p's ops are
   * ops[ops_off[p] .. ops_off[p + 1]), in word order. Rebuilt whenever the code is
   * rewritten (ra_ops_build). Webs are renamed here only; ra_ops_flush writes the
   * register fields back into the code when it is next read (spill code) or kept as it
   * is (a failed allocation); a finished allocation writes machine registers from here.
   * Freed by ra_ops_free. */
  int32_t ops_n;      /* bundles covered */
  int32_t *ops_off;
  struct RaOp *ops;
} RaCode;

/* One op of the code: its slot word and the fields the passes read. */
typedef struct RaOp {
  uint16_t op;
  uint8_t w;
  int32_t d, a, b, c, imm, imm_buf;
} RaOp;

/* A field of an op, as mir_field_get reads it from the inst. */
static inline int32_t *ra_op_field(RaOp *o, char f) {
  switch (f) {
  case 'd': return &o->d;
  case 'a': return &o->a;
  case 'b': return &o->b;
  case 'c':
  case 'w': return &o->c;
  default: return &o->imm;
  }
}

static inline int32_t ra_op_field_get(const RaOp *o, char f) { return *ra_op_field((RaOp *)o, f); }

/* Lists the ops of rc->code (regalloc.c). */
void ra_ops_build(RaCode *rc);
void ra_ops_flush(RaCode *rc);
void ra_ops_free(RaCode *rc);

/* Reads the loop structure of rc->code (checking that bodies lie inside the code and
 * nest properly) and sizes the per-bundle arrays. False with a diagnostic otherwise. */
bool ra_loops_build(RaCode *rc);
void ra_code_free(RaCode *rc);
/* calloc and realloc for register allocation: zero sizes ask for one byte, and running
 * out of memory stops the compiler with a message. */
void *ra_calloc(size_t n, size_t size);
void *ra_realloc(void *p, size_t n);
/* True when loop `outer` is `inner` or encloses it (-1 is the top level). */
bool ra_loop_encloses(const RaCode *rc, int32_t outer, int32_t inner);
/* Takes the per-bundle loop membership of rewritten code of n bundles (owned from now
 * on); clears live_def. */
void ra_code_set_inner(RaCode *rc, int32_t *inner, int32_t n);

typedef struct RaLive RaLive; /* live ranges (below) */

/* The spill state of one allocation: where spilled values live. */
typedef struct RaSpill {
  int32_t addr_reg;   /* the sreg holding the spill address base (-1 until needed) */
  int32_t sbuf;       /* the SMEM spill buffer (-1 until needed) */
  int32_t nsslots;
  int32_t *slot;     /* per virtual register, -1 if not spilled: a vreg's VMEM buffer,
                      * an sreg's word in sbuf */
  uint8_t *no_spill; /* per virtual register: a spill temporary or the address base */
  int32_t cap;
  int64_t inserted; /* bundles added */
} RaSpill;

/* Makes room for the per-register arrays of sp up to m->nregs. */
void ra_spill_grow(RaSpill *sp, const TileMir *m);
/* Rewrites the code so every register r with spill[r] lives in a spill slot: each write
 * goes to a fresh temporary stored to the slot once it lands, each read loads a fresh
 * temporary from the slot (or uses the temporary of a nearby write in the same region),
 * adding bundles where no free slot word does it (spill.c). A register lv->remat marks
 * is not stored: its writes go, and each read recomputes the constant instead. Needs rc->live_def of the
 * code as it stands. False with a diagnostic when it cannot. */
bool ra_spill_round(RaCode *rc, RaSpill *sp, const RaLive *lv, const uint8_t *spill);

/* ---- live ranges (ra_live.c) ---- */

/* A closed range of phases. */
typedef struct RaSeg {
  int32_t lo, hi;
} RaSeg;

/* The live ranges of one round: for each virtual register, the sorted, disjoint,
 * non-adjacent segments of phases its value occupies a machine register (every phase
 * where it is live, and every phase from the issue of each of its writes to the
 * landing), so two registers may share a machine register exactly when their segments
 * do not meet. */
struct RaLive {
  int32_t nregs;
  int32_t *off; /* segments of register r: seg[off[r] .. off[r + 1]) */
  RaSeg *seg;
  double *weight;  /* reads and writes, 8x per loop level */
  int64_t *len;    /* phases covered */
  uint8_t *remat;  /* every write is the same `li` or `vli` (spilling recomputes it) */
  int32_t renamed; /* registers added this round, one per extra web */
};

/* Gives every web of a register (a set of writes and the reads they reach) beyond its
 * first a fresh virtual register of its own, rewriting rc->ops (a no_spill mark
 * follows), then computes the live ranges of all registers and rc->live_def. Liveness
 * is exact per bundle: a value is live around a loop's back edge only when the next
 * iteration reads it before writing it. */
void ra_live_build(RaCode *rc, RaSpill *sp, RaLive *lv);
void ra_live_free(RaLive *lv);

/* Checks that along every path each read of the code finds, in the machine register
 * phys gives it, the value of its own virtual register (ra_check.c). */
bool ra_check_assignment(const RaCode *rc, const int32_t *phys);

/* The bundle word holding branches and loops. */
static inline int ra_branch_word(void) { return tile_slot_first(TILE_SLOT_BRANCH); }

#endif
