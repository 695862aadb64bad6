#include "client/example_runner.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "client/judge.h"
#include "client/pool.h"
#include "client/scoring.h"

namespace coldcompress::client {
namespace {

using nlohmann::json;

json StatsJson(const v1::CacheStats& s) {
  json out = {{"compression_ratio", s.compression_ratio()},
              {"cache_bytes", s.cache_bytes()},
              {"full_cache_bytes", s.full_cache_bytes()}};
  if (s.has_attention_loss()) out["attention_loss"] = s.attention_loss();
  return out;
}

absl::Status Named(const absl::Status& s, const Example& e) {
  return absl::Status(s.code(),
                      absl::StrCat("example ", e.id, ": ", s.message()));
}

void SetContext(const TaskSpec& spec, const Example& e, v1::ScoreRequest* r) {
  if (spec.chat) {
    auto* m = r->mutable_context_messages()->add_messages();
    m->set_role("user");
    m->set_content(e.prompt);
  } else {
    r->set_context(e.prompt);
  }
}

absl::StatusOr<json> RunGenerate(ServerClient& server, const TaskSpec& spec,
                                 const Example& e,
                                 const v1::CachePolicy& policy,
                                 const ExampleSettings& settings) {
  v1::GenerateRequest request;
  if (spec.chat) {
    auto* m = request.mutable_messages()->add_messages();
    m->set_role("user");
    m->set_content(e.prompt);
  } else {
    request.set_prompt(e.prompt);
  }
  request.set_max_new_tokens(spec.max_new_tokens);
  if (settings.temperature > 0) {
    request.mutable_sampling()->set_temperature(settings.temperature);
    request.mutable_sampling()->set_seed(settings.seed);
  }
  *request.mutable_cache() = policy;
  absl::StatusOr<v1::FinalResult> final = server.Generate(request);
  if (!final.ok()) return final.status();
  json rec;
  rec["prediction"] = final->text();
  rec["labels"] = e.labels;
  rec["finish_reason"] = final->finish_reason();
  json scores = ScoreGeneration(spec.metrics, final->text(), e.labels);
  const bool judged = std::find(spec.metrics.begin(), spec.metrics.end(),
                                "llm_rouge") != spec.metrics.end();
  if (judged && settings.judge != nullptr) {
    absl::StatusOr<std::optional<int>> rating =
        settings.judge->Rate(e.labels, final->text());
    if (!rating.ok()) return rating.status();
    if (*rating) {
      scores["llm_rouge"] = **rating;
    } else {
      rec["judge_unparsed"] = true;
    }
  }
  rec["scores"] = std::move(scores);
  rec["stats"] = StatsJson(final->stats());
  const v1::Timings& t = final->timings();
  rec["timings"] = {{"time_to_first_token_s", t.time_to_first_token_s()},
                    {"queue_s", t.queue_s()},
                    {"prefill_s", t.prefill_s()},
                    {"decode_s", t.decode_s()},
                    {"decode_tokens_per_s", t.decode_tokens_per_s()},
                    {"prompt_tokens", final->usage().prompt_tokens()},
                    {"completion_tokens", final->usage().completion_tokens()}};
  return rec;
}

// The index of the largest log-likelihood (the first on ties).
int Best(const v1::ScoreResponse& r) {
  int best = 0;
  for (int i = 1; i < r.scores_size(); ++i) {
    if (r.scores(i).logprob_sum() > r.scores(best).logprob_sum()) best = i;
  }
  return best;
}

absl::StatusOr<json> RunChoice(ServerClient& server, const TaskSpec& spec,
                               const Example& e,
                               const v1::CachePolicy& policy) {
  json rec;
  rec["choices"] = e.choices;
  rec["answer"] = e.answer;
  json scores = json::object();
  json logprobs = json::object();
  for (const std::string& metric : spec.metrics) {
    v1::ScoreRequest request;
    SetContext(spec, e, &request);
    *request.mutable_cache() = policy;
    for (size_t i = 0; i < e.choices.size(); ++i) {
      // accuracy: the option texts (lm-eval-harness); accuracy_letter: the
      // bare letters after a prompt that lists the options.
      request.add_continuations()->set_text(
          metric == "accuracy" ? absl::StrCat(spec.choice_prefix, e.choices[i])
                               : std::string(1, static_cast<char>('A' + i)));
    }
    absl::StatusOr<v1::ScoreResponse> r = server.Score(request);
    if (!r.ok()) return r.status();
    const int best = Best(*r);
    scores[metric] = best == e.answer ? 1.0 : 0.0;
    json sums = json::array();
    for (const auto& s : r->scores()) sums.push_back(s.logprob_sum());
    logprobs[metric] = std::move(sums);
    rec["prediction"] = std::string(1, static_cast<char>('A' + best));
    if (!rec.contains("stats")) rec["stats"] = StatsJson(r->scores(0).stats());
  }
  rec["scores"] = std::move(scores);
  rec["choice_logprobs"] = std::move(logprobs);
  return rec;
}

absl::StatusOr<json> RunPerplexity(ServerClient& server, const TaskSpec& spec,
                                   const Example& e,
                                   const v1::CachePolicy& policy) {
  absl::StatusOr<v1::TokenizeResponse> tokens =
      server.Tokenize(e.labels[0], /*add_special_tokens=*/false);
  if (!tokens.ok()) return tokens.status();
  const int n = std::min<int>(tokens->token_ids_size(),
                              static_cast<int>(spec.max_new_tokens));
  if (n == 0) return absl::InvalidArgumentError("nothing to score");
  v1::ScoreRequest request;
  SetContext(spec, e, &request);
  *request.mutable_cache() = policy;
  auto* ids = request.add_continuations()->mutable_token_ids();
  for (int i = 0; i < n; ++i) ids->add_ids(tokens->token_ids(i));
  absl::StatusOr<v1::ScoreResponse> r = server.Score(request);
  if (!r.ok()) return r.status();
  const v1::ContinuationScore& s = r->scores(0);
  std::vector<double> logprobs(s.token_logprobs().begin(),
                               s.token_logprobs().end());
  json rec;
  rec["scored_tokens"] = n;
  rec["logprob_sum"] = s.logprob_sum();
  rec["scores"] = ScorePerplexity(logprobs, spec.ppl_at);
  rec["stats"] = StatsJson(s.stats());
  return rec;
}

}  // namespace

absl::StatusOr<json> RunExample(ServerClient& server, const TaskSpec& spec,
                                const Example& example,
                                const v1::CachePolicy& policy,
                                const ExampleSettings& settings) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<json> rec;
  switch (spec.kind) {
    case TaskKind::kGenerate:
      rec = RunGenerate(server, spec, example, policy, settings);
      break;
    case TaskKind::kChoice:
      rec = RunChoice(server, spec, example, policy);
      break;
    case TaskKind::kPerplexity:
      rec = RunPerplexity(server, spec, example, policy);
      break;
  }
  if (!rec.ok()) return Named(rec.status(), example);
  (*rec)["id"] = example.id;
  (*rec)["server"] = server.address();
  (*rec)["timings"]["request_s"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return rec;
}

}  // namespace coldcompress::client
