/* The latency-optimized all_reduce over an axis without wraparound (a line): reduce
 * toward the middle, then broadcast from it (gen_collective_int.h).
 *
 * On a line of p chips the exchange of gen_collective_small.c, whole operands going
 * halfway round a ring, routes its closing step across the line, p - 1 hops per step:
 * on a line of 8 each of its 4 steps pays 7 hop latencies. Here the operand flows along
 * the line only. With the roots r0 = floor((p - 1) / 2) and r1 = floor(p / 2) (one chip
 * where p is odd, the two middle chips where it is even) and this chip at q:
 *
 *   phase 1 (reduce): chips left of r1 send their partial sum rightward, chips right of
 *     r0 leftward; each adds what arrives from outside it to its own operand before
 *     sending on (from the left, then on rightward; from the right, then on leftward),
 *     so an odd line's root ends with the whole reduction, and on an even line r0 with
 *     the left half and r1 with the right half, which they exchange across the link
 *     between them and combine, both as left half OP right half (the same bits);
 *   phase 2 (broadcast): every chip but the roots takes the result from its inner
 *     neighbour and passes it outward. The roots send each sub-chunk of the result
 *     outward in phase 1, as soon as they have combined it: waiting for the whole sum
 *     first would hold every sub-chunk but the last for the operand's transfer time
 *     (3.8k cycles of a 128 KiB all_reduce on v5e-like). The exchanged halves are added
 *     a few sub-chunks behind the roots' own sends (about the hop they take), so no
 *     root's next send waits for the other root.
 *
 * The result reaches the ends p - 1 hops after the ends sent (r0's chain, the exchange,
 * r1's broadcast): on an even line one hop fewer than one root would take (a root at
 * r0 is p / 2 hops from the right end, there and back), 1.4k cycles of a small
 * all_reduce over 8 chips on v5e-like. The operand goes as up to LINE_SUBS sub-chunks,
 * each sent on as soon as it has arrived and been combined, so a phase costs one
 * sub-chunk's transfer per hop plus the operand once. Only the roots' sums are kept
 * (every other chip overwrites its partial with the broadcast), so every chip ends with
 * the same bits, summed in the same order on every run.
 *
 * Every chip runs the same code (SPMD), but chips do different work here: the ends
 * receive nothing in phase 1, the root sends nothing in it and receives nothing in
 * phase 2. The code stays uniform by choosing at run time, from the chip's position,
 * what each of its DMAs does:
 *   - a send with no receiver goes to a scratch buffer on this chip and signals no one
 *     (a "ghost", a VMEM copy of the identity that takes no HBM): descriptor peer,
 *     destination and arrival semaphore are words stored from registers (the
 *     descriptor layout of docs/emulator.md); in phase 1 a chip's send toward the side
 *     it is not on and the non-roots' broadcasts are ghosts;
 *   - a side with nothing to combine combines the identity (0 for add, 1 for mul, -inf
 *     for max, +inf for min) into a scratch buffer no one reads, so the combine is the
 *     same code and writes nothing a chip may by then be receiving;
 *   - every chip waits for one arrival from each side per sub-chunk and phase, and on an
 *     even line one more from each side for the roots' exchange; where no peer sends
 *     at such a wait the chip first gives itself the count, a 4-byte local DMA whose
 *     arrival semaphore is that side's or none ("credit").
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
 * chip it was sent to; a remote DMA reads its source as it issues, docs/emulator.md, so
 * a root adds the other half into the copy it has just sent). Ghost writes go to a
 * buffer no op names, so layout keeps it for the whole run and gives its bytes to no
 * one. */
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
  return 2 * padded + 3 * sub; /* receive halves, identity, ghost, junk */
}

