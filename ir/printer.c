/* The printer: a module as canonical .tile text (docs/tile-ir.md).
 *
 * The text is canonical so that print(parse(print(x))) == print(x): one layout (two
 * spaces per nesting level, attributes in stored order, every result type after ':'),
 * floats printed so they read back bit for bit, and unnamed values numbered
 * %0, %1, ... per function in the order they first appear. Once parsed, those numbers
 * become the values' names, so printing again gives the same text.
 *
 * The printer never fails on malformed IR: an op whose structure does not fit its
 * special form (a `for` without its bounds, a `call` without a callee) is printed in
 * the generic form, which shows everything it holds, and the parser or verifier
 * then points at the problem. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/ir.h"
#include "tile/ops.h"
#include "tile/text.h"

/* ---- numbering unnamed values ----
 * A map from value to its number, filled lazily as values are printed, so the
 * numbers follow the text. Numbers whose text equals an existing name in the same
 * scope ("%3" named "3") are skipped. */
typedef struct Namer {
  const TileValue **keys;
  int64_t *nums;
  size_t cap, n;
  int64_t *taken; /* sorted numbers that named values already use */
  size_t ntaken, taken_cap;
  int64_t next;
} Namer;

typedef struct Printer {
  FILE *out;
  Namer nm;
} Printer;

static void *xrealloc(void *p, size_t size) {
  p = realloc(p, size);
  if (!p) abort(); /* out of memory is not recoverable here */
  return p;
}

static void namer_grow(Namer *nm) {
  size_t old_cap = nm->cap;
  const TileValue **old_keys = nm->keys;
  int64_t *old_nums = nm->nums;
  nm->cap = old_cap ? old_cap * 2 : 64;
  nm->keys = calloc(nm->cap, sizeof *nm->keys);
  nm->nums = calloc(nm->cap, sizeof *nm->nums);
  if (!nm->keys || !nm->nums) abort();
  for (size_t i = 0; i < old_cap; i++) {
    if (!old_keys[i]) continue;
    size_t j = tile_hash_ptr(old_keys[i]) & (nm->cap - 1);
    while (nm->keys[j]) j = (j + 1) & (nm->cap - 1);
    nm->keys[j] = old_keys[i];
    nm->nums[j] = old_nums[i];
  }
  free(old_keys);
  free(old_nums);
}

static bool is_taken(const Namer *nm, int64_t x) {
  size_t lo = 0, hi = nm->ntaken;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (nm->taken[mid] == x) return true;
    if (nm->taken[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

/* The number of an unnamed value, given on first sight. */
static int64_t namer_number(Namer *nm, const TileValue *v) {
  if (2 * (nm->n + 1) > nm->cap) namer_grow(nm);
  size_t j = tile_hash_ptr(v) & (nm->cap - 1);
  while (nm->keys[j]) {
    if (nm->keys[j] == v) return nm->nums[j];
    j = (j + 1) & (nm->cap - 1);
  }
  while (is_taken(nm, nm->next)) nm->next++;
  nm->keys[j] = v;
  nm->nums[j] = nm->next++;
  nm->n++;
  return nm->nums[j];
}

/* Records a name that reads as a number ("7", not "07" or "7a"). */
static void namer_take(Namer *nm, const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > 18 || (name[0] == '0' && len > 1)) return;
  int64_t x = 0;
  for (size_t i = 0; i < len; i++) {
    if (!isdigit((unsigned char)name[i])) return;
    x = x * 10 + (name[i] - '0');
  }
  if (nm->ntaken == nm->taken_cap) {
    nm->taken_cap = nm->taken_cap ? nm->taken_cap * 2 : 16;
    nm->taken = xrealloc(nm->taken, nm->taken_cap * sizeof *nm->taken);
  }
  nm->taken[nm->ntaken++] = x;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void take_value(Namer *nm, const TileValue *v) {
  if (v && v->name) namer_take(nm, v->name);
}

static void take_block(Namer *nm, const TileBlock *blk);

/* Every value an op mentions: its operands, indices, results, and its regions. */
static void take_op(Namer *nm, const TileOp *op) {
  for (int i = 0; i < op->nopnd; i++) {
    take_value(nm, op->opnd[i].v);
    for (int j = 0; op->opnd[i].has_idx && j < op->opnd[i].nidx; j++)
      take_value(nm, op->opnd[i].idx[j].v);
  }
  for (int i = 0; i < op->nres; i++) take_value(nm, op->res[i]);
  for (int i = 0; i < op->nregion; i++) take_block(nm, op->region[i]);
}

static void take_block(Namer *nm, const TileBlock *blk) {
  if (!blk) return;
  for (int i = 0; i < blk->nargs; i++) take_value(nm, blk->args[i]);
  for (const TileOp *op = blk->first; op; op = op->next) take_op(nm, op);
}

static void namer_finish_taken(Namer *nm) {
  if (nm->ntaken > 1) qsort(nm->taken, nm->ntaken, sizeof *nm->taken, cmp_i64);
}

static void namer_free(Namer *nm) {
  free(nm->keys);
  free(nm->nums);
  free(nm->taken);
  memset(nm, 0, sizeof *nm);
}

/* ---- leaves: values, types, attributes ---- */
static void print_value(Printer *p, const TileValue *v) {
  if (!v) {
    fputs("%<null>", p->out); /* never valid text: the parser rejects it */
    return;
  }
  if (v->name && v->name[0]) fprintf(p->out, "%%%s", v->name);
  else fprintf(p->out, "%%%" PRId64, namer_number(&p->nm, v));
}

static void print_type(FILE *out, const TileType *t) {
  char buf[256];
  int n = tile_type_format(t, buf, sizeof buf);
  if (n >= (int)sizeof buf) { /* cannot happen for rank <= 8; keep it exact anyway */
    char *big = malloc((size_t)n + 1);
    if (!big) abort();
    tile_type_format(t, big, (size_t)n + 1);
    fputs(big, out);
    free(big);
    return;
  }
  fputs(buf, out);
}

/* The shortest %.Ng that reads back to the same double (1e-05, not
 * 1.0000000000000001e-05); a '.0' is added where the digits alone would read back
 * as an integer. */
static void print_float(FILE *out, double x) {
  if (isnan(x)) {
    fputs("nan", out);
    return;
  }
  if (isinf(x)) {
    fputs(x < 0 ? "-inf" : "inf", out);
    return;
  }
  char buf[64];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) break;
  }
  fputs(buf, out);
  if (!strpbrk(buf, ".eni")) fputs(".0", out);
}

static void print_string(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    switch (*c) {
    case '\\': fputs("\\\\", out); break;
    case '"': fputs("\\\"", out); break;
    case '\n': fputs("\\n", out); break;
    case '\t': fputs("\\t", out); break;
    default:
      if (*c < 32 || *c > 126) fprintf(out, "\\%02X", *c);
      else fputc(*c, out);
    }
  }
  fputc('"', out);
}

