// cc-prefill-bench: prefill time and peak memory of long prompts under each
// cache policy, on a random-weight Llama, next to the machine's matrix-
// product (GEMM) throughput measured in the same run. Each prompt goes
// through the model as the server runs it: in chunks of --chunk tokens, each
// layer keeping what its policy decides after the last chunk.
//   cc-prefill-bench     (2 layers, hidden 128, 4 query / 2 KV heads;
//                         4k, 16k, 32k and 64k tokens; full, heavy_hitter
//                         at 0.25, hybrid (FastGen), debug_heavy_hitter)
//   cc-prefill-bench --layers 12 --hidden 768 --heads 12 --kv_heads 4 \
//     --intermediate 2048 --lengths 1024 --strategies full
//   cc-prefill-bench --model DIR ...   (a checkpoint's weights instead:
//                                       scripts/prefill_vs_llama_cpp.sh)
//   cc-prefill-bench --device cuda --dtype bfloat16 ... (scripts/gpu_bench.sh)
//
// Every (strategy, length) runs in a process of its own (this program again,
// with --run), so the peak resident memory it reports (the child's VmHWM)
// is that prefill's alone; on a GPU, the peak of LibTorch's CUDA allocator
// is reported too.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "policies/cpu_kernels.h"
#include "policies/flash_attention.h"
#include "policies/layer_plan.h"
#include "policies/registry.h"
#include "server/model/cuda.h"
#include "server/model/llama.h"
#include "server/model/random_weights.h"
#include "server/tools/bench_common.h"

extern char** environ;

namespace {

using coldcompress::CacheLayer;
using coldcompress::CachePlan;
using coldcompress::LlamaModel;
using coldcompress::ModelConfig;
using coldcompress::PolicySpec;
using coldcompress::bench::Clock;
using coldcompress::bench::Seconds;
using coldcompress::bench::Shape;

// The request's policy as the presets of the same names give it.
PolicySpec Spec(const std::string& strategy, double cache_size) {
  PolicySpec spec;
  spec.strategy = {strategy};
  spec.max_cache_length = {
      strategy == "full" || strategy == "hybrid" ? 1.0 : cache_size};
  if (strategy == "hybrid") {
    spec.min_recovery_frac = 0.9;
    spec.hybrid_strategies = {{"special", std::nullopt, std::nullopt},
                              {"special_punc", std::nullopt, std::nullopt},
                              {"special_punc_heavy_hitter", std::nullopt, 0.3},
                              {"special_punc_heavy_hitter_window", 0.3, 0.3},
                              {"full", std::nullopt, std::nullopt}};
  }
  return spec;
}

// Float operations of an S-token prefill: every layer's weight products for
// each token (2 per weight) and the causal attention's two products (2 d
// per query head, query and key seen), the last position's logits.
double PrefillFlops(const ModelConfig& c, int64_t s) {
  const double d = c.head_dim;
  const double layer_weights = static_cast<double>(c.hidden_size) * d *
                                   (c.num_heads * 2.0 + c.num_kv_heads * 2.0) +
                               3.0 * c.hidden_size * c.intermediate_size;
  const double seen = static_cast<double>(s) * (s + 1) / 2;  // sum of i + 1
  return c.num_layers *
             (2.0 * layer_weights * s + 4.0 * d * c.num_heads * seen) +
         2.0 * c.hidden_size * c.vocab_size;
}

// GEMM throughput in float operations per second: the best of `repeats`
// products of [m, k] x [k, n] in the model dtype on the device, with the
// BLAS on all its threads (as a prompt's products run).
double GemmThroughput(int64_t m, int64_t k, int64_t n, int repeats,
                      at::TensorOptions options) {
  coldcompress::EnterCpuPhase(coldcompress::CpuPhase::kPrompt);
  const at::Tensor a = at::randn({m, k}, options),
                   b = at::randn({k, n}, options);
  at::Tensor c = at::mm(a, b);
  (void)c[0][0].item<float>();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    c = at::mm(a, b);
    (void)c[0][0].item<float>();
    best = std::min(best, Seconds(t0));
  }
  return 2.0 * static_cast<double>(m) * k * n / best;
}

