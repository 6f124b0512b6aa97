/* Fuzzes the pass pipeline on programs the verifier accepts.
 *
 * Inputs that do not parse and verify are dropped (fuzz_parser covers those). For the
 * rest, every pass of the pipeline runs: it may reject a program it cannot compile,
 * but it may not crash, leak, report success with errors, or leave IR the verifier
 * rejects (the manager turns that into TILE_PASS_INTERNAL). The result must also print
 * and parse back to the same text, so every stage stays printable.
 *
 * fuzz-parts: tile_passes tile_frontend tile_ir */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/diag.h"
#include "tile/pass.h"
#include "tile/text.h"
#include "tile/verify.h"

static void fail(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_passes: %s\n%s\n", what, detail ? detail : "");
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz.tile", (const char *)data, size);
  TileModule *m = tile_parse((const char *)data, size, "fuzz.tile", &d);
  if (!m) return 0;
  if (!tile_verify_module(m, &d) || d.nerrors) {
    tile_module_free(m);
    return 0;
  }
  TileDiag pd;
  tile_diag_init(&pd, NULL, "fuzz.tile", NULL, 0);
  TilePassStatus st = tile_run_pipeline(m, tile_pipeline, tile_pipeline_len, NULL, &pd);
  if (st == TILE_PASS_INTERNAL) fail("a pass broke the IR or failed without saying why", pd.last);
  if (st == TILE_PASS_OK && pd.nerrors) fail("the pipeline succeeded but reported errors", pd.last);
  if (st == TILE_PASS_OK) {
    char *text = tile_print_module_str(m);
    TileDiag rd;
    tile_diag_init(&rd, NULL, "again.tile", text, strlen(text));
    TileModule *again = tile_parse(text, strlen(text), "again.tile", &rd);
    if (!again || !tile_verify_module(again, &rd))
      fail("the pipeline's output does not parse and verify", text);
    char *text2 = tile_print_module_str(again);
    if (strcmp(text, text2) != 0) fail("printing the pipeline's output is not a fixed point", text);
    free(text2);
    tile_module_free(again);
    free(text);
  }
  tile_module_free(m);
  return 0;
}
