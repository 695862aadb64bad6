#include "tests/testing/fixtures.h"

#include <cstdio>
#include <cstdlib>

#include "policies/builtins.h"
#include "policies/plugins.h"
#include "policies/registry.h"

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

const PolicyRegistry& RegistryWithExamplePlugins() {
  static const PolicyRegistry* registry = [] {
    const char* path = std::getenv("COLDCOMPRESS_KEEP_IT_ODD_PLUGIN");
    if (path == nullptr || *path == '\0') {
      std::fprintf(stderr,
                   "COLDCOMPRESS_KEEP_IT_ODD_PLUGIN is not set; run the tests "
                   "with ctest\n");
      std::abort();
    }
    auto* r = new PolicyRegistry();
    RegisterBuiltins(*r);
    if (const absl::Status s = LoadPolicyPlugin(path, *r); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      std::abort();
    }
    return r;
  }();
  return *registry;
}

double MetricSum(const std::string& text, const std::string& prefix) {
  double total = 0;
  for (size_t at = text.find("\n" + prefix); at != std::string::npos;
       at = text.find("\n" + prefix, at + 1)) {
    const size_t space = text.find(' ', at + 1);
    total += std::stod(text.substr(space + 1));
  }
  return total;
}

double TimeLimit(double seconds) {
  const char* scale = std::getenv("COLDCOMPRESS_TIME_SCALE");
  const double factor = scale == nullptr ? 1.0 : std::atof(scale);
  return seconds * (factor > 0 ? factor : 1.0);
}

}  // namespace coldcompress::testing
