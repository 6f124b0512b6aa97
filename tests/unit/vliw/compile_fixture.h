/* For the generator unit tests: .tile text lowered to MIR (lower_with), compiled
 * through the whole VLIW pipeline (target_for + compile_text), run on the emulator in
 * strict mode (emu_for + emu_run), and the counts the tests make of the MIR.
 *
 * The copies this replaces differed in three ways, which are the options here:
 *   - the size of the error text a test keeps (LOWERED_ERR_SIZE, set before including);
 *   - whether that text is the diagnostics as printed, file:line:col included (captured
 *     through a memstream), or only the last message (LowerOptions.printed);
 *   - whether the MIR is verified right after lowering (LowerOptions.verify).
 * Failures a test does not capture go to stderr, so a failing test shows why. */
#ifndef TILE_TEST_COMPILE_FIXTURE_H
#define TILE_TEST_COMPILE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../parse_fixture.h"
#include "tile/emu.h"
#include "tile/lower.h"
#include "tile/mir.h"
#include "tile/vliw.h"

#ifndef LOWERED_ERR_SIZE
#define LOWERED_ERR_SIZE 600
#endif

/* ---- diagnostics into a test's buffer ---- */

/* A TileDiag whose printed text lands in a memstream until capture_end copies it (cut
 * to errlen) into the caller's buffer. */
typedef struct DiagCapture {
  FILE *out;
  char *text;
  size_t len;
} DiagCapture;

static inline void capture_begin(DiagCapture *c, TileDiag *d, const char *file, const char *src) {
  c->text = NULL;
  c->len = 0;
  c->out = open_memstream(&c->text, &c->len);
  tile_diag_init(d, c->out ? c->out : stderr, file, src, src ? strlen(src) : 0);
}

static inline void capture_end(DiagCapture *c, char *err, size_t errlen) {
  if (c->out) fclose(c->out);
  snprintf(err, errlen, "%s", c->text ? c->text : "");
  free(c->text);
}

/* ---- lowering one function to MIR ---- */

typedef struct Lowered {
  TileTarget t;
  TileMir mir;
  TileModule *m;
  bool ok;
  char err[LOWERED_ERR_SIZE]; /* why it did not lower (see LowerOptions.printed) */
} Lowered;

typedef struct LowerOptions {
  const char *func; /* the function to lower; NULL: the module's first */
  bool printed;     /* err: every diagnostic as printed, not only the last message */
  bool verify;      /* MIR that lowers must also pass tile_mir_verify (errors on stderr) */
} LowerOptions;

static inline TileFunc *find_func(TileModule *m, const char *name) {
  for (TileFunc *f = m ? m->funcs : NULL; f; f = f->next)
    if (!name || strcmp(f->name, name) == 0) return f;
  return NULL;
}

/* Loads target, parses src and lowers one function into L->mir; L->ok says whether it
 * lowered (and verified, when asked). Free with lowered_free whatever the outcome. */
static inline void lower_with(Lowered *L, const char *target, const char *src, LowerOptions o) {
  memset(L, 0, sizeof *L);
  TileDiag d;
  tile_diag_init(&d, NULL, "target", NULL, 0);
  if (!tile_target_load(target, &L->t, &d)) {
    snprintf(L->err, sizeof L->err, "target %s: %s", target, d.last);
    return;
  }
  L->m = parse(src);
  TileFunc *f = find_func(L->m, o.func);
  if (!f) {
    snprintf(L->err, sizeof L->err, "%s", L->m ? "no such function" : "parse failed");
    return;
  }
  tile_mir_init(&L->mir, &L->t);
  if (o.printed) {
    DiagCapture c;
    capture_begin(&c, &d, "<test>", src);
    L->ok = tile_lower_func(L->m, f, &L->mir, &d) && d.nerrors == 0;
    capture_end(&c, L->err, sizeof L->err);
  } else {
    tile_diag_init(&d, NULL, "<test>", src, strlen(src));
    L->ok = tile_lower_func(L->m, f, &L->mir, &d) && d.nerrors == 0;
    if (!L->ok) snprintf(L->err, sizeof L->err, "%s", d.nerrors ? d.last : "failed");
  }
  if (L->ok && o.verify) {
    tile_diag_init(&d, stderr, "<mir>", NULL, 0);
    L->ok = tile_mir_verify(&L->mir, &d);
  }
}

/* lower_with verifying the MIR, the failure's message on stderr; L->ok. */
static inline bool lower_verified(Lowered *L, const char *target, const char *src) {
  lower_with(L, target, src, (LowerOptions){.verify = true});
  if (!L->ok) fprintf(stderr, "%s\n", L->err);
  return L->ok;
}

/* Whether the lowering attributed in to the op named op. */
static inline bool inst_from(const TileMir *m, const TileMirInst *in, const char *op) {
  const char *name = tile_mir_src_name(m, in);
  return name && strcmp(name, op) == 0;
}

/* The semaphore a one-descriptor buffer's transfers signal on the sender (word 14,
 * DESC_SRC_SEM). */
static inline int32_t desc_sem(const TileMir *m, int32_t desc) {
  const uint8_t *w = m->bufs[desc].init + 14 * 4;
  return (int32_t)(w[0] | w[1] << 8 | w[2] << 16 | (uint32_t)w[3] << 24);
}

/* The plain lowering: first function, last message kept. */
static inline void lower_text(Lowered *L, const char *target, const char *src) {
  lower_with(L, target, src, (LowerOptions){0});
}

