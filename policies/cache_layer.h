// One layer's compressed KV cache: the KVCache plus the policy and prompt
// compressor that decide what it holds. Runs the attention of the layer in the
// order of policies.md 1.2 (prefill) and 1.3 (decode).
#ifndef COLDCOMPRESS_POLICIES_CACHE_LAYER_H_
#define COLDCOMPRESS_POLICIES_CACHE_LAYER_H_

#include <ATen/ATen.h>

#include <memory>

#include "absl/status/statusor.h"
#include "policies/kv_cache.h"
#include "policies/layer_plan.h"
#include "policies/policy.h"
#include "policies/prompt_compressor.h"

namespace coldcompress {

class PolicyRegistry;

struct CacheLayerOptions {
  int64_t layer_index = 0;
  int64_t num_heads = 0;  // KV heads
  int64_t head_dim = 0;
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
};

class CacheLayer {
 public:
  // Builds the layer's cache, policy and compressor from the registry.
  static absl::StatusOr<std::unique_ptr<CacheLayer>> Create(
      const PolicyRegistry& registry, const LayerPlan& plan,
      const PolicySpec& spec, const CacheLayerOptions& options);

  CacheLayer(LayerPlan plan, KVCache cache, std::unique_ptr<Policy> policy,
             std::shared_ptr<PromptCompressor> compressor);

  // Prefill of a prompt at positions 0..S-1 (policies.md 1.2).
  // q: [Hq, S, d], k, v: [H, S, d] after RoPE. Returns [Hq, S, d].
  at::Tensor Prefill(const at::Tensor& q, const at::Tensor& k,
                     const at::Tensor& v);

  // One decode step at `position` (policies.md 1.3).
  // q: [Hq, 1, d], k, v: [H, 1, d] after RoPE. Returns [Hq, 1, d].
  at::Tensor Decode(const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, int64_t position);

  // True when n tokens can be appended in bulk (no eviction, no per-token
  // policy decision needed).
  bool CanAppend(int64_t n) const;
  // Appends n tokens at first_position.. and attends each to the cache and
  // the earlier new tokens. q: [Hq, n, d]; k, v: [H, n, d].
  // REQUIRES: CanAppend(n).
  at::Tensor Append(const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, int64_t first_position);

  // Enlarges the capacity (a session's later turn needs more room).
  void Grow(int64_t capacity);

  // policies.md 7: mean over heads of (n - occupancy) / n, n = tokens_seen - 1.
  double CompressionRatio(int64_t tokens_seen) const;
  // Bytes allocated: K, V, positions, masks and policy state.
  int64_t AllocatedBytes() const;

  std::unique_ptr<CacheLayer> Clone() const;

  const LayerPlan& plan() const { return plan_; }
  const KVCache& cache() const { return cache_; }

 private:
  LayerPlan plan_;
  KVCache cache_;
  std::unique_ptr<Policy> policy_;
  // Shared by clones: Compress() keeps no state between calls.
  std::shared_ptr<PromptCompressor> compressor_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_CACHE_LAYER_H_
