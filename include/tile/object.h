/* Objects: the versioned, checksummed container the VLIW backend writes and the
 * emulator runs. It holds code per core (one program for every chip, SPMD, or one per
 * chip), initial memory contents (constants), the buffers a caller binds inputs and
 * outputs to, and the name of the target it was built for.
 *
 * A bad, truncated, mismatched or corrupted object is rejected by tile_object_read with
 * a sentence saying what is wrong; it is never executed. The byte layout is in
 * docs/isa.md. */
#ifndef TILE_OBJECT_H
#define TILE_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/isa.h"
#include "tile/target.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TILE_OBJECT_VERSION 1
#define TILE_OBJ_ALL_CHIPS (-1)

typedef struct TileObjCode {
  int32_t chip;       /* TILE_OBJ_ALL_CHIPS, or the one chip this code runs on */
  int32_t nbundles;
  TileBundle *bundles;
} TileObjCode;

/* Initial memory: bytes placed at addr of a space before the run. */
typedef struct TileObjData {
  int32_t chip;  /* TILE_OBJ_ALL_CHIPS or one chip */
  uint8_t space; /* TileSpace */
  int64_t addr;
  int64_t size;
  uint8_t *bytes;
} TileObjData;

typedef enum TileBindKind {
  TILE_BIND_IN = 1,    /* the caller supplies it before the run */
  TILE_BIND_OUT = 2,   /* the caller reads it after the run */
  TILE_BIND_INOUT = 3,
} TileBindKind;

/* A named buffer the caller binds data to. Every chip holds it at the same address; a
 * per-chip binding takes (and gives) an array with a leading chip dimension, one slice
 * per chip in chip-id order; otherwise every chip gets the same data (inputs) or chip
 * 0's data is read (outputs). */
typedef struct TileObjSymbol {
  char name[64];
  uint8_t kind;  /* TileBindKind */
  uint8_t space; /* TileSpace */
  uint8_t elem;  /* TileElem */
  bool per_chip;
  int32_t rank;
  int64_t dims[TILE_MAX_RANK];
  int64_t addr;
} TileObjSymbol;

typedef struct TileObject {
  char target[64];
  int32_t ncode;
  TileObjCode *code;
  int32_t ndata;
  TileObjData *data;
  int32_t nsyms;
  TileObjSymbol *syms;
} TileObject;

/* Serializes obj into a malloc'ed buffer (*out, *len). */
bool tile_object_write(const TileObject *obj, uint8_t **out, size_t *len);
/* Parses and checks (magic, version, checksum, bounds, opcodes, slots) an object. On
 * failure reports to d (naming `what`, e.g. the file name) and returns false with obj
 * left empty. */
bool tile_object_read(const uint8_t *bytes, size_t len, TileObject *obj, TileDiag *d);
void tile_object_free(TileObject *obj);
/* The checksum the header holds: FNV-1a 64 of the given bytes (everything after the
 * 32-byte header). */
uint64_t tile_object_checksum(const uint8_t *bytes, size_t len);
/* Checks an object in memory by the rules tile_object_read applies after decoding
 * (ops valid for their slot words, branch targets and loop bodies inside the code, one
 * code per chip, names, spaces, element types, shapes and addresses in range). The
 * writer refuses what this refuses. */
bool tile_object_check(const TileObject *obj, TileDiag *d);
/* Checks an object against the machine that will run it: ops against the target's
 * slots, register counts, MXU units and semaphores; data and symbols inside the
 * memories; code for chips that exist in the target's torus. */
bool tile_object_check_target(const TileObject *obj, const TileTarget *t, TileDiag *d);
/* The code a chip runs, or NULL. */
const TileObjCode *tile_object_code_for(const TileObject *obj, int32_t chip);
const TileObjSymbol *tile_object_find_symbol(const TileObject *obj, const char *name);

#ifdef __cplusplus
}
#endif
#endif
