/* The matmul generator (backend-vliw/gen_matmul*.c): the MIR it makes verifies and
 * schedules on both test targets, pushes exactly the MXU tiles the shape needs, pops
 * what it pushes, pipelines the row loops at one push per unit every mxu_push_cycles on
 * v5e-like, keeps its semaphores balanced, zeroes K padding, fuses a bias row and a
 * splat scale, folds a bias and gelu's ops into fewer (and gets gelu's values), and
 * refuses what it cannot lower with a sentence at the op. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compile_fixture.h"
#include "tile/ops.h"

/* Semaphore balance: every dma signals its descriptor's semaphore once; every wait
 * takes one. A dma names the SMEM buffer it reads its descriptor from: one descriptor
 * (a DMA site, reused) or a table the code walks in order, one descriptor per issue.
 * Counted per semaphore from the descriptors' initial words. */
static bool sems_balanced(const TileMir *m) {
  int64_t *bal = calloc((size_t)m->nsems + 1, sizeof(int64_t));
  int64_t *issued = calloc((size_t)m->nbufs + 1, sizeof(int64_t));
  int64_t mult[8] = {1};
  int depth = 0;
  bool ok = true;
  /* walk loops by expanding them: fine for the small shapes tested here */
  int32_t stack[8], trip[8];
  for (int32_t i = 0; i < m->ninsts; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MIR_LOOP_BEGIN) {
      stack[depth] = i;
      trip[depth] = in->imm;
      mult[depth + 1] = mult[depth] * in->imm;
      depth++;
    } else if (in->op == TILE_MIR_LOOP_END) {
      if (--trip[depth - 1] > 0) {
        i = stack[depth - 1];
        continue;
      }
      depth--;
    } else if (in->op == TILE_MOP_WAIT) {
      bal[in->c] -= in->imm;
    } else if (in->op == TILE_MOP_SIGNAL) {
      bal[in->c] += in->imm;
    } else if (in->op == TILE_MOP_DMA) {
      for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
        int32_t b = in->mem[k].buf;
        if (b < 0 || m->bufs[b].space != TILE_SPACE_SMEM || !m->bufs[b].init) continue;
        int64_t entries = m->bufs[b].init_len / 64, e = entries > 1 ? issued[b]++ : 0;
        if (e >= entries) ok = false; /* more issues than descriptors */
        const uint8_t *w = m->bufs[b].init + (e % entries) * 64 + 14 * 4;
        int32_t sem = (int32_t)(w[0] | w[1] << 8 | w[2] << 16 | (uint32_t)w[3] << 24);
        if (sem >= 0 && sem < m->nsems) bal[sem]++;
      }
    }
  }
  for (int32_t s = 0; s < m->nsems; s++) ok = ok && bal[s] == 0;
  free(bal);
  free(issued);
  return ok;
}

static const char *MM_64x256x256 =
    "func @mm(%a: tensor<64x256xbf16>, %b: tensor<256x256xbf16>) -> tensor<64x256xbf16> {\n"
    "  %c = matmul %a, %b : tensor<64x256xf32>\n"
    "  %r = convert %c : tensor<64x256xbf16>\n"
    "  return %r\n"
    "}\n";

TEST(gen_matmul, lowers_and_schedules_on_both_targets) {
  const char *targets[] = {"tiny", "v5e-like"};
  for (int i = 0; i < 2; i++) {
    Lowered L;
    lower_text(&L, targets[i], MM_64x256x256);
    if (!L.ok) fprintf(stderr, "%s: %s\n", targets[i], L.err);
    REQUIRE(L.ok);
    /* 8 row tiles x 2 K tiles x 2 N tiles, each pushed once. */
    CHECK_EQ(8 * 2 * 2, dyn_count(&L.mir, TILE_MOP_MXU_PUSH));
    CHECK_EQ(dyn_count(&L.mir, TILE_MOP_MXU_PUSH),
             dyn_count(&L.mir, TILE_MOP_MXU_POP) + dyn_count(&L.mir, TILE_MOP_MXU_POPACC));
    /* Every weight tile is 16 ldw, loaded once per block. */
    CHECK_EQ(0, dyn_count(&L.mir, TILE_MOP_MXU_LDW) % 16);
    CHECK(sems_balanced(&L.mir));
    TileMirCode code;
    CHECK(schedules(&L, &code));
    tile_mir_code_free(&code);
    lowered_free(&L);
  }
}

