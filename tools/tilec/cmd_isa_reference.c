/* `tilec isa-reference`: the op reference of docs/isa.md (between its BEGIN and END
 * ISA REFERENCE markers), generated from the ISA table in include/tile/isa.h so the
 * document cannot drift from the ops the assembler, encoder and emulator know.
 * tests/lit/docs/isa-reference.test fails when the document holds anything else.
 * Markdown: one table per slot kind, in bundle order. */
#include <stdint.h>
#include <string.h>

#include "commands.h"
#include "tile/isa.h"
#include "tilec.h"

static const struct {
  const char *key, *about;
} slot_text[] = {
#define X(e, k, m) {k, m},
    TILE_SLOTS(X)
#undef X
};

static const char *const latency_keys[] = {
#define X(e, k, m) k,
    TILE_LATENCIES(X)
#undef X
};

/* An operand as the assembly spells it: sD, vA, mC, semC, imm, ... */
static void print_operand(FILE *out, int op, TileOperand o) {
  char field = (char)(o.field - 'a' + 'A');
  switch (o.kind) {
  case 'S':
  case 's': fprintf(out, "s%c", field); break;
  case 'V':
  case 'v': fprintf(out, "v%c", field); break;
  case 'm': fprintf(out, "m%c", field); break;
  case 'q': fprintf(out, "sem%c", field); break;
  case 'f': fputs("fimm", out); break;
  default:
    if (o.field == 'w') fputs("body", out);
    else if (o.field == 'c') fputs("c", out);
    else if (op == TILE_MOP_JMP || op == TILE_MOP_BNZ || op == TILE_MOP_BZ) fputs("target", out);
    else fputs("imm", out);
  }
}

/* Markdown table cells may not hold '|'. */
static void print_cell(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputc('\\', out);
    fputc(*s, out);
  }
}

static void print_constraints(FILE *out, int op) {
  int64_t lo, hi;
  tile_mop_imm_range(op, &lo, &hi);
  const char *imm = op == TILE_MOP_JMP || op == TILE_MOP_BNZ || op == TILE_MOP_BZ ? "target" : "imm";
  if (hi != INT32_MAX) fprintf(out, "; %s in %lld..%lld", imm, (long long)lo, (long long)hi);
  else if (lo != INT32_MIN) fprintf(out, "; %s >= %lld", imm, (long long)lo);
  if (op == TILE_MOP_LOOP) fprintf(out, "; body in 1..%d", TILE_WIDE_MAX);
  if (op == TILE_MOP_NOP) fputs("; fits any slot word and takes none", out);
}

static void print_reference(FILE *out) {
  fprintf(out,
          "Generated from `TILE_ISA` in include/tile/isa.h by `tilec isa-reference`.\n"
          "Operands: `sX`/`vX` scalar/vector registers, `mX` an MXU unit, `semX` a\n"
          "semaphore, `imm` a 32-bit integer, `fimm` a 32-bit float, `target` a bundle\n"
          "index or label; the letter after the register kind is the field it is encoded\n"
          "in (D, A, B, C). The latency column names the target file key that gives it.\n");
  for (int s = 0; s < TILE_SLOT_COUNT; s++) {
    int first = tile_slot_first((TileSlot)s), words = tile_slot_words((TileSlot)s);
    fprintf(out, "\n### %s slot\n\n", slot_text[s].key);
    if (words == 1) fprintf(out, "Bundle word %d", first);
    else fprintf(out, "Bundle words %d..%d", first, first + words - 1);
    fprintf(out, " (`slots.%s`): %s.\n\n", slot_text[s].key, slot_text[s].about);
    fprintf(out, "| op | operands | latency | semantics |\n|---|---|---|---|\n");
    for (int op = 0; op < TILE_MOP_COUNT; op++) {
      const TileMopInfo *info = &tile_mop_info[op];
      if ((int)info->slot != s) continue;
      fprintf(out, "| `%s` | ", info->mnemonic);
      TileOperand ops[TILE_MAX_OPERANDS];
      int n = tile_mop_operands(op, ops);
      if (n == 0) fputs("none", out);
      else fputc('`', out);
      for (int k = 0; k < n; k++) {
        if (k) fputs(", ", out);
        print_operand(out, op, ops[k]);
      }
      if (n) fputc('`', out);
      fprintf(out, " | `lat.%s` | ", latency_keys[info->latency]);
      print_cell(out, info->semantics);
      print_constraints(out, op);
      fputs(" |\n", out);
    }
  }
}

int tilec_cmd_isa_reference(int argc, char **argv) {
  if (argc > 1) {
    tilec_fail("%s takes no arguments (got '%s')", argv[0], argv[1]);
    return TILEC_BAD_INPUT;
  }
  print_reference(stdout);
  return fflush(stdout) == 0 ? TILEC_OK : TILEC_INTERNAL;
}
