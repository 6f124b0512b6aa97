/* MIR: the machine IR between the kernel generators and the object.
 *
 *   tensor IR --(lower: one generator per fusion group)--> TileMir   (ops over virtual
 *   registers, in counted loops, on symbolic buffers)
 *   --(schedule: modulo for pipelined loops, list for the rest)--> TileMirCode (bundles,
 *   still virtual registers) --(regalloc: physical registers, spills to VMEM)-->
 *   --(layout: addresses of buffers, semaphore numbers)--> --(emit)--> TileObject
 *
 * Every op is a row of the ISA table (include/tile/isa.h) with the same operand fields
 * (d, a, b, c, imm). In MIR a register field holds a *virtual* register id (from
 * tile_mir_sreg / tile_mir_vreg) instead of a machine register; MXU unit fields hold the
 * unit number (0 .. mxu_count-1), semaphore fields a semaphore id from tile_mir_sem.
 *
 * Control flow is structured: counted loops only (TILE_MIR_LOOP_BEGIN .. LOOP_END with
 * a static trip count, the machine's zero-cost `loop`), nested at most 4 deep. There are
 * no branches in MIR; shapes are static, and a remainder is peeled code, not a branch.
 *
 * Registers are not SSA: a loop-carried value (an accumulator, an address that steps)
 * is a virtual register defined before the loop and redefined inside it. Values that
 * live across iterations of a pipelined loop must each have their own register (one
 * induction register per address stream), since the modulo scheduler does not rename.
 *
 * Memory is named by buffers (tile_mir_buffer). An op that touches memory lists the
 * buffers it reads or writes (TileMirMem); the scheduler orders two ops that touch the
 * same buffer slot when either writes, and adds nothing between ops on different
 * buffers, so a generator must name every buffer an op touches (dma: its descriptor,
 * source and destination; sem.wait: the buffers of the DMA it waits for, as writes).
 *
 * Dependence rules the schedulers honour (latencies from the target):
 *   - register flow: producer latency; anti (read then redefinition): the redefinition
 *     may land no earlier than the read issues; output: in order of landing.
 *   - memory, same buffer slot: store -> load/dma: lat.vstore (vector) or lat.smem
 *     (sst); a `dma` -> a later `sem.wait` naming one of its buffers: the dma's
 *     `est_cycles` (its expected completion, so the wait rarely stalls); sem.wait ->
 *     later access: 1; other pairs, read -> write included: 1.
 *   - MXU unit u is state: mxu.ldw -> mxu.push: lat.mxu_weights; mxu.push -> mxu.ldw:
 *     0 (weights are double-buffered); push -> pop: lat.mxu_result; pushes one
 *     mxu_push_cycles apart; pops in push order. Transpose buffer: trpush -> trpop:
 *     lat.xlu.
 *   - ops on the same semaphore id keep their order.
 *
 * Multi-buffering: a buffer made with nslots > 1 holds nslots equal slots; a memory
 * reference in the innermost loop around it names slot (iteration + slot_ofs) mod
 * nslots. Two references (ofs o1 in iteration i, o2 in iteration i + k) meet exactly
 * when k = o1 - o2 (mod nslots), which gives the modulo scheduler the true loop-carried
 * distances of double and triple buffering. The generator computes the slot address
 * itself (an induction register stepping by the slot size and wrapping).
 *
 * DMA descriptors are SMEM buffers with initial contents (tile_mir_data with
 * relocations: an address word is filled with a buffer's address at layout time); a
 * loop updates only the words that change (`sst`) before each `dma`.
 *
 * Addresses: an op's imm may be relative to a buffer (imm_buf >= 0): layout adds the
 * buffer's byte address. `li sX, 0` with imm_buf = b gives the address of b. */
#ifndef TILE_MIR_H
#define TILE_MIR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/isa.h"
#include "tile/object.h"
#include "tile/target.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pseudo-ops beyond the ISA table: loop structure. */
enum {
  /* imm = trip count (>= 1), a = flags, b = DMAs that code before the loop keeps in
   * flight while it runs (sends of earlier groups, backend-vliw/lower_async.c): the
   * modulo scheduler keeps the loop's own within dma.outstanding less these */
  TILE_MIR_LOOP_BEGIN = TILE_MOP_COUNT,
  TILE_MIR_LOOP_END,
};

