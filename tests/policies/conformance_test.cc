// The conformance suite: every registered policy (and its analysis mode) and
// every prompt compressor, the built-ins and the tutorial plugin's
// (examples/plugins/keep_it_odd, through the plugin adapters), on random
// inputs, must keep the invariants of
// docs/policies.md: capacity never exceeded, sinks and protected recent tokens
// never evicted, empty slots filled before any eviction, determinism for a
// fixed seed, statistics consistent with the positions held.
#include <gtest/gtest.h>

#include <set>

#include "policies/cache_layer.h"
#include "policies/registry.h"
#include "policies/scoring.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

constexpr int64_t kHeads = 2, kQueryHeads = 4, kDim = 8;
constexpr int64_t kSinks = 2, kRecent = 3;

const PolicyRegistry& Registry() {
  return testing::RegistryWithExamplePlugins();
}

const TokenClasses& Classes() {
  static const TokenClasses* classes = [] {
    auto* c = new TokenClasses();
    c->special_sequences = {{1}, {2}, {11, 12}};
    c->punctuation.assign(64, false);
    for (int id = 3; id < 10; ++id) c->punctuation[id] = true;
    return c;
  }();
  return *classes;
}

PolicySpec Spec(uint64_t seed) {
  PolicySpec spec;
  spec.global_tokens = kSinks;
  spec.recent_window = kRecent;
  spec.seed = seed;
  spec.min_recovery_frac = 0.5;
  spec.hybrid_strategies = {{"special_punc_heavy_hitter_window", 0.25, 0.25},
                            {"window", 0.3, std::nullopt},
                            {"full", std::nullopt, std::nullopt}};
  return spec;
}

struct Scenario {
  std::string strategy;
  std::string compressor;
  int64_t prefill;  // S0
  int64_t total;    // T
  int64_t capacity;
};

std::string Name(const Scenario& s) {
  return s.strategy + "/" + s.compressor + "/S" + std::to_string(s.prefill) +
         "/T" + std::to_string(s.total) + "/L" + std::to_string(s.capacity);
}

// Every (policy or debug_policy, compatible compressor) with a long prompt
// (compressed at prefill) and a short one (empty slots first).
std::vector<Scenario> Scenarios() {
  std::vector<Scenario> out;
  for (const PolicyInfo* p : Registry().Policies()) {
    for (const std::string& strategy :
         {p->name, std::string("debug_") + p->name}) {
      if (p->requires_full_length) {
        out.push_back({strategy, p->default_compressor, 30, 60, 60});
        continue;
      }
      for (const CompressorInfo* c : Registry().Compressors()) {
        if (c->head_specific && !p->head_specific) continue;
        if (c->compresses) out.push_back({strategy, c->name, 40, 70, 24});
        out.push_back({strategy, c->name, 6, 40, 24});
      }
    }
  }
  return out;
}

struct Trace {
  std::vector<std::vector<std::vector<int64_t>>>
      positions;  // [step][head] after each step
  std::vector<double> ratios;
};

Trace Drive(const Scenario& s, uint64_t seed, bool check) {
  LayerPlan plan{s.strategy, s.compressor, s.capacity, kRecent};
  const PolicySpec spec = Spec(seed);
  CacheLayerOptions o;
  o.num_heads = kHeads;
  o.head_dim = kDim;
  o.max_seq_len = s.total;
  o.tokens = &Classes();
  auto layer = CacheLayer::Create(Registry(), plan, spec, o);
  EXPECT_TRUE(layer.ok()) << layer.status();
  at::manual_seed(static_cast<int64_t>(seed));
  const at::Tensor q = at::randn({kQueryHeads, s.total, kDim});
  const at::Tensor k = at::randn({kHeads, s.total, kDim}) * 2;
  const at::Tensor v = at::randn({kHeads, s.total, kDim});
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < s.total; ++i)
    tokens.push_back(static_cast<int32_t>((i * 7 + 1) % 64));
  const bool whole = Registry().FindPolicy(s.strategy)->requires_full_length;
  const bool hybrid = PolicyRegistry::Analyzed(s.strategy) == "hybrid";
  Trace run;
  // `last`: the newest position fed; `recent`: from which position recent
  // tokens must be held (prefill keeps the last r, a decode step at p
  // protects p - r..p - 1 and adds p).
  auto observe = [&](int64_t last, int64_t recent) {
    std::vector<std::vector<int64_t>> heads;
    for (int64_t h = 0; h < kHeads; ++h) {
      const std::vector<int64_t> pos = (*layer)->HeadPositions(h);
      heads.push_back(pos);
      if (!check) continue;
      const std::string where = Name(s) + " head " + std::to_string(h) +
                                " after " + std::to_string(last);
      EXPECT_LE(static_cast<int64_t>(pos.size()), (*layer)->plan().capacity)
          << where;
      const std::set<int64_t> held(pos.begin(), pos.end());
      EXPECT_EQ(held.size(), pos.size()) << where;
      EXPECT_GE(*held.begin(), 0) << where;
      EXPECT_LE(*held.rbegin(), last) << where;
      for (int64_t g = 0; g < kSinks; ++g)
        EXPECT_TRUE(held.count(g)) << where << " sink " << g;
      if (!hybrid) {
        for (int64_t p = std::max<int64_t>(0, recent); p <= last; ++p) {
          EXPECT_TRUE(held.count(p)) << where << " recent " << p;
        }
        // Nothing is evicted while there is room.
        if (last < s.capacity && !whole) {
          EXPECT_EQ(static_cast<int64_t>(pos.size()), last + 1) << where;
        }
      }
      if (whole && !hybrid)
        EXPECT_EQ(static_cast<int64_t>(pos.size()), last + 1) << where;
    }
    run.positions.push_back(heads);
    // Statistics agree with the positions: mean over heads of 1 - kept / n.
    const int64_t n = last + 1;
    double expected = 0;
    for (const auto& pos : heads)
      expected += 1.0 - static_cast<double>(pos.size()) / n;
    const double ratio = (*layer)->CompressionRatio(n + 1);
    if (check) EXPECT_NEAR(ratio, expected / kHeads, 1e-12) << Name(s);
    run.ratios.push_back(ratio);
  };
  const int64_t s0 = s.prefill;
  (*layer)->Prefill(q.narrow(1, 0, s0), k.narrow(1, 0, s0), v.narrow(1, 0, s0),
                    std::vector<int32_t>(tokens.begin(), tokens.begin() + s0));
  observe(s0 - 1, s0 - kRecent);
  for (int64_t p = s0; p < s.total; ++p) {
    const at::Tensor out = (*layer)->Decode(
        q.narrow(1, p, 1), k.narrow(1, p, 1), v.narrow(1, p, 1), p, tokens[p]);
    if (check) EXPECT_TRUE(out.isfinite().all().item<bool>()) << Name(s);
    observe(p, p - kRecent);
  }
  return run;
}

