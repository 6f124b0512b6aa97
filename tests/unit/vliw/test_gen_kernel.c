/* Tile-level kernels (backend-vliw/gen_kernel*.c): the MIR they make verifies, loops are
 * peeled where an `if` on the index changes (and only there), waits name the on-chip
 * buffers, the loop-carried accumulator of a tile_matmul is updated in place, scalars
 * divide by constants without a divide, and compiled kernels run on the emulator in
 * strict mode with the results numpy would give. What cannot be lowered gets one
 * sentence at the op's line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#define LOWERED_ERR_SIZE 1024
#include "compile_fixture.h"
#include "tile/ops.h"

/* Lowers kernel `name`, keeping the diagnostics as printed (file:line:col: error: ...),
 * and verifies the MIR. */
static void lower_kernel(Lowered *L, const char *target, const char *src, const char *name) {
  lower_with(L, target, src, (LowerOptions){.func = name, .printed = true, .verify = true});
}

/* The trip counts of the machine loops, in order. */
static int loop_trips(const TileMir *m, int32_t *trips, int max) {
  int n = 0;
  for (int32_t i = 0; i < m->ninsts && n < max; i++)
    if (m->insts[i].op == TILE_MIR_LOOP_BEGIN) trips[n++] = m->insts[i].imm;
  return n;
}

/* ---- compiling and running a kernel ---- */

typedef struct Bind {
  const char *name;
  void *bytes;
  size_t len;
} Bind;

/* Compiles kernel `name` for the target and runs it (strict mode) with the inputs;
 * reads the outputs. */
static bool run_kernel(const char *target, const char *src, const char *name, const Bind *in,
                       int nin, const Bind *out, int nout, int64_t *cycles) {
  TileTarget t;
  if (!target_for(target, "1", &t)) return false;
  TileVliwOptions o = {.func = name, .stop_after = TILE_VLIW_OBJECT};
  TileObject obj;
  bool ok = compile_text(&t, src, &o, NULL, 0, &obj);
  CHECK(ok);
  if (!ok) {
    tile_object_free(&obj);
    return false;
  }
  TileEmu *e = emu_for(&obj, &t);
  CHECK(e != NULL);
  if (e) {
    for (int i = 0; i < nin; i++) ok &= CHECK(tile_emu_set_input(e, in[i].name, in[i].bytes, in[i].len));
    TileEmuStatus st = emu_run(e);
    ok &= CHECK_EQ(TILE_EMU_OK, st);
    for (int i = 0; i < nout; i++)
      ok &= CHECK(tile_emu_get_output(e, out[i].name, out[i].bytes, out[i].len));
    TileEmuStats stats;
    tile_emu_stats(e, &stats);
    if (cycles) *cycles = stats.cycles;
    tile_emu_free(e);
  }
  tile_object_free(&obj);
  return ok && e;
}

static float randf(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)((int32_t)(*s >> 8) % 2000) / 100.0f;
}

/* ---- the examples' kernels ---- */

static const char *BLOCK_SUM =
    "kernel @block_sum(%in: hbm<256x128xf32>, %out: hbm<8x128xf32>) {\n"
    "  %buf = alloc : vmem<2x8x128xf32>\n"
    "  %result = alloc : vmem<8x128xf32>\n"
    "  %loaded = semaphore : sem\n"
    "  %stored = semaphore : sem\n"
    "  %one = constant {value = 1} : i32\n"
    "  %two = constant {value = 2} : i32\n"
    "  %eight = constant {value = 8} : i32\n"
    "  %nblocks = constant {value = 32} : i32\n"
    "  %zero = constant {value = 0.0} : tensor<8x128xf32>\n"
    "  %first = dma_start %in[0, 0], %buf[0, 0, 0], %loaded {shape = [8, 128]} : token\n"
    "  %sum = for %i = 0 to 32 step 1 iter(%acc = %zero) : tensor<8x128xf32> {\n"
    "    %slot = rem %i, %two : i32\n"
    "    %next = add %i, %one : i32\n"
    "    %more = compare %next, %nblocks {dir = lt} : i1\n"
    "    if %more {\n"
    "      %row = mul %next, %eight : i32\n"
    "      %other = sub %one, %slot : i32\n"
    "      %t = dma_start %in[%row, 0], %buf[%other, 0, 0], %loaded {shape = [8, 128]} : token\n"
    "    }\n"
    "    dma_wait %loaded\n"
    "    %tile = load %buf[%slot, 0, 0] : tensor<8x128xf32>\n"
    "    %acc2 = add %acc, %tile : tensor<8x128xf32>\n"
    "    yield %acc2\n"
    "  }\n"
    "  store %sum, %result[0, 0]\n"
    "  %w = dma_start %result[0, 0], %out[0, 0], %stored {shape = [8, 128]} : token\n"
    "  dma_wait %stored, %w\n"
    "  return\n"
    "}\n";

