/* The latency-optimized all_reduce (gen_collective_int.h): for small operands a ring's
 * 2 (p - 1) steps per axis cost a hop each while the data is too small to keep the
 * links busy, and the ring pads every chunk to whole vreg tiles, so a 4 KiB operand over
 * a 4x4x4 torus would move 1.5 MiB. Here, per axis in turn, every chip's whole operand
 * (padded to whole tiles once) reaches every chip of the axis, and each chip sums the p
 * copies itself.
 *
 * One axis (p chips, this chip at coordinate q): a slot buffer of p slots, slot j for
 * the operand of the chip at coordinate j, at the same address on every chip. This
 * chip's operand goes into its own slot; then ceil((p - 1) / 2) steps forward along the
 * ring toward +coordinate (step s sends slot q - s to the next chip, which receives it
 * into the same slot) while floor((p - 1) / 2) steps forward toward - (slot q + s), so
 * after the steps every slot is filled and no operand went more than halfway round.
 * Each step waits for this chip's send to land and for the previous chip's to arrive:
 * one sender per ring and semaphore of the band, the same discipline as the ring steps
 * (gen_collective_ring.c), and slots are written once per run. The sum runs over slots
 * 0 .. p - 1 in that order on every chip, so all chips get the same bits. An axis
 * without wraparound longer than 2 (a line, where the ring's closing step would route
 * across all of it) reduces toward its middle chip and broadcasts back instead
 * (gen_collective_line.c).
 *
 * The next axis starts from this axis's sum, so the result is the reduction over all
 * axes after one pass per axis: sum over k of ceil((p_k - 1) / 2) hop-latencies, where
 * the ring all_reduce takes 2 sum (p_k - 1). The lowering picks it by the estimates
 * below, from the target's hop latency and link bandwidth. */
#include <stdint.h>

#include "gen_collective_int.h"

int64_t coll_ring_estimate(const Coll *c, int64_t total, int parts) {
  const TileTarget *t = c->cx->target;
  int64_t hop = tile_target_hop_cycles(t), region = total / parts, cycles = 0;
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *a = &c->ax[k];
    if (a->p < 2) continue;
    int64_t chunk = region / a->p;
    /* Without wraparound both rings' closing steps share the line's links. */
    int64_t step = COLL_STEP_OVERHEAD + hop + coll_link_cycles(t, chunk) * (a->wrap ? 1 : 2);
    cycles += 2 * ((a->p - 1) * step + (a->wrap ? 0 : (a->p - 2) * hop));
    region = chunk;
  }
  return cycles + 2 * tile_target_xfer_cycles(t, total, t->hbm_bw);
}

/* VMEM of the one-shot exchange: the working copy and, per axis, p_k slots or what the
 * line's reduce and broadcast keep. */
static int64_t oneshot_vmem(const Coll *c, int64_t padded, const CollReduce *r) {
  int64_t need = padded;
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *a = &c->ax[k];
    if (a->p > 1) need += coll_is_line(a) ? coll_line_vmem(padded, r->tile_bytes) : a->p * padded;
  }
  return need;
}

int64_t coll_oneshot_estimate(const Coll *c, int64_t bytes, const CollReduce *r) {
  const TileTarget *t = c->cx->target;
  int64_t hop = tile_target_hop_cycles(t), cycles = 0;
  int64_t padded = (bytes + r->tile_bytes - 1) / r->tile_bytes * r->tile_bytes;
  /* The exchange keeps its operand several times in VMEM, beside what later groups
   * hold there (a prefetch's weights, a matmul's rings): past a quarter of VMEM the
   * rings, which go through VMEM in pieces, are taken instead. */
  if (oneshot_vmem(c, padded, r) > t->vmem_bytes / 4) return INT64_MAX;
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *a = &c->ax[k];
    if (a->p < 2) continue;
    if (coll_is_line(a)) {
      cycles += coll_line_estimate(c, k, padded, r);
      continue;
    }
    int64_t steps = a->p / 2; /* ceil((p - 1) / 2) */
    cycles += steps * (COLL_STEP_OVERHEAD + hop + coll_link_cycles(t, padded)) + (a->wrap ? 0 : (a->p - 2) * hop);
    cycles += a->p * (padded / r->tile_bytes) * 2; /* the sum: two loads per tile */
  }
  return cycles + 2 * tile_target_xfer_cycles(t, padded, t->hbm_bw);
}

