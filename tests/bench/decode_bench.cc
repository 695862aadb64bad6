// Decode-step micro-benchmarks per cache policy (Google Benchmark):
//   build/tests/decode_bench [--benchmark_filter=...]
// - BM_ModelDecode/<strategy>: one greedy decode step of a random-weight
//   4-layer Llama (hidden 256) with 1,024 tokens in the cache, whatever the
//   policy (full holds the whole 1,024-token prompt; the others are capped at
//   1,024 of a 2,048-token prompt), so the policies differ only in their
//   own work;
// - BM_LayerDecode/<strategy>: one layer's cache step alone (insert, evict,
//   attention, the policy's state update) on random q/k/v, 8 KV heads of 128
//   at a capacity of 1,024: the policy's bookkeeping next to attention,
//   without the model's matrix products;
// - BM_FewRowsLinear/{Avx2,Avx512}/<rows>/<out>/<in>: the decode steps'
//   weight product for `rows` input rows (sessions in a batch) over 16
//   different out x in fp32 matrices taken in turn, so that, as in a model,
//   the weights come from memory rather than the cache: the weights' GB/s
//   and the FMAs per second it reaches, with each instruction set's kernels
//   (skipped where the CPU lacks it);
// - BM_FewRowsHeadAttention/{scores,values}/<G>/<n>: one sequence's
//   decode attention over a layer's cache of n tokens, 4 KV heads of 64
//   with G query heads each, the keys (or values) of 48 such layers taken
//   in turn: the GB/s of K (or V) read.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

#include "policies/cache_layer.h"
#include "policies/cpu_kernels.h"
#include "policies/layer_plan.h"
#include "policies/registry.h"
#include "server/engine/session.h"
#include "server/model/llama.h"
#include "server/model/random_weights.h"

