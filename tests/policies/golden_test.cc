// Golden tests: hand-made inputs with the kept positions worked out by hand
// from docs/policies.md.
#include <gtest/gtest.h>

#include "policies/cache_layer.h"
#include "policies/registry.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

const PolicyRegistry& Registry() {
  return testing::RegistryWithExamplePlugins();
}

const TokenClasses kNoTokens;

// A policy alone, driven through its interface with hand-made attention.
struct PolicyUnderTest {
  LayerPlan plan;
  PolicySpec spec;
  std::unique_ptr<Policy> policy;
  KVCache cache;

  PolicyUnderTest(const std::string& name, int64_t heads, int64_t capacity,
                  PolicySpec s, int64_t recent)
      : plan{name, name, capacity, recent}, spec(std::move(s)), cache([&] {
          KVCacheOptions o;
          o.num_heads = heads;
          o.head_dim = 4;
          o.capacity = capacity;
          return o;
        }()) {
    PolicyContext c;
    c.layer = &plan;
    c.spec = &spec;
    c.num_heads = heads;
    c.head_dim = 4;
    c.tokens = &kNoTokens;
    policy = Registry().FindPolicy(name)->create(c);
  }

  // The whole prompt in slots 0..S-1 with `attention` [H, S, S].
  void Prefill(const at::Tensor& attention,
               const std::vector<int32_t>& tokens) {
    const int64_t h = attention.size(0), s = attention.size(1);
    const at::Tensor kept =
        at::arange(s, at::kLong).unsqueeze(0).expand({h, s}).contiguous();
    const at::Tensor k = at::ones({h, s, 4});
    cache.Fill(k, k, kept);
    const PromptAttention reductions = PromptAttention::FromMatrix(attention);
    PrefillObservation o;
    o.cache = &cache;
    o.prompt_length = s;
    o.attention = &reductions;
    o.kept = kept;
    o.kept_keys = k;
    o.tokens = &tokens;
    policy->OnPrefill(o);
  }

  std::vector<int64_t> Step(int64_t position, const at::Tensor& probs_after) {
    std::vector<int64_t> slots = policy->ChooseSlots(cache, position, 0);
    const at::Tensor k = at::ones({cache.num_heads(), 4});
    cache.Write(slots, k, k, position);
    DecodeObservation o;
    o.cache = &cache;
    o.position = position;
    o.slots = &slots;
    o.key = k;
    o.probs = probs_after;
    policy->UpdateState(o);
    return slots;
  }
};

