#include "server/tools/bench_common.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "policies/cpu_kernels.h"

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

void AddTargetOptions(CLI::App& app, TargetFlags& flags,
                      const std::string& threads_help) {
  app.add_option("--threads", flags.threads, threads_help)
      ->check(CLI::Range(0, 4096));
  app.add_option("--device", flags.device, "cpu, cuda or cuda:N");
  app.add_option("--dtype", flags.dtype, "float32, bfloat16 or float16")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}));
}

std::optional<Target> ParseTarget(const TargetFlags& flags,
                                  const Shape& shape) {
  std::optional<at::Device> device;
  try {
    device = at::Device(flags.device);
  } catch (const c10::Error&) {
    std::fprintf(stderr,
                 "--device: \"%s\" is not a device (cpu, cuda or cuda:N)\n",
                 flags.device.c_str());
    return std::nullopt;
  }
  if (device->is_cuda() && !at::hasCUDA()) {
    std::fprintf(stderr,
                 "--device: %s, but this LibTorch was built without CUDA or "
                 "sees no GPU\n",
                 flags.device.c_str());
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
  target.dtype = flags.dtype == "bfloat16"  ? at::kBFloat16
                 : flags.dtype == "float16" ? at::kHalf
                                            : at::kFloat;
  target.threads =
      flags.threads > 0
          ? flags.threads
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return target;
}

void UseSchedulerThreads(int threads) {
  at::set_num_threads(1);
  SetFewRowsThreads(threads);
}

}  // namespace coldcompress::bench
