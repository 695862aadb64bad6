#include "tests/testing/fixtures.h"

#include <cstdio>
#include <cstdlib>

namespace coldcompress::testing {

std::string FixtureDir(const std::string& name) {
  const char* root = std::getenv("COLDCOMPRESS_FIXTURES");
  if (root == nullptr || *root == '\0') {
    std::fprintf(
        stderr, "COLDCOMPRESS_FIXTURES is not set; run the tests with ctest\n");
    std::abort();
  }
  return std::string(root) + "/" + name;
}

std::string SourceDir() { return COLDCOMPRESS_SOURCE_DIR; }

}  // namespace coldcompress::testing
