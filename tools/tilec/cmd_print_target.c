/* `tilec print-target NAME [--torus SHAPE]`: loads a machine description (a name from
 * the target search path, or a path to a .target file), applies a torus override, and
 * prints the resolved description in the target file format, so it can be saved,
 * edited and loaded again. The first line says how many chips there are and which axes
 * wrap around. */
#include <string.h>

#include "commands.h"
#include "tile/target.h"
#include "tilec.h"

int tilec_cmd_print_target(int argc, char **argv) {
  const char *name = NULL, *torus = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--torus") == 0) {
      if (i + 1 >= argc) {
        tilec_fail("%s: '--torus' needs a shape, like 4x4x4", argv[0]);
        return TILEC_BAD_INPUT;
      }
      torus = argv[++i];
    } else if (strncmp(a, "--torus=", 8) == 0) {
      torus = a + 8;
    } else if (a[0] == '-') {
      tilec_fail("%s: unknown option '%s'", argv[0], a);
      return TILEC_BAD_INPUT;
    } else if (name) {
      tilec_fail("%s takes one target (got '%s' and '%s')", argv[0], name, a);
      return TILEC_BAD_INPUT;
    } else {
      name = a;
    }
  }
  if (!name) {
    tilec_fail("%s needs a target name, like 'tilec %s v4-like'", argv[0], argv[0]);
    return TILEC_BAD_INPUT;
  }
  TileDiag d;
  tile_diag_init(&d, stderr, "tilec", NULL, 0);
  TileTarget t;
  if (!tile_target_load(name, &t, &d)) return TILEC_BAD_INPUT;
  if (torus && !tile_target_set_torus(&t, torus, &d)) return TILEC_BAD_INPUT;
  tile_target_print(stdout, &t);
  return fflush(stdout) == 0 ? TILEC_OK : TILEC_INTERNAL;
}
