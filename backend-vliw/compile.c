/* The VLIW compile of one function (include/tile/vliw.h): the tensor passes, then
 * lowering, scheduling, register allocation, layout and emission, with a hook after
 * each stage. A global program on a mesh (a func with `shard` annotations) is first
 * partitioned by shard_prop and spmd into the program each chip runs.
 *
 * Needs: a verified module and, from the MIR stage on, a target.
 * Guarantees: an object whose program computes the function's results into the bound
 * buffers `result`, `result1`, ... from the bound parameter buffers, or diagnostics.
 * Between the stages the MIR is checked (tile_mir_verify): a generator that breaks
 * the MIR contract is reported as an internal error, not run. */
#include <stdlib.h>
#include <string.h>

#include "tile/builder.h"
#include "tile/lower.h"
#include "tile/ops.h"
#include "tile/vliw.h"

const char *tile_vliw_stage_name(TileVliwStage s) {
  static const char *const names[] = {
#define X(e, n, d) n,
      TILE_VLIW_STAGES(X)
#undef X
  };
  return s < TILE_VLIW_STAGE_COUNT ? names[s] : "?";
}

/* The composites this backend has generators for (gen_attention.c, gen_rowwise.c):
 * the decompose pass leaves them whole. */
static const bool vliw_keeps[TILE_OP_COUNT] = {
    [TILE_OP_ATTENTION] = true,
    [TILE_OP_ROPE] = true,
};

/* Funcs and kernels both compile (a kernel through tile_lower_kernel); messages name
 * what the module holds: "funcs", "kernels" or "functions" for a mix. */
TileFunc *tile_vliw_find_func(const TileModule *m, const char *name, TileDiag *d) {
  TileFunc *only = NULL, *second = NULL;
  int nfuncs = 0, nkernels = 0;
  char list[512] = "";
  for (TileFunc *f = m->funcs; f; f = f->next) {
    if (name && strcmp(f->name, name) == 0) return f;
    size_t k = strlen(list);
    snprintf(list + k, sizeof list - k, "%s@%s", nfuncs + nkernels ? ", " : "", f->name);
    if (!only) only = f;
    else if (!second) second = f;
    if (f->is_kernel) nkernels++;
    else nfuncs++;
  }
  int n = nfuncs + nkernels;
  const char *what = !nkernels ? "funcs" : !nfuncs ? "kernels" : "functions";
  const char *one = !nkernels ? "func" : !nfuncs ? "kernel" : "function";
  TileLoc at = {m->filename, 1, 1};
  if (name) {
    tile_error(d, at, "no %s named '@%s' to compile (%s: %s)", n ? one : "func", name,
               n ? what : "funcs", n ? list : "none");
    return NULL;
  }
  if (n == 1) return only;
  if (n == 0) {
    tile_error(d, at, "nothing to compile: the module has no `func` or `kernel`");
    return NULL;
  }
  tile_error(d, second->loc, "the module has %d %s (%s); choose one with --func NAME", n, what,
             list);
  return NULL;
}

/* ---- global programs on a mesh ---- */

const TileMesh *tile_vliw_func_mesh(const TileModule *m, const TileFunc *f) {
  const TileAttr *a = tile_attr_get(&f->attrs, "mesh");
  if (a && a->kind == TILE_ATTR_SYMBOL) return tile_module_find_mesh(m, a->s);
  return m->meshes && !m->meshes->next ? m->meshes : NULL;
}

static bool block_has_shard(const TileBlock *b) {
  for (const TileOp *op = b->first; op; op = op->next) {
    if (tile_attr_get(&op->attrs, "shard")) return true;
    for (int r = 0; r < op->nregion; r++)
      if (block_has_shard(op->region[r])) return true;
  }
  return false;
}

/* A per-chip program on a mesh (collectives on this chip's values) carries no `shard`
 * annotation: the spmd pass removes them all, and a hand-written one never had
 * them. So an annotation is what makes a func a global program. */
bool tile_vliw_func_is_global(const TileModule *m, const TileFunc *f) {
  if (f->is_kernel || !tile_vliw_func_mesh(m, f)) return false;
  for (int i = 0; f->arg_attrs && i < f->body->nargs; i++)
    if (tile_attr_get(&f->arg_attrs[i], "shard")) return true;
  return block_has_shard(f->body);
}

/* The func a compile will choose, without diagnostics (tile_vliw_find_func gives
 * them when the compile looks it up after the passes). */
static TileFunc *quiet_find_func(const TileModule *m, const char *name) {
  if (name) return tile_module_find_func(m, name);
  return m->funcs && !m->funcs->next ? m->funcs : NULL;
}

/* Rewrites a global program into the program of one chip. The func is given its mesh
 * by name first, so the lowering binds its parameters and results per chip even when
 * the partitioned program needs no collective (a batch-sharded layout). */
