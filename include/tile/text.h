/* The text format: parse .tile source into a module, print a module as text.
 * print(parse(x)) is a fixed point: printing, parsing and printing again gives the
 * same text. */
#ifndef TILE_TEXT_H
#define TILE_TEXT_H

#include <stdio.h>

#include "tile/diag.h"
#include "tile/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parses src (len bytes, need not be NUL-terminated; may hold any bytes).
 * Returns NULL after reporting every error it could find to d; never crashes,
 * never loops forever. The module does not keep pointers into src. */
TileModule *tile_parse(const char *src, size_t len, const char *filename, TileDiag *d);

void tile_print_module(FILE *out, const TileModule *m);
void tile_print_func(FILE *out, const TileFunc *f);
/* Prints one op (and its regions) on its own, numbering unnamed values locally. */
void tile_print_op(FILE *out, const TileOp *op);
/* Prints into a malloc'ed, NUL-terminated string the caller frees. */
char *tile_print_module_str(const TileModule *m);

#ifdef __cplusplus
}
#endif
#endif
