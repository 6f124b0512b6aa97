/* The Tile IR: modules, meshes, functions and kernels, blocks, ops, SSA values,
 * types and attributes.
 *
 * Ownership: a TileModule owns an arena; every node, string and array reachable
 * from it lives there and dies with tile_module_free(). Nothing is freed one by one,
 * so passes may drop nodes without bookkeeping.
 *
 * Structure: a module holds meshes and functions. A function (`func`, tensor level)
 * or kernel (`kernel`, tile level) has one body block whose arguments are the
 * parameters. An op holds operands (uses of values, optionally with an index list
 * for buffer accesses), results, named attributes and regions; each region is
 * exactly one block (loops and branches are structured). */
#ifndef TILE_IR_H
#define TILE_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TILE_MAX_RANK 8

/* A well-mixed hash of a pointer, for the open-addressing maps keyed on IR objects
 * (values, ops) that passes and backends keep. */
static inline size_t tile_hash_ptr(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (size_t)x;
}

/* ---- element types: X(ENUM, name, bits, is_float) ---- */
#define TILE_ELEMS(X)                 \
  X(I1, "i1", 1, 0)                   \
  X(I8, "i8", 8, 0)                   \
  X(I32, "i32", 32, 0)                \
  X(I64, "i64", 64, 0)                \
  X(F32, "f32", 32, 1)                \
  X(BF16, "bf16", 16, 1)              \
  X(F16, "f16", 16, 1)                \
  X(F8E4M3FN, "f8E4M3FN", 8, 1)       \
  X(F8E5M2, "f8E5M2", 8, 1)

typedef enum TileElem {
  TILE_ELEM_NONE = 0,
#define X(e, n, b, f) TILE_ELEM_##e,
  TILE_ELEMS(X)
#undef X
  TILE_ELEM_COUNT
} TileElem;

const char *tile_elem_name(TileElem e);
int tile_elem_bits(TileElem e);
bool tile_elem_is_float(TileElem e);
TileElem tile_elem_lookup(const char *name, size_t len); /* NONE if unknown */

/* ---- memory spaces: X(ENUM, name) ---- */
#define TILE_SPACES(X) X(HBM, "hbm") X(VMEM, "vmem") X(SMEM, "smem")

typedef enum TileSpace {
#define X(e, n) TILE_SPACE_##e,
  TILE_SPACES(X)
#undef X
  TILE_SPACE_COUNT
} TileSpace;

const char *tile_space_name(TileSpace s);

/* ---- types (plain values, compared with tile_type_eq) ----
 *   scalar  i32                    kind SCALAR, elem
 *   tensor  tensor<8x128xbf16>     kind TENSOR, elem, rank, dims (rank 0 allowed)
 *   buffer  vmem<2x8x128xf32>      kind BUFFER, space, elem, rank >= 1, dims
 *   sem     a semaphore            kind SEM
 *   token   a DMA token            kind TOKEN */
typedef enum TileTypeKind {
  TILE_TY_NONE = 0,
  TILE_TY_SCALAR,
  TILE_TY_TENSOR,
  TILE_TY_BUFFER,
  TILE_TY_SEM,
  TILE_TY_TOKEN,
} TileTypeKind;

typedef struct TileType {
  uint8_t kind;  /* TileTypeKind */
  uint8_t elem;  /* TileElem; NONE for sem and token */
  uint8_t space; /* TileSpace, buffers only */
  uint8_t rank;
  int64_t dims[TILE_MAX_RANK];
} TileType;

TileType tile_type_scalar(TileElem e);
TileType tile_type_tensor(TileElem e, int rank, const int64_t *dims);
TileType tile_type_buffer(TileSpace s, TileElem e, int rank, const int64_t *dims);
TileType tile_type_sem(void);
TileType tile_type_token(void);
bool tile_type_eq(const TileType *a, const TileType *b);
int64_t tile_type_numel(const TileType *t); /* 1 for scalars */
/* Bytes of its elements at their bit widths (what a pass weighs; a backend may store
 * narrow elements wider). */