// The model: the checkpoint in `model_dir`, or random weights of `shape`.
absl::StatusOr<std::unique_ptr<LlamaModel>> MakeModel(
    const std::string& model_dir, const Shape& shape, int64_t max_positions,
    at::Device device, at::ScalarType dtype) {
  if (!model_dir.empty()) return LlamaModel::Load(model_dir, dtype, device);
  const ModelConfig c =
      coldcompress::bench::RandomModelConfig(shape, max_positions);
  return std::make_unique<LlamaModel>(
      c,
      coldcompress::RandomWeights(
          c, 1, 0, at::TensorOptions().dtype(dtype).device(device)),
      device);
}

// This process's peak resident memory in bytes (VmHWM), 0 if unknown. Its
// own figure: a spawned child's rusage also counts its parent's pages from
// before the exec.
int64_t PeakRss() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  long long kb = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "VmHWM: %lld kB", &kb) == 1) break;
  }
  std::fclose(f);
  return kb * 1024;
}

// The child: one prefill; its seconds, peak resident bytes and (on a GPU)
// the CUDA allocator's peak bytes on stdout.
int RunOne(const std::string& model_dir, const Shape& shape,
           const std::string& strategy, double cache_size, int64_t length,
           int64_t chunk, at::Device device, at::ScalarType dtype) {
  absl::StatusOr<std::unique_ptr<LlamaModel>> made =
      MakeModel(model_dir, shape, length + 1, device, dtype);
  if (!made.ok()) {
    std::fprintf(stderr, "--model: %s\n", made.status().ToString().c_str());
    return 1;
  }
  LlamaModel& model = **made;
  const ModelConfig& c = model.config();
  const coldcompress::PolicyRegistry& registry =
      coldcompress::BuiltinRegistry();
  const PolicySpec spec = Spec(strategy, cache_size);
  absl::StatusOr<CachePlan> plan =
      coldcompress::ResolveCachePlan(spec, c.num_layers, length + 1, registry);
  if (!plan.ok()) {
    std::fprintf(stderr, "%s: %s\n", strategy.c_str(),
                 plan.status().ToString().c_str());
    return 1;
  }
  auto caches = model.CreateCaches(registry, spec, *plan);
  if (!caches.ok()) {
    std::fprintf(stderr, "%s: %s\n", strategy.c_str(),
                 caches.status().ToString().c_str());
    return 1;
  }
  std::vector<int32_t> prompt(length);
  for (int64_t i = 0; i < length; ++i)
    prompt[i] = static_cast<int32_t>(3 + (i * 7919) % (c.vocab_size - 3));
  c10::InferenceMode guard;
  const auto t0 = Clock::now();
  LlamaModel::PromptRun run = model.StartPrefill(
      std::move(prompt), coldcompress::LayerPointers(*caches), chunk);
  at::Tensor logits;
  while (!run.finished()) logits = model.RunChunk(run);
  (void)logits[0].item<float>();
  const double seconds = Seconds(t0);
  const absl::StatusOr<coldcompress::DeviceMemory> memory =
      coldcompress::CudaAllocatorMemory(device);
  std::printf("%.6f %lld %lld\n", seconds, static_cast<long long>(PeakRss()),
              static_cast<long long>(memory.ok() ? memory->peak_allocated : 0));
  return 0;
}

struct Measured {
  bool ok = false;
  double seconds = 0;
  int64_t peak_rss = 0;     // bytes
  int64_t device_peak = 0;  // bytes (CUDA allocator), 0 on the CPU
};

