#include "tests/testing/fixture_engine.h"

#include <cstdio>
#include <cstdlib>

#include "policies/registry.h"
#include "server/tokenizer/load.h"
#include "tests/testing/fixtures.h"

namespace coldcompress::testing {

std::unique_ptr<Engine> FixtureEngine(const std::string& name,
                                      const EngineOptions& options) {
  const std::string dir = FixtureDir(name);
  auto model = LlamaModel::Load(dir, at::kFloat, at::kCPU);
  auto tokenizer = LoadTokenizer(dir);
  if (!model.ok() || !tokenizer.ok()) {
    std::fprintf(
        stderr, "fixture %s does not load: %s\n", dir.c_str(),
        (model.ok() ? tokenizer.status() : model.status()).ToString().c_str());
    std::abort();
  }
  auto registry = std::make_unique<PolicyRegistry>();
  RegisterBuiltins(*registry);
  return std::make_unique<Engine>(*std::move(model), *std::move(tokenizer),
                                  std::move(registry), options);
}

}  // namespace coldcompress::testing