/* Loop flags (in the LOOP_BEGIN inst's `a` field). */
enum {
  TILE_MIR_PIPELINE = 1, /* innermost loop the modulo scheduler may software-pipeline */
};

enum { TILE_MIR_MAX_MEM = 3 };

typedef enum TileMirAccess { TILE_MIR_READ = 1, TILE_MIR_WRITE = 2 } TileMirAccess;

typedef struct TileMirMem {
  int32_t buf;      /* buffer id; -1 for an unused entry */
  uint8_t access;   /* TileMirAccess bits */
  int8_t slot_ofs;  /* which slot of a multi-buffered buffer, relative to the iteration */
} TileMirMem;

typedef struct TileMirInst {
  uint16_t op;               /* TileMop or TILE_MIR_LOOP_* */
  int32_t d, a, b, c;        /* fields as in the ISA row: virtual regs, units, sem ids */
  int32_t imm;
  int32_t imm_buf;           /* >= 0: imm is relative to this buffer's address */
  int32_t est_cycles;        /* dma: expected cycles to completion (scheduling hint) */
  TileMirMem mem[TILE_MIR_MAX_MEM];
  /* The source op this came from, for the listing and diagnostics: an entry of
   * TileMir.srcs (tile_mir_src_name, tile_mir_src_loc), 0 for none (glue). An index,
   * not the name and location themselves: code is bundles of these, hundreds of MiB
   * for a whole layer, and every pass over it reads them all. */
  int32_t src;
} TileMirInst;

typedef enum TileMirRegClass { TILE_MIR_SREG = 1, TILE_MIR_VREG = 2 } TileMirRegClass;

typedef struct TileMirBuffer {
  char name[64];
  uint8_t space;    /* TileSpace */
  int64_t bytes;    /* one slot */
  int32_t nslots;   /* >= 1 */
  int32_t align;    /* bytes, a power of two */
  /* HBM buffers a caller binds: kind != 0 makes a symbol (TileBindKind) with this
   * element type and shape. */
  uint8_t bind;     /* 0, or TileBindKind */
  uint8_t elem;     /* TileElem of a bound buffer */
  int32_t rank;
  int64_t dims[TILE_MAX_RANK];
  bool per_chip;    /* bound with one slice per chip (a mesh function's data) */
  bool remote;      /* other chips write it (a collective's receive buffer) */
  /* With remote: the buffers [remote_after, remote_after + remote_after_n) made for an
   * earlier collective over these chips (or more) whose every result needed every
   * chip's part, so no peer can write this one before this chip has started that one;
   * layout starts this one's life where this chip first names any of them. -1: from the
   * first bundle. */
  int32_t remote_after, remote_after_n;
  bool zero_init;   /* reads bytes it never writes, which must read zero (memory never
                     * written): layout gives it bytes no earlier buffer used */
  /* A view (view_of >= 0): bytes [view_off, view_off + bytes) of buffer view_of, a
   * buffer that is no view. It has the address layout gives that range and no bytes of
   * its own; lowering names view_of in its place in every memory entry
   * (tile_mir_canon_views), so its uses order against the whole buffer's. */
  int32_t view_of;
  int64_t view_off;
  /* Initial contents (constants, DMA descriptors), nslots * bytes or fewer; NULL for
   * zeros/none. */
  uint8_t *init;
  int64_t init_len;
  int64_t addr;     /* set by layout; -1 before */
  /* The source op it was made for (the builder's attribution), for diagnostics. */
  const char *src_name;
  TileLoc src_loc;
} TileMirBuffer;

/* A word of a buffer's initial contents that layout fills with an address: the 32-bit
 * little-endian word at byte `offset` of buffer `buf` becomes the low (high = false) or
 * high 32 bits of (address of buffer `target` + addend). */
typedef struct TileMirReloc {
  int32_t buf;
  int64_t offset;
  int32_t target;
  int64_t addend;
  bool high;
} TileMirReloc;

