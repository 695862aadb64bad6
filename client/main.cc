// coldcompress: the command-line client.
//   coldcompress generate --server ADDR --prompt TEXT|FILE [policy flags]
//   coldcompress eval     --servers A,B --tasks T... [policy flags]
//   coldcompress sweep    --servers A,B --config_names C... --cache_sizes S...
//                         --tasks T... | --command_file FILE
//   coldcompress report   RESULTS_DIR... [--out DIR]
//   coldcompress tasks | health | info
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli.h"
#include "client/connect.h"
#include "client/eval.h"
#include "client/judge.h"
#include "client/policy_flags.h"
#include "client/pool.h"
#include "client/report.h"
#include "client/sweep.h"
#include "client/tasks/task.h"
#include "coldcompress/v1/coldcompress.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

namespace v1 = coldcompress::v1;
namespace cc = coldcompress::client;

// TLS and the bearer token from the environment (client/connect.h); a bad
// setting ends the command with its message.
std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      cc::MakeChannel(address, cc::ConnectOptionsFromEnv(), args);
  if (!channel.ok()) {
    std::cerr << "error: " << channel.status().message() << "\n";
    std::exit(2);
  }
  return *std::move(channel);
}

int Fail(const grpc::Status& status) {
  std::cerr << "error: " << status.error_code() << " " << status.error_message()
            << "\n";
  return 1;
}

// One line naming the problem; exit status 1.
int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return 1;
}

// The prompt flag names a file when one exists at that path.
std::string ReadPrompt(const std::string& prompt) {
  std::error_code ec;
  if (prompt.size() < 4096 && std::filesystem::is_regular_file(prompt, ec)) {
    std::ifstream in(prompt);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  return prompt;
}

struct GenerateFlags {
  std::string server = "127.0.0.1:50051";
  std::string prompt;
  uint32_t max_new_tokens = 64;
  float temperature = 0;
  int top_k = 0;
  float top_p = 1;
  uint64_t seed = 0;
  bool seed_set = false;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  std::string session_id;
  cc::PolicyFlags policy;
};

void PrintStats(const v1::FinalResult& f) {
  const v1::Timings& t = f.timings();
  const v1::CacheStats& s = f.stats();
  std::printf("\n\n--- %s: %u prompt + %u generated tokens\n",
              f.finish_reason().c_str(), f.usage().prompt_tokens(),
              f.usage().completion_tokens());
  std::printf(
      "time to first token %.3f s (queue %.3f s, prefill %.3f s), decode %.3f "
      "s, "
      "%.1f tokens/s\n",
      t.time_to_first_token_s(), t.queue_s(), t.prefill_s(), t.decode_s(),
      t.decode_tokens_per_s());
  std::printf(
      "cache: compression ratio %.3f, %llu bytes allocated, %llu bytes for a "
      "full "
      "cache of the same tokens\n",
      s.compression_ratio(), static_cast<unsigned long long>(s.cache_bytes()),
      static_cast<unsigned long long>(s.full_cache_bytes()));
  if (s.has_attention_loss())
    std::printf("attention loss %.4f\n", s.attention_loss());
  std::printf("per-layer compression:");
  for (int i = 0; i < s.layer_compression_ratio_size(); ++i) {
    std::printf(" %.3f", s.layer_compression_ratio(i));
  }
  std::printf("\n");
  for (const auto& [k, v] : s.extra()) {
    if (k.find("/layer_") == std::string::npos)
      std::printf("%s: %.4f\n", k.c_str(), v);
  }
}

int Generate(const GenerateFlags& f) {
  auto stub = v1::ColdCompress::NewStub(Connect(f.server));
  v1::GenerateRequest request;
  request.set_prompt(ReadPrompt(f.prompt));
  request.set_max_new_tokens(f.max_new_tokens);
  if (f.temperature > 0)
    request.mutable_sampling()->set_temperature(f.temperature);
  if (f.top_k > 0) request.mutable_sampling()->set_top_k(f.top_k);
  if (f.top_p < 1) request.mutable_sampling()->set_top_p(f.top_p);
  if (f.seed_set) request.mutable_sampling()->set_seed(f.seed);
  for (const auto& s : f.stop) request.add_stop(s);
  request.set_ignore_eos(f.ignore_eos);
  request.set_session_id(f.session_id);
  absl::StatusOr<v1::CachePolicy> cache = cc::ToCachePolicy(f.policy);
  if (!cache.ok()) return Fail(cache.status());
  *request.mutable_cache() = *std::move(cache);

  grpc::ClientContext context;
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  v1::FinalResult final;
  bool have_final = false;
  while (reader->Read(&response)) {
    if (response.has_chunk()) {
      std::fwrite(response.chunk().text().data(), 1,
                  response.chunk().text().size(), stdout);
      std::fflush(stdout);
    } else if (response.has_final()) {
      final = response.final();
      have_final = true;
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return Fail(status);
  if (have_final) PrintStats(final);
  return 0;
}

int Health(const std::string& server, double wait_s) {
  auto stub = grpc::health::v1::Health::NewStub(Connect(server));
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000));
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(2));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    if (status.ok() &&
        response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      std::cout << "SERVING\n";
      return 0;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::cerr
          << "not serving: "
          << (status.ok()
                  ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                        response.status())
                  : status.error_message())
          << "\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int Info(const std::string& server) {
  auto stub = v1::ColdCompress::NewStub(Connect(server));
  grpc::ClientContext context;
  v1::GetServerInfoRequest request;
  v1::ServerInfo info;
  grpc::Status status = stub->GetServerInfo(&context, request, &info);
  if (!status.ok()) return Fail(status);
  std::cout << info.DebugString();
  return 0;
}

