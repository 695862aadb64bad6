#include "fuzz/support.h"

#include <cstdlib>

#include "policies/layer_plan.h"
#include "policies/registry.h"
#include "server/model/sampling.h"

namespace coldcompress::fuzz {
namespace {

const PolicyRegistry& Registry() { return BuiltinRegistry(); }

void Require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

absl::Status ResolvePlan(const PolicySpec& spec, int64_t layers, int64_t prompt,
                         int64_t smax) {
  absl::StatusOr<CachePlan> plan =
      ResolveCachePlan(spec, layers, smax, Registry());
  if (!plan.ok()) return plan.status();
  Require(static_cast<int64_t>(plan->layers.size()) == layers);
  for (const LayerPlan& l : plan->layers) {
    Require(l.capacity >= 1 && l.capacity <= smax);
    Require(l.recent_window >= 0 && l.recent_window <= l.capacity);
    Require(Registry().CheckPolicy(l.strategy).ok());
    Require(Registry().CheckCompressor(l.prompt_compression).ok());
  }
  const int64_t prefill = PrefillLength(prompt, plan->MinCapacity(), spec);
  Require(prefill >= 1 && prefill <= prompt);
  return Registry().CheckPromptFits(*plan, prefill);
}

absl::Status CheckSampling(std::optional<float> temperature,
                           std::optional<int32_t> top_k,
                           std::optional<float> top_p) {
  SamplingOptions o;
  if (temperature) o.temperature = *temperature;
  if (top_k) o.top_k = *top_k;
  if (top_p) o.top_p = *top_p;
  return ValidateSampling(o);
}

}  // namespace coldcompress::fuzz
