// `heavy_hitter` (docs/policies.md 3.5; H2O / Scissorhands) and its prompt
// compressor SnapKV (4.5). Head-specific: each KV head evicts the token with
// the lowest mean attention since it was inserted.
#include <algorithm>
#include <limits>
#include <vector>

#include "policies/attention.h"
#include "policies/builtins.h"
#include "policies/scoring.h"

namespace coldcompress {
namespace {

class HeavyHitterPolicy final : public Policy {
 public:
  explicit HeavyHitterPolicy(const PolicyContext& c)
      : protection_{c.spec->global_tokens, c.layer->recent_window},
        window_(std::max<int64_t>(1, c.spec->history_window_size)),
        threshold_(c.spec->attn_thresholding) {
    // Unbounded histories accumulate in float64 so argmin decisions agree with
    // the reference; windowed ones keep the model dtype; thresholded ones bits.
    const at::ScalarType dtype =
        threshold_ ? at::kBool : (window_ == 1 ? at::kDouble : c.dtype);
    const auto opts = at::TensorOptions().device(c.device);
    num_ =
        at::zeros({c.num_heads, c.layer->capacity, window_}, opts.dtype(dtype));
    denom_ = at::zeros({c.num_heads, c.layer->capacity}, opts.dtype(at::kLong));
  }

  bool head_specific() const override { return true; }
  bool needs_attention() const override { return true; }

  void OnPrefill(const PrefillObservation& o) override {
    // a[h, k]: the mean attention the kept token k received in the prompt, or
    // the compressor's (SnapKV) history.
    at::Tensor a;
    if (o.history.defined()) {
      a = o.history.to(at::kDouble);
    } else {
      const at::Tensor mean = o.attention->MeanReceived();  // [H, S]
      a = mean.gather(1, o.kept.clamp_min(0)).masked_fill(o.kept < 0, 0);
    }
    Update(PadTo(a, num_.size(1)), *o.cache);
  }

  // An empty slot if every head has one, else the lowest score's; either
  // way the slot starts a new history (as the reference's does: a token
  // written into an empty slot is not charged the steps before it).
  std::vector<int64_t> ChooseSlots(const KVCache& cache, int64_t position,
                                   int32_t) override {
    std::vector<int64_t> slots = EmptySlots(cache);
    if (slots.empty()) {
      slots = OnHost() ? EvictOnHost(cache, position)
                       : EvictLowest(Scores(), cache, position, protection_);
    }
    ResetHistories(slots);
    return slots;
  }

  void UpdateState(const DecodeObservation& o) override {
    if (OnHost()) {
      UpdateOnHost(o.probs.to(at::kDouble).contiguous());
      return;
    }
    Update(PadTo(o.probs.to(at::kDouble), num_.size(1)), *o.cache);
  }

  // score = sum over the window / D, D = max(denom, 1) when unbounded, else
  // clamp(denom, 1, window): the age-normalised mean attention.
  at::Tensor Scores() const {
    const at::Tensor sum = num_.to(at::kDouble).sum(-1);
    const at::Tensor d =
        window_ == 1 ? denom_.clamp_min(1) : denom_.clamp(1, window_);
    return sum / d.to(at::kDouble);
  }

  void Grow(int64_t capacity) override {
    const int64_t extra = capacity - num_.size(1);
    if (extra <= 0) return;
    num_ = at::cat(
        {num_, at::zeros({num_.size(0), extra, window_}, num_.options())}, 1);
    denom_ = PadTo(denom_, capacity);
  }

  int64_t StateBytes() const override {
    return num_.nbytes() + denom_.nbytes();
  }

  std::unique_ptr<Policy> Clone() const override {
    auto copy = std::make_unique<HeavyHitterPolicy>(*this);
    copy->num_ = num_.clone();
    copy->denom_ = denom_.clone();
    return copy;
  }

 private:
  // On the CPU with the default unbounded float64 history, a decode step's
  // bookkeeping is loops over the state's memory that compute what the
  // tensor form does, to the bit: its fifteen or so small operations per
  // layer were most of a bounded cache's time there.
  bool OnHost() const {
    return num_.device().is_cpu() && window_ == 1 && !threshold_;
  }

  // ChooseSlots' eviction on the host: Scores() (num / max(denom, 1)),
  // then EvictLowest.
  std::vector<int64_t> EvictOnHost(const KVCache& cache, int64_t position) {
    const int64_t heads = num_.size(0), length = num_.size(1);
    const int64_t n = cache.ActiveSlots();
    const double* num = num_.data_ptr<double>();
    const int64_t* denom = denom_.data_ptr<int64_t>();
    std::vector<double> score(heads * n);
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < n; ++j) {
        const int64_t e = h * length + j;
        score[h * n + j] =
            num[e] / static_cast<double>(std::max<int64_t>(denom[e], 1));
      }
    }
    return EvictLowest(score.data(), heads, n, cache, position, protection_);
  }

