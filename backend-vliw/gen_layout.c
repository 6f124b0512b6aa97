/* The layout generator: reshape, transpose, slice, concatenate and a lone convert
 * (a LAYOUT fusion group, include/tile/lower.h); ring_slice and ring_concat, copies
 * that the chip's position picks, are in gen_layout_ring.c.
 *
 * Data movement is DMA from HBM to HBM: every one of these ops is a strided copy, and
 * a descriptor moves up to three dimensions of one (count0 contiguous bytes, count1
 * and count2 strided runs). The copy's dimensions are first merged where they are
 * contiguous on both sides; what remains beyond three becomes counted loops around
 * the issue, stepping the two address registers. A `reshape` moves nothing when its
 * result shares its operand's buffer (lower.c aliases it) and is a plain copy when the
 * result is a function result with its own buffer.
 *
 * A lone convert changes the bits, so it goes through the vector unit: blocks of whole
 * vreg tiles are copied into VMEM, converted tile by tile (tile_ew_emit, the same
 * arithmetic as a fused convert) and copied back; the last block is peeled with its
 * own, shorter transfers, so no byte past the tensor is read or written in HBM. */
#include <inttypes.h>
#include <string.h>

#include "lower_internal.h"
#include "tile/ops.h"

/* One dimension of a strided copy: n elements, strides in bytes on each side. */
typedef struct CopyDim {
  int64_t n, src, dst;
} CopyDim;

/* Descriptor counts are 32-bit, strides signed 32-bit. */
static bool fits_u32(int64_t v) { return v >= 1 && v <= (int64_t)UINT32_MAX; }
static bool fits_s32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

static void row_major_strides(int rank, const int64_t *dims, int64_t eb, int64_t *st) {
  int64_t s = eb;
  for (int i = rank - 1; i >= 0; i--) {
    st[i] = s;
    s *= dims[i];
  }
}

/* Emits the loops over the dims the descriptor cannot hold (levels), stepping address
 * registers, and at the innermost level issues and waits for one transfer. */
static void copy_loops(TileLowerCtx *cx, const TileDmaSite *site, const CopyDim *outer,
                       int nouter, int level, int32_t src_reg, int32_t dst_reg) {
  TileMir *mir = cx->mir;
  if (level == nouter) {
    tile_dma_issue(cx, site, src_reg, 0, dst_reg, 0);
    tile_dma_wait(cx, site, 0, 0);
    return;
  }
  /* This level's registers step; the inner level starts from a copy of them each
   * iteration, so every level keeps its own position. */
  tile_mir_loop_begin(mir, (int32_t)outer[level].n, 0);
  int32_t s = src_reg, d = dst_reg;
  if (level + 1 < nouter) {
    s = tile_mir_sreg(mir);
    d = tile_mir_sreg(mir);
    tile_mir_add(mir, tile_mir_inst(TILE_MOP_MOV, s, src_reg, 0, 0, 0));
    tile_mir_add(mir, tile_mir_inst(TILE_MOP_MOV, d, dst_reg, 0, 0, 0));
  }
  copy_loops(cx, site, outer, nouter, level + 1, s, d);
  tile_mir_add(mir, tile_mir_inst(TILE_MOP_ADDI, src_reg, src_reg, 0, 0, (int32_t)outer[level].src));
  tile_mir_add(mir, tile_mir_inst(TILE_MOP_ADDI, dst_reg, dst_reg, 0, 0, (int32_t)outer[level].dst));
  tile_mir_loop_end(mir);
}

/* Copies the elements (element size eb) that dims describe, outermost first, from
 * src_buf + src_off to dst_buf + dst_off. */
