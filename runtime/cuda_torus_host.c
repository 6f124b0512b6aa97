/* The host side of a torus plan (include/tile/cuda_torus.h): an interpreter that runs
 * the copy and reduce steps one after another on host memory laid out as on the GPU
 * (buffer b of chip c at c * stride), and a checker that the plan's streams and events
 * order every two steps touching the same bytes where one writes.
 *
 * The interpreter runs the list in order, which is one of the orders the GPU may pick;
 * the checker shows that every order the GPU may pick gives the same memory, so the
 * interpreter's result is the GPU's. Together they test a plan without a GPU.
 *
 * Reductions combine as the reduce kernels do (backend-cuda/emit_collective.c): floats
 * in f32 (bf16 and f16 widened, the result rounded to nearest even on the bits, NaN kept
 * quiet: the prelude's conversions, include/tile/cuda.h), integers in their type with
 * wraparound, max and min propagating NaN. */
#include <stdlib.h>
#include <string.h>

#include "tile/cuda_torus.h"

/* ---- combining ---- */

static float fop(TileCudaReduceKind k, float a, float b) {
  switch (k) {
  case TILE_CUDA_REDUCE_ADD: return a + b;
  case TILE_CUDA_REDUCE_MUL: return a * b;
  case TILE_CUDA_REDUCE_MAX: return a != a ? a : b != b ? b : a > b ? a : b;
  case TILE_CUDA_REDUCE_MIN: return a != a ? a : b != b ? b : a < b ? a : b;
  default: return a;
  }
}

static uint64_t iop(TileCudaReduceKind k, int64_t a, int64_t b) {
  switch (k) {
  case TILE_CUDA_REDUCE_ADD: return (uint64_t)a + (uint64_t)b;
  case TILE_CUDA_REDUCE_MUL: return (uint64_t)a * (uint64_t)b;
  case TILE_CUDA_REDUCE_MAX: return (uint64_t)(a > b ? a : b);
  case TILE_CUDA_REDUCE_MIN: return (uint64_t)(a < b ? a : b);
  default: return (uint64_t)a;
  }
}

void tile_cuda_torus_combine(TileElem e, TileCudaReduceKind k, void *dst, const void *src,
                             int64_t n) {
  uint8_t *d = dst;
  const uint8_t *s = src;
  for (int64_t i = 0; i < n; i++) {
    switch (e) {
    case TILE_ELEM_F32: {
      float a, b;
      memcpy(&a, d + 4 * i, 4);
      memcpy(&b, s + 4 * i, 4);
      a = fop(k, a, b);
      memcpy(d + 4 * i, &a, 4);
      break;
    }
    case TILE_ELEM_BF16:
    case TILE_ELEM_F16: {
      uint16_t a, b;
      memcpy(&a, d + 2 * i, 2);
      memcpy(&b, s + 2 * i, 2);
      bool bf = e == TILE_ELEM_BF16;
      float r = fop(k, bf ? tile_cuda_bf16_to_f32(a) : tile_cuda_f16_to_f32(a),
                    bf ? tile_cuda_bf16_to_f32(b) : tile_cuda_f16_to_f32(b));
      a = bf ? tile_cuda_f32_to_bf16(r) : tile_cuda_f32_to_f16(r);
      memcpy(d + 2 * i, &a, 2);
      break;
    }
    case TILE_ELEM_I32: {
      int32_t a, b;
      memcpy(&a, d + 4 * i, 4);
      memcpy(&b, s + 4 * i, 4);
      uint32_t r = (uint32_t)iop(k, a, b); /* the low 32 bits: 32-bit wraparound */
      memcpy(d + 4 * i, &r, 4);
      break;
    }
    case TILE_ELEM_I64: {
      int64_t a, b;
      memcpy(&a, d + 8 * i, 8);
      memcpy(&b, s + 8 * i, 8);
      uint64_t r = iop(k, a, b);
      memcpy(d + 8 * i, &r, 8);
      break;
    }
    default: return;
    }
  }
}

/* ---- memory ---- */

