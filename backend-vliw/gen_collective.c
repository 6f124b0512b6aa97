/* gen_collective: the collectives of a mesh function (all_reduce, all_gather,
 * reduce_scatter, all_to_all, collective_permute) as remote DMA and semaphore schedules
 * on the torus, one program for every chip (include/tile/lower.h). The ring steps are
 * in gen_collective_ring.c, all_to_all in gen_collective_a2a.c, the latency-optimized
 * all_reduce in gen_collective_small.c, the op's axes on the torus in
 * gen_collective_axes.c.
 *
 * Needs: a group holding one collective whose mesh is the target's torus; the op's axes
 * may be whole torus dims, shares of one (several axes on a dim: rings within blocks of
 * the dim) or several whole dims (run as one axis per dim, whose row-major rank is the
 * axis's position); the lowering's semaphore band for remote arrivals
 * (tile_coll_sem_band).
 * Guarantees: the op's result in its HBM buffer on every chip, computed by
 *   all_reduce      the data in parts, one per rotation of the axis order and
 *                   direction, so every link carries data at once: reduce-scatter
 *                   along the part's axes in turn (each level works on the chunk the
 *                   level before left this chip), then all-gather in place in reverse
 *                   order, the outermost level straight into the result (every level
 *                   when the operand streams), each level starting in the last step of
 *                   the one before. On axes that wrap the outermost level combines in
 *                   its receive slots, and an operand larger than VMEM then allows runs
 *                   as reduce_scatter (in pieces) and all_gather; elsewhere such
 *                   operands stream through VMEM in pieces, of parts of one size where
 *                   the estimates say so, with a last piece for what is left. Small
 *                   operands, where the estimates of gen_collective_small.c say so,
 *                   take the one-shot exchange there instead (whole operands along
 *                   each axis, summed on every chip);
 *   reduce_scatter  the same reduce-scatter levels and parts, on the input gathered
 *                   into an order where each level leaves a chip its own chunk (for
 *                   slices that are one run each, in pieces like all_reduce's, with
 *                   tokens between them, each piece on axes that wrap sending the
 *                   next one's first chunks from its last step, and the last level
 *                   on an axis of 4 that wraps running from both sides
 *                   (gen_collective_half.c); otherwise one
 *                   direction on the input rearranged so that each slice is one
 *                   block); for small operands each slice's partials flow toward its
 *                   owner from both ends of a line or both sides of a ring
 *                   (gen_collective_line_scatter.c), or the one-shot all_reduce's sum
 *                   is kept, whichever the estimates favour;
 *   all_gather      all-gather levels straight into every chip's result buffer
 *                   (gen_collective_gather.c): a shard that is one run is cut in parts
 *                   like all_reduce's, or for small shards whole blocks go halfway
 *                   round each axis both ways; otherwise innermost axis first, half of
 *                   each shard each way round;
 *   all_to_all      one store-and-forward exchange per axis (gen_collective_a2a.c);
 *   collective_permute  min(s, p - s) one-position hops the short way round (round
 *                   the cycle through two axes with `cycle`, gen_collective_cycle.c;
 *                   with `halves` the second half of dim 0 the other way at once);
 *                   along an axis over several dims, an all_gather over them and the
 *                   block of position q - s.
 * On an axis without wraparound (any but a whole dim that wraps) the small and
 * latency-bound schedules run as lines (gen_collective_line*.c), and the rings, for
 * large data, route their closing step across the dim. The rank of a chip over several axes is
 * row-major in the order the op lists them (the first axis major), which fixes the
 * order of gathered shards, scattered
 * slices and exchanged blocks. all_reduce and reduce_scatter keep a working copy and
 * receive buffers in VMEM and reduce on the VPU in f32 lanes (bf16 widened on load and
 * rounded on store; i32 with integer adds and multiplies), whole vreg tiles per chunk
 * (padded in VMEM where the operand is not); the others move HBM to HBM. */
#include <inttypes.h>
#include <string.h>

#include "gen_collective.h"
#include "gen_collective_int.h"
#include "tile/ops.h"

const TileMesh *tile_coll_func_mesh(const TileModule *m, const TileFunc *f) {
  const TileAttr *a = tile_attr_get(&f->attrs, "mesh");
  if (a && a->kind == TILE_ATTR_SYMBOL) return tile_module_find_mesh(m, a->s);
  if (!m->meshes || m->meshes->next || f->is_kernel) return NULL;
  for (const TileOp *op = f->body->first; op; op = op->next)
    if (tile_op_info[op->kind].family == TILE_FAMILY_COLLECTIVE) return m->meshes;
  return NULL;
}

const TileMesh *tile_coll_op_mesh(const TileModule *m, const TileFunc *f, const TileOp *op) {
  const TileAttr *a = tile_attr_get(&op->attrs, "mesh");
  if (a && a->kind == TILE_ATTR_SYMBOL) return tile_module_find_mesh(m, a->s);
  return tile_coll_func_mesh(m, f);
}

const TileAttr *tile_coll_axes_attr(const TileOp *op) {
  const TileAttr *a = tile_attr_get(&op->attrs, "axes");
  return a ? a : tile_attr_get(&op->attrs, "axis");
}

/* Bytes of the reduce-scatter's receive buffers: per level k, (p_k - 1) chunks of the
 * level's region (the all-gathers need none: they work in place). */
static int64_t recv_bytes(const Coll *c, int64_t total) {
  int64_t sum = 0, region = total;
  for (int k = 0; k < c->naxes; k++) {
    sum += region - region / c->ax[k].p;
    region /= c->ax[k].p;
  }
  return sum;
}

/* VMEM of a piece of `bytes`: its receive buffers and a working copy of it, or where
 * the outer level combines in its slots (CollRing.in_slots) one staging chunk per
 * part, 1/p0 of it (p0: chips on the outer level's axis; 0: a working copy). */
static int64_t piece_vmem(const Coll *c, int64_t bytes, int64_t p0) {
  return (p0 ? bytes / p0 : bytes) + recv_bytes(c, bytes);
}

CollParts coll_parts(const Coll *c, int64_t block) {
  CollParts pp = {.nact = 0};
  bool same = true;
  int64_t shortest = 0;
  for (int k = c->naxes - 1, s = 1; k >= 0; k--) {
    pp.stride[k] = s * block;
    s *= (int)c->ax[k].p;
  }
  for (int k = 0; k < c->naxes; k++) {
    if (c->ax[k].p < 2) continue;
    if (pp.nact) same &= c->ax[k].p == c->ax[pp.act[0]].p;
    shortest = pp.nact && shortest < c->ax[k].p ? shortest : c->ax[k].p;
    pp.act[pp.nact++] = k;
  }
  pp.nrot = same ? pp.nact : 1;
  pp.ndir = shortest > 2 ? 2 : 1;
  pp.nparts = pp.nrot * pp.ndir;
  return pp;
}

static int64_t chips(const Coll *c) {
  int64_t p = 1;
  for (int k = 0; k < c->naxes; k++) p *= c->ax[k].p;
  return p;
}

/* ---- reductions ---- */

static const struct {
  const char *kind;
  int fop, iop; /* f32/bf16 and i32 vector ops; -1 when the VPU has none */
} reduce_ops[] = {
    {"add", TILE_MOP_VADDF, TILE_MOP_VADDI},
    {"mul", TILE_MOP_VMULF, TILE_MOP_VMULI},
    {"max", TILE_MOP_VMAXF, -1},
    {"min", TILE_MOP_VMINF, -1},
};

