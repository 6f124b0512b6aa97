/* The lowering's own state, shared by lower.c, lower_dma.c and gen_layout.c. Generators
 * written elsewhere see only include/tile/lower.h. */
#ifndef TILE_LOWER_INTERNAL_H
#define TILE_LOWER_INTERNAL_H

#include "tile/lower.h"

/* One placed value: the key is the value, the ref its HBM buffer. */
typedef struct TilePlacement {
  const TileValue *v;
  TileTensorRef ref;
} TilePlacement;

struct TileLowerCtx {
  TileModule *m;
  TileFunc *f;
  TileMir *mir;
  TileDiag *d;
  const TileTarget *target;
  int32_t zero;            /* sreg holding 0 */
  TilePlacement *place;    /* open addressing on the value pointer; cap a power of 2 */
  size_t place_cap, place_n;
  int32_t nscratch;        /* scratch buffers made, for their names */
  bool failed;             /* a placement failed (reported); lowering stops */
  int32_t sems_base;       /* the first semaphore id of every group (ids made before) */
  int32_t sems_used;       /* the most semaphores any group has taken, plus the base */
};

/* Copies bytes from src_buf + src_off to dst_buf + dst_off with one DMA (gen_layout.c). */
void tile_lower_copy(TileLowerCtx *cx, int32_t src_buf, int64_t src_off, int32_t dst_buf,
                     int64_t dst_off, int64_t bytes);

#endif
