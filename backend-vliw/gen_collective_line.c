/* The latency-optimized all_reduce over an axis without wraparound (a line): reduce
 * toward the middle chip, then broadcast from it (gen_collective_int.h).
 *
 * On a line of p chips the exchange of gen_collective_small.c, whole operands going
 * halfway round a ring, routes its closing step across the line, p - 1 hops per step:
 * on a line of 8 each of its 4 steps pays 7 hop latencies. Here the operand flows along
 * the line only. With the root r = floor((p - 1) / 2) and this chip at q:
 *
 *   phase 1 (reduce): chips left of r send their partial sum rightward, chips right of
 *     r leftward; each adds what arrives from outside it (left, then right) to its own
 *     operand before sending on, so the root ends with the whole reduction;
 *   phase 2 (broadcast): every chip but the root takes the result from its inner
 *     neighbour and passes it outward. The root sends each sub-chunk of the result both
 *     ways in phase 1, as soon as it has combined it: waiting for the whole sum first
 *     would hold every sub-chunk but the last for the operand's transfer time (3.8k
 *     cycles of a 128 KiB all_reduce on v5e-like).
 *
 * Each phase is ceil((p - 1) / 2) hops long, so the whole takes about p hop latencies
 * where the ring exchange takes (p / 2) (p - 1). The operand goes as up to LINE_SUBS
 * sub-chunks, each sent on as soon as it has arrived and been combined, so a phase costs
 * one sub-chunk's transfer per hop plus the operand once. Only the root's sum is kept
 * (every other chip overwrites its partial with the broadcast), so every chip ends with
 * the same bits, summed in the same order on every run.
 *
 * Every chip runs the same code (SPMD), but chips do different work here: the ends
 * receive nothing in phase 1, the root sends nothing in it and receives nothing in
 * phase 2. The code stays uniform by choosing at run time, from the chip's position,
 * what each of its DMAs does:
 *   - a send with no receiver goes to a scratch buffer on this chip and signals no one
 *     (a "ghost", a VMEM copy that takes no HBM): descriptor peer, destination and
 *     arrival semaphore are words stored from registers (the descriptor layout of
 *     docs/emulator.md); in phase 1 the root's inward send and the other chips'
 *     broadcasts are ghosts;
 *   - a side with nothing to combine reads an identity buffer (0 for add, 1 for mul,
 *     -inf for max, +inf for min), so the combine is the same code;
 *   - every chip waits for one arrival from each side per sub-chunk and phase; on a side
 *     where no peer sends in that phase the chip first gives itself the count, a 4-byte
 *     local DMA whose arrival semaphore is that side's or none ("credit").
 *
 * Semaphores: arrivals from the left count on the band semaphore of rings toward +
 * (whose previous chip is the left neighbour), those from the right on the one toward -
 * (coll_recv_sem), so each semaphore has one sender on another chip, as the rings
 * assume (gen_collective_ring.c), and that sender's transfers arrive in order. Credits
 * share the semaphore, in any mix with real waits, and stay sound because each is issued
 * just before its own wait: when the n-th wait on a semaphore passes, with m credit
 * waits among the first n, at most m credits have landed, so at least n - m transfers of
 * the sender have, which is every transfer the real waits among them need (in order). Per
 * collective a chip's credits equal its credit waits and it waits for all of them to
 * land, so the count it leaves for the next collective is the sender's early transfers
 * only, whichever waits took what.
 *
 * Buffers: the receive buffer (left half, right half, then the identity) and this
 * chip's working copy are written once per run; the broadcast overwrites a chip's
 * partial only after its own send of it has landed (the result comes back through the
 * chip it was sent to). Ghost writes go to a buffer no op names, so layout keeps it for
 * the whole run and gives its bytes to no one. */
#include <math.h>
#include <string.h>

#include "dma_desc.h"
#include "gen_collective_int.h"

/* Sub-chunks per operand: more overlap the hops with the transfer (each hop then
 * waits for one sub-chunk), and each adds a few DMAs and waits. */
enum { LINE_SUBS = 8 };

