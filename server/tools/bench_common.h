// What the benchmarks (cc-bench, cc-prefill-bench) share: the model shape
// and device flags, and the random-weight model's config.
#ifndef COLDCOMPRESS_SERVER_TOOLS_BENCH_COMMON_H_
#define COLDCOMPRESS_SERVER_TOOLS_BENCH_COMMON_H_

#include <ATen/ATen.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "server/model/checkpoint.h"

namespace coldcompress::bench {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// A Llama's shape, set by --layers, --hidden, --heads, --kv_heads,
// --intermediate and --vocab (the defaults are the caller's).
struct Shape {
  int layers = 12, hidden = 768, heads = 12, kv_heads = 4, intermediate = 2048,
      vocab = 32000;
};
void AddShapeOptions(CLI::App& app, Shape& shape);

// The config of a random-weight model of `shape` (RandomWeights: tied
// embeddings) for sequences of up to `max_positions` tokens.
ModelConfig RandomModelConfig(const Shape& shape, int64_t max_positions);

// --device, --dtype and --threads as given.
struct TargetFlags {
  std::string device = "cpu";
  std::string dtype = "float32";
  int threads = 0;  // the CPU kernels' threads; 0: every core
};
void AddTargetOptions(CLI::App& app, TargetFlags& flags,
                      const std::string& threads_help);

// The flags checked: nullopt (after saying why on stderr) for a device
// LibTorch does not know, CUDA without a CUDA LibTorch or GPU, or a shape
// whose heads do not divide. threads 0 becomes every core.
struct Target {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  int threads = 1;
};
std::optional<Target> ParseTarget(const TargetFlags& flags, const Shape& shape);

// The CPU's threads as the server's scheduler sets them: LibTorch's own
// operations on the calling thread, the kernels' products on `threads`.
void UseSchedulerThreads(int threads);

}  // namespace coldcompress::bench

#endif  // COLDCOMPRESS_SERVER_TOOLS_BENCH_COMMON_H_
