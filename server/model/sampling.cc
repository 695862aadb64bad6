#include "server/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

namespace coldcompress {

absl::Status ValidateSampling(const SamplingOptions& o) {
  if (!std::isfinite(o.temperature) || o.temperature < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.temperature must be a finite number >= 0, got ",
                     o.temperature));
  }
  if (o.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampling.top_k must be >= 0 (0 = no limit), got ", o.top_k));
  }
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.top_p must be in (0, 1], got ", o.top_p));
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingOptions& options)
    : options_(options), rng_(options.seed) {}

int64_t Sampler::Sample(const at::Tensor& logits) {
  const at::Tensor cpu = logits.to(at::kCPU, at::kFloat).contiguous();
  const float* l = cpu.data_ptr<float>();
  const int64_t v = cpu.numel();
  if (greedy()) {
    return std::max_element(l, l + v) - l;  // first maximum = lowest id
  }
  // Candidates sorted by logit, descending (ties: lower id first).
  std::vector<int64_t> ids(v);
  std::iota(ids.begin(), ids.end(), 0);
  const int64_t k =
      options_.top_k > 0 ? std::min<int64_t>(options_.top_k, v) : v;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](int64_t a, int64_t b) {
                      return l[a] > l[b] || (l[a] == l[b] && a < b);
                    });
  ids.resize(k);
  // Softmax at the temperature, in double.
  std::vector<double> p(k);
  const double inv_t = 1.0 / options_.temperature;
  for (int64_t i = 0; i < k; ++i)
    p[i] = std::exp((l[ids[i]] - l[ids[0]]) * inv_t);
  double total = std::accumulate(p.begin(), p.end(), 0.0);
  // Nucleus: the smallest prefix whose mass reaches top_p.
  if (options_.top_p < 1.0f) {
    double mass = 0;
    int64_t keep = 0;
    while (keep < k) {
      mass += p[keep] / total;
      ++keep;
      if (mass >= options_.top_p) break;
    }
    p.resize(keep);
    ids.resize(keep);
    total = std::accumulate(p.begin(), p.end(), 0.0);
  }
  const double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double acc = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    acc += p[i];
    if (u < acc) return ids[i];
  }
  return ids.back();
}

}  // namespace coldcompress
