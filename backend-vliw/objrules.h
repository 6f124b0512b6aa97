/* The rules a well-formed object obeys, one item at a time, shared by the object
 * checker (object_check.c) and the assembler, which reports the same failures at the
 * source line of the item. Each returns false and writes one sentence to why. */
#ifndef TILE_VLIW_OBJRULES_H
#define TILE_VLIW_OBJRULES_H

#include <stdbool.h>
#include <stddef.h>

#include "tile/object.h"

/* Writes one sentence to why (when given) and returns false: how every check of this
 * part reports, so callers can `return tile_vliw_say(...)`. Defined in isa.c. */
bool tile_vliw_say(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Target names: letters, digits, '_', '.', '-' (possibly empty). Symbol names: 1..63
 * of those, starting with a letter or '_'. */
bool tile_objrule_name(const char *name, bool symbol, char *why, size_t n);
bool tile_objrule_chip(int32_t chip, char *why, size_t n);
bool tile_objrule_data(const TileObjData *dd, char *why, size_t n);
bool tile_objrule_symbol(const TileObjSymbol *s, char *why, size_t n);
/* Bytes a symbol's buffer takes (elements rounded up to whole bytes); -1 on overflow. */
int64_t tile_objrule_symbol_bytes(const TileObjSymbol *s);
/* Control flow of the op in word w of bundle pc: branch targets and loop bodies inside
 * the code's nbundles bundles. */
bool tile_objrule_flow(TileMInst in, int32_t pc, int32_t nbundles, char *why, size_t n);
/* Against a machine: the space's size bounds [addr, addr + bytes). */
bool tile_objrule_fits(TileSpace space, int64_t addr, int64_t bytes, const TileTarget *t,
                       char *why, size_t n);

#endif