TEST(gen_kernel, block_sum_peels_the_last_iteration) {
  Lowered L;
  lower_kernel(&L, "tiny", BLOCK_SUM, "block_sum");
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  int32_t trips[8];
  /* `if %i + 1 < 32` holds for 0..30: a loop of 31, then iteration 31 as straight code. */
  REQUIRE(CHECK_EQ(1, loop_trips(&L.mir, trips, 8)));
  CHECK_EQ(31, trips[0]);
  CHECK_EQ(3, count_op(&L.mir, TILE_MOP_DMA)); /* prologue, the loop's, the copy out */
  CHECK_EQ(3, count_op(&L.mir, TILE_MOP_WAIT));
  CHECK_EQ(2, L.mir.nsems);
  /* No divide: rem by 2 is a mask. */
  CHECK(count_op(&L.mir, TILE_MOP_AND) >= 1);
  /* Waits name the VMEM buffers only: HBM is touched by DMAs alone, which keep order. */
  for (int32_t i = 0; i < L.mir.ninsts; i++) {
    const TileMirInst *in = &L.mir.insts[i];
    if (in->op != TILE_MOP_WAIT) continue;
    CHECK(in->mem[0].buf >= 0);
    for (int j = 0; j < TILE_MIR_MAX_MEM; j++)
      if (in->mem[j].buf >= 0) CHECK(L.mir.bufs[in->mem[j].buf].space != TILE_SPACE_HBM);
  }
  /* Bound buffers: in (read by DMAs only) and out (written only). */
  for (int32_t b = 0; b < L.mir.nbufs; b++) {
    if (strcmp(L.mir.bufs[b].name, "in") == 0) CHECK_EQ(TILE_BIND_IN, L.mir.bufs[b].bind);
    if (strcmp(L.mir.bufs[b].name, "out") == 0) CHECK_EQ(TILE_BIND_OUT, L.mir.bufs[b].bind);
  }
  lowered_free(&L);
}

TEST(gen_kernel, block_sum_runs_exactly) {
  enum { ROWS = 256, COLS = 128 };
  float *in = malloc(sizeof(float) * ROWS * COLS), out[8 * COLS], want[8 * COLS];
  REQUIRE(in != NULL);
  uint32_t s = 1;
  for (int i = 0; i < ROWS * COLS; i++) in[i] = randf(&s);
  memset(want, 0, sizeof want);
  for (int b = 0; b < ROWS / 8; b++)
    for (int i = 0; i < 8 * COLS; i++) want[i] += in[b * 8 * COLS + i];
  for (int k = 0; k < 2; k++) {
    const char *target = k ? "v5e-like" : "tiny";
    Bind bi = {"in", in, sizeof(float) * ROWS * COLS}, bo = {"out", out, sizeof out};
    memset(out, 0, sizeof out);
    REQUIRE(run_kernel(target, BLOCK_SUM, "block_sum", &bi, 1, &bo, 1, NULL));
    CHECK(memcmp(want, out, sizeof out) == 0);
  }
  free(in);
}