void PrintTo(const Scenario& s, std::ostream* os) { *os << Name(s); }

class PolicyConformanceTest : public ::testing::TestWithParam<Scenario> {};

TEST_P(PolicyConformanceTest, KeepsTheInvariants) {
  const Trace first = Drive(GetParam(), 17, /*check=*/true);
  // Deterministic for a fixed seed.
  const Trace again = Drive(GetParam(), 17, /*check=*/false);
  EXPECT_EQ(first.positions, again.positions);
  EXPECT_EQ(first.ratios, again.ratios);
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, PolicyConformanceTest,
                         ::testing::ValuesIn(Scenarios()),
                         [](const ::testing::TestParamInfo<Scenario>& info) {
                           std::string name = Name(info.param);
                           for (char& c : name) {
                             if (!isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           }
                           return name;
                         });

TEST(PolicyConformanceTest, CoversEveryRegisteredPolicyAndCompressor) {
  std::set<std::string> policies, compressors;
  for (const Scenario& s : Scenarios()) {
    policies.insert(s.strategy);
    compressors.insert(s.compressor);
  }
  EXPECT_EQ(policies.size(), 2 * Registry().Policies().size());
  EXPECT_EQ(compressors.size(), Registry().Compressors().size());
}

// Every compressor: exactly L positions per row, ascending and unique, sinks
// and the recent tokens its rule protects kept; same seed, same choice.
class CompressorConformanceTest : public ::testing::TestWithParam<std::string> {
};

TEST_P(CompressorConformanceTest, KeepsCapacityPositionsWithSinks) {
  const CompressorInfo* info = Registry().FindCompressor(GetParam());
  ASSERT_NE(info, nullptr);
  const int64_t s = 50, l = 24;
  LayerPlan plan{"heavy_hitter", GetParam(), l, kRecent};
  const PolicySpec spec = Spec(3);
  PolicyContext context;
  context.layer = &plan;
  context.spec = &spec;
  context.num_heads = kHeads;
  context.head_dim = kDim;
  context.tokens = &Classes();
  at::manual_seed(9);
  const at::Tensor keys = at::randn({kHeads, s, kDim});
  const at::Tensor scores =
      at::randn({kHeads, s, s})
          .masked_fill(at::ones({s, s}, at::kBool).tril().logical_not(),
                       -INFINITY);
  PromptObservation o;
  o.prompt_length = s;
  o.capacity = l;
  o.keys = keys;
  const PromptAttention attention =
      PromptAttention::FromMatrix(at::softmax(scores, -1));
  o.attention = &attention;
  const CompressedPrompt a = info->create(context)->Compress(o);
  const CompressedPrompt b = info->create(context)->Compress(o);
  EXPECT_TRUE(at::equal(a.kept, b.kept));
  ASSERT_EQ(a.kept.size(1), l);
  EXPECT_EQ(a.kept.size(0), info->head_specific ? kHeads : 1);
  const int64_t recent =
      GetParam() == "heavy_hitter"
          ? 16
          : (GetParam() == "recent_global" ? l - kSinks : kRecent);
  for (int64_t h = 0; h < a.kept.size(0); ++h) {
    std::set<int64_t> held;
    for (int64_t i = 0; i < l; ++i) {
      const int64_t p = a.kept[h][i].item<int64_t>();
      if (i > 0) EXPECT_GT(p, a.kept[h][i - 1].item<int64_t>());
      EXPECT_TRUE(p >= 0 && p < s);
      held.insert(p);
    }
    for (int64_t g = 0; g < kSinks; ++g)
      EXPECT_TRUE(held.count(g)) << "sink " << g;
    for (int64_t p = s - recent; p < s; ++p)
      EXPECT_TRUE(held.count(p)) << "recent " << p;
  }
  if (a.history.defined()) EXPECT_EQ(a.history.sizes(), a.kept.sizes());
}

std::vector<std::string> CompressingCompressors() {
  std::vector<std::string> names;
  for (const CompressorInfo* c : Registry().Compressors()) {
    if (c->compresses) names.push_back(c->name);
  }
  return names;
}

INSTANTIATE_TEST_SUITE_P(AllCompressors, CompressorConformanceTest,
                         ::testing::ValuesIn(CompressingCompressors()));

TEST(CompressorConformanceTest, FullCompressorPassesThrough) {
  EXPECT_FALSE(Registry().FindCompressor("full")->compresses);
  EXPECT_EQ(CompressingCompressors().size(),
            Registry().Compressors().size() - 1);
}

}  // namespace
}  // namespace coldcompress