static void print_attr(FILE *out, const TileAttr *a) {
  switch (a->kind) {
  case TILE_ATTR_INT: fprintf(out, "%" PRId64, a->i); break;
  case TILE_ATTR_FLOAT: print_float(out, a->f); break;
  case TILE_ATTR_STRING: print_string(out, a->s ? a->s : ""); break;
  case TILE_ATTR_IDENT: fputs(a->s ? a->s : "<null>", out); break;
  case TILE_ATTR_NONE: fputc('-', out); break;
  case TILE_ATTR_SYMBOL: fprintf(out, "@%s", a->s ? a->s : "<null>"); break;
  case TILE_ATTR_ARRAY:
  case TILE_ATTR_TUPLE:
    fputc(a->kind == TILE_ATTR_ARRAY ? '[' : '(', out);
    for (int i = 0; a->elems && i < a->n; i++) {
      if (i) fputs(", ", out);
      print_attr(out, &a->elems[i]);
    }
    fputc(a->kind == TILE_ATTR_ARRAY ? ']' : ')', out);
    break;
  default: fprintf(out, "<attr kind %d>", a->kind); break;
  }
}

/* ` {a = 1, b = x}`, leaving out the nskip attributes named in skip, or nothing when
 * no attribute is left. */
static void print_attr_dict(FILE *out, const TileAttrDict *d, const char *const *skip, int nskip) {
  bool first = true;
  for (int i = 0; d && i < d->n; i++) {
    const TileNamedAttr *na = &d->items[i];
    bool skipped = false;
    for (int k = 0; k < nskip; k++)
      if (na->name && strcmp(na->name, skip[k]) == 0) skipped = true;
    if (skipped) continue;
    fputs(first ? " {" : ", ", out);
    first = false;
    fprintf(out, "%s = ", na->name ? na->name : "<null>");
    print_attr(out, &na->val);
  }
  if (!first) fputc('}', out);
}

static void print_use(Printer *p, const TileUse *u) {
  print_value(p, u->v);
  if (!u->has_idx) return;
  fputc('[', p->out);
  for (int i = 0; u->idx && i < u->nidx; i++) {
    if (i) fputs(", ", p->out);
    if (u->idx[i].v) print_value(p, u->idx[i].v);
    else fprintf(p->out, "%" PRId64, u->idx[i].c);
  }
  fputc(']', p->out);
}

static void print_uses(Printer *p, const TileOp *op) {
  for (int i = 0; i < op->nopnd; i++) {
    if (i) fputs(", ", p->out);
    print_use(p, &op->opnd[i]);
  }
}

