// Plain request and result types of the engine (no protobuf, no gRPC).
#ifndef COLDCOMPRESS_SERVER_ENGINE_TYPES_H_
#define COLDCOMPRESS_SERVER_ENGINE_TYPES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "policies/policy_spec.h"
#include "server/model/sampling.h"

namespace coldcompress {

struct GenerateInput {
  std::vector<int32_t> prompt;  // token ids, not empty
  int64_t max_new_tokens = 0;
  SamplingOptions sampling;
  std::vector<std::string> stop;
  // Token ids that end generation like EOS (a chat template's end of turn).
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  PolicySpec policy;
  // False when the request left the policy empty: a session's follow-up turn
  // then keeps the session's policy.
  bool policy_given = false;
  std::string session_id;  // empty: one-shot
  std::string owner;       // the principal asking (sessions are per owner)
};

struct CacheStatsResult {
  double compression_ratio = 0;
  std::vector<double> layer_compression_ratio;
  int64_t cache_bytes = 0;
  int64_t full_cache_bytes = 0;
  std::optional<double> attention_loss;  // analysis mode
  std::vector<double> layer_attention_loss;
  std::map<std::string, double> extra;
};

struct Timings {
  double queue_s = 0;
  double prefill_s = 0;
  double time_to_first_token_s = 0;
  double decode_s = 0;
  double decode_tokens_per_s = 0;
};

struct GenerateFinal {
  std::string finish_reason;  // "stop" | "length" | "cancelled"
  std::vector<int32_t> output_ids;
  std::string text;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  Timings timings;
  CacheStatsResult stats;
};

// One streamed event: new tokens and text, or the final result, or an error
// (the stream ends after a final or an error).
struct GenerateEvent {
  std::vector<int32_t> token_ids;
  std::string text;
  std::optional<GenerateFinal> final;
  absl::Status status;
};

struct ScoreInput {
  std::vector<int32_t> context;
  std::vector<std::vector<int32_t>> continuations;
  PolicySpec policy;
};

struct ContinuationResult {
  std::vector<double> token_logprobs;
  double logprob_sum = 0;
  bool is_greedy = true;
  CacheStatsResult stats;
};

struct ScoreOutput {
  std::vector<ContinuationResult> scores;
};

struct LayerSnapshot {
  std::string strategy;
  std::string prompt_compression;
  int64_t capacity = 0;
  int64_t recent_window = 0;
  std::vector<std::vector<int64_t>> head_positions;  // ascending; optional
};

struct SessionSnapshot {
  std::string session_id;
  std::vector<LayerSnapshot> layers;
  CacheStatsResult stats;
  int64_t tokens_seen = 0;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_TYPES_H_
