/* topk by a chunk tournament: the plan, the stream of the rows into VMEM and the chunks'
 * first heads (the rounds are in gen_select_rounds.c).
 *
 * Chunks are the rows' aligned runs of `lanes` elements (one sublane of a vreg tile). A
 * chunk's head is its best element not yet taken. One streaming pass brings the rows
 * into VMEM and records every chunk's first head; then k rounds each take the best head
 * of the row (the row's next element in the order) and recompute that one chunk's head
 * from VMEM: its best element after the winner in the order, which needs no record of
 * what was taken, since the winners so far are exactly the elements before it. The rows'
 * tails (indices V .. whole blocks) hold -inf, which loses every tie and is never among
 * the first k <= V.
 *
 * Keys. An element x at index i ranks by (x', key) descending, x' = x with NaN read as
 * +inf and key = -i, plus 2^24 for a NaN: NaNs then come before +inf and, among equal
 * x', the lower index first, while x' and key stay plain f32 that vmax, xlu.lmax and
 * the compares order (no NaN among them; indices are exact below 2^24). A head is kept
 * as (x', key); the integer -key masked to 24 bits gives the index back for both kinds.
 * The winner's own bits (a NaN's payload, -0 against +0) are read from the chunk.
 *
 * The stream. DMAs land each block of u tiles straight in its place in `rows` (a row's
 * last block shifted back to end at the row's end), three in flight; the loop reads the
 * tiles there and stores every chunk's head. The tails were filled with -inf before.
 *
 * Heads. Chunk (tile t, sublane s) of row r has its head at lane t of slice (r, s) in
 * `hb`; a row's 8 slices each have one level-2 head, the best of the slice, at lane s of
 * row r's line in `rec` (lanes past 8 -inf). Rows are packed 8 to a vreg, sublane =
 * row, so a round advances 8 rows (a group) with one op per step: the row's best from
 * its line in rec; the winner's chunk and slice offsets go vector -> VMEM -> SMEM (one
 * 64-byte DMA) -> sld, and 8 loads (one per row, sublane-stride 0, combined by a tree of
 * vsel on sublane bits) fetch the chunks and the slices; the chunks' new heads go into
 * the slices, whose new maxima go into rec. A slice goes back with one vst per row whose
 * sublane stride is the guard distance D (or -D): the row's own sublane lands in place,
 * the other seven in guard space (3 D below to 7 D above the real slices, never read).
 * With several groups the store slot binds, so a row's x' and key slices go back in one
 * vst (the keys rotated one sublane next to the x', stride = the key slices' offset).
 *
 * A round's steps depend on each other (a chain of about 100 cycles on v5e-like), so
 * the rounds run beside other work, in one of two schedules (gen_select_rounds.c):
 * batched, after the whole stream, with the loop over groups unrolled by a batch of up
 * to FAST_BATCH groups whose chains the list scheduler interleaves (each group of the
 * batch names its own slot of the shared buffers: the groups' rows are disjoint, so no
 * two groups of a batch touch the same real bytes); or overlapped, each group's rounds
 * inside the next group's stream. sel_tour_plan picks the one its estimate finds
 * quicker. The stream keeps a tile's own keys (the index within the tile);
 * sel_tour_heads adds the tiles' offsets, one op per row rather than one per tile. */
#include "gen_select_int.h"

/* Entries of each staging buffer: [k][R] (batched) or [G][k][8] (overlapped), plus room
 * for the last wide stores. */
int64_t sel_tour_stage(const Sel *s, const Fast *f) {
  return (f->overlap ? f->R8 : s->R) * s->k + f->R8 + f->L;
}

/* Cycle estimates of the two schedules of the rounds (gen_select_rounds.c), from the
 * blocks' HBM time and round costs measured on v5e-like: one group's round alone is a
 * chain of about ROUND_ONE cycles, a batch of b groups takes about ROUND_BATCHED * b, an
 * overlapped round with its blocks about ROUND_OVERLAP, a group's heads about HEADS. */
enum { ROUND_ONE = 100, ROUND_BATCHED = 76, ROUND_OVERLAP = 150, HEADS = 150 };

