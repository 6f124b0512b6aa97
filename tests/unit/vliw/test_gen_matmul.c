/* The matmul generator (backend-vliw/gen_matmul*.c): the MIR it makes verifies and
 * schedules on both test targets, pushes exactly the MXU tiles the shape needs, pops
 * what it pushes, pipelines the row loops at one push per unit every mxu_push_cycles on
 * v5e-like, keeps its semaphores balanced, zeroes K padding, fuses a bias row and a
 * splat scale, and refuses what it cannot lower with a sentence at the op. */
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
  CHECK(dyn_count(&L.mir, TILE_MOP_VADDF) >= 2 * 8 * 2);
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
