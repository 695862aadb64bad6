#include "client/eval.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <set>

#include "absl/strings/str_cat.h"
#include "client/example_runner.h"
#include "client/judge.h"
#include "client/pool.h"
#include "client/progress.h"
#include "client/results.h"
#include "client/scoring.h"

namespace coldcompress::client {
namespace fs = std::filesystem;
using nlohmann::json;

json PolicyJson(const PolicyFlags& f) {
  json out;
  out["cache_config"] = f.cache_config;
  out["cache_strategy"] = f.cache_strategy;
  out["prompt_compression_strategy"] = f.prompt_compression_strategy;
  out["max_cache_length"] = f.max_cache_length;
  out["cache_length_pattern"] = f.cache_length_pattern;
  out["cache_strategy_pattern"] = f.cache_strategy_pattern;
  out["global_tokens"] = f.global_tokens ? json(*f.global_tokens) : json();
  out["recent_window"] = f.recent_window ? json(*f.recent_window) : json();
  out["history_window_size"] =
      f.history_window_size ? json(*f.history_window_size) : json();
  out["attn_thresholding"] = f.attn_thresholding;
  out["min_recovery_frac"] =
      f.min_recovery_frac ? json(*f.min_recovery_frac) : json();
  out["cache_bits"] = f.cache_bits ? json(*f.cache_bits) : json();
  out["feed_long_prompts"] = f.feed_long_prompts;
  out["decode_first_token"] = f.decode_first_token;
  // Absent when empty, so that results made before plugins resume.
  if (!f.params.empty()) out["params"] = f.params;
  return out;
}

namespace {

// What must match for a run to resume into a results directory.
json Identity(const PolicyFlags& policy, const EvalSettings& s) {
  return {{"policy", PolicyJson(policy)},
          {"cache_sizing", s.cache_sizing},
          {"seed", s.task_options.seed},
          {"context_length", s.task_options.context_length},
          {"needle_depth",
           {s.task_options.needle_depth_lo, s.task_options.needle_depth_hi}},
          {"temperature", s.temperature},
          {"sampling_seed", s.sampling_seed}};
}

std::string Now() {
  const std::time_t t = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buffer;
}

// Writes args.json, or checks that the one there was made with the same
// identity; adds the task to its list.
absl::Status UpdateArgs(const std::string& dir, const std::string& model,
                        const PolicyFlags& policy, const EvalSettings& s,
                        const std::string& task) {
  static std::mutex* mu = new std::mutex;
  std::lock_guard lock(*mu);
  const std::string path = (fs::path(dir) / "args.json").string();
  const json identity = Identity(policy, s);
  json args;
  if (fs::exists(path)) {
    absl::StatusOr<json> old = ReadJson(path);
    if (!old.ok()) return old.status();
    args = *std::move(old);
    for (const auto& [key, value] : identity.items()) {
      if (args.contains(key) && args[key] != value && !s.overwrite) {
        return absl::FailedPreconditionError(absl::StrCat(
            path, ": made with ", key, " ", args[key].dump(), ", this run has ",
            value.dump(), "; pass --overwrite or another --results_dir"));
      }
    }
  }
  args.update(identity);
  args["model"] = model;
  args["policy_label"] = PolicyLabel(policy);
  args["policy_dir"] = PolicyDirName(policy);
  args["cache_sizes"] = policy.max_cache_length;
  args["num_samples"] = s.task_options.num_samples;
  args["data_dir"] = s.task_options.data_dir;
  json tasks = args.value("tasks", json::array());
  if (std::find(tasks.begin(), tasks.end(), task) == tasks.end())
    tasks.push_back(task);
  args["tasks"] = tasks;
  return WriteJsonAtomic(path, args);
}

// --overwrite clears a task's files once per process, not again when a
// requeued job comes back.
bool FirstClear(const std::string& key) {
  static std::mutex* mu = new std::mutex;
  static auto* cleared = new std::set<std::string>;
  std::lock_guard lock(*mu);
  return cleared->insert(key).second;
}

double Median(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

// The task-median rule: each fraction becomes a token count.
absl::Status ApplyMedianSizing(ServerClient& server, const TaskSpec& spec,
                               const std::vector<Example>& examples,
                               v1::CachePolicy* policy, json* sizing) {
  std::vector<int> lengths;
  for (const Example& e : examples) {
    absl::StatusOr<v1::TokenizeResponse> t = server.Tokenize(e.prompt, true);
    if (!t.ok()) return t.status();
    lengths.push_back(t->token_ids_size() +
                      static_cast<int>(spec.max_new_tokens));
  }
  if (lengths.empty()) return absl::OkStatus();
  const double median = Median(lengths);
  json resolved = json::array();
  for (int i = 0; i < policy->max_cache_length_size(); ++i) {
    double x = policy->max_cache_length(i);
    if (x <= 1) x = std::max(2.0, std::round(x * median));
    policy->set_max_cache_length(i, x);
    resolved.push_back(x);
  }
  *sizing = {{"rule", "median"},
             {"median_length", median},
             {"max_cache_length", resolved}};
  return absl::OkStatus();
}

std::vector<std::string> MetricsTargets(
    const std::vector<ServerClient*>& servers) {
  std::vector<std::string> out;
  for (ServerClient* s : servers) {
    if (s->info().metrics_port() == 0) continue;
    const std::string& a = s->address();
    out.push_back(
        absl::StrCat(a.substr(0, a.rfind(':')), ":", s->info().metrics_port()));
  }
  return out;
}

}  // namespace

Evaluator::Evaluator(EvalSettings settings, Judge* judge)
    : settings_(std::move(settings)), judge_(judge) {}

absl::StatusOr<TaskOutcome> Evaluator::Run(ServerPool& pool,
                                           ServerClient* pinned,
                                           const PolicyFlags& policy,
                                           const std::string& task_name) {
  absl::StatusOr<std::unique_ptr<Task>> task =
      MakeTask(task_name, settings_.task_options.task_dirs);
  if (!task.ok()) return task.status();
  const TaskSpec& spec = (*task)->spec();
  ServerClient& any = pinned != nullptr ? *pinned : pool.server(0);
  absl::StatusOr<v1::CachePolicy> cache = ToCachePolicy(policy);
  if (!cache.ok()) return cache.status();

  TaskOutcome outcome;
  outcome.task = spec.name;
  outcome.dir = ResultsDir(settings_.results_root, any.info().model_name(),
                           PolicyDirName(policy));
  std::error_code ec;
  fs::create_directories(outcome.dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(outcome.dir, ": cannot create: ", ec.message()));
  }
  const std::string predictions_path =
      (fs::path(outcome.dir) / (spec.name + "_predictions.jsonl")).string();
  const std::string metrics_path =
      (fs::path(outcome.dir) / (spec.name + "_metrics.json")).string();
  if (settings_.overwrite && FirstClear(metrics_path)) {
    fs::remove(predictions_path, ec);
    fs::remove(metrics_path, ec);
  }
  if (absl::Status s = UpdateArgs(outcome.dir, any.info().model_name(), policy,
                                  settings_, spec.name);
      !s.ok())
    return s;
  if (fs::exists(metrics_path)) {
    absl::StatusOr<json> done = ReadJson(metrics_path);
    if (done.ok() && done->value("num_samples_requested", -2) ==
                         settings_.task_options.num_samples) {
      outcome.skipped = true;
      outcome.metrics = *std::move(done);
      return outcome;
    }
  }

