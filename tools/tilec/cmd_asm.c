/* `tilec asm` and `tilec disasm`: the assembler and disassembler of VLIW objects
 * (syntax and object layout in docs/isa.md).
 *
 *   tilec asm FILE.s [-o FILE.tobj] [--target NAME]
 *   tilec disasm FILE.tobj [-o FILE.s]
 *
 * `asm` writes FILE.tobj beside FILE.s unless -o says otherwise; `-` is standard input
 * or output. Exit codes as everywhere in tilec: 0 done, 1 bad input (the diagnostics
 * say where), 2 the output could not be written. Nothing is written on bad input. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tile/asm.h"
#include "tilec.h"

typedef struct MachineArgs {
  const char *input, *output, *target;
} MachineArgs;

/* FILE [-o OUT] [--target NAME] (the latter only where allowed). */
static int parse_args(int argc, char **argv, bool allow_target, MachineArgs *args) {
  memset(args, 0, sizeof *args);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char **slot = NULL;
    const char *value = NULL;
    if (strcmp(a, "-o") == 0) slot = &args->output;
    else if (strncmp(a, "-o", 2) == 0) slot = &args->output, value = a + 2;
    else if (allow_target && strcmp(a, "--target") == 0) slot = &args->target;
    else if (allow_target && strncmp(a, "--target=", 9) == 0) slot = &args->target, value = a + 9;
    else if (a[0] == '-' && a[1]) {
      tilec_fail("%s: unknown option '%s'", argv[0], a);
      return TILEC_BAD_INPUT;
    } else if (args->input) {
      tilec_fail("%s takes one input file (got '%s' and '%s')", argv[0], args->input, a);
      return TILEC_BAD_INPUT;
    } else {
      args->input = a;
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        tilec_fail("%s: '%s' needs a value", argv[0], a);
        return TILEC_BAD_INPUT;
      }
      value = argv[++i];
    }
    *slot = value;
  }
  if (!args->input) {
    tilec_fail("%s needs an input file (or - for standard input)", argv[0]);
    return TILEC_BAD_INPUT;
  }
  return TILEC_OK;
}

static int write_output(const char *path, const void *bytes, size_t len) {
  bool is_stdout = strcmp(path, "-") == 0;
  FILE *f = is_stdout ? stdout : fopen(path, "wb");
  if (!f) {
    tilec_fail("cannot write '%s': %s", path, strerror(errno));
    return TILEC_INTERNAL;
  }
  bool ok = fwrite(bytes, 1, len, f) == len;
  ok = (is_stdout ? fflush(f) == 0 : fclose(f) == 0) && ok;
  if (!ok) {
    tilec_fail("cannot write '%s': %s", path, strerror(errno ? errno : EIO));
    if (!is_stdout) remove(path);
    return TILEC_INTERNAL;
  }
  return TILEC_OK;
}

/* FILE.s -> FILE.tobj; any other name gets .tobj added. */
static char *default_output(const char *input) {
  size_t n = strlen(input);
  char *out = malloc(n + 6);
  if (!out) return NULL;
  memcpy(out, input, n + 1);
  if (n > 2 && strcmp(input + n - 2, ".s") == 0) out[n - 2] = 0;
  strcat(out, ".tobj");
  return out;
}

int tilec_cmd_asm(int argc, char **argv) {
  MachineArgs args;
  int rc = parse_args(argc, argv, true, &args);
  if (rc != TILEC_OK) return rc;
  if (strcmp(args.input, "-") == 0 && !args.output) {
    tilec_fail("asm: give -o OUT when reading standard input");
    return TILEC_BAD_INPUT;
  }
  TileDiag d;
  tile_diag_init(&d, stderr, strcmp(args.input, "-") == 0 ? "<stdin>" : args.input, NULL, 0);
  TileTarget target;
  if (args.target && !tile_target_load(args.target, &target, &d)) return TILEC_BAD_INPUT;
  char *src;
  size_t len;
  rc = tilec_read_file(args.input, &src, &len);
  if (rc != TILEC_OK) return rc;
  TileObject obj;
  bool ok = tile_asm(src, len, d.file, args.target ? &target : NULL, &obj, &d);
  free(src);
  if (!ok) return TILEC_BAD_INPUT;
  uint8_t *bytes;
  size_t nbytes;
  if (!tile_object_write(&obj, &bytes, &nbytes)) {
    tile_object_free(&obj);
    tilec_fail("asm: the object could not be encoded (out of memory)");
    return TILEC_INTERNAL;
  }
  tile_object_free(&obj);
  char *out = args.output ? NULL : default_output(args.input);
  rc = out || args.output ? write_output(args.output ? args.output : out, bytes, nbytes)
                          : TILEC_INTERNAL;
  free(out);
  free(bytes);
  return rc;
}

int tilec_cmd_disasm(int argc, char **argv) {
  MachineArgs args;
  int rc = parse_args(argc, argv, false, &args);
  if (rc != TILEC_OK) return rc;
  char *bytes;
  size_t len;
  rc = tilec_read_file(args.input, &bytes, &len);
  if (rc != TILEC_OK) return rc;
  TileDiag d;
  tile_diag_init(&d, stderr, strcmp(args.input, "-") == 0 ? "<stdin>" : args.input, NULL, 0);
  TileObject obj;
  bool ok = tile_object_read((const uint8_t *)bytes, len, &obj, &d);
  free(bytes);
  if (!ok) return TILEC_BAD_INPUT;
  char *text = NULL;
  size_t tlen = 0;
  FILE *m = open_memstream(&text, &tlen);
  if (!m) {
    tile_object_free(&obj);
    tilec_fail("disasm: out of memory");
    return TILEC_INTERNAL;
  }
  tile_disasm(m, &obj);
  fclose(m);
  tile_object_free(&obj);
  rc = text ? write_output(args.output ? args.output : "-", text, tlen) : TILEC_INTERNAL;
  free(text);
  return rc;
}
