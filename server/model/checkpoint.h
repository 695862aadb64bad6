// Hugging Face checkpoint directories: config.json, generation_config.json and
// weights in model.safetensors or shards listed by
// model.safetensors.index.json. Architectures: LlamaForCausalLM (Llama-2/3/3.1,
// Mistral-style configs) and Qwen2ForCausalLM.
#ifndef COLDCOMPRESS_SERVER_MODEL_CHECKPOINT_H_
#define COLDCOMPRESS_SERVER_MODEL_CHECKPOINT_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace coldcompress {

struct RopeScaling {
  std::string type;  // "llama3" | "linear"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // as in config.json "architectures"[0]
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2, or Llama with attention_bias
  bool o_bias = false;    // Llama with attention_bias
  bool mlp_bias = false;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";  // the dtype on disk, informative
};

struct LayerWeights {
  at::Tensor input_norm;            // [D]
  at::Tensor wq, wk, wv, wo;        // [Hq*d, D], [H*d, D], [H*d, D], [D, Hq*d]
  at::Tensor bq, bk, bv, bo;        // undefined when absent
  at::Tensor post_norm;             // [D]
  at::Tensor w_gate, w_up, w_down;  // [I, D], [I, D], [D, I]
  at::Tensor b_gate, b_up, b_down;  // undefined when absent
};

struct ModelWeights {
  at::Tensor embed;  // [V, D]
  std::vector<LayerWeights> layers;
  at::Tensor norm;     // [D]
  at::Tensor lm_head;  // [V, D]; the same tensor as embed when tied

  // (Hugging Face name, tensor) of every stored tensor; lm_head is omitted
  // when tied. Pointers into this struct.
  std::vector<std::pair<std::string, at::Tensor*>> Named(
      const ModelConfig& config);
};

// Parses a config.json text. INVALID_ARGUMENT naming the key on bad content.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text);
// Serializes a config in Hugging Face's config.json layout.
std::string ModelConfigToJson(const ModelConfig& config);

// config.json plus eos ids from generation_config.json when present.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir);

// Loads every weight converted to `dtype` on `device`, checking shapes.
absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& dir,
                                              const ModelConfig& config,
                                              at::ScalarType dtype,
                                              at::Device device);

// Writes config.json, generation_config.json and the weights as `dtype` in
// `shards` safetensors files (with an index when shards > 1).
absl::Status WriteCheckpoint(const std::string& dir, const ModelConfig& config,
                             ModelWeights& weights, at::ScalarType dtype,
                             int shards);

// "float32" | "bfloat16" | "float16" <-> ScalarType.
absl::StatusOr<at::ScalarType> ParseDtype(const std::string& name);
std::string DtypeName(at::ScalarType dtype);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_MODEL_CHECKPOINT_H_
