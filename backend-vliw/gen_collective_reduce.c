/* The VPU side of the reductions: a received chunk combined into this chip's partial
 * result (or the partial into the received chunk), whole vreg tiles at a time, in VMEM
 * (gen_collective_int.h). bf16 is widened on load and rounded on store, so the sums run
 * in f32 lanes. */
#include "gen_collective_int.h"

/* Tiles per iteration of the combining loop. The scheduler orders a store to dst before
 * the next iteration's load from dst (same buffer), so one tile per iteration runs at
 * the latency of load, op and store (8 cycles a tile on v4-like); with U tiles loaded
 * first and stored last the recurrence is about U + 7 cycles against 2U of loads, so
 * 8 tiles keep the load slot busy. */
enum { REDUCE_UNROLL = 8 };

/* u tiles from addr (+ i tiles) of buf into fresh vregs v[i] (loads), or from v[i] into
 * them (stores). */
static void tiles_move(Coll *c, const CollReduce *r, int32_t *v, int32_t addr, int32_t buf,
                       int u, bool store) {
  for (int i = 0; i < u; i++) {
    if (!store) v[i] = tile_mir_vreg(c->m);
    TileMirInst in = tile_mir_inst(store ? r->store : r->load, v[i], addr, r->stride_reg, 0,
                                   (int32_t)(i * r->tile_bytes));
    tile_mir_mem(&in, buf, store ? TILE_MIR_WRITE : TILE_MIR_READ, 0);
    tile_mir_add(c->m, in);
  }
}

/* One loop of `tiles` iterations of u tiles each (see REDUCE_UNROLL): out := dst OP src,
 * out being the src or dst register or one of its own. */
static void reduce_loop(Coll *c, const CollReduce *r, int vop, int32_t src_buf, int32_t src,
                        int32_t dst_buf, int32_t dst, int32_t out_buf, int32_t out,
                        int64_t tiles, int u) {
  TileMir *m = c->m;
  int32_t a[REDUCE_UNROLL], b[REDUCE_UNROLL], s[REDUCE_UNROLL];
  tile_mir_loop_begin(m, (int32_t)tiles, TILE_MIR_PIPELINE);
  tiles_move(c, r, a, src, src_buf, u, false);
  for (int i = 0; i < u; i++) s[i] = a[i];
  if (vop >= 0) {
    tiles_move(c, r, b, dst, dst_buf, u, false);
    for (int i = 0; i < u; i++) {
      s[i] = tile_mir_vreg(m);
      tile_mir_add(m, tile_mir_inst(vop, s[i], b[i], a[i], 0, 0));
    }
  }
  tiles_move(c, r, s, out, out_buf, u, true);
  coll_ri(c, TILE_MOP_ADDI, src, src, u * r->tile_bytes);
  coll_ri(c, TILE_MOP_ADDI, dst, dst, u * r->tile_bytes);
  if (out != src && out != dst) coll_ri(c, TILE_MOP_ADDI, out, out, u * r->tile_bytes);
  tile_mir_loop_end(m);
}

static void reduce_loops(Coll *c, const CollReduce *r, int vop, int32_t src_buf, int32_t src,
                         int32_t dst_buf, int32_t dst, int32_t out_buf, int32_t out,
                         int64_t bytes) {
  int64_t tiles = bytes / r->tile_bytes, whole = tiles / REDUCE_UNROLL;
  if (whole)
    reduce_loop(c, r, vop, src_buf, src, dst_buf, dst, out_buf, out, whole, REDUCE_UNROLL);
  if (tiles % REDUCE_UNROLL)
    reduce_loop(c, r, vop, src_buf, src, dst_buf, dst, out_buf, out, 1,
                (int)(tiles % REDUCE_UNROLL));
}

void coll_reduce_span(Coll *c, const CollReduce *r, int vop, int32_t src_buf, int32_t src,
                        int32_t dst_buf, int32_t dst, int64_t bytes, bool into_src) {
  reduce_loops(c, r, vop, src_buf, src, dst_buf, dst, into_src ? src_buf : dst_buf,
               into_src ? src : dst, bytes);
}

void coll_reduce_into(Coll *c, const CollReduce *r, int vop, int32_t src_buf, int32_t src,
                        int32_t dst_buf, int32_t dst, int64_t bytes) {
  coll_reduce_span(c, r, vop, src_buf, src, dst_buf, dst, bytes, false);
}

void coll_reduce_to(Coll *c, const CollReduce *r, int vop, int32_t a_buf, int32_t a,
                    int32_t b_buf, int32_t b, int32_t out_buf, int32_t out, int64_t bytes) {
  reduce_loops(c, r, vop, a_buf, a, b_buf, b, out_buf, out, bytes);
}
