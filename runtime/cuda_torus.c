/* The plan of a torus program on one GPU (include/tile/cuda_torus.h): per-chip buffer
 * slices, and the program's launches and collectives as an ordered list of steps.
 *
 * A collective expands into the steps of the VLIW schedule (backend-vliw/gen_collective.c,
 * gen_collective_ring.c, gen_collective_a2a.c), chip by chip:
 *   all_reduce      the data in parts (one per rotation of the axis order where the
 *                   active axes have one length, each twice, toward +coordinate and
 *                   toward -, where they are longer than 2); per level, every part's ring
 *                   reduce-scatter, then the all-gathers in reverse level order, through
 *                   receive slots;
 *   reduce_scatter  the input rearranged so chip r's slice is block r, then one ring
 *                   reduce-scatter per axis (toward +);
 *   all_gather      straight into every chip's result, innermost axis first, half of
 *                   each shard each way round;
 *   all_to_all      the blocks rearranged block-major, one store-and-forward exchange
 *                   per axis, the slots placed along concat_dim;
 *   collective_permute  min(s, p - s) one-position hops the short way round; along a
 *                   cycle or in halves, a direct copy to each receiver instead.
 * A ring step is, for every ring and chip, a copy into the next chip's receive slot on
 * the sender's stream (an event recorded after it), then for every chip a wait on the
 * event of the copy coming to it and the combine (a reduce kernel) or the copy into
 * place. Waits always follow the copy they wait for in the list, so issuing the list in
 * order to the streams never waits on an event not yet recorded. Receive slots are
 * written once per run, so an early arrival overwrites nothing a slower chip still reads
 * (tile_cuda_torus_check proves the order for a given plan). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/cuda_torus.h"

enum { MAX_CHIPS = 4096, SLICE_ALIGN = 256 };

void tile_cuda_torus_options_default(TileCudaTorusOptions *o) {
  memset(o, 0, sizeof *o);
  for (int k = 0; k < TILE_MAX_RANK; k++) o->wrap[k] = true;
  o->granule = 1;
}

const char *tile_torus_step_name(TileTorusStepKind k) {
  static const char *const names[] = {
#define X(e, n, d) n,
      TILE_TORUS_STEPS(X)
#undef X
  };
  return (unsigned)k <= TILE_TORUS_REDUCE ? names[k] : "?";
}

/* ---- the builder ---- */

typedef struct Axis {
  int32_t dim;
  int64_t p, stride;
  bool wrap;
} Axis;

/* A ring over axis k toward dir (0: +coordinate, 1: -) on region [base[c], base[c] + p *
 * chunk) of buffer buf, in elements; base is per chip. */
typedef struct Ring {
  int k, dir, buf;
  int64_t *base;
  int64_t chunk;
} Ring;

typedef struct Builder {
  const TileCudaProgram *p;
  const TileCudaTorusOptions *o;
  TileCudaTorusPlan *plan;
  TileDiag *d;
  int32_t cap_steps, cap_bufs;
  bool failed;
  /* the collective being expanded */
  int ci;
  const TileCudaCollective *c;
  int64_t es; /* element bytes */
  int naxes;
  Axis ax[TILE_MAX_RANK];
  /* per-chip vectors of the collective, freed together */
  int64_t **vecs;
  int nvecs, cap_vecs;
} Builder;

static bool fail(Builder *b, const char *fmt, const char *what) {
  if (!b->failed) {
    TileLoc at = b->c ? b->c->src_loc : (TileLoc){0};
    tile_error(b->d, at, fmt, what);
  }
  b->failed = true;
  return false;
}

static int64_t *vec(Builder *b) {
  if (b->nvecs == b->cap_vecs) {
    int cap = b->cap_vecs ? 2 * b->cap_vecs : 16;
    int64_t **v = realloc(b->vecs, (size_t)cap * sizeof *v);
    if (!v) return fail(b, "%s", "out of memory building the torus plan"), NULL;
    b->vecs = v;
    b->cap_vecs = cap;
  }
  int64_t *v = calloc((size_t)b->plan->nchips, sizeof *v);
  if (!v) return fail(b, "%s", "out of memory building the torus plan"), NULL;
  return b->vecs[b->nvecs++] = v;
}

static void vecs_free(Builder *b) {
  for (int i = 0; i < b->nvecs; i++) free(b->vecs[i]);
  free(b->vecs);
  b->vecs = NULL;
  b->nvecs = b->cap_vecs = 0;
}

static int64_t mod(int64_t a, int64_t p) { return ((a % p) + p) % p; }

static int64_t coord(const Builder *b, int k, int64_t chip) {
  return chip / b->ax[k].stride % b->ax[k].p;
}

/* The chip's position on ring (k, dir): its coordinate toward +, (p - q) mod p toward -,
 * so that the next chip is always one position on. */
static int64_t pos(const Builder *b, int dir, int k, int64_t chip) {
  int64_t q = coord(b, k, chip);
  return dir ? mod(-q, b->ax[k].p) : q;
}

static int64_t next_chip(const Builder *b, int dir, int k, int64_t chip) {
  int64_t q = coord(b, k, chip), p = b->ax[k].p;
  int64_t to = dir ? mod(q - 1, p) : mod(q + 1, p);
  return chip + (to - q) * b->ax[k].stride;
}

static int64_t prev_chip(const Builder *b, int dir, int k, int64_t chip) {
  return next_chip(b, !dir, k, chip);
}

