/* Blocks and ops of the .tile format: the generic op form and the four forms of
 * their own (for, if, call, return); see docs/tile-ir.md. for, if and call take an
 * attribute dictionary where the printer writes one: after their operands, before
 * ':' and the result types.
 *
 * Every region this builds ends in a terminator: a for or if body without one gets
 * an empty `yield` (at its closing '}'), so later stages need not special-case it. */
#include <string.h>

#include "parse.h"

static TileOp *new_op(Parser *p, TileOpKind kind, TileLoc loc) {
  TileOp *op = tile_alloc(p->m, sizeof *op);
  op->kind = (uint16_t)kind;
  op->loc = loc;
  return op;
}

static void append_op(TileBlock *b, TileOp *op) {
  op->block = b;
  op->prev = b->last;
  op->next = NULL;
  if (b->last) b->last->next = op;
  else b->first = op;
  b->last = op;
}

static TileBlock *new_region_block(Parser *p, TileOp *parent, int nargs) {
  TileBlock *b = tile_alloc(p->m, sizeof *b);
  b->parent = parent;
  b->nargs = nargs;
  b->args = tile_alloc(p->m, (size_t)nargs * sizeof *b->args);
  return b;
}

static TileValue *new_arg(Parser *p, TileBlock *b, int i, TileType type) {
  TileValue *v = p_new_value(p, type);
  v->block = b;
  v->index = i;
  b->args[i] = v;
  return v;
}

static void ensure_terminator(Parser *p, TileBlock *b, TileLoc loc) {
  if (b->last && (b->last->kind == TILE_OP_YIELD || b->last->kind == TILE_OP_RETURN)) return;
  append_op(b, new_op(p, TILE_OP_YIELD, loc));
}

/* An op being parsed: its name, its result names (left of '=') and result types. */
typedef struct Form {
  const char *opname;
  const Token *names;
  int nnames;
  TileType *types;
  int ntypes;
} Form;

/* Operands, appended one by one into an arena array. */
typedef struct Uses {
  TileUse *v;
  int n, cap;
} Uses;

static TileUse *add_use(Parser *p, Uses *u) {
  u->v = p_grow(p, u->v, u->n, &u->cap, sizeof *u->v);
  u->v[u->n] = (TileUse){0};
  return &u->v[u->n++];
}

static void set_operands(TileOp *op, const Uses *u) {
  op->nopnd = u->n;
  op->opnd = u->v;
}

/* VALUE ('[' index (',' index)* ']')? */
static bool parse_use(Parser *p, TileUse *u) {
  if (!p_is(p, TOK_VALUE)) return p_expected(p, "an operand (a %name)");
  u->loc = p_loc(p, &p->tok);
  u->v = p_use_value(p, &p->tok);
  p_next(p);
  if (!p_is(p, TOK_LBRACKET)) return true;
  p_next(p);
  u->has_idx = true;
  int cap = 0;
  for (;;) {
    u->idx = p_grow(p, u->idx, u->nidx, &cap, sizeof *u->idx);
    TileIndex *ix = &u->idx[u->nidx];
    *ix = (TileIndex){.loc = p_loc(p, &p->tok)};
    if (p_is(p, TOK_VALUE)) {
      ix->v = p_use_value(p, &p->tok);
      p_next(p);
    } else if (p_is(p, TOK_INT)) {
      if (!parse_int(p, &ix->c, "an index")) return false;
    } else {
      return p_expected(p, "an index (a %name or an integer)");
    }
    u->nidx++;
    ListStep step = p_list_step(p, TOK_RBRACKET, "',' or ']' in index list");
    if (step == LIST_ERROR) return false;
    if (step == LIST_END) return true;
  }
}

/* A plain value operand (no index list): for, if, call and return take these. */
static bool parse_plain_use(Parser *p, Uses *u, const char *what) {
  if (!p_is(p, TOK_VALUE)) return p_expected(p, what);
  TileUse *use = add_use(p, u);
  use->loc = p_loc(p, &p->tok);
  use->v = p_use_value(p, &p->tok);
  p_next(p);
  return true;
}

/* (':' type (',' type)*)? -- required, and as many as the names, when the op names
 * results. When the op's line ends without them, the error stands where they were
 * expected (just past the op), not at whatever starts the next line. */
static bool parse_result_types(Parser *p, Form *f) {
  if (!p_is(p, TOK_COLON)) {
    if (f->nnames == 0) return true;
    if (p->tok.bol || p_is(p, TOK_EOF))
      return p_error(p, p_prev_end(p), "expected ':' and result types after '%s'", f->opname);
    return p_expected(p, "':' and result types");
  }
  Token colon = p->tok;
  p_next(p);
  if (!parse_type_list(p, &f->types, &f->ntypes)) return false;
  if (f->nnames > 0 && f->nnames != f->ntypes)
    return p_error(p, p_loc(p, &colon), "%d result name%s but %d result type%s", f->nnames,
                   f->nnames == 1 ? "" : "s", f->ntypes, f->ntypes == 1 ? "" : "s");
  return true;
}