  TaskOptions options = settings_.task_options;
  options.count_tokens = [&any](const std::string& text,
                                bool special) -> absl::StatusOr<int> {
    absl::StatusOr<v1::TokenizeResponse> t = any.Tokenize(text, special);
    if (!t.ok()) return t.status();
    return t->token_ids_size();
  };
  absl::StatusOr<std::vector<Example>> examples = (*task)->Load(options);
  if (!examples.ok()) return examples.status();
  json sizing = {{"rule", settings_.cache_sizing}};
  if (settings_.cache_sizing == "median") {
    if (absl::Status s =
            ApplyMedianSizing(any, spec, *examples, &*cache, &sizing);
        !s.ok())
      return s;
  }

  absl::StatusOr<std::vector<json>> previous =
      ReadPredictions(predictions_path);
  if (!previous.ok()) return previous.status();
  std::set<std::string> done_ids;
  for (const json& r : *previous) done_ids.insert(r.value("id", ""));
  std::vector<const Example*> todo;
  for (const Example& e : *examples) {
    if (!done_ids.count(e.id)) todo.push_back(&e);
  }
  absl::StatusOr<std::unique_ptr<PredictionsWriter>> writer =
      PredictionsWriter::Open(predictions_path);
  if (!writer.ok()) return writer.status();

