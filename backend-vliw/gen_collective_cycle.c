/* A collective_permute along the cycle through two mesh axes (its `cycle` attribute,
 * tile_mesh_cycle_pos): the ring of its axis becomes that cycle, so the permute's
 * schedule (hops round a ring, gen_collective.c) runs unchanged on it.
 *
 * The cycle walks an x-by-y grid of positions (x rows on the permute's axis, y columns
 * on the cycle axis, x even; for x odd the axes swap roles): row 0 left to right, the
 * rows below it snaking over columns 1 .. y - 1, then column 0 back up to row 0. Each
 * chip finds the chip after it in each direction from its own coordinates: the step
 * it takes is one of four (down, up, right, left: +-one position on an axis, a chip-id
 * stride), chosen by which of a few facts about its row and column hold. The steps'
 * conditions are the table below, each a conjunction of those facts, and exactly one
 * holds on every chip (ir/module.c gives the positions; tests/e2e/test_permute_cycle.py
 * walks the cycle on the emulator). */
#include "gen_collective_int.h"

/* The facts a step is chosen by: row 0, column 0, the last column, column 1, an odd
 * row, the last row. */
enum { ROW0, COL0, COLL, COL1, ODD, ROWL, NFACTS };
enum { DOWN, UP, RIGHT, LEFT };

/* A step taken where the facts in `yes` hold and those in `no` do not. */
typedef struct CycleStep {
  int dir;  /* 0: toward the next position, 1: toward the one before */
  int move; /* DOWN .. LEFT */
  unsigned yes, no;
} CycleStep;

#define F(x) (1u << (x))
static const CycleStep cycle_steps[] = {
    /* forward: along row 0, down the last column, snaking, up column 0 */
    {0, UP, F(COL0), F(ROW0)},
    {0, RIGHT, F(ROW0), F(COLL)},
    {0, RIGHT, 0, F(ROW0) | F(COL0) | F(ODD) | F(COLL)},
    {0, DOWN, F(ROW0) | F(COLL), 0},
    {0, DOWN, F(COLL), F(ROW0) | F(ODD)},
    {0, DOWN, F(ODD) | F(COL1), F(ROW0) | F(ROWL)},
    {0, LEFT, F(ODD), F(ROW0) | F(COL0) | F(COL1)},
    {0, LEFT, F(ODD) | F(COL1) | F(ROWL), F(ROW0)},
    /* backward: the same walk reversed */
    {1, LEFT, F(ROW0), F(COL0)},
    {1, LEFT, 0, F(ROW0) | F(COL0) | F(ODD) | F(COL1)},
    {1, DOWN, F(COL0), F(ROWL)},
    {1, RIGHT, F(COL0) | F(ROWL), 0},
    {1, RIGHT, F(ODD), F(ROW0) | F(COL0) | F(COLL)},
    {1, UP, F(ODD) | F(COLL), F(ROW0) | F(COL0)},
    {1, UP, F(COL1), F(ROW0) | F(COL0) | F(ODD)},
};
#undef F

static int32_t is(Coll *c, int32_t q, int64_t v) {
  int32_t r = tile_mir_sreg(c->m);
  coll_rr(c, TILE_MOP_SEQ, r, q, coll_li(c, v));
  return r;
}

bool coll_cycle_ring(Coll *c) {
  if (c->naxes != 2 || c->span)
    return tile_lower_error(c->cx, c->op, "internal error: a cycle permute takes two axes");
  CollAxis *row = &c->ax[0], *col = &c->ax[1];
  int32_t i = c->coord[0], j = c->coord[1];
  int64_t p = row->p * col->p;
  if (col->p == 1 || row->p == 1) { /* the cycle is the other axis's ring */
    int k = col->p == 1 ? 0 : 1;
    for (int d = 0; d < 2; d++) c->next[d][0] = c->next[d][k];
    c->coord[0] = c->coord[k];
    *row = c->ax[k];
    c->naxes = 1;
    return true;
  }
  if (row->p % 2) { /* rows odd: the columns, even, take the rows' part */
    CollAxis t = *row;
    *row = *col, *col = t;
    int32_t r = i;
    i = j, j = r;
  }
  int32_t one = coll_li(c, 1), fact[NFACTS][2]; /* [f][0]: f holds, [f][1]: it does not */
  fact[ROW0][0] = is(c, i, 0);
  fact[COL0][0] = is(c, j, 0);
  fact[COLL][0] = is(c, j, col->p - 1);
  fact[COL1][0] = is(c, j, 1);
  fact[ROWL][0] = is(c, i, row->p - 1);
  fact[ODD][0] = tile_mir_sreg(c->m);
  coll_rr(c, TILE_MOP_AND, fact[ODD][0], i, one);
  for (int f = 0; f < NFACTS; f++) {
    fact[f][1] = tile_mir_sreg(c->m);
    coll_rr(c, TILE_MOP_XOR, fact[f][1], fact[f][0], one);
  }
  const int64_t stride[4] = {row->stride, -row->stride, col->stride, -col->stride};
  int32_t next[2] = {tile_mir_sreg(c->m), tile_mir_sreg(c->m)};
  for (int d = 0; d < 2; d++) coll_ri(c, TILE_MOP_ADDI, next[d], c->chipid, 0);
  for (size_t s = 0; s < sizeof cycle_steps / sizeof *cycle_steps; s++) {
    const CycleStep *st = &cycle_steps[s];
    int32_t holds = one;
    for (int f = 0; f < NFACTS; f++)
      for (int neg = 0; neg < 2; neg++)
        if ((neg ? st->no : st->yes) >> f & 1) {
          int32_t h = tile_mir_sreg(c->m);
          coll_rr(c, TILE_MOP_AND, h, holds, fact[f][neg]);
          holds = h;
        }
    int32_t by = tile_mir_sreg(c->m);
    coll_ri(c, TILE_MOP_MULI, by, holds, stride[st->move]);
    coll_rr(c, TILE_MOP_ADD, next[st->dir], next[st->dir], by);
  }
  /* Axis 0's ring is now the cycle: its band slot counts the arrivals, its rings'
   * hop estimate stays (one position is one hop where both axes are whole dims). */
  for (int d = 0; d < 2; d++) c->next[d][0] = next[d];
  c->ax[0] = *row;
  c->ax[0].p = p;
  c->naxes = 1;
  return true;
}
