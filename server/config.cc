// The one file that parses YAML server configuration.
#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coldcompress {
namespace {

using Setter = std::function<void(ServerConfig&, const YAML::Node&)>;

template <typename T>
Setter Set(T ServerConfig::*field) {
  return
      [field](ServerConfig& c, const YAML::Node& n) { c.*field = n.as<T>(); };
}

const std::map<std::string, Setter>& Setters() {
  static const auto* setters = new std::map<std::string, Setter>{
      {"model_dir", Set(&ServerConfig::model_dir)},
      {"device", Set(&ServerConfig::device)},
      {"dtype", Set(&ServerConfig::dtype)},
      {"listen", Set(&ServerConfig::listen)},
      {"threads", Set(&ServerConfig::threads)},
      {"cuda_graphs", Set(&ServerConfig::cuda_graphs)},
      {"prefill_chunk_tokens", Set(&ServerConfig::prefill_chunk_tokens)},
      {"log_level", Set(&ServerConfig::log_level)},
      {"max_sessions", Set(&ServerConfig::max_sessions)},
      {"max_queued_requests", Set(&ServerConfig::max_queued_requests)},
      {"max_concurrent_streams", Set(&ServerConfig::max_concurrent_streams)},
      {"max_prompt_tokens", Set(&ServerConfig::max_prompt_tokens)},
      {"max_stop_strings", Set(&ServerConfig::max_stop_strings)},
      {"max_stop_string_bytes", Set(&ServerConfig::max_stop_string_bytes)},
      {"max_deadline_s", Set(&ServerConfig::max_deadline_s)},
      {"session_ttl_s", Set(&ServerConfig::session_ttl_s)},
      {"keepalive_time_s", Set(&ServerConfig::keepalive_time_s)},
      {"keepalive_timeout_s", Set(&ServerConfig::keepalive_timeout_s)},
      {"keepalive_min_ping_interval_s",
       Set(&ServerConfig::keepalive_min_ping_interval_s)},
      {"keepalive_permit_without_calls",
       Set(&ServerConfig::keepalive_permit_without_calls)},
      {"drain_deadline_s", Set(&ServerConfig::drain_deadline_s)},
      {"tls_cert_file", Set(&ServerConfig::tls_cert_file)},
      {"tls_key_file", Set(&ServerConfig::tls_key_file)},
      {"tls_client_ca_file", Set(&ServerConfig::tls_client_ca_file)},
      {"auth_tokens_file", Set(&ServerConfig::auth_tokens_file)},
      {"max_new_tokens", Set(&ServerConfig::max_new_tokens)},
      {"context_length", Set(&ServerConfig::context_length)},
      {"max_message_bytes", Set(&ServerConfig::max_message_bytes)},
      {"presets_dir", Set(&ServerConfig::presets_dir)},
      {"policy_plugins", Set(&ServerConfig::policy_plugins)},
      {"metrics_listen", Set(&ServerConfig::metrics_listen)},
      {"metrics_per_layer", Set(&ServerConfig::metrics_per_layer)},
      {"max_cache_bytes", Set(&ServerConfig::max_cache_bytes)},
      {"default_preset", Set(&ServerConfig::default_preset)},
  };
  return *setters;
}

// A list, or a scalar standing for a one-element list.
template <typename T>
std::vector<T> AsList(const YAML::Node& n) {
  if (n.IsSequence()) return n.as<std::vector<T>>();
  return {n.as<T>()};
}

using PresetSetter = std::function<void(PolicyOverlay&, const YAML::Node&)>;

const std::map<std::string, PresetSetter>& PresetSetters() {
  static const auto* setters = [] {
    auto* m = new std::map<std::string, PresetSetter>;
    auto strategy = [](PolicyOverlay& o, const YAML::Node& n) {
      o.strategy = AsList<std::string>(n);
    };
    auto compression = [](PolicyOverlay& o, const YAML::Node& n) {
      o.prompt_compression = AsList<std::string>(n);
    };
    auto length_pattern = [](PolicyOverlay& o, const YAML::Node& n) {
      o.length_pattern = n.as<std::string>();
    };
    auto strategy_pattern = [](PolicyOverlay& o, const YAML::Node& n) {
      o.strategy_pattern = n.as<std::string>();
    };
    (*m)["cache_strategy"] = strategy;
    (*m)["strategy"] = strategy;
    (*m)["prompt_compression_strategy"] = compression;
    (*m)["prompt_compression"] = compression;
    (*m)["cache_length_pattern"] = length_pattern;
    (*m)["length_pattern"] = length_pattern;
    (*m)["cache_strategy_pattern"] = strategy_pattern;
    (*m)["strategy_pattern"] = strategy_pattern;
    (*m)["max_cache_length"] = [](PolicyOverlay& o, const YAML::Node& n) {
      o.max_cache_length = AsList<double>(n);
    };
    (*m)["global_tokens"] = [](PolicyOverlay& o, const YAML::Node& n) {
      o.global_tokens = n.as<int64_t>();
    };
    (*m)["recent_window"] = [](PolicyOverlay& o, const YAML::Node& n) {
      o.recent_window = n.as<double>();
    };
    (*m)["history_window_size"] = [](PolicyOverlay& o, const YAML::Node& n) {
      o.history_window_size = n.as<int64_t>();
    };
    (*m)["attn_thresholding"] = [](PolicyOverlay& o, const YAML::Node& n) {
      o.attn_thresholding = n.as<bool>();
    };
    (*m)["min_recovery_frac"] = [](PolicyOverlay& o, const YAML::Node& n) {
      o.min_recovery_frac = n.as<double>();
    };
    (*m)["cache_bits"] = [](PolicyOverlay& o, const YAML::Node& n) {
      if (!n.IsNull()) o.cache_bits = n.as<int64_t>();
    };
    (*m)["feed_long_prompts"] = [](PolicyOverlay& o, const YAML::Node& n) {
      o.feed_long_prompts = n.as<bool>();
    };
    (*m)["decode_first_token"] = [](PolicyOverlay& o, const YAML::Node& n) {
      o.decode_first_token = n.as<bool>();
    };
    (*m)["params"] = [](PolicyOverlay& o, const YAML::Node& n) {
      o.params = n.as<std::map<std::string, std::string>>();
    };
    (*m)["hybrid_strategies"] = [](PolicyOverlay& o, const YAML::Node& n) {
      std::vector<HybridStrategySpec> list;
      for (const YAML::Node& e : n) {
        HybridStrategySpec h;
        h.strategy = e["strategy"].as<std::string>();
        if (e["recent_window"])
          h.recent_window = e["recent_window"].as<double>();
        if (e["heavy_hitter_frac"])
          h.heavy_hitter_frac = e["heavy_hitter_frac"].as<double>();
        list.push_back(h);
      }
      o.hybrid_strategies = list;
    };
    return m;
  }();
  return *setters;
}

}  // namespace

