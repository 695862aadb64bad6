// The cache policy a request asks for, in plain C++ (the policies library does
// not see the protobuf types). Mirrors coldcompress.v1.CachePolicy after the
// preset and the request's explicit fields are merged.
#ifndef COLDCOMPRESS_POLICIES_POLICY_SPEC_H_
#define COLDCOMPRESS_POLICIES_POLICY_SPEC_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace coldcompress {

inline constexpr int64_t kDefaultGlobalTokens = 4;
inline constexpr double kDefaultRecentWindow = 10;
inline constexpr int64_t kDefaultHistoryWindowSize = 1;
inline constexpr double kDefaultMinRecoveryFrac = 0.9;

struct HybridStrategySpec {
  std::string strategy;
  std::optional<double> recent_window;
  std::optional<double> heavy_hitter_frac;
  bool operator==(const HybridStrategySpec&) const = default;
};

struct PolicySpec {
  // Per-layer patterns, spread over the layers with the *_pattern fields.
  std::vector<std::string> strategy = {"full"};
  std::string strategy_pattern = "tile";
  // Empty: each strategy's own compressor (PolicyInfo::default_compressor).
  std::vector<std::string> prompt_compression;
  std::vector<double> max_cache_length = {1.0};
  std::string length_pattern = "tile";

  int64_t global_tokens = kDefaultGlobalTokens;
  double recent_window = kDefaultRecentWindow;
  int64_t history_window_size = kDefaultHistoryWindowSize;
  bool attn_thresholding = false;
  double min_recovery_frac = kDefaultMinRecoveryFrac;
  std::vector<HybridStrategySpec> hybrid_strategies;
  std::optional<int64_t> cache_bits;  // unset: full precision
  bool feed_long_prompts = false;
  bool decode_first_token = false;
  std::map<std::string, std::string> params;  // plugin parameters

  // A seed for the random policy and compressor.
  uint64_t seed = 0;

  bool operator==(const PolicySpec&) const = default;
};

// Some fields of a PolicySpec: a preset, or the fields a request sets. Applied
// in order over the defaults: preset, then request.
struct PolicyOverlay {
  std::optional<std::vector<std::string>> strategy;
  std::optional<std::string> strategy_pattern;
  std::optional<std::vector<std::string>> prompt_compression;
  std::optional<std::vector<double>> max_cache_length;
  std::optional<std::string> length_pattern;
  std::optional<int64_t> global_tokens;
  std::optional<double> recent_window;
  std::optional<int64_t> history_window_size;
  std::optional<bool> attn_thresholding;
  std::optional<double> min_recovery_frac;
  std::optional<std::vector<HybridStrategySpec>> hybrid_strategies;
  std::optional<int64_t> cache_bits;
  std::optional<bool> feed_long_prompts;
  std::optional<bool> decode_first_token;
  std::map<std::string, std::string> params;

  // True when no field is set.
  bool empty() const;
  void ApplyTo(PolicySpec& spec) const;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_POLICY_SPEC_H_
