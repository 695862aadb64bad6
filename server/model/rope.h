// Rotary position embeddings in Hugging Face's rotate-half convention, with
// Llama-3.1 ("llama3") and linear frequency scaling.
#ifndef COLDCOMPRESS_SERVER_MODEL_ROPE_H_
#define COLDCOMPRESS_SERVER_MODEL_ROPE_H_

#include <ATen/ATen.h>

#include <tuple>
#include <utility>

#include "server/model/checkpoint.h"

namespace coldcompress {

class Rope {
 public:
  Rope(const ModelConfig& config, at::Device device);

  // cos, sin: [S, head_dim] in `dtype` for absolute `positions` [S] (int64).
  std::pair<at::Tensor, at::Tensor> CosSin(const at::Tensor& positions,
                                           at::ScalarType dtype) const;

  // x: [..., S, head_dim] -> x * cos + rotate_half(x) * sin.
  static at::Tensor Apply(const at::Tensor& x, const at::Tensor& cos,
                          const at::Tensor& sin);

  // The rows [B, S, (Hq + 2H) d] of a stacked q/k/v product split into q
  // [B, Hq, S, d], k and v [B, H, S, d], contiguous, RoPE applied to q and
  // k: one pass where Apply, the views and the copies make about twenty
  // small operations. The same bits as Apply (each element x * cos +
  // rotated * sin, each product rounded before the sum). cos, sin: [S, d]
  // or [B, 1, S, d]. REQUIRES: SplitApplies.
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> Split(
      const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin,
      int64_t hq, int64_t h);
  // float32 on the CPU, all contiguous, and an even head_dim.
  static bool SplitApplies(const at::Tensor& qkv, const at::Tensor& cos,
                           const at::Tensor& sin);

  const at::Tensor& inv_freq() const { return inv_freq_; }  // [head_dim / 2]

 private:
  at::Tensor inv_freq_;  // float32 on the model's device
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_MODEL_ROPE_H_
