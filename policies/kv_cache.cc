#include "policies/kv_cache.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace coldcompress {
namespace {

at::Tensor LongTensor(const std::vector<int64_t>& v, at::Device device) {
  return at::tensor(v, at::kLong).to(device);
}

}  // namespace

KVCache::KVCache(const KVCacheOptions& options)
    : num_heads_(options.num_heads),
      head_dim_(options.head_dim),
      capacity_(options.capacity),
      bits_(options.bits),
      dtype_(options.dtype),
      host_positions_(options.num_heads * options.capacity, -1),
      occupancy_(options.num_heads, 0) {
  TORCH_CHECK(num_heads_ > 0 && head_dim_ > 0 && capacity_ > 0,
              "KVCache needs positive heads, head_dim and capacity");
  TORCH_CHECK(bits_ == 0 || bits_ == 2 || bits_ == 4 || bits_ == 8,
              "KVCache bits must be 0, 2, 4 or 8");
  TORCH_CHECK(
      bits_ == 0 || (num_heads_ * head_dim_ * bits_) % 8 == 0,
      "quantized KVCache: heads * head_dim * bits must be a multiple of 8");
  const auto device = options.device;
  if (quantized()) {
    packed_keys_ = MakePacked(capacity_, device);
    packed_values_ = MakePacked(capacity_, device);
  } else {
    const auto opts = at::TensorOptions().dtype(dtype_).device(device);
    keys_ = at::zeros({num_heads_, capacity_, head_dim_}, opts);
    values_ = at::zeros({num_heads_, capacity_, head_dim_}, opts);
  }
  valid_ = at::zeros({num_heads_, capacity_},
                     at::TensorOptions().dtype(at::kBool).device(device));
  positions_ = at::full({num_heads_, capacity_}, -1,
                        at::TensorOptions().dtype(at::kLong).device(device));
}

KVCache::Packed KVCache::MakePacked(int64_t capacity, at::Device device) const {
  Packed p;
  const auto opts = at::TensorOptions().device(device);
  p.data = at::zeros({capacity, num_heads_ * head_dim_ * bits_ / 8},
                     opts.dtype(at::kByte));
  p.min = at::zeros({capacity}, opts.dtype(at::kFloat));
  p.scale = at::zeros({capacity}, opts.dtype(at::kFloat));
  return p;
}

void KVCache::Quantize(Packed& p, const at::Tensor& rows,
                       const at::Tensor& slots) const {
  // rows: [n, H, d]; one group per slot over all heads (docs/policies.md 3.8).
  const int64_t n = rows.size(0);
  const at::Tensor x = rows.reshape({n, -1}).to(at::kFloat);
  const at::Tensor mn = std::get<0>(x.min(1));
  const at::Tensor mx = std::get<0>(x.max(1));
  const double levels = static_cast<double>((1 << bits_) - 1);
  const at::Tensor scale = (mx - mn).clamp_min(1e-6) / levels;
  const at::Tensor q = ((x - mn.unsqueeze(1)) / scale.unsqueeze(1))
                           .round()
                           .clamp(0, levels)
                           .to(at::kInt);  // [n, H*d]
  // Pack 8/bits values per byte, the first in the low bits.
  const int64_t per = 8 / bits_;
  std::vector<int64_t> mult(per);
  for (int64_t k = 0; k < per; ++k) mult[k] = int64_t{1} << (bits_ * k);
  const at::Tensor packed =
      (q.view({n, -1, per}) * LongTensor(mult, q.device()).to(at::kInt))
          .sum(-1)
          .to(at::kByte);
  p.data.index_copy_(0, slots, packed);
  p.min.index_copy_(0, slots, mn);
  p.scale.index_copy_(0, slots, scale);
}

at::Tensor KVCache::Dequantize(const Packed& p, int64_t slots) const {
  const int64_t per = 8 / bits_;
  std::vector<int64_t> div(per);
  for (int64_t k = 0; k < per; ++k) div[k] = int64_t{1} << (bits_ * k);
  const at::Tensor data = p.data.narrow(0, 0, slots).to(at::kInt).unsqueeze(-1);
  const at::Tensor q =
      at::remainder(
          at::div(data, LongTensor(div, data.device()).to(at::kInt), "floor"),
          1 << bits_)
          .view({slots, -1})
          .to(at::kFloat);  // [slots, H*d]
  const at::Tensor x = q * p.scale.narrow(0, 0, slots).unsqueeze(1) +
                       p.min.narrow(0, 0, slots).unsqueeze(1);
  return x.view({slots, num_heads_, head_dim_}).permute({1, 0, 2}).to(dtype_);
}

int64_t KVCache::ActiveSlots() const {
  return *std::max_element(occupancy_.begin(), occupancy_.end());
}

bool KVCache::Full() const {
  return std::all_of(occupancy_.begin(), occupancy_.end(),
                     [&](int64_t o) { return o == capacity_; });
}

int64_t KVCache::MinFreeSlots() const { return capacity_ - ActiveSlots(); }