static bool overlap_pays(const Sel *s, const Fast *f, int64_t groups) {
  int64_t blk = tile_lower_dma_cycles(s->t, f->dsz * s->eb);
  int64_t grp = f->S * s->nblk * blk; /* one group's stream */
  int64_t bs = groups < FAST_BATCH ? groups : FAST_BATCH, nbatch = (groups + bs - 1) / bs;
  int64_t batch_round = ROUND_BATCHED * bs > ROUND_ONE ? ROUND_BATCHED * bs : ROUND_ONE;
  int64_t batched = groups * grp + s->k * nbatch * batch_round;
  int64_t rounds = s->k * ROUND_OVERLAP;
  int64_t overlapped = grp + (groups - 1) * ((grp > rounds ? grp : rounds) + HEADS) +
                       s->k * ROUND_ONE;
  return overlapped < batched;
}

/* Plans the fast topk; false when a row has more tiles than a vreg has lanes or the
 * buffers do not fit half of VMEM (the k-pass method then runs). */
bool sel_tour_plan(Sel *s, Fast *f) {
  const TileTarget *t = s->t;
  f->L = t->vreg_lanes;
  f->S = t->vreg_sublanes;
  f->TE = f->L * f->S;
  if (f->S != 8) return false; /* the sublane tree below has three levels */
  if (f->L & (f->L - 1)) return false; /* a round takes the chunk from the index's bits */
  int64_t ntiles = (s->V + f->TE - 1) / f->TE;
  /* tiles per block: a power of two (sel_tour_heads finds a lane's block by a bit) */
  s->u = 1;
  while (s->u * 2 <= FAST_TILES && s->u * 2 * (int64_t)f->TE <= s->V) s->u *= 2;
  while (s->u > 1 && (ntiles + s->u - 1) / s->u * s->u > f->L) s->u /= 2;
  s->bc = (int64_t)s->u * f->TE;
  s->nblk = (ntiles + s->u - 1) / s->u;
  f->ntp = s->nblk * s->u;
  f->dsz = s->V < s->bc ? s->V : s->bc;
  s->lastcol = s->V - f->dsz;
  s->slot_bytes = 0;
  f->pitch_b = f->ntp * f->TE * s->eb;
  f->hp = (f->ntp - 1 + f->L) * 4; /* tile t's store reaches lane t + lanes - 1 */
  f->sp = round_up(f->ntp * 4, 128);
  f->rpx = 7 * f->sp + f->L * 4;
  int64_t groups = (s->R + f->S - 1) / f->S;
  /* the overlapped schedule where it pays and fits, else the batched one */
  for (int batched = 0; batched < 2; batched++) {
    f->overlap = !batched && groups > 1 && overlap_pays(s, f, groups);
    f->bs = f->overlap ? 1 : groups < FAST_BATCH ? (int)groups : FAST_BATCH;
    f->nbatch = (groups + f->bs - 1) / f->bs;
    f->R8 = f->nbatch * f->bs * f->S;
    f->koff = f->R8 * f->rpx;
    f->gd = round_up(2 * f->koff, 512);
    int64_t stage = sel_tour_stage(s, f) * 4;
    int64_t slices = (GUARD_BELOW + 1 + GUARD_ABOVE) * f->gd;
    /* rows, slices, heads (one copy of every row's when overlapped, two of the real rows'
     * when not), lines, staging, transfers */
    int64_t need = f->R8 * f->pitch_b + slices +
                   (f->overlap ? f->R8 : 2 * s->R) * 2 * f->S * f->hp +
                   2 * f->R8 * f->L * 4 + 2 * stage + f->bs * 8 * (int64_t)f->TE;
    if (f->ntp <= f->L && f->R8 * s->k <= INT32_MAX / 4 && f->R8 * f->pitch_b <= INT32_MAX &&
        s->R * s->V * s->eb <= INT32_MAX && slices <= INT32_MAX &&
        need <= s->t->vmem_bytes / 2)
      return true;
    if (!f->overlap) return false;
  }
  return false;
}

/* Issues the DMA of the block at (dp, drow) and steps both: columns min(b * bc, V - dsz)
 * of the row, from x to the same columns of the row in `rows`. */