/* A for/if body: a block, after the nesting check; *close gets its '}'. */
static bool parse_region(Parser *p, TileBlock *b, TileLoc *close) {
  if (!p_is(p, TOK_LBRACE)) return p_expected(p, "'{' and the body");
  if (p->region_depth >= PARSE_MAX_DEPTH) {
    p_error_tok(p, "regions are nested too deeply (the limit is %d)", PARSE_MAX_DEPTH);
    p_skip_braces(p);
    return false;
  }
  p->region_depth++;
  bool ok = parse_block(p, b, close);
  p->region_depth--;
  if (ok) ensure_terminator(p, b, *close);
  return ok;
}

static void set_attr_int(TileNamedAttr *a, const char *name, int64_t v) {
  a->name = name;
  a->val = (TileAttr){.kind = TILE_ATTR_INT, .i = v};
}

/* Whether the '{' at the current token opens the attribute dictionary of a for or
 * if rather than its body. A dictionary starts with `name =`, which no op does, or
 * is empty and followed by ':' and the result types or by the body's own '{'
 * (neither can follow an empty body). */
static bool at_attr_dict(const Parser *p) {
  if (!p_is(p, TOK_LBRACE)) return false;
  Lexer ahead = p->lx;
  Token t = lex_next(&ahead);
  if (t.kind == TOK_IDENT) return lex_next(&ahead).kind == TOK_EQ;
  if (t.kind != TOK_RBRACE) return false;
  TokKind after = (TokKind)lex_next(&ahead).kind;
  return after == TOK_LBRACE || after == TOK_COLON;
}

/* The attributes a form spells itself (fixed, n of them), then those of its
 * dictionary when it has one (at the current '{'). */
static bool parse_form_attrs(Parser *p, TileOp *op, bool has_dict, const TileNamedAttr *fixed,
                             int n, const char *const *reserved) {
  TileAttrDict extra = {0};
  if (has_dict && !parse_form_attr_dict(p, &extra, tile_op_name(op->kind), reserved))
    return false;
  op->attrs.n = n + extra.n;
  if (op->attrs.n == 0) return true;
  op->attrs.items = tile_alloc(p->m, (size_t)op->attrs.n * sizeof *op->attrs.items);
  if (n) memcpy(op->attrs.items, fixed, (size_t)n * sizeof *fixed);
  if (extra.n) memcpy(op->attrs.items + n, extra.items, (size_t)extra.n * sizeof *extra.items);
  return true;
}

static const char *const for_reserved[] = {"lower", "upper", "step", NULL};
static const char *const call_reserved[] = {"callee", NULL};

/* for VALUE '=' INT 'to' INT 'step' INT ('iter' '(' VALUE '=' VALUE, ... ')')?
 *     attrdict? (':' types)? block */
static bool parse_for(Parser *p, TileOp *op, Form *f) {
  if (!p_is(p, TOK_VALUE)) return p_expected(p, "the loop variable (a %name) after 'for'");
  Token iv = p->tok;
  p_next(p);
  int64_t lower, upper, step;
  if (!p_expect(p, TOK_EQ, "'=' after the loop variable") ||
      !parse_int(p, &lower, "the lower bound (an integer)") ||
      !p_expect_kw(p, "to", "'to' after the lower bound") ||
      !parse_int(p, &upper, "the upper bound (an integer)") ||
      !p_expect_kw(p, "step", "'step' after the upper bound") ||
      !parse_int(p, &step, "the step (an integer)"))
    return false;
  Token *iters = NULL;
  int cap = 0;
  Uses inits = {0};
  if (p_is_kw(p, "iter")) {
    p_next(p);
    if (!p_expect(p, TOK_LPAREN, "'(' after 'iter'")) return false;
    for (;;) {
      if (!p_is(p, TOK_VALUE)) return p_expected(p, "a loop-carried value (a %name)");
      iters = p_grow(p, iters, inits.n, &cap, sizeof *iters);
      iters[inits.n] = p->tok;
      p_next(p);
      if (!p_expect(p, TOK_EQ, "'=' after the loop-carried value")) return false;
      if (!parse_plain_use(p, &inits, "the initial value (a %name)")) return false;
      ListStep step = p_list_step(p, TOK_RPAREN, "',' or ')' in the iter list");
      if (step == LIST_ERROR) return false;
      if (step == LIST_END) break;
    }
  }
  TileNamedAttr bounds[3];
  set_attr_int(&bounds[0], "lower", lower);
  set_attr_int(&bounds[1], "upper", upper);
  set_attr_int(&bounds[2], "step", step);
  if (!parse_form_attrs(p, op, at_attr_dict(p), bounds, 3, for_reserved)) return false;
  if (!parse_result_types(p, f)) return false;
  set_operands(op, &inits);

  /* The body's arguments: the induction variable, then one per carried value with
   * its initial value's type (a use before definition gets its type at the end of
   * the function). */
  TileBlock *body = new_region_block(p, op, 1 + inits.n);
  p_define_value(p, &iv, new_arg(p, body, 0, tile_type_scalar(TILE_ELEM_I32)));
  for (int i = 0; i < inits.n; i++)
    p_define_value(p, &iters[i], new_arg(p, body, i + 1, inits.v[i].v->type));
  op->nregion = 1;
  op->region = tile_alloc(p->m, sizeof *op->region);
  op->region[0] = body;
  TileLoc close;
  return parse_region(p, body, &close);
}

