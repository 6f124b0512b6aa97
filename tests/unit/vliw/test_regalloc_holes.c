/* Register allocation with live ranges that have holes: a value read across a loop's
 * back edge occupies only the end and the start of the body, so other values use its
 * register in between; a software-pipelined loop with more virtual registers than the
 * machine has, each live for less than the initiation interval, allocates without
 * spilling and keeps its II; constants that must leave their registers are recomputed
 * (`vli`, `li`) instead of stored and loaded. Every program runs on the emulator in
 * strict mode with every register access checked, and its results are compared. */
#include "alloc_fixture.h"

enum { ROW = 8 * 128, TILE = ROW * 4 };

static float small_ints(int i) { return (float)((i * 7 + i / ROW) % 13) - 6.0f; }

static int32_t vmem_data(TileMir *m, const char *name, int n, float (*f)(int)) {
  int32_t b = tile_mir_buffer(m, name, TILE_SPACE_VMEM, (int64_t)n * TILE, 1, 64);
  float *v = malloc((size_t)n * TILE);
  for (int i = 0; i < n * ROW; i++) v[i] = f(i);
  tile_mir_data(m, b, v, (int64_t)n * TILE);
  free(v);
  return b;
}

/* Whether a buffer's name starts with prefix (spills: one buffer per register). */
static bool has_buffer(const TileMir *m, const char *prefix) {
  for (int32_t b = 0; b < m->nbufs; b++)
    if (strncmp(m->bufs[b].name, prefix, strlen(prefix)) == 0) return true;
  return false;
}

static bool read_vmem(TileEmu *e, const TileMir *m, int32_t buf, float *out, int n) {
  return tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, m->bufs[buf].addr, out, (size_t)n * 4);
}

/* acc is written at the end of the body and read at its start (its write lands in the
 * next iteration): it occupies bundles 8..9 and 4, and u (4..8) fits in the hole, so
 * two vector registers hold the three values of the loop. */
