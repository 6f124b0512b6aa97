/* The torus emulator: runs a VLIW object on a modelled machine, cycle by cycle.
 *
 * Exact for the modelled machine and deterministic: the same object, target, inputs
 * and options give the same output bits, cycle counts, statistics and trace on every
 * run and for any number of host threads. docs/emulator.md gives every rule and
 * formula (issue, latencies, hazards, DMA descriptors and timing, the network, faults).
 *
 *   TileEmuOptions o;
 *   tile_emu_options_default(&o);
 *   TileEmu *e = tile_emu_create(obj, target, &o, &diag);   // NULL: diag says why
 *   tile_emu_set_input(e, "x", bytes, nbytes);
 *   if (tile_emu_run(e) == TILE_EMU_FAULTED) puts(tile_emu_fault(e)->message);
 *   tile_emu_get_output(e, "y", bytes, nbytes);
 *   tile_emu_free(e);
 *
 * Every call that can fail returns false (or a status) and leaves a sentence in
 * tile_emu_error(). A TileEmu is used from one host thread at a time; tile_emu_run
 * starts and joins its own worker threads. */
#ifndef TILE_EMU_H
#define TILE_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/object.h"
#include "tile/target.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum TileEmuMode {
  TILE_EMU_FUNCTIONAL = 0, /* values and timing */
  TILE_EMU_TIMING = 1,     /* timing only: scalar core live, no vector/MXU/DMA data */
} TileEmuMode;

typedef struct TileEmuOptions {
  TileEmuMode mode;
  int threads;      /* host threads (>= 1; more than the chips are not used) */
  bool strict;      /* hazards and DMA over-subscription are faults (default true) */
  bool trace;       /* record a Chrome/Perfetto trace (tile_emu_write_trace) */
  int64_t watchdog; /* cycles before a runaway fault; 0: the target's watchdog_cycles */
  /* Check every register read and write at run time, also those the emulator proves
   * hazard-free before the run (results are the same; slower; for testing the proofs). */
  bool check_all;
} TileEmuOptions;

void tile_emu_options_default(TileEmuOptions *o);
const char *tile_emu_mode_name(TileEmuMode m);
/* "functional" or "timing"; false for anything else. */
bool tile_emu_mode_parse(const char *s, TileEmuMode *m);

/* ---- faults ---- X(ENUM, "name", "what it means") */
#define TILE_EMU_FAULTS(X)                                                             \
  X(NONE, "none", "no fault")                                                          \
  X(HAZARD, "hazard", "a read before its producer landed, or a unit used too soon")    \
  X(OUT_OF_BOUNDS, "out-of-bounds", "an address outside its memory")                   \
  X(MISALIGNED, "misaligned", "a scalar or vector access off its element alignment")   \
  X(BAD_DMA, "bad-dma", "a DMA descriptor that cannot be carried out")                 \
  X(DMA_LIMIT, "dma-limit", "more DMAs in flight than the target allows")              \
  X(BAD_PEER, "bad-peer", "a chip id outside the torus")                               \
  X(BAD_PC, "bad-pc", "control left the program or broke a loop's structure")          \
  X(DEADLOCK, "deadlock", "every chip waits or is halted and nothing can wake a waiter") \
  X(RUNAWAY, "runaway", "the run passed the watchdog's cycle limit")

typedef enum TileEmuFaultKind {
#define X(e, n, m) TILE_EMU_FAULT_##e,
  TILE_EMU_FAULTS(X)
#undef X
  TILE_EMU_FAULT_COUNT
} TileEmuFaultKind;

const char *tile_emu_fault_name(TileEmuFaultKind k);

typedef struct TileEmuFault {
  TileEmuFaultKind kind;
  int32_t chip; /* -1 when no chip is to blame */
  int32_t pc;   /* bundle index */
  int64_t cycle;
  /* "chip 3, pc 17, cycle 2041: v4 read by vadd.f before ..."; for a deadlock, further
   * lines give every chip's state. Owned by the emulator. */
  const char *message;
} TileEmuFault;

/* ---- statistics ----
 * Units are the slot kinds of include/tile/target.h. busy[] counts, per unit:
 *   scalar, vector, vload, vstore, xlu, branch: slot-cycles (ops issued);
 *   mxu: cycles the systolic arrays spend on pushes (mxu_push_cycles per push);
 *   dma: cycles in which at least one of the chip's DMAs is in flight.
 * capacity[] is what 100% utilization would be over the chip's cycles. */