TEST(gen_matmul, row_loop_pipelines_at_push_rate) {
  Lowered L;
  lower_text(&L, "v5e-like",
             "func @mm(%a: tensor<512x512xbf16>, %b: tensor<512x256xbf16>) -> tensor<512x256xf32> {\n"
             "  %c = matmul %a, %b : tensor<512x256xf32>\n"
             "  return %c\n"
             "}\n");
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  int pipelined = 0;
  for (int32_t i = 0; i < L.mir.ninsts; i++)
    if (L.mir.insts[i].op == TILE_MIR_LOOP_BEGIN && (L.mir.insts[i].a & TILE_MIR_PIPELINE))
      pipelined++;
  CHECK(pipelined >= 2); /* row loops: pops trailing pushes, within and across blocks */
  TileMirCode code;
  REQUIRE(schedules(&L, &code));
  /* Every software-pipelined loop that pushes runs at one push per unit per push period;
   * the loops around blocks (res_mii 0) are plain. */
  int at_rate = 0;
  for (int32_t i = 0; i < code.nloops; i++) {
    if (code.loops[i].res_mii == 0) continue;
    bool pushes = false;
    for (int32_t b = code.loops[i].first; b <= code.loops[i].last; b++)
      for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) pushes |= code.b[b].slot[w].op == TILE_MOP_MXU_PUSH;
    if (!pushes) continue;
    CHECK_EQ(L.t.mxu_push_cycles, code.loops[i].ii);
    at_rate++;
  }
  CHECK(at_rate >= 2);
  tile_mir_code_free(&code);
  lowered_free(&L);
}

TEST(gen_matmul, k_padding_is_zeroed_and_edges_overlap) {
  Lowered L;
  lower_text(&L, "tiny",
             "func @mm(%a: tensor<100x300xbf16>, %b: tensor<300x200xbf16>) -> tensor<100x200xf32> {\n"
             "  %c = matmul %a, %b : tensor<100x200xf32>\n"
             "  return %c\n"
             "}\n");
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  /* K = 300 pads to 384: the edge buffers are cleared with stores of a zero vreg. */
  bool zero = false;
  for (int32_t i = 0; i < L.mir.ninsts; i++)
    zero = zero || (L.mir.insts[i].op == TILE_MOP_VLI && L.mir.insts[i].imm == 0);
  CHECK(zero);
  /* ... in the slabs and weight pieces of the padded last K step */
  bool a = false, b = false;
  for (int32_t i = 0; i < L.mir.ninsts; i++) {
    const TileMirInst *in = &L.mir.insts[i];
    if (in->op != TILE_MOP_VST && in->op != TILE_MOP_VSTBF) continue;
    a = a || !strcmp(L.mir.bufs[in->mem[0].buf].name, "matmul.a");
    b = b || !strcmp(L.mir.bufs[in->mem[0].buf].name, "matmul.b");
  }
  CHECK(a && b);
  CHECK(sems_balanced(&L.mir));
  TileMirCode code;
  CHECK(schedules(&L, &code));
  tile_mir_code_free(&code);
  lowered_free(&L);
}

