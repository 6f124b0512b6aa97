/* Emission: a whole program (DMA in from a bound HBM input, vector math, DMA out to a
 * bound output) taken through register allocation, layout and emission and run on the
 * emulator in strict mode, once from a hand-written schedule and once from
 * tile_mir_schedule; the object's symbols, data and target; buffer-relative immediates
 * relocated and range-checked; unallocated registers refused; the listing. */
#include "alloc_fixture.h"

enum { ROW = 8 * 128 };

typedef struct Prog {
  TileMir m;
  int32_t x, y, a, b, din, dout, sem_in, sem_out;
} Prog;

/* Buffers of y = 2 * x + 1: x and y bound in HBM, a and b their VMEM copies, one DMA
 * descriptor each way. */
static void prog_buffers(Prog *p, const TileTarget *t) {
  TileMir *m = &p->m;
  tile_mir_init(m, t);
  int32_t bufs[2];
  const char *names[2] = {"x", "y"};
  for (int i = 0; i < 2; i++) {
    bufs[i] = tile_mir_buffer(m, names[i], TILE_SPACE_HBM, ROW * 4, 1, 64);
    m->bufs[bufs[i]].bind = i == 0 ? TILE_BIND_IN : TILE_BIND_OUT;
    m->bufs[bufs[i]].elem = TILE_ELEM_F32;
    m->bufs[bufs[i]].rank = 2;
    m->bufs[bufs[i]].dims[0] = 8;
    m->bufs[bufs[i]].dims[1] = 128;
  }
  p->x = bufs[0];
  p->y = bufs[1];
  p->a = tile_mir_buffer(m, "a", TILE_SPACE_VMEM, ROW * 4, 1, 64);
  p->b = tile_mir_buffer(m, "b", TILE_SPACE_VMEM, ROW * 4, 1, 64);
  p->din = tile_mir_buffer(m, "din", TILE_SPACE_SMEM, 64, 1, 4);
  p->dout = tile_mir_buffer(m, "dout", TILE_SPACE_SMEM, 64, 1, 4);
  p->sem_in = tile_mir_sem(m);
  p->sem_out = tile_mir_sem(m);
  af_desc(m, p->din, p->x, p->a, ROW * 4, p->sem_in);
  af_desc(m, p->dout, p->b, p->y, ROW * 4, p->sem_out);
}

static float input(int i) { return (float)(i % 97) - 40.0f; }

static void run_and_check(const TileObject *obj, const TileTarget *t) {
  float *x = malloc(ROW * 4), *y = malloc(ROW * 4);
  for (int i = 0; i < ROW; i++) x[i] = input(i);
  AfBind in = {"x", x, ROW * 4}, out = {"y", y, ROW * 4};
  TileEmu *e = af_run(obj, t, &in, 1, &out, 1);
  CHECK(e != NULL);
  if (e) {
    for (int i = 0; i < ROW; i++)
      if (!CHECK(y[i] == 2 * input(i) + 1)) break;
    tile_emu_free(e);
  }
  free(x);
  free(y);
}

