// cc-bench: decode speed of a random-weight Llama of a given shape under
// each cache policy, next to the memory-bandwidth roofline measured in the
// same run. Batch 1 decode reads every weight and every cached K/V once per
// token, so tokens/s cannot exceed copy bandwidth / bytes read per step.
//   cc-bench                       (about 100M parameters, 2k context)
//   cc-bench --context 8192 --strategies full recent_global heavy_hitter \
//     --cache_sizes 1024
//   cc-bench --sessions 1 8        (continuous batching: N sessions decoded
//                                   together, one pass over the weights)
//   cc-bench --device cuda --dtype bfloat16 ...  (a GPU: weights made there,
//                                   the roofline from its own copy speed;
//                                   scripts/gpu_bench.sh)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "policies/cpu_kernels.h"
#include "policies/layer_plan.h"
#include "policies/registry.h"
#include "server/model/llama.h"
#include "server/model/random_weights.h"
#include "server/tools/bench_common.h"

namespace {

using coldcompress::CacheLayer;
using coldcompress::CachePlan;
using coldcompress::LlamaModel;
using coldcompress::ModelConfig;
using coldcompress::PolicySpec;
using coldcompress::bench::Clock;
using coldcompress::bench::Seconds;

// Copy bandwidth in bytes/s (bytes read + bytes written), best of `repeats`
// copies of a `bytes` buffer split over one thread per core: the STREAM
// "copy" figure, the most the memory system gives.
double CopyBandwidth(int64_t bytes, int repeats) {
  const int n = std::max(1u, std::thread::hardware_concurrency());
  std::vector<char> src(bytes, 1), dst(bytes, 0);  // pages faulted in here
  const int64_t part = bytes / n;
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        std::memcpy(dst.data() + i * part, src.data() + i * part, part);
      });
    }
    for (auto& t : threads) t.join();
    best = std::min(best, Seconds(t0));
  }
  return 2.0 * static_cast<double>(part * n) / best;
}

// The same figure for a GPU's memory: the best of `repeats` device-to-device
// copies of a `bytes` buffer, each waited for by reading one element back.
double DeviceCopyBandwidth(int64_t bytes, int repeats, at::Device device) {
  const auto options = at::TensorOptions().dtype(at::kByte).device(device);
  at::Tensor src = at::ones({bytes}, options),
             dst = at::zeros({bytes}, options);
  dst.copy_(src);
  (void)dst[0].item<uint8_t>();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    dst.copy_(src);
    (void)dst[r % bytes].item<uint8_t>();
    best = std::min(best, Seconds(t0));
  }
  return 2.0 * static_cast<double>(bytes) / best;
}

