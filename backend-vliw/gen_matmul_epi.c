/* The matmul generator's epilogue: the fused elementwise ops evaluated on each result
 * tile as it leaves the MXUs, and which of them are done elsewhere or fused first.
 *
 * In the last K step the epilogue's vector ops share the row loop with the pushes and
 * pops; with a long epilogue (gelu's tanh form) they, and the chain of latencies from
 * a tile's value through a transcendental to the value it is multiplied with, bound the
 * loop's II rather than the MXU. Because MIR registers are not renamed, a value read
 * after the transcendental (x in x * tanh(..)) must live from its definition to that
 * read in pieces of at most II cycles. So:
 *   - a bias row added to the matmul's result is added where each tile's sum starts
 *     (mxu.popacc from the row in the first K step): no vector op;
 *   - an add of a multiply, a multiply of an add of 1, and a splat scale of a fused
 *     multiply-add become one vfma each: fewer ops, a shorter chain.
 * Each changes rounding by at most an f32 rounding step or two (the sum's order changes
 * as it does with the K steps), within the tolerances elementwise ops are held to.
 *
 * Needs: the plan's epilogue list (gen_matmul_plan.c). */
#include <string.h>

#include "gen_matmul.h"
#include "tile/ops.h"

/* ---- what is done elsewhere ---- */

/* How many epilogue ops (and the group's result) read v. */
static int32_t epi_uses(const MmPlan *p, const TileValue *v) {
  int32_t n = v == p->out_value;
  for (int32_t i = 0; i < p->nepi; i++)
    for (int32_t o = 0; o < p->epi[i]->nopnd; o++) n += p->epi[i]->opnd[o].v == v;
  return n;
}

/* The epilogue op that makes v, or -1. */
static int32_t epi_def(const MmPlan *p, const TileValue *v) {
  for (int32_t i = 0; i < p->nepi; i++)
    if (p->epi[i]->res[0] == v) return i;
  return -1;
}

static bool is_f32(const TileValue *v) { return v->type.elem == TILE_ELEM_F32; }

static bool splat_of(const TileValue *v, double *s) { return tile_lower_splat(v, s); }

static bool is_one(const TileValue *v) {
  double s;
  return splat_of(v, &s) && s == 1.0;
}

/* The bias: the one reader of an f32 matmul result is an f32 add of a row (a group
 * input, or a broadcast of one). */
static void plan_bias(MmPlan *p) {
  const TileValue *mmv = p->mm->res[0];
  if (p->mm_bf16 || !is_f32(mmv) || epi_uses(p, mmv) != 1) return;
  for (int32_t i = 0; i < p->nepi; i++) {
    const TileOp *op = p->epi[i];
    int which = op->nopnd != 2 ? -1 : op->opnd[0].v == mmv ? 1 : op->opnd[1].v == mmv ? 0 : -1;
    if (which < 0) continue;
    if (op->kind != TILE_OP_ADD || !is_f32(op->res[0])) return;
    const TileValue *b = op->opnd[which].v, *row = b;
    int32_t d = epi_def(p, b);
    if (d >= 0) {
      if (p->epi[d]->kind != TILE_OP_BROADCAST) return;
      row = p->epi[d]->opnd[0].v;
    }
    int32_t r = mm_row_index(p, row);
    if (r < 0 || !is_f32(b) || !is_f32(row)) return;
    p->bias = i;
    p->bias_row = r;
    p->skip[i] = true;
    if (d >= 0 && epi_uses(p, b) == 1) p->skip[d] = true;
    return;
  }
}

/* Whether op i is an f32 add or multiply of f32 operands that nothing fused away. */
static bool f32_arith(const MmPlan *p, int32_t i) {
  const TileOp *op = p->epi[i];
  return (op->kind == TILE_OP_ADD || op->kind == TILE_OP_MUL) && !p->skip[i] &&
         is_f32(op->res[0]) && is_f32(op->opnd[0].v) && is_f32(op->opnd[1].v);
}

