/* coll_split: collectives too large for the chip's memory run in pieces.
 *
 * A ring collective receives each step's chunk into a slot of its own (a peer may run
 * ahead by a step, so a slot is not reused within the collective): an all_reduce or a
 * reduce_scatter of V bytes over p chips keeps about (p - 1) / p * V of receive slots
 * in VMEM (an all_reduce's gather phase as much again where its schedule keeps slots
 * for it), an all_gather as much of its result. On v4-like's 16 MiB of VMEM the
 * sequence-parallel MLP's reduce_scatter of 32 MiB of f32 sums over 16 chips needs
 * 30 MiB and does not compile. This pass cuts such a collective along a dim it does not
 * gather or scatter into k pieces (slices of its operand), runs one collective per
 * piece and joins the results (concatenate): each piece is a collective of its own, so
 * its receive slots live only from the piece before it on (layout_live.c: a peer
 * may be a collective ahead), and two pieces' slots at most are live at once.
 *
 *   y = reduce_scatter(x)   ->   y = concatenate(reduce_scatter(slice_0(x)), ...,
 *                                                reduce_scatter(slice_{k-1}(x)))
 *
 * Each element's result combines the same elements of every chip as before; the order
 * of a sum is the one the piece's schedule takes (a small piece may run the one-shot
 * schedule), so sums agree within rounding.
 *
 * Needs: a verified module after spmd (per-chip shapes), and TileModule.vmem_bytes (0:
 * no machine in view, nothing is cut). Guarantees: no all_reduce, reduce_scatter or
 * all_gather whose receive slots would take more than COLL_SPLIT_SHARE of VMEM, where a
 * dim other than the collective's own has a divisor that brings its pieces within
 * COLL_SPLIT_PIECE (the smallest such divisor is taken); the rest unchanged. */
#include <stdio.h>
#include <string.h>

#include "sharding.h"
#include "tile/builder.h"
#include "tile/pass.h"
#include "tile/rewrite.h"

/* A collective is cut when its receive slots would take more than this share of VMEM
 * (the groups around it keep their own buffers), into pieces of at most the second
 * share each (two pieces' slots are live at once). Cutting costs a copy of the operand
 * and of the result and a hop latency a piece, so only what would not fit is cut: on
 * v5p-like (64 MiB) a reduce_scatter of 30 MiB of slots runs whole (mlp_prefill_16:
 * 516,318 cycles, 544,339 in pieces), and so do the Megatron MLPs' all_reduces of 24 to
 * 31.5 MiB (414,789 cycles over 8x8, 705,515 in pieces, had their gather phases
 * counted twice). */
#define COLL_SPLIT_SHARE 0.5
#define COLL_SPLIT_PIECE 0.125
/* Pieces at most: each is a collective with its own code and semaphores. */
enum { COLL_SPLIT_MAX = 64 };

/* The bytes of receive slots op keeps, or 0 for a collective this pass leaves alone. */
static int64_t slot_bytes(const TileMesh *mesh, const TileOp *op) {
  const TileValue *v;
  switch (op->kind) {
  case TILE_OP_ALL_REDUCE:
  case TILE_OP_REDUCE_SCATTER: v = op->opnd[0].v; break;
  case TILE_OP_ALL_GATHER: v = op->res[0]; break;
  default: return 0;
  }
  const TileAttr *axes = tile_attr_get(&op->attrs, "axes");
  int64_t p = axes ? tile_mesh_axes_size(mesh, axes) : 0;
  return p > 1 ? tile_type_bytes(&v->type) / p * (p - 1) : 0;
}

/* The dim to cut (the last one the collective does not gather or scatter along) and the
 * pieces: the smallest divisor k of its size with bytes / k within piece; false when
 * there is none. */
static bool choose_cut(const TileOp *op, int64_t bytes, int64_t piece, int *dim, int64_t *k) {
  const TileType *t = &op->opnd[0].v->type;
  int64_t own = -1;
  tile_attr_get_int(&op->attrs, "dim", &own);
  for (int d = t->rank - 1; d >= 0; d--) {
    if (d == own) continue;
    for (int64_t n = 2; n <= t->dims[d] && n <= COLL_SPLIT_MAX; n++)
      if (t->dims[d] % n == 0 && bytes / n <= piece) {
        *dim = d;
        *k = n;
        return true;
      }
    return false; /* the last free dim decides: cutting an outer one makes runs short */
  }
  return false;
}