static void print_result_types(Printer *p, const TileOp *op) {
  if (op->nres <= 0) return;
  fputs(" : ", p->out);
  for (int i = 0; i < op->nres; i++) {
    if (i) fputs(", ", p->out);
    if (op->res[i]) print_type(p->out, &op->res[i]->type);
    else fputs("<null>", p->out);
  }
}

/* ---- ops and blocks ---- */
static void print_block(Printer *p, const TileBlock *blk, int indent, bool omit_empty_yield);

static bool is_empty_yield(const TileOp *op) {
  return op->kind == TILE_OP_YIELD && op->nopnd == 0 && op->nres == 0 && op->nregion == 0 &&
         op->attrs.n == 0;
}

/* A region block that prints as nothing: empty, or only an empty yield. */
static bool block_prints_empty(const TileBlock *blk) {
  return !blk || !blk->first || (blk->first == blk->last && is_empty_yield(blk->first));
}

static void print_region(Printer *p, const TileBlock *blk, int indent, bool omit_empty_yield) {
  fputs("{\n", p->out);
  print_block(p, blk, indent + 2, omit_empty_yield);
  fprintf(p->out, "%*s}", indent, "");
}

static const char *const for_bounds[] = {"lower", "upper", "step"};

/* The `for` form holds only when the bounds are there and the body's arguments are
 * the induction variable and one per init value. */
static bool for_has_form(const TileOp *op, int64_t bound[3]) {
  for (int i = 0; i < 3; i++)
    if (!tile_attr_get_int(&op->attrs, for_bounds[i], &bound[i])) return false;
  return op->nregion == 1 && op->region[0] && op->region[0]->nargs == op->nopnd + 1 &&
         op->nres == op->nopnd;
}

static void print_for(Printer *p, const TileOp *op, const int64_t bound[3], int indent) {
  const TileBlock *body = op->region[0];
  fputs("for ", p->out);
  print_value(p, body->args[0]);
  fprintf(p->out, " = %" PRId64 " to %" PRId64 " step %" PRId64, bound[0], bound[1], bound[2]);
  if (op->nopnd > 0) {
    fputs(" iter(", p->out);
    for (int i = 0; i < op->nopnd; i++) {
      if (i) fputs(", ", p->out);
      print_value(p, body->args[i + 1]);
      fputs(" = ", p->out);
      print_use(p, &op->opnd[i]);
    }
    fputc(')', p->out);
  }
  print_attr_dict(p->out, &op->attrs, for_bounds, 3);
  print_result_types(p, op);
  fputc(' ', p->out);
  print_region(p, body, indent, true);
}

static void print_if(Printer *p, const TileOp *op, int indent) {
  fputs("if ", p->out);
  print_uses(p, op);
  print_attr_dict(p->out, &op->attrs, NULL, 0);
  print_result_types(p, op);
  fputc(' ', p->out);
  print_region(p, op->region[0], indent, true);
  if (!block_prints_empty(op->region[1])) {
    fputs(" else ", p->out);
    print_region(p, op->region[1], indent, true);
  }
}

static const char *const call_callee[] = {"callee"};

static void print_call(Printer *p, const TileOp *op, const char *callee) {
  fprintf(p->out, "call @%s(", callee);
  print_uses(p, op);
  fputc(')', p->out);
  print_attr_dict(p->out, &op->attrs, call_callee, 1);
  print_result_types(p, op);
}

/* `%a, %b = name operands {attrs} : types`, and any regions as blocks after it. */
static void print_generic(Printer *p, const TileOp *op, int indent) {
  fputs(tile_op_name(op->kind), p->out);
  if (op->nopnd > 0) fputc(' ', p->out);
  print_uses(p, op);
  print_attr_dict(p->out, &op->attrs, NULL, 0);
  print_result_types(p, op);
  for (int i = 0; i < op->nregion; i++) {
    fputc(' ', p->out);
    print_region(p, op->region[i], indent, false);
  }
}

static void print_op_at(Printer *p, const TileOp *op, int indent) {
  fprintf(p->out, "%*s", indent, "");
  for (int i = 0; i < op->nres; i++) {
    if (i) fputs(", ", p->out);
    print_value(p, op->res[i]);
  }
  if (op->nres > 0) fputs(" = ", p->out);

  int64_t bound[3];
  const TileAttr *callee = tile_attr_get(&op->attrs, "callee");
  if (op->kind == TILE_OP_FOR && for_has_form(op, bound))
    print_for(p, op, bound, indent);
  else if (op->kind == TILE_OP_IF && op->nopnd == 1 && op->nregion == 2)
    print_if(p, op, indent);
  else if (op->kind == TILE_OP_CALL && callee && callee->kind == TILE_ATTR_SYMBOL && callee->s)
    print_call(p, op, callee->s);
  else
    print_generic(p, op, indent);
  fputc('\n', p->out);
}

