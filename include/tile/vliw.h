/* The VLIW compile of one function: the whole pipeline from tensor-level IR to an
 * object (docs/compiler.md).
 *
 *   tensor passes (decompose keeping attention and rope, fuse)      -> stage FUSED
 *   tile_lower_func (one generator per fusion group)                -> stage MIR
 *   tile_mir_schedule (list + modulo scheduling)                    -> stage SCHED
 *   tile_mir_regalloc, tile_mir_layout                              -> stage ALLOC
 *   tile_mir_emit                                                   -> stage OBJECT
 *
 * A hook sees what each stage made, so a driver can print any of them (--emit=fused,
 * mir, sched, alloc, -S) without knowing the order of the calls. */
#ifndef TILE_VLIW_H
#define TILE_VLIW_H

#include <stdbool.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/mir.h"
#include "tile/object.h"
#include "tile/pass.h"
#include "tile/target.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(ENUM, "name", "what the program is after it") */
#define TILE_VLIW_STAGES(X)                                                         \
  X(FUSED, "fused", "tensor IR after the passes, ops tagged with fusion groups")     \
  X(MIR, "mir", "machine IR: virtual registers, counted loops, symbolic buffers")    \
  X(SCHED, "sched", "bundles, still on virtual registers")                           \
  X(ALLOC, "alloc", "bundles on machine registers, buffers placed")                  \
  X(OBJECT, "object", "the object")

typedef enum TileVliwStage {
#define X(e, n, d) TILE_VLIW_##e,
  TILE_VLIW_STAGES(X)
#undef X
  TILE_VLIW_STAGE_COUNT
} TileVliwStage;

const char *tile_vliw_stage_name(TileVliwStage s);

/* What the compile has made when a stage ends; later fields are NULL before their
 * stage. */
typedef struct TileVliwResult {
  const TileModule *module;
  const TileFunc *func;     /* from MIR on */
  const TileMir *mir;       /* from MIR on */
  const TileMirCode *code;  /* from SCHED on */
  const TileObject *obj;    /* at OBJECT */
} TileVliwResult;

typedef struct TileVliwOptions {
  const TileTarget *target; /* needed from MIR on */
  const char *func;         /* the function to compile; NULL: the module's only func */
  TileVliwStage stop_after; /* the last stage to run (OBJECT for a whole compile) */
  const TilePassPrint *print; /* dumps while the tensor passes run; may be NULL */
  /* Called at the end of every stage that runs; may be NULL. */
  void (*on_stage)(void *user, TileVliwStage stage, const TileVliwResult *r);
  void *user;
} TileVliwOptions;

/* Runs the pipeline on m (rewritten in place by the passes) up to o->stop_after. At
 * OBJECT, *obj gets the object (free it with tile_object_free); before, obj is left
 * empty and may be NULL. Errors go to d: TILE_PASS_FAILED for a program that cannot be
 * compiled (a diagnostic at the source location), TILE_PASS_INTERNAL for a compiler
 * bug. */
TilePassStatus tile_vliw_compile(TileModule *m, const TileVliwOptions *o, TileObject *obj,
                                 TileDiag *d);

/* The func o->func names, or the module's only func; NULL after a diagnostic that
 * lists the funcs there are. */
TileFunc *tile_vliw_find_func(const TileModule *m, const char *name, TileDiag *d);

#ifdef __cplusplus
}
#endif
#endif
