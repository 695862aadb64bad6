// `l2` (docs/policies.md 3.4, 4; Devoto et al. 2024): a low key norm means an
// important token, so the largest-norm key is evicted first. Head-specific.
#include <algorithm>
#include <vector>

#include "policies/attention.h"
#include "policies/builtins.h"
#include "policies/scoring.h"

namespace coldcompress {
namespace {

class L2Policy final : public Policy {
 public:
  explicit L2Policy(const PolicyContext& c)
      : protection_{c.spec->global_tokens, c.layer->recent_window},
        key_norm_(at::zeros({c.num_heads, c.layer->capacity},
                            at::TensorOptions()
                                .dtype(AccumulationDtype(c.dtype))
                                .device(c.device))) {}

  bool head_specific() const override { return true; }
  bool needs_attention() const override { return false; }

  void OnPrefill(const PrefillObservation& o) override {
    // kept_keys: [H, n, d]
    key_norm_.zero_();
    const at::Tensor norms =
        o.kept_keys.to(key_norm_.scalar_type()).norm(2, -1);
    key_norm_.narrow(1, 0, norms.size(1))
        .copy_(norms.masked_fill(o.kept < 0, 0));
  }

  std::vector<int64_t> ChooseSlots(const KVCache& cache, int64_t position,
                                   int32_t) override {
    std::vector<int64_t> slots = EmptySlots(cache);
    if (!slots.empty()) return slots;
    if (OnHost()) {
      // max - norm, as the tensor form below computes it, in a loop.
      const int64_t heads = key_norm_.size(0), length = key_norm_.size(1);
      const int64_t n = cache.ActiveSlots();
      const float* norm = key_norm_.data_ptr<float>();
      const float top = *std::max_element(norm, norm + heads * length);
      std::vector<double> score(heads * n);
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t j = 0; j < n; ++j)
          score[h * n + j] = static_cast<double>(top - norm[h * length + j]);
      }
      return EvictLowest(score.data(), heads, n, cache, position, protection_);
    }
    const at::Tensor score = key_norm_.max() - key_norm_;  // [H, L]
    return EvictLowest(score, cache, position, protection_);
  }

  void UpdateState(const DecodeObservation& o) override {
    const at::Tensor norms =
        o.key.to(key_norm_.scalar_type()).norm(2, -1);  // [H]
    if (OnHost()) {
      const at::Tensor host = norms.contiguous();
      const float* values = host.data_ptr<float>();
      float* norm = key_norm_.data_ptr<float>();
      for (size_t h = 0; h < o.slots->size(); ++h) {
        const int64_t slot = (*o.slots)[h];
        if (slot >= 0)
          norm[static_cast<int64_t>(h) * key_norm_.size(1) + slot] = values[h];
      }
      return;
    }
    // Head h's norm into element h * L + slot, for the heads that cached it.
    std::vector<int64_t> heads, elements;
    for (size_t h = 0; h < o.slots->size(); ++h) {
      if ((*o.slots)[h] < 0) continue;
      heads.push_back(static_cast<int64_t>(h));
      elements.push_back(heads.back() * key_norm_.size(1) + (*o.slots)[h]);
    }
    if (heads.empty()) return;
    const auto longs = at::TensorOptions().dtype(at::kLong);
    const at::Tensor values =
        heads.size() == o.slots->size()
            ? norms
            : norms.index_select(0,
                                 at::tensor(heads, longs).to(norms.device()));
    key_norm_.view({-1}).index_copy_(
        0, at::tensor(elements, longs).to(key_norm_.device()), values);
  }

  void Grow(int64_t capacity) override {
    key_norm_ = PadTo(key_norm_, capacity);
  }
  int64_t StateBytes() const override { return key_norm_.nbytes(); }
  std::unique_ptr<Policy> Clone() const override {
    auto copy = std::make_unique<L2Policy>(*this);
    copy->key_norm_ = key_norm_.clone();
    return copy;
  }

 private:
  // On the CPU in float32, the decode step's bookkeeping is loops over the
  // norms' memory (a few small tensor operations fewer per layer and step).
  bool OnHost() const {
    return key_norm_.device().is_cpu() && key_norm_.scalar_type() == at::kFloat;
  }

  Protection protection_;
  at::Tensor key_norm_;  // [H, L]
};

class L2Compressor final : public PromptCompressor {
 public:
  explicit L2Compressor(const PolicyContext& c)
      : g_(c.spec->global_tokens), r_(c.layer->recent_window) {}
  bool head_specific() const override { return true; }
  bool needs_attention() const override { return false; }

  // Sinks and recent tokens, then the lowest-norm keys of each head.
  CompressedPrompt Compress(const PromptObservation& o) override {
    const at::Tensor norms = o.keys.to(at::kDouble).norm(2, -1);  // [H, S]
    CompressedPrompt out;
    out.kept = KeepTop(ProtectPrompt(-norms, g_, r_), o.capacity);
    return out;
  }

 private:
  int64_t g_, r_;
};

}  // namespace

PolicyInfo L2PolicyInfo() {
  PolicyInfo info;
  info.name = "l2";
  info.description =
      "Evicts the key with the largest L2 norm (low norm = important), per "
      "head.";
  info.head_specific = true;
  info.params = {GlobalTokensParam(), RecentWindowParam()};
  info.default_compressor = "l2";
  info.create = [](const PolicyContext& c) {
    return std::make_unique<L2Policy>(c);
  };
  return info;
}

CompressorInfo L2CompressorInfo() {
  CompressorInfo info;
  info.name = "l2";
  info.description =
      "Keeps sinks and recent tokens, then the lowest-norm keys of each head.";
  info.head_specific = true;
  info.create = [](const PolicyContext& c) {
    return std::make_unique<L2Compressor>(c);
  };
  return info;
}

}  // namespace coldcompress
