#include "server/policy_request.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coldcompress {

PolicyOverlay ToOverlay(const v1::CachePolicy& p) {
  PolicyOverlay o;
  if (p.strategy_size() > 0) o.strategy = ToVector(p.strategy());
  if (!p.strategy_pattern().empty()) o.strategy_pattern = p.strategy_pattern();
  if (p.prompt_compression_size() > 0)
    o.prompt_compression = ToVector(p.prompt_compression());
  if (p.max_cache_length_size() > 0)
    o.max_cache_length = ToVector(p.max_cache_length());
  if (!p.length_pattern().empty()) o.length_pattern = p.length_pattern();
  if (p.has_global_tokens()) o.global_tokens = p.global_tokens();
  if (p.has_recent_window()) o.recent_window = p.recent_window();
  if (p.has_history_window_size())
    o.history_window_size = p.history_window_size();
  if (p.has_attn_thresholding()) o.attn_thresholding = p.attn_thresholding();
  if (p.has_min_recovery_frac()) o.min_recovery_frac = p.min_recovery_frac();
  if (p.hybrid_strategies_size() > 0) {
    std::vector<HybridStrategySpec> list;
    for (const v1::HybridStrategy& h : p.hybrid_strategies()) {
      HybridStrategySpec hs;
      hs.strategy = h.strategy();
      if (h.has_recent_window()) hs.recent_window = h.recent_window();
      if (h.has_heavy_hitter_frac())
        hs.heavy_hitter_frac = h.heavy_hitter_frac();
      list.push_back(hs);
    }
    o.hybrid_strategies = list;
  }
  if (p.has_cache_bits()) o.cache_bits = p.cache_bits();
  if (p.feed_long_prompts()) o.feed_long_prompts = true;
  if (p.decode_first_token()) o.decode_first_token = true;
  o.params.insert(p.params().begin(), p.params().end());
  return o;
}

void ToProto(const PolicyOverlay& o, v1::CachePolicy* out) {
  if (o.strategy)
    for (const auto& s : *o.strategy) out->add_strategy(s);
  if (o.strategy_pattern) out->set_strategy_pattern(*o.strategy_pattern);
  if (o.prompt_compression) {
    for (const auto& s : *o.prompt_compression) out->add_prompt_compression(s);
  }
  if (o.max_cache_length)
    for (double x : *o.max_cache_length) out->add_max_cache_length(x);
  if (o.length_pattern) out->set_length_pattern(*o.length_pattern);
  if (o.global_tokens)
    out->set_global_tokens(static_cast<uint32_t>(*o.global_tokens));
  if (o.recent_window) out->set_recent_window(*o.recent_window);
  if (o.history_window_size) {
    out->set_history_window_size(static_cast<uint32_t>(*o.history_window_size));
  }
  if (o.attn_thresholding) out->set_attn_thresholding(*o.attn_thresholding);
  if (o.min_recovery_frac) out->set_min_recovery_frac(*o.min_recovery_frac);
  if (o.hybrid_strategies) {
    for (const HybridStrategySpec& h : *o.hybrid_strategies) {
      v1::HybridStrategy* hs = out->add_hybrid_strategies();
      hs->set_strategy(h.strategy);
      if (h.recent_window) hs->set_recent_window(*h.recent_window);
      if (h.heavy_hitter_frac) hs->set_heavy_hitter_frac(*h.heavy_hitter_frac);
    }
  }
  if (o.cache_bits) out->set_cache_bits(static_cast<uint32_t>(*o.cache_bits));
  if (o.feed_long_prompts) out->set_feed_long_prompts(*o.feed_long_prompts);
  if (o.decode_first_token) out->set_decode_first_token(*o.decode_first_token);
  out->mutable_params()->insert(o.params.begin(), o.params.end());
}

absl::StatusOr<PolicySpec> ToPolicySpec(const v1::CachePolicy& p,
                                        const PresetStore& presets,
                                        bool* given) {
  const PolicyOverlay request = ToOverlay(p);
  *given = !p.config_name().empty() || !request.empty();
  const std::string name =
      p.config_name().empty() ? presets.default_preset : p.config_name();
  PolicySpec spec;
  auto it = presets.presets.find(name);
  if (it != presets.presets.end()) {
    it->second.overlay.ApplyTo(spec);
  } else if (!p.config_name().empty()) {
    std::vector<std::string> known;
    for (const auto& [n, preset] : presets.presets) known.push_back(n);
    return absl::InvalidArgumentError(
        absl::StrCat("config_name: unknown preset \"", name,
                     "\"; known presets: ", absl::StrJoin(known, ", ")));
  }
  request.ApplyTo(spec);
  return spec;
}

absl::Status CheckSessionId(const std::string& id) {
  constexpr size_t kMaxBytes = 256;
  if (id.empty()) return absl::InvalidArgumentError("session_id: is empty");
  if (id.size() > kMaxBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("session_id: ", id.size(), " bytes; at most ", kMaxBytes));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "session_id: byte ", i, " is a control character (", int{c}, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace coldcompress
