/* The VLIW assembler and disassembler. The syntax is in docs/isa.md ("Assembly"):
 *
 *   .target tiny
 *   .symbol x in hbm f32 [8, 128] at 0
 *   .data vmem 0 f32 1.0, 2.0, 3.0, 4.0
 *   .code all
 *   top:
 *     li s1, 0 ; li s2, 512 ; vld v0, s1, s2, 0
 *     bnz s3, top
 *     halt
 *
 * One bundle per line, ops separated by ';', each op in the next free slot word of its
 * kind (or the one `@N` names). The disassembler prints canonical text: assembling it
 * gives the same object byte for byte. */
#ifndef TILE_ASM_H
#define TILE_ASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tile/diag.h"
#include "tile/object.h"
#include "tile/target.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Assembles src (len bytes, named filename in messages) into obj. The code is checked
 * against target when it is given (and `.target`, if present, must name it), else
 * against the target `.target` names when that one can be loaded. Every error goes to
 * d as file:line:col; on failure obj is left empty. */
bool tile_asm(const char *src, size_t len, const char *filename, const TileTarget *target,
              TileObject *obj, TileDiag *d);

/* Prints obj as assembly text. */
void tile_disasm(FILE *out, const TileObject *obj);

/* Formats one op as assembly ("vadd.f v1, v2, v3"; branch targets as bundle numbers);
 * returns the length it needs, like snprintf. For traces and fault messages. */
int tile_minst_format(TileMInst in, char *buf, size_t size);

/* Formats the bits of an f32 as the shortest literal that reads back to the same bits
 * ("1.0", "-0.0", "3.14159274", "inf"); NaNs as their bits ("0x7fc00000"). */
int tile_f32_format(uint32_t bits, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
