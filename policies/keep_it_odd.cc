// `keep_it_odd` (policies.md 3.6, 4): the tutorial policy. Odd positions are
// important, even ones are evicted first.
// TODO(#10): move out of the built-ins into the plugin example.
#include "policies/builtins.h"
#include "policies/scoring.h"

namespace coldcompress {
namespace {

class KeepItOddPolicy final : public Policy {
 public:
  explicit KeepItOddPolicy(const PolicyContext& c)
      : protection_{c.spec->global_tokens, c.layer->recent_window} {}

  bool head_specific() const override { return false; }
  bool needs_attention() const override { return false; }

  std::vector<int64_t> ChooseSlots(const KVCache& cache, int64_t position,
                                   int32_t) override {
    std::vector<int64_t> slots = EmptySlots(cache);
    if (!slots.empty()) return slots;
    // importance: 1 for odd positions, 0 for even.
    const at::Tensor importance =
        cache.positions().narrow(0, 0, 1).remainder(2).to(at::kDouble);
    return EvictLowest(importance, cache, position, protection_);
  }

  std::unique_ptr<Policy> Clone() const override {
    return std::make_unique<KeepItOddPolicy>(*this);
  }

 private:
  Protection protection_;
};

class KeepItOddCompressor final : public PromptCompressor {
 public:
  explicit KeepItOddCompressor(const PolicyContext& c)
      : g_(c.spec->global_tokens), r_(c.layer->recent_window) {}
  bool head_specific() const override { return false; }
  bool needs_attention() const override { return false; }

  // Sinks and recent tokens, then the most recent odd positions, then evens.
  CompressedPrompt Compress(const PromptObservation& o) override {
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    const at::Tensor j = at::arange(o.prompt_length, opts);
    const at::Tensor base =
        (j.remainder(2) + 1) + j / static_cast<double>(o.prompt_length);
    CompressedPrompt out;
    out.kept = KeepTop(ProtectPrompt(base.unsqueeze(0), g_, r_), o.capacity)
                   .to(o.keys.device());
    return out;
  }

 private:
  int64_t g_, r_;
};

}  // namespace

PolicyInfo KeepItOddPolicyInfo() {
  PolicyInfo info;
  info.name = "keep_it_odd";
  info.description =
      "Tutorial policy: keeps odd positions, evicts even ones first.";
  info.params = {GlobalTokensParam(), RecentWindowParam()};
  info.default_compressor = "keep_it_odd";
  info.create = [](const PolicyContext& c) {
    return std::make_unique<KeepItOddPolicy>(c);
  };
  return info;
}

CompressorInfo KeepItOddCompressorInfo() {
  CompressorInfo info;
  info.name = "keep_it_odd";
  info.description =
      "Keeps sinks and recent tokens, then the most recent odd positions, then "
      "evens.";
  info.create = [](const PolicyContext& c) {
    return std::make_unique<KeepItOddCompressor>(c);
  };
  return info;
}

}  // namespace coldcompress
