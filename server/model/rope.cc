#include "server/model/rope.h"

#include <algorithm>
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

bool Rope::SplitApplies(const at::Tensor& qkv, const at::Tensor& cos,
                        const at::Tensor& sin) {
  const auto cpu_floats = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat &&
           t.is_contiguous();
  };
  return qkv.dim() == 3 && cpu_floats(qkv) && cpu_floats(cos) &&
         cpu_floats(sin) && cos.size(-1) % 2 == 0;
}

// No fused multiply-add: Apply's products are rounded before the sum.
__attribute__((optimize("fp-contract=off")))
std::tuple<at::Tensor, at::Tensor, at::Tensor>
Rope::Split(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin,
            int64_t hq, int64_t h) {
  const int64_t b = qkv.size(0), s = qkv.size(1), width = qkv.size(2);
  const int64_t d = cos.size(-1), half = d / 2;
  TORCH_CHECK(width == (hq + 2 * h) * d, "Rope::Split: ", width,
              " columns are not (", hq, " + 2 x ", h, ") x ", d);
  at::Tensor q = at::empty({b, hq, s, d}, qkv.options());
  at::Tensor k = at::empty({b, h, s, d}, qkv.options());
  at::Tensor v = at::empty({b, h, s, d}, qkv.options());
  const float* in = qkv.data_ptr<float>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  float* qp = q.data_ptr<float>();
  float* kp = k.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  const bool per_row = cos.dim() == 4;
  const auto rotate = [d, half](const float* x, const float* c, const float* sn,
                                float* out) {
    for (int64_t i = 0; i < half; ++i) {
      const float straight = x[i] * c[i];
      const float rotated = -x[i + half] * sn[i];
      out[i] = straight + rotated;
    }
    for (int64_t i = half; i < d; ++i) {
      const float straight = x[i] * c[i];
      const float rotated = x[i - half] * sn[i];
      out[i] = straight + rotated;
    }
  };
  for (int64_t row = 0; row < b; ++row) {
    for (int64_t t = 0; t < s; ++t) {
      const float* x = in + (row * s + t) * width;
      const int64_t angle = ((per_row ? row * s : 0) + t) * d;
      for (int64_t j = 0; j < hq; ++j) {
        rotate(x + j * d, cp + angle, sp + angle,
               qp + ((row * hq + j) * s + t) * d);
      }
      for (int64_t j = 0; j < h; ++j) {
        const int64_t out = ((row * h + j) * s + t) * d;
        rotate(x + (hq + j) * d, cp + angle, sp + angle, kp + out);
        std::copy_n(x + (hq + h + j) * d, d, vp + out);
      }
    }
  }
  return {q, k, v};
}

}  // namespace coldcompress
