/* The programs of the layers suite (bench/layers/programs.c): global `.tile` text of a
 * tensor-parallel MLP block, a decoder layer, or a stack of decoder layers, at decode or
 * prefill shapes, annotated for a d x t mesh. */
#ifndef BENCH_LAYERS_PROGRAMS_H
#define BENCH_LAYERS_PROGRAMS_H

#include <stddef.h>

typedef enum { BLOCK_MLP, BLOCK_LAYER } LayerBlock;
typedef enum { PHASE_DECODE, PHASE_PREFILL } LayerPhase;
/* How the MLP block splits w_down (BLOCK_MLP): by rows, one all_reduce after it
 * (Megatron); by columns like w_gate and w_up, one all_gather of the activations
 * before it and the output split by columns (gathered); or by rows with the block's
 * input and output split by rows too, an all_gather of the input before w_gate and
 * w_up and a reduce_scatter after w_down (sequence-parallel Megatron, which the
 * coll_matmul pass runs as ring steps beside the matmuls). */
typedef enum { MLP_MEGATRON, MLP_GATHERED, MLP_SEQUENCE } MlpLayout;

typedef struct LayerShape {
  LayerBlock block;
  LayerPhase phase;
  int dsize, tsize;    /* the mesh: d splits the batch, t the heads and the ffn width */
  int nlayers;         /* decoder layers stacked (BLOCK_LAYER) */
  long E, F, H, Hkv, D;
  long B;              /* sequences */
  long S;              /* decode: cached positions */
  long L;              /* prefill: tokens per sequence */
  MlpLayout mlp;       /* BLOCK_MLP; BLOCK_LAYER: MLP_SEQUENCE splits the residual
                        * stream by rows (attention's projections gathered too) */
} LayerShape;

/* The program text (malloc'ed, *len bytes), or NULL when out of memory. */
char *layer_program(const LayerShape *s, size_t *len);

#endif
