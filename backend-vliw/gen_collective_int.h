/* The collective generator's own state, shared by gen_collective.c (the ops: what each
 * collective moves where) and gen_collective_ring.c (the ring steps: remote DMAs,
 * semaphores, reductions on the VPU). */
#ifndef TILE_GEN_COLLECTIVE_INT_H
#define TILE_GEN_COLLECTIVE_INT_H

#include "gen_collective.h"
#include "lower_internal.h"

/* One mesh axis a collective runs over, on one torus dim: the whole dim, or a share of
 * it where several axes share the dim (an axis over several dims runs as one axis per
 * dim, gen_collective.c). This chip's position on it is (coord / inner) mod p. */
typedef struct CollAxis {
  const char *name;
  int32_t dim;      /* torus dimension */
  int64_t p;        /* chips along it */
  int64_t inner;    /* coordinate step of one position step: the sizes of the axes
                     * declared after it on the dim */
  int64_t stride;   /* chip-id step of one position step (ids are row-major) */
  int32_t slot;     /* its rings' arrivals count on band semaphores 2 * slot + direction */
  int32_t hops;     /* torus hops of a ring step but the closing one (estimates only) */
  bool wrap;        /* a wraparound link joins its ends: a whole dim that wraps */
} CollAxis;

/* A line: an axis of more than 2 chips without wraparound, where the line schedules
 * (gen_collective_line*.c) replace rings whose closing step would cross it. */
static inline bool coll_is_line(const CollAxis *a) { return !a->wrap && a->p > 2; }

/* For the estimates every schedule is chosen by: cycles `bytes` take over one link, and
 * what a step costs besides its transfer (issuing the DMA, the waits and address
 * arithmetic; measured on the emulator: a few dozen cycles). */
static inline int64_t coll_link_cycles(const TileTarget *t, int64_t bytes) {
  return tile_target_xfer_cycles(t, bytes, t->ici_bw);
}
enum { COLL_STEP_OVERHEAD = 40 };

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
  bool span;       /* the op names one axis over several dims: ax holds one per dim */
  int32_t chipid;                  /* sreg: this chip's id */
  int32_t coord[TILE_MAX_TORUS_RANK]; /* sregs: this chip's position on each axis */
  int32_t rpos[TILE_MAX_TORUS_RANK];  /* sregs: its position in rings toward -: (p - q) mod p */
  /* Per direction d (0: rings toward +coordinate, 1: toward -) and axis k: the chip
   * after this one in the ring. */
  int32_t next[2][TILE_MAX_TORUS_RANK];
  int32_t sem_sent[2];             /* counts this chip's remote sends as they land */
  int32_t sem_local;               /* counts local copies (one in flight at a time) */
  /* Receive buffers start their lives where this chip starts an earlier collective:
   * the buffers [anchor, anchor + anchor_n) it made (anchor -1: none; TileMirBuffer.
   * remote_after). first_buf: this one's first buffer; exchanges: it made a buffer
   * peers write (it anchors the next one). */
  int32_t anchor, anchor_n, first_buf;
  bool exchanges;
} Coll;

/* A tensor seen around one dim: outer (elements before it) x that dim x inner bytes. */
typedef struct CollAround {
  int64_t outer, mid, inner_bytes;
} CollAround;
CollAround coll_around(const TileTensorRef *t, int64_t dim);

/* ---- the op's axes (gen_collective_axes.c) ---- */

/* Reads the op's mesh and axes into c->ax (torus dims, shares, spans), with a
 * diagnostic at the op where the mesh or an axis does not fit the target's torus. */
bool coll_resolve_axes(Coll *c);

/* ---- a permute's cycle (gen_collective_cycle.c) ---- */

/* For a collective_permute with a `cycle` axis (ax[0] its axis, ax[1] the cycle axis,
 * after coll_setup): makes axis 0's ring the cycle through both (next, p), one axis. */
bool coll_cycle_ring(Coll *c);

/* ---- memory (gen_collective_ring.c) ---- */

/* Marks buf as one that peers write (layout keeps it from c's anchor on). */
void coll_mark_remote(Coll *c, int32_t buf);

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
/* Waits until the previous chip's send has landed here, then for this chip's own (that
 * order costs no stall: see remote_wait_arrival in gen_collective_ring.c). */
void coll_remote_wait(Coll *c, const CollRemote *r);

