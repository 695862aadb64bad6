// The server's configuration: a plain struct with documented defaults, read
// from YAML (configs/server.yaml) and overridden by command-line flags.
#ifndef COLDCOMPRESS_SERVER_CONFIG_H_
#define COLDCOMPRESS_SERVER_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace coldcompress {

struct ServerConfig {
  // Hugging Face checkpoint directory (config.json, *.safetensors,
  // tokenizer.model). Relative paths are relative to the working directory.
  std::string model_dir = "models/default";
  std::string device = "cpu";  // "cpu" | "cuda" | "cuda:N"
  std::string dtype = "auto";  // "auto" (float32 on CPU, bfloat16 on CUDA),
                               // "float32", "bfloat16", "float16"
  std::string listen = "0.0.0.0:50051";  // port 0 picks a free port
  int threads = 0;                       // intra-op threads; 0 = all cores
  std::string log_level = "info";        // trace|debug|info|warn|error

  // Limits.
  int64_t max_sessions = 256;        // named sessions held at once
  int64_t max_queued_requests = 64;  // Generate/Score queued or running
  int64_t max_prompt_tokens = 0;     // 0 = the context length
  int64_t max_new_tokens = 0;        // 0 = the context length
  int64_t context_length = 0;        // 0 = the model's max_position_embeddings
  int64_t max_message_bytes = 64 << 20;  // gRPC receive/send message size
};

// Reads a YAML file whose keys are the field names above; keys it does not
// know are INVALID_ARGUMENT (a typo must not be silently ignored).
absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path);
// Parses YAML text over `base`.
absl::StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml,
                                               const ServerConfig& base);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_CONFIG_H_
