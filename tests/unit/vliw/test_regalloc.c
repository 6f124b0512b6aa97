/* Register allocation on scheduled code written by hand (exact cycles): which values may
 * share a machine register (after the last read, never while a write is pending, never
 * across a loop they live through), spilling when more values are live than the target
 * has registers (vector and scalar, straight-line and around a loop), the message when
 * even spilling cannot help, and every program run on the emulator in strict mode with
 * every read and write checked (check_all) and its results compared. */
#include <math.h>

#include "alloc_fixture.h"

enum { ROW = 8 * 128 }; /* f32 words of one vector register */

/* A VMEM buffer of n registers' worth of f32 with value f(i) at word i. */
static int32_t vmem_data(TileMir *m, const char *name, int n, float (*f)(int)) {
  int32_t b = tile_mir_buffer(m, name, TILE_SPACE_VMEM, (int64_t)n * ROW * 4, 1, 64);
  float *v = malloc((size_t)n * ROW * sizeof *v);
  for (int i = 0; i < n * ROW; i++) v[i] = f(i);
  tile_mir_data(m, b, v, (int64_t)n * ROW * 4);
  free(v);
  return b;
}

static float small_ints(int i) { return (float)((i * 7 + i / ROW) % 13) - 6.0f; }

static bool read_vmem(TileEmu *e, const TileMir *m, int32_t buf, float *out, int n) {
  return tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, m->bufs[buf].addr, out, (size_t)n * 4);
}

static int32_t field_of(TileMirCode *c, int32_t p, int op, char f) {
  TileMirInst *in = af_find(c, p, op);
  if (!in) return -1;
  return f == 'd' ? in->d : f == 'a' ? in->a : f == 'b' ? in->b : in->c;
}

/* A register's value may go to a register whose previous value was last read in the
 * same bundle; a value written before another's last read needs its own register. */
