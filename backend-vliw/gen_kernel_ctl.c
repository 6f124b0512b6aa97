/* Control flow of a kernel: `for` and `if` without branches.
 *
 * MIR has counted loops and no branches, so every `if` is decided at compile time. Its
 * condition must be computed from loop indices and constants only (kx_static_deps); one
 * that reads run-time data (a value loaded from memory, a loop-carried value) is refused
 * at the `if`.
 *
 * Index-set splitting. Before a `for` is emitted, every `if` inside it (at any depth)
 * whose condition depends on its index is evaluated for each iteration, and for the
 * loops between the `for` and the `if`, for each of their iterations too: the bits of
 * one iteration are its *signature*. The iteration range is cut where the signature
 * changes, and each piece is emitted as its own counted loop (a piece of one iteration
 * as straight code, its index a constant), so within a piece every `if` goes the same
 * way in every iteration: `if %i + 1 < 128` over 0..128 gives pieces 0..127 and 127,
 * `if %i >= 2` gives 0..2 and 2..128. An `if` is then decided by evaluating its
 * condition with each enclosing loop's index at the first iteration of its piece; an
 * enclosing loop was itself cut so that this holds for all of its piece's iterations.
 * A loop that would need more than KX_MAX_PIECES pieces is refused at its first such
 * `if` (the code would grow with every piece).
 *
 * Loop-carried values (`iter`) live in registers that every piece shares: sregs for
 * scalars, one vreg per tile for tensors. They are set from the initial values before
 * the first piece, read by the body, and set from the yielded values at the body's end
 * (through fresh registers first when a yielded value is another carried register, so
 * a swap does not clobber). Each machine loop steps an induction register by the step;
 * the index reaches the body as an affine form in it (gen_kernel_int.c). */
#include <stdlib.h>
#include <string.h>

#include "gen_kernel.h"
#include "tile/ops.h"

/* Evaluations of conditions one loop's splitting may take. */
enum { MAX_EVALS = 1 << 22 };

static int64_t attr_int(const TileOp *op, const char *name) {
  int64_t v = 0;
  tile_attr_get_int(&op->attrs, name, &v);
  return v;
}

static int64_t trip_count(const TileOp *op) {
  int64_t lo = attr_int(op, "lower"), hi = attr_int(op, "upper"), st = attr_int(op, "step");
  return hi > lo && st > 0 ? (hi - lo + st - 1) / st : 0;
}

/* ---- the environment for compile-time evaluation ---- */

typedef struct Env {
  const TileValue *iv[KX_MAX_LOOPS * 2];
  int64_t val[KX_MAX_LOOPS * 2];
  int n;
} Env;

/* Every enclosing loop's index at the first iteration of its piece. */
static void env_outer(const Kx *k, Env *e) {
  e->n = 0;
  for (int i = 0; i < k->nloops; i++) {
    e->iv[e->n] = k->loops[i].iv;
    e->val[e->n++] = k->loops[i].start;
  }
}

/* ---- index-set splitting ---- */

/* An `if` inside the loop being split whose condition depends on its index, with the
 * loops between (outermost first). */
typedef struct DepIf {
  const TileOp *op;
  const TileOp *inner[KX_MAX_LOOPS];
  int ninner;
} DepIf;

typedef struct Split {
  Kx *k;
  const TileValue *iv;
  DepIf *ifs;
  int n, cap;
  const TileOp *chain[KX_MAX_LOOPS];
  int depth;
  bool too_deep;
} Split;

static void find_ifs(Split *s, const TileBlock *b) {
  for (const TileOp *op = b->first; op; op = op->next) {
    if (op->kind == TILE_OP_IF && op->nopnd >= 1 && kx_static_deps(op->opnd[0].v, s->iv) == 1) {
      if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->ifs = realloc(s->ifs, sizeof *s->ifs * (size_t)s->cap);
        if (!s->ifs) abort();
      }
      DepIf *d = &s->ifs[s->n++];
      d->op = op;
      d->ninner = s->depth;
      memcpy(d->inner, s->chain, sizeof(TileOp *) * (size_t)s->depth);
    }
    bool loop = op->kind == TILE_OP_FOR;
    if (loop) {
      if (s->depth == KX_MAX_LOOPS) {
        s->too_deep = true;
        continue;
      }
      s->chain[s->depth++] = op;
    }
    for (int32_t r = 0; r < op->nregion; r++) find_ifs(s, op->region[r]);
    if (loop) s->depth--;
  }
}

/* Appends the truth of d's condition for every iteration of the loops between (in
 * order) to bits; false when it cannot be evaluated. */
