/* The collective generator (backend-vliw/gen_collective*.c) through the whole VLIW
 * pipeline and the emulator in strict mode: a mesh function binds its data per chip,
 * collectives after an ordinary group and after each other compute the right values on
 * every chip, and every semaphore ends at zero (the remote ones included, so a chip
 * that runs ahead leaves nothing behind for a later group to trip on). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compile_fixture.h"

enum { CHIPS = 4, ROWS = 16, LANES = 128, ELEMS = ROWS * LANES };

static const char *chain_src =
    "mesh @m = torus<2x2>(x, y)\n"
    "func @f(%a: tensor<16x128xf32>) -> tensor<64x128xf32> attributes {mesh = @m} {\n"
    "  %b = add %a, %a : tensor<16x128xf32>\n"
    "  %s = all_reduce %b {kind = add, axes = [x]} : tensor<16x128xf32>\n"
    "  %t = all_reduce %s {kind = max, axes = [y]} : tensor<16x128xf32>\n"
    "  %g = all_gather %t {dim = 0, axes = [x, y]} : tensor<64x128xf32>\n"
    "  return %g\n"
    "}\n";

/* Compiles src for tiny on a torus; false after a failure (printed). */
static bool compile_for(const char *src, const char *torus, TileTarget *t, TileObject *obj) {
  return target_for("tiny", torus, t) && compile_text(t, src, NULL, NULL, 0, obj);
}

static const TileObjSymbol *find_symbol(const TileObject *obj, const char *name) {
  for (int32_t i = 0; i < obj->nsyms; i++)
    if (strcmp(obj->syms[i].name, name) == 0) return &obj->syms[i];
  return NULL;
}

TEST(GenCollective, MeshFunctionBindsPerChip) {
  TileTarget t;
  TileObject obj;
  REQUIRE(compile_for(chain_src, "2x2", &t, &obj));
  const TileObjSymbol *a = find_symbol(&obj, "a"), *r = find_symbol(&obj, "result");
  REQUIRE(a && r);
  CHECK(a->per_chip);
  CHECK(r->per_chip);
  tile_object_free(&obj);

  /* A function without a mesh keeps one binding for every chip. */
  const char *one = "func @f(%a: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
                    "  %b = add %a, %a : tensor<8x128xf32>\n  return %b\n}\n";
  REQUIRE(compile_for(one, "2x2", &t, &obj));
  a = find_symbol(&obj, "a");
  REQUIRE(a);
  CHECK(!a->per_chip);
  tile_object_free(&obj);
}

TEST(GenCollective, ChainRunsAndDrainsSemaphores) {
  TileTarget t;
  TileObject obj;
  REQUIRE(compile_for(chain_src, "2x2", &t, &obj));
  TileEmu *e = emu_for(&obj, &t);
  REQUIRE(e);
  static float a[CHIPS][ELEMS], g[CHIPS][CHIPS * ELEMS];
  for (int c = 0; c < CHIPS; c++)
    for (int i = 0; i < ELEMS; i++) a[c][i] = (float)((c * 7 + i * 3) % 23 - 11);
  CHECK(tile_emu_set_input(e, "a", a, sizeof a));
  REQUIRE(emu_run(e) == TILE_EMU_OK);
  CHECK(tile_emu_get_output(e, "result", g, sizeof g));
  /* Chip id = 2x + y: the x-sum pairs chips y and 2 + y; the y-max then takes the larger
   * of the two pair sums, the same on every chip; the gather repeats it four times. */
  int bad = 0;
  for (int i = 0; i < ELEMS; i++) {
    float s0 = 2 * a[0][i] + 2 * a[2][i], s1 = 2 * a[1][i] + 2 * a[3][i];
    float want = s0 > s1 ? s0 : s1;
    for (int c = 0; c < CHIPS; c++)
      for (int k = 0; k < CHIPS; k++) bad += g[c][k * ELEMS + i] != want;
  }
  CHECK_EQ(0, bad);
  CHECK_EQ(0, sems_held(e, &t, CHIPS));
  tile_emu_free(e);
  tile_object_free(&obj);
}

TEST(GenCollective, RefusesAMeshThatIsNotTheTorus) {
  TileTarget t;
  TileObject obj;
  CHECK(!compile_for(chain_src, "1x4", &t, &obj));
}
