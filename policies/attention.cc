#include "policies/attention.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "policies/cpu_kernels.h"
#include "policies/flash_attention.h"

// LibTorch 2.x has the fused kernel (flash / memory-efficient attention on
// GPUs); Debian's 1.13 does not.
#if __has_include(<ATen/ops/scaled_dot_product_attention.h>)
#include <ATen/ops/scaled_dot_product_attention.h>
#define COLDCOMPRESS_HAVE_SDPA 1
#endif

namespace coldcompress {
namespace {

// Queries per chunk when no probabilities are returned: bounds the score
// matrix at [Hq, kQueryChunk, Sk] for long prompts.
constexpr int64_t kQueryChunk = 512;

// A decode step's attention (one query position) on the CPU in float32
// goes to the few-rows kernels: each head's K and V read once, on every
// core, without the BLAS's packing copies.
bool OneQueryKernels(const at::Tensor& q, const at::Tensor& k,
                     const at::Tensor& v) {
  const int64_t d = q.size(3);
  auto heads_contiguous = [&](const at::Tensor& t) {
    return CpuKernelOperand(t) && t.stride(2) == 1 && t.stride(1) == d;
  };
  return q.size(2) == 1 && q.size(1) <= 8 && CpuKernelOperand(q) &&
         q.is_contiguous() && heads_contiguous(k) && heads_contiguous(v);
}

// The probabilities [H, G, Sq, Sk] of the queries [H, G, Sq, d] over keys
// [H, Sk, d], in the model dtype; `kernels`: OneQueryKernels.
at::Tensor GroupedProbs(const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& mask, bool kernels) {
  const int64_t h = q.size(0), g = q.size(1), sq = q.size(2), d = q.size(3);
  const int64_t sk = k.size(1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  // scores: [H, G*Sq, Sk]
  at::Tensor scores;
  if (kernels) {
    scores = FewRowsHeadScores(q.view({h, g, d}), k);
  } else {
    scores = at::bmm(q.reshape({h, g * sq, d}), k.transpose(1, 2));
  }
  scores = scores.view({h, g, sq, sk})
               .to(AccumulationDtype(q.scalar_type()))
               .mul_(scale);
  if (mask.defined()) {
    scores.masked_fill_(mask.logical_not().unsqueeze(1),
                        -std::numeric_limits<float>::infinity());
  }
  return at::softmax(scores, -1).to(q.scalar_type());
}

// Attention of the queries [H, G, Sq, d] over keys [H, Sk, d]; returns the
// output [H, G, Sq, d] and the full probabilities [H, G, Sq, Sk].
std::pair<at::Tensor, at::Tensor> AttendGrouped(const at::Tensor& q,
                                                const at::Tensor& k,
                                                const at::Tensor& v,
                                                const at::Tensor& mask) {
  const int64_t h = q.size(0), g = q.size(1), sq = q.size(2), d = q.size(3);
  const int64_t sk = k.size(1);
  const bool kernels = OneQueryKernels(q, k, v);
  at::Tensor probs = GroupedProbs(q, k, mask, kernels);
  at::Tensor out;
  if (kernels) {
    out = FewRowsHeadValues(probs.view({h, g, sk}), v).view({h, g, sq, d});
  } else {
    out = at::bmm(probs.view({h, g * sq, sk}), v).view({h, g, sq, d});
  }
  return {out, probs};
}

// [n, sk] bool: prompt query row i (position first + i) sees keys
// 0..first + i.
at::Tensor PromptMask(int64_t first, int64_t n, int64_t sk, at::Device device) {
  const auto longs = at::TensorOptions().dtype(at::kLong).device(device);
  return at::arange(sk, longs).unsqueeze(0) <=
         at::arange(first, first + n, longs).unsqueeze(1);
}

// Query rows of a block whose probabilities are computed at once.
int64_t ProbRowsPerBlock(int64_t query_heads, int64_t keys, at::Device device) {
  return std::max<int64_t>(
      1, PromptScoreBudget(device) / std::max<int64_t>(1, query_heads * keys));
}

// The output [H, G, Sq, d] alone: the fused kernel on a GPU when this
// LibTorch has it (the G query heads of a KV head go in as G * Sq query rows
// of that head, each masked as its own position), else AttendGrouped.
at::Tensor AttendOutput(const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v, const at::Tensor& mask) {
#ifdef COLDCOMPRESS_HAVE_SDPA
  if (q.is_cuda()) {
    const int64_t h = q.size(0), g = q.size(1), sq = q.size(2), d = q.size(3);
    const int64_t sk = k.size(1);
    const at::Tensor rows = q.reshape({h, g * sq, d});
    if (!mask.defined()) {
      return at::scaled_dot_product_attention(rows, k, v).view({h, g, sq, d});
    }
    const at::Tensor rows_mask = mask.unsqueeze(1)
                                     .expand({mask.size(0), g, sq, sk})
                                     .reshape({mask.size(0), g * sq, sk});
    return at::scaled_dot_product_attention(rows, k, v, rows_mask)
        .view({h, g, sq, d});
  }
#endif
  return AttendGrouped(q, k, v, mask).first;
}

}  // namespace

AttentionResult Attend(const at::Tensor& q, const at::Tensor& k,
                       const at::Tensor& v, const at::Tensor& mask,
                       bool want_probs) {
  const int64_t hq = q.size(0), sq = q.size(1), d = q.size(2);
  const int64_t h = k.size(0);
  const int64_t g = hq / h;
  const at::Tensor qg = q.view({h, g, sq, d});  // query head j -> KV head j / g
  const at::Tensor full_mask =
      mask.defined() && mask.dim() == 2 ? mask.unsqueeze(0) : mask;
  AttentionResult result;
  if (!want_probs && sq <= kQueryChunk) {
    result.output = AttendOutput(qg, k, v, full_mask).reshape({hq, sq, d});
    return result;
  }
  if (want_probs) {
    auto [out, probs] = AttendGrouped(qg, k, v, full_mask);
    result.output = out.reshape({hq, sq, d});
    result.probs = probs.mean(1);  // [H, Sq, Sk]
    return result;
  }
  std::vector<at::Tensor> outs;
  for (int64_t start = 0; start < sq; start += kQueryChunk) {
    const int64_t n = std::min(kQueryChunk, sq - start);
    const at::Tensor m = !full_mask.defined() || full_mask.size(1) == 1
                             ? full_mask
                             : full_mask.narrow(1, start, n);
    outs.push_back(AttendOutput(qg.narrow(2, start, n), k, v, m));
  }
  result.output = at::cat(outs, 2).reshape({hq, sq, d});
  return result;
}

at::Tensor AttendPrompt(const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v, int64_t first,
                        PromptAttentionBuilder* stats) {
  const int64_t n = q.size(1), sk = k.size(1);
  TORCH_CHECK(sk == first + n, "AttendPrompt: ", sk, " keys for rows ", first,
              "..", first + n - 1);
  if (FlashPromptApplies(q)) return FlashPromptAttention(q, k, v, first, stats);
  if (stats == nullptr) {
    return Attend(q, k, v, PromptMask(first, n, sk, q.device()), false).output;
  }
  // A block of rows attends to the keys up to its last row: the later ones
  // are masked for all of its rows.
  const int64_t block = ProbRowsPerBlock(q.size(0), sk, q.device());
  std::vector<at::Tensor> outs;
  for (int64_t start = 0; start < n; start += block) {
    const int64_t m = std::min(block, n - start);
    const int64_t keys = first + start + m;
    AttentionResult r = Attend(
        q.narrow(1, start, m), k.narrow(1, 0, keys), v.narrow(1, 0, keys),
        PromptMask(first + start, m, keys, q.device()), true);
    stats->Add(first + start, r.probs);
    outs.push_back(std::move(r.output));
  }
  return outs.size() == 1 ? outs[0] : at::cat(outs, 1);
}

PromptAttention::RowSource PromptRows(at::Tensor q, at::Tensor k) {
  return [q = std::move(q),
          k = std::move(k)](const PromptAttention::RowVisitor& visit) {
    const int64_t hq = q.size(0), s = q.size(1), d = q.size(2);
    const int64_t h = k.size(0);
    const int64_t block = ProbRowsPerBlock(hq, s, q.device());
    for (int64_t start = 0; start < s; start += block) {
      const int64_t m = std::min(block, s - start);
      const int64_t keys = start + m;
      const at::Tensor mask =
          PromptMask(start, m, keys, q.device()).unsqueeze(0);
      const at::Tensor rows = q.narrow(1, start, m).view({h, hq / h, m, d});
      visit(start,
            GroupedProbs(rows, k.narrow(1, 0, keys), mask, false).mean(1));
    }
  };
}

int64_t PromptScoreBudget(at::Device device) {
  return device.is_cpu() ? int64_t{1} << 24 : int64_t{1} << 27;
}

at::ScalarType AccumulationDtype(at::ScalarType dtype) {
  return dtype == at::kHalf || dtype == at::kBFloat16 ? at::kFloat : dtype;
}

at::Tensor CausalMask(int64_t s, at::Device device) {
  return at::ones({s, s}, at::TensorOptions().dtype(at::kBool).device(device))
      .tril();
}

}  // namespace coldcompress
