/* The MIR checks (one sentence per generator bug, at the op's source location) and the
 * MIR printer. */
#include "alloc_fixture.h"

typedef struct Fx {
  TileTarget t;
  TileMir m;
  int32_t s0, s1, v0, v1, buf;
} Fx;

static void fx_init(Fx *f) {
  f->t = af_target("tiny");
  tile_mir_init(&f->m, &f->t);
  f->s0 = tile_mir_sreg(&f->m);
  f->s1 = tile_mir_sreg(&f->m);
  f->v0 = tile_mir_vreg(&f->m);
  f->v1 = tile_mir_vreg(&f->m);
  f->buf = tile_mir_buffer(&f->m, "tiles", TILE_SPACE_VMEM, 4096, 2, 64);
  tile_mir_set_source(&f->m, "matmul", (TileLoc){"k.tile", 12, 3});
}

/* Verifies; returns "" or the error text. */
static const char *verify(Fx *f) {
  static char last[600];
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  bool ok = tile_mir_verify(&f->m, &d);
  snprintf(last, sizeof last, "%s", ok ? "" : d.last);
  tile_mir_free(&f->m);
  return last;
}

static void load(Fx *f) {
  tile_mir_add(&f->m, af_addr(f->s0, f->buf, 0));
  tile_mir_add(&f->m, af_op(TILE_MOP_LI, f->s1, 0, 0, 0, 512));
  tile_mir_add(&f->m,
               af_mem(af_op(TILE_MOP_VLD, f->v0, f->s0, f->s1, 0, 0), f->buf, TILE_MIR_READ));
}

TEST(mir_verify, good_program) {
  Fx f;
  fx_init(&f);
  load(&f);
  tile_mir_loop_begin(&f.m, 4, TILE_MIR_PIPELINE);
  /* v1 is read before its definition in the loop: reached through the back edge. */
  tile_mir_add(&f.m, af_op(TILE_MOP_VADDF, f.v1, f.v0, f.v0, 0, 0));
  tile_mir_loop_end(&f.m);
  CHECK_STREQ("", verify(&f));
}

TEST(mir_verify, loop_carried_read) {
  Fx f;
  fx_init(&f);
  load(&f);
  tile_mir_loop_begin(&f.m, 4, 0);
  tile_mir_add(&f.m, af_op(TILE_MOP_VADDF, f.v0, f.v1, f.v0, 0, 0)); /* v1 from the last trip */
  tile_mir_add(&f.m, af_op(TILE_MOP_VMOV, f.v1, f.v0, 0, 0, 0));
  tile_mir_loop_end(&f.m);
  CHECK_STREQ("", verify(&f));
}

TEST(mir_verify, undefined_read) {
  Fx f;
  fx_init(&f);
  load(&f);
  tile_mir_add(&f.m, af_op(TILE_MOP_VADDF, f.v0, f.v1, f.v0, 0, 0));
  CHECK_STREQ("machine IR inst 3 (vadd.f, from matmul): %v3 is read but no definition reaches it",
              verify(&f));
}

TEST(mir_verify, wrong_class) {
  Fx f;
  fx_init(&f);
  tile_mir_add(&f.m, af_op(TILE_MOP_VLI, f.s0, 0, 0, 0, 0));
  CHECK_STREQ(
      "machine IR inst 0 (vli, from matmul): field d holds %s0 where the op needs a "
      "vector register",
      verify(&f));
}

TEST(mir_verify, register_out_of_range) {
  Fx f;
  fx_init(&f);
  tile_mir_add(&f.m, af_op(TILE_MOP_VLI, 99, 0, 0, 0, 0));
  CHECK_STREQ(
      "machine IR inst 0 (vli, from matmul): field d holds register 99, but only 4 "
      "virtual registers exist",
      verify(&f));
}

TEST(mir_verify, loops) {
  Fx f;
  fx_init(&f);
  tile_mir_loop_begin(&f.m, 2, 0);
  tile_mir_add(&f.m, af_op(TILE_MOP_LI, f.s0, 0, 0, 0, 1));
  CHECK_STREQ("machine IR inst 0 (loop.begin, from matmul): a loop that is never closed",
              verify(&f));
  fx_init(&f);
  tile_mir_loop_begin(&f.m, 0, 0);
  tile_mir_add(&f.m, af_op(TILE_MOP_LI, f.s0, 0, 0, 0, 1));
  tile_mir_loop_end(&f.m);
  CHECK_STREQ(
      "machine IR inst 0 (loop.begin, from matmul): a loop runs 0 times; trip counts "
      "start at 1",
      verify(&f));
  fx_init(&f);
  tile_mir_loop_end(&f.m);
  CHECK_STREQ("machine IR inst 0 (loop.end, from matmul): a loop end without a loop begin",
              verify(&f));
  fx_init(&f);
  for (int i = 0; i < 5; i++) tile_mir_loop_begin(&f.m, 2, 0);
  CHECK_STREQ("machine IR inst 4 (loop.begin, from matmul): loops nest more than 4 deep",
              verify(&f));
  fx_init(&f);
  tile_mir_loop_begin(&f.m, 2, 0);
  tile_mir_loop_end(&f.m);
  CHECK_STREQ("machine IR inst 0 (loop.begin, from matmul): a loop with an empty body", verify(&f));
}