/* One send of `bytes` at offset `off` of src_buf here to the same offset of dst_buf on
 * the next chip of axis k's ring in direction dir, its completion counted on sent_sem
 * (a semaphore of the function, not of the group); its two waits (the arrival here,
 * then the send) go to the lowering (tile_lower_async_defer), which places them in the
 * first later group that needs them (lower_async.c). */
void coll_exchange_async(Coll *c, int k, int dir, int32_t src_buf, int32_t dst_buf,
                         int64_t off, int64_t bytes, int32_t sent_sem);

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
/* A fresh sreg: sum over axes k of coord[k] * unit[k] (unit 0 skips the axis). */
int32_t coll_rank_sum(Coll *c, const int64_t *unit);

/* A fresh sreg: this chip's position on axis a, (coord[dim] / inner) mod p; the
 * coordinate itself for a whole dim (also what ring_slice and ring_concat read,
 * gen_layout_ring.c). */
int32_t coll_position(Coll *c, const CollAxis *a);
/* Reads coordinates and ring neighbours of every axis (the collective's first code);
 * sets up the semaphores remote transfers use, above every id an earlier group took. */
void coll_setup(Coll *c);

/* ---- ring phases over one axis (gen_collective_ring.c) ----
 *
 * A ring works on the region [base, base + p * chunk) of buffer `work` (base a runtime
 * address: earlier levels pick the region by coordinate), which holds p chunks; chunk j
 * belongs to the chip at coordinate j of the axis, in either direction (or at ring
 * position j: by_position). Several rings
 * (the two directions, and axes of the same length, each on its own part of the data)
 * run in the same step loop, so their transfers overlap. */
enum { COLL_MAX_RINGS = 2 * TILE_MAX_TORUS_RANK };
/* Ring steps send a chunk as up to COLL_MAX_SUBS sub-chunks (pipelining), with at most
 * coll_depth(c, n, m) sends of each ring in flight: a send first waits for an earlier
 * one to land, so n rings keep n * depth DMAs in flight, within dma.outstanding less
 * two for local copies. */
enum { COLL_MAX_SUBS = 4 };
int64_t coll_depth(const Coll *c, int n, int64_t m);
typedef struct CollRing {
  int k;            /* axis (rings of one step loop: axes of the same length) */
  int dir;          /* 0: toward +coordinate, 1: toward - */
  /* Chunk j belongs to the chip at ring position j (coordinate toward +, (p - q) mod p
   * toward -) rather than coordinate j: all_reduce lays its rings out so, which fixes
   * the order of its f32 sums (other backends reproduce it bit for bit). */
  bool by_position;
  int32_t work;     /* buffer */
  int32_t base;     /* sreg: the region's address */
  int64_t chunk;    /* bytes */
  /* With has_hbm, an HBM buffer holding the region's data: the reduce-scatter copies
   * each chunk from it into work just before combining into it, so the copies run
   * under the ring's transfers instead of before them; the first chunk, which it only
   * sends, goes from there straight to the next chip where it is contiguous there
   * (hbm_step 0), else is copied first. */
  bool has_hbm;
  int32_t hbm;
  int32_t hbm_base; /* sreg: the region's address there */
  /* With hbm_step > 0, chunk j lies at hbm_base + j * hbm_step there and moves with
   * hbm_shape (HBM as the source side: runs gathered into the contiguous chunk);
   * 0: at j * chunk, contiguous. */
  int64_t hbm_step;
  TileDmaShape hbm_shape;
  /* With has_hbm and a contiguous chunk: each arriving chunk is combined into its
   * receive slot (with this chip's chunk, copied from HBM into one chunk at base) and
   * sent on from there, so the level needs one chunk of VMEM besides its slots, and
   * the chunk this chip keeps is left in slot p - 2 (the same operands in the same
   * order as combining into work). */
  bool in_slots;
} CollRing;

/* Reduce-scatter: afterwards this chip's chunk holds the reduction over the axis of
 * everyone's. Remote writes land in receive buffers of the level that nothing else
 * touches (written once per run, or once per piece where the caller makes sure a
 * sender cannot start the next piece early), never in a peer's working data, so no
 * chip overwrites what a slower peer still reads. */
void coll_ring_reduce_scatter(Coll *c, const CollRing *rings, int n, const CollReduce *r);
/* dst[i] := dst[i] OP src[i] over `bytes` (a whole number of tiles of r) at the
 * addresses in the registers, which it leaves moved past the data; vop < 0 copies
 * (gen_collective_reduce.c). */
