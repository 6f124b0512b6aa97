/* The .tile parser: the entry point, errors and recovery, name tables, and the
 * top level (meshes and functions). Ops and blocks are in parse_ops.c, types and
 * attributes in parse_attrs.c; docs/tile-ir.md is the grammar.
 *
 * Error recovery: an error inside an op skips to the next line that can start an op
 * (or to the '}' that closes the block); an error in a mesh or a function header
 * skips to the next line that starts with 'mesh', 'func' or 'kernel'. Parsing stops
 * once the diagnostics are full. Errors that follow from earlier ones are held back:
 * a function that already has errors reports no undefined values, and a second
 * error at the position of the last one is dropped. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "tile/text.h"

/* Longer inputs are refused up front; below this, every count and position fits in
 * an int with room to spare. */
#define PARSE_MAX_INPUT ((size_t)1 << 30)

/* Names in messages are shortened to this many bytes. */
enum { NAME_SHOWN = 64 };
#define SHOWN(len) ((int)((len) < NAME_SHOWN ? (len) : NAME_SHOWN))

/* ---- tokens and errors ---- */

void p_next(Parser *p) {
  /* Braces consumed so far, so recovery knows which '}' closes the current block. */
  if (p->tok.kind == TOK_LBRACE) p->braces++;
  else if (p->tok.kind == TOK_RBRACE) p->braces--;
  if (p->tok.kind != TOK_EOF) {
    /* Tokens never span lines; columns saturate like the lexer's. */
    p->prev_end_line = p->tok.line;
    p->prev_end_col =
        p->tok.len < (size_t)(INT_MAX - p->tok.col) ? p->tok.col + (int)p->tok.len : INT_MAX;
  }
  p->tok = lex_next(&p->lx);
}

TileLoc p_prev_end(const Parser *p) {
  return (TileLoc){.file = p->file, .line = p->prev_end_line, .col = p->prev_end_col};
}

bool p_is(const Parser *p, TokKind k) { return p->tok.kind == k; }
bool p_is_kw(const Parser *p, const char *kw) { return lex_is_ident(&p->tok, kw); }
/* Only this parse's own errors can stop it: a diagnostics engine that arrives
 * full must not cut a valid input short. */
bool p_stop(const Parser *p) { return p->nerr > 0 && tile_diag_full(p->d); }

TileLoc p_loc(const Parser *p, const Token *t) {
  return (TileLoc){.file = p->file, .line = t->line, .col = t->col};
}

static bool verror(Parser *p, TileLoc loc, const char *fmt, va_list ap) {
  if (p->nerr > 0 && loc.line == p->err_line && loc.col == p->err_col) {
    p->note_ok = false;
    return false;
  }
  p->nerr++;
  p->err_line = loc.line;
  p->err_col = loc.col;
  p->note_ok = true;
  tile_verror(p->d, loc, fmt, ap);
  return false;
}

bool p_error(Parser *p, TileLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(p, loc, fmt, ap);
  va_end(ap);
  return false;
}

bool p_error_tok(Parser *p, const char *fmt, ...) {
  TileLoc loc = p_loc(p, &p->tok);
  if (p->tok.kind == TOK_ERROR) {
    char msg[160];
    lex_error_message(&p->tok, msg, sizeof msg);
    return p_error(p, loc, "%s", msg);
  }
  va_list ap;
  va_start(ap, fmt);
  verror(p, loc, fmt, ap);
  va_end(ap);
  return false;
}

bool p_expected(Parser *p, const char *what) {
  char got[160];
  lex_describe(&p->tok, got, sizeof got);
  return p_error_tok(p, "expected %s, got %s", what, got);
}

ListStep p_list_step(Parser *p, TokKind close, const char *what) {
  if (p_is(p, TOK_COMMA) || p_is(p, close)) {
    bool more = p_is(p, TOK_COMMA);
    p_next(p);
    return more ? LIST_MORE : LIST_END;
  }
  p_expected(p, what);
  return LIST_ERROR;
}

void p_note(Parser *p, TileLoc loc, const char *fmt, ...) {
  if (!p->note_ok) return; /* its error was dropped */
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tile_note(p->d, loc, "%s", msg);
}

bool p_expect(Parser *p, TokKind k, const char *what) {
  if (p->tok.kind != k) return p_expected(p, what);
  p_next(p);
  return true;
}

bool p_expect_kw(Parser *p, const char *kw, const char *what) {
  if (!p_is_kw(p, kw)) return p_expected(p, what);
  p_next(p);
  return true;
}

