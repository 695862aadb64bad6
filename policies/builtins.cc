// The one place built-in policies and compressors are registered.
#include "policies/builtins.h"

#include <c10/util/Exception.h>

namespace coldcompress {

ParamInfo GlobalTokensParam() {
  return {"global_tokens", "int", "4",
          "attention sinks: positions < g are never evicted"};
}

ParamInfo RecentWindowParam() {
  return {"recent_window", "double", "10",
          "recent tokens never evicted: < 1 a fraction of the layer's cache, "
          "else a token count"};
}

void RegisterBuiltins(PolicyRegistry& registry) {
  const absl::Status statuses[] = {
      registry.RegisterPolicy(FullPolicyInfo()),
      registry.RegisterPolicy(RecentGlobalPolicyInfo()),
      registry.RegisterPolicy(RandomPolicyInfo()),
      registry.RegisterPolicy(L2PolicyInfo()),
      registry.RegisterPolicy(HeavyHitterPolicyInfo()),
      registry.RegisterPolicy(HybridPolicyInfo()),
      registry.RegisterCompressor(FullCompressorInfo()),
      registry.RegisterCompressor(RecentGlobalCompressorInfo()),
      registry.RegisterCompressor(RandomCompressorInfo()),
      registry.RegisterCompressor(L2CompressorInfo()),
      registry.RegisterCompressor(SnapKVCompressorInfo()),
  };
  for (const absl::Status& s : statuses) {
    TORCH_CHECK(s.ok(), "RegisterBuiltins: ", s.ToString());
  }
}

const PolicyRegistry& BuiltinRegistry() {
  static const PolicyRegistry* registry = [] {
    auto* r = new PolicyRegistry();
    RegisterBuiltins(*r);
    return r;
  }();
  return *registry;
}

}  // namespace coldcompress
