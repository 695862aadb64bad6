// Token selection from logits: greedy, or temperature / top-k / top-p
// sampling with a per-request seed (host-side, so results do not depend on
// the device).
#ifndef COLDCOMPRESS_SERVER_MODEL_SAMPLING_H_
#define COLDCOMPRESS_SERVER_MODEL_SAMPLING_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <random>

#include "absl/status/status.h"

namespace coldcompress {

inline constexpr uint64_t kDefaultSeed = 1234;

struct SamplingOptions {
  float temperature = 0.0f;  // 0 = greedy
  int32_t top_k = 0;         // 0 = no limit
  float top_p = 1.0f;        // (0, 1]
  uint64_t seed = kDefaultSeed;
};

// INVALID_ARGUMENT naming the field: temperature NaN/negative/infinite,
// top_k negative, top_p outside (0, 1].
absl::Status ValidateSampling(const SamplingOptions& options);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);

  // logits: [V] float32 on any device. Greedy picks the lowest id among ties.
  int64_t Sample(const at::Tensor& logits);

  bool greedy() const { return options_.temperature == 0.0f; }

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_MODEL_SAMPLING_H_
