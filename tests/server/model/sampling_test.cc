#include "server/model/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace coldcompress {
namespace {

TEST(SamplingTest, GreedyTakesTheLowestIdAmongTies) {
  Sampler s(SamplingOptions{});
  EXPECT_EQ(s.Sample(at::tensor({0.1f, 3.0f, 3.0f, -1.0f})), 1);
}

TEST(SamplingTest, SameSeedSameTokens) {
  const at::Tensor logits = at::randn({50});
  SamplingOptions o;
  o.temperature = 1.0f;
  o.seed = 99;
  Sampler a(o), b(o);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a.Sample(logits), b.Sample(logits));
}

TEST(SamplingTest, TopKAndTopPRestrictTheCandidates) {
  const at::Tensor logits = at::tensor({4.0f, 3.0f, 2.0f, 1.0f, 0.0f});
  SamplingOptions o;
  o.temperature = 1.0f;
  o.top_k = 2;
  Sampler k(o);
  for (int i = 0; i < 200; ++i) EXPECT_LT(k.Sample(logits), 2);
  o.top_k = 0;
  // Probabilities: .636 .234 .086 ...; top_p .7 keeps the first two.
  o.top_p = 0.7f;
  Sampler p(o);
  std::map<int64_t, int> counts;
  for (int i = 0; i < 2000; ++i) counts[p.Sample(logits)]++;
  EXPECT_EQ(counts.size(), 2u);
  // Renormalised over the two: P(0) = e/(e+1) = 0.731.
  EXPECT_NEAR(counts[0] / 2000.0, 0.731, 0.04);
}

TEST(SamplingTest, ValidationNamesTheField) {
  SamplingOptions o;
  o.temperature = std::nanf("");
  EXPECT_NE(ValidateSampling(o).message().find("sampling.temperature"),
            std::string::npos);
  o.temperature = -0.5f;
  EXPECT_EQ(ValidateSampling(o).code(), absl::StatusCode::kInvalidArgument);
  o.temperature = 0.7f;
  o.top_p = 0.0f;
  EXPECT_NE(ValidateSampling(o).message().find("sampling.top_p"),
            std::string::npos);
  o.top_p = 1.5f;
  EXPECT_EQ(ValidateSampling(o).code(), absl::StatusCode::kInvalidArgument);
  o.top_p = 1.0f;
  o.top_k = -3;
  EXPECT_NE(ValidateSampling(o).message().find("sampling.top_k"),
            std::string::npos);
  o.top_k = 5;
  EXPECT_TRUE(ValidateSampling(o).ok());
}

}  // namespace
}  // namespace coldcompress
