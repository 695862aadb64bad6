// The CPU's tiled prompt attention against the whole-matrix attention: the
// same outputs and the same reductions of the probabilities (received sums,
// last rows), across tiles, GQA groups and a chunk that starts mid-prompt.
#include "policies/flash_attention.h"

#include <gtest/gtest.h>

#include "policies/attention.h"

namespace coldcompress {
namespace {

struct Shape {
  int64_t hq, h, d, s;
};

class FlashAttentionTest : public ::testing::TestWithParam<Shape> {};

// The exact attention of the whole prompt: output [Hq, S, d] and the
// GQA-averaged probabilities [H, S, S], in float64.
AttentionResult Exact(const at::Tensor& q, const at::Tensor& k,
                      const at::Tensor& v) {
  return Attend(q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble),
                CausalMask(q.size(1), at::kCPU), true);
}

TEST_P(FlashAttentionTest, MatchesTheWholeMatrixInOneChunkAndInTwo) {
  const Shape shape = GetParam();
  at::manual_seed(shape.s);
  const at::Tensor q = at::randn({shape.hq, shape.s, shape.d}) * 2;
  const at::Tensor k = at::randn({shape.h, shape.s, shape.d});
  const at::Tensor v = at::randn({shape.h, shape.s, shape.d});
  ASSERT_TRUE(FlashPromptApplies(q)) << "a CPU without AVX2 and FMA";
  const AttentionResult exact = Exact(q, k, v);
  const PromptAttention expected = PromptAttention::FromMatrix(exact.probs);
  // The whole prompt, then the same prompt as two chunks.
  for (const int64_t split : {shape.s, shape.s / 3}) {
    SCOPED_TRACE(split);
    PromptAttentionBuilder stats(shape.h, shape.s, at::kCPU);
    std::vector<at::Tensor> outs;
    for (int64_t first = 0; first < shape.s;) {
      const int64_t end = first == 0 ? split : shape.s;
      outs.push_back(FlashPromptAttention(q.narrow(1, first, end - first),
                                          k.narrow(1, 0, end),
                                          v.narrow(1, 0, end), first, &stats));
      first = end;
    }
    const at::Tensor out = at::cat(outs, 1);
    EXPECT_LT((out.to(at::kDouble) - exact.output).abs().max().item<double>(),
              1e-5);
    const PromptAttention got = stats.Finish();
    EXPECT_LT((got.received() - expected.received()).abs().max().item<double>(),
              1e-4);
    // Sums of up to S probabilities: relative to what each key received.
    EXPECT_LT(((got.received() - expected.received()).abs() /
               expected.received().clamp_min(1e-3))
                  .max()
                  .item<double>(),
              1e-5);
    ASSERT_EQ(got.last_rows().sizes(), expected.last_rows().sizes());
    EXPECT_LT((got.last_rows().to(at::kDouble) - expected.last_rows())
                  .abs()
                  .max()
                  .item<double>(),
              1e-6);
  }
  // Without statistics: the same output.
  const at::Tensor alone = FlashPromptAttention(q, k, v, 0, nullptr);
  EXPECT_LT((alone.to(at::kDouble) - exact.output).abs().max().item<double>(),
            1e-5);
}

// One tile; several tiles of rows and keys with GQA groups of 2 and 3; an
// odd length; no GQA.
INSTANTIATE_TEST_SUITE_P(Shapes, FlashAttentionTest,
                         ::testing::Values(Shape{4, 2, 8, 40},
                                           Shape{4, 2, 16, 1100},
                                           Shape{6, 2, 32, 777},
                                           Shape{2, 2, 8, 530}));

}  // namespace
}  // namespace coldcompress
