/* Fuzzes the machine description parser (tile_target_parse) and the torus override.
 *
 * Any text may go in; none may crash, hang or leak, and a failure must come with an
 * error. When a description parses, tile_target_print must give text that parses to
 * the same description (the printer's promise), and a torus shape taken from the
 * input's last line may be applied to it without harm. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/target.h"

static void fail(const char *what, const char *text) {
  fprintf(stderr, "fuzz_target: %s\n", what);
  if (text) fprintf(stderr, "--- text:\n%s\n", text);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *src = (const char *)data;
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz.target", src, size);
  TileTarget t;
  if (!tile_target_parse(src, size, "fuzz.target", &t, &d)) {
    if (d.nerrors == 0) fail("tile_target_parse failed without an error", NULL);
    return 0;
  }
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) fail("open_memstream failed", NULL);
  tile_target_print(f, &t);
  fclose(f);
  TileTarget again;
  tile_diag_init(&d, NULL, "printed.target", text, len);
  if (!tile_target_parse(text, len, "printed.target", &again, &d)) fail("the printed target does not parse", text);
  if (memcmp(&t, &again, sizeof t) != 0) fail("the printed target parses to a different description", text);
  free(text);

  /* The input's last line, as a torus shape. */
  const char *last = src + size;
  while (last > src && last[-1] != '\n') last--;
  char shape[64];
  size_t n = (size_t)(src + size - last);
  if (n < sizeof shape && !memchr(last, 0, n)) {
    memcpy(shape, last, n);
    shape[n] = 0;
    tile_diag_init(&d, NULL, "fuzz", NULL, 0);
    if (tile_target_set_torus(&t, shape, &d)) {
      if (tile_target_chips(&t) < 1) fail("a torus override gave no chips", shape);
    } else if (d.nerrors == 0) {
      fail("tile_target_set_torus failed without an error", shape);
    }
  }
  return 0;
}
