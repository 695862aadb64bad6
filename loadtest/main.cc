// coldcompress-loadtest --server HOST:PORT --config
// loadtest/configs/default.yaml
//   --concurrency 1 4 16 --out results/loadtest
// Runs one load level per --concurrency (closed loop) or per --request_rate
// (open loop, at most --max_concurrency in flight), each after its warm-up;
// prints a Markdown table and writes level_*.json, summary.json, report.md
// and throughput.svg under --out.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/pool.h"
#include "loadtest/loadtest.h"

namespace {

namespace fs = std::filesystem;
namespace lt = coldcompress::loadtest;

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Load on a ColdCompress server: a mix of cache policies and lengths, "
      "closed-loop clients or open-loop arrivals, vLLM-style latency and "
      "throughput per policy"};
  std::string server = "127.0.0.1:50051", config_path, out = "results/loadtest";
  std::vector<int> concurrency;
  std::vector<double> rates;
  int max_concurrency = 64;
  int64_t num_requests = 0, warmup = -1;
  bool no_progress = false;
  app.add_option("--server", server, "host:port of the server");
  app.add_option("--config", config_path, "the mix (YAML)")->required();
  app.add_option("--concurrency", concurrency,
                 "closed loop: clients per level (default 1 4 16)")
      ->check(CLI::PositiveNumber);
  app.add_option("--request_rate", rates,
                 "open loop instead: Poisson arrivals per second, a level "
                 "each")
      ->check(CLI::PositiveNumber);
  app.add_option("--max_concurrency", max_concurrency,
                 "open loop: requests in flight at most")
      ->check(CLI::PositiveNumber);
  app.add_option("--num_requests", num_requests,
                 "timed requests per level (default: the config's)");
  app.add_option("--warmup_requests", warmup,
                 "untimed requests before each level (default: the "
                 "config's)");
  app.add_option("--out", out, "directory for the JSON, table and plot");
  app.add_flag("--no_progress", no_progress, "no progress bar");
  CLI11_PARSE(app, argc, argv);
  if (!concurrency.empty() && !rates.empty()) {
    std::cerr << "error: --concurrency and --request_rate: give one\n";
    return 2;
  }
  if (concurrency.empty() && rates.empty()) concurrency = {1, 4, 16};

  absl::StatusOr<lt::LoadConfig> config = lt::LoadConfigFile(config_path);
  if (!config.ok()) return Fail(config.status());
  if (num_requests > 0) config->num_requests = num_requests;
  if (warmup >= 0) config->warmup_requests = warmup;

  coldcompress::client::ServerClient info_client(server);
  if (absl::Status s = info_client.Connect(30); !s.ok()) return Fail(s);
  const auto& info = info_client.info();
  // Token ids from past the special ones (BOS, EOS and the first few).
  int32_t first_id = 3;
  for (int32_t id : info.eos_token_ids()) first_id = std::max(first_id, id + 1);
  first_id = std::max(first_id, info.bos_token_id() + 1);
  if (first_id >= static_cast<int32_t>(info.vocab_size())) first_id = 0;
  std::printf(
      "server %s: model %s (%s on %s), context %u; %lld requests per level "
      "after %lld warm-up\n",
      server.c_str(), info.model_name().c_str(), info.dtype().c_str(),
      info.device().c_str(), info.context_length(),
      static_cast<long long>(config->num_requests),
      static_cast<long long>(config->warmup_requests));

  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec)
    return Fail(absl::InternalError(absl::StrCat(out, ": ", ec.message())));
  std::vector<nlohmann::json> summaries;
  const size_t levels = rates.empty() ? concurrency.size() : rates.size();
  for (size_t level = 0; level < levels; ++level) {
    lt::LevelOptions options;
    options.progress = !no_progress;
    if (rates.empty()) {
      options.concurrency = concurrency[level];
    } else {
      options.request_rate = rates[level];
      options.concurrency = max_concurrency;
    }
    if (config->warmup_requests > 0) {
      lt::LevelOptions quiet = options;
      quiet.progress = false;
      const auto warm =
          lt::PlanRequests(*config, config->warmup_requests, 1000 + level,
                           info.vocab_size(), first_id, info.context_length());
      absl::StatusOr<lt::LevelResult> w = lt::RunLevel(server, warm, quiet);
      if (!w.ok()) return Fail(w.status());
    }
    const auto plan =
        lt::PlanRequests(*config, config->num_requests, level,
                         info.vocab_size(), first_id, info.context_length());
    absl::StatusOr<lt::LevelResult> result =
        lt::RunLevel(server, plan, options);
    if (!result.ok()) return Fail(result.status());
    nlohmann::json summary = lt::Summarize(*result);
    const std::string name =
        rates.empty() ? absl::StrCat("level_c", options.concurrency, ".json")
                      : absl::StrFormat("level_r%g.json", options.request_rate);
    std::ofstream((fs::path(out) / name).string()) << summary.dump(2) << "\n";
    summaries.push_back(std::move(summary));
  }
  const std::string table = lt::MarkdownTable(summaries);
  std::printf("\n%s", table.c_str());
  nlohmann::json all = {{"server", server},
                        {"model", info.model_name()},
                        {"config", config_path},
                        {"levels", summaries}};
  std::ofstream((fs::path(out) / "summary.json").string())
      << all.dump(2) << "\n";
  std::ofstream((fs::path(out) / "report.md").string()) << table;
  std::ofstream((fs::path(out) / "throughput.svg").string())
      << lt::ThroughputSvg(summaries);
  std::printf("\nwrote %s/{summary.json,report.md,throughput.svg}\n",
              out.c_str());
  int errors = 0;
  for (const auto& s : summaries) errors += s["overall"]["errors"].get<int>();
  return errors > 0 ? 3 : 0;
}