  std::vector<ServerClient*> used;
  if (pinned != nullptr) {
    used.push_back(pinned);
  } else {
    for (size_t i = 0; i < pool.size(); ++i) used.push_back(&pool.server(i));
  }
  MemoryMonitor monitor(settings_.memory, MetricsTargets(used));
  Progress progress(absl::StrCat(spec.name, " ", PolicyDirName(policy)),
                    examples->size(), examples->size() - todo.size(),
                    settings_.progress);
  ExampleSettings example_settings{settings_.temperature,
                                   settings_.sampling_seed, judge_};
  auto run_one = [&](size_t i, ServerClient& server) -> absl::Status {
    absl::StatusOr<json> rec =
        RunExample(server, spec, *todo[i], *cache, example_settings);
    if (!rec.ok()) return rec.status();
    if (absl::Status s = (*writer)->Append(*rec); !s.ok()) return s;
    progress.Advance();
    return absl::OkStatus();
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<absl::Status> results;
  if (pinned != nullptr) {
    for (size_t i = 0; i < todo.size(); ++i) {
      results.push_back(run_one(i, *pinned));
      if (absl::IsUnavailable(results.back())) {
        progress.Finish();
        return results.back();
      }
    }
  } else {
    results = pool.Run(todo.size(), settings_.per_server, run_one);
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  progress.Finish();
  absl::StatusOr<json> memory = monitor.Stop();
  size_t failed = 0;
  absl::Status first;
  for (const absl::Status& s : results) {
    if (!s.ok() && failed++ == 0) first = s;
  }
  if (failed > 0) {
    return absl::Status(
        first.code(),
        absl::StrCat("task ", spec.name, ": ", failed, " of ", todo.size(),
                     " examples failed, the first: ", first.message(),
                     " (the finished ones are kept in ", predictions_path,
                     "; run again to resume)"));
  }

  absl::StatusOr<std::vector<json>> all = ReadPredictions(predictions_path);
  if (!all.ok()) return all.status();
  std::map<std::string, json> by_id;
  for (json& r : *all) {
    const std::string id = r.value("id", "");
    by_id[id] = std::move(r);
  }
  std::vector<json> records;
  for (const Example& e : *examples) {
    auto it = by_id.find(e.id);
    if (it != by_id.end()) records.push_back(std::move(it->second));
  }
  json m;
  m["task"] = spec.name;
  m["num_samples"] = records.size();
  m["num_samples_requested"] = settings_.task_options.num_samples;
  m["policy_label"] = PolicyLabel(policy);
  m["cache_sizes"] = policy.max_cache_length;
  m["cache_sizing"] = sizing;
  m["metrics"] = MeanOf(records, "scores");
  m["cache"] = MeanOf(records, "stats");
  json latency = MeanOf(records, "timings");
  latency["wall_s"] = wall;
  latency["examples_per_s"] = wall > 0 ? todo.size() / wall : 0.0;
  m["latency"] = std::move(latency);
  if (memory.ok()) {
    m["memory"] = *std::move(memory);
  } else {
    std::cerr << "warning: cache memory not measured: "
              << memory.status().message() << "\n";
    m["memory"] = {{"error", std::string(memory.status().message())}};
  }
  const bool wants_judge = std::find(spec.metrics.begin(), spec.metrics.end(),
                                     "llm_rouge") != spec.metrics.end();
  if (wants_judge) {
    m["judge"] = judge_ != nullptr
                     ? json(judge_->name())
                     : json(
                           "none: llm_rouge not scored (give --judge_server "
                           "or --judge_api)");
  }
  m["finished_at"] = Now();
  if (absl::Status s = WriteJsonAtomic(metrics_path, m); !s.ok()) return s;
  if (absl::Status s = MergeAllMetrics(outcome.dir, spec.name, m); !s.ok())
    return s;
  outcome.metrics = std::move(m);
  return outcome;
}

}  // namespace coldcompress::client