// This program again with --run for one prefill: what it measured.
Measured RunChild(const std::vector<std::string>& args) {
  Measured m;
  int out[2];
  if (pipe(out) != 0) return m;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<char*> argv;
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr,
                                  argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (spawned != 0) {
    close(out[0]);
    return m;
  }
  std::string text;
  char buffer[256];
  for (ssize_t n; (n = read(out[0], buffer, sizeof(buffer))) > 0;)
    text.append(buffer, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  long long peak_rss = 0, device_peak = 0;
  m.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
         std::sscanf(text.c_str(), "%lf %lld %lld", &m.seconds, &peak_rss,
                     &device_peak) == 3;
  m.peak_rss = peak_rss;
  m.device_peak = device_peak;
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Prefill time and peak memory of long prompts under cache policies on a "
      "random-weight Llama, next to the measured GEMM throughput"};
  Shape shape;  // the small model: attention dominates long prompts
  shape.layers = 2;
  shape.hidden = 128;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.intermediate = 512;
  std::vector<int64_t> lengths = {4096, 16384, 32768, 65536};
  std::vector<std::string> strategies = {"full", "heavy_hitter", "hybrid",
                                         "debug_heavy_hitter"};
  double cache_size = 0.25;
  int64_t chunk = 512;
  coldcompress::bench::TargetFlags target_flags;
  std::string model_dir, prompt_attention = "tiles";
  std::vector<std::string> run;  // child mode: STRATEGY LENGTH
  coldcompress::bench::AddShapeOptions(app, shape);
  app.add_option("--model", model_dir,
                 "a Hugging Face checkpoint directory instead of random "
                 "weights (its shape replaces the shape flags)");
  app.add_option("--lengths", lengths, "prompt lengths in tokens")
      ->check(CLI::PositiveNumber);
  app.add_option("--strategies", strategies,
                 "cache strategies (full and hybrid keep the whole sequence; "
                 "hybrid has the fastgen preset's strategies)");
  app.add_option("--cache_size", cache_size,
                 "the compressing strategies' cache: a fraction of the "
                 "sequence (<= 1) or tokens (> 1)");
  app.add_option("--chunk", chunk,
                 "prompt tokens a forward, as the server's "
                 "prefill_chunk_tokens (0: the whole prompt at once)");
  coldcompress::bench::AddTargetOptions(
      app, target_flags,
      "threads of the CPU kernels and prompt attention tiles (0: every "
      "core)");
  app.add_option("--prompt_attention", prompt_attention,
                 "the CPU's float32 prompt attention: tiles (online softmax, "
                 "the default) or blocks (blocks of whole rows: the tiles' "
                 "predecessor, to compare)")
      ->check(CLI::IsMember({"tiles", "blocks"}));
  app.add_option("--run", run, "(internal) one prefill: STRATEGY LENGTH")
      ->expected(2);
  CLI11_PARSE(app, argc, argv);
  const std::optional<coldcompress::bench::Target> target =
      coldcompress::bench::ParseTarget(target_flags, shape);
  if (!target) return 2;
  const at::Device device = target->device;
  const at::ScalarType dtype = target->dtype;
  const int threads = target->threads;
  const std::string& device_name = target_flags.device;
  const std::string& dtype_name = target_flags.dtype;
  coldcompress::bench::UseSchedulerThreads(threads);
  coldcompress::SetFlashPromptAttention(prompt_attention == "tiles");
  if (!run.empty()) {
    int64_t length = 0;
    if (!absl::SimpleAtoi(run[1], &length) || length < 1) {
      std::fprintf(stderr, "--run: bad length \"%s\"\n", run[1].c_str());
      return 2;
    }
    return RunOne(model_dir, shape, run[0], cache_size, length, chunk, device,
                  dtype);
  }

  ModelConfig c;
  int64_t params = 0;
  {
    absl::StatusOr<std::unique_ptr<LlamaModel>> model =
        MakeModel(model_dir, shape, 2, at::kCPU, dtype);
    if (!model.ok()) {
      std::fprintf(stderr, "--model: %s\n", model.status().ToString().c_str());
      return 2;
    }
    c = (*model)->config();
    for (const auto& [name, t] : (*model)->weights().Named(c))
      params += t->numel();
  }
  shape.layers = c.num_layers;
  shape.hidden = c.hidden_size;
  shape.heads = c.num_heads;
  shape.kv_heads = c.num_kv_heads;
  shape.intermediate = c.intermediate_size;
  shape.vocab = c.vocab_size;
  std::printf(
      "model: %s%d layers, hidden %d, %d query / %d KV heads of %d, SwiGLU "
      "%d, vocab %d: %.2fM parameters, %s on %s; prompts in chunks of %lld "
      "tokens; attention in %s\n",
      model_dir.empty() ? "random, " : (model_dir + ", ").c_str(), shape.layers,
      shape.hidden, shape.heads, shape.kv_heads, c.head_dim, shape.intermediate,
      shape.vocab, params / 1e6, dtype_name.c_str(), device.str().c_str(),
      static_cast<long long>(chunk),
      device.is_cpu() && dtype == at::kFloat && prompt_attention == "tiles"
          ? "tiles"
          : "blocks of rows");
  // A square product large enough to reach the BLAS's (or the GPU's) peak.
  const int64_t side = device.is_cpu() ? 2048 : 8192;
  const double gemm = GemmThroughput(
      side, side, side, 5, at::TensorOptions().dtype(dtype).device(device));
  std::printf(
      "GEMM throughput ([%lld x %lld] x [%lld x %lld], %s, best of 5): "
      "%.1f GFLOP/s\n\n",
      static_cast<long long>(side), static_cast<long long>(side),
      static_cast<long long>(side), static_cast<long long>(side),
      device.is_cpu() ? "the BLAS on every core" : "on the device", gemm / 1e9);
  std::printf(
      "| strategy | cache | prompt | prefill s | tok/s | GFLOP/s | of GEMM | "
      "peak RSS MB |%s\n"
      "|---|---|---|---|---|---|---|---|%s\n",
      device.is_cuda() ? " device peak MB |" : "",
      device.is_cuda() ? "---|" : "");
  const std::string self = argv[0];
  bool all_ok = true;
  for (const int64_t length : lengths) {
    for (const std::string& strategy : strategies) {
      std::vector<std::string> args = {self};
      for (const auto& [flag, value] :
           std::vector<std::pair<std::string, std::string>>{
               {"--layers", std::to_string(shape.layers)},
               {"--hidden", std::to_string(shape.hidden)},
               {"--heads", std::to_string(shape.heads)},
               {"--kv_heads", std::to_string(shape.kv_heads)},
               {"--intermediate", std::to_string(shape.intermediate)},
               {"--vocab", std::to_string(shape.vocab)},
               {"--model", model_dir},
               {"--prompt_attention", prompt_attention},
               {"--cache_size", absl::StrCat(cache_size)},
               {"--chunk", std::to_string(chunk)},
               {"--threads", std::to_string(threads)},
               {"--device", device_name},
               {"--dtype", dtype_name}}) {
        args.push_back(flag);
        args.push_back(value);
      }
      args.insert(args.end(), {"--run", strategy, std::to_string(length)});
      const Measured r = RunChild(args);
      const bool whole = strategy == "full" || strategy == "hybrid";
      const std::string cache = whole ? "-" : absl::StrCat(cache_size);
      if (!r.ok) {
        all_ok = false;
        std::printf("| %s | %s | %lld | failed | | | | |\n", strategy.c_str(),
                    cache.c_str(), static_cast<long long>(length));
        std::fflush(stdout);
        continue;
      }
      const double flops = PrefillFlops(c, length) / r.seconds;
      std::printf("| %s | %s | %lld | %.2f | %.0f | %.1f | %.0f%% | %.0f |",
                  strategy.c_str(), cache.c_str(),
                  static_cast<long long>(length), r.seconds,
                  static_cast<double>(length) / r.seconds, flops / 1e9,
                  100 * flops / gemm, r.peak_rss / 1e6);
      if (device.is_cuda()) std::printf(" %.0f |", r.device_peak / 1e6);
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  return all_ok ? 0 : 1;
}