static void fast_issue(Sel *s, Fast *f, Pos dp, int32_t drow, int32_t lastrow_d, int slot_ofs) {
  int32_t col = pos_col_bytes(s, dp);
  int32_t dst = sop(s, TILE_MOP_ADD, col, drow, 0);
  TileMirInst in = tile_mir_inst(TILE_MOP_ADDI, dst, dst, 0, 0, 0);
  in.imm_buf = f->rows;
  tile_mir_add(s->m, in);
  int32_t src = sop(s, TILE_MOP_ADD, col, dp.row_off, 0);
  in = tile_mir_inst(TILE_MOP_ADDI, src, src, 0, 0, 0);
  in.imm_buf = s->in_buf;
  tile_mir_add(s->m, in);
  tile_dma_issue(s->cx, &s->site, src, 0, dst, slot_ofs);
  int32_t last = pos_advance(s, dp);
  int32_t step = sop(s, TILE_MOP_MULI, last, 0, (int32_t)f->pitch_b);
  ins(s->m, TILE_MOP_ADD, drow, drow, step, 0, 0);
  ins(s->m, TILE_MOP_MIN, drow, drow, lastrow_d, 0, 0);
}

/* -inf over each row's tail in `rows` (indices V .. ntp * TE), by whole tiles ending at
 * the row's end; a tile reaching back before V is rewritten by the row's DMA later. */
static void fast_fill(Sel *s, Fast *f, int64_t nrows) {
  int64_t tail = f->ntp * f->TE - s->V;
  if (tail <= 0) return;
  int64_t n = (tail + f->TE - 1) / f->TE;
  int32_t a = li_buf(s, f->rows, 0), stride = sop(s, TILE_MOP_LI, 0, 0, f->L * s->eb);
  int op = s->elem == TILE_ELEM_BF16 ? TILE_MOP_VSTBF : TILE_MOP_VST;
  tile_mir_loop_begin(s->m, (int32_t)nrows, 0);
  for (int64_t q = 0; q < n; q++) {
    TileMirInst in = tile_mir_inst(op, s->vneginf, a, stride, 0,
                                   (int32_t)((f->ntp - 1 - q) * f->TE * s->eb));
    tile_mir_mem(&in, f->rows, TILE_MIR_WRITE, 0);
    tile_mir_add(s->m, in);
  }
  ins(s->m, TILE_MOP_ADDI, a, a, 0, 0, (int32_t)f->pitch_b);
  tile_mir_loop_end(s->m);
}

/* The stream's constants. */
void sel_stream_consts(Sel *s, Fast *f, StreamK *k) {
  k->neginf = vli(s, fbits(-INFINITY));
  int32_t io = tile_mir_vreg(s->m);
  ins(s->m, TILE_MOP_VIOTA, io, 0, 0, 0, 2);
  k->niota_f = vop(s, TILE_MOP_VSUBF, s->vzero, vop(s, TILE_MOP_VCVTIF, io, 0));
  k->niota_big = vop(s, TILE_MOP_VADDF, k->niota_f, vli(s, fbits(KEY_NAN)));
  k->pinf = vli(s, fbits(INFINITY));
  k->stride_in = sop(s, TILE_MOP_LI, 0, 0, f->L * s->eb);
  k->stride_h = sop(s, TILE_MOP_LI, 0, 0, (int32_t)f->hp);
}

/* The heads of the block b of a row whose tiles start at rb in `rows` (read as slot
 * rows_tag), stored from h0 offset hrow + b * u * 4. The keys stored are the tile's own
 * (the element's index within its tile); sel_tour_heads subtracts the tiles' offsets,
 * one op per row instead of one per tile. With xr, tile j loads into xr[j % XROT]: in a
 * list-scheduled body a tile's load then waits for the tile XROT before to have read its
 * value, which bounds the tiles in flight (and their registers). */
static void block_heads(Sel *s, Fast *f, const StreamK *k, int32_t b, int32_t rb, int32_t hrow,
                        int rows_tag, const int32_t *xr) {
  TileMir *m = s->m;
  int32_t ha = sop(s, TILE_MOP_MULI, b, 0, s->u * 4);
  ins(m, TILE_MOP_ADD, ha, ha, hrow, 0, 0);
  int ld = s->elem == TILE_ELEM_BF16 ? TILE_MOP_VLDBF : TILE_MOP_VLD;
  for (int j = 0; j < s->u; j++) {
    /* Each value overwrites one that just died, which keeps the loop's registers few. */
    TileMirInst in = tile_mir_inst(ld, xr ? xr[j % XROT] : tile_mir_vreg(m), rb, k->stride_in, 0,
                                   (int32_t)((int64_t)j * f->TE * s->eb));
    tile_mir_mem(&in, f->rows, TILE_MIR_READ, rows_tag);
    int32_t x = in.d;
    tile_mir_add(m, in);
    int32_t xp = vop(s, TILE_MOP_VCMPEQF, x, x);
    int32_t key = vsel(s, xp, k->niota_f, k->niota_big);
    vset(s, TILE_MOP_VSEL, xp, x, k->pinf, xp);
    int32_t mx = vop(s, TILE_MOP_XLMAX, xp, 0);
    vmem(s, TILE_MOP_VST, mx, ha, k->stride_h, f->h0, (int64_t)j * 4, TILE_MIR_WRITE, 0);
    int32_t fi = vop(s, TILE_MOP_VCMPLEF, mx, xp);
    vset(s, TILE_MOP_VSEL, fi, key, k->neginf, fi);
    vset(s, TILE_MOP_XLMAX, fi, fi, 0, 0);
    vmem(s, TILE_MOP_VST, fi, ha, k->stride_h, f->h0, f->S * f->hp + (int64_t)j * 4, TILE_MIR_WRITE,
         0);
  }
}