static bool strided_copy(TileLowerCtx *cx, const TileOp *op, int32_t src_buf, int64_t src_off,
                         int32_t dst_buf, int64_t dst_off, int rank, const CopyDim *in,
                         int64_t eb) {
  CopyDim d[TILE_MAX_RANK + 1];
  int n = 0;
  for (int i = 0; i < rank; i++) {
    if (in[i].n == 0) return true; /* nothing to copy */
    if (in[i].n > 1) d[n++] = in[i];
  }
  /* Merge an outer dim into the inner one where the inner one's extent is its stride. */
  for (int i = n - 2; i >= 0; i--) {
    if (d[i].src == d[i + 1].src * d[i + 1].n && d[i].dst == d[i + 1].dst * d[i + 1].n) {
      d[i + 1].n *= d[i].n;
      memmove(&d[i], &d[i + 1], sizeof *d * (size_t)(n - i - 1));
      n--;
    }
  }
  TileDmaShape shape = {.count0 = eb, .count1 = 1, .count2 = 1};
  if (n > 0 && d[n - 1].src == eb && d[n - 1].dst == eb) shape.count0 = d[--n].n * eb;
  if (n > 0) {
    shape.count1 = d[n - 1].n;
    shape.src_stride1 = d[n - 1].src;
    shape.dst_stride1 = d[n - 1].dst;
    n--;
  }
  if (n > 0) {
    shape.count2 = d[n - 1].n;
    shape.src_stride2 = d[n - 1].src;
    shape.dst_stride2 = d[n - 1].dst;
    n--;
  }
  /* d[0 .. n-1] are left for loops. */
  bool ok = fits_u32(shape.count0) && fits_u32(shape.count1) && fits_u32(shape.count2) &&
            fits_s32(shape.src_stride1) && fits_s32(shape.src_stride2) &&
            fits_s32(shape.dst_stride1) && fits_s32(shape.dst_stride2) && n <= 4;
  for (int i = 0; i < n && ok; i++)
    ok = d[i].n <= INT32_MAX && fits_s32(d[i].src) && fits_s32(d[i].dst);
  if (n > 0) ok = ok && fits_s32(src_off) && fits_s32(dst_off);
  if (!ok)
    return tile_lower_error(cx, op, "the copy's runs, strides or nesting exceed what a DMA "
                            "descriptor holds (32-bit counts and strides, 4 loops)");
  if (n == 0) {
    TileDmaSite site = tile_dma_site(cx, src_buf, src_off, dst_buf, dst_off, shape);
    tile_dma_issue(cx, &site, -1, 0, -1, 0);
    tile_dma_wait(cx, &site, 0, 0);
    return true;
  }
  TileDmaSite site = tile_dma_site(cx, src_buf, 0, dst_buf, 0, shape);
  TileMir *mir = cx->mir;
  int32_t s = tile_mir_sreg(mir), t = tile_mir_sreg(mir);
  TileMirInst li = tile_mir_inst(TILE_MOP_LI, s, 0, 0, 0, (int32_t)src_off);
  li.imm_buf = src_buf;
  tile_mir_add(mir, li);
  li = tile_mir_inst(TILE_MOP_LI, t, 0, 0, 0, (int32_t)dst_off);
  li.imm_buf = dst_buf;
  tile_mir_add(mir, li);
  copy_loops(cx, &site, d, n, 0, s, t);
  return true;
}

void tile_lower_copy(TileLowerCtx *cx, int32_t src_buf, int64_t src_off, int32_t dst_buf,
                     int64_t dst_off, int64_t bytes) {
  CopyDim d = {bytes, 1, 1};
  strided_copy(cx, NULL, src_buf, src_off, dst_buf, dst_off, 1, &d, 1);
}

/* ---- the ops ---- */

static int64_t elem_bytes(const TileTensorRef *r) { return tile_lower_elem_bytes((TileElem)r->elem); }

static bool gen_reshape(TileLowerCtx *cx, const TileOp *op) {
  TileTensorRef src = tile_lower_tensor(cx, op->opnd[0].v);
  TileTensorRef dst = tile_lower_tensor(cx, op->res[0]);
  if (src.buf == dst.buf) return true;
  CopyDim d = {src.bytes, 1, 1};
  return strided_copy(cx, op, src.buf, 0, dst.buf, 0, 1, &d, 1);
}

