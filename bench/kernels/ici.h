/* The time a collective needs on the torus links at the least, from REFERENCE.md
 * ("Collectives"), for the bound of programs that run on a mesh (bound.h). */
#ifndef BENCH_KERNELS_ICI_H
#define BENCH_KERNELS_ICI_H

#include <stdbool.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/target.h"

/* One axis a collective runs over: its chips and whether its links wrap. */
typedef struct IciAxis {
  double chips;
  bool ring;
} IciAxis;

/* The two terms of an all-gather (or reduce-scatter) of an array of v bytes over the
 * axes at once: *lat = alpha * sum of the hops to the farthest chip (n / 2 on a ring,
 * n - 1 on a line), *bw = (1 - 1/N) v / sum of the links' width into a chip (2b on a
 * ring, b at a line's end). An all-reduce takes twice each. */
void ici_gather_terms(const TileTarget *t, const IciAxis *axes, int naxes, double v,
                      double *lat, double *bw);

/* Cycles of collective op (all_reduce, all_gather, reduce_scatter, all_to_all,
 * collective_permute) of a per-chip program on mesh, on target t's links. False with
 * an error in d for an op that is not a collective or names no axis of the mesh. */
bool ici_collective_cycles(const TileOp *op, const TileMesh *mesh, const TileTarget *t,
                           double *cycles, TileDiag *d);

#endif
