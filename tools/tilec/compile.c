/* The compile job: read the source, parse and verify it, bring it to the stage that
 * --emit names and write it out, then the summary if asked.
 *
 * Errors in the program go to standard error as diagnostics and give exit code 1;
 * nothing is written to the output then, so `-o OUT` never leaves half a program.
 * Failing to write the output is an internal error (exit 2). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tile/cuda.h"
#include "tile/mir.h"
#include "tile/pass.h"
#include "tile/text.h"
#include "tile/verify.h"
#include "tile/vliw.h"
#include "tilec.h"

/* ---- stages ---- */

static int emit_ir(TilecJob *job, FILE *out) {
  tile_print_module(out, job->module);
  return TILEC_OK;
}

static int status_code(TilePassStatus st) {
  return st == TILE_PASS_OK ? TILEC_OK : st == TILE_PASS_FAILED ? TILEC_BAD_INPUT : TILEC_INTERNAL;
}

/* Runs the n passes named, then prints the module. IR asked for with --print-after
 * goes to standard error as the passes run, as compilers do, so it shows even when
 * a later pass fails. */
static int print_after_passes(TilecJob *job, const char *const *names, int n, FILE *out) {
  const TilecOptions *opts = job->opts;
  TilePassPrint print = {stderr, opts->print_after, opts->print_after_all};
  int rc = status_code(tile_run_pipeline(job->module, names, n, &print, &job->diag));
  if (rc == TILEC_OK) tile_print_module(out, job->module);
  return rc;
}

/* The stage's prefix of the pass pipeline. */
static int emit_after_passes(TilecJob *job, FILE *out) {
  return print_after_passes(job, tile_pipeline,
                            tilec_stage_npasses(tilec_find_stage(job->opts->emit)), out);
}

/* The multi-chip stages run passes outside the single-chip pipeline, by name. */
static int emit_spmd_passes(TilecJob *job, FILE *out) {
  static const char *const names[] = {"shard_prop", "spmd"};
  return print_after_passes(job, names, strcmp(job->opts->emit, "sharded") == 0 ? 1 : 2, out);
}

/* ---- machine-code stages (include/tile/vliw.h) ---- */

typedef struct StagePrinter {
  const TilecStage *stage;
  FILE *out;
} StagePrinter;

/* Prints what the stage the driver stops at made; the object itself is written after
 * the compile, from the object the compile returns. */
static void print_stage(void *user, TileVliwStage s, const TileVliwResult *r) {
  StagePrinter *p = user;
  if ((int)s != p->stage->vliw_stage) return;
  switch (s) {
  case TILE_VLIW_FUSED: tile_print_module(p->out, r->module); break;
  case TILE_VLIW_MIR: tile_mir_print(p->out, r->mir); break;
  case TILE_VLIW_SCHED:
  case TILE_VLIW_ALLOC: tile_mir_listing(p->out, r->mir, r->code); break;
  case TILE_VLIW_OBJECT:
    if (strcmp(p->stage->name, "asm") == 0) tile_mir_listing(p->out, r->mir, r->code);
    break;
  default: break;
  }
}

static int emit_vliw(TilecJob *job, FILE *out) {
  const TilecOptions *opts = job->opts;
  const TilecStage *stage = tilec_find_stage(opts->emit);
  TilePassPrint print = {stderr, opts->print_after, opts->print_after_all};
  StagePrinter printer = {stage, out};
  TileVliwOptions vo = {
      .target = job->has_target ? &job->target : NULL,
      .func = opts->func,
      .stop_after = (TileVliwStage)stage->vliw_stage,
      .print = &print,
      .on_stage = print_stage,
      .user = &printer,
  };
  TileObject obj;
  int rc = status_code(tile_vliw_compile(job->module, &vo, &obj, &job->diag));
  if (rc != TILEC_OK || stage->vliw_stage != TILE_VLIW_OBJECT) return rc;
  if (strcmp(stage->name, "obj") == 0) {
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (!tile_object_write(&obj, &bytes, &len)) {
      tilec_fail("internal error: the compiled object does not pass the object checks");
      rc = TILEC_INTERNAL;
    } else {
      fwrite(bytes, 1, len, out);
    }
    free(bytes);
  }
  tile_object_free(&obj);
  return rc;
}

/* ---- CUDA stages (include/tile/cuda.h) ---- */

bool tilec_ends_with(const char *s, const char *tail) {
  size_t n = s ? strlen(s) : 0, t = strlen(tail);
  return n > t && strcmp(s + n - t, tail) == 0;
}

/* The CUDA C (--emit=cuda, -S) or the GPU code: a cubin from NVRTC, or from nvcc with
 * --nvcc; a fatbin (nvcc) for OUT.fatbin. Generated code that does not compile is the
 * compiler's fault (exit 2), as is a missing toolkit. */