static bool gen_transpose(TileLowerCtx *cx, const TileOp *op) {
  TileTensorRef src = tile_lower_tensor(cx, op->opnd[0].v);
  TileTensorRef dst = tile_lower_tensor(cx, op->res[0]);
  const TileAttr *perm = tile_attr_get(&op->attrs, "perm");
  int64_t eb = elem_bytes(&src), ss[TILE_MAX_RANK], ds[TILE_MAX_RANK];
  row_major_strides(src.rank, src.dims, eb, ss);
  row_major_strides(dst.rank, dst.dims, eb, ds);
  CopyDim d[TILE_MAX_RANK];
  for (int i = 0; i < dst.rank; i++) d[i] = (CopyDim){dst.dims[i], ss[perm->elems[i].i], ds[i]};
  return strided_copy(cx, op, src.buf, 0, dst.buf, 0, dst.rank, d, eb);
}

/* Whether the bytes at buffer a + offset ao are those at b + bo (views, lower.c
 * "lies_in"): the copy between them is none. */
static bool same_bytes(const TileMir *m, int32_t a, int64_t ao, int32_t b, int64_t bo) {
  return tile_mir_buffer_root(m, a) == tile_mir_buffer_root(m, b) &&
         tile_mir_buffer_offset(m, a) + ao == tile_mir_buffer_offset(m, b) + bo;
}

static bool gen_slice(TileLowerCtx *cx, const TileOp *op) {
  TileTensorRef src = tile_lower_tensor(cx, op->opnd[0].v);
  TileTensorRef dst = tile_lower_tensor(cx, op->res[0]);
  const TileAttr *start = tile_attr_get(&op->attrs, "start");
  const TileAttr *stride = tile_attr_get(&op->attrs, "stride");
  int64_t eb = elem_bytes(&src), ss[TILE_MAX_RANK], ds[TILE_MAX_RANK], off = 0;
  row_major_strides(src.rank, src.dims, eb, ss);
  row_major_strides(dst.rank, dst.dims, eb, ds);
  CopyDim d[TILE_MAX_RANK];
  for (int i = 0; i < dst.rank; i++) {
    int64_t step = stride ? stride->elems[i].i : 1;
    off += start->elems[i].i * ss[i];
    d[i] = (CopyDim){dst.dims[i], ss[i] * step, ds[i]};
  }
  if (same_bytes(cx->mir, src.buf, off, dst.buf, 0)) return true; /* whole rows, in place */
  return strided_copy(cx, op, src.buf, off, dst.buf, 0, dst.rank, d, eb);
}

static bool gen_concatenate(TileLowerCtx *cx, const TileOp *op) {
  TileTensorRef dst = tile_lower_tensor(cx, op->res[0]);
  int64_t dim = 0;
  tile_attr_get_int(&op->attrs, "dim", &dim);
  int64_t eb = elem_bytes(&dst), ds[TILE_MAX_RANK], at = 0;
  row_major_strides(dst.rank, dst.dims, eb, ds);
  /* Each copy is waited for before the next issues (strided_copy), so they take turns
   * on one semaphore (tile_mir_sem hands out the cursor): a concatenate of many pieces
   * (coll_split's) needs no more semaphores than one of two. */
  int32_t sems = cx->mir->nsems;
  for (int32_t j = 0; j < op->nopnd; j++) {
    cx->mir->nsems = sems;
    TileTensorRef src = tile_lower_tensor(cx, op->opnd[j].v);
    int64_t ss[TILE_MAX_RANK];
    row_major_strides(src.rank, src.dims, eb, ss);
    CopyDim d[TILE_MAX_RANK];
    for (int i = 0; i < src.rank; i++) d[i] = (CopyDim){src.dims[i], ss[i], ds[i]};
    bool placed = same_bytes(cx->mir, src.buf, 0, dst.buf, at * ds[dim]); /* made in place */
    if (!placed && !strided_copy(cx, op, src.buf, 0, dst.buf, at * ds[dim], src.rank, d, eb))
      return false;
    at += src.dims[dim];
  }
  return true;
}

/* ---- convert through the vector unit ---- */

/* Tiles per VMEM block: big enough that a transfer's issue cost is small next to its
 * bytes, small enough to leave VMEM to the groups around it. */
enum { CONVERT_BLOCK_TILES = 8 };

