#include "server/tools/bench_common.h"

#include <c10/util/Exception.h>

#include <cstdio>

namespace coldcompress::bench {

void AddShapeOptions(CLI::App& app, Shape& shape) {
  app.add_option("--layers", shape.layers)->check(CLI::PositiveNumber);
  app.add_option("--hidden", shape.hidden)->check(CLI::PositiveNumber);
  app.add_option("--heads", shape.heads)->check(CLI::PositiveNumber);
  app.add_option("--kv_heads", shape.kv_heads)->check(CLI::PositiveNumber);
  app.add_option("--intermediate", shape.intermediate)
      ->check(CLI::PositiveNumber);
  app.add_option("--vocab", shape.vocab)->check(CLI::Range(4, 1 << 30));
}

ModelConfig RandomModelConfig(const Shape& shape, int64_t max_positions) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = shape.vocab;
  c.hidden_size = shape.hidden;
  c.intermediate_size = shape.intermediate;
  c.num_layers = shape.layers;
  c.num_heads = shape.heads;
  c.num_kv_heads = shape.kv_heads;
  c.head_dim = shape.hidden / shape.heads;
  c.max_position_embeddings = static_cast<int>(max_positions);
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000;
  c.tie_word_embeddings = true;
  c.eos_token_ids = {2};
  return c;
}

std::optional<Target> ParseTarget(const std::string& device_name,
                                  const std::string& dtype_name,
                                  const Shape& shape) {
  std::optional<at::Device> device;
  try {
    device = at::Device(device_name);
  } catch (const c10::Error&) {
    std::fprintf(stderr,
                 "--device: \"%s\" is not a device (cpu, cuda or cuda:N)\n",
                 device_name.c_str());
    return std::nullopt;
  }
  if (device->is_cuda() && !at::hasCUDA()) {
    std::fprintf(stderr,
                 "--device: %s, but this LibTorch was built without CUDA or "
                 "sees no GPU\n",
                 device_name.c_str());
    return std::nullopt;
  }
  if (shape.hidden % shape.heads != 0 || shape.heads % shape.kv_heads != 0) {
    std::fprintf(stderr,
                 "--hidden must be a multiple of --heads, and --heads of "
                 "--kv_heads\n");
    return std::nullopt;
  }
  Target target;
  target.device = *device;
  target.dtype = dtype_name == "bfloat16"  ? at::kBFloat16
                 : dtype_name == "float16" ? at::kHalf
                                           : at::kFloat;
  return target;
}

}  // namespace coldcompress::bench
