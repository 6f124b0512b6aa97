/* Element types, memory spaces and types: constructors, equality and text. */
#include <stdio.h>
#include <string.h>

#include "tile/ir.h"

static const struct {
  const char *name;
  int bits;
  bool is_float;
} elems[TILE_ELEM_COUNT] = {
    [TILE_ELEM_NONE] = {"none", 0, false},
#define X(e, n, b, f) [TILE_ELEM_##e] = {n, b, f},
    TILE_ELEMS(X)
#undef X
};

static const char *const spaces[TILE_SPACE_COUNT] = {
#define X(e, n) [TILE_SPACE_##e] = n,
    TILE_SPACES(X)
#undef X
};

const char *tile_elem_name(TileElem e) { return e < TILE_ELEM_COUNT ? elems[e].name : "?"; }
int tile_elem_bits(TileElem e) { return e < TILE_ELEM_COUNT ? elems[e].bits : 0; }
bool tile_elem_is_float(TileElem e) { return e < TILE_ELEM_COUNT && elems[e].is_float; }
const char *tile_space_name(TileSpace s) { return s < TILE_SPACE_COUNT ? spaces[s] : "?"; }

TileElem tile_elem_lookup(const char *name, size_t len) {
  for (int e = 1; e < TILE_ELEM_COUNT; e++)
    if (strlen(elems[e].name) == len && memcmp(elems[e].name, name, len) == 0) return e;
  return TILE_ELEM_NONE;
}

static TileType shaped(TileTypeKind k, TileElem e, int rank, const int64_t *dims) {
  TileType t = {.kind = k, .elem = e, .rank = rank};
  for (int i = 0; i < rank && i < TILE_MAX_RANK; i++) t.dims[i] = dims[i];
  return t;
}

TileType tile_type_scalar(TileElem e) { return (TileType){.kind = TILE_TY_SCALAR, .elem = e}; }
TileType tile_type_tensor(TileElem e, int rank, const int64_t *dims) {
  return shaped(TILE_TY_TENSOR, e, rank, dims);
}
TileType tile_type_buffer(TileSpace s, TileElem e, int rank, const int64_t *dims) {
  TileType t = shaped(TILE_TY_BUFFER, e, rank, dims);
  t.space = s;
  return t;
}
TileType tile_type_sem(void) { return (TileType){.kind = TILE_TY_SEM}; }
TileType tile_type_token(void) { return (TileType){.kind = TILE_TY_TOKEN}; }

bool tile_type_eq(const TileType *a, const TileType *b) {
  if (a->kind != b->kind || a->elem != b->elem || a->rank != b->rank) return false;
  if (a->kind == TILE_TY_BUFFER && a->space != b->space) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

int64_t tile_type_numel(const TileType *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->dims[i];
  return n;
}

int64_t tile_type_bytes(const TileType *t) {
  return tile_type_numel(t) * tile_elem_bits((TileElem)t->elem) / 8;
}

int tile_type_format(const TileType *t, char *buf, size_t size) {
  char shape[TILE_MAX_RANK * 21 + 1];
  size_t k = 0;
  shape[0] = 0;
  for (int i = 0; i < t->rank; i++)
    k += (size_t)snprintf(shape + k, sizeof shape - k, "%lldx", (long long)t->dims[i]);
  switch (t->kind) {
  case TILE_TY_SCALAR: return snprintf(buf, size, "%s", tile_elem_name(t->elem));
  case TILE_TY_TENSOR: return snprintf(buf, size, "tensor<%s%s>", shape, tile_elem_name(t->elem));
  case TILE_TY_BUFFER:
    return snprintf(buf, size, "%s<%s%s>", tile_space_name(t->space), shape,
                    tile_elem_name(t->elem));
  case TILE_TY_SEM: return snprintf(buf, size, "sem");
  case TILE_TY_TOKEN: return snprintf(buf, size, "token");
  default: return snprintf(buf, size, "<none>");
  }
}
