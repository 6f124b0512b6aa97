/* all_gather straight into the result on every chip (gen_collective_int.h): the ring
 * steps that move blocks of the result between neighbours in place, and the all_gather
 * that splits each shard across the axes so that every link carries data at once.
 *
 * In place: the block chip j contributes at a level lies at the same address on every
 * chip, so a chip receives a block where it belongs and sends it on from there. Each
 * place of the result is written once per run, so an early arrival overwrites nothing
 * a slower chip still reads. Steps are pipelined as in gen_collective_ring.c: a block
 * goes as m sub-blocks (parts of each run), each sent on as soon as it has arrived.
 *
 * Every (ring, sub-block) has its own descriptor, and the wait for an arrival names
 * that descriptor: the send that forwards the sub-block rewrites the descriptor's
 * address words after the wait, so it cannot be issued before the bytes have landed,
 * while no wait is tied to an earlier send's whole transfer (as a wait naming the
 * result buffer would be, by the scheduler's DMA-to-wait rule). */
#include "gen_collective_int.h"

/* Sub-blocks per block: at most the send depth (as in gen_collective_ring.c), dividing
 * every ring's runs into whole elements. */
static int64_t sub_count(const Coll *c, int n, const TileDmaShape *shapes, int eb) {
  for (int64_t m = coll_depth(c, n, COLL_MAX_SUBS); m > 1; m--) {
    bool fits = true;
    for (int i = 0; i < n; i++) fits &= shapes[i].count0 % (m * eb) == 0;
    if (fits) return m;
  }
  return 1;
}

/* sem.wait sem, 1, naming buf_a and (>= 0) buf_b as written: what it orders (top). */
static void wait_on(Coll *c, int32_t sem, int32_t buf_a, int32_t buf_b) {
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, sem, 1);
  tile_mir_mem(&in, buf_a, TILE_MIR_WRITE, 0);
  if (buf_b >= 0) tile_mir_mem(&in, buf_b, TILE_MIR_WRITE, 0);
  tile_mir_add(c->m, in);
}

/* Sends sub-block j of ring g's block at off to the same place on the next chip. */
static void send_sub(Coll *c, const CollRing *g, const TileDmaShape *shape, int64_t subs,
                     int64_t j, int32_t off, int32_t at, const CollRemote *rm) {
  coll_rr(c, TILE_MOP_ADD, at, g->base, off);
  if (j) coll_ri(c, TILE_MOP_ADDI, at, at, j * (shape->count0 / subs));
  coll_remote_send(c, rm, at, at);
}

void coll_ring_gather_in_place(Coll *c, const CollRing *rings, int n, const TileDmaShape *shapes,
                               int eb, int64_t steps) {
  TileMir *m = c->m;
  int64_t p = c->ax[rings[0].k].p;
  if (p < 2 || steps < 1) return;
  int64_t subs = sub_count(c, n, shapes, eb), depth = coll_depth(c, n, subs);
  CollRemote rm[COLL_MAX_RINGS][COLL_MAX_SUBS];
  int32_t off[COLL_MAX_RINGS], at = tile_mir_sreg(m);
  for (int i = 0; i < n; i++) {
    const CollRing *g = &rings[i];
    TileDmaShape s = shapes[i];
    s.count0 /= subs;
    for (int64_t j = 0; j < subs; j++)
      rm[i][j] = coll_remote(c, g->k, g->dir, g->work, g->work, s);
    off[i] = tile_mir_sreg(m);
    coll_ri(c, TILE_MOP_MULI, off[i], coll_ring_index(c, g), g->chunk); /* step 0: mine */
  }
  for (int64_t j = 0; j < subs; j++)
    for (int i = 0; i < n; i++) {
      if (j >= depth) wait_on(c, rm[i][j - depth].site.sem, rm[i][j - depth].site.desc, -1);
      send_sub(c, &rings[i], &shapes[i], subs, j, off[i], at, &rm[i][j]);
    }
  for (int last = 0; last < 2; last++) {
    if (!last && steps == 1) continue;
    if (!last) tile_mir_loop_begin(m, (int32_t)(steps - 1), 0);
    /* Blocks sit by coordinate (unless by_position), so a ring toward - receives
     * block q + 1 + s. */
    for (int i = 0; i < n; i++) {
      const CollRing *g = &rings[i];
      if (coll_ring_steps_back(g)) coll_step_back(c, off[i], g->chunk, g->chunk * p);
      else coll_step_on(c, off[i], g->chunk, g->chunk * p);
    }
    for (int64_t j = 0; j < subs; j++)
      for (int i = 0; i < n; i++) {
        /* The last arrivals also name the result, which later groups read. */
        wait_on(c, rm[i][j].dst_sem, rm[i][j].site.desc, last ? rings[i].work : -1);
        if (last) continue;
        wait_on(c, rm[i][j].site.sem, rm[i][j].site.desc, -1); /* an earlier send landed */
        send_sub(c, &rings[i], &shapes[i], subs, j, off[i], at, &rm[i][j]);
      }
    if (!last) tile_mir_loop_end(m);
  }
  for (int64_t j = subs - depth; j < subs; j++)
    for (int i = 0; i < n; i++) wait_on(c, rm[i][j].site.sem, rm[i][j].site.desc, -1);
}