static const char *SCALE_IFS =
    "kernel @k(%in: hbm<64x128xf32>, %out: hbm<64x128xf32>) {\n"
    "  %buf = alloc : vmem<8x128xf32>\n"
    "  %sem = semaphore : sem\n"
    "  %two = constant {value = 2} : i32\n"
    "  %six = constant {value = 6} : i32\n"
    "  %eight = constant {value = 8} : i32\n"
    "  for %i = 0 to 8 step 1 {\n"
    "    %row = mul %i, %eight : i32\n"
    "    %a = dma_start %in[%row, 0], %buf[0, 0], %sem {shape = [8, 128]} : token\n"
    "    dma_wait %sem, %a\n"
    "    %x = load %buf[0, 0] : tensor<8x128xf32>\n"
    "    %lo = compare %i, %two {dir = lt} : i1\n"
    "    %hi = compare %i, %six {dir = ge} : i1\n"
    "    %y = if %lo : tensor<8x128xf32> {\n"
    "      %n = neg %x : tensor<8x128xf32>\n"
    "      yield %n\n"
    "    } else {\n"
    "      yield %x\n"
    "    }\n"
    "    %z = if %hi : tensor<8x128xf32> {\n"
    "      %d = add %y, %y : tensor<8x128xf32>\n"
    "      yield %d\n"
    "    } else {\n"
    "      yield %y\n"
    "    }\n"
    "    store %z, %buf[0, 0]\n"
    "    %b = dma_start %buf[0, 0], %out[%row, 0], %sem {shape = [8, 128]} : token\n"
    "    dma_wait %sem, %b\n"
    "  }\n"
    "  return\n"
    "}\n";

TEST(gen_kernel, ifs_split_the_loop_where_they_change) {
  Lowered L;
  lower_kernel(&L, "tiny", SCALE_IFS, "k");
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  int32_t trips[8];
  REQUIRE(CHECK_EQ(3, loop_trips(&L.mir, trips, 8))); /* 0..2, 2..6, 6..8 */
  CHECK_EQ(2, trips[0]);
  CHECK_EQ(4, trips[1]);
  CHECK_EQ(2, trips[2]);
  lowered_free(&L);

  float in[64 * 128], out[64 * 128];
  uint32_t s = 7;
  for (int i = 0; i < 64 * 128; i++) in[i] = randf(&s);
  Bind bi = {"in", in, sizeof in}, bo = {"out", out, sizeof out};
  REQUIRE(run_kernel("tiny", SCALE_IFS, "k", &bi, 1, &bo, 1, NULL));
  bool same = true;
  for (int i = 0; i < 64 * 128; i++) {
    int blk = i / (8 * 128);
    float w = blk < 2 ? -in[i] : in[i];
    if (blk >= 6) w = w + w;
    same &= memcmp(&w, &out[i], 4) == 0;
  }
  CHECK(same);
}

static const char *MATMUL =
    "kernel @mm(%a: hbm<128x256xbf16>, %b: hbm<256x128xbf16>, %c: hbm<128x128xf32>) {\n"
    "  %a_buf = alloc : vmem<128x128xbf16>\n"
    "  %b_buf = alloc : vmem<128x128xbf16>\n"
    "  %c_buf = alloc : vmem<128x128xf32>\n"
    "  %sem = semaphore : sem\n"
    "  %blk = constant {value = 128} : i32\n"
    "  %zero = constant {value = 0.0} : tensor<128x128xf32>\n"
    "  %acc_out = for %kk = 0 to 2 step 1 iter(%acc = %zero) : tensor<128x128xf32> {\n"
    "    %k0 = mul %kk, %blk : i32\n"
    "    %ta = dma_start %a[0, %k0], %a_buf[0, 0], %sem {shape = [128, 128]} : token\n"
    "    dma_wait %sem, %ta\n"
    "    %tb = dma_start %b[%k0, 0], %b_buf[0, 0], %sem {shape = [128, 128]} : token\n"
    "    dma_wait %sem, %tb\n"
    "    %at = load %a_buf[0, 0] : tensor<128x128xbf16>\n"
    "    %bt = load %b_buf[0, 0] : tensor<128x128xbf16>\n"
    "    %next = tile_matmul %at, %bt, %acc : tensor<128x128xf32>\n"
    "    yield %next\n"
    "  }\n"
    "  store %acc_out, %c_buf[0, 0]\n"
    "  %tc = dma_start %c_buf[0, 0], %c[0, 0], %sem {shape = [128, 128]} : token\n"
    "  dma_wait %sem, %tc\n"
    "  return\n"
    "}\n";

