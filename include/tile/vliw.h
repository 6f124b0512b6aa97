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
 * mir, sched, alloc, -S) without knowing the order of the calls.
 *
 * A global program on a mesh (a func on a mesh with `shard` annotations) is first
 * partitioned (the passes shard_prop and spmd) into the program of one chip; its
 * parameters and results are then bound per chip, each chip's its own block. */
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

/* The mesh a func runs on: its `mesh` attribute, else the module's only mesh; NULL
 * when it has none. */
const TileMesh *tile_vliw_func_mesh(const TileModule *m, const TileFunc *f);

/* True when f is a global program the compile partitions: a func on a mesh with a
 * `shard` annotation on a parameter or an op. A func on a mesh without one is taken
 * as one chip's program (its collectives work on per-chip values) and compiled as
 * written. */
bool tile_vliw_func_is_global(const TileModule *m, const TileFunc *f);

/* How one parameter or result of a global program lies on the chips: each dim of the
 * global type is split over naxes[d] mesh axes (indices into mesh->axes, major to
 * minor; none: every chip holds the whole dim). The chip at coordinate c_a on each
 * axis a holds, of dim d, block sum_j(c_aj * prod_{k>j} size_ak) of size
 * global.dims[d] / prod_j size_aj. */
typedef struct TileVliwGlobalValue {
  char name[64]; /* the bound symbol: the parameter's name, or result, result1, ... */
  TileType global;
  int32_t naxes[TILE_MAX_RANK];
  int32_t axes[TILE_MAX_RANK][TILE_MAX_MESH_AXES];
} TileVliwGlobalValue;

typedef struct TileVliwGlobalIo {
  const TileMesh *mesh; /* NULL: the func is not a global program (nothing else is set) */
  int32_t nparams, nresults;
  TileVliwGlobalValue *values; /* the parameters, then the results (in m's arena) */
} TileVliwGlobalIo;

/* For the func a compile of m with o->func = func would choose: when it is a global
 * program, runs shard_prop on m (which it annotates: give a module parsed for this)
 * and reads the shardings of its parameters and results. io->mesh stays NULL for any
 * other func, or when there is no func to choose (the compile reports that). False
 * after a diagnostic (a sharding conflict). */
bool tile_vliw_global_io(TileModule *m, const char *func, TileVliwGlobalIo *io, TileDiag *d);

#ifdef __cplusplus
}
#endif
#endif