static bool if_bits(const DepIf *d, Env *e, int level, uint8_t *bits, int64_t *nbits,
                    int64_t cap) {
  if (level == d->ninner) {
    int64_t x;
    if (*nbits >= cap || !kx_static(d->op->opnd[0].v, e->iv, e->val, e->n, &x)) return false;
    bits[(*nbits)++] = (uint8_t)(x != 0);
    return true;
  }
  const TileOp *f = d->inner[level];
  int64_t lo = attr_int(f, "lower"), st = attr_int(f, "step"), n = trip_count(f);
  e->iv[e->n] = f->region[0]->args[0];
  e->n++;
  for (int64_t i = 0; i < n; i++) {
    e->val[e->n - 1] = lo + i * st;
    if (!if_bits(d, e, level + 1, bits, nbits, cap)) {
      e->n--;
      return false;
    }
  }
  e->n--;
  return true;
}

typedef struct Piece {
  int64_t start, trips;
} Piece;

/* Cuts op's iteration range where the signature changes; *npieces = 0 when no `if`
 * depends on the index (one piece). */
static bool split_loop(Kx *k, const TileOp *op, Piece *pieces, int *npieces) {
  const TileValue *iv = op->region[0]->args[0];
  int64_t lo = attr_int(op, "lower"), st = attr_int(op, "step"), n = trip_count(op);
  Split s = {.k = k, .iv = iv};
  find_ifs(&s, op->region[0]);
  if (s.too_deep) {
    free(s.ifs);
    return kx_error(k, op, "loops nest more than %d deep", KX_MAX_LOOPS);
  }
  *npieces = 0;
  if (s.n == 0) {
    free(s.ifs);
    return true;
  }
  /* Bits per iteration: each if once per iteration of the loops between. */
  int64_t per = 0;
  for (int i = 0; i < s.n; i++) {
    int64_t c = 1;
    for (int j = 0; j < s.ifs[i].ninner && c <= MAX_EVALS; j++) c *= trip_count(s.ifs[i].inner[j]);
    per += c;
  }
  if (per > MAX_EVALS || per * n > MAX_EVALS) {
    free(s.ifs);
    return kx_error(k, op, "deciding the `if`s in this loop at compile time takes more than "
                           "%d evaluations of their conditions; split the loop by hand",
                    MAX_EVALS);
  }
  uint8_t *prev = calloc((size_t)per + 1, 1), *cur = calloc((size_t)per + 1, 1);
  if (!prev || !cur) abort();
  Env e;
  env_outer(k, &e);
  e.iv[e.n++] = iv;
  bool ok = true;
  int np = 0;
  for (int64_t it = 0; it < n && ok; it++) {
    e.val[e.n - 1] = lo + it * st;
    int64_t nbits = 0;
    for (int i = 0; i < s.n && ok; i++)
      if (!if_bits(&s.ifs[i], &e, 0, cur, &nbits, per))
        ok = kx_error(k, s.ifs[i].op, "the condition cannot be decided at compile time where "
                                      "the index of the loop at line %d is %lld (it divides by "
                                      "zero)", op->loc.line, (long long)(lo + it * st));
    if (!ok) break;
    if (it == 0 || memcmp(prev, cur, (size_t)per) != 0) {
      if (np == KX_MAX_PIECES) {
        ok = kx_error(k, s.ifs[0].op, "this condition changes its value too often over the "
                                      "loop's %lld iterations; the compiler peels a loop where "
                                      "its `if`s change, into at most %d pieces",
                      (long long)n, KX_MAX_PIECES);
        break;
      }
      pieces[np++] = (Piece){lo + it * st, 0};
      uint8_t *t = prev;
      prev = cur;
      cur = t;
    }
    pieces[np - 1].trips++;
  }
  free(prev);
  free(cur);
  free(s.ifs);
  *npieces = np;
  return ok;
}

/* ---- loop-carried values ---- */

typedef struct Carried {
  KEnt e;          /* the entry the body and the results see */
  int32_t n;       /* registers: 1 for a scalar, one per tile */
  int32_t *reg;
} Carried;

