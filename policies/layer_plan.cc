#include "policies/layer_plan.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "policies/builtins.h"
#include "policies/registry.h"

namespace coldcompress {
namespace {

int64_t RoundUpTo8(int64_t n) { return (n + 7) / 8 * 8; }

// The reference resolves fractions with Python's round(): ties to even.
int64_t RoundHalfEven(double x) {
  return static_cast<int64_t>(std::nearbyint(x));
}

absl::Status CheckDivides(size_t pattern_size, int64_t num_layers,
                          const std::string& field) {
  if (pattern_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  }
  if (num_layers % static_cast<int64_t>(pattern_size) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " has ", pattern_size,
                     " entries, which does not divide the model's layer count ",
                     num_layers));
  }
  return absl::OkStatus();
}

template <typename T>
std::vector<T> Spread(const std::vector<T>& pattern, bool tile,
                      int64_t num_layers) {
  const int64_t f = num_layers / static_cast<int64_t>(pattern.size());
  std::vector<T> out;
  out.reserve(num_layers);
  if (tile) {
    for (const T& v : pattern) out.insert(out.end(), f, v);
  } else {
    for (int64_t i = 0; i < f; ++i)
      out.insert(out.end(), pattern.begin(), pattern.end());
  }
  return out;
}

// docs/policies.md 2.2, pyramid / funnel, for one resolved length c.
std::vector<int64_t> PyramidLengths(int64_t c, int64_t n, int64_t smax,
                                    bool pyramid) {
  const int64_t min_allowable = std::min<int64_t>(256, c);
  constexpr double kBeta = 14;
  const double lo = static_cast<double>(c) / kBeta;
  const double hi = 2.0 * static_cast<double>(c);
  const double d = (hi - lo) / static_cast<double>(n);
  std::vector<double> raw;
  raw.push_back(lo);
  for (int64_t l = 1; l <= n - 2; ++l)
    raw.push_back(lo + d * static_cast<double>(l));
  if (n > 1) raw.push_back(hi);
  std::vector<int64_t> lens;
  for (double v : raw) {
    // int(v) as in the reference; values <= 1 mean one token (Fix).
    int64_t t = std::max<int64_t>(1, static_cast<int64_t>(v));
    lens.push_back(std::min(RoundUpTo8(std::min(t, smax)), smax));
  }
  int64_t overflow = 0, raised = 0;
  for (int64_t& v : lens) {
    if (v < min_allowable) {
      overflow += min_allowable - v;
      v = min_allowable;
      ++raised;
    }
  }
  if (raised < n) {
    const int64_t dec = overflow / (n - raised);
    for (int64_t& v : lens) {
      if (v > min_allowable) v = std::max(min_allowable, v - dec);
    }
  }
  if (pyramid) std::reverse(lens.begin(), lens.end());
  return lens;
}

}  // namespace

int64_t CachePlan::MinCapacity() const {
  int64_t m = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (i == 0 || layers[i].capacity < m) m = layers[i].capacity;
  }
  return m;
}

absl::StatusOr<int64_t> ResolveCacheLength(double x, int64_t smax,
                                           const std::string& field) {
  if (!std::isfinite(x) || x <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be a fraction in (0, 1] or a token count > 1, got ", x));
  }
  int64_t n;
  if (x <= 1) {
    n = RoundHalfEven(static_cast<double>(smax) * x);
    if (n == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " ", x, " of ", smax,
          " tokens resolves to an empty cache; give a larger fraction or a "
          "token count"));
    }
  } else {
    if (x != std::floor(x)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " above 1 is a token count and must be an integer, got ", x));
    }
    n = std::min(static_cast<int64_t>(x), smax);
  }
  return std::min(RoundUpTo8(n), smax);
}

absl::StatusOr<std::vector<std::string>> SpreadPattern(
    const std::vector<std::string>& pattern, const std::string& how,
    int64_t num_layers, const std::string& field) {
  if (how != "tile" && how != "repeat") {
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy_pattern must be \"tile\" or \"repeat\", got \"", how, "\""));
  }
  if (absl::Status s = CheckDivides(pattern.size(), num_layers, field);
      !s.ok()) {
    return s;
  }
  return Spread(pattern, how == "tile", num_layers);
}

