#include "client/sweep.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/eval.h"
#include "client/judge.h"
#include "client/pool.h"
#include "client/progress.h"

namespace coldcompress::client {
namespace {

std::string JobLabel(const EvalFlags& f) {
  std::vector<std::string> sizes;
  for (double x : f.policy.max_cache_length) sizes.push_back(FormatNumber(x));
  return absl::StrCat(PolicyLabel(f.policy), " ",
                      sizes.empty() ? "-" : absl::StrJoin(sizes, "-"), " ",
                      f.tasks.at(0));
}

void AddPerTask(const EvalFlags& base, std::vector<SweepJob>* jobs) {
  for (const std::string& task : base.tasks) {
    SweepJob job{base, ""};
    job.flags.tasks = {task};
    job.label = JobLabel(job.flags);
    jobs->push_back(std::move(job));
  }
}

}  // namespace

absl::StatusOr<std::vector<SweepJob>> MakeJobs(const SweepFlags& f) {
  std::vector<SweepJob> jobs;
  if (!f.command_file.empty()) {
    std::ifstream in(f.command_file);
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat("command_file: ", f.command_file, " cannot be read"));
    }
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos ||
          line.find_first_not_of(" \t") == line.find('#'))
        continue;
      EvalFlags flags;
      if (absl::Status s = ParseCommandLine(line, number, &flags); !s.ok())
        return s;
      if (absl::Status s = CheckCacheSizes(flags.policy.max_cache_length);
          !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("command_file line ", number, ": ", s.message()));
      }
      flags.servers = f.eval.servers;
      AddPerTask(flags, &jobs);
    }
    if (jobs.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("command_file: ", f.command_file, " holds no command"));
    }
    return jobs;
  }
  if (f.config_names.empty()) {
    return absl::InvalidArgumentError(
        "config_names: give at least one (or --command_file)");
  }
  if (absl::Status s = CheckCacheSizes(f.cache_sizes); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache_sizes: ", s.message()));
  }
  for (const std::string& config : f.config_names) {
    std::vector<double> sizes = f.cache_sizes;
    if (sizes.empty()) sizes.push_back(-1);  // the preset's own size
    for (double size : sizes) {
      EvalFlags flags = f.eval;
      flags.policy.cache_config = config;
      if (size > 0) flags.policy.max_cache_length = {size};
      AddPerTask(flags, &jobs);
    }
  }
  if (f.add_full) {
    EvalFlags flags = f.eval;
    flags.policy = PolicyFlags();
    flags.policy.cache_strategy = {"full"};
    AddPerTask(flags, &jobs);
  }
  return jobs;
}

absl::Status RunSweep(const SweepFlags& f) {
  absl::StatusOr<std::vector<SweepJob>> jobs = MakeJobs(f);
  if (!jobs.ok()) return jobs.status();
  std::vector<EvalSettings> settings;
  for (const SweepJob& job : *jobs) {
    absl::StatusOr<EvalSettings> s = ToSettings(job.flags);
    if (!s.ok()) return s.status();
    s->progress = false;  // one line per job instead
    for (const std::string& task : job.flags.tasks) {
      absl::StatusOr<std::unique_ptr<Task>> t =
          MakeTask(task, s->task_options.task_dirs);
      if (!t.ok()) return t.status();
    }
    settings.push_back(*std::move(s));
  }
  absl::StatusOr<std::vector<std::string>> addresses =
      ResolveServers(f.eval.servers);
  if (!addresses.ok()) return addresses.status();
  absl::StatusOr<std::unique_ptr<ServerPool>> pool =
      ServerPool::Connect(*addresses, 30);
  if (!pool.ok()) return pool.status();
  for (size_t i = 0; i < jobs->size(); ++i) {
    if (absl::Status s =
            Preflight((*pool)->server(0), (*jobs)[i].flags, settings[i]);
        !s.ok()) {
      return absl::Status(
          s.code(), absl::StrCat("job ", (*jobs)[i].label, ": ", s.message()));
    }
  }
  absl::StatusOr<std::unique_ptr<Judge>> judge = MakeJudge(f.eval.judge);
  if (!judge.ok()) return judge.status();

  std::fprintf(stderr, "sweep: %zu jobs on %zu servers, %d at a time each\n",
               jobs->size(), (*pool)->size(), f.eval.per_server);
  std::vector<TaskOutcome> outcomes(jobs->size());
  std::mutex mu;
  Progress progress("sweep", jobs->size(), 0, !f.eval.no_progress);
  std::vector<absl::Status> results = (*pool)->Run(
      jobs->size(), f.eval.per_server,
      [&](size_t i, ServerClient& server) -> absl::Status {
        Evaluator evaluator(settings[i], judge->get());
        absl::StatusOr<TaskOutcome> outcome =
            evaluator.Run(**pool, &server, (*jobs)[i].flags.policy,
                          (*jobs)[i].flags.tasks[0]);
        std::lock_guard lock(mu);
        if (!outcome.ok()) {
          if (!absl::IsUnavailable(outcome.status())) {
            std::fprintf(stderr, "%sjob %s failed: %s\n",
                         progress.on_screen() ? "\n" : "",
                         (*jobs)[i].label.c_str(),
                         std::string(outcome.status().message()).c_str());
          }
          return outcome.status();
        }
        std::fprintf(stderr, "%sjob %s %s on %s\n",
                     progress.on_screen() ? "\n" : "", (*jobs)[i].label.c_str(),
                     outcome->skipped ? "was done before" : "done",
                     server.address().c_str());
        outcomes[i] = *std::move(outcome);
        progress.Advance();
        return absl::OkStatus();
      });
  progress.Finish();

  size_t failed = 0;
  std::printf("\n%-44s %-8s %12s %10s %14s  %s\n", "job", "status", "score",
              "compress", "cache bytes", "results");
  for (size_t i = 0; i < jobs->size(); ++i) {
    const TaskOutcome& o = outcomes[i];
    if (!results[i].ok()) {
      ++failed;
      std::printf("%-44s %-8s %s\n", (*jobs)[i].label.c_str(), "FAILED",
                  std::string(results[i].message()).c_str());
      continue;
    }
    const nlohmann::json& metrics = o.metrics["metrics"];
    std::string score = "-";
    if (!metrics.empty()) {
      score = absl::StrFormat("%s %.3f", metrics.begin().key(),
                              metrics.begin()->get<double>());
    }
    const nlohmann::json& cache = o.metrics["cache"];
    std::printf("%-44s %-8s %12s %10.3f %14.0f  %s\n", (*jobs)[i].label.c_str(),
                o.skipped ? "skipped" : "ok", score.c_str(),
                cache.value("compression_ratio", 0.0),
                cache.value("cache_bytes", 0.0), o.dir.c_str());
  }
  if (failed > 0) {
    return absl::AbortedError(
        absl::StrCat(failed, " of ", jobs->size(), " jobs failed"));
  }
  return absl::OkStatus();
}

}  // namespace coldcompress::client