/* The hand-written schedule (tiny's latencies: salu 1, valu 2, vload 2, vstore 1). */
static void prog_code(Prog *p, TileMirCode *c) {
  TileMir *m = &p->m;
  int32_t sdi = tile_mir_sreg(m), sdo = tile_mir_sreg(m), sa = tile_mir_sreg(m);
  int32_t sb = tile_mir_sreg(m), st = tile_mir_sreg(m);
  int32_t two = tile_mir_vreg(m), one = tile_mir_vreg(m), vx = tile_mir_vreg(m),
          vy = tile_mir_vreg(m);
  memset(c, 0, sizeof *c);
  tile_mir_set_source(m, "mul", (TileLoc){"k.tile", 3, 5});
  af_put(c, 0, af_addr(sdi, p->din, 0));
  af_put(c, 0, af_addr(sdo, p->dout, 0));
  af_put(c, 1, af_op(TILE_MOP_DMA, 0, sdi, 0, 0, 0));
  af_put(c, 2, af_op(TILE_MOP_WAIT, 0, 0, 0, p->sem_in, 1));
  af_put(c, 2, af_addr(sa, p->a, 0));
  af_put(c, 2, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  af_put(c, 2, af_op(TILE_MOP_VLI, two, 0, 0, 0, 0x40000000));
  af_put(c, 2, af_op(TILE_MOP_VLI, one, 0, 0, 0, 0x3f800000));
  af_put(c, 3, af_op(TILE_MOP_VLD, vx, sa, st, 0, 0));
  af_put(c, 5, af_op(TILE_MOP_VFMAF, vy, vx, two, one, 0));
  af_put(c, 5, af_addr(sb, p->b, 0));
  af_put(c, 7, af_op(TILE_MOP_VST, vy, sb, st, 0, 0));
  af_put(c, 8, af_op(TILE_MOP_DMA, 0, sdo, 0, 0, 0));
  af_put(c, 9, af_op(TILE_MOP_WAIT, 0, 0, 0, p->sem_out, 1));
  af_halt(c, 10);
  c->b[3].slot[tile_slot_first(TILE_SLOT_VLOAD)].src =
      tile_mir_src(m, "mul", (TileLoc){"k.tile", 3, 5});
}

TEST(emit, hand_schedule_runs) {
  TileTarget t = af_target("tiny");
  Prog p;
  prog_buffers(&p, &t);
  TileMirCode c;
  prog_code(&p, &c);
  TileObject obj;
  REQUIRE(af_back(&p.m, &c, &obj));
  CHECK_STREQ("tiny", obj.target);
  REQUIRE(obj.ncode == 1);
  CHECK_EQ(TILE_OBJ_ALL_CHIPS, obj.code[0].chip);
  CHECK_EQ(11, obj.code[0].nbundles);
  REQUIRE(obj.nsyms == 2);
  CHECK_STREQ("x", obj.syms[0].name);
  CHECK_EQ(TILE_BIND_IN, obj.syms[0].kind);
  CHECK_EQ(TILE_BIND_OUT, obj.syms[1].kind);
  CHECK_EQ(2, obj.syms[1].rank);
  CHECK_EQ(128, obj.syms[1].dims[1]);
  CHECK_EQ(p.m.bufs[p.y].addr, obj.syms[1].addr);
  CHECK_EQ(2, obj.ndata); /* the two descriptors */
  CHECK_EQ(TILE_SPACE_SMEM, obj.data[0].space);
  /* `li sX, a` became the address of a; the DMA descriptor holds x's and a's. */
  const TileMInst *li = NULL;
  for (int w = 0; w < TILE_BUNDLE_SLOTS; w++)
    if (obj.code[0].bundles[2].slot[w].op == TILE_MOP_LI &&
        obj.code[0].bundles[2].slot[w].imm != 512)
      li = &obj.code[0].bundles[2].slot[w];
  REQUIRE(li != NULL);
  CHECK_EQ(p.m.bufs[p.a].addr, li->imm);
  int32_t words[16];
  memcpy(words, obj.data[0].bytes, sizeof words);
  CHECK_EQ(p.m.bufs[p.x].addr, words[2]);
  CHECK_EQ(p.m.bufs[p.a].addr, words[4]);
  run_and_check(&obj, &t);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&p.m);
}

