/* NumPy .npy files: the arrays `tilec run --in/--out` and libtile exchange.
 *
 * Read: format versions 1.0, 2.0 and 3.0; C order; little-endian or byte-order-free
 * dtypes. Element types map to the Tile IR's:
 *
 *   dtype        TileElem   notes
 *   '<f4'        f32
 *   '<f2'        f16
 *   '<i4'        i32
 *   '<i8'        i64
 *   '|i1'        i8
 *   '|b1'        i1         one byte per element, 0 or 1
 *   '<V2'        bf16       the raw bits, as ml_dtypes' bfloat16 arrays are saved
 *   '|V1'        f8E4M3FN / f8E5M2 (raw bits; the caller says which)
 *
 * Anything else (big-endian, Fortran order, object or structured dtypes, more than
 * TILE_MAX_RANK dimensions, a data size that does not match the shape) is rejected with
 * a sentence naming the file; a malformed header never makes the reader read out of
 * bounds or allocate more than the file holds. */
#ifndef TILE_NPY_H
#define TILE_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tile/diag.h"
#include "tile/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TileNpy {
  TileElem elem;   /* for '|V1', F8E4M3FN */
  int rank;
  int64_t dims[TILE_MAX_RANK];
  void *data;      /* C order, little-endian, numel * element bytes (malloc'ed) */
  size_t nbytes;
} TileNpy;

/* Bytes one element of e takes in a .npy file and in machine memory (i1: 1). */
int tile_npy_elem_bytes(TileElem e);
/* The dtype string for e ("<f4", ...), or NULL if .npy has no convention for it. */
const char *tile_npy_dtype(TileElem e);

/* Parses an .npy image (len bytes). what names it in messages. */
bool tile_npy_parse(const uint8_t *buf, size_t len, const char *what, TileNpy *out, TileDiag *d);
bool tile_npy_read_file(const char *path, TileNpy *out, TileDiag *d);
/* Encodes an array into a malloc'ed .npy image (version 1.0, or 2.0 when the header
 * needs it). */
bool tile_npy_encode(TileElem elem, int rank, const int64_t *dims, const void *data,
                     uint8_t **out, size_t *len);
bool tile_npy_write_file(const char *path, TileElem elem, int rank, const int64_t *dims,
                         const void *data, TileDiag *d);
void tile_npy_free(TileNpy *a);

#ifdef __cplusplus
}
#endif
#endif
