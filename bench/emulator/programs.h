/* The programs the emulator suite runs, generated as assembly for one chip of a target
 * so their loops fit its latencies without hazards. */
#ifndef BENCH_EMULATOR_PROGRAMS_H
#define BENCH_EMULATOR_PROGRAMS_H

#include <stdint.h>

#include "tile/target.h"

/* Writes the program that runs its loop `iters` times into a malloc'ed string; NULL
 * (with a sentence in why) when the target's shapes or latencies do not fit it. */
typedef char *(*BenchProgram)(const TileTarget *t, int64_t iters, char *why, size_t why_len);

/* The mix: per iteration a push and a pop on every MXU, vector ALU ops, one
 * transcendental, cross-lane reductions, vector loads and stores, scalar work and a
 * local HBM -> VMEM DMA waited on through a semaphore; loop control by `loop`. */
char *bench_mix_program(const TileTarget *t, int64_t iters, char *why, size_t why_len);

/* MXU throughput: every unit holds a 128 x 128 bf16 weight block and takes one 8-row
 * push per period; the results are popped and nothing else runs. */
char *bench_mxu_program(const TileTarget *t, int64_t iters, char *why, size_t why_len);

#endif