void *p_grow(Parser *p, void *arr, int n, int *cap, size_t elsize) {
  if (n < *cap) return arr;
  int ncap = *cap ? *cap * 2 : 4;
  void *grown = tile_alloc(p->m, (size_t)ncap * elsize);
  if (n) memcpy(grown, arr, (size_t)n * elsize);
  *cap = ncap;
  return grown;
}

void p_skip_braces(Parser *p) {
  int depth = 0;
  while (!p_is(p, TOK_EOF)) {
    if (p_is(p, TOK_LBRACE)) depth++;
    else if (p_is(p, TOK_RBRACE) && --depth <= 0) {
      p_next(p);
      return;
    }
    p_next(p);
  }
}

bool p_is_top_kw(const Token *t) {
  return lex_is_ident(t, "func") || lex_is_ident(t, "kernel") || lex_is_ident(t, "mesh");
}

/* ---- name tables ---- */

static uint64_t hash_name(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

/* The slot holding name s, or the empty slot where it would go. */
static size_t map_slot(const NameMap *mp, const char *s, size_t n) {
  size_t mask = mp->nslots - 1, i = (size_t)hash_name(s, n) & mask;
  for (;;) {
    int32_t e = mp->slots[i];
    if (e < 0) return i;
    const NameEnt *ent = &mp->ents[e];
    if (ent->len == n && memcmp(ent->name, s, n) == 0) return i;
    i = (i + 1) & mask;
  }
}

NameEnt *map_get(NameMap *mp, const char *s, size_t n) {
  if (mp->n == 0) return NULL;
  int32_t e = mp->slots[map_slot(mp, s, n)];
  return e < 0 ? NULL : &mp->ents[e];
}

static void map_rehash(NameMap *mp, size_t nslots) {
  int32_t *slots = malloc(nslots * sizeof *slots);
  if (!slots) abort();
  for (size_t i = 0; i < nslots; i++) slots[i] = -1;
  free(mp->slots);
  mp->slots = slots;
  mp->nslots = nslots;
  for (int k = 0; k < mp->n; k++) {
    size_t i = map_slot(mp, mp->ents[k].name, mp->ents[k].len);
    slots[i] = k;
    mp->ents[k].slot = i;
  }
}

NameEnt *map_put(Parser *p, NameMap *mp, const char *s, size_t n) {
  if ((size_t)(mp->n + 1) * 2 > mp->nslots) map_rehash(mp, mp->nslots ? mp->nslots * 2 : 16);
  if (mp->n == mp->cap) {
    mp->cap = mp->cap ? mp->cap * 2 : 16;
    mp->ents = realloc(mp->ents, (size_t)mp->cap * sizeof *mp->ents);
    if (!mp->ents) abort();
  }
  size_t i = map_slot(mp, s, n);
  NameEnt *e = &mp->ents[mp->n];
  *e = (NameEnt){.name = tile_strdup(p->m, s, n), .len = n, .slot = i};
  mp->slots[i] = mp->n++;
  return e;
}

void map_reset(NameMap *mp) {
  for (int k = 0; k < mp->n; k++) mp->slots[mp->ents[k].slot] = -1;
  mp->n = 0;
}

static void map_free(NameMap *mp) {
  free(mp->ents);
  free(mp->slots);
}

/* ---- values ---- */

static const char *sigil_skip(const Token *t, size_t *n) {
  bool sigil = t->kind == TOK_VALUE || t->kind == TOK_SYMBOL;
  *n = t->len - (sigil ? 1 : 0);
  return t->text + (sigil ? 1 : 0);
}

const char *p_name(Parser *p, const Token *t) {
  size_t n;
  const char *s = sigil_skip(t, &n);
  return tile_strdup(p->m, s, n);
}

TileValue *p_new_value(Parser *p, TileType type) {
  TileValue *v = tile_alloc(p->m, sizeof *v);
  v->type = type;
  return v;
}

bool p_define_value(Parser *p, const Token *name, TileValue *v) {
  size_t n;
  const char *s = sigil_skip(name, &n);
  v->loc = p_loc(p, name);
  NameEnt *e = map_get(&p->values, s, n);
  if (e && e->val) {
    TileLoc first = e->def_loc;
    p_error(p, p_loc(p, name), "redefinition of value '%%%.*s'", SHOWN(n), s);
    p_note(p, first, "previous definition is here");
    return false;
  }
  if (!e) e = map_put(p, &p->values, s, n);
  e->val = v;
  e->def_loc = p_loc(p, name);
  v->name = e->name;
  return true;
}

TileValue *p_use_value(Parser *p, const Token *name) {
  size_t n;
  const char *s = sigil_skip(name, &n);
  NameEnt *e = map_get(&p->values, s, n);
  if (e && e->val) return e->val;
  if (!e) {
    e = map_put(p, &p->values, s, n);
    e->use_loc = p_loc(p, name);
  }
  if (!e->fwd) {
    /* A stand-in: no def and no block marks it; index finds its entry again. */
    e->fwd = tile_alloc(p->m, sizeof *e->fwd);
    e->fwd->name = e->name;
    e->fwd->index = (int32_t)(e - p->values.ents);
    p->nfwd++;
  }
  return e->fwd;
}

static void patch_value(Parser *p, TileValue **slot) {
  TileValue *v = *slot;
  if (v && !v->def && !v->block) {
    const NameEnt *e = &p->values.ents[v->index];
    if (e->val) *slot = e->val;
  }
}

/* Replaces stand-ins by their definitions; loop-carried block arguments then take
 * the types of their (now known) initial values. Depth is bounded by the region
 * nesting limit. */
static void patch_block(Parser *p, TileBlock *b) {
  for (TileOp *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nopnd; i++) {
      patch_value(p, &op->opnd[i].v);
      for (int k = 0; k < op->opnd[i].nidx; k++) patch_value(p, &op->opnd[i].idx[k].v);
    }
    if (op->kind == TILE_OP_FOR && op->nregion == 1) {
      TileBlock *body = op->region[0];
      for (int i = 0; i < op->nopnd && i + 1 < body->nargs; i++)
        body->args[i + 1]->type = op->opnd[i].v->type;
    }
    for (int r = 0; r < op->nregion; r++) patch_block(p, op->region[r]);
  }
}