/* The op making operand o of op i when it can fuse into op i as `how`, else -1. */
static int32_t fusable(const MmPlan *p, int32_t i, int o, MmFuse how) {
  int32_t d = epi_def(p, p->epi[i]->opnd[o].v);
  if (d < 0 || !f32_arith(p, d) || epi_uses(p, p->epi[d]->res[0]) != 1) return -1;
  const TileOp *in = p->epi[d];
  double s;
  switch (how) {
  case MM_FUSE_MULADD:
    return in->kind == TILE_OP_MUL && !p->fuse[d] ? d : -1;
  case MM_FUSE_PLUS_ONE:
    return in->kind == TILE_OP_ADD && !p->fuse[d] &&
                   (is_one(in->opnd[0].v) || is_one(in->opnd[1].v))
               ? d
               : -1;
  case MM_FUSE_SCALED: {
    /* op i multiplies by a splat; d is a fused add whose multiply has a splat */
    if (p->fuse[d] != MM_FUSE_MULADD || !splat_of(p->epi[i]->opnd[1 - o].v, &s)) return -1;
    const TileOp *mul = p->epi[p->fuse_of[d]];
    return splat_of(mul->opnd[0].v, &s) || splat_of(mul->opnd[1].v, &s) ? d : -1;
  }
  default:
    return -1;
  }
}

static void plan_fma(MmPlan *p) {
  static const MmFuse add_forms[] = {MM_FUSE_MULADD};
  static const MmFuse mul_forms[] = {MM_FUSE_SCALED, MM_FUSE_PLUS_ONE};
  for (int32_t i = 0; i < p->nepi; i++) {
    if (!f32_arith(p, i)) continue;
    bool add = p->epi[i]->kind == TILE_OP_ADD;
    const MmFuse *forms = add ? add_forms : mul_forms;
    int nforms = add ? 1 : 2;
    for (int f = 0; f < nforms && !p->fuse[i]; f++)
      for (int o = 0; o < 2 && !p->fuse[i]; o++) {
        int32_t d = fusable(p, i, o, forms[f]);
        if (d < 0) continue;
        p->fuse[i] = (uint8_t)forms[f];
        p->fuse_of[i] = d;
        p->skip[d] = true;
      }
  }
}

void mm_plan_folds(MmPlan *p) {
  p->bias = p->bias_row = -1;
  memset(p->fuse, 0, sizeof p->fuse);
  memset(p->skip, 0, sizeof p->skip);
  for (int32_t i = 0; i < MM_MAX_EPI; i++) p->fuse_of[i] = -1;
  plan_bias(p);
  plan_fma(p);
}

/* ---- the operands of a fused op ---- */

/* A vfma operand: a value, a constant, or a value times a constant (`scale`). */
typedef struct FmaOperand {
  const TileValue *v; /* NULL: the constant `bits` */
  uint32_t bits;
  bool scaled;
  uint32_t scale;
} FmaOperand;

static FmaOperand value_opnd(const TileValue *v) {
  double s;
  if (splat_of(v, &s)) return (FmaOperand){.bits = tile_lower_lane_bits(TILE_ELEM_F32, s)};
  return (FmaOperand){.v = v};
}

/* The operand of op that is not the result of op `in`. */
static const TileValue *other_opnd(const TileOp *op, const TileOp *in) {
  return op->opnd[op->opnd[0].v == in->res[0] ? 1 : 0].v;
}

/* Op i's vfma as a * b + c. */
static void fma_operands(const MmPlan *p, int32_t i, FmaOperand f[3]) {
  const TileOp *op = p->epi[i], *in = p->epi[p->fuse_of[i]];
  const TileValue *other = other_opnd(op, in);
  double s, k;
  switch ((MmFuse)p->fuse[i]) {
  case MM_FUSE_MULADD:
    f[0] = value_opnd(in->opnd[0].v);
    f[1] = value_opnd(in->opnd[1].v);
    f[2] = value_opnd(other);
    break;
  case MM_FUSE_PLUS_ONE:
    f[0] = f[2] = value_opnd(other);
    f[1] = value_opnd(in->opnd[is_one(in->opnd[0].v) ? 1 : 0].v);
    break;
  default: { /* MM_FUSE_SCALED: (z * k + c) * s = z * (k * s) + c * s */
    const TileOp *mul = p->epi[p->fuse_of[p->fuse_of[i]]];
    splat_of(other, &s);
    int ko = splat_of(mul->opnd[0].v, &k) ? 0 : 1;
    splat_of(mul->opnd[ko].v, &k);
    f[0] = value_opnd(mul->opnd[1 - ko].v);
    f[1] = (FmaOperand){.bits = tile_lower_lane_bits(TILE_ELEM_F32, k * s)};
    f[2] = value_opnd(other_opnd(in, mul));
    f[2].scaled = true;
    f[2].scale = tile_lower_lane_bits(TILE_ELEM_F32, s);
    break;
  }
  }
}