static inline void lowered_free(Lowered *L) {
  tile_mir_free(&L->mir); /* safe on the zeroed MIR of a lowering that stopped early */
  if (L->m) tile_module_free(L->m);
}

/* Verifies and schedules the lowered MIR (diagnostics on stderr). code gets the
 * schedule (free it with tile_mir_code_free); NULL: the schedule is dropped. */
static inline bool schedules(const Lowered *L, TileMirCode *code) {
  TileDiag d;
  tile_diag_init(&d, stderr, "<sched>", NULL, 0);
  if (!tile_mir_verify(&L->mir, &d)) return false;
  TileMirCode scratch;
  TileMirCode *out = code ? code : &scratch;
  memset(out, 0, sizeof *out);
  bool ok = tile_mir_schedule(&L->mir, out, &d);
  if (!code) tile_mir_code_free(&scratch);
  return ok;
}

/* ---- the whole pipeline ---- */

/* Loads a target and sets its torus ("1": one chip); false after a failure (printed). */
static inline bool target_for(const char *name, const char *torus, TileTarget *t) {
  TileDiag d;
  tile_diag_init(&d, stderr, "target", NULL, 0);
  return tile_target_load(name, t, &d) && tile_target_set_torus(t, torus, &d);
}

/* Parses src and runs the VLIW pipeline for t. vo gives the function, the last stage
 * and a stage callback (NULL: the only function, to the object); its target is t. obj
 * is zeroed first, so it can be freed whatever happened. Diagnostics go to err when
 * given (cut to errlen), to stderr otherwise. */
static inline bool compile_text(const TileTarget *t, const char *src, const TileVliwOptions *vo,
                                char *err, size_t errlen, TileObject *obj) {
  memset(obj, 0, sizeof *obj);
  TileModule *m = parse(src);
  if (!m) return false;
  TileVliwOptions o = {.stop_after = TILE_VLIW_OBJECT};
  if (vo) o = *vo;
  o.target = t;
  TileDiag d;
  DiagCapture c;
  if (err)
    capture_begin(&c, &d, "<test>", src);
  else
    tile_diag_init(&d, stderr, "<test>", src, strlen(src));
  bool ok = tile_vliw_compile(m, &o, obj, &d) == TILE_PASS_OK && d.nerrors == 0;
  if (err) capture_end(&c, err, errlen);
  tile_module_free(m);
  return ok;
}

/* ---- the emulator ---- */

/* An emulator in strict mode (hazards are faults) for obj on t; NULL after a failure
 * (printed). */
static inline TileEmu *emu_for(const TileObject *obj, const TileTarget *t) {
  TileDiag d;
  tile_diag_init(&d, stderr, "emu", NULL, 0);
  TileEmuOptions eo;
  tile_emu_options_default(&eo);
  eo.strict = true;
  return tile_emu_create(obj, t, &eo, &d);
}

/* Runs e to the end; anything but TILE_EMU_OK is printed with the fault or error. */
static inline TileEmuStatus emu_run(TileEmu *e) {
  TileEmuStatus st = tile_emu_run(e);
  if (st != TILE_EMU_OK) {
    const TileEmuFault *f = tile_emu_fault(e);
    fprintf(stderr, "run: %s\n", f && f->message ? f->message : tile_emu_error(e));
  }
  return st;
}

/* Semaphores left non-zero on chips 0 .. chips-1 after a run (a schedule must leave
 * every count it used at zero, or the next collective would read it). */
static inline int sems_held(const TileEmu *e, const TileTarget *t, int chips) {
  int held = 0;
  for (int c = 0; c < chips; c++)
    for (int s = 0; s < t->nsems; s++) held += tile_emu_sem(e, c, s) != 0;
  return held;
}

/* Runs obj on t in strict mode on a fresh emulator: its status (-1 when the emulator
 * could not be made, printed) and, where held is given, the semaphores left non-zero
 * on every chip of t's torus. */
static inline int run_object(const TileObject *obj, const TileTarget *t, int *held) {
  TileEmu *e = emu_for(obj, t);
  if (!e) return -1;
  int st = emu_run(e), chips = 1;
  for (int d = 0; d < t->torus_rank; d++) chips *= (int)t->torus[d];
  if (held) *held = sems_held(e, t, chips);
  tile_emu_free(e);
  return st;
}

/* ---- counting in MIR ---- */

/* How many insts have this op. */
static inline int count_op(const TileMir *m, int op) {
  int n = 0;
  for (int32_t i = 0; i < m->ninsts; i++) n += m->insts[i].op == op;
  return n;
}

/* Dynamic count of an op: each inst weighted by the trip counts of its loops; with
 * by_imm, weighted by its imm too (the units a sem.wait or sem.signal moves). */
static inline int64_t dyn_weighted(const TileMir *m, int op, bool by_imm) {
  enum { MAX_DEPTH = 8 };
  int64_t mult[MAX_DEPTH + 1] = {1}, n = 0;
  int depth = 0;
  for (int32_t i = 0; i < m->ninsts; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MIR_LOOP_BEGIN && depth < MAX_DEPTH) {
      mult[depth + 1] = mult[depth] * in->imm;
      depth++;
    } else if (in->op == TILE_MIR_LOOP_END && depth > 0) {
      depth--;
    } else if (in->op == op) {
      n += mult[depth] * (by_imm ? in->imm : 1);
    }
  }
  return n;
}

static inline int64_t dyn_count(const TileMir *m, int op) { return dyn_weighted(m, op, false); }

#endif