/* The same kernel as MIR, scheduled by tile_mir_schedule, on both targets. */
static void scheduled(const char *target) {
  TileTarget t = af_target(target);
  Prog p;
  prog_buffers(&p, &t);
  TileMir *m = &p.m;
  int32_t sdi = tile_mir_sreg(m), sdo = tile_mir_sreg(m), sa = tile_mir_sreg(m);
  int32_t sb = tile_mir_sreg(m), st = tile_mir_sreg(m);
  int32_t two = tile_mir_vreg(m), one = tile_mir_vreg(m), vx = tile_mir_vreg(m),
          vy = tile_mir_vreg(m);
  tile_mir_set_source(m, "mul", (TileLoc){"k.tile", 3, 5});
  tile_mir_add(m, af_addr(sdi, p.din, 0));
  tile_mir_add(m, af_addr(sdo, p.dout, 0));
  TileMirInst dma = af_op(TILE_MOP_DMA, 0, sdi, 0, 0, 0);
  tile_mir_mem(&dma, p.din, TILE_MIR_READ, 0);
  tile_mir_mem(&dma, p.x, TILE_MIR_READ, 0);
  tile_mir_mem(&dma, p.a, TILE_MIR_WRITE, 0);
  dma.est_cycles = tile_target_xfer_cycles(&t, ROW * 4, t.hbm_bw);
  tile_mir_add(m, dma);
  TileMirInst wait = af_op(TILE_MOP_WAIT, 0, 0, 0, p.sem_in, 1);
  tile_mir_mem(&wait, p.a, TILE_MIR_WRITE, 0);
  tile_mir_mem(&wait, p.x, TILE_MIR_WRITE, 0);
  tile_mir_add(m, wait);
  tile_mir_add(m, af_addr(sa, p.a, 0));
  tile_mir_add(m, af_op(TILE_MOP_LI, st, 0, 0, 0, 512));
  tile_mir_add(m, af_op(TILE_MOP_VLI, two, 0, 0, 0, 0x40000000));
  tile_mir_add(m, af_op(TILE_MOP_VLI, one, 0, 0, 0, 0x3f800000));
  tile_mir_add(m, af_mem(af_op(TILE_MOP_VLD, vx, sa, st, 0, 0), p.a, TILE_MIR_READ));
  tile_mir_add(m, af_op(TILE_MOP_VFMAF, vy, vx, two, one, 0));
  tile_mir_add(m, af_addr(sb, p.b, 0));
  tile_mir_add(m, af_mem(af_op(TILE_MOP_VST, vy, sb, st, 0, 0), p.b, TILE_MIR_WRITE));
  dma = af_op(TILE_MOP_DMA, 0, sdo, 0, 0, 0);
  tile_mir_mem(&dma, p.dout, TILE_MIR_READ, 0);
  tile_mir_mem(&dma, p.b, TILE_MIR_READ, 0);
  tile_mir_mem(&dma, p.y, TILE_MIR_WRITE, 0);
  dma.est_cycles = tile_target_xfer_cycles(&t, ROW * 4, t.hbm_bw);
  tile_mir_add(m, dma);
  wait = af_op(TILE_MOP_WAIT, 0, 0, 0, p.sem_out, 1);
  tile_mir_mem(&wait, p.b, TILE_MIR_WRITE, 0);
  tile_mir_mem(&wait, p.y, TILE_MIR_WRITE, 0);
  tile_mir_add(m, wait);
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  REQUIRE(tile_mir_verify(m, &d));
  TileMirCode c;
  memset(&c, 0, sizeof c);
  REQUIRE(tile_mir_schedule(m, &c, &d));
  TileObject obj;
  REQUIRE(af_back(m, &c, &obj));
  run_and_check(&obj, &t);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(m);
}

TEST(emit, scheduled_tiny) { scheduled("tiny"); }
TEST(emit, scheduled_v5e) { scheduled("v5e-like"); }

/* A buffer-relative immediate that does not fit 32 bits is refused with the buffer. */
TEST(emit, immediate_out_of_range) {
  TileTarget t = af_target("v5e-like"); /* 16 GiB of HBM */
  TileMir m;
  tile_mir_init(&m, &t);
  tile_mir_buffer(&m, "big", TILE_SPACE_HBM, 3LL << 30, 1, 64);
  int32_t far = tile_mir_buffer(&m, "far", TILE_SPACE_HBM, 64, 1, 64);
  int32_t s = tile_mir_sreg(&m);
  TileMirCode c = {0};
  tile_mir_set_source(&m, NULL, (TileLoc){0});
  af_put(&c, 0, af_addr(s, far, 0));
  c.b[0].slot[0].src = tile_mir_src(&m, "copy", (TileLoc){0});
  af_halt(&c, 1);
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  REQUIRE(tile_mir_regalloc(&m, &c, &d) && tile_mir_layout(&m, &d));
  TileObject obj;
  CHECK(!tile_mir_emit(&m, &c, &obj, &d));
  CHECK_STREQ(
      "emit: li in bundle 0 (from copy) addresses buffer 'far' at 3221225472, which "
      "does not fit its signed 32-bit immediate",
      d.last);
  CHECK_EQ(0, obj.ncode);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* Virtual registers (not yet allocated) do not fit a 6-bit field. */
TEST(emit, needs_allocated_registers) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  for (int i = 0; i < 70; i++) tile_mir_vreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_op(TILE_MOP_VLI, 69, 0, 0, 0, 0));
  af_halt(&c, 1);
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  REQUIRE(tile_mir_layout(&m, &d));
  TileObject obj;
  CHECK(!tile_mir_emit(&m, &c, &obj, &d));
  CHECK(strstr(d.last, "were registers allocated?") != NULL);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}

