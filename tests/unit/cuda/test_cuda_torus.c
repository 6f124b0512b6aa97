/* Torus programs on one GPU without a GPU: the program a mesh function emits has the
 * collective steps it should (between the right launches, with its reduce kernel); the
 * plan of every collective, run by the host interpreter on random data, gives what a
 * reference written here from the ops' definitions gives (exactly: data are small
 * integers, so sums are exact in any order), on 1x4, 2x2, 4x4 and 2x2x2 meshes, with
 * and without wraparound, for add, max and min, and permutes along a cycle through two
 * axes and in halves (on 2x4, 4x2 and 3x4 too); the checker finds every two steps that
 * touch the same bytes ordered by streams and events; the plan is the same every time;
 * and with the VLIW target's tile as the padding granule, f32 and bf16 sums of random
 * reals add in the emulator's order: the bits are the emulator's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda_fixture.h"
#include "tile/cuda_torus.h"
#include "../vliw/compile_fixture.h"

/* ---- the cases ---- */

enum { MAXC = 64 };

typedef struct Case {
  const char *torus;      /* "2x2" */
  const char *op;         /* all_reduce, all_gather, ... */
  const char *axes;       /* "x, y" */
  const char *elem;       /* f32, bf16, i32 */
  const char *kind;       /* reduce kind or NULL */
  int rank;
  int64_t dims[3];        /* the operand */
  int dim, concat_dim;    /* all_gather / reduce_scatter dim; all_to_all split, concat */
  int shift;
  const char *cycle;      /* collective_permute's cycle axis, or NULL */
  int halves;
} Case;

typedef struct Mesh {
  int rank, dims[3], nchips;
} Mesh;

static Mesh mesh_of(const char *torus) {
  Mesh m = {0};
  const char *s = torus;
  while (*s) {
    m.dims[m.rank++] = (int)strtol(s, (char **)&s, 10);
    if (*s == 'x') s++;
  }
  m.nchips = 1;
  for (int k = 0; k < m.rank; k++) m.nchips *= m.dims[k];
  return m;
}

static int axis_dim(char name) { return name - 'x'; }

/* The axes of a case as torus dims, in order. */
static int axes_of(const Case *c, int *dims) {
  int n = 0;
  for (const char *s = c->axes; *s; s++)
    if (*s >= 'x' && *s <= 'z') dims[n++] = axis_dim(*s);
  return n;
}

static int64_t coordinate(const Mesh *m, int chip, int dim) {
  int stride = 1;
  for (int d = dim + 1; d < m->rank; d++) stride *= m->dims[d];
  return chip / stride % m->dims[dim];
}

/* The chip's rank over the axes (first major) and the members of its group in rank
 * order. */
static int group_of(const Mesh *m, const int *ax, int nax, int chip, int *members) {
  int P = 1, rank = 0;
  for (int k = 0; k < nax; k++) {
    P *= m->dims[ax[k]];
    rank = rank * m->dims[ax[k]] + (int)coordinate(m, chip, ax[k]);
  }
  for (int r = 0; r < P; r++) {
    int id = chip, rest = r;
    for (int k = nax - 1; k >= 0; k--) {
      int stride = 1;
      for (int d = ax[k] + 1; d < m->rank; d++) stride *= m->dims[d];
      int want = rest % m->dims[ax[k]];
      rest /= m->dims[ax[k]];
      id += (want - (int)coordinate(m, chip, ax[k])) * stride;
    }
    members[r] = id;
  }
  return rank;
}

static int group_size(const Mesh *m, const int *ax, int nax) {
  int P = 1;
  for (int k = 0; k < nax; k++) P *= m->dims[ax[k]];
  return P;
}

static void out_dims(const Case *c, int P, int64_t *out) {
  memcpy(out, c->dims, sizeof c->dims);
  if (!strcmp(c->op, "all_gather")) out[c->dim] *= P;
  if (!strcmp(c->op, "reduce_scatter")) out[c->dim] /= P;
  if (!strcmp(c->op, "all_to_all")) {
    out[c->dim] /= P;
    out[c->concat_dim] *= P;
  }
}

static void type_text(char *buf, size_t n, int rank, const int64_t *dims, const char *elem) {
  size_t k = (size_t)snprintf(buf, n, "tensor<");
  for (int i = 0; i < rank; i++) k += (size_t)snprintf(buf + k, n - k, "%lldx", (long long)dims[i]);
  snprintf(buf + k, n - k, "%s>", elem);
}