/* The most DMAs a line collective keeps in flight (where dma.outstanding allows, less
 * the two it keeps for local copies as coll_depth does): its sends beside one credit
 * here, beside two credits and a local copy in a reduce_scatter's levels. Stated to the
 * lowering (TileLowerCtx.dma_cap) so that the weights of a later matmul may stream
 * beside it (lower_prefetch.c). */
enum { LINE_INFLIGHT = 10 };

int32_t coll_line_inflight(const Coll *c) {
  int64_t n = c->cx->target->dma_outstanding - 2;
  return (int32_t)(n < LINE_INFLIGHT ? n : LINE_INFLIGHT);
}

static int64_t line_subs(int64_t padded, int64_t tile) {
  int64_t tiles = padded / tile;
  for (int64_t s = LINE_SUBS; s > 1; s--)
    if (tiles % s == 0) return s;
  return 1;
}

int64_t coll_line_vmem(int64_t padded, int64_t tile) {
  int64_t sub = padded / line_subs(padded, tile);
  return 2 * padded + 2 * sub; /* receive halves, identity, ghost */
}

int64_t coll_line_estimate(const Coll *c, int k, int64_t padded, const CollReduce *r) {
  const TileTarget *t = c->cx->target;
  int64_t p = c->ax[k].p, s = line_subs(padded, r->tile_bytes), sub = padded / s;
  int64_t hops = p / 2, ser = coll_link_cycles(t, sub);
  int64_t vpu = 4 * (sub / r->tile_bytes); /* two combines, two loads a tile each */
  /* the sub-chunks stream through both phases: the root sends each on once summed */
  return 2 * hops * (tile_target_hop_cycles(t) + ser + COLL_STEP_OVERHEAD) +
         (s - 1) * (ser + vpu);
}

int32_t coll_sel(Coll *c, int32_t cond, int32_t a, int32_t b) {
  int32_t d = tile_mir_sreg(c->m);
  coll_rr(c, TILE_MOP_SUB, d, a, b);
  coll_rr(c, TILE_MOP_MUL, d, d, cond);
  coll_rr(c, TILE_MOP_ADD, d, d, b);
  return d;
}

int32_t coll_in_range(Coll *c, int32_t q, int64_t lo, int64_t hi) {
  int32_t a = tile_mir_sreg(c->m), b = tile_mir_sreg(c->m);
  coll_rr(c, TILE_MOP_SLT, a, coll_li(c, lo - 1), q);
  coll_rr(c, TILE_MOP_SLT, b, q, coll_li(c, hi + 1));
  coll_rr(c, TILE_MOP_AND, a, a, b);
  return a;
}

void coll_store_desc_word(Coll *c, const TileDmaSite *s, int32_t reg, int word) {
  TileMirInst st = tile_mir_inst(TILE_MOP_SST, reg, s->desc_reg, 0, 0, word * 4);
  tile_mir_mem(&st, s->desc, TILE_MIR_WRITE, 0);
  tile_mir_add(c->m, st);
}

TileDmaSite coll_line_site(Coll *c, int32_t src_buf, int32_t dst_buf, int64_t bytes,
                        int32_t peer, int32_t dst_sem, int32_t sent_sem, bool remote) {
  TileMir *m = c->m;
  const TileTarget *t = c->cx->target;
  TileDmaShape shape = coll_flat(bytes);
  TileDmaSite s = {.sem = sent_sem, .src_buf = src_buf, .dst_buf = dst_buf, .bytes = bytes};
  s.est_cycles = remote ? (int32_t)(t->dma_issue_cycles + tile_target_hop_cycles(t) +
                                    coll_link_cycles(t, bytes))
                        : tile_lower_dma_cycles(t, bytes);
  char name[64];
  snprintf(name, sizeof name, "line%d.%.40s", (int)m->nbufs, m->bufs[dst_buf].name);
  s.desc = tile_dma_desc_buffer(m, name, src_buf, 0, dst_buf, 0, &shape, sent_sem);
  s.desc_reg = coll_addr(c, s.desc, 0);
  coll_store_desc_word(c, &s, peer, DESC_PEER);
  coll_store_desc_word(c, &s, dst_sem, DESC_DST_SEM);
  if (remote) coll_mark_remote(c, dst_buf);
  return s;
}