/* Emission before layout is refused. */
TEST(emit, needs_layout) {
  TileTarget t = af_target("tiny");
  Prog p;
  prog_buffers(&p, &t);
  TileMirCode c = {0};
  af_halt(&c, 0);
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  TileObject obj;
  CHECK(!tile_mir_emit(&p.m, &c, &obj, &d));
  CHECK_STREQ("emit: buffer 'x' has no address (run layout first)", d.last);
  tile_mir_code_free(&c);
  tile_mir_free(&p.m);
}

/* The listing: slot columns, source tags, a loop header, the footer. */
TEST(emit, listing) {
  TileTarget t = af_target("tiny");
  Prog p;
  prog_buffers(&p, &t);
  TileMirCode c;
  prog_code(&p, &c);
  AF_CAPTURE(before, tile_mir_listing(out, &p.m, &c));
  CHECK(strstr(before, "vfma.f %v") != NULL); /* virtual registers before allocation */
  free(before);
  TileObject obj;
  REQUIRE(af_back(&p.m, &c, &obj));
  AF_CAPTURE(text, tile_mir_listing(out, &p.m, &c));
  CHECK(strstr(text, "# target tiny: 11 bundles") != NULL);
  CHECK(strstr(text, "scalar0") != NULL && strstr(text, "branch0") != NULL);
  CHECK(strstr(text, "[mul:3]") != NULL);
  CHECK(strstr(text, "vfma.f v") != NULL);
  CHECK(strstr(text, "sem.wait sem0, 1") != NULL);
  CHECK(strstr(text, "# 11 bundles, 11 executed") != NULL);
  CHECK(strstr(text, "#   vector        3 ops") != NULL);
  free(text);
  AF_CAPTURE(code, tile_mir_code_print(out, &p.m, &c, true));
  CHECK(strstr(code, "li s") != NULL);
  CHECK(strstr(code, "%") == NULL); /* machine registers only */
  free(code);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&p.m);
}

TEST(emit, listing_loop_header) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t s = tile_mir_sreg(&m);
  TileMirCode c = {0};
  af_put(&c, 0, af_op(TILE_MOP_LI, s, 0, 0, 0, 0));
  af_loop(&c, 1, 2, 10);
  af_put(&c, 2, af_op(TILE_MOP_ADDI, s, s, 0, 0, 1));
  af_put(&c, 3, af_op(TILE_MOP_ADDI, s, s, 0, 0, 1));
  af_halt(&c, 4);
  c.nloops = 1;
  c.loops = calloc(1, sizeof *c.loops);
  c.loops[0] = (struct TileMirLoopInfo){
      .first = 2, .last = 3, .ii = 2, .stages = 1, .res_mii = 1, .rec_mii = 2};
  TileObject obj;
  REQUIRE(af_back(&m, &c, &obj));
  AF_CAPTURE(text, tile_mir_listing(out, &m, &c));
  CHECK(strstr(text, "# loop: bundles 2..3, 10 trips, software-pipelined: ii 2, 1 stages") != NULL);
  CHECK(strstr(text, "# 5 bundles, 23 executed") != NULL);
  free(text);
  TileEmu *e = af_run(&obj, &t, NULL, 0, NULL, 0);
  REQUIRE(e != NULL);
  CHECK_EQ(20, tile_emu_sreg(e, 0, c.b[0].slot[0].d));
  tile_emu_free(e);
  tile_object_free(&obj);
  tile_mir_code_free(&c);
  tile_mir_free(&m);
}
