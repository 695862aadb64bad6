#include "policies/scoring.h"

#include <limits>

namespace coldcompress {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

std::vector<int64_t> EvictLowest(const at::Tensor& score, const KVCache& cache,
                                 int64_t position,
                                 const Protection& protection) {
  if (!score.device().is_cpu())
    return EvictLowestTensors(score, cache, position, protection);
  const at::Tensor base =
      score.narrow(1, 0, cache.ActiveSlots()).to(at::kDouble).contiguous();
  return EvictLowest(base.data_ptr<double>(), base.size(0), base.size(1), cache,
                     position, protection);
}

std::vector<int64_t> EvictLowest(const double* b, int64_t rows, int64_t stride,
                                 const KVCache& cache, int64_t position,
                                 const Protection& protection) {
  // The same decisions from the cache's host copy of the positions, in a
  // loop: a dozen tensor operations (a few microseconds each) per layer and
  // step were most of a bounded cache's bookkeeping.
  const int64_t n = cache.ActiveSlots();
  const int64_t recent_from = position - protection.recent_window;
  auto sink = [&](int64_t p) { return p >= 0 && p < protection.global_tokens; };
  std::vector<int64_t> chosen(rows);
  for (int64_t r = 0; r < rows; ++r) {
    // The first slot of the lowest score (as argmin).
    double best = 0;
    int64_t slot = 0;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t p = cache.position(r, j);
      const bool recent = protection.recent_window > 0 && p >= recent_from;
      const double s = p < 0               ? -kInf
                       : sink(p) || recent ? kInf
                                           : b[r * stride + j];
      if (j == 0 || s < best) {
        best = s;
        slot = j;
      }
    }
    if (best == kInf) {
      // Every slot is protected: the oldest non-sink, else the newest.
      double low = 0;
      int64_t oldest = 0, newest = 0;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t p = cache.position(r, j);
        const double f = sink(p) ? kInf : static_cast<double>(p);
        if (j == 0 || f < low) {
          low = f;
          oldest = j;
        }
        if (p > cache.position(r, newest)) newest = j;
      }
      slot = low != kInf ? oldest : newest;
    }
    chosen[r] = slot;
  }
  std::vector<int64_t> out(cache.num_heads());
  for (int64_t h = 0; h < cache.num_heads(); ++h)
    out[h] = chosen[rows == 1 ? 0 : h];
  return out;
}

std::vector<int64_t> EvictLowestTensors(const at::Tensor& score,
                                        const KVCache& cache, int64_t position,
                                        const Protection& protection) {
  const int64_t rows = score.size(0);
  const int64_t n = cache.ActiveSlots();
  const at::Tensor pos = cache.positions().narrow(0, 0, rows).narrow(1, 0, n);
  const at::Tensor base = score.narrow(1, 0, n).to(at::kDouble);
  const at::Tensor empty = pos < 0;
  const at::Tensor sink =
      (pos < protection.global_tokens) & empty.logical_not();
  const at::Tensor recent = protection.recent_window > 0
                                ? pos >= position - protection.recent_window
                                : at::zeros_like(sink);
  at::Tensor s =
      base.masked_fill(sink | recent, kInf).masked_fill(empty, -kInf);
  auto [best, slot] = s.min(1);
  const at::Tensor best_cpu = best.cpu();
  at::Tensor slot_cpu = slot.cpu();
  for (int64_t r = 0; r < rows; ++r) {
    if (best_cpu[r].item<double>() != kInf) continue;
    // Every slot is protected: give up the window, then the sinks.
    at::Tensor fallback = pos[r].to(at::kDouble).masked_fill(sink[r], kInf);
    double low = fallback.min().item<double>();
    slot_cpu[r].fill_(low != kInf ? fallback.argmin().item<int64_t>()
                                  : pos[r].argmax().item<int64_t>());
  }
  std::vector<int64_t> out(cache.num_heads());
  const int64_t* p = slot_cpu.to(at::kLong).contiguous().data_ptr<int64_t>();
  for (int64_t h = 0; h < cache.num_heads(); ++h) out[h] = p[rows == 1 ? 0 : h];
  return out;
}

at::Tensor KeepTop(const at::Tensor& priority, int64_t keep) {
  const int64_t s = priority.size(1);
  // Sorting the reversed rows stably puts the later position first on ties.
  const at::Tensor flipped = priority.to(at::kDouble).flip({1});
  const at::Tensor order =
      std::get<1>(at::sort(flipped, /*stable=*/true, 1, /*descending=*/true));
  const at::Tensor kept = (s - 1) - order.narrow(1, 0, keep);
  return std::get<0>(kept.sort(1));
}

at::Tensor ProtectPrompt(at::Tensor base, int64_t global_tokens,
                         int64_t recent_window) {
  at::Tensor p = base.to(at::kDouble).clone();
  const int64_t s = p.size(1);
  const int64_t r = std::min(recent_window, s);
  if (r > 0) p.narrow(1, s - r, r).fill_(1e300);
  const int64_t g = std::min(global_tokens, s);
  if (g > 0) p.narrow(1, 0, g).fill_(kInf);
  return p;
}

std::mt19937_64 LayerRng(uint64_t seed, int64_t layer_index, uint64_t stream) {
  std::seed_seq seq{
      static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
      static_cast<uint32_t>(layer_index), static_cast<uint32_t>(stream)};
  return std::mt19937_64(seq);
}

at::Tensor PadTo(const at::Tensor& t, int64_t length) {
  if (t.size(1) >= length) return t;
  return at::cat({t, at::zeros({t.size(0), length - t.size(1)}, t.options())},
                 1);
}

}  // namespace coldcompress
