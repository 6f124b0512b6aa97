/* Passes and the pass manager.
 *
 * A pass is one row of the table below: X(name, function, "one-line summary").
 * Its function rewrites the module in place and returns a TilePassStatus; it may
 * assume a verified module. The pipeline (tile_pipeline) is the ordered list of
 * pass names a full compile runs; every stage of the driver is a prefix of it.
 *
 * The manager runs passes in order and verifies the module after each one: a pass
 * that leaves IR the verifier rejects has a bug, reported as an internal error
 * ("internal error: after pass 'X': <verifier message>"). It can print the module
 * after a named pass or after every pass, each dump under a header line
 * `// ----- IR after pass 'X' -----` (a comment, so a dump still parses). */
#ifndef TILE_PASS_H
#define TILE_PASS_H

#include <stdbool.h>
#include <stdio.h>

#include "tile/diag.h"
#include "tile/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, function, summary) */
#define TILE_PASSES(X)                                                                  \
  X(decompose, tile_pass_decompose,                                                     \
    "rewrite composite ops (softmax, norms, gelu, silu, rope, attention) into core ops, " \
    "in f32")                                                                        \
  X(fuse, tile_pass_fuse,                                                               \
    "tag ops with fusion groups (group = N): matmul epilogues, row-wise chains, "        \
    "one group per attention, gather, selection and layout op")                        \
  X(shard_prop, tile_pass_shard_prop,                                                   \
    "give every tensor value of a func on a mesh a sharding (`shard`), propagated "     \
    "from the annotations forward and backward")                                        \
  X(spmd, tile_pass_spmd,                                                               \
    "rewrite each func on a mesh into the per-chip program on local shapes, with "      \
    "collectives where shardings change")                                               \
  X(coll_matmul, tile_pass_coll_matmul,                                                 \
    "run a sequence-parallel block (all_gather of rows, row-local matmuls, "            \
    "reduce_scatter of rows) once per chunk of rows, each step's matmuls beside a "     \
    "one-hop collective_permute of the next chunk and the running sums")                \
  X(coll_split, tile_pass_coll_split,                                                   \
    "cut an all_reduce, reduce_scatter or all_gather whose receive slots would crowd "  \
    "VMEM into pieces along a dim it does not gather or scatter, one collective each")

/* The outcome of a pass, or of a run of passes. The values are the driver's exit
 * codes: the program was bad (errors reported), or the compiler was. */
typedef enum TilePassStatus {
  TILE_PASS_OK = 0,
  TILE_PASS_FAILED = 1,   /* the program cannot be compiled; errors are in the diag */
  TILE_PASS_INTERNAL = 2, /* a compiler bug; the message is in the diag */
} TilePassStatus;

typedef TilePassStatus TilePassFn(TileModule *m, TileDiag *d);

typedef struct TilePass {
  const char *name;
  TilePassFn *run;
  const char *summary;
} TilePass;

#define X(name, fn, summary) TilePassFn fn;
TILE_PASSES(X)
#undef X

extern const TilePass tile_passes[];
extern const int tile_npasses;
/* NULL when no pass has that name. */
const TilePass *tile_pass_find(const char *name);

/* The full pipeline in order, by pass name. */
extern const char *const tile_pipeline[];
extern const int tile_pipeline_len;
/* The position of a pass in the pipeline, or -1. */
int tile_pipeline_index(const char *name);

/* What to print while passes run. */
typedef struct TilePassPrint {
  FILE *out;         /* where dumps go; NULL prints nothing */
  const char *after; /* print after the pass of this name */
  bool after_all;    /* print after every pass */
} TilePassPrint;

/* Runs n passes in order on m, verifying after each; stops at the first that
 * does not succeed. print may be NULL. Errors go to d. */
TilePassStatus tile_run_passes(TileModule *m, const TilePass *const *passes, int n,
                               const TilePassPrint *print, TileDiag *d);
/* The same with passes named; an unknown name is an error (TILE_PASS_FAILED) that
 * lists the passes there are, and nothing runs. */
TilePassStatus tile_run_pipeline(TileModule *m, const char *const *names, int n,
                                 const TilePassPrint *print, TileDiag *d);

/* Writes the names of every pass, separated by ", ", into buf (truncated to size). */
void tile_pass_names(char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
