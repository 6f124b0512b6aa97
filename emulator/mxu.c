/* The matrix units: dim x dim systolic arrays holding bf16 weights.
 *
 * mxu.ldw c, va, g puts bf(V[a]) into weight rows g*sublanes .. g*sublanes+sublanes-1 of
 * unit c; pushes may use them from lat.mxu_weights cycles on. mxu.push c, va multiplies
 * bf(V[a]) (sublanes x dim) by the weights and queues the f32 result on the unit's
 * result FIFO, ready lat.mxu_result cycles later; the unit takes one push every
 * mxu_push_cycles cycles. mxu.pop takes the oldest result, which must be ready.
 * Weights are double-buffered: a push uses the weights as they stand when it issues, so
 * loading new weights right after a push does not change its result.
 *
 * Numerics: both inputs are bf16 (rounded to nearest even), every product is formed in
 * f32 (exact: 8-bit by 8-bit significands), and each output is accumulated in f32 from
 * +0.0 in order k = 0, 1, ..., dim-1. The kernel keeps the rounded weights as f32 and is
 * written with vector types so the compiler emits wide SIMD; it is compiled for AVX-512
 * and AVX2 next to the baseline and picked at run time. Every variant performs the same
 * operations in the same order (no fused multiply-add), so results are bit-identical
 * on every host. */
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

/* ---- the kernel ---- */

/* One output block of RB rows x NB vectors of VT, accumulated over all k. */
#define MXU_KERNEL(name, attr, VT, VW, RB, NB)                                         \
  attr static void name(const float *x, const float *w, float *out, int rows, int dim) { \
    for (int i0 = 0; i0 < rows; i0 += RB)                                                \
      for (int j0 = 0; j0 < dim; j0 += NB * VW) {                                        \
        VT acc[RB][NB];                                                                  \
        for (int i = 0; i < RB; i++)                                                     \
          for (int v = 0; v < NB; v++) acc[i][v] = (VT){0};                              \
        for (int k = 0; k < dim; k++) {                                                  \
          VT wv[NB];                                                                     \
          for (int v = 0; v < NB; v++)                                                   \
            memcpy(&wv[v], w + (size_t)k * dim + j0 + v * VW, sizeof(VT));               \
          for (int i = 0; i < RB; i++) {                                                 \
            float xk = x[(size_t)(i0 + i) * dim + k];                                    \
            for (int v = 0; v < NB; v++) acc[i][v] += xk * wv[v];                        \
          }                                                                              \
        }                                                                                \
        for (int i = 0; i < RB; i++)                                                     \
          for (int v = 0; v < NB; v++)                                                   \
            memcpy(out + (size_t)(i0 + i) * dim + j0 + v * VW, &acc[i][v], sizeof(VT));  \
      }                                                                                  \
  }

typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EMU_X86 1
MXU_KERNEL(kernel_avx512, __attribute__((target("avx512f"))), v16f, 16, 8, 2)
MXU_KERNEL(kernel_avx2, __attribute__((target("avx2"))), v8f, 8, 4, 2)
#endif
MXU_KERNEL(kernel_base, , v4f, 4, 4, 2)

/* Any shape, the same order of operations. */
static void kernel_scalar(const float *x, const float *w, float *out, int rows, int dim) {
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < dim; j++) {
      float acc = 0.0f;
      for (int k = 0; k < dim; k++) acc += x[(size_t)i * dim + k] * w[(size_t)k * dim + j];
      out[(size_t)i * dim + j] = acc;
    }
}

void emu_mxu_kernel(const float *x, const float *w, float *out, int rows, int dim) {
#ifdef EMU_X86
  if (rows % 8 == 0 && dim % 32 == 0 && __builtin_cpu_supports("avx512f")) {
    kernel_avx512(x, w, out, rows, dim);
    return;
  }
  if (rows % 4 == 0 && dim % 16 == 0 && __builtin_cpu_supports("avx2")) {
    kernel_avx2(x, w, out, rows, dim);
    return;
  }
#endif
  if (rows % 4 == 0 && dim % 8 == 0) kernel_base(x, w, out, rows, dim);
  else kernel_scalar(x, w, out, rows, dim);
}

