/* Types, shapes, integers and attributes of the .tile format (docs/tile-ir.md).
 *
 * Limits that keep later stages safe from overflow: a dimension is at most 2^40,
 * a type or a torus holds at most 2^48 elements, integers are 64-bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

#define MAX_DIM ((int64_t)1 << 40)
#define MAX_NUMEL ((int64_t)1 << 48)

/* ---- integers ---- */

/* -?[0-9]+ as an int64; false when it does not fit. */
static bool int_value(const char *s, size_t n, int64_t *out) {
  bool neg = n > 0 && s[0] == '-';
  uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
  for (size_t i = neg; i < n; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (limit - d) / 10) return false;
    v = v * 10 + d;
  }
  /* -2^63 has no positive counterpart, so negate in unsigned arithmetic. */
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

bool parse_int(Parser *p, int64_t *out, const char *what) {
  if (!p_is(p, TOK_INT)) return p_expected(p, what);
  if (!int_value(p->tok.text, p->tok.len, out)) {
    char got[160];
    lex_describe(&p->tok, got, sizeof got);
    return p_error_tok(p, "integer %s does not fit in 64 bits", got);
  }
  p_next(p);
  return true;
}

/* ---- types ---- */

static bool product_ok(int rank, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (n > MAX_NUMEL / dims[i]) return false;
    n *= dims[i];
  }
  return true;
}

/* A dimension token (digits only): positive and at most 2^40. */
static bool shape_dim(Parser *p, int64_t *out) {
  char got[160];
  int64_t v = 0;
  for (size_t i = 0; i < p->tok.len && v <= MAX_DIM; i++) v = v * 10 + (p->tok.text[i] - '0');
  lex_describe(&p->tok, got, sizeof got);
  if (v > MAX_DIM) return p_error_tok(p, "dimension %s is too large (the limit is 2^40)", got);
  if (v == 0) return p_error_tok(p, "dimensions must be positive, got %s", got);
  *out = v;
  return true;
}

/* '<' (DIM 'x')* ELEM '>' when elem is wanted, else '<' DIM ('x' DIM)* '>'. The
 * current token is the '<'; shape tokens come from lex_shape until the '>'. */
static bool parse_shape(Parser *p, TileElem *elem, int *rank, int64_t *dims) {
  bool after_dim = false;
  *rank = 0;
  for (;;) {
    p->tok = lex_shape(&p->lx, after_dim);
    if (after_dim) {
      if (p_is(p, TOK_X)) {
        after_dim = false;
        continue;
      }
      if (!elem && p_is(p, TOK_GT)) break;
      return p_expected(p, elem ? "'x' after a dimension" : "'x' or '>' in the torus shape");
    }
    if (p_is(p, TOK_INT)) {
      if (*rank == TILE_MAX_RANK)
        return p_error_tok(p, "too many dimensions (the limit is %d)", TILE_MAX_RANK);
      if (!shape_dim(p, &dims[*rank])) return false;
      (*rank)++;
      after_dim = true;
      continue;
    }
    if (!elem || !p_is(p, TOK_IDENT))
      return p_expected(p, elem ? "a dimension or an element type" : "a dimension");
    *elem = tile_elem_lookup(p->tok.text, p->tok.len);
    if (*elem == TILE_ELEM_NONE) {
      char got[160];
      lex_describe(&p->tok, got, sizeof got);
      return p_error_tok(p, "unknown element type %s", got);
    }
    p->tok = lex_shape(&p->lx, false);
    if (!p_is(p, TOK_GT)) return p_expected(p, "'>' after the element type");
    break;
  }
  p_next(p); /* back to ordinary tokens after the '>' */
  return true;
}

bool parse_torus_shape(Parser *p, int *rank, int64_t *dims) {
  Token lt = p->tok;
  if (!parse_shape(p, NULL, rank, dims)) return false;
  if (!product_ok(*rank, dims))
    return p_error(p, p_loc(p, &lt), "the torus has more than 2^48 chips");
  return true;
}

static const struct {
  const char *name;
  TileTypeKind kind;
  TileSpace space;
} shaped_types[] = {
    {"tensor", TILE_TY_TENSOR, 0},
#define X(e, n) {n, TILE_TY_BUFFER, TILE_SPACE_##e},
    TILE_SPACES(X)
#undef X
};

