#include "client/policy_flags.h"

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coldcompress::client {
namespace {

// Letters, digits, '.', '-', '_' and '+' stay; anything else becomes '_'.
std::string Sanitize(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' &&
        c != '_' && c != '+') {
      c = '_';
    }
  }
  return s;
}

std::string Base(const PolicyFlags& f) {
  if (!f.cache_config.empty()) return Sanitize(f.cache_config);
  if (!f.cache_strategy.empty())
    return Sanitize(absl::StrJoin(f.cache_strategy, "+"));
  return "full";
}

// The overrides of the preset, in a fixed order, each a short tag.
std::string Overrides(const PolicyFlags& f) {
  std::vector<std::string> tags;
  if (!f.cache_config.empty() && !f.cache_strategy.empty())
    tags.push_back(absl::StrJoin(f.cache_strategy, "+"));
  if (!f.prompt_compression_strategy.empty())
    tags.push_back(
        absl::StrCat("pc-", absl::StrJoin(f.prompt_compression_strategy, "+")));
  if (!f.cache_length_pattern.empty()) tags.push_back(f.cache_length_pattern);
  if (!f.cache_strategy_pattern.empty())
    tags.push_back(absl::StrCat("s", f.cache_strategy_pattern));
  if (f.global_tokens) tags.push_back(absl::StrCat("gt", *f.global_tokens));
  if (f.recent_window)
    tags.push_back(absl::StrCat("rw", FormatNumber(*f.recent_window)));
  if (f.history_window_size)
    tags.push_back(absl::StrCat("hw", *f.history_window_size));
  if (f.attn_thresholding) tags.push_back("thresh");
  if (f.min_recovery_frac)
    tags.push_back(absl::StrCat("mrf", FormatNumber(*f.min_recovery_frac)));
  if (f.cache_bits) tags.push_back(absl::StrCat(*f.cache_bits, "bit"));
  if (f.feed_long_prompts) tags.push_back("feed");
  if (f.decode_first_token) tags.push_back("dft");
  for (const std::string& p : f.params) tags.push_back(p);
  if (tags.empty()) return "";
  return Sanitize(absl::StrCat("__", absl::StrJoin(tags, "__")));
}

}  // namespace

std::string FormatNumber(double x) {
  char buffer[64];
  if (x == std::floor(x) && std::fabs(x) < 1e15) {
    std::snprintf(buffer, sizeof(buffer), "%.0f", x);
    return buffer;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, x);
    if (std::strtod(buffer, nullptr) == x) break;
  }
  return buffer;
}

void AddPolicyFlags(CLI::App* app, PolicyFlags* f) {
  app->add_option("--cache_config", f->cache_config,
                  "a preset name (configs/presets/NAME.yaml on the server)");
  app->add_option(
      "--cache_strategy", f->cache_strategy,
      "per-layer strategy pattern, e.g. recent_global heavy_hitter");
  app->add_option("--prompt_compression_strategy",
                  f->prompt_compression_strategy,
                  "per-layer prompt compressors, aligned with the strategies");
  app->add_option("--max_cache_length", f->max_cache_length,
                  "cache sizes: fractions in (0,1] of |prompt| + "
                  "max_new_tokens, or whole token counts > 1");
  app->add_option("--cache_length_pattern", f->cache_length_pattern,
                  "tile | repeat | pyramid | funnel");
  app->add_option("--cache_strategy_pattern", f->cache_strategy_pattern,
                  "tile | repeat");
  app->add_option("--global_tokens", f->global_tokens,
                  "attention-sink tokens always kept");
  app->add_option("--recent_window", f->recent_window,
                  "recent tokens always kept: a fraction of the cache or a "
                  "count");
  app->add_option("--history_window_size", f->history_window_size,
                  "heavy_hitter: attention history window (Scissorhands)");
  app->add_flag("--attn_thresholding", f->attn_thresholding,
                "heavy_hitter: count attention above 1/n instead of summing");
  app->add_option("--min_recovery_frac", f->min_recovery_frac,
                  "hybrid: attention fraction a head's cache must recover");
  app->add_option("--cache_bits", f->cache_bits,
                  "2, 4 or 8: quantized cache storage");
  app->add_flag("--feed_long_prompts", f->feed_long_prompts,
                "feed prompt tokens past the cache one by one");
  app->add_flag("--decode_first_token", f->decode_first_token,
                "decode the prompt's last token instead of prefilling it");
  app->add_option("--param", f->params,
                  "NAME=VALUE: a parameter a plugin policy or compressor "
                  "declares (repeatable)");
}