static bool make_reduce(Coll *c, TileElem e, CollReduce *r) {
  const TileTarget *t = c->cx->target;
  const TileAttr *k = tile_attr_get(&c->op->attrs, "kind");
  const char *kind = k && k->kind == TILE_ATTR_IDENT ? k->s : "?";
  if (e != TILE_ELEM_F32 && e != TILE_ELEM_BF16 && e != TILE_ELEM_I32)
    return tile_lower_error(c->cx, c->op, "reductions take f32, bf16 or i32, not %s",
                            tile_elem_name(e));
  r->vop = -1;
  for (size_t i = 0; i < sizeof reduce_ops / sizeof reduce_ops[0]; i++)
    if (strcmp(reduce_ops[i].kind, kind) == 0)
      r->vop = e == TILE_ELEM_I32 ? reduce_ops[i].iop : reduce_ops[i].fop;
  if (r->vop < 0)
    return tile_lower_error(c->cx, c->op, "no vector op reduces %s with kind '%s'",
                            tile_elem_name(e), kind);
  int eb = tile_lower_elem_bytes(e);
  r->load = e == TILE_ELEM_BF16 ? TILE_MOP_VLDBF : TILE_MOP_VLD;
  r->store = e == TILE_ELEM_BF16 ? TILE_MOP_VSTBF : TILE_MOP_VST;
  r->tile_bytes = (int64_t)t->vreg_sublanes * t->vreg_lanes * eb;
  r->stride_reg = coll_li(c, (int64_t)t->vreg_lanes * eb);
  return true;
}

/* ---- memory ---- */

static bool check_vmem(Coll *c, int64_t need) {
  const TileTarget *t = c->cx->target;
  if (need <= t->vmem_bytes) return true;
  return tile_lower_error(c->cx, c->op, "needs %" PRId64 " bytes of VMEM for its working copy "
                          "and receive buffers, more than the %" PRId64 " target %s has; split "
                          "the tensor", need, (int64_t)t->vmem_bytes, t->name);
}

static int32_t vmem_buffer(Coll *c, const char *what, int64_t bytes) {
  char name[64];
  snprintf(name, sizeof name, "coll.%s.%d", what, (int)c->m->nbufs);
  return tile_mir_buffer(c->m, name, TILE_SPACE_VMEM, bytes, 1, 64);
}

/* Per level k: the chunk each chip keeps after reduce-scattering axes 0..k of a region
 * of `total` bytes at work + at, and the register work + at + sum over j < k of
 * coord[j] * chunk[j] (the address of level k's region), levels 0..naxes. */
static void levels(Coll *c, int64_t total, int32_t work, int64_t at, int64_t *chunk,
                   int32_t *base) {
  int64_t region = total;
  int64_t unit[TILE_MAX_TORUS_RANK] = {0};
  base[0] = coll_addr(c, work, at);
  for (int k = 0; k < c->naxes; k++) {
    chunk[k] = region / c->ax[k].p;
    region = chunk[k];
    unit[k] = chunk[k];
    int32_t off = coll_rank_sum(c, unit);
    base[k + 1] = tile_mir_sreg(c->m);
    coll_rr(c, TILE_MOP_ADD, base[k + 1], base[0], off);
  }
}

/* ---- the ops ---- */

/* One all-reduce through VMEM (gen_all_reduce): the operand's bytes [at, at + piece)
 * with `at` a register (0 without pieces). */
typedef struct AllReduce {
  const CollReduce *r;
  int act[TILE_MAX_TORUS_RANK], nact, ndir, nparts;
  /* Level l's receive slots of part i, made by the first piece's code (the largest
   * parts) and reused by the remainder's: -1 until made. */
  int32_t slots[TILE_MAX_TORUS_RANK][COLL_MAX_RINGS];
  int64_t part_off[COLL_MAX_RINGS + 1]; /* part i: [part_off[i], part_off[i + 1]) */
  int32_t work, x, y, at;
  /* x and y hold whole pieces: the outer level copies chunks from x under its
   * transfers and the all-gather works in y */
  bool stream;
  /* With stream: the outer level combines in its slots (CollRing.in_slots), work holding
   * one staging chunk per part, and the inner levels work in the chunk it leaves there */
  bool slotted;
} AllReduce;

/* Part i's ring at the outermost level, copying chunks from or to hbm + at. */
static CollRing outer_ring(Coll *c, const AllReduce *a, CollRing g, int i, int32_t hbm) {
  g.has_hbm = true;
  g.hbm = hbm;
  g.hbm_base = coll_addr(c, hbm, a->part_off[i]);
  coll_rr(c, TILE_MOP_ADD, g.hbm_base, g.hbm_base, a->at);
  return g;
}

/* One piece. */
static void all_reduce_piece(Coll *c, AllReduce *a) {
  /* Part i: rotation i / ndir, direction i % ndir; ring[i][L] its ring at level L.
   * slotted: ybase[i][L] is the level's region in y, and this chip's innermost chunk
   * ends at own[i] in buffer ownbuf[i], its place in y at yown[i]. */
  CollRing ring[COLL_MAX_RINGS][TILE_MAX_TORUS_RANK];
  int32_t ybase[COLL_MAX_RINGS][TILE_MAX_TORUS_RANK];
  int32_t own[COLL_MAX_RINGS], ownbuf[COLL_MAX_RINGS], yown[COLL_MAX_RINGS];
  for (int i = 0; i < a->nparts; i++) {
    int rot = i / a->ndir, dir = i % a->ndir;
    int64_t p0 = c->ax[a->act[rot % a->nact]].p;
    int32_t base = coll_addr(c, a->work, a->slotted ? a->part_off[i] / p0 : a->part_off[i]);
    int32_t yb = -1, buf = a->work;
    if (a->slotted) {
      yb = coll_addr(c, a->y, a->part_off[i]);
      coll_rr(c, TILE_MOP_ADD, yb, yb, a->at);
    }
    int64_t region = a->part_off[i + 1] - a->part_off[i];
    for (int l = 0; l < a->nact && region; l++) {
      int k = a->act[(rot + l) % a->nact];
      CollRing *g = &ring[i][l];
      *g = (CollRing){.k = k, .dir = dir, .by_position = true, .work = buf, .base = base,
                      .chunk = region / c->ax[k].p, .in_slots = a->slotted && l == 0};
      region = g->chunk;
      if (a->slots[l][i] < 0) a->slots[l][i] = coll_ring_slots(c, g);
      if (!a->slotted && l + 1 == a->nact) break;
      int32_t off = tile_mir_sreg(c->m);
      base = tile_mir_sreg(c->m);
      coll_ri(c, TILE_MOP_MULI, off, coll_ring_index(c, g), g->chunk);
      if (!a->slotted) {
        coll_rr(c, TILE_MOP_ADD, base, g->base, off);
        continue;
      }
      /* The chunk this level leaves: in slot p - 2 at the outer level, else in place. */
      if (g->in_slots) {
        buf = a->slots[0][i];
        base = coll_addr(c, buf, (c->ax[k].p - 2) * g->chunk);
      } else {
        coll_rr(c, TILE_MOP_ADD, base, g->base, off);
      }
      ybase[i][l] = yb;
      int32_t t = tile_mir_sreg(c->m);
      coll_rr(c, TILE_MOP_ADD, t, yb, off);
      yb = t;
      own[i] = base;
      ownbuf[i] = buf;
      yown[i] = yb;
    }
  }
  /* A remainder piece may leave parts empty (fewer grains than parts): those run no
   * rings. */
  int use[COLL_MAX_RINGS], n = 0;
  for (int i = 0; i < a->nparts; i++)
    if (a->part_off[i + 1] > a->part_off[i]) use[n++] = i;
  /* The levels in one run, each next level starting in its last step (Level in
   * gen_collective_ring.c). */
  CollRing levels_rs[TILE_MAX_TORUS_RANK * COLL_MAX_RINGS];
  int32_t slots[TILE_MAX_TORUS_RANK * COLL_MAX_RINGS];
  for (int l = 0; l < a->nact; l++)
    for (int u = 0; u < n; u++) {
      int i = use[u];
      levels_rs[l * n + u] =
          a->stream && l == 0 ? outer_ring(c, a, ring[i][l], i, a->x) : ring[i][l];
      slots[l * n + u] = a->slots[l][i];
    }
  coll_ring_reduce_scatter_levels(c, levels_rs, a->nact, n, a->r, slots);
  /* All-gather in place (coll_ring_gather_in_place): each level's chunks go straight
   * into the next chip's copy of the same place. When x and y hold whole pieces, every
   * level works in y (HBM): this chip's own innermost chunk is copied there (1/N of the
   * piece), the rest arrives there, and sends read it there (a remote DMA's bytes do
   * not count against HBM), so the piece is never copied out of VMEM whole. Otherwise in
   * work. No receive slots: a chip writes a chunk of its neighbour's copy only once it
   * holds that chunk complete, which needs the neighbour's own last send of it, so the
   * neighbour is done with it (in work; y's places are written once per run). */
  int eb = (int)(a->r->tile_bytes / (c->cx->target->vreg_sublanes * c->cx->target->vreg_lanes));
  int32_t delta = -1; /* y's address of a byte of work, less work's: y + at - work */
  if (a->slotted) {
    for (int u = 0; u < n; u++) {
      const CollRing *g = &ring[use[u]][a->nact - 1];
      coll_local_copy(c, ownbuf[use[u]], 0, own[use[u]], a->y, 0, yown[use[u]],
                      coll_flat(g->chunk));
    }
  } else if (a->stream) {
    delta = coll_addr(c, a->y, 0);
    coll_rr(c, TILE_MOP_ADD, delta, delta, a->at);
    coll_rr(c, TILE_MOP_SUB, delta, delta, coll_addr(c, a->work, 0));
    for (int u = 0; u < n; u++) {
      const CollRing *g = &ring[use[u]][a->nact - 1];
      int32_t from = tile_mir_sreg(c->m), to = tile_mir_sreg(c->m);
      coll_ri(c, TILE_MOP_MULI, from, coll_ring_index(c, g), g->chunk);
      coll_rr(c, TILE_MOP_ADD, from, g->base, from);
      coll_rr(c, TILE_MOP_ADD, to, from, delta);
      coll_local_copy(c, a->work, 0, from, a->y, 0, to, coll_flat(g->chunk));
    }
  }
  /* Innermost level first, each next level starting in its last step. */
  CollRing levels_ag[TILE_MAX_TORUS_RANK * COLL_MAX_RINGS];
  for (int l = a->nact - 1; l >= 0; l--)
    for (int u = 0; u < n; u++) {
      CollRing *g = &levels_ag[(a->nact - 1 - l) * n + u];
      *g = ring[use[u]][l];
      if (!a->slotted) continue;
      g->work = a->y;
      g->base = ybase[use[u]][l];
    }
  coll_ring_gather_levels(c, levels_ag, a->nact, n, eb,
                          a->stream && !a->slotted ? a->y : -1, delta);
}

