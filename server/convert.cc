#include "server/convert.h"

#include <cstring>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/engine/engine.h"

namespace coldcompress {
namespace {

template <typename T>
std::vector<T> ToVector(const google::protobuf::RepeatedField<T>& r) {
  return std::vector<T>(r.begin(), r.end());
}

std::vector<std::string> ToVector(
    const google::protobuf::RepeatedPtrField<std::string>& r) {
  return std::vector<std::string>(r.begin(), r.end());
}

// The chat template applied to `messages`; errors name `field` (the
// template's own messages say "messages").
absl::StatusOr<std::vector<int32_t>> ApplyChatTemplate(
    const v1::ChatMessages& messages, const Engine& engine,
    absl::string_view field) {
  std::vector<ChatTurn> turns;
  for (const v1::ChatMessage& m : messages.messages()) {
    turns.push_back({m.role(), m.content()});
  }
  absl::StatusOr<std::vector<int32_t>> ids =
      engine.chat_template().Apply(turns);
  if (ids.ok() || field == "messages") return ids;
  std::string message(ids.status().message());
  if (absl::StartsWith(message, "messages")) {
    message = absl::StrCat(field, message.substr(strlen("messages")));
  }
  return absl::Status(ids.status().code(), message);
}

}  // namespace

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

absl::StatusOr<GenerateInput> ToGenerateInput(const v1::GenerateRequest& r,
                                              const Engine& engine,
                                              const PresetStore& presets) {
  GenerateInput in;
  switch (r.input_case()) {
    case v1::GenerateRequest::kPrompt:
      if (r.prompt().empty())
        return absl::InvalidArgumentError("prompt: is empty");
      in.prompt =
          engine.tokenizer().Encode(r.prompt(), /*add_special_tokens=*/true);
      break;
    case v1::GenerateRequest::kPromptTokenIds:
      in.prompt = ToVector(r.prompt_token_ids().ids());
      if (in.prompt.empty())
        return absl::InvalidArgumentError("prompt_token_ids: is empty");
      break;
    case v1::GenerateRequest::kMessages: {
      absl::StatusOr<std::vector<int32_t>> ids =
          ApplyChatTemplate(r.messages(), engine, "messages");
      if (!ids.ok()) return ids.status();
      in.prompt = *std::move(ids);
      in.stop_token_ids = engine.chat_template().StopIds();
      break;
    }
    default:
      return absl::InvalidArgumentError(
          "prompt: one of prompt, messages or prompt_token_ids is required");
  }
  in.max_new_tokens = r.max_new_tokens();
  const v1::SamplingParams& s = r.sampling();
  if (s.has_temperature()) in.sampling.temperature = s.temperature();
  if (s.has_top_k()) in.sampling.top_k = s.top_k();
  if (s.has_top_p()) in.sampling.top_p = s.top_p();
  if (s.has_seed()) in.sampling.seed = s.seed();
  in.stop = ToVector(r.stop());
  in.ignore_eos = r.ignore_eos();
  absl::StatusOr<PolicySpec> spec =
      ToPolicySpec(r.cache(), presets, &in.policy_given);
  if (!spec.ok()) return spec.status();
  in.policy = *std::move(spec);
  in.policy.seed = in.sampling.seed;
  in.session_id = r.session_id();
  if (!in.session_id.empty()) {
    if (absl::Status st = CheckSessionId(in.session_id); !st.ok()) return st;
  }
  return in;
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

absl::StatusOr<ScoreInput> ToScoreInput(const v1::ScoreRequest& r,
                                        const Engine& engine,
                                        const PresetStore& presets) {
  ScoreInput in;
  switch (r.context_input_case()) {
    case v1::ScoreRequest::kContext:
      if (r.context().empty())
        return absl::InvalidArgumentError("context: is empty");
      in.context = engine.tokenizer().Encode(r.context(), true);
      break;
    case v1::ScoreRequest::kContextTokenIds:
      in.context = ToVector(r.context_token_ids().ids());
      if (in.context.empty()) {
        return absl::InvalidArgumentError("context_token_ids: is empty");
      }
      break;
    case v1::ScoreRequest::kContextMessages: {
      absl::StatusOr<std::vector<int32_t>> ids =
          ApplyChatTemplate(r.context_messages(), engine, "context_messages");
      if (!ids.ok()) return ids.status();
      in.context = *std::move(ids);
      break;
    }
    default:
      return absl::InvalidArgumentError(
          "context: one of context, context_token_ids or context_messages is "
          "required");
  }
  for (int i = 0; i < r.continuations_size(); ++i) {
    const v1::Continuation& c = r.continuations(i);
    if (c.input_case() == v1::Continuation::kText) {
      in.continuations.push_back(engine.tokenizer().Encode(c.text(), false));
    } else {
      in.continuations.push_back(ToVector(c.token_ids().ids()));
    }
  }
  bool given = false;
  absl::StatusOr<PolicySpec> spec = ToPolicySpec(r.cache(), presets, &given);
  if (!spec.ok()) return spec.status();
  in.policy = *std::move(spec);
  return in;
}

void ToProto(const CacheStatsResult& stats, v1::CacheStats* out) {
  out->set_compression_ratio(stats.compression_ratio);
  for (double r : stats.layer_compression_ratio)
    out->add_layer_compression_ratio(r);
  out->set_cache_bytes(static_cast<uint64_t>(stats.cache_bytes));
  out->set_full_cache_bytes(static_cast<uint64_t>(stats.full_cache_bytes));
  if (stats.attention_loss) out->set_attention_loss(*stats.attention_loss);
  for (double l : stats.layer_attention_loss) out->add_layer_attention_loss(l);
  out->mutable_extra()->insert(stats.extra.begin(), stats.extra.end());
}

void ToProto(const GenerateFinal& f, v1::FinalResult* out) {
  out->set_finish_reason(f.finish_reason);
  for (int32_t id : f.output_ids) out->add_output_token_ids(id);
  out->set_text(f.text);
  out->mutable_usage()->set_prompt_tokens(
      static_cast<uint32_t>(f.prompt_tokens));
  out->mutable_usage()->set_completion_tokens(
      static_cast<uint32_t>(f.completion_tokens));
  v1::Timings* t = out->mutable_timings();
  t->set_time_to_first_token_s(f.timings.time_to_first_token_s);
  t->set_decode_s(f.timings.decode_s);
  t->set_decode_tokens_per_s(f.timings.decode_tokens_per_s);
  t->set_queue_s(f.timings.queue_s);
  t->set_prefill_s(f.timings.prefill_s);
  ToProto(f.stats, out->mutable_stats());
}

void ToProto(const SessionSnapshot& s, v1::SessionInfo* out) {
  out->set_session_id(s.session_id);
  out->set_tokens_seen(static_cast<uint32_t>(s.tokens_seen));
  ToProto(s.stats, out->mutable_stats());
  for (const LayerSnapshot& l : s.layers) {
    v1::LayerInfo* li = out->add_layers();
    li->set_strategy(l.strategy);
    li->set_capacity(static_cast<uint32_t>(l.capacity));
    li->set_prompt_compression(l.prompt_compression);
    li->set_recent_window(static_cast<double>(l.recent_window));
    for (const auto& head : l.head_positions) {
      v1::HeadPositions* hp = li->add_heads();
      for (int64_t p : head) hp->add_positions(static_cast<int32_t>(p));
    }
  }
}

void ToProto(const ScoreOutput& o, v1::ScoreResponse* out) {
  for (const ContinuationResult& c : o.scores) {
    v1::ContinuationScore* s = out->add_scores();
    s->set_logprob_sum(c.logprob_sum);
    for (double lp : c.token_logprobs) s->add_token_logprobs(lp);
    s->set_is_greedy(c.is_greedy);
    ToProto(c.stats, s->mutable_stats());
  }
}

}  // namespace coldcompress