absl::StatusOr<PolicyOverlay> ParsePolicyPreset(const std::string& yaml) {
  PolicyOverlay overlay;
  try {
    const YAML::Node root = YAML::Load(yaml);
    if (root.IsNull()) return overlay;
    if (!root.IsMap()) return absl::InvalidArgumentError("not a YAML mapping");
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      auto it = PresetSetters().find(key);
      if (it == PresetSetters().end()) {
        std::vector<std::string> known;
        for (const auto& [k, s] : PresetSetters()) known.push_back(k);
        return absl::InvalidArgumentError(
            absl::StrCat("unknown key \"", key,
                         "\"; known keys: ", absl::StrJoin(known, ", ")));
      }
      try {
        it->second(overlay, entry.second);
      } catch (const YAML::Exception& e) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad value for ", key, ": ", e.what()));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return overlay;
}

absl::StatusOr<std::map<std::string, CachePreset>> LoadPresets(
    const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("presets folder ", dir, " does not exist"));
  }
  std::map<std::string, CachePreset> presets;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    CachePreset preset;
    preset.name = entry.path().stem().string();
    preset.yaml = ss.str();
    absl::StatusOr<PolicyOverlay> overlay = ParsePolicyPreset(preset.yaml);
    if (!overlay.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          entry.path().string(), ": ", overlay.status().message()));
    }
    preset.overlay = *std::move(overlay);
    presets.emplace(preset.name, std::move(preset));
  }
  return presets;
}