static char *source_of(const Case *c) {
  Mesh m = mesh_of(c->torus);
  int ax[3], nax = axes_of(c, ax);
  int64_t od[3];
  out_dims(c, group_size(&m, ax, nax), od);
  char tin[96], tout[96], attrs[160];
  type_text(tin, sizeof tin, c->rank, c->dims, c->elem);
  type_text(tout, sizeof tout, c->rank, od, c->elem);
  if (!strcmp(c->op, "all_reduce"))
    snprintf(attrs, sizeof attrs, "kind = %s, axes = [%s]", c->kind, c->axes);
  else if (!strcmp(c->op, "reduce_scatter"))
    snprintf(attrs, sizeof attrs, "kind = %s, dim = %d, axes = [%s]", c->kind, c->dim, c->axes);
  else if (!strcmp(c->op, "all_gather"))
    snprintf(attrs, sizeof attrs, "dim = %d, axes = [%s]", c->dim, c->axes);
  else if (!strcmp(c->op, "all_to_all"))
    snprintf(attrs, sizeof attrs, "split_dim = %d, concat_dim = %d, axes = [%s]", c->dim,
             c->concat_dim, c->axes);
  else snprintf(attrs, sizeof attrs, "axis = %s, shift = %d%s%s%s", c->axes, c->shift,
                c->cycle ? ", cycle = " : "", c->cycle ? c->cycle : "",
                c->halves ? ", halves = 1" : "");
  static const char *names[] = {"x", "x, y", "x, y, z"};
  char *src = malloc(1024);
  snprintf(src, 1024, "mesh @m = torus<%s>(%s)\n"
           "func @f(%%a: %s) -> %s attributes {mesh = @m} {\n"
           "  %%y = %s %%a {%s} : %s\n  return %%y\n}\n",
           c->torus, names[m.rank - 1], tin, tout, c->op, attrs, tout);
  return src;
}

/* ---- the reference ---- */

static int64_t stride_of(const Mesh *m, int dim) {
  int64_t stride = 1;
  for (int d = dim + 1; d < m->rank; d++) stride *= m->dims[d];
  return stride;
}

/* The place of chip (i, j) of an x-by-y grid on a permute's cycle, as ops.h defines it
 * (written out here, not taken from ir/module.c). */
static int64_t cycle_pos(int64_t x, int64_t y, int64_t i, int64_t j) {
  if (y == 1) return i;
  if (x == 1) return j;
  if (x % 2) return y % 2 ? -1 : cycle_pos(y, x, j, i);
  if (i == 0) return j;
  if (j == 0) return x * y - i;
  return y + (i - 1) * (y - 1) + (i % 2 ? y - 1 - j : j - 1);
}

/* The chip at position q of the permute ring of chip: along torus dim a, or along the
 * cycle through dims a x b (b < 0: none). */
static int permute_peer(const Mesh *m, int chip, int a, int b, int64_t q) {
  const int64_t x = m->dims[a], y = b >= 0 ? m->dims[b] : 1;
  const int64_t ci = coordinate(m, chip, a), cj = b >= 0 ? coordinate(m, chip, b) : 0;
  q = ((q % (x * y)) + x * y) % (x * y);
  for (int64_t i = 0; i < x; i++)
    for (int64_t j = 0; j < y; j++)
      if (cycle_pos(x, y, i, j) == q)
        return (int)(chip + (i - ci) * stride_of(m, a) + (b >= 0 ? (j - cj) * stride_of(m, b) : 0));
  return -1;
}

typedef struct Around {
  int64_t outer, mid, inner;
} Around;

static Around around(int rank, const int64_t *dims, int dim) {
  Around a = {1, dims[dim], 1};
  for (int i = 0; i < dim; i++) a.outer *= dims[i];
  for (int i = dim + 1; i < rank; i++) a.inner *= dims[i];
  return a;
}

static TileCudaReduceKind kind_of(const char *k) {
  if (!k) return TILE_CUDA_REDUCE_NONE;
  if (!strcmp(k, "add")) return TILE_CUDA_REDUCE_ADD;
  if (!strcmp(k, "max")) return TILE_CUDA_REDUCE_MAX;
  if (!strcmp(k, "min")) return TILE_CUDA_REDUCE_MIN;
  return TILE_CUDA_REDUCE_MUL;
}

