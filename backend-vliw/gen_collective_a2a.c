/* all_to_all on the torus (gen_collective_int.h): chip r splits its operand along
 * split_dim into P blocks (P chips over the op's axes), block j goes to the chip of rank
 * j, and the result concatenates along concat_dim the blocks every chip sent to r, in
 * rank order.
 *
 * Data stays in HBM. The operand is first rearranged block-major (block j contiguous at
 * j * blk). Then one exchange per axis k, on that axis's ring: the blocks whose rank
 * digit k is t go to the chip at coordinate t and land where digit k names the sender's
 * coordinate; after every axis, slot j on chip r holds the block chip j sent to r. A
 * last strided copy places the slots along concat_dim.
 *
 * One axis exchange (p chips, chip c): a "group" t is the blocks with digit k = t,
 * strided in the slot buffer. Store and forward round the ring toward +: round 1 sends
 * the next chip every group but this chip's own, packed in order of distance (group
 * c + 1 first); round s sends on what round s - 1 brought, less its first group, which
 * was for this chip and came from chip c - s + 1 ... so each round a chip keeps the head
 * of what it received (the group chip c - s meant for it) and forwards the tail. Every
 * transfer goes to the next chip into a buffer of its own round (written once per run),
 * so arrivals count on the ring's band semaphore like the other collectives' (see
 * gen_collective_ring.c). A link carries p (p - 1) / 2 groups, the same as routing each
 * group straight to its chip one way round. */
#include "gen_collective_int.h"

static int32_t hbm_scratch(Coll *c, const char *what, int64_t bytes) {
  char name[64];
  snprintf(name, sizeof name, "coll.%s.%d", what, (int)c->m->nbufs);
  return tile_mir_buffer(c->m, name, TILE_SPACE_HBM, bytes, 1, 64);
}

/* Slots of `blk` bytes in src, exchanged over axis k into dst (module comment). */
static void exchange_axis(Coll *c, int k, int32_t src, int32_t dst, int64_t blk) {
  TileMir *m = c->m;
  int64_t p = c->ax[k].p, inner = 1, outer = 1;
  for (int i = k + 1; i < c->naxes; i++) inner *= c->ax[i].p;
  for (int i = 0; i < k; i++) outer *= c->ax[i].p;
  int64_t run = inner * blk;   /* one group's contiguous run of slots */
  int64_t group = run * outer; /* a group packed */
  TileDmaShape strided = {.count0 = run, .count1 = outer, .count2 = 1,
                          .src_stride1 = p * run, .dst_stride1 = p * run};
  TileDmaShape pack = {.count0 = run, .count1 = outer, .count2 = 1,
                       .src_stride1 = p * run, .dst_stride1 = run};
  TileDmaShape unpack = {.count0 = run, .count1 = outer, .count2 = 1,
                         .src_stride1 = run, .dst_stride1 = p * run};

  /* This chip's own group stays, at the same place. */
  int32_t own = tile_mir_sreg(m), at_src = tile_mir_sreg(m), at_dst = tile_mir_sreg(m);
  coll_ri(c, TILE_MOP_MULI, own, c->pos[0][k], run);
  coll_rr(c, TILE_MOP_ADD, at_src, coll_addr(c, src, 0), own);
  coll_rr(c, TILE_MOP_ADD, at_dst, coll_addr(c, dst, 0), own);
  coll_local_copy(c, src, 0, at_src, dst, 0, at_dst, strided);

  /* Round 1's bundle: groups c + 1, ..., c + p - 1 packed in that order. */
  int32_t bundle = hbm_scratch(c, "a2a.send", (p - 1) * group);
  CollRemote ps = coll_copy_site(c, src, bundle, pack);
  int32_t t = tile_mir_sreg(m), from = tile_mir_sreg(m), to = coll_addr(c, bundle, 0);
  int32_t src_base = coll_addr(c, src, 0);
  coll_rr(c, TILE_MOP_MOV, t, own, 0);
  tile_mir_loop_begin(m, (int32_t)(p - 1), 0);
  coll_step_on(c, t, run, p * run);
  coll_rr(c, TILE_MOP_ADD, from, src_base, t);
  coll_copy(c, &ps, from, to);
  coll_ri(c, TILE_MOP_ADDI, to, to, group);
  tile_mir_loop_end(m);

  /* Rounds: receive buffers of p - 1, p - 2, ..., 1 groups, one after another. */
  int32_t rb = hbm_scratch(c, "a2a.recv", p * (p - 1) / 2 * group);
  CollRemote us = coll_copy_site(c, rb, dst, unpack);
  int32_t sender = tile_mir_sreg(m), dst_base = coll_addr(c, dst, 0), place = tile_mir_sreg(m);
  coll_rr(c, TILE_MOP_MOV, sender, own, 0);
  int64_t prev = -1, at = 0;
  for (int64_t s = 1; s < p; s++) {
    int64_t bytes = (p - s) * group;
    int32_t from_buf = s == 1 ? bundle : rb;
    int64_t from_off = s == 1 ? 0 : prev + group;
    CollRemote r = coll_remote(c, k, 0, from_buf, rb, coll_flat(bytes));
    coll_remote_send(c, &r, coll_addr(c, from_buf, from_off), coll_addr(c, rb, at));
    coll_remote_wait(c, &r);
    /* The head came from chip c - s and is for this chip: slot digit k = c - s. */
    coll_step_back(c, sender, run, p * run);
    coll_rr(c, TILE_MOP_ADD, place, dst_base, sender);
    coll_copy(c, &us, coll_addr(c, rb, at), place);
    prev = at;
    at += bytes;
  }
}

bool coll_all_to_all(Coll *c, TileTensorRef x, TileTensorRef y) {
  int64_t sd = 0, cd = 0, p = 1;
  tile_attr_get_int(&c->op->attrs, "split_dim", &sd);
  tile_attr_get_int(&c->op->attrs, "concat_dim", &cd);
  for (int k = 0; k < c->naxes; k++) p *= c->ax[k].p;
  int64_t blk = x.bytes / p;
  if (p == 1) {
    coll_local_copy(c, x.buf, 0, -1, y.buf, 0, -1, coll_flat(x.bytes));
    return true;
  }
  /* Block j of x ([outer, j * mid/p .. , inner] around split_dim) to slot j. */
  CollAround s = coll_around(&x, sd);
  int64_t run_s = s.mid / p * s.inner_bytes;
  int32_t cur = hbm_scratch(c, "a2a.slots", x.bytes);
  TileDmaShape in = {.count0 = run_s, .count1 = p, .count2 = s.outer, .src_stride1 = run_s,
                     .src_stride2 = p * run_s, .dst_stride1 = blk, .dst_stride2 = run_s};
  coll_local_copy(c, x.buf, 0, -1, cur, 0, -1, in);
  for (int k = 0; k < c->naxes; k++) {
    if (c->ax[k].p < 2) continue;
    int32_t next = hbm_scratch(c, "a2a.slots", x.bytes);
    exchange_axis(c, k, cur, next, blk);
    cur = next;
  }
  /* Slot j (a block: the result with concat_dim / p) to position j along concat_dim. */
  TileTensorRef b = y;
  b.dims[cd] /= p;
  CollAround o = coll_around(&b, cd);
  int64_t run_c = o.mid * o.inner_bytes;
  TileDmaShape out = {.count0 = run_c, .count1 = o.outer, .count2 = p, .src_stride1 = run_c,
                      .src_stride2 = blk, .dst_stride1 = p * run_c, .dst_stride2 = run_c};
  coll_local_copy(c, cur, 0, -1, y.buf, 0, -1, out);
  return true;
}