/* One axis: fills the slots (module comment), then work := the sum of the slots. */
static void oneshot_axis(Coll *c, int k, int32_t work, int64_t padded, const CollReduce *r) {
  TileMir *m = c->m;
  const CollAxis *a = &c->ax[k];
  int64_t region = padded * a->p, fwd = a->p / 2, back = a->p - 1 - fwd;
  char name[64];
  snprintf(name, sizeof name, "oneshot.%s.%d", a->name, (int)m->nbufs);
  int32_t slots = tile_mir_buffer(m, name, TILE_SPACE_VMEM, region, 1, 64);
  int32_t base = coll_addr(c, slots, 0), off[2], at = tile_mir_sreg(m);
  for (int d = 0; d < 2; d++) {
    off[d] = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_MULI, off[d], c->coord[k], padded);
  }
  coll_rr(c, TILE_MOP_ADD, at, base, off[0]);
  coll_local_copy(c, work, 0, -1, slots, 0, at, coll_flat(padded));
  CollRemote rm[2] = {coll_remote(c, k, 0, slots, slots, coll_flat(padded)),
                      coll_remote(c, k, 1, slots, slots, coll_flat(padded))};
  /* Steps in both directions, then the one more toward + that an even p needs. */
  for (int phase = 0; phase < 2; phase++) {
    int64_t trips = phase == 0 ? back : fwd - back;
    int ndir = phase == 0 ? 2 : 1;
    if (trips == 0) continue;
    tile_mir_loop_begin(m, (int32_t)trips, 0);
    for (int d = 0; d < ndir; d++) {
      coll_rr(c, TILE_MOP_ADD, at, base, off[d]);
      coll_remote_send(c, &rm[d], at, at);
    }
    for (int d = 0; d < ndir; d++) {
      coll_remote_wait(c, &rm[d]);
      /* What arrived: slot q - 1 - s toward +, slot q + 1 + s toward -. */
      if (d == 0) coll_step_back(c, off[d], padded, region);
      else coll_step_on(c, off[d], padded, region);
    }
    tile_mir_loop_end(m);
  }
  for (int64_t j = 0; j < a->p; j++)
    coll_reduce_into(c, r, j == 0 ? -1 : r->vop, slots, coll_addr(c, slots, j * padded), work,
                     coll_addr(c, work, 0), padded);
}

bool coll_oneshot_all_reduce(Coll *c, TileTensorRef x, TileTensorRef y, const CollReduce *r,
                             int32_t out_reg, TileDmaShape out) {
  const TileTarget *t = c->cx->target;
  int64_t padded = (x.bytes + r->tile_bytes - 1) / r->tile_bytes * r->tile_bytes;
  int64_t need = oneshot_vmem(c, padded, r);
  if (need > t->vmem_bytes)
    return tile_lower_error(c->cx, c->op, "the one-shot all_reduce needs %lld bytes of VMEM, "
                            "more than the %lld target %s has", (long long)need,
                            (long long)t->vmem_bytes, t->name);
  char name[64];
  snprintf(name, sizeof name, "oneshot.work.%d", (int)c->m->nbufs);
  int32_t work = tile_mir_buffer(c->m, name, TILE_SPACE_VMEM, padded, 1, 64);
  coll_local_copy(c, x.buf, 0, -1, work, 0, -1, coll_flat(x.bytes));
  /* Over lines only, the DMAs in flight stay few (coll_line_inflight), which leaves the
   * rest to a later matmul's weights (lower_prefetch.c). */
  bool lines = true;
  for (int k = 0; k < c->naxes; k++) lines &= c->ax[k].p < 2 || coll_is_line(&c->ax[k]);
  if (lines) c->cx->dma_cap = coll_line_inflight(c);
  for (int k = 0; k < c->naxes; k++)
    if (coll_is_line(&c->ax[k])) coll_line_axis(c, k, work, padded, r);
    else if (c->ax[k].p > 1) oneshot_axis(c, k, work, padded, r);
  int32_t from = -1;
  if (out_reg >= 0) {
    from = coll_addr(c, work, 0);
    coll_rr(c, TILE_MOP_ADD, from, from, out_reg);
  }
  coll_local_copy(c, work, 0, from, y.buf, 0, -1, out);
  return true;
}
