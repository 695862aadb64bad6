#include "policies/layer_plan.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "policies/registry.h"

namespace coldcompress {
namespace {

TEST(ResolveCacheLengthTest, FractionsRoundHalfEvenThenUpToEight) {
  EXPECT_EQ(*ResolveCacheLength(1.0, 100, "f"), 100);
  EXPECT_EQ(*ResolveCacheLength(0.5, 100, "f"), 56);    // 50 -> 56
  EXPECT_EQ(*ResolveCacheLength(0.25, 10, "f"), 8);     // round(2.5) = 2 -> 8
  EXPECT_EQ(*ResolveCacheLength(0.35, 10, "f"), 8);     // round(3.5) = 4 -> 8
  EXPECT_EQ(*ResolveCacheLength(0.1, 8192, "f"), 824);  // 819 -> 824
  EXPECT_EQ(*ResolveCacheLength(1.0, 13, "f"), 13);     // 16 capped at smax
}

TEST(ResolveCacheLengthTest, AbsoluteCountsCapAtSmax) {
  EXPECT_EQ(*ResolveCacheLength(64, 1000, "f"), 64);
  EXPECT_EQ(*ResolveCacheLength(65, 1000, "f"), 72);
  EXPECT_EQ(*ResolveCacheLength(5000, 1000, "f"), 1000);
}

TEST(ResolveCacheLengthTest, RejectsBadValuesNamingTheField) {
  for (double bad : {0.0, -1.0, 2.5}) {
    absl::StatusOr<int64_t> r =
        ResolveCacheLength(bad, 100, "max_cache_length");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("max_cache_length"), std::string::npos);
  }
}

// A positive fraction too small for the sequence (found by fuzzing: a cache
// of 0 tokens used to resolve) is refused; the smallest that rounds to one
// token gets the 8 every size rounds up to.
TEST(ResolveCacheLengthTest, FractionsThatRoundToNothingAreRefused) {
  for (const auto& [x, smax] : std::vector<std::pair<double, int64_t>>{
           {7.1175030496697264e-38, 16}, {0.01, 40}, {0.5, 1}}) {
    absl::StatusOr<int64_t> r = ResolveCacheLength(x, smax, "max_cache_length");
    ASSERT_FALSE(r.ok()) << x;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(),
              absl::StrCat("max_cache_length ", x, " of ", smax,
                           " tokens resolves to an empty cache; give a larger "
                           "fraction or a token count"));
  }
  EXPECT_EQ(*ResolveCacheLength(0.02, 40, "f"), 8);  // round(0.8) = 1 -> 8
  EXPECT_EQ(*ResolveCacheLength(0.5, 3, "f"), 3);    // round(1.5) = 2 -> 3
}

TEST(SpreadPatternTest, TileAndRepeat) {
  EXPECT_EQ(*SpreadPattern({"a", "b"}, "tile", 4, "strategy"),
            (std::vector<std::string>{"a", "a", "b", "b"}));
  EXPECT_EQ(*SpreadPattern({"a", "b"}, "repeat", 4, "strategy"),
            (std::vector<std::string>{"a", "b", "a", "b"}));
}

TEST(SpreadPatternTest, PatternMustDivideLayerCount) {
  absl::StatusOr<std::vector<std::string>> r =
      SpreadPattern({"a", "b", "c"}, "tile", 32, "strategy");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("32"), std::string::npos);
  EXPECT_NE(r.status().message().find("strategy"), std::string::npos);
}

TEST(ResolveLayerLengthsTest, PyramidWorkedExample) {
  // docs/policies.md 2.2: C=1024, N=32, Smax=8192.
  const std::vector<int64_t> expected = {
      2036, 1916, 1852, 1796, 1732, 1668, 1604, 1548, 1484, 1420, 1364,
      1300, 1236, 1172, 1116, 1052, 988,  932,  868,  804,  740,  684,
      620,  556,  500,  436,  372,  308,  256,  256,  256,  256};
  EXPECT_EQ(*ResolveLayerLengths({1024}, "pyramid", 32, 8192), expected);
  std::vector<int64_t> funnel(expected.rbegin(), expected.rend());
  EXPECT_EQ(*ResolveLayerLengths({1024}, "funnel", 32, 8192), funnel);
}

