// Scaled dot-product attention with grouped-query heads and, on request, the
// probabilities averaged over each GQA group (policies.md 1.2, 1.3).
#ifndef COLDCOMPRESS_POLICIES_ATTENTION_H_
#define COLDCOMPRESS_POLICIES_ATTENTION_H_

#include <ATen/ATen.h>

namespace coldcompress {

struct AttentionResult {
  at::Tensor output;  // [Hq, Sq, d]
  at::Tensor probs;   // [H, Sq, Sk] GQA-averaged; undefined unless requested
};

// q: [Hq, Sq, d]; k, v: [H, Sk, d] with Hq a multiple of H (query head j
// reads KV head j / (Hq / H)); mask: bool, broadcastable to [H, Sq, Sk], true
// where a query may attend, or undefined when every query sees every key.
// Every query row must allow at least one key.
// The softmax runs in AccumulationDtype() and is cast back to the model dtype.
AttentionResult Attend(const at::Tensor& q, const at::Tensor& k,
                       const at::Tensor& v, const at::Tensor& mask,
                       bool want_probs);

// float32 for 16-bit model dtypes, else the dtype itself (float32, float64):
// where scores, softmaxes and policy statistics are computed.
at::ScalarType AccumulationDtype(at::ScalarType dtype);

// [S, S] bool lower-triangular mask (query i sees keys 0..i).
at::Tensor CausalMask(int64_t s, at::Device device);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_ATTENTION_H_
