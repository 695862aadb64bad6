// One task under one cache policy: examples run on the pool, predictions
// appended as they finish (the resume point), metrics aggregated into the
// results directory.
#ifndef COLDCOMPRESS_CLIENT_EVAL_H_
#define COLDCOMPRESS_CLIENT_EVAL_H_

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "client/memory.h"
#include "client/policy_flags.h"
#include "client/tasks/task.h"

namespace coldcompress::client {

class Judge;
class ServerClient;
class ServerPool;

struct EvalSettings {
  TaskOptions task_options;  // count_tokens is set by the evaluator
  std::string results_root = "results";
  bool overwrite = false;
  // "example": fractions of max_cache_length resolve per example on the
  // server; "median": to one size per task, the fraction of the median
  // prompt + max_new_tokens over its examples (the reference's rule).
  std::string cache_sizing = "example";
  int per_server = 1;  // examples in flight per server
  float temperature = 0;
  uint64_t sampling_seed = 0;
  MemoryOptions memory;
  bool progress = true;
};

struct TaskOutcome {
  std::string task;
  std::string dir;
  bool skipped = false;  // finished by an earlier run
  nlohmann::json metrics;
};

class Evaluator {
 public:
  // `judge` may be null: llm_rouge is then left out of the metrics (and the
  // metrics file says why).
  Evaluator(EvalSettings settings, Judge* judge);

  // Runs `task` under `policy` over every server of `pool`, or only on
  // `pinned` when given: then an UNAVAILABLE server ends the run with
  // UNAVAILABLE so that the caller can requeue it elsewhere; the predictions
  // written so far stay and the next run resumes from them.
  absl::StatusOr<TaskOutcome> Run(ServerPool& pool, ServerClient* pinned,
                                  const PolicyFlags& policy,
                                  const std::string& task);

 private:
  EvalSettings settings_;
  Judge* judge_;
};

// The flags as JSON (args.json, reports).
nlohmann::json PolicyJson(const PolicyFlags& flags);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_EVAL_H_