/* The end of a function: names used but never defined are errors (unless the
 * function already has errors, which may have skipped their definitions); uses
 * before definition get their values. */
static void finish_values(Parser *p, TileFunc *f, int nerr_before) {
  if (p->nerr == nerr_before) {
    for (int k = 0; k < p->values.n && !p_stop(p); k++) {
      const NameEnt *e = &p->values.ents[k];
      if (!e->val)
        p_error(p, e->use_loc, "use of undefined value '%%%.*s'", SHOWN(e->len), e->name);
    }
  }
  if (p->nerr == 0 && p->nfwd > 0) patch_block(p, f->body);
  map_reset(&p->values);
  p->nfwd = 0;
}

/* ---- symbols ---- */

static void declare_symbol(Parser *p, const Token *name) {
  size_t n;
  const char *s = sigil_skip(name, &n);
  NameEnt *e = map_get(&p->symbols, s, n);
  if (e) {
    TileLoc first = e->def_loc;
    p_error(p, p_loc(p, name), "redefinition of symbol '@%.*s'", SHOWN(n), s);
    p_note(p, first, "previous definition is here");
    return;
  }
  e = map_put(p, &p->symbols, s, n);
  e->def_loc = p_loc(p, name);
}

/* ---- meshes ---- */

#define MAX_AXIS_SIZE ((int64_t)1 << 40)

/* The full axis form after its '=': SIZE 'on' '[' DIM (',' DIM)* ']'. */
static bool parse_axis_span(Parser *p, TileMesh *mesh, TileMeshAxis *ax, int *next_dim) {
  Token size_tok = p->tok;
  if (!parse_int(p, &ax->size, "the axis size (an integer)")) return false;
  if (ax->size < 1 || ax->size > MAX_AXIS_SIZE)
    return p_error(p, p_loc(p, &size_tok), "mesh axis size must be between 1 and 2^40, got %lld",
                   (long long)ax->size);
  if (!p_expect_kw(p, "on", "'on' after the axis size")) return false;
  if (!p_expect(p, TOK_LBRACKET, "'[' and the torus dims of the axis")) return false;
  for (;;) {
    Token dim_tok = p->tok;
    int64_t dim;
    if (!parse_int(p, &dim, "a torus dim (an integer)")) return false;
    if (dim < 0 || dim >= mesh->rank)
      return p_error(p, p_loc(p, &dim_tok), "torus dim %lld is out of range (the torus has %d)",
                     (long long)dim, mesh->rank);
    if (ax->ndims == TILE_MAX_RANK)
      return p_error(p, p_loc(p, &dim_tok), "a mesh axis spans at most %d torus dims",
                     TILE_MAX_RANK);
    ax->dims[ax->ndims++] = (int32_t)dim;
    if ((int)dim + 1 > *next_dim) *next_dim = (int)dim + 1;
    ListStep step = p_list_step(p, TOK_RBRACKET, "',' or ']' in the axis's torus dims");
    if (step == LIST_ERROR) return false;
    if (step == LIST_END) return true;
  }
}

