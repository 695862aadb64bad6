// The slot-array KV cache of one layer (policies.md 1.1).
#ifndef COLDCOMPRESS_POLICIES_KV_CACHE_H_
#define COLDCOMPRESS_POLICIES_KV_CACHE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace coldcompress {

struct KVCacheOptions {
  int64_t num_heads = 0;  // KV heads
  int64_t head_dim = 0;
  int64_t capacity = 0;  // slots per head, fixed for the session
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
};

// A fixed array of `capacity` slots per KV head holding keys (after RoPE, at
// their original position), values and original positions.
//
// Invariant: per head, slots [0, occupancy(h)) are filled and the rest are
// empty. Prefill fills a prefix, appends extend it, evictions overwrite in
// place; slots are never compacted and positions never renumbered.
//
// Not thread-safe: one session's caches are used by one thread at a time.
class KVCache {
 public:
  explicit KVCache(const KVCacheOptions& options);

  int64_t capacity() const { return capacity_; }
  int64_t num_heads() const { return num_heads_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t occupancy(int64_t head) const { return occupancy_[head]; }
  const std::vector<int64_t>& occupancy() const { return occupancy_; }
  // True when every head's slots are all filled.
  bool Full() const;
  // Slots still empty in the fullest head.
  int64_t MinFreeSlots() const;

  // Writes the kept prompt tokens into slots 0..n_h-1 of each head and clears
  // the rest. k, v: [H, n, d]; positions: [H, n] int64 ascending per head,
  // entries < 0 padding (a head keeping fewer than n tokens, padding last).
  void Fill(const at::Tensor& k, const at::Tensor& v,
            const at::Tensor& positions);

  // Writes one token at `position` into slot slots[h] of each head h; a slot
  // of -1 leaves that head untouched. k, v: [H, d].
  // REQUIRES: slots[h] <= occupancy(h) (an empty slot is the next one).
  void Write(const std::vector<int64_t>& slots, const at::Tensor& k,
             const at::Tensor& v, int64_t position);

  // Appends n consecutive tokens to every head. k, v: [H, n, d].
  // REQUIRES: MinFreeSlots() >= n.
  void Append(const at::Tensor& k, const at::Tensor& v, int64_t first_position);

  // Enlarges the cache to `capacity` slots, keeping every slot in place.
  void Grow(int64_t capacity);

  const at::Tensor& keys() const { return keys_; }      // [H, L, d]
  const at::Tensor& values() const { return values_; }  // [H, L, d]
  const at::Tensor& valid() const { return valid_; }    // [H, L] bool
  // Original position held by a slot, -1 when empty (host copy).
  int64_t position(int64_t head, int64_t slot) const {
    return host_positions_[head * capacity_ + slot];
  }
  // [H, L] int64 on the cache's device, -1 for empty slots.
  at::Tensor PositionsTensor() const;
  // Positions held by one head, ascending.
  std::vector<int64_t> SortedPositions(int64_t head) const;

  // Bytes allocated for K, V, positions and the validity mask.
  int64_t AllocatedBytes() const;
  // Bytes a full-precision cache of `tokens` tokens takes (K and V only).
  int64_t FullCacheBytes(int64_t tokens) const;

  KVCache Clone() const;

 private:
  int64_t num_heads_;
  int64_t head_dim_;
  int64_t capacity_;
  at::Tensor keys_;
  at::Tensor values_;
  at::Tensor valid_;
  std::vector<int64_t> host_positions_;  // [H * L]
  std::vector<int64_t> occupancy_;       // [H]
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_KV_CACHE_H_
