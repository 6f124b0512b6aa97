/* Shared state of register allocation (regalloc.c: liveness, intervals, linear scan)
 * and spilling (spill.c: spill code, bundle insertion).
 *
 * Positions: bundle p of the scheduled code has two phases, 2p (its ops read their
 * registers) and 2p + 1 (its ops issue their writes). A register's value occupies a
 * closed range of phases: from the issue of its first write to the later of its last
 * read and the landing of its last write (a write issued at p with latency L lands
 * before the reads of bundle p + L, phase 2(p + L)). Two values may share a machine
 * register exactly when their ranges do not meet: then every write issues at or after
 * the other value's last read (the emulator reads a register before the writes of the
 * same bundle) and after its last write has landed (no "early read" and no "write
 * order" hazard). */
#ifndef TILE_VLIW_REGALLOC_INTERNAL_H
#define TILE_VLIW_REGALLOC_INTERNAL_H

#include <stdbool.h>
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
} RaCode;

/* Reads the loop structure of rc->code (checking that bodies lie inside the code and
 * nest properly) and sizes the per-bundle arrays. False with a diagnostic otherwise. */
bool ra_loops_build(RaCode *rc);
void ra_code_free(RaCode *rc);
/* True when loop `outer` is `inner` or encloses it (-1 is the top level). */
bool ra_loop_encloses(const RaCode *rc, int32_t outer, int32_t inner);
/* Takes the per-bundle loop membership of rewritten code of n bundles (owned from now
 * on); clears live_def. */
void ra_code_set_inner(RaCode *rc, int32_t *inner, int32_t n);

/* The spill state of one allocation: where spilled values live. */
typedef struct RaSpill {
  int32_t addr_reg;   /* the sreg holding the spill address base (-1 until needed) */
  int32_t vbuf, sbuf; /* the VMEM and SMEM spill buffers (-1 until needed) */
  int32_t nvslots, nsslots;
  int32_t *slot;     /* per virtual register: its spill slot, -1 if not spilled */
  uint8_t *no_spill; /* per virtual register: a spill temporary or the address base */
  int32_t cap;
  int64_t inserted; /* bundles added */
} RaSpill;

/* Makes room for the per-register arrays of sp up to m->nregs. */
void ra_spill_grow(RaSpill *sp, const TileMir *m);
/* Rewrites the code so every register r with spill[r] lives in a spill slot: each write
 * goes to a fresh temporary stored to the slot once it lands, each read loads a fresh
 * temporary from the slot (or uses the temporary of a nearby write in the same region),
 * adding bundles where no free slot word does it (spill.c). Needs rc->live_def of the
 * code as it stands. False with a diagnostic when it cannot. */
bool ra_spill_round(RaCode *rc, RaSpill *sp, const uint8_t *spill);

/* Checks that along every path each read of the code finds, in the machine register
 * phys gives it, the value of its own virtual register (ra_check.c). */
bool ra_check_assignment(const RaCode *rc, const int32_t *phys);

#endif