static TileValue *build1(TileBuilder *b, TileNameSet *names, const TileOp *like, TileOpKind kind,
                         int n, TileUse *opnds, const TileAttrDict *attrs, TileType type,
                         const char *what, int64_t j) {
  char sfx[32];
  if (j < 0) snprintf(sfx, sizeof sfx, "%s", what); /* the one of its kind */
  else snprintf(sfx, sizeof sfx, "%s%lld", what, (long long)j);
  TileOp *op = tile_build_op(b, kind, n, opnds, attrs ? attrs->n : 0, attrs ? attrs->items : NULL,
                             1, &type);
  if (!op) return NULL;
  op->loc = like->loc;
  op->res[0]->name = tile_names_fresh(names, like->res[0]->name ? like->res[0]->name : "cs", sfx);
  op->res[0]->loc = like->loc;
  return op->res[0];
}

/* Replaces op by k collectives on pieces along dim; false (an internal error reported)
 * when they do not build. */
static bool cut(TileModule *m, TileFunc *f, TileOp *op, int dim, int64_t k, TileDiag *d) {
  TileBuilder b;
  tile_builder_init(&b, m);
  tile_builder_set_block(&b, f->body);
  TileNameSet names;
  tile_names_init(&names, m, f);
  TileInsertPoint ip;
  tile_insert_begin(&ip, &b, op);
  const TileType *in = &op->opnd[0].v->type, *out = &op->res[0]->type;
  int64_t w = in->dims[dim] / k;
  TileValue *parts[COLL_SPLIT_MAX];
  TileUse uses[COLL_SPLIT_MAX];
  bool ok = true; /* k <= COLL_SPLIT_MAX (choose_cut) */
  for (int64_t j = 0; j < k && ok; j++) {
    int64_t start[TILE_MAX_RANK], limit[TILE_MAX_RANK];
    for (int i = 0; i < in->rank; i++) {
      start[i] = i == dim ? j * w : 0;
      limit[i] = i == dim ? (j + 1) * w : in->dims[i];
    }
    TileNamedAttr sa[2] = {{"start", tile_attr_ints(m, in->rank, start)},
                           {"limit", tile_attr_ints(m, in->rank, limit)}};
    TileAttrDict sd = {2, sa};
    TileType st = *in, pt = *out;
    st.dims[dim] = w;
    pt.dims[dim] = w;
    TileUse src = {.v = op->opnd[0].v};
    TileValue *s = build1(&b, &names, op, TILE_OP_SLICE, 1, &src, &sd, st, "cut", j);
    TileUse piece = {.v = s};
    parts[j] = s ? build1(&b, &names, op, (TileOpKind)op->kind, 1, &piece, &op->attrs, pt,
                          "piece", j)
                 : NULL;
    uses[j] = (TileUse){.v = parts[j]};
    ok = parts[j] != NULL;
  }
  TileNamedAttr ca[1] = {{"dim", tile_attr_int(dim)}};
  TileAttrDict cd = {1, ca};
  TileValue *joined =
      ok ? build1(&b, &names, op, TILE_OP_CONCATENATE, (int)k, uses, &cd, *out, "joined", -1) : NULL;
  ok = joined != NULL;
  tile_insert_end(&ip, &b, ok);
  if (ok) {
    tile_replace_all_uses(f, op->res[0], joined);
    tile_op_erase(op);
  } else {
    tile_error(d, op->loc, "internal error: coll_split: cannot build the pieces: %s",
               b.diag.nerrors ? b.diag.last : "out of memory");
  }
  tile_names_free(&names);
  return ok;
}

TilePassStatus tile_pass_coll_split(TileModule *m, TileDiag *d) {
  if (m->vmem_bytes <= 0) return TILE_PASS_OK;
  int64_t most = (int64_t)(COLL_SPLIT_SHARE * (double)m->vmem_bytes);
  int64_t piece = (int64_t)(COLL_SPLIT_PIECE * (double)m->vmem_bytes);
  for (TileFunc *f = m->funcs; f; f = f->next) {
    const TileMesh *mesh = shard_func_mesh(m, f);
    if (f->is_kernel || !mesh || !tile_attr_get(&f->attrs, "mesh")) continue;
    for (TileOp *op = f->body->first, *next; op; op = next) {
      next = op->next;
      int64_t bytes = slot_bytes(mesh, op), k;
      int dim;
      if (bytes <= most || !choose_cut(op, bytes, piece, &dim, &k)) continue;
      if (!cut(m, f, op, dim, k, d)) return TILE_PASS_INTERNAL;
    }
  }
  return TILE_PASS_OK;
}
