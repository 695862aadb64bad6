#include "client/cli.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "client/pool.h"

namespace coldcompress::client {

void AddEvalFlags(CLI::App* app, EvalFlags* f, bool with_servers) {
  if (with_servers) {
    app->add_option("--servers", f->servers,
                    "HOST:PORT lists or dns:///NAME:PORT (many servers)")
        ->required()
        ->delimiter(',');
  }
  app->add_option("--tasks", f->tasks, "task names (see docs/tasks.md)")
      ->required();
  AddPolicyFlags(app, &f->policy);
  app->add_option("--num_samples", f->num_samples,
                  "examples per task (default: all; generated tasks: 100)");
  app->add_option("--seed", f->seed, "seed of the generated (RULER) tasks");
  app->add_option("--context_length", f->context_length,
                  "generated tasks: prompt + max_new_tokens, in tokens");
  app->add_option("--needle_depth", f->needle_depth,
                  "LO HI: needles at depths uniform in [LO, HI) of the "
                  "haystack (default 0 1)")
      ->expected(2);
  app->add_option("--data_dir", f->data_dir,
                  "folder of the JSONL files of file-backed tasks");
  app->add_option("--task_data", f->task_data,
                  "NAME=PATH: a task's JSONL file");
  app->add_option("--task_dir", f->task_dirs,
                  "folders of task YAML files (before the shipped ones)");
  app->add_option("--results_dir", f->results_dir, "root of the results");
  app->add_flag("--overwrite", f->overwrite,
                "redo finished tasks instead of skipping them");
  app->add_option("--cache_sizing", f->cache_sizing,
                  "example: fractions per example; median: one size per "
                  "task from its median length (the reference's rule)");
  app->add_option("--per_server", f->per_server,
                  "requests (eval) or jobs (sweep) in flight per server");
  app->add_option("--temperature", f->temperature, "0 = greedy");
  app->add_option("--sampling_seed", f->sampling_seed);
  app->add_option("--prometheus", f->prometheus,
                  "Prometheus URL for the cache-memory series (default: "
                  "scrape each server's /metrics)");
  app->add_option("--prometheus_match", f->prometheus_match,
                  "label matcher of the servers in Prometheus (default: "
                  "their metrics endpoints as instance)");
  app->add_option("--judge_server", f->judge.server,
                  "llm_rouge judge: a ColdCompress server HOST:PORT");
  app->add_option("--judge_api", f->judge.api,
                  "llm_rouge judge: anthropic | openai (key from the "
                  "environment)");
  app->add_option("--judge_api_url", f->judge.api_url, "the API's base URL");
  app->add_option("--judge_model", f->judge.model, "the API's model name");
  app->add_option("--judge_api_key_env", f->judge.api_key_env,
                  "environment variable holding the API key");
  app->add_flag("--no_progress", f->no_progress, "no progress bar");
}

std::string DefaultTaskDir() {
  if (const char* env = std::getenv("COLDCOMPRESS_TASKS"); env && *env)
    return env;
  for (const char* dir :
       {"configs/tasks", COLDCOMPRESS_SOURCE_DIR "/configs/tasks",
        "/etc/coldcompress/configs/tasks"}) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) return dir;
  }
  return "configs/tasks";
}