typedef struct TileMir {
  const TileTarget *target;
  int32_t ninsts, cap_insts;
  TileMirInst *insts;
  int32_t nregs, cap_regs;
  uint8_t *reg_class;        /* TileMirRegClass per virtual register */
  int32_t nbufs, cap_bufs;
  TileMirBuffer *bufs;
  int32_t nrelocs, cap_relocs;
  TileMirReloc *relocs;
  int32_t nsems;             /* semaphore ids 0 .. nsems-1 */
  int32_t loop_depth;        /* while building */
  /* Source attribution the builder stamps on every inst and buffer it adds: the entry
   * of srcs tile_mir_set_source chose (a generator that emits within another op may
   * save it and put it back). */
  int32_t cur_src;
  struct TileMirSrc {
    const char *name;
    TileLoc loc;
  } *srcs;                   /* entry k - 1 is source k */
  int32_t nsrcs, cap_srcs;
} TileMir;

/* ---- building ---- */

void tile_mir_init(TileMir *m, const TileTarget *t);
void tile_mir_free(TileMir *m);
int32_t tile_mir_sreg(TileMir *m);
int32_t tile_mir_vreg(TileMir *m);
int32_t tile_mir_sem(TileMir *m);
/* A buffer of `bytes` per slot; returns its id. */
int32_t tile_mir_buffer(TileMir *m, const char *name, TileSpace space, int64_t bytes,
                        int32_t nslots, int32_t align);
/* A view of bytes [off, off + bytes) of buffer `of` (a view of a view is one of the
 * buffer beneath); returns its id. */
int32_t tile_mir_view(TileMir *m, const char *name, int32_t of, int64_t off, int64_t bytes);
/* The buffer a view is of (buf itself for any other), and where in it the view starts
 * (0 for any other). */
int32_t tile_mir_buffer_root(const TileMir *m, int32_t buf);
int64_t tile_mir_buffer_offset(const TileMir *m, int32_t buf);
/* Names each view's buffer in its place in every memory entry. */
void tile_mir_canon_views(TileMir *m);
/* Sets initial contents (copied) of a buffer. */
void tile_mir_data(TileMir *m, int32_t buf, const void *bytes, int64_t len);
/* `li` into a fresh sreg: imm, plus the address of buffer buf when buf >= 0 (layout
 * adds it). Returns the register. */
int32_t tile_mir_li(TileMir *m, int64_t imm, int32_t buf);
/* Moves insts [first, end) to position at (at <= first), keeping the order of the rest
 * (code generated late that belongs earlier); false when out of memory. */
bool tile_mir_move_insts(TileMir *m, int32_t at, int32_t first, int32_t end);
/* Moves k blocks of insts appended after the first n0, [lo[j], hi[j]), each to just
 * before inst at[j] of those n0 (at nondecreasing; blocks bound for one place keep
 * their order j), in one pass: what k calls of tile_mir_move_insts would do, in time
 * linear in the code rather than in k times it. The blocks must cover every inst after
 * n0. */
bool tile_mir_insert_blocks(TileMir *m, int32_t n0, const int32_t *at, const int32_t *lo,
                            const int32_t *hi, int32_t k);
void tile_mir_reloc(TileMir *m, int32_t buf, int64_t offset, int32_t target,
                    int64_t addend, bool high);
/* Sets the source op later insts are attributed to. */
void tile_mir_set_source(TileMir *m, const char *name, TileLoc loc);
/* The entry of srcs for (name, loc), made if it is not among the last few: a value for
 * TileMirInst.src (0 for neither a name nor a location). */
int32_t tile_mir_src(TileMir *m, const char *name, TileLoc loc);
/* An inst's source op name (NULL for none) and location. */
const char *tile_mir_src_name(const TileMir *m, const TileMirInst *in);
TileLoc tile_mir_src_loc(const TileMir *m, const TileMirInst *in);
/* Appends an inst (fields as given; mem entries with buf < 0 unused); returns its
 * index. The source attribution is stamped from tile_mir_set_source. */