/* Links a step from chip to its next chip crosses: one, but for the closing step of a
 * ring on an axis without wraparound, which crosses the whole line. */
static int32_t hops(const Builder *b, int dir, int k, int64_t chip) {
  int64_t q = coord(b, k, chip), p = b->ax[k].p;
  bool closing = dir ? q == 0 : q == p - 1;
  return closing && !b->ax[k].wrap ? (int32_t)(p - 1) : 1;
}

static TileTorusStep *add_step(Builder *b, TileTorusStepKind kind, int64_t chip) {
  TileCudaTorusPlan *pl = b->plan;
  if (b->failed) return NULL;
  if (pl->nsteps == b->cap_steps) {
    int32_t cap = b->cap_steps ? 2 * b->cap_steps : 256;
    TileTorusStep *s = realloc(pl->steps, (size_t)cap * sizeof *s);
    if (!s) return fail(b, "%s", "out of memory building the torus plan"), NULL;
    pl->steps = s;
    b->cap_steps = cap;
  }
  TileTorusStep *s = &pl->steps[pl->nsteps++];
  memset(s, 0, sizeof *s);
  s->kind = (uint8_t)kind;
  s->chip = (int32_t)chip;
  s->coll = b->c ? b->ci : -1;
  s->launch = -1;
  s->event = -1;
  s->rows = 1;
  return s;
}

/* The last byte a reference reaches must lie in its buffer: a plan that would read or
 * write outside one is a bug here, reported instead of run. */
static bool in_bounds(Builder *b, TileTorusRef r, int64_t extent) {
  const TileCudaTorusPlan *pl = b->plan;
  if (r.buf >= 0 && r.buf < pl->nbufs && r.chip >= 0 && r.chip < pl->nchips && r.off >= 0 &&
      extent >= 0 && r.off + extent <= pl->bufs[r.buf].bytes)
    return true;
  return fail(b, "internal error: the torus plan of %s reaches outside a buffer",
              b->c ? tile_cuda_coll_name((TileCudaCollKind)b->c->kind) : "a launch");
}

static TileTorusRef ref(int64_t chip, int buf, int64_t off_bytes) {
  return (TileTorusRef){(int32_t)chip, buf, off_bytes};
}

/* A copy of rows x bytes on the sender's stream; between chips it records a new event,
 * whose id it returns (-1 for a copy within a chip). */
static int32_t copy2d(Builder *b, TileTorusRef src, TileTorusRef dst, int64_t bytes, int64_t rows,
                      int64_t src_pitch, int64_t dst_pitch, int32_t nhops) {
  if (bytes <= 0 || rows <= 0) return -1;
  if (!in_bounds(b, src, (rows - 1) * src_pitch + bytes) ||
      !in_bounds(b, dst, (rows - 1) * dst_pitch + bytes))
    return -1;
  TileTorusStep *s = add_step(b, TILE_TORUS_COPY, src.chip);
  if (!s) return -1;
  s->src = src;
  s->dst = dst;
  s->bytes = bytes;
  s->rows = rows;
  s->src_pitch = rows > 1 ? src_pitch : bytes;
  s->dst_pitch = rows > 1 ? dst_pitch : bytes;
  if (src.chip != dst.chip) {
    s->event = b->plan->nevents++;
    s->hops = nhops;
    if (s->coll >= 0) b->plan->coll_bytes[s->coll] += bytes * rows;
  }
  return s->event;
}

static int32_t copy(Builder *b, TileTorusRef src, TileTorusRef dst, int64_t bytes, int32_t nhops) {
  return copy2d(b, src, dst, bytes, 1, bytes, bytes, nhops);
}

static void wait(Builder *b, int64_t chip, int32_t event) {
  if (event < 0) return;
  TileTorusStep *s = add_step(b, TILE_TORUS_WAIT, chip);
  if (s) s->event = event;
}

static void reduce(Builder *b, TileTorusRef dst, TileTorusRef src, int64_t n) {
  if (n <= 0 || !in_bounds(b, dst, n * b->es) || !in_bounds(b, src, n * b->es)) return;
  TileTorusStep *s = add_step(b, TILE_TORUS_REDUCE, dst.chip);
  if (!s) return;
  s->dst = dst;
  s->src = src;
  s->bytes = n;
}

static int add_buffer(Builder *b, const char *name, int32_t prog, int64_t bytes) {
  TileCudaTorusPlan *pl = b->plan;
  if (b->failed) return -1;
  if (pl->nbufs == b->cap_bufs) {
    int32_t cap = b->cap_bufs ? 2 * b->cap_bufs : 32;
    TileTorusBuffer *nb = realloc(pl->bufs, (size_t)cap * sizeof *nb);
    if (!nb) return fail(b, "%s", "out of memory building the torus plan"), -1;
    pl->bufs = nb;
    b->cap_bufs = cap;
  }
  TileTorusBuffer *t = &pl->bufs[pl->nbufs];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->prog = prog;
  t->bytes = bytes;
  t->stride = (bytes + SLICE_ALIGN - 1) / SLICE_ALIGN * SLICE_ALIGN;
  if (t->stride == 0) t->stride = SLICE_ALIGN;
  return pl->nbufs++;
}

static int scratch(Builder *b, const char *what, int64_t elems) {
  char name[64];
  snprintf(name, sizeof name, "coll%d.%s.%d", b->ci, what, (int)b->plan->nbufs);
  return add_buffer(b, name, -1, elems * b->es);
}