void coll_reduce_into(Coll *c, const CollReduce *r, int vop, int32_t src_buf, int32_t src,
                      int32_t dst_buf, int32_t dst, int64_t bytes);
/* The same, or with into_src src := dst OP src (the same operands in the same order,
 * stored over the received data instead). */
void coll_reduce_span(Coll *c, const CollReduce *r, int vop, int32_t src_buf, int32_t src,
                      int32_t dst_buf, int32_t dst, int64_t bytes, bool into_src);
/* out := b OP a, three addresses (out may be a's or b's register, or one of its own). */
void coll_reduce_to(Coll *c, const CollReduce *r, int vop, int32_t a_buf, int32_t a,
                    int32_t b_buf, int32_t b, int32_t out_buf, int32_t out, int64_t bytes);
/* The semaphore arrivals from the previous chip of axis k's ring in direction dir
 * count on (one of the band, tile_coll_sem_band). */
int32_t coll_recv_sem(Coll *c, int dir, int k);
/* The sreg holding the index of this chip's own chunk in ring g (its coordinate, or
 * its ring position: by_position), and whether the chunk a step receives is the one
 * before the previous step's (true) or after it. */
int32_t coll_ring_index(const Coll *c, const CollRing *g);
bool coll_ring_steps_back(const CollRing *g);

/* ---- all_gather in place (gen_collective_gather.c) ---- */

/* All-gather straight into the destination on every chip: ring i's block j lies at
 * base + j * chunk by coordinate j of its axis and moves with shapes[i] (runs of a
 * strided tensor slice, whole elements of eb bytes); the same address on the next chip
 * receives it. `steps` steps (p - 1 for a whole ring; fewer where another ring brings
 * the rest). Rings of one call may be on different axes of the same length. Right only
 * where an early arrival overwrites nothing a slower chip still needs: each place of
 * work written once per run (a collective's own result), or, as in all_reduce, a
 * place the sender can only hold once the receiver is done with it. */
void coll_ring_gather_in_place(Coll *c, const CollRing *rings, int n, const TileDmaShape *shapes,
                               int eb, int64_t steps);
/* all_gather of shards that are one contiguous run of `run` bytes in the result, split
 * across the axes and both directions; false (nothing emitted) where the shard has
 * fewer elements than parts. With x.buf == y.buf this chip's shard is already in its
 * place in y (all_reduce's reduce-scatter put it there). */
bool coll_all_gather_parts(Coll *c, TileTensorRef x, TileTensorRef y, int64_t run);

/* How a collective over c's axes splits its data so that every link carries some at
 * once: one part per rotation of the order of the axes with more than one chip (when
 * they are all as long; else one order) and per direction (when rings are longer than
 * 2). stride[k]: the bytes between neighbouring coordinates on axis k of a row-major
 * array of `block`-byte blocks over all of c's axes. */
typedef struct CollParts {
  int act[TILE_MAX_TORUS_RANK], nact; /* the axes with more than one chip, in order */
  int nrot, ndir, nparts;
  int64_t stride[TILE_MAX_TORUS_RANK];
} CollParts;
CollParts coll_parts(const Coll *c, int64_t block);
/* The same shards, by coll_all_gather_parts or, where the estimates from the target's
 * hop latency and link bandwidth say it is quicker (small shards), by whole blocks
 * going halfway round each axis both ways; false where neither applies. */
bool coll_all_gather_run(Coll *c, TileTensorRef x, TileTensorRef y, int64_t run);

/* ---- the latency-optimized all_reduce (gen_collective_small.c) ---- */

/* Estimated cycles of the ring all_reduce of `total` bytes (already padded) in `parts`
 * parts, and of the one-shot one of `bytes` padded to whole tiles of r. */
int64_t coll_ring_estimate(const Coll *c, int64_t total, int parts);
int64_t coll_oneshot_estimate(const Coll *c, int64_t bytes, const CollReduce *r);
/* Every chip's whole operand to every chip of each axis in turn, the sum taken on
 * every chip in coordinate order (the same bits everywhere); then the bytes `out`
 * picks from the sum, from the offset in out_reg (< 0: from its start), to y. */
bool coll_oneshot_all_reduce(Coll *c, TileTensorRef x, TileTensorRef y, const CollReduce *r,
                             int32_t out_reg, TileDmaShape out);

/* ---- the one-shot all_reduce over a line (gen_collective_line.c) ---- */

/* Schedules on a line give chips different work from one program by choosing, at run
 * time, where each DMA goes (the module comment of gen_collective_line.c). */
