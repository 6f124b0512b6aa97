/* all_to_all on the torus (gen_collective_int.h): chip r splits its operand along
 * split_dim into P blocks (P chips over the op's axes), block j goes to the chip of rank
 * j, and the result concatenates along concat_dim the blocks every chip sent to r, in
 * rank order.
 *
 * Data stays in HBM. The operand is first rearranged block-major (block j contiguous at
 * j * blk; where split_dim has nothing outside it the operand already is, and is read
 * in place). Then one exchange per axis k: the blocks whose rank digit k is t go to the
 * chip at coordinate t and land where digit k names the sender's coordinate; after
 * every axis, slot j on chip r holds the block chip j sent to r (in any order of the
 * axes: each part of the slots takes its own, see coll_all_to_all). A last strided copy
 * places the slots along concat_dim (where concat_dim has nothing outside it, the last
 * exchange writes the result itself). An axis that wraps exchanges on its ring (below);
 * one without wraparound along the line, every block straight toward its chip
 * (gen_collective_line_a2a.c), since a ring's closing step there routes across the
 * whole line.
 *
 * One ring exchange (p chips, chip c): a "group" t is the blocks with digit k = t,
 * strided in the slot buffer. Store and forward round the ring toward + for the groups
 * of the chips after this one: round 1 sends the next chip those groups, packed in
 * order of distance (group c + 1 first); round s sends on what round s - 1 brought, less
 * its first item, which was for this chip ... so each round a chip keeps the head of
 * what it received (the group chip c - s meant for it) and forwards the tail. The same
 * toward - for the chips before this one, in the same rounds; each chain takes the
 * (p - 1) / 2 nearest groups its way, and for an even p half of each run of the group
 * halfway round (Xchg). Every transfer goes to the next chip into a buffer of its own
 * round (written once per run), so arrivals count on the ring's band semaphore like the
 * other collectives' (see gen_collective_ring.c). Each link carries about p^2 / 8
 * groups: as many as routing each group straight to its chip the short way round. */
#include "gen_collective_int.h"

static int32_t hbm_scratch(Coll *c, const char *what, int64_t bytes) {
  char name[64];
  snprintf(name, sizeof name, "coll.%s.%d", what, (int)c->m->nbufs);
  return tile_mir_buffer(c->m, name, TILE_SPACE_HBM, bytes, 1, 64);
}

/* One part's exchange over one axis: bytes [off, off + sub) of every slot. A chain (one
 * per direction) carries `full` whole groups and, for an even p, part of the group
 * halfway round (bytes [foff, foff + far) of each of its runs): the two chains split it,
 * so both directions' links carry the same. */
typedef struct Xchg {
  int k;                     /* axis */
  int64_t p, run, group;     /* chips on k; bytes from group t to t + 1; a group packed */
  int64_t full[2], h[2];     /* whole groups per chain; items (with the split one) */
  int64_t far[2], foff[2], fbytes[2]; /* the split group's share: run bytes, offset, packed */
  TileDmaShape pack, unpack, fpack[2], funpack[2];
  int32_t bundle[2], rb[2], sender[2];
  CollRemote ps[2], us[2], fps[2], fus[2], r[2];
  int64_t prev[2], at[2];
} Xchg;

/* Bytes of chain d's item i (1-based): a whole group, or the split group's share. */
static int64_t item(const Xchg *x, int d, int64_t i) {
  return i <= x->full[d] ? x->group : x->fbytes[d];
}

/* Bytes chain d sends in round s: its items s .. h. */
static int64_t round_bytes(const Xchg *x, int d, int64_t s) {
  int64_t b = 0;
  for (int64_t i = s; i <= x->h[d]; i++) b += item(x, d, i);
  return b;
}

/* pack (slots to packed) or unpack of `len` bytes of every run. */
static TileDmaShape group_shape(const TileDmaShape *strided, int64_t len, bool pack) {
  TileDmaShape s = *strided;
  s.count0 = len;
  if (pack) {
    s.dst_stride1 = len;
    s.dst_stride2 = strided->count1 * len;
  } else {
    s.src_stride1 = len;
    s.src_stride2 = strided->count1 * len;
  }
  return s;
}