int64_t tile_type_bytes(const TileType *t);
/* Writes the type as text ("tensor<8x128xbf16>"); returns the length it needs. */
int tile_type_format(const TileType *t, char *buf, size_t size);

/* ---- source locations ---- */
typedef struct TileLoc {
  const char *file; /* NULL for IR made by the builder */
  int line, col;    /* 1-based; 0 when unknown */
} TileLoc;

/* ---- attributes ----
 *   42  -1              INT
 *   1.5  -inf  nan      FLOAT
 *   "text"              STRING
 *   add  x              IDENT  (enum keywords, mesh axis names)
 *   -                   NONE   (a replicated dimension in a sharding)
 *   [a, b, ...]         ARRAY
 *   (x, y)              TUPLE  (several mesh axes on one dimension)
 *   @tp                 SYMBOL */
typedef enum TileAttrKind {
  TILE_ATTR_INT,
  TILE_ATTR_FLOAT,
  TILE_ATTR_STRING,
  TILE_ATTR_IDENT,
  TILE_ATTR_NONE,
  TILE_ATTR_ARRAY,
  TILE_ATTR_TUPLE,
  TILE_ATTR_SYMBOL,
} TileAttrKind;

typedef struct TileAttr {
  uint8_t kind; /* TileAttrKind */
  int32_t n;    /* ARRAY, TUPLE: element count */
  union {
    int64_t i;
    double f;
    const char *s; /* STRING, IDENT, SYMBOL (without '@') */
    struct TileAttr *elems;
  };
} TileAttr;

typedef struct TileNamedAttr {
  const char *name;
  TileAttr val;
} TileNamedAttr;

typedef struct TileAttrDict {
  int32_t n;
  TileNamedAttr *items; /* in source order; names unique */
} TileAttrDict;

const TileAttr *tile_attr_get(const TileAttrDict *d, const char *name);
bool tile_attr_get_int(const TileAttrDict *d, const char *name, int64_t *out);

/* ---- IR nodes ---- */
typedef struct TileOp TileOp;
typedef struct TileBlock TileBlock;
typedef struct TileFunc TileFunc;

/* Locations of values and uses let the verifier point at the exact token a problem
 * is about (a parameter's name, an operand) instead of its op or function. The
 * parser sets them; the builder copies what its caller gives in a TileUse and
 * otherwise leaves them zero (line 0), and then messages fall back to the op's or
 * the function's location. */
typedef struct TileValue {
  TileType type;
  const char *name; /* source name without '%', or NULL (printer numbers it) */
  TileOp *def;      /* defining op, or NULL for a block argument */
  TileBlock *block; /* for block arguments: the block */
  int32_t index;    /* result index in def, or argument index in block (from 0) */
  TileLoc loc;      /* where the value is named: a parameter, a result name left of
                     * '=' (the op itself for an unnamed result), an induction variable
                     * or a loop-carried value; line 0 when unknown */
} TileValue;

/* One index of a buffer access: an SSA scalar (v != NULL) or a constant c. */
typedef struct TileIndex {
  TileValue *v;
  int64_t c;
  TileLoc loc; /* the index's position in the access; line 0 when unknown */
} TileIndex;

/* A use of a value by an op. Buffer accesses (`%buf[%i, 0]`) carry an index list;
 * has_idx distinguishes `%buf[]`-less whole-buffer uses from accesses. */
typedef struct TileUse {
  TileValue *v;
  bool has_idx;
  int32_t nidx;
  TileIndex *idx;
  TileLoc loc; /* the operand's position (its %name); line 0 when unknown */
} TileUse;

struct TileBlock {
  int32_t nargs;
  TileValue **args;
  TileOp *first, *last;
  TileOp *parent; /* the op whose region this is; NULL for a function body */
  TileFunc *func; /* the function this block is the body of, if any */
};

struct TileOp {
  uint16_t kind; /* TileOpKind */
  int32_t nopnd, nres, nregion;
  TileUse *opnd;
  TileValue **res;
  TileBlock **region;
  TileAttrDict attrs;
  TileLoc loc;
  TileBlock *block; /* containing block */
  TileOp *prev, *next;
};