/* all_gather of contiguous shards (the gathered dim is the outermost one that is not
 * 1): shard r (rank r, row-major over the op's axes) lies at r * run in the result.
 * Each shard is cut into nparts slices; slice i goes through the axes in its own order
 * (rotation i / ndir, starting at a different axis) and direction (i % ndir), so at
 * every level the parts keep every axis and both directions busy, as all_reduce's
 * parts do (REFERENCE.md: V / (k W) over k axes). At level l, part i's block for
 * coordinate j of the level's axis is its slice of every shard whose rank differs
 * from this chip's only on the axes gathered before: a strided set (at most two
 * strides: in 3D the last level has two axes behind it). */
bool coll_all_gather_parts(Coll *c, TileTensorRef x, TileTensorRef y, int64_t run) {
  int eb = tile_lower_elem_bytes((TileElem)x.elem);
  CollParts pp = coll_parts(c, run);
  const int64_t *stride = pp.stride; /* bytes between neighbouring coordinates on an axis */
  const int *act = pp.act;
  int nact = pp.nact, ndir = pp.ndir, nparts = pp.nparts;
  /* Slices of whole granules (COLL_MAX_SUBS elements where the shard allows, so they
   * split into sub-blocks), as evenly as they go; each part at least one. */
  int64_t gran = run % (COLL_MAX_SUBS * eb) == 0 ? COLL_MAX_SUBS * eb : eb;
  int64_t ngran = run / gran;
  if (nact == 0 || ngran < nparts) return false;
  int64_t at[COLL_MAX_RINGS + 1] = {0};
  for (int i = 0; i < nparts; i++)
    at[i + 1] = at[i] + (ngran / nparts + (i < ngran % nparts)) * gran;
  /* This chip's shard into place: rank * run. */
  int32_t mine = coll_addr(c, y.buf, 0);
  for (int k = 0; k < c->naxes; k++) {
    int32_t t = tile_mir_sreg(c->m);
    coll_ri(c, TILE_MOP_MULI, t, c->coord[k], stride[k]);
    coll_rr(c, TILE_MOP_ADD, mine, mine, t);
  }
  if (x.buf != y.buf) coll_local_copy(c, x.buf, 0, -1, y.buf, 0, mine, coll_flat(run));
  for (int l = 0; l < nact; l++) {
    CollRing rings[COLL_MAX_RINGS];
    TileDmaShape shapes[COLL_MAX_RINGS];
    for (int i = 0; i < nparts; i++) {
      int rot = i / ndir, ax = act[(rot + l) % nact];
      bool done[TILE_MAX_TORUS_RANK] = {false};
      TileDmaShape s = {.count0 = at[i + 1] - at[i], .count1 = 1, .count2 = 1};
      for (int d = 0; d < l; d++) {
        int k = act[(rot + d) % nact];
        done[k] = true;
        if (s.count1 == 1) {
          s.count1 = c->ax[k].p;
          s.src_stride1 = s.dst_stride1 = stride[k];
        } else {
          s.count2 = c->ax[k].p;
          s.src_stride2 = s.dst_stride2 = stride[k];
        }
      }
      /* The block's address for coordinate 0 of ax: this chip's coordinates on the axes
       * still to gather, 0 on those gathered (the block spans them). */
      int32_t base = coll_addr(c, y.buf, at[i]);
      for (int k = 0; k < c->naxes; k++) {
        if (done[k] || k == ax || c->ax[k].p < 2) continue;
        int32_t t = tile_mir_sreg(c->m);
        coll_ri(c, TILE_MOP_MULI, t, c->coord[k], stride[k]);
        coll_rr(c, TILE_MOP_ADD, base, base, t);
      }
      rings[i] = (CollRing){.k = ax, .dir = i % ndir, .work = y.buf, .base = base,
                            .chunk = stride[ax]};
      shapes[i] = s;
    }
    coll_ring_gather_in_place(c, rings, nparts, shapes, eb, c->ax[rings[0].k].p - 1);
  }
  return true;
}