/* ---- constants ---- */

/* Constants held in vregs through the whole nest: few, so the row loops keep registers
 * for their own values. */
enum { MM_MAX_CONSTS = 8 };

static void const_add(TileMir *m, TileEwConsts *k, uint32_t bits) {
  for (int32_t i = 0; i < k->n; i++)
    if (k->bits[i] == bits) return;
  if (k->n >= MM_MAX_CONSTS) return;
  int32_t d = tile_mir_vreg(m);
  tile_mir_add(m, tile_mir_inst(TILE_MOP_VLI, d, 0, 0, 0, (int32_t)bits));
  k->bits[k->n] = bits;
  k->vreg[k->n++] = d;
}

void mm_epilogue_consts(TileLowerCtx *cx, MmPlan *p) {
  TileMir *m = tile_lower_mir(cx);
  memset(&p->k, 0, sizeof p->k);
  for (int32_t i = 0; i < p->nepi && p->k.n < MM_MAX_CONSTS; i++) {
    if (p->skip[i] || p->epi[i]->kind == TILE_OP_BROADCAST) continue;
    if (!p->fuse[i]) {
      tile_ew_consts(m, p->epi[i], &p->k);
      continue;
    }
    FmaOperand f[3];
    fma_operands(p, i, f);
    for (int j = 0; j < 3; j++) {
      if (!f[j].v) const_add(m, &p->k, f[j].bits);
      if (f[j].scaled) const_add(m, &p->k, f[j].scale);
    }
  }
}

/* ---- the epilogue on one tile ---- */

typedef struct EpiVal {
  const TileValue *v;
  int32_t vreg; /* -1: a splat */
} EpiVal;

/* A tile's values so far, and where its rows are. */
typedef struct EpiTile {
  TileMir *m;
  const MmPlan *p;
  EpiVal vals[MM_MAX_EPI + MM_MAX_ROWS + MM_MAX_TILES + 1];
  int32_t n;
  const MmEpiAt *at;
} EpiTile;

static int32_t round_bf16(TileMir *m, int32_t v) {
  int32_t r = tile_mir_vreg(m);
  tile_mir_add(m, tile_mir_inst(TILE_MOP_VRNDBF, r, v, 0, 0, 0));
  return r;
}

static bool lookup(const EpiTile *e, const TileValue *v, int32_t *vreg) {
  for (int32_t i = 0; i < e->n; i++)
    if (e->vals[i].v == v) {
      *vreg = e->vals[i].vreg;
      return true;
    }
  return false;
}

/* The vreg of value v: computed already, a row (loaded now, with sublane stride 0
 * repeating it down the tile), a tile operand's tile (loaded now) or a splat (-1). */
static int32_t value(EpiTile *e, const TileValue *v) {
  const MmPlan *p = e->p;
  const MmEpiAt *at = e->at;
  int32_t r;
  double s;
  if (lookup(e, v, &r)) return r;
  if (splat_of(v, &s)) return -1;
  int32_t ri = mm_row_index(p, v), ti = mm_tile_index(p, v), addr, stride;
  const MmInput *in;
  int64_t off;
  if (ri >= 0) { /* a row repeats down the tile (sublane stride 0) */
    in = &p->rows[ri];
    addr = at->row_addr[ri];
    stride = at->zero_stride;
    off = at->tcol * in->esize;
  } else { /* a tile operand's rows lie a pitch apart, tile_off before the tile */
    in = &p->tiles[ti];
    addr = at->tile_addr[ti];
    stride = at->tile_pitch[ti];
    off = at->tcol * in->esize + at->tile_off[ti];
  }
  r = tile_mir_vreg(e->m);
  TileMirInst ld = tile_mir_inst(in->esize == 2 ? TILE_MOP_VLDBF : TILE_MOP_VLD, r, addr,
                                 stride, 0, (int32_t)off);
  tile_mir_mem(&ld, in->vmem, TILE_MIR_READ, 0);
  tile_mir_add(e->m, ld);
  e->vals[e->n++] = (EpiVal){v, r};
  return r;
}