/* in: nchips blocks of nin elements; out: nchips blocks of nout. */
static void reference(const Case *c, TileElem el, int es, const uint8_t *in, int64_t nin,
                      uint8_t *out, int64_t nout) {
  Mesh m = mesh_of(c->torus);
  int ax[3], nax = axes_of(c, ax), members[MAXC];
  const int P = group_size(&m, ax, nax);
  int64_t od[3];
  out_dims(c, P, od);
  uint8_t *whole = malloc((size_t)(nin * es));
  for (int chip = 0; chip < m.nchips; chip++) {
    int rank = group_of(&m, ax, nax, chip, members);
    uint8_t *y = out + (size_t)chip * (size_t)(nout * es);
    if (!strcmp(c->op, "all_reduce") || !strcmp(c->op, "reduce_scatter")) {
      memcpy(whole, in + (size_t)members[0] * (size_t)(nin * es), (size_t)(nin * es));
      for (int r = 1; r < P; r++)
        tile_cuda_torus_combine(el, kind_of(c->kind), whole,
                                in + (size_t)members[r] * (size_t)(nin * es), nin);
      if (!strcmp(c->op, "all_reduce")) {
        memcpy(y, whole, (size_t)(nin * es));
      } else { /* slice `rank` of dim */
        Around a = around(c->rank, od, c->dim);
        int64_t run = a.mid * a.inner;
        for (int64_t o = 0; o < a.outer; o++)
          memcpy(y + o * run * es, whole + (o * P + rank) * run * es, (size_t)(run * es));
      }
    } else if (!strcmp(c->op, "all_gather")) {
      Around a = around(c->rank, c->dims, c->dim);
      int64_t run = a.mid * a.inner;
      for (int r = 0; r < P; r++)
        for (int64_t o = 0; o < a.outer; o++)
          memcpy(y + (o * P + r) * run * es,
                 in + (size_t)members[r] * (size_t)(nin * es) + o * run * es, (size_t)(run * es));
    } else if (!strcmp(c->op, "all_to_all")) {
      /* y = concat over r (along concat) of split(x[members[r]], P, split)[rank] */
      Around s = around(c->rank, c->dims, c->dim);
      int64_t blk_mid = s.mid / P, run_s = blk_mid * s.inner, blk = nin / P;
      int64_t bd[3];
      memcpy(bd, od, sizeof bd);
      bd[c->concat_dim] /= P;
      Around o = around(c->rank, bd, c->concat_dim);
      int64_t run_c = o.mid * o.inner;
      uint8_t *piece = malloc((size_t)(blk * es));
      for (int r = 0; r < P; r++) {
        const uint8_t *x = in + (size_t)members[r] * (size_t)(nin * es);
        for (int64_t q = 0; q < s.outer; q++) /* block `rank` of x, contiguous */
          memcpy(piece + q * run_s * es, x + (q * s.mid + rank * blk_mid) * s.inner * es,
                 (size_t)(run_s * es));
        for (int64_t q = 0; q < o.outer; q++)
          memcpy(y + (q * P + r) * run_c * es, piece + q * run_c * es, (size_t)(run_c * es));
      }
      free(piece);
    } else { /* collective_permute: from the chip shift positions back; with halves, the
              * second half of dim 0 from the chip shift positions on */
      int b = c->cycle ? axis_dim(c->cycle[0]) : -1;
      int64_t q = cycle_pos(m.dims[ax[0]], b >= 0 ? m.dims[b] : 1, coordinate(&m, chip, ax[0]),
                            b >= 0 ? coordinate(&m, chip, b) : 0);
      int64_t half = c->halves ? nin / 2 * es : nin * es;
      int back = permute_peer(&m, chip, ax[0], b, q - c->shift);
      int on = permute_peer(&m, chip, ax[0], b, q + c->shift);
      memcpy(y, in + (size_t)back * (size_t)(nin * es), (size_t)half);
      memcpy(y + half, in + (size_t)on * (size_t)(nin * es) + half, (size_t)(nin * es - half));
    }
  }
  free(whole);
}

/* ---- running a case ---- */

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Small integers in the element type (exact sums in any order). */
static void fill(TileElem el, uint8_t *p, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    int v = (int)(rnd() % 13) - 6;
    float f = (float)v;
    if (el == TILE_ELEM_F32) memcpy(p + 4 * i, &f, 4);
    else if (el == TILE_ELEM_I32) memcpy(p + 4 * i, &v, 4);
    else { /* bf16: the top half of the f32 (exact for small integers) */
      uint32_t u;
      memcpy(&u, &f, 4);
      uint16_t h = (uint16_t)(u >> 16);
      memcpy(p + 2 * i, &h, 2);
    }
  }
}

static int find_buf(const TileCudaProgram *p, const char *name) {
  for (int i = 0; i < p->nbufs; i++)
    if (!strcmp(p->bufs[i].name, name)) return i;
  return -1;
}

/* Plans the emitted program p with wraparound on every axis or none. */
static void plan_wrapped(const TileCudaProgram *p, bool wrap, TileCudaTorusPlan *plan) {
  TileCudaTorusOptions o;
  tile_cuda_torus_options_default(&o);
  for (int k = 0; k < TILE_MAX_RANK; k++) o.wrap[k] = wrap;
  TileDiag d;
  tile_diag_init(&d, stderr, "plan", NULL, 0);
  REQUIRE(tile_cuda_torus_plan(p, &o, plan, &d));
}

/* Emits the case, plans it (wrap on every axis or none), checks the order, runs it on
 * the host and compares every chip's result with the reference. */
static void run_case(const Case *c, bool wrap) {
  char *src = source_of(c);
  Emitted e;
  emit(src, "sm_90", &e);
  if (!e.ok) fprintf(stderr, "%s\n%s", src, e.msgs);
  REQUIRE(e.ok);
  TileCudaTorusPlan plan;
  plan_wrapped(&e.p, wrap, &plan);
  TileDiag d;
  tile_diag_init(&d, stderr, "plan", NULL, 0);
  CHECK(tile_cuda_torus_check(&e.p, &plan, &d));
  const int a = find_buf(&e.p, "a"), y = find_buf(&e.p, "result");
  REQUIRE(a >= 0 && y >= 0);
  const TileElem el = (TileElem)e.p.colls[0].elem;
  const int es = (tile_elem_bits(el) + 7) / 8;
  const int64_t nin = e.p.bufs[a].bytes / es, nout = e.p.bufs[y].bytes / es;
  uint8_t **mem = tile_cuda_torus_host_alloc(&e.p, &plan);
  REQUIRE(mem);
  uint8_t *in = malloc((size_t)(plan.nchips * nin * es) + 1);
  uint8_t *want = malloc((size_t)(plan.nchips * nout * es) + 1);
  rng_state = 0x9e3779b97f4a7c15ull ^ (uint64_t)(nin * 131 + plan.nchips);
  fill(el, in, plan.nchips * nin);
  for (int ch = 0; ch < plan.nchips; ch++)
    memcpy(mem[a] + (size_t)ch * (size_t)plan.bufs[a].stride, in + (size_t)(ch * nin * es),
           (size_t)(nin * es));
  CHECK(tile_cuda_torus_host_run(&e.p, &plan, mem, NULL, NULL, &d));
  reference(c, el, es, in, nin, want, nout);
  int bad_chips = 0;
  for (int ch = 0; ch < plan.nchips; ch++)
    bad_chips += memcmp(mem[y] + (size_t)ch * (size_t)plan.bufs[y].stride,
                        want + (size_t)(ch * nout * es), (size_t)(nout * es)) != 0;
  if (bad_chips) fprintf(stderr, "%s(wrap %d): %d chips differ\n", src, wrap, bad_chips);
  CHECK_EQ(0, bad_chips);
  free(in);
  free(want);
  tile_cuda_torus_host_free(&plan, mem);
  tile_cuda_torus_plan_free(&plan);
  done(&e);
  free(src);
}