void KVCache::WriteRows(const at::Tensor& k, const at::Tensor& v,
                        int64_t first_slot) {
  // k, v: [H, n, d] into slots first_slot.. of every head.
  const int64_t n = k.size(1);
  if (quantized()) {
    const at::Tensor slots =
        at::arange(first_slot, first_slot + n,
                   at::TensorOptions().dtype(at::kLong).device(device()));
    Quantize(packed_keys_, k.permute({1, 0, 2}), slots);
    Quantize(packed_values_, v.permute({1, 0, 2}), slots);
  } else {
    keys_.narrow(1, first_slot, n).copy_(k);
    values_.narrow(1, first_slot, n).copy_(v);
  }
}

void KVCache::Fill(const at::Tensor& k, const at::Tensor& v,
                   const at::Tensor& positions) {
  // k, v: [H, n, d]; positions: [H, n]
  const int64_t n = k.size(1);
  TORCH_CHECK(k.size(0) == num_heads_ && n <= capacity_, "Fill: bad shape");
  TORCH_CHECK(positions.size(0) == num_heads_ && positions.size(1) == n,
              "Fill: positions must be [H, n]");
  if (quantized()) {
    packed_keys_ = MakePacked(capacity_, device());
    packed_values_ = MakePacked(capacity_, device());
  } else {
    keys_.zero_();
    values_.zero_();
  }
  valid_.zero_();
  positions_.fill_(-1);
  std::fill(host_positions_.begin(), host_positions_.end(), -1);
  std::fill(occupancy_.begin(), occupancy_.end(), 0);
  if (n == 0) return;
  WriteRows(k, v, 0);
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
  const at::Tensor pos = positions.to(device(), at::kLong);
  const at::Tensor filled = pos >= 0;
  positions_.narrow(1, 0, n).copy_(
      at::where(filled, pos, at::full_like(pos, -1)));
  valid_.narrow(1, 0, n).copy_(filled);
}

void KVCache::Write(const std::vector<int64_t>& slots, const at::Tensor& k,
                    const at::Tensor& v, int64_t position) {
  // k, v: [H, d]
  TORCH_CHECK(static_cast<int64_t>(slots.size()) == num_heads_, "Write: slots");
  for (int64_t h = 0; h < num_heads_; ++h) {
    TORCH_CHECK(
        slots[h] < 0 || (slots[h] <= occupancy_[h] && slots[h] < capacity_),
        "Write: slot ", slots[h], " beyond the filled prefix of head ", h);
  }
  const bool same = std::all_of(slots.begin(), slots.end(),
                                [&](int64_t s) { return s == slots[0]; });
  if (WritesOnHost()) {
    // Each head's row copied in place: the tensor form below is a dozen
    // small operations per head, most of a decode step's cache write.
    const at::Tensor kc = k.to(keys_.scalar_type()).contiguous();
    const at::Tensor vc = v.to(values_.scalar_type()).contiguous();
    const int64_t row = head_dim_ * keys_.element_size();
    auto* keys = static_cast<char*>(keys_.data_ptr());
    auto* values = static_cast<char*>(values_.data_ptr());
    const auto* new_keys = static_cast<const char*>(kc.data_ptr());
    const auto* new_values = static_cast<const char*>(vc.data_ptr());
    bool* valid = valid_.data_ptr<bool>();
    int64_t* positions = positions_.data_ptr<int64_t>();
    for (int64_t h = 0; h < num_heads_; ++h) {
      if (slots[h] < 0) continue;
      const int64_t e = h * capacity_ + slots[h];
      std::memcpy(keys + e * row, new_keys + h * row, row);
      std::memcpy(values + e * row, new_values + h * row, row);
      valid[e] = true;
      positions[e] = position;
    }
  } else if (same && slots[0] >= 0) {
    const int64_t s = slots[0];
    if (quantized()) {
      const at::Tensor at_slot = LongTensor({s}, device());
      Quantize(packed_keys_, k.unsqueeze(0), at_slot);
      Quantize(packed_values_, v.unsqueeze(0), at_slot);
    } else {
      keys_.select(1, s).copy_(k);
      values_.select(1, s).copy_(v);
    }
    valid_.select(1, s).fill_(true);
    positions_.select(1, s).fill_(position);
  } else if (quantized()) {
    // Each touched slot is re-quantized as a whole: the heads that write it
    // take the new values, the others keep their de-quantized ones.
    std::set<int64_t> touched(slots.begin(), slots.end());
    touched.erase(-1);
    for (int64_t s : touched) {
      at::Tensor kr =
          Dequantize(packed_keys_, s + 1).select(1, s).clone();  // [H, d]
      at::Tensor vr = Dequantize(packed_values_, s + 1).select(1, s).clone();
      for (int64_t h = 0; h < num_heads_; ++h) {
        if (slots[h] != s) continue;
        kr[h].copy_(k[h]);
        vr[h].copy_(v[h]);
        valid_[h][s].fill_(true);
        positions_[h][s].fill_(position);
      }
      const at::Tensor at_slot = LongTensor({s}, device());
      Quantize(packed_keys_, kr.unsqueeze(0), at_slot);
      Quantize(packed_values_, vr.unsqueeze(0), at_slot);
    }
  } else {
    for (int64_t h = 0; h < num_heads_; ++h) {
      if (slots[h] < 0) continue;
      keys_[h][slots[h]].copy_(k[h]);
      values_[h][slots[h]].copy_(v[h]);
      valid_[h][slots[h]].fill_(true);
      positions_[h][slots[h]].fill_(position);
    }
  }
  for (int64_t h = 0; h < num_heads_; ++h) {
    const int64_t s = slots[h];
    if (s < 0) continue;
    host_positions_[h * capacity_ + s] = position;
    if (s == occupancy_[h]) ++occupancy_[h];
  }
}

