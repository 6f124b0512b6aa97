/* Fuzzes the assembler (tile_asm) and, through what it accepts, the object writer,
 * reader and disassembler.
 *
 * Any text may go in; none may crash, hang or leak, and a failure must come with an
 * error. When the text assembles, the promises are the oracle: the object writes and
 * reads back, its disassembly assembles to the same bytes, and disassembling that gives
 * the same text. A broken promise aborts, which libFuzzer reports with the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/asm.h"
#include "tile/object.h"

static void fail(const char *what, const char *text) {
  fprintf(stderr, "fuzz_asm: %s\n", what);
  if (text) fprintf(stderr, "--- text:\n%s\n", text);
  abort();
}

static char *disassemble(const TileObject *o, size_t *len) {
  char *text = NULL;
  FILE *f = open_memstream(&text, len);
  if (!f) fail("open_memstream failed", NULL);
  tile_disasm(f, o);
  fclose(f);
  return text;
}

static uint8_t *to_bytes(const TileObject *o, size_t *len, const char *text) {
  uint8_t *b;
  if (!tile_object_write(o, &b, len)) fail("an assembled object could not be written", text);
  return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *src = (const char *)data;
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz.s", src, size);
  TileObject o;
  if (!tile_asm(src, size, "fuzz.s", NULL, &o, &d)) {
    if (d.nerrors == 0) fail("tile_asm failed without an error", NULL);
    if (o.code || o.data || o.syms) fail("tile_asm failed but left the object non-empty", NULL);
    return 0;
  }
  size_t len;
  uint8_t *bytes = to_bytes(&o, &len, NULL);
  tile_object_free(&o);
  TileObject r;
  tile_diag_init(&d, NULL, "fuzz.tobj", NULL, 0);
  if (!tile_object_read(bytes, len, &r, &d)) fail("an assembled object did not read back", d.last);

  size_t text_len;
  char *text = disassemble(&r, &text_len);
  tile_object_free(&r);
  TileObject back;
  tile_diag_init(&d, NULL, "fuzz.s", text, text_len);
  if (!tile_asm(text, text_len, "fuzz.s", NULL, &back, &d)) {
    fprintf(stderr, "--- error: %s\n", d.last);
    fail("the disassembly did not assemble", text);
  }
  size_t len2;
  uint8_t *bytes2 = to_bytes(&back, &len2, text);
  if (len2 != len || memcmp(bytes, bytes2, len) != 0) fail("asm(disasm(asm(text))) differs from asm(text)", text);
  size_t text2_len;
  char *text2 = disassemble(&back, &text2_len);
  if (text2_len != text_len || memcmp(text, text2, text_len) != 0)
    fail("the disassembly is not a fixed point", text);
  tile_object_free(&back);
  free(text2);
  free(bytes2);
  free(text);
  free(bytes);
  return 0;
}
