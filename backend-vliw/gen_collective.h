/* Collectives on the torus (backend-vliw/gen_collective*.c): what the lowering asks of
 * the collective generator besides the generator itself (tile_gen_collective, declared
 * by TILE_GROUP_KINDS in include/tile/lower.h). */
#ifndef TILE_GEN_COLLECTIVE_H
#define TILE_GEN_COLLECTIVE_H

#include "tile/ir.h"
#include "tile/target.h"

/* The mesh a function runs on: its `mesh` attribute, else the module's only mesh when
 * the function holds a collective; NULL for a one-chip function. Its parameters and
 * results are then bound per chip (one slice per chip). */
const TileMesh *tile_coll_func_mesh(const TileModule *m, const TileFunc *f);
/* The mesh a collective op of f runs over: its own `mesh` attribute, else f's. */
const TileMesh *tile_coll_op_mesh(const TileModule *m, const TileFunc *f, const TileOp *op);
/* A collective op's axes: its `axes` attribute, else its `axis` (NULL: neither). */
const TileAttr *tile_coll_axes_attr(const TileOp *op);

/* Semaphores a mesh function sets aside for arrivals from other chips: per torus dim,
 * one pair (the two ring directions) per ring it can carry at once (one per prime
 * factor of its length: as many mesh axes as can share it), the dims' pairs in order
 * from the first id the lowering reserves (a 2x2 torus: 4, 4x4: 8, 4x4x4: 12). The
 * lowering numbers every group's own semaphores after them. */
int32_t tile_coll_sem_band(const TileTarget *t);

/* Whether op is a collective_permute the generator runs as a single send of one hop
 * (|shift| mod p is 1 or p - 1, on an axis of one torus dim or a cycle through two such,
 * bytes to move; with halves one such send each way): the ones whose waits the
 * lowering may defer to a later group (lower_async.c). */
bool tile_coll_permute_one_hop(const TileModule *m, const TileFunc *f, const TileOp *op);

/* The sends of such a permute: 2 with halves (one each way round), else 1. */
int tile_coll_permute_sends(const TileOp *op);

#endif