bool parse_type(Parser *p, TileType *out) {
  if (!p_is(p, TOK_IDENT)) return p_expected(p, "a type");
  Token t = p->tok;
  if (p_is_kw(p, "sem") || p_is_kw(p, "token")) {
    *out = p_is_kw(p, "sem") ? tile_type_sem() : tile_type_token();
    p_next(p);
    return true;
  }
  for (size_t k = 0; k < sizeof shaped_types / sizeof shaped_types[0]; k++) {
    if (!lex_is_ident(&t, shaped_types[k].name)) continue;
    p_next(p);
    if (!p_is(p, TOK_LT)) {
      char what[64];
      snprintf(what, sizeof what, "'<' after '%s'", shaped_types[k].name);
      return p_expected(p, what);
    }
    TileElem elem = TILE_ELEM_NONE;
    int64_t dims[TILE_MAX_RANK];
    int rank;
    if (!parse_shape(p, &elem, &rank, dims)) return false;
    if (shaped_types[k].kind == TILE_TY_BUFFER) {
      if (rank == 0)
        return p_error(p, p_loc(p, &t), "a buffer type needs at least one dimension");
      *out = tile_type_buffer(shaped_types[k].space, elem, rank, dims);
    } else {
      *out = tile_type_tensor(elem, rank, dims);
    }
    if (!product_ok(rank, dims))
      return p_error(p, p_loc(p, &t), "the type has more than 2^48 elements");
    return true;
  }
  TileElem e = tile_elem_lookup(t.text, t.len);
  if (e == TILE_ELEM_NONE) {
    char got[160];
    lex_describe(&t, got, sizeof got);
    return p_error_tok(p, "unknown type %s", got);
  }
  *out = tile_type_scalar(e);
  p_next(p);
  return true;
}

bool parse_type_list(Parser *p, TileType **out, int *n) {
  TileType *types = NULL;
  int count = 0, cap = 0;
  for (;;) {
    types = p_grow(p, types, count, &cap, sizeof *types);
    if (!parse_type(p, &types[count])) return false;
    count++;
    if (!p_is(p, TOK_COMMA)) break;
    p_next(p);
  }
  *out = types;
  *n = count;
  return true;
}

/* ---- attributes ---- */

static bool parse_float(Parser *p, double *out) {
  const Token *t = &p->tok;
  bool neg = t->text[0] == '-';
  size_t skip = neg ? 1 : 0;
  if (t->len == skip + 3 && memcmp(t->text + skip, "inf", 3) == 0) {
    *out = neg ? -INFINITY : INFINITY;
  } else if (t->len == skip + 3 && memcmp(t->text + skip, "nan", 3) == 0) {
    *out = neg ? copysign(NAN, -1.0) : NAN;
  } else {
    /* strtod needs a terminated string; the token is not one. */
    char small[64], *buf = t->len < sizeof small ? small : malloc(t->len + 1);
    if (!buf) abort();
    memcpy(buf, t->text, t->len);
    buf[t->len] = 0;
    double v = strtod(buf, NULL);
    if (buf != small) free(buf);
    if (isinf(v)) {
      char got[160];
      lex_describe(t, got, sizeof got);
      return p_error_tok(p, "float %s is out of range", got);
    }
    *out = v;
  }
  p_next(p);
  return true;
}

static bool parse_attr_value(Parser *p, TileAttr *out);

/* '[' values ']' or '(' values ')'; empty ones are allowed. */
static bool parse_attr_list(Parser *p, TileAttr *out) {
  bool array = p_is(p, TOK_LBRACKET);
  TokKind close = array ? TOK_RBRACKET : TOK_RPAREN;
  if (p->attr_depth >= PARSE_MAX_DEPTH)
    return p_error_tok(p, "attributes are nested too deeply (the limit is %d)", PARSE_MAX_DEPTH);
  out->kind = array ? TILE_ATTR_ARRAY : TILE_ATTR_TUPLE;
  p_next(p);
  if (p_is(p, close)) {
    p_next(p);
    return true;
  }
  TileAttr *elems = NULL;
  int n = 0, cap = 0;
  bool ok = true;
  p->attr_depth++;
  for (;;) {
    elems = p_grow(p, elems, n, &cap, sizeof *elems);
    if (!parse_attr_value(p, &elems[n])) {
      ok = false;
      break;
    }
    n++;
    ListStep step = p_list_step(p, close,
                                  array ? "',' or ']' in the array" : "',' or ')' in the tuple");
    if (step == LIST_ERROR) {
      ok = false;
      break;
    }
    if (step == LIST_END) break;
  }
  p->attr_depth--;
  out->n = n;
  out->elems = elems;
  return ok;
}

