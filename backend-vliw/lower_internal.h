/* The lowering's own state, shared by lower.c, lower_dma.c and gen_layout*.c. Generators
 * written elsewhere see only include/tile/lower.h. */
#ifndef TILE_LOWER_INTERNAL_H
#define TILE_LOWER_INTERNAL_H

#include "tile/lower.h"

/* HBM buffers (of funcs and kernels alike) start on this many bytes: a whole DMA
 * burst, and every element size. */
enum { HBM_ALIGN = 64 };

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
  int32_t coll_band;       /* the first id of the collectives' band (a mesh function) */
  /* The last collective with peers whose every result depends on every chip of its
   * axes (all but collective_permute): its buffers [coll_anchor, + coll_anchor_n) (-1:
   * none yet) and its axes as torus (dim, chips, inner) triples, so a later collective
   * over some of those chips can start its receive buffers' lives where this chip
   * started that one (TileMirBuffer.remote_after). */
  int32_t coll_anchor, coll_anchor_n;
  int32_t coll_anchor_naxes;
  int64_t coll_anchor_axes[TILE_MAX_TORUS_RANK][3];
  int32_t sems_used;       /* the most semaphores any group has taken, plus the base */
  /* Cross-group prefetch (lower_prefetch.c): the plan (NULL: none), and for the group
   * being generated its prefetch's semaphore (-1: none), its budget (bytes of weights,
   * 0: none) and the block of DMAs its generator reported (insts [pf_first, pf_end);
   * empty when none). */
  struct TilePfPlan *pf;
  int32_t pf_sem;
  int64_t pf_budget;
  int32_t pf_dmas;         /* DMAs the group's prefetch may keep in flight */
  int32_t pf_first, pf_end;
  int32_t pf_inner;        /* the last of them, which the group waits for itself */
  int64_t pf_copied;       /* bytes of weights those DMAs copy */
  int64_t pf_tail;         /* those computed after the group's last wait for a part */
  /* The most DMAs the group being generated keeps in flight at once, where its
   * generator bounds them (0: not stated; the prefetch then counts every DMA it
   * issues). Generators set it; lower.c records it per group. */
  int32_t dma_cap;
  /* Asynchronous permutes (lower_async.c): the plan (NULL: none), the semaphore their
   * sends complete on (-1: none), whether the group being generated is one. */
  struct TileAsyncPlan *async;
  int32_t async_sem;
  bool async_now;
  /* DMAs of other groups in flight while the group being generated runs (earlier
   * permutes' sends, a later matmul's prefetch), which the enter calls add up; lower.c
   * then has the generators see target_less, the function's target (target_full) with
   * dma.outstanding less them, and marks the group's loops for the modulo scheduler. */
  int32_t dma_reserve;
  const TileTarget *target_full;
  TileTarget target_less;
  /* Weights kept in VMEM across matmul groups (lower_resident.c; NULL: none). */
  struct TileResPlan *res;
};

/* Where a group's code and buffers begin (lower_stage.c). */
typedef struct TileStageGroup {
  int32_t first_inst, first_buf;
  int32_t dma_cap; /* TileLowerCtx.dma_cap after the group was generated */
} TileStageGroup;

/* When the function's initialized SMEM would take more than half of the target's, moves
 * the contents of each group's large SMEM tables to HBM and starts the group by copying
 * them in (lower_stage.c); false when out of memory. */
bool tile_lower_stage_tables(TileLowerCtx *cx, const TileStageGroup *groups, int32_t ngroups);

/* ---- cross-group prefetch (lower_prefetch.c) ---- */

/* What a generator asks: the bytes of weights the group being generated may copy
 * early (0: none), the semaphore those copies signal (*sem) and how many DMAs they may
 * take (*dmas: each is in flight while the groups it is moved across run). */
int64_t tile_lower_prefetch_budget(TileLowerCtx *cx, int32_t *sem, int32_t *dmas);
/* DMAs insts [first, end) issue, each counted as often as its loops run. */
int64_t tile_lower_prefetch_dma_count(const TileMir *m, int32_t first, int32_t end);
/* What the generator answers: insts [first, end) of its code, at loop depth 0 and
 * before any of its own DMA-slot ops, are the prefetch: li of descriptor addresses and
 * `dma`s of bound inputs into its own VMEM (each `dma` naming descriptor, source and
 * destination in that order), on the prefetch semaphore, copying `bytes` of weights. The
 * lowering moves them into an earlier group and adds their waits before the group that
 * reads them, but for the last `inner`: the group waits for those itself, and they land
 * in issue order after the others. `tail` bytes of them the group computes after its
 * last wait for a part (all of them where it waits for none itself). */
void tile_lower_prefetch_block(TileLowerCtx *cx, int32_t first, int32_t end, int64_t bytes,
                               int32_t inner, int64_t tail);

/* A semaphore of the whole function that no group numbers and no peer signals, for
 * transfers that cross groups (lower.c). */
int32_t tile_lower_function_sem(TileLowerCtx *cx);
/* The prefetch plan over a function's live groups in run order (classified): which
 * matmul gets a budget, where its copies and their waits go; takes the semaphores when
 * any does. */
void tile_lower_prefetch_plan(TileLowerCtx *cx, TileGroup *const *groups, int32_t n);
/* Before generating live group k (starts[0..k] set): its budget and DMAs. */
void tile_lower_prefetch_enter(TileLowerCtx *cx, int32_t k, const TileStageGroup *starts);
/* After generating group k: keeps the block its generator reported. */
void tile_lower_prefetch_leave(TileLowerCtx *cx, int32_t k);
/* After all groups: moves each block to its collective and adds its waits, shifting
 * the starts of the groups after; false when out of memory. */