/* The data in parts, each reduce-scattered over the axes in its own order and
 * gathered back in reverse, all parts of a level in one step loop so their transfers
 * overlap: where every axis that carries data has the same length, one part per
 * rotation of the axis order (so each level keeps every axis busy), and where the
 * axes are longer than 2, each rotation twice, toward +coordinate and toward - (an
 * axis of 2 joins its chips by one link pair, which one direction already fills). */
static bool all_reduce_composed(Coll *c, TileTensorRef x, TileTensorRef y,
                                const CollReduce *r);
static TileTensorRef flat_of(TileTensorRef x);

static bool gen_all_reduce(Coll *c, TileTensorRef x, TileTensorRef y) {
  CollReduce r;
  if (!make_reduce(c, (TileElem)x.elem, &r)) return false;
  int act[TILE_MAX_TORUS_RANK], nact = 0;
  bool same = true;
  int64_t shortest = 0;
  for (int k = 0; k < c->naxes; k++) {
    if (c->ax[k].p < 2) continue;
    if (nact) same &= c->ax[k].p == c->ax[act[0]].p;
    shortest = nact && shortest < c->ax[k].p ? shortest : c->ax[k].p;
    act[nact++] = k;
  }
  if (nact == 0) {
    coll_local_copy(c, x.buf, 0, -1, y.buf, 0, -1, coll_flat(x.bytes));
    return true;
  }
  int nrot = same ? nact : 1, ndir = shortest > 2 ? 2 : 1, nparts = nrot * ndir;
  /* Grains of one tile per chip: every level's chunks are whole tiles. The parts take
   * whole grains, as evenly as they go; at least one each. */
  int64_t grain = chips(c) * r.tile_bytes;
  int64_t total = (x.bytes + grain - 1) / grain * grain;
  if (total < nparts * grain) total = nparts * grain;
  /* Small operands: the one-shot exchange when its estimate is the lower (its VMEM,
   * p_k copies per axis, is then small too). */
  if (coll_oneshot_estimate(c, x.bytes, &r) < coll_ring_estimate(c, total, nparts))
    return coll_oneshot_all_reduce(c, x, y, &r, -1, coll_flat(y.bytes));
  /* An operand whose working copy and receive buffers do not fit VMEM streams through
   * it in pieces: the fewest pieces, whole multiples of unit, that fit. Where every
   * axis wraps, the outer level combines in its slots (AllReduce.slotted): a piece then
   * needs a 1/p0 of itself beside its slots instead of a whole working copy, and an
   * operand that still needs pieces runs as reduce_scatter and all_gather
   * (all_reduce_composed). Otherwise (lines) each piece is all-reduced in turn by the
   * same code (a loop), its buffers reused from piece to piece: a chip can only start
   * piece i + 1 once every chip it receives from has sent it all of piece i, by when it
   * has combined what it received (see the top of gen_collective_ring.c), so an early
   * sender never overwrites a slot still in use. */
  const int64_t vmem = c->cx->target->vmem_bytes;
  bool wraps = true;
  for (int k = 0; k < c->naxes; k++) wraps &= c->ax[k].p < 2 || c->ax[k].wrap;
  bool slotted = total == x.bytes && wraps;
  int64_t p0 = c->ax[act[0]].p, p0v = slotted ? p0 : 0;
  int64_t pieces = 1, piece = total, grains = total / grain;
  while (piece_vmem(c, piece, p0v) > vmem) {
    if (total != x.bytes || grains / (pieces + 1) < nparts) break;
    do pieces++;
    while (grains % pieces);
    piece = total / pieces;
  }
  if (piece_vmem(c, piece, p0v) > vmem)
    return tile_lower_error(c->cx, c->op, "needs %" PRId64 " bytes of VMEM for its working "
                            "copy and receive buffers, more than the %" PRId64 " target %s "
                            "has; an operand of a whole multiple of %" PRId64 " bytes streams "
                            "through VMEM in pieces", piece_vmem(c, piece, p0v),
                            (int64_t)vmem, c->cx->target->name, grain);
  if (pieces > 1 && slotted) return all_reduce_composed(c, x, y, &r);
  /* Parts are whole grains, and the rings of a level run in step, so a level takes as
   * long as its largest part: where a piece's grains do not split evenly (8 MiB in 6
   * parts: 6, 6, 5, 5, 5, 5 grains) every piece pays for parts of the larger size.
   * Pieces of a whole multiple of nparts grains, and one more piece for what is left,
   * avoid that where the estimates say it is quicker (the extra piece costs its hops). */
  int64_t even = piece / grain / nparts * nparts, rest = 0;
  if (pieces > 1 && even && (even != piece / grain || (piece / grain) % nparts)) {
    int64_t cost = pieces * coll_ring_estimate(c, (piece / grain + nparts - 1) / nparts *
                                                       nparts * grain, nparts);
    int64_t full = grains / even, left = grains % even;
    int64_t alt = full * coll_ring_estimate(c, even * grain, nparts) +
                  (left ? coll_ring_estimate(c, (left + nparts - 1) / nparts * nparts * grain,
                                            nparts) : 0);
    if (alt < cost) {
      pieces = full;
      piece = even * grain;
      rest = left * grain;
    }
  }
  AllReduce a = {.r = &r, .nact = nact, .ndir = ndir, .nparts = nparts,
                 .x = x.buf, .y = y.buf, .stream = total == x.bytes, .slotted = slotted};
  memcpy(a.act, act, sizeof act);
  memset(a.slots, 0xff, sizeof a.slots);
  a.work = vmem_buffer(c, "work", slotted ? piece / p0 : piece);
  a.at = coll_li(c, 0);
  if (!a.stream) coll_local_copy(c, x.buf, 0, -1, a.work, 0, -1, coll_flat(x.bytes));
  /* The pieces (a loop), then the remainder's own code with its own parts (the first
   * pieces' slots serve it: its parts are no larger). */
  const struct {
    int64_t size, count;
  } runs[2] = {{piece, pieces}, {rest, rest ? 1 : 0}};
  for (int k = 0; k < 2; k++) {
    int64_t size = runs[k].size, g = size / grain;
    if (!runs[k].count) continue;
    for (int i = 0; i < nparts; i++)
      a.part_off[i + 1] = a.part_off[i] + (g / nparts + (i < g % nparts)) * grain;
    if (runs[k].count > 1) tile_mir_loop_begin(c->m, (int32_t)runs[k].count, 0);
    all_reduce_piece(c, &a);
    if (pieces > 1 || rest) coll_ri(c, TILE_MOP_ADDI, a.at, a.at, size);
    if (runs[k].count > 1) tile_mir_loop_end(c->m);
  }
  if (!a.stream) coll_local_copy(c, a.work, 0, -1, y.buf, 0, -1, coll_flat(y.bytes));
  return true;
}