/* if VALUE attrdict? (':' types)? block ('else' block)? -- always two regions. */
static bool parse_if(Parser *p, TileOp *op, Form *f) {
  Uses cond = {0};
  if (!parse_plain_use(p, &cond, "the condition (a %name) after 'if'")) return false;
  set_operands(op, &cond);
  if (!parse_form_attrs(p, op, at_attr_dict(p), NULL, 0, NULL)) return false;
  if (!parse_result_types(p, f)) return false;
  op->nregion = 2;
  op->region = tile_alloc(p->m, 2 * sizeof *op->region);
  op->region[0] = new_region_block(p, op, 0);
  op->region[1] = new_region_block(p, op, 0);
  TileLoc close;
  if (!parse_region(p, op->region[0], &close)) return false;
  if (p_is_kw(p, "else")) {
    p_next(p);
    return parse_region(p, op->region[1], &close);
  }
  /* No else: an empty one, whose yield stands where the then block ends. */
  ensure_terminator(p, op->region[1], close);
  return true;
}

/* call SYMBOL '(' (VALUE (',' VALUE)*)? ')' attrdict? (':' types)? */
static bool parse_call(Parser *p, TileOp *op, Form *f) {
  if (!p_is(p, TOK_SYMBOL)) return p_expected(p, "the callee (a @name) after 'call'");
  TileNamedAttr callee = {.name = "callee",
                          .val = {.kind = TILE_ATTR_SYMBOL, .s = p_name(p, &p->tok)}};
  p_next(p);
  if (!p_expect(p, TOK_LPAREN, "'(' after the callee")) return false;
  Uses args = {0};
  if (p_is(p, TOK_RPAREN)) {
    p_next(p);
  } else {
    for (;;) {
      if (!parse_plain_use(p, &args, "an argument (a %name)")) return false;
      ListStep step = p_list_step(p, TOK_RPAREN, "',' or ')' in the call arguments");
      if (step == LIST_ERROR) return false;
      if (step == LIST_END) break;
    }
  }
  set_operands(op, &args);
  /* A call has no region, so any '{' here is its dictionary. */
  if (!parse_form_attrs(p, op, p_is(p, TOK_LBRACE), &callee, 1, call_reserved)) return false;
  return parse_result_types(p, f);
}

/* Whether the current VALUE begins the next op's result names (`%a, %b = ...`)
 * rather than this op's operands: an op with no operands followed by one with
 * results (`yield` then `%x = ...`) reads the same token stream as an op with
 * operands, and only the '=' tells them apart. */
static bool at_result_names(const Parser *p) {
  Lexer ahead = p->lx;
  for (;;) {
    Token t = lex_next(&ahead);
    if (t.kind != TOK_COMMA) return t.kind == TOK_EQ;
    if (lex_next(&ahead).kind != TOK_VALUE) return false;
  }
}

/* After an operand with no ',' next: another %name that does not begin the next
 * op's result names is an operand whose ',' was left out. */
static bool missing_comma(Parser *p) {
  if (!p_is(p, TOK_VALUE) || at_result_names(p)) return false;
  p_expected(p, "',' between operands");
  return true;
}

/* return (VALUE (',' VALUE)*)? */
static bool parse_return(Parser *p, TileOp *op, Form *f) {
  if (f->nnames > 0) return p_error(p, p_loc(p, &f->names[0]), "'return' has no results");
  Uses vals = {0};
  if (p_is(p, TOK_VALUE) && !at_result_names(p)) {
    for (;;) {
      if (!parse_plain_use(p, &vals, "a value (a %name)")) return false;
      if (missing_comma(p)) return false;
      if (!p_is(p, TOK_COMMA)) break;
      p_next(p);
    }
  }
  set_operands(op, &vals);
  return true;
}

