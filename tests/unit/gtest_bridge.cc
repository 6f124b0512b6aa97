// Registers every C test of check.h with GoogleTest and turns the C checks into gtest
// failures, so C tests get gtest's reporting, filtering and ctest discovery.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "check.h"

namespace {

struct CTest {
  const char *suite, *name;
  void (*fn)(void);
  const char *file;
  int line;
};

std::vector<CTest> &registry() {
  static std::vector<CTest> tests;
  return tests;
}

class CTestCase : public testing::Test {
 public:
  explicit CTestCase(void (*fn)(void)) : fn_(fn) {}
  void TestBody() override { fn_(); }

 private:
  void (*fn_)(void);
};

}  // namespace

extern "C" void check_register(const char *suite, const char *name, void (*fn)(void),
                               const char *file, int line) {
  registry().push_back({suite, name, fn, file, line});
}

extern "C" bool check_true(bool ok, const char *expr, const char *file, int line) {
  if (!ok) ADD_FAILURE_AT(file, line) << "CHECK(" << expr << ") failed";
  return ok;
}

extern "C" bool check_eq(int64_t want, int64_t got, const char *ewant, const char *egot,
                         const char *file, int line) {
  if (want != got)
    ADD_FAILURE_AT(file, line) << "CHECK_EQ(" << ewant << ", " << egot << "): expected " << want
                               << ", got " << got;
  return want == got;
}

extern "C" bool check_streq(const char *want, const char *got, const char *ewant,
                            const char *egot, const char *file, int line) {
  bool ok = want && got ? std::strcmp(want, got) == 0 : want == got;
  if (!ok)
    ADD_FAILURE_AT(file, line) << "CHECK_STREQ(" << ewant << ", " << egot << "): expected \""
                               << (want ? want : "(null)") << "\", got \""
                               << (got ? got : "(null)") << "\"";
  return ok;
}

extern "C" void check_skip(const char *why, const char *file, int line) {
  GTEST_SKIP_(why);  // records the skip; the C caller returns right after
  (void)file;
  (void)line;
}

int main(int argc, char **argv) {
  testing::InitGoogleTest(&argc, argv);
  for (const CTest &t : registry()) {
    void (*fn)(void) = t.fn;
    testing::RegisterTest(t.suite, t.name, nullptr, nullptr, t.file, t.line,
                          [fn]() -> testing::Test * { return new CTestCase(fn); });
  }
  return RUN_ALL_TESTS();
}