TEST(gen_matmul, fuses_bias_row_and_scale) {
  Lowered L;
  lower_text(&L, "tiny",
             "func @mm(%a: tensor<2x64x128xbf16>, %b: tensor<2x128x256xbf16>,\n"
             "         %bias: tensor<256xf32>) -> tensor<2x64x256xf32> {\n"
             "  %c = matmul %a, %b {group = 0} : tensor<2x64x256xf32>\n"
             "  %bb = broadcast %bias {dims = [2], group = 0} : tensor<2x64x256xf32>\n"
             "  %s = constant {value = 0.5} : tensor<2x64x256xf32>\n"
             "  %y = add %c, %bb {group = 0} : tensor<2x64x256xf32>\n"
             "  %z = mul %y, %s {group = 0} : tensor<2x64x256xf32>\n"
             "  return %z\n"
             "}\n");
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  /* The bias row is read with sublane stride 0 from a VMEM copy. */
  bool row = false;
  for (int32_t b = 0; b < L.mir.nbufs; b++) row = row || !strcmp(L.mir.bufs[b].name, "matmul.row");
  CHECK(row);
  /* The bias starts each tile's sum (popacc from the row): no vector add is left */
  CHECK_EQ(0, dyn_count(&L.mir, TILE_MOP_VADDF));
  CHECK(sems_balanced(&L.mir));
  TileMirCode code;
  CHECK(schedules(&L, &code));
  tile_mir_code_free(&code);
  lowered_free(&L);
}

TEST(gen_matmul, refuses_dot_general_not_in_matmul_form) {
  Lowered L;
  lower_text(&L, "tiny",
             "func @mm(%a: tensor<64x128xbf16>, %b: tensor<256x128xbf16>) -> tensor<64x256xf32> {\n"
             "  %c = dot_general %a, %b {lhs_batch = [], rhs_batch = [], lhs_contract = [1],\n"
             "                           rhs_contract = [1]} : tensor<64x256xf32>\n"
             "  return %c\n"
             "}\n");
  CHECK(!L.ok);
  CHECK(strstr(L.err, "matmul form") != NULL);
  lowered_free(&L);
}

TEST(gen_matmul, refuses_integer_inputs) {
  Lowered L;
  lower_text(&L, "tiny",
             "func @mm(%a: tensor<8x128xi32>, %b: tensor<128x128xi32>) -> tensor<8x128xi32> {\n"
             "  %c = matmul %a, %b : tensor<8x128xi32>\n"
             "  return %c\n"
             "}\n");
  CHECK(!L.ok);
  CHECK(strstr(L.err, "bf16 or f32") != NULL);
  lowered_free(&L);
}

/* A bias and scale epilogue: its constants are made once before the loops (a fixed number
 * of vli, however many result tiles), and the final convert to bf16 costs no vector op
 * (vst.bf16 rounds the same way), so the only vrnd.bf16 would be an intermediate's. */
TEST(gen_matmul, epilogue_constants_hoisted_and_stored_convert_free) {
  static const char *src =
      "func @f(%x: tensor<256x256xbf16>, %w: tensor<256x512xbf16>, %bias: tensor<512xf32>)\n"
      "    -> tensor<256x512xbf16> {\n"
      "  %h = matmul %x, %w {group = 0} : tensor<256x512xf32>\n"
      "  %b = broadcast %bias {dims = [1], group = 0} : tensor<256x512xf32>\n"
      "  %z = add %h, %b {group = 0} : tensor<256x512xf32>\n"
      "  %s = mul %z, %z {group = 0} : tensor<256x512xf32>\n"
      "  %k = constant {value = 0.5} : tensor<256x512xf32>\n"
      "  %c = mul %s, %k {group = 0} : tensor<256x512xf32>\n"
      "  %y = convert %c {group = 0} : tensor<256x512xbf16>\n"
      "  return %y\n"
      "}\n";
  const char *targets[] = {"tiny", "v5e-like"};
  for (int i = 0; i < 2; i++) {
    Lowered L;
    lower_text(&L, targets[i], src);
    if (!L.ok) fprintf(stderr, "%s: %s\n", targets[i], L.err);
    REQUIRE(L.ok);
    CHECK_EQ(0, dyn_count(&L.mir, TILE_MOP_VRNDBF));
    CHECK(dyn_count(&L.mir, TILE_MOP_VLI) <= 4);
    CHECK(sems_balanced(&L.mir));
    TileMirCode code;
    CHECK(schedules(&L, &code));
    tile_mir_code_free(&code);
    lowered_free(&L);
  }
}

/* Several chunks and K steps: the final block, peeled from its loops, copies its rows
 * out in smaller pieces; every copy still signals once and is waited for once. */