typedef struct Convert {
  const TileOp *op;
  TileTensorRef src, dst;
  int32_t vin, vout;     /* VMEM blocks */
  int64_t tile_elems;    /* sublanes x lanes */
  int32_t stride_in, stride_out; /* sregs: bytes from one sublane to the next */
} Convert;

static int load_op(TileElem e) { return e == TILE_ELEM_BF16 ? TILE_MOP_VLDBF : TILE_MOP_VLD; }
static int store_op(TileElem e) { return e == TILE_ELEM_BF16 ? TILE_MOP_VSTBF : TILE_MOP_VST; }

/* nblocks blocks of `tiles` tiles each, holding `elems` elements per block (the last
 * tile of a short block is partly padding in VMEM only). */
static void convert_blocks(TileLowerCtx *cx, Convert *c, int64_t first_elem, int64_t nblocks,
                           int64_t tiles, int64_t elems) {
  TileMir *mir = cx->mir;
  int64_t ebi = elem_bytes(&c->src), ebo = elem_bytes(&c->dst);
  TileDmaShape in_shape = {.count0 = elems * ebi, .count1 = 1, .count2 = 1};
  TileDmaShape out_shape = {.count0 = elems * ebo, .count1 = 1, .count2 = 1};
  TileDmaSite in = tile_dma_site(cx, c->src.buf, first_elem * ebi, c->vin, 0, in_shape);
  TileDmaSite out = tile_dma_site(cx, c->vout, 0, c->dst.buf, first_elem * ebo, out_shape);
  int32_t src_addr = -1, dst_addr = -1;
  if (nblocks > 1) {
    src_addr = tile_mir_sreg(mir);
    dst_addr = tile_mir_sreg(mir);
    TileMirInst li = tile_mir_inst(TILE_MOP_LI, src_addr, 0, 0, 0, (int32_t)(first_elem * ebi));
    li.imm_buf = c->src.buf;
    tile_mir_add(mir, li);
    li = tile_mir_inst(TILE_MOP_LI, dst_addr, 0, 0, 0, (int32_t)(first_elem * ebo));
    li.imm_buf = c->dst.buf;
    tile_mir_add(mir, li);
    tile_mir_loop_begin(mir, (int32_t)nblocks, 0);
  }
  tile_dma_issue(cx, &in, src_addr, 0, -1, 0);
  tile_dma_wait(cx, &in, 0, 0);
  int32_t a_in = tile_mir_sreg(mir), a_out = tile_mir_sreg(mir);
  TileMirInst li = tile_mir_inst(TILE_MOP_LI, a_in, 0, 0, 0, 0);
  li.imm_buf = c->vin;
  tile_mir_add(mir, li);
  li = tile_mir_inst(TILE_MOP_LI, a_out, 0, 0, 0, 0);
  li.imm_buf = c->vout;
  tile_mir_add(mir, li);
  tile_mir_loop_begin(mir, (int32_t)tiles, 0);
  int32_t v = tile_mir_vreg(mir);
  TileMirInst ld = tile_mir_inst(load_op((TileElem)c->src.elem), v, a_in, c->stride_in, 0, 0);
  tile_mir_mem(&ld, c->vin, TILE_MIR_READ, 0);
  tile_mir_add(mir, ld);
  int32_t r = tile_ew_emit(cx, c->op, &v);
  TileMirInst st = tile_mir_inst(store_op((TileElem)c->dst.elem), r, a_out, c->stride_out, 0, 0);
  tile_mir_mem(&st, c->vout, TILE_MIR_WRITE, 0);
  tile_mir_add(mir, st);
  tile_mir_add(mir, tile_mir_inst(TILE_MOP_ADDI, a_in, a_in, 0, 0, (int32_t)(c->tile_elems * ebi)));
  tile_mir_add(mir, tile_mir_inst(TILE_MOP_ADDI, a_out, a_out, 0, 0, (int32_t)(c->tile_elems * ebo)));
  tile_mir_loop_end(mir);
  tile_dma_issue(cx, &out, -1, 0, dst_addr, 0);
  tile_dma_wait(cx, &out, 0, 0);
  if (nblocks > 1) {
    tile_mir_add(mir, tile_mir_inst(TILE_MOP_ADDI, src_addr, src_addr, 0, 0, (int32_t)(elems * ebi)));
    tile_mir_add(mir, tile_mir_inst(TILE_MOP_ADDI, dst_addr, dst_addr, 0, 0, (int32_t)(elems * ebo)));
    tile_mir_loop_end(mir);
  }
}