/* ---- units ---- */

bool emu_mxu_init(EmuChip *c) {
  const Emu *e = c->emu;
  int n = e->t.mxu_count;
  c->mxu = calloc((size_t)(n ? n : 1), sizeof *c->mxu);
  if (!c->mxu) return false;
  c->scratch = malloc((size_t)e->vlen * sizeof *c->scratch);
  if (!c->scratch) return false;
  size_t dim = (size_t)e->t.mxu_dim;
  for (int u = 0; u < n; u++) {
    c->mxu[u].last_push = INT64_MIN / 2;
    if (e->functional && !(c->mxu[u].w = calloc(dim * dim, sizeof(float)))) return false;
  }
  return true;
}

void emu_mxu_free(EmuChip *c) {
  if (!c->mxu) return;
  for (int u = 0; u < c->emu->t.mxu_count; u++) {
    EmuMxu *m = &c->mxu[u];
    for (int i = 0; i < m->count; i++) free(m->fifo[(m->head + i) & (m->cap - 1)].data);
    for (int i = 0; i < m->nspare; i++) free(m->spare[i]);
    free(m->fifo);
    free(m->spare);
    free(m->w);
  }
  free(c->mxu);
  free(c->scratch);
  c->mxu = NULL;
}

static bool fifo_push(EmuMxu *m, EmuMxuResult r) {
  if (m->count == m->cap) {
    int nc = m->cap ? m->cap * 2 : 8;
    EmuMxuResult *n = malloc((size_t)nc * sizeof *n);
    if (!n) return false;
    for (int i = 0; i < m->count; i++) n[i] = m->fifo[(m->head + i) & (m->cap - 1)];
    free(m->fifo);
    m->fifo = n;
    m->cap = nc;
    m->head = 0;
  }
  m->fifo[(m->head + m->count) & (m->cap - 1)] = r; /* cap is a power of two */
  m->count++;
  return true;
}

static float *result_buf(EmuMxu *m, size_t n) {
  if (m->nspare > 0) return m->spare[--m->nspare];
  return malloc(n * sizeof(float));
}

static void result_free(EmuMxu *m, float *p) {
  if (!p) return;
  if (m->nspare == m->spare_cap) {
    int nc = m->spare_cap ? m->spare_cap * 2 : 8;
    float **n = realloc(m->spare, (size_t)nc * sizeof *n);
    if (!n) {
      free(p);
      return;
    }
    m->spare = n;
    m->spare_cap = nc;
  }
  m->spare[m->nspare++] = p;
}

static bool oom(EmuChip *c, int64_t t) {
  c->emu->oom = true;
  return emu_fault(c, TILE_EMU_FAULT_NONE, t, "out of memory");
}

static bool push(EmuChip *c, EmuMxu *m, const EmuOp *op, int64_t t, bool functional) {
  const Emu *e = c->emu;
  int64_t busy_until = m->last_push + e->t.mxu_push_cycles;
  if (t < busy_until) {
    if (e->strict)
      return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                       "mxu.push to mxu%d while it is busy with the push of cycle %lld until cycle "
                       "%lld (mxu.push_cycles %d)",
                       op->c, (long long)m->last_push, (long long)busy_until,
                       e->t.mxu_push_cycles);
    c->st.hazards_ignored++;
  }
  if (t < m->w_ready) {
    if (e->strict)
      return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                       "mxu.push to mxu%d uses weights loaded at cycle %lld that are usable only "
                       "from cycle %lld (lat.mxu_weights %d)",
                       op->c, (long long)m->w_issue, (long long)m->w_ready,
                       e->t.latency[TILE_LAT_MXU_WEIGHTS]);
    c->st.hazards_ignored++;
  }
  EmuMxuResult r = {.ready = t + op->lat, .push = t, .data = NULL};
  if (functional) {
    size_t n = (size_t)e->vlen;
    if (!(r.data = result_buf(m, n))) return oom(c, t);
    const EmuLane *src = c->v + (size_t)op->a * n;
    float *x = &c->scratch[0].f;
    for (size_t i = 0; i < n; i++) x[i] = emu_bf16_round(src[i].f);
    emu_mxu_kernel(x, m->w, r.data, e->t.vreg_sublanes, e->t.mxu_dim);
  }
  if (!fifo_push(m, r)) {
    free(r.data);
    return oom(c, t);
  }
  m->last_push = t;
  if (c->tracing) {
    EmuTraceRec tr = {.start = t, .end = t + e->t.mxu_push_cycles, .a = op->c,
                      .track = TR_MXU0 + op->c, .kind = TK_PUSH};
    emu_trace_add(&c->tr, &tr);
  }
  return true;
}

static bool pop(EmuChip *c, EmuMxu *m, const EmuOp *op, int64_t t, bool functional,
                EmuLane *dst) {
  const Emu *e = c->emu;
  const char *mn = tile_mop_info[op->op].mnemonic;
  size_t n = (size_t)e->vlen;
  if (m->count == 0) {
    if (e->strict)
      return emu_fault(c, TILE_EMU_FAULT_HAZARD, t, "%s from mxu%d, whose result FIFO is empty",
                       mn, op->c);
    c->st.hazards_ignored++;
    if (functional) {
      /* no result: zeros (pop) or V[a] unchanged (popacc) */
      if (op->op == TILE_MOP_MXU_POPACC) memmove(dst, c->v + (size_t)op->a * n, n * sizeof *dst);
      else memset(dst, 0, n * sizeof *dst);
    }
    return true;
  }
  EmuMxuResult *r = &m->fifo[m->head];
  if (r->ready > t) {
    if (e->strict)
      return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                       "%s from mxu%d before the result of the push at cycle %lld is ready at "
                       "cycle %lld (lat.mxu_result %d)",
                       mn, op->c, (long long)r->push, (long long)r->ready,
                       e->t.latency[TILE_LAT_MXU_RESULT]);
    c->st.hazards_ignored++;
  }
  if (functional) {
    const float *res = r->data;
    if (op->op == TILE_MOP_MXU_POPACC) {
      const EmuLane *acc = c->v + (size_t)op->a * n;
      for (size_t i = 0; i < n; i++) dst[i].f = acc[i].f + res[i];
    } else {
      memcpy(dst, res, n * sizeof *dst);
    }
  }
  result_free(m, r->data);
  m->head = (m->head + 1) & (m->cap - 1);
  m->count--;
  return true;
}

bool emu_mxu_exec(EmuChip *c, const EmuOp *op, int64_t t, bool functional, EmuLane *dst) {
  const Emu *e = c->emu;
  EmuMxu *m = &c->mxu[op->c];
  switch (op->op) {
  case TILE_MOP_MXU_LDW: {
    if (functional) {
      int rows = e->t.vreg_sublanes, dim = e->t.mxu_dim;
      const EmuLane *src = c->v + (size_t)op->a * (size_t)e->vlen;
      float *w = m->w + (size_t)op->imm * (size_t)rows * (size_t)dim;
      for (size_t i = 0; i < (size_t)rows * (size_t)dim; i++) w[i] = emu_bf16_round(src[i].f);
    }
    int64_t ready = t + op->lat;
    if (ready > m->w_ready) m->w_ready = ready;
    m->w_issue = t;
    return true;
  }
  case TILE_MOP_MXU_PUSH: return push(c, m, op, t, functional);
  case TILE_MOP_MXU_POP:
  case TILE_MOP_MXU_POPACC: return pop(c, m, op, t, functional, dst);
  default: return true;
  }
}