// docs/policies.md 3.5 worked by hand. g = 1, r = 1, unbounded history.
// Head 0 prefill attention column sums 1.8 1.2 0.9 0.1 over 4 3 2 1 queries:
// a = .45 .4 .45 .1; head 1: 1.75 1.65 .35 .25 -> .4375 .55 .175 .25.
// Step p=4: slot 0 is a sink, slot 3 (pos 3 >= p - r) recent; head 0 evicts
// slot 1 (.4 < .45), head 1 slot 2 (.175 < .55).
TEST(HeavyHitterGoldenTest, EvictsTheLowestMeanAttentionPerHead) {
  PolicySpec spec;
  spec.global_tokens = 1;
  PolicyUnderTest t("heavy_hitter", 2, 4, spec, 1);
  const at::Tensor attention = at::tensor({1.0,  0.0,  0.0,  0.0,  //
                                           0.5,  0.5,  0.0,  0.0,  //
                                           0.2,  0.6,  0.2,  0.0,  //
                                           0.1,  0.1,  0.7,  0.1,  //
                                           1.0,  0.0,  0.0,  0.0,  //
                                           0.2,  0.8,  0.0,  0.0,  //
                                           0.3,  0.6,  0.1,  0.0,  //
                                           0.25, 0.25, 0.25, 0.25},
                                          at::kFloat)
                                   .view({2, 4, 4});
  t.Prefill(attention, {1, 2, 3, 4});
  const at::Tensor p4 =
      at::tensor({0.1, 0.7, 0.1, 0.1, 0.2, 0.3, 0.4, 0.1}).view({2, 4});
  EXPECT_EQ(t.Step(4, p4), (std::vector<int64_t>{1, 2}));
  // Step p=5: pos 4 is recent. Head 0: slot 2 (.45+.1)/2 = .275, slot 3
  // (.1+.1)/2 = .1 -> slot 3. Head 1: slot 1 (.55+.3)/2 = .425, slot 3
  // (.25+.1)/2 = .175 -> slot 3.
  EXPECT_EQ(t.Step(5, p4), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(t.cache.SortedPositions(0), (std::vector<int64_t>{0, 2, 4, 5}));
  EXPECT_EQ(t.cache.SortedPositions(1), (std::vector<int64_t>{0, 1, 4, 5}));
}

// A prompt shorter than the cache, decoded past its capacity: a token
// written into an empty slot starts its history there, as an evicted slot's
// does (the reference resets whatever slot it picks). g = 0, r = 1, L = 4.
// Prefill (positions 0, 1): a = 1.5/2, .5/1 = .75 .5; every slot counts the
// prefill as a step.
// p=2 -> empty slot 2, reset; probs .3 .3 .4 0.
// p=3 -> empty slot 3, reset; probs .2 .2 .3 .3.
// num 1.25 1 .7 .3 over denom 3 3 2 1: p=4 evicts slot 1 (1/3 < .7/2; slot 3
// is recent). Without the reset slot 2 would have counted 3 steps
// (.7/3 < 1/3) and been evicted.
void ExpectEmptySlotStartsItsHistory(int64_t history_window_size) {
  PolicySpec spec;
  spec.global_tokens = 0;
  spec.history_window_size = history_window_size;
  PolicyUnderTest t("heavy_hitter", 1, 4, spec, 1);
  t.Prefill(at::tensor({1.0, 0.0, 0.5, 0.5}, at::kFloat).view({1, 2, 2}),
            {1, 2});
  EXPECT_EQ(t.Step(2, at::tensor({0.3f, 0.3f, 0.4f, 0.0f}).view({1, 4})),
            (std::vector<int64_t>{2}));
  EXPECT_EQ(t.Step(3, at::tensor({0.2f, 0.2f, 0.3f, 0.3f}).view({1, 4})),
            (std::vector<int64_t>{3}));
  EXPECT_EQ(t.Step(4, at::tensor({0.25f, 0.25f, 0.25f, 0.25f}).view({1, 4})),
            (std::vector<int64_t>{1}));
  EXPECT_EQ(t.cache.SortedPositions(0), (std::vector<int64_t>{0, 2, 3, 4}));
}

TEST(HeavyHitterGoldenTest, EmptySlotStartsItsHistory) {
  ExpectEmptySlotStartsItsHistory(1);  // unbounded: the host loops
}

TEST(HeavyHitterGoldenTest, EmptySlotStartsItsHistoryInAWindow) {
  ExpectEmptySlotStartsItsHistory(5);  // m = 5: the tensor operations
}

// With a window of m = 2 steps the older history drops out of the score.
TEST(HeavyHitterGoldenTest, WindowedHistoryForgets) {
  PolicySpec spec;
  spec.global_tokens = 1;
  spec.history_window_size = 2;
  PolicyUnderTest t("heavy_hitter", 1, 3, spec, 1);
  // Prefill: a = (1.5/3, 1.3/2, .2/1) = .5 .65 .2 for slots 0..2.
  t.Prefill(
      at::tensor({1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.8, 0.2}, at::kFloat)
          .view({1, 3, 3}),
      {1, 2, 3});
  // p=3: slot 0 sink, slot 2 recent -> slot 1 evicted regardless.
  EXPECT_EQ(t.Step(3, at::tensor({0.2f, 0.7f, 0.1f}).view({1, 3})),
            (std::vector<int64_t>{1}));
  // Slot 2 (pos 2): window holds .2 (prefill) and .1 -> .15; slot 1 (pos 3):
  // recent. p=4: slot 2 evicted.
  EXPECT_EQ(t.Step(4, at::tensor({0.1f, 0.1f, 0.8f}).view({1, 3})),
            (std::vector<int64_t>{2}));
}

// SnapKV (4.5): S = 24, obs = 16 (positions 8..23), g = 2, L = 20 leaves two
// of positions 2..7. The last 16 queries put .5 on position 5 and .5 on
// themselves; pooled (kernel 5) scores: 3, 4, 5 -> .1, 6 -> .10625,
// 7 -> .1125. Kept: 0 1 6 7 8..23.
TEST(SnapKVGoldenTest, KeepsThePooledTopPositions) {
  const int64_t s = 24;
  at::Tensor attention = at::zeros({1, s, s});
  for (int64_t i = 0; i < 8; ++i)
    attention[0][i].narrow(0, 0, i + 1).fill_(1.0 / (i + 1));
  for (int64_t i = 8; i < s; ++i) {
    attention[0][i][5] = 0.5;
    attention[0][i][i] = 0.5;
  }
  LayerPlan plan{"heavy_hitter", "heavy_hitter", 20, 10};
  PolicySpec spec;
  spec.global_tokens = 2;
  PolicyContext c;
  c.layer = &plan;
  c.spec = &spec;
  c.num_heads = 1;
  PromptObservation o;
  o.prompt_length = s;
  o.capacity = 20;
  o.keys = at::zeros({1, s, 4});
  const PromptAttention reductions = PromptAttention::FromMatrix(attention);
  o.attention = &reductions;
  const CompressedPrompt out =
      Registry().FindCompressor("heavy_hitter")->create(c)->Compress(o);
  std::vector<int64_t> expected = {0, 1, 6, 7};
  for (int64_t p = 8; p < s; ++p) expected.push_back(p);
  const at::Tensor kept = out.kept[0];
  EXPECT_EQ(std::vector<int64_t>(kept.data_ptr<int64_t>(),
                                 kept.data_ptr<int64_t>() + 20),
            expected);
  // History: colsum / (S - j) at the kept positions; position 7 is seen by
  // rows 7..23: 1/8 + 0 -> .125 / 17.
  EXPECT_NEAR(out.history[0][3].item<double>(), 0.125 / 17, 1e-7);
}

// Hybrid profiling (3.7): strategies [window (.25), full], min_recovery .9,
// S = 16, g = 1. Head 0 attends only to itself: the window recovers 100%.
// Head 1 attends uniformly: the window recovers far less than 90% -> full.
// The kept set uses T = L = 20: head 0 keeps the sink and the last
// int(.25 * 20) = 5 positions.
TEST(HybridGoldenTest, ProfilingPicksThePredictedStrategyPerHead) {
  const int64_t s = 16, l = 20;
  at::Tensor attention = at::zeros({2, s, s});
  for (int64_t i = 0; i < s; ++i) {
    attention[0][i][i] = 1.0;
    attention[1][i].narrow(0, 0, i + 1).fill_(1.0 / (i + 1));
  }
  PolicySpec spec;
  spec.global_tokens = 1;
  spec.min_recovery_frac = 0.9;
  spec.hybrid_strategies = {{"window", 0.25, std::nullopt},
                            {"full", std::nullopt, std::nullopt}};
  PolicyUnderTest t("hybrid", 2, l, spec, 1);
  std::vector<int32_t> tokens(s, 20);
  PromptObservation o;
  o.prompt_length = s;
  o.capacity = l;
  o.keys = at::zeros({2, s, 4});
  const PromptAttention reductions = PromptAttention::FromMatrix(attention);
  o.attention = &reductions;
  o.tokens = &tokens;
  const at::Tensor kept = t.policy->SelectPrompt(o);
  EXPECT_EQ(t.policy->Stats().at("hybrid/window"), 0.5);
  EXPECT_EQ(t.policy->Stats().at("hybrid/full"), 0.5);
  ASSERT_EQ(kept.size(1), s);  // head 1 keeps all 16
  const std::vector<int64_t> head0(kept[0].data_ptr<int64_t>(),
                                   kept[0].data_ptr<int64_t>() + 6);
  EXPECT_EQ(head0, (std::vector<int64_t>{0, 11, 12, 13, 14, 15}));
  EXPECT_EQ(kept[0][6].item<int64_t>(), -1);
  // Fill as the layer would, then decode p = 16: head 0 is at its budget
  // g + round(.25 * 20) = 6, evicts the oldest unprotected (position 11, slot
  // 1; the window protects positions > 16 - 5); head 1 (full) appends.
  const at::Tensor k = at::ones({2, s, 4});
  t.cache.Fill(k, k, kept);
  PrefillObservation p;
  p.cache = &t.cache;
  p.prompt_length = s;
  p.attention = &reductions;
  p.kept = kept;
  p.kept_keys = k;
  p.tokens = &tokens;
  t.policy->OnPrefill(p);
  EXPECT_EQ(t.policy->ChooseSlots(t.cache, 16, 20),
            (std::vector<int64_t>{1, 16}));
}

// A budget strategy without window or heavy hitters does not cache a token
// once its budget is reached (the head writes nothing: Fix).
TEST(HybridGoldenTest, SpecialOnlyHeadSkipsTokensOverBudget) {
  const int64_t s = 4;
  TokenClasses classes;
  classes.special_sequences = {{1}};
  classes.punctuation.assign(10, false);
  LayerPlan plan{"hybrid", "full", 8, 1};
  PolicySpec spec;
  spec.global_tokens = 1;
  spec.min_recovery_frac = 0.0;  // the first strategy always recovers enough
  spec.hybrid_strategies = {{"special", std::nullopt, std::nullopt}};
  PolicyContext c;
  c.layer = &plan;
  c.spec = &spec;
  c.num_heads = 1;
  c.tokens = &classes;
  std::unique_ptr<Policy> policy = Registry().FindPolicy("hybrid")->create(c);
  const std::vector<int32_t> tokens = {5, 1, 6, 1};  // special at 1 and 3
  at::Tensor attention = at::zeros({1, s, s});
  for (int64_t i = 0; i < s; ++i) attention[0][i][0] = 1.0;
  PromptObservation o;
  o.prompt_length = s;
  o.capacity = 8;
  const PromptAttention reductions = PromptAttention::FromMatrix(attention);
  o.attention = &reductions;
  o.tokens = &tokens;
  const at::Tensor kept = policy->SelectPrompt(o);  // sink 0, specials 1 and 3
  ASSERT_EQ(kept.size(1), 3);
  EXPECT_EQ(kept[0][0].item<int64_t>(), 0);
  EXPECT_EQ(kept[0][1].item<int64_t>(), 1);
  EXPECT_EQ(kept[0][2].item<int64_t>(), 3);
  KVCacheOptions ko;
  ko.num_heads = 1;
  ko.head_dim = 4;
  ko.capacity = 8;
  KVCache cache(ko);
  cache.Fill(at::ones({1, 3, 4}), at::ones({1, 3, 4}), kept);
  PrefillObservation p;
  p.cache = &cache;
  p.prompt_length = s;
  p.attention = &reductions;
  p.kept = kept;
  p.kept_keys = at::ones({1, 3, 4});
  p.tokens = &tokens;
  policy->OnPrefill(p);
  // Budget = g + special slots = 1 + 2 = 3 = occupancy: a plain token is
  // not cached, a special one is over budget too.
  EXPECT_EQ(policy->ChooseSlots(cache, 4, 7), (std::vector<int64_t>{-1}));
  EXPECT_EQ(policy->ChooseSlots(cache, 4, 1), (std::vector<int64_t>{-1}));
}

// Layers driven with q/k/v: the kept positions of the simple policies.
class LayerGoldenTest : public ::testing::Test {
 protected:
  std::unique_ptr<CacheLayer> Layer(const std::string& name, int64_t capacity,
                                    int64_t g, int64_t r) {
    spec_.global_tokens = g;
    spec_.recent_window = static_cast<double>(r);
    CacheLayerOptions o;
    o.num_heads = 2;
    o.head_dim = 4;
    o.max_seq_len = 64;
    auto layer = CacheLayer::Create(
        Registry(), LayerPlan{name, name, capacity, r}, spec_, o);
    EXPECT_TRUE(layer.ok()) << layer.status();
    return *std::move(layer);
  }
  // Feeds keys k [2, n, 4]: prefill the first `prefill`, decode the rest.
  void Feed(CacheLayer& layer, const at::Tensor& k, int64_t prefill) {
    const int64_t n = k.size(1);
    const at::Tensor q = at::zeros({4, n, 4});
    layer.Prefill(q.narrow(1, 0, prefill), k.narrow(1, 0, prefill),
                  k.narrow(1, 0, prefill), std::vector<int32_t>(prefill, 3));
    for (int64_t p = prefill; p < n; ++p) {
      layer.Decode(q.narrow(1, p, 1), k.narrow(1, p, 1), k.narrow(1, p, 1), p,
                   3);
    }
  }
  PolicySpec spec_;
};

// recent_global, L = 6, g = 2: a ring over slots 2..5.
TEST_F(LayerGoldenTest, RecentGlobalEvictsTheOldestAfterTheSinks) {
  auto layer = Layer("recent_global", 6, 2, 1);
  Feed(*layer, at::randn({2, 8, 4}), 6);
  EXPECT_EQ(layer->HeadPositions(0), (std::vector<int64_t>{0, 1, 4, 5, 6, 7}));
  EXPECT_EQ(layer->HeadPositions(1), (std::vector<int64_t>{0, 1, 4, 5, 6, 7}));
}

// keep_it_odd, L = 6, g = 1, r = 1: p = 6 evicts position 2 (the lowest even
// slot), p = 7 position 4.
TEST_F(LayerGoldenTest, KeepItOddEvictsEvenPositions) {
  auto layer = Layer("keep_it_odd", 6, 1, 1);
  Feed(*layer, at::randn({2, 8, 4}), 6);
  EXPECT_EQ(layer->HeadPositions(0), (std::vector<int64_t>{0, 1, 3, 5, 6, 7}));
}

// l2, L = 4, g = 1, r = 1: key norms per head [1 5 3 2] and [1 2 4 9]; at
// p = 4 head 0 evicts position 1 (norm 5), head 1 position 2 (norm 4; 9 is
// recent).
TEST_F(LayerGoldenTest, L2EvictsTheLargestNormPerHead) {
  auto layer = Layer("l2", 4, 1, 1);
  at::Tensor k = at::zeros({2, 5, 4});
  const float norms[2][5] = {{1, 5, 3, 2, 1}, {1, 2, 4, 9, 1}};
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t p = 0; p < 5; ++p) k[h][p][0] = norms[h][p];
  }
  Feed(*layer, k, 4);
  EXPECT_EQ(layer->HeadPositions(0), (std::vector<int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(layer->HeadPositions(1), (std::vector<int64_t>{0, 1, 3, 4}));
}

// keep_it_odd compressor, S = 10, L = 6, g = 1, r = 2: the sink, the last
// two, then the most recent odd positions 7, 5, 3.
TEST_F(LayerGoldenTest, KeepItOddCompressor) {
  auto layer = Layer("keep_it_odd", 6, 1, 2);
  Feed(*layer, at::randn({2, 10, 4}), 10);
  EXPECT_EQ(layer->HeadPositions(0), (std::vector<int64_t>{0, 3, 5, 7, 8, 9}));
}

// Analysis mode: the shadow does not change the real attention, and a shadow
// as large as the sequence loses nothing.
TEST(AnalysisGoldenTest, FullSizedShadowLosesNothing) {
  PolicySpec spec;
  spec.global_tokens = 1;
  CacheLayerOptions o;
  o.num_heads = 2;
  o.head_dim = 4;
  o.max_seq_len = 12;
  auto plain = *CacheLayer::Create(Registry(),
                                   LayerPlan{"full", "full", 12, 10}, spec, o);
  auto big = *CacheLayer::Create(
      Registry(), LayerPlan{"debug_heavy_hitter", "heavy_hitter", 12, 10}, spec,
      o);
  auto small = *CacheLayer::Create(
      Registry(), LayerPlan{"debug_heavy_hitter", "heavy_hitter", 8, 2}, spec,
      o);
  at::manual_seed(5);
  const at::Tensor q = at::randn({4, 12, 4}), k = at::randn({2, 12, 4}),
                   v = at::randn({2, 12, 4});
  const std::vector<int32_t> tokens(6, 3);
  for (auto* layer : {plain.get(), big.get(), small.get()}) {
    layer->Prefill(q.narrow(1, 0, 6), k.narrow(1, 0, 6), v.narrow(1, 0, 6),
                   tokens);
  }
  for (int64_t p = 6; p < 12; ++p) {
    auto step = [&](CacheLayer& l) {
      return l.Decode(q.narrow(1, p, 1), k.narrow(1, p, 1), v.narrow(1, p, 1),
                      p, 3);
    };
    const at::Tensor expected = step(*plain);
    EXPECT_TRUE(at::allclose(step(*big), expected, 1e-6, 1e-7));
    EXPECT_TRUE(at::allclose(step(*small), expected, 1e-6, 1e-7));
  }
  ASSERT_EQ(big->AttentionLosses()->size(), 6u);
  for (double loss : *big->AttentionLosses()) EXPECT_NEAR(loss, 0.0, 1e-6);
  // 8 slots for 12 tokens: from p = 8 on, evicted tokens had attention.
  double lost = 0;
  for (double loss : *small->AttentionLosses()) lost += loss;
  EXPECT_GT(lost, 1e-3);
  EXPECT_EQ(small->HeadPositions(0).size(), 8u);
  EXPECT_EQ(plain->HeadPositions(0).size(), 12u);
}

}  // namespace
}  // namespace coldcompress