absl::StatusOr<EvalSettings> ToSettings(const EvalFlags& f) {
  EvalSettings s;
  TaskOptions& t = s.task_options;
  t.num_samples = f.num_samples;
  t.seed = f.seed;
  t.context_length = f.context_length;
  if (f.needle_depth.size() != 2 ||
      !(f.needle_depth[0] >= 0 && f.needle_depth[0] < f.needle_depth[1] &&
        f.needle_depth[1] <= 1)) {
    return absl::InvalidArgumentError(
        "needle_depth: needs 0 <= LO < HI <= 1 (two numbers)");
  }
  t.needle_depth_lo = f.needle_depth[0];
  t.needle_depth_hi = f.needle_depth[1];
  t.data_dir = f.data_dir;
  for (const std::string& kv : f.task_data) {
    const auto name_path = SplitNameValue(kv);
    if (!name_path || name_path->second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("task_data: \"", kv, "\" is not NAME=PATH"));
    }
    t.data_files[name_path->first] = name_path->second;
  }
  for (const std::string& dir : f.task_dirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("task_dir: ", dir, " is not a folder"));
    }
    t.task_dirs.push_back(dir);
  }
  t.task_dirs.push_back(DefaultTaskDir());
  if (f.cache_sizing != "example" && f.cache_sizing != "median") {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache_sizing: \"", f.cache_sizing, "\" is not example or median"));
  }
  if (f.per_server < 1)
    return absl::InvalidArgumentError("per_server: must be >= 1");
  if (f.num_samples == 0)
    return absl::InvalidArgumentError("num_samples: must be > 0");
  s.results_root = f.results_dir;
  s.overwrite = f.overwrite;
  s.cache_sizing = f.cache_sizing;
  s.per_server = f.per_server;
  s.temperature = f.temperature;
  s.sampling_seed = f.sampling_seed;
  s.memory.prometheus_url = f.prometheus;
  s.memory.prometheus_match = f.prometheus_match;
  s.progress = !f.no_progress;
  return s;
}

absl::Status Preflight(ServerClient& server, const EvalFlags& flags,
                       const EvalSettings& settings) {
  if (!flags.policy.cache_config.empty()) {
    absl::StatusOr<v1::ListPoliciesResponse> known = server.ListPolicies();
    if (!known.ok()) return known.status();
    std::vector<std::string> names;
    for (const auto& p : known->presets()) names.push_back(p.name());
    if (std::find(names.begin(), names.end(), flags.policy.cache_config) ==
        names.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cache_config: unknown preset \"", flags.policy.cache_config,
          "\"; the server knows: ", absl::StrJoin(names, ", ")));
    }
  }
  const std::vector<std::string> generated = GeneratedTaskNames();
  const int model_context = static_cast<int>(server.info().context_length());
  TaskOptions options = settings.task_options;
  options.num_samples = 1;
  options.count_tokens = [&server](const std::string& text,
                                   bool special) -> absl::StatusOr<int> {
    absl::StatusOr<v1::TokenizeResponse> t = server.Tokenize(text, special);
    if (!t.ok()) return t.status();
    return t->token_ids_size();
  };
  for (const std::string& name : flags.tasks) {
    if (std::find(generated.begin(), generated.end(), name) !=
            generated.end() &&
        model_context > 0 && options.context_length > model_context) {
      return absl::InvalidArgumentError(absl::StrCat(
          "context_length: ", options.context_length, " is longer than ",
          server.address(), "'s model context of ", model_context, " tokens"));
    }
    absl::StatusOr<std::unique_ptr<Task>> task =
        MakeTask(name, options.task_dirs);
    if (!task.ok()) return task.status();
    absl::StatusOr<std::vector<Example>> one = (*task)->Load(options);
    if (!one.ok()) return one.status();
  }
  return absl::OkStatus();
}

absl::Status ParseCommandLine(const std::string& line, int number,
                              EvalFlags* flags) {
  absl::string_view text = line;
  if (const size_t hash = text.find('#'); hash != absl::string_view::npos)
    text = text.substr(0, hash);
  text = absl::StripAsciiWhitespace(text);
  for (absl::string_view prefix : {"coldcompress ", "eval "}) {
    if (absl::StartsWith(text, prefix)) {
      text = absl::StripLeadingAsciiWhitespace(text.substr(prefix.size()));
    }
  }
  CLI::App app;
  AddEvalFlags(&app, flags, /*with_servers=*/false);
  try {
    app.parse(std::string(text), /*program_name_included=*/false);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("command_file line ", number, ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace coldcompress::client
