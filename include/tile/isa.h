/* The VLIW instruction set. One row per machine op; the assembler, disassembler,
 * encoder, emulator, scheduler and docs/isa.md all read this table.
 *
 * A bundle is TILE_BUNDLE_SLOTS fixed slot words, issued together in one cycle:
 *
 *   word:   0        1        2        3        4       5        6       7      8     9     10
 *         +--------+--------+--------+--------+-------+--------+-------+-------+-----+-----+--------+
 *         |scalar 0|scalar 1|vector 0|vector 1| vload | vstore | mxu 0 | mxu 1 | xlu | dma | branch |
 *         +--------+--------+--------+--------+-------+--------+-------+-------+-----+-----+--------+
 *
 * Two matrix-unit words (as the TPU bundle's two matrix slots): a machine with four or
 * more MXUs must push one LHS tile and pop one result per cycle to keep them all busy.
 *
 * Each slot word is 64 bits, little-endian:
 *
 *    63      56 55    50 49    44 43    38 37    32 31                              0
 *   +----------+--------+--------+--------+--------+---------------------------------+
 *   |  opcode  |   d    |   a    |   b    |   c    |            imm (s32)            |
 *   +----------+--------+--------+--------+--------+---------------------------------+
 *
 * opcode 0 is `nop`. Register fields hold register numbers (s0..s63, v0..v63), MXU
 * unit numbers or semaphore numbers, as each op's operand pattern says.
 *
 * Operand patterns: space-separated, one per assembly operand, in assembly order.
 * Each is two letters, the register file or kind and the field it lives in:
 *   S  scalar register written      s  scalar register read
 *   V  vector register written      v  vector register read
 *   m  MXU unit number              q  semaphore number
 *   i  signed 32-bit integer        f  32-bit float (stored as its bits)
 * and the field: d, a, b, c, i (the imm field), or w (wide: fields a, b and c read as one
 * 18-bit number, c the low 6 bits, then b, then a; only `loop` body lengths, so a loop
 * body may run to TILE_WIDE_MAX bundles). Example: "Vd va vb" is
 * `vadd.f v1, v2, v3` with v1 in field d (written), v2 in a and v3 in b (read).
 *
 * Timing: every op reads its registers when its bundle issues (cycle t) and writes its
 * result at t + latency (its class in the target); reading a register before then is a
 * hazard. Semantics below use: R[x] the register in field x, imm the imm field,
 * VMEM/SMEM byte-addressed, bf() rounding f32 to bf16 (nearest even). */