TEST(ResolveLayerLengthsTest, TileOfFractions) {
  EXPECT_EQ(*ResolveLayerLengths({0.25, 1.0}, "repeat", 4, 100),
            (std::vector<int64_t>{32, 100, 32, 100}));
}

TEST(ResolveRecentWindowTest, FractionOrTokens) {
  EXPECT_EQ(ResolveRecentWindow(0.1, 100), 10);
  EXPECT_EQ(ResolveRecentWindow(0.001, 100), 1);
  EXPECT_EQ(ResolveRecentWindow(10, 100), 10);
  EXPECT_EQ(ResolveRecentWindow(500, 100), 100);
  EXPECT_EQ(ResolveRecentWindow(1, 100), 1);  // Fix: 1 is one token
}

TEST(PrefillLengthTest, Section5) {
  PolicySpec spec;
  EXPECT_EQ(PrefillLength(10, 64, spec), 10);
  EXPECT_EQ(PrefillLength(64, 64, spec), 63);  // S == Lmin
  EXPECT_EQ(PrefillLength(100, 64, spec), 100);
  spec.feed_long_prompts = true;
  EXPECT_EQ(PrefillLength(100, 64, spec), 63);
  EXPECT_EQ(PrefillLength(63, 64, spec), 63);
  spec.feed_long_prompts = false;
  spec.decode_first_token = true;
  EXPECT_EQ(PrefillLength(10, 64, spec), 9);
  EXPECT_EQ(PrefillLength(1, 64, spec), 1);
}

TEST(ResolveCachePlanTest, FullPolicyWholeSequence) {
  PolicyRegistry registry;
  RegisterBuiltins(registry);
  PolicySpec spec;
  absl::StatusOr<CachePlan> plan = ResolveCachePlan(spec, 4, 37, registry);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->layers.size(), 4u);
  for (const LayerPlan& l : plan->layers) {
    EXPECT_EQ(l.strategy, "full");
    EXPECT_EQ(l.prompt_compression, "full");
    EXPECT_EQ(l.capacity, 37);
    EXPECT_EQ(l.recent_window, 10);
  }
  EXPECT_EQ(plan->MinCapacity(), 37);
}

TEST(ResolveCachePlanTest, UnknownStrategyListsKnownOnes) {
  PolicyRegistry registry;
  RegisterBuiltins(registry);
  PolicySpec spec;
  spec.strategy = {"no_such_policy"};
  spec.prompt_compression = {"full"};
  absl::StatusOr<CachePlan> plan = ResolveCachePlan(spec, 4, 37, registry);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find("no_such_policy"), std::string::npos);
  EXPECT_NE(plan.status().message().find("known strategies: full"),
            std::string::npos);
}

TEST(ResolveCachePlanTest, FullNeedsTheWholeSequence) {
  PolicyRegistry registry;
  RegisterBuiltins(registry);
  PolicySpec spec;
  spec.max_cache_length = {0.5};
  absl::StatusOr<CachePlan> plan = ResolveCachePlan(spec, 2, 100, registry);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("max_cache_length"),
            std::string::npos);
}

TEST(RegistryTest, FullCompressorRejectsLongPrompts) {
  PolicyRegistry registry;
  RegisterBuiltins(registry);
  CachePlan plan;
  plan.layers.push_back(LayerPlan{"full", "full", 16, 10});
  EXPECT_TRUE(registry.CheckPromptFits(plan, 16).ok());
  absl::Status st = registry.CheckPromptFits(plan, 17);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("prompt_compression"), std::string::npos);
}

TEST(RegistryTest, DuplicateNamesAreRejected) {
  PolicyRegistry registry;
  RegisterBuiltins(registry);
  PolicyInfo again;
  again.name = "full";
  again.create = [](const PolicyContext&) { return std::unique_ptr<Policy>(); };
  EXPECT_EQ(registry.RegisterPolicy(again).code(),
            absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace coldcompress