static const Case cases[] = {
    /* all_reduce: one element (4 bytes) to 2 MiB per chip */
    {"1x4", "all_reduce", "y", "f32", "add", 1, {1}},
    {"2x2", "all_reduce", "x, y", "f32", "add", 2, {3, 5}},
    {"2x2", "all_reduce", "y", "bf16", "max", 2, {64, 128}},
    {"4x4", "all_reduce", "x, y", "f32", "add", 2, {37, 11}},
    {"4x4", "all_reduce", "x", "i32", "min", 2, {16, 128}},
    {"2x2x2", "all_reduce", "x, y, z", "f32", "max", 2, {8, 100}},
    {"2x2x2", "all_reduce", "z, x", "bf16", "add", 1, {1000}},
    {"2x2", "all_reduce", "x, y", "f32", "add", 2, {512, 1024}},
    {"4x4", "all_reduce", "y, x", "i32", "add", 2, {256, 1024}},
    /* reduce_scatter */
    {"1x4", "reduce_scatter", "y", "f32", "add", 2, {4, 3}, 0},
    {"2x2", "reduce_scatter", "x, y", "f32", "min", 2, {8, 12}, 1},
    {"4x4", "reduce_scatter", "x, y", "bf16", "add", 2, {16, 160}, 1},
    {"2x2x2", "reduce_scatter", "z, y", "i32", "max", 3, {2, 8, 6}, 1},
    {"2x2", "reduce_scatter", "y", "f32", "add", 2, {1024, 512}, 0},
    /* all_gather */
    {"1x4", "all_gather", "y", "f32", "", 1, {1}, 0},
    {"2x2", "all_gather", "x, y", "bf16", "", 2, {3, 5}, 0},
    {"2x2", "all_gather", "y, x", "f32", "", 2, {1, 7}, 1},
    {"4x4", "all_gather", "x, y", "f32", "", 2, {6, 64}, 1},
    {"2x2x2", "all_gather", "x, y, z", "i32", "", 3, {2, 3, 4}, 1},
    {"4x4", "all_gather", "y", "f32", "", 2, {256, 512}, 0},
    /* all_to_all */
    {"1x4", "all_to_all", "y", "f32", "", 2, {8, 3}, 0, 1},
    {"2x2", "all_to_all", "x, y", "bf16", "", 2, {4, 8}, 1, 0},
    {"4x4", "all_to_all", "x, y", "f32", "", 2, {32, 5}, 0, 1},
    {"2x2x2", "all_to_all", "x, y, z", "i32", "", 3, {8, 2, 3}, 0, 2},
    {"2x2", "all_to_all", "x", "f32", "", 2, {512, 512}, 1, 0},
    /* collective_permute */
    {"1x4", "collective_permute", "y", "f32", "", 1, {5}, 0, 0, 1},
    {"1x4", "collective_permute", "y", "bf16", "", 2, {3, 4}, 0, 0, 3},
    {"4x4", "collective_permute", "x", "i32", "", 1, {64}, 0, 0, 2},
    {"2x2x2", "collective_permute", "z", "f32", "", 2, {2, 2}, 0, 0, -1},
    {"4x4", "collective_permute", "y", "f32", "", 2, {512, 512}, 0, 0, 0},
    /* ... along the cycle through x and y (positions tile_mesh_cycle_pos), in halves */
    {"2x2", "collective_permute", "x", "f32", "", 1, {6}, 0, 0, 1, "y"},
    {"2x4", "collective_permute", "x", "i32", "", 2, {4, 3}, 0, 0, -1, "y"},
    {"4x2", "collective_permute", "x", "bf16", "", 2, {2, 8}, 0, 0, 2, "y", 1},
    {"3x4", "collective_permute", "x", "f32", "", 2, {4, 5}, 0, 0, 1, "y", 1},
    {"3x4", "collective_permute", "x", "i32", "", 1, {7}, 0, 0, 5, "y"},
    {"4x4", "collective_permute", "y", "f32", "", 2, {8, 4}, 0, 0, -3, "x", 1},
    {"2x2x2", "collective_permute", "z", "i32", "", 2, {2, 3}, 0, 0, 3, "x", 1},
    {"1x4", "collective_permute", "x", "f32", "", 1, {3}, 0, 0, 1, "y"},
    {"2x4", "collective_permute", "x", "f32", "", 1, {5}, 0, 0, 8, "y"},
    {"1x4", "collective_permute", "y", "bf16", "", 2, {4, 3}, 0, 0, 1, NULL, 1},
    {"4x4", "collective_permute", "x", "f32", "", 1, {64}, 0, 0, 2, NULL, 1},
    {"2x2x2", "collective_permute", "y", "i32", "", 2, {2, 2}, 0, 0, 0, NULL, 1},
};

