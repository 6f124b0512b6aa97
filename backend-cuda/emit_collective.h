/* Mesh functions in the CUDA backend (emit_collective.c): partitioning a global program,
 * the order of groups and collectives, and each collective as a TileCudaCollective of
 * the program (include/tile/cuda_torus.h) with the reduce kernel it needs. */
#ifndef TILE_CUDA_EMIT_COLLECTIVE_H
#define TILE_CUDA_EMIT_COLLECTIVE_H

#include <stdbool.h>

#include "cuda_internal.h"

/* The mesh f runs on: its `mesh` attribute, else the module's only mesh when f uses
 * collectives or `shard` annotations; NULL for a one-chip function. */
const TileMesh *ce_func_mesh(const TileModule *m, const TileFunc *f);
/* A global program (a `shard` annotation on a parameter or an op) is rewritten into the
 * program of one chip by shard_prop and spmd, as the VLIW compile does; anything else
 * is left as written. False after a diagnostic. */
bool ce_partition(TileModule *m, TileFunc *f, const TileMesh *mesh, TileDiag *d);
/* Sets the program's torus from the mesh; every axis must be one whole torus dim. */
bool ce_set_mesh(CudaEmit *e, const TileMesh *mesh);

/* One unit of emission: a fusion group (group >= 0, index into the groups) or an
 * ungrouped collective op. */
typedef struct CeUnit {
  int group;
  TileOp *coll;
} CeUnit;

/* Groups and collectives in an order where each comes after the units whose values it
 * reads (ties: the unit whose first op comes first). units has ngroups + collectives
 * entries; *n gets the count. False after a diagnostic (a cycle: a fusion bug). */
bool ce_order_units(CudaEmit *e, const Group *groups, int ngroups, CeUnit *units, int *n);
/* How many collective ops f's body has. */
int ce_count_collectives(const TileFunc *f);

/* A buffer for the result of every collective that has none yet (returned values have
 * theirs). */
bool ce_collective_buffers(CudaEmit *e);
/* Appends the collective op to the program (after the launches so far), with its
 * reduce kernel. */
bool ce_emit_collective(CudaEmit *e, TileOp *op);

#endif
