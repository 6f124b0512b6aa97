/* Machine descriptions. A target is a text file in targets/ (never constants in code):
 * `key = value` lines, `#` comments. Every parameter of the modelled machine is here;
 * the compiler and the emulator read nothing else about the machine.
 *
 * Times inside the machine are in cycles of `clock_hz`. Bandwidths are given in bytes
 * per second as in the public sources and converted to cycles with exact integer
 * arithmetic: moving S bytes at B bytes/s takes ceil(S * clock_hz / B) cycles
 * (tile_target_xfer_cycles). */
#ifndef TILE_TARGET_H
#define TILE_TARGET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tile/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Latency classes: cycles from issue until the result may be read.
 * X(ENUM, key, meaning) -- key is the target file's `lat.<key>` name. */
#define TILE_LATENCIES(X)                                                   \
  X(SALU, "salu", "scalar ALU op")                                          \
  X(SMEM, "smem", "scalar load from SMEM")                                  \
  X(VALU, "valu", "vector ALU op")                                          \
  X(TRANS, "trans", "transcendental (exp, log, rsqrt, tanh, recip)")        \
  X(VLOAD, "vload", "vector load from VMEM")                                \
  X(VSTORE, "vstore", "vector store: cycles until the data is in VMEM")     \
  X(MXU_WEIGHTS, "mxu_weights", "MXU weight load: cycles until usable")     \
  X(MXU_RESULT, "mxu_result", "MXU push to its result being poppable (fill+drain)") \
  X(MXU_POP, "mxu_pop", "MXU pop into a vector register")                   \
  X(XLU, "xlu", "cross-lane op (reduce, rotate, transpose)")                \
  X(BRANCH, "branch", "taken branch: bundles until the target issues")

typedef enum TileLatency {
#define X(e, k, m) TILE_LAT_##e,
  TILE_LATENCIES(X)
#undef X
  TILE_LAT_COUNT
} TileLatency;

/* Issue slots of a bundle. X(ENUM, key, meaning) -- `slots.<key>` in the target file
 * gives how many of each a bundle has (the encoding holds at most TILE_SLOT_MAX_*). */
#define TILE_SLOTS(X)                                            \
  X(SCALAR, "scalar", "scalar ALU, SMEM load/store")             \
  X(VECTOR, "vector", "vector ALU and transcendentals")          \
  X(VLOAD, "vload", "vector load")                               \
  X(VSTORE, "vstore", "vector store")                            \
  X(MXU, "mxu", "matrix unit: load weights, push LHS, pop result") \
  X(XLU, "xlu", "cross-lane unit")                               \
  X(DMA, "dma", "DMA start and semaphores")                      \
  X(BRANCH, "branch", "branches, loops, halt")

typedef enum TileSlot {
#define X(e, k, m) TILE_SLOT_##e,
  TILE_SLOTS(X)
#undef X
  TILE_SLOT_COUNT
} TileSlot;

#define TILE_MAX_TORUS_RANK 3

/* Which torus axes have wraparound links, as a rule on the axis length (`torus.wrap`),
 * so a torus set from the command line gets the links the real machine would have:
 * v4/v5p wrap axes whose length is a multiple of 4, v5e/v6e only axes of length 16.
 * An axis of length 1 never wraps. */
typedef enum TileWrapRule {
  TILE_WRAP_NEVER,       /* never */
  TILE_WRAP_ALWAYS,      /* always */
  TILE_WRAP_MULTIPLE_OF, /* multiple-of N */
  TILE_WRAP_EQUAL,       /* equal N */
} TileWrapRule;

typedef struct TileTarget {
  char name[64];
  char source[256];          /* which REFERENCE.md rows it copies */
  int64_t clock_hz;
  int32_t slots[TILE_SLOT_COUNT];
  int32_t latency[TILE_LAT_COUNT];
  int32_t vreg_sublanes, vreg_lanes; /* 8 x 128 on TPUs */
  int32_t nvregs, nsregs;
  int32_t mxu_dim, mxu_count;        /* 128 x 128 systolic arrays, count per core */
  int32_t mxu_push_cycles;           /* cycles an MXU is busy per LHS push (8 on TPUs) */
  int64_t vmem_bytes, smem_bytes, hbm_bytes;
  int64_t hbm_bw, vmem_bw;           /* bytes per second */
  int32_t dma_engines, dma_issue_cycles, dma_outstanding;
  int32_t nsems;                     /* semaphores per chip */
  int32_t torus_rank;
  int32_t torus[TILE_MAX_TORUS_RANK];
  bool wrap[TILE_MAX_TORUS_RANK];
  int64_t ici_bw;                    /* one-way bytes per second per link */
  int64_t ici_hop_ns;                /* per-hop latency */
  int64_t watchdog_cycles;           /* strict mode: stop a run after this many */
  uint8_t wrap_rule;                 /* TileWrapRule; wrap[] follows it */
  int32_t wrap_arg;                  /* N of multiple-of N and equal N */
} TileTarget;

/* Parses a target description. Errors (unknown key, missing key, impossible value) go
 * to d with file:line; returns false on any error. */
bool tile_target_parse(const char *src, size_t len, const char *filename, TileTarget *t,
                       TileDiag *d);
/* Loads targets/NAME.target from the search path (TILE_TARGET_PATH, then the source
 * tree's targets/ folder, then the installed one) or a path ending in .target. */
bool tile_target_load(const char *name_or_path, TileTarget *t, TileDiag *d);
/* Overrides the torus shape, e.g. "4x4x4". Wraparound per axis follows the target's
 * rule for the new sizes. */
bool tile_target_set_torus(TileTarget *t, const char *shape, TileDiag *d);
/* Prints the resolved description in the file format (it parses back). */
void tile_target_print(FILE *out, const TileTarget *t);

int64_t tile_target_chips(const TileTarget *t);
/* ceil(bytes * clock_hz / bytes_per_s), exact. */
int64_t tile_target_xfer_cycles(const TileTarget *t, int64_t bytes, int64_t bytes_per_s);
int64_t tile_target_hop_cycles(const TileTarget *t); /* ceil(ici_hop_ns * clock / 1e9) */

#ifdef __cplusplus
}
#endif
#endif
