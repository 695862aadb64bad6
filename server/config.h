// The server's configuration: a plain struct with documented defaults, read
// from YAML (configs/server.yaml) and overridden by command-line flags.
#ifndef COLDCOMPRESS_SERVER_CONFIG_H_
#define COLDCOMPRESS_SERVER_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "policies/policy_spec.h"

namespace coldcompress {

struct ServerConfig {
  // Hugging Face checkpoint directory (config.json, *.safetensors,
  // tokenizer.model). Relative paths are relative to the working directory.
  std::string model_dir = "models/default";
  std::string device = "cpu";  // "cpu" | "cuda" | "cuda:N"
  std::string dtype = "auto";  // "auto" (float32 on CPU, bfloat16 on CUDA),
                               // "float32", "bfloat16", "float16"
  std::string listen = "0.0.0.0:50051";  // port 0 picks a free port
  int threads = 0;  // decode's matrix-product threads; 0 = all cores
  // On CUDA: decode steps replay CUDA graphs of the model's trunk between
  // the layers' attentions (LlamaModel::UseDecodeGraphs).
  bool cuda_graphs = true;
  // Prompt tokens a forward between decode steps; 0 = whole prompts.
  int64_t prefill_chunk_tokens = 512;
  std::string log_level = "info";  // trace|debug|info|warn|error

  // Limits. Over one, a request gets RESOURCE_EXHAUSTED naming it and
  // nothing is started.
  int64_t max_sessions = 256;            // named sessions held at once
  int64_t max_queued_requests = 64;      // Generate/Score queued or running
  int64_t max_concurrent_streams = 128;  // Generate streams open at once
  int64_t max_prompt_tokens = 0;         // 0 = the context length
  int64_t max_new_tokens = 0;            // 0 = the context length
  int64_t max_stop_strings = 16;         // stop strings of one request
  int64_t max_stop_string_bytes = 256;   // bytes of one stop string
  int64_t context_length = 0;  // 0 = the model's max_position_embeddings
  int64_t max_message_bytes = 64 << 20;  // gRPC receive/send message size
  // Longest a request may run, queueing included, whatever deadline its
  // client set (none included); past it: DEADLINE_EXCEEDED. 0 = no ceiling.
  double max_deadline_s = 600;

  // Named sessions idle this long are closed (0 = never). Idle sessions are
  // also evicted, least recently used first, when a request needs room in
  // max_cache_bytes. Either way their next turn gets NOT_FOUND saying why.
  double session_ttl_s = 1800;

  // HTTP/2 keepalive: the server pings an idle connection every
  // keepalive_time_s and drops it when no answer comes within
  // keepalive_timeout_s; a client pinging more often than
  // keepalive_min_ping_interval_s (or at all without calls, unless
  // keepalive_permit_without_calls) is sent GOAWAY after two strikes.
  double keepalive_time_s = 60;
  double keepalive_timeout_s = 20;
  double keepalive_min_ping_interval_s = 10;
  bool keepalive_permit_without_calls = false;

  // On SIGTERM/SIGINT health turns NOT_SERVING, new calls get UNAVAILABLE,
  // requests in flight may finish for this long, the rest are cancelled.
  double drain_deadline_s = 30;

  // Prometheus metrics, /healthz and /readyz over HTTP; "" turns it off.
  std::string metrics_listen = "0.0.0.0:9400";
  bool metrics_per_layer = false;  // also export cache bytes per layer
  // KV-cache memory budget in bytes (0 = none): a request whose caches do
  // not fit after evicting idle sessions gets RESOURCE_EXHAUSTED. Also
  // reported as capacity and usage ratio.
  int64_t max_cache_bytes = 0;

  // TLS: the server's certificate chain and key (PEM files); with
  // tls_client_ca_file, mutual TLS: clients must present a certificate
  // signed by that CA. All empty: plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // Bearer tokens, one `NAME:TOKEN` (or `TOKEN`) a line; the environment
  // variable COLDCOMPRESS_AUTH_TOKENS adds comma-separated entries. With any
  // token, every RPC but health needs "authorization: Bearer <token>", and
  // sessions belong to the token's principal.
  std::string auth_tokens_file;

  // Cache presets: every *.yaml in this folder, named by the file name.
  std::string presets_dir = "configs/presets";
  // Policy plugins (shared libraries) loaded at start-up, in order; their
  // policies and compressors join the built-ins (policies/plugins.h).
  std::vector<std::string> policy_plugins;
  // The preset of a request that leaves its cache policy empty.
  std::string default_preset = "full";
};

// A cache preset (docs/policies.md 8): the fields it sets and its YAML text.
struct CachePreset {
  std::string name;
  PolicyOverlay overlay;
  std::string yaml;
};

// Parses a preset. Keys are the reference toolkit's cache_config names
// (cache_strategy, prompt_compression_strategy, max_cache_length,
// cache_length_pattern, cache_strategy_pattern, global_tokens, recent_window,
// history_window_size, attn_thresholding, min_recovery_frac,
// hybrid_strategies, cache_bits, feed_long_prompts, decode_first_token) or the
// API's (strategy, prompt_compression, length_pattern, strategy_pattern), and
// params (a map of plugin parameters). A scalar stands for a one-element list.
absl::StatusOr<PolicyOverlay> ParsePolicyPreset(const std::string& yaml);

// Every <name>.yaml in `dir`, by name. NOT_FOUND when `dir` does not exist.
absl::StatusOr<std::map<std::string, CachePreset>> LoadPresets(
    const std::string& dir);

// INVALID_ARGUMENT naming the first field whose value is out of range (a
// negative limit, a message size gRPC cannot take, ...).
absl::Status ValidateServerConfig(const ServerConfig& config);

// Reads a YAML file whose keys are the field names above; keys it does not
// know are INVALID_ARGUMENT (a typo must not be silently ignored).
absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path);
// Parses YAML text over `base`.
absl::StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml,
                                               const ServerConfig& base);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_CONFIG_H_
