// Cache-policy flags of the CLI, named as the reference toolkit's, and their
// mapping onto the CachePolicy message.
#ifndef COLDCOMPRESS_CLIENT_POLICY_FLAGS_H_
#define COLDCOMPRESS_CLIENT_POLICY_FLAGS_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "coldcompress/v1/coldcompress.pb.h"

namespace CLI {
class App;
}

namespace coldcompress::client {

// Every flag is optional: unset ones leave the preset's (or the server's
// default) value in place.
struct PolicyFlags {
  std::string cache_config;  // a preset name
  std::vector<std::string> cache_strategy;
  std::vector<std::string> prompt_compression_strategy;
  std::vector<double> max_cache_length;
  std::string cache_length_pattern;
  std::string cache_strategy_pattern;
  std::optional<int> global_tokens;
  std::optional<double> recent_window;
  std::optional<int> history_window_size;
  bool attn_thresholding = false;
  std::optional<double> min_recovery_frac;
  std::optional<int> cache_bits;
  bool feed_long_prompts = false;
  bool decode_first_token = false;
  // Parameters of plugin policies and compressors, NAME=VALUE each
  // (CachePolicy.params), in the order given.
  std::vector<std::string> params;
};

// Registers the policy flags on `app`; `flags` must outlive the parse.
void AddPolicyFlags(CLI::App* app, PolicyFlags* flags);

// INVALID_ARGUMENT naming the flag when a cache size cannot resolve: every
// max_cache_length must be > 0, a fraction in (0, 1] or a whole token count.
absl::Status CheckCacheSizes(const std::vector<double>& sizes);

// The CachePolicy the flags describe (sizes checked as above).
absl::StatusOr<v1::CachePolicy> ToCachePolicy(const PolicyFlags& flags);

// The policy without its cache sizes, as results and plots name it:
// "heavy_hitter", "recent_global+heavy_hitter__tile__gt4" ...; "full" when
// nothing is set.
std::string PolicyLabel(const PolicyFlags& flags);

// The results folder name of the policy: the label and the sizes,
// "heavy_hitter__0.5", "recent_global__0.1-0.5__tile".
std::string PolicyDirName(const PolicyFlags& flags);

// A number as the shortest decimal that reads back equal ("0.5", "128").
std::string FormatNumber(double x);

// "NAME=VALUE" split at its first '=' (the value may hold more); nullopt
// without '=' or with an empty name.
std::optional<std::pair<std::string, std::string>> SplitNameValue(
    const std::string& text);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_POLICY_FLAGS_H_