TEST(regalloc_holes, back_edge_value_leaves_a_hole) {
  TileTarget t = af_target("tiny"); /* valu 2, vload 2 */
  t.nvregs = 2;
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t a = vmem_data(&m, "a", 1, small_ints);
  int32_t out = tile_mir_buffer(&m, "out", TILE_SPACE_VMEM, TILE, 1, 64);
  int32_t sa = tile_mir_sreg(&m), so = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t acc = tile_mir_vreg(&m), u = tile_mir_vreg(&m), w = tile_mir_vreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_addr(sa, a, 0));
  af_put(&c, 0, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  af_put(&c, 1, af_mem(af_op(TILE_MOP_VLD, acc, sa, st, 0, 0), a, TILE_MIR_READ)); /* lands 3 */
  af_put(&c, 1, af_addr(so, out, 0));
  af_loop(&c, 3, 6, 5);                                   /* bundles 4..9, 5 times */
  af_put(&c, 4, af_op(TILE_MOP_VADDF, u, acc, acc, 0, 0)); /* u = 2 acc, lands 6 */
  af_put(&c, 6, af_op(TILE_MOP_VADDF, w, u, u, 0, 0));     /* w = 4 acc, lands 8 */
  af_put(&c, 8, af_op(TILE_MOP_VSUBF, acc, w, u, 0, 0));   /* acc = 2 acc, lands at 4 */
  af_put(&c, 11, af_mem(af_op(TILE_MOP_VST, acc, so, st, 0, 0), out, TILE_MIR_WRITE));
  af_halt(&c, 12);
  int32_t before = c.nbundles;
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  CHECK_EQ(before, c.nbundles);
  CHECK(!has_buffer(&m, "spill.vregs"));
  CHECK_EQ(af_find(&c, 8, TILE_MOP_VSUBF)->d, af_find(&c, 4, TILE_MOP_VADDF)->d);
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float got[ROW];
  REQUIRE(read_vmem(e, &m, out, got, ROW));
  for (int i = 0; i < ROW; i++)
    if (!CHECK(got[i] == 32 * small_ints(i))) break;
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* K independent chains per iteration (vld x; y = x + x; z = y + 1; vst z), modulo
 * scheduled at II = K (one vector load per bundle): 3K + 1 vector registers, far more
 * than 32, but each value lives a few cycles, so at most a handful are live at once. */
static void pipelined_chains(const char *target, int K, int N) {
  TileTarget t = af_target(target);
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t in = vmem_data(&m, "in", K * N, small_ints);
  int32_t out = tile_mir_buffer(&m, "out", TILE_SPACE_VMEM, (int64_t)K * N * TILE, 1, 64);
  int32_t a = tile_mir_sreg(&m), o = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t one = tile_mir_vreg(&m);
  tile_mir_add(&m, af_addr(a, in, 0));
  tile_mir_add(&m, af_addr(o, out, 0));
  tile_mir_add(&m, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  tile_mir_add(&m, af_op(TILE_MOP_VLI, one, 0, 0, 0, 0x3f800000));
  tile_mir_loop_begin(&m, N, TILE_MIR_PIPELINE);
  for (int k = 0; k < K; k++) {
    int32_t x = tile_mir_vreg(&m), y = tile_mir_vreg(&m), z = tile_mir_vreg(&m);
    tile_mir_add(&m, af_mem(af_op(TILE_MOP_VLD, x, a, st, 0, k * TILE), in, TILE_MIR_READ));
    tile_mir_add(&m, af_op(TILE_MOP_VADDF, y, x, x, 0, 0));
    tile_mir_add(&m, af_op(TILE_MOP_VADDF, z, y, one, 0, 0));
    tile_mir_add(&m, af_mem(af_op(TILE_MOP_VST, z, o, st, 0, k * TILE), out, TILE_MIR_WRITE));
  }
  tile_mir_add(&m, af_op(TILE_MOP_ADDI, a, a, 0, 0, K * TILE));
  tile_mir_add(&m, af_op(TILE_MOP_ADDI, o, o, 0, 0, K * TILE));
  tile_mir_loop_end(&m);
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  TileMirCode c = {0};
  REQUIRE(tile_mir_verify(&m, &d) && tile_mir_schedule(&m, &c, &d));
  REQUIRE(c.nloops == 1);
  int32_t ii = c.loops[0].ii, before = c.nbundles;
  CHECK(ii >= K);
  CHECK(c.loops[0].stages >= 2); /* prologue, kernel and epilogue copies of the body */
  CHECK(3 * K + 1 > t.nvregs);
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  CHECK(!has_buffer(&m, "spill.vregs"));
  CHECK_EQ(before, c.nbundles);
  CHECK_EQ(ii, c.loops[0].ii);
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float *got = malloc((size_t)K * N * TILE);
  REQUIRE(read_vmem(e, &m, out, got, K * N * ROW));
  for (int i = 0; i < K * N * ROW; i++)
    if (!CHECK(got[i] == 2 * small_ints(i) + 1)) break;
  free(got);
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

TEST(regalloc_holes, pipelined_loop_many_vregs_tiny) { pipelined_chains("tiny", 20, 4); }
TEST(regalloc_holes, pipelined_loop_many_vregs_v5e) { pipelined_chains("v5e-like", 24, 6); }

/* 40 vector constants live at once on a 32-register machine: the ones that leave their
 * registers are recomputed where they are read, so nothing goes to memory. */
TEST(regalloc_holes, constants_are_recomputed) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  enum { N = 40 };
  int32_t out = tile_mir_buffer(&m, "out", TILE_SPACE_VMEM, TILE, 1, 64);
  int32_t so = tile_mir_sreg(&m), st = tile_mir_sreg(&m), v[N], acc = tile_mir_vreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_addr(so, out, 0));
  af_put(&c, 0, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  float want = 0;
  for (int i = 0; i < N; i++) {
    v[i] = tile_mir_vreg(&m);
    float f = (float)(i % 7) - 3.0f;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    af_put(&c, 1 + i / 2, af_op(TILE_MOP_VLI, v[i], 0, 0, 0, (int32_t)bits));
    want += f;
  }
  int32_t p = 1 + N / 2 + 1;
  af_put(&c, p, af_op(TILE_MOP_VADDF, acc, v[0], v[1], 0, 0));
  for (int i = 2; i < N; i++) {
    p += 2;
    af_put(&c, p, af_op(TILE_MOP_VADDF, acc, acc, v[i], 0, 0));
  }
  p += 2;
  af_put(&c, p, af_mem(af_op(TILE_MOP_VST, acc, so, st, 0, 0), out, TILE_MIR_WRITE));
  af_halt(&c, p + 1);
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  CHECK(!has_buffer(&m, "spill.vregs"));
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float got[ROW];
  REQUIRE(read_vmem(e, &m, out, got, ROW));
  CHECK(got[0] == want);
  CHECK(got[ROW - 1] == want);
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* One virtual register reused for two unrelated values (two webs), on a machine with two
 * vector registers: r's first value overlaps s, which overlaps t, which overlaps r's
 * second value, so the two values of r need different machine registers. */
TEST(regalloc_holes, webs_of_one_register_split) {
  TileTarget t = af_target("tiny"); /* valu 2 */
  t.nvregs = 2;
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t out = tile_mir_buffer(&m, "out", TILE_SPACE_VMEM, 2 * TILE, 1, 64);
  int32_t so = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t r = tile_mir_vreg(&m), s = tile_mir_vreg(&m), tv = tile_mir_vreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_addr(so, out, 0));
  af_put(&c, 0, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  af_put(&c, 1, af_op(TILE_MOP_VLI, r, 0, 0, 0, 0x3f800000)); /* r = 1, read at 4 */
  af_put(&c, 2, af_op(TILE_MOP_VLI, s, 0, 0, 0, 0x40000000)); /* s = 2, read at 4, 5 */
  af_put(&c, 4, af_op(TILE_MOP_VADDF, tv, r, s, 0, 0));       /* t = 3, read at 8 */
  af_put(&c, 5, af_op(TILE_MOP_VADDF, r, s, s, 0, 0));        /* r = 4, read at 7 */
  af_put(&c, 7, af_mem(af_op(TILE_MOP_VST, r, so, st, 0, 0), out, TILE_MIR_WRITE));
  af_put(&c, 8, af_mem(af_op(TILE_MOP_VST, tv, so, st, 0, TILE), out, TILE_MIR_WRITE));
  af_halt(&c, 9);
  int32_t before = c.nbundles;
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  CHECK(!has_buffer(&m, "spill.vregs"));
  CHECK_EQ(before, c.nbundles);
  CHECK(af_find(&c, 1, TILE_MOP_VLI)->d != af_find(&c, 5, TILE_MOP_VADDF)->d);
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  float got[2 * ROW];
  REQUIRE(read_vmem(e, &m, out, got, 2 * ROW));
  CHECK(got[0] == 4.0f && got[ROW - 1] == 4.0f);
  CHECK(got[ROW] == 3.0f && got[2 * ROW - 1] == 3.0f);
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}
