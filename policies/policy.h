// The extension point of decode-time eviction: a Policy decides which slot a
// new token overwrites; the KVCache applies the decision (docs/policies.md
// 1.3).
#ifndef COLDCOMPRESS_POLICIES_POLICY_H_
#define COLDCOMPRESS_POLICIES_POLICY_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "policies/kv_cache.h"
#include "policies/layer_plan.h"
#include "policies/policy_spec.h"
#include "policies/prompt_attention.h"

namespace coldcompress {

// Token classes from the model's tokenizer (docs/policies.md 3.7).
struct TokenClasses {
  // Sequences of special-token ids (BOS, EOS, the tokenizer's special and
  // added tokens, and e.g. the encodings of "[INST]" / "[/INST]").
  std::vector<std::vector<int32_t>> special_sequences;
  // By id: the decoded text is only whitespace and/or ASCII punctuation.
  std::vector<bool> punctuation;

  bool IsPunctuation(int32_t id) const {
    return id >= 0 && id < static_cast<int32_t>(punctuation.size()) &&
           punctuation[id];
  }
  // True when `id` alone is a special sequence.
  bool IsSpecial(int32_t id) const;
  // [S] mask of the prompt positions covered by a special sequence.
  std::vector<bool> SpecialMask(const std::vector<int32_t>& tokens) const;
};

// What a policy factory receives for one layer.
struct PolicyContext {
  const LayerPlan* layer = nullptr;  // resolved capacity, window, names
  const PolicySpec* spec = nullptr;  // every request parameter
  int64_t layer_index = 0;
  int64_t num_heads = 0;  // KV heads
  int64_t head_dim = 0;
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  const TokenClasses* tokens = nullptr;  // never null when created by a layer
};

// The prefill-time observation (docs/policies.md 1.2 step 5), given after the
// kept prompt tokens were written into slots 0..n-1.
struct PrefillObservation {
  const KVCache* cache = nullptr;
  int64_t prompt_length = 0;  // S
  // The prompt's attention (its reductions), or null when the policy does
  // not need attention.
  const PromptAttention* attention = nullptr;
  // [H, n] prompt positions held in slots 0..n-1 (padding -1).
  at::Tensor kept;
  // [H, n, d] their keys after RoPE, exact (before any quantization).
  at::Tensor kept_keys;
  // [H, n] initial history supplied by the prompt compressor (SnapKV), or
  // undefined.
  at::Tensor history;
  const std::vector<int32_t>* tokens = nullptr;  // the S prompt token ids
};

// The prompt as a policy or compressor sees it before the cache is filled.
struct PromptObservation {
  int64_t prompt_length = 0;  // S
  int64_t capacity = 0;       // L
  at::Tensor keys;            // [H, S, d] after RoPE
  // The prompt's attention (its reductions), or null when not needed.
  const PromptAttention* attention = nullptr;
  const std::vector<int32_t>* tokens = nullptr;  // the S prompt token ids
};

// One decode step's observation (docs/policies.md 1.3 step 4).
struct DecodeObservation {
  const KVCache* cache = nullptr;
  int64_t position = 0;
  int32_t token = 0;
  const std::vector<int64_t>* slots = nullptr;  // what ChooseSlots returned
  at::Tensor key;  // [H, d] the token's key after RoPE (exact)
  // [H, L] GQA-averaged probabilities over slots (0 for empty slots), or
  // undefined when the policy does not need attention.
  at::Tensor probs;
};

// Decides evictions for one layer of one session.
//
// Call order per session: SelectPrompt (when the prompt fits the cache),
// OnPrefill once; then per decode step ChooseSlots, (the cache writes and
// attention runs), UpdateState. Not thread-safe.
class Policy {
 public:
  virtual ~Policy() = default;

  // True when each KV head decides alone; false when one decision is shared.
  virtual bool head_specific() const = 0;
  // True when UpdateState/OnPrefill need attention probabilities.
  virtual bool needs_attention() const = 0;
  // True when SelectPrompt visits every row of the prompt's attention
  // (PromptAttention::ForEachRows), not only its reductions: a prefill in
  // chunks then keeps the prompt's queries.
  virtual bool needs_prompt_rows() const { return false; }
  // True when tokens may be appended in bulk (a follow-up turn's prompt)
  // without per-token decisions or state updates.
  virtual bool SupportsBulkAppend() const { return false; }

  // The prompt positions to keep when the prompt fits the cache (S <= L):
  // [H, n] ascending per head, -1 padding; undefined keeps every token.
  // (Only the hybrid policy selects; others keep the whole prompt.)
  virtual at::Tensor SelectPrompt(const PromptObservation& observation) {
    return at::Tensor();
  }

  virtual void OnPrefill(const PrefillObservation& observation) {}

  // The slot of each KV head for `token` at `position`, chosen before its
  // attention from the state so far: an empty slot if one exists, else the
  // evicted one; -1 means the head does not cache the token.
  virtual std::vector<int64_t> ChooseSlots(const KVCache& cache,
                                           int64_t position, int32_t token) = 0;

  virtual void UpdateState(const DecodeObservation& observation) {}

  // The cache grew to `capacity` slots (a session's later turn).
  virtual void Grow(int64_t capacity) {}

  // Bytes of policy state (history tensors, counters).
  virtual int64_t StateBytes() const { return 0; }

  // Extra statistics of this layer (e.g. the hybrid policy's fraction of heads
  // per strategy), reported in CacheStats.extra.
  virtual std::map<std::string, double> Stats() const { return {}; }

  virtual std::unique_ptr<Policy> Clone() const = 0;
};

// Returns the next empty slot of every head, or an empty vector when some
// head is full. Policies call this first (docs/policies.md 1.3 step 2).
std::vector<int64_t> EmptySlots(const KVCache& cache);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_POLICY_H_