/* The streaming pass: rows into VMEM, every chunk's first head into h0. Per tile: x' and
 * the keys, the lane maximum (the head's x') and the first lane holding it (the largest
 * key among lanes with x' equal to it). Both are uniform along lanes and are stored at
 * lane t of a row of ntp - 1 + lanes; tile t's store also covers lanes t+1 .., which
 * later tiles must overwrite, so two such stores must land in order. Blocks alternate
 * between the two slots of h0: the scheduler orders a block's stores after those of the
 * block two before (the same slot), and the block just before writes the other copy.
 * sel_tour_heads takes each lane from the copy its block wrote. */
static void fast_stream(Sel *s, Fast *f) {
  TileMir *m = s->m;
  StreamK k;
  sel_stream_consts(s, f, &k);
  int32_t lastrow_d = sop(s, TILE_MOP_LI, 0, 0, (int32_t)((s->R - 1) * f->pitch_b));
  Pos dp = pos_start(s), cp = pos_start(s);
  int32_t drow = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t rb = li_buf(s, f->rows, 0), rh = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t copy = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t other = sop(s, TILE_MOP_LI, 0, 0, (int32_t)(s->R * 2 * f->S * f->hp));
  fast_issue(s, f, dp, drow, lastrow_d, 0);
  fast_issue(s, f, dp, drow, lastrow_d, 1);

  tile_mir_loop_begin(m, (int32_t)(s->R * s->nblk), TILE_MIR_PIPELINE);
  tile_dma_wait(s->cx, &s->site, 0, 0);
  fast_issue(s, f, dp, drow, lastrow_d, 2);
  int32_t ha = sop(s, TILE_MOP_ADD, rh, copy, 0);
  ins(m, TILE_MOP_XOR, copy, copy, other, 0, 0);
  block_heads(s, f, &k, cp.b, rb, ha, 0, NULL);
  int32_t last = pos_advance(s, cp);
  ins(m, TILE_MOP_ADDI, rb, rb, 0, 0, (int32_t)(s->bc * s->eb));
  int32_t step = sop(s, TILE_MOP_MULI, last, 0, (int32_t)(2 * f->S * f->hp));
  ins(m, TILE_MOP_ADD, rh, rh, step, 0, 0);
  tile_mir_loop_end(m);
  /* The two blocks issued past the end (re-reads of the last row's last block). */
  tile_dma_wait(s->cx, &s->site, 0, 0);
  tile_dma_wait(s->cx, &s->site, 0, 0);
}

/* ---- the stream of the overlapped schedule (gen_select_rounds.c runs its loops) ----
 *
 * The same work per block as fast_stream, as calls the rounds' loops make: issue one
 * block (LA blocks ahead of the compute), wait for one, compute one. The padded rows
 * are streamed too, as copies of the last row (the source offset stops there; their
 * results are dropped), and the last group's loops issue no block past the end
 * (gen_select_rounds.c). One copy of h0:
 * these loops are list scheduled, so a block's head stores stay in program order. */

void sel_stream_init(Sel *s, Fast *f, Stream *st) {
  sel_stream_consts(s, f, &st->k);
  st->lastrow_d = sop(s, TILE_MOP_LI, 0, 0, (int32_t)((f->R8 - 1) * f->pitch_b));
  st->dp = pos_start(s);
  st->drow = sop(s, TILE_MOP_LI, 0, 0, 0);
  st->cb = sop(s, TILE_MOP_LI, 0, 0, 0);
  st->rb = li_buf(s, f->rows, 0);
  st->rh = sop(s, TILE_MOP_LI, 0, 0, 0);
  for (int i = 0; i < XROT; i++) st->xr[i] = tile_mir_vreg(s->m);
}