#ifndef TILE_ISA_H
#define TILE_ISA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tile/target.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(ID, "mnemonic", SLOT, LATENCY, "operands", "semantics") */
#define TILE_ISA(X)                                                                      \
  X(NOP, "nop", BRANCH, BRANCH, "", "nothing")                                            \
  /* ---- scalar ALU (slot scalar, 32-bit two's complement) ---- */                      \
  X(LI, "li", SCALAR, SALU, "Sd ii", "S[d] := imm")                                       \
  X(MOV, "mov", SCALAR, SALU, "Sd sa", "S[d] := S[a]")                                    \
  X(ADD, "add", SCALAR, SALU, "Sd sa sb", "S[d] := S[a] + S[b] (wrapping)")               \
  X(ADDI, "addi", SCALAR, SALU, "Sd sa ii", "S[d] := S[a] + imm (wrapping)")              \
  X(SUB, "sub", SCALAR, SALU, "Sd sa sb", "S[d] := S[a] - S[b] (wrapping)")               \
  X(MUL, "mul", SCALAR, SALU, "Sd sa sb", "S[d] := S[a] * S[b] (low 32 bits)")            \
  X(MULI, "muli", SCALAR, SALU, "Sd sa ii", "S[d] := S[a] * imm (low 32 bits)")           \
  X(AND, "and", SCALAR, SALU, "Sd sa sb", "S[d] := S[a] & S[b]")                          \
  X(OR, "or", SCALAR, SALU, "Sd sa sb", "S[d] := S[a] | S[b]")                            \
  X(XOR, "xor", SCALAR, SALU, "Sd sa sb", "S[d] := S[a] ^ S[b]")                          \
  X(SHLI, "shli", SCALAR, SALU, "Sd sa ii", "S[d] := S[a] << (imm & 31)")                 \
  X(SHRI, "shri", SCALAR, SALU, "Sd sa ii", "S[d] := S[a] >> (imm & 31), logical")        \
  X(SRAI, "srai", SCALAR, SALU, "Sd sa ii", "S[d] := S[a] >> (imm & 31), arithmetic")     \
  X(SLT, "slt", SCALAR, SALU, "Sd sa sb", "S[d] := S[a] < S[b] ? 1 : 0 (signed)")         \
  X(SEQ, "seq", SCALAR, SALU, "Sd sa sb", "S[d] := S[a] == S[b] ? 1 : 0")                 \
  X(MIN, "min", SCALAR, SALU, "Sd sa sb", "S[d] := min(S[a], S[b]) (signed)")             \
  X(MAX, "max", SCALAR, SALU, "Sd sa sb", "S[d] := max(S[a], S[b]) (signed)")             \
  X(CHIPID, "chipid", SCALAR, SALU, "Sd", "S[d] := this chip's linear id")                \
  X(COORD, "coord", SCALAR, SALU, "Sd ii", "S[d] := this chip's torus coordinate on axis imm") \
  X(SLD, "sld", SCALAR, SMEM, "Sd sa ii", "S[d] := SMEM32[S[a] + imm]")                   \
  X(SST, "sst", SCALAR, SMEM, "sd sa ii", "SMEM32[S[a] + imm] := S[d]")                   \
  /* ---- vector ALU (slot vector; each lane of the 8 x 128 register) ---- */             \
  X(VADDF, "vadd.f", VECTOR, VALU, "Vd va vb", "V[d] := V[a] + V[b] (f32)")              \
  X(VSUBF, "vsub.f", VECTOR, VALU, "Vd va vb", "V[d] := V[a] - V[b] (f32)")              \
  X(VMULF, "vmul.f", VECTOR, VALU, "Vd va vb", "V[d] := V[a] * V[b] (f32)")              \
  X(VMAXF, "vmax.f", VECTOR, VALU, "Vd va vb", "V[d] := max(V[a], V[b]) (f32)")          \
  X(VMINF, "vmin.f", VECTOR, VALU, "Vd va vb", "V[d] := min(V[a], V[b]) (f32)")          \
  X(VFMAF, "vfma.f", VECTOR, VALU, "Vd va vb vc", "V[d] := V[a] * V[b] + V[c] (f32, one rounding)") \
  X(VADDI, "vadd.i", VECTOR, VALU, "Vd va vb", "V[d] := V[a] + V[b] (i32, wrapping)")    \
  X(VSUBI, "vsub.i", VECTOR, VALU, "Vd va vb", "V[d] := V[a] - V[b] (i32, wrapping)")    \
  X(VMULI, "vmul.i", VECTOR, VALU, "Vd va vb", "V[d] := V[a] * V[b] (i32, low bits)")    \
  X(VAND, "vand", VECTOR, VALU, "Vd va vb", "V[d] := V[a] & V[b] (bits)")                \
  X(VOR, "vor", VECTOR, VALU, "Vd va vb", "V[d] := V[a] | V[b] (bits)")                  \
  X(VXOR, "vxor", VECTOR, VALU, "Vd va vb", "V[d] := V[a] ^ V[b] (bits)")                \
  X(VCMPLTF, "vcmplt.f", VECTOR, VALU, "Vd va vb", "V[d] := V[a] < V[b] ? 1 : 0 (f32 compare, i32 result)") \
  X(VCMPLEF, "vcmple.f", VECTOR, VALU, "Vd va vb", "V[d] := V[a] <= V[b] ? 1 : 0")       \
  X(VCMPEQF, "vcmpeq.f", VECTOR, VALU, "Vd va vb", "V[d] := V[a] == V[b] ? 1 : 0")       \
  X(VCMPLTI, "vcmplt.i", VECTOR, VALU, "Vd va vb", "V[d] := V[a] < V[b] ? 1 : 0 (i32)")  \
  X(VCMPEQI, "vcmpeq.i", VECTOR, VALU, "Vd va vb", "V[d] := V[a] == V[b] ? 1 : 0 (i32)") \
  X(VSEL, "vsel", VECTOR, VALU, "Vd vc va vb", "V[d] := V[c] != 0 ? V[a] : V[b]")        \
  X(VMOV, "vmov", VECTOR, VALU, "Vd va", "V[d] := V[a]")                                 \
  X(VBCAST, "vbcast", VECTOR, VALU, "Vd sa", "every lane of V[d] := the bits of S[a]")   \
  X(VLI, "vli", VECTOR, VALU, "Vd fi", "every lane of V[d] := the 32 bits of imm")       \
  X(VIOTA, "viota", VECTOR, VALU, "Vd ii",                                               \
    "V[d][s][l] := l (imm 0), s (imm 1), or s * lanes + l (imm 2), as i32")              \
  X(VCVTIF, "vcvt.i2f", VECTOR, VALU, "Vd va", "V[d] := (f32) V[a] as i32")              \
  X(VCVTFI, "vcvt.f2i", VECTOR, VALU, "Vd va", "V[d] := (i32) V[a], rounded to nearest even, saturating") \
  X(VRNDBF, "vrnd.bf16", VECTOR, VALU, "Vd va", "V[d] := bf(V[a]) (f32 rounded to bf16 precision)") \
  /* ---- transcendentals (slot vector, latency class trans) ---- */                     \
  X(VEXP, "vexp", VECTOR, TRANS, "Vd va", "V[d] := e^V[a] (within 1 ulp, the same bits on every host)")                               \
  X(VLOG, "vlog", VECTOR, TRANS, "Vd va", "V[d] := ln V[a] (within 1 ulp, the same bits on every host)")                              \
  X(VRSQRT, "vrsqrt", VECTOR, TRANS, "Vd va", "V[d] := 1 / sqrt(V[a]) (within 1 ulp, the same bits on every host)")                   \
  X(VTANH, "vtanh", VECTOR, TRANS, "Vd va", "V[d] := tanh V[a] (within 1 ulp, the same bits on every host)")                          \
  X(VRCP, "vrcp", VECTOR, TRANS, "Vd va", "V[d] := 1 / V[a] (IEEE division)")                             \
  /* ---- vector memory (slots vload, vstore); sublane s at S[a] + imm + s * S[b] ---- */ \
  X(VLD, "vld", VLOAD, VLOAD, "Vd sa sb ii", "V[d][s] := VMEM f32[lanes] at S[a] + imm + s*S[b]") \
  X(VLDBF, "vld.bf16", VLOAD, VLOAD, "Vd sa sb ii", "V[d][s] := VMEM bf16[lanes] at S[a] + imm + s*S[b], widened") \
  X(VST, "vst", VSTORE, VSTORE, "vd sa sb ii", "VMEM f32[lanes] at S[a] + imm + s*S[b] := V[d][s]") \
  X(VSTBF, "vst.bf16", VSTORE, VSTORE, "vd sa sb ii", "VMEM bf16[lanes] at S[a] + imm + s*S[b] := bf(V[d][s])") \
  /* ---- matrix unit (slot mxu); W is the unit's dim x dim bf16 weight matrix ---- */    \
  X(MXU_LDW, "mxu.ldw", MXU, MXU_WEIGHTS, "mc va ii",                                    \
    "rows 8*imm .. 8*imm+7 of W[c] := bf(V[a]); a push may use W after the latency")     \
  X(MXU_PUSH, "mxu.push", MXU, MXU_RESULT, "mc va",                                      \
    "queue bf(V[a]) x W[c] (f32 accumulation) on unit c's result FIFO; unit busy for mxu_push_cycles") \
  X(MXU_POP, "mxu.pop", MXU, MXU_POP, "Vd mc", "V[d] := the oldest result of unit c (must be ready)") \
  X(MXU_POPACC, "mxu.popacc", MXU, MXU_POP, "Vd mc va", "V[d] := V[a] + the oldest result of unit c") \
  /* ---- cross-lane unit (slot xlu) ---- */                                             \
  X(XLSUM, "xlu.lsum", XLU, XLU, "Vd va", "each sublane of V[d] := the sum of its lanes in V[a] (lane order)") \
  X(XLMAX, "xlu.lmax", XLU, XLU, "Vd va", "each sublane of V[d] := the max of its lanes in V[a]") \
  X(XSSUM, "xlu.ssum", XLU, XLU, "Vd va", "each lane of V[d] := the sum over sublanes of V[a] (sublane order)") \
  X(XSMAX, "xlu.smax", XLU, XLU, "Vd va", "each lane of V[d] := the max over sublanes of V[a]") \
  X(XLROT, "xlu.lrot", XLU, XLU, "Vd va ii", "V[d][s][(l + imm) mod lanes] := V[a][s][l]") \
  X(XSROT, "xlu.srot", XLU, XLU, "Vd va ii", "V[d][(s + imm) mod sublanes][l] := V[a][s][l]") \
  X(XTRPUSH, "xlu.trpush", XLU, XLU, "va ii", "rows 8*imm .. 8*imm+7 of the lanes x lanes transpose buffer := V[a]") \
  X(XTRPOP, "xlu.trpop", XLU, XLU, "Vd ii", "V[d] := rows 8*imm .. 8*imm+7 of the transposed buffer") \
  /* ---- DMA and semaphores (slot dma) ---- */                                          \
  X(DMA, "dma", DMA, SALU, "sa", "start the DMA described at SMEM address S[a] (docs/emulator.md)") \
  X(SIGNAL, "sem.signal", DMA, SALU, "qc ii", "semaphore c += imm on this chip")          \
  X(SIGNALR, "sem.signal.r", DMA, SALU, "qc sa ii",                                       \
    "semaphore c += imm on chip S[a], arriving after the network's latency")            \
  X(WAIT, "sem.wait", DMA, SALU, "qc ii", "stall until semaphore c >= imm, then subtract imm") \
  /* ---- branches and loops (slot branch); targets are bundle indices ---- */           \
  X(JMP, "jmp", BRANCH, BRANCH, "ii", "continue at bundle imm")                           \
  X(BNZ, "bnz", BRANCH, BRANCH, "sa ii", "if S[a] != 0 continue at bundle imm")          \
  X(BZ, "bz", BRANCH, BRANCH, "sa ii", "if S[a] == 0 continue at bundle imm")            \
  X(LOOP, "loop", BRANCH, BRANCH, "iw ii",                                               \
    "run the next w bundles imm times (imm >= 1), no per-iteration cost; loops nest 4 deep") \
  X(HALT, "halt", BRANCH, BRANCH, "", "stop this chip once its DMAs and writes are done")