/* ---- small shards ---- */



/* Estimated cycles of coll_all_gather_parts and of gather_halfway for shards of `run`
 * bytes (elements of eb). The parts: p - 1 steps per level of 1/nparts of the block,
 * levels in the order of the axes (as rotation 0 takes them; with several rotations
 * the axes have one length, so any order gives the same). A ring without wraparound
 * carries two transfers per step on a link, and every step waits for its closing one,
 * which routes across the axis: p - 1 hops (measured on v5e-like: a step of 1x8 takes 7
 * hop latencies). gather_halfway, innermost axis first: p / 2 steps of the whole block,
 * or a line's level as coll_line_gather_estimate says. */
static void gather_estimates(const Coll *c, int64_t run, int eb, int nparts, int64_t *parts,
                             int64_t *half) {
  int64_t hop = tile_target_hop_cycles(c->cx->target), blk = run;
  *parts = *half = 0;
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *a = &c->ax[k];
    if (a->p < 2) continue;
    int64_t share = a->wrap ? 1 : 2, step = a->wrap ? hop : (a->p - 1) * hop;
    *parts += (a->p - 1) * (step + COLL_STEP_OVERHEAD + share * coll_link_cycles(c->cx->target, blk / nparts));
    blk *= a->p;
  }
  blk = run;
  for (int k = c->naxes - 1; k >= 0; k--) {
    const CollAxis *a = &c->ax[k];
    if (a->p < 2) continue;
    int64_t line = a->wrap ? 0 : (a->p - 2) * hop, share = a->wrap ? 1 : 2;
    if (coll_line_gather_applies(c, k))
      *half += coll_line_gather_estimate(c, k, blk, eb);
    else if (a->p == 2)
      *half += hop + COLL_STEP_OVERHEAD + coll_link_cycles(c->cx->target, blk);
    else
      *half += a->p / 2 * (hop + COLL_STEP_OVERHEAD + share * coll_link_cycles(c->cx->target, blk)) + line;
    blk *= a->p;
  }
}

/* Levels innermost axis first; at each, this chip's block (whole, not split) goes
 * p / 2 steps toward + and as many toward -, so it reaches every chip of the axis in
 * half the hops of a ring (for even p > 2 the block halfway round comes both ways, the
 * same bytes to the same place; of 2 chips it goes once). On a line (no wraparound,
 * p > 2), where the ring's closing step would cross the whole axis, blocks flow
 * straight outward instead (coll_line_gather_level). */
