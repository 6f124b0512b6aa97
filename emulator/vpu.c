/* The vector unit: element-wise ops on sublanes x lanes registers of 32-bit lanes, the
 * transcendentals, and vector loads and stores between registers and VMEM.
 *
 * Numerics are IEEE f32 with round-to-nearest-even, one rounding per op; only vfma.f
 * fuses (fmaf). This file is compiled with -ffp-contract=off so the compiler never fuses
 * a multiply and an add on its own. Transcendentals are our own (vmath.c: within 1 ulp,
 * the same bits on every host). max and min propagate NaN (the first NaN operand) and
 * order -0 below +0.
 *
 * Vector memory: sublane s of a register lives at byte address S[a] + imm + s * S[b]
 * (the stride S[b] is a signed 32-bit byte count), lanes elements of 4 bytes (f32) or
 * 2 bytes (bf16, widened to f32 on load, rounded to nearest even on store). Addresses
 * must be aligned to the element size. A store's bytes land lat.vstore cycles after it
 * issues; a load of them before then is a hazard. */
#include <math.h>
#include <string.h>

#include "emu_internal.h"

uint16_t emu_bf16_bits(float x) {
  float r = emu_bf16_round(x);
  uint32_t u;
  memcpy(&u, &r, 4);
  return (uint16_t)(u >> 16);
}

float emu_bf16_widen(uint16_t b) { return emu_f32_from_bits((uint32_t)b << 16); }

/* max and min with NaN propagation (the first NaN operand) and -0 below +0, written as
 * selects on bits so the element loops vectorize: for equal operands the result is
 * a & b (max: +0 from +-0) or a | b (min: -0), the same value for any other pair. */
static inline float fmax_nan(float a, float b) {
  const uint32_t ua = emu_f32_bits(a), ub = emu_f32_bits(b);
  uint32_t r = emu_select_bits(a > b, ua, ub);
  r = emu_select_bits(a == b, ua & ub, r);
  r = emu_select_bits(b != b, ub, r);
  return emu_f32_from_bits(emu_select_bits(a != a, ua, r));
}

static inline float fmin_nan(float a, float b) {
  const uint32_t ua = emu_f32_bits(a), ub = emu_f32_bits(b);
  uint32_t r = emu_select_bits(a < b, ua, ub);
  r = emu_select_bits(a == b, ua | ub, r);
  r = emu_select_bits(b != b, ub, r);
  return emu_f32_from_bits(emu_select_bits(a != a, ua, r));
}

static inline int32_t f2i_rne(float x) {
  if (x != x) return 0;
  if (x >= 2147483648.0f) return INT32_MAX;
  if (x < -2147483648.0f) return INT32_MIN;
  return (int32_t)rintf(x); /* the default rounding mode: nearest, ties to even */
}

/* Element-wise loops, written so the compiler vectorizes them. */
#define MAP1(expr)                                                     \
  for (int i = 0; i < n; i++) {                                        \
    EmuLane x = A[i], r;                                               \
    expr;                                                              \
    D[i] = r;                                                          \
  }
#define MAP2(expr)                                                     \
  for (int i = 0; i < n; i++) {                                        \
    EmuLane x = A[i], y = B[i], r;                                     \
    expr;                                                              \
    D[i] = r;                                                          \
  }