static bool parse_attr_value(Parser *p, TileAttr *out) {
  const Token *t = &p->tok;
  *out = (TileAttr){0};
  switch (t->kind) {
  case TOK_INT: out->kind = TILE_ATTR_INT; return parse_int(p, &out->i, "an integer");
  case TOK_FLOAT: out->kind = TILE_ATTR_FLOAT; return parse_float(p, &out->f);
  case TOK_STRING: {
    char *s = tile_alloc(p->m, t->len + 1);
    s[lex_string_decode(t, s)] = 0;
    out->kind = TILE_ATTR_STRING;
    out->s = s;
    p_next(p);
    return true;
  }
  case TOK_IDENT:
    if (lex_is_ident(t, "inf") || lex_is_ident(t, "nan")) {
      out->kind = TILE_ATTR_FLOAT;
      return parse_float(p, &out->f);
    }
    out->kind = TILE_ATTR_IDENT;
    out->s = p_name(p, t);
    p_next(p);
    return true;
  case TOK_SYMBOL:
    out->kind = TILE_ATTR_SYMBOL;
    out->s = p_name(p, t);
    p_next(p);
    return true;
  case TOK_MINUS:
    out->kind = TILE_ATTR_NONE;
    p_next(p);
    return true;
  case TOK_LBRACKET:
  case TOK_LPAREN: return parse_attr_list(p, out);
  default: return p_expected(p, "an attribute value");
  }
}

static bool is_reserved(const Token *t, const char *const *reserved) {
  for (int i = 0; reserved && reserved[i]; i++)
    if (lex_is_ident(t, reserved[i])) return true;
  return false;
}

bool parse_attr_dict(Parser *p, TileAttrDict *out) {
  return parse_form_attr_dict(p, out, NULL, NULL);
}

bool parse_form_attr_dict(Parser *p, TileAttrDict *out, const char *form,
                          const char *const *reserved) {
  p_next(p); /* '{' */
  p->dict_open++; /* until its '}': a failed op's recovery needs to know */
  TileNamedAttr *items = NULL;
  int n = 0, cap = 0;
  out->n = 0;
  out->items = NULL;
  map_reset(&p->attr_names);
  if (p_is(p, TOK_RBRACE)) {
    p_next(p);
    p->dict_open--;
    return true;
  }
  for (;;) {
    if (!p_is(p, TOK_IDENT)) return p_expected(p, "an attribute name");
    if (is_reserved(&p->tok, reserved))
      return p_error_tok(p, "'%.*s' is written in the '%s' form itself, not as an attribute",
                         (int)p->tok.len, p->tok.text, form);
    if (map_get(&p->attr_names, p->tok.text, p->tok.len))
      return p_error_tok(p, "duplicate attribute '%.*s'", (int)(p->tok.len < 64 ? p->tok.len : 64),
                         p->tok.text);
    map_put(p, &p->attr_names, p->tok.text, p->tok.len);
    items = p_grow(p, items, n, &cap, sizeof *items);
    items[n].name = p_name(p, &p->tok);
    p_next(p);
    if (!p_expect(p, TOK_EQ, "'=' after the attribute name")) return false;
    if (!parse_attr_value(p, &items[n].val)) return false;
    n++;
    out->n = n;
    out->items = items;
    ListStep step = p_list_step(p, TOK_RBRACE, "',' or '}' in the attribute dictionary");
    if (step == LIST_ERROR) return false;
    if (step == LIST_END) {
      p->dict_open--;
      return true;
    }
  }
}
