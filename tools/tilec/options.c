/* The compile command line: one table of options, from which both parsing and
 * --help come, so an option is added in one place. Long options take their value
 * as `--emit=ir` or `--emit ir`, short ones as `-o out` or `-oout`; `--` ends the
 * options and `-` names standard input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "tile/pass.h"
#include "tilec.h"

typedef struct Option {
  const char *name;    /* "-o", "--emit" */
  const char *metavar; /* the value's name in --help; NULL for a flag */
  size_t field;        /* offset in TilecOptions: a const char * or a bool */
  const char *help;
} Option;

/* Options with no help line are not listed (--help and --version are listed as
 * commands, which they also are). */
static const Option options[] = {
    {"-o", "OUT", offsetof(TilecOptions, output), "write the output to OUT (default: standard output)"},
    {"--emit", "STAGE", offsetof(TilecOptions, emit),
     "print the program after STAGE (default: obj when OUT ends in .tobj, else ir)"},
    {"-S", NULL, offsetof(TilecOptions, listing),
     "print the annotated machine-code listing (the same as --emit=asm)"},
    {"--target", "NAME", offsetof(TilecOptions, target),
     "the machine: a name in targets/ or a .target file (default: " TILEC_DEFAULT_TARGET ")"},
    {"--torus", "SHAPE", offsetof(TilecOptions, torus),
     "reshape the target's torus, e.g. 1x1 or 4x4"},
    {"--func", "NAME", offsetof(TilecOptions, func),
     "the func to compile (default: the module's only func)"},
    {"--print-after", "PASS", offsetof(TilecOptions, print_after),
     "print the IR after PASS to standard error (see passes below)"},
    {"--print-after-all", NULL, offsetof(TilecOptions, print_after_all),
     "print the IR after every pass to standard error"},
    {"--verify-only", NULL, offsetof(TilecOptions, verify_only),
     "check the program; print only errors (and --summary)"},
    {"--no-verify", NULL, offsetof(TilecOptions, no_verify),
     "print the program as parsed, unverified (parser tests)"},
    {"--nvcc", NULL, offsetof(TilecOptions, nvcc),
     "with --target=cuda-*: compile with nvcc instead of NVRTC (OUT.fatbin always does)"},
    {"--summary", NULL, offsetof(TilecOptions, summary),
     "then print meshes, functions and op counts as // comments"},
    {"--help", NULL, offsetof(TilecOptions, help), NULL},
    {"-h", NULL, offsetof(TilecOptions, help), NULL},
    {"--version", NULL, offsetof(TilecOptions, version), NULL},
};
enum { NOPTIONS = sizeof options / sizeof options[0] };

void tilec_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tilec: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int usage_error(void) {
  fprintf(stderr, "Run 'tilec --help' for usage.\n");
  return TILEC_BAD_INPUT;
}

void tilec_print_version(FILE *out) {
  fprintf(out, "tilec %s\n", TILE_VERSION);
}

void tilec_print_help(FILE *out) {
  fprintf(out,
          "usage: tilec FILE [options]\n"
          "       tilec COMMAND\n"
          "\n"
          "Parses a .tile program (FILE, or - for standard input), verifies it and prints\n"
          "it as it is after the chosen stage.\n"
          "\n"
          "options:\n");
  for (int i = 0; i < NOPTIONS; i++) {
    const Option *o = &options[i];
    if (!o->help) continue;
    char spelled[64];
    if (!o->metavar)
      snprintf(spelled, sizeof spelled, "%s", o->name);
    else if (o->name[1] == '-')
      snprintf(spelled, sizeof spelled, "%s=%s", o->name, o->metavar);
    else
      snprintf(spelled, sizeof spelled, "%s %s", o->name, o->metavar);
    fprintf(out, "  %-22s %s\n", spelled, o->help);
  }
  fprintf(out, "\nstages (--emit):\n");
  for (int i = 0; i < tilec_nstages; i++)
    fprintf(out, "  %-22s %s%s\n", tilec_stages[i].name, tilec_stages[i].description,
            tilec_stages[i].needs_target ? " (for --target)" : "");
  fprintf(out, "\npasses (--print-after):\n");
  for (int i = 0; i < tile_npasses; i++)
    fprintf(out, "  %-22s %s\n", tile_passes[i].name, tile_passes[i].summary);
  fprintf(out, "\ncommands:\n");
  for (int i = 0; i < tilec_ncommands; i++) {
    char spelled[64];
    snprintf(spelled, sizeof spelled, "%s%s%s", tilec_commands[i].name,
             tilec_commands[i].args[0] ? " " : "", tilec_commands[i].args);
    fprintf(out, "  %-22s %s\n", spelled, tilec_commands[i].help);
  }
  fprintf(out, "\nexit status: 0 success, 1 bad input (errors on standard error), 2 internal "
               "error\n");
}

const TilecStage *tilec_find_stage(const char *name) {
  for (int i = 0; i < tilec_nstages; i++)
    if (strcmp(tilec_stages[i].name, name) == 0) return &tilec_stages[i];
  return NULL;
}

/* Finds the option that arg spells: exactly, or as `--name=value` for a long
 * option with a value, or `-oVALUE` for a short one. *inline_value is set when
 * the value is part of arg. */
