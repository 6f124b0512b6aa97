/* tilec's subcommands: `tilec NAME ...` runs the function with argv[0] = NAME.
 * One row per subcommand; main.c builds its dispatch and --help from this table.
 * X(name, function, "one line of help") */
#ifndef TILEC_COMMANDS_H
#define TILEC_COMMANDS_H

#define TILEC_COMMANDS(X) /* rows are added as subcommands arrive */                    \
  X("asm", tilec_cmd_asm, "assemble VLIW code: asm FILE.s [-o FILE.tobj] [--target NAME]")  \
  X("disasm", tilec_cmd_disasm, "print an object as assembly: disasm FILE.tobj [-o OUT]")    \
  X("print-target", tilec_cmd_print_target,                                                \
    "print a resolved machine description: print-target NAME [--torus SHAPE]")            \
  X("isa-reference", tilec_cmd_isa_reference,                                              \
    "print the op reference (the generated part of docs/isa.md)")                          \
  X("run", tilec_cmd_run, "run a program on the emulator: run PROGRAM [--in NAME=FILE.npy]... (run --help)")

#define X(name, fn, help) int fn(int argc, char **argv);
TILEC_COMMANDS(X)
#undef X

#endif
