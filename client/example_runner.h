// One example on one server: the request its task kind needs (Generate for
// answers, Score for options and perplexity), its scores, cache statistics
// and timings as one predictions record.
#ifndef COLDCOMPRESS_CLIENT_EXAMPLE_RUNNER_H_
#define COLDCOMPRESS_CLIENT_EXAMPLE_RUNNER_H_

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "client/tasks/task.h"
#include "coldcompress/v1/coldcompress.pb.h"

namespace coldcompress::client {

class Judge;
class ServerClient;

struct ExampleSettings {
  float temperature = 0;  // 0 = greedy
  uint64_t seed = 0;
  Judge* judge = nullptr;  // llm_rouge; null = not scored
};

// The record: {"id", "prediction", "labels" (or "choices"/"answer"),
// "scores", "stats", "timings", "server"}. Errors keep the server's status
// code (UNAVAILABLE when it is gone) and name the example.
absl::StatusOr<nlohmann::json> RunExample(ServerClient& server,
                                          const TaskSpec& spec,
                                          const Example& example,
                                          const v1::CachePolicy& policy,
                                          const ExampleSettings& settings);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_EXAMPLE_RUNNER_H_