static void print_block(Printer *p, const TileBlock *blk, int indent, bool omit_empty_yield) {
  if (!blk) return;
  for (const TileOp *op = blk->first; op; op = op->next) {
    /* An empty yield ending a for/if region is implied by the text: the parser adds one
     * where a region does not already end in yield or return, so leave it out only
     * where the op before it is neither (else the reprint would lose it). */
    if (omit_empty_yield && !op->next && is_empty_yield(op) &&
        !(op->prev && (op->prev->kind == TILE_OP_YIELD || op->prev->kind == TILE_OP_RETURN)))
      continue;
    print_op_at(p, op, indent);
  }
}

/* ---- functions, meshes, modules ---- */
static void print_func_with(Printer *p, const TileFunc *f) {
  FILE *out = p->out;
  fprintf(out, "%s @%s(", f->is_kernel ? "kernel" : "func", f->name ? f->name : "<null>");
  const TileBlock *body = f->body;
  for (int i = 0; body && i < body->nargs; i++) {
    if (i) fputs(", ", out);
    print_value(p, body->args[i]);
    fputs(": ", out);
    if (body->args[i]) print_type(out, &body->args[i]->type);
    if (f->arg_attrs) print_attr_dict(out, &f->arg_attrs[i], NULL, 0);
  }
  fputc(')', out);
  if (f->nret == 1) {
    fputs(" -> ", out);
    print_type(out, &f->ret[0]);
  } else if (f->nret > 1) {
    fputs(" -> (", out);
    for (int i = 0; i < f->nret; i++) {
      if (i) fputs(", ", out);
      print_type(out, &f->ret[i]);
    }
    fputc(')', out);
  }
  if (f->attrs.n > 0) {
    fputs(" attributes", out);
    print_attr_dict(out, &f->attrs, NULL, 0);
  }
  fputs(" {\n", out);
  print_block(p, body, 2, false);
  fputs("}\n", out);
}

void tile_print_func(FILE *out, const TileFunc *f) {
  Printer p = {.out = out};
  take_block(&p.nm, f->body);
  namer_finish_taken(&p.nm);
  print_func_with(&p, f);
  namer_free(&p.nm);
}

void tile_print_op(FILE *out, const TileOp *op) {
  Printer p = {.out = out};
  take_op(&p.nm, op);
  namer_finish_taken(&p.nm);
  print_op_at(&p, op, 0);
  namer_free(&p.nm);
}

/* The simple form `torus<4x4>(x, y)` fits when axis i is exactly torus dim i. */
static bool mesh_is_simple(const TileMesh *mesh) {
  if (mesh->naxes != mesh->rank) return false;
  for (int i = 0; i < mesh->naxes; i++) {
    const TileMeshAxis *ax = &mesh->axes[i];
    if (ax->ndims != 1 || ax->dims[0] != i || ax->size != mesh->dims[i]) return false;
  }
  return true;
}

static void print_mesh(FILE *out, const TileMesh *mesh) {
  fprintf(out, "mesh @%s = torus<", mesh->name ? mesh->name : "<null>");
  for (int i = 0; i < mesh->rank && i < TILE_MAX_RANK; i++)
    fprintf(out, "%s%" PRId64, i ? "x" : "", mesh->dims[i]);
  fputs(">(", out);
  bool simple = mesh_is_simple(mesh);
  for (int i = 0; i < mesh->naxes && i < TILE_MAX_MESH_AXES; i++) {
    const TileMeshAxis *ax = &mesh->axes[i];
    if (i) fputs(", ", out);
    fputs(ax->name ? ax->name : "<null>", out);
    if (simple) continue;
    fprintf(out, " = %" PRId64 " on [", ax->size);
    for (int d = 0; d < ax->ndims && d < TILE_MAX_RANK; d++)
      fprintf(out, "%s%" PRId32, d ? ", " : "", ax->dims[d]);
    fputc(']', out);
  }
  fputs(")\n", out);
}

/* Meshes come first, one a line, then each function after one blank line. */
void tile_print_module(FILE *out, const TileModule *m) {
  for (const TileMesh *mesh = m->meshes; mesh; mesh = mesh->next) print_mesh(out, mesh);
  bool first = !m->meshes;
  for (const TileFunc *f = m->funcs; f; f = f->next) {
    if (!first) fputc('\n', out);
    first = false;
    tile_print_func(out, f);
  }
}

char *tile_print_module_str(const TileModule *m) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  if (!out) abort();
  tile_print_module(out, m);
  if (fclose(out) != 0 || !buf) abort();
  return buf;
}
