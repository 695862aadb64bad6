// Rotary embeddings: Apply's rotation at known angles, and Split (the
// decode steps' one-pass split of the stacked q/k/v rows) giving Apply's
// bits.
#include "server/model/rope.h"

#include <gtest/gtest.h>

#include <cmath>

namespace coldcompress {
namespace {

ModelConfig Config(int64_t head_dim) {
  ModelConfig c;
  c.head_dim = head_dim;
  c.rope_theta = 10000.0;
  return c;
}

// head_dim 2: one frequency, 1 radian per position. (1, 0) at position p
// turns to (cos p, sin p); position 0 leaves every vector as it is.
TEST(RopeTest, RotatesByThePositionsAngle) {
  const Rope rope(Config(2), at::kCPU);
  const auto [cos, sin] =
      rope.CosSin(at::tensor({0, 1, 3}, at::kLong), at::kFloat);
  const at::Tensor x = at::tensor({1.0f, 0.0f}).expand({3, 2});
  const at::Tensor out = Rope::Apply(x, cos, sin);
  EXPECT_EQ(out[0][0].item<float>(), 1.0f);
  EXPECT_EQ(out[0][1].item<float>(), 0.0f);
  EXPECT_NEAR(out[1][0].item<float>(), std::cos(1.0), 1e-6);
  EXPECT_NEAR(out[1][1].item<float>(), std::sin(1.0), 1e-6);
  EXPECT_NEAR(out[2][0].item<float>(), std::cos(3.0), 1e-6);
  EXPECT_NEAR(out[2][1].item<float>(), std::sin(3.0), 1e-6);
}

// Split against the views, Apply and copies it replaces: shared positions
// ([S] -> cos [S, d]) and one row of positions per sequence ([B, S] -> cos
// [B, 1, S, d]), bit for bit.
TEST(RopeTest, SplitGivesApplysBits) {
  constexpr int64_t b = 3, s = 2, hq = 4, h = 2, d = 16;
  const Rope rope(Config(d), at::kCPU);
  at::manual_seed(5);
  const at::Tensor qkv = at::randn({b, s, (hq + 2 * h) * d});
  for (const bool per_row : {false, true}) {
    SCOPED_TRACE(per_row ? "per row" : "shared");
    const at::Tensor positions =
        per_row
            ? at::tensor({7, 8, 100, 101, 4000, 4001}, at::kLong).view({b, s})
            : at::tensor({31, 32}, at::kLong);
    auto [cos, sin] = rope.CosSin(positions.reshape({-1}), at::kFloat);
    if (per_row) {
      cos = cos.view({b, 1, s, d});
      sin = sin.view({b, 1, s, d});
    }
    ASSERT_TRUE(Rope::SplitApplies(qkv, cos, sin));
    const auto [q, k, v] = Rope::Split(qkv, cos, sin, hq, h);
    const auto heads = [&](int64_t first, int64_t n) {
      return qkv.narrow(-1, first * d, n * d)
          .view({b, s, n, d})
          .transpose(1, 2);
    };
    EXPECT_TRUE(at::equal(q, Rope::Apply(heads(0, hq), cos, sin).contiguous()));
    EXPECT_TRUE(at::equal(k, Rope::Apply(heads(hq, h), cos, sin).contiguous()));
    EXPECT_TRUE(at::equal(v, heads(hq + h, h).contiguous()));
    EXPECT_TRUE(q.is_contiguous() && k.is_contiguous() && v.is_contiguous());
  }
  // Not float32 on the CPU, or not contiguous: Apply's path instead.
  const auto [cos, sin] =
      rope.CosSin(at::tensor({0, 1}, at::kLong), at::kFloat);
  EXPECT_FALSE(Rope::SplitApplies(qkv.to(at::kBFloat16), cos, sin));
  EXPECT_FALSE(Rope::SplitApplies(qkv.transpose(0, 1), cos, sin));
}

}  // namespace
}  // namespace coldcompress