typedef enum TileMop {
#define X(id, mn, slot, lat, opnds, sem) TILE_MOP_##id,
  TILE_ISA(X)
#undef X
  TILE_MOP_COUNT
} TileMop;

typedef struct TileMopInfo {
  const char *mnemonic;
  TileSlot slot;
  TileLatency latency;
  const char *operands;
  const char *semantics;
} TileMopInfo;

extern const TileMopInfo tile_mop_info[TILE_MOP_COUNT];

/* Slot positions in a bundle: how many words each slot kind has in the encoding. */
#define TILE_SLOT_WORDS(X) \
  X(SCALAR, 2) X(VECTOR, 2) X(VLOAD, 1) X(VSTORE, 1) X(MXU, 2) X(XLU, 1) X(DMA, 1) X(BRANCH, 1)
enum { TILE_BUNDLE_SLOTS = 11 };

/* One decoded slot op. */
typedef struct TileMInst {
  uint8_t op; /* TileMop */
  uint8_t d, a, b, c;
  int32_t imm;
} TileMInst;

typedef struct TileBundle {
  TileMInst slot[TILE_BUNDLE_SLOTS];
} TileBundle;

uint64_t tile_minst_encode(TileMInst in);
TileMInst tile_minst_decode(uint64_t word);
/* The first word index of slot kind s in a bundle, and how many words it has. */
/* The slot kind's key ("scalar", "mxu", ...), as in target files and statistics. */
const char *tile_slot_name(TileSlot s);
int tile_slot_first(TileSlot s);
int tile_slot_words(TileSlot s);

