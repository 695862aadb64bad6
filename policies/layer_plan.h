// Resolution of a PolicySpec into one plan per layer: cache capacities
// (docs/policies.md 2.1), per-layer patterns (2.2) and recent windows (1.5).
#ifndef COLDCOMPRESS_POLICIES_LAYER_PLAN_H_
#define COLDCOMPRESS_POLICIES_LAYER_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "policies/policy_spec.h"

namespace coldcompress {

class PolicyRegistry;

// What one layer's cache does, fully resolved.
struct LayerPlan {
  std::string strategy;            // a registered policy name
  std::string prompt_compression;  // a registered compressor name
  int64_t capacity = 0;            // slots per KV head
  int64_t recent_window = 0;       // in tokens (docs/policies.md 1.5)
};

struct CachePlan {
  std::vector<LayerPlan> layers;  // one per model layer
  int64_t max_seq_len = 0;        // Smax the fractions resolved against

  int64_t MinCapacity() const;
  bool operator==(const CachePlan&) const = default;
};

inline bool operator==(const LayerPlan& a, const LayerPlan& b) {
  return a.strategy == b.strategy &&
         a.prompt_compression == b.prompt_compression &&
         a.capacity == b.capacity && a.recent_window == b.recent_window;
}

// docs/policies.md 2.1: a fraction in (0, 1] of smax, or an absolute (integral)
// token count > 1, rounded up to a multiple of 8 and capped at smax.
// `field` names the request field in error messages.
absl::StatusOr<int64_t> ResolveCacheLength(double x, int64_t smax,
                                           const std::string& field);

// docs/policies.md 2.2 "tile" / "repeat": spreads `pattern` over `num_layers`.
// REQUIRES: pattern is not empty.
absl::StatusOr<std::vector<std::string>> SpreadPattern(
    const std::vector<std::string>& pattern, const std::string& how,
    int64_t num_layers, const std::string& field);

// docs/policies.md 2.1 + 2.2 for lengths: "tile", "repeat", "pyramid",
// "funnel".
absl::StatusOr<std::vector<int64_t>> ResolveLayerLengths(
    const std::vector<double>& values, const std::string& how,
    int64_t num_layers, int64_t smax);

// docs/policies.md 1.5: < 1 is a fraction of the capacity, otherwise a token
// count (1 means one token; the reference's reading of 1 as 100% is a bug).
int64_t ResolveRecentWindow(double recent_window, int64_t capacity);

// Resolves and validates a whole spec. `max_seq_len` is |prompt| +
// max_new_tokens, already capped by the model's context length.
absl::StatusOr<CachePlan> ResolveCachePlan(const PolicySpec& spec,
                                           int64_t num_layers,
                                           int64_t max_seq_len,
                                           const PolicyRegistry& registry);

// docs/policies.md 5: how many prompt tokens go through prefill; the rest are
// fed one decode step each. `prompt_length` S >= 1; `min_capacity` is the
// smallest layer capacity. Returns a value in [1, S].
int64_t PrefillLength(int64_t prompt_length, int64_t min_capacity,
                      const PolicySpec& spec);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_LAYER_PLAN_H_
