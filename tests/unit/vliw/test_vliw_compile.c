/* The status tile_vliw_compile (backend-vliw/compile.c) gives when a stage after
 * lowering rejects a program with a message: TILE_PASS_FAILED with that message, not an
 * internal error. (Each stage's error count was once read in the same call's arguments
 * as the stage, so a compiler that evaluates them left to right saw the stage's own
 * message as already there and called the failure internal; fuzz_compile found it.) */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "parse_fixture.h"
#include "tile/vliw.h"

/* Compiles src for tiny; the status, with the last message in last. */
static TilePassStatus compile_tiny(const char *src, char *last, size_t n) {
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, stderr, "target", NULL, 0);
  if (!tile_target_load("tiny", &t, &d)) return TILE_PASS_INTERNAL;
  TileModule *m = parse(src);
  if (!m) return TILE_PASS_INTERNAL;
  tile_diag_init(&d, NULL, "<test>", src, strlen(src));
  TileVliwOptions o = {.target = &t, .stop_after = TILE_VLIW_OBJECT};
  TileObject obj;
  TilePassStatus st = tile_vliw_compile(m, &o, &obj, &d);
  if (st == TILE_PASS_OK) tile_object_free(&obj);
  tile_module_free(m);
  snprintf(last, n, "%s", d.nerrors ? d.last : "");
  return st;
}

/* tiny has 16 MiB of HBM: a 16 MiB input and a 16 MiB result do not both fit, which
 * only layout (after register allocation) finds out. */
TEST(VliwCompile, LayoutRejectionIsNotInternal) {
  const char *src = "func @f(%x: tensor<2048x2048xf32>) -> tensor<2048x2048xf32> {\n"
                    "  %n = neg %x : tensor<2048x2048xf32>\n"
                    "  return %n\n"
                    "}\n";
  char last[512];
  CHECK_EQ(TILE_PASS_FAILED, compile_tiny(src, last, sizeof last));
  CHECK(strncmp(last, "hbm buffer 'result' needs 16 MiB", 32) == 0);
  CHECK(strstr(last, "internal error") == NULL);
}

/* The same function at a size that fits compiles. */
TEST(VliwCompile, FittingProgramCompiles) {
  const char *src = "func @f(%x: tensor<64x128xf32>) -> tensor<64x128xf32> {\n"
                    "  %n = neg %x : tensor<64x128xf32>\n"
                    "  return %n\n"
                    "}\n";
  char last[512];
  CHECK_EQ(TILE_PASS_OK, compile_tiny(src, last, sizeof last));
  CHECK_STREQ("", last);
}
