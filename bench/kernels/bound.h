/* The analytical lower bound on a kernel's cycles, from its tensor-level program and the
 * target: no schedule on the machine can take fewer cycles than the busiest resource
 * needs for the work the program asks for.
 *
 *   mxu     MACs / (mxu_count * sublanes * dim * dim / mxu_push_cycles): one push is
 *           sublanes x dim x dim MACs on one unit, which is busy mxu_push_cycles for it
 *   hbm     bytes read and written once / (hbm_bw / clock_hz)
 *   vector  vector ops / slots.vector
 *   xlu     cross-lane ops / slots.xlu
 *   vload   vector loads (each input tile once) / slots.vload
 *   vstore  vector stores (each result tile once) / slots.vstore
 *   ici     the collectives of a per-chip program on a mesh, one after another, each
 *           at its torus time (ici.h)
 *
 * bench/kernels/bound.c counts the work per op; docs/perf.md ("Kernels") gives the
 * table of counts and why each is a minimum. */
#ifndef BENCH_KERNELS_BOUND_H
#define BENCH_KERNELS_BOUND_H

#include <stdbool.h>
#include <stdint.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/target.h"

/* X(ENUM, "name") -- the resources of the bound, in the order tables print them. */
#define BOUND_RESOURCES(X) \
  X(MXU, "mxu")            \
  X(HBM, "hbm")            \
  X(VECTOR, "vector")      \
  X(XLU, "xlu")            \
  X(VLOAD, "vload")        \
  X(VSTORE, "vstore")      \
  X(ICI, "ici")

typedef enum BoundResource {
#define X(e, n) BOUND_##e,
  BOUND_RESOURCES(X)
#undef X
  BOUND_COUNT
} BoundResource;

typedef struct KernelWork {
  double macs;          /* multiply-accumulates on the matrix units */
  double hbm_bytes;     /* read + written */
  double vector_ops;    /* vreg-tile ops in vector slots (ALU and transcendental) */
  double xlu_ops;       /* cross-lane ops */
  double vloads, vstores;
  double ici_cycles;    /* collectives on the torus links */
  double cycles[BOUND_COUNT]; /* each resource's cycles on the target */
  double bound;         /* the largest */
  BoundResource binding;
} KernelWork;

const char *bound_resource_name(BoundResource r);

/* Counts the work of function f (a tensor-level `func`) and its cycles on t. An op the
 * model has no count for is an error in d (false): the bound must cover every op. */
bool kernel_work(const TileFunc *f, const TileTarget *t, KernelWork *w, TileDiag *d);
/* The same for the per-chip program of a mesh (after partitioning), whose collectives
 * count on the links of t's torus. */
bool program_work(const TileFunc *f, const TileMesh *mesh, const TileTarget *t, KernelWork *w,
                  TileDiag *d);

#endif
