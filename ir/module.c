/* Modules and their arena. Every IR node is carved from the module's arena in large
 * chunks and released all at once by tile_module_free(). */
#include <stdlib.h>
#include <string.h>

#include "tile/ir.h"

typedef struct Chunk {
  struct Chunk *next;
  size_t used, size;
  max_align_t data[];
} Chunk;

struct TileArena {
  Chunk *head;
};

enum { CHUNK_BYTES = 64 * 1024 };

void *tile_alloc(TileModule *m, size_t size) {
  TileArena *a = m->arena;
  size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
  if (!a->head || a->head->used + size > a->head->size) {
    size_t cap = size > CHUNK_BYTES ? size : CHUNK_BYTES;
    Chunk *c = malloc(sizeof(Chunk) + cap);
    if (!c) abort(); /* out of memory is not recoverable here */
    c->next = a->head;
    c->used = 0;
    c->size = cap;
    a->head = c;
  }
  void *p = (char *)a->head->data + a->head->used;
  a->head->used += size;
  memset(p, 0, size);
  return p;
}

const char *tile_strdup(TileModule *m, const char *s, size_t len) {
  char *p = tile_alloc(m, len + 1);
  memcpy(p, s, len);
  p[len] = 0;
  return p;
}

TileModule *tile_module_new(const char *filename) {
  TileModule *m = calloc(1, sizeof *m);
  if (!m) abort();
  m->arena = calloc(1, sizeof *m->arena);
  if (!m->arena) abort();
  m->filename = filename ? tile_strdup(m, filename, strlen(filename)) : NULL;
  return m;
}

void tile_module_free(TileModule *m) {
  if (!m) return;
  for (Chunk *c = m->arena->head, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  free(m->arena);
  free(m);
}

TileMesh *tile_module_find_mesh(const TileModule *m, const char *name) {
  for (TileMesh *x = m->meshes; x; x = x->next)
    if (strcmp(x->name, name) == 0) return x;
  return NULL;
}

TileFunc *tile_module_find_func(const TileModule *m, const char *name) {
  for (TileFunc *f = m->funcs; f; f = f->next)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

const TileMeshAxis *tile_mesh_find_axis(const TileMesh *mesh, const char *name) {
  for (int i = 0; i < mesh->naxes; i++)
    if (strcmp(mesh->axes[i].name, name) == 0) return &mesh->axes[i];
  return NULL;
}

int64_t tile_mesh_axes_size(const TileMesh *mesh, const TileAttr *axes) {
  bool one = axes->kind == TILE_ATTR_IDENT;
  const TileAttr *names = one ? axes : axes->elems;
  int32_t n = one ? 1 : axes->n;
  int64_t chips = 1;
  for (int32_t i = 0; i < n; i++) {
    const TileMeshAxis *ax =
        names[i].kind == TILE_ATTR_IDENT ? tile_mesh_find_axis(mesh, names[i].s) : NULL;
    if (!ax) return 0;
    chips *= ax->size;
  }
  return chips;
}

int64_t tile_mesh_cycle_pos(int64_t x, int64_t y, int64_t i, int64_t j) {
  if (y == 1) return i;
  if (x == 1) return j;
  if (x % 2) return y % 2 ? -1 : tile_mesh_cycle_pos(y, x, j, i);
  if (i == 0) return j;
  if (j == 0) return x * y - i; /* column 0, upward, closes the cycle */
  return y + (i - 1) * (y - 1) + (i % 2 ? y - 1 - j : j - 1);
}

const TileAttr *tile_attr_get(const TileAttrDict *d, const char *name) {
  for (int i = 0; i < d->n; i++)
    if (strcmp(d->items[i].name, name) == 0) return &d->items[i].val;
  return NULL;
}

bool tile_attr_get_int(const TileAttrDict *d, const char *name, int64_t *out) {
  const TileAttr *a = tile_attr_get(d, name);
  if (!a || a->kind != TILE_ATTR_INT) return false;
  *out = a->i;
  return true;
}