void coll_wait_sem(Coll *c, int32_t sem, int64_t n, int32_t names) {
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, sem, (int32_t)n);
  if (names >= 0) tile_mir_mem(&in, names, TILE_MIR_WRITE, 0);
  tile_mir_add(c->m, in);
}

/* The identity of r's operation, as the f32 or i32 bits a vector register holds. */
static uint32_t identity_bits(const CollReduce *r) {
  float f = 0.0f;
  switch (r->vop) {
  case TILE_MOP_VMULF: f = 1.0f; break;
  case TILE_MOP_VMULI: return 1;
  case TILE_MOP_VMAXF: f = -INFINITY; break;
  case TILE_MOP_VMINF: f = INFINITY; break;
  default: return 0;
  }
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

CollCredit coll_credit(Coll *c, int32_t real, int dir, int k, int32_t credits) {
  TileMir *m = c->m;
  char name[64];
  snprintf(name, sizeof name, "line.credit.%d", (int)m->nbufs);
  int32_t cbuf = tile_mir_buffer(m, name, TILE_SPACE_SMEM, 8, 1, 4);
  /* no real sender: the credit signals the side's semaphore; else it signals none */
  int32_t sem = coll_sel(c, real, coll_li(c, -1), coll_li(c, coll_recv_sem(c, dir, k)));
  CollCredit s = {coll_line_site(c, cbuf, cbuf, 4, c->chipid, sem, credits, false), dir, k};
  return s;
}

void coll_credit_wait(Coll *c, const CollCredit *cr) {
  tile_dma_issue(c->cx, &cr->site, -1, 0, -1, 0);
  coll_wait_sem(c, coll_recv_sem(c, cr->dir, cr->k), 1, -1);
}

int32_t coll_plus(Coll *c, int32_t a, int32_t b) {
  int32_t d = tile_mir_sreg(c->m);
  coll_rr(c, TILE_MOP_ADD, d, a, b);
  return d;
}

int32_t coll_times(Coll *c, int32_t a, int64_t imm) {
  int32_t d = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_MULI, d, a, imm);
  return d;
}

int32_t coll_at(Coll *c, int32_t base, int32_t step, int64_t j) {
  int32_t d = coll_times(c, step, j);
  coll_rr(c, TILE_MOP_ADD, d, d, base);
  return d;
}

/* Where the result's sub-chunks live: this chip's working copy (buffer work, its
 * address in work_at), sub bytes apart; ghost_at is the scratch of sends with no
 * receiver. */
typedef struct LineResult {
  int32_t work, work_at, ghost_at, sub_r, zero;
  int64_t sub;
} LineResult;

/* A send of the result's sub-chunks into the same place on peer nb, arriving on its
 * semaphore sem, or where real is 0 a ghost; *base and *step give sub-chunk j's
 * destination. */
static TileDmaSite result_site(Coll *c, const LineResult *lr, int32_t real, int32_t nb,
                               int32_t sem, int32_t sent, int32_t *base, int32_t *step) {
  int32_t peer = coll_sel(c, real, nb, c->chipid);
  int32_t dst_sem = coll_sel(c, real, sem, coll_li(c, -1));
  *base = coll_sel(c, real, lr->work_at, lr->ghost_at);
  *step = coll_sel(c, real, lr->sub_r, lr->zero);
  return coll_line_site(c, lr->work, lr->work, lr->sub, peer, dst_sem, sent, true);
}

/* The sends in flight of both phases, each phase's counted on its own sent semaphore
 * (sem), all of them `cap` at most. A chip's phase 2 starts while its last sends of
 * phase 1 are on the links: waiting for them first held the root's neighbours, whose
 * results were arriving meanwhile, for a hop. */
typedef struct LineFlight {
  int64_t issued[2], landed[2];
  int32_t sem[2];
  int64_t cap;
  int32_t names; /* a descriptor the waits name, to order them after the sends */
} LineFlight;

/* Makes room for n more DMAs of phase ph: waits for the oldest sends, phase 1's
 * (which left first) before phase 2's. */
