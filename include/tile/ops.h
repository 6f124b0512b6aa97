/* The Tile IR op table. Every op is one row; the enum, names, operand checking,
 * attribute checking, type rules, the printer, the parser and docs/tile-ir.md all
 * come from here.
 *
 * X(ID, "name", FAMILY, "operands", NRES, RULE, "attributes", "semantics")
 *
 * operands: one letter per operand, in order
 *   v  tensor or scalar value      t  tensor         s  scalar
 *   i  integer scalar (an index)   b  buffer         a  buffer access %buf[i, ...]
 *   m  semaphore                   k  DMA token
 *   a trailing '*' repeats the previous letter zero or more times,
 *   a trailing '?' makes it optional.
 * NRES: result count; -1 when it follows the op's form (for, if).
 * RULE: the type rule (ir/rules.c, rule_RULE) that checks operand types and
 *   attributes and infers or checks result types.
 * attributes: space-separated name:kind, name?:kind when optional. kinds:
 *   int float num(int or float) str ident array ints(array of int) axes(array of
 *   mesh axis names) sym(symbol @name) shard(a sharding) any.
 *   Every op also accepts `shard` (the sharding of its result). */
#ifndef TILE_OPS_H
#define TILE_OPS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TILE_OPS(X)                                                                     \
  /* ---- tensor ops: elementwise ---- */                                               \
  X(ADD, "add", TENSOR, "vv", 1, SAME, "", "a + b")                                      \
  X(SUB, "sub", TENSOR, "vv", 1, SAME, "", "a - b")                                      \
  X(MUL, "mul", TENSOR, "vv", 1, SAME, "", "a * b")                                      \
  X(DIV, "div", TENSOR, "vv", 1, SAME, "", "a / b (integers: truncating)")               \
  X(REM, "rem", TENSOR, "vv", 1, SAME, "", "remainder of a / b with the sign of a")      \
  X(MAX, "max", TENSOR, "vv", 1, SAME, "", "elementwise maximum")                        \
  X(MIN, "min", TENSOR, "vv", 1, SAME, "", "elementwise minimum")                        \
  X(POW, "pow", TENSOR, "vv", 1, SAME_FLOAT, "", "a raised to b")                        \
  X(AND, "and", TENSOR, "vv", 1, SAME_INT, "", "bitwise and (logical on i1)")            \
  X(OR, "or", TENSOR, "vv", 1, SAME_INT, "", "bitwise or (logical on i1)")               \
  X(XOR, "xor", TENSOR, "vv", 1, SAME_INT, "", "bitwise xor (logical on i1)")            \
  X(NEG, "neg", TENSOR, "v", 1, SAME, "", "-a")                                          \
  X(ABS, "abs", TENSOR, "v", 1, SAME, "", "|a|")                                         \
  X(NOT, "not", TENSOR, "v", 1, SAME_INT, "", "bitwise not (logical on i1)")             \
  X(EXP, "exp", TENSOR, "v", 1, SAME_FLOAT, "", "e^a")                                   \
  X(LOG, "log", TENSOR, "v", 1, SAME_FLOAT, "", "natural logarithm")                     \
  X(SQRT, "sqrt", TENSOR, "v", 1, SAME_FLOAT, "", "square root")                         \
  X(RSQRT, "rsqrt", TENSOR, "v", 1, SAME_FLOAT, "", "1 / sqrt(a)")                       \
  X(RECIP, "recip", TENSOR, "v", 1, SAME_FLOAT, "", "1 / a")                             \
  X(TANH, "tanh", TENSOR, "v", 1, SAME_FLOAT, "", "hyperbolic tangent")                  \
  X(LOGISTIC, "logistic", TENSOR, "v", 1, SAME_FLOAT, "", "1 / (1 + e^-a)")              \
  X(COMPARE, "compare", TENSOR, "vv", 1, COMPARE, "dir:ident",                           \
    "a DIR b as i1; dir is eq, ne, lt, le, gt or ge")                                    \
  X(SELECT, "select", TENSOR, "vvv", 1, SELECT, "", "cond ? a : b, cond of i1")          \
  /* ---- tensor ops: structure ---- */                                                 \
  X(MATMUL, "matmul", TENSOR, "tt", 1, MATMUL, "",                                       \
    "[..., M, K] x [K, N] or [..., K, N] -> [..., M, N]; the result element type "       \
    "may be wider (bf16 x bf16 -> f32 accumulates in f32)")                              \
  X(DOT_GENERAL, "dot_general", TENSOR, "tt", 1, DOT_GENERAL,                           \
    "lhs_batch:ints rhs_batch:ints lhs_contract:ints rhs_contract:ints",                 \
    "contraction as StableHLO dot_general: result dims are batch, lhs free, rhs free")   \
  X(REDUCE, "reduce", TENSOR, "t", 1, REDUCE, "kind:ident dims:ints",                    \
    "reduce the listed dims with kind add, mul, max or min; they are removed")           \
  X(ARGMAX, "argmax", TENSOR, "t", 1, ARG_REDUCE, "dim:int",                             \
    "index (i32) of the first maximum along dim, which is removed")                      \
  X(BROADCAST, "broadcast", TENSOR, "v", 1, BROADCAST, "dims:ints",                      \
    "operand dim i becomes result dim dims[i] (size equal or 1); result type given")     \
  X(TRANSPOSE, "transpose", TENSOR, "t", 1, TRANSPOSE, "perm:ints",                      \
    "result dim i is operand dim perm[i]")                                               \
  X(RESHAPE, "reshape", TENSOR, "t", 1, RESHAPE, "",                                     \
    "same elements in row-major order, new shape; result type given")                    \
  X(SLICE, "slice", TENSOR, "t", 1, SLICE, "start:ints limit:ints stride?:ints",         \
    "elements start <= i < limit with stride (default 1) per dim")                       \
  X(CONCATENATE, "concatenate", TENSOR, "tt*", 1, CONCATENATE, "dim:int",               \
    "join operands along dim; other dims must agree")                                    \
  X(GATHER, "gather", TENSOR, "tt", 1, GATHER, "axis:int",                               \
    "take rows: result = indices.shape ++ operand.shape without axis (numpy take)")      \
  X(TOPK, "topk", TENSOR, "t", 2, TOPK, "k:int",                                         \
    "the k largest along the last dim, sorted descending: values and i32 indices")       \
  X(CONVERT, "convert", TENSOR, "v", 1, CONVERT, "",                                     \
    "change the element type (round to nearest even); result type given")               \
  X(IOTA, "iota", TENSOR, "", 1, IOTA, "dim:int",                                        \
    "result[i...] = i_dim; result type given")                                           \
  X(CONSTANT, "constant", TENSOR, "", 1, CONSTANT, "value:any",                          \
    "a number (splat) or a flat array of every element; result type given")              \
  /* ---- composites (decomposed by passes) ---- */                                     \
  X(SOFTMAX, "softmax", TENSOR, "t", 1, SAME_FLOAT, "dim:int",                           \
    "exp(a - max) / sum(exp(a - max)) along dim")                                        \
  X(LAYERNORM, "layernorm", TENSOR, "ttt", 1, NORM, "eps:float",                         \
    "(a - mean) / sqrt(var + eps) * gamma + beta over the last dim")                     \
  X(RMSNORM, "rmsnorm", TENSOR, "tt", 1, NORM, "eps:float",                              \
    "a / sqrt(mean(a^2) + eps) * gamma over the last dim")                               \
  X(GELU, "gelu", TENSOR, "v", 1, SAME_FLOAT, "",                                        \
    "0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))")                                   \
  X(SILU, "silu", TENSOR, "v", 1, SAME_FLOAT, "", "a * logistic(a)")                     \
  X(ROPE, "rope", TENSOR, "ttt", 1, ROPE, "",                                            \
    "rotary embedding of [..., S, D] with cos, sin of [S, D/2] (rotate halves)")         \
  X(ATTENTION, "attention", TENSOR, "ttt", 1, ATTENTION, "scale:float causal?:int",      \
    "softmax(q k^T * scale [+ causal mask: query i sees keys j <= i]) v for q [B, H, Sq, D], " \
    "k, v [B, Hkv, Sk, D]; query head h reads K/V head h / (H / Hkv)") \
  /* ---- collectives over mesh axes ---- */                                            \
  X(ALL_REDUCE, "all_reduce", COLLECTIVE, "t", 1, ALL_REDUCE,                            \
    "kind:ident axes:axes mesh?:sym", "combine with kind over the axes; every chip gets the whole") \
  X(ALL_GATHER, "all_gather", COLLECTIVE, "t", 1, ALL_GATHER,                            \
    "dim:int axes:axes mesh?:sym", "concatenate the shards of dim over the axes")        \
  X(REDUCE_SCATTER, "reduce_scatter", COLLECTIVE, "t", 1, REDUCE_SCATTER,               \
    "kind:ident dim:int axes:axes mesh?:sym",                                            \
    "combine over the axes, each chip keeps its slice of dim")                           \
  X(ALL_TO_ALL, "all_to_all", COLLECTIVE, "t", 1, ALL_TO_ALL,                            \
    "split_dim:int concat_dim:int axes:axes mesh?:sym",                                  \
    "split split_dim over the axes, exchange, concatenate along concat_dim")            \
  X(COLLECTIVE_PERMUTE, "collective_permute", COLLECTIVE, "t", 1, PERMUTE,               \
    "axis:ident shift:int mesh?:sym late?:int cycle?:ident halves?:int",                 \
    "send to the chip shift steps along axis (with wraparound), or along the cycle through axis x cycle; halves = 1: the second half of dim 0 goes shift steps back") \
  X(RING_SLICE, "ring_slice", COLLECTIVE, "t", 1, RING_SLICE,                          \
    "axis:ident step:int dim?:int mesh?:sym",                                            \
    "the chunk of dim `dim` (default 0; p equal chunks, p chips on axis) that step "     \
    "`step` of a shift-1 ring holds: chunk (r - step) mod p, r this chip's position on " \
    "axis; moves nothing between chips")                                                 \
  X(RING_CONCAT, "ring_concat", COLLECTIVE, "tt*", 1, RING_CONCAT,                       \
    "axis:ident dim?:int mesh?:sym",                                                     \
    "the p operands (p chips on axis) along dim `dim` (default 0), operand s at chunk "  \
    "(r - s) mod p, r this chip's position: the whole of what a shift-1 ring's steps "   \
    "held; moves nothing between chips")                                                 \
  /* ---- tile ops on buffers ---- */                                                   \
  X(ALLOC, "alloc", TILE, "", 1, ALLOC, "", "a buffer in vmem or smem; result type given") \
  X(LOAD, "load", TILE, "a", 1, LOAD, "",                                                \
    "read a tile at the indices of a vmem/smem buffer; the tile covers its trailing dims") \
  X(STORE, "store", TILE, "va", 0, STORE, "", "write a tile at the indices of a vmem/smem buffer") \
  X(TILE_MATMUL, "tile_matmul", TILE, "ttt", 1, TILE_MATMUL, "",                          \
    "acc + a [M, K] x b [K, N] on the matrix unit, acc and result f32 [M, N]")           \
  /* ---- async DMA and semaphores ---- */                                              \
  X(DMA_START, "dma_start", DMA, "aam", 1, DMA_START, "shape:ints peer?:any",            \
    "copy a block of shape from src to dst, signal sem on completion; peer = (axis, "    \
    "offset) writes dst on another chip; returns a token")                               \
  X(DMA_WAIT, "dma_wait", DMA, "mk?", 0, DMA_WAIT, "",                                    \
    "wait until one DMA (the token's, if given) has signalled sem, and consume it")     \
  X(SEMAPHORE, "semaphore", DMA, "", 1, SEMAPHORE, "", "a new semaphore, count 0")       \
  X(SEM_SIGNAL, "sem_signal", DMA, "m", 0, SEM_SIGNAL, "count?:int peer?:any",           \
    "add count (default 1) to sem, here or on peer = (axis, offset)")                    \
  X(SEM_WAIT, "sem_wait", DMA, "m", 0, SEM_WAIT, "count?:int",                           \
    "wait until sem >= count (default 1), then subtract it")                             \
  /* ---- control ---- */                                                               \
  X(FOR, "for", CONTROL, "v*", -1, FOR, "lower:int upper:int step:int",                  \
    "for i = lower; i < upper; i += step over a body with loop-carried values")          \
  X(IF, "if", CONTROL, "s", -1, IF, "", "then or else region on an i1 condition")        \
  X(YIELD, "yield", CONTROL, "v*", 0, YIELD, "", "end a region, giving its results")    \
  X(CALL, "call", CONTROL, "v*", -1, CALL, "callee:sym", "call a func of this module")  \
  X(RETURN, "return", CONTROL, "v*", 0, RETURN, "", "end a func, giving its results")

typedef enum TileOpKind {
#define X(id, name, fam, opnds, nres, rule, attrs, doc) TILE_OP_##id,
  TILE_OPS(X)
#undef X
  TILE_OP_COUNT
} TileOpKind;

typedef enum TileOpFamily {
  TILE_FAMILY_TENSOR,
  TILE_FAMILY_COLLECTIVE,
  TILE_FAMILY_TILE,
  TILE_FAMILY_DMA,
  TILE_FAMILY_CONTROL,
} TileOpFamily;

/* The table as data, for code that walks it (verifier, parser, docs). */
typedef struct TileOpInfo {
  const char *name;
  TileOpFamily family;
  const char *operands; /* signature letters, as above */
  int nres;             /* -1: follows the op's form */
  const char *attrs;    /* attribute spec, as above */
  const char *doc;
} TileOpInfo;

extern const TileOpInfo tile_op_info[TILE_OP_COUNT];
const char *tile_op_name(TileOpKind k);
/* The core elementwise ops (add .. select in the table, and convert): each result
 * element depends on the operands' elements at the same index. */
bool tile_op_is_elementwise(TileOpKind k);
/* -1 if unknown */
int tile_op_lookup(const char *name, size_t len);

#ifdef __cplusplus
}
#endif
#endif