/* The own group's copy and the first bundles of part exchange x (module comment). */
static void xchg_begin(Coll *c, Xchg *x, int32_t src, int32_t dst, int64_t blk, int64_t off,
                       int64_t sub, int eb) {
  TileMir *m = c->m;
  int k = x->k;
  int64_t p = c->ax[k].p, inner = 1, outer = 1;
  for (int i = k + 1; i < c->naxes; i++) inner *= c->ax[i].p;
  for (int i = 0; i < k; i++) outer *= c->ax[i].p;
  x->p = p;
  x->run = inner * blk;
  x->group = outer * inner * sub;
  /* A group in the slots: inner runs of sub bytes blk apart, outer times p * run apart. */
  TileDmaShape strided = {.count0 = sub, .count1 = inner, .count2 = outer, .src_stride1 = blk,
                          .src_stride2 = p * x->run, .dst_stride1 = blk,
                          .dst_stride2 = p * x->run};
  x->pack = group_shape(&strided, sub, true);
  x->unpack = group_shape(&strided, sub, false);

  /* This chip's own group stays, at the same place. */
  int32_t own = tile_mir_sreg(m), at_src = tile_mir_sreg(m), at_dst = tile_mir_sreg(m);
  coll_ri(c, TILE_MOP_MULI, own, c->coord[k], x->run);
  coll_ri(c, TILE_MOP_ADDI, own, own, off);
  coll_rr(c, TILE_MOP_ADD, at_src, coll_addr(c, src, 0), own);
  coll_rr(c, TILE_MOP_ADD, at_dst, coll_addr(c, dst, 0), own);
  coll_local_copy(c, src, 0, at_src, dst, 0, at_dst, strided);

  /* Two chains, toward + for the groups 1 .. (p - 1) / 2 positions on and toward - for
   * those as far back, and for an even p the group p / 2 away split between them: each
   * group goes the short way round, and both directions' links carry the same. Round
   * 1's bundle of a chain: its items packed nearest first. */
  int64_t half = p % 2 ? 0 : sub / eb / 2 * eb;
  for (int d = 0; d < 2; d++) {
    x->full[d] = (p - 1) / 2;
    x->far[d] = p % 2 ? 0 : d == 0 ? (half ? half : sub) : sub - (half ? half : sub);
    x->foff[d] = d == 0 ? 0 : (half ? half : sub);
    x->fbytes[d] = outer * inner * x->far[d];
    x->h[d] = x->full[d] + (x->far[d] > 0);
  }
  int32_t src_base = coll_addr(c, src, 0);
  for (int d = 0; d < 2; d++) {
    x->prev[d] = -1;
    x->at[d] = 0;
    if (!x->h[d]) continue;
    x->bundle[d] = hbm_scratch(c, "a2a.send", round_bytes(x, d, 1));
    int32_t t = tile_mir_sreg(m), from = tile_mir_sreg(m), to = coll_addr(c, x->bundle[d], 0);
    coll_rr(c, TILE_MOP_MOV, t, own, 0);
    if (x->full[d]) {
      x->ps[d] = coll_copy_site(c, src, x->bundle[d], x->pack);
      tile_mir_loop_begin(m, (int32_t)x->full[d], 0);
      if (d == 0) coll_step_on(c, t, x->run, p * x->run);
      else coll_step_back(c, t, x->run, p * x->run);
      coll_rr(c, TILE_MOP_ADD, from, src_base, t);
      coll_copy(c, &x->ps[d], from, to);
      coll_ri(c, TILE_MOP_ADDI, to, to, x->group);
      tile_mir_loop_end(m);
    }
    if (x->far[d]) { /* the split group, p / 2 away either way */
      x->fpack[d] = group_shape(&strided, x->far[d], true);
      x->funpack[d] = group_shape(&strided, x->far[d], false);
      x->fps[d] = coll_copy_site(c, src, x->bundle[d], x->fpack[d]);
      if (d == 0) coll_step_on(c, t, x->run, p * x->run);
      else coll_step_back(c, t, x->run, p * x->run);
      coll_rr(c, TILE_MOP_ADD, from, src_base, t);
      if (x->foff[d]) coll_ri(c, TILE_MOP_ADDI, from, from, x->foff[d]);
      coll_copy(c, &x->fps[d], from, to);
    }
    /* Receive buffers of each round's bytes, one after another. */
    int64_t total = 0;
    for (int64_t s = 1; s <= x->h[d]; s++) total += round_bytes(x, d, s);
    x->rb[d] = hbm_scratch(c, "a2a.recv", total);
    x->us[d] = coll_copy_site(c, x->rb[d], dst, x->unpack);
    if (x->far[d]) x->fus[d] = coll_copy_site(c, x->rb[d], dst, x->funpack[d]);
    x->sender[d] = tile_mir_sreg(m);
    coll_rr(c, TILE_MOP_MOV, x->sender[d], own, 0);
  }
}

/* Round s of part exchange x: its chains' sends. */
static void xchg_send(Coll *c, Xchg *x, int64_t s) {
  for (int d = 0; d < 2; d++) {
    if (s > x->h[d]) continue;
    int64_t bytes = round_bytes(x, d, s);
    int32_t from_buf = s == 1 ? x->bundle[d] : x->rb[d];
    int64_t from_off = s == 1 ? 0 : x->prev[d] + item(x, d, s - 1);
    x->r[d] = coll_remote(c, x->k, d, from_buf, x->rb[d], coll_flat(bytes));
    coll_remote_send(c, &x->r[d], coll_addr(c, from_buf, from_off),
                     coll_addr(c, x->rb[d], x->at[d]));
  }
}