TEST(gen_matmul, final_block_copies_balance) {
  static const char *src =
      "func @f(%a: tensor<2x200x640xbf16>, %b: tensor<640x700xbf16>) -> tensor<2x200x700xf32> {\n"
      "  %c = matmul %a, %b : tensor<2x200x700xf32>\n"
      "  return %c\n"
      "}\n";
  const char *targets[] = {"tiny", "v5e-like"};
  for (int i = 0; i < 2; i++) {
    Lowered L;
    lower_text(&L, targets[i], src);
    if (!L.ok) fprintf(stderr, "%s: %s\n", targets[i], L.err);
    REQUIRE(L.ok);
    CHECK_EQ(dyn_count(&L.mir, TILE_MOP_MXU_PUSH),
             dyn_count(&L.mir, TILE_MOP_MXU_POP) + dyn_count(&L.mir, TILE_MOP_MXU_POPACC));
    CHECK(sems_balanced(&L.mir));
    TileMirCode code;
    CHECK(schedules(&L, &code));
    tile_mir_code_free(&code);
    lowered_free(&L);
  }
}

/* Long blocks on v5e-like (2 x 2 units, 75 and 128 row tiles): the K groups switch
 * weights at different steps, each while the other keeps pushing, and the straight-line
 * steps around a switch still pop exactly what was pushed. In program order some pushes
 * to the second group's units fall between the first group's weight loads of a block and
 * the second group's. */
TEST(gen_matmul, staggered_weight_switches) {
  static const char *srcs[] = {
      "func @f(%a: tensor<1024x512xbf16>, %b: tensor<512x512xbf16>) -> tensor<1024x512xbf16> {\n"
      "  %c = matmul %a, %b : tensor<1024x512xbf16>\n"
      "  return %c\n"
      "}\n",
      "func @f(%a: tensor<2x600x777xbf16>, %b: tensor<2x777x300xbf16>) -> tensor<2x600x300xf32> {\n"
      "  %c = matmul %a, %b : tensor<2x600x300xf32>\n"
      "  return %c\n"
      "}\n"};
  int64_t pushes[] = {128 * 4 * 4, 2 * 75 * 7 * 3};
  for (int i = 0; i < 2; i++) {
    Lowered L;
    lower_text(&L, "v5e-like", srcs[i]);
    if (!L.ok) fprintf(stderr, "%s\n", L.err);
    REQUIRE(L.ok);
    /* every row tile of every weight tile once (N = 300 overlaps its last tile) */
    if (i == 0) CHECK_EQ(pushes[i], dyn_count(&L.mir, TILE_MOP_MXU_PUSH));
    CHECK_EQ(dyn_count(&L.mir, TILE_MOP_MXU_PUSH),
             dyn_count(&L.mir, TILE_MOP_MXU_POP) + dyn_count(&L.mir, TILE_MOP_MXU_POPACC));
    CHECK_EQ(0, dyn_count(&L.mir, TILE_MOP_MXU_LDW) % 16);
    int32_t units = L.t.mxu_count, half = units / 2;
    bool staggered = false;
    int32_t last_ldw_group = -1;
    bool push_between = false;
    for (int32_t k = 0; k < L.mir.ninsts; k++) {
      const TileMirInst *in = &L.mir.insts[k];
      if (in->op == TILE_MOP_MXU_LDW) {
        int32_t grp = in->c < half ? 0 : 1;
        if (last_ldw_group == 0 && grp == 1 && push_between) staggered = true;
        if (grp != last_ldw_group) push_between = false;
        last_ldw_group = grp;
      } else if (in->op == TILE_MOP_MXU_PUSH && in->c >= half) {
        push_between = true;
      }
    }
    CHECK(staggered);
    CHECK(sems_balanced(&L.mir));
    TileMirCode code;
    REQUIRE(schedules(&L, &code));
    /* the row loops still push at the MXU's rate */
    int at_rate = 0;
    for (int32_t l = 0; l < code.nloops; l++)
      if (code.loops[l].res_mii > 0 && code.loops[l].ii == L.t.mxu_push_cycles) at_rate++;
    CHECK(at_rate >= 2);
    tile_mir_code_free(&code);
    lowered_free(&L);
  }
}

