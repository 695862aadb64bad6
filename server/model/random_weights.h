// Random Llama weights for a config: the trainer's starting point and the
// benchmarks' model of a given shape (no checkpoint needed).
#ifndef COLDCOMPRESS_SERVER_MODEL_RANDOM_WEIGHTS_H_
#define COLDCOMPRESS_SERVER_MODEL_RANDOM_WEIGHTS_H_

#include <ATen/ATen.h>

#include <cstdint>

#include "server/model/checkpoint.h"

namespace coldcompress {

// Normal weights, seeded: standard deviation `std` (0: 1/sqrt(hidden)), the
// output projections' scaled down by sqrt(2 * layers); norms are ones;
// lm_head is the embedding (tied). Made where `options` say (float32 on the
// CPU by default; a GPU's generator for an 8B model's shape on the GPU).
ModelWeights RandomWeights(const ModelConfig& config, uint64_t seed,
                           double std = 0,
                           at::TensorOptions options = at::kFloat);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_MODEL_RANDOM_WEIGHTS_H_
