/* Fuzzes the .tile parser, the verifier and the printer together.
 *
 * Any bytes may go in; none may crash, hang or leak. When the input parses, its
 * printed text is the oracle: it must parse again, and printing that second module
 * must give the same text (text.h's fixed point). When the first module also
 * verifies, so must the second: printing may not change what a program means.
 * A broken promise aborts, which libFuzzer reports with the input that did it.
 *
 * fuzz-parts: tile_frontend tile_ir */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/diag.h"
#include "tile/text.h"
#include "tile/verify.h"

static void fail(const char *what, const char *text, const char *again) {
  fprintf(stderr, "fuzz_parser: %s\n--- printed text:\n%s\n", what, text);
  if (again) fprintf(stderr, "--- printed again:\n%s\n", again);
  abort();
}

/* Parses and verifies src silently; returns the module (NULL if it does not parse). */
static TileModule *parse(const char *src, size_t len, bool *verified) {
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz.tile", src, len);
  TileModule *m = tile_parse(src, len, "fuzz.tile", &d);
  if (m && d.nerrors) fail("tile_parse returned a module and reported errors", src, NULL);
  *verified = m && tile_verify_module(m, &d) && d.nerrors == 0;
  return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bool verified;
  TileModule *m = parse((const char *)data, size, &verified);
  if (!m) return 0;
  char *text = tile_print_module_str(m);
  tile_module_free(m);

  bool verified_again;
  TileModule *again = parse(text, strlen(text), &verified_again);
  if (!again) fail("the printed text does not parse", text, NULL);
  if (verified && !verified_again) fail("the printed text does not verify, the input did", text, NULL);
  char *text2 = tile_print_module_str(again);
  tile_module_free(again);
  if (strcmp(text, text2) != 0) fail("printing is not a fixed point", text, text2);
  free(text);
  free(text2);
  return 0;
}
