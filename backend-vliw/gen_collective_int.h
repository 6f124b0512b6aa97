/* The collective generator's own state, shared by gen_collective.c (the ops: what each
 * collective moves where) and gen_collective_ring.c (the ring steps: remote DMAs,
 * semaphores, reductions on the VPU). */
#ifndef TILE_GEN_COLLECTIVE_INT_H
#define TILE_GEN_COLLECTIVE_INT_H

#include "gen_collective.h"
#include "lower_internal.h"

/* One mesh axis a collective runs over; each is one torus dimension. */
typedef struct CollAxis {
  const char *name;
  int32_t dim;      /* torus dimension */
  int64_t p;        /* chips along it */
  int64_t stride;   /* chip-id step of one coordinate step (ids are row-major) */
  bool wrap;        /* a wraparound link joins its ends */
} CollAxis;

/* How the VPU combines two partial results. */
typedef struct CollReduce {
  int vop;          /* vector ALU op (TILE_MOP_VADDF, ...) */
  int load, store;  /* vld / vst flavour of the element type */
  int64_t tile_bytes;   /* one vreg tile (sublanes x lanes elements) in memory */
  int32_t stride_reg;   /* sreg: bytes from one sublane's row to the next */
} CollReduce;

typedef struct Coll {
  TileLowerCtx *cx;
  TileMir *m;
  const TileOp *op;
  int32_t naxes;
  CollAxis ax[TILE_MAX_TORUS_RANK];
  int32_t chipid;                  /* sreg: this chip's id */
  /* Per direction d (0: rings toward +coordinate, 1: toward -) and axis k: this chip's
   * position in the ring (q, or (p - q) mod p) and the chip after it. */
  int32_t pos[2][TILE_MAX_TORUS_RANK];
  int32_t next[2][TILE_MAX_TORUS_RANK];
  int32_t sem_sent[2];             /* counts this chip's remote sends as they land */
  int32_t sem_local;               /* counts local copies (one in flight at a time) */
} Coll;

/* A tensor seen around one dim: outer (elements before it) x that dim x inner bytes. */
typedef struct CollAround {
  int64_t outer, mid, inner_bytes;
} CollAround;
CollAround coll_around(const TileTensorRef *t, int64_t dim);

/* ---- memory (gen_collective_ring.c) ---- */

TileDmaShape coll_flat(int64_t bytes);
/* A remote descriptor to the next chip of axis k's ring in direction dir, from src_buf
 * here into dst_buf there, with `shape`; arrivals count on the band semaphore of that
 * ring. Sends store only the two address words. */
typedef struct CollRemote {
  TileDmaSite site; /* sem: counts this chip's sends as they land */
  int32_t dst_sem;  /* signalled on the receiving chip; -1 for a local copy */
} CollRemote;
CollRemote coll_remote(Coll *c, int k, int dir, int32_t src_buf, int32_t dst_buf,
                       TileDmaShape shape);
void coll_remote_send(Coll *c, const CollRemote *r, int32_t src_reg, int32_t dst_reg);
/* Waits until this chip's send has landed and the previous chip's has landed here. */
void coll_remote_wait(Coll *c, const CollRemote *r);

/* Local copies: a descriptor from src_buf to dst_buf with `shape`, made once (before a
 * loop that reuses it), and one copy to the addresses in the registers, waited for. */
CollRemote coll_copy_site(Coll *c, int32_t src_buf, int32_t dst_buf, TileDmaShape shape);
void coll_copy(Coll *c, const CollRemote *s, int32_t src_reg, int32_t dst_reg);
/* coll_copy_site and coll_copy at once; a register argument < 0 takes the address of
 * that buffer plus its offset. */
void coll_local_copy(Coll *c, int32_t src_buf, int64_t src_off, int32_t src_reg,
                     int32_t dst_buf, int64_t dst_off, int32_t dst_reg, TileDmaShape shape);

/* ---- scalar code (gen_collective_ring.c) ---- */

/* A fresh sreg holding imm. */
int32_t coll_li(Coll *c, int64_t imm);
/* A fresh sreg holding the address of buf plus off. */
int32_t coll_addr(Coll *c, int32_t buf, int64_t off);
/* d := a OP b and d := a OP imm into a given register (d may be a or b). */
void coll_rr(Coll *c, int op, int32_t d, int32_t a, int32_t b);
void coll_ri(Coll *c, int op, int32_t d, int32_t a, int64_t imm);
/* off := (off -/+ chunk) mod region, for off in [0, region). */
void coll_step_back(Coll *c, int32_t off, int64_t chunk, int64_t region);
void coll_step_on(Coll *c, int32_t off, int64_t chunk, int64_t region);
/* A fresh sreg: sum over axes k of pos[dir][k] * unit[k] (unit 0 skips the axis). */
int32_t coll_rank_sum(Coll *c, int dir, const int64_t *unit);

/* Reads coordinates and ring neighbours of every axis (the collective's first code);
 * sets up the semaphores remote transfers use, above every id an earlier group took. */
void coll_setup(Coll *c);

/* ---- ring phases over one axis (gen_collective_ring.c) ----
 *
 * A ring works on the region [base, base + p * chunk) of buffer `work` (base a runtime
 * address: earlier levels pick the region by position), which holds p chunks; chunk j
 * belongs to the chip at position j of the ring (pos[dir][k]). Several rings (the two
 * directions, and axes of the same length, each on its own part of the data) run in
 * the same step loop, so their transfers overlap. */
enum { COLL_MAX_RINGS = 2 * TILE_MAX_TORUS_RANK };
typedef struct CollRing {
  int k;            /* axis (rings of one step loop: axes of the same length) */
  int dir;          /* 0: toward +coordinate, 1: toward - */
  int32_t work;     /* buffer */
  int32_t base;     /* sreg: the region's address */
  int64_t chunk;    /* bytes */
} CollRing;

/* Reduce-scatter: afterwards this chip's chunk holds the reduction over the axis of
 * everyone's. Remote writes land in receive buffers of the level that nothing else
 * touches, never in a peer's working data, so no chip overwrites what a slower peer
 * still reads. */
void coll_ring_reduce_scatter(Coll *c, const CollRing *rings, int n, const CollReduce *r);
/* All-gather through receive buffers: starting with this chip's chunk complete,
 * afterwards every chunk is (copied into place with vector loads and stores, so
 * chunks are whole tiles of r). */
void coll_ring_all_gather(Coll *c, const CollRing *rings, int n, const CollReduce *r);
/* All-gather straight into the destination on every chip: chunk j lies at base +
 * j * chunk by coordinate j (not ring position) and moves with shapes[i] (runs of a
 * strided tensor slice); the same address on the next chip receives it. Right only
 * where each place of work is written once per run (a collective's own result
 * buffer), so an early arrival overwrites nothing a slower chip still needs. */
void coll_ring_gather_in_place(Coll *c, int k, const CollRing *rings, int n,
                               const TileDmaShape *shapes);
/* One transfer of `bytes` from src_buf (at the address in src_reg) to the next chip of
 * axis k's ring in direction dir, into dst_buf (dst_reg: the address there, the same on
 * every chip), then waits until it has landed there and until the one from the
 * previous chip has landed here. */
void coll_exchange(Coll *c, int k, int dir, int32_t src_buf, int32_t src_reg,
                   int32_t dst_buf, int32_t dst_reg, int64_t bytes);

/* ---- all_to_all (gen_collective_a2a.c) ---- */

bool coll_all_to_all(Coll *c, TileTensorRef x, TileTensorRef y);

#endif