/* Every chip copies n elements from src to dst at the same offsets. */
static void local_copy_all(Builder *b, int src, int64_t src_off, int dst, int64_t dst_off,
                           int64_t n) {
  for (int64_t c = 0; c < b->plan->nchips; c++)
    copy(b, ref(c, src, src_off * b->es), ref(c, dst, dst_off * b->es), n * b->es, 0);
}

/* ---- ring phases ---- */

/* One ring phase over the rings of one level (all on axes of one length), p - 1 steps.
 * At step s the chip at ring position q sends chunk q - lag - s into the next chip's
 * receive slot s, then folds what arrived from the previous chip into chunk
 * q - lag - 1 - s.
 *   reduce-scatter (lag 1, combine): a reduce; after it chunk q holds the reduction
 *                  over the axis;
 *   all-gather     (lag 0, copy into place): chunk q complete before, every chunk after;
 *                  what arrives is sent on at the next step. */
static void ring_level(Builder *b, const Ring *rings, int n, bool combine) {
  const int64_t p = b->ax[rings[0].k].p, chips = b->plan->nchips, lag = combine ? 1 : 0;
  if (p < 2) return;
  int slots[2 * TILE_MAX_RANK];
  int64_t *evs[2 * TILE_MAX_RANK];
  for (int i = 0; i < n; i++) {
    slots[i] = scratch(b, combine ? "rs" : "ag", (p - 1) * rings[i].chunk);
    evs[i] = vec(b);
  }
  for (int64_t s = 0; s < p - 1 && !b->failed; s++) {
    for (int i = 0; i < n; i++) {
      const Ring *g = &rings[i];
      for (int64_t c = 0; c < chips; c++) {
        int64_t j = mod(pos(b, g->dir, g->k, c) - lag - s, p);
        evs[i][c] = copy(b, ref(c, g->buf, (g->base[c] + j * g->chunk) * b->es),
                         ref(next_chip(b, g->dir, g->k, c), slots[i], s * g->chunk * b->es),
                         g->chunk * b->es, hops(b, g->dir, g->k, c));
      }
    }
    for (int i = 0; i < n; i++) {
      const Ring *g = &rings[i];
      for (int64_t c = 0; c < chips; c++) {
        wait(b, c, (int32_t)evs[i][prev_chip(b, g->dir, g->k, c)]);
        int64_t j = mod(pos(b, g->dir, g->k, c) - lag - 1 - s, p);
        TileTorusRef slot = ref(c, slots[i], s * g->chunk * b->es),
                     at = ref(c, g->buf, (g->base[c] + j * g->chunk) * b->es);
        if (combine) reduce(b, at, slot, g->chunk);
        else copy(b, slot, at, g->chunk * b->es, 0);
      }
    }
  }
}

/* A strided piece of a chunk: rows of width elements, pitch apart. */
typedef struct Shape {
  int64_t width, rows, pitch;
} Shape;

/* All-gather straight into the result on every chip: chunk j lies at base + j * chunk by
 * coordinate; each step sends the chunk last received (first this chip's own) to the
 * same place on the next chip. */
static void gather_in_place(Builder *b, int k, const Ring *rings, int n, const Shape *sh) {
  const int64_t p = b->ax[k].p, chips = b->plan->nchips;
  if (p < 2) return;
  int64_t *off[2], *evs[2];
  for (int i = 0; i < n; i++) {
    off[i] = vec(b);
    evs[i] = vec(b);
    for (int64_t c = 0; !b->failed && c < chips; c++) off[i][c] = coord(b, k, c) * rings[i].chunk;
  }
  for (int64_t s = 0; s < p - 1 && !b->failed; s++) {
    for (int i = 0; i < n; i++) {
      const Ring *g = &rings[i];
      for (int64_t c = 0; c < chips; c++) {
        int64_t at = (g->base[c] + off[i][c]) * b->es;
        evs[i][c] = copy2d(b, ref(c, g->buf, at), ref(next_chip(b, g->dir, k, c), g->buf, at),
                           sh[i].width * b->es, sh[i].rows, sh[i].pitch * b->es,
                           sh[i].pitch * b->es, hops(b, g->dir, k, c));
      }
    }
    for (int i = 0; i < n; i++) {
      const Ring *g = &rings[i];
      /* Toward + the chunk of coordinate q - 1 - s arrives, toward - that of q + 1 + s. */
      for (int64_t c = 0; c < chips; c++) {
        off[i][c] = mod(off[i][c] + (g->dir ? g->chunk : -g->chunk), p * g->chunk);
        wait(b, c, (int32_t)evs[i][prev_chip(b, g->dir, k, c)]);
      }
    }
  }
}

/* ---- the collectives ---- */

static int64_t numel(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  return n;
}

/* A tensor around one dim: outer elements before it x that dim x inner elements after. */
typedef struct Around {
  int64_t outer, mid, inner;
} Around;

static Around around(int rank, const int64_t *dims, int dim) {
  Around a = {1, rank ? dims[dim] : 1, 1};
  for (int i = 0; i < dim; i++) a.outer *= dims[i];
  for (int i = dim + 1; i < rank; i++) a.inner *= dims[i];
  return a;
}

static int64_t group_chips(const Builder *b) {
  int64_t n = 1;
  for (int k = 0; k < b->naxes; k++) n *= b->ax[k].p;
  return n;
}

