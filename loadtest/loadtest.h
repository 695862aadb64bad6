// coldcompress-loadtest: load on a ColdCompress server over gRPC, in the
// manner of vLLM's serving benchmark (benchmarks/benchmark_serving.py): a mix
// of cache policies and prompt / output lengths from a YAML file, sent
// closed-loop (a fixed number of clients, each sending its next request when
// the last one ends) or open-loop (Poisson arrivals at a request rate), after
// a warm-up; per policy and overall: time to first token (TTFT), time per
// output token after the first (TPOT), inter-token latency (ITL) and
// end-to-end latency (E2EL) as mean / median / std / p50 / p90 / p99 in ms,
// request and token throughput, errors. Names follow vLLM's JSON results.
#ifndef COLDCOMPRESS_LOADTEST_LOADTEST_H_
#define COLDCOMPRESS_LOADTEST_LOADTEST_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "coldcompress/v1/coldcompress.pb.h"

namespace coldcompress::loadtest {

// A token count: fixed, or drawn uniformly from [lo, hi].
struct Range {
  int64_t lo = 0, hi = 0;
};

// One kind of request in the mix.
struct MixEntry {
  std::string name;  // the label in reports, e.g. "heavy_hitter 0.25"
  double weight = 1;
  v1::CachePolicy cache;
  Range prompt_tokens, output_tokens;
};

struct LoadConfig {
  std::vector<MixEntry> mix;
  int64_t num_requests = 32;  // per load level
  int64_t warmup_requests = 2;
  uint64_t seed = 0;
};

// Parses the YAML file (format in loadtest/README.md); INVALID_ARGUMENT
// naming the file and key for a bad value.
absl::StatusOr<LoadConfig> LoadConfigFile(const std::string& path);
absl::StatusOr<LoadConfig> ParseLoadConfig(const std::string& yaml,
                                           const std::string& origin);

// What one request did, as the client saw it.
struct RequestRecord {
  std::string policy;  // MixEntry::name
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  int64_t chunks = 0;  // streamed messages with tokens (a chunk may hold many)
  double start_s = 0;  // since the level started
  double ttft_s = -1;  // < 0: no token came
  double e2el_s = 0;
  std::vector<double> itl_s;  // gaps between consecutive chunks
  std::string error;          // empty: succeeded
};

// One load level: closed-loop `concurrency` clients, or open-loop arrivals
// at `request_rate` per second (> 0) with at most `concurrency` in flight.
struct LevelOptions {
  int concurrency = 1;
  double request_rate = 0;  // 0: closed loop
  bool progress = true;
};

struct LevelResult {
  LevelOptions options;
  double duration_s = 0;  // first send to last end
  std::vector<RequestRecord> records;
};

// The requests of a run: config.num_requests (or warm-up) draws from the mix
// with the config's seed (+ `salt`), random token ids in [first_id, vocab).
struct PlannedRequest {
  const MixEntry* entry = nullptr;
  v1::GenerateRequest request;
};
std::vector<PlannedRequest> PlanRequests(const LoadConfig& config,
                                         int64_t count, uint64_t salt,
                                         int64_t vocab_size, int32_t first_id,
                                         int64_t context_length);

// Runs `requests` against the server at `address` (TLS and token from the
// environment, as the `coldcompress` client).
absl::StatusOr<LevelResult> RunLevel(const std::string& address,
                                     const std::vector<PlannedRequest>& plan,
                                     const LevelOptions& options);

// vLLM-style metrics of a level: {"overall": {...}, "by_policy": {name:
// {...}}} with completed, errors, total_input_tokens, total_output_tokens,
// duration, request_throughput, output_throughput, total_token_throughput
// and {mean,median,std,p50,p90,p99}_{ttft,tpot,itl,e2el}_ms.
nlohmann::json Summarize(const LevelResult& level);

// The nearest-rank-interpolated percentile (numpy's default, linear) of
// `values`, 0 <= p <= 100; 0 for none.
double Percentile(std::vector<double> values, double p);

// A Markdown table: one row per level and policy.
std::string MarkdownTable(const std::vector<nlohmann::json>& summaries);

// Output-token throughput against the level's load, a line per policy and
// one for all requests, as an SVG document.
std::string ThroughputSvg(const std::vector<nlohmann::json>& summaries);

}  // namespace coldcompress::loadtest

#endif  // COLDCOMPRESS_LOADTEST_LOADTEST_H_