/* Between the pieces of a reduce-scatter alone, a sender could finish piece i (it needs
 * nothing more from this chip than its first sends) and start sending piece i + 1 into
 * slots this chip still reads. So after each piece a chip tells the chip before it in
 * every ring it received on that its slots are free (coll_ring_tokens), and each piece
 * but the first waits for those tokens before it sends into a slot the piece before
 * may still read.
 *
 * Where the pieces overlap (rs_may_overlap), each piece but the last sends the next
 * one's first chunks from its last step, and the next piece waits for the tokens only
 * after its first step has received, so neither the token's hop nor the copy of the
 * slices out leaves the links idle between pieces. Those early sends write the
 * receiver's outermost slot 0, and the first step's sends its slot 1 (p >= 4: neither
 * is slot p - 2): the receiver last read those in its steps of piece i before the last
 * of its outermost level (its sends read their source when they issue), and the
 * sender has by then received the receiver's data of a later level of piece i, sent
 * after those steps (the opposite ring of the same axis runs at a later level, whose
 * first step before the last receives). Slot p - 2,
 * which keeps the chunk the inner levels work in and the slices are copied out of,
 * and the inner levels' slots are written only after the token, which the receiver
 * sends once its copy out is done. The token's semaphore counts the receiver's data in
 * the opposite ring too: the receiver sends its early first chunks before the token
 * and the next ones after, and this chip waits for them in that order (the first
 * step's arrivals, then the token). */

/* One piece of reduce_scatter_parts: bytes [at + off[i], at + off[i + 1]) of every
 * slice go as part i (empty parts run no rings). */
typedef struct RsPiece {
  TileTensorRef x, y;
  const CollReduce *r;
  CollParts pp;
  int64_t n;      /* chips */
  int64_t off[COLL_MAX_RINGS + 1];
  int64_t next_off[COLL_MAX_RINGS + 1]; /* the same for the next piece (RsLink.then) */
  int64_t size;   /* bytes of every slice in this piece */
  int32_t work, at;
  int32_t yat; /* sreg: the address of this chip's slice in y */
  int32_t slots[TILE_MAX_TORUS_RANK][COLL_MAX_RINGS]; /* level l, part i: -1 until made */
  /* The outer level combines in its slots (CollRing.in_slots), work holding one
   * staging chunk per part (1/p0 of its region), the inner levels in the chunk it
   * leaves there. */
  bool slotted;
  int64_t p0;
  bool used[TILE_MAX_TORUS_RANK][2]; /* the (axis, direction) rings that run */
} RsPiece;

/* How a piece meets its neighbours: first_sent, the piece before sent its first chunks
 * and this one waits for the tokens after its first step; then, it sends the next
 * piece's first chunks from its last step; signal, it sends tokens at its end. */
typedef struct RsLink {
  bool first_sent, then, signal;
} RsLink;

/* Part i's rings, level by level, for the parts at off, `ahead` bytes of every slice
 * on from at: the outermost copies its chunks in from the operand; kept and keptbuf
 * (NULL: not needed) get the place of this chip's slice of the part. Returns how many
 * parts hold data, listed in use. */
static int rs_rings(Coll *c, RsPiece *s, const int64_t *off, int64_t ahead,
                    CollRing ring[][TILE_MAX_TORUS_RANK], int32_t *kept, int32_t *keptbuf,
                    int *use) {
  /* rstride: the operand's bytes between neighbouring coordinates on an axis */
  const int64_t *rstride = s->pp.stride;
  const int *act = s->pp.act;
  int nact = s->pp.nact, ndir = s->pp.ndir, nuse = 0;
  for (int i = 0; i < s->pp.nparts; i++) {
    int rot = i / ndir, dir = i % ndir, ax[TILE_MAX_TORUS_RANK];
    int64_t len = off[i + 1] - off[i], region = s->n * len;
    if (!len) continue;
    use[nuse++] = i;
    for (int l = 0; l < nact; l++) ax[l] = act[(rot + l) % nact];
    TileDmaShape hs = {.count0 = len, .count1 = 1, .count2 = 1};
    if (nact >= 2) {
      hs.count1 = c->ax[ax[nact - 1]].p;
      hs.src_stride1 = rstride[ax[nact - 1]];
      hs.dst_stride1 = len;
    }
    if (nact == 3) {
      hs.count2 = c->ax[ax[1]].p;
      hs.src_stride2 = rstride[ax[1]];
      hs.dst_stride2 = hs.count1 * len;
    }
    int32_t base = coll_addr(c, s->work, s->slotted ? s->n * off[i] / s->p0 : s->n * off[i]);
    int32_t buf = s->work;
    for (int l = 0; l < nact; l++) {
      CollRing *g = &ring[i][l];
      *g = (CollRing){.k = ax[l], .dir = dir, .work = buf, .base = base,
                      .chunk = region / c->ax[ax[l]].p, .in_slots = s->slotted && l == 0};
      if (l == 0) {
        g->has_hbm = true;
        g->hbm = s->x.buf;
        g->hbm_base = coll_addr(c, s->x.buf, off[i] + ahead);
        coll_rr(c, TILE_MOP_ADD, g->hbm_base, g->hbm_base, s->at);
        g->hbm_step = rstride[ax[0]];
        g->hbm_shape = hs;
      }
      if (s->slots[l][i] < 0) s->slots[l][i] = coll_ring_slots(c, g);
      region = g->chunk;
      if (g->in_slots) { /* the chunk it keeps: slot p - 2 */
        buf = s->slots[0][i];
        base = coll_addr(c, buf, (c->ax[ax[l]].p - 2) * g->chunk);
        continue;
      }
      int32_t o = tile_mir_sreg(c->m);
      base = tile_mir_sreg(c->m);
      coll_ri(c, TILE_MOP_MULI, o, c->coord[ax[l]], g->chunk);
      coll_rr(c, TILE_MOP_ADD, base, g->base, o);
    }
    if (kept) {
      kept[i] = base;
      keptbuf[i] = buf;
    }
  }
  return nuse;
}

