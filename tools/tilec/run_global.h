/* Global arrays for `tilec run` of a global program on a mesh (run_global.c). */
#ifndef TILEC_RUN_GLOBAL_H
#define TILEC_RUN_GLOBAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tile/ir.h"
#include "tile/target.h"
#include "tile/vliw.h"

typedef struct TilecGlobal {
  TileModule *m;       /* the source parsed once more, annotated by shard_prop */
  TileVliwGlobalIo io; /* io.mesh NULL: not a global program */
} TilecGlobal;

/* Reads how the parameters and results of a .tile source's func lie on the chips.
 * Returns a tilec exit code; g->io.mesh is NULL for a func that is not a global
 * program, and for a source that does not parse (the compile reports it). */
int tilec_global_load(const char *path, const char *src, size_t len, const char *func,
                      TilecGlobal *g);
void tilec_global_free(TilecGlobal *g);

/* The mesh's torus shape as --torus writes it ("2x2"). */
void tilec_global_torus(const TilecGlobal *g, char *buf, size_t n);
/* TILEC_OK when the target's torus is the mesh's and every axis one whole torus dim;
 * else says why (and which --torus to give). */
int tilec_global_check(const TilecGlobal *g, const TileTarget *t);

/* The parameter or result bound to symbol name; NULL when it has none. */
const TileVliwGlobalValue *tilec_global_find(const TilecGlobal *g, const char *name,
                                             size_t len);

/* True when the object's per-chip symbol (rank, dims) is v's block under its
 * sharding; else says so as an internal error (the compile and this reading of the
 * shardings disagree). */
bool tilec_global_blocks_match(const TilecGlobal *g, const TileVliwGlobalValue *v, int rank,
                               const int64_t *dims);

/* Copies between a global array of v and the per-chip array the emulator binds
 * ([chips, local dims...], chips in chip-id order), elements of esize bytes. to_chips:
 * splits global into per_chip; else assembles global from the chips' blocks, a
 * replicated block from the chip at coordinate 0 on the axes v is not split over. */
void tilec_global_copy(const TilecGlobal *g, const TileVliwGlobalValue *v, const TileTarget *t,
                       int esize, void *global, void *per_chip, bool to_chips);

#endif