int64_t coll_line_estimate(const Coll *c, int k, int64_t padded, const CollReduce *r) {
  const TileTarget *t = c->cx->target;
  int64_t p = c->ax[k].p, s = line_subs(padded, r->tile_bytes), sub = padded / s;
  int64_t hops = p - 1, ser = coll_link_cycles(t, sub);
  int64_t vpu = 4 * (sub / r->tile_bytes); /* two combines, two loads a tile each */
  /* the sub-chunks stream through both phases: the root sends each on once summed */
  return hops * (tile_target_hop_cycles(t) + ser + COLL_STEP_OVERHEAD) +
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
 * receiver, junk_at the scratch of combines whose result no one reads. */
typedef struct LineResult {
  int32_t work, work_at, ghost_at, junk_at, sub_r, zero;
  int64_t sub;
} LineResult;

/* A send of sub-chunks from work to peer nb's buffer dst_buf (sub-chunk j at
 * dst_at + j * sub there), arriving on its semaphore sem, or where real is 0 a ghost;
 * *base and *step give sub-chunk j's destination. */
static TileDmaSite send_site(Coll *c, const LineResult *lr, int32_t real, int32_t nb,
                             int32_t sem, int32_t sent, int32_t dst_buf, int32_t dst_at,
                             int32_t *base, int32_t *step) {
  int32_t peer = coll_sel(c, real, nb, c->chipid);
  int32_t dst_sem = coll_sel(c, real, sem, coll_li(c, -1));
  *base = coll_sel(c, real, dst_at, lr->ghost_at);
  *step = coll_sel(c, real, lr->sub_r, lr->zero);
  return coll_line_site(c, lr->work, dst_buf, lr->sub, peer, dst_sem, sent, true);
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

/* One combine of sub-chunk j: where real, work's sub-chunk := itself (op) the in
 * buffer's at in_base + j * sub; elsewhere the junk scratch := itself (op) the identity,
 * which writes nothing anyone reads (work may be receiving the result by then). */
static void combine(Coll *c, const LineResult *lr, const CollReduce *r, int32_t in,
                    int32_t real, int32_t in_base, int32_t ident, int64_t j) {
  int32_t src = coll_sel(c, real, coll_at(c, in_base, lr->sub_r, j), ident);
  int32_t to = tile_mir_sreg(c->m);
  coll_ri(c, TILE_MOP_ADDI, to, lr->work_at, j * lr->sub);
  to = coll_sel(c, real, to, lr->junk_at);
  coll_reduce_into(c, r, r->vop, in, src, lr->work, to, lr->sub);
}

void coll_line_axis(Coll *c, int k, int32_t work, int64_t padded, const CollReduce *r) {
  TileMir *m = c->m;
  const CollAxis *a = &c->ax[k];
  const int64_t p = a->p, S = line_subs(padded, r->tile_bytes);
  const int64_t root_l = (p - 1) / 2, root_r = p / 2; /* one root where p is odd */
  const bool two = root_l != root_r;
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
  snprintf(name, sizeof name, "line.junk.%d", (int)m->nbufs);
  int32_t junk = tile_mir_buffer(m, name, TILE_SPACE_VMEM, sub, 1, 64);
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

  /* Roles from the position q (see the top). */
  int32_t q = c->coord[k], left = c->next[1][k], right = c->next[0][k];
  int32_t from_l = coll_in_range(c, q, 1, root_l);     /* phase 1: the left sends here */
  int32_t late_l = coll_in_range(c, q, root_r, two ? root_r : -1); /* r1: the left half */
  int32_t go_r = coll_in_range(c, q, 0, root_r - 1);     /* phase 1: sends right */
  int32_t go_l = coll_in_range(c, q, root_l + 1, p - 1); /* phase 1: sends left */
  int32_t zero = tile_lower_zero(c->cx), sub_r = coll_li(c, sub);
  int32_t ghost_at = coll_addr(c, ghost, 0), work_at = coll_addr(c, work, 0);
  int32_t junk_at = coll_addr(c, junk, 0);
  int32_t in_l = coll_addr(c, in, 0), in_r = coll_addr(c, in, padded);
  int32_t ident = coll_addr(c, in, 2 * padded);
  const LineResult lr = {work, work_at, ghost_at, junk_at, sub_r, zero, sub};
  /* arrivals from the left count on the semaphore of rings toward +, from the right on
   * the one toward - */
  int32_t sem_l = coll_li(c, coll_recv_sem(c, 0, k)), sem_r = coll_li(c, coll_recv_sem(c, 1, k));

  /* ---- phase 1: combine what comes from outside, send it inward; the roots combine
   * the halves and send the result back out ---- */
  /* the right root's own half comes from the right only (the left root's is exchanged
   * after) */
  int32_t from_r1 = coll_in_range(c, q, root_r, p - 2);
  CollCredit w1[2] = {coll_credit(c, from_l, 0, k, credits), coll_credit(c, from_r1, 1, k, credits)};
  /* a rightward send lands in the receiver's left half, a leftward one in its right */
  int32_t ub[2], us[2], ureal[2] = {go_r, go_l};
  TileDmaSite up[2] = {
      send_site(c, &lr, go_r, right, sem_l, c->sem_sent[0], in, in_l, &ub[0], &us[0]),
      send_site(c, &lr, go_l, left, sem_r, c->sem_sent[0], in, in_r, &ub[1], &us[1])};
  /* The result goes back out (d = 0: to the left, arriving on the receiver's semaphore
   * from its right): from a root in phase 1, from every other chip in phase 2. */
  int32_t nb[2] = {left, right}, dir_sem[2] = {sem_r, sem_l};
  int32_t bout[2] = {coll_in_range(c, q, root_l > 0 ? root_l : 1, root_l),
                     coll_in_range(c, q, root_r, root_r < p - 1 ? root_r : -1)};
  TileDmaSite bcast[2];
  int32_t bbase[2], bstep[2];
  for (int d = 0; d < 2; d++)
    bcast[d] = send_site(c, &lr, bout[d], nb[d], dir_sem[d], c->sem_sent[0], work, work_at,
                         &bbase[d], &bstep[d]);
  /* DMAs on one sent semaphore (ghosts, which land at once, where a chip has no such
   * send), waited for by count so that at most `dmas` are in flight, counted with phase
   * 2's (which starts with this phase's last sends still on the links). A ghost copies
   * the identity, which nothing writes: work may be stored to while a local copy of it
   * is under way. */
  LineFlight fl = {{0, 0}, {0, 0}, {c->sem_sent[0], c->sem_sent[1]}, dmas, up[0].desc};
  /* Two roots: each adds the other's half, which crossed the link between them while
   * it sent its own, `lag` sub-chunks behind its own sends: about the hop that half
   * takes, so the wait for it is short and no root's next send waits for it. */
  CollCredit x[2];
  int32_t at_root = -1;
  if (two) { /* r1 waits for r0's half from the left, r0 for r1's from the right */
    x[0] = coll_credit(c, late_l, 0, k, credits);
    x[1] = coll_credit(c, coll_in_range(c, q, root_l, root_l), 1, k, credits);
    at_root = coll_in_range(c, q, root_l, root_r);
  }
  const TileTarget *t = c->cx->target;
  int64_t per = coll_link_cycles(t, sub) + COLL_STEP_OVERHEAD;
  int64_t lag = two ? (tile_target_hop_cycles(t) + per + per - 1) / per : 0;
  if (lag > S) lag = S;
  for (int64_t i = 0; i < S + lag; i++) {
    if (i < S) { /* from the left, then on rightward; from the right, then on leftward */
      int32_t from = coll_plus(c, work_at, coll_li(c, i * sub));
      for (int d = 0; d < 2; d++) {
        line_credit(c, &w1[d], credits);
        combine(c, &lr, r, in, d ? from_r1 : from_l, d ? in_r : in_l, ident, i);
        flight_room(c, &fl, 0, 1);
        tile_dma_issue(c->cx, &up[d], coll_sel(c, ureal[d], from, ident), 0,
                       coll_at(c, ub[d], us[d], i), 0);
      }
    }
    int64_t j = two ? i - lag : i; /* the sub-chunk whose result goes out */
    if (j < 0 || j >= S) continue;
    int32_t from = coll_plus(c, work_at, coll_li(c, j * sub));
    if (two) { /* left half OP right half on both roots: r0 holds the left, r1 the right */
      for (int d = 0; d < 2; d++) line_credit(c, &x[d], credits);
      int32_t hl = coll_at(c, in_l, sub_r, j), hr = coll_at(c, in_r, sub_r, j);
      int32_t b = coll_sel(c, late_l, hl, coll_sel(c, at_root, from, junk_at));
      int32_t a2 = coll_sel(c, late_l, from, coll_sel(c, at_root, hr, ident));
      int32_t out = coll_sel(c, at_root, from, junk_at);
      coll_reduce_to(c, r, r->vop, in, a2, work, b, work, out, sub);
    }
    flight_room(c, &fl, 0, 2);
    for (int d = 0; d < 2; d++)
      tile_dma_issue(c->cx, &bcast[d], coll_sel(c, bout[d], from, ident), 0,
                     coll_at(c, bbase[d], bstep[d], j), 0);
  }

  /* ---- phase 2: take the result from inside, send it outward ---- */
  CollCredit w2[2] = {coll_credit(c, coll_in_range(c, q, root_r + 1, p - 1), 0, k, credits),
                      coll_credit(c, coll_in_range(c, q, 0, root_l - 1), 1, k, credits)};
  int32_t dout[2] = {coll_in_range(c, q, 1, root_l - 1), coll_in_range(c, q, root_r + 1, p - 2)};
  TileDmaSite down[2];
  int32_t dbase[2], dstep[2];
  for (int d = 0; d < 2; d++)
    down[d] = send_site(c, &lr, dout[d], nb[d], dir_sem[d], c->sem_sent[1], work, work_at,
                        &dbase[d], &dstep[d]);
  for (int64_t j = 0; j < S; j++) {
    for (int d = 0; d < 2; d++) line_credit(c, &w2[d], credits);
    int32_t src = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_ADDI, src, work_at, j * sub);
    flight_room(c, &fl, 1, 2);
    for (int d = 0; d < 2; d++)
      tile_dma_issue(c->cx, &down[d], src, 0, coll_at(c, dbase[d], dstep[d], j), 0);
  }
  for (int ph = 0; ph < 2; ph++)
    coll_wait_sem(c, fl.sem[ph], fl.issued[ph] - fl.landed[ph], fl.names);
}
