#include "policies/cache_layer.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "policies/analysis_layer.h"
#include "policies/attention.h"
#include "policies/policy_layer.h"
#include "policies/registry.h"

namespace coldcompress {

absl::StatusOr<std::unique_ptr<CacheLayer>> CacheLayer::Create(
    const PolicyRegistry& registry, const LayerPlan& plan,
    const PolicySpec& spec, const CacheLayerOptions& options) {
  const bool analysis = PolicyRegistry::IsAnalysis(plan.strategy);
  const PolicyInfo* info = registry.FindPolicy(plan.strategy);
  const CompressorInfo* compressor_info =
      registry.FindCompressor(plan.prompt_compression);
  if (info == nullptr) return registry.CheckPolicy(plan.strategy);
  if (compressor_info == nullptr)
    return registry.CheckCompressor(plan.prompt_compression);
  PolicyContext context;
  context.layer = &plan;
  context.spec = &spec;
  context.layer_index = options.layer_index;
  context.num_heads = options.num_heads;
  context.head_dim = options.head_dim;
  context.dtype = options.dtype;
  context.device = options.device;
  static const TokenClasses kNoTokens;
  context.tokens = options.tokens != nullptr ? options.tokens : &kNoTokens;
  std::unique_ptr<Policy> policy = info->create(context);
  if (policy == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("strategy \"", plan.strategy,
                     "\" could not be built from the request"));
  }
  std::shared_ptr<PromptCompressor> compressor =
      compressor_info->create(context);
  KVCacheOptions kv;
  kv.num_heads = options.num_heads;
  kv.head_dim = options.head_dim;
  kv.capacity = plan.capacity;
  kv.dtype = options.dtype;
  kv.device = options.device;
  if (analysis) {
    // The shadow only needs positions and keys for its decisions; neither
    // cache is quantized in analysis mode.
    KVCacheOptions full = kv;
    full.capacity = std::max(options.max_seq_len, plan.capacity);
    return std::make_unique<AnalysisLayer>(
        plan, KVCache(full), KVCache(kv), std::move(policy),
        std::move(compressor), info->requires_full_length);
  }
  kv.bits = spec.cache_bits.value_or(0);
  return std::make_unique<PolicyLayer>(plan, KVCache(kv), std::move(policy),
                                       std::move(compressor),
                                       info->requires_full_length);
}

std::vector<CacheLayer*> LayerPointers(
    const std::vector<std::unique_ptr<CacheLayer>>& layers) {
  std::vector<CacheLayer*> out;
  for (const auto& l : layers) out.push_back(l.get());
  return out;
}

std::vector<std::unique_ptr<CacheLayer>> CloneLayers(
    const std::vector<std::unique_ptr<CacheLayer>>& layers) {
  std::vector<std::unique_ptr<CacheLayer>> out;
  for (const auto& l : layers) out.push_back(l->Clone());
  return out;
}

at::Tensor CacheLayer::Prefill(const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v,
                               const std::vector<int32_t>& tokens) {
  const int64_t s = k.size(1);
  const PromptAttentionNeed need = PromptAttentionNeeds(s);
  // 1.2 step 2: the prompt attends to itself; the cache is not read.
  std::optional<PromptAttentionBuilder> stats;
  if (need != PromptAttentionNeed::kNone)
    stats.emplace(k.size(0), s, k.device());
  at::Tensor out = AttendPrompt(q, k, v, 0, stats ? &*stats : nullptr);
  PromptAttention attention;
  if (stats) {
    attention = stats->Finish(need == PromptAttentionNeed::kRows
                                  ? PromptRows(q, k)
                                  : PromptAttention::RowSource());
  }
  KeepPrompt(k, v, attention, tokens);
  return out;
}

namespace {

// What a cache keeps of a prompt (docs/policies.md 1.2 step 3).
struct PromptSelection {
  at::Tensor kept;     // [H, n] positions ascending per head, -1 padding
  at::Tensor history;  // [H, n] from the compressor, or undefined
};

PromptSelection SelectPrompt(Policy& policy, PromptCompressor& compressor,
                             const PromptObservation& observation,
                             int64_t num_heads) {
  const auto opts =
      at::TensorOptions().dtype(at::kLong).device(observation.keys.device());
  PromptSelection selection;
  if (observation.prompt_length > observation.capacity) {
    CompressedPrompt compressed = compressor.Compress(observation);
    selection.kept = compressed.kept.to(opts)
                         .expand({num_heads, observation.capacity})
                         .contiguous();
    selection.history = compressed.history;
    return selection;
  }
  selection.kept = policy.SelectPrompt(observation);
  if (!selection.kept.defined()) {
    selection.kept = at::arange(observation.prompt_length, opts)
                         .unsqueeze(0)
                         .expand({num_heads, observation.prompt_length})
                         .contiguous();
  }
  return selection;
}

void FillFromPrompt(KVCache& cache, Policy& policy,
                    const PromptSelection& selection, const at::Tensor& k,
                    const at::Tensor& v, const PromptAttention* attention,
                    const std::vector<int32_t>& tokens) {
  // Gather the kept tokens (padding reads position 0 and is marked empty).
  const at::Tensor& kept = selection.kept;  // [H, n]
  const at::Tensor index = kept.clamp_min(0).unsqueeze(-1).expand(
      {kept.size(0), kept.size(1), k.size(2)});
  const at::Tensor kept_keys = k.gather(1, index);
  cache.Fill(kept_keys, v.gather(1, index), kept);
  PrefillObservation observation;
  observation.cache = &cache;
  observation.prompt_length = k.size(1);
  observation.attention = attention;
  observation.kept = kept;
  observation.kept_keys = kept_keys;
  observation.history = selection.history;
  observation.tokens = &tokens;
  policy.OnPrefill(observation);
}

}  // namespace

void KeepPromptIn(KVCache& cache, Policy& policy, PromptCompressor& compressor,
                  const at::Tensor& k, const at::Tensor& v,
                  const PromptAttention& attention,
                  const std::vector<int32_t>& tokens) {
  const PromptAttention* given = attention.defined() ? &attention : nullptr;
  PromptObservation observation;
  observation.prompt_length = k.size(1);
  observation.capacity = cache.capacity();
  observation.keys = k;
  observation.attention = given;
  observation.tokens = &tokens;
  const PromptSelection selection =
      SelectPrompt(policy, compressor, observation, cache.num_heads());
  FillFromPrompt(cache, policy, selection, k, v, given, tokens);
}

PromptAttentionNeed PromptAttentionNeedOf(const Policy& policy,
                                          const PromptCompressor& compressor,
                                          const KVCache& cache, int64_t s) {
  const bool compressed = s > cache.capacity();
  // Only a prompt that fits the cache is selected by the policy.
  if (policy.needs_prompt_rows() && !compressed)
    return PromptAttentionNeed::kRows;
  if (policy.needs_attention() || (compressed && compressor.needs_attention()))
    return PromptAttentionNeed::kReductions;
  return PromptAttentionNeed::kNone;
}

double CompressionRatioOf(const KVCache& cache, int64_t tokens_seen) {
  const int64_t n = tokens_seen - 1;
  if (n <= 0) return 0.0;
  const double bits =
      cache.quantized() ? static_cast<double>(cache.bits()) / 16.0 : 1.0;
  double sum = 0;
  for (int64_t h = 0; h < cache.num_heads(); ++h) {
    sum += 1.0 - bits * static_cast<double>(cache.occupancy(h)) /
                     static_cast<double>(n);
  }
  return sum / static_cast<double>(cache.num_heads());
}

}  // namespace coldcompress