namespace coldcompress {
namespace {

constexpr int64_t kCached = 1024;

template <typename T>
T OrDie(absl::StatusOr<T> value) {
  if (!value.ok()) {
    std::fprintf(stderr, "%s\n", value.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(value);
}

PolicySpec Spec(const std::string& strategy) {
  PolicySpec spec;
  spec.strategy = {strategy};
  spec.max_cache_length = {strategy == "full" ? 1.0
                                              : static_cast<double>(kCached)};
  return spec;
}

void BM_ModelDecode(benchmark::State& state, const std::string& strategy) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 4096;
  c.hidden_size = 256;
  c.intermediate_size = 768;
  c.num_layers = 4;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.max_position_embeddings = 16384;
  c.tie_word_embeddings = true;
  LlamaModel model(c, RandomWeights(c, 1), at::kCPU);
  const PolicySpec spec = Spec(strategy);
  const int64_t prompt_length = strategy == "full" ? kCached : 2 * kCached;
  const int64_t steps = 1 << 14;
  CachePlan plan = OrDie(ResolveCachePlan(
      spec, c.num_layers, prompt_length + steps, BuiltinRegistry()));
  EngineContext context;
  context.model = &model;
  context.registry = &BuiltinRegistry();
  auto layers = OrDie(BuildCacheLayers(context, spec, plan));
  const std::vector<CacheLayer*> cache = LayerPointers(layers);
  std::vector<int32_t> prompt(prompt_length);
  for (int64_t i = 0; i < prompt_length; ++i) prompt[i] = 3 + i % 4000;
  model.Prefill(prompt, cache);
  int64_t position = prompt_length;
  for (auto _ : state) {
    if (position >= prompt_length + steps) {
      state.SkipWithError("ran past the planned sequence length");
      break;
    }
    at::Tensor logits = model.Decode(7, position++, cache);
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_LayerDecode(benchmark::State& state, const std::string& strategy) {
  constexpr int64_t kHeads = 8, kDim = 128, kQueryHeads = 32;
  const PolicySpec spec = Spec(strategy);
  const int64_t prompt_length = strategy == "full" ? kCached : 2 * kCached;
  const int64_t steps = 1 << 16;
  CachePlan plan = OrDie(
      ResolveCachePlan(spec, 1, prompt_length + steps, BuiltinRegistry()));
  CacheLayerOptions options;
  options.num_heads = kHeads;
  options.head_dim = kDim;
  options.max_seq_len = plan.max_seq_len;
  std::unique_ptr<CacheLayer> layer = OrDie(
      CacheLayer::Create(BuiltinRegistry(), plan.layers[0], spec, options));
  at::manual_seed(1);
  layer->Prefill(at::randn({kQueryHeads, prompt_length, kDim}),
                 at::randn({kHeads, prompt_length, kDim}),
                 at::randn({kHeads, prompt_length, kDim}),
                 std::vector<int32_t>(prompt_length, 7));
  const at::Tensor q = at::randn({kQueryHeads, 1, kDim});
  const at::Tensor k = at::randn({kHeads, 1, kDim});
  const at::Tensor v = at::randn({kHeads, 1, kDim});
  int64_t position = prompt_length;
  for (auto _ : state) {
    if (position >= prompt_length + steps) {
      state.SkipWithError("ran past the planned sequence length");
      break;
    }
    at::Tensor out = layer->Decode(q, k, v, position++, 7);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_FewRowsLinear(benchmark::State& state, CpuKernelIsa isa) {
  const std::optional<CpuKernelIsa> before = GetCpuKernelIsa();
  if (!before.has_value() || !SetCpuKernelIsa(isa)) {
    state.SkipWithError("these kernels do not run on this CPU");
    return;
  }
  const int64_t rows = state.range(0), out = state.range(1),
                in = state.range(2);
  constexpr int kMatrices = 16;
  std::vector<at::Tensor> weights;
  for (int i = 0; i < kMatrices; ++i) weights.push_back(at::randn({out, in}));
  const at::Tensor x = at::randn({rows, in});
  int i = 0;
  for (auto _ : state) {
    at::Tensor y = FewRowsLinear(x, weights[i++ % kMatrices], {});
    benchmark::DoNotOptimize(y.data_ptr());
  }
  SetCpuKernelIsa(*before);
  const double calls = static_cast<double>(state.iterations());
  state.counters["weight_GB/s"] = benchmark::Counter(
      calls * out * in * 4 / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFMA/s"] = benchmark::Counter(calls * rows * out * in / 1e9,
                                                benchmark::Counter::kIsRate);
}

// One sequence's attention over layers' caches [4, n, 64]: `values` false
// times the scores q k^T, true the weighted sum p v.
void BM_FewRowsHeadAttention(benchmark::State& state, bool values) {
  const int64_t g = state.range(0), n = state.range(1);
  constexpr int64_t kHeads = 4, kDim = 64;
  constexpr int kLayers = 48;  // 104 MB at n = 2,111: from memory
  std::vector<at::Tensor> caches;
  for (int i = 0; i < kLayers; ++i)
    caches.push_back(at::randn({kHeads, n, kDim}));
  const at::Tensor q = at::randn({kHeads, g, kDim});
  const at::Tensor p = at::softmax(at::randn({kHeads, g, n}), -1);
  int i = 0;
  for (auto _ : state) {
    const at::Tensor& cache = caches[i++ % kLayers];
    at::Tensor out =
        values ? FewRowsHeadValues(p, cache) : FewRowsHeadScores(q, cache);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  state.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kHeads * n * kDim * 4 / 1e9,
      benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_FewRowsHeadAttention, scores, false)
    ->ArgsProduct({{3}, {288, 2111}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_FewRowsHeadAttention, values, true)
    ->ArgsProduct({{3}, {288, 2111}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

#define COLDCOMPRESS_LINEAR_BENCH(isa)                           \
  BENCHMARK_CAPTURE(BM_FewRowsLinear, isa, CpuKernelIsa::k##isa) \
      ->ArgsProduct({{1, 2, 3, 4, 8, 16}, {2048}, {768}})        \
      ->Args({8, 768, 2048})                                     \
      ->Args({16, 768, 2048})                                    \
      ->Unit(benchmark::kMicrosecond)                            \
      ->UseRealTime()

COLDCOMPRESS_LINEAR_BENCH(Avx2);
COLDCOMPRESS_LINEAR_BENCH(Avx512);

#define COLDCOMPRESS_DECODE_BENCH(strategy)              \
  BENCHMARK_CAPTURE(BM_ModelDecode, strategy, #strategy) \
      ->Unit(benchmark::kMicrosecond);                   \
  BENCHMARK_CAPTURE(BM_LayerDecode, strategy, #strategy) \
      ->Unit(benchmark::kMicrosecond)

COLDCOMPRESS_DECODE_BENCH(full);
COLDCOMPRESS_DECODE_BENCH(recent_global);
COLDCOMPRESS_DECODE_BENCH(l2);
COLDCOMPRESS_DECODE_BENCH(heavy_hitter);
COLDCOMPRESS_DECODE_BENCH(random);

}  // namespace
}  // namespace coldcompress

BENCHMARK_MAIN();