/* One piece, met by its neighbours as lk says. */
static void rs_piece(Coll *c, RsPiece *s, RsLink lk) {
  const int64_t *off = s->off;
  int nact = s->pp.nact, use[COLL_MAX_RINGS], nuse_next[COLL_MAX_RINGS];
  CollRing ring[COLL_MAX_RINGS][TILE_MAX_TORUS_RANK];
  int32_t kept[COLL_MAX_RINGS], keptbuf[COLL_MAX_RINGS];
  int nuse = rs_rings(c, s, off, 0, ring, kept, keptbuf, use);
  CollRing level[TILE_MAX_TORUS_RANK * COLL_MAX_RINGS];
  int32_t slots[TILE_MAX_TORUS_RANK * COLL_MAX_RINGS];
  for (int l = 0; l < nact; l++)
    for (int u = 0; u < nuse; u++) {
      level[l * nuse + u] = ring[use[u]][l];
      slots[l * nuse + u] = s->slots[l][use[u]];
    }
  /* The next piece's outermost rings (every part of both holds data, so ring u of one
   * is ring u of the other) and the level after, which fixes their sub-chunks' order. */
  CollRing nring[COLL_MAX_RINGS][TILE_MAX_TORUS_RANK], next[2 * COLL_MAX_RINGS];
  CollNextPiece np = {.rings = next, .after = next + nuse, .slots = slots, .r = s->r};
  if (lk.then) {
    if (rs_rings(c, s, s->next_off, s->size, nring, NULL, NULL, nuse_next) != nuse)
      tile_lower_error(c->cx, c->op, "internal error: the next piece's parts differ");
    for (int l = 0; l < 2; l++)
      for (int u = 0; u < nuse; u++) next[l * nuse + u] = nring[use[u]][l];
  }
  CollRsPiece pc = {.first_sent = lk.first_sent,
                    .tokens = lk.first_sent ? (const bool (*)[2])s->used : NULL,
                    .then = lk.then ? &np : NULL};
  coll_ring_reduce_scatter_piece(c, level, nact, nuse, s->r, slots, &pc);
  /* Without overlap the tokens go as soon as the last slot has been read; with it,
   * after the copy out of slot p - 2 (see above), which only the next piece's second
   * step waits for. */
  bool late = lk.first_sent || lk.then;
  if (lk.signal && !late) coll_ring_tokens(c, s->used, false, -1);
  for (int u = 0; u < nuse; u++) {
    int i = use[u];
    int32_t to = tile_mir_sreg(c->m);
    coll_ri(c, TILE_MOP_ADDI, to, s->yat, off[i]);
    coll_rr(c, TILE_MOP_ADD, to, to, s->at);
    coll_local_copy(c, keptbuf[i], 0, kept[i], s->y.buf, 0, to, coll_flat(off[i + 1] - off[i]));
  }
  if (lk.signal && late) coll_ring_tokens(c, s->used, false, -1);
}

/* Whether pieces may overlap (see above): on axes that wrap, with at least 2 levels of
 * 3 or more chips, every outermost ring on an axis of 4 or more whose opposite ring
 * runs at a later level. */
static bool rs_may_overlap(const Coll *c, const CollParts *pp, bool slotted) {
  if (!slotted || pp->nact < 2) return false;
  for (int l = 0; l < pp->nact; l++)
    if (c->ax[pp->act[l]].p < 3) return false;
  for (int i = 0; i < pp->nparts; i++) {
    int k = pp->act[(i / pp->ndir) % pp->nact], d = i % pp->ndir;
    if (c->ax[k].p < 4) return false;
    bool later = false;
    for (int j = 0; j < pp->nparts; j++)
      for (int l = 1; l < pp->nact; l++)
        later |= j % pp->ndir == 1 - d && pp->act[(j / pp->ndir + l) % pp->nact] == k;
    if (!later) return false;
  }
  return true;
}

/* reduce_scatter of contiguous slices (slice j at j * S in the operand, the gathered
 * dim outermost): like all_reduce's reduce-scatter, in parts that take the axes in
 * rotated orders and both directions, so every link carries data at once. Part i
 * handles bytes [part_off[i], part_off[i + 1]) of every slice, laid out in work by the
 * coordinates of the slice's chip in the part's axis order ([j_ax0][j_ax1][j_ax2][len]),
 * so that the chunk each level leaves a chip is that of its own coordinate and the
 * last one is its own slice's part. The outermost level copies its chunks in from the
 * operand (a strided gather of runs) just before combining into them. Slices larger
 * than VMEM allows go in pieces, each a range of every slice, with tokens between them
 * (piece_tokens). This chip's slice goes to yat in y.buf (an sreg; -1: y's start).
 * False (nothing emitted) where a slice is not whole vreg tiles for every part. */
static bool reduce_scatter_parts(Coll *c, TileTensorRef x, TileTensorRef y, int32_t yat,
                                 const CollReduce *r, bool *failed) {
  const TileTarget *t = c->cx->target;
  int64_t S = y.bytes, n = chips(c);
  CollParts pp = coll_parts(c, S);
  const int *act = pp.act;
  int nact = pp.nact, ndir = pp.ndir, nparts = pp.nparts;
  if (nact == 0 || S % r->tile_bytes || S / r->tile_bytes < nparts) return false;
  /* Where every axis wraps, the outer level combines in its slots (CollRing.in_slots):
   * a piece needs 1/p0 of itself beside its slots instead of a whole working copy. */
  bool slotted = true;
  for (int k = 0; k < c->naxes; k++) slotted &= c->ax[k].p < 2 || c->ax[k].wrap;
  int64_t p0 = c->ax[act[0]].p, p0v = slotted ? p0 : 0;
  int64_t tiles = S / r->tile_bytes, pieces = 1;
  while (piece_vmem(c, n * (S / pieces), p0v) > t->vmem_bytes) {
    do pieces++;
    while (pieces <= tiles && tiles % pieces);
    if (tiles / pieces < nparts) {
      *failed = true;
      return tile_lower_error(c->cx, c->op, "needs more VMEM than the %" PRId64 " target %s has "
                              "for its working copy and receive buffers, even in pieces",
                              (int64_t)t->vmem_bytes, t->name);
    }
  }
  /* As for all_reduce: a level takes as long as its largest part, so pieces of a
   * whole multiple of nparts tiles and one more for what is left, where the estimates
   * say it is quicker. */
  int64_t sp = S / pieces, rest = 0, most = sp / r->tile_bytes;
  while (slotted && pieces > 1 && most < tiles &&
         piece_vmem(c, n * (most + 1) * r->tile_bytes, p0v) <= t->vmem_bytes)
    most++;
  int64_t even = most / nparts * nparts;
  if (slotted && even) { /* as equal as they go, as for all_reduce */
    int64_t k = (tiles + even - 1) / even, g = (tiles + k - 1) / k;
    if ((g + nparts - 1) / nparts * nparts < even) even = (g + nparts - 1) / nparts * nparts;
  }
  if (pieces > 1 && even && (even != sp / r->tile_bytes || (sp / r->tile_bytes) % nparts)) {
    int64_t tb = n * r->tile_bytes, full = tiles / even, left = tiles % even;
    int64_t cost = pieces * coll_ring_estimate(c, (sp / r->tile_bytes + nparts - 1) / nparts *
                                                       nparts * tb, nparts);
    int64_t alt = full * coll_ring_estimate(c, even * tb, nparts) +
                  (left ? coll_ring_estimate(c, (left + nparts - 1) / nparts * nparts * tb,
                                            nparts) : 0);
    if (alt < cost) {
      pieces = full;
      sp = even * r->tile_bytes;
      rest = left * r->tile_bytes;
    }
  }
  RsPiece rp = {.x = x, .y = y, .r = r, .pp = pp, .n = n, .slotted = slotted, .p0 = p0,
                .work = vmem_buffer(c, "work", slotted ? n * sp / p0 : n * sp),
                .at = coll_li(c, 0), .yat = yat >= 0 ? yat : coll_addr(c, y.buf, 0)};
  memset(rp.slots, 0xff, sizeof rp.slots);
  /* Which (axis, direction) rings run: after every piece but the last, each chip sends
   * the chips before it on these a token, and the next piece waits for them (see
   * above RsPiece). The first piece waits for none (its slots are
   * fresh, as a collective's in one piece are) and the last sends none, so neither
   * costs a hop. */
  for (int i = 0; i < nparts; i++)
    for (int l = 0; l < nact; l++) rp.used[act[(i / ndir + l) % nact]][i % ndir] = true;
  /* The pieces, then the remainder (the first pieces' slots serve it: its parts are no
   * larger). Overlapping (rs_may_overlap): the first piece, a loop of the middle ones,
   * the last full one, the remainder, each but the last sending the next one's first
   * chunks (the remainder's only where each of its parts holds data; otherwise it
   * starts as a piece without overlap does). Without: a loop of the pieces followed by
   * another, each waiting for the tokens at its end, then the last one. */
  int64_t followed = rest ? pieces : pieces - 1, tiles_rest = rest / r->tile_bytes;
  bool ov = followed > 0 && rs_may_overlap(c, &pp, slotted);
  bool rest_ov = ov && tiles_rest >= nparts;
  struct {
    int64_t size, count;
    RsLink lk;
    bool wait_end, to_rest;
  } runs[4] = {
      {sp, ov ? 1 : followed,
       {.then = ov && (pieces > 1 || rest_ov), .signal = true},
       !(ov && (pieces > 1 || rest_ov)), pieces == 1},
      {sp, ov && pieces > 2 ? pieces - 2 : 0,
       {.first_sent = true, .then = true, .signal = true}, false, false},
      {sp, ov && pieces > 1 ? 1 : 0,
       {.first_sent = true, .then = rest_ov, .signal = rest > 0}, rest > 0 && !rest_ov, true},
      {rest ? rest : sp, rest || !ov ? 1 : 0, {.first_sent = rest_ov}, false, false}};
  int final = 3;
  while (!runs[final].count) final--;
  for (int k = 0; k < 4; k++) {
    int64_t size = runs[k].size, g = size / r->tile_bytes, count = runs[k].count;
    if (!count) continue;
    int64_t gn = runs[k].to_rest ? tiles_rest : g;
    for (int i = 0; i < nparts; i++) {
      rp.off[i + 1] = rp.off[i] + (g / nparts + (i < g % nparts)) * r->tile_bytes;
      rp.next_off[i + 1] = rp.next_off[i] + (gn / nparts + (i < gn % nparts)) * r->tile_bytes;
    }
    rp.size = size;
    if (count > 1) tile_mir_loop_begin(c->m, (int32_t)count, 0);
    rs_piece(c, &rp, runs[k].lk);
    if (runs[k].wait_end) coll_ring_tokens(c, rp.used, true, rp.work);
    if (k != final) coll_ri(c, TILE_MOP_ADDI, rp.at, rp.at, size);
    if (count > 1) tile_mir_loop_end(c->m);
  }
  return true;
}