TEST(gen_kernel, matmul_accumulates_in_place) {
  Lowered L;
  lower_kernel(&L, "tiny", MATMUL, "mm");
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  /* One 128x128 weight block, rows split over tiny's two MXUs: each loads the weights. */
  CHECK_EQ(16, count_op(&L.mir, TILE_MOP_MXU_PUSH));
  CHECK_EQ(32, count_op(&L.mir, TILE_MOP_MXU_LDW));
  CHECK_EQ(16, count_op(&L.mir, TILE_MOP_MXU_POPACC));
  /* The operands stream from VMEM (views): a load per push and per weight group. */
  CHECK_EQ(16 + 32, count_op(&L.mir, TILE_MOP_VLDBF));
  /* The carried accumulator is popped into in place: no copies at the yield. */
  CHECK_EQ(0, count_op(&L.mir, TILE_MOP_VMOV));
  for (int32_t i = 0; i < L.mir.ninsts; i++)
    if (L.mir.insts[i].op == TILE_MOP_MXU_POPACC) CHECK_EQ(L.mir.insts[i].a, L.mir.insts[i].d);
  lowered_free(&L);
}

static uint16_t bf16_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static float float_of_bf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

TEST(gen_kernel, matmul_runs_within_tolerance) {
  enum { M = 128, K = 256, N = 128 };
  uint16_t *a = malloc(sizeof(uint16_t) * M * K), *b = malloc(sizeof(uint16_t) * K * N);
  float *c = malloc(sizeof(float) * M * N);
  REQUIRE(a && b && c);
  uint32_t s = 3;
  for (int i = 0; i < M * K; i++) a[i] = bf16_of(randf(&s) / 10);
  for (int i = 0; i < K * N; i++) b[i] = bf16_of(randf(&s) / 10);
  for (int k = 0; k < 2; k++) {
    Bind in[2] = {{"a", a, sizeof(uint16_t) * M * K}, {"b", b, sizeof(uint16_t) * K * N}};
    Bind out = {"c", c, sizeof(float) * M * N};
    REQUIRE(run_kernel(k ? "v5e-like" : "tiny", MATMUL, "mm", in, 2, &out, 1, NULL));
    double num = 0, den = 0;
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double w = 0;
        for (int q = 0; q < K; q++) w += (double)float_of_bf16(a[i * K + q]) * float_of_bf16(b[q * N + j]);
        num += (w - c[i * N + j]) * (w - c[i * N + j]);
        den += w * w;
      }
    CHECK(den > 0 && num / den <= 5e-4);
  }
  free(a);
  free(b);
  free(c);
}

/* Rows gathered through div and rem by 3: out block i is in block (i % 3) * 4 + i / 3. */
static const char *DIVREM =
    "kernel @g(%in: hbm<96x128xi32>, %out: hbm<96x128xi32>) {\n"
    "  %buf = alloc : vmem<8x128xi32>\n"
    "  %sem = semaphore : sem\n"
    "  %three = constant {value = 3} : i32\n"
    "  %four = constant {value = 4} : i32\n"
    "  %eight = constant {value = 8} : i32\n"
    "  for %i = 0 to 12 step 1 {\n"
    "    %q = div %i, %three : i32\n"
    "    %r = rem %i, %three : i32\n"
    "    %r4 = mul %r, %four : i32\n"
    "    %src = add %r4, %q : i32\n"
    "    %row = mul %src, %eight : i32\n"
    "    %orow = mul %i, %eight : i32\n"
    "    %a = dma_start %in[%row, 0], %buf[0, 0], %sem {shape = [8, 128]} : token\n"
    "    dma_wait %sem, %a\n"
    "    %b = dma_start %buf[0, 0], %out[%orow, 0], %sem {shape = [8, 128]} : token\n"
    "    dma_wait %sem, %b\n"
    "  }\n"
    "  return\n"
    "}\n";