void sel_stream_issue(Sel *s, Fast *f, Stream *st) {
  fast_issue(s, f, st->dp, st->drow, st->lastrow_d, TAG_DMA);
}

void sel_stream_wait(Sel *s) { tile_dma_wait(s->cx, &s->site, 0, TAG_STREAM); }

void sel_stream_block(Sel *s, Fast *f, Stream *st) {
  TileMir *m = s->m;
  block_heads(s, f, &st->k, st->cb, st->rb, st->rh, TAG_STREAM, st->xr);
  int32_t last = sop(s, TILE_MOP_SEQ, st->cb, s->nblkm1, 0);
  ins(m, TILE_MOP_ADDI, st->cb, st->cb, 0, 0, 1);
  int32_t wrap = sop(s, TILE_MOP_MULI, last, 0, (int32_t)s->nblk);
  ins(m, TILE_MOP_SUB, st->cb, st->cb, wrap, 0, 0);
  ins(m, TILE_MOP_ADDI, st->rb, st->rb, 0, 0, (int32_t)(s->bc * s->eb));
  int32_t step = sop(s, TILE_MOP_MULI, last, 0, (int32_t)(2 * f->S * f->hp));
  ins(m, TILE_MOP_ADD, st->rh, st->rh, step, 0, 0);
}

/* Every row's heads from h0 into its slices in hb (lanes past the row's tiles -inf) and
 * the slices' maxima into its line in rec. Lane t came from block t / u of the row, the
 * stream's iteration r * nblk + t / u, whose parity named the copy. A slice's maximum
 * (uniform along its sublane after xlu.lmax) reaches lane s through the diagonal: the
 * sublane maximum of "lane == sublane ? value : -inf". Runs over nrows rows from the
 * offsets in ha (h0), hr (hb) and gr (rec), and leaves them at the row after. */
void sel_tour_heads(Sel *s, Fast *f, int64_t nrows, int32_t ha, int32_t hr, int32_t gr) {
  TileMir *m = s->m;
  bool two = !f->overlap; /* fast_stream's two copies */
  int32_t li0 = vop(s, TILE_MOP_VIOTA, 0, 0);
  int32_t si0 = tile_mir_vreg(m);
  ins(m, TILE_MOP_VIOTA, si0, 0, 0, 0, 1);
  int32_t diag = vop(s, TILE_MOP_VCMPEQI, li0, si0);
  int32_t in_row = vop(s, TILE_MOP_VCMPLTI, li0, vli(s, (uint32_t)f->ntp));
  /* lane t: tile t's first index, which the stream left out of its keys */
  int32_t toff = vop(s, TILE_MOP_VCVTIF, vop(s, TILE_MOP_VMULI, li0, vli(s, (uint32_t)f->TE)), 0);
  int32_t odd = -1, flip = -1;
  if (two) {
    int32_t ub = vli(s, (uint32_t)s->u);
    odd = vop(s, TILE_MOP_VCMPEQI, vop(s, TILE_MOP_VAND, li0, ub), ub);
    flip = vli(s, (uint32_t)(s->nblk & 1));
  }
  int32_t stride_h = sop(s, TILE_MOP_LI, 0, 0, (int32_t)f->hp);
  int32_t stride_sp = sop(s, TILE_MOP_LI, 0, 0, (int32_t)f->sp);
  int64_t copy1 = s->R * 2 * f->S * f->hp, real = GUARD_BELOW * f->gd;
  int32_t h[2];
  tile_mir_loop_begin(m, (int32_t)nrows, TILE_MIR_PIPELINE);
  for (int k = 0; k < 2; k++) {
    int64_t at = k * f->S * f->hp;
    int32_t v0 = vmem(s, TILE_MOP_VLD, -1, ha, stride_h, f->h0, at, TILE_MIR_READ, 0);
    if (two) {
      int32_t v1 = vmem(s, TILE_MOP_VLD, -1, ha, stride_h, f->h0, at + copy1, TILE_MIR_READ, 1);
      vset(s, TILE_MOP_VSEL, v0, v1, v0, odd);
    }
    if (k == 1) vset(s, TILE_MOP_VSUBF, v0, v0, toff, 0);
    h[k] = vsel(s, in_row, v0, s->vneginf);
    vmem(s, TILE_MOP_VST, h[k], hr, stride_sp, f->hb, real + k * f->koff, TILE_MIR_WRITE, 0);
  }
  int32_t a = vop(s, TILE_MOP_XLMAX, h[0], 0);
  int32_t kf = vop(s, TILE_MOP_VCMPEQF, h[0], a);
  vset(s, TILE_MOP_VSEL, kf, h[1], s->vneginf, kf);
  vset(s, TILE_MOP_XLMAX, kf, kf, 0, 0);
  vset(s, TILE_MOP_VSEL, a, a, s->vneginf, diag);
  vset(s, TILE_MOP_XSMAX, a, a, 0, 0);
  vset(s, TILE_MOP_VSEL, kf, kf, s->vneginf, diag);
  vset(s, TILE_MOP_XSMAX, kf, kf, 0, 0);
  vmem(s, TILE_MOP_VST, a, gr, s->zero, f->rec, 0, TILE_MIR_WRITE, 0);
  vmem(s, TILE_MOP_VST, kf, gr, s->zero, f->rec, f->R8 * f->L * 4, TILE_MIR_WRITE, 0);
  if (two) vset(s, TILE_MOP_VXOR, odd, odd, flip, 0);
  ins(m, TILE_MOP_ADDI, ha, ha, 0, 0, (int32_t)(2 * f->S * f->hp));
  ins(m, TILE_MOP_ADDI, hr, hr, 0, 0, (int32_t)f->rpx);
  ins(m, TILE_MOP_ADDI, gr, gr, 0, 0, f->L * 4);
  tile_mir_loop_end(m);
}

