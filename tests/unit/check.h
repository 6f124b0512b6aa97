/* A small C test harness: tests are C functions registered at load time and run by
 * GoogleTest (gtest_bridge.cc registers each one as a gtest, so ctest discovers and
 * reports them one by one).
 *
 *   TEST(parser, empty_module) {
 *     CHECK(m != NULL);
 *     CHECK_EQ(3, n);             // integers, with both values in the message
 *     CHECK_STREQ("add", name);
 *     REQUIRE(p != NULL);         // like CHECK, but ends the test when it fails
 *   }
 *
 * SKIP("why") ends the test as skipped. */
#ifndef TILE_TEST_CHECK_H
#define TILE_TEST_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void check_register(const char *suite, const char *name, void (*fn)(void), const char *file,
                    int line);
bool check_true(bool ok, const char *expr, const char *file, int line);
bool check_eq(int64_t want, int64_t got, const char *ewant, const char *egot, const char *file,
              int line);
bool check_streq(const char *want, const char *got, const char *ewant, const char *egot,
                 const char *file, int line);
void check_skip(const char *why, const char *file, int line);

#ifndef __cplusplus /* the gtest bridge has its own TEST */
#define TEST(suite, name)                                                          \
  static void test_##suite##_##name(void);                                         \
  __attribute__((constructor)) static void register_##suite##_##name(void) {       \
    check_register(#suite, #name, test_##suite##_##name, __FILE__, __LINE__);      \
  }                                                                                \
  static void test_##suite##_##name(void)
#endif

#define CHECK(c) check_true(!!(c), #c, __FILE__, __LINE__)
#define CHECK_EQ(want, got) check_eq((int64_t)(want), (int64_t)(got), #want, #got, __FILE__, __LINE__)
#define CHECK_STREQ(want, got) check_streq((want), (got), #want, #got, __FILE__, __LINE__)
#define REQUIRE(c)                                   \
  do {                                               \
    if (!check_true(!!(c), #c, __FILE__, __LINE__)) \
      return;                                        \
  } while (0)
#define SKIP(why)                          \
  do {                                     \
    check_skip((why), __FILE__, __LINE__); \
    return;                                \
  } while (0)

#ifdef __cplusplus
}
#endif
#endif