/* ---- a bias and gelu epilogue, run ---- */

static uint16_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float bf16_value(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Deterministic values in [-scale, scale). */
static float wave(int64_t i, int64_t salt, float scale) {
  uint64_t h = (uint64_t)(i * 2654435761u + salt * 40503u) * 0x9e3779b97f4a7c15ull;
  return scale * ((float)(h >> 40) / (float)(1u << 24) * 2.0f - 1.0f);
}

/* y = x w in f32 on `target`, or gelu(x w + bias) when `gelu`; its error against
 * float64 (NMSE), or a negative number when it did not compile or run. */
static double matmul_nmse(const char *target, int64_t M, int64_t K, int64_t N, bool gelu) {
  char src[1024];
  long long m = M, k = K, n = N;
  if (gelu)
    snprintf(src, sizeof src,
             "func @f(%%x: tensor<%lldx%lldxbf16>, %%w: tensor<%lldx%lldxbf16>, %%bias: tensor<%lldxf32>)\n"
             "    -> tensor<%lldx%lldxf32> {\n"
             "  %%h = matmul %%x, %%w : tensor<%lldx%lldxf32>\n"
             "  %%b = broadcast %%bias {dims = [1]} : tensor<%lldx%lldxf32>\n"
             "  %%z = add %%h, %%b : tensor<%lldx%lldxf32>\n"
             "  %%y = gelu %%z : tensor<%lldx%lldxf32>\n"
             "  return %%y\n"
             "}\n",
             m, k, k, n, n, m, n, m, n, m, n, m, n, m, n);
  else
    snprintf(src, sizeof src,
             "func @f(%%x: tensor<%lldx%lldxbf16>, %%w: tensor<%lldx%lldxbf16>, %%bias: tensor<%lldxf32>)\n"
             "    -> tensor<%lldx%lldxf32> {\n"
             "  %%h = matmul %%x, %%w : tensor<%lldx%lldxf32>\n"
             "  return %%h\n"
             "}\n",
             m, k, k, n, n, m, n, m, n);
  TileTarget t;
  if (!target_for(target, "1", &t)) return -1;
  TileObject obj;
  double err = -1;
  uint16_t *x = malloc(sizeof *x * (size_t)(M * K)), *w = malloc(sizeof *w * (size_t)(K * N));
  float *bias = malloc(sizeof *bias * (size_t)N), *y = malloc(sizeof *y * (size_t)(M * N));
  for (int64_t i = 0; i < M * K; i++) x[i] = bf16_bits(wave(i, 1, 1.0f));
  for (int64_t i = 0; i < K * N; i++) w[i] = bf16_bits(wave(i, 2, 0.2f));
  /* a bias as large as the products, so one left out or added twice shows */
  for (int64_t i = 0; i < N; i++) bias[i] = wave(i, 3, 3.0f);
  if (compile_text(&t, src, NULL, NULL, 0, &obj)) {
    TileEmu *e = emu_for(&obj, &t);
    if (e && tile_emu_set_input(e, "x", x, sizeof *x * (size_t)(M * K)) &&
        tile_emu_set_input(e, "w", w, sizeof *w * (size_t)(K * N)) &&
        (!gelu || tile_emu_set_input(e, "bias", bias, sizeof *bias * (size_t)N)) &&
        emu_run(e) == TILE_EMU_OK &&
        tile_emu_get_output(e, "result", y, sizeof *y * (size_t)(M * N))) {
      double num = 0, den = 0;
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
          double z = bias[j];
          for (int64_t k = 0; k < K; k++)
            z += (double)bf16_value(x[i * K + k]) * (double)bf16_value(w[k * N + j]);
          if (!gelu) z -= bias[j];
          double g = !gelu ? z : 0.5 * z * (1 + tanh(0.7978845608028654 * (z + 0.044715 * z * z * z)));
          double d = (double)y[i * N + j] - g;
          num += isnan(y[i * N + j]) ? INFINITY : d * d;
          den += g * g;
        }
      err = num / den;
    }
    tile_emu_free(e);
  }
  tile_object_free(&obj);
  free(x);
  free(w);
  free(bias);
  free(y);
  return err;
}