static bool parse_mesh(Parser *p, TileMesh ***tail) {
  TileMesh *mesh = tile_alloc(p->m, sizeof *mesh);
  mesh->loc = p_loc(p, &p->tok);
  p_next(p); /* 'mesh' */
  if (!p_is(p, TOK_SYMBOL)) return p_expected(p, "the mesh name (a @name) after 'mesh'");
  mesh->name = p_name(p, &p->tok);
  declare_symbol(p, &p->tok);
  p_next(p);
  if (!p_expect(p, TOK_EQ, "'=' after the mesh name")) return false;
  if (!p_expect_kw(p, "torus", "'torus' after '='")) return false;
  if (!p_is(p, TOK_LT)) return p_expected(p, "'<' and the torus shape");
  int64_t dims[TILE_MAX_RANK];
  int rank;
  if (!parse_torus_shape(p, &rank, dims)) return false;
  mesh->rank = rank;
  memcpy(mesh->dims, dims, sizeof dims);
  if (!p_expect(p, TOK_LPAREN, "'(' and the mesh axes")) return false;
  /* In the simple form an axis takes the next torus dim: the one after every dim
   * the axes before it span. */
  int next_dim = 0;
  for (;;) {
    if (!p_is(p, TOK_IDENT)) return p_expected(p, "a mesh axis name");
    if (mesh->naxes == TILE_MAX_MESH_AXES)
      return p_error_tok(p, "a mesh has at most %d axes", TILE_MAX_MESH_AXES);
    Token name = p->tok;
    TileMeshAxis *ax = &mesh->axes[mesh->naxes++];
    ax->name = p_name(p, &name);
    p_next(p);
    if (p_is(p, TOK_EQ)) {
      p_next(p);
      if (!parse_axis_span(p, mesh, ax, &next_dim)) return false;
    } else {
      if (next_dim >= mesh->rank)
        return p_error(p, p_loc(p, &name),
                       "mesh axis '%.*s' has no torus dim left to take (the torus has %d)",
                       SHOWN(name.len), name.text, mesh->rank);
      ax->ndims = 1;
      ax->dims[0] = next_dim;
      ax->size = mesh->dims[next_dim];
      next_dim++;
    }
    ListStep step = p_list_step(p, TOK_RPAREN, "',' or ')' after a mesh axis");
    if (step == LIST_ERROR) return false;
    if (step == LIST_END) break;
  }
  **tail = mesh;
  *tail = &mesh->next;
  return true;
}

/* ---- functions ---- */

typedef struct Params {
  Token *names;
  TileType *types;
  TileAttrDict *attrs;
  int n, cap_names, cap_types, cap_attrs;
} Params;

static bool parse_params(Parser *p, Params *ps) {
  if (!p_expect(p, TOK_LPAREN, "'(' after the function name")) return false;
  if (p_is(p, TOK_RPAREN)) {
    p_next(p);
    return true;
  }
  for (;;) {
    if (!p_is(p, TOK_VALUE)) return p_expected(p, "a parameter name (a %name)");
    ps->names = p_grow(p, ps->names, ps->n, &ps->cap_names, sizeof *ps->names);
    ps->types = p_grow(p, ps->types, ps->n, &ps->cap_types, sizeof *ps->types);
    ps->attrs = p_grow(p, ps->attrs, ps->n, &ps->cap_attrs, sizeof *ps->attrs);
    int i = ps->n++;
    ps->names[i] = p->tok;
    ps->attrs[i] = (TileAttrDict){0};
    p_next(p);
    if (!p_expect(p, TOK_COLON, "':' and the parameter's type")) return false;
    if (!parse_type(p, &ps->types[i])) return false;
    if (p_is(p, TOK_LBRACE) && !parse_attr_dict(p, &ps->attrs[i])) return false;
    ListStep step = p_list_step(p, TOK_RPAREN, "',' or ')' in the parameter list");
    if (step == LIST_ERROR) return false;
    if (step == LIST_END) return true;
  }
}