/* topk by the chunk tournament (sel_tour_plan said it fits). Buffers whose slots are the
 * groups of a batch (rows' DMA ring: the three blocks in flight; in the overlapped
 * schedule the TAG_* roles) are addressed as one region; the slots only tell the
 * scheduler which accesses may meet. */
bool sel_tour_topk(Sel *s, Fast *f) {
  TileMir *m = s->m;
  int bs = f->bs;
  f->rows = tile_mir_buffer(m, "topk.rows", TILE_SPACE_VMEM,
                            round_up((f->R8 * f->pitch_b + RING - 1) / RING, 64), RING, 64);
  f->hb = tile_mir_buffer(m, "topk.slices", TILE_SPACE_VMEM,
                          round_up(((GUARD_BELOW + 1 + GUARD_ABOVE) * f->gd + bs - 1) / bs, 64),
                          bs, 64);
  f->rec = tile_mir_buffer(m, "topk.lines", TILE_SPACE_VMEM,
                           round_up((2 * f->R8 * f->L * 4 + bs - 1) / bs, 64), bs, 64);
  if (f->overlap)
    f->h0 = tile_mir_buffer(m, "topk.heads0", TILE_SPACE_VMEM, f->R8 * 2 * f->S * f->hp, 1, 64);
  else
    f->h0 = tile_mir_buffer(m, "topk.heads0", TILE_SPACE_VMEM, s->R * 2 * f->S * f->hp, 2, 64);
  for (int j = 0; j < bs; j++) {
    char name[32];
    snprintf(name, sizeof name, "topk.xfer%d", j);
    f->xf[j] = tile_mir_buffer(m, name, TILE_SPACE_VMEM, 2 * f->S * f->L * 4, 1, 64);
    snprintf(name, sizeof name, "topk.xoff%d", j);
    f->xs[j] = tile_mir_buffer(m, name, TILE_SPACE_SMEM, 64, 1, 4);
  }
  int64_t stage = sel_tour_stage(s, f);
  s->vstage = tile_mir_buffer(m, "topk.val", TILE_SPACE_VMEM, round_up(stage * s->eb, 64), 1, 64);
  s->istage = tile_mir_buffer(m, "topk.idx", TILE_SPACE_VMEM, round_up(stage * 4, 64), 1, 64);
  TileDmaShape shape = {.count0 = f->dsz * s->eb, .count1 = 1, .count2 = 1};
  s->site = tile_dma_site(s->cx, s->in_buf, 0, f->rows, 0, shape);
  fast_fill(s, f, f->overlap ? f->R8 : s->R);
  if (f->overlap) {
    sel_rounds_overlapped(s, f);
    return true;
  }
  fast_stream(s, f);
  int32_t ha = sop(s, TILE_MOP_LI, 0, 0, 0), hr = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t gr = sop(s, TILE_MOP_LI, 0, 0, 0);
  sel_tour_heads(s, f, s->R, ha, hr, gr);
  sel_rounds_batched(s, f);
  return sel_store_topk(s);
}
