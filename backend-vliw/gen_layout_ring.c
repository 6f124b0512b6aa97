/* ring_slice and ring_concat as local copies: layout ops (gen_layout.c's table calls
 * them) that read this chip's position on a mesh axis.
 *
 * Both move nothing between chips. With p chips on the op's axis and r this chip's
 * position there, ring_slice copies chunk (r - step) mod p of its operand's dim `dim`
 * (default 0), and ring_concat copies its operand s to chunk (r - s) mod p of its
 * result's. Around that dim a row-major tensor is outer x dims[dim] x inner (the
 * products of the dims before and after it, coll_around), so a chunk is `outer` runs of
 * dims[dim] / p x inner elements, p runs apart in the whole tensor and one run apart in
 * the chunk: one DMA of count0 = the run's bytes and count1 = outer with those two
 * strides (the dims before dim are row-major on both sides, so they always merge into
 * one level), contiguous where outer is 1 (dim 0, or leading dims of size 1) or p is 1.
 * Each copy is HBM to HBM, its chunk address computed at run time in scalar registers:
 * r from `coord` ((coord / inner) mod p on the axis's torus dim: coll_position,
 * gen_collective_ring.c), then (r - s) mod p times the run's bytes plus the whole
 * tensor's base.
 *
 * They are layout groups, not collective groups, on purpose: they count no arrivals on
 * the band semaphores, and lower_async.c takes every pending one-hop permute's waits at
 * the start of any collective group (a collective counts arrivals there from its
 * start) but a layout group's only at its first touch of the permute's buffers, so a
 * ring's sends stay in flight over copies that need none of them (coll_matmul's gather
 * ring slices rope's tables with ring_slice between its hops).
 *
 * ring_concat's p copies overlap: a batch of them issues, each on a semaphore of its
 * own (so every wait is for its own copy), then the batch is waited for. A batch is at
 * most what the target lets be in flight (less other groups' DMAs that cross this one:
 * cx->target is then the lowered one) and the semaphores left. */
#include "gen_collective_int.h"
#include "tile/ops.h"

/* The most copies of one batch (a bound on the sites kept; targets allow 16 DMAs in
 * flight at most). */
enum { RING_MAX_BATCH = 16 };

/* What a ring op's copies need: its axis, the chunk's runs, this chip's position. */
typedef struct Ring {
  Coll c;           /* the axis (c.ax[0]) and the scalar helpers' state */
  int64_t p;        /* chips on the axis */
  int64_t run;      /* bytes of one run of a chunk: dims[dim] / p x inner elements; also
                     * the step from one chunk's first run to the next chunk's */
  int64_t outer;    /* runs per chunk: the dims before dim */
  int32_t pos;      /* sreg: this chip's position on the axis */
} Ring;

/* Reads the op's axis (one torus dim of the target's torus, as the collectives check
 * it) and dim, and emits the position; `whole` is the tensor cut in p chunks. */
static bool ring_begin(TileLowerCtx *cx, const TileOp *op, const TileTensorRef *whole,
                       Ring *r) {
  *r = (Ring){.c = {.cx = cx, .m = cx->mir, .op = op}};
  Coll *c = &r->c;
  if (!coll_resolve_axes(c)) return false;
  if (c->span)
    return tile_lower_error(cx, op, "axis '%s' spans %d torus dims; ring_slice and "
                            "ring_concat run over an axis of one torus dim (or a share of one)",
                            c->ax[0].name, (int)c->naxes);
  r->p = c->ax[0].p;
  /* chunk offsets, strides and the region are 32-bit immediates and registers */
  if (whole->bytes > INT32_MAX)
    return tile_lower_error(cx, op, "the tensor cut in chunks takes %lld bytes; ring ops "
                            "address chunks with 32-bit arithmetic (below 2 GiB)",
                            (long long)whole->bytes);
  int64_t dim = 0;
  tile_attr_get_int(&op->attrs, "dim", &dim); /* the verifier keeps it in range */
  CollAround a = coll_around(whole, dim);
  r->run = a.mid / r->p * a.inner_bytes;
  r->outer = a.outer;
  r->pos = coll_position(c, &c->ax[0]);
  return true;
}

/* For s = 0, off := pos times the run; else off := off less s runs, mod the p runs'
 * region: so after (0, s), off is (pos - s) mod p times the run, the offset of chunk
 * (pos - s) mod p's first run in the whole tensor. */
