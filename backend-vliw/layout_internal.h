/* Buffer live ranges for layout (layout.c, layout_live.c). */
#ifndef TILE_LAYOUT_INTERNAL_H
#define TILE_LAYOUT_INTERNAL_H

#include "tile/mir.h"

/* Bundles [first, last] of the scheduled code during which a buffer must keep its
 * memory. */
typedef struct LiveRange {
  int32_t first, last;
} LiveRange;

/* Fills live[0 .. m->nbufs) from code (layout_live.c says how ranges are widened);
 * false when out of memory. */
bool layout_live_ranges(const TileMir *m, const TileMirCode *code, LiveRange *live);

#endif