uint8_t **tile_cuda_torus_host_alloc(const TileCudaProgram *p, const TileCudaTorusPlan *plan) {
  uint8_t **mem = calloc((size_t)plan->nbufs + 1, sizeof *mem);
  if (!mem) return NULL;
  for (int b = 0; b < plan->nbufs; b++) {
    const TileTorusBuffer *t = &plan->bufs[b];
    if (!(mem[b] = calloc((size_t)plan->nchips, (size_t)t->stride))) {
      tile_cuda_torus_host_free(plan, mem);
      return NULL;
    }
    const TileCudaBuffer *pb = t->prog >= 0 ? &p->bufs[t->prog] : NULL;
    if (pb && pb->init)
      for (int c = 0; c < plan->nchips; c++)
        memcpy(mem[b] + (size_t)c * (size_t)t->stride, pb->init, (size_t)pb->bytes);
  }
  return mem;
}

void tile_cuda_torus_host_free(const TileCudaTorusPlan *plan, uint8_t **mem) {
  if (!mem) return;
  for (int b = 0; b < plan->nbufs; b++) free(mem[b]);
  free(mem);
}

/* A 2D region of one chip's slice of one buffer: rows of width bytes, pitch apart. */
typedef struct Region {
  int32_t buf, chip;
  int64_t off, width, rows, pitch;
  bool write;
} Region;

static int64_t region_end(const Region *r) { return r->off + (r->rows - 1) * r->pitch + r->width; }

static bool region_ok(const TileCudaTorusPlan *plan, const Region *r) {
  return r->buf >= 0 && r->buf < plan->nbufs && r->chip >= 0 && r->chip < plan->nchips &&
         r->off >= 0 && r->width >= 0 && r->rows >= 1 && r->pitch >= r->width &&
         region_end(r) <= plan->bufs[r->buf].bytes;
}

/* The regions a step reads and writes (at most 2, or a launch's arguments); n set. */
static int step_regions(const TileCudaProgram *p, const TileCudaTorusPlan *plan,
                        const TileTorusStep *s, Region *out, int max) {
  int n = 0;
  if (s->kind == TILE_TORUS_COPY) {
    out[n++] = (Region){s->src.buf, s->src.chip, s->src.off, s->bytes, s->rows, s->src_pitch,
                        false};
    out[n++] = (Region){s->dst.buf, s->dst.chip, s->dst.off, s->bytes, s->rows, s->dst_pitch,
                        true};
  } else if (s->kind == TILE_TORUS_REDUCE) {
    int64_t es = s->coll >= 0 && s->coll < p->ncolls
                     ? (tile_elem_bits((TileElem)p->colls[s->coll].elem) + 7) / 8
                     : 0;
    int64_t bytes = s->bytes * es;
    out[n++] = (Region){s->src.buf, s->src.chip, s->src.off, bytes, 1, bytes, false};
    out[n++] = (Region){s->dst.buf, s->dst.chip, s->dst.off, bytes, 1, bytes, true};
  } else if (s->kind == TILE_TORUS_LAUNCH && s->launch >= 0 && s->launch < p->nlaunches) {
    const TileCudaLaunch *L = &p->launches[s->launch];
    for (int a = 0; a < L->nargs && n < max; a++) {
      int32_t b = L->args[a];
      int64_t bytes = b >= 0 && b < p->nbufs ? p->bufs[b].bytes : -1;
      out[n++] = (Region){b, s->chip, 0, bytes, 1, bytes, true};
    }
  }
  return n;
}

/* ---- the interpreter ---- */

static uint8_t *at(const TileCudaTorusPlan *plan, uint8_t **mem, TileTorusRef r) {
  return mem[r.buf] + (size_t)r.chip * (size_t)plan->bufs[r.buf].stride + (size_t)r.off;
}

