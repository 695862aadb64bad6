// Shared decision helpers of the built-in policies and compressors.
#ifndef COLDCOMPRESS_POLICIES_SCORING_H_
#define COLDCOMPRESS_POLICIES_SCORING_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <random>
#include <vector>

#include "policies/kv_cache.h"
#include "policies/policy.h"

namespace coldcompress {

// Which cached tokens a policy never evicts.
struct Protection {
  int64_t global_tokens = 0;  // sinks: positions < g (by position: Fix 1.4)
  int64_t recent_window = 0;  // pos >= p - r; 0 = none (docs/policies.md 1.5)
};

// docs/policies.md 1.4: `score` [H', L] (H' = 1 for head-constant policies,
// else H), lowest evicted first. Protected slots get +inf, empty slots -inf;
// the argmin of each row, ties to the lowest slot. When every slot of a row is
// protected, the recent window is given up first (the oldest non-sink is
// evicted), then the newest token. Returns one slot per KV head.
std::vector<int64_t> EvictLowest(const at::Tensor& score, const KVCache& cache,
                                 int64_t position,
                                 const Protection& protection);
// EvictLowest of a host score: rows x ActiveSlots() float64 values, row r
// at score + r * stride.
std::vector<int64_t> EvictLowest(const double* score, int64_t rows,
                                 int64_t stride, const KVCache& cache,
                                 int64_t position,
                                 const Protection& protection);
// EvictLowest in tensor operations on the score's device: its way off the
// CPU (on the CPU it loops over the cache's host copy of the positions).
std::vector<int64_t> EvictLowestTensors(const at::Tensor& score,
                                        const KVCache& cache, int64_t position,
                                        const Protection& protection);

// Keeps the `keep` highest-priority positions of each row of `priority`
// [H', S], ties to the later position (docs/policies.md 4). Returns [H', keep]
// int64 positions, ascending.
at::Tensor KeepTop(const at::Tensor& priority, int64_t keep);

// Priorities of the compressors that always keep sinks and recent tokens:
// `base` [H', S] with positions < g set above everything and the last r
// positions just below.
at::Tensor ProtectPrompt(at::Tensor base, int64_t global_tokens,
                         int64_t recent_window);

// A generator for a request's seed and a layer (random policy/compressor).
std::mt19937_64 LayerRng(uint64_t seed, int64_t layer_index, uint64_t stream);

// A [rows, n] float tensor padded with zeros to [rows, length].
at::Tensor PadTo(const at::Tensor& t, int64_t length);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_SCORING_H_
