#include "policies/kv_cache.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace coldcompress {

KVCache::KVCache(const KVCacheOptions& options)
    : num_heads_(options.num_heads),
      head_dim_(options.head_dim),
      capacity_(options.capacity),
      host_positions_(options.num_heads * options.capacity, -1),
      occupancy_(options.num_heads, 0) {
  TORCH_CHECK(num_heads_ > 0 && head_dim_ > 0 && capacity_ > 0,
              "KVCache needs positive heads, head_dim and capacity");
  const auto opts =
      at::TensorOptions().dtype(options.dtype).device(options.device);
  keys_ = at::zeros({num_heads_, capacity_, head_dim_}, opts);
  values_ = at::zeros({num_heads_, capacity_, head_dim_}, opts);
  valid_ =
      at::zeros({num_heads_, capacity_},
                at::TensorOptions().dtype(at::kBool).device(options.device));
}

bool KVCache::Full() const {
  return std::all_of(occupancy_.begin(), occupancy_.end(),
                     [&](int64_t o) { return o == capacity_; });
}

int64_t KVCache::MinFreeSlots() const {
  return capacity_ - *std::max_element(occupancy_.begin(), occupancy_.end());
}

void KVCache::Fill(const at::Tensor& k, const at::Tensor& v,
                   const at::Tensor& positions) {
  // k, v: [H, n, d]; positions: [H, n]
  const int64_t n = k.size(1);
  TORCH_CHECK(k.size(0) == num_heads_ && n <= capacity_, "Fill: bad shape");
  TORCH_CHECK(positions.size(0) == num_heads_ && positions.size(1) == n,
              "Fill: positions must be [H, n]");
  keys_.zero_();
  values_.zero_();
  valid_.zero_();
  std::fill(host_positions_.begin(), host_positions_.end(), -1);
  if (n == 0) {
    std::fill(occupancy_.begin(), occupancy_.end(), 0);
    return;
  }
  keys_.narrow(1, 0, n).copy_(k);
  values_.narrow(1, 0, n).copy_(v);
  const at::Tensor pos_cpu = positions.to(at::kCPU, at::kLong).contiguous();
  const int64_t* p = pos_cpu.data_ptr<int64_t>();
  for (int64_t h = 0; h < num_heads_; ++h) {
    int64_t count = 0;
    while (count < n && p[h * n + count] >= 0) {
      host_positions_[h * capacity_ + count] = p[h * n + count];
      ++count;
    }
    occupancy_[h] = count;
  }
  // valid[h, s] = s < occupancy[h]
  const at::Tensor occ = at::tensor(occupancy_, at::kLong).to(valid_.device());
  valid_.copy_(at::arange(capacity_, occ.options()).unsqueeze(0) <
               occ.unsqueeze(1));
}

void KVCache::Write(const std::vector<int64_t>& slots, const at::Tensor& k,
                    const at::Tensor& v, int64_t position) {
  // k, v: [H, d]
  TORCH_CHECK(static_cast<int64_t>(slots.size()) == num_heads_, "Write: slots");
  const bool same = std::all_of(slots.begin(), slots.end(),
                                [&](int64_t s) { return s == slots[0]; });
  if (same && slots[0] >= 0) {
    keys_.select(1, slots[0]).copy_(k);
    values_.select(1, slots[0]).copy_(v);
    valid_.select(1, slots[0]).fill_(true);
  } else {
    for (int64_t h = 0; h < num_heads_; ++h) {
      if (slots[h] < 0) continue;
      keys_[h][slots[h]].copy_(k[h]);
      values_[h][slots[h]].copy_(v[h]);
      valid_[h][slots[h]].fill_(true);
    }
  }
  for (int64_t h = 0; h < num_heads_; ++h) {
    const int64_t s = slots[h];
    if (s < 0) continue;
    TORCH_CHECK(s <= occupancy_[h] && s < capacity_, "Write: slot ", s,
                " beyond the filled prefix of head ", h);
    host_positions_[h * capacity_ + s] = position;
    if (s == occupancy_[h]) ++occupancy_[h];
  }
}

void KVCache::Append(const at::Tensor& k, const at::Tensor& v,
                     int64_t first_position) {
  // k, v: [H, n, d]
  const int64_t n = k.size(1);
  TORCH_CHECK(n <= MinFreeSlots(), "Append: no room for ", n, " tokens");
  const bool aligned =
      std::all_of(occupancy_.begin(), occupancy_.end(),
                  [&](int64_t o) { return o == occupancy_[0]; });
  for (int64_t h = 0; h < num_heads_; ++h) {
    const int64_t start = occupancy_[h];
    if (!aligned) {
      keys_[h].narrow(0, start, n).copy_(k[h]);
      values_[h].narrow(0, start, n).copy_(v[h]);
      valid_[h].narrow(0, start, n).fill_(true);
    }
    for (int64_t i = 0; i < n; ++i) {
      host_positions_[h * capacity_ + start + i] = first_position + i;
    }
    occupancy_[h] += n;
  }
  if (aligned) {
    const int64_t start = occupancy_[0] - n;
    keys_.narrow(1, start, n).copy_(k);
    values_.narrow(1, start, n).copy_(v);
    valid_.narrow(1, start, n).fill_(true);
  }
}

void KVCache::Grow(int64_t capacity) {
  if (capacity <= capacity_) return;
  const int64_t extra = capacity - capacity_;
  keys_ = at::cat(
      {keys_, at::zeros({num_heads_, extra, head_dim_}, keys_.options())}, 1);
  values_ = at::cat(
      {values_, at::zeros({num_heads_, extra, head_dim_}, values_.options())},
      1);
  valid_ =
      at::cat({valid_, at::zeros({num_heads_, extra}, valid_.options())}, 1);
  std::vector<int64_t> pos(num_heads_ * capacity, -1);
  for (int64_t h = 0; h < num_heads_; ++h) {
    std::copy_n(host_positions_.begin() + h * capacity_, capacity_,
                pos.begin() + h * capacity);
  }
  host_positions_ = std::move(pos);
  capacity_ = capacity;
}

at::Tensor KVCache::PositionsTensor() const {
  return at::tensor(host_positions_, at::kLong)
      .view({num_heads_, capacity_})
      .to(keys_.device());
}

std::vector<int64_t> KVCache::SortedPositions(int64_t head) const {
  std::vector<int64_t> out(
      host_positions_.begin() + head * capacity_,
      host_positions_.begin() + head * capacity_ + occupancy_[head]);
  std::sort(out.begin(), out.end());
  return out;
}

int64_t KVCache::AllocatedBytes() const {
  return keys_.nbytes() + values_.nbytes() + valid_.nbytes() +
         static_cast<int64_t>(host_positions_.size() * sizeof(int64_t));
}

int64_t KVCache::FullCacheBytes(int64_t tokens) const {
  return 2 * num_heads_ * tokens * head_dim_ *
         static_cast<int64_t>(keys_.element_size());
}

KVCache KVCache::Clone() const {
  KVCache copy = *this;  // shares tensors; replace them with deep copies
  copy.keys_ = keys_.clone();
  copy.values_ = values_.clone();
  copy.valid_ = valid_.clone();
  return copy;
}

}  // namespace coldcompress