TEST(mir_verify, units_sems_immediates) {
  Fx f;
  fx_init(&f);
  load(&f);
  tile_mir_add(&f.m, af_op(TILE_MOP_MXU_PUSH, 0, f.v0, 0, 2, 0));
  CHECK_STREQ(
      "machine IR inst 3 (mxu.push, from matmul): MXU unit 2 does not exist on target "
      "tiny (it has 2)",
      verify(&f));
  fx_init(&f);
  tile_mir_add(&f.m, af_op(TILE_MOP_WAIT, 0, 0, 0, 0, 1));
  CHECK_STREQ(
      "machine IR inst 0 (sem.wait, from matmul): semaphore 0 was never made (the "
      "program has 0)",
      verify(&f));
  fx_init(&f);
  load(&f);
  tile_mir_add(&f.m, af_op(TILE_MOP_MXU_LDW, 0, f.v0, 0, 0, 16));
  CHECK_STREQ(
      "machine IR inst 3 (mxu.ldw, from matmul): row group 16 is beyond the unit's 16 "
      "groups on target tiny",
      verify(&f));
  fx_init(&f);
  tile_mir_add(&f.m, af_op(TILE_MOP_VIOTA, f.v0, 0, 0, 0, 3));
  CHECK_STREQ("machine IR inst 0 (viota, from matmul): immediate 3 is outside 0..2", verify(&f));
  fx_init(&f);
  tile_mir_add(&f.m, af_op(TILE_MOP_HALT, 0, 0, 0, 0, 0));
  CHECK(strstr(verify(&f), "control op in machine IR") != NULL);
}

TEST(mir_verify, buffers) {
  Fx f;
  fx_init(&f);
  TileMirInst in = af_addr(f.s0, 7, 0);
  tile_mir_add(&f.m, in);
  CHECK_STREQ(
      "machine IR inst 0 (li, from matmul): its immediate is relative to buffer 7, but "
      "there are 1 buffers",
      verify(&f));
  fx_init(&f);
  f.m.bufs[f.buf].align = 48;
  CHECK_STREQ("machine IR: buffer 'tiles' has alignment 48, which is not a power of two",
              verify(&f));
  fx_init(&f);
  f.m.bufs[f.buf].bind = TILE_BIND_IN;
  CHECK_STREQ("machine IR: bound buffer 'tiles' is in vmem; a caller binds HBM buffers only",
              verify(&f));
  fx_init(&f);
  tile_mir_reloc(&f.m, f.buf, 8190, f.buf, 0, false);
  CHECK_STREQ(
      "machine IR: relocation 0 fills the word at byte 8190 of buffer 'tiles', which is "
      "not an aligned word inside its 8192 bytes",
      verify(&f));
  fx_init(&f);
  load(&f);
  f.m.insts[2].mem[0].access = 0;
  CHECK_STREQ(
      "machine IR inst 2 (vld, from matmul): memory reference to 'tiles' has access bits "
      "0 (read 1, write 2)",
      verify(&f));
}

TEST(mir_print, text) {
  Fx f;
  fx_init(&f);
  load(&f);
  tile_mir_loop_begin(&f.m, 4, TILE_MIR_PIPELINE);
  TileMirInst st = af_op(TILE_MOP_VST, f.v0, f.s0, f.s1, 0, 64);
  st.imm_buf = f.buf;
  tile_mir_mem(&st, f.buf, TILE_MIR_WRITE, 1);
  tile_mir_add(&f.m, st);
  tile_mir_loop_end(&f.m);
  AF_CAPTURE(text, tile_mir_print(out, &f.m));
  CHECK(strstr(text, "buffer tiles: vmem 4096 bytes x 2 slots, align 64\n") != NULL);
  CHECK(strstr(text, "  li %s0, tiles  // matmul @k.tile:12\n") != NULL);
  CHECK(strstr(text, "  vld %v2, %s0, %s1, 0  {r tiles}  // matmul @k.tile:12\n") != NULL);
  CHECK(strstr(text, "  loop 4 pipeline {  // matmul @k.tile:12\n") != NULL);
  CHECK(strstr(text, "    vst %v2, %s0, %s1, tiles+64  {w tiles[+1]}  // matmul @k.tile:12\n") !=
        NULL);
  CHECK(strstr(text, "\n  }\n") != NULL);
  free(text);
  tile_mir_free(&f.m);
}