/* Round s of part exchange x: the waits and the heads into place. */
static void xchg_receive(Coll *c, Xchg *x, int32_t dst, int64_t s) {
  for (int d = 0; d < 2; d++) {
    if (s > x->h[d]) continue;
    coll_remote_wait(c, &x->r[d]);
    /* The head came from chip c -/+ s and is for this chip: slot digit k = c -/+ s. */
    if (d == 0) coll_step_back(c, x->sender[d], x->run, x->p * x->run);
    else coll_step_on(c, x->sender[d], x->run, x->p * x->run);
    int32_t place = tile_mir_sreg(c->m);
    coll_rr(c, TILE_MOP_ADD, place, coll_addr(c, dst, 0), x->sender[d]);
    bool split = s > x->full[d];
    if (split && x->foff[d]) coll_ri(c, TILE_MOP_ADDI, place, place, x->foff[d]);
    coll_copy(c, split ? &x->fus[d] : &x->us[d], coll_addr(c, x->rb[d], x->at[d]), place);
    x->prev[d] = x->at[d];
    x->at[d] += round_bytes(x, d, s);
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
  /* Block j of x ([outer, j * mid/p .. , inner] around split_dim) to slot j: x itself
   * where split_dim has nothing outside it (its blocks already lie so). */
  CollAround s = coll_around(&x, sd);
  int64_t run_s = s.mid / p * s.inner_bytes;
  int32_t cur = x.buf;
  if (s.outer > 1) {
    cur = hbm_scratch(c, "a2a.slots", x.bytes);
    TileDmaShape in = {.count0 = run_s, .count1 = p, .count2 = s.outer, .src_stride1 = run_s,
                       .src_stride2 = p * run_s, .dst_stride1 = blk, .dst_stride2 = run_s};
    coll_local_copy(c, x.buf, 0, -1, cur, 0, -1, in);
  }
  /* Slot j (a block: the result with concat_dim / p) to position j along concat_dim: the
   * last level writes y itself where concat_dim has nothing outside it. */
  TileTensorRef b = y;
  b.dims[cd] /= p;
  CollAround o = coll_around(&b, cd);
  /* Parts: where every axis that carries data has the same length, each slot is cut in
   * one byte range per rotation of the axis order, and at every level each range is
   * exchanged over a different axis, all in the same rounds, so every axis's links
   * carry data at once (as all_reduce's parts do). An axis without wraparound exchanges
   * its parts along the line (gen_collective_line_a2a.c), after the rings of the level. */
  int act[TILE_MAX_TORUS_RANK], nact = 0;
  bool same = true;
  for (int k = 0; k < c->naxes; k++) {
    if (c->ax[k].p < 2) continue;
    if (nact) same &= c->ax[k].p == c->ax[act[0]].p;
    act[nact++] = k;
  }
  int eb = tile_lower_elem_bytes((TileElem)x.elem), nparts = same ? nact : 1;
  if (blk / eb < nparts) nparts = 1;
  int64_t off[TILE_MAX_TORUS_RANK + 1] = {0};
  for (int i = 0; i < nparts; i++)
    off[i + 1] = off[i] + (blk / eb / nparts + (i < blk / eb % nparts)) * eb;
  for (int l = 0; l < nact; l++) {
    int32_t next = l + 1 == nact && o.outer == 1 ? y.buf : hbm_scratch(c, "a2a.slots", x.bytes);
    Xchg xs[TILE_MAX_TORUS_RANK];
    CollLinePart lines[TILE_MAX_TORUS_RANK];
    int64_t rounds = 0;
    int nring = 0, nline = 0;
    for (int i = 0; i < nparts; i++) {
      int k = act[(i + l) % nact];
      if (!c->ax[k].wrap) {
        lines[nline++] = (CollLinePart){k, off[i], off[i + 1] - off[i]};
        continue;
      }
      Xchg *g = &xs[nring++];
      g->k = k;
      xchg_begin(c, g, cur, next, blk, off[i], off[i + 1] - off[i], eb);
      for (int d = 0; d < 2; d++) rounds = g->h[d] > rounds ? g->h[d] : rounds;
    }
    for (int64_t r = 1; r <= rounds; r++) {
      for (int i = 0; i < nring; i++) xchg_send(c, &xs[i], r);
      for (int i = 0; i < nring; i++) xchg_receive(c, &xs[i], next, r);
    }
    coll_line_a2a_level(c, lines, nline, cur, next, blk);
    cur = next;
  }
  if (cur == y.buf) return true;
  int64_t run_c = o.mid * o.inner_bytes;
  TileDmaShape out = {.count0 = run_c, .count1 = o.outer, .count2 = p, .src_stride1 = run_c,
                      .src_stride2 = blk, .dst_stride1 = p * run_c, .dst_stride2 = run_c};
  coll_local_copy(c, cur, 0, -1, y.buf, 0, -1, out);
  return true;
}
