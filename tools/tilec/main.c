/* tilec, the compiler driver.
 *
 *   tilec FILE [-o OUT] [--emit=STAGE] [--target=NAME] [--verify-only] [--summary]
 *   tilec COMMAND [ARGS...]
 *   tilec --print-target NAME [--torus SHAPE]
 *
 * A command is one row of the table below: the driver's own (--help, --version,
 * --print-op-reference) and, from commands.h, each subcommand that lives in its own
 * cmd_*.c file. Adding one adds a row and a function, and --help lists it. Anything
 * that is not a command name is a compile command line. */
#include <string.h>

#include "commands.h"
#include "tilec.h"

static int cmd_help(int argc, char **argv) {
  tilec_print_help(stdout);
  return TILEC_OK;
}

static int cmd_version(int argc, char **argv) {
  tilec_print_version(stdout);
  return TILEC_OK;
}

static int cmd_print_op_reference(int argc, char **argv) {
  if (argc > 1) {
    tilec_fail("%s takes no arguments (got '%s')", argv[0], argv[1]);
    fprintf(stderr, "Run 'tilec --help' for usage.\n");
    return TILEC_BAD_INPUT;
  }
  tilec_print_op_reference(stdout);
  return TILEC_OK;
}

const TilecCommand tilec_commands[] = {
    {"--help", cmd_help, "", "print this help"},
    {"--version", cmd_version, "", "print the version"},
    {"--print-op-reference", cmd_print_op_reference, "",
     "print the op reference (the generated part of docs/tile-ir.md)"},
    /* the option spelling of `print-target`, as users of other compilers expect */
    {"--print-target", tilec_cmd_print_target, "",
     "print a resolved machine description: --print-target NAME [--torus SHAPE]"},
#define X(name, fn, help) {name, fn, "", help},
    TILEC_COMMANDS(X)
#undef X
};
const int tilec_ncommands = (int)(sizeof tilec_commands / sizeof tilec_commands[0]);

int main(int argc, char **argv) {
  if (argc > 1) {
    if (strcmp(argv[1], "-h") == 0) return cmd_help(argc - 1, argv + 1);
    for (int i = 0; i < tilec_ncommands; i++)
      if (strcmp(argv[1], tilec_commands[i].name) == 0)
        return tilec_commands[i].run(argc - 1, argv + 1);
  }
  TilecOptions opts;
  int rc = tilec_parse_options(argc, argv, &opts);
  if (rc != TILEC_OK) return rc;
  if (opts.help) return cmd_help(0, NULL);
  if (opts.version) return cmd_version(0, NULL);
  return tilec_compile(&opts);
}