TEST(cuda_torus, every_collective_matches_the_reference) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run_case(&cases[i], true);
    run_case(&cases[i], false);
  }
}

/* ---- emission ---- */

static const char *megatron =
    "mesh @m = torus<2x2>(x, y)\n"
    "func @mlp(%x: tensor<8x256xbf16> {shard = [y, -]},\n"
    "          %w1: tensor<256x512xbf16> {shard = [-, x]},\n"
    "          %w2: tensor<512x256xbf16> {shard = [x, -]}) -> tensor<8x256xbf16>\n"
    "    attributes {mesh = @m} {\n"
    "  %h = matmul %x, %w1 {shard = [y, x]} : tensor<8x512xbf16>\n"
    "  %g = gelu %h {shard = [y, x]} : tensor<8x512xbf16>\n"
    "  %p = matmul %g, %w2 : tensor<8x256xf32>\n"
    "  %y = all_reduce %p {kind = add, axes = [x], shard = [y, -]} : tensor<8x256xf32>\n"
    "  %r = convert %y {shard = [y, -]} : tensor<8x256xbf16>\n"
    "  return %r\n"
    "}\n";

TEST(cuda_torus, global_program_is_partitioned_with_its_collective_between_launches) {
  Emitted e;
  emit(megatron, "sm_90", &e);
  if (!e.ok) fprintf(stderr, "%s", e.msgs);
  REQUIRE(e.ok);
  CHECK_EQ(2, e.p.torus_rank);
  CHECK_EQ(2, e.p.torus[0]);
  CHECK_EQ(2, e.p.torus[1]);
  REQUIRE(e.p.ncolls == 1);
  const TileCudaCollective *c = &e.p.colls[0];
  CHECK_EQ(TILE_CUDA_COLL_ALL_REDUCE, c->kind);
  CHECK_EQ(TILE_CUDA_REDUCE_ADD, c->reduce);
  CHECK_EQ(TILE_ELEM_F32, c->elem);
  CHECK_EQ(1, c->naxes);
  CHECK_EQ(0, c->axes[0].dim);
  CHECK_EQ(2, c->axes[0].size);
  /* Per chip: x is [4, 256] (y splits the batch), the partial sums [4, 256] f32. */
  CHECK_EQ(4, c->in_dims[0]);
  CHECK_EQ(256, c->in_dims[1]);
  int x = find_buf(&e.p, "x");
  REQUIRE(x >= 0);
  CHECK_EQ(4 * 256 * 2, e.p.bufs[x].bytes);
  /* The matmuls run before it, the convert after. */
  CHECK(c->at_launch >= 1 && c->at_launch < e.p.nlaunches);
  CHECK(strstr(e.p.launches[e.p.nlaunches - 1].kernel, "copy") == NULL);
  CHECK_STREQ("tc_coll_add_f32", c->reduce_kernel);
  CHECK(strstr(e.p.source, "void __launch_bounds__(256) tc_coll_add_f32(float *dst") != NULL);
  CHECK(e.p.bufs[c->src].bytes == 4 * 256 * 4 && e.p.bufs[c->dst].bytes == 4 * 256 * 4);
  /* The plan: 4 chips, every launch once per chip, the collective's steps in between. */
  TileCudaTorusPlan plan;
  TileDiag d;
  tile_diag_init(&d, stderr, "plan", NULL, 0);
  REQUIRE(tile_cuda_torus_plan(&e.p, NULL, &plan, &d));
  CHECK_EQ(4, plan.nchips);
  int launches = 0, first_coll = plan.coll_first[0], before = 0;
  for (int i = 0; i < plan.nsteps; i++)
    if (plan.steps[i].kind == TILE_TORUS_LAUNCH) {
      launches++;
      before += i < first_coll;
    }
  CHECK_EQ(4 * e.p.nlaunches, launches);
  CHECK_EQ(4 * c->at_launch, before);
  /* An axis of 2: one ring each way would share the one link pair, so one direction;
   * 1 step of reduce-scatter and 1 of all-gather, a copy each per chip. */
  CHECK_EQ(4 * 2 * (4 * 256 / 2) * 4, plan.coll_bytes[0]);
  CHECK(tile_cuda_torus_check(&e.p, &plan, &d));
  (void)nvrtc_compiles(&e); /* the reduce kernel compiles with the rest, where NVRTC is */
  tile_cuda_torus_plan_free(&plan);
  done(&e);
}

