// The extension point of decode-time eviction: a Policy decides which slot a
// new token overwrites; the KVCache applies the decision (policies.md 1.3).
#ifndef COLDCOMPRESS_POLICIES_POLICY_H_
#define COLDCOMPRESS_POLICIES_POLICY_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "policies/kv_cache.h"
#include "policies/layer_plan.h"
#include "policies/policy_spec.h"

namespace coldcompress {

// What a policy factory receives for one layer.
struct PolicyContext {
  const LayerPlan* layer = nullptr;  // resolved capacity, window, names
  const PolicySpec* spec = nullptr;  // every request parameter
  int64_t layer_index = 0;
  int64_t num_heads = 0;  // KV heads
  int64_t head_dim = 0;
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
};

// The prefill-time observation (policies.md 1.2 step 5), given after the kept
// prompt tokens were written into slots 0..n-1.
struct PrefillObservation {
  const KVCache* cache = nullptr;
  int64_t prompt_length = 0;  // S
  // [H, S, S] GQA-averaged causal attention of the prompt, or undefined when
  // the policy does not need attention.
  at::Tensor attention;
  // [H, n] prompt positions held in slots 0..n-1 (padding -1).
  at::Tensor kept;
  // [H, n] initial history supplied by the prompt compressor (SnapKV), or
  // undefined.
  at::Tensor history;
};

// One decode step's observation (policies.md 1.3 step 4).
struct DecodeObservation {
  const KVCache* cache = nullptr;
  int64_t position = 0;
  const std::vector<int64_t>* slots = nullptr;  // what ChooseSlots returned
  // [H, L] GQA-averaged probabilities over slots (0 for empty slots), or
  // undefined when the policy does not need attention.
  at::Tensor probs;
};

// Decides evictions for one layer of one session.
//
// Call order per session: OnPrefill once; then per decode step ChooseSlots,
// (the cache writes and attention runs), UpdateState. Not thread-safe.
class Policy {
 public:
  virtual ~Policy() = default;

  // True when each KV head decides alone; false when one decision is shared.
  virtual bool head_specific() const = 0;
  // True when UpdateState/OnPrefill need attention probabilities.
  virtual bool needs_attention() const = 0;
  // True when tokens may be appended in bulk (a follow-up turn's prompt)
  // without per-token decisions or state updates.
  virtual bool SupportsBulkAppend() const { return false; }

  virtual void OnPrefill(const PrefillObservation& observation) {}

  // The slot of each KV head for the token at `position`, chosen before its
  // attention from the state so far: an empty slot if one exists, else the
  // evicted one; -1 means the head does not cache the token.
  virtual std::vector<int64_t> ChooseSlots(const KVCache& cache,
                                           int64_t position) = 0;

  virtual void UpdateState(const DecodeObservation& observation) {}

  // The cache grew to `capacity` slots (a session's later turn).
  virtual void Grow(int64_t capacity) {}

  // Bytes of policy state (history tensors, counters).
  virtual int64_t StateBytes() const { return 0; }

  virtual std::unique_ptr<Policy> Clone() const = 0;
};

// Returns the next empty slot of every head, or an empty vector when some
// head is full. Policies call this first (policies.md 1.3 step 2).
std::vector<int64_t> EmptySlots(const KVCache& cache);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_POLICY_H_
