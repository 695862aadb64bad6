// coldcompress: the command-line client.
//   coldcompress generate --server ADDR --prompt TEXT|FILE [policy flags]
//   coldcompress health   --server ADDR [--wait SECONDS]
//   coldcompress info     --server ADDR
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "coldcompress/v1/coldcompress.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

namespace v1 = coldcompress::v1;

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

int Fail(const grpc::Status& status) {
  std::cerr << "error: " << status.error_code() << " " << status.error_message()
            << "\n";
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
  std::string cache_config;
  std::vector<std::string> cache_strategy;
  std::vector<std::string> prompt_compression_strategy;
  std::vector<double> max_cache_length;
  std::string cache_length_pattern;
  std::string cache_strategy_pattern;
  int global_tokens = -1;
  double recent_window = -1;
  int history_window_size = -1;
  bool attn_thresholding = false;
  double min_recovery_frac = -1;
  int cache_bits = 0;
  bool feed_long_prompts = false;
  bool decode_first_token = false;
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
  if (s.has_attention_loss()) std::printf("attention loss %.4f\n", s.attention_loss());
  std::printf("per-layer compression:");
  for (int i = 0; i < s.layer_compression_ratio_size(); ++i) {
    std::printf(" %.3f", s.layer_compression_ratio(i));
  }
  std::printf("\n");
  for (const auto& [k, v] : s.extra()) {
    if (k.find("/layer_") == std::string::npos) std::printf("%s: %.4f\n", k.c_str(), v);
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
  v1::CachePolicy* cache = request.mutable_cache();
  cache->set_config_name(f.cache_config);
  for (const auto& s : f.cache_strategy) cache->add_strategy(s);
  for (const auto& s : f.prompt_compression_strategy)
    cache->add_prompt_compression(s);
  for (double x : f.max_cache_length) cache->add_max_cache_length(x);
  cache->set_length_pattern(f.cache_length_pattern);
  cache->set_strategy_pattern(f.cache_strategy_pattern);
  if (f.global_tokens >= 0) cache->set_global_tokens(f.global_tokens);
  if (f.recent_window >= 0) cache->set_recent_window(f.recent_window);
  if (f.history_window_size >= 0) cache->set_history_window_size(f.history_window_size);
  if (f.attn_thresholding) cache->set_attn_thresholding(true);
  if (f.min_recovery_frac >= 0) cache->set_min_recovery_frac(f.min_recovery_frac);
  if (f.cache_bits > 0) cache->set_cache_bits(f.cache_bits);
  cache->set_feed_long_prompts(f.feed_long_prompts);
  cache->set_decode_first_token(f.decode_first_token);

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
  gen->add_option("--cache_config", g.cache_config,
                  "a preset name from configs/");
  gen->add_option("--cache_strategy", g.cache_strategy,
                  "per-layer strategy pattern");
  gen->add_option("--prompt_compression_strategy",
                  g.prompt_compression_strategy);
  gen->add_option("--max_cache_length", g.max_cache_length,
                  "fractions (0,1] or token counts");
  gen->add_option("--cache_length_pattern", g.cache_length_pattern,
                  "tile|repeat|pyramid|funnel");
  gen->add_option("--cache_strategy_pattern", g.cache_strategy_pattern,
                  "tile|repeat");
  gen->add_option("--global_tokens", g.global_tokens);
  gen->add_option("--recent_window", g.recent_window);
  gen->add_option("--history_window_size", g.history_window_size);
  gen->add_flag("--attn_thresholding", g.attn_thresholding);
  gen->add_option("--min_recovery_frac", g.min_recovery_frac);
  gen->add_option("--cache_bits", g.cache_bits, "2, 4 or 8: quantized cache storage");
  gen->add_flag("--feed_long_prompts", g.feed_long_prompts);
  gen->add_flag("--decode_first_token", g.decode_first_token);

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

  CLI11_PARSE(app, argc, argv);
  g.seed_set = seed->count() > 0;
  if (gen->parsed()) return Generate(g);
  if (health->parsed()) return Health(health_server, wait_s);
  if (info->parsed()) return Info(info_server);
  return 2;
}
