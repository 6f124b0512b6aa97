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

#include "tile/mir.h"

enum { RA_MAX_LOOP_BODY = TILE_WIDE_MAX }; /* the `loop` op's body length field */

/* A `loop` op of the code: its body is bundles first .. last, its op sits in bundle
 * first - 1. Loops are kept in the order of their op bundles, parents before children. */
typedef struct RaLoop {
  int32_t first, last;
  int32_t parent; /* index of the enclosing loop, -1 at top level */
} RaLoop;

typedef struct RaCode {
  TileMir *m;
  TileMirCode *code;
  TileDiag *d;
  int32_t nloops;
  RaLoop *loops;
  int32_t *inner; /* per bundle: the innermost loop whose body holds it, or -1 */
  int32_t cap_inner;
} RaCode;

/* Reads the loop structure of rc->code (checking that bodies lie inside the code and
 * nest properly). False with a diagnostic otherwise. */
bool ra_loops_build(RaCode *rc);
void ra_code_free(RaCode *rc);
/* True when loop `outer` is `inner` or encloses it (-1 is the top level). */
bool ra_loop_encloses(const RaCode *rc, int32_t outer, int32_t inner);
/* Inserts an empty bundle at index k directly inside `loop` (-1: top level). k must be a
 * bundle directly inside that loop, or just after its last bundle, or just after a
 * bundle directly inside it that holds a nested loop's `loop` op (the op then moves to
 * the new bundle so it still precedes its body). Loop bodies, loop op lengths and the
 * pipelined-loop records follow. */
void ra_insert(RaCode *rc, int32_t k, int32_t loop);
/* The region of bundle p: the run first..last of bundles directly in the same loop as p
 * (no nested body inside). Control enters a region only at its first bundle. */
void ra_region(const RaCode *rc, int32_t p, int32_t *first, int32_t *last);

/* The spill state of one allocation: where spilled values live. */
typedef struct RaSpill {
  int32_t addr_reg; /* the sreg holding the spill address base (-1 until needed) */
  int32_t vbuf, sbuf; /* the VMEM and SMEM spill buffers (-1 until needed) */
  int32_t nvslots, nsslots;
  int32_t *slot;      /* per virtual register: its spill slot, -1 if not spilled */
  uint8_t *no_spill;  /* per virtual register: a spill temporary or the address base */
  int32_t cap;
  int64_t inserted;   /* bundles added */
} RaSpill;

/* Makes room for the per-register arrays of sp up to m->nregs. */
void ra_spill_grow(RaSpill *sp, const TileMir *m);
/* Rewrites the code so virtual register r lives in a spill slot: every write goes to a
 * fresh temporary stored to the slot once it lands, every read loads a fresh temporary
 * from the slot (or uses the temporary of a nearby write in the same region), inserting
 * bundles where no free slot does it. False with a diagnostic when it cannot. */
bool ra_spill_reg(RaCode *rc, RaSpill *sp, int32_t r);

#endif