/* Per level k (0 .. naxes), the offset of the region a chip works on after levels
 * before k: base[k + 1] = base[k] + coord_k * chunk[k], chunk[k] = region / p_k. */
static void levels(Builder *b, int64_t total, int64_t **base, int64_t *chunk) {
  int64_t region = total;
  base[0] = vec(b);
  for (int k = 0; k < b->naxes; k++) {
    chunk[k] = region / b->ax[k].p;
    region = chunk[k];
    base[k + 1] = vec(b);
    for (int64_t c = 0; !b->failed && c < b->plan->nchips; c++)
      base[k + 1][c] = base[k][c] + coord(b, k, c) * chunk[k];
  }
}

static int64_t granule(const Builder *b) { return b->o->granule > 1 ? b->o->granule : 1; }

static void plan_all_reduce(Builder *b) {
  const TileCudaCollective *c = b->c;
  const int64_t n = numel(c->rank, c->in_dims), chips = b->plan->nchips;
  int act[TILE_MAX_RANK], nact = 0;
  bool same = true;
  int64_t shortest = 0;
  for (int k = 0; k < b->naxes; k++) {
    if (b->ax[k].p < 2) continue;
    if (nact) same &= b->ax[k].p == b->ax[act[0]].p;
    shortest = nact && shortest < b->ax[k].p ? shortest : b->ax[k].p;
    act[nact++] = k;
  }
  if (nact == 0) {
    local_copy_all(b, c->src, 0, c->dst, 0, n);
    return;
  }
  const int nrot = same ? nact : 1, ndir = shortest > 2 ? 2 : 1, nparts = nrot * ndir;
  const int64_t unit = nparts * group_chips(b) * granule(b);
  const int64_t total = (n + unit - 1) / unit * unit, part = total / nparts;
  int work = scratch(b, "work", total);
  local_copy_all(b, c->src, 0, work, 0, n);
  Ring ring[2 * TILE_MAX_RANK][TILE_MAX_RANK];
  for (int i = 0; i < nparts && !b->failed; i++) {
    int rot = i / ndir, dir = i % ndir;
    int64_t region = part, *base = vec(b);
    for (int64_t ch = 0; base && ch < chips; ch++) base[ch] = i * part;
    for (int l = 0; l < nact && !b->failed; l++) {
      int k = act[(rot + l) % nact];
      ring[i][l] = (Ring){k, dir, work, base, region / b->ax[k].p};
      region = ring[i][l].chunk;
      int64_t *nb = vec(b);
      for (int64_t ch = 0; nb && ch < chips; ch++)
        nb[ch] = base[ch] + pos(b, dir, k, ch) * ring[i][l].chunk;
      base = nb;
    }
  }
  Ring level[2 * TILE_MAX_RANK];
  for (int l = 0; l < nact && !b->failed; l++) {
    for (int i = 0; i < nparts; i++) level[i] = ring[i][l];
    ring_level(b, level, nparts, true);
  }
  for (int l = nact - 1; l >= 0 && !b->failed; l--) {
    for (int i = 0; i < nparts; i++) level[i] = ring[i][l];
    ring_level(b, level, nparts, false);
  }
  local_copy_all(b, work, 0, c->dst, 0, n);
}

static void plan_reduce_scatter(Builder *b) {
  const TileCudaCollective *c = b->c;
  const int64_t P = group_chips(b), chips = b->plan->nchips;
  const int64_t slice = numel(c->rank, c->out_dims);
  const int64_t padded = (slice + granule(b) - 1) / granule(b) * granule(b), total = padded * P;
  Around a = around(c->rank, c->out_dims, c->dim);
  const int64_t run = a.mid * a.inner;
  int work = scratch(b, "work", total);
  /* Slice j ([outer, j * mid .. (j + 1) * mid, inner] of the input) to block j. */
  for (int64_t ch = 0; ch < chips; ch++)
    for (int64_t j = 0; j < P; j++)
      copy2d(b, ref(ch, c->src, j * run * b->es), ref(ch, work, j * padded * b->es), run * b->es,
             a.outer, P * run * b->es, run * b->es, 0);
  int64_t *base[TILE_MAX_RANK + 1], chunk[TILE_MAX_RANK];
  levels(b, total, base, chunk);
  for (int k = 0; k < b->naxes && !b->failed; k++) {
    Ring r = {k, 0, work, base[k], chunk[k]};
    ring_level(b, &r, 1, true);
  }
  for (int64_t ch = 0; !b->failed && ch < chips; ch++)
    copy(b, ref(ch, work, base[b->naxes][ch] * b->es), ref(ch, c->dst, 0), slice * b->es, 0);
}