/* d := cond ? a : b, for cond 0 or 1 (sregs). */
int32_t coll_sel(Coll *c, int32_t cond, int32_t a, int32_t b);
/* Fresh sregs: a + b, a * imm, and base + j * step. */
int32_t coll_plus(Coll *c, int32_t a, int32_t b);
int32_t coll_times(Coll *c, int32_t a, int64_t imm);
int32_t coll_at(Coll *c, int32_t base, int32_t step, int64_t j);
/* A fresh sreg: lo <= q <= hi, as 0 or 1. */
int32_t coll_in_range(Coll *c, int32_t q, int64_t lo, int64_t hi);
/* A descriptor of `bytes` from src_buf to dst_buf (contiguous) whose peer and arrival
 * semaphore are stored from registers (peer: this chip's id for a ghost or credit;
 * arrival semaphore -1 for none), signalling sent_sem here when done. remote: it may
 * write another chip's dst_buf (the estimate counts a hop; layout keeps dst_buf from the
 * first bundle). Address words are stored per transfer (tile_dma_issue). */
TileDmaSite coll_line_site(Coll *c, int32_t src_buf, int32_t dst_buf, int64_t bytes,
                           int32_t peer, int32_t dst_sem, int32_t sent_sem, bool remote);
/* Stores reg into word `word` of site s's descriptor (dma_desc.h), for the transfers
 * issued after it: what a site's shape or peer is chosen at run time by. */
void coll_store_desc_word(Coll *c, const TileDmaSite *s, int32_t reg, int word);
/* Waits for n counts on sem; the wait names buffer `names` (-1: none) for the scheduler. */
void coll_wait_sem(Coll *c, int32_t sem, int64_t n, int32_t names);
/* A credit: where no peer sends this chip on side dir of axis k (real == 0), a 4-byte
 * local DMA that signals that side's arrival semaphore (coll_recv_sem) instead, so the
 * wait after it is the same code on every chip. Each completes on `credits`, which the
 * caller waits for. */
typedef struct CollCredit {
  TileDmaSite site;
  int dir, k;
} CollCredit;
CollCredit coll_credit(Coll *c, int32_t real, int dir, int k, int32_t credits);
/* Issues the credit (signalling none where a peer sends), then waits for one arrival. */
void coll_credit_wait(Coll *c, const CollCredit *cr);

/* Axis k of p > 2 chips without wraparound: work (padded bytes, whole tiles of r) :=
 * its reduction over the axis, by a reduce toward the middle chip (the two middle chips
 * of an even line, which exchange their halves) and a broadcast back, the same bits on
 * every chip. */
void coll_line_axis(Coll *c, int k, int32_t work, int64_t padded, const CollReduce *r);
/* Its VMEM besides work, and its estimated cycles. */
int64_t coll_line_vmem(int64_t padded, int64_t tile);
int64_t coll_line_estimate(const Coll *c, int k, int64_t padded, const CollReduce *r);
/* The most DMAs coll_line_axis keeps in flight, local copies waited one at a time
 * included. */
int32_t coll_line_inflight(const Coll *c);

/* ---- all_gather over lines (gen_collective_line_gather.c) ---- */

/* Whether a level of the in-place all_gather over axis k runs as a line (the axis has
 * no wraparound and p > 2, and the target allows the DMAs it keeps in flight). */
bool coll_line_gather_applies(const Coll *c, int k);
/* One line of a level: block j of the axis's p lies at base + j * step on every chip
 * and moves with `shape` (runs of whole elements, the same strides on both sides). */
typedef struct CollLineBlocks {
  int k;              /* the axis */
  int32_t base;       /* sreg: block 0's address */
  int64_t step;       /* bytes from block j to block j + 1 */
  TileDmaShape shape;
} CollLineBlocks;
/* A level of n lines (each on its own axis) in the same iterations: afterwards every
 * chip holds all p blocks of each, its own (its coordinate) there before. Each block
 * flows outward from its owner both ways, one neighbour at a time: p - 1 hop
 * latencies. buf: the buffer of every block; eb: element bytes. */
void coll_line_gather_level(Coll *c, const CollLineBlocks *lines, int n, int32_t buf, int eb);
/* Estimated cycles of a level of one line over axis k whose blocks are blk contiguous
 * bytes, and the most DMAs a level of n lines keeps in flight. */