/* Whether v is made by a `constant` of one value (an int or float `value`). */
bool tile_value_is_splat(const TileValue *v);

/* A mesh: named axes over the dims of a torus. In the simple form each axis takes
 * the next torus dim (`torus<4x4>(x, y)`); an axis may also name its dims and size
 * explicitly (see docs/tile-ir.md). size = product of the chip counts it spans. */
#define TILE_MAX_MESH_AXES 8
typedef struct TileMeshAxis {
  const char *name;
  int64_t size;
  int32_t ndims;            /* torus dims this axis spans */
  int32_t dims[TILE_MAX_RANK];
} TileMeshAxis;

typedef struct TileMesh {
  const char *name;
  int32_t rank;
  int64_t dims[TILE_MAX_RANK]; /* torus shape */
  int32_t naxes;
  TileMeshAxis axes[TILE_MAX_MESH_AXES];
  TileLoc loc;
  struct TileMesh *next;
} TileMesh;

struct TileFunc {
  const char *name;
  bool is_kernel;     /* `kernel` (tile level) vs `func` (tensor level) */
  TileBlock *body;    /* args are the parameters */
  TileAttrDict *arg_attrs; /* per parameter, body->nargs entries */
  int32_t nret;
  TileType *ret;      /* result types (kernels have none) */
  TileAttrDict attrs; /* function attributes, e.g. {mesh = @tp} */
  TileLoc loc;
  TileFunc *next;
};

typedef struct TileArena TileArena;

typedef struct TileModule {
  TileArena *arena;
  const char *filename;
  TileMesh *meshes; /* in source order */
  TileFunc *funcs;  /* in source order */
  /* Composite ops the decompose pass leaves whole: NULL, or one flag per TileOpKind
   * (TILE_OP_COUNT entries). A backend with its own code for a composite sets it
   * (the VLIW compile keeps attention and rope); NULL decomposes every composite. */
  const bool *keep_composites;
  /* What the passes see of the machine the module is compiled for (a backend sets
   * them; 0: no machine in view): its HBM bandwidth over one ICI link's one-way
   * bandwidth, and a bit per torus dim with wraparound links. coll_matmul weighs a
   * step's weight reads against its hops by the first, and rings by the second. Its
   * VMEM bytes: coll_split cuts collectives whose receive slots would crowd it. */
  double hbm_per_link;
  uint32_t wrap_dims;
  int64_t vmem_bytes;
} TileModule;

TileModule *tile_module_new(const char *filename);
void tile_module_free(TileModule *m);
TileMesh *tile_module_find_mesh(const TileModule *m, const char *name);
TileFunc *tile_module_find_func(const TileModule *m, const char *name);
const TileMeshAxis *tile_mesh_find_axis(const TileMesh *mesh, const char *name);
/* Chips on the mesh axes an `axes` attribute names (one ident, or an array or tuple of
 * them): the product of their sizes; 0 when one is not an axis of mesh. */
int64_t tile_mesh_axes_size(const TileMesh *mesh, const TileAttr *axes);
/* The position of chip (i, j) of an x-by-y grid of mesh positions (i on the first axis)
 * on the cycle that a collective_permute with a `cycle` axis runs along: consecutive
 * positions differ by one step on one axis, and so does the last from the first, so
 * where both axes are whole torus dims every step is one hop. Row 0 left to right, the
 * rows below it snaking over columns 1 .. y - 1, then column 0 back up (x even; for x
 * odd and y even the same with the axes' roles swapped; an axis of 1 leaves the other
 * axis's positions). -1 where x and y are both odd and above 1: no such cycle exists. */
int64_t tile_mesh_cycle_pos(int64_t x, int64_t y, int64_t i, int64_t j);

/* Arena allocation; memory is zeroed. */
void *tile_alloc(TileModule *m, size_t size);
const char *tile_strdup(TileModule *m, const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif
