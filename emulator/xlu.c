/* The cross-lane unit: reductions across lanes or sublanes, rotations, and the
 * lanes x lanes transpose buffer.
 *
 * Reductions run in a fixed order (lane 0, 1, ... or sublane 0, 1, ...), starting from
 * the first element, in f32 with one rounding per add; the result is broadcast along the
 * reduced axis. max propagates NaN as vmax.f does. Rotations move whole lanes or
 * sublanes; the amount is taken modulo the axis length (negative amounts rotate the
 * other way).
 *
 * Transpose: xlu.trpush va, g writes V[a] into rows g*sublanes .. of the buffer;
 * xlu.trpop vd, g reads rows g*sublanes .. of the transposed buffer, so
 * V[d][s][l] = buffer[l][g*sublanes + s]. The buffer is written when a push lands
 * (lat.xlu after it issues): a pop before the last push has landed is a hazard. */
#include <math.h>
#include <string.h>

#include "emu_internal.h"

static inline float max_nan(float a, float b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return signbit(a) ? b : a;
  return a > b ? a : b;
}

static int64_t mod(int64_t a, int64_t n) {
  int64_t r = a % n;
  return r < 0 ? r + n : r;
}

bool emu_xlu_exec(EmuChip *c, const EmuOp *op, int64_t t, bool functional, EmuLane *dst) {
  const Emu *e = c->emu;
  const int rows = e->t.vreg_sublanes, lanes = e->t.vreg_lanes;
  if (op->op == TILE_MOP_XTRPUSH) {
    int64_t land = t + op->lat;
    if (land > c->tr_ready) c->tr_ready = land;
    c->tr_issue = t;
    if (functional) {
      const EmuLane *a = c->v + (size_t)op->a * (size_t)e->vlen;
      memcpy(c->trbuf + (size_t)op->imm * (size_t)rows * (size_t)lanes, a,
             (size_t)e->vlen * sizeof(float));
    }
    return true;
  }
  if (op->op == TILE_MOP_XTRPOP && t < c->tr_ready) {
    if (e->strict)
      return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                       "xlu.trpop reads the transpose buffer before the xlu.trpush of cycle %lld "
                       "lands at cycle %lld",
                       (long long)c->tr_issue, (long long)c->tr_ready);
    c->st.hazards_ignored++;
  }
  if (!functional) return true;
  const EmuLane *a = c->v + (size_t)op->a * (size_t)e->vlen;
  /* dst may be a itself (strict mode writes in place): work from a copy */
  EmuLane *x = c->scratch;
  if (op->op != TILE_MOP_XTRPOP) memcpy(x, a, (size_t)e->vlen * sizeof *x);
  switch (op->op) {
  case TILE_MOP_XLSUM:
  case TILE_MOP_XLMAX:
    for (int s = 0; s < rows; s++) {
      const EmuLane *row = x + (size_t)s * lanes;
      float acc = row[0].f;
      for (int l = 1; l < lanes; l++)
        acc = op->op == TILE_MOP_XLSUM ? acc + row[l].f : max_nan(acc, row[l].f);
      for (int l = 0; l < lanes; l++) dst[(size_t)s * lanes + l].f = acc;
    }
    break;
  case TILE_MOP_XSSUM:
  case TILE_MOP_XSMAX:
    for (int l = 0; l < lanes; l++) {
      float acc = x[l].f;
      for (int s = 1; s < rows; s++) {
        float v = x[(size_t)s * lanes + l].f;
        acc = op->op == TILE_MOP_XSSUM ? acc + v : max_nan(acc, v);
      }
      for (int s = 0; s < rows; s++) dst[(size_t)s * lanes + l].f = acc;
    }
    break;
  case TILE_MOP_XLROT: {
    int64_t k = mod(op->imm, lanes);
    for (int s = 0; s < rows; s++)
      for (int l = 0; l < lanes; l++)
        dst[(size_t)s * lanes + (size_t)mod(l + k, lanes)] = x[(size_t)s * lanes + l];
    break;
  }
  case TILE_MOP_XSROT: {
    int64_t k = mod(op->imm, rows);
    for (int s = 0; s < rows; s++)
      memcpy(dst + (size_t)mod(s + k, rows) * lanes, x + (size_t)s * lanes,
             (size_t)lanes * sizeof *dst);
    break;
  }
  case TILE_MOP_XTRPOP: {
    const int64_t g0 = (int64_t)op->imm * rows;
    for (int s = 0; s < rows; s++)
      for (int l = 0; l < lanes; l++)
        dst[(size_t)s * lanes + l].f = c->trbuf[(size_t)l * lanes + (size_t)(g0 + s)];
    break;
  }
  default: break;
  }
  return true;
}
