// `random` (docs/policies.md 3.3, 4): evicts a uniformly random unprotected
// token; the generator is seeded by the request's seed and the layer.
#include "policies/builtins.h"
#include "policies/scoring.h"

namespace coldcompress {
namespace {

class RandomPolicy final : public Policy {
 public:
  RandomPolicy(const PolicyContext& c)
      : protection_{c.spec->global_tokens, c.layer->recent_window},
        rng_(LayerRng(c.spec->seed, c.layer_index, 1)) {}

  bool head_specific() const override { return false; }
  bool needs_attention() const override { return false; }

  std::vector<int64_t> ChooseSlots(const KVCache& cache, int64_t position,
                                   int32_t) override {
    std::vector<int64_t> slots = EmptySlots(cache);
    if (!slots.empty()) return slots;
    // One uniform [0, 1) score per slot, shared by all heads.
    std::vector<double> u(cache.capacity());
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (double& x : u) x = uniform(rng_);
    const at::Tensor score =
        at::tensor(u, at::kDouble).to(cache.device()).unsqueeze(0);
    return EvictLowest(score, cache, position, protection_);
  }

  std::unique_ptr<Policy> Clone() const override {
    return std::make_unique<RandomPolicy>(*this);
  }

 private:
  Protection protection_;
  std::mt19937_64 rng_;
};

class RandomCompressor final : public PromptCompressor {
 public:
  RandomCompressor(const PolicyContext& c)
      : g_(c.spec->global_tokens),
        r_(c.layer->recent_window),
        seed_(c.spec->seed),
        layer_(c.layer_index) {}
  bool head_specific() const override { return false; }
  bool needs_attention() const override { return false; }

  // The first g, the last r, and a seeded uniform subset of the middle.
  CompressedPrompt Compress(const PromptObservation& o) override {
    std::mt19937_64 rng = LayerRng(seed_, layer_, 2);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::vector<double> u(o.prompt_length);
    for (double& x : u) x = uniform(rng);
    const at::Tensor priority =
        ProtectPrompt(at::tensor(u, at::kDouble).unsqueeze(0), g_, r_);
    CompressedPrompt out;
    out.kept = KeepTop(priority, o.capacity).to(o.keys.device());
    return out;
  }

 private:
  int64_t g_, r_;
  uint64_t seed_;
  int64_t layer_;
};

}  // namespace

PolicyInfo RandomPolicyInfo() {
  PolicyInfo info;
  info.name = "random";
  info.description =
      "Evicts a uniformly random token outside the sinks and the recent "
      "window.";
  info.params = {GlobalTokensParam(), RecentWindowParam()};
  info.default_compressor = "random";
  info.create = [](const PolicyContext& c) {
    return std::make_unique<RandomPolicy>(c);
  };
  return info;
}

CompressorInfo RandomCompressorInfo() {
  CompressorInfo info;
  info.name = "random";
  info.description =
      "Keeps the sinks, the recent window and a seeded random subset of the "
      "rest.";
  info.create = [](const PolicyContext& c) {
    return std::make_unique<RandomCompressor>(c);
  };
  return info;
}

}  // namespace coldcompress
