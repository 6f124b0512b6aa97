/* Random vector programs through the whole back end: MIR with many long-lived values
 * (operands drawn from everything computed so far, so far more values are live than
 * the machine has registers), loops (plain and software-pipelined, with an accumulator
 * carried around them), scheduled by tile_mir_schedule, allocated with spilling, laid
 * out, emitted, run on the emulator in strict mode with every register access checked,
 * and compared bit for bit with the same arithmetic done on the host. */
#include <math.h>

#include "alloc_fixture.h"

enum { ROW = 8 * 128, ROWS = 24, OUTS = 16, MAXV = 256 };

typedef struct Rng {
  uint64_t s;
} Rng;

static uint32_t rnd(Rng *r, uint32_t n) {
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return (uint32_t)(r->s % n);
}

static const int ops[4] = {TILE_MOP_VADDF, TILE_MOP_VSUBF, TILE_MOP_VMAXF, TILE_MOP_VMINF};

static float apply(int op, float a, float b) {
  switch (op) {
  case TILE_MOP_VADDF: return a + b;
  case TILE_MOP_VSUBF: return a - b;
  case TILE_MOP_VMAXF: return a > b ? a : b;
  default: return a < b ? a : b;
  }
}

typedef struct Gen {
  TileMir *m;
  Rng rng;
  int32_t rows, out, sa, st, so;
  int n;
  int32_t reg[MAXV];
  float *val[MAXV]; /* host value of each, ROW lanes */
} Gen;

static int new_value(Gen *g) {
  g->reg[g->n] = tile_mir_vreg(g->m);
  g->val[g->n] = malloc(ROW * sizeof(float));
  return g->n++;
}

/* v = op(a, b) with a, b drawn from the values [0, limit) other than `skip` (a value
 * that changes from one loop iteration to the next). */
static void random_op(Gen *g, int limit, int skip) {
  int a, b;
  do a = (int)rnd(&g->rng, (uint32_t)limit);
  while (a == skip);
  do b = (int)rnd(&g->rng, (uint32_t)limit);
  while (b == skip);
  int op = ops[rnd(&g->rng, 4)];
  int v = new_value(g);
  tile_mir_add(g->m, tile_mir_inst(op, g->reg[v], g->reg[a], g->reg[b], 0, 0));
  for (int i = 0; i < ROW; i++) g->val[v][i] = apply(op, g->val[a][i], g->val[b][i]);
}

static void build(Gen *g, const float *rows, float *expect) {
  TileMir *m = g->m;
  g->sa = tile_mir_sreg(m);
  g->st = tile_mir_sreg(m);
  g->so = tile_mir_sreg(m);
  tile_mir_add(m, af_addr(g->sa, g->rows, 0));
  tile_mir_add(m, af_op(TILE_MOP_LI, g->st, 0, 0, 0, 512));
  tile_mir_add(m, af_addr(g->so, g->out, 0));
  int loads = 8 + (int)rnd(&g->rng, 24);
  for (int k = 0; k < loads; k++) {
    int r = (int)rnd(&g->rng, ROWS), v = new_value(g);
    tile_mir_add(m, af_mem(af_op(TILE_MOP_VLD, g->reg[v], g->sa, g->st, 0, r * ROW * 4), g->rows,
                           TILE_MIR_READ));
    memcpy(g->val[v], rows + r * ROW, ROW * sizeof(float));
  }
  int straight = 20 + (int)rnd(&g->rng, 60);
  for (int k = 0; k < straight; k++) random_op(g, g->n, -1);
  if (rnd(&g->rng, 3) != 0) {
    /* acc = v; loop trips { fresh values; acc = acc + w } */
    int acc = new_value(g), src = (int)rnd(&g->rng, (uint32_t)g->n - 1);
    tile_mir_add(m, af_op(TILE_MOP_VMOV, g->reg[acc], g->reg[src], 0, 0, 0));
    memcpy(g->val[acc], g->val[src], ROW * sizeof(float));
    int trips = 2 + (int)rnd(&g->rng, 4), before = g->n;
    tile_mir_loop_begin(m, trips, rnd(&g->rng, 2) ? TILE_MIR_PIPELINE : 0);
    int fresh = 1 + (int)rnd(&g->rng, 20);
    for (int k = 0; k < fresh; k++) random_op(g, g->n, acc);
    int w = before + (int)rnd(&g->rng, (uint32_t)(g->n - before));
    tile_mir_add(m, af_op(TILE_MOP_VADDF, g->reg[acc], g->reg[acc], g->reg[w], 0, 0));
    tile_mir_loop_end(m);
    for (int t = 0; t < trips; t++)
      for (int i = 0; i < ROW; i++) g->val[acc][i] += g->val[w][i];
  }
  int more = (int)rnd(&g->rng, 30);
  for (int k = 0; k < more && g->n < MAXV - OUTS; k++) random_op(g, g->n, -1);
  for (int o = 0; o < OUTS; o++) {
    int v = (int)rnd(&g->rng, (uint32_t)g->n);
    tile_mir_add(m, af_mem(af_op(TILE_MOP_VST, g->reg[v], g->so, g->st, 0, o * ROW * 4), g->out,
                           TILE_MIR_WRITE));
    memcpy(expect + o * ROW, g->val[v], ROW * sizeof(float));
  }
}