TEST(cuda_torus, collectives_in_a_chain_keep_their_order) {
  Emitted e;
  emit("mesh @m = torus<2x2>(x, y)\n"
       "func @f(%a: tensor<16x128xf32>) -> tensor<64x128xf32> attributes {mesh = @m} {\n"
       "  %b = add %a, %a : tensor<16x128xf32>\n"
       "  %s = all_reduce %b {kind = add, axes = [x]} : tensor<16x128xf32>\n"
       "  %t = all_reduce %s {kind = max, axes = [y]} : tensor<16x128xf32>\n"
       "  %g = all_gather %t {dim = 0, axes = [x, y]} : tensor<64x128xf32>\n"
       "  return %g\n}\n", "sm_90", &e);
  if (!e.ok) fprintf(stderr, "%s", e.msgs);
  REQUIRE(e.ok);
  REQUIRE(e.p.ncolls == 3);
  CHECK_EQ(1, e.p.nlaunches);
  for (int i = 0; i < 3; i++) CHECK_EQ(1, e.p.colls[i].at_launch);
  CHECK_EQ(e.p.colls[0].dst, e.p.colls[1].src);
  CHECK_EQ(e.p.colls[1].dst, e.p.colls[2].src);
  CHECK_STREQ("result", e.p.bufs[e.p.colls[2].dst].name);
  CHECK(strstr(e.p.source, "tc_coll_max_f32") != NULL);
  done(&e);
}

