/* The time a collective needs on the torus links at the least, from REFERENCE.md
 * ("Collectives"), for the bound of programs that run on a mesh (bound.h). */
#ifndef BENCH_KERNELS_ICI_H
#define BENCH_KERNELS_ICI_H

#include <stdbool.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/target.h"

/* Cycles of collective op (all_reduce, all_gather, reduce_scatter, all_to_all,
 * collective_permute) of a per-chip program on mesh, on target t's links. False with
 * an error in d for an op that is not a collective or names no axis of the mesh. */
bool ici_collective_cycles(const TileOp *op, const TileMesh *mesh, const TileTarget *t,
                           double *cycles, TileDiag *d);

#endif