absl::StatusOr<std::vector<int64_t>> ResolveLayerLengths(
    const std::vector<double>& values, const std::string& how,
    int64_t num_layers, int64_t smax) {
  const std::string field = "max_cache_length";
  if (how == "pyramid" || how == "funnel") {
    if (values.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "length_pattern \"", how,
          "\" takes exactly one max_cache_length, got ", values.size()));
    }
    absl::StatusOr<int64_t> c = ResolveCacheLength(values[0], smax, field);
    if (!c.ok()) return c.status();
    return PyramidLengths(*c, num_layers, smax, how == "pyramid");
  }
  if (how != "tile" && how != "repeat") {
    return absl::InvalidArgumentError(absl::StrCat(
        "length_pattern must be one of \"tile\", \"repeat\", \"pyramid\", "
        "\"funnel\", got \"",
        how, "\""));
  }
  if (absl::Status s = CheckDivides(values.size(), num_layers, field);
      !s.ok()) {
    return s;
  }
  std::vector<int64_t> resolved;
  for (double v : values) {
    absl::StatusOr<int64_t> n = ResolveCacheLength(v, smax, field);
    if (!n.ok()) return n.status();
    resolved.push_back(*n);
  }
  return Spread(resolved, how == "tile", num_layers);
}

int64_t ResolveRecentWindow(double recent_window, int64_t capacity) {
  if (recent_window < 1) {
    return std::max<int64_t>(
        1, static_cast<int64_t>(recent_window * static_cast<double>(capacity)));
  }
  return std::max<int64_t>(
      1, static_cast<int64_t>(
             std::min(recent_window, static_cast<double>(capacity))));
}

int64_t PrefillLength(int64_t prompt_length, int64_t min_capacity,
                      const PolicySpec& spec) {
  int64_t n = prompt_length;
  if (spec.decode_first_token) n = prompt_length - 1;
  // With or without feed_long_prompts: a prompt exactly filling the smallest
  // cache feeds its last token through a decode step.
  if (prompt_length == min_capacity ||
      (spec.feed_long_prompts && prompt_length > min_capacity - 1)) {
    n = std::min(n, min_capacity - 1);
  }
  return std::max<int64_t>(1, n);
}

absl::StatusOr<CachePlan> ResolveCachePlan(const PolicySpec& spec,
                                           int64_t num_layers,
                                           int64_t max_seq_len,
                                           const PolicyRegistry& registry) {
  if (max_seq_len < 1) {
    return absl::InvalidArgumentError("the request's sequence length is 0");
  }
  if (spec.strategy.empty()) {
    return absl::InvalidArgumentError(
        "strategy: at least one strategy is required");
  }
  for (const std::string& s : spec.strategy) {
    if (absl::Status st = registry.CheckPolicy(s); !st.ok()) return st;
  }
  std::vector<std::string> compression = spec.prompt_compression;
  if (compression.empty()) {
    // Each strategy's own compressor.
    for (const std::string& s : spec.strategy) {
      compression.push_back(registry.FindPolicy(s)->default_compressor);
    }
  }
  if (spec.strategy.size() != compression.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt_compression has ", compression.size(),
                     " entries but strategy has ", spec.strategy.size(),
                     "; the two lists are aligned"));
  }
  for (const std::string& c : compression) {
    if (absl::Status st = registry.CheckCompressor(c); !st.ok()) return st;
  }
  if (!std::isfinite(spec.recent_window) || spec.recent_window <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("recent_window must be > 0, got ", spec.recent_window));
  }
  if (spec.global_tokens < 0) {
    return absl::InvalidArgumentError("global_tokens must be >= 0");
  }
  if (spec.history_window_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("history_window_size must be >= 1 (1 = unbounded), got ",
                     spec.history_window_size));
  }
  if (absl::Status st = CheckHybridFields(spec); !st.ok()) return st;
  if (spec.cache_bits && *spec.cache_bits != 2 && *spec.cache_bits != 4 &&
      *spec.cache_bits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache_bits must be 2, 4 or 8, got ", *spec.cache_bits));
  }
  absl::StatusOr<std::vector<std::string>> strategies = SpreadPattern(
      spec.strategy, spec.strategy_pattern, num_layers, "strategy");
  if (!strategies.ok()) return strategies.status();
  absl::StatusOr<std::vector<std::string>> compressors = SpreadPattern(
      compression, spec.strategy_pattern, num_layers, "prompt_compression");
  if (!compressors.ok()) return compressors.status();
  absl::StatusOr<std::vector<int64_t>> lengths = ResolveLayerLengths(
      spec.max_cache_length, spec.length_pattern, num_layers, max_seq_len);
  if (!lengths.ok()) return lengths.status();

  CachePlan plan;
  plan.max_seq_len = max_seq_len;
  for (int64_t i = 0; i < num_layers; ++i) {
    LayerPlan layer;
    layer.strategy = (*strategies)[i];
    layer.prompt_compression = (*compressors)[i];
    layer.capacity = (*lengths)[i];
    layer.recent_window =
        ResolveRecentWindow(spec.recent_window, layer.capacity);
    if (absl::Status st = registry.ValidateLayer(layer, spec, max_seq_len, i);
        !st.ok()) {
      return st;
    }
    plan.layers.push_back(std::move(layer));
  }
  if (absl::Status st = registry.CheckParams(spec, plan); !st.ok()) return st;
  return plan;
}

}  // namespace coldcompress
