/* The op reference: the last section of docs/tile-ir.md, generated from the op
 * table (tile_op_info) so the documentation cannot drift from the ops the compiler
 * knows. `tilec --print-op-reference` prints it; tests/lit/docs/op-reference.test
 * fails when the document holds anything else. Markdown, one table per family. */
#include <string.h>

#include "tilec.h"

/* Indexed by TileOpFamily. */
static const TilecFamily families[] = {
    [TILE_FAMILY_TENSOR] = {"tensor", "Tensor ops",
                            "Ops on whole tensors (and scalars) in a `func`: elementwise math, "
                            "structure, and composites that passes decompose."},
    [TILE_FAMILY_COLLECTIVE] = {"collective", "Collectives",
                                "Communication between the chips of the function's mesh, over "
                                "named mesh axes; the operand is this chip's shard."},
    [TILE_FAMILY_TILE] = {"tile", "Tile ops",
                          "Buffers in explicit memory spaces, read and written a tile at a time; "
                          "the ops a `kernel` computes with."},
    [TILE_FAMILY_DMA] = {"dma", "DMA and semaphores",
                         "Asynchronous copies between buffers, here or on another chip, and the "
                         "semaphores that say when they are done."},
    [TILE_FAMILY_CONTROL] = {"control", "Control",
                             "Loops, branches, calls and the ops that end regions. `for`, `if` "
                             "and `call` have forms of their own (see Ops above)."},
};
enum { NFAMILIES = sizeof families / sizeof families[0] };

const TilecFamily *tilec_family(TileOpFamily f) {
  static const TilecFamily other = {"other", "Other ops", "Ops of no family above."};
  if ((int)f < 0 || (int)f >= NFAMILIES || !families[f].title) return &other;
  return &families[f];
}

int tilec_family_count(void) {
  int n = NFAMILIES;
  for (int k = 0; k < TILE_OP_COUNT; k++)
    if ((int)tile_op_info[k].family >= n) n = (int)tile_op_info[k].family + 1;
  return n;
}

/* ---- words for the table's codes (the legend in include/tile/ops.h) ---- */

static const struct {
  char letter;
  const char *one, *many;
} operand_words[] = {
    {'v', "value", "values"},
    {'t', "tensor", "tensors"},
    {'s', "scalar", "scalars"},
    {'i', "integer scalar", "integer scalars"},
    {'b', "buffer", "buffers"},
    {'a', "access", "accesses"},
    {'m', "semaphore", "semaphores"},
    {'k', "token", "tokens"},
};

static const struct {
  const char *code, *words;
} attr_words[] = {
    {"int", "integer"},        {"float", "float"},      {"num", "number"},
    {"str", "string"},         {"ident", "identifier"}, {"array", "array"},
    {"ints", "integer array"}, {"axes", "mesh axes"},   {"sym", "symbol"},
    {"shard", "sharding"},     {"any", "any"},
};

static void operand_word(char letter, const char **one, const char **many) {
  for (size_t i = 0; i < sizeof operand_words / sizeof operand_words[0]; i++)
    if (operand_words[i].letter == letter) {
      *one = operand_words[i].one;
      *many = operand_words[i].many;
      return;
    }
  *one = *many = "operand";
}

/* "tt*" -> "tensor, tensor, zero or more tensors"; "mk?" -> "semaphore, optional token". */
static void print_operands(FILE *out, const char *sig) {
  if (!sig[0]) {
    fputs("none", out);
    return;
  }
  for (const char *p = sig; *p; p++) {
    const char *one, *many;
    operand_word(*p, &one, &many);
    if (p != sig) fputs(", ", out);
    if (p[1] == '*') {
      fprintf(out, "zero or more %s", many);
      p++;
    } else if (p[1] == '?') {
      fprintf(out, "optional %s", one);
      p++;
    } else {
      fputs(one, out);
    }
  }
}

static void print_results(FILE *out, int nres) {
  if (nres < 0)
    fputs("as written", out);
  else if (nres == 0)
    fputs("none", out);
  else
    fprintf(out, "%d", nres);
}

/* "kind:ident stride?:ints" -> "`kind` identifier, `stride` integer array (optional)". */
static void print_attrs(FILE *out, const char *spec) {
  const char *p = spec;
  bool any = false;
  while (*p) {
    while (*p == ' ') p++;
    if (!*p) break;
    const char *start = p;
    while (*p && *p != ' ') p++;
    size_t n = (size_t)(p - start);
    const char *colon = memchr(start, ':', n);
    size_t name_len = colon ? (size_t)(colon - start) : n;
    bool optional = name_len > 0 && start[name_len - 1] == '?';
    if (optional) name_len--;
    const char *kind = colon ? colon + 1 : "";
    size_t kind_len = colon ? (size_t)(p - kind) : 0;
    const char *words = NULL;
    for (size_t i = 0; i < sizeof attr_words / sizeof attr_words[0]; i++)
      if (strlen(attr_words[i].code) == kind_len && memcmp(attr_words[i].code, kind, kind_len) == 0)
        words = attr_words[i].words;
    fprintf(out, "%s`%.*s` ", any ? ", " : "", (int)name_len, start);
    if (words)
      fputs(words, out);
    else
      fprintf(out, "%.*s", (int)kind_len, kind);
    if (optional) fputs(" (optional)", out);
    any = true;
  }
  if (!any) fputs("none", out);
}

/* Table cells may not hold a bare '|'. */
static void print_cell_text(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputc('\\', out);
    fputc(*s, out);
  }
}

void tilec_print_op_reference(FILE *out) {
  fputs("Each op below is a row of the op table. Operands are listed by kind, in order: a\n"
        "*value* is a tensor or a scalar, an *access* is a buffer with one index per\n"
        "dimension (`%buf[%i, 0]`), a *token* names one `dma_start`. Results are counted;\n"
        "\"as written\" means the op's form names them. Every op with exactly one result\n"
        "also accepts `shard`, the sharding of that result; an op with no results or with\n"
        "several cannot take one. Every tensor op also accepts `group`, an integer: the\n"
        "fusion group the `fuse` pass puts it in (docs/passes.md).\n",
        out);
  int nfam = tilec_family_count();
  for (int fam = 0; fam < nfam; fam++) {
    int count = 0;
    for (int k = 0; k < TILE_OP_COUNT; k++) count += (int)tile_op_info[k].family == fam;
    if (!count) continue;
    const TilecFamily *info = tilec_family((TileOpFamily)fam);
    fprintf(out, "\n### %s\n\n%s\n\n", info->title, info->about);
    fputs("| op | operands | results | attributes | semantics |\n", out);
    fputs("|---|---|---|---|---|\n", out);
    for (int k = 0; k < TILE_OP_COUNT; k++) {
      const TileOpInfo *op = &tile_op_info[k];
      if ((int)op->family != fam) continue;
      fprintf(out, "| `%s` | ", op->name);
      print_operands(out, op->operands);
      fputs(" | ", out);
      print_results(out, op->nres);
      fputs(" | ", out);
      print_attrs(out, op->attrs);
      fputs(" | ", out);
      print_cell_text(out, op->doc);
      fputs(" |\n", out);
    }
  }
}