static TilePassStatus partition(TileModule *m, TileFunc *f, const TilePassPrint *print,
                                TileDiag *d) {
  static const char *const passes[] = {"shard_prop", "spmd", "coll_matmul", "coll_split"};
  if (!tile_attr_get(&f->attrs, "mesh")) {
    TileBuilder b;
    tile_builder_init(&b, m);
    tile_build_func_attr(&b, f, "mesh", tile_attr_symbol(m, tile_vliw_func_mesh(m, f)->name));
  }
  return tile_run_pipeline(m, passes, (int)(sizeof passes / sizeof passes[0]), print, d);
}

/* The shard attribute shard_prop left on a value: on its parameter or defining op. */
static const TileAttr *value_shard(const TileFunc *f, const TileValue *v) {
  if (v->def) return tile_attr_get(&v->def->attrs, "shard");
  if (v->block == f->body && f->arg_attrs) return tile_attr_get(&f->arg_attrs[v->index], "shard");
  return NULL;
}

static bool read_layout(const TileMesh *mesh, const TileAttr *a, TileType t,
                        TileVliwGlobalValue *out, TileLoc at, TileDiag *d) {
  out->global = t;
  int rank = t.kind == TILE_TY_TENSOR ? t.rank : 0;
  if (!a) return true; /* replicated */
  if (a->kind != TILE_ATTR_ARRAY || a->n != rank) {
    tile_error(d, at, "internal error: the sharding of '%s' after shard_prop is not one entry "
               "per dimension", out->name);
    return false;
  }
  for (int k = 0; k < rank; k++) {
    const TileAttr *e = &a->elems[k];
    int n = e->kind == TILE_ATTR_TUPLE ? e->n : e->kind == TILE_ATTR_IDENT ? 1 : 0;
    for (int j = 0; j < n; j++) {
      const TileAttr *ax = e->kind == TILE_ATTR_TUPLE ? &e->elems[j] : e;
      const TileMeshAxis *ma = ax->kind == TILE_ATTR_IDENT ? tile_mesh_find_axis(mesh, ax->s) : NULL;
      if (!ma || out->naxes[k] == TILE_MAX_MESH_AXES) {
        tile_error(d, at, "internal error: the sharding of '%s' after shard_prop names no axis "
                   "of mesh @%s", out->name, mesh->name);
        return false;
      }
      out->axes[k][out->naxes[k]++] = (int32_t)(ma - mesh->axes);
    }
  }
  return true;
}

bool tile_vliw_global_io(TileModule *m, const char *func, TileVliwGlobalIo *io, TileDiag *d) {
  memset(io, 0, sizeof *io);
  TileFunc *f = quiet_find_func(m, func);
  if (!f || !tile_vliw_func_is_global(m, f)) return true;
  io->mesh = tile_vliw_func_mesh(m, f);
  static const char *const prop[] = {"shard_prop"};
  if (tile_run_pipeline(m, prop, 1, NULL, d) != TILE_PASS_OK) return false;
  const TileOp *ret = f->body->last;
  if (!ret || ret->kind != TILE_OP_RETURN) {
    tile_error(d, f->loc, "internal error: @%s does not end in return", f->name);
    return false;
  }
  io->nparams = f->body->nargs;
  io->nresults = ret->nopnd;
  io->values = tile_alloc(m, sizeof *io->values * (size_t)(io->nparams + io->nresults + 1));
  for (int i = 0; i < io->nparams + io->nresults; i++) {
    TileVliwGlobalValue *g = &io->values[i];
    const TileValue *v = i < io->nparams ? f->body->args[i] : ret->opnd[i - io->nparams].v;
    int r = i - io->nparams;
    if (i < io->nparams) snprintf(g->name, sizeof g->name, "%s", v->name ? v->name : "");
    else if (r == 0) snprintf(g->name, sizeof g->name, "result");
    else snprintf(g->name, sizeof g->name, "result%d", r);
    const TileAttr *a = i < io->nparams ? (f->arg_attrs ? tile_attr_get(&f->arg_attrs[i], "shard")
                                                        : NULL)
                                        : value_shard(f, v);
    if (!read_layout(io->mesh, a, v->type, g, ret->loc, d)) return false;
  }
  return true;
}

typedef struct Job {
  const TileVliwOptions *o;
  TileVliwResult r;
} Job;

/* Tells the hook a stage has ended; true when the compile goes on. */
static bool stage_done(Job *j, TileVliwStage s) {
  if (j->o->on_stage) j->o->on_stage(j->o->user, s, &j->r);
  return s < j->o->stop_after;
}