static bool carried_init(Kx *k, const TileOp *op, int32_t i, Carried *c) {
  const TileValue *init = op->opnd[i].v;
  const TileType *t = &init->type;
  memset(c, 0, sizeof *c);
  if (t->kind == TILE_TY_SCALAR) {
    KInt a;
    if (!kx_int(k, init, op, &a)) return false;
    c->n = 1;
    c->reg = tile_alloc(k->mod, sizeof(int32_t));
    c->reg[0] = tile_mir_sreg(k->m);
    kx_emit(k, tile_mir_inst(TILE_MOP_MOV, c->reg[0], kx_reg(k, &a), 0, 0, 0));
    KInt r = kx_const(0);
    r.reg = c->reg[0];
    r.lo = INT32_MIN;
    r.hi = INT32_MAX;
    c->e = (KEnt){.kind = KE_INT, .i = r};
    return true;
  }
  KTensor *src = kx_tensor(k, init, op);
  if (!src) return false;
  int32_t rows, cols;
  if (!kx_grid(k, op, t, true, &rows, &cols)) return false;
  c->n = rows * cols;
  c->reg = tile_alloc(k->mod, sizeof(int32_t) * (size_t)c->n);
  for (int32_t j = 0; j < c->n; j++) {
    c->reg[j] = tile_mir_vreg(k->m);
    kx_tile_into(k, c->reg[j], src, j / cols, j % cols);
  }
  KTensor *r = tile_alloc(k->mod, sizeof *r);
  r->kind = KT_REGS;
  r->elem = t->elem;
  r->rows = rows;
  r->cols = cols;
  r->vreg = c->reg;
  r->splat_reg = r->buf = r->dyn = -1;
  c->e = (KEnt){.kind = KE_TENSOR, .t = r};
  return true;
}

static bool is_carried_reg(const Carried *c, int32_t nc, int32_t reg, bool vec) {
  for (int32_t i = 0; i < nc; i++)
    if ((c[i].e.kind == KE_TENSOR) == vec)
      for (int32_t j = 0; j < c[i].n; j++)
        if (c[i].reg[j] == reg) return true;
  return false;
}

/* Sets the carried registers from the yield's values. */
static bool carried_yield(Kx *k, const TileOp *op, const TileOp *yield, Carried *c, int32_t nc) {
  if (!yield || yield->nopnd != nc)
    return kx_error(k, op, "the loop body must end in a yield of its %d carried values", (int)nc);
  kx_source(k, yield);
  /* Every source first (lazy scalars emitted, views read, a value held in another
   * carried register copied aside), so no copy below reads a register already
   * overwritten. */
  int32_t total = 0;
  for (int32_t i = 0; i < nc; i++) total += c[i].n;
  int32_t *src = calloc((size_t)total + 1, sizeof(int32_t));
  if (!src) abort();
  int32_t at = 0;
  bool ok = true;
  for (int32_t i = 0; i < nc && ok; i++) {
    const TileValue *v = yield->opnd[i].v;
    bool vec = c[i].e.kind == KE_TENSOR;
    if (!vec) {
      KInt a;
      ok = kx_int(k, v, yield, &a);
      if (ok) src[at++] = kx_reg(k, &a);
    } else {
      KTensor *t = kx_tensor(k, v, yield);
      ok = t != NULL;
      for (int32_t j = 0; ok && j < c[i].n; j++)
        src[at++] = t->kind == KT_REGS ? t->vreg[j] : kx_tile(k, t, j / t->cols, j % t->cols);
    }
  }
  at = 0;
  for (int32_t i = 0; ok && i < nc; i++) {
    bool vec = c[i].e.kind == KE_TENSOR;
    for (int32_t j = 0; j < c[i].n; j++, at++)
      if (src[at] != c[i].reg[j] && is_carried_reg(c, nc, src[at], vec)) {
        int32_t tmp = vec ? tile_mir_vreg(k->m) : tile_mir_sreg(k->m);
        kx_emit(k, tile_mir_inst(vec ? TILE_MOP_VMOV : TILE_MOP_MOV, tmp, src[at], 0, 0, 0));
        src[at] = tmp;
      }
  }
  at = 0;
  for (int32_t i = 0; ok && i < nc; i++)
    for (int32_t j = 0; j < c[i].n; j++, at++)
      if (src[at] != c[i].reg[j])
        kx_emit(k, tile_mir_inst(c[i].e.kind == KE_INT ? TILE_MOP_MOV : TILE_MOP_VMOV,
                                 c[i].reg[j], src[at], 0, 0, 0));
  free(src);
  return ok;
}

/* ---- for ---- */