/* A bias and gelu (tanh form) on the matmul: the bias starts each tile's sum (in the
 * first K step, or the only one) and gelu's seven f32 ops per tile leave five vector
 * ops and a transcendental, two of them vfma; the values agree with float64 within f32
 * rounding on both targets, with several K steps (padded) and with one. */
TEST(gen_matmul, bias_gelu_folds_and_computes) {
  /* gelu as the decompose pass writes it, in the matmul's group */
  static const char *src =
      "func @f(%x: tensor<64x384xbf16>, %w: tensor<384x256xbf16>, %bias: tensor<256xf32>)\n"
      "    -> tensor<64x256xf32> {\n"
      "  %h = matmul %x, %w {group = 0} : tensor<64x256xf32>\n"
      "  %b = broadcast %bias {dims = [1], group = 0} : tensor<64x256xf32>\n"
      "  %z = add %h, %b {group = 0} : tensor<64x256xf32>\n"
      "  %k = constant {value = 0.044715} : tensor<64x256xf32>\n"
      "  %c = constant {value = 0.7978845608028654} : tensor<64x256xf32>\n"
      "  %one = constant {value = 1.0} : tensor<64x256xf32>\n"
      "  %half = constant {value = 0.5} : tensor<64x256xf32>\n"
      "  %z2 = mul %z, %z {group = 0} : tensor<64x256xf32>\n"
      "  %z3 = mul %z2, %z {group = 0} : tensor<64x256xf32>\n"
      "  %kz3 = mul %z3, %k {group = 0} : tensor<64x256xf32>\n"
      "  %in = add %z, %kz3 {group = 0} : tensor<64x256xf32>\n"
      "  %u = mul %in, %c {group = 0} : tensor<64x256xf32>\n"
      "  %t = tanh %u {group = 0} : tensor<64x256xf32>\n"
      "  %t1 = add %t, %one {group = 0} : tensor<64x256xf32>\n"
      "  %hz = mul %z, %half {group = 0} : tensor<64x256xf32>\n"
      "  %y = mul %hz, %t1 {group = 0} : tensor<64x256xf32>\n"
      "  return %y\n"
      "}\n";
  Lowered L;
  lower_with(&L, "v5e-like", src, (LowerOptions){.verify = true});
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  int64_t tiles = (64 / 8) * (256 / 128);
  CHECK_EQ(0, dyn_count(&L.mir, TILE_MOP_VADDF));
  CHECK_EQ(2 * tiles, dyn_count(&L.mir, TILE_MOP_VFMAF));
  CHECK_EQ(tiles, dyn_count(&L.mir, TILE_MOP_VTANH));
  CHECK_EQ(4 * tiles, dyn_count(&L.mir, TILE_MOP_VMULF));
  CHECK(sems_balanced(&L.mir));
  lowered_free(&L);
  const char *targets[] = {"tiny", "v5e-like"};
  for (int i = 0; i < 2; i++) {
    double several = matmul_nmse(targets[i], 64, 384, 256, true);
    double one = matmul_nmse(targets[i], 40, 128, 384, true);
    fprintf(stderr, "%s: bias + gelu NMSE %.3g (K steps), %.3g (one)\n", targets[i], several, one);
    CHECK(several >= 0 && several <= 1e-9);
    CHECK(one >= 0 && one <= 1e-9);
  }
}

/* An f32 result wider than three column chunks, K in several steps, blocks of 16 row
 * tiles: A is held in VMEM (its copy out would outlast a K step's pushes) and the first
 * chunk spans two column chunks, its K steps running both blocks on one slab, each
 * block copying half of the next. Every copy is still waited for once, pops match
 * pushes, and the values are the products' (the last column chunk overlapping the one
 * before, K padded). */