bool tile_cuda_torus_host_run(const TileCudaProgram *p, const TileCudaTorusPlan *plan,
                              uint8_t **mem, TileTorusHostLaunch launch, void *user,
                              TileDiag *d) {
  bool *recorded = calloc((size_t)plan->nevents + 1, sizeof *recorded);
  if (!recorded) return tile_error(d, (TileLoc){0}, "out of memory");
  bool ok = true;
  for (int32_t i = 0; ok && i < plan->nsteps; i++) {
    const TileTorusStep *s = &plan->steps[i];
    TileLoc loc = s->coll >= 0 && s->coll < p->ncolls ? p->colls[s->coll].src_loc : (TileLoc){0};
    Region r[TILE_CUDA_MAX_ARGS];
    int nr = step_regions(p, plan, s, r, TILE_CUDA_MAX_ARGS);
    for (int k = 0; ok && k < nr; k++)
      if (!region_ok(plan, &r[k]))
        ok = tile_error(d, loc, "torus plan step %d (%s on chip %d) reaches outside a buffer", i,
                        tile_torus_step_name((TileTorusStepKind)s->kind), s->chip);
    if (!ok) break;
    switch (s->kind) {
    case TILE_TORUS_LAUNCH:
      if (!launch) {
        ok = tile_error(d, s->launch >= 0 && s->launch < p->nlaunches
                               ? p->launches[s->launch].src_loc
                               : loc,
                        "the host interpreter runs no kernels (step %d launches %s)", i,
                        s->launch >= 0 && s->launch < p->nlaunches ? p->launches[s->launch].kernel
                                                                   : "?");
      } else {
        ok = launch(user, s->chip, s->launch, mem);
      }
      break;
    case TILE_TORUS_COPY:
      for (int64_t row = 0; row < s->rows; row++)
        memmove(at(plan, mem, s->dst) + row * s->dst_pitch,
                at(plan, mem, s->src) + row * s->src_pitch, (size_t)s->bytes);
      if (s->event >= 0 && s->event < plan->nevents) recorded[s->event] = true;
      break;
    case TILE_TORUS_WAIT:
      if (s->event < 0 || s->event >= plan->nevents || !recorded[s->event])
        ok = tile_error(d, loc, "torus plan step %d: chip %d waits for event %d, which no earlier "
                        "step recorded", i, s->chip, s->event);
      break;
    case TILE_TORUS_REDUCE: {
      const TileCudaCollective *c = &p->colls[s->coll];
      tile_cuda_torus_combine((TileElem)c->elem, (TileCudaReduceKind)c->reduce,
                              at(plan, mem, s->dst), at(plan, mem, s->src), s->bytes);
      break;
    }
    default: ok = tile_error(d, loc, "torus plan step %d has an unknown kind", i);
    }
  }
  free(recorded);
  return ok;
}

/* ---- the checker ---- */

/* One access, for the checker: step index, its stream and time there. */
typedef struct Access {
  Region r;
  int32_t step, stream;
  uint32_t time;
} Access;

/* Whether two 2D regions of one slice share a byte. */
static bool overlap(const Region *a, const Region *b) {
  if (a->width == 0 || b->width == 0) return false;
  if (region_end(a) <= b->off || region_end(b) <= a->off) return false;
  if (a->rows > b->rows) {
    const Region *t = a;
    a = b;
    b = t;
  }
  for (int64_t i = 0; i < a->rows; i++) {
    int64_t x = a->off + i * a->pitch, xe = x + a->width; /* [x, xe) against b's rows */
    /* rows j with b->off + j * pitch < xe and b->off + j * pitch + width > x */
    int64_t lo = x - b->width - b->off + 1, hi = xe - 1 - b->off;
    int64_t jlo = lo <= 0 ? 0 : (lo + b->pitch - 1) / b->pitch;
    int64_t jhi = hi < 0 ? -1 : hi / b->pitch;
    if (jhi > b->rows - 1) jhi = b->rows - 1;
    if (jlo <= jhi) return true;
  }
  return false;
}

static int by_place(const void *x, const void *y) {
  const Access *a = x, *b = y;
  if (a->r.buf != b->r.buf) return a->r.buf < b->r.buf ? -1 : 1;
  if (a->r.chip != b->r.chip) return a->r.chip < b->r.chip ? -1 : 1;
  return a->step < b->step ? -1 : a->step > b->step;
}