int64_t coll_line_gather_estimate(const Coll *c, int k, int64_t blk, int eb);
int32_t coll_line_gather_inflight(const Coll *c, int n);
/* all_gather of shards that are one contiguous run of `run` bytes in the result where
 * no axis of more than one chip wraps and one is longer than 2
 * (coll_line_all_gather_applies): split, where the estimate says so, in one part per
 * rotation of the axis order, every level a line on each axis at once; and its
 * estimated cycles. */
bool coll_line_all_gather_applies(const Coll *c);
int64_t coll_line_all_gather_estimate(const Coll *c, int64_t run, int eb);
void coll_line_all_gather(Coll *c, TileTensorRef x, TileTensorRef y, int64_t run);

/* ---- all_to_all on lines (gen_collective_line_a2a.c) ---- */

/* One part of a level of all_to_all on an axis without wraparound: bytes [off, off +
 * sub) of every slot, exchanged over axis k. */
typedef struct CollLinePart {
  int k;
  int64_t off, sub;
} CollLinePart;
/* Exchanges the parts (each on its own axis) at once, from src to dst, both block-major
 * slots blk bytes apart (gen_collective_a2a.c): on axis k the slots whose rank digit k
 * is t go to the chip at coordinate t and land where that digit names this chip's; every
 * group goes straight along the line, forwarded one hop an iteration. Waits for all of
 * it before it returns. Uses sem_sent[0] and sem_sent[1] while it runs (drained). */
void coll_line_a2a_level(Coll *c, const CollLinePart *parts, int n, int32_t src, int32_t dst,
                         int64_t blk);

/* ---- reduce_scatter over lines and half rings (gen_collective_line_scatter.c) ---- */

/* Whether the reduce_scatter of an `operand`-byte operand into `slice`-byte slices
 * (whole: each one run of the operand) is estimated quicker by coll_line_reduce_scatter
 * than by the one-shot all_reduce and the rings: some axis is longer than 2 (a line, or
 * a ring it runs as half rings) and it fits VMEM. */
bool coll_line_rs_wins(const Coll *c, int64_t operand, int64_t slice, bool whole,
                       const CollReduce *r);
/* reduce_scatter of x along `dim` into y: per axis in turn, on this chip's chunk of the
 * levels before, each slice's reduction flows toward its owner from both ends of a
 * line (p - 1 hop latencies) or, on an axis with wraparound, from both sides half the
 * ring round (floor(p / 2)); an axis of 2 runs a ring. The same bits every run. */
bool coll_line_reduce_scatter(Coll *c, TileTensorRef x, TileTensorRef y, const CollReduce *r,
                              int64_t dim);

/* ---- receive slots kept across pieces (gen_collective_ring.c) ---- */

/* A buffer for ring g's receive slots (p - 1 chunks), and coll_ring_reduce_scatter with
 * ring i's slots in slots[i] (made so, for a ring with the same chunk and p) rather
 * than in a buffer of its own: an operand that streams through VMEM in pieces whose
 * code differs from piece to piece reuses one set. */
int32_t coll_ring_slots(Coll *c, const CollRing *g);
void coll_ring_reduce_scatter_in(Coll *c, const CollRing *rings, int n, const CollReduce *r,
                                 const int32_t *slots);

/* ---- reduce-scatter and all-gather levels in one run (gen_collective_ring.c) ---- */

/* The levels of a reduce-scatter, level l's n rings at rings[l * n + i] (slots likewise,
 * or NULL), each level on the chunk this chip keeps from the one before: as
 * coll_ring_reduce_scatter_in per level, but where ring i's next level runs on another
 * axis in the same direction from VMEM, its first sends go during this level's last
 * step, as soon as the chunk they read is final (gen_collective_ring.c, Level). Every
 * level's axis has at least 2 chips. */
void coll_ring_reduce_scatter_levels(Coll *c, const CollRing *rings, int nlev, int n,
                                     const CollReduce *r, const int32_t *slots);
/* The next piece of a reduce_scatter, whose first sends the last level of this piece
 * issues: its outermost rings (each in the same direction as this piece's last-level
 * ring i), their slots, the r of the reduction and the rings of the level after (which
 * fix the order of sub-chunks, as coll_ring_reduce_scatter_levels's). */
typedef struct CollNextPiece {
  const CollRing *rings, *after;
  const int32_t *slots;
  const CollReduce *r;
} CollNextPiece;