static void plan_all_gather(Builder *b) {
  const TileCudaCollective *c = b->c;
  const int64_t P = group_chips(b), chips = b->plan->nchips;
  Around a = around(c->rank, c->in_dims, c->dim);
  const int64_t run = a.mid * a.inner, row = P * run;
  int64_t *base[TILE_MAX_RANK + 1], chunk[TILE_MAX_RANK];
  levels(b, row, base, chunk);
  for (int64_t ch = 0; !b->failed && ch < chips; ch++)
    copy2d(b, ref(ch, c->src, 0), ref(ch, c->dst, base[b->naxes][ch] * b->es), run * b->es,
           a.outer, run * b->es, row * b->es, 0);
  const int64_t rows_a = a.outer / 2, half = run / 2;
  const int n = a.outer >= 2 || half > 0 ? 2 : 1;
  for (int k = b->naxes - 1; k >= 0 && !b->failed; k--) {
    if (b->ax[k].p < 2) continue;
    Ring rings[2] = {{k, 0, c->dst, base[k], chunk[k]}, {k, 1, c->dst, NULL, chunk[k]}};
    Shape sh[2] = {{chunk[k], a.outer, row}, {0, 0, 0}};
    int64_t ofs = 0;
    if (n == 2 && a.outer >= 2) { /* rows [0, rows_a) one way, the rest the other */
      sh[1] = sh[0];
      sh[0].rows = rows_a;
      sh[1].rows = a.outer - rows_a;
      ofs = rows_a * row;
    } else if (n == 2) { /* one row: the first half of each shard one way */
      sh[0] = (Shape){half, chunk[k] / run, run};
      sh[1] = (Shape){run - half, chunk[k] / run, run};
      ofs = half;
    }
    if (n == 2) {
      rings[1].base = vec(b);
      for (int64_t ch = 0; rings[1].base && ch < chips; ch++) rings[1].base[ch] = base[k][ch] + ofs;
    }
    gather_in_place(b, k, rings, n, sh);
  }
}

/* One axis of all_to_all: slots of blk elements in src, exchanged over axis k into dst
 * by store and forward round the ring toward + (gen_collective_a2a.c). */
static void exchange_axis(Builder *b, int k, int src, int dst, int64_t blk) {
  const int64_t p = b->ax[k].p, chips = b->plan->nchips, es = b->es;
  int64_t inner = 1, outer = 1;
  for (int i = k + 1; i < b->naxes; i++) inner *= b->ax[i].p;
  for (int i = 0; i < k; i++) outer *= b->ax[i].p;
  const int64_t run = inner * blk, group = run * outer;
  /* This chip's own group stays where it is. */
  for (int64_t ch = 0; ch < chips; ch++) {
    int64_t own = coord(b, k, ch) * run * es;
    copy2d(b, ref(ch, src, own), ref(ch, dst, own), run * es, outer, p * run * es, p * run * es, 0);
  }
  /* Round 1's bundle: groups q + 1, ..., q + p - 1 packed in that order. */
  int bundle = scratch(b, "a2a.send", (p - 1) * group);
  for (int64_t ch = 0; ch < chips; ch++)
    for (int64_t t = 1; t < p; t++)
      copy2d(b, ref(ch, src, mod(coord(b, k, ch) + t, p) * run * es),
             ref(ch, bundle, (t - 1) * group * es), run * es, outer, p * run * es, run * es, 0);
  int rb = scratch(b, "a2a.recv", p * (p - 1) / 2 * group);
  int64_t *ev = vec(b);
  int64_t prev = -1, at = 0;
  for (int64_t s = 1; s < p && !b->failed; s++) {
    int64_t bytes = (p - s) * group * es;
    int from = s == 1 ? bundle : rb;
    int64_t from_off = s == 1 ? 0 : (prev + group) * es;
    for (int64_t ch = 0; ch < chips; ch++)
      ev[ch] = copy(b, ref(ch, from, from_off), ref(next_chip(b, 0, k, ch), rb, at * es), bytes,
                    hops(b, 0, k, ch));
    /* The head came from the chip s back and is for this chip: its slot is that chip's
     * coordinate. */
    for (int64_t ch = 0; ch < chips; ch++) {
      wait(b, ch, (int32_t)ev[prev_chip(b, 0, k, ch)]);
      int64_t slot = mod(coord(b, k, ch) - s, p) * run * es;
      copy2d(b, ref(ch, rb, at * es), ref(ch, dst, slot), run * es, outer, run * es,
             p * run * es, 0);
    }
    prev = at;
    at += (p - s) * group;
  }
}

static void plan_all_to_all(Builder *b) {
  const TileCudaCollective *c = b->c;
  const int64_t P = group_chips(b), chips = b->plan->nchips, es = b->es;
  const int64_t n = numel(c->rank, c->in_dims), blk = n / P;
  if (P == 1) {
    local_copy_all(b, c->src, 0, c->dst, 0, n);
    return;
  }
  /* Block j of x (around split_dim) to slot j. */
  Around s = around(c->rank, c->in_dims, c->dim);
  const int64_t run_s = s.mid / P * s.inner;
  int cur = scratch(b, "a2a.slots", n);
  for (int64_t ch = 0; ch < chips; ch++)
    for (int64_t j = 0; j < P; j++)
      copy2d(b, ref(ch, c->src, j * run_s * es), ref(ch, cur, j * blk * es), run_s * es, s.outer,
             P * run_s * es, run_s * es, 0);
  for (int k = 0; k < b->naxes && !b->failed; k++) {
    if (b->ax[k].p < 2) continue;
    int next = scratch(b, "a2a.slots", n);
    exchange_axis(b, k, cur, next, blk);
    cur = next;
  }
  /* Slot j (a block: the result with concat_dim / P) to position j along concat_dim. */
  int64_t bd[TILE_MAX_RANK];
  memcpy(bd, c->out_dims, sizeof bd);
  bd[c->concat_dim] /= P;
  Around o = around(c->rank, bd, c->concat_dim);
  const int64_t run_c = o.mid * o.inner;
  for (int64_t ch = 0; ch < chips; ch++)
    for (int64_t j = 0; j < P; j++)
      copy2d(b, ref(ch, cur, j * blk * es), ref(ch, c->dst, j * run_c * es), run_c * es, o.outer,
             run_c * es, P * run_c * es, 0);
}

