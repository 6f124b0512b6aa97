/* The tilec driver's internal interface, shared by its files:
 *   main.c     the command table and dispatch (`tilec COMMAND ...` or `tilec FILE ...`)
 *   options.c  the option table, the stage table's lookup, --help and --version
 *   compile.c  the compile job: read, parse, verify, emit a stage, write the output
 *   summary.c  the --summary comment lines
 *   opref.c    the op reference of docs/tile-ir.md, generated from the op table
 *   cmd_*.c    subcommands (`tilec asm ...`), one a file, listed in commands.h
 *
 * Exit codes are the driver's contract with scripts and tests: 0 success, 1 bad
 * input (the diagnostics say what and where), 2 an internal failure (the output
 * could not be written, memory ran out). */
#ifndef TILEC_H
#define TILEC_H

#include <stdbool.h>
#include <stdio.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/object.h"
#include "tile/ops.h"
#include "tile/target.h"

enum { TILEC_OK = 0, TILEC_BAD_INPUT = 1, TILEC_INTERNAL = 2 };

/* A command: `tilec NAME args...`. A name may be a word (`run`) or an option that
 * does a whole job on its own (`--print-op-reference`). argv[0] is the name. */
typedef struct TilecCommand {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *args; /* shown after the name in --help; "" when it takes none */
  const char *help;
} TilecCommand;

extern const TilecCommand tilec_commands[];
extern const int tilec_ncommands;

/* What one compile of a file needs; filled by tilec_parse_options. */
typedef struct TilecOptions {
  const char *input;  /* a path, or "-" for standard input */
  const char *output; /* NULL: standard output */
  const char *emit;   /* a stage name */
  const char *target; /* NULL when not given; stages that need one take tiny */
  const char *torus;  /* --torus SHAPE: reshapes the target's torus */
  const char *func;   /* --func NAME: the function to compile (default: the only one) */
  bool listing;       /* -S: the annotated machine-code listing */
  const char *print_after; /* a pass name: print the IR after it (standard error) */
  bool print_after_all;    /* print the IR after every pass (standard error) */
  bool verify_only;
  bool no_verify; /* print what was parsed without verifying it (parser tests) */
  bool summary;
  bool nvcc;          /* CUDA targets: compile with nvcc instead of NVRTC */
  bool help, version; /* asked for inside a compile command line */
} TilecOptions;

/* A job in progress: the options, the source and the module made from it. */
typedef struct TilecJob {
  const TilecOptions *opts;
  bool has_target;
  TileTarget target; /* loaded from --target, when given */
  bool cuda;          /* --target names a CUDA target (cuda-sm90, ...) */
  char cuda_arch[16]; /* its architecture, "sm_90" */
  const char *filename; /* for diagnostics: the path, or "<stdin>" */
  char *src;
  size_t len;
  TileModule *module;
  TileDiag diag;
} TilecJob;

/* A stage of --emit: the program as it stands after that stage. emit brings the
 * job's module to the stage (passes, lowering) and prints it; it returns an exit
 * code. Stages that produce machine code need a target; stages that transform the
 * program need it verified, since passes may assume what the verifier checks.
 * A stage runs a prefix of the pass pipeline (include/tile/pass.h): the passes up
 * to and including last_pass. */
typedef struct TilecStage {
  const char *name;
  const char *description;
  bool needs_target;
  bool allows_unverified; /* may run on --no-verify input (stages that only print) */
  const char *last_pass;  /* the pipeline's last pass this stage runs; NULL: none */
  int (*emit)(TilecJob *job, FILE *out);
  int vliw_stage;         /* the TileVliwStage it stops after; -1 for a tensor-IR stage */
  bool for_cuda;          /* a stage of the CUDA backend (needs --target=cuda-*) */
} TilecStage;

extern const TilecStage tilec_stages[];
extern const int tilec_nstages;
const TilecStage *tilec_find_stage(const char *name);
/* How many passes of the pipeline a stage runs. */
int tilec_stage_npasses(const TilecStage *stage);

/* Parses a compile command line (argv[0] is the program). Returns TILEC_OK, or
 * TILEC_BAD_INPUT after printing what is wrong and a usage hint. */
int tilec_parse_options(int argc, char **argv, TilecOptions *opts);
void tilec_print_help(FILE *out);
void tilec_print_version(FILE *out);
/* "tilec: error: <msg>" on stderr. */
void tilec_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads a whole file ("-": standard input) into a malloc'ed buffer with a NUL after
 * its len bytes. Returns TILEC_OK, or a tilec exit code after saying what failed. */
int tilec_read_file(const char *path, char **out, size_t *len);
/* Whether s (NULL: no) is longer than tail and ends with it: "k.cubin", not ".cubin". */
bool tilec_ends_with(const char *s, const char *tail);

int tilec_compile(const TilecOptions *opts);

/* The target stages that make machine code run on when --target is not given. */
#define TILEC_DEFAULT_TARGET "tiny"
/* Loads a target by name or path and applies a torus shape (NULL: keep the target's).
 * Returns TILEC_OK or TILEC_BAD_INPUT after saying what is wrong (messages start with
 * who, "tilec" or "tilec run"). */
int tilec_load_target(const char *who, const char *name, const char *torus, TileTarget *t);
/* Compiles .tile source (path names it in diagnostics) for target t: function func
 * (NULL: the only one) to an object. Returns a tilec exit code; diagnostics go to
 * standard error. */
int tilec_compile_object(const char *path, const char *src, size_t len, const TileTarget *t,
                         const char *func, TileObject *obj);

/* Op families: a heading and one line for the reference, a short name for the summary. */
typedef struct TilecFamily {
  const char *short_name;
  const char *title;
  const char *about;
} TilecFamily;
const TilecFamily *tilec_family(TileOpFamily f);
/* One more than the largest family in the op table. */
int tilec_family_count(void);

void tilec_print_summary(FILE *out, const TileModule *m, const char *filename);
void tilec_print_op_reference(FILE *out);

#endif
