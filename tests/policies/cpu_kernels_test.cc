// The CPU decode kernels: every input row's result is the same, to the bit,
// whatever the number of rows (what makes a batched decode step give each
// sequence its lone logits) and whichever instruction set's kernels run,
// and agrees with ATen's products.
#include "policies/cpu_kernels.h"

#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
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
    default_isa_ = *GetCpuKernelIsa();
    for (const CpuKernelIsa isa : {CpuKernelIsa::kAvx2, CpuKernelIsa::kAvx512})
      if (CpuKernelIsaSupported(isa)) isas_.push_back(isa);
  }
  void TearDown() override { SetCpuKernelIsa(default_isa_); }

  CpuKernelIsa default_isa_ = CpuKernelIsa::kAvx2;
  std::vector<CpuKernelIsa> isas_;  // those this CPU has
};

// Row counts that reach each kernel variant: 1, 2, 3-4, 5-8 (narrow and,
// with 2,000+ floats a row, wide), and more than 8 (several passes).
const std::vector<int64_t> kRowCounts = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 19};

TEST_F(CpuKernelsTest, LinearRowsAreExactWhateverTheBatch) {
  // K = 2,060 makes 5+ rows exceed the L1 cache (the wide kernels) and
  // leaves a K % 8 tail; N = 37 leaves rows beyond the register blocks.
  for (const CpuKernelIsa isa : isas_) {
    ASSERT_TRUE(SetCpuKernelIsa(isa));
    SCOPED_TRACE(CpuKernelIsaName(isa));
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
}

TEST_F(CpuKernelsTest, HeadScoresAndValuesMatchBatchedProducts) {
  // d = 36: one 32-column register block and a 4-column tail for the
  // values; n = 29 slots read through a wider cache (row stride 40).
  const int64_t h = 3, n = 29, d = 36;
  const at::Tensor keys = at::randn({h, 40, d}).narrow(1, 0, n);
  const at::Tensor values = at::randn({h, 40, d}).narrow(1, 0, n);
  for (const CpuKernelIsa isa : isas_) {
    ASSERT_TRUE(SetCpuKernelIsa(isa));
    SCOPED_TRACE(CpuKernelIsaName(isa));
    for (int64_t g = 1; g <= 8; ++g) {
      const at::Tensor q = at::randn({h, g, d});
      const at::Tensor scores = FewRowsHeadScores(q, keys);
      EXPECT_TRUE(
          at::allclose(scores, at::bmm(q, keys.transpose(1, 2)), 1e-4, 1e-4))
          << "G " << g;
      const at::Tensor p = at::softmax(at::randn({h, g, n}), -1);
      const at::Tensor out = FewRowsHeadValues(p, values);
      EXPECT_TRUE(at::allclose(out, at::bmm(p, values), 1e-5, 1e-5))
          << "G " << g;
      // Each query head's output is its own, in any group.
      for (int64_t j = 0; j < g; ++j) {
        const at::Tensor one =
            FewRowsHeadValues(p.narrow(1, j, 1).contiguous(), values);
        EXPECT_TRUE(at::equal(out.narrow(1, j, 1), one)) << "G " << g;
      }
    }
  }
}

// AVX-512VL's kernels keep more accumulators in registers but do AVX2's
// operations in AVX2's order: the same bits, so a server's outputs do not
// depend on the CPU it runs on (among those with AVX2).
TEST_F(CpuKernelsTest, InstructionSetsGiveTheSameBits) {
  if (!CpuKernelIsaSupported(CpuKernelIsa::kAvx512)) {
    GTEST_SKIP() << "no AVX-512VL on this CPU";
  }
  // Each of the products, once with each set.
  const auto products = [](CpuKernelIsa isa, const at::Tensor& x,
                           const at::Tensor& w, const at::Tensor& q,
                           const at::Tensor& p, const at::Tensor& cache) {
    EXPECT_TRUE(SetCpuKernelIsa(isa));
    return std::vector<at::Tensor>{FewRowsLinear(x, w, {}),
                                   FewRowsHeadScores(q, cache),
                                   FewRowsHeadValues(p, cache)};
  };
  const int64_t h = 4, n = 53, d = 64;
  const at::Tensor cache = at::randn({h, n, d});
  for (const int64_t k_size : {int64_t{768}, int64_t{2060}}) {
    const at::Tensor w = at::randn({41, k_size});
    for (const int64_t rows : kRowCounts) {
      const int64_t g = std::min<int64_t>(rows, 8);
      const at::Tensor x = at::randn({rows, k_size});
      const at::Tensor q = at::randn({h, g, d});
      const at::Tensor p = at::softmax(at::randn({h, g, n}), -1);
      const auto avx2 = products(CpuKernelIsa::kAvx2, x, w, q, p, cache);
      const auto avx512 = products(CpuKernelIsa::kAvx512, x, w, q, p, cache);
      for (size_t i = 0; i < avx2.size(); ++i) {
        EXPECT_TRUE(at::equal(avx2[i], avx512[i]))
            << "product " << i << ", " << rows << " rows, K " << k_size;
      }
    }
  }
}

// A batched decode step runs each session's attention through
// ForEachOnKernelThreads: every index once, the caller's inference mode on
// every thread, the kernels inside giving the bits they give outside, and
// an exception brought back to the caller.
TEST_F(CpuKernelsTest, ForEachRunsEveryIndexOnceWithTheCallersState) {
  constexpr int64_t kN = 37;
  const at::Tensor w = at::randn({53, 768});
  const at::Tensor x = at::randn({kN, 768});
  std::vector<at::Tensor> alone(kN);
  for (int64_t i = 0; i < kN; ++i) alone[i] = FewRowsLinear(x[i], w, {});
  std::vector<std::atomic<int>> runs(kN);
  std::vector<at::Tensor> inside(kN);
  std::atomic<int> outside_inference_mode{0};
  {
    c10::InferenceMode inference_mode;
    ForEachOnKernelThreads(kN, [&](int64_t i) {
      runs[i].fetch_add(1);
      if (!c10::InferenceMode::is_enabled()) outside_inference_mode++;
      inside[i] = FewRowsLinear(x[i], w, {});
    });
  }
  EXPECT_EQ(outside_inference_mode.load(), 0);
  for (int64_t i = 0; i < kN; ++i) {
    EXPECT_EQ(runs[i].load(), 1) << "index " << i;
    EXPECT_TRUE(at::equal(inside[i], alone[i])) << "index " << i;
  }

  try {
    ForEachOnKernelThreads(kN, [&](int64_t i) {
      if (i == 5) throw std::runtime_error("index 5 failed");
    });
    ADD_FAILURE() << "the exception was not rethrown";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "index 5 failed");
  }
  // The threads are free again.
  std::atomic<int> after{0};
  ForEachOnKernelThreads(kN, [&](int64_t) { after++; });
  EXPECT_EQ(after.load(), kN);
}

}  // namespace
}  // namespace coldcompress