/* all_reduce of an operand that streams through VMEM in pieces over axes that wrap: the
 * reduce_scatter of it into this chip's slice of the result (in pieces that overlap,
 * reduce_scatter_parts), then the all_gather of the slices in place there
 * (coll_all_gather_parts), so the gather runs once, from HBM to HBM, rather than in
 * every piece: the pieces' inner levels pay their hops in the reduce-scatter alone, and
 * the gather needs no VMEM. Slice j of the operand, S bytes at j * S, is the sum that
 * chip j (by rank) keeps, which is where a gather puts shard j. On v4-like's 4x4x4
 * torus this took 16 MiB from 147,714 to 142,483 cycles and 256 MiB from 2,200,745 to
 * 2,121,870 (docs/perf.md). The caller has checked that slices are whole tiles for
 * every part. */
static bool all_reduce_composed(Coll *c, TileTensorRef x, TileTensorRef y,
                                const CollReduce *r) {
  int64_t S = x.bytes / chips(c);
  CollParts pp = coll_parts(c, S);
  TileTensorRef slice = flat_of(y);
  slice.dims[0] = S / tile_lower_elem_bytes((TileElem)y.elem);
  slice.bytes = S;
  int32_t mine = coll_rank_sum(c, pp.stride);
  coll_rr(c, TILE_MOP_ADD, mine, mine, coll_addr(c, y.buf, 0));
  bool failed = false;
  if (!reduce_scatter_parts(c, flat_of(x), slice, mine, r, &failed))
    return failed ? false : tile_lower_error(c->cx, c->op, "internal error: an all_reduce "
                                             "in pieces whose slices are not whole tiles");
  if (!coll_all_gather_parts(c, slice, flat_of(y), S))
    return tile_lower_error(c->cx, c->op, "internal error: the gather of an all_reduce's "
                            "slices found fewer granules than parts");
  return true;
}

/* One direction: the slice a chip keeps must be where its coordinates put it. */
static bool gen_reduce_scatter(Coll *c, TileTensorRef x, TileTensorRef y) {
  CollReduce r;
  if (!make_reduce(c, (TileElem)x.elem, &r)) return false;
  int64_t dim = 0, p = chips(c);
  tile_attr_get_int(&c->op->attrs, "dim", &dim);
  /* Where the estimate wins (small and medium operands, large ones over one line): each
   * slice's reduction flows toward its owner from both ends of a line, or from both
   * sides half a ring round on an axis with wraparound (gen_collective_line_scatter.c). */
  CollAround a = coll_around(&y, dim);
  if (coll_line_rs_wins(c, x.bytes, y.bytes, a.outer == 1, &r))
    return coll_line_reduce_scatter(c, x, y, &r, dim);
  int64_t slice = y.bytes, padded = (slice + r.tile_bytes - 1) / r.tile_bytes * r.tile_bytes;
  int64_t total = padded * p, run = a.mid * a.inner_bytes;
  bool failed = false, small =
      coll_oneshot_estimate(c, x.bytes, &r) < coll_ring_estimate(c, total, 1) / 2;
  if (a.outer == 1 && !small) {
    if (reduce_scatter_parts(c, x, y, -1, &r, &failed)) return true;
    if (failed) return false;
  }
  /* Small operands: the one-shot all_reduce (half its estimate's rings would be this
   * reduce-scatter's), keeping slice rank of the sum: outer runs, p * run apart. */
  if (small) {
    int64_t unit[TILE_MAX_TORUS_RANK], s = run;
    for (int k = c->naxes - 1; k >= 0; k--) {
      unit[k] = s;
      s *= c->ax[k].p;
    }
    int32_t at = coll_rank_sum(c, unit);
    TileDmaShape out = {.count0 = run, .count1 = a.outer, .count2 = 1, .src_stride1 = p * run,
                        .dst_stride1 = run};
    return coll_oneshot_all_reduce(c, x, y, &r, at, out);
  }
  if (!check_vmem(c, total + recv_bytes(c, total))) return false;
  int32_t work = vmem_buffer(c, "work", total), base[TILE_MAX_TORUS_RANK + 1];
  int64_t chunk[TILE_MAX_TORUS_RANK + 1];
  /* Slice j of the input ([outer, j * mid .. (j+1) * mid, inner]) to block j of work. */
  TileDmaShape in = {.count0 = run, .count1 = p, .count2 = a.outer, .src_stride1 = run,
                     .src_stride2 = p * run, .dst_stride1 = padded, .dst_stride2 = run};
  coll_local_copy(c, x.buf, 0, -1, work, 0, -1, in);
  levels(c, total, work, 0, chunk, base);
  for (int k = 0; k < c->naxes; k++) {
    CollRing ring = {.k = k, .dir = 0, .work = work, .base = base[k], .chunk = chunk[k]};
    coll_ring_reduce_scatter(c, &ring, 1, &r);
  }
  coll_local_copy(c, work, 0, base[c->naxes], y.buf, 0, -1, coll_flat(slice));
  return true;
}

/* x as one flat run of its elements. */
static TileTensorRef flat_of(TileTensorRef x) {
  TileTensorRef flat = x;
  flat.rank = 1;
  flat.dims[0] = x.bytes / tile_lower_elem_bytes((TileElem)x.elem);
  return flat;
}

/* HBM scratch ("coll.<what>.N") for every chip's `flat`, in rank order: a whole
 * gather's result. */
static TileTensorRef scratch_of(Coll *c, TileTensorRef flat, const char *what) {
  int64_t p = chips(c);
  TileTensorRef all = flat;
  char name[64];
  snprintf(name, sizeof name, "coll.%s.%d", what, (int)c->m->nbufs);
  all.buf = tile_mir_buffer(c->m, name, TILE_SPACE_HBM, p * flat.bytes, 1, 64);
  all.dims[0] *= p;
  all.bytes *= p;
  return all;
}

/* A gather along an inner dim on lines: the shards are outer runs of `run` bytes each,
 * p * run apart in the result, and the rings that move such rows route their closing
 * steps across the line. The line schedules move whole runs, so the shards go whole
 * (one run of x.bytes each) into HBM scratch in rank order, and one local strided copy
 * puts their rows in place: it reads and writes p * x.bytes once at HBM rate, far less
 * than the hops across the line it saves (measured in docs/perf.md, "The layers suite"). */