bool tile_cuda_torus_check(const TileCudaProgram *p, const TileCudaTorusPlan *plan, TileDiag *d) {
  const int64_t chips = plan->nchips;
  if ((int64_t)plan->nsteps * chips > 200000000)
    return tile_error(d, (TileLoc){0}, "the torus plan is too large to check (%d steps on %d "
                      "chips)", plan->nsteps, plan->nchips);
  /* Vector clocks: clock[s] is what stream s has seen of every stream; vc[i] the clock of
   * step i's stream when it ran; ev[e] the clock an event captured. */
  uint32_t *clock = calloc((size_t)(chips * chips), sizeof *clock);
  uint32_t *vc = calloc((size_t)plan->nsteps * (size_t)chips + 1, sizeof *vc);
  uint32_t *ev = calloc((size_t)plan->nevents * (size_t)chips + 1, sizeof *ev);
  Access *acc = calloc((size_t)plan->nsteps * TILE_CUDA_MAX_ARGS + 1, sizeof *acc);
  bool ok = clock && vc && ev && acc;
  if (!ok) tile_error(d, (TileLoc){0}, "out of memory checking the torus plan");
  int64_t nacc = 0;
  for (int32_t i = 0; ok && i < plan->nsteps; i++) {
    const TileTorusStep *s = &plan->steps[i];
    if (s->chip < 0 || s->chip >= chips) {
      ok = tile_error(d, (TileLoc){0}, "torus plan step %d runs on chip %d of %d", i, s->chip,
                      plan->nchips);
      break;
    }
    uint32_t *mine = clock + s->chip * chips;
    if (s->kind == TILE_TORUS_WAIT) {
      if (s->event < 0 || s->event >= plan->nevents) {
        ok = tile_error(d, (TileLoc){0}, "torus plan step %d waits for no event", i);
        break;
      }
      for (int64_t c = 0; c < chips; c++)
        if (ev[s->event * chips + c] > mine[c]) mine[c] = ev[s->event * chips + c];
    }
    mine[s->chip]++;
    memcpy(vc + (size_t)i * (size_t)chips, mine, (size_t)chips * sizeof *mine);
    if (s->kind == TILE_TORUS_COPY && s->event >= 0 && s->event < plan->nevents)
      memcpy(ev + (size_t)s->event * (size_t)chips, mine, (size_t)chips * sizeof *mine);
    Region r[TILE_CUDA_MAX_ARGS];
    int nr = step_regions(p, plan, s, r, TILE_CUDA_MAX_ARGS);
    for (int k = 0; k < nr; k++) {
      if (!region_ok(plan, &r[k])) {
        ok = tile_error(d, (TileLoc){0}, "torus plan step %d reaches outside a buffer", i);
        break;
      }
      acc[nacc++] = (Access){r[k], i, s->chip, mine[s->chip]};
    }
  }
  if (ok) qsort(acc, (size_t)nacc, sizeof *acc, by_place);
  /* Within one (buffer, chip), every earlier access that conflicts with a later one on
   * another stream must happen before it. */
  for (int64_t lo = 0; ok && lo < nacc;) {
    int64_t hi = lo;
    while (hi < nacc && acc[hi].r.buf == acc[lo].r.buf && acc[hi].r.chip == acc[lo].r.chip) hi++;
    for (int64_t j = lo; ok && j < hi; j++)
      for (int64_t i = lo; ok && i < j; i++) {
        const Access *a = &acc[i], *b = &acc[j];
        if (a->stream == b->stream || a->step == b->step || !(a->r.write || b->r.write)) continue;
        if (vc[(size_t)b->step * (size_t)chips + (size_t)a->stream] >= a->time) continue;
        if (!overlap(&a->r, &b->r)) continue;
        ok = tile_error(d, (TileLoc){0}, "torus plan: step %d (%s on chip %d) and step %d (%s "
                        "on chip %d) touch buffer '%s' of chip %d unordered", a->step,
                        tile_torus_step_name((TileTorusStepKind)plan->steps[a->step].kind),
                        a->stream, b->step,
                        tile_torus_step_name((TileTorusStepKind)plan->steps[b->step].kind),
                        b->stream, plan->bufs[a->r.buf].name, a->r.chip);
      }
    lo = hi;
  }
  free(clock);
  free(vc);
  free(ev);
  free(acc);
  return ok;
}