static void chunk_offset(Ring *r, int32_t off, int64_t s) {
  if (s == 0) coll_ri(&r->c, TILE_MOP_MULI, off, r->pos, r->run);
  else coll_step_back(&r->c, off, s * r->run, r->p * r->run);
}

/* A fresh sreg: buf's address plus off. */
static int32_t chunk_addr(Ring *r, int32_t buf, int32_t off) {
  int32_t a = coll_addr(&r->c, buf, 0);
  coll_rr(&r->c, TILE_MOP_ADD, a, a, off);
  return a;
}

/* A chunk's copy: outer runs, p runs apart on the whole tensor's side (the source for
 * ring_slice, the destination for ring_concat) and one run apart on the chunk's. */
static TileDmaShape chunk_shape(const Ring *r, bool from_whole) {
  if (r->outer == 1 || r->p == 1)
    return (TileDmaShape){.count0 = r->outer * r->run, .count1 = 1, .count2 = 1};
  int64_t whole = r->p * r->run;
  return (TileDmaShape){.count0 = r->run, .count1 = r->outer, .count2 = 1,
                        .src_stride1 = from_whole ? whole : r->run,
                        .dst_stride1 = from_whole ? r->run : whole};
}

bool tile_gen_ring_slice(TileLowerCtx *cx, const TileOp *op) {
  TileTensorRef src = tile_lower_tensor(cx, op->opnd[0].v);
  TileTensorRef dst = tile_lower_tensor(cx, op->res[0]);
  int64_t step = 0;
  tile_attr_get_int(&op->attrs, "step", &step);
  Ring r;
  if (!ring_begin(cx, op, &src, &r)) return false;
  int32_t off = tile_mir_sreg(cx->mir);
  chunk_offset(&r, off, 0);
  if (step > 0) chunk_offset(&r, off, step); /* the verifier keeps it below p */
  TileDmaSite site = tile_dma_site(cx, src.buf, 0, dst.buf, 0, chunk_shape(&r, true));
  tile_dma_issue(cx, &site, chunk_addr(&r, src.buf, off), 0, -1, 0);
  tile_dma_wait(cx, &site, 0, 0);
  return true;
}

/* Copies in flight at once: the target's limit (less what crosses this group), the
 * semaphores left, RING_MAX_BATCH; at least 1. */
static int32_t batch_size(const TileLowerCtx *cx, int64_t p) {
  const TileTarget *t = cx->target;
  int64_t n = p < RING_MAX_BATCH ? p : RING_MAX_BATCH;
  if (n > t->dma_outstanding) n = t->dma_outstanding;
  if (n > t->nsems - cx->mir->nsems) n = t->nsems - cx->mir->nsems;
  return n < 1 ? 1 : (int32_t)n;
}

bool tile_gen_ring_concat(TileLowerCtx *cx, const TileOp *op) {
  TileTensorRef dst = tile_lower_tensor(cx, op->res[0]);
  Ring r;
  if (!ring_begin(cx, op, &dst, &r)) return false;
  if (op->nopnd != r.p)
    return tile_lower_error(cx, op, "%d operands for the %lld chips of axis '%s'",
                            (int)op->nopnd, (long long)r.p, r.c.ax[0].name);
  int32_t batch = batch_size(cx, r.p), sems = cx->mir->nsems;
  int32_t off = tile_mir_sreg(cx->mir);
  TileDmaSite site[RING_MAX_BATCH];
  for (int64_t s0 = 0; s0 < r.p; s0 += batch) {
    int32_t n = r.p - s0 < batch ? (int32_t)(r.p - s0) : batch;
    cx->mir->nsems = sems; /* the batch before has been waited for */
    for (int32_t i = 0; i < n; i++) {
      chunk_offset(&r, off, s0 + i > 0); /* operand s: one chunk back from s - 1's */
      TileTensorRef src = tile_lower_tensor(cx, op->opnd[s0 + i].v);
      site[i] = tile_dma_site(cx, src.buf, 0, dst.buf, 0, chunk_shape(&r, false));
      tile_dma_issue(cx, &site[i], -1, 0, chunk_addr(&r, dst.buf, off), 0);
    }
    for (int32_t i = 0; i < n; i++) tile_dma_wait(cx, &site[i], 0, 0);
  }
  /* the first batch took the most; the lowering keeps the count (sems_recycle) */
  cx->mir->nsems = sems + batch;
  if (cx->dma_cap < batch) cx->dma_cap = batch;
  return true;
}