static void gather_staged(Coll *c, TileTensorRef x, TileTensorRef y, CollAround a, int64_t run) {
  int64_t p = chips(c);
  TileTensorRef flat = flat_of(x), all = scratch_of(c, flat, "gather");
  coll_all_gather_run(c, flat, all, x.bytes); /* true where lines apply */
  TileDmaShape place = {.count0 = run, .count1 = a.outer, .count2 = p, .src_stride1 = run,
                        .src_stride2 = x.bytes, .dst_stride1 = p * run, .dst_stride2 = run};
  coll_local_copy(c, all.buf, 0, -1, y.buf, 0, -1, place);
}

/* Gathers straight into the HBM result of every chip (coll_ring_gather_in_place): each
 * shard's place there is written once, so no VMEM copy is needed and the size is bounded
 * by HBM only. A shard that is one run goes split across the axes
 * (coll_all_gather_parts). Otherwise shard j of [outer, mid, inner] lands at rows
 * j * mid of the result's dim: outer runs of mid * inner bytes, p * that apart, gathered
 * one axis at a time, each shard half each way round: half its outer rows, or with one
 * row half its bytes. */
static bool gen_all_gather(Coll *c, TileTensorRef x, TileTensorRef y) {
  int64_t dim = 0, p = chips(c);
  tile_attr_get_int(&c->op->attrs, "dim", &dim);
  CollAround a = coll_around(&x, dim);
  int eb = tile_lower_elem_bytes((TileElem)x.elem);
  int64_t run = a.mid * a.inner_bytes, row = p * run;
  if (a.outer == 1 && coll_all_gather_run(c, x, y, run)) return true;
  if (coll_line_all_gather_applies(c)) {
    gather_staged(c, x, y, a, run);
    return true;
  }
  int32_t base[TILE_MAX_TORUS_RANK + 1];
  int64_t chunk[TILE_MAX_TORUS_RANK + 1];
  levels(c, row, y.buf, 0, chunk, base);
  TileDmaShape own = {.count0 = run, .count1 = a.outer, .count2 = 1, .src_stride1 = run,
                      .dst_stride1 = row};
  coll_local_copy(c, x.buf, 0, -1, y.buf, 0, base[c->naxes], own);
  int64_t rows_a = a.outer / 2, bytes_a = run / eb / 2 * eb;
  int n = a.outer >= 2 || bytes_a > 0 ? 2 : 1;
  for (int k = c->naxes - 1; k >= 0; k--) {
    CollRing rings[2] = {{.k = k, .dir = 0, .work = y.buf, .base = base[k], .chunk = chunk[k]},
                         {.k = k, .dir = 1, .work = y.buf, .base = -1, .chunk = chunk[k]}};
    TileDmaShape s[2] = {{.count0 = chunk[k], .count1 = a.outer, .count2 = 1,
                          .src_stride1 = row, .dst_stride1 = row}};
    int64_t ofs_b = 0;
    if (n == 2 && a.outer >= 2) { /* rows [0, rows_a) one way, the rest the other */
      s[1] = s[0];
      s[0].count1 = rows_a;
      s[1].count1 = a.outer - rows_a;
      ofs_b = rows_a * row;
    } else if (n == 2) { /* one row: the first bytes_a of each shard one way */
      TileDmaShape h = {.count0 = bytes_a, .count1 = chunk[k] / run, .count2 = 1,
                        .src_stride1 = run, .dst_stride1 = run};
      s[0] = s[1] = h;
      s[1].count0 = run - bytes_a;
      ofs_b = bytes_a;
    }
    if (n == 2) {
      rings[1].base = tile_mir_sreg(c->m);
      coll_ri(c, TILE_MOP_ADDI, rings[1].base, base[k], ofs_b);
    }
    coll_ring_gather_in_place(c, rings, n, s, eb, c->ax[k].p - 1);
  }
  return true;
}

/* A shift along an axis over several dims is no shift along each of its dims (a
 * position's digits borrow from one another), and a ring over the whole axis would need
 * a band slot its dims' rings do not leave. So every chip gathers the operands of the
 * whole axis (all_gather over its dims, in position order, into HBM scratch) and keeps
 * the one from position q - shift: p times the bytes of a shift, correct for any. */
static bool permute_spanning(Coll *c, TileTensorRef x, TileTensorRef y, int64_t shift) {
  int64_t p = chips(c), s = ((shift % p) + p) % p, unit[TILE_MAX_TORUS_RANK];
  TileTensorRef flat = flat_of(x), all = scratch_of(c, flat, "permute");
  if (!gen_all_gather(c, flat, all)) return false;
  for (int k = c->naxes - 1, u = 1; k >= 0; k--) { /* this chip's block: its position */
    unit[k] = u * x.bytes;
    u *= (int)c->ax[k].p;
  }
  int32_t off = coll_rank_sum(c, unit), from = coll_addr(c, all.buf, 0);
  if (s) coll_step_back(c, off, s * x.bytes, p * x.bytes);
  coll_rr(c, TILE_MOP_ADD, from, from, off);
  coll_local_copy(c, all.buf, 0, from, y.buf, 0, -1, coll_flat(x.bytes));
  return true;
}

bool tile_coll_permute_one_hop(const TileModule *m, const TileFunc *f, const TileOp *op) {
  if (op->kind != TILE_OP_COLLECTIVE_PERMUTE || op->nopnd < 1 || op->nres < 1) return false;
  const TileMesh *mesh = tile_coll_op_mesh(m, f, op);
  const TileAttr *a = tile_coll_axes_attr(op), *cyc = tile_attr_get(&op->attrs, "cycle");
  if (!mesh || !a) return false;
  if ((a->kind == TILE_ATTR_ARRAY || a->kind == TILE_ATTR_TUPLE) && a->n == 1) a = a->elems;
  if (a->kind != TILE_ATTR_IDENT) return false;
  const TileMeshAxis *axis = tile_mesh_find_axis(mesh, a->s);
  const TileMeshAxis *other = cyc && cyc->kind == TILE_ATTR_IDENT
                                  ? tile_mesh_find_axis(mesh, cyc->s) : NULL;
  if (!axis || axis->ndims != 1) return false; /* several dims: span */
  if (cyc && (!other || other->ndims != 1)) return false;
  int64_t p = axis->size * (other ? other->size : 1);
  if (p < 2) return false;
  const TileValue *x = op->opnd[0].v;
  if (x->type.elem == TILE_ELEM_I1 || tile_lower_elem_bytes((TileElem)x->type.elem) == 0 ||
      tile_type_numel(&x->type) == 0)
    return false;
  int64_t shift = 0;
  tile_attr_get_int(&op->attrs, "shift", &shift);
  int64_t s = ((shift % p) + p) % p;
  return s == 1 || s == p - 1;
}

int tile_coll_permute_sends(const TileOp *op) {
  int64_t halves = 0;
  tile_attr_get_int(&op->attrs, "halves", &halves);
  return halves ? 2 : 1;
}

/* Hops of one position along the ring the short way round, each into the next chip's
 * copy of a buffer written once per run (HBM scratch between hops, the result at the
 * last), so arrivals count on the band semaphore of that ring: a shift of s positions
 * is min(s, p - s) hops. A direct transfer to the chip s away would cross the same
 * links but signal from a sender no ring uses, which the band has no semaphore for.
 * With a `cycle` axis the ring is the cycle through both axes (gen_collective_cycle.c).
 * With `halves` the second half of dim 0 takes the same hops the other way round at
 * once: each direction of the links carries half. A one-hop permute the lowering runs
 * asynchronously (tile_lower_async_sem >= 0, lower_async.c) only sends here: its waits
 * go to a later group. */