/* all_reduce's all-gather levels in place (as coll_ring_gather_in_place, p - 1 steps
 * of each, blocks of ring l * n + i at base + j * chunk, contiguous, elements of eb
 * bytes), innermost first, each level's region the next level's block: the next
 * level's first sends go during this level's last step where it runs on another axis
 * in the same direction (gen_collective_ring.c, "all-gather levels in one run"). With
 * buf >= 0 every level works in buf instead, at base plus the sreg delta. */
void coll_ring_gather_levels(Coll *c, const CollRing *rings, int nlev, int n, int eb,
                             int32_t buf, int32_t delta);

/* ---- the last reduce-scatter level from both sides (gen_collective_half.c) ---- */

/* Whether these rings can run as a level from both sides: every one on an axis of 4 chips that
 * wraps, laid out by coordinate in VMEM (not by_position, no HBM copies, no combining
 * in slots), each the only ring of its axis and direction and with a partner in the
 * other direction on its axis, and at most (dma_outstanding - 2) / 2 of them. */
bool coll_half_applies(const Coll *c, const CollRing *rings, int n);
/* A reduce-scatter level of these rings in 2 steps instead of 3: each chunk's partial
 * sums come to their owner from both sides (two from one side, one from the other), with
 * the same bytes on every link as the ring. coll_half_begin makes its descriptors and
 * takes its receive slots as coll_ring_slots makes them (slots[i], or new ones where
 * slots is NULL); coll_half_first sends ring i's first chunk (F), which the level before
 * may do as soon as that chunk is final, once per ring, before any other send of this
 * level; coll_half_second sends ring i's M, which the level before may do once the
 * chunk it sends is final, after every F (m_sent); coll_half_rest runs the second step
 * and adds the M's, and leaves n of this level's sends in flight, which coll_half_drain
 * waits for; coll_half_end adds each P as it arrives. The next piece's first sends may
 * go before the drain (n of them) and the end. The caller waits for one send of the
 * level before to land ahead of each F and M it sends, and every send of this level,
 * those too, has landed after coll_half_drain. */
typedef struct CollHalf {
  const CollRing *rings;
  int n;
  const CollReduce *r;
  CollRemote f[COLL_MAX_RINGS], m[COLL_MAX_RINGS], p[COLL_MAX_RINGS];
  int32_t slots[COLL_MAX_RINGS];
} CollHalf;
void coll_half_begin(Coll *c, CollHalf *h, const CollRing *rings, int n, const CollReduce *r,
                     const int32_t *slots);
void coll_half_first(Coll *c, const CollHalf *h, int i);
void coll_half_second(Coll *c, const CollHalf *h, int i);
void coll_half_rest(Coll *c, const CollHalf *h, bool m_sent);
void coll_half_drain(Coll *c, const CollHalf *h);
void coll_half_end(Coll *c, const CollHalf *h);

/* ---- reduce_scatter pieces that overlap (gen_collective_ring.c) ---- */

/* Tokens between the pieces of a reduce_scatter alone, for the rings used[k][d] that
 * run (axis k, direction d): with wait false, a `sem.signal.r` to the chip each such
 * ring receives from, which says this chip's receive slots are free; with wait true,
 * the wait for those of the chips this chip sends to. A token lands on the semaphore
 * that counts the receiver's arrivals from this chip in the opposite ring (one sender,
 * behind this chip's data on the same link, so counts stay in order). With work >= 0
 * the wait names work, so that sends reading it follow. */
void coll_ring_tokens(Coll *c, const bool used[][2], bool wait, int32_t work);

/* One piece of a reduce_scatter that streams through VMEM, its levels as
 * coll_ring_reduce_scatter_levels's. first_sent: the piece before sent level 0's first
 * chunks (its `then`). tokens (with first_sent; NULL: none): the rings whose tokens
 * this piece waits for, after level 0's first step receives, before any send into a
 * slot the piece before may still read (level 0 needs p >= 4). then: the next piece's
 * level 0 (CollNextPiece; its rings in the directions of this piece's last level's),
 * whose first sends go from this piece's last step in place of its trailing waits. */
typedef struct CollRsPiece {
  bool first_sent;
  const bool (*tokens)[2];
  const CollNextPiece *then;
} CollRsPiece;
void coll_ring_reduce_scatter_piece(Coll *c, const CollRing *rings, int nlev, int n,
                                    const CollReduce *r, const int32_t *slots,
                                    const CollRsPiece *pc);

/* ---- all_to_all (gen_collective_a2a.c) ---- */

bool coll_all_to_all(Coll *c, TileTensorRef x, TileTensorRef y);

#endif
