/* Shared pieces of the schedulers (sched.c, sched_deps.c, sched_list.c,
 * sched_modulo.c): what each op reads and writes, the dependence graph of a stretch or
 * a loop body, and the boundary state that carries results still in flight from one
 * stretch of code into the next.
 *
 * Times inside a stretch are cycles from its first bundle (0). The boundary state
 * measures from the first bundle after the boundary: state value k means "not usable
 * before cycle k of what follows". */
#ifndef TILE_SCHED_INTERNAL_H
#define TILE_SCHED_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tile/diag.h"
#include "tile/isa.h"
#include "tile/mir.h"
#include "tile/target.h"

/* calloc and realloc for the schedulers: zero sizes ask for one byte, and running out
 * of memory stops the compiler with a message (sched_state.c). */
void *sched_calloc(size_t n, size_t size);
void *sched_realloc(void *p, size_t n);

/* ---- what an op touches (from its ISA operand pattern) ---- */

/* vst, vst.bf and sst: register to memory, the bytes landing after the op's latency. */
static inline bool sched_is_store(int op) {
  return op == TILE_MOP_VST || op == TILE_MOP_VSTBF || op == TILE_MOP_SST;
}

/* Ops that take the oldest result of an MXU unit's queue. */
static inline bool sched_is_pop(int op) { return op == TILE_MOP_MXU_POP || op == TILE_MOP_MXU_POPACC; }

typedef struct SchedOpInfo {
  char def;       /* field holding the register written, or 0 */
  int8_t nuse;
  char use[3];    /* fields holding registers read */
  char unit;      /* field holding an MXU unit, or 0 */
  char sem;       /* field holding a semaphore, or 0 */
  uint8_t slot;   /* TileSlot */
  uint8_t lat;    /* TileLatency class */
} SchedOpInfo;

/* The dependence walk's per-register, per-buffer and per-semaphore tables, kept from one
 * graph to the next (sched_deps.c). */
typedef struct SchedScratch SchedScratch;

typedef struct SchedCtx {
  const TileMir *m;
  const TileTarget *t;
  TileDiag *d;
  SchedOpInfo info[TILE_MOP_COUNT];
  SchedScratch *scratch; /* owned: sched_ctx_free */
} SchedCtx;

void sched_ctx_init(SchedCtx *cx, const TileMir *m, TileDiag *d);
void sched_ctx_free(SchedCtx *cx);
/* Latency of op's result (register, MXU result, store landing per its class). */
int32_t sched_lat(const SchedCtx *cx, int op);
int32_t sched_field(const TileMirInst *in, char f);

/* ---- dependence graph ---- */

typedef struct SchedEdge {
  int32_t from, to; /* node indices */
  int32_t lat;      /* to issues >= from issues + lat - ii * dist */
  int32_t dist;     /* iterations between from and to (0 in straight-line code) */
} SchedEdge;

typedef struct SchedGraph {
  int32_t n;                 /* nodes: insts first .. first + n - 1 */
  int32_t first;
  const TileMirInst *ins;    /* m->insts + first */
  int32_t nedges, cap;
  SchedEdge *e;
  /* Compressed adjacency (edge indices), built by sched_graph_index. */
  int32_t *succ_off, *succ, *pred_off, *pred;
  /* A loop body's ResMII and RecMII (sched_res_mii, sched_rec_mii above ResMII), found
   * once when it is built; 0 for straight-line code. */
  int32_t res_mii, rec_mii;
} SchedGraph;

/* Builds the graph of insts [first, first + n) (no loop markers among them).
 *   straight-line (loop = false): every edge has distance 0 and goes forward.
 *   loop body (loop = true): also the loop-carried edges with their distances,
 *     including multi-buffer slots (mir.h) and MXU results popped iterations after their
 *     push; fifo_pending[u] results of unit u are queued before the loop starts.
 * DMA-slot ops keep their program order within an iteration (the generator's program
 * bounds the DMAs in flight; keeping its order keeps that bound). */
void sched_graph_build(const SchedCtx *cx, int32_t first, int32_t n, bool loop,
                       const int64_t *fifo_pending, SchedGraph *g);
void sched_graph_free(SchedGraph *g);

/* ---- boundary state ---- */

typedef struct SchedState {
  int32_t nregs, nunits, nbufs, nsems;
  int32_t len;      /* entries of v */
  int32_t *v;       /* [reg | mxu busy | weights | fifo | transpose | store | signal];
                     * never negative. Written only through sched_state.c, which keeps
                     * `live` */
  /* The entries of v that may be nonzero (every nonzero one is listed, once): few
   * results are in flight at a boundary, so advancing, copying, joining and comparing
   * states cost the entries listed, not len (registers number in the thousands). */
  int32_t *live, nlive;
  uint8_t *listed;  /* per entry of v: in live */
  int64_t *fifo_n;  /* results queued per MXU unit (FIFO_UNKNOWN: not known) */
  int32_t **fifo_t; /* per unit, when fifo_n is known: each queued result's landing,
                     * oldest first (the fifo entry of v is their maximum) */
  int64_t *fifo_cap;
} SchedState;

