/* The embedding-lookup generator: a GATHER group, one `gather` (include/tile/lower.h).
 *
 * `gather %table, %ids {axis = a}` with table [P..., V, R...] (P the dims before the
 * axis, R those after) and integer ids of any shape (N of them) gives
 * [ids..., P..., R...] (numpy take on the table with the axis moved first): for every id n
 * and every p, the R elements of table[p, ids[n], :] land at result[n, p, :]. Each id
 * is one DMA from HBM to HBM: P runs of R elements (count1 = P, source stride V rows)
 * into P * R contiguous result elements, so the embedding form (axis 0, table [V, D])
 * is one contiguous row per id.
 *
 * Out-of-range ids clamp, as XLA's gather clamps its start indices: an id below 0 reads
 * row 0, an id at or past V reads row V - 1. No id can fault or read outside the table.
 * (The numpy reference refuses such ids; the machine gives this defined answer.)
 *
 * Plan:
 *   - The ids come into SMEM with one DMA per chunk (all of them at once when they fit
 *     a quarter of SMEM, which serving sizes do), then the scalar core walks them:
 *     `sld` the id, clamp it (`max`, `min`), row address = table + id * row bytes
 *     (`muli`, `addi` relative to the table), and issue the row's DMA with both addresses
 *     stored into its descriptor.
 *   - U row sites (descriptors with their own semaphores) take ids in turn, so U row
 *     copies are in flight at once: U = dma.outstanding - 1 (one stays free for the
 *     next chunk of ids), at most 4: a lone HBM-to-HBM copy already gets all of
 *     hbm.bw, so more in flight only covers issue gaps, and a batch of 4 keeps the
 *     pipelined body's registers within the scalar file (8 sites spilled). Each site starts with one credit (`sem.signal`), and before
 *     reusing a site the batch waits for that site's previous copy: a wait consumes
 *     the copy issued U ids earlier, so the copies keep flowing and HBM never idles
 *     while ids remain. A final wait per site drains them.
 *   - The batch loop (U ids per iteration) is flagged for the modulo scheduler: address
 *     arithmetic of one batch overlaps the waits and issues of the last.
 *
 * The row sites' est_cycles is cut to the issue cost: the wait a copy really answers to
 * comes a whole batch later, and the scheduler's edges from a copy to the next site's
 * wait (they share the table and result buffers) would otherwise space every issue a
 * full transfer apart. The waits stay exact; only the placement hint changes.
 *
 * Cost: HBM to HBM copies of the rows (the emulator charges a DMA's bytes once against
 * hbm.bw), about 8 scalar ops per id in two scalar slots, two DMA-slot ops per id. */
#include <inttypes.h>
#include <string.h>

#include "tile/lower.h"
#include "tile/ops.h"

enum { MAX_ROW_SITES = 4 };

typedef struct Gather {
  TileLowerCtx *cx;
  TileMir *m;
  const TileOp *op;
  int64_t P, V, R, N; /* table [P, V, R] around the axis, N ids */
  int64_t rb;         /* bytes of one row (R elements) */
  int64_t ob;         /* result bytes per id (P rows) */
  int32_t table, ids, out, smem_ids;
  int u;              /* row sites */
  TileDmaSite rows[MAX_ROW_SITES];
  int32_t zero, last_id; /* sregs: 0 and V - 1 */
} Gather;

static int32_t add(TileMir *m, int op, int32_t d, int32_t a, int32_t b, int32_t imm) {
  return tile_mir_add(m, tile_mir_inst(op, d, a, b, 0, imm));
}

/* The id at SMEM byte offset (off + 4 j) goes to row site j: its clamped row address
 * into *src, its result address (dst + j rows) into *dst. */
static void row_addresses(Gather *g, int j, int32_t off, int32_t dst_base, int32_t src,
                          int32_t dst) {
  TileMir *m = g->m;
  int32_t id = tile_mir_sreg(m);
  TileMirInst ld = tile_mir_inst(TILE_MOP_SLD, id, off, 0, 0, 4 * j);
  ld.imm_buf = g->smem_ids;
  tile_mir_mem(&ld, g->smem_ids, TILE_MIR_READ, 0);
  tile_mir_add(m, ld);
  add(m, TILE_MOP_MAX, id, id, g->zero, 0);
  add(m, TILE_MOP_MIN, id, id, g->last_id, 0);
  add(m, TILE_MOP_MULI, src, id, 0, (int32_t)g->rb);
  TileMirInst base = tile_mir_inst(TILE_MOP_ADDI, src, src, 0, 0, 0);
  base.imm_buf = g->table;
  tile_mir_add(m, base);
  add(m, TILE_MOP_ADDI, dst, dst_base, 0, (int32_t)(j * g->ob));
}

