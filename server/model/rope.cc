#include "server/model/rope.h"

#include <cmath>
#include <vector>

namespace coldcompress {

Rope::Rope(const ModelConfig& config, at::Device device) {
  const int64_t d = config.head_dim;
  std::vector<double> inv(d / 2);
  for (int64_t i = 0; i < d / 2; ++i) {
    inv[i] = 1.0 / std::pow(config.rope_theta, static_cast<double>(2 * i) / d);
  }
  if (config.rope_scaling && config.rope_scaling->type == "linear") {
    for (double& f : inv) f /= config.rope_scaling->factor;
  } else if (config.rope_scaling && config.rope_scaling->type == "llama3") {
    // Hugging Face's _compute_llama3_parameters.
    const RopeScaling& s = *config.rope_scaling;
    const double old = static_cast<double>(s.original_max_position_embeddings);
    const double low_freq_wavelen = old / s.low_freq_factor;
    const double high_freq_wavelen = old / s.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2 * M_PI / f;
      if (wavelen > low_freq_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old / wavelen - s.low_freq_factor) /
                              (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  inv_freq_ = at::tensor(inv, at::kDouble).to(at::kFloat).to(device);
}

std::pair<at::Tensor, at::Tensor> Rope::CosSin(const at::Tensor& positions,
                                               at::ScalarType dtype) const {
  // freqs: [S, d/2] in float32, as Hugging Face computes them.
  const at::Tensor freqs = at::outer(positions.to(at::kFloat), inv_freq_);
  const at::Tensor emb = at::cat({freqs, freqs}, -1);  // [S, d]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor Rope::Apply(const at::Tensor& x, const at::Tensor& cos,
                       const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated =
      at::cat({x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

}  // namespace coldcompress