static bool same(float a, float b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, 4) == 0; }

static void random_programs(const char *target, uint64_t seed0, int count) {
  TileTarget t = af_target(target);
  float *rows = malloc(ROWS * ROW * sizeof(float)), *expect = malloc(OUTS * ROW * sizeof(float));
  float *got = malloc(OUTS * ROW * sizeof(float));
  int spilled = 0;
  for (int n = 0; n < count; n++) {
    TileMir m;
    tile_mir_init(&m, &t);
    Gen g = {.m = &m, .rng = {seed0 + 977 * (uint64_t)n}};
    for (int i = 0; i < ROWS * ROW; i++) rows[i] = (float)((int)rnd(&g.rng, 17) - 8);
    g.rows = tile_mir_buffer(&m, "rows", TILE_SPACE_VMEM, ROWS * ROW * 4, 1, 64);
    tile_mir_data(&m, g.rows, rows, ROWS * ROW * 4);
    g.out = tile_mir_buffer(&m, "out", TILE_SPACE_VMEM, OUTS * ROW * 4, 1, 64);
    tile_mir_set_source(&m, "random", (TileLoc){"random.tile", n + 1, 1});
    build(&g, rows, expect);
    TileDiag d;
    tile_diag_init(&d, stderr, "random", NULL, 0);
    TileMirCode c;
    memset(&c, 0, sizeof c);
    TileObject obj;
    bool ok = tile_mir_verify(&m, &d) && tile_mir_schedule(&m, &c, &d) && af_back(&m, &c, &obj);
    if (!CHECK(ok)) {
      fprintf(stderr, "program %d (seed %llu) failed to compile\n", n, (unsigned long long)seed0);
    } else {
      bool any = false; /* a buffer per spilled vector register */
      for (int32_t b = 0; b < m.nbufs; b++) any |= strncmp(m.bufs[b].name, "spill.vregs.", 12) == 0;
      spilled += any;
      TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
      if (CHECK(e != NULL)) {
        CHECK(tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, m.bufs[g.out].addr, got,
                                   OUTS * ROW * sizeof(float)));
        for (int i = 0; i < OUTS * ROW; i++)
          if (!CHECK(same(expect[i], got[i]))) {
            fprintf(stderr, "program %d: word %d is %g, want %g\n", n, i, got[i], expect[i]);
            break;
          }
        tile_emu_free(e);
      } else {
        fprintf(stderr, "program %d on %s faulted\n", n, target);
      }
      tile_object_free(&obj);
    }
    for (int v = 0; v < g.n; v++) free(g.val[v]);
    tile_mir_code_free(&c);
    tile_mir_free(&m);
  }
  CHECK(spilled > 0); /* the programs are meant to need spilling */
  if (getenv("ALLOC_VERBOSE"))
    fprintf(stderr, "%s: %d of %d programs spilled\n", target, spilled, count);
  free(rows);
  free(expect);
  free(got);
}

/* ALLOC_RANDOM_PROGRAMS=N runs N programs per target instead (a longer stress run). */
static int program_count(int dflt) {
  const char *s = getenv("ALLOC_RANDOM_PROGRAMS");
  return s && atoi(s) > 0 ? atoi(s) : dflt;
}

TEST(regalloc_random, tiny) { random_programs("tiny", 1, program_count(40)); }
TEST(regalloc_random, v5e) { random_programs("v5e-like", 7, program_count(25)); }