/* A constant's vreg: the one made before the loops, or a `vli` here. */
static int32_t const_vreg(EpiTile *e, uint32_t bits) {
  for (int32_t i = 0; i < e->p->k.n; i++)
    if (e->p->k.bits[i] == bits) return e->p->k.vreg[i];
  int32_t r = tile_mir_vreg(e->m);
  tile_mir_add(e->m, tile_mir_inst(TILE_MOP_VLI, r, 0, 0, 0, (int32_t)bits));
  return r;
}

static int32_t fma_emit(EpiTile *e, int32_t i) {
  FmaOperand f[3];
  fma_operands(e->p, i, f);
  int32_t r[3];
  for (int j = 0; j < 3; j++) {
    r[j] = f[j].v ? value(e, f[j].v) : -1;
    if (r[j] < 0) {
      double s = 0;
      if (f[j].v) splat_of(f[j].v, &s);
      r[j] = const_vreg(e, f[j].v ? tile_lower_lane_bits(TILE_ELEM_F32, s) : f[j].bits);
    }
    if (f[j].scaled) {
      int32_t d = tile_mir_vreg(e->m);
      tile_mir_add(e->m, tile_mir_inst(TILE_MOP_VMULF, d, r[j], const_vreg(e, f[j].scale), 0, 0));
      r[j] = d;
    }
  }
  int32_t d = tile_mir_vreg(e->m);
  tile_mir_add(e->m, tile_mir_inst(TILE_MOP_VFMAF, d, r[0], r[1], r[2], 0));
  return d;
}

/* Whether the epilogue's result is op's, read by no later epilogue op. */
static bool only_stored(const MmPlan *p, int32_t i) {
  if (p->epi[i]->res[0] != p->out_value) return false;
  for (int32_t j = i + 1; j < p->nepi; j++)
    for (int32_t o = 0; o < p->epi[j]->nopnd; o++)
      if (p->epi[j]->opnd[o].v == p->out_value) return false;
  return true;
}

int32_t mm_epilogue_emit(TileLowerCtx *cx, const MmPlan *p, int32_t acc, const MmEpiAt *at) {
  TileMir *m = tile_lower_mir(cx);
  EpiTile e = {.m = m, .p = p, .at = at};
  e.vals[e.n++] = (EpiVal){p->mm->res[0], p->mm_bf16 && p->nepi ? round_bf16(m, acc) : acc};
  for (int32_t i = 0; i < p->nepi; i++) {
    const TileOp *op = p->epi[i];
    tile_mir_set_source(m, tile_op_name(op->kind), op->loc);
    /* the bias is in the sum already: the add's value is the matmul's */
    if (i == p->bias) {
      e.vals[e.n++] = (EpiVal){op->res[0], e.vals[0].vreg};
      continue;
    }
    if (p->skip[i]) continue;
    int32_t res;
    if (p->fuse[i]) {
      res = fma_emit(&e, i);
    } else {
      int32_t in[8];
      for (int32_t j = 0; j < op->nopnd && j < 8; j++) in[j] = value(&e, op->opnd[j].v);
      /* tile_ew_emit rounds a bf16 result itself. A convert of f32 to bf16 whose result
       * is only stored needs no op: vst.bf16 rounds the same way (nearest even). */
      if (op->kind == TILE_OP_BROADCAST) res = in[0];
      else if (op->kind == TILE_OP_CONVERT && p->out_bf16 && in[0] >= 0 &&
               op->opnd[0].v->type.elem == TILE_ELEM_F32 && only_stored(p, i))
        res = in[0];
      else res = tile_ew_emit_mir(m, op, in, &p->k);
    }
    e.vals[e.n++] = (EpiVal){op->res[0], res};
  }
  int32_t out;
  if (!lookup(&e, p->out_value, &out) || out < 0) {
    /* The result is a splat of its own: materialize it. */
    double s = 0;
    tile_lower_splat(p->out_value, &s);
    float f = (float)s;
    int32_t bits;
    memcpy(&bits, &f, sizeof bits);
    out = tile_mir_vreg(m);
    tile_mir_add(m, tile_mir_inst(TILE_MOP_VLI, out, 0, 0, 0, bits));
  }
  return out;
}
