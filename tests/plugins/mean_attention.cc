// mean_attention: heavy_hitter (docs/policies.md 3.5, unbounded history)
// written against the plugin interface, to exercise what no example uses: a
// head-specific Importance ([H, L]), needs_attention, OnPrefill's received
// attention, OnStep's slots and probabilities, and state that Clone copies.
// Each KV head evicts the slot with the lowest mean attention since its
// token was written, as the built-in does, in the same float64 arithmetic,
// so plugin_test can demand the built-in's positions exactly.
#include <coldcompress/plugin.h>

#include <memory>
#include <utility>
#include <vector>

namespace {

using coldcompress::plugin::Cache;
using coldcompress::plugin::Layer;
using coldcompress::plugin::Policy;
using coldcompress::plugin::PolicyDefinition;
using coldcompress::plugin::Prefill;
using coldcompress::plugin::Registrar;
using coldcompress::plugin::Step;

class MeanAttention final : public Policy {
 public:
  explicit MeanAttention(const Layer& layer)
      : num_(at::zeros({layer.num_heads, layer.capacity}, at::kDouble)),
        denom_(at::zeros({layer.num_heads, layer.capacity}, at::kLong)) {}

  // a[h, j]: the mean attention kept token j received from the prompt's
  // queries that can see it, colsum / (S - position).
  void OnPrefill(const Prefill& prefill) override {
    const int64_t s = prefill.prompt_length;
    const at::Tensor seen_by = at::arange(s, 0, -1, at::kDouble);
    const at::Tensor mean =
        prefill.attention.received.to(at::kCPU, at::kDouble) / seen_by;
    const at::Tensor kept = prefill.kept.to(at::kCPU);
    const at::Tensor a =
        mean.gather(1, kept.clamp_min(0)).masked_fill(kept < 0, 0);
    num_.narrow(1, 0, kept.size(1)).add_(a);
    denom_ += 1;
  }

  at::Tensor Importance(const Cache&) override {
    return num_ / denom_.clamp_min(1).to(at::kDouble);
  }

  // A slot starts a new history whenever a token is written into it, in
  // place of an evicted one or into an empty slot.
  void OnStep(const Step& step) override {
    for (size_t h = 0; h < step.slots.size(); ++h) {
      const int64_t slot = step.slots[h];
      if (slot < 0) continue;
      const auto hh = static_cast<int64_t>(h);
      num_[hh][slot] = 0.0;
      denom_[hh][slot] = 0;
    }
    const at::Tensor probs = step.probs.to(at::kCPU, at::kDouble);
    num_.narrow(1, 0, probs.size(1)).add_(probs);
    denom_ += 1;
  }

  std::unique_ptr<Policy> Clone() const override {
    auto copy = std::make_unique<MeanAttention>(*this);
    copy->num_ = num_.clone();
    copy->denom_ = denom_.clone();
    return copy;
  }

 private:
  at::Tensor num_;    // [H, L] attention summed since the token was written
  at::Tensor denom_;  // [H, L] updates since then
};

void Register(Registrar& registrar) {
  PolicyDefinition policy;
  policy.name = "mean_attention";
  policy.description = "heavy_hitter as a plugin (a test of the hooks).";
  policy.head_specific = true;
  policy.needs_attention = true;
  policy.params = {
      {"global_tokens", "int", "4", "attention sinks: never evicted"},
      {"recent_window", "double", "10", "recent tokens never evicted"}};
  policy.default_compressor = "heavy_hitter";
  policy.create = [](const Layer& layer) -> std::unique_ptr<Policy> {
    return std::make_unique<MeanAttention>(layer);
  };
  registrar.AddPolicy(std::move(policy));
}

}  // namespace

COLDCOMPRESS_PLUGIN(Register)