static int emit_cuda(TilecJob *job, FILE *out) {
  const TilecOptions *opts = job->opts;
  TileFunc *f = NULL;
  if (opts->func) {
    f = tile_module_find_func(job->module, opts->func);
    if (!f) {
      tile_error(&job->diag, (TileLoc){0}, "no function '%s' in the module", opts->func);
      return TILEC_BAD_INPUT;
    }
  } else {
    int n = 0;
    for (TileFunc *g = job->module->funcs; g; g = g->next) f = g, n++;
    if (n != 1) {
      tile_error(&job->diag, (TileLoc){0}, "the module has %d functions; choose one with "
                 "--func NAME", n);
      return TILEC_BAD_INPUT;
    }
  }
  TileCudaProgram p;
  if (!tile_cuda_emit(job->module, f, job->cuda_arch, &p, &job->diag))
    return strncmp(job->diag.last, "internal error", 14) == 0 ? TILEC_INTERNAL : TILEC_BAD_INPUT;
  int rc = TILEC_OK;
  if (strcmp(opts->emit, "cubin") != 0) {
    fputs(p.source, out);
  } else {
    uint8_t *bin = NULL;
    size_t len = 0;
    bool fatbin = tilec_ends_with(opts->output, ".fatbin");
    bool ok = opts->nvcc || fatbin ? tile_cuda_nvcc(&p, fatbin, &bin, &len, &job->diag)
                                   : tile_cuda_nvrtc(&p, &bin, &len, &job->diag);
    if (ok) fwrite(bin, 1, len, out);
    else rc = TILEC_INTERNAL;
    free(bin);
  }
  tile_cuda_program_free(&p);
  return rc;
}

/* One row per stage, in pipeline order; the first is the default. */
const TilecStage tilec_stages[] = {
    {"ir", "the verified IR as parsed", false, true, NULL, emit_ir, -1},
    {"decomposed", "composite ops rewritten into core ops, in f32", false, false, "decompose",
     emit_after_passes, -1},
    {"sharded", "every tensor value of a func on a mesh given a sharding", false, false, NULL,
     emit_spmd_passes, -1, false},
    {"partitioned", "each func on a mesh rewritten to the per-chip program, with collectives",
     false, false, NULL, emit_spmd_passes, -1, false},
    {"fused", "ops tagged with fusion groups (attention and rope kept whole)", false, false,
     "fuse", emit_vliw, TILE_VLIW_FUSED},
    {"mir", "machine IR: virtual registers, counted loops, symbolic buffers", true, false,
     "fuse", emit_vliw, TILE_VLIW_MIR},
    {"sched", "scheduled bundles on virtual registers", true, false, "fuse", emit_vliw,
     TILE_VLIW_SCHED},
    {"alloc", "bundles on machine registers, buffers placed", true, false, "fuse", emit_vliw,
     TILE_VLIW_ALLOC},
    {"asm", "the annotated machine-code listing (-S)", true, false, "fuse", emit_vliw,
     TILE_VLIW_OBJECT},
    {"obj", "the object (.tobj) that `tilec run` runs", true, false, "fuse", emit_vliw,
     TILE_VLIW_OBJECT},
    {"cuda", "CUDA C, kernels per fusion group (-S with a cuda-* target)", true, false, NULL,
     emit_cuda, -1, true},
    {"cubin", "GPU code: a cubin (NVRTC; nvcc with --nvcc), a fatbin for OUT.fatbin", true,
     false, NULL, emit_cuda, -1, true},
};
const int tilec_nstages = (int)(sizeof tilec_stages / sizeof tilec_stages[0]);

int tilec_stage_npasses(const TilecStage *stage) {
  return stage && stage->last_pass ? tile_pipeline_index(stage->last_pass) + 1 : 0;
}

/* ---- reading ---- */

/* Reads the program; messages name standard input "<stdin>". */
static int read_source(TilecJob *job) {
  const char *path = job->opts->input;
  bool is_stdin = strcmp(path, "-") == 0;
  job->filename = is_stdin ? "<stdin>" : path;
  return tilec_read_file(path, &job->src, &job->len);
}

/* ---- writing ---- */

/* Opens the output only once the program is known to be good. */
static FILE *open_output(const char *path) {
  if (!path || strcmp(path, "-") == 0) return stdout;
  FILE *f = fopen(path, "w");
  if (!f) tilec_fail("cannot write '%s': %s", path, strerror(errno));
  return f;
}

/* Flushes and closes the output; a full disk shows up here, not at fprintf. */
static int close_output(FILE *f, const char *path) {
  const char *name = path && strcmp(path, "-") != 0 ? path : "<stdout>";
  bool failed = ferror(f) != 0;
  int err = failed ? EIO : 0;
  if (fflush(f) != 0) {
    failed = true;
    err = errno;
  }
  if (f != stdout && fclose(f) != 0 && !failed) {
    failed = true;
    err = errno;
  }
  if (failed) {
    tilec_fail("cannot write '%s': %s", name, strerror(err ? err : EIO));
    return TILEC_INTERNAL;
  }
  return TILEC_OK;
}