static void flight_room(Coll *c, LineFlight *f, int ph, int64_t n) {
  int64_t over = f->issued[0] - f->landed[0] + f->issued[1] - f->landed[1] + n - f->cap;
  for (int q = 0; q < 2 && over > 0; q++) {
    int64_t w = f->issued[q] - f->landed[q];
    if (w > over) w = over;
    if (w <= 0) continue;
    coll_wait_sem(c, f->sem[q], w, f->names);
    f->landed[q] += w;
    over -= w;
  }
  f->issued[ph] += n;
}

/* coll_credit_wait, then the wait for the credit itself to land (a few cycles), so that
 * no more than one is in flight beside the sends. */
static void line_credit(Coll *c, const CollCredit *cr, int32_t credits) {
  coll_credit_wait(c, cr);
  coll_wait_sem(c, credits, 1, -1);
}

void coll_line_axis(Coll *c, int k, int32_t work, int64_t padded, const CollReduce *r) {
  TileMir *m = c->m;
  const CollAxis *a = &c->ax[k];
  const int64_t p = a->p, root = (p - 1) / 2, S = line_subs(padded, r->tile_bytes);
  const int64_t sub = padded / S;
  /* sends: all the line keeps in flight but one credit (each is waited for as it lands,
   * line_credit) */
  const int64_t dmas = coll_line_inflight(c) - 1;
  char name[64];
  snprintf(name, sizeof name, "line.%s.%d", a->name, (int)m->nbufs);
  /* [0, padded): from the left; [padded, 2 padded): from the right; then the identity */
  int32_t in = tile_mir_buffer(m, name, TILE_SPACE_VMEM, 2 * padded + sub, 1, 64);
  snprintf(name, sizeof name, "line.ghost.%d", (int)m->nbufs);
  int32_t ghost = tile_mir_buffer(m, name, TILE_SPACE_VMEM, sub, 1, 64);
  int32_t credits = tile_mir_sem(m);

  /* the identity, for sides with nothing to combine */
  int32_t v = tile_mir_vreg(m), id = coll_addr(c, in, 2 * padded);
  tile_mir_add(m, tile_mir_inst(TILE_MOP_VLI, v, 0, 0, 0, (int32_t)identity_bits(r)));
  tile_mir_loop_begin(m, (int32_t)(sub / r->tile_bytes), TILE_MIR_PIPELINE);
  TileMirInst st = tile_mir_inst(r->store, v, id, r->stride_reg, 0, 0);
  tile_mir_mem(&st, in, TILE_MIR_WRITE, 0);
  tile_mir_add(m, st);
  coll_ri(c, TILE_MOP_ADDI, id, id, r->tile_bytes);
  tile_mir_loop_end(m);

  /* Roles from the position q. */
  int32_t q = c->coord[k], left = c->next[1][k], right = c->next[0][k];
  int32_t from_l = coll_in_range(c, q, 1, root);      /* phase 1: the left sends here */
  int32_t from_r = coll_in_range(c, q, root, p - 2);  /* phase 1: the right sends here */
  /* phase 1: this chip sends right (left); phase 2: the result comes from the right
   * (left), the way its partial went */
  int32_t go_r = coll_in_range(c, q, 0, root - 1);
  int32_t go_l = coll_in_range(c, q, root + 1, p - 1);
  int32_t zero = tile_lower_zero(c->cx), one = coll_li(c, 1), sub_r = coll_li(c, sub);
  int32_t ghost_at = coll_addr(c, ghost, 0), work_at = coll_addr(c, work, 0);
  int32_t in_l = coll_addr(c, in, 0), in_r = coll_addr(c, in, padded);
  int32_t ident = coll_addr(c, in, 2 * padded);
  const LineResult lr = {work, work_at, ghost_at, sub_r, zero, sub};

  /* ---- phase 1: combine what comes from outside, send inward ---- */
  CollCredit s1[2] = {coll_credit(c, from_l, 0, k, credits), coll_credit(c, from_r, 1, k, credits)};
  int32_t src_base[2] = {coll_sel(c, from_l, in_l, ident), coll_sel(c, from_r, in_r, ident)};
  int32_t src_step[2] = {coll_sel(c, from_l, sub_r, zero), coll_sel(c, from_r, sub_r, zero)};
  int32_t sends = coll_sel(c, go_r, one, go_l); /* 0 only at the root */
  int32_t at_root = coll_sel(c, sends, zero, one);
  int32_t peer1 = coll_sel(c, go_r, right, coll_sel(c, go_l, left, c->chipid));
  int32_t sem1 = coll_sel(c, go_r, coll_li(c, coll_recv_sem(c, 0, k)),
                     coll_sel(c, go_l, coll_li(c, coll_recv_sem(c, 1, k)), coll_li(c, -1)));
  /* a rightward send lands in the receiver's left half, a leftward one in its right */
  int32_t dst1 = coll_sel(c, sends, coll_sel(c, go_r, in_l, in_r), ghost_at);
  int32_t step1 = coll_sel(c, sends, sub_r, zero);
  TileDmaSite up = coll_line_site(c, work, in, sub, peer1, sem1, c->sem_sent[0], true);
  /* The result goes back to who sent here in phase 1, each way (d = 0: to the left,
   * arriving on the receiver's semaphore from its right): from the root in phase 1,
   * from every other chip in phase 2. */
  int32_t outs[2] = {from_l, from_r}, nb[2] = {left, right};
  int32_t dir_sem[2] = {coll_li(c, coll_recv_sem(c, 1, k)), coll_li(c, coll_recv_sem(c, 0, k))};
  TileDmaSite bcast[2];
  int32_t bbase[2], bstep[2];
  for (int d = 0; d < 2; d++) {
    int32_t real = coll_sel(c, at_root, outs[d], zero);
    bcast[d] = result_site(c, &lr, real, nb[d], dir_sem[d], c->sem_sent[0], &bbase[d], &bstep[d]);
  }
  /* Three DMAs a sub-chunk (two of them ghosts, which land at once) on one sent
   * semaphore, waited for by count so that at most `dmas` are in flight, counted with
   * phase 2's (which starts with this phase's last sends still on the links). */
  LineFlight fl = {{0, 0}, {0, 0}, {c->sem_sent[0], c->sem_sent[1]}, dmas, up.desc};
  for (int64_t j = 0; j < S; j++) {
    int32_t from = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_ADDI, from, work_at, j * sub);
    for (int d = 0; d < 2; d++) {
      line_credit(c, &s1[d], credits);
      int32_t src = coll_at(c, src_base[d], src_step[d], j), to = tile_mir_sreg(m);
      coll_ri(c, TILE_MOP_ADDI, to, work_at, j * sub);
      coll_reduce_into(c, r, r->vop, in, src, work, to, sub);
    }
    flight_room(c, &fl, 0, 3);
    tile_dma_issue(c->cx, &up, from, 0, coll_at(c, dst1, step1, j), 0);
    for (int d = 0; d < 2; d++)
      tile_dma_issue(c->cx, &bcast[d], from, 0, coll_at(c, bbase[d], bstep[d], j), 0);
  }

  /* ---- phase 2: take the result from inside, send it outward ---- */
  CollCredit s2[2] = {coll_credit(c, go_l, 0, k, credits), coll_credit(c, go_r, 1, k, credits)};
  TileDmaSite down[2];
  int32_t dbase[2], dstep[2];
  for (int d = 0; d < 2; d++) { /* the root's went in phase 1 */
    int32_t real = coll_sel(c, sends, outs[d], zero);
    down[d] = result_site(c, &lr, real, nb[d], dir_sem[d], c->sem_sent[1], &dbase[d], &dstep[d]);
  }
  for (int64_t j = 0; j < S; j++) {
    for (int d = 0; d < 2; d++) line_credit(c, &s2[d], credits);
    int32_t src = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_ADDI, src, work_at, j * sub);
    flight_room(c, &fl, 1, 2);
    for (int d = 0; d < 2; d++)
      tile_dma_issue(c->cx, &down[d], src, 0, coll_at(c, dbase[d], dstep[d], j), 0);
  }
  for (int ph = 0; ph < 2; ph++)
    coll_wait_sem(c, fl.sem[ph], fl.issued[ph] - fl.landed[ph], fl.names);
}