/* Links a copy from position q to position r crosses: the short way round, as
 * consecutive positions are one link apart and so are the last and the first (a cycle
 * through two axes above 1 closes within the grid); but on one axis without wraparound,
 * the line between them. */
static int32_t permute_hops(const Builder *b, int64_t q, int64_t r, int64_t P) {
  const bool grid = b->c->cycle && b->ax[0].p > 1 && b->ax[1].p > 1;
  const int k = b->c->cycle && b->ax[0].p == 1 ? 1 : 0;
  const int64_t d = mod(r - q, P);
  if (!grid && !b->ax[k].wrap) return (int32_t)(q > r ? q - r : r - q);
  return (int32_t)(d < P - d ? d : P - d);
}

/* A permute along a cycle or in halves: each chip copies its operand straight into the
 * result of the chip shift positions on (with halves, the second half into that of the
 * chip shift positions back), one transfer rather than hop by hop; each receiver then
 * waits for what comes to it. */
static void plan_permute_direct(Builder *b) {
  const TileCudaCollective *c = b->c;
  const int64_t X = b->ax[0].p, Y = c->cycle ? b->ax[1].p : 1, P = X * Y;
  const int64_t chips = b->plan->nchips, nparts = c->halves ? 2 : 1;
  const int64_t part = numel(c->rank, c->in_dims) / nparts * b->es;
  /* at[r]: the chip at position r less the chip at position 0, the same on every ring
   * (P <= chips, so a per-chip vector holds it). */
  int64_t *at = vec(b), *ev[2] = {vec(b), vec(b)};
  if (b->failed) return;
  const int64_t jstride = c->cycle ? b->ax[1].stride : 0;
  for (int64_t i = 0; i < X; i++)
    for (int64_t j = 0; j < Y; j++)
      at[tile_mesh_cycle_pos(X, Y, i, j)] = i * b->ax[0].stride + j * jstride;
  for (int64_t k = 0; k < nparts; k++)
    for (int64_t ch = 0; ch < chips; ch++) {
      int64_t q = tile_mesh_cycle_pos(X, Y, coord(b, 0, ch), c->cycle ? coord(b, 1, ch) : 0);
      int64_t r = mod(k ? q - c->shift : q + c->shift, P), to = ch - at[q] + at[r];
      ev[k][to] = copy(b, ref(ch, c->src, k * part), ref(to, c->dst, k * part), part,
                       permute_hops(b, q, r, P));
    }
  for (int64_t ch = 0; ch < chips; ch++)
    for (int64_t k = 0; k < nparts; k++) wait(b, ch, (int32_t)ev[k][ch]);
}

static void plan_permute(Builder *b) {
  const TileCudaCollective *c = b->c;
  if (c->cycle || c->halves) {
    plan_permute_direct(b);
    return;
  }
  const int64_t n = numel(c->rank, c->in_dims), p = b->ax[0].p, chips = b->plan->nchips;
  const int64_t s = mod(c->shift, p);
  if (s == 0) {
    local_copy_all(b, c->src, 0, c->dst, 0, n);
    return;
  }
  const int dir = s <= p - s ? 0 : 1;
  const int64_t nhops = dir == 0 ? s : p - s;
  int src = c->src;
  int64_t *ev = vec(b);
  for (int64_t h = 1; h <= nhops && !b->failed; h++) {
    int dst = h < nhops ? scratch(b, "hop", n) : c->dst;
    for (int64_t ch = 0; ch < chips; ch++)
      ev[ch] = copy(b, ref(ch, src, 0), ref(next_chip(b, dir, 0, ch), dst, 0), n * b->es,
                    hops(b, dir, 0, ch));
    for (int64_t ch = 0; ch < chips; ch++) wait(b, ch, (int32_t)ev[prev_chip(b, dir, 0, ch)]);
    src = dst;
  }
}

/* ---- checking a collective before expanding it ---- */

static bool bad(Builder *b, const char *why) {
  return fail(b, "malformed collective in the CUDA program: %s", why);
}