absl::StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml,
                                               const ServerConfig& base) {
  ServerConfig config = base;
  try {
    const YAML::Node root = YAML::Load(yaml);
    if (root.IsNull()) return config;
    if (!root.IsMap())
      return absl::InvalidArgumentError("server config: not a YAML mapping");
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      auto it = Setters().find(key);
      if (it == Setters().end()) {
        std::vector<std::string> known;
        for (const auto& [k, s] : Setters()) known.push_back(k);
        return absl::InvalidArgumentError(
            absl::StrCat("server config: unknown key \"", key,
                         "\"; known keys: ", absl::StrJoin(known, ", ")));
      }
      try {
        it->second(config, entry.second);
      } catch (const YAML::Exception& e) {
        return absl::InvalidArgumentError(
            absl::StrCat("server config: bad value for ", key, ": ", e.what()));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("server config: ", e.what()));
  }
  return config;
}

namespace {

// Integral values in full (StrCat would print 2147483647 as 2.14748e+09).
std::string Num(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrCat(v);
}

}  // namespace

absl::Status ValidateServerConfig(const ServerConfig& c) {
  struct Range {
    const char* name;
    double value, min, max;
  };
  constexpr double kNoMax = 1e18;
  const Range ranges[] = {
      {"max_sessions", double(c.max_sessions), 0, kNoMax},
      {"max_queued_requests", double(c.max_queued_requests), 1, kNoMax},
      {"max_concurrent_streams", double(c.max_concurrent_streams), 1,
       double(INT32_MAX)},
      {"max_prompt_tokens", double(c.max_prompt_tokens), 0, kNoMax},
      {"max_new_tokens", double(c.max_new_tokens), 0, kNoMax},
      {"max_stop_strings", double(c.max_stop_strings), 0, kNoMax},
      {"max_stop_string_bytes", double(c.max_stop_string_bytes), 1, kNoMax},
      {"context_length", double(c.context_length), 0, kNoMax},
      {"max_message_bytes", double(c.max_message_bytes), 1024,
       double(INT32_MAX)},
      {"max_deadline_s", c.max_deadline_s, 0, kNoMax},
      {"session_ttl_s", c.session_ttl_s, 0, kNoMax},
      {"keepalive_time_s", c.keepalive_time_s, 0.001, kNoMax},
      {"keepalive_timeout_s", c.keepalive_timeout_s, 0.001, kNoMax},
      {"keepalive_min_ping_interval_s", c.keepalive_min_ping_interval_s, 0,
       kNoMax},
      {"drain_deadline_s", c.drain_deadline_s, 0, kNoMax},
      {"max_cache_bytes", double(c.max_cache_bytes), 0, kNoMax},
      {"prefill_chunk_tokens", double(c.prefill_chunk_tokens), 0, kNoMax},
  };
  for (const Range& r : ranges) {
    // NaN fails both comparisons' negation: !(x >= min) catches it.
    if (!(r.value >= r.min) || r.value > r.max) {
      return absl::InvalidArgumentError(absl::StrCat(
          r.name, ": ", Num(r.value), " is out of range [", Num(r.min), ", ",
          r.max == kNoMax ? "inf" : Num(r.max), "]"));
    }
  }
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert_file and tls_key_file: set both (TLS) or neither");
  }
  if (!c.tls_client_ca_file.empty() && c.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "tls_client_ca_file: mutual TLS needs tls_cert_file and tls_key_file");
  }
  return absl::OkStatus();
}

absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<ServerConfig> config =
      ParseServerConfig(ss.str(), ServerConfig());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace coldcompress
