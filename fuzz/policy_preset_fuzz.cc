// libFuzzer target: YAML text as a cache preset file (configs/presets/*.yaml)
// through the preset parser, then resolved over a 32-layer model for a
// 1,000-token sequence with a 600-token prompt. No crash, no sanitizer
// report, invariants kept (fuzz/support.h).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/support.h"
#include "server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<coldcompress::PolicyOverlay> overlay =
      coldcompress::ParsePolicyPreset(yaml);
  if (!overlay.ok()) return 0;
  coldcompress::PolicySpec spec;
  overlay->ApplyTo(spec);
  (void)coldcompress::fuzz::ResolvePlan(spec, 32, 600, 1000);
  return 0;
}