static bool check_collective(Builder *b) {
  const TileCudaCollective *c = b->c;
  const TileCudaProgram *p = b->p;
  if (c->kind >= TILE_CUDA_COLL_COUNT) return bad(b, "unknown kind");
  if (c->rank < 0 || c->rank > TILE_MAX_RANK) return bad(b, "rank out of range");
  if (c->src < 0 || c->src >= p->nbufs || c->dst < 0 || c->dst >= p->nbufs || c->src == c->dst)
    return bad(b, "operand and result must be two buffers of the program");
  int bits = c->elem == TILE_ELEM_I1 ? 32 : tile_elem_bits((TileElem)c->elem);
  if (bits < 8) return bad(b, "element type");
  b->es = bits / 8;
  if (c->naxes < 1 || c->naxes > TILE_MAX_RANK) return bad(b, "no axes");
  b->naxes = c->naxes;
  for (int k = 0; k < c->naxes; k++) {
    int32_t dim = c->axes[k].dim;
    if (dim < 0 || dim >= p->torus_rank || c->axes[k].size != p->torus[dim])
      return bad(b, "an axis is not a whole torus dimension");
    for (int j = 0; j < k; j++)
      if (c->axes[j].dim == dim) return bad(b, "an axis named twice");
    int64_t stride = 1;
    for (int d = dim + 1; d < p->torus_rank; d++) stride *= p->torus[d];
    b->ax[k] = (Axis){dim, c->axes[k].size, stride, b->o->wrap[dim]};
  }
  for (int i = 0; i < c->rank; i++)
    if (c->in_dims[i] < 0 || c->out_dims[i] < 0) return bad(b, "negative dims");
  const int64_t nin = numel(c->rank, c->in_dims), nout = numel(c->rank, c->out_dims);
  if (p->bufs[c->src].bytes < nin * b->es || p->bufs[c->dst].bytes < nout * b->es)
    return bad(b, "a buffer is smaller than its tensor");
  const int64_t P = group_chips(b);
  const bool dim_ok = c->dim >= 0 && c->dim < c->rank;
  bool others = true; /* every dim but c->dim (and concat_dim) the same in and out */
  switch (c->kind) {
  case TILE_CUDA_COLL_ALL_REDUCE:
    if (!tile_cuda_reduce_supported((TileElem)c->elem, (TileCudaReduceKind)c->reduce) ||
        nin != nout)
      return bad(b, "all_reduce needs a reduce kind and a result of the operand's shape");
    return true;
  case TILE_CUDA_COLL_PERMUTE:
    if (c->cycle > 1 || c->halves > 1)
      return bad(b, "collective_permute's cycle and halves are 0 or 1");
    if (c->naxes != 1 + c->cycle || nin != nout)
      return bad(b, "collective_permute takes one axis, and a second with cycle");
    if (c->cycle && tile_mesh_cycle_pos(b->ax[0].p, b->ax[1].p, 0, 0) < 0)
      return bad(b, "collective_permute's cycle needs an axis of even size");
    if (c->halves && (c->rank < 1 || c->in_dims[0] % 2 || c->out_dims[0] != c->in_dims[0]))
      return bad(b, "collective_permute with halves needs an even dim 0");
    return true;
  case TILE_CUDA_COLL_ALL_GATHER:
  case TILE_CUDA_COLL_REDUCE_SCATTER: {
    bool gather = c->kind == TILE_CUDA_COLL_ALL_GATHER;
    if (!gather && !tile_cuda_reduce_supported((TileElem)c->elem, (TileCudaReduceKind)c->reduce))
      return bad(b, "reduce_scatter needs a reduce kind");
    if (!dim_ok) return bad(b, "dim out of range");
    for (int i = 0; i < c->rank; i++)
      others &= i == c->dim || c->in_dims[i] == c->out_dims[i];
    int64_t small = gather ? c->in_dims[c->dim] : c->out_dims[c->dim];
    int64_t big = gather ? c->out_dims[c->dim] : c->in_dims[c->dim];
    if (!others || small * P != big) return bad(b, "dims do not match the axes' chips");
    return true;
  }
  case TILE_CUDA_COLL_ALL_TO_ALL:
    if (!dim_ok || c->concat_dim < 0 || c->concat_dim >= c->rank)
      return bad(b, "split_dim or concat_dim out of range");
    if (c->in_dims[c->dim] % P || nin != nout) return bad(b, "split_dim is not divisible");
    if (c->dim != c->concat_dim && (c->out_dims[c->concat_dim] != c->in_dims[c->concat_dim] * P ||
                                    c->out_dims[c->dim] * P != c->in_dims[c->dim]))
      return bad(b, "dims do not match the axes' chips");
    return true;
  }
  return bad(b, "unknown kind");
}

static void expand(Builder *b, int ci) {
  b->ci = ci;
  b->c = &b->p->colls[ci];
  b->plan->coll_first[ci] = b->plan->nsteps;
  if (check_collective(b) && numel(b->c->rank, b->c->in_dims) > 0 &&
      numel(b->c->rank, b->c->out_dims) > 0) {
    switch (b->c->kind) {
    case TILE_CUDA_COLL_ALL_REDUCE: plan_all_reduce(b); break;
    case TILE_CUDA_COLL_REDUCE_SCATTER: plan_reduce_scatter(b); break;
    case TILE_CUDA_COLL_ALL_GATHER: plan_all_gather(b); break;
    case TILE_CUDA_COLL_ALL_TO_ALL: plan_all_to_all(b); break;
    default: plan_permute(b); break;
    }
  }
  vecs_free(b);
  b->c = NULL;
}