bool KVCache::WritesOnHost() const {
  return !quantized() && device().is_cpu() && keys_.is_contiguous() &&
         values_.is_contiguous() && valid_.is_contiguous() &&
         positions_.is_contiguous();
}

void KVCache::Append(const at::Tensor& k, const at::Tensor& v,
                     int64_t first_position) {
  // k, v: [H, n, d]
  const int64_t n = k.size(1);
  TORCH_CHECK(n <= MinFreeSlots(), "Append: no room for ", n, " tokens");
  const bool aligned =
      std::all_of(occupancy_.begin(), occupancy_.end(),
                  [&](int64_t o) { return o == occupancy_[0]; });
  TORCH_CHECK(aligned,
              "Append: every head must hold the same number of tokens");
  const int64_t start = occupancy_[0];
  WriteRows(k, v, start);
  valid_.narrow(1, start, n).fill_(true);
  positions_.narrow(1, start, n)
      .copy_(
          at::arange(first_position, first_position + n, positions_.options())
              .unsqueeze(0)
              .expand({num_heads_, n}));
  for (int64_t h = 0; h < num_heads_; ++h) {
    for (int64_t i = 0; i < n; ++i) {
      host_positions_[h * capacity_ + start + i] = first_position + i;
    }
    occupancy_[h] += n;
  }
}

void KVCache::Grow(int64_t capacity) {
  if (capacity <= capacity_) return;
  const int64_t extra = capacity - capacity_;
  if (quantized()) {
    Packed more = MakePacked(extra, device());
    for (auto [p, m] :
         {std::pair{&packed_keys_, &more}, std::pair{&packed_values_, &more}}) {
      p->data = at::cat({p->data, m->data});
      p->min = at::cat({p->min, m->min});
      p->scale = at::cat({p->scale, m->scale});
    }
  } else {
    keys_ = at::cat(
        {keys_, at::zeros({num_heads_, extra, head_dim_}, keys_.options())}, 1);
    values_ = at::cat(
        {values_, at::zeros({num_heads_, extra, head_dim_}, values_.options())},
        1);
  }
  valid_ =
      at::cat({valid_, at::zeros({num_heads_, extra}, valid_.options())}, 1);
  positions_ = at::cat(
      {positions_, at::full({num_heads_, extra}, -1, positions_.options())}, 1);
  std::vector<int64_t> pos(num_heads_ * capacity, -1);
  for (int64_t h = 0; h < num_heads_; ++h) {
    std::copy_n(host_positions_.begin() + h * capacity_, capacity_,
                pos.begin() + h * capacity);
  }
  host_positions_ = std::move(pos);
  capacity_ = capacity;
}

at::Tensor KVCache::Keys(int64_t slots) const {
  return quantized() ? Dequantize(packed_keys_, slots)
                     : keys_.narrow(1, 0, slots);
}

at::Tensor KVCache::Values(int64_t slots) const {
  return quantized() ? Dequantize(packed_values_, slots)
                     : values_.narrow(1, 0, slots);
}

std::vector<int64_t> KVCache::SortedPositions(int64_t head) const {
  std::vector<int64_t> out(
      host_positions_.begin() + head * capacity_,
      host_positions_.begin() + head * capacity_ + occupancy_[head]);
  std::sort(out.begin(), out.end());
  return out;
}

int64_t KVCache::AllocatedBytes() const {
  const int64_t kv = quantized() ? packed_keys_.Bytes() + packed_values_.Bytes()
                                 : keys_.nbytes() + values_.nbytes();
  return kv + valid_.nbytes() + positions_.nbytes();
}

int64_t KVCache::FullCacheBytes(int64_t tokens) const {
  return 2 * num_heads_ * tokens * head_dim_ *
         static_cast<int64_t>(c10::elementSize(dtype_));
}

KVCache KVCache::Clone() const {
  KVCache copy = *this;  // shares tensors; replace them with deep copies
  if (quantized()) {
    for (Packed* p : {&copy.packed_keys_, &copy.packed_values_}) {
      p->data = p->data.clone();
      p->min = p->min.clone();
      p->scale = p->scale.clone();
    }
  } else {
    copy.keys_ = keys_.clone();
    copy.values_ = values_.clone();
  }
  copy.valid_ = valid_.clone();
  copy.positions_ = positions_.clone();
  return copy;
}

}  // namespace coldcompress
