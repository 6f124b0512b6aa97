/* Shardings as data, shared by the shard_prop and spmd passes.
 *
 * A Shard is the parsed form of a `shard = [...]` attribute against one mesh: per
 * tensor dimension, the mesh axes (indices into mesh->axes) it is split over, major
 * to minor; no axes means replicated. A value's shard on a chip is the block of
 * each dimension picked by the chip's coordinates on those axes. */
#ifndef TILE_PASSES_SHARDING_H
#define TILE_PASSES_SHARDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tile/ir.h"

typedef struct Shard {
  uint8_t rank;
  uint8_t n[TILE_MAX_RANK];                     /* axes on each dim */
  uint8_t ax[TILE_MAX_RANK][TILE_MAX_MESH_AXES]; /* mesh axis indices */
} Shard;

/* The mesh a function runs on: its `mesh` attribute, else the module's only mesh;
 * NULL when it has none. */
const TileMesh *shard_func_mesh(const TileModule *m, const TileFunc *f);

Shard shard_replicated(int rank);
/* Parses a verified sharding attribute; false (out untouched) when a is not one. */
bool shard_from_attr(const TileMesh *mesh, const TileAttr *a, int rank, Shard *out);
TileAttr shard_to_attr(TileModule *m, const TileMesh *mesh, const Shard *s);
bool shard_eq(const Shard *a, const Shard *b);
bool shard_dim_eq(const Shard *a, int da, const Shard *b, int db);
bool shard_is_replicated(const Shard *s);
/* Mask of the mesh axes s uses, over all dims (bit i: axis i). */
uint32_t shard_used(const Shard *s);
uint32_t shard_dim_mask(const Shard *s, int d);
/* Copies the axes of src dim ds onto dst dim dd. */
void shard_copy_dim(Shard *dst, int dd, const Shard *src, int ds);
/* How many parts dim d is split into. */
int64_t shard_parts(const TileMesh *mesh, const Shard *s, int d);
/* Whether the split of dim d of s divides a dim of that size into equal blocks (a
 * reshape maps dims of different sizes onto each other). */
bool shard_dim_divides(const TileMesh *mesh, const Shard *s, int d, int64_t size);
/* The per-chip type of a value of global type t sharded by s. */
TileType shard_local_type(const TileMesh *mesh, const Shard *s, TileType t);
/* Writes "[y, (x, z), -]". */
void shard_format(const TileMesh *mesh, const Shard *s, char *buf, size_t size);

/* How the dims of operand k of op map onto the dims of its (first) result: map[i]
 * is the result dim operand dim i becomes, or -1 when it has none (contracted,
 * reduced, sliced, resized). False when op is not a tensor op that keeps any
 * dimension of its operands (collectives other than all_reduce, control flow,
 * multi-result ops), so no sharding flows through it. */
bool shard_dim_map(const TileOp *op, int k, int *map);
/* For a contracted dim i of operand k of a matmul or dot_general: the dim of the
 * other operand it is contracted with, else -1. */
int shard_contract_partner(const TileOp *op, int k, int i);

/* A map from values to indices into a pass's own array of states. */
typedef struct ShardMap {
  const TileValue **keys;
  int *vals;
  size_t cap, n;
} ShardMap;

int shard_map_get(const ShardMap *mp, const TileValue *v); /* -1 when absent */
bool shard_map_put(ShardMap *mp, const TileValue *v, int idx); /* false: out of memory */
void shard_map_free(ShardMap *mp);

#endif