TEST(gen_matmul, held_a_lead_chunk_spans_two) {
  static const char *src =
      "func @f(%a: tensor<128x400xbf16>, %b: tensor<400x900xbf16>) -> tensor<128x900xf32> {\n"
      "  %c = matmul %a, %b : tensor<128x900xf32>\n"
      "  return %c\n"
      "}\n";
  Lowered L;
  lower_text(&L, "v5e-like", src);
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  CHECK_EQ(dyn_count(&L.mir, TILE_MOP_MXU_PUSH),
           dyn_count(&L.mir, TILE_MOP_MXU_POP) + dyn_count(&L.mir, TILE_MOP_MXU_POPACC));
  CHECK(sems_balanced(&L.mir));
  /* A is copied once: 128 rows of 400 bf16 (the padded step's rows only to K's end) */
  int64_t abytes = 0, halves = 0;
  for (int32_t b = 0; b < L.mir.nbufs; b++)
    if (!strcmp(L.mir.bufs[b].name, "matmul.adesc") || !strcmp(L.mir.bufs[b].name, "matmul.a0desc"))
      for (int64_t e = 0; e < L.mir.bufs[b].init_len / 64; e++) {
        /* words 6 and 7: bytes per run, runs (a placeholder moves 4 bytes once) */
        const uint8_t *w = L.mir.bufs[b].init + e * 64 + 6 * 4;
        uint32_t c0 = w[0] | w[1] << 8 | w[2] << 16 | (uint32_t)w[3] << 24;
        uint32_t c1 = w[4] | w[5] << 8 | w[6] << 16 | (uint32_t)w[7] << 24;
        if (c0 > 4) abytes += (int64_t)c0 * c1;
        halves += c0 > 4 && c1 == 64 && !strcmp(L.mir.bufs[b].name, "matmul.adesc");
      }
  CHECK_EQ(128 * 400 * 2, abytes);
  /* the second K step's slab comes in two halves, one from each block of the first */
  CHECK_EQ(2, halves);
  lowered_free(&L);
  const char *targets[] = {"tiny", "v5e-like"};
  for (int i = 0; i < 2; i++) {
    double e = matmul_nmse(targets[i], 128, 400, 900, false);
    fprintf(stderr, "%s: 128x400x900 NMSE %.3g\n", targets[i], e);
    CHECK(e >= 0 && e <= 1e-12);
  }
}

/* Blocks of a few row tiles (T = 8 here) emit their row steps straight-line: as a
 * loop, a step with the epilogue's pops would span more pipeline stages than the loop
 * has trips, and an unpipelined loop runs each step alone. Longer blocks keep their
 * pipelined row loops. */
TEST(gen_matmul, short_blocks_rows_straight_line) {
  static const char *fmt =
      "func @f(%%x: tensor<%dx256xbf16>, %%w: tensor<256x512xbf16>) -> tensor<%dx512xf32> {\n"
      "  %%h = matmul %%x, %%w {group = 0} : tensor<%dx512xf32>\n"
      "  %%t = tanh %%h {group = 0} : tensor<%dx512xf32>\n"
      "  return %%t\n"
      "}\n";
  int rows[] = {64, 256};
  for (int i = 0; i < 2; i++) {
    char src[512];
    snprintf(src, sizeof src, fmt, rows[i], rows[i], rows[i], rows[i]);
    Lowered L;
    lower_text(&L, "v5e-like", src);
    if (!L.ok) fprintf(stderr, "%s\n", L.err);
    REQUIRE(L.ok);
    int pipelined = 0;
    for (int32_t k = 0; k < L.mir.ninsts; k++)
      pipelined += L.mir.insts[k].op == TILE_MIR_LOOP_BEGIN && (L.mir.insts[k].a & TILE_MIR_PIPELINE);
    if (i == 0) CHECK_EQ(0, pipelined);
    else CHECK(pipelined > 0);
    CHECK_EQ(dyn_count(&L.mir, TILE_MOP_MXU_PUSH),
             dyn_count(&L.mir, TILE_MOP_MXU_POP) + dyn_count(&L.mir, TILE_MOP_MXU_POPACC));
    CHECK(sems_balanced(&L.mir));
    TileMirCode code;
    CHECK(schedules(&L, &code));
    tile_mir_code_free(&code);
    lowered_free(&L);
  }
}
