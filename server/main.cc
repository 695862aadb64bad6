// coldcompress-server: serves a Hugging Face checkpoint over gRPC with a
// per-request compressed KV cache.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <iostream>

#include "server/config.h"
#include "server/server.h"
#include "server/version.h"

namespace {

// Registers a flag that overrides a config field when given.
template <typename T>
void Flag(CLI::App& app, std::vector<std::function<void()>>& apply,
          coldcompress::ServerConfig& config, const std::string& name,
          T coldcompress::ServerConfig::*field, const std::string& help) {
  auto value = std::make_shared<T>();
  CLI::Option* option = app.add_option("--" + name, *value, help);
  apply.push_back([option, value, &config, field] {
    if (option->count() > 0) config.*field = *value;
  });
}

}  // namespace

int main(int argc, char** argv) {
  using coldcompress::ServerConfig;
  CLI::App app{"ColdCompress inference server"};
  std::string config_path;
  app.add_option(
      "--config", config_path,
      "YAML server config (default: configs/server.yaml when present)");
  ServerConfig config;
  std::vector<std::function<void()>> apply;
  Flag(app, apply, config, "model_dir", &ServerConfig::model_dir,
       "Hugging Face checkpoint directory");
  Flag(app, apply, config, "device", &ServerConfig::device,
       "cpu | cuda | cuda:N");
  Flag(app, apply, config, "dtype", &ServerConfig::dtype,
       "auto | float32 | bfloat16 | float16");
  Flag(app, apply, config, "listen", &ServerConfig::listen,
       "gRPC address, e.g. 127.0.0.1:50051");
  Flag(app, apply, config, "threads", &ServerConfig::threads,
       "decode's matrix-product threads (0 = all cores)");
  Flag(app, apply, config, "cuda_graphs", &ServerConfig::cuda_graphs,
       "on CUDA, decode steps replay CUDA graphs of the trunk");
  Flag(app, apply, config, "prefill_chunk_tokens",
       &ServerConfig::prefill_chunk_tokens,
       "prompt tokens a forward between decode steps (0 = whole prompts)");
  Flag(app, apply, config, "log_level", &ServerConfig::log_level,
       "trace|debug|info|warn|error");
  Flag(app, apply, config, "max_sessions", &ServerConfig::max_sessions,
       "named sessions held at once");
  Flag(app, apply, config, "max_queued_requests",
       &ServerConfig::max_queued_requests, "requests queued or running");
  Flag(app, apply, config, "max_concurrent_streams",
       &ServerConfig::max_concurrent_streams, "Generate streams open at once");
  Flag(app, apply, config, "max_stop_strings", &ServerConfig::max_stop_strings,
       "stop strings of one request");
  Flag(app, apply, config, "max_stop_string_bytes",
       &ServerConfig::max_stop_string_bytes, "bytes of one stop string");
  Flag(app, apply, config, "max_deadline_s", &ServerConfig::max_deadline_s,
       "longest a request may run, whatever its deadline (0 = no ceiling)");
  Flag(app, apply, config, "session_ttl_s", &ServerConfig::session_ttl_s,
       "idle sessions are closed after this (0 = never)");
  Flag(app, apply, config, "keepalive_time_s", &ServerConfig::keepalive_time_s,
       "HTTP/2 keepalive ping interval of idle connections");
  Flag(app, apply, config, "keepalive_timeout_s",
       &ServerConfig::keepalive_timeout_s,
       "a connection whose ping is not answered this fast is dropped");
  Flag(app, apply, config, "keepalive_min_ping_interval_s",
       &ServerConfig::keepalive_min_ping_interval_s,
       "clients pinging more often are sent GOAWAY");
  Flag(app, apply, config, "keepalive_permit_without_calls",
       &ServerConfig::keepalive_permit_without_calls,
       "allow client pings on connections without calls");
  Flag(app, apply, config, "drain_deadline_s", &ServerConfig::drain_deadline_s,
       "on SIGTERM/SIGINT, how long requests in flight may finish");
  Flag(app, apply, config, "max_prompt_tokens",
       &ServerConfig::max_prompt_tokens,
       "prompt token limit (0 = context length)");
  Flag(app, apply, config, "max_new_tokens", &ServerConfig::max_new_tokens,
       "max_new_tokens limit (0 = context length)");
  Flag(app, apply, config, "context_length", &ServerConfig::context_length,
       "context length cap (0 = the model's)");
  Flag(app, apply, config, "max_message_bytes",
       &ServerConfig::max_message_bytes, "gRPC message size limit");
  Flag(app, apply, config, "metrics_listen", &ServerConfig::metrics_listen,
       "HTTP address of /metrics, /healthz, /readyz (\"\" = off)");
  Flag(app, apply, config, "metrics_per_layer",
       &ServerConfig::metrics_per_layer,
       "also export KV-cache bytes per layer");
  Flag(app, apply, config, "max_cache_bytes", &ServerConfig::max_cache_bytes,
       "KV-cache memory budget in bytes; idle sessions are evicted, then "
       "requests refused (0 = none)");
  Flag(app, apply, config, "tls_cert_file", &ServerConfig::tls_cert_file,
       "TLS certificate chain (PEM)");
  Flag(app, apply, config, "tls_key_file", &ServerConfig::tls_key_file,
       "TLS private key (PEM)");
  Flag(app, apply, config, "tls_client_ca_file",
       &ServerConfig::tls_client_ca_file,
       "mutual TLS: CA that client certificates must be signed by (PEM)");
  Flag(app, apply, config, "auth_tokens_file", &ServerConfig::auth_tokens_file,
       "bearer tokens, NAME:TOKEN a line (also $COLDCOMPRESS_AUTH_TOKENS)");
  Flag(app, apply, config, "presets_dir", &ServerConfig::presets_dir,
       "cache presets folder");
  Flag(app, apply, config, "default_preset", &ServerConfig::default_preset,
       "preset of requests that set no cache policy");
  // Repeatable: each --policy_plugin adds a library (and replaces the
  // config file's list when given at all).
  auto plugins = std::make_shared<std::vector<std::string>>();
  CLI::Option* plugin_option = app.add_option(
      "--policy_plugin,--policy_plugins", *plugins,
      "policy plugin (shared library) to load at start-up; repeatable");
  apply.push_back([plugin_option, plugins, &config] {
    if (plugin_option->count() > 0) config.policy_plugins = *plugins;
  });
  app.set_version_flag("--version", coldcompress::kVersion);
  CLI11_PARSE(app, argc, argv);

  if (config_path.empty() && std::filesystem::exists("configs/server.yaml")) {
    config_path = "configs/server.yaml";
  }
  if (!config_path.empty()) {
    absl::StatusOr<ServerConfig> loaded =
        coldcompress::LoadServerConfig(config_path);
    if (!loaded.ok()) {
      std::cerr << "error: " << loaded.status().message() << "\n";
      return 2;
    }
    config = *loaded;
  }
  for (const auto& f : apply) f();
  if (absl::Status s = coldcompress::ValidateServerConfig(config); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));

  // Signals are taken synchronously by sigwait below; block them in every
  // thread (gRPC's threads inherit the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<coldcompress::Server>> server =
      coldcompress::Server::Start(config);
  if (!server.ok()) {
    spdlog::error("{}", server.status().ToString());
    return 1;
  }
  if (absl::Status s = (*server)->LoadModel(); !s.ok()) {
    spdlog::error("cannot start serving: {}", s.ToString());
    return 1;
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("signal {}: draining (up to {} s)", signal_number,
               config.drain_deadline_s);
  (*server)->Drain(config.drain_deadline_s);
  spdlog::info("drained; exiting");
  return 0;
}
