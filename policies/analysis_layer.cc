#include "policies/analysis_layer.h"

#include <c10/util/Exception.h>

#include "policies/attention.h"
#include "policies/policy_layer.h"

namespace coldcompress {

AnalysisLayer::AnalysisLayer(LayerPlan plan, KVCache full, KVCache shadow,
                             std::unique_ptr<Policy> policy,
                             std::shared_ptr<PromptCompressor> compressor,
                             bool shadow_grows)
    : CacheLayer(std::move(plan)),
      full_(std::move(full)),
      shadow_(std::move(shadow)),
      policy_(std::move(policy)),
      compressor_(std::move(compressor)),
      shadow_grows_(shadow_grows) {}

PromptAttentionNeed AnalysisLayer::PromptAttentionNeeds(int64_t s) const {
  return PromptAttentionNeedOf(*policy_, *compressor_, shadow_, s);
}

void AnalysisLayer::KeepPrompt(const at::Tensor& k, const at::Tensor& v,
                               const PromptAttention& attention,
                               const std::vector<int32_t>& tokens) {
  const int64_t s = k.size(1);
  // The full cache keeps the whole prompt in slots 0..S-1.
  const at::Tensor all =
      at::arange(s, at::TensorOptions().dtype(at::kLong).device(k.device()))
          .unsqueeze(0)
          .expand({k.size(0), s});
  full_.Fill(k, v, all);
  // The shadow gets the prompt as its strategy would (also when S == L: Fix).
  KeepPromptIn(shadow_, *policy_, *compressor_, k, v, attention, tokens);
}

at::Tensor AnalysisLayer::Decode(const at::Tensor& q, const at::Tensor& k,
                                 const at::Tensor& v, int64_t position,
                                 int32_t token) {
  const at::Tensor k0 = k.select(1, 0), v0 = v.select(1, 0);  // [H, d]
  // The real attention over the full cache.
  TORCH_CHECK(position == full_.occupancy(0),
              "analysis: positions must be consecutive");
  const std::vector<int64_t> next(full_.num_heads(), full_.occupancy(0));
  full_.Write(next, k0, v0, position);
  auto [out, full_probs] =
      AttendDecode(full_, q, k, v, next, /*want_probs=*/true);
  // The shadow inserts/evicts as its strategy would.
  const std::vector<int64_t> slots =
      policy_->ChooseSlots(shadow_, position, token);
  shadow_.Write(slots, k0, v0, position);
  // Full-attention probabilities at the shadow's kept positions [H, Ls]
  // (not renormalised); the rest of the mass is lost.
  const at::Tensor pos = shadow_.positions();
  const at::Tensor kept =
      full_probs.gather(1, pos.clamp_min(0)).masked_fill(pos < 0, 0);
  const double loss = (1.0 - kept.to(at::kDouble).sum(1)).mean().item<double>();
  losses_.push_back(loss);
  DecodeObservation observation;
  observation.cache = &shadow_;
  observation.position = position;
  observation.token = token;
  observation.slots = &slots;
  observation.key = k0;
  observation.probs = kept.to(full_probs.scalar_type());
  policy_->UpdateState(observation);
  return out;
}

at::Tensor AnalysisLayer::Append(const at::Tensor&, const at::Tensor&,
                                 const at::Tensor&, int64_t) {
  TORCH_CHECK(false, "AnalysisLayer feeds tokens one decode step at a time");
}

void AnalysisLayer::SetMaxSeqLen(int64_t max_seq_len) {
  full_.Grow(max_seq_len);
  if (shadow_grows_ && max_seq_len > shadow_.capacity()) {
    shadow_.Grow(max_seq_len);
    policy_->Grow(max_seq_len);
    plan_.capacity = max_seq_len;
  }
}

double AnalysisLayer::CompressionRatio(int64_t tokens_seen) const {
  return CompressionRatioOf(shadow_, tokens_seen);
}

int64_t AnalysisLayer::AllocatedBytes() const {
  return full_.AllocatedBytes() + shadow_.AllocatedBytes() +
         policy_->StateBytes();
}

int64_t AnalysisLayer::FullCacheBytes(int64_t tokens) const {
  return full_.FullCacheBytes(tokens);
}

std::vector<int64_t> AnalysisLayer::HeadPositions(int64_t head) const {
  return shadow_.SortedPositions(head);
}

std::unique_ptr<CacheLayer> AnalysisLayer::Clone() const {
  auto copy = std::make_unique<AnalysisLayer>(plan_, full_.Clone(),
                                              shadow_.Clone(), policy_->Clone(),
                                              compressor_, shadow_grows_);
  copy->losses_ = losses_;
  return copy;
}

}  // namespace coldcompress