static const Option *match_option(const char *arg, const char **inline_value) {
  *inline_value = NULL;
  for (int i = 0; i < NOPTIONS; i++) {
    const Option *o = &options[i];
    size_t n = strlen(o->name);
    if (strcmp(arg, o->name) == 0) return o;
    if (strncmp(arg, o->name, n) != 0) continue;
    /* A flag spelled with a value is matched so the caller can say it takes none. */
    if (o->name[1] == '-' && arg[n] == '=') {
      *inline_value = arg + n + 1;
      return o;
    }
    if (o->metavar && o->name[1] != '-' && arg[n]) {
      *inline_value = arg + n;
      return o;
    }
  }
  return NULL;
}

static int check_stage(TilecOptions *opts) {
  const TilecStage *stage = tilec_find_stage(opts->emit);
  if (!stage) {
    /* The VLIW and tensor stages, then those for CUDA targets. */
    char names[256] = "", cuda[128] = "";
    for (int i = 0; i < tilec_nstages; i++) {
      char *list = tilec_stages[i].for_cuda ? cuda : names;
      size_t size = tilec_stages[i].for_cuda ? sizeof cuda : sizeof names, k = strlen(list);
      snprintf(list + k, size - k, "%s%s", k ? ", " : "", tilec_stages[i].name);
    }
    tilec_fail("unknown stage '%s' for --emit (stages: %s); for cuda-* targets: %s", opts->emit,
               names, cuda);
    return usage_error();
  }
  if (opts->no_verify && !stage->allows_unverified) {
    tilec_fail("stage '%s' needs a verified program; drop --no-verify", stage->name);
    return usage_error();
  }
  if (stage->vliw_stage < 0 && !stage->for_cuda && opts->func) {
    tilec_fail("--func chooses the function to compile; stage '%s' prints the whole module",
               stage->name);
    return usage_error();
  }
  return TILEC_OK;
}

/* --print-after names a pass the chosen stage runs. */
static int check_print_after(const TilecOptions *opts) {
  if (opts->verify_only && (opts->print_after || opts->print_after_all)) {
    tilec_fail("--verify-only runs no passes; drop --%s", opts->print_after ? "print-after"
                                                                           : "print-after-all");
    return usage_error();
  }
  if (!opts->print_after) return TILEC_OK;
  if (!tile_pass_find(opts->print_after)) {
    char names[512];
    tile_pass_names(names, sizeof names);
    tilec_fail("unknown pass '%s' for --print-after (passes: %s)", opts->print_after, names);
    return usage_error();
  }
  const TilecStage *stage = tilec_find_stage(opts->emit);
  int at = tile_pipeline_index(opts->print_after);
  if (at < tilec_stage_npasses(stage)) return TILEC_OK;
  for (int i = 0; i < tilec_nstages; i++)
    if (at >= 0 && at < tilec_stage_npasses(&tilec_stages[i])) {
      tilec_fail("pass '%s' does not run at --emit=%s; it runs from --emit=%s on",
                 opts->print_after, stage->name, tilec_stages[i].name);
      return usage_error();
    }
  tilec_fail("pass '%s' runs at no stage of --emit", opts->print_after);
  return usage_error();
}

int tilec_parse_options(int argc, char **argv, TilecOptions *opts) {
  memset(opts, 0, sizeof *opts);
  bool options_done = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (!options_done && strcmp(arg, "--") == 0) {
      options_done = true;
      continue;
    }
    if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
      if (opts->input) {
        tilec_fail("more than one input file ('%s' and '%s')", opts->input, arg);
        return usage_error();
      }
      opts->input = arg;
      continue;
    }
    const char *value;
    const Option *o = match_option(arg, &value);
    if (!o) {
      tilec_fail("unknown option '%s'", arg);
      return usage_error();
    }
    char *field = (char *)opts + o->field;
    if (!o->metavar) {
      if (value) {
        tilec_fail("option '%s' takes no value", o->name);
        return usage_error();
      }
      *(bool *)field = true;
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        tilec_fail("option '%s' needs a value (%s)", o->name, o->metavar);
        return usage_error();
      }
      value = argv[++i];
    }
    if (!value[0]) {
      tilec_fail("option '%s' needs a value (%s), got an empty one", o->name, o->metavar);
      return usage_error();
    }
    if (*(const char **)field) {
      tilec_fail("option '%s' given twice", o->name);
      return usage_error();
    }
    *(const char **)field = value;
  }
  if (opts->help || opts->version) return TILEC_OK;
  if (!opts->input) {
    tilec_fail("no input file");
    return usage_error();
  }
  if (opts->verify_only && opts->no_verify) {
    tilec_fail("--verify-only and --no-verify contradict each other");
    return usage_error();
  }
  if (opts->listing) {
    if (opts->emit && strcmp(opts->emit, "asm") != 0) {
      tilec_fail("-S prints the machine-code listing; it cannot be combined with --emit=%s",
                 opts->emit);
      return usage_error();
    }
    opts->emit = "asm";
  }
  if (!opts->emit) {
    /* An object file named as the output asks for the object; a cubin or fatbin,
     * for GPU code. */
    const char *out = opts->output;
    bool gpu = tilec_ends_with(out, ".cubin") || tilec_ends_with(out, ".fatbin");
    opts->emit = tilec_ends_with(out, ".tobj") ? "obj" : gpu ? "cubin" : tilec_stages[0].name;
  }
  int rc = check_stage(opts);
  return rc == TILEC_OK ? check_print_after(opts) : rc;
}
