// The CPU decode kernels: every input row's result is the same, to the bit,
// whatever the number of rows (what makes a batched decode step give each
// sequence its lone logits), and agrees with ATen's products.
#include "policies/cpu_kernels.h"

#include <gtest/gtest.h>

#include <vector>

namespace coldcompress {
namespace {

class CpuKernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CpuKernelOperand(at::zeros({1}))) {
      GTEST_SKIP() << "no AVX2 + FMA kernels on this CPU";
    }
    at::manual_seed(3);
  }
};

// Row counts that reach each kernel variant: 1, 2, 3-4, 5-8 (narrow and,
// with 2,000+ floats a row, wide), and more than 8 (several passes).
const std::vector<int64_t> kRowCounts = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 19};

TEST_F(CpuKernelsTest, LinearRowsAreExactWhateverTheBatch) {
  // K = 2,060 makes 5+ rows exceed the L1 cache (the wide kernels) and
  // leaves a K % 8 tail; N = 37 leaves rows beyond the register blocks.
  for (const int64_t k_size : {int64_t{768}, int64_t{2060}}) {
    const at::Tensor w = at::randn({37, k_size});
    const at::Tensor b = at::randn({37});
    for (const int64_t rows : kRowCounts) {
      const at::Tensor x = at::randn({rows, k_size});
      ASSERT_TRUE(FewRowsLinearApplies(x, w));
      const at::Tensor y = FewRowsLinear(x, w, b);
      ASSERT_EQ(y.sizes(), (std::vector<int64_t>{rows, 37}));
      for (int64_t r = 0; r < rows; ++r) {
        const at::Tensor alone = FewRowsLinear(x.narrow(0, r, 1), w, b);
        EXPECT_TRUE(at::equal(y[r], alone[0]))
            << "row " << r << " of " << rows << ", K " << k_size;
      }
      EXPECT_TRUE(at::allclose(y, at::linear(x, w, b), 1e-4, 1e-4))
          << rows << " rows, K " << k_size;
    }
  }
}

TEST_F(CpuKernelsTest, HeadScoresAndValuesMatchBatchedProducts) {
  // d = 36: one 32-column register block and a 4-column tail for the
  // values; n = 29 slots read through a wider cache (row stride 40).
  const int64_t h = 3, n = 29, d = 36;
  const at::Tensor keys = at::randn({h, 40, d}).narrow(1, 0, n);
  const at::Tensor values = at::randn({h, 40, d}).narrow(1, 0, n);
  for (int64_t g = 1; g <= 8; ++g) {
    const at::Tensor q = at::randn({h, g, d});
    const at::Tensor scores = FewRowsHeadScores(q, keys);
    EXPECT_TRUE(
        at::allclose(scores, at::bmm(q, keys.transpose(1, 2)), 1e-4, 1e-4))
        << "G " << g;
    const at::Tensor p = at::softmax(at::randn({h, g, n}), -1);
    const at::Tensor out = FewRowsHeadValues(p, values);
    EXPECT_TRUE(at::allclose(out, at::bmm(p, values), 1e-5, 1e-5)) << "G " << g;
    // Each query head's output is its own, in any group.
    for (int64_t j = 0; j < g; ++j) {
      const at::Tensor one =
          FewRowsHeadValues(p.narrow(1, j, 1).contiguous(), values);
      EXPECT_TRUE(at::equal(out.narrow(1, j, 1), one)) << "G " << g;
    }
  }
}

}  // namespace
}  // namespace coldcompress
