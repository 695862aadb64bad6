#include "server/convert.h"

#include <cstring>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/engine/engine.h"

namespace coldcompress {
namespace {

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