/* ---- the job ---- */

int tilec_load_target(const char *who, const char *name, const char *torus, TileTarget *t) {
  TileDiag d;
  tile_diag_init(&d, stderr, who, NULL, 0);
  if (!tile_target_load(name, t, &d)) return TILEC_BAD_INPUT;
  if (torus && !tile_target_set_torus(t, torus, &d)) return TILEC_BAD_INPUT;
  return TILEC_OK;
}

/* A target named on the command line is loaded whether or not the stage uses it,
 * so a misspelled name is caught at once rather than when a later stage needs it;
 * a stage that makes machine code takes the default target when none is named. */
static int load_target(TilecJob *job) {
  const TilecOptions *opts = job->opts;
  const TilecStage *stage = tilec_find_stage(opts->emit);
  job->cuda = opts->target && tile_cuda_target(opts->target, job->cuda_arch, sizeof job->cuda_arch);
  if (job->cuda) {
    if (opts->torus) {
      tilec_fail("--torus reshapes a VLIW machine; %s is a GPU", opts->target);
      return TILEC_BAD_INPUT;
    }
    /* -S (the asm stage) prints the CUDA C for a GPU. */
    if (stage && stage->needs_target && !stage->for_cuda && strcmp(stage->name, "asm") != 0) {
      tilec_fail("stage '%s' is for VLIW targets; with --target=%s use --emit=cuda, -S or "
                 "-o K.cubin", stage->name, opts->target);
      return TILEC_BAD_INPUT;
    }
    return TILEC_OK;
  }
  if (stage && stage->for_cuda) {
    tilec_fail("--emit=%s needs a CUDA target (--target=cuda-sm80 or --target=cuda-sm90)",
               stage->name);
    return TILEC_BAD_INPUT;
  }
  if (!opts->target && !opts->torus && !(stage && stage->needs_target)) return TILEC_OK;
  int rc = tilec_load_target("tilec", opts->target ? opts->target : TILEC_DEFAULT_TARGET,
                             opts->torus, &job->target);
  job->has_target = rc == TILEC_OK;
  return rc;
}

static int run_job(TilecJob *job) {
  const TilecOptions *opts = job->opts;
  int rc = load_target(job);
  if (rc != TILEC_OK) return rc;
  rc = read_source(job);
  if (rc != TILEC_OK) return rc;

  tile_diag_init(&job->diag, stderr, job->filename, job->src, job->len);
  job->module = tile_parse(job->src, job->len, job->filename, &job->diag);
  if (!job->module || job->diag.nerrors) return TILEC_BAD_INPUT;
  if (!opts->no_verify && (!tile_verify_module(job->module, &job->diag) || job->diag.nerrors))
    return TILEC_BAD_INPUT;

  const TilecStage *stage = tilec_find_stage(opts->emit);
  if (job->cuda && strcmp(stage->name, "asm") == 0) stage = tilec_find_stage("cuda");
  if (opts->verify_only && !opts->summary) return TILEC_OK;

  /* The text is made in memory first, so a stage that fails halfway leaves no
   * partial output file behind. */
  char *text = NULL;
  size_t text_len = 0;
  FILE *mem = open_memstream(&text, &text_len);
  if (!mem) {
    tilec_fail("out of memory");
    return TILEC_INTERNAL;
  }
  if (!opts->verify_only) rc = stage->emit(job, mem);
  if (rc == TILEC_OK && opts->summary) tilec_print_summary(mem, job->module, job->filename);
  if (fclose(mem) != 0 && rc == TILEC_OK) {
    tilec_fail("out of memory");
    rc = TILEC_INTERNAL;
  }
  if (rc == TILEC_OK) {
    FILE *out = open_output(opts->output);
    if (!out) {
      rc = TILEC_INTERNAL;
    } else {
      fwrite(text, 1, text_len, out);
      rc = close_output(out, opts->output);
    }
  }
  free(text);
  return rc;
}

int tilec_compile_object(const char *path, const char *src, size_t len, const TileTarget *t,
                         const char *func, TileObject *obj) {
  TileDiag d;
  tile_diag_init(&d, stderr, path, src, len);
  TileModule *m = tile_parse(src, len, path, &d);
  int rc = TILEC_BAD_INPUT;
  if (m && !d.nerrors && tile_verify_module(m, &d) && !d.nerrors) {
    TileVliwOptions vo = {.target = t, .func = func, .stop_after = TILE_VLIW_OBJECT};
    rc = status_code(tile_vliw_compile(m, &vo, obj, &d));
  }
  tile_module_free(m);
  return rc;
}

int tilec_compile(const TilecOptions *opts) {
  TilecJob job = {.opts = opts};
  int rc = run_job(&job);
  tile_module_free(job.module);
  free(job.src);
  return rc;
}