typedef struct TileEmuChipStats {
  int64_t cycles;   /* the chip is done at this cycle (0 if it never finished) */
  int64_t bundles;  /* bundles issued */
  int64_t stall;    /* cycles spent in sem.wait */
  int64_t branch_bubbles; /* cycles lost to taken branches */
  int64_t busy[TILE_SLOT_COUNT];
  int64_t capacity[TILE_SLOT_COUNT];
  int64_t mxu_pushes;
  int64_t dmas;            /* DMAs started */
  int64_t dma_bytes;       /* bytes of local DMAs */
  int64_t bytes_sent;      /* bytes of remote DMAs this chip started */
  int64_t bytes_received;  /* bytes remote DMAs wrote into this chip */
  int64_t signals_sent;    /* remote semaphore signals */
  int64_t hazards_ignored; /* non-strict mode: hazards read through */
} TileEmuChipStats;

typedef struct TileEmuLinkStats {
  int32_t chip;  /* the link leaves this chip */
  int32_t peer;  /* ... towards this one */
  int32_t axis;  /* torus axis */
  int32_t dir;   /* +1 or -1 */
  int64_t bytes;
  int64_t busy;  /* cycles serializing */
  int64_t transfers;
} TileEmuLinkStats;

typedef struct TileEmuStats {
  int64_t cycles; /* the whole run: last chip done or last delivery */
  int32_t nchips;
  const TileEmuChipStats *chips; /* nchips, in chip-id order */
  int32_t nlinks;                /* every one-way link of the torus */
  const TileEmuLinkStats *links; /* in (chip, axis, direction) order */
} TileEmuStats;

typedef enum TileEmuStatus {
  TILE_EMU_OK = 0,      /* every chip halted and drained */
  TILE_EMU_FAULTED = 1, /* tile_emu_fault() says what happened */
  TILE_EMU_ERROR = 2,   /* the run could not be carried out (tile_emu_error()) */
} TileEmuStatus;

typedef struct TileEmu TileEmu;

/* Checks the object against the machine (every op in a slot the target has, registers,
 * units and semaphores that exist, branch targets and loop bodies inside the program,
 * code for every chip, data and symbols inside their memories) and builds the machine.
 * The object and target may be freed afterwards. Errors go to d; returns NULL. */
TileEmu *tile_emu_create(const TileObject *obj, const TileTarget *t, const TileEmuOptions *o,
                         TileDiag *d);
void tile_emu_free(TileEmu *e);
const char *tile_emu_error(const TileEmu *e);
int32_t tile_emu_chips(const TileEmu *e);
const TileTarget *tile_emu_target(const TileEmu *e);

/* ---- data in and out (before and after tile_emu_run) ----
 * A symbol's bytes: its elements in C order, little-endian, bf16 as the top half of
 * the f32 bits, i1 and i8 one byte each; a per-chip symbol takes (and gives) one slice
 * per chip in chip-id order. In timing mode only SMEM holds data: inputs to other
 * spaces are checked and dropped, and reading such an output is an error. */
int64_t tile_emu_symbol_bytes(const TileEmu *e, const char *name); /* -1: no symbol */
bool tile_emu_set_input(TileEmu *e, const char *name, const void *bytes, size_t len);
bool tile_emu_get_output(TileEmu *e, const char *name, void *bytes, size_t len);
/* Raw memory of one chip. */
bool tile_emu_write_memory(TileEmu *e, int32_t chip, TileSpace space, int64_t addr,
                           const void *bytes, size_t len);
bool tile_emu_read_memory(TileEmu *e, int32_t chip, TileSpace space, int64_t addr,
                          void *bytes, size_t len);
/* Registers and semaphores after a run (for tests and debuggers). A vector register is
 * sublanes x lanes 32-bit words. */
int32_t tile_emu_sreg(const TileEmu *e, int32_t chip, int reg);
bool tile_emu_vreg(const TileEmu *e, int32_t chip, int reg, uint32_t *words, size_t nwords);
int64_t tile_emu_sem(const TileEmu *e, int32_t chip, int sem);

/* ---- running ---- */
TileEmuStatus tile_emu_run(TileEmu *e);
/* The fault that stopped the run (kind NONE if none). */
const TileEmuFault *tile_emu_fault(const TileEmu *e);
void tile_emu_stats(const TileEmu *e, TileEmuStats *s);
/* Per-chip cycles; with detail, the unit table, stalls and the bytes on every busy link. */
void tile_emu_print_stats(const TileEmu *e, FILE *out, bool detail);
/* The statistics as JSON (tilec run --stats-json): target, mode, clock_hz, the run's
 * cycles, the fault (null if none), per chip (in chip-id order) its coord, cycles,
 * bundles, stall, branch_bubbles, units {name: {busy, capacity}} in slot order and the
 * counters of TileEmuChipStats; every link of the torus (chip, peer, axis, dir, bytes,
 * busy, transfers). Keys in a fixed order, integers only: the same run gives the same
 * bytes. False if there are no statistics (no run) or the write failed. */
bool tile_emu_write_stats_json(const TileEmu *e, FILE *out);
/* The Chrome trace-event JSON of the run (needs options.trace). */
bool tile_emu_write_trace(TileEmu *e, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