/* ---- helpers over the table ---- */

/* The slot kind that bundle word w (0 <= w < TILE_BUNDLE_SLOTS) belongs to. */
TileSlot tile_slot_of_word(int w);
/* The op spelled `mnemonic` (len bytes), or -1. */
int tile_mop_lookup(const char *mnemonic, size_t len);

/* One operand of an op's pattern: its kind letter (S s V v m q i f) and its field
 * letter (d a b c i). */
enum { TILE_MAX_OPERANDS = 4 };
typedef struct TileOperand {
  char kind, field;
} TileOperand;
/* The operands of op in assembly order; returns how many. */
int tile_mop_operands(int op, TileOperand out[TILE_MAX_OPERANDS]);
/* The largest value of the wide field 'w' (a:b:c). */
#define TILE_WIDE_MAX ((1 << 18) - 1)
/* The value of field 'd', 'a', 'b', 'c', 'w' (a:b:c) or 'i' (imm) of in. */
int32_t tile_minst_field(TileMInst in, char field);
/* Sets a field; a register field keeps the low 6 bits of v, 'w' the low 18. */
void tile_minst_set_field(TileMInst *in, char field, int32_t v);

/* Checks one slot op as the encoding allows it in bundle word `word`: a known opcode
 * of that word's slot kind (nop fits anywhere), register fields below 64, zero in every
 * field the op does not use, and the op's own immediate rules (e.g. `loop` counts of at
 * least 1, `viota` modes 0..2). On failure writes one sentence to why and returns false. */
bool tile_minst_check(TileMInst in, int word, char *why, size_t why_len);
/* Checks an op (already valid for the encoding) against a machine: the word is within
 * the target's slots of its kind, registers, MXU units and semaphores exist there, and
 * immediates bounded by the machine's shapes (mxu.ldw and transpose rows) fit. */
bool tile_minst_check_target(TileMInst in, int word, const TileTarget *t, char *why,
                             size_t why_len);
/* The range the encoding allows for op's imm field (INT32_MIN..INT32_MAX when any
 * value is fine); machine-dependent bounds are tile_minst_check_target's. */
void tile_mop_imm_range(int op, int64_t *lo, int64_t *hi);

#ifdef __cplusplus
}
#endif
#endif
