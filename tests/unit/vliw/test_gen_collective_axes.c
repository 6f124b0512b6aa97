/* Collectives over mesh axes that share a torus dim or span several
 * (backend-vliw/gen_collective*.c), through the whole pipeline and the emulator in
 * strict mode: two axes on one dim keep their rings' arrivals on semaphores of their
 * own (with one pair for both, the rings of a sum over both axes take each other's
 * arrivals and read slots not yet written), positions follow docs/tile-ir.md
 * ("Modules": the first declared axis of a dim is major; a spanning axis is row-major
 * in the order it lists its dims), and every semaphore ends at zero. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compile_fixture.h"

enum { CHIPS = 16, ELEMS = 64 * 512, PELEMS = 8 * 128 };

/* On a 4x4 torus dp and tp share dim 0 (coordinate c0: dp = c0 / 2, tp = c0 mod 2).
 * The sum over [dp, tp] runs both axes' rings in one step loop (parts in rotated axis
 * orders), large enough that each chunk goes in pipelined sub-chunks. */
static const char *shared_src =
    "mesh @m = torus<4x4>(dp = 2 on [0], tp = 2 on [0], y = 4 on [1])\n"
    "func @f(%a: tensor<64x512xf32>) -> tensor<256x512xf32> attributes {mesh = @m} {\n"
    "  %b = all_reduce %a {kind = add, axes = [dp, tp]} : tensor<64x512xf32>\n"
    "  %s = all_reduce %a {kind = add, axes = [tp]} : tensor<64x512xf32>\n"
    "  %t = all_reduce %s {kind = max, axes = [dp]} : tensor<64x512xf32>\n"
    "  %u = add %t, %b : tensor<64x512xf32>\n"
    "  %g = all_gather %u {dim = 0, axes = [dp, tp]} : tensor<256x512xf32>\n"
    "  return %g\n"
    "}\n";

static float in_value(int chip, int i) { return (float)((chip * 5 + i * 3) % 19 - 9); }

/* Compiles src for tiny on `torus`, runs it in strict mode on input `a` and reads its
 * result into `out`. Returns the emulator (its semaphores are still to check), or NULL
 * after a failed check. */
static TileEmu *run_tiny(const char *torus, const char *src, const void *a, size_t a_bytes,
                         void *out, size_t out_bytes, TileTarget *t, TileObject *obj) {
  if (!CHECK(target_for("tiny", torus, t)) || !CHECK(compile_text(t, src, NULL, NULL, 0, obj)))
    return NULL;
  TileEmu *e = emu_for(obj, t);
  if (CHECK(e) && CHECK(tile_emu_set_input(e, "a", a, a_bytes)) &&
      CHECK(emu_run(e) == TILE_EMU_OK) && CHECK(tile_emu_get_output(e, "result", out, out_bytes)))
    return e;
  tile_emu_free(e);
  tile_object_free(obj);
  return NULL;
}

TEST(GenCollectiveAxes, SharedDimChainRunsAndDrainsSemaphores) {
  TileTarget t;
  TileObject obj;
  static float a[CHIPS][ELEMS], g[CHIPS][4 * ELEMS];
  for (int c = 0; c < CHIPS; c++)
    for (int i = 0; i < ELEMS; i++) a[c][i] = in_value(c, i);
  TileEmu *e = run_tiny("4x4", shared_src, a, sizeof a, g, sizeof g, &t, &obj);
  REQUIRE(e);
  /* Chip (c0, c1) has id 4 c0 + c1; its [dp, tp] group is column c1, rank c0: every
   * rank holds the same value (small integers: sums exact in any order). */
  int bad = 0;
  for (int c = 0; c < CHIPS; c++) {
    int col = c % 4;
    for (int rank = 0; rank < 4; rank++) {
      for (int i = 0; i < ELEMS; i++) {
        /* tp sums rows 2 dp and 2 dp + 1; dp takes the larger of the two sums. */
        float s0 = a[col][i] + a[4 + col][i], s1 = a[8 + col][i] + a[12 + col][i];
        float want = (s0 > s1 ? s0 : s1) + (s0 + s1);
        bad += g[c][rank * ELEMS + i] != want;
      }
    }
  }
  CHECK_EQ(0, bad);
  CHECK_EQ(0, sems_held(e, &t, CHIPS));
  tile_emu_free(e);
  tile_object_free(&obj);
}

/* x spans dims 1 and 0 of a 2x2x2 torus, listed [1, 0]: position 2 c1 + c0. A shift
 * of one position along it moves data from the chip one position before. */
TEST(GenCollectiveAxes, SpanningAxisPermutesInListedOrder) {
  const char *src =
      "mesh @m = torus<2x2x2>(x = 4 on [1, 0], z = 2 on [2])\n"
      "func @f(%a: tensor<8x128xf32>) -> tensor<8x128xf32> attributes {mesh = @m} {\n"
      "  %y = collective_permute %a {axis = x, shift = 1} : tensor<8x128xf32>\n"
      "  return %y\n"
      "}\n";
  TileTarget t;
  TileObject obj;
  static float a[8][PELEMS], y[8][PELEMS];
  for (int c = 0; c < 8; c++)
    for (int i = 0; i < PELEMS; i++) a[c][i] = in_value(c, i);
  TileEmu *e = run_tiny("2x2x2", src, a, sizeof a, y, sizeof y, &t, &obj);
  REQUIRE(e);
  int bad = 0;
  for (int c = 0; c < 8; c++) {
    int c0 = c / 4, c1 = c / 2 % 2, c2 = c % 2;
    int pos = (2 * c1 + c0 + 3) % 4; /* the sender's position */
    int src_chip = 4 * (pos % 2) + 2 * (pos / 2) + c2;
    for (int i = 0; i < PELEMS; i++) bad += y[c][i] != a[src_chip][i];
  }
  CHECK_EQ(0, bad);
  tile_emu_free(e);
  tile_object_free(&obj);
}