TEST(gen_kernel, scalars_divide_by_constants) {
  Lowered L;
  lower_kernel(&L, "tiny", DIVREM, "g");
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  CHECK(count_op(&L.mir, TILE_MOP_SHRI) >= 1); /* a multiply by a reciprocal and a shift */
  lowered_free(&L);
  int32_t in[96 * 128], out[96 * 128];
  for (int i = 0; i < 96 * 128; i++) in[i] = i;
  Bind bi = {"in", in, sizeof in}, bo = {"out", out, sizeof out};
  REQUIRE(run_kernel("tiny", DIVREM, "g", &bi, 1, &bo, 1, NULL));
  bool same = true;
  for (int i = 0; i < 12; i++)
    same &= memcmp(&out[i * 8 * 128], &in[((i % 3) * 4 + i / 3) * 8 * 128], 8 * 128 * 4) == 0;
  CHECK(same);
}

/* Two carried tiles that swap every iteration: the yield copies through temporaries. */
static const char *SWAP =
    "kernel @s(%x: hbm<8x128xf32>, %y: hbm<8x128xf32>, %out: hbm<16x128xf32>) {\n"
    "  %buf = alloc : vmem<16x128xf32>\n"
    "  %sem = semaphore : sem\n"
    "  %t0 = dma_start %x[0, 0], %buf[0, 0], %sem {shape = [8, 128]} : token\n"
    "  dma_wait %sem, %t0\n"
    "  %t1 = dma_start %y[0, 0], %buf[8, 0], %sem {shape = [8, 128]} : token\n"
    "  dma_wait %sem, %t1\n"
    "  %a0 = load %buf[0, 0] : tensor<8x128xf32>\n"
    "  %b0 = load %buf[8, 0] : tensor<8x128xf32>\n"
    "  %a, %b = for %i = 0 to 3 step 1 iter(%p = %a0, %q = %b0) : tensor<8x128xf32>, "
    "tensor<8x128xf32> {\n"
    "    yield %q, %p\n"
    "  }\n"
    "  store %a, %buf[0, 0]\n"
    "  store %b, %buf[8, 0]\n"
    "  %t2 = dma_start %buf[0, 0], %out[0, 0], %sem {shape = [16, 128]} : token\n"
    "  dma_wait %sem, %t2\n"
    "  return\n"
    "}\n";

TEST(gen_kernel, carried_values_swap) {
  float x[8 * 128], y[8 * 128], out[16 * 128];
  for (int i = 0; i < 8 * 128; i++) x[i] = (float)i, y[i] = (float)-i - 1;
  Bind in[2] = {{"x", x, sizeof x}, {"y", y, sizeof y}};
  Bind bo = {"out", out, sizeof out};
  REQUIRE(run_kernel("tiny", SWAP, "s", in, 2, &bo, 1, NULL));
  /* Three swaps: out holds y then x. */
  CHECK(memcmp(out, y, sizeof y) == 0);
  CHECK(memcmp(out + 8 * 128, x, sizeof x) == 0);
}

/* ---- what is refused, and where ---- */

typedef struct Refusal {
  const char *what, *src, *where, *says;
} Refusal;