/* Copies the rows of `count` ids (count <= u) starting at SMEM offset off and result
 * address dst: per site the addresses, the wait for the site's previous copy and the
 * new issue. (Computing every address first would keep 2u more registers live across
 * the waits; the scheduler hoists the loads and arithmetic anyway.) */
static void batch(Gather *g, int count, int32_t off, int32_t dst) {
  for (int j = 0; j < count; j++) {
    int32_t src = tile_mir_sreg(g->m), to = tile_mir_sreg(g->m);
    row_addresses(g, j, off, dst, src, to);
    tile_dma_wait(g->cx, &g->rows[j], 0, 0);
    tile_dma_issue(g->cx, &g->rows[j], src, 0, to, 0);
  }
}

/* Copies the rows of n ids whose values are in SMEM from offset 0 on: full batches in a
 * pipelined loop, the rest peeled. dst is the result address of the first, and
 * advances past the last. */
static void chunk_rows(Gather *g, int64_t n, int32_t dst) {
  TileMir *m = g->m;
  int32_t off = tile_mir_sreg(m);
  add(m, TILE_MOP_LI, off, 0, 0, 0);
  int64_t nb = n / g->u;
  if (nb > 0) {
    tile_mir_loop_begin(m, (int32_t)nb, TILE_MIR_PIPELINE);
    batch(g, g->u, off, dst);
    add(m, TILE_MOP_ADDI, off, off, 0, 4 * g->u);
    add(m, TILE_MOP_ADDI, dst, dst, 0, (int32_t)(g->u * g->ob));
    tile_mir_loop_end(m);
  }
  int rest = (int)(n % g->u);
  if (rest > 0) {
    batch(g, rest, off, dst);
    add(m, TILE_MOP_ADDI, dst, dst, 0, (int32_t)(rest * g->ob));
  }
}

static int64_t prod(const int64_t *d, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= d[i];
  return p;
}

