/* Collective times on the torus (ici.h), the model of REFERENCE.md ("Collectives"):
 *
 *   all-gather / reduce-scatter of an array of V bytes over axes of n_1 .. n_k chips
 *   (N = prod n_i):  T = max(alpha * sum_i hops_i, (1 - 1/N) V / sum_i W_i)
 *   all-reduce:      2 T (reduce-scatter, then all-gather)
 *   all-to-all:      the bandwidth term / 4 (a bidirectional ring), the same hops
 *   permute:         V / b + alpha * hops of the shift; along the cycle through two
 *                    axes (P = n_1 n_2 positions, each one hop from the next, the last
 *                    from the first too) the shift s is min(s, P - s) hops; with halves
 *                    each half goes its own way at once, V / 2b
 *
 * b is one link's one-way bandwidth and alpha the per-hop latency. An axis with
 * wraparound is a ring: each chip receives on two links (W = 2b) and the farthest chip
 * is n/2 hops away. Without wraparound it is a line: the end chips have one link on
 * the axis (W = b, "without wraparound about 2x") and the far end is n - 1 hops away.
 * V is the whole array a chip holds after an all-gather or before a reduce-scatter or
 * all-reduce: the larger of the op's operand and result; an all-to-all exchanges N
 * blocks of its operand's size. */

#include "ici.h"
#include "tile/ops.h"

static double type_bytes(const TileType *ty) {
  int bits = tile_elem_bits((TileElem)ty->elem);
  return (double)tile_type_numel(ty) * (double)(bits < 8 ? 8 : bits) / 8.0;
}

/* An axis is a ring when it is one whole torus dim that wraps on this target; a share
 * of a dim or an axis over several dims closes its ring across the torus, as a line. */
static bool axis_wraps(const TileMeshAxis *a, const TileTarget *t) {
  int k = a->ndims == 1 ? a->dims[0] : -1;
  return k >= 0 && k < t->torus_rank && t->wrap[k] && a->size == t->torus[k];
}

void ici_gather_terms(const TileTarget *t, const IciAxis *axes, int naxes, double v,
                      double *lat, double *bw) {
  double link = (double)t->ici_bw / (double)t->clock_hz; /* bytes per cycle, one way */
  double chips = 1, hops = 0, width = 0;
  for (int i = 0; i < naxes; i++) {
    if (axes[i].chips < 2) continue;
    chips *= axes[i].chips;
    hops += axes[i].ring ? (double)((int64_t)axes[i].chips / 2) : axes[i].chips - 1;
    width += axes[i].ring ? 2 * link : link;
  }
  *lat = (double)tile_target_hop_cycles(t) * hops;
  *bw = width > 0 ? (1 - 1 / chips) * v / width : 0;
}

bool ici_collective_cycles(const TileOp *op, const TileMesh *mesh, const TileTarget *t,
                           double *cycles, TileDiag *d) {
  double link = (double)t->ici_bw / (double)t->clock_hz; /* bytes per cycle, one way */
  double alpha = (double)tile_target_hop_cycles(t);
  double in = type_bytes(&op->opnd[0].v->type), out = type_bytes(&op->res[0]->type);
  const TileAttr *axes = tile_attr_get(&op->attrs, "axes");
  const TileAttr *one = tile_attr_get(&op->attrs, "axis");
  int naxes = axes ? axes->n : one ? 1 : 0;
  IciAxis ax[TILE_MAX_MESH_AXES];
  double chips = 1;
  for (int i = 0; i < naxes && i < TILE_MAX_MESH_AXES; i++) {
    const TileAttr *name = axes ? &axes->elems[i] : one;
    const TileMeshAxis *a = name->kind == TILE_ATTR_IDENT ? tile_mesh_find_axis(mesh, name->s) : NULL;
    if (!a) {
      tile_error(d, op->loc, "the bound finds no mesh axis '%s' on mesh @%s",
                 name->kind == TILE_ATTR_IDENT ? name->s : "?", mesh->name);
      return false;
    }
    ax[i] = (IciAxis){(double)a->size, axis_wraps(a, t)};
    chips *= (double)a->size;
  }
  const TileAttr *cyc = tile_attr_get(&op->attrs, "cycle");
  const TileMeshAxis *ca = cyc && cyc->kind == TILE_ATTR_IDENT ? tile_mesh_find_axis(mesh, cyc->s) : NULL;
  if (cyc && !ca) {
    tile_error(d, op->loc, "the bound finds no mesh axis '%s' on mesh @%s",
               cyc->kind == TILE_ATTR_IDENT ? cyc->s : "?", mesh->name);
    return false;
  }
  if (ca) chips *= (double)ca->size;
  if (chips <= 1) {
    *cycles = 0;
    return true;
  }
  double v = in > out ? in : out, lat, bw;
  switch ((TileOpKind)op->kind) {
  case TILE_OP_ALL_GATHER:
  case TILE_OP_REDUCE_SCATTER:
  case TILE_OP_ALL_REDUCE:
    ici_gather_terms(t, ax, naxes, v, &lat, &bw);
    *cycles = (bw > lat ? bw : lat) * (op->kind == TILE_OP_ALL_REDUCE ? 2 : 1);
    return true;
  case TILE_OP_ALL_TO_ALL:
    ici_gather_terms(t, ax, naxes, in * chips, &lat, &bw);
    *cycles = bw / 4 > lat ? bw / 4 : lat;
    return true;
  case TILE_OP_COLLECTIVE_PERMUTE: {
    int64_t shift = 0, halves = 0, p = (int64_t)chips;
    tile_attr_get_int(&op->attrs, "shift", &shift);
    tile_attr_get_int(&op->attrs, "halves", &halves);
    int64_t s = ca ? ((shift % p) + p) % p : shift < 0 ? -shift : shift;
    if (ca && p - s < s) s = p - s;
    *cycles = (halves ? in / 2 : in) / link + alpha * (double)s;
    return true;
  }
  default:
    tile_error(d, op->loc, "'%s' is not a collective", tile_op_name((TileOpKind)op->kind));
    return false;
  }
}
