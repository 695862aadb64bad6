// One layer's KV cache as the model sees it: runs the layer's attention in the
// order of docs/policies.md 1.2 (prefill) and 1.3 (decode) and keeps what its
// policy decides. Two kinds: PolicyLayer (the compressed cache) and
// AnalysisLayer (`debug_<strategy>`: a full cache for the real attention and a
// shadow cache that measures attention loss, docs/policies.md 6).
#ifndef COLDCOMPRESS_POLICIES_CACHE_LAYER_H_
#define COLDCOMPRESS_POLICIES_CACHE_LAYER_H_

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
  int64_t max_seq_len = 0;  // Smax: the capacity of whole-sequence caches
  const TokenClasses* tokens = nullptr;  // required by the hybrid policy
};

class CacheLayer {
 public:
  // Builds the layer for `plan` (a PolicyLayer, or an AnalysisLayer for
  // "debug_<strategy>") from the registry.
  static absl::StatusOr<std::unique_ptr<CacheLayer>> Create(
      const PolicyRegistry& registry, const LayerPlan& plan,
      const PolicySpec& spec, const CacheLayerOptions& options);

  virtual ~CacheLayer() = default;

  // Prefill of a prompt at positions 0..S-1 (docs/policies.md 1.2): the prompt
  // attends to itself (step 2), then KeepPrompt (steps 3-5).
  // q: [Hq, S, d], k, v: [H, S, d] after RoPE; tokens: the S prompt ids.
  // Returns the attention output [Hq, S, d].
  at::Tensor Prefill(const at::Tensor& q, const at::Tensor& k,
                     const at::Tensor& v, const std::vector<int32_t>& tokens);

  // What keeping an S-token prompt needs of its attention (the policy's
  // or, for a prompt longer than the cache, the compressor's decisions read
  // it).
  virtual PromptAttentionNeed PromptAttentionNeeds(int64_t s) const = 0;
  // docs/policies.md 1.2 steps 3-5 for a prompt whose attention ran elsewhere
  // (a prefill in chunks): keeps what the policy selects of k, v [H, S, d].
  // attention: the prompt's attention as PromptAttentionNeeds(S) asks
  // (undefined for kNone; with rows for kRows).
  virtual void KeepPrompt(const at::Tensor& k, const at::Tensor& v,
                          const PromptAttention& attention,
                          const std::vector<int32_t>& tokens) = 0;

  // One decode step of `token` at `position` (docs/policies.md 1.3).
  // q: [Hq, 1, d], k, v: [H, 1, d] after RoPE. Returns [Hq, 1, d].
  // A batched step on the CPU calls the layers of different sessions at
  // the same time on different threads (never one layer twice at once):
  // state shared between layers must be safe for that.
  virtual at::Tensor Decode(const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, int64_t position,
                            int32_t token) = 0;

  // True when n tokens can be appended in bulk (no eviction, no per-token
  // decision or state update needed).
  virtual bool CanAppend(int64_t n) const = 0;
  // Appends n tokens at first_position.. and attends each to the cache and
  // the earlier new tokens. q: [Hq, n, d]; k, v: [H, n, d].
  // REQUIRES: CanAppend(n).
  virtual at::Tensor Append(const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v, int64_t first_position) = 0;

  // The session's sequence may now reach `max_seq_len` tokens (a later
  // turn): caches that hold the whole sequence grow to it.
  virtual void SetMaxSeqLen(int64_t max_seq_len) = 0;

  // docs/policies.md 7: mean over heads of (n - occupancy) / n, n =
  // tokens_seen - 1, of the compressed (or shadow) cache; quantized caches
  // count bits / 16 of a token per kept token.
  virtual double CompressionRatio(int64_t tokens_seen) const = 0;
  // Bytes of every tensor the layer allocated, policy state included.
  virtual int64_t AllocatedBytes() const = 0;
  // Bytes a full-precision full cache of `tokens` tokens needs.
  virtual int64_t FullCacheBytes(int64_t tokens) const = 0;
  // The positions the (compressed or shadow) cache holds for a KV head,
  // ascending.
  virtual std::vector<int64_t> HeadPositions(int64_t head) const = 0;
  virtual int64_t num_heads() const = 0;
  // Per decode step attention loss (analysis mode only).
  virtual const std::vector<double>* AttentionLosses() const { return nullptr; }
  // The policy's extra statistics (hybrid strategy fractions).
  virtual std::map<std::string, double> Stats() const = 0;

  virtual std::unique_ptr<CacheLayer> Clone() const = 0;

  // The resolved plan; capacity follows growth.
  const LayerPlan& plan() const { return plan_; }

 protected:
  explicit CacheLayer(LayerPlan plan) : plan_(std::move(plan)) {}
  LayerPlan plan_;
};

// The layers' raw pointers, in order (what the model's forward takes).
std::vector<CacheLayer*> LayerPointers(
    const std::vector<std::unique_ptr<CacheLayer>>& layers);
// A copy of each layer (CacheLayer::Clone), in order.
std::vector<std::unique_ptr<CacheLayer>> CloneLayers(
    const std::vector<std::unique_ptr<CacheLayer>>& layers);

// docs/policies.md 1.2 steps 3-5 for a cache: it keeps the compressor's choice
// of the prompt when S > L, else the policy's selection (hybrid), else
// everything; the policy is told what was kept. k, v: [H, S, d];
// attention: as PromptAttentionNeedOf asks.
void KeepPromptIn(KVCache& cache, Policy& policy, PromptCompressor& compressor,
                  const at::Tensor& k, const at::Tensor& v,
                  const PromptAttention& attention,
                  const std::vector<int32_t>& tokens);
// What KeepPromptIn of an S-token prompt reads of its attention.
PromptAttentionNeed PromptAttentionNeedOf(const Policy& policy,
                                          const PromptCompressor& compressor,
                                          const KVCache& cache, int64_t s);

// Mean over heads of (n - occupancy) / n with n = tokens_seen - 1; a
// quantized cache's kept tokens count bits / 16 each.
double CompressionRatioOf(const KVCache& cache, int64_t tokens_seen);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_CACHE_LAYER_H_
