#include "server/server.h"

#include <google/protobuf/stubs/logging.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "policies/registry.h"
#include "server/engine/engine.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/model/checkpoint.h"
#include "server/model/llama.h"
#include "server/service.h"
#include "server/tokenizer/load.h"
#include "server/version.h"

namespace coldcompress {

struct Server::Impl {
  ServerConfig config;
  ColdCompressService service;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<Metrics> metrics;
  std::unique_ptr<HttpServer> http;
  std::atomic<bool> ready{false};  // model loaded, not draining
  std::unique_ptr<Engine> engine;
  int port = 0;
  std::mutex mu;
  bool shut_down = false;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(0); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerConfig& config) {
  // protobuf's own complaints (e.g. a request string that is not UTF-8, which
  // the service reports to the client) go to the debug log.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*,
                                     int, const std::string& message) {
    spdlog::debug("protobuf: {}", message);
  });
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(),
                           &impl->port);
  builder.RegisterService(&impl->service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen));
  }
  impl->server->GetHealthCheckService()->SetServingStatus(false);
  MetricsOptions metrics_options;
  metrics_options.per_layer = config.metrics_per_layer;
  metrics_options.capacity_bytes = config.max_cache_bytes;
  impl->metrics = std::make_shared<Metrics>(metrics_options);
  if (!config.metrics_listen.empty()) {
    Impl* raw = impl.get();
    absl::StatusOr<std::unique_ptr<HttpServer>> http =
        HttpServer::Start(config.metrics_listen, impl->metrics.get(),
                          [raw] { return raw->ready.load(); });
    if (!http.ok()) return http.status();
    impl->http = *std::move(http);
    spdlog::info("metrics on {} (port {})", config.metrics_listen,
                 impl->http->port());
  }
  spdlog::info("listening on {} (port {})", config.listen, impl->port);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

absl::Status Server::LoadModel() {
  const ServerConfig& c = impl_->config;
  const auto t0 = std::chrono::steady_clock::now();
  at::Device device = at::kCPU;
  try {
    device = at::Device(c.device);
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device: \"", c.device, "\" is not a device (cpu, cuda, cuda:N)"));
  }
  if (device.is_cuda() && !at::hasCUDA()) {
    return absl::InvalidArgumentError(
        "device: this build of LibTorch has no CUDA support or no GPU is "
        "visible");
  }
  std::string dtype_name = c.dtype;
  if (dtype_name == "auto")
    dtype_name = device.is_cuda() ? "bfloat16" : "float32";
  absl::StatusOr<at::ScalarType> dtype = ParseDtype(dtype_name);
  if (!dtype.ok()) return dtype.status();
  spdlog::info("loading {} on {} as {}", c.model_dir, device.str(), dtype_name);
  absl::StatusOr<std::unique_ptr<LlamaModel>> model =
      LlamaModel::Load(c.model_dir, *dtype, device);
  if (!model.ok()) return model.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(c.model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  auto registry = std::make_unique<PolicyRegistry>();
  RegisterBuiltins(*registry);
  ServiceInfo info;
  absl::StatusOr<std::map<std::string, CachePreset>> presets =
      LoadPresets(c.presets_dir);
  if (presets.ok()) {
    info.presets.presets = *std::move(presets);
  } else if (absl::IsNotFound(presets.status())) {
    spdlog::warn("{}: requests can name no preset",
                 presets.status().ToString());
  } else {
    return presets.status();
  }
  // Every name in a preset must be known now, not at the first request.
  for (const auto& [name, preset] : info.presets.presets) {
    PolicySpec spec;
    preset.overlay.ApplyTo(spec);
    for (const std::string& s : spec.strategy) {
      if (absl::Status st = registry->CheckPolicy(s); !st.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("preset ", name, ": ", st.message()));
      }
    }
    for (const std::string& s : spec.prompt_compression) {
      if (absl::Status st = registry->CheckCompressor(s); !st.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("preset ", name, ": ", st.message()));
      }
    }
  }
  if (!info.presets.presets.empty() &&
      !info.presets.presets.count(c.default_preset)) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_preset: no preset named \"", c.default_preset,
                     "\" in ", c.presets_dir));
  }
  info.presets.default_preset = c.default_preset;
  EngineOptions options;
  options.max_sessions = c.max_sessions;
  options.max_queued_requests = c.max_queued_requests;
  options.max_prompt_tokens = c.max_prompt_tokens;
  options.max_new_tokens = c.max_new_tokens;
  options.context_length = c.context_length;
  options.threads = c.threads;
  options.chat_template = LoadChatTemplateText(c.model_dir);
  options.metrics = impl_->metrics;
  const ModelConfig mc = (*model)->config();
  impl_->engine = std::make_unique<Engine>(
      *std::move(model), *std::move(tokenizer), std::move(registry), options);
  info.model_name = std::filesystem::path(c.model_dir).filename().string();
  if (info.model_name.empty()) {
    info.model_name =
        std::filesystem::path(c.model_dir).parent_path().filename().string();
  }
  info.device = device.str();
  info.version = kVersion;
  info.metrics_port = metrics_port();
  spdlog::info("{} cache presets from {}", info.presets.presets.size(),
               c.presets_dir);
  impl_->service.SetEngine(impl_->engine.get(), info);
  impl_->metrics->SetModelInfo(info.model_name, mc.architecture, dtype_name,
                               device.str(), impl_->engine->context_length());
  impl_->server->GetHealthCheckService()->SetServingStatus(true);
  impl_->ready.store(true);
  spdlog::info(
      "model ready: {} ({} layers, {} heads / {} kv heads, vocab {}) in "
      "{:.1f}s",
      mc.architecture, mc.num_layers, mc.num_heads, mc.num_kv_heads,
      mc.vocab_size,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count());
  return absl::OkStatus();
}

int Server::port() const { return impl_->port; }

int Server::metrics_port() const {
  return impl_->http ? impl_->http->port() : 0;
}

Engine* Server::engine() { return impl_->engine.get(); }

void Server::Shutdown(double deadline_s) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->shut_down) return;
    impl_->shut_down = true;
  }
  impl_->ready.store(false);
  if (impl_->server) {
    impl_->server->GetHealthCheckService()->SetServingStatus(false);
    impl_->server->Shutdown(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000)));
  }
  impl_->engine.reset();
}

void Server::Wait() {
  if (impl_->server) impl_->server->Wait();
}

}  // namespace coldcompress
