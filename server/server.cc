#include "server/server.h"

#include <google/protobuf/stubs/logging.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "policies/plugins.h"
#include "policies/registry.h"
#include "server/auth.h"
#include "server/engine/engine.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/model/checkpoint.h"
#include "server/model/cuda.h"
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

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    const std::string& field) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", path, " is not a PEM file"));
  }
  return text.str();
}

// Plaintext, TLS or mutual TLS from the configured PEM files.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const ServerConfig& config) {
  if (config.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  absl::StatusOr<std::string> cert =
      ReadPem(config.tls_cert_file, "tls_cert_file");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key =
      ReadPem(config.tls_key_file, "tls_key_file");
  if (!key.ok()) return key.status();
  const bool mutual = !config.tls_client_ca_file.empty();
  grpc::SslServerCredentialsOptions options(
      mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (mutual) {
    absl::StatusOr<std::string> ca =
        ReadPem(config.tls_client_ca_file, "tls_client_ca_file");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  options.pem_key_cert_pairs.push_back({*key, *cert});
  spdlog::info("{} from {}", mutual ? "mutual TLS" : "TLS",
               config.tls_cert_file);
  return grpc::SslServerCredentials(options);
}

}  // namespace

Server::~Server() { Shutdown(0); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerConfig& config) {
  // protobuf's own complaints (e.g. a request string that is not UTF-8, which
  // the service reports to the client) go to the debug log.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*,
                                     int, const std::string& message) {
    spdlog::debug("protobuf: {}", message);
  });
  if (absl::Status s = ValidateServerConfig(config); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      Credentials(config);
  if (!credentials.ok()) return credentials.status();
  absl::StatusOr<std::unique_ptr<Authenticator>> auth = Authenticator::Load(
      config.auth_tokens_file, std::getenv("COLDCOMPRESS_AUTH_TOKENS"));
  if (!auth.ok()) return auth.status();
  if ((*auth)->enabled()) {
    spdlog::info("bearer-token authentication on ({} tokens)", (*auth)->size());
  }
  impl->service.SetAuthenticator(*std::move(auth));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, *credentials, &impl->port);
  builder.RegisterService(&impl->service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  auto ms = [](double s) { return static_cast<int>(s * 1000); };
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             ms(config.keepalive_time_s));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             ms(config.keepalive_timeout_s));
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      ms(config.keepalive_min_ping_interval_s));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                             config.keepalive_permit_without_calls ? 1 : 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
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
  if (device.is_cuda()) {
    impl_->metrics->SetDeviceMemoryReader(
        device.str(), [device]() -> std::pair<int64_t, int64_t> {
          const absl::StatusOr<DeviceMemory> m = CudaAllocatorMemory(device);
          if (!m.ok()) return {0, 0};
          return {m->allocated, m->reserved};
        });
    if (c.cuda_graphs) {
      if (absl::Status s = (*model)->UseDecodeGraphs(/*capture=*/true);
          !s.ok()) {
        return s;
      }
    }
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(c.model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  auto registry = std::make_unique<PolicyRegistry>();
  RegisterBuiltins(*registry);
  for (const std::string& path : c.policy_plugins) {
    if (absl::Status st = LoadPolicyPlugin(path, *registry); !st.ok()) {
      return st;
    }
    spdlog::info("policy plugin {} loaded", path);
  }
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
  options.max_stop_strings = c.max_stop_strings;
  options.max_stop_string_bytes = c.max_stop_string_bytes;
  options.context_length = c.context_length;
  options.max_cache_bytes = c.max_cache_bytes;
  options.max_deadline_s = c.max_deadline_s;
  options.session_ttl_s = c.session_ttl_s;
  options.threads = c.threads;
  options.prefill_chunk_tokens = c.prefill_chunk_tokens;
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
  info.max_concurrent_streams = c.max_concurrent_streams;
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
  spdlog::debug("gRPC server stopped");
  impl_->engine.reset();
}

void Server::Drain(double deadline_s) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline =
      t0 + std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000));
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->shut_down) return;
  }
  // Load balancers stop sending at once; new calls are refused while the
  // requests in flight finish.
  impl_->ready.store(false);
  impl_->metrics->SetDraining(true);
  if (impl_->server)
    impl_->server->GetHealthCheckService()->SetServingStatus(false);
  impl_->service.StartDraining();
  if (Engine* engine = impl_->engine.get()) {
    int64_t left = engine->active_requests();
    spdlog::info("draining: {} requests in flight", left);
    while (left > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      left = engine->active_requests();
    }
    if (left > 0) {
      spdlog::warn("drain deadline ({} s) passed: cancelling {} requests",
                   deadline_s, left);
    }
  }
  // Streams whose request finished may still be writing their last
  // responses: gRPC waits for them up to the same deadline.
  const double remaining = std::max(
      0.0,
      std::chrono::duration<double>(deadline - std::chrono::steady_clock::now())
          .count());
  Shutdown(remaining);
}

void Server::Wait() {
  if (impl_->server) impl_->server->Wait();
}

}  // namespace coldcompress