bool tile_cuda_torus_plan(const TileCudaProgram *p, const TileCudaTorusOptions *o,
                          TileCudaTorusPlan *plan, TileDiag *d) {
  memset(plan, 0, sizeof *plan);
  TileCudaTorusOptions defaults;
  tile_cuda_torus_options_default(&defaults);
  Builder b = {.p = p, .o = o ? o : &defaults, .plan = plan, .d = d};
  if (p->torus_rank < 1 || p->torus_rank > TILE_MAX_RANK)
    return fail(&b, "%s", "the CUDA program is not on a mesh (no torus)");
  int64_t chips = 1;
  for (int k = 0; k < p->torus_rank; k++) {
    if (p->torus[k] < 1) return fail(&b, "%s", "a torus dimension of no chips");
    chips *= p->torus[k];
    if (chips > MAX_CHIPS)
      return fail(&b, "%s", "the mesh has more than 4096 chips, more than one GPU runs");
    plan->dims[k] = p->torus[k];
    plan->wrap[k] = b.o->wrap[k] && p->torus[k] > 1;
  }
  plan->nchips = (int32_t)chips;
  plan->rank = p->torus_rank;
  plan->ncolls = p->ncolls;
  plan->coll_first = calloc((size_t)p->ncolls + 1, sizeof *plan->coll_first);
  plan->coll_bytes = calloc((size_t)p->ncolls + 1, sizeof *plan->coll_bytes);
  if (!plan->coll_first || !plan->coll_bytes) fail(&b, "%s", "out of memory");
  for (int i = 0; i < p->nbufs && !b.failed; i++)
    add_buffer(&b, p->bufs[i].name, i, p->bufs[i].bytes);
  for (int i = 0; i < p->ncolls && !b.failed; i++)
    if (p->colls[i].at_launch < 0 || p->colls[i].at_launch > p->nlaunches ||
        (i && p->colls[i].at_launch < p->colls[i - 1].at_launch))
      fail(&b, "%s", "malformed CUDA program: collectives out of launch order");
  int ci = 0;
  for (int l = 0; l <= p->nlaunches && !b.failed; l++) {
    while (ci < p->ncolls && p->colls[ci].at_launch == l && !b.failed) expand(&b, ci++);
    if (l == p->nlaunches) break;
    for (int64_t c = 0; c < chips; c++) {
      TileTorusStep *s = add_step(&b, TILE_TORUS_LAUNCH, c);
      if (s) s->launch = l;
    }
  }
  plan->coll_first[p->ncolls] = plan->nsteps;
  vecs_free(&b);
  if (b.failed) tile_cuda_torus_plan_free(plan);
  return !b.failed;
}

void tile_cuda_torus_plan_free(TileCudaTorusPlan *plan) {
  if (!plan) return;
  free(plan->bufs);
  free(plan->steps);
  free(plan->coll_first);
  free(plan->coll_bytes);
  memset(plan, 0, sizeof *plan);
}

/* ---- printing ---- */

void tile_cuda_torus_plan_print(FILE *f, const TileCudaProgram *p, const TileCudaTorusPlan *plan) {
  char torus[64] = "";
  for (int k = 0; k < plan->rank; k++)
    snprintf(torus + strlen(torus), sizeof torus - strlen(torus), "%s%d%s", k ? "x" : "",
             plan->dims[k], plan->wrap[k] || plan->dims[k] < 2 ? "" : "(line)");
  int64_t launches = 0;
  for (int32_t i = 0; i < plan->nsteps; i++) launches += plan->steps[i].kind == TILE_TORUS_LAUNCH;
  fprintf(f, "torus %s: %d chips, %d buffers per chip, %d steps (%lld launches), %d events\n",
          torus, plan->nchips, plan->nbufs, plan->nsteps, (long long)launches, plan->nevents);
  for (int i = 0; i < plan->ncolls; i++) {
    const TileCudaCollective *c = &p->colls[i];
    int32_t n[4] = {0}, hop = 0;
    for (int32_t s = plan->coll_first[i]; s < plan->coll_first[i + 1]; s++) {
      n[plan->steps[s].kind]++;
      if (plan->steps[s].hops > hop) hop = plan->steps[s].hops;
    }
    char axes[64] = "";
    for (int k = 0; k < c->naxes; k++)
      snprintf(axes + strlen(axes), sizeof axes - strlen(axes), "%s%d", k ? "," : "",
               c->axes[k].dim);
    fprintf(f, "  %s%s%s over torus dims [%s]: %d copies, %d waits, %d reduces, %lld bytes "
            "between chips, longest hop %d\n", tile_cuda_coll_name((TileCudaCollKind)c->kind),
            c->reduce ? " " : "", c->reduce ? tile_cuda_reduce_name((TileCudaReduceKind)c->reduce)
                                            : "",
            axes, n[TILE_TORUS_COPY], n[TILE_TORUS_WAIT], n[TILE_TORUS_REDUCE],
            (long long)plan->coll_bytes[i], hop);
  }
}

void tile_cuda_torus_plan_dump(FILE *f, const TileCudaTorusPlan *plan) {
  for (int32_t i = 0; i < plan->nsteps; i++) {
    const TileTorusStep *s = &plan->steps[i];
    fprintf(f, "%d: chip %d %s", i, s->chip, tile_torus_step_name((TileTorusStepKind)s->kind));
    switch (s->kind) {
    case TILE_TORUS_LAUNCH: fprintf(f, " %d", s->launch); break;
    case TILE_TORUS_WAIT: fprintf(f, " e%d", s->event); break;
    case TILE_TORUS_COPY:
      fprintf(f, " %d:%s+%lld -> %d:%s+%lld %lldx%lld", s->src.chip, plan->bufs[s->src.buf].name,
              (long long)s->src.off, s->dst.chip, plan->bufs[s->dst.buf].name,
              (long long)s->dst.off, (long long)s->rows, (long long)s->bytes);
      if (s->event >= 0) fprintf(f, " e%d hops %d", s->event, s->hops);
      break;
    default:
      fprintf(f, " %s+%lld += %s+%lld n %lld", plan->bufs[s->dst.buf].name, (long long)s->dst.off,
              plan->bufs[s->src.buf].name, (long long)s->src.off, (long long)s->bytes);
    }
    fputc('\n', f);
  }
}