int32_t tile_mir_add(TileMir *m, TileMirInst in);
/* Shorthands: an inst of op with the given fields, no memory, imm_buf -1. */
TileMirInst tile_mir_inst(int op, int32_t d, int32_t a, int32_t b, int32_t c, int32_t imm);
/* Adds mem entry (buf, access, slot_ofs) to *in (at the first free entry). */
void tile_mir_mem(TileMirInst *in, int32_t buf, int access, int slot_ofs);
void tile_mir_loop_begin(TileMir *m, int32_t trips, int32_t flags);
void tile_mir_loop_end(TileMir *m);

/* Structural checks (loops balanced and <= 4 deep, trip counts >= 1, operands of the
 * right register class and defined before use on some path, units and sems in range,
 * buffers valid). A failure is a generator bug: one sentence in d, false. */
bool tile_mir_verify(const TileMir *m, TileDiag *d);
/* Text form, one inst per line, loops indented; virtual registers print as %sN/%vN,
 * buffers by name. */
void tile_mir_print(FILE *out, const TileMir *m);

/* ---- scheduled code ---- */

/* A bundle of scheduled ops. Register fields still hold virtual registers until
 * regalloc; slot words follow the ISA's layout (tile_slot_first). A `loop` op in the
 * branch word of bundle p covers bundles p+1 .. p+c as in the machine. */
typedef struct TileMirBundle {
  TileMirInst slot[TILE_BUNDLE_SLOTS];
} TileMirBundle;

typedef struct TileMirCode {
  int32_t nbundles, cap;
  TileMirBundle *b;
  /* What the modulo scheduler did to each pipelined loop, for the listing and tests. */
  int32_t nloops;
  struct TileMirLoopInfo {
    int32_t first, last; /* bundle range of the steady-state body */
    int32_t ii, stages, res_mii, rec_mii;
  } *loops;
  /* Set by tile_mir_regalloc: register fields hold machine registers from then on. */
  bool allocated;
} TileMirCode;

void tile_mir_code_free(TileMirCode *c);
/* Schedules m into bundles: innermost loops flagged TILE_MIR_PIPELINE are modulo
 * scheduled (with prologue and epilogue; a loop with fewer trips than stages is list
 * scheduled instead), everything else is list scheduled per straight-line stretch.
 * Honours every dependence above, slot counts and unit occupancy, so the emulator in
 * strict mode finds no hazard. Ends the code with `halt`. */
bool tile_mir_schedule(const TileMir *m, TileMirCode *out, TileDiag *d);
/* Assigns machine registers (spilling to VMEM buffers it adds to m when the target's
 * registers run out); rewrites out's register fields in place. */
bool tile_mir_regalloc(TileMir *m, TileMirCode *code, TileDiag *d);
/* Places every buffer (sets addr) within the target's memories, numbers semaphores;
 * a program that does not fit gets a diagnostic naming the buffer and sizes. */
bool tile_mir_layout(TileMir *m, TileDiag *d);
/* The same, sharing VMEM and SMEM between buffers whose live ranges in code (scheduled
 * and allocated) do not meet. */
bool tile_mir_layout_code(TileMir *m, const TileMirCode *code, TileDiag *d);
/* Builds the object: bundles with relocated immediates, initial data, symbols. */
bool tile_mir_emit(const TileMir *m, const TileMirCode *code, TileObject *obj, TileDiag *d);
/* Annotated listing (-S): bundles in slot columns, each op tagged with its source;
 * registers as sN/vN once allocated (code->allocated), else as %sN/%vN. */
void tile_mir_listing(FILE *out, const TileMir *m, const TileMirCode *code);
/* Text form of scheduled code (--emit=sched, --emit=alloc): one bundle per line (its
 * index, then its ops separated by ` ; `), loop bodies indented under their `loop`;
 * registers print as %sN/%vN (virtual) or sN/vN (physical, after tile_mir_regalloc),
 * buffer-relative immediates by buffer name. */
void tile_mir_code_print(FILE *out, const TileMir *m, const TileMirCode *code, bool physical);

#ifdef __cplusplus
}
#endif
#endif