TEST(cuda_torus, refusals_are_located) {
  static const struct {
    const char *src, *msg;
  } cases[] = {
      {"mesh @m = torus<4x4>(dp = 2 on [0], tp = 2 on [0], y = 4 on [1])\n"
       "func @f(%a: tensor<8xf32>) -> tensor<8xf32> attributes {mesh = @m} {\n"
       "  %y = all_reduce %a {kind = add, axes = [tp]} : tensor<8xf32>\n  return %y\n}\n",
       "not one whole torus dimension"},
      {"mesh @m = torus<2x2>(x, y)\n"
       "func @f(%a: tensor<8xi8>) -> tensor<8xi8> attributes {mesh = @m} {\n"
       "  %y = all_reduce %a {kind = add, axes = [x]} : tensor<8xi8>\n  return %y\n}\n",
       "not i8 with 'add'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    Emitted e;
    emit(cases[i].src, "sm_90", &e);
    CHECK(!e.ok);
    CHECK(strstr(e.msgs, "t.tile:3:") != NULL);
    CHECK(strstr(e.msgs, cases[i].msg) != NULL);
    done(&e);
  }
}

/* ---- the plan itself ---- */

TEST(cuda_torus, plan_is_deterministic_and_its_order_is_checked) {
  Case c = {"4x4", "all_reduce", "x, y", "f32", "add", 2, {64, 64}};
  char *src = source_of(&c);
  Emitted e;
  emit(src, "sm_90", &e);
  REQUIRE(e.ok);
  TileDiag d;
  tile_diag_init(&d, stderr, "plan", NULL, 0);
  TileCudaTorusPlan p1, p2;
  REQUIRE(tile_cuda_torus_plan(&e.p, NULL, &p1, &d));
  REQUIRE(tile_cuda_torus_plan(&e.p, NULL, &p2, &d));
  CHECK_EQ(p1.nsteps, p2.nsteps);
  CHECK_EQ(p1.nevents, p2.nevents);
  CHECK(memcmp(p1.steps, p2.steps, (size_t)p1.nsteps * sizeof *p1.steps) == 0);
  /* 4x4, both axes of 4: two rotations, each both ways round (4 rings a level). Per
   * level 3 steps, each a copy, wait and reduce (or copy into place) per ring and chip. */
  int n[4] = {0};
  for (int i = 0; i < p1.nsteps; i++) n[p1.steps[i].kind]++;
  CHECK_EQ(2 * 2 * 3 * 4 * 16, n[TILE_TORUS_WAIT]);
  CHECK_EQ(2 * 3 * 4 * 16, n[TILE_TORUS_REDUCE]);
  /* Dropping a wait leaves a receive unordered with its send: the checker finds it. */
  int w = 0;
  while (p2.steps[w].kind != TILE_TORUS_WAIT) w++;
  memmove(&p2.steps[w], &p2.steps[w + 1], (size_t)(p2.nsteps - w - 1) * sizeof *p2.steps);
  p2.nsteps--;
  TileDiag quiet;
  tile_diag_init(&quiet, NULL, "plan", NULL, 0);
  CHECK(!tile_cuda_torus_check(&e.p, &p2, &quiet));
  CHECK(strstr(quiet.last, "unordered") != NULL);
  /* Without wraparound the closing step of each ring crosses the line. */
  TileCudaTorusOptions o;
  tile_cuda_torus_options_default(&o);
  o.wrap[0] = o.wrap[1] = false;
  TileCudaTorusPlan p3;
  REQUIRE(tile_cuda_torus_plan(&e.p, &o, &p3, &d));
  int longest = 0, longest_wrapped = 0;
  for (int i = 0; i < p3.nsteps; i++)
    longest = p3.steps[i].hops > longest ? p3.steps[i].hops : longest;
  for (int i = 0; i < p1.nsteps; i++)
    longest_wrapped = p1.steps[i].hops > longest_wrapped ? p1.steps[i].hops : longest_wrapped;
  CHECK_EQ(3, longest);
  CHECK_EQ(1, longest_wrapped);
  CHECK_EQ(p1.nsteps, p3.nsteps);
  tile_cuda_torus_plan_free(&p1);
  tile_cuda_torus_plan_free(&p2);
  tile_cuda_torus_plan_free(&p3);
  done(&e);
  free(src);
}

/* A permute along a cycle or in halves copies straight to its receivers, one copy per
 * chip and part, crossing the positions between them the short way round: a cycle
 * through two axes closes within the grid and needs no wraparound, one axis without it
 * is a line. */
TEST(cuda_torus, permute_along_a_cycle_or_in_halves_copies_straight_to_the_receiver) {
  static const struct {
    Case c;
    int copies, longest_line, longest_ring;
  } cases[] = {
      {{"2x4", "collective_permute", "x", "f32", "", 1, {8}, 0, 0, 1, "y"}, 8, 1, 1},
      {{"2x4", "collective_permute", "x", "f32", "", 1, {8}, 0, 0, 5, "y", 1}, 16, 3, 3},
      {{"4x4", "collective_permute", "y", "f32", "", 1, {8}, 0, 0, -7, "x", 1}, 32, 7, 7},
      {{"1x4", "collective_permute", "y", "f32", "", 1, {8}, 0, 0, 1, NULL, 1}, 8, 3, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *src = source_of(&cases[i].c);
    Emitted e;
    emit(src, "sm_90", &e);
    if (!e.ok) fprintf(stderr, "%s\n%s", src, e.msgs);
    REQUIRE(e.ok);
    for (int wrap = 0; wrap < 2; wrap++) {
      TileCudaTorusPlan plan;
      plan_wrapped(&e.p, wrap, &plan);
      int copies = 0, longest = 0;
      for (int s = 0; s < plan.nsteps; s++)
        if (plan.steps[s].kind == TILE_TORUS_COPY && plan.steps[s].event >= 0) {
          copies++;
          longest = plan.steps[s].hops > longest ? plan.steps[s].hops : longest;
        }
      CHECK_EQ(cases[i].copies, copies);
      CHECK_EQ(wrap ? cases[i].longest_ring : cases[i].longest_line, longest);
      CHECK_EQ((int64_t)plan.nchips * 8 * 4, plan.coll_bytes[0]);
      tile_cuda_torus_plan_free(&plan);
    }
    done(&e);
    free(src);
  }
}

TEST(cuda_torus, malformed_permutes_are_refused_by_the_plan) {
  Case c = {"3x4", "collective_permute", "x", "f32", "", 2, {3, 4}, 0, 0, 1, "y"};
  char *src = source_of(&c);
  Emitted e;
  emit(src, "sm_90", &e);
  REQUIRE(e.ok && e.p.ncolls == 1 && e.p.colls[0].cycle && e.p.colls[0].naxes == 2);
  static const char *const why[] = {"cycle and halves are 0 or 1",
                                    "takes one axis, and a second with cycle",
                                    "needs an even dim 0", "cycle needs an axis of even size"};
  for (int i = 0; i < 4; i++) {
    TileCudaCollective *k = &e.p.colls[0], saved = *k;
    int32_t torus = e.p.torus[1];
    if (i == 0) k->halves = 2;
    if (i == 1) k->cycle = 0;
    if (i == 2) k->halves = 1; /* dim 0 is 3 */
    if (i == 3) e.p.torus[1] = k->axes[1].size = 3;
    TileCudaTorusPlan plan;
    TileDiag quiet;
    tile_diag_init(&quiet, NULL, "plan", NULL, 0);
    CHECK(!tile_cuda_torus_plan(&e.p, NULL, &plan, &quiet));
    CHECK(strstr(quiet.last, "malformed collective") != NULL);
    CHECK(strstr(quiet.last, why[i]) != NULL);
    *k = saved;
    e.p.torus[1] = torus;
  }
  done(&e);
  free(src);
}

/* ---- against the emulator ---- */

/* f32 add of random reals: the ring order decides the rounding. With the tiny target's
 * vector tile as the granule, the plan adds in the VLIW schedule's order. (For small
 * operands the VLIW lowering may pick its latency-optimized schedules, the one-shot
 * all_reduce and the half-ring or line reduce_scatter on axes of more than 2 chips, which
 * sum in other orders; the sizes and meshes here are ones it runs as rings.) */
static void same_bits_as_emulator(const Case *c) {
  char *src = source_of(c);
  Mesh m = mesh_of(c->torus);
  TileTarget t;
  TileObject obj;
  REQUIRE(target_for("tiny", c->torus, &t));
  REQUIRE(compile_text(&t, src, NULL, NULL, 0, &obj));
  TileEmu *emu = emu_for(&obj, &t);
  REQUIRE(emu);
  Emitted e;
  emit(src, "sm_90", &e);
  REQUIRE(e.ok);
  const int a = find_buf(&e.p, "a"), y = find_buf(&e.p, "result");
  const bool bf = !strcmp(c->elem, "bf16");
  const int es = bf ? 2 : 4;
  const int64_t nin = e.p.bufs[a].bytes / es, nout = e.p.bufs[y].bytes / es;
  uint8_t *in = malloc((size_t)(m.nchips * nin * es)), *got = malloc((size_t)(m.nchips * nout * es));
  rng_state = 12345;
  for (int64_t i = 0; i < m.nchips * nin; i++) { /* reals in [-3, 3); bf16: f32's top half */
    float f = (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2.0 - 1.0) * 3.0f;
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t h = (uint16_t)(u >> 16);
    memcpy(in + i * es, bf ? (void *)&h : (void *)&f, (size_t)es);
  }
  CHECK(tile_emu_set_input(emu, "a", in, (size_t)(m.nchips * nin * es)));
  REQUIRE(emu_run(emu) == TILE_EMU_OK);
  CHECK(tile_emu_get_output(emu, "result", got, (size_t)(m.nchips * nout * es)));
  TileCudaTorusOptions o;
  tile_cuda_torus_options_default(&o);
  o.granule = (int64_t)t.vreg_sublanes * t.vreg_lanes;
  for (int k = 0; k < t.torus_rank; k++) o.wrap[k] = t.wrap[k];
  TileCudaTorusPlan plan;
  TileDiag d;
  tile_diag_init(&d, stderr, "plan", NULL, 0);
  REQUIRE(tile_cuda_torus_plan(&e.p, &o, &plan, &d));
  uint8_t **mem = tile_cuda_torus_host_alloc(&e.p, &plan);
  REQUIRE(mem);
  for (int ch = 0; ch < plan.nchips; ch++)
    memcpy(mem[a] + (size_t)ch * (size_t)plan.bufs[a].stride, in + ch * nin * es,
           (size_t)(nin * es));
  CHECK(tile_cuda_torus_host_run(&e.p, &plan, mem, NULL, NULL, &d));
  int bad = 0;
  for (int ch = 0; ch < plan.nchips; ch++)
    bad += memcmp(mem[y] + (size_t)ch * (size_t)plan.bufs[y].stride, got + ch * nout * es,
                  (size_t)(nout * es)) != 0;
  if (bad) fprintf(stderr, "%s: %d chips differ from the emulator\n", src, bad);
  CHECK_EQ(0, bad);
  tile_cuda_torus_host_free(&plan, mem);
  tile_cuda_torus_plan_free(&plan);
  done(&e);
  tile_emu_free(emu);
  tile_object_free(&obj);
  free(in);
  free(got);
  free(src);
}

/* bf16 partials are rounded to bf16 after every combine, on both: the same bits too. */
TEST(cuda_torus, sums_have_the_emulators_bits) {
  static const Case sums[] = {
      {"2x2", "all_reduce", "x, y", "f32", "add", 2, {16, 128}},
      {"4x4", "all_reduce", "x, y", "f32", "add", 2, {64, 256}},
      {"1x4", "all_reduce", "y", "f32", "add", 2, {64, 128}},
      {"2x2x2", "all_reduce", "x, y, z", "f32", "add", 2, {16, 128}},
      {"2x2x2", "reduce_scatter", "z, x", "f32", "add", 2, {64, 128}, 1},
      {"2x2", "all_reduce", "x, y", "bf16", "add", 2, {32, 256}},
      {"4x4", "all_reduce", "y", "bf16", "add", 2, {64, 256}},
      {"2x2x2", "reduce_scatter", "z, x", "bf16", "add", 2, {64, 128}, 1},
  };
  for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++) same_bits_as_emulator(&sums[i]);
}

TEST(cuda_torus, reduce_kernels_compile_for_every_type) {
  Emitted e;
  emit("mesh @m = torus<2x2>(x, y)\n"
       "func @f(%a: tensor<8xf32>, %b: tensor<8xbf16>, %c: tensor<8xf16>, %d: tensor<8xi32>,\n"
       "        %g: tensor<8xi64>)\n"
       "    -> (tensor<8xf32>, tensor<8xbf16>, tensor<8xf16>, tensor<8xi32>, tensor<8xi64>)\n"
       "    attributes {mesh = @m} {\n"
       "  %ya = all_reduce %a {kind = max, axes = [x]} : tensor<8xf32>\n"
       "  %yb = all_reduce %b {kind = add, axes = [y]} : tensor<8xbf16>\n"
       "  %yc = reduce_scatter %c {kind = min, dim = 0, axes = [x, y]} : tensor<2xf16>\n"
       "  %yd = all_reduce %d {kind = mul, axes = [x, y]} : tensor<8xi32>\n"
       "  %yg = all_reduce %g {kind = add, axes = [x]} : tensor<8xi64>\n"
       "  %zc = all_gather %yc {dim = 0, axes = [x, y]} : tensor<8xf16>\n"
       "  return %ya, %yb, %zc, %yd, %yg\n}\n", "sm_90", &e);
  if (!e.ok) fprintf(stderr, "%s", e.msgs);
  REQUIRE(e.ok);
  CHECK_EQ(6, e.p.ncolls);
  static const char *const kernels[] = {"tc_coll_max_f32", "tc_coll_add_bf16", "tc_coll_min_f16",
                                        "tc_coll_mul_i32", "tc_coll_add_i64"};
  for (int i = 0; i < 5; i++) CHECK(strstr(e.p.source, kernels[i]) != NULL);
  CHECK(strstr(e.p.source, "tc_f2bf(r)") != NULL);
  (void)nvrtc_compiles(&e);
  done(&e);
}
