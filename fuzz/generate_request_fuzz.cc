// libFuzzer target: a GenerateRequest decoded from the fuzzer's bytes (the
// protobuf wire format, so every field and nesting is reachable) goes through
// the request validation that needs no model: the session id, the sampling
// values, the cache policy (preset, then the fields set) and its resolution
// over the layers with the registry's checks. Whatever the input: no crash,
// no sanitizer report, and a plan that resolves keeps its invariants
// (fuzz/support.h).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "coldcompress/v1/coldcompress.pb.h"
#include "fuzz/support.h"
#include "server/config.h"
#include "server/policy_request.h"

namespace {

const coldcompress::PresetStore& Presets() {
  static const coldcompress::PresetStore* presets = [] {
    auto* p = new coldcompress::PresetStore();
    auto loaded =
        coldcompress::LoadPresets(COLDCOMPRESS_SOURCE_DIR "/configs/presets");
    if (!loaded.ok()) std::abort();
    p->presets = *std::move(loaded);
    return p;
  }();
  return *presets;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  coldcompress::v1::GenerateRequest r;
  if (!r.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (!r.session_id().empty())
    (void)coldcompress::CheckSessionId(r.session_id());
  const auto& s = r.sampling();
  (void)coldcompress::fuzz::CheckSampling(
      s.has_temperature() ? std::optional<float>(s.temperature())
                          : std::nullopt,
      s.has_top_k() ? std::optional<int32_t>(s.top_k()) : std::nullopt,
      s.has_top_p() ? std::optional<float>(s.top_p()) : std::nullopt);

  bool given = false;
  absl::StatusOr<coldcompress::PolicySpec> spec =
      coldcompress::ToPolicySpec(r.cache(), Presets(), &given);
  if (!spec.ok()) return 0;
  // Models of 1 to 80 layers; prompts as long as the ids given (or the
  // text's bytes), sequences bounded like a server's context.
  const int64_t layers = 1 + r.prompt_token_ids().ids_size() % 80;
  const int64_t prompt =
      1 + (r.has_prompt_token_ids() ? r.prompt_token_ids().ids_size()
                                    : static_cast<int64_t>(r.prompt().size())) %
              (1 << 17);
  const int64_t smax = prompt + r.max_new_tokens() % (1 << 17);
  (void)coldcompress::fuzz::ResolvePlan(*spec, layers, prompt, smax);
  return 0;
}
