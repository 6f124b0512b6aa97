/* Types and the op table: formatting, equality, lookups. */
#include <string.h>

#include "check.h"
#include "tile/ir.h"
#include "tile/ops.h"

TEST(types, format) {
  char buf[128];
  TileType t = tile_type_tensor(TILE_ELEM_BF16, 2, (int64_t[]){8, 128});
  tile_type_format(&t, buf, sizeof buf);
  CHECK_STREQ("tensor<8x128xbf16>", buf);
  t = tile_type_buffer(TILE_SPACE_VMEM, TILE_ELEM_F32, 3, (int64_t[]){2, 8, 128});
  tile_type_format(&t, buf, sizeof buf);
  CHECK_STREQ("vmem<2x8x128xf32>", buf);
  t = tile_type_tensor(TILE_ELEM_F32, 0, NULL);
  tile_type_format(&t, buf, sizeof buf);
  CHECK_STREQ("tensor<f32>", buf);
  t = tile_type_scalar(TILE_ELEM_I32);
  tile_type_format(&t, buf, sizeof buf);
  CHECK_STREQ("i32", buf);
}

TEST(types, equality_and_numel) {
  TileType a = tile_type_tensor(TILE_ELEM_F32, 2, (int64_t[]){4, 5});
  TileType b = tile_type_tensor(TILE_ELEM_F32, 2, (int64_t[]){4, 5});
  TileType c = tile_type_tensor(TILE_ELEM_BF16, 2, (int64_t[]){4, 5});
  CHECK(tile_type_eq(&a, &b));
  CHECK(!tile_type_eq(&a, &c));
  CHECK_EQ(20, tile_type_numel(&a));
}

TEST(types, elem_lookup) {
  CHECK_EQ(TILE_ELEM_BF16, tile_elem_lookup("bf16", 4));
  CHECK_EQ(TILE_ELEM_NONE, tile_elem_lookup("bf17", 4));
  CHECK_EQ(16, tile_elem_bits(TILE_ELEM_BF16));
  CHECK(tile_elem_is_float(TILE_ELEM_F8E4M3FN));
  CHECK(!tile_elem_is_float(TILE_ELEM_I8));
}

TEST(ops, table_lookup) {
  CHECK_EQ(TILE_OP_MATMUL, tile_op_lookup("matmul", 6));
  CHECK_EQ(-1, tile_op_lookup("matmu", 5));
  for (int k = 0; k < TILE_OP_COUNT; k++) {
    CHECK_EQ(k, tile_op_lookup(tile_op_name(k), strlen(tile_op_name(k))));
    CHECK(tile_op_info[k].doc[0] != 0);
  }
}