static bool gen_permute(Coll *c, TileTensorRef x, TileTensorRef y) {
  int64_t shift = 0;
  tile_attr_get_int(&c->op->attrs, "shift", &shift);
  if (tile_attr_get(&c->op->attrs, "cycle") && !coll_cycle_ring(c)) return false;
  int32_t async_sem = tile_lower_async_sem(c->cx);
  const CollAxis *a = &c->ax[0];
  int64_t s = c->span ? 0 : ((shift % a->p) + a->p) % a->p;
  int dir = s <= a->p - s ? 0 : 1, nparts = tile_coll_permute_sends(c->op);
  int64_t hops = dir == 0 ? s : a->p - s, part = x.bytes / nparts;
  if (async_sem >= 0) {
    if (c->span || hops != 1) /* the plan took it by tile_coll_permute_one_hop */
      return tile_lower_error(c->cx, c->op, "internal error: an asynchronous permute of "
                              "%d hops", (int)hops);
    for (int h = 0; h < nparts; h++)
      coll_exchange_async(c, 0, dir ^ h, x.buf, y.buf, h * part, part, async_sem);
    return true;
  }
  if (c->span && nparts > 1)
    return tile_lower_error(c->cx, c->op, "halves = 1 along an axis over several torus dims "
                            "is not supported; shift each half with a permute of its own");
  if (c->span) return permute_spanning(c, x, y, shift);
  if (s == 0) {
    coll_local_copy(c, x.buf, 0, -1, y.buf, 0, -1, coll_flat(x.bytes));
    return true;
  }
  int32_t src = x.buf;
  for (int64_t h = 1; h <= hops; h++) {
    int32_t dst = y.buf;
    if (h < hops) {
      char name[64];
      snprintf(name, sizeof name, "coll.hop%d.%d", (int)h, (int)c->m->nbufs);
      dst = tile_mir_buffer(c->m, name, TILE_SPACE_HBM, x.bytes, 1, 64);
    }
    CollRemote rm[2];
    for (int k = 0; k < nparts; k++) {
      rm[k] = coll_remote(c, 0, dir ^ k, src, dst, coll_flat(part));
      coll_remote_send(c, &rm[k], coll_addr(c, src, k * part), coll_addr(c, dst, k * part));
    }
    for (int k = 0; k < nparts; k++) coll_remote_wait(c, &rm[k]);
    src = dst;
  }
  return true;
}

/* Whether every axis of more than one chip of c is one of the last anchoring
 * collective's (TileLowerCtx.coll_anchor): then every chip this one receives from in c
 * was in that collective with it. */
static bool anchor_covers(const Coll *c) {
  const TileLowerCtx *cx = c->cx;
  if (cx->coll_anchor < 0) return false;
  for (int k = 0; k < c->naxes; k++) {
    const CollAxis *a = &c->ax[k];
    bool found = a->p < 2;
    for (int j = 0; j < cx->coll_anchor_naxes && !found; j++)
      found = cx->coll_anchor_axes[j][0] == a->dim && cx->coll_anchor_axes[j][1] == a->p &&
              cx->coll_anchor_axes[j][2] == a->inner;
    if (!found) return false;
  }
  return true;
}

/* After c: its buffers anchor later collectives over its chips, unless it is a
 * collective_permute (a chip's result there depends on one peer only). */
static void anchor_set(const Coll *c) {
  TileLowerCtx *cx = c->cx;
  if (c->op->kind == TILE_OP_COLLECTIVE_PERMUTE || !c->exchanges) return;
  cx->coll_anchor = c->first_buf;
  cx->coll_anchor_n = c->m->nbufs - c->first_buf;
  cx->coll_anchor_naxes = 0;
  for (int k = 0; k < c->naxes; k++) {
    int64_t *t = cx->coll_anchor_axes[cx->coll_anchor_naxes++];
    t[0] = c->ax[k].dim;
    t[1] = c->ax[k].p;
    t[2] = c->ax[k].inner;
  }
}

/* A peer may deliver into this chip's receive buffers before this chip reaches the
 * collective, so layout keeps them from the anchor on (TileMirBuffer.remote_after), or
 * from the first bundle where there is none: over every group since, whose VMEM they
 * then may not share. Where that is much (the buffers made since the anchor and the
 * operand each over a quarter of VMEM: a prefill layer's all_reduce after its MLP's
 * matmuls) and every axis is a ring, the collective first meets its neighbours, the
 * only chips that write into it: a 4-byte signal to each neighbour, on the semaphore
 * its arrivals from this chip count on, and a wait for theirs. A neighbour sends data
 * only after this chip's signal, which is where the buffers' lives then begin: the
 * meeting anchors the collective. It costs about a hop. (Lines, whose end chips lack a
 * neighbour, keep the old anchor.) */
static bool wants_meeting(const Coll *c, const TileTensorRef *x, const TileTensorRef *y) {
  TileOpKind kind = c->op->kind;
  if (kind != TILE_OP_ALL_REDUCE && kind != TILE_OP_REDUCE_SCATTER && kind != TILE_OP_ALL_GATHER)
    return false;
  for (int k = 0; k < c->naxes; k++)
    if (coll_is_line(&c->ax[k])) return false;
  const TileLowerCtx *cx = c->cx;
  int64_t quarter = cx->target->vmem_bytes / 4, since = 0;
  if ((x->bytes > y->bytes ? x->bytes : y->bytes) <= quarter) return false;
  for (int32_t b = cx->coll_anchor >= 0 ? cx->coll_anchor + cx->coll_anchor_n : 0;
       b < c->m->nbufs; b++)
    if (c->m->bufs[b].space == TILE_SPACE_VMEM) since += c->m->bufs[b].bytes * c->m->bufs[b].nslots;
  return since > quarter;
}

static void meet(Coll *c) {
  TileMir *m = c->m;
  char name[64];
  snprintf(name, sizeof name, "meet.%d", (int)m->nbufs);
  int32_t buf = tile_mir_buffer(m, name, TILE_SPACE_VMEM, 64, 1, 64);
  int32_t sent = tile_mir_sem(m), n = 0, names = -1;
  for (int k = 0; k < c->naxes; k++)
    for (int d = 0; d < 2 && c->ax[k].p > 1; d++) {
      TileDmaSite s = coll_line_site(c, buf, buf, 4, c->next[d][k],
                                     coll_li(c, coll_recv_sem(c, d, k)), sent, true);
      tile_dma_issue(c->cx, &s, -1, 0, -1, 0);
      names = s.desc;
      n++;
    }
  for (int k = 0; k < c->naxes; k++)
    for (int d = 0; d < 2 && c->ax[k].p > 1; d++) coll_wait_sem(c, coll_recv_sem(c, d, k), 1, -1);
  coll_wait_sem(c, sent, n, names);
  c->anchor = buf;
  c->anchor_n = 1;
}

static bool gen_op(Coll *c, TileTensorRef x, TileTensorRef y) {
  switch (c->op->kind) {
  case TILE_OP_ALL_REDUCE: return gen_all_reduce(c, x, y);
  case TILE_OP_REDUCE_SCATTER: return gen_reduce_scatter(c, x, y);
  case TILE_OP_ALL_GATHER: return gen_all_gather(c, x, y);
  case TILE_OP_COLLECTIVE_PERMUTE: return gen_permute(c, x, y);
  case TILE_OP_ALL_TO_ALL: return coll_all_to_all(c, x, y);
  default:
    return tile_lower_error(c->cx, c->op, "not a collective this generator knows");
  }
}

bool tile_gen_collective(TileLowerCtx *cx, const TileGroup *g) {
  const TileOp *op = g->ops[0];
  if (g->nops != 1)
    return tile_lower_error(cx, g->ops[1], "a collective is a fusion group of its own");
  Coll c = {.cx = cx, .m = cx->mir, .op = op};
  if (!coll_resolve_axes(&c)) return false;
  TileTensorRef x = tile_lower_tensor(cx, op->opnd[0].v), y = tile_lower_tensor(cx, op->res[0]);
  if (x.elem == TILE_ELEM_I1)
    return tile_lower_error(cx, op, "i1 tensors cross chips as i32; convert the operand first");
  if (x.bytes == 0 || y.bytes == 0) return true;
  if (x.bytes > INT32_MAX / 4 || y.bytes > INT32_MAX / 4)
    return tile_lower_error(cx, op, "tensors of 512 MiB or more do not fit 32-bit DMA words");
  coll_setup(&c);
  bool covered = anchor_covers(&c);
  c.anchor = covered ? cx->coll_anchor : -1;
  c.anchor_n = covered ? cx->coll_anchor_n : 0;
  c.first_buf = cx->mir->nbufs;
  c.exchanges = false;
  if (wants_meeting(&c, &x, &y)) meet(&c);
  if (!gen_op(&c, x, y)) return false;
  anchor_set(&c);
  return true;
}
