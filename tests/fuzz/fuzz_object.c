/* Fuzzes the object reader (tile_object_read) and, through it, the disassembler and
 * the assembler.
 *
 * Any bytes may go in; none may crash, hang, leak or make the reader allocate more than
 * a small multiple of the input. Each input is read twice: as given (exercising the
 * length, magic, version and checksum checks) and, when it starts with the magic, with
 * its length and checksum fields repaired, so mutations reach the section and entry
 * checks behind the checksum.
 *
 * When an input is accepted, the format's promises are the oracle:
 *   - it is canonical: writing the decoded object gives back exactly the input;
 *   - its disassembly assembles to the same bytes (unless the object breaks the rules
 *     of a target that can be loaded here, which the assembler checks and the reader
 *     cannot), and disassembling that gives the same text.
 * A broken promise aborts, which libFuzzer reports with the input that did it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/asm.h"
#include "tile/object.h"

static void fail(const char *what) {
  fprintf(stderr, "fuzz_object: %s\n", what);
  abort();
}

static char *disassemble(const TileObject *o, size_t *len) {
  char *text = NULL;
  FILE *f = open_memstream(&text, len);
  if (!f) fail("open_memstream failed");
  tile_disasm(f, o);
  fclose(f);
  return text;
}

/* Whether the object's code obeys its target, when that target can be loaded. */
static bool fits_its_target(const TileObject *o) {
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz", NULL, 0);
  TileTarget t;
  if (!o->target[0] || !tile_target_load(o->target, &t, &d)) return true;
  return tile_object_check_target(o, &t, &d);
}

static void check(const uint8_t *bytes, size_t len) {
  TileObject o;
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz.tobj", NULL, 0);
  if (!tile_object_read(bytes, len, &o, &d)) {
    if (d.nerrors == 0) fail("tile_object_read failed without an error");
    if (o.code || o.data || o.syms || o.ncode || o.ndata || o.nsyms)
      fail("tile_object_read failed but left the object non-empty");
    return;
  }
  uint8_t *again;
  size_t again_len;
  if (!tile_object_write(&o, &again, &again_len)) fail("a readable object could not be written");
  if (again_len != len || memcmp(again, bytes, len) != 0)
    fail("writing a read object did not give back its bytes");
  free(again);

  size_t text_len;
  char *text = disassemble(&o, &text_len);
  if (fits_its_target(&o)) {
    TileObject back;
    tile_diag_init(&d, NULL, "fuzz.s", text, text_len);
    if (!tile_asm(text, text_len, "fuzz.s", NULL, &back, &d)) {
      fprintf(stderr, "%s\n--- error: %s\n", text, d.last);
      fail("the disassembly of a readable object did not assemble");
    }
    uint8_t *b2;
    size_t l2;
    if (!tile_object_write(&back, &b2, &l2)) fail("an assembled object could not be written");
    if (l2 != len || memcmp(b2, bytes, len) != 0) {
      fprintf(stderr, "%s\n", text);
      fail("asm(disasm(object)) differs from the object");
    }
    size_t text2_len;
    char *text2 = disassemble(&back, &text2_len);
    if (text2_len != text_len || memcmp(text, text2, text_len) != 0)
      fail("disasm(asm(disasm(object))) differs from disasm(object)");
    free(text2);
    free(b2);
    tile_object_free(&back);
  }
  free(text);
  tile_object_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check(data, size);
  if (size >= 32 && memcmp(data, "TILEOBJ", 8) == 0) {
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    uint64_t sum = tile_object_checksum(copy + 32, size - 32);
    for (int i = 0; i < 8; i++) {
      copy[16 + i] = (uint8_t)((uint64_t)size >> (8 * i));
      copy[24 + i] = (uint8_t)(sum >> (8 * i));
    }
    check(copy, size);
    free(copy);
  }
  return 0;
}
