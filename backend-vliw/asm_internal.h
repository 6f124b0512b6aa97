/* The assembler's shared state: asm.c reads lines and directives, asm_ops.c parses
 * bundles and their operands, asm_lex.c scans the tokens both use. */
#ifndef TILE_VLIW_ASM_INTERNAL_H
#define TILE_VLIW_ASM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "tile/asm.h"

/* A position in one source line: s..e is the line (comment cut off), p the next byte. */
typedef struct Cursor {
  const char *s, *p, *e;
  int line;
} Cursor;

typedef struct AsmLabel {
  char name[64];
  int32_t index; /* the bundle it names */
  int line, col;
} AsmLabel;

/* A label used before it may be defined, resolved when its code block ends. */
typedef struct AsmFixup {
  int32_t pc;
  int word;
  bool loop_end; /* the first operand of `loop`: c = index - (pc + 1) */
  char name[64];
  int line, col;
} AsmFixup;

typedef struct AsmBlock {
  int32_t chip;
  int line, col;
  TileBundle *bundles;
  int32_t nbundles, cap;
  AsmLabel *labels;
  int nlabels, labels_cap;
  AsmFixup *fixups;
  int nfixups, fixups_cap;
} AsmBlock;

typedef struct Asm {
  const char *file;
  TileDiag *d;
  const TileTarget *target; /* NULL: nothing machine-specific is checked */
  TileTarget loaded;
  bool target_given;        /* by the caller rather than by `.target` */
  char target_name[64];
  int target_line;
  bool seen_content;        /* code, data or symbols seen: `.target` comes first */

  AsmBlock *blocks;
  int nblocks, blocks_cap;
  AsmBlock *cur;

  TileObjData *data;
  int *data_line;
  int ndata, data_cap;
  bool data_open;    /* the last `.data` line ended with ',' */
  bool data_pending; /* the last data block is not checked yet */
  int data_type;
  int64_t data_cap_bytes; /* allocated bytes of the last data block */

  TileObjSymbol *syms;
  int *sym_line;
  int nsyms, syms_cap;
} Asm;

/* ---- asm_lex.c ---- */
void asm_error(Asm *a, const Cursor *c, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void cur_skip_ws(Cursor *c);
bool cur_at_end(Cursor *c); /* skips blanks first */
bool cur_eat(Cursor *c, char ch);
bool is_ident_start(char ch);
bool is_ident_char(char ch);
/* [A-Za-z_][A-Za-z0-9_.]*; returns its length (0 if none) and advances. */
size_t cur_ident(Cursor *c, const char **start);
/* [A-Za-z0-9_.-]+ (target and symbol names); returns its length. */
size_t cur_name(Cursor *c, const char **start);
/* The text of the token at p, for messages ("'v1'", "end of line"). */
const char *cur_token(const Cursor *c, const char *p, char *buf, size_t n);
/* An integer literal: [-+]digits or [-+]0x hex digits. false if there is none at p
 * (p unchanged); *ok false if it overflows int64 or runs into letters (reported). */
bool cur_int(Asm *a, Cursor *c, int64_t *v, bool *ok);
/* A float literal (decimal, inf, nan) or 0x bits; stores the f32 bits. Reports. */
bool cur_f32(Asm *a, Cursor *c, uint32_t *bits);
/* Like cur_f32 for a bf16 value: decimals are rounded to bf16, 0x gives the 16 bits. */
bool cur_bf16(Asm *a, Cursor *c, uint16_t *bits);
/* Grows a dynamic array to hold need elements; false when memory runs out. */
bool asm_grow(void **p, int *cap, int need, size_t elem);

/* ---- asm_ops.c ---- */
void asm_bundle(Asm *a, Cursor *c);
void asm_label(Asm *a, Cursor *c, const char *name, size_t len, const char *at);
/* Resolves the current block's labels; called when the block ends. */
void asm_end_block(Asm *a);

#endif