static bool emit_piece(Kx *k, const TileOp *op, const Piece *p, Carried *c, int32_t nc) {
  const TileBlock *body = op->region[0];
  int64_t st = attr_int(op, "step");
  if (k->nloops == KX_MAX_LOOPS) return kx_error(k, op, "loops nest more than %d deep", KX_MAX_LOOPS);
  KLoop *L = &k->loops[k->nloops];
  *L = (KLoop){.iv = body->args[0], .start = p->start, .step = st, .trips = p->trips, .sym = -1};
  KInt index = kx_const(p->start);
  if (p->trips > 1) {
    if (k->nsym == KX_MAX_SYM)
      return kx_error(k, op, "loops with more than one iteration nest more than %d deep, the "
                             "machine's limit; unroll an inner one", KX_MAX_SYM);
    if (p->trips > INT32_MAX) return kx_error(k, op, "the loop runs more than 2^31 times");
    int l = k->nsym++;
    L->sym = l;
    kx_source(k, op);
    k->symreg[l] = kx_li(k, p->start);
    k->sym_lo[l] = p->start;
    k->sym_hi[l] = p->start + (p->trips - 1) * st;
    tile_mir_loop_begin(k->m, (int32_t)p->trips, 0);
    index = kx_const(0);
    index.coef[l] = 1;
    index.lo = k->sym_lo[l];
    index.hi = k->sym_hi[l];
  }
  k->nloops++;
  kx_set(k, body->args[0], (KEnt){.kind = KE_INT, .i = index});
  for (int32_t i = 0; i < nc; i++) kx_set(k, body->args[i + 1], c[i].e);
  const TileOp *end = NULL;
  bool ok = kx_block(k, body, &end) && (nc == 0 || carried_yield(k, op, end, c, nc));
  if (ok && L->sym >= 0) {
    kx_source(k, op);
    int l = L->sym;
    kx_emit(k, tile_mir_inst(TILE_MOP_ADDI, k->symreg[l], k->symreg[l], 0, 0, (int32_t)st));
    tile_mir_loop_end(k->m);
    k->nsym--;
  }
  k->nloops--;
  return ok;
}

bool kx_for(Kx *k, const TileOp *op) {
  int32_t nc = op->nopnd;
  if (trip_count(op) == 0) {
    for (int32_t i = 0; i < nc && i < op->nres; i++) {
      KEnt *e = kx_get(k, op->opnd[i].v);
      if (!e) return kx_error(k, op, "carried value %d has no definition", (int)i + 1);
      KEnt copy = *e;
      if (copy.kind == KE_TENSOR) copy.t->shared = true;
      kx_set(k, op->res[i], copy);
    }
    return true;
  }
  Piece *pieces = calloc(KX_MAX_PIECES + 1, sizeof *pieces);
  Carried *c = calloc((size_t)nc + 1, sizeof *c);
  if (!pieces || !c) abort();
  int np = 0;
  bool ok = split_loop(k, op, pieces, &np);
  if (ok && np == 0) {
    pieces[0] = (Piece){attr_int(op, "lower"), trip_count(op)};
    np = 1;
  }
  kx_source(k, op);
  for (int32_t i = 0; ok && i < nc; i++) ok = carried_init(k, op, i, &c[i]);
  for (int i = 0; ok && i < np; i++) ok = emit_piece(k, op, &pieces[i], c, nc);
  for (int32_t i = 0; ok && i < nc && i < op->nres; i++) kx_set(k, op->res[i], c[i].e);
  free(pieces);
  free(c);
  return ok;
}

/* ---- if ---- */

bool kx_if(Kx *k, const TileOp *op) {
  const TileValue *cond = op->opnd[0].v;
  if (kx_static_deps(cond, NULL) < 0)
    return kx_error(k, op, "the condition is computed from data known only at run time; the "
                           "machine code has no branches, so an `if` must be decided by loop "
                           "indices and constants (loops are peeled where it changes)");
  Env e;
  env_outer(k, &e);
  int64_t x;
  if (!kx_static(cond, e.iv, e.val, e.n, &x))
    return kx_error(k, op, "the condition cannot be evaluated at compile time (it divides by "
                           "zero)");
  int32_t which = x ? 0 : 1;
  if (which >= op->nregion) return true; /* no else: nothing to do */
  const TileOp *end = NULL;
  if (!kx_block(k, op->region[which], &end)) return false;
  if (op->nres == 0) return true;
  if (!end || end->nopnd != op->nres)
    return kx_error(k, op, "the taken branch must end in a yield of the if's %d results",
                    (int)op->nres);
  for (int32_t i = 0; i < op->nres; i++) {
    KEnt *v = kx_get(k, end->opnd[i].v);
    if (!v) return kx_error(k, end, "yielded value %d has no definition", (int)i + 1);
    KEnt copy = *v;
    if (copy.kind == KE_TENSOR) copy.t->shared = true; /* two values, one set of registers */
    kx_set(k, op->res[i], copy);
  }
  return true;
}