int Eval(const cc::EvalFlags& flags) {
  absl::StatusOr<cc::EvalSettings> settings = cc::ToSettings(flags);
  if (!settings.ok()) return Fail(settings.status());
  for (const std::string& name : flags.tasks) {
    absl::StatusOr<std::unique_ptr<cc::Task>> task =
        cc::MakeTask(name, settings->task_options.task_dirs);
    if (!task.ok()) return Fail(task.status());
  }
  if (absl::Status s = cc::CheckCacheSizes(flags.policy.max_cache_length);
      !s.ok())
    return Fail(s);
  absl::StatusOr<std::vector<std::string>> addresses =
      cc::ResolveServers(flags.servers);
  if (!addresses.ok()) return Fail(addresses.status());
  absl::StatusOr<std::unique_ptr<cc::ServerPool>> pool =
      cc::ServerPool::Connect(*addresses, 30);
  if (!pool.ok()) return Fail(pool.status());
  if (absl::Status s = cc::Preflight((*pool)->server(0), flags, *settings);
      !s.ok())
    return Fail(s);
  absl::StatusOr<std::unique_ptr<cc::Judge>> judge = cc::MakeJudge(flags.judge);
  if (!judge.ok()) return Fail(judge.status());
  cc::Evaluator evaluator(*settings, judge->get());
  for (const std::string& name : flags.tasks) {
    absl::StatusOr<cc::TaskOutcome> outcome =
        evaluator.Run(**pool, nullptr, flags.policy, name);
    if (!outcome.ok()) return Fail(outcome.status());
    std::printf("%s%s: %s\n  cache %s\n  -> %s\n", outcome->task.c_str(),
                outcome->skipped ? " (done before; --overwrite to redo)" : "",
                outcome->metrics["metrics"].dump().c_str(),
                outcome->metrics["cache"].dump().c_str(), outcome->dir.c_str());
  }
  return 0;
}

