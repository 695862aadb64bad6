// The one place built-in policies and compressors are registered.
#include <c10/util/Exception.h>

#include "policies/full.h"
#include "policies/registry.h"

namespace coldcompress {

void RegisterBuiltins(PolicyRegistry& registry) {
  const absl::Status statuses[] = {
      registry.RegisterPolicy(FullPolicyInfo()),
      registry.RegisterCompressor(FullCompressorInfo()),
  };
  for (const absl::Status& s : statuses) {
    TORCH_CHECK(s.ok(), "RegisterBuiltins: ", s.ToString());
  }
}

}  // namespace coldcompress