absl::Status CheckCacheSizes(const std::vector<double>& sizes) {
  for (size_t i = 0; i < sizes.size(); ++i) {
    const double x = sizes[i];
    if (!std::isfinite(x) || x <= 0 || (x > 1 && x != std::floor(x))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_cache_length[", i, "]: ", FormatNumber(x),
          " does not resolve to a cache size; give a fraction in (0, 1] or "
          "a whole number of tokens > 1"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::CachePolicy> ToCachePolicy(const PolicyFlags& f) {
  if (absl::Status s = CheckCacheSizes(f.max_cache_length); !s.ok()) return s;
  v1::CachePolicy p;
  p.set_config_name(f.cache_config);
  for (const auto& s : f.cache_strategy) p.add_strategy(s);
  for (const auto& s : f.prompt_compression_strategy)
    p.add_prompt_compression(s);
  for (double x : f.max_cache_length) p.add_max_cache_length(x);
  p.set_length_pattern(f.cache_length_pattern);
  p.set_strategy_pattern(f.cache_strategy_pattern);
  if (f.global_tokens) {
    if (*f.global_tokens < 0)
      return absl::InvalidArgumentError("global_tokens: must be >= 0");
    p.set_global_tokens(static_cast<uint32_t>(*f.global_tokens));
  }
  if (f.recent_window) p.set_recent_window(*f.recent_window);
  if (f.history_window_size) {
    if (*f.history_window_size < 0)
      return absl::InvalidArgumentError("history_window_size: must be >= 0");
    p.set_history_window_size(static_cast<uint32_t>(*f.history_window_size));
  }
  if (f.attn_thresholding) p.set_attn_thresholding(true);
  if (f.min_recovery_frac) p.set_min_recovery_frac(*f.min_recovery_frac);
  if (f.cache_bits) {
    if (*f.cache_bits <= 0)
      return absl::InvalidArgumentError("cache_bits: must be 2, 4 or 8");
    p.set_cache_bits(static_cast<uint32_t>(*f.cache_bits));
  }
  p.set_feed_long_prompts(f.feed_long_prompts);
  p.set_decode_first_token(f.decode_first_token);
  for (const std::string& param : f.params) {
    const auto name_value = SplitNameValue(param);
    if (!name_value) {
      return absl::InvalidArgumentError(
          absl::StrCat("param: \"", param, "\" is not NAME=VALUE"));
    }
    if (!p.mutable_params()
             ->insert({name_value->first, name_value->second})
             .second) {
      return absl::InvalidArgumentError(
          absl::StrCat("param: ", name_value->first, " is given twice"));
    }
  }
  return p;
}

std::optional<std::pair<std::string, std::string>> SplitNameValue(
    const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return std::nullopt;
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

std::string PolicyLabel(const PolicyFlags& f) { return Base(f) + Overrides(f); }

std::string PolicyDirName(const PolicyFlags& f) {
  std::string name = Base(f);
  if (!f.max_cache_length.empty()) {
    std::vector<std::string> sizes;
    for (double x : f.max_cache_length) sizes.push_back(FormatNumber(x));
    absl::StrAppend(&name, "__", absl::StrJoin(sizes, "-"));
  }
  return name + Overrides(f);
}

}  // namespace coldcompress::client