int64_t WeightBytes(const coldcompress::ModelWeights& w, const ModelConfig& c) {
  auto bytes = [](const at::Tensor& t) {
    return static_cast<int64_t>(t.numel() * t.element_size());
  };
  // A decode step reads one embedding row and the whole lm_head.
  int64_t total = bytes(w.lm_head) + bytes(w.norm);
  if (!c.tie_word_embeddings) total += w.embed.size(1) * w.embed.element_size();
  for (const auto& l : w.layers) {
    for (const at::Tensor* t : {&l.input_norm, &l.post_norm, &l.wq, &l.wk,
                                &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      total += bytes(*t);
    }
  }
  return total;
}

// A table row: a policy and cache size at a number of sessions.
struct Row {
  std::string strategy;
  std::string cache_label = "-";
  CachePlan plan;
  int batch = 1;
  std::vector<std::vector<std::unique_ptr<CacheLayer>>> copies;
  std::vector<std::vector<CacheLayer*>> pointers;
  at::Tensor logits;
  int64_t position = 0;
  double seconds = 0;
};

// CUDA graphs against eager steps, from each batch size's first row's
// caches: the same tokens in, the logits compared. Also captures every batch
// size's graphs before the clock runs. False (after saying why) when they
// differ by more than bfloat16 rounding.
bool CheckDecodeGraphs(LlamaModel& model, const std::vector<Row>& rows) {
  constexpr int kSteps = 4;
  using Caches = std::vector<std::vector<std::unique_ptr<CacheLayer>>>;
  const auto clone = [](const Row& row, Caches& caches) {
    std::vector<std::vector<CacheLayer*>> pointers;
    for (const auto& session : row.copies) {
      caches.push_back(coldcompress::CloneLayers(session));
      pointers.push_back(coldcompress::LayerPointers(caches.back()));
    }
    return pointers;
  };
  std::vector<const Row*> checked;
  for (const Row& row : rows) {
    if (std::none_of(checked.begin(), checked.end(),
                     [&](const Row* r) { return r->batch == row.batch; }))
      checked.push_back(&row);
  }
  // Eager first, then the graphs (captured at their first step).
  std::vector<std::vector<std::vector<int32_t>>> tokens(checked.size());
  std::vector<std::vector<at::Tensor>> eager(checked.size());
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      const absl::Status s = model.UseDecodeGraphs(/*capture=*/true);
      if (!s.ok()) {
        std::fprintf(stderr, "--cuda_graphs: %s\n", s.ToString().c_str());
        return false;
      }
    }
    for (size_t r = 0; r < checked.size(); ++r) {
      const Row& row = *checked[r];
      Caches caches;
      const std::vector<std::vector<CacheLayer*>> pointers = clone(row, caches);
      at::Tensor logits = row.logits;
      double worst = 0, scale = 0;
      for (int t = 0; t < kSteps; ++t) {
        if (pass == 0) {
          const at::Tensor next = logits.argmax(-1).cpu();
          tokens[r].emplace_back();
          for (int b = 0; b < row.batch; ++b)
            tokens[r][t].push_back(
                static_cast<int32_t>(next[b].item<int64_t>()));
        }
        std::vector<LlamaModel::DecodeRow> batch(row.batch);
        for (int b = 0; b < row.batch; ++b)
          batch[b] = {tokens[r][t][b], row.position + t, pointers[b]};
        logits = model.DecodeBatch(batch);
        if (pass == 0) {
          eager[r].push_back(logits);
        } else {
          worst = std::max(worst,
                           (logits - eager[r][t]).abs().max().item<double>());
          scale = std::max(scale, eager[r][t].abs().max().item<double>());
        }
      }
      if (pass == 1) {
        // bfloat16 keeps 8 bits: a product's rounding is 2^-8 of its size.
        const bool ok = worst <= scale / 64;
        std::printf(
            "CUDA graphs check, %d session(s), %d steps: largest logit "
            "difference from eager steps %.3g (largest logit %.3g)%s\n",
            row.batch, kSteps, worst, scale, ok ? "" : ": MISMATCH");
        if (!ok) return false;
      }
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Decode tokens/s of a random-weight Llama under cache policies, next "
      "to the measured memory-bandwidth roofline"};
  coldcompress::bench::Shape shape;
  int64_t context = 2048, steps = 64, rounds = 8;
  coldcompress::bench::TargetFlags target_flags;
  std::string cpu_kernels = "auto", cuda_graphs = "on";
  std::vector<std::string> strategies = {"full", "recent_global", "l2",
                                         "heavy_hitter"};
  std::vector<double> cache_sizes = {0.25};
  std::vector<int> sessions = {1};
  coldcompress::bench::AddShapeOptions(app, shape);
  app.add_option("--context", context, "prompt tokens before decoding");
  app.add_option("--steps", steps, "decode steps timed per policy");
  app.add_option("--rounds", rounds,
                 "turns the rows take at decoding their steps (1: each row's "
                 "steps in one piece)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--strategies", strategies,
                 "cache strategies (full runs with the whole context)");
  app.add_option("--cache_sizes", cache_sizes,
                 "per compressing strategy: fractions of the sequence (<= 1) "
                 "or token counts (> 1)");
  coldcompress::bench::AddTargetOptions(
      app, target_flags,
      "threads of the decode steps' matrix products (0: every core), as the "
      "server's `threads`");
  app.add_option("--cpu_kernels", cpu_kernels,
                 "instruction set of the CPU decode kernels: auto (the widest "
                 "the CPU has), avx2 or avx512 (the same results)")
      ->check(CLI::IsMember({"auto", "avx2", "avx512"}));
  app.add_option("--cuda_graphs", cuda_graphs,
                 "on a GPU: decode steps replay CUDA graphs of the trunk "
                 "(checked first against eager steps), as the server's "
                 "`cuda_graphs`")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--sessions", sessions,
                 "sessions decoded together in one batched step, each with "
                 "its own cache (a row per count)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  const std::optional<coldcompress::bench::Target> target =
      coldcompress::bench::ParseTarget(target_flags, shape);
  if (!target) return 2;
  const at::Device device = target->device;
  const at::ScalarType dtype = target->dtype;
  const int threads = target->threads;
  const std::string& dtype_name = target_flags.dtype;
  if (cpu_kernels != "auto" &&
      !coldcompress::SetCpuKernelIsa(cpu_kernels == "avx512"
                                         ? coldcompress::CpuKernelIsa::kAvx512
                                         : coldcompress::CpuKernelIsa::kAvx2)) {
    std::fprintf(stderr, "--cpu_kernels: this CPU or build has no %s kernels\n",
                 cpu_kernels.c_str());
    return 2;
  }
  coldcompress::bench::UseSchedulerThreads(threads);

  const ModelConfig c =
      coldcompress::bench::RandomModelConfig(shape, context + steps + 1);
  const int layers = shape.layers, kv_heads = shape.kv_heads,
            vocab = shape.vocab;
  LlamaModel model(
      c,
      coldcompress::RandomWeights(
          c, 1, 0, at::TensorOptions().dtype(dtype).device(device)),
      device);
  int64_t params = 0;
  for (const auto& [name, t] : model.weights().Named(c)) params += t->numel();
  const int64_t weight_bytes = WeightBytes(model.weights(), c);

  std::printf(
      "model: %d layers, hidden %d, %d query / %d KV heads of %d, SwiGLU %d, "
      "vocab %d: %.1fM parameters, %s on %s",
      layers, shape.hidden, shape.heads, kv_heads, c.head_dim,
      shape.intermediate, vocab, params / 1e6, dtype_name.c_str(),
      device.str().c_str());
  double bandwidth;
  if (device.is_cpu()) {
    const std::optional<coldcompress::CpuKernelIsa> isa =
        coldcompress::GetCpuKernelIsa();
    std::printf(
        "; decode matrix products on %d threads (%s), the prompt's on the "
        "BLAS's own\n",
        threads,
        isa.has_value()
            ? (std::string(coldcompress::CpuKernelIsaName(*isa)) + " kernels")
                  .c_str()
            : "ATen's");
    bandwidth = CopyBandwidth(int64_t{1} << 30, 5);
    std::printf(
        "memory bandwidth (copy of 1 GiB on %u threads, best of 5): %.1f "
        "GB/s\n",
        std::max(1u, std::thread::hardware_concurrency()), bandwidth / 1e9);
  } else {
    std::printf("; decode steps %s\n",
                cuda_graphs == "on" ? "replay CUDA graphs" : "run eagerly");
    bandwidth = DeviceCopyBandwidth(int64_t{2} << 30, 10, device);
    std::printf(
        "device memory bandwidth (copy of 2 GiB on the device, best of 10): "
        "%.1f GB/s\n",
        bandwidth / 1e9);
  }
  std::printf(
      "prompt %lld tokens, then %lld greedy decode steps timed, in %lld "
      "rounds that visit every row in turn; a step reads %.1f MB of weights "
      "and every session's cached K/V\n\n",
      static_cast<long long>(context), static_cast<long long>(steps),
      static_cast<long long>(rounds), weight_bytes / 1e6);

  const coldcompress::PolicyRegistry& registry =
      coldcompress::BuiltinRegistry();

  std::vector<int32_t> prompt(context);
  for (int64_t i = 0; i < context; ++i)
    prompt[i] = static_cast<int32_t>(3 + (i * 7919) % (vocab - 3));
  const int64_t smax = context + steps + 1;
  const int64_t kv_bytes_per_token =
      2LL * kv_heads * c.head_dim *
      static_cast<int64_t>(c10::elementSize(dtype));

  // Every row's sessions are prefilled first; then the rows take turns,
  // `rounds` times `steps / rounds` decode steps each, so that a slow spell
  // of a shared machine falls on every row alike.
  std::vector<Row> rows;
  for (const std::string& strategy : strategies) {
    const bool full = strategy == "full";
    for (double size : full ? std::vector<double>{1.0} : cache_sizes) {
      PolicySpec spec;
      spec.strategy = {strategy};
      spec.max_cache_length = {size};
      absl::StatusOr<CachePlan> plan =
          coldcompress::ResolveCachePlan(spec, layers, smax, registry);
      if (!plan.ok()) {
        std::fprintf(stderr, "%s at %g: %s\n", strategy.c_str(), size,
                     plan.status().ToString().c_str());
        return 1;
      }
      auto built = model.CreateCaches(registry, spec, *plan);
      if (!built.ok()) {
        std::fprintf(stderr, "%s: %s\n", strategy.c_str(),
                     built.status().ToString().c_str());
        return 1;
      }
      const std::vector<CacheLayer*> cache =
          coldcompress::LayerPointers(*built);
      const int64_t n =
          coldcompress::PrefillLength(context, plan->MinCapacity(), spec);
      at::Tensor prompt_logits = model.Prefill(
          std::vector<int32_t>(prompt.begin(), prompt.begin() + n), cache);
      for (int64_t i = n; i < context; ++i)
        prompt_logits = model.Decode(prompt[i], i, cache);
      for (const int batch : sessions) {
        Row& row = rows.emplace_back();
        row.strategy = strategy;
        if (!full) {
          char label[32];
          std::snprintf(label, sizeof(label), "%g", size);
          row.cache_label = label;
        }
        row.plan = *plan;
        row.batch = batch;
        // Every session starts from a copy of the prompt's caches.
        for (int b = 0; b < batch; ++b) {
          row.copies.push_back(coldcompress::CloneLayers(*built));
          row.pointers.push_back(coldcompress::LayerPointers(row.copies[b]));
        }
        row.logits = prompt_logits.unsqueeze(0).expand({batch, -1});
        row.position = context;
      }
    }
  }
  if (device.is_cuda() && cuda_graphs == "on" &&
      !CheckDecodeGraphs(model, rows)) {
    return 1;
  }
  std::printf(
      "| strategy       | cache | sessions | cached tokens | K/V MB | "
      "decode tok/s | roofline tok/s | of roofline |\n"
      "|----------------|-------|----------|---------------|--------|"
      "--------------|----------------|-------------|\n");
  for (int64_t round = 0; round < rounds; ++round) {
    for (Row& row : rows) {
      // Timed: greedy decoding, as the server's scheduler does it.
      const int64_t until = context + steps * (round + 1) / rounds;
      const auto t0 = Clock::now();
      for (; row.position < until; ++row.position) {
        const at::Tensor tokens = row.logits.argmax(-1);
        std::vector<LlamaModel::DecodeRow> batch(row.batch);
        for (int b = 0; b < row.batch; ++b) {
          batch[b].token = static_cast<int32_t>(tokens[b].item<int64_t>());
          batch[b].position = row.position;
          batch[b].layers = row.pointers[b];
        }
        row.logits = model.DecodeBatch(batch);
      }
      // A GPU's last step finishes before the clock stops, not in the next
      // row's time.
      (void)row.logits[0][0].item<float>();
      row.seconds += Seconds(t0);
    }
  }
  for (const Row& row : rows) {
    const double tokens_per_s = row.batch * steps / row.seconds;
    // K/V of the tokens in one session's cache at the last step, every
    // layer; a step reads the weights once and every session's K/V.
    int64_t cached_tokens = 0;
    for (const auto& layer : row.plan.layers)
      cached_tokens += std::min<int64_t>(layer.capacity, row.position - 1);
    const int64_t kv_bytes = cached_tokens * kv_bytes_per_token;
    const double roofline =
        row.batch * bandwidth /
        static_cast<double>(weight_bytes + row.batch * kv_bytes);
    std::printf(
        "| %-14s | %5s | %8d | %13lld | %6.1f | %12.1f | %14.1f | "
        "%10.1f%% |\n",
        row.strategy.c_str(), row.cache_label.c_str(), row.batch,
        static_cast<long long>(cached_tokens / layers),
        row.batch * kv_bytes / 1e6, tokens_per_s, roofline,
        100 * tokens_per_s / roofline);
  }
  return 0;
}