void emu_vpu_exec(EmuChip *c, const EmuOp *op, EmuLane *D, int64_t t) {
  const Emu *e = c->emu;
  const int n = e->vlen;
  const EmuLane *A = c->v + (size_t)op->a * (size_t)n;
  const EmuLane *B = c->v + (size_t)op->b * (size_t)n;
  const EmuLane *C = c->v + (size_t)op->c * (size_t)n;
  switch (op->op) {
  case TILE_MOP_VADDF: MAP2(r.f = x.f + y.f) break;
  case TILE_MOP_VSUBF: MAP2(r.f = x.f - y.f) break;
  case TILE_MOP_VMULF: MAP2(r.f = x.f * y.f) break;
  case TILE_MOP_VMAXF: MAP2(r.f = fmax_nan(x.f, y.f)) break;
  case TILE_MOP_VMINF: MAP2(r.f = fmin_nan(x.f, y.f)) break;
  case TILE_MOP_VFMAF:
    for (int i = 0; i < n; i++) D[i].f = fmaf(A[i].f, B[i].f, C[i].f);
    break;
  case TILE_MOP_VADDI: MAP2(r.u = x.u + y.u) break;
  case TILE_MOP_VSUBI: MAP2(r.u = x.u - y.u) break;
  case TILE_MOP_VMULI: MAP2(r.u = x.u * y.u) break;
  case TILE_MOP_VAND: MAP2(r.u = x.u & y.u) break;
  case TILE_MOP_VOR: MAP2(r.u = x.u | y.u) break;
  case TILE_MOP_VXOR: MAP2(r.u = x.u ^ y.u) break;
  case TILE_MOP_VCMPLTF: MAP2(r.i = x.f < y.f) break;
  case TILE_MOP_VCMPLEF: MAP2(r.i = x.f <= y.f) break;
  case TILE_MOP_VCMPEQF: MAP2(r.i = x.f == y.f) break;
  case TILE_MOP_VCMPLTI: MAP2(r.i = x.i < y.i) break;
  case TILE_MOP_VCMPEQI: MAP2(r.i = x.i == y.i) break;
  case TILE_MOP_VSEL:
    for (int i = 0; i < n; i++) D[i] = C[i].u != 0 ? A[i] : B[i];
    break;
  case TILE_MOP_VMOV: memmove(D, A, (size_t)n * sizeof *D); break;
  case TILE_MOP_VBCAST:
  case TILE_MOP_VLI: {
    uint32_t bits = op->op == TILE_MOP_VLI ? (uint32_t)op->imm : (uint32_t)c->s[op->a];
    for (int i = 0; i < n; i++) D[i].u = bits;
    break;
  }
  case TILE_MOP_VIOTA: {
    const int lanes = e->t.vreg_lanes;
    for (int i = 0; i < n; i++) {
      int s = i / lanes, l = i % lanes;
      D[i].i = op->imm == 0 ? l : op->imm == 1 ? s : i;
    }
    break;
  }
  case TILE_MOP_VCVTIF: MAP1(r.f = (float)x.i) break;
  case TILE_MOP_VCVTFI: MAP1(r.i = f2i_rne(x.f)) break;
  case TILE_MOP_VRNDBF: MAP1(r.f = emu_bf16_round(x.f)) break;
  case TILE_MOP_VEXP: emu_vmath(EMU_MATH_EXP, &A->f, &D->f, n); break;
  case TILE_MOP_VLOG: emu_vmath(EMU_MATH_LOG, &A->f, &D->f, n); break;
  case TILE_MOP_VRSQRT: emu_vmath(EMU_MATH_RSQRT, &A->f, &D->f, n); break;
  case TILE_MOP_VTANH: emu_vmath(EMU_MATH_TANH, &A->f, &D->f, n); break;
  case TILE_MOP_VRCP: emu_vmath(EMU_MATH_RCP, &A->f, &D->f, n); break;
  default: break;
  }
  (void)t;
}

/* ---- vector loads and stores ---- */

bool emu_vmem_move(EmuChip *c, const EmuOp *op, int64_t base, int64_t stride, EmuLane *dst) {
  const Emu *e = c->emu;
  const int rows = e->t.vreg_sublanes, lanes = e->t.vreg_lanes;
  const bool bf = op->op == TILE_MOP_VLDBF || op->op == TILE_MOP_VSTBF;
  const bool store = op->op == TILE_MOP_VST || op->op == TILE_MOP_VSTBF;
  const size_t rowb = (size_t)lanes * (bf ? 2 : 4);
  EmuMem *m = &c->mem[TILE_SPACE_VMEM];
  uint16_t half[4096];
  for (int s = 0; s < rows; s++) {
    int64_t addr = base + s * stride;
    if (store) {
      const EmuLane *src = c->v + ((size_t)op->d * (size_t)rows + (size_t)s) * (size_t)lanes;
      if (bf) {
        for (int l = 0; l < lanes; l++) half[l] = emu_bf16_bits(src[l].f);
        if (!emu_mem_write(m, addr, half, rowb)) return false;
      } else if (!emu_mem_write(m, addr, src, rowb)) {
        return false;
      }
    } else {
      EmuLane *out = dst + (size_t)s * (size_t)lanes;
      if (bf) {
        emu_mem_read(m, addr, half, rowb);
        for (int l = 0; l < lanes; l++) out[l].f = emu_bf16_widen(half[l]);
      } else {
        emu_mem_read(m, addr, out, rowb);
      }
    }
  }
  return true;
}
