// Scaled dot-product attention with grouped-query heads and, on request, the
// probabilities averaged over each GQA group (docs/policies.md 1.2, 1.3).
#ifndef COLDCOMPRESS_POLICIES_ATTENTION_H_
#define COLDCOMPRESS_POLICIES_ATTENTION_H_

#include <ATen/ATen.h>

#include "policies/prompt_attention.h"

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

// Causal attention of a prompt's query rows first..first + n - 1
// (q: [Hq, n, d]) over its keys and values 0..Sk-1 (k, v: [H, Sk, d],
// Sk = first + n). Returns the output [Hq, n, d]. With `stats`, the rows'
// GQA-averaged probabilities are reduced into it. In float32 on the CPU the
// attention runs in tiles (FlashPromptAttention); elsewhere a block of rows
// at a time, so that no more than PromptScoreBudget scores exist at once
// (on CUDA without `stats`, each block through the fused kernel).
at::Tensor AttendPrompt(const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v, int64_t first,
                        PromptAttentionBuilder* stats);

// A row source over a whole prompt's attention (q: [Hq, S, d], k: [H, S, d]):
// recomputes the GQA-averaged probabilities a block of rows at a time.
PromptAttention::RowSource PromptRows(at::Tensor q, at::Tensor k);

// Scores (query rows x keys x query heads) AttendPrompt and PromptRows
// compute at once on `device`: 16M floats (64 MB) on the CPU, 128M (512 MB)
// on a GPU, where fewer, larger blocks keep its cores busy.
int64_t PromptScoreBudget(at::Device device);

// [S, S] bool lower-triangular mask (query i sees keys 0..i).
at::Tensor CausalMask(int64_t s, at::Device device);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_ATTENTION_H_