TEST(regalloc, reuse_after_last_read_only) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t a = vmem_data(&m, "a", 1, small_ints);
  int32_t out = tile_mir_buffer(&m, "out", TILE_SPACE_VMEM, 2 * ROW * 4, 1, 64);
  int32_t sa = tile_mir_sreg(&m), so = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t x = tile_mir_vreg(&m), y = tile_mir_vreg(&m), z = tile_mir_vreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_addr(sa, a, 0));
  af_put(&c, 0, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  af_put(&c, 1, af_mem(af_op(TILE_MOP_VLD, x, sa, st, 0, 0), a, TILE_MIR_READ)); /* lands 3 */
  af_put(&c, 2, af_op(TILE_MOP_VLI, z, 0, 0, 0, 0x40000000)); /* 2.0, before x's last read */
  af_put(&c, 3, af_op(TILE_MOP_VADDF, y, x, x, 0, 0));        /* x's last read; y written */
  af_put(&c, 3, af_addr(so, out, 0));
  af_put(&c, 5, af_mem(af_op(TILE_MOP_VST, y, so, st, 0, 0), out, TILE_MIR_WRITE));
  af_put(&c, 6, af_mem(af_op(TILE_MOP_VST, z, so, st, 0, ROW * 4), out, TILE_MIR_WRITE));
  af_halt(&c, 7);
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  int32_t px = field_of(&c, 1, TILE_MOP_VLD, 'd'), py = field_of(&c, 3, TILE_MOP_VADDF, 'd');
  int32_t pz = field_of(&c, 2, TILE_MOP_VLI, 'd');
  CHECK_EQ(px, py); /* y's write issues as x is read for the last time */
  CHECK(pz != px);  /* z is written while x still waits for its read */
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float got[2 * ROW];
  REQUIRE(read_vmem(e, &m, out, got, 2 * ROW));
  for (int i = 0; i < ROW; i++) {
    CHECK(got[i] == 2 * small_ints(i));
    CHECK(got[ROW + i] == 2.0f);
    if (got[i] != 2 * small_ints(i) || got[ROW + i] != 2.0f) break;
  }
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* A write still in flight keeps its register: a value whose write would land no later
 * than a pending one may not share it (the emulator's "write order" hazard). */
TEST(regalloc, pending_write_keeps_register) {
  TileTarget t = af_target("tiny"); /* trans 3, valu 2 */
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t out = tile_mir_buffer(&m, "out", TILE_SPACE_VMEM, ROW * 4, 1, 64);
  int32_t so = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t one = tile_mir_vreg(&m), dead = tile_mir_vreg(&m), x = tile_mir_vreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_op(TILE_MOP_VLI, one, 0, 0, 0, 0x3f800000));
  af_put(&c, 0, af_addr(so, out, 0));
  af_put(&c, 0, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  af_put(&c, 2,
         af_op(TILE_MOP_VEXP, dead, one, 0, 0, 0)); /* lands 5, never read; one's last read */
  af_put(&c, 3, af_op(TILE_MOP_VLI, x, 0, 0, 0, 0x40400000)); /* 3.0, lands 5 */
  af_put(&c, 5, af_mem(af_op(TILE_MOP_VST, x, so, st, 0, 0), out, TILE_MIR_WRITE));
  af_halt(&c, 6);
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  CHECK(field_of(&c, 2, TILE_MOP_VEXP, 'd') != field_of(&c, 3, TILE_MOP_VLI, 'd'));
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float got[ROW];
  REQUIRE(read_vmem(e, &m, out, got, ROW));
  CHECK(got[0] == 3.0f && got[ROW - 1] == 3.0f);
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* Values live around a loop (an input read every iteration, an accumulator whose write
 * lands in the next iteration) are live through the whole body. */
TEST(regalloc, loop_carried_values) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t a = vmem_data(&m, "a", 1, small_ints);
  int32_t out = tile_mir_buffer(&m, "out", TILE_SPACE_VMEM, ROW * 4, 1, 64);
  int32_t sa = tile_mir_sreg(&m), so = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t va = tile_mir_vreg(&m), acc = tile_mir_vreg(&m), tmp = tile_mir_vreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_addr(sa, a, 0));
  af_put(&c, 0, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  af_put(&c, 1, af_mem(af_op(TILE_MOP_VLD, va, sa, st, 0, 0), a, TILE_MIR_READ));
  af_put(&c, 1, af_op(TILE_MOP_VLI, acc, 0, 0, 0, 0));
  af_put(&c, 1, af_addr(so, out, 0));
  af_loop(&c, 3, 3, 4);                                      /* bundles 4..6, 4 times */
  af_put(&c, 4, af_op(TILE_MOP_VADDF, tmp, va, va, 0, 0));   /* lands 6 */
  af_put(&c, 6, af_op(TILE_MOP_VADDF, acc, acc, tmp, 0, 0)); /* lands in the next iteration */
  af_put(&c, 8, af_mem(af_op(TILE_MOP_VST, acc, so, st, 0, 0), out, TILE_MIR_WRITE));
  af_halt(&c, 9);
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  int32_t pa = field_of(&c, 1, TILE_MOP_VLD, 'd'), pacc = field_of(&c, 1, TILE_MOP_VLI, 'd');
  int32_t ptmp = field_of(&c, 4, TILE_MOP_VADDF, 'd');
  CHECK(pa != ptmp);
  CHECK(pacc != ptmp);
  CHECK(pa != pacc);
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float got[ROW];
  REQUIRE(read_vmem(e, &m, out, got, ROW));
  for (int i = 0; i < ROW; i++)
    if (!CHECK(got[i] == 8 * small_ints(i))) break;
  tile_emu_free(e);
  tile_mir_code_free(&c);
  tile_object_free(&obj);
  tile_mir_free(&m);
}

/* n vector registers loaded one per bundle, then summed in order into one accumulator
 * (redefined by every add): all n are live when the last load lands. */
static void sum_program(TileMir *m, TileMirCode *c, int n, int32_t *out_buf, int32_t *a_buf) {
  const TileTarget *t = m->target;
  int lv = t->latency[TILE_LAT_VLOAD], la = t->latency[TILE_LAT_VALU];
  int32_t a = vmem_data(m, "rows", n, small_ints);
  int32_t out = tile_mir_buffer(m, "out", TILE_SPACE_VMEM, ROW * 4, 1, 64);
  int32_t sa = tile_mir_sreg(m), so = tile_mir_sreg(m), st = tile_mir_sreg(m);
  int32_t *v = malloc((size_t)n * sizeof *v), acc = tile_mir_vreg(m);
  memset(c, 0, sizeof *c);
  af_put(c, 0, af_addr(sa, a, 0));
  af_put(c, 0, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  af_put(c, 1, af_addr(so, out, 0));
  for (int i = 0; i < n; i++) {
    v[i] = tile_mir_vreg(m);
    af_put(c, 1 + i, af_mem(af_op(TILE_MOP_VLD, v[i], sa, st, 0, i * ROW * 4), a, TILE_MIR_READ));
  }
  int32_t p = n + lv; /* the last load has landed */
  af_put(c, p, af_op(TILE_MOP_VADDF, acc, v[0], v[1], 0, 0));
  for (int i = 2; i < n; i++) {
    p += la;
    af_put(c, p, af_op(TILE_MOP_VADDF, acc, acc, v[i], 0, 0));
  }
  p += la;
  af_put(c, p, af_mem(af_op(TILE_MOP_VST, acc, so, st, 0, 0), out, TILE_MIR_WRITE));
  af_halt(c, p + 1);
  free(v);
  *out_buf = out;
  *a_buf = a;
}

static float row_sum(int n, int i) {
  float s = small_ints(i) + small_ints(ROW + i);
  for (int k = 2; k < n; k++) s += small_ints(k * ROW + i);
  return s;
}

static void spill_vector_sum(const char *target, int n) {
  TileTarget t = af_target(target);
  TileMir m;
  tile_mir_init(&m, &t);
  TileMirCode c;
  int32_t out, a;
  sum_program(&m, &c, n, &out, &a);
  int32_t before = c.nbundles;
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  bool spilled = false;
  for (int32_t b = 0; b < m.nbufs; b++) spilled |= strncmp(m.bufs[b].name, "spill.vregs.", 12) == 0;
  CHECK(spilled);
  CHECK(c.nbundles >= before);
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float got[ROW];
  REQUIRE(read_vmem(e, &m, out, got, ROW));
  for (int i = 0; i < ROW; i++)
    if (!CHECK(got[i] == row_sum(n, i))) break;
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* 40 vector values live at once on a 32-register machine. */
TEST(regalloc, spill_vregs_tiny) { spill_vector_sum("tiny", 40); }
/* The same with v5e-like latencies (vload 4, vstore 2) and 64 values. */
TEST(regalloc, spill_vregs_v5e) { spill_vector_sum("v5e-like", 64); }

/* 32 values fit 32 registers exactly: nothing is spilled. */
TEST(regalloc, no_spill_when_it_fits) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  TileMirCode c;
  int32_t out, a;
  sum_program(&m, &c, 32, &out, &a);
  int32_t before = c.nbundles, nbufs = m.nbufs;
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  CHECK_EQ(before, c.nbundles);
  CHECK_EQ(nbufs, m.nbufs);
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float got[ROW];
  REQUIRE(read_vmem(e, &m, out, got, ROW));
  CHECK(got[5] == row_sum(32, 5));
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* 40 computed scalars live at once: spilled to SMEM with sst/sld (constants would be
 * recomputed instead, so each is computed from a loaded base). */
TEST(regalloc, spill_sregs) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  enum { N = 40 };
  int32_t out = tile_mir_buffer(&m, "out", TILE_SPACE_SMEM, 4, 1, 4);
  int32_t s[N], acc = tile_mir_sreg(&m), so = tile_mir_sreg(&m), base = tile_mir_sreg(&m);
  TileMirCode c = {0};
  int32_t expect = 0;
  af_put(&c, 0, af_op(TILE_MOP_LI, base, 0, 0, 0, 1000));
  for (int i = 0; i < N; i++) {
    s[i] = tile_mir_sreg(&m);
    af_put(&c, 1 + i / 2, af_op(TILE_MOP_ADDI, s[i], base, 0, 0, 3 * i + 1));
    expect += 1000 + 3 * i + 1;
  }
  int32_t p = 1 + N / 2;
  af_put(&c, p, af_op(TILE_MOP_ADD, acc, s[0], s[1], 0, 0));
  for (int i = 2; i < N; i++) af_put(&c, ++p, af_op(TILE_MOP_ADD, acc, acc, s[i], 0, 0));
  af_put(&c, p, af_addr(so, out, 0));
  p++;
  af_put(&c, p, af_mem(af_op(TILE_MOP_SST, acc, so, 0, 0, 0), out, TILE_MIR_WRITE));
  af_halt(&c, p + 1);
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  bool spilled = false;
  for (int32_t b = 0; b < m.nbufs; b++) spilled |= strcmp(m.bufs[b].name, "spill.sregs") == 0;
  CHECK(spilled);
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  int32_t got = 0;
  REQUIRE(tile_emu_read_memory(e, 0, TILE_SPACE_SMEM, m.bufs[out].addr, &got, 4));
  CHECK_EQ(expect, got);
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* 36 values live through a loop that reads one of them: the others are spilled around
 * the loop and reloaded after it; the loop keeps its trips and its body its bundles. */
TEST(regalloc, spill_around_loop) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  enum { N = 36 };
  int32_t a = vmem_data(&m, "rows", N, small_ints);
  int32_t out = tile_mir_buffer(&m, "out", TILE_SPACE_VMEM, ROW * 4, 1, 64);
  int32_t sa = tile_mir_sreg(&m), so = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t v[N], acc = tile_mir_vreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_addr(sa, a, 0));
  af_put(&c, 0, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  af_put(&c, 1, af_addr(so, out, 0));
  af_put(&c, 0, af_op(TILE_MOP_VLI, acc, 0, 0, 0, 0));
  for (int i = 0; i < N; i++) {
    v[i] = tile_mir_vreg(&m);
    af_put(&c, 1 + i, af_mem(af_op(TILE_MOP_VLD, v[i], sa, st, 0, i * ROW * 4), a, TILE_MIR_READ));
  }
  int32_t p = N + 2;    /* loads landed */
  af_loop(&c, p, 2, 5); /* acc += v0, five times */
  af_put(&c, p + 1, af_op(TILE_MOP_VADDF, acc, acc, v[0], 0, 0));
  p += 3;
  for (int i = 1; i < N; i++, p += 2) af_put(&c, p, af_op(TILE_MOP_VADDF, acc, acc, v[i], 0, 0));
  af_put(&c, p, af_mem(af_op(TILE_MOP_VST, acc, so, st, 0, 0), out, TILE_MIR_WRITE));
  af_halt(&c, p + 1);
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float got[ROW];
  REQUIRE(read_vmem(e, &m, out, got, ROW));
  for (int i = 0; i < ROW; i++) {
    float want = 0;
    for (int k = 0; k < 5; k++) want += small_ints(i);
    for (int k = 1; k < N; k++) want += small_ints(k * ROW + i);
    if (!CHECK(got[i] == want)) break;
  }
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* An op reading three different vector values cannot run on a 2-register machine:
 * spilling cannot help, and the message says so. */
TEST(regalloc, too_few_registers_is_an_error) {
  TileTarget t = af_target("tiny");
  t.nvregs = 2;
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t x = tile_mir_vreg(&m), y = tile_mir_vreg(&m), z = tile_mir_vreg(&m),
          w = tile_mir_vreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_op(TILE_MOP_VLI, x, 0, 0, 0, 0));
  af_put(&c, 0, af_op(TILE_MOP_VLI, y, 0, 0, 0, 0));
  af_put(&c, 1, af_op(TILE_MOP_VLI, z, 0, 0, 0, 0));
  af_put(&c, 4, af_op(TILE_MOP_VFMAF, w, x, y, z, 0));
  af_halt(&c, 5);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  TileDiag d;
  tile_diag_init(&d, f, "test", NULL, 0);
  bool ok = tile_mir_regalloc(&m, &c, &d);
  fclose(f);
  CHECK(!ok);
  CHECK(strstr(text, "register allocation") != NULL);
  CHECK(strstr(text, "2 vector registers of target tiny") != NULL ||
        strstr(text, "the vector registers of target tiny") != NULL);
  free(text);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* Code naming a register of the wrong class is refused with a sentence, not a crash. */
TEST(regalloc, wrong_class_is_refused) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t s = tile_mir_sreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_op(TILE_MOP_VLI, s, 0, 0, 0, 0));
  af_halt(&c, 1);
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  CHECK(!tile_mir_regalloc(&m, &c, &d));
  CHECK(strstr(d.last, "not a vector virtual register") != NULL);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* The same input gives the same allocation. */
TEST(regalloc, deterministic) {
  TileTarget t = af_target("tiny");
  TileMirCode c1, c2;
  TileMir m1, m2;
  int32_t out, a;
  tile_mir_init(&m1, &t);
  tile_mir_init(&m2, &t);
  sum_program(&m1, &c1, 40, &out, &a);
  sum_program(&m2, &c2, 40, &out, &a);
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  REQUIRE(tile_mir_regalloc(&m1, &c1, &d) && tile_mir_regalloc(&m2, &c2, &d));
  REQUIRE(c1.nbundles == c2.nbundles);
  bool same = true;
  for (int32_t p = 0; p < c1.nbundles; p++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *x = &c1.b[p].slot[w], *y = &c2.b[p].slot[w];
      same &= x->op == y->op && x->d == y->d && x->a == y->a && x->b == y->b && x->c == y->c &&
              (x->op == TILE_MOP_NOP || (x->imm == y->imm && x->imm_buf == y->imm_buf));
    }
  CHECK(same);
  tile_mir_code_free(&c1);
  tile_mir_code_free(&c2);
  tile_mir_free(&m1);
  tile_mir_free(&m2);
}
