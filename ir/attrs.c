/* Attribute makers for the builder. Strings and arrays are copied into the module's
 * arena, so callers may pass stack or temporary memory. A maker cannot report an
 * error; given no module it returns an attribute with no payload (s or elems NULL),
 * which every build call rejects with a message. */
#include <string.h>

#include "tile/builder.h"

TileAttr tile_attr_int(int64_t v) { return (TileAttr){.kind = TILE_ATTR_INT, .i = v}; }

TileAttr tile_attr_float(double v) { return (TileAttr){.kind = TILE_ATTR_FLOAT, .f = v}; }

TileAttr tile_attr_none(void) { return (TileAttr){.kind = TILE_ATTR_NONE}; }

static TileAttr text_attr(TileModule *m, TileAttrKind kind, const char *s) {
  TileAttr a = {.kind = kind};
  if (m && s) a.s = tile_strdup(m, s, strlen(s));
  return a;
}

TileAttr tile_attr_ident(TileModule *m, const char *s) {
  return text_attr(m, TILE_ATTR_IDENT, s);
}

TileAttr tile_attr_string(TileModule *m, const char *s) {
  return text_attr(m, TILE_ATTR_STRING, s);
}

TileAttr tile_attr_symbol(TileModule *m, const char *s) {
  return text_attr(m, TILE_ATTR_SYMBOL, s);
}

static TileAttr list_attr(TileModule *m, TileAttrKind kind, int n, const TileAttr *elems) {
  TileAttr a = {.kind = kind, .n = n};
  if (m && n > 0 && elems) {
    a.elems = tile_alloc(m, (size_t)n * sizeof *a.elems);
    memcpy(a.elems, elems, (size_t)n * sizeof *a.elems);
  }
  return a;
}

TileAttr tile_attr_array(TileModule *m, int n, const TileAttr *elems) {
  return list_attr(m, TILE_ATTR_ARRAY, n, elems);
}

TileAttr tile_attr_tuple(TileModule *m, int n, const TileAttr *elems) {
  return list_attr(m, TILE_ATTR_TUPLE, n, elems);
}

TileAttr tile_attr_ints(TileModule *m, int n, const int64_t *v) {
  TileAttr a = {.kind = TILE_ATTR_ARRAY, .n = n};
  if (m && n > 0 && v) {
    a.elems = tile_alloc(m, (size_t)n * sizeof *a.elems);
    for (int i = 0; i < n; i++) a.elems[i] = tile_attr_int(v[i]);
  }
  return a;
}