/* A result queue length that is not known statically (a loop whose body pushes and
 * pops a unit unequally): every pop waits for everything queued. */
#define FIFO_UNKNOWN ((int64_t)1 << 40)

#define S_BUSY(s, u) ((s)->nregs + (u))
#define S_W(s, u) ((s)->nregs + (s)->nunits + (u))
#define S_FIFO(s, u) ((s)->nregs + 2 * (s)->nunits + (u))
#define S_TR(s) ((s)->nregs + 3 * (s)->nunits)
#define S_STORE(s, b) (S_TR(s) + 1 + (b))
#define S_SIG(s, q) (S_TR(s) + 1 + (s)->nbufs + (q))

void sched_state_init(SchedState *s, const TileMir *m);
void sched_state_free(SchedState *s);
void sched_state_copy(SchedState *dst, const SchedState *src);
/* k cycles pass: every value drops by k (not below 0). */
void sched_state_advance(SchedState *s, int32_t k);
/* dst := max(dst, src) elementwise; a queue whose lengths differ becomes unknown. */
void sched_state_join(SchedState *dst, const SchedState *src);
/* True when every value of a is <= b's. */
bool sched_state_le(const SchedState *a, const SchedState *b);
bool sched_fifo_known(const SchedState *s, int32_t u);
/* Drops unit u's per-result times: every later pop waits for its newest result. */
void sched_fifo_forget(SchedState *s, int32_t u);
/* Unit u holds n results, each landing at `at` (a bound for all of them). */
void sched_state_fifo_fill(SchedState *s, int32_t u, int64_t n, int32_t at);

/* Earliest issue cycle of each node of g allowed by the state at the stretch's start
 * (lb[v] >= 0). ii: 0 for straight-line code; for a loop body a lower bound on its II
 * (iteration i's k-th pop of a unit takes queued result i * pops + k, and issues i * II
 * later than iteration 0's). fifo_all: every pop waits for the newest queued result. */
void sched_lower_bounds(const SchedCtx *cx, const SchedGraph *g, const SchedState *in,
                        bool fifo_all, int32_t ii, int32_t *lb);
/* The state after a stretch of `len` cycles that started in state `in` and issued
 * node v at t[v] (t < 0: not issued): out = in advanced by len, joined with every result
 * still landing, the result queues updated. */
void sched_state_after(const SchedCtx *cx, const SchedGraph *g, const int32_t *t, int32_t len,
                       const SchedState *in, SchedState *out);
/* The same after a modulo-scheduled loop: `trips` iterations of g's flat schedule t, one
 * every ii cycles, the last taking last_len cycles to the loop's end. */
void sched_state_after_loop(const SchedCtx *cx, const SchedGraph *g, const int32_t *t, int32_t ii,
                            int32_t trips, int32_t last_len, const SchedState *in,
                            SchedState *out);
/* Counts MXU pushes and pops per unit of insts [first, first + n) into push/pop. */
void sched_count_fifo(const SchedCtx *cx, int32_t first, int32_t n, int64_t *push,
                      int64_t *pop);

/* ---- schedulers ---- */

/* List scheduling of a straight-line graph: t[v] for every node; returns the length in
 * cycles (last issue + 1, 0 for no nodes). lb: earliest cycle per node. */
int32_t sched_list(const SchedCtx *cx, const SchedGraph *g, const int32_t *lb, int32_t *t);

typedef struct SchedModulo {
  int32_t ii, stages, res_mii, rec_mii;
  int32_t *t; /* issue cycle of each node within one iteration's flat schedule */
} SchedModulo;

/* Iterative modulo scheduling of a loop body graph for II in [MII, max(max_ii, MII + 1));
 * false when no schedule is found (res_mii and rec_mii are still set). */
bool sched_modulo(const SchedCtx *cx, const SchedGraph *g, const int32_t *lb, int32_t max_ii,
                  SchedModulo *out);
/* Emits the prologue, the kernel (a hardware loop of trips - stages + 1 runs, its
 * `loop` op in the prologue's last bundle, or in bundle loop_bundle when there is one
 * stage) and the epilogue without its trailing empty bundles; returns the kernel's
 * first bundle. Needs trips >= stages. */
int32_t sched_modulo_emit(const SchedCtx *cx, TileMirCode *c, const SchedGraph *g,
                          const SchedModulo *ms, int32_t trips, int32_t loop_bundle);
/* ResMII of a loop body graph. */
int32_t sched_res_mii(const SchedCtx *cx, const SchedGraph *g);
/* max(floor, RecMII): recurrences are only searched above floor (ResMII), which keeps
 * the common case, recurrences shorter than the resources, to one check per
 * recurrence. */
int32_t sched_rec_mii(const SchedGraph *g, int32_t floor);

/* ---- bundles ---- */

/* Appends k empty bundles; returns the index of the first. */
int32_t sched_code_append(TileMirCode *c, int32_t k);
/* Makes room for n bundles without appending any. */
void sched_code_reserve(TileMirCode *c, int32_t n);
/* Puts in into the first free word of its slot kind in bundle b; false when full. */
bool sched_code_put(const SchedCtx *cx, TileMirCode *c, int32_t b, const TileMirInst *in);

#endif
