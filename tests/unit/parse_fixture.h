/* For unit tests that start from text: parse and verify a program, printing any error
 * to stderr (so a failing test shows why); NULL when either step fails. */
#ifndef TILE_TEST_PARSE_FIXTURE_H
#define TILE_TEST_PARSE_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/text.h"
#include "tile/verify.h"

static inline TileModule *parse(const char *src) {
  TileDiag d;
  tile_diag_init(&d, stderr, "<test>", src, strlen(src));
  TileModule *m = tile_parse(src, strlen(src), "<test>", &d);
  if (m && !tile_verify_module(m, &d)) {
    tile_module_free(m);
    return NULL;
  }
  return m;
}

#endif