/* OPNAME operands? attrdict? (':' types)? */
static bool parse_generic(Parser *p, TileOp *op, Form *f) {
  Uses uses = {0};
  if (p_is(p, TOK_VALUE) && !at_result_names(p)) {
    for (;;) {
      if (!parse_use(p, add_use(p, &uses))) return false;
      if (missing_comma(p)) return false;
      if (!p_is(p, TOK_COMMA)) break;
      p_next(p);
    }
  }
  set_operands(op, &uses);
  if (p_is(p, TOK_LBRACE) && !parse_attr_dict(p, &op->attrs)) return false;
  return parse_result_types(p, f);
}

/* Makes the results from the parsed types and names them. A redefinition is
 * reported but leaves the op in place: its syntax was fine. */
static void bind_results(Parser *p, TileOp *op, const Form *f) {
  op->nres = f->ntypes;
  op->res = tile_alloc(p->m, (size_t)f->ntypes * sizeof *op->res);
  for (int i = 0; i < f->ntypes; i++) {
    TileValue *v = p_new_value(p, f->types[i]);
    v->def = op;
    v->index = i;
    v->loc = op->loc; /* an unnamed result stands where its op does */
    op->res[i] = v;
    if (f->nnames > 0) p_define_value(p, &f->names[i], v);
  }
}

static bool parse_op(Parser *p, TileBlock *blk) {
  Form f = {0};
  Token *names = NULL;
  int cap = 0;
  if (p_is(p, TOK_VALUE)) {
    for (;;) {
      names = p_grow(p, names, f.nnames, &cap, sizeof *names);
      names[f.nnames++] = p->tok;
      p_next(p);
      if (p_is(p, TOK_EQ)) break;
      if (!p_is(p, TOK_COMMA)) return p_expected(p, "',' or '=' after a result name");
      p_next(p);
      if (!p_is(p, TOK_VALUE)) return p_expected(p, "a result name (a %name)");
    }
    p_next(p);
    f.names = names;
  }
  if (!p_is(p, TOK_IDENT)) return p_expected(p, f.nnames ? "an op name" : "an op");
  Token name = p->tok;
  int kind = tile_op_lookup(name.text, name.len);
  if (kind < 0)
    return p_error_tok(p, "unknown op '%.*s'", (int)(name.len < 64 ? name.len : 64), name.text);
  p_next(p);
  f.opname = tile_op_name(kind);
  TileOp *op = new_op(p, (TileOpKind)kind, p_loc(p, &name));
  bool ok;
  switch (kind) {
  case TILE_OP_FOR: ok = parse_for(p, op, &f); break;
  case TILE_OP_IF: ok = parse_if(p, op, &f); break;
  case TILE_OP_CALL: ok = parse_call(p, op, &f); break;
  case TILE_OP_RETURN: ok = parse_return(p, op, &f); break;
  default: ok = parse_generic(p, op, &f); break;
  }
  if (!ok) return false;
  bind_results(p, op, &f);
  append_op(blk, op);
  return true;
}

/* After an error in an op: on to the next line that starts with something an op
 * can start with, in this block; or to the '}' that closes this block, which is
 * left for the block to take. Braces opened on the way (an attribute dictionary,
 * the body of a broken for) are skipped whole. A line starting with func, kernel
 * or mesh stops it too: the block was never closed. */
static void recover(Parser *p, int base, int line) {
  /* An attribute dictionary the error left open ends with its line at the latest:
   * otherwise its missing '}' would take the one that closes the block. */
  bool dict_open = p->dict_open > 0;
  p->dict_open = 0;
  while (!p_is(p, TOK_EOF)) {
    const Token *t = &p->tok;
    if (dict_open && t->bol) {
      dict_open = false;
      if (p->braces > base) p->braces--;
    } else if (dict_open && t->kind == TOK_RBRACE && p->braces > base) {
      dict_open = false;
      p_next(p); /* the dictionary's own '}' */
      continue;
    }
    if (t->kind == TOK_RBRACE && p->braces == base) return;
    if (t->bol && p_is_top_kw(t)) return;
    if (p->braces == base && t->bol && t->line > line &&
        (t->kind == TOK_VALUE || t->kind == TOK_IDENT))
      return;
    p_next(p);
  }
}

bool parse_block(Parser *p, TileBlock *blk, TileLoc *close) {
  Token open = p->tok;
  if (!p_expect(p, TOK_LBRACE, "'{' to begin a block")) return false;
  int base = p->braces;
  for (;;) {
    if (p_stop(p)) return false;
    if (p_is(p, TOK_RBRACE)) {
      if (close) *close = p_loc(p, &p->tok);
      p_next(p);
      return true;
    }
    if (p_is(p, TOK_EOF) || (p->tok.bol && p_is_top_kw(&p->tok))) {
      p_expected(p, "'}' to close the block");
      p_note(p, p_loc(p, &open), "the block begins here");
      return false;
    }
    int line = p->tok.line;
    if (!parse_op(p, blk)) recover(p, base, line);
  }
}
