/* The parser's shared state and helpers, private to frontend/parse*.c.
 *
 *   parser.c       state, errors and recovery, name tables, modules, meshes, funcs
 *   parse_ops.c    blocks and ops: the generic form and for / if / call / return
 *   parse_attrs.c  types, shapes, integers and attributes
 *
 * The parser keeps one token of lookahead (p->tok); the lexer stands right after it.
 * Every error goes through p_error*, which counts it and suppresses a second error
 * at the same position (nested blocks that all fail at one token say it once). */
#ifndef TILE_FRONTEND_PARSE_H
#define TILE_FRONTEND_PARSE_H

#include <stdarg.h>

#include "lexer.h"
#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/ops.h"

/* Regions nested in regions, and attributes in attributes, stop here: deeper input
 * is rejected rather than allowed to exhaust the stack. */
enum { PARSE_MAX_DEPTH = 64 };

/* A string -> entry table (open addressing) for value names in a function,
 * symbols in a module and attribute names in a dictionary. Entries stay in
 * insertion order, which is the order errors are reported in. */
typedef struct NameEnt {
  const char *name; /* arena copy, without the sigil */
  size_t len;
  size_t slot;      /* where it sits in the hash table, so a reset is O(entries) */
  TileValue *val;   /* values: the definition; NULL while only used */
  TileValue *fwd;   /* values: stands in for uses before the definition */
  TileLoc def_loc;  /* where it was defined */
  TileLoc use_loc;  /* values: its first use before any definition */
} NameEnt;

typedef struct NameMap {
  NameEnt *ents;
  int n, cap;
  int32_t *slots; /* index into ents, or -1 */
  size_t nslots;  /* a power of two, at least twice n */
} NameMap;

typedef struct Parser {
  Lexer lx;
  Token tok;
  /* Just past the last token consumed: where something missing at the end of a
   * line (an op's result types) is reported, rather than at the next line. */
  int prev_end_line, prev_end_col;
  TileModule *m;
  TileDiag *d;
  const char *file; /* for locations; the module's copy of the file name */
  int nerr;         /* errors this parse reported */
  int err_line, err_col; /* where the last one was */
  bool note_ok;     /* the last error was shown, so a note may follow it */
  int braces;       /* '{' minus '}' consumed in the current function */
  int dict_open;    /* attribute dictionaries opened and not yet closed */
  int region_depth, attr_depth;
  NameMap values;   /* the current function's value names */
  NameMap symbols;  /* the module's meshes and functions */
  NameMap attr_names;
  int nfwd;         /* uses before definition in the current function */
} Parser;

/* ---- parser.c ---- */
void p_next(Parser *p);
bool p_is(const Parser *p, TokKind k);
bool p_is_kw(const Parser *p, const char *kw);
/* Consumes a token of kind k, or reports "expected WHAT, got ..." and returns false. */
bool p_expect(Parser *p, TokKind k, const char *what);
/* The step after an item of a comma-separated list closed by `close`: a ',' means
 * another item follows (LIST_MORE), `close` ends the list (LIST_END, consumed), and
 * anything else is reported as "expected WHAT" (LIST_ERROR). */
typedef enum ListStep { LIST_ERROR, LIST_MORE, LIST_END } ListStep;
ListStep p_list_step(Parser *p, TokKind close, const char *what);
/* Consumes the identifier kw, or reports "expected WHAT, got ...". */
bool p_expect_kw(Parser *p, const char *kw, const char *what);
TileLoc p_loc(const Parser *p, const Token *t);
bool p_stop(const Parser *p);
bool p_error(Parser *p, TileLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The position just past the last token consumed. */
TileLoc p_prev_end(const Parser *p);
/* An error at the current token; a lexer error there is reported instead, since it
 * is the real cause. */
bool p_error_tok(Parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "expected WHAT, got 'tok'" at the current token. */
bool p_expected(Parser *p, const char *what);
void p_note(Parser *p, TileLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Grows an arena array by doubling when it is full; returns the (maybe moved) array. */
void *p_grow(Parser *p, void *arr, int n, int *cap, size_t elsize);
/* Skips a balanced {...} group starting at the current '{' (iteratively). */
void p_skip_braces(Parser *p);
/* 'func', 'kernel' or 'mesh': a line starting with one ends any open block. */
bool p_is_top_kw(const Token *t);

NameEnt *map_get(NameMap *mp, const char *s, size_t n);
NameEnt *map_put(Parser *p, NameMap *mp, const char *s, size_t n);
void map_reset(NameMap *mp);

const char *p_name(Parser *p, const Token *t); /* arena copy of a name, without sigil */
/* Values: defining a name checks redefinition; using one resolves it, or hands out a
 * stand-in that the end of the function replaces with the later definition. */
bool p_define_value(Parser *p, const Token *name, TileValue *v);
TileValue *p_use_value(Parser *p, const Token *name);
TileValue *p_new_value(Parser *p, TileType type);

/* ---- parse_attrs.c ---- */
bool parse_type(Parser *p, TileType *out);
/* type (',' type)*, into an arena array. */
bool parse_type_list(Parser *p, TileType **out, int *n);
/* Parses '<' DIMS '>' of a torus (the current token is '<'). */
bool parse_torus_shape(Parser *p, int *rank, int64_t *dims);
bool parse_int(Parser *p, int64_t *out, const char *what);
bool parse_attr_dict(Parser *p, TileAttrDict *out);
/* An op's attribute dictionary in a form of its own (for, call) that already
 * spells some attributes: those named in reserved (NULL-terminated) are refused,
 * since the form gives them. form names the op in the message. */
bool parse_form_attr_dict(Parser *p, TileAttrDict *out, const char *form,
                          const char *const *reserved);

/* ---- parse_ops.c ---- */
/* Parses '{' op* '}' into blk (whose arguments are already set); *close (if not
 * NULL) gets the position of the closing '}'. */
bool parse_block(Parser *p, TileBlock *blk, TileLoc *close);

#endif