  // The chosen slots (one per head) start new histories: rows h * L + slot.
  void ResetHistories(const std::vector<int64_t>& slots) {
    const int64_t length = num_.size(1);
    if (OnHost()) {
      double* num = num_.data_ptr<double>();
      int64_t* denom = denom_.data_ptr<int64_t>();
      for (size_t h = 0; h < slots.size(); ++h) {
        num[static_cast<int64_t>(h) * length + slots[h]] = 0;
        denom[static_cast<int64_t>(h) * length + slots[h]] = 0;
      }
      return;
    }
    std::vector<int64_t> rows(slots.size());
    for (size_t h = 0; h < slots.size(); ++h)
      rows[h] = static_cast<int64_t>(h) * length + slots[h];
    const at::Tensor index = at::tensor(rows, at::kLong).to(num_.device());
    num_.view({-1, window_}).index_fill_(0, index, 0);
    denom_.view({-1}).index_fill_(0, index, 0);
  }

  // Update on the host: a [H, <= L] float64, contiguous.
  void UpdateOnHost(const at::Tensor& a) {
    const int64_t heads = num_.size(0), length = num_.size(1);
    const int64_t width = std::min(a.size(1), length);
    const double* ap = a.data_ptr<double>();
    double* num = num_.data_ptr<double>();
    int64_t* denom = denom_.data_ptr<int64_t>();
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < width; ++j)
        num[h * length + j] += ap[h * a.size(1) + j];
      for (int64_t j = 0; j < length; ++j) ++denom[h * length + j];
    }
    ++ctr_;
  }

  // docs/policies.md 3.5 steps 2-4 with a: [H, L] float64 (0 for empty slots).
  void Update(at::Tensor a, const KVCache& cache) {
    if (threshold_) {
      std::vector<double> inv(cache.num_heads());
      for (int64_t h = 0; h < cache.num_heads(); ++h) {
        inv[h] =
            1.0 / static_cast<double>(std::max<int64_t>(1, cache.occupancy(h)));
      }
      a = a >= at::tensor(inv, at::kDouble).to(a.device()).unsqueeze(1);
    }
    const int64_t k = ctr_ % window_;
    at::Tensor column = num_.select(2, window_ == 1 ? 0 : k);
    if (window_ == 1) {
      if (threshold_) {
        column.copy_(column.logical_or(a));
      } else {
        column.add_(a.to(column.scalar_type()));
      }
    } else {
      column.copy_(a.to(column.scalar_type()));
    }
    denom_ += 1;
    ++ctr_;
  }

  Protection protection_;
  int64_t window_;
  bool threshold_;
  at::Tensor num_;    // [H, L, window]
  at::Tensor denom_;  // [H, L] updates since the slot was (re)filled
  int64_t ctr_ = 0;
};

// SnapKV: the prompt tokens the last 16 queries attend to most (pooled), plus
// the observation window and the sinks.
class SnapKVCompressor final : public PromptCompressor {
 public:
  explicit SnapKVCompressor(const PolicyContext& c)
      : g_(c.spec->global_tokens) {}
  bool head_specific() const override { return true; }
  bool needs_attention() const override { return true; }

  CompressedPrompt Compress(const PromptObservation& o) override {
    const int64_t s = o.prompt_length;
    const int64_t obs = std::min<int64_t>(kPromptLastRows, s);
    // v: [H, S] mean over the last obs query rows, then pooled over keys.
    const at::Tensor& last = o.attention->last_rows();  // [H, obs, S]
    at::Tensor v = last.to(AccumulationDtype(last.scalar_type())).mean(1);
    v = at::avg_pool1d(v.unsqueeze(1), {5}, {1}, {2}, /*ceil_mode=*/false,
                       /*count_include_pad=*/false)
            .squeeze(1);
    v.narrow(1, s - obs, obs).fill_(1.0);
    v.narrow(1, 0, std::min(g_, s)).fill_(1.0);
    CompressedPrompt out;
    out.kept = KeepTop(v, o.capacity).to(last.device());
    out.history = o.attention->MeanReceived().gather(1, out.kept);
    return out;
  }

 private:
  int64_t g_;
};

}  // namespace

PolicyInfo HeavyHitterPolicyInfo() {
  PolicyInfo info;
  info.name = "heavy_hitter";
  info.description =
      "H2O / Scissorhands: evicts, per head, the token with the lowest mean "
      "attention since it "
      "was inserted.";
  info.head_specific = true;
  info.needs_attention = true;
  info.params = {
      GlobalTokensParam(),
      RecentWindowParam(),
      {"history_window_size", "int", "1",
       "attention history per token: 1 = unbounded mean, m = the last m steps"},
      {"attn_thresholding", "bool", "false",
       "count a step only when the token's attention is >= 1 / occupancy"}};
  info.default_compressor = "heavy_hitter";
  info.create = [](const PolicyContext& c) {
    return std::make_unique<HeavyHitterPolicy>(c);
  };
  return info;
}

CompressorInfo SnapKVCompressorInfo() {
  CompressorInfo info;
  info.name = "heavy_hitter";
  info.description =
      "SnapKV: keeps the prompt tokens the last 16 queries attend to most "
      "(pooled), the "
      "observation window and the sinks, per head.";
  info.head_specific = true;
  info.needs_attention = true;
  info.create = [](const PolicyContext& c) {
    return std::make_unique<SnapKVCompressor>(c);
  };
  return info;
}

}  // namespace coldcompress