bool tile_gen_gather(TileLowerCtx *cx, const TileGroup *grp) {
  const TileOp *op = grp->ops[0];
  if (grp->nops != 1 || op->kind != TILE_OP_GATHER)
    return tile_lower_error(cx, grp->nops > 1 ? grp->ops[1] : op,
                            "a gather group holds one `gather`; fuse nothing into it");
  const TileType *tt = &op->opnd[0].v->type, *it = &op->opnd[1].v->type;
  int64_t axis = 0;
  tile_attr_get_int(&op->attrs, "axis", &axis);
  if (it->elem != TILE_ELEM_I32)
    return tile_lower_error(cx, op, "ids of type %s are not supported; convert them to i32",
                            tile_elem_name((TileElem)it->elem));
  int eb = tile_lower_elem_bytes((TileElem)tt->elem);
  if (eb == 0)
    return tile_lower_error(cx, op, "tables of %s cannot be stored by this backend",
                            tile_elem_name((TileElem)tt->elem));

  Gather g = {.cx = cx, .m = tile_lower_mir(cx), .op = op};
  const TileTarget *t = tile_lower_target(cx);
  g.P = prod(tt->dims, 0, (int)axis);
  g.V = tt->dims[axis];
  g.R = prod(tt->dims, (int)axis + 1, tt->rank);
  g.N = tile_type_numel(it);
  g.rb = g.R * eb;
  g.ob = g.P * g.rb;
  if (g.N == 0 || g.P == 0 || g.R == 0) return true; /* an empty result */
  if (g.V == 0) return tile_lower_error(cx, op, "the table has no rows to take");

  g.u = t->dma_outstanding - 1;
  if (g.u > MAX_ROW_SITES) g.u = MAX_ROW_SITES;
  if (g.u < 1) g.u = 1;
  if (g.u > g.N) g.u = (int)g.N;
  /* Ids per chunk: a multiple of u, within a quarter of SMEM. */
  int64_t chunk = t->smem_bytes / 16;
  chunk -= chunk % g.u;
  if (chunk < g.u)
    return tile_lower_error(cx, op, "SMEM (%" PRId64 " bytes) cannot hold %d ids at a time",
                            t->smem_bytes, g.u);
  if (chunk > g.N) chunk = g.N;

  /* Addresses are 32-bit sums (the DMA descriptors take their low words). */
  const int64_t s32 = INT32_MAX;
  if (g.ob * g.u > s32 || g.P * g.V * g.rb > s32 || g.N * g.ob > s32)
    return tile_lower_error(cx, op, "the table (%" PRId64 " rows of %" PRId64 " bytes) or the "
                            "result is past the 2 GiB that 32-bit row addresses reach",
                            g.V, g.rb);

  TileTensorRef tr = tile_lower_tensor(cx, op->opnd[0].v);
  TileTensorRef ir = tile_lower_tensor(cx, op->opnd[1].v);
  TileTensorRef orf = tile_lower_tensor(cx, op->res[0]);
  g.table = tr.buf;
  g.ids = ir.buf;
  g.out = orf.buf;
  TileMir *m = g.m;
  tile_mir_set_source(m, tile_op_name(TILE_OP_GATHER), op->loc);
  g.smem_ids = tile_mir_buffer(m, "gather.ids", TILE_SPACE_SMEM, chunk * 4, 1, 4);
  g.zero = tile_lower_zero(cx);
  g.last_id = tile_mir_sreg(m);
  add(m, TILE_MOP_LI, g.last_id, 0, 0, (int32_t)(g.V - 1));

  TileDmaShape row = {.count0 = g.rb, .count1 = g.P, .count2 = 1,
                      .src_stride1 = g.V * g.rb, .dst_stride1 = g.rb};
  for (int j = 0; j < g.u; j++) {
    g.rows[j] = tile_dma_site(cx, g.table, 0, g.out, 0, row);
    g.rows[j].est_cycles = t->dma_issue_cycles + 1;
    /* The credit the first wait of the site consumes. */
    tile_mir_add(m, tile_mir_inst(TILE_MOP_SIGNAL, 0, 0, 0, g.rows[j].sem, 1));
  }

  int32_t dst = tile_mir_sreg(m);
  TileMirInst li = tile_mir_inst(TILE_MOP_LI, dst, 0, 0, 0, 0);
  li.imm_buf = g.out;
  tile_mir_add(m, li);

  int64_t nfull = g.N / chunk, rest = g.N % chunk;
  if (nfull > 0) {
    TileDmaSite ids = tile_dma_site(cx, g.ids, 0, g.smem_ids, 0,
                                    (TileDmaShape){.count0 = chunk * 4, .count1 = 1, .count2 = 1});
    int32_t ids_src = tile_mir_sreg(m);
    li = tile_mir_inst(TILE_MOP_LI, ids_src, 0, 0, 0, 0);
    li.imm_buf = g.ids;
    tile_mir_add(m, li);
    if (nfull > 1) tile_mir_loop_begin(m, (int32_t)nfull, 0);
    tile_dma_issue(cx, &ids, ids_src, 0, -1, 0);
    tile_dma_wait(cx, &ids, 0, 0);
    chunk_rows(&g, chunk, dst);
    if (nfull > 1) {
      add(m, TILE_MOP_ADDI, ids_src, ids_src, 0, (int32_t)(chunk * 4));
      tile_mir_loop_end(m);
    }
  }
  if (rest > 0) {
    TileDmaSite ids = tile_dma_site(cx, g.ids, nfull * chunk * 4, g.smem_ids, 0,
                                    (TileDmaShape){.count0 = rest * 4, .count1 = 1, .count2 = 1});
    tile_dma_issue(cx, &ids, -1, 0, -1, 0);
    tile_dma_wait(cx, &ids, 0, 0);
    chunk_rows(&g, rest, dst);
  }
  /* Drain: each site's last copy (or its unused credit). */
  for (int j = 0; j < g.u; j++) tile_dma_wait(cx, &g.rows[j], 0, 0);
  return true;
}
