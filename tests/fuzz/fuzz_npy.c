/* Fuzzes the .npy reader (tile_npy_parse), which takes the arrays `tilec run --in`
 * binds to a program.
 *
 * Any bytes may go in; none may crash, hang, leak or read out of bounds, and a failure
 * must come with an error. When an image parses, the array must be consistent (a rank
 * within TILE_MAX_RANK, the data size the shape and dtype need), and encoding it again
 * (tile_npy_encode) must give an image that parses to the same array.
 *
 * fuzz-parts: tile_runtime tile_ir */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/npy.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_npy: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz.npy", NULL, 0);
  TileNpy a;
  if (!tile_npy_parse(data, size, "fuzz.npy", &a, &d)) {
    if (d.nerrors == 0) fail("tile_npy_parse failed without an error");
    if (a.data) fail("tile_npy_parse failed but left data behind");
    return 0;
  }
  if (a.rank < 0 || a.rank > TILE_MAX_RANK) fail("the rank is out of range");
  size_t want = (size_t)tile_npy_elem_bytes(a.elem);
  if (want == 0 || !tile_npy_dtype(a.elem)) fail("the element type has no .npy dtype");
  for (int k = 0; k < a.rank; k++) {
    if (a.dims[k] < 0) fail("a dimension is negative");
    want *= (size_t)a.dims[k];
  }
  if (a.nbytes != want) fail("the data size is not what the shape and dtype need");
  if (!a.data) fail("a parsed array has no data");

  uint8_t *img = NULL;
  size_t len = 0;
  if (!tile_npy_encode(a.elem, a.rank, a.dims, a.data, &img, &len))
    fail("the array does not encode");
  TileNpy b;
  tile_diag_init(&d, NULL, "again.npy", NULL, 0);
  if (!tile_npy_parse(img, len, "again.npy", &b, &d)) fail("the encoded array does not parse");
  if (b.elem != a.elem || b.rank != a.rank || b.nbytes != a.nbytes ||
      memcmp(b.dims, a.dims, sizeof a.dims[0] * (size_t)a.rank) != 0 ||
      memcmp(b.data, a.data, a.nbytes) != 0)
    fail("the encoded array parses to a different array");
  free(img);
  tile_npy_free(&a);
  tile_npy_free(&b);
  return 0;
}
