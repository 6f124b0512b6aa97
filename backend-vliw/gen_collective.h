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

/* Semaphores a mesh function sets aside for arrivals from other chips: one per torus
 * axis and ring direction, ids (first + 2 * axis + direction) for the first id the
 * lowering reserves. The lowering numbers every group's own semaphores after them. */
int32_t tile_coll_sem_band(const TileTarget *t);

#endif
