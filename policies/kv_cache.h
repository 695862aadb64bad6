// The slot-array KV cache of one layer (docs/policies.md 1.1), optionally with
// quantized storage (docs/policies.md 3.8).
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
  // 0: keys and values in `dtype`. 2, 4 or 8: each slot's keys (and,
  // separately, values) over all heads are quantized with their own min and
  // scale and stored bit-packed.
  int64_t bits = 0;
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
  int64_t bits() const { return bits_; }
  bool quantized() const { return bits_ > 0; }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return valid_.device(); }
  int64_t occupancy(int64_t head) const { return occupancy_[head]; }
  const std::vector<int64_t>& occupancy() const { return occupancy_; }
  // Slots that attention must look at: [0, ActiveSlots()) holds every filled
  // slot of every head.
  int64_t ActiveSlots() const;
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

  // Keys and values of slots [0, slots) as attention reads them ([H, slots,
  // d] in the model dtype): the stored tensors, or de-quantized ones.
  at::Tensor Keys(int64_t slots) const;
  at::Tensor Values(int64_t slots) const;
  const at::Tensor& valid() const { return valid_; }  // [H, L] bool
  // [H, L] int64 on the cache's device, -1 for empty slots.
  const at::Tensor& positions() const { return positions_; }
  // Original position held by a slot, -1 when empty (host copy).
  int64_t position(int64_t head, int64_t slot) const {
    return host_positions_[head * capacity_ + slot];
  }
  // Positions held by one head, ascending.
  std::vector<int64_t> SortedPositions(int64_t head) const;

  // Bytes of the cache's tensors: K and V storage (packed when quantized,
  // with their per-slot min and scale), positions and the validity mask. (The
  // host-side copy of the positions is bookkeeping and not counted.)
  int64_t AllocatedBytes() const;
  // Bytes a full-precision (model dtype) cache of `tokens` tokens needs for
  // K and V.
  int64_t FullCacheBytes(int64_t tokens) const;

  KVCache Clone() const;

 private:
  // Quantized storage of K or V: per slot, H*d values packed `bits` each.
  struct Packed {
    at::Tensor data;   // [L, H*d*bits/8] uint8
    at::Tensor min;    // [L] float32
    at::Tensor scale;  // [L] float32
    int64_t Bytes() const {
      return data.nbytes() + min.nbytes() + scale.nbytes();
    }
  };
  Packed MakePacked(int64_t capacity, at::Device device) const;
  // rows: [n, H, d] -> stored at `slots` [n] (int64 on device).
  void Quantize(Packed& p, const at::Tensor& rows,
                const at::Tensor& slots) const;
  at::Tensor Dequantize(const Packed& p, int64_t slots) const;  // [H, slots, d]
  void WriteRows(const at::Tensor& k, const at::Tensor& v, int64_t first_slot);
  // Whether Write copies rows into the tensors' memory directly (an
  // unquantized cache in contiguous host memory).
  bool WritesOnHost() const;

  int64_t num_heads_;
  int64_t head_dim_;
  int64_t capacity_;
  int64_t bits_;
  at::ScalarType dtype_;
  at::Tensor keys_;                     // [H, L, d] when not quantized
  at::Tensor values_;                   // [H, L, d] when not quantized
  Packed packed_keys_, packed_values_;  // when quantized
  at::Tensor valid_;
  at::Tensor positions_;
  std::vector<int64_t> host_positions_;  // [H * L]
  std::vector<int64_t> occupancy_;       // [H]
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_KV_CACHE_H_