bool tile_lower_prefetch_place(TileLowerCtx *cx, TileStageGroup *starts, int32_t nstarts);

/* ---- weights kept in VMEM across matmul groups (lower_resident.c) ---- */

/* A parameter that several matmul groups read as weights. Its owner, the first group
 * that copies all of it into VMEM, sets vmem and where each piece lies: npieces pieces
 * of Kb rows by Nb columns (be bytes each) of the [.., K, N] weights, piece i from HBM
 * offset src[i] at VMEM offset dst[i] of buffer vmem. (Under the same blocking a
 * piece's offset fixes its K step, so whether it is the padded last one.) */
typedef struct TileResident {
  const TileValue *w;
  int32_t uses;            /* matmul groups reading it */
  int32_t vmem;            /* the owner's buffer; -1 until a group owns it */
  int64_t Kb, Nb, Kr, N;
  int32_t be;
  int64_t npieces;
  int64_t *src, *dst;
} TileResident;

struct TileResPlan {
  TileResident *e;
  int32_t n;
  int64_t room, used;      /* VMEM bytes resident weights may take, and have taken */
};

/* A matmul group's weights (its matmul's right operand, *mm the matmul) when they are
 * a parameter, else NULL. */
const TileValue *tile_lower_group_weights(const TileGroup *g, const TileOp **mm);
/* The plan over a function's live groups (classified): which parameters are read by
 * more than one matmul group and fit the VMEM kept for them. */
void tile_lower_resident_plan(TileLowerCtx *cx, TileGroup *const *groups, int32_t n);
/* The plan's entry for weights w, or NULL. */
TileResident *tile_lower_resident(TileLowerCtx *cx, const TileValue *w);
/* Whether the group being generated may own r with a buffer of `bytes`: none owns it
 * yet and the VMEM kept for resident weights has room (which it then takes). */
bool tile_lower_resident_own(TileLowerCtx *cx, TileResident *r, int64_t bytes);
/* The VMEM offset of r's piece from HBM offset src, or -1. */
int64_t tile_lower_resident_find(const TileResident *r, int64_t src);

/* ---- asynchronous permutes (lower_async.c) ---- */

/* The plan over a function's live groups in run order (classified): which one-hop
 * collective_permutes only send in their group, and before which later group their
 * waits go; takes the semaphore their sends complete on when any does. */
void tile_lower_async_plan(TileLowerCtx *cx, TileGroup *const *groups, int32_t n);
/* Whether live group k is a permute whose waits are deferred. */
bool tile_lower_async_deferred(const TileLowerCtx *cx, int32_t k);
/* Sends of earlier groups in flight while live group k runs (0 without a plan). */
int32_t tile_lower_async_reserve(const TileLowerCtx *cx, int32_t k);
/* Before generating live group k: the target it sees (fewer DMAs in flight where sends
 * of earlier groups are), and whether it is a deferred permute. */
void tile_lower_async_enter(TileLowerCtx *cx, int32_t k);
/* After generating live group k. */
void tile_lower_async_leave(TileLowerCtx *cx, int32_t k);
/* What the permute generator asks: the semaphore its send completes on when the group
 * being generated is a deferred permute; -1 otherwise (it then waits as always). */
int32_t tile_lower_async_sem(TileLowerCtx *cx);
/* What it answers: the n waits of its send (from src_buf to dst_buf by descriptor
 * desc), in the order they are to run; the lowering adds them later. */
void tile_lower_async_defer(TileLowerCtx *cx, const TileMirInst *waits, int32_t n,
                            int32_t src_buf, int32_t dst_buf, int32_t desc);
/* After all groups (and the prefetch's moves): puts every deferred wait into the group
 * the plan chose, at its start (a collective) or before its first touch of the
 * permute's buffers (lower_async.c, first_touch), or at the end before the results'
 * copies, shifting the starts of the groups after; false when out of memory or when code between a send and
 * its waits touches what they guard (reported). */
bool tile_lower_async_place(TileLowerCtx *cx, TileStageGroup *starts, int32_t nstarts);

/* Open addressing on a value pointer (the placements in lower.c, the kernel compiler's
 * value map in gen_kernel.c): cap slots of `size` bytes, each starting with its key, a
 * const TileValue * (NULL in a free slot); cap is 0 or a power of 2. */
void *tile_vmap_find(void *slots, size_t cap, size_t size, const TileValue *v);
/* v's slot, made (key set, the rest zero) when v has none. Grows the table, from
 * first_cap slots, so that it stays at most half full. */
void *tile_vmap_slot(void **slots, size_t *cap, size_t *n, size_t size, size_t first_cap,
                     const TileValue *v);

/* ring_slice and ring_concat: copies of chunks that this chip's position on the op's
 * axis picks (gen_layout_ring.c, for gen_layout.c's table of layout ops). */
bool tile_gen_ring_slice(TileLowerCtx *cx, const TileOp *op);
bool tile_gen_ring_concat(TileLowerCtx *cx, const TileOp *op);

/* Copies bytes from src_buf + src_off to dst_buf + dst_off with one DMA (gen_layout.c). */
void tile_lower_copy(TileLowerCtx *cx, int32_t src_buf, int64_t src_off, int32_t dst_buf,
                     int64_t dst_off, int64_t bytes);

#endif