static void gather_halfway(Coll *c, TileTensorRef x, TileTensorRef y, int64_t run) {
  int eb = tile_lower_elem_bytes((TileElem)x.elem);
  CollParts pp = coll_parts(c, run);
  const int64_t *stride = pp.stride;
  /* base[k]: the block of level k (the shards of every coordinate on axes after k)
   * for coordinate 0 of axis k: this chip's coordinates on the axes before k. */
  int32_t base[TILE_MAX_TORUS_RANK + 1];
  base[0] = coll_addr(c, y.buf, 0);
  for (int k = 0; k < c->naxes; k++) {
    int32_t t = tile_mir_sreg(c->m);
    base[k + 1] = tile_mir_sreg(c->m);
    coll_ri(c, TILE_MOP_MULI, t, c->coord[k], stride[k]);
    coll_rr(c, TILE_MOP_ADD, base[k + 1], base[k], t);
  }
  coll_local_copy(c, x.buf, 0, -1, y.buf, 0, base[c->naxes], coll_flat(run));
  for (int k = c->naxes - 1; k >= 0; k--) {
    int64_t blk = k + 1 < c->naxes ? stride[k] : run;
    if (coll_line_gather_applies(c, k)) {
      CollLineBlocks line = {.k = k, .base = base[k], .step = stride[k], .shape = coll_flat(blk)};
      coll_line_gather_level(c, &line, 1, y.buf, eb);
      continue;
    }
    CollRing rings[2] = {{.k = k, .dir = 0, .work = y.buf, .base = base[k], .chunk = stride[k]},
                         {.k = k, .dir = 1, .work = y.buf, .base = base[k], .chunk = stride[k]}};
    TileDmaShape shapes[2] = {coll_flat(blk), coll_flat(blk)};
    /* Of 2 chips each is the other's next both ways: one ring fills the link pair. */
    coll_ring_gather_in_place(c, rings, c->ax[k].p == 2 ? 1 : 2, shapes, eb, c->ax[k].p / 2);
  }
}

/* The most DMAs gather_halfway keeps in flight: its levels run one after another, each
 * draining its sends, after the local copy of this chip's shard (waited alone). */
static int32_t halfway_inflight(const Coll *c) {
  int64_t most = 1;
  for (int k = 0; k < c->naxes; k++) {
    if (c->ax[k].p < 2) continue;
    int rings = c->ax[k].p == 2 ? 1 : 2;
    int64_t n = coll_line_gather_applies(c, k) ? coll_line_gather_inflight(c, 1)
                                               : rings * coll_depth(c, rings, COLL_MAX_SUBS);
    if (n > most) most = n;
  }
  return (int32_t)most;
}

bool coll_all_gather_run(Coll *c, TileTensorRef x, TileTensorRef y, int64_t run) {
  int act = 0, nparts = 1;
  bool same = true;
  int64_t shortest = 0, first = 0;
  for (int k = 0; k < c->naxes; k++) {
    if (c->ax[k].p < 2) continue;
    if (act++) same &= c->ax[k].p == first;
    else first = c->ax[k].p;
    shortest = act > 1 && shortest < c->ax[k].p ? shortest : c->ax[k].p;
  }
  if (act == 0) return false;
  nparts = (same ? act : 1) * (shortest > 2 ? 2 : 1);
  int eb = tile_lower_elem_bytes((TileElem)x.elem);
  int64_t parts, half;
  gather_estimates(c, run, eb, nparts, &parts, &half);
  /* Where no axis wraps, the lines, in parts where that is quicker (each level on
   * every axis at once), rather than one axis at a time; they take any shard, so they
   * also stand in where the shard is too small for the parts' rings. */
  bool lines = coll_line_all_gather_applies(c);
  if (lines) half = coll_line_all_gather_estimate(c, run, eb);
  if (half >= parts && coll_all_gather_parts(c, x, y, run)) return true;
  if (lines) {
    coll_line_all_gather(c, x, y, run);
    return true;
  }
  if (half >= parts) return false;
  c->cx->dma_cap = halfway_inflight(c);
  gather_halfway(c, x, y, run);
  return true;
}