static bool gen_convert(TileLowerCtx *cx, const TileOp *op) {
  const TileTarget *t = cx->target;
  Convert c = {.op = op};
  c.src = tile_lower_tensor(cx, op->opnd[0].v);
  c.dst = tile_lower_tensor(cx, op->res[0]);
  if (!tile_ew_supported(op))
    return tile_lower_error(cx, op, "no vector code converts %s to %s",
                            tile_elem_name((TileElem)c.src.elem), tile_elem_name((TileElem)c.dst.elem));
  int64_t numel = c.src.bytes / elem_bytes(&c.src);
  if (numel == 0) return true;
  c.tile_elems = (int64_t)t->vreg_sublanes * t->vreg_lanes;
  int64_t ntiles = (numel + c.tile_elems - 1) / c.tile_elems;
  int64_t block_tiles = ntiles < CONVERT_BLOCK_TILES ? ntiles : CONVERT_BLOCK_TILES;
  int64_t block_elems = block_tiles * c.tile_elems;
  if (c.src.bytes > INT32_MAX || c.dst.bytes > INT32_MAX)
    return tile_lower_error(cx, op, "tensors of 2 GiB or more are not converted");
  TileMir *mir = cx->mir;
  c.vin = tile_mir_buffer(mir, "convert.in", TILE_SPACE_VMEM, block_elems * elem_bytes(&c.src), 1, 64);
  c.vout = tile_mir_buffer(mir, "convert.out", TILE_SPACE_VMEM, block_elems * elem_bytes(&c.dst), 1, 64);
  c.stride_in = tile_mir_sreg(mir);
  c.stride_out = tile_mir_sreg(mir);
  tile_mir_add(mir, tile_mir_inst(TILE_MOP_LI, c.stride_in, 0, 0, 0,
                                  (int32_t)(t->vreg_lanes * elem_bytes(&c.src))));
  tile_mir_add(mir, tile_mir_inst(TILE_MOP_LI, c.stride_out, 0, 0, 0,
                                  (int32_t)(t->vreg_lanes * elem_bytes(&c.dst))));
  int64_t full = numel / block_elems, rest = numel - full * block_elems;
  if (full > 0) convert_blocks(cx, &c, 0, full, block_tiles, block_elems);
  if (rest > 0)
    convert_blocks(cx, &c, full * block_elems, 1, (rest + c.tile_elems - 1) / c.tile_elems, rest);
  return true;
}

typedef bool LayoutFn(TileLowerCtx *cx, const TileOp *op);

static LayoutFn *const layout_ops[TILE_OP_COUNT] = {
    [TILE_OP_RESHAPE] = gen_reshape,         [TILE_OP_TRANSPOSE] = gen_transpose,
    [TILE_OP_SLICE] = gen_slice,             [TILE_OP_CONCATENATE] = gen_concatenate,
    [TILE_OP_CONVERT] = gen_convert,         [TILE_OP_RING_SLICE] = tile_gen_ring_slice,
    [TILE_OP_RING_CONCAT] = tile_gen_ring_concat,
};

bool tile_gen_layout(TileLowerCtx *cx, const TileGroup *g) {
  TileMir *mir = cx->mir;
  for (int32_t i = 0; i < g->nops; i++) {
    const TileOp *op = g->ops[i];
    LayoutFn *fn = op->kind < TILE_OP_COUNT ? layout_ops[op->kind] : NULL;
    if (!fn) return tile_lower_error(cx, op, "not a layout op");
    tile_mir_set_source(mir, tile_op_name((TileOpKind)op->kind), op->loc);
    if (!fn(cx, op)) return false;
  }
  return true;
}
