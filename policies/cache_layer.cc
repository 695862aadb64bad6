#include "policies/cache_layer.h"

#include "absl/strings/str_cat.h"
#include "policies/attention.h"
#include "policies/registry.h"

namespace coldcompress {

absl::StatusOr<std::unique_ptr<CacheLayer>> CacheLayer::Create(
    const PolicyRegistry& registry, const LayerPlan& plan,
    const PolicySpec& spec, const CacheLayerOptions& options) {
  PolicyContext context;
  context.layer = &plan;
  context.spec = &spec;
  context.layer_index = options.layer_index;
  context.num_heads = options.num_heads;
  context.head_dim = options.head_dim;
  context.dtype = options.dtype;
  context.device = options.device;
  std::unique_ptr<Policy> policy = registry.CreatePolicy(context);
  if (policy == nullptr) return registry.CheckPolicy(plan.strategy);
  std::unique_ptr<PromptCompressor> compressor =
      registry.CreateCompressor(context);
  if (compressor == nullptr)
    return registry.CheckCompressor(plan.prompt_compression);
  KVCacheOptions kv;
  kv.num_heads = options.num_heads;
  kv.head_dim = options.head_dim;
  kv.capacity = plan.capacity;
  kv.dtype = options.dtype;
  kv.device = options.device;
  return std::make_unique<CacheLayer>(plan, KVCache(kv), std::move(policy),
                                      std::move(compressor));
}

CacheLayer::CacheLayer(LayerPlan plan, KVCache cache,
                       std::unique_ptr<Policy> policy,
                       std::shared_ptr<PromptCompressor> compressor)
    : plan_(std::move(plan)),
      cache_(std::move(cache)),
      policy_(std::move(policy)),
      compressor_(std::move(compressor)) {}

at::Tensor CacheLayer::Prefill(const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v) {
  const int64_t s = k.size(1);
  const int64_t h = k.size(0);
  const int64_t capacity = cache_.capacity();
  const bool compress = s > capacity;
  const bool want_probs = policy_->needs_attention() ||
                          (compress && compressor_->needs_attention());
  // 1.2 step 2: the prompt attends to itself; the cache is not read.
  AttentionResult attn = Attend(q, k, v, CausalMask(s, q.device()), want_probs);

  // 1.2 steps 3-4: choose the kept tokens, write them in position order.
  const auto long_opts =
      at::TensorOptions().dtype(at::kLong).device(k.device());
  at::Tensor kept;
  at::Tensor history;
  if (compress) {
    PromptObservation observation;
    observation.prompt_length = s;
    observation.capacity = capacity;
    observation.keys = k;
    observation.attention = attn.probs;
    CompressedPrompt compressed = compressor_->Compress(observation);
    kept = compressed.kept.to(long_opts).expand({h, capacity}).contiguous();
    history = compressed.history;
  } else {
    kept = at::arange(s, long_opts).unsqueeze(0).expand({h, s}).contiguous();
  }
  const at::Tensor index =
      kept.unsqueeze(-1).expand({h, kept.size(1), k.size(2)});
  cache_.Fill(k.gather(1, index), v.gather(1, index), kept);

  // 1.2 step 5.
  PrefillObservation observation;
  observation.cache = &cache_;
  observation.prompt_length = s;
  observation.attention = attn.probs;
  observation.kept = kept;
  observation.history = history;
  policy_->OnPrefill(observation);
  return attn.output;
}

at::Tensor CacheLayer::Decode(const at::Tensor& q, const at::Tensor& k,
                              const at::Tensor& v, int64_t position) {
  // 1.3 step 2: choose the slot before this token's attention, write there.
  const std::vector<int64_t> slots = policy_->ChooseSlots(cache_, position);
  cache_.Write(slots, k.select(1, 0), v.select(1, 0), position);
  // 1.3 step 3: attend over every valid slot. mask: [H, 1, L]
  const bool want_probs = policy_->needs_attention();
  AttentionResult attn = Attend(q, cache_.keys(), cache_.values(),
                                cache_.valid().unsqueeze(1), want_probs);
  // 1.3 step 4.
  DecodeObservation observation;
  observation.cache = &cache_;
  observation.position = position;
  observation.slots = &slots;
  if (want_probs) observation.probs = attn.probs.select(1, 0);  // [H, L]
  policy_->UpdateState(observation);
  return attn.output;
}

bool CacheLayer::CanAppend(int64_t n) const {
  return policy_->SupportsBulkAppend() && cache_.MinFreeSlots() >= n;
}

at::Tensor CacheLayer::Append(const at::Tensor& q, const at::Tensor& k,
                              const at::Tensor& v, int64_t first_position) {
  const int64_t n = k.size(1);
  cache_.Append(k, v, first_position);
  // mask[h, i, s]: slot s is filled and holds a position <= the query's.
  const at::Tensor query_pos =
      at::arange(first_position, first_position + n,
                 at::TensorOptions().dtype(at::kLong).device(k.device()));
  const at::Tensor mask =
      cache_.valid().unsqueeze(1) &
      (cache_.PositionsTensor().unsqueeze(1) <= query_pos.view({1, n, 1}));
  return Attend(q, cache_.keys(), cache_.values(), mask, false).output;
}

void CacheLayer::Grow(int64_t capacity) {
  if (capacity <= cache_.capacity()) return;
  cache_.Grow(capacity);
  policy_->Grow(capacity);
  plan_.capacity = capacity;
}

double CacheLayer::CompressionRatio(int64_t tokens_seen) const {
  const int64_t n = tokens_seen - 1;
  if (n <= 0) return 0.0;
  double sum = 0;
  for (int64_t h = 0; h < cache_.num_heads(); ++h) {
    sum +=
        static_cast<double>(n - cache_.occupancy(h)) / static_cast<double>(n);
  }
  return sum / static_cast<double>(cache_.num_heads());
}

int64_t CacheLayer::AllocatedBytes() const {
  return cache_.AllocatedBytes() + policy_->StateBytes();
}

std::unique_ptr<CacheLayer> CacheLayer::Clone() const {
  return std::make_unique<CacheLayer>(plan_, cache_.Clone(), policy_->Clone(),
                                      compressor_);
}

}  // namespace coldcompress