static bool parse_results(Parser *p, TileFunc *f) {
  p_next(p); /* '->' */
  if (!p_is(p, TOK_LPAREN)) {
    f->nret = 1;
    f->ret = tile_alloc(p->m, sizeof *f->ret);
    return parse_type(p, f->ret);
  }
  p_next(p);
  TileType *types;
  int n;
  if (!parse_type_list(p, &types, &n)) return false;
  f->nret = n;
  f->ret = types;
  return p_expect(p, TOK_RPAREN, "',' or ')' after a result type");
}

static bool parse_func(Parser *p, TileFunc ***tail) {
  TileFunc *f = tile_alloc(p->m, sizeof *f);
  f->loc = p_loc(p, &p->tok);
  f->is_kernel = p_is_kw(p, "kernel");
  const char *what = f->is_kernel ? "the kernel name (a @name) after 'kernel'"
                                  : "the function name (a @name) after 'func'";
  p_next(p);
  if (!p_is(p, TOK_SYMBOL)) return p_expected(p, what);
  f->name = p_name(p, &p->tok);
  declare_symbol(p, &p->tok);
  p_next(p);

  int nerr_before = p->nerr;
  map_reset(&p->values);
  p->nfwd = 0;
  Params ps = {0};
  if (!parse_params(p, &ps)) return false;
  if (p_is(p, TOK_ARROW) && !parse_results(p, f)) return false;
  if (p_is_kw(p, "attributes")) {
    p_next(p);
    if (!p_is(p, TOK_LBRACE)) return p_expected(p, "'{' and the function's attributes");
    if (!parse_attr_dict(p, &f->attrs)) return false;
  }

  TileBlock *body = tile_alloc(p->m, sizeof *body);
  body->func = f;
  body->nargs = ps.n;
  body->args = tile_alloc(p->m, (size_t)ps.n * sizeof *body->args);
  for (int i = 0; i < ps.n; i++) {
    TileValue *v = p_new_value(p, ps.types[i]);
    v->block = body;
    v->index = i;
    body->args[i] = v;
    p_define_value(p, &ps.names[i], v);
  }
  f->body = body;
  f->arg_attrs = ps.n ? ps.attrs : NULL;

  if (!p_is(p, TOK_LBRACE)) return p_expected(p, "'{' and the function body");
  p->braces = 0;
  p->dict_open = 0;
  bool ok = parse_block(p, body, NULL);
  finish_values(p, f, nerr_before);
  **tail = f;
  *tail = &f->next;
  return ok;
}

/* ---- the module ---- */

/* After an error at the top level: on to the next line that starts a mesh or a
 * function, consuming at least the token the failed item started at. */
static void recover_top(Parser *p, const char *started_at) {
  while (!p_is(p, TOK_EOF)) {
    if (p->tok.text != started_at && p->tok.bol && p_is_top_kw(&p->tok)) return;
    p_next(p);
  }
}

TileModule *tile_parse(const char *src, size_t len, const char *filename, TileDiag *d) {
  TileDiag silent;
  if (!d) {
    tile_diag_init(&silent, NULL, filename, src, len);
    d = &silent;
  }
  if (!src) len = 0;
  Parser p = {0};
  p.m = tile_module_new(filename);
  p.d = d;
  p.file = p.m->filename;
  if (len >= PARSE_MAX_INPUT) {
    p_error(&p, (TileLoc){.file = p.file}, "input is too large (%zu bytes; the limit is 1 GiB)",
            len);
    tile_module_free(p.m);
    return NULL;
  }
  lex_init(&p.lx, src, len);
  p_next(&p);

  TileMesh **mesh_tail = &p.m->meshes;
  TileFunc **func_tail = &p.m->funcs;
  while (!p_is(&p, TOK_EOF) && !p_stop(&p)) {
    const char *started_at = p.tok.text;
    bool ok;
    if (p_is_kw(&p, "mesh")) ok = parse_mesh(&p, &mesh_tail);
    else if (p_is_kw(&p, "func") || p_is_kw(&p, "kernel")) ok = parse_func(&p, &func_tail);
    else ok = p_expected(&p, "'mesh', 'func' or 'kernel'");
    if (!ok) recover_top(&p, started_at);
  }

  map_free(&p.values);
  map_free(&p.symbols);
  map_free(&p.attr_names);
  if (p.nerr > 0) {
    tile_module_free(p.m);
    return NULL;
  }
  return p.m;
}