static const Refusal REFUSALS[] = {
    {"a condition read from memory",
     "kernel @k(%in: hbm<8x128xf32>) {\n"
     "  %s = alloc : smem<4xi32>\n"
     "  %n = load %s[0] : i32\n"
     "  %c0 = constant {value = 0} : i32\n"
     "  %p = compare %n, %c0 {dir = gt} : i1\n"
     "  if %p {\n"
     "  }\n"
     "  return\n"
     "}\n",
     "<test>:6:3: error", "known only at run time"},
    {"a buffer larger than VMEM",
     "kernel @k(%in: hbm<8x128xf32>) {\n"
     "  %buf = alloc : vmem<4096x128xf32>\n"
     "  return\n"
     "}\n",
     "<test>:2:10: error", "more than the target's 1048576 bytes of VMEM"},
    {"a tensor op with no tile lowering",
     "kernel @k(%in: hbm<8x128xf32>) {\n"
     "  %buf = alloc : vmem<8x128xf32>\n"
     "  %x = load %buf[0, 0] : tensor<8x128xf32>\n"
     "  %r = reduce %x {kind = add, dims = [0]} : tensor<128xf32>\n"
     "  return\n"
     "}\n",
     "<test>:4:8: error", "cannot lower 'reduce'"},
    {"a tile larger than half the registers",
     "kernel @k(%in: hbm<8x128xf32>) {\n"
     "  %buf = alloc : vmem<256x128xf32>\n"
     "  %x = load %buf[0, 0] : tensor<256x128xf32>\n"
     "  store %x, %buf[0, 0]\n"
     "  return\n"
     "}\n",
     "<test>:3:8: error", "takes 32 vector registers"},
    {"a tile that is not whole vregs",
     "kernel @k(%in: hbm<8x128xf32>) {\n"
     "  %buf = alloc : vmem<8x64xf32>\n"
     "  %x = load %buf[0, 0] : tensor<8x64xf32>\n"
     "  return\n"
     "}\n",
     "<test>:3:8: error", "not whole vector registers"},
    {"a divisor known at run time",
     "kernel @k(%in: hbm<8x128xf32>) {\n"
     "  %s = alloc : smem<4xi32>\n"
     "  %n = load %s[0] : i32\n"
     "  %q = div %n, %n : i32\n"
     "  store %q, %s[1]\n"
     "  return\n"
     "}\n",
     "<test>:4:8: error", "no divide"},
    {"a parameter that is not in HBM",
     "kernel @k(%a: vmem<8x128xf32>) {\n"
     "  return\n"
     "}\n",
     "<test>:1:11: error", "kernel parameters are hbm buffers"},
    {"an if that changes at every iteration of a long loop",
     "kernel @k(%in: hbm<8x128xf32>) {\n"
     "  %s = alloc : smem<4xi32>\n"
     "  %two = constant {value = 2} : i32\n"
     "  %z = constant {value = 0} : i32\n"
     "  for %i = 0 to 200 step 1 {\n"
     "    %r = rem %i, %two : i32\n"
     "    %c = compare %r, %z {dir = eq} : i1\n"
     "    if %c {\n"
     "      store %i, %s[0]\n"
     "    }\n"
     "  }\n"
     "  return\n"
     "}\n",
     "<test>:8:5: error", "at most 64 pieces"},
    {"a DMA to another chip",
     "mesh @m = torus<2>(x)\n"
     "kernel @k(%in: hbm<8x128xf32>) attributes {mesh = @m} {\n"
     "  %buf = alloc : vmem<8x128xf32>\n"
     "  %sem = semaphore : sem\n"
     "  %t = dma_start %in[0, 0], %buf[0, 0], %sem {shape = [8, 128], peer = (x, 1)} : token\n"
     "  return\n"
     "}\n",
     "<test>:5:8: error", "another chip"},
};

TEST(gen_kernel, refusals_name_the_op) {
  for (size_t i = 0; i < sizeof REFUSALS / sizeof REFUSALS[0]; i++) {
    const Refusal *r = &REFUSALS[i];
    Lowered L;
    lower_kernel(&L, "tiny", r->src, "k");
    bool ok = CHECK(!L.ok && L.m != NULL);
    ok &= CHECK(strstr(L.err, r->where) != NULL);
    ok &= CHECK(strstr(L.err, r->says) != NULL);
    if (!ok) fprintf(stderr, "refusal '%s' gave: %s\n", r->what, L.err);
    lowered_free(&L);
  }
}