/* Checks MIR after a step that made or rewrote it; a failure is a compiler bug. */
static bool mir_ok(const TileMir *mir, const char *after, TileDiag *d) {
  TileDiag vd;
  tile_diag_init(&vd, NULL, d->file, NULL, 0);
  if (tile_mir_verify(mir, &vd) && vd.nerrors == 0) return true;
  tile_error(d, (TileLoc){0}, "internal error: the machine IR after %s is malformed: %s", after,
             vd.nerrors ? vd.last : "the check failed without a message");
  return false;
}

/* Judges one backend step by its result and the errors it added since errors_before,
 * which the caller reads before the step runs (not in the same call's arguments: the
 * order in which C evaluates them is unspecified). A step that fails without a message
 * is a compiler bug. */
static TilePassStatus step(bool ok, const char *what, int errors_before, TileDiag *d) {
  if (ok && d->nerrors == errors_before) return TILE_PASS_OK;
  if (d->nerrors == errors_before) {
    tile_error(d, (TileLoc){0}, "internal error: %s failed without a message", what);
    return TILE_PASS_INTERNAL;
  }
  /* An internal error reported by the step keeps its class. */
  return strncmp(d->last, "internal error", 14) == 0 ? TILE_PASS_INTERNAL : TILE_PASS_FAILED;
}

TilePassStatus tile_vliw_compile(TileModule *m, const TileVliwOptions *o, TileObject *obj,
                                 TileDiag *d) {
  Job j = {.o = o, .r = {.module = m}};
  if (obj) memset(obj, 0, sizeof *obj);
  m->keep_composites = vliw_keeps;
  const TileTarget *t = o->target;
  m->hbm_per_link = t && t->ici_bw > 0 ? (double)t->hbm_bw / (double)t->ici_bw : 0;
  m->wrap_dims = 0;
  m->vmem_bytes = t ? t->vmem_bytes : 0;
  for (int d = 0; t && d < t->torus_rank; d++) m->wrap_dims |= (uint32_t)t->wrap[d] << d;
  TileFunc *global = quiet_find_func(m, o->func);
  TilePassStatus st = TILE_PASS_OK;
  if (global && tile_vliw_func_is_global(m, global)) st = partition(m, global, o->print, d);
  if (st != TILE_PASS_OK) return st;
  st = tile_run_pipeline(m, tile_pipeline, tile_pipeline_len, o->print, d);
  if (st != TILE_PASS_OK) return st;
  if (!stage_done(&j, TILE_VLIW_FUSED)) return TILE_PASS_OK;

  TileFunc *f = tile_vliw_find_func(m, o->func, d);
  if (!f) return TILE_PASS_FAILED;
  if (!o->target) {
    tile_error(d, f->loc, "internal error: the VLIW compile needs a target");
    return TILE_PASS_INTERNAL;
  }
  TileMir mir;
  TileMirCode code;
  memset(&code, 0, sizeof code);
  tile_mir_init(&mir, o->target);
  j.r.func = f;
  int before = d->nerrors;
  st = step(tile_lower_func(m, f, &mir, d), "lowering", before, d);
  if (st == TILE_PASS_OK && !mir_ok(&mir, "lowering", d)) st = TILE_PASS_INTERNAL;
  j.r.mir = &mir;
  if (st != TILE_PASS_OK || !stage_done(&j, TILE_VLIW_MIR)) goto out;

  before = d->nerrors;
  st = step(tile_mir_schedule(&mir, &code, d), "scheduling", before, d);
  j.r.code = &code;
  if (st != TILE_PASS_OK || !stage_done(&j, TILE_VLIW_SCHED)) goto out;

  before = d->nerrors;
  st = step(tile_mir_regalloc(&mir, &code, d), "register allocation", before, d);
  if (st == TILE_PASS_OK) {
    before = d->nerrors;
    st = step(tile_mir_layout_code(&mir, &code, d), "layout", before, d);
  }
  if (st == TILE_PASS_OK) {
    before = d->nerrors;
    st = step(tile_dma_check_layout(&mir, d), "layout", before, d);
  }
  if (st != TILE_PASS_OK || !stage_done(&j, TILE_VLIW_ALLOC)) goto out;

  if (!obj) {
    tile_error(d, f->loc, "internal error: the VLIW compile to an object needs an object");
    st = TILE_PASS_INTERNAL;
    goto out;
  }
  before = d->nerrors;
  st = step(tile_mir_emit(&mir, &code, obj, d), "emission", before, d);
  if (st == TILE_PASS_OK) {
    snprintf(obj->target, sizeof obj->target, "%s", o->target->name);
    j.r.obj = obj;
    stage_done(&j, TILE_VLIW_OBJECT);
  } else {
    tile_object_free(obj);
  }
out:
  tile_mir_code_free(&code);
  tile_mir_free(&mir);
  return st;
}