int ListTasks(const std::vector<std::string>& dirs) {
  std::vector<std::string> all_dirs = dirs;
  all_dirs.push_back(cc::DefaultTaskDir());
  for (const std::string& name : cc::KnownTaskNames(all_dirs)) {
    absl::StatusOr<std::unique_ptr<cc::Task>> task =
        cc::MakeTask(name, all_dirs);
    if (!task.ok()) {
      std::printf("%-22s (broken: %s)\n", name.c_str(),
                  std::string(task.status().message()).c_str());
      continue;
    }
    const cc::TaskSpec& s = (*task)->spec();
    std::printf("%-22s %-40s [%s]\n", name.c_str(),
                s.description.substr(0, 40).c_str(),
                absl::StrJoin(s.metrics, ", ").c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ColdCompress client"};
  app.require_subcommand(1);

  GenerateFlags g;
  CLI::App* gen = app.add_subcommand(
      "generate", "Stream a generation and print cache statistics");
  gen->add_option("--server", g.server, "server address");
  gen->add_option("--prompt", g.prompt, "prompt text, or a file holding it")
      ->required();
  gen->add_option("--max_new_tokens", g.max_new_tokens);
  gen->add_option("--temperature", g.temperature, "0 = greedy");
  gen->add_option("--top_k", g.top_k);
  gen->add_option("--top_p", g.top_p);
  auto* seed = gen->add_option("--seed", g.seed);
  gen->add_option("--stop", g.stop, "stop strings");
  gen->add_flag("--ignore_eos", g.ignore_eos);
  gen->add_option("--session_id", g.session_id,
                  "keep the cache for a follow-up turn");
  cc::AddPolicyFlags(gen, &g.policy);

  std::string health_server = "127.0.0.1:50051";
  double wait_s = 0;
  CLI::App* health =
      app.add_subcommand("health", "Check (or wait for) a SERVING server");
  health->add_option("--server", health_server);
  health->add_option("--wait", wait_s, "seconds to wait for SERVING");

  std::string info_server = "127.0.0.1:50051";
  CLI::App* info =
      app.add_subcommand("info", "Print the server's model and limits");
  info->add_option("--server", info_server);

  cc::EvalFlags eval_flags;
  CLI::App* eval = app.add_subcommand(
      "eval", "Run tasks under a cache policy over a pool of servers");
  cc::AddEvalFlags(eval, &eval_flags, /*with_servers=*/true);

  cc::SweepFlags sweep_flags;
  CLI::App* sweep = app.add_subcommand(
      "sweep", "Run configs x cache sizes x tasks as jobs over the pool");
  sweep
      ->add_option("--servers", sweep_flags.eval.servers,
                   "HOST:PORT lists or dns:///NAME:PORT")
      ->required()
      ->delimiter(',');
  sweep->add_option("--config_names", sweep_flags.config_names,
                    "cache presets to compare");
  sweep->add_option("--cache_sizes", sweep_flags.cache_sizes,
                    "max_cache_length values (fractions or token counts)");
  sweep->add_flag("--add_full", sweep_flags.add_full,
                  "also run each task with the full cache");
  sweep->add_option("--command_file", sweep_flags.command_file,
                    "eval invocations, one per line, instead of the product");
  {
    // The eval flags without --servers and with --tasks optional (a command
    // file brings its own).
    cc::AddEvalFlags(sweep, &sweep_flags.eval, /*with_servers=*/false);
    sweep->get_option("--tasks")->required(false);
  }

  std::vector<std::string> report_inputs;
  std::string report_out = "report";
  CLI::App* report = app.add_subcommand(
      "report", "Tables and plots of score and memory against compression");
  report->add_option("results", report_inputs, "results directories")
      ->required();
  report->add_option("--out", report_out, "where the report goes");

  std::vector<std::string> task_dirs;
  CLI::App* tasks = app.add_subcommand("tasks", "List the tasks");
  tasks->add_option("--task_dir", task_dirs, "more task folders");

  CLI11_PARSE(app, argc, argv);
  g.seed_set = seed->count() > 0;
  if (gen->parsed()) return Generate(g);
  if (eval->parsed()) return Eval(eval_flags);
  if (sweep->parsed()) {
    if (sweep_flags.command_file.empty() && sweep_flags.eval.tasks.empty()) {
      return Fail(absl::InvalidArgumentError(
          "tasks: give --tasks (or --command_file)"));
    }
    absl::Status s = cc::RunSweep(sweep_flags);
    return s.ok() ? 0 : Fail(s);
  }
  if (report->parsed()) {
    absl::StatusOr<std::vector<cc::ReportRow>> rows =
        cc::CollectResults(report_inputs);
    if (!rows.ok()) return Fail(rows.status());
    absl::StatusOr<std::vector<std::string>> written =
        cc::WriteReport(*rows, report_out);
    if (!written.ok()) return Fail(written.status());
    std::fprintf(stderr, "wrote %zu files to %s\n", written->size(),
                 report_out.c_str());
    return 0;
  }
  if (tasks->parsed()) return ListTasks(task_dirs);
  if (health->parsed()) return Health(health_server, wait_s);
  if (info->parsed()) return Info(info_server);
  return 2;
}
