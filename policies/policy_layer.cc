#include "policies/policy_layer.h"

#include <algorithm>

#include "policies/attention.h"
#include "policies/scoring.h"

namespace coldcompress {

PolicyLayer::PolicyLayer(LayerPlan plan, KVCache cache,
                         std::unique_ptr<Policy> policy,
                         std::shared_ptr<PromptCompressor> compressor,
                         bool grows)
    : CacheLayer(std::move(plan)),
      cache_(std::move(cache)),
      policy_(std::move(policy)),
      compressor_(std::move(compressor)),
      grows_(grows) {}

PromptAttentionNeed PolicyLayer::PromptAttentionNeeds(int64_t s) const {
  return PromptAttentionNeedOf(*policy_, *compressor_, cache_, s);
}

void PolicyLayer::KeepPrompt(const at::Tensor& k, const at::Tensor& v,
                             const PromptAttention& attention,
                             const std::vector<int32_t>& tokens) {
  KeepPromptIn(cache_, *policy_, *compressor_, k, v, attention, tokens);
}

std::pair<at::Tensor, at::Tensor> AttendDecode(
    const KVCache& cache, const at::Tensor& q, const at::Tensor& k,
    const at::Tensor& v, const std::vector<int64_t>& slots, bool want_probs) {
  const int64_t n = cache.ActiveSlots();
  const int64_t h = cache.num_heads();
  const bool skipped =
      std::any_of(slots.begin(), slots.end(), [](int64_t s) { return s < 0; });
  const at::Tensor valid = cache.valid().narrow(1, 0, n);
  at::Tensor probs;
  if (!cache.quantized() && !skipped) {
    // Every head holding n tokens fills all of [0, n): nothing to mask (the
    // full cache, a bounded one once full).
    const std::vector<int64_t>& occupancy = cache.occupancy();
    const bool all_valid = std::all_of(occupancy.begin(), occupancy.end(),
                                       [n](int64_t o) { return o == n; });
    AttentionResult attn =
        Attend(q, cache.Keys(n), cache.Values(n),
               all_valid ? at::Tensor() : valid.unsqueeze(1), want_probs);
    if (want_probs) probs = PadTo(attn.probs.select(1, 0), cache.capacity());
    return {attn.output, probs};
  }
  // The exact new token as an extra column; the slot that holds its
  // (quantized) copy is masked so it is counted once.
  const at::Tensor slot_t = at::tensor(slots, at::kLong).to(q.device());
  const at::Tensor written = at::arange(n, slot_t.options()).unsqueeze(0) ==
                             slot_t.unsqueeze(1);          // [H, n]
  const at::Tensor keys = at::cat({cache.Keys(n), k}, 1);  // [H, n+1, d]
  const at::Tensor values = at::cat({cache.Values(n), v}, 1);
  const at::Tensor mask = at::cat(
      {valid & written.logical_not(), at::ones({h, 1}, valid.options())}, 1);
  AttentionResult attn = Attend(q, keys, values, mask.unsqueeze(1), want_probs);
  if (want_probs) {
    const at::Tensor p = attn.probs.select(1, 0);  // [H, n+1]
    // The new token's probability belongs to the slot that now holds it.
    probs =
        at::where(written, p.narrow(1, n, 1).expand({h, n}), p.narrow(1, 0, n));
    probs = PadTo(probs, cache.capacity());
  }
  return {attn.output, probs};
}

at::Tensor PolicyLayer::Decode(const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, int64_t position,
                               int32_t token) {
  // 1.3 step 2: choose the slot before this token's attention, write there.
  const std::vector<int64_t> slots =
      policy_->ChooseSlots(cache_, position, token);
  const at::Tensor k0 = k.select(1, 0), v0 = v.select(1, 0);  // [H, d]
  cache_.Write(slots, k0, v0, position);
  // 1.3 step 3.
  auto [out, probs] =
      AttendDecode(cache_, q, k, v, slots, policy_->needs_attention());
  // 1.3 step 4.
  DecodeObservation observation;
  observation.cache = &cache_;
  observation.position = position;
  observation.token = token;
  observation.slots = &slots;
  observation.key = k0;
  observation.probs = probs;
  policy_->UpdateState(observation);
  return out;
}

bool PolicyLayer::CanAppend(int64_t n) const {
  // A quantized cache feeds token by token, so that each token attends to
  // itself exactly and to earlier ones de-quantized, as decode does.
  return policy_->SupportsBulkAppend() && !cache_.quantized() &&
         cache_.MinFreeSlots() >= n;
}

at::Tensor PolicyLayer::Append(const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, int64_t first_position) {
  const int64_t n = k.size(1);
  cache_.Append(k, v, first_position);
  const int64_t active = cache_.ActiveSlots();
  // mask[h, i, s]: slot s is filled and holds a position <= the query's.
  const at::Tensor query_pos =
      at::arange(first_position, first_position + n,
                 at::TensorOptions().dtype(at::kLong).device(k.device()));
  const at::Tensor mask =
      cache_.valid().narrow(1, 0, active).unsqueeze(1) &
      (cache_.positions().narrow(1, 0, active).unsqueeze(1) <=
       query_pos.view({1, n, 1}));
  return Attend(q, cache_.Keys(active), cache_.Values(active), mask, false)
      .output;
}

void PolicyLayer::SetMaxSeqLen(int64_t max_seq_len) {
  if (!grows_ || max_seq_len <= cache_.capacity()) return;
  cache_.Grow(max_seq_len);
  policy_->Grow(max_seq_len);
  plan_.capacity = max_seq_len;
}

double PolicyLayer::CompressionRatio(int64_t tokens_seen) const {
  return CompressionRatioOf(cache_, tokens_seen);
}

int64_t PolicyLayer::AllocatedBytes() const {
  return cache_.AllocatedBytes() + policy_->StateBytes();
}

int64_t PolicyLayer::FullCacheBytes(int64_t tokens) const {
  return cache_.FullCacheBytes(tokens);
}

std::vector<int64_t> PolicyLayer::HeadPositions(int64_t head) const {
  return cache_.SortedPositions(head);
}

std::unique_ptr<CacheLayer> PolicyLayer::Clone() const {
  return std::make_unique<PolicyLayer>(plan_, cache_.Clone(), policy_->Clone(),
                                       compressor_, grows_);
}

}  // namespace coldcompress
