// Fixed-seed parity of every deterministic policy and compressor with an
// independent float64 implementation of docs/policies.md in Python
// (tests/reference/policy_reference.py): the same q/k/v through one layer,
// the same positions held after prefill and after every decode step, the
// same attention losses in analysis mode.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "policies/cache_layer.h"
#include "policies/registry.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

using nlohmann::json;

constexpr int64_t kHeads = 2, kQueryHeads = 4, kDim = 8, kTotal = 64;
constexpr int64_t kSinks = 2, kRecent = 3;

struct Case {
  std::string strategy, compressor;
  int64_t prefill, capacity;
  int64_t window = 1;  // history_window_size
  bool threshold = false;
};

std::string Name(const Case& c) {
  return c.strategy + "/" + c.compressor + "/S" + std::to_string(c.prefill) +
         "/L" + std::to_string(c.capacity) + "/m" + std::to_string(c.window) +
         (c.threshold ? "/threshold" : "");
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (const std::string prefix : {"", "debug_"}) {
    cases.push_back({prefix + "full", "full", 20, kTotal});
    cases.push_back({prefix + "hybrid", "full", 30, kTotal});
    for (const std::string s :
         {"recent_global", "keep_it_odd", "l2", "heavy_hitter"}) {
      const bool head_specific = s == "l2" || s == "heavy_hitter";
      for (const std::string c :
           {"recent_global", "keep_it_odd", "l2", "heavy_hitter", "full"}) {
        if (!head_specific && (c == "l2" || c == "heavy_hitter")) continue;
        if (c != "full") cases.push_back({prefix + s, c, 40, 24});
      }
      cases.push_back({prefix + s, "full", 8, 24});
    }
    for (int64_t m : {1, 5}) {
      for (bool threshold : {false, true}) {
        cases.push_back(
            {prefix + "heavy_hitter", "heavy_hitter", 40, 24, m, threshold});
      }
    }
  }
  return cases;
}

std::vector<HybridStrategySpec> HybridStrategies() {
  return {{"special_punc", std::nullopt, std::nullopt},
          {"special_punc_heavy_hitter_window", 0.2, 0.15},
          {"window_heavy_hitter", 0.25, 0.25},
          {"full", std::nullopt, std::nullopt}};
}

TokenClasses Classes() {
  TokenClasses c;
  c.special_sequences = {{1}, {2}, {40, 41}};
  c.punctuation.assign(64, false);
  for (int id : {3, 4, 5, 6}) c.punctuation[id] = true;
  return c;
}

std::vector<int32_t> Tokens(int64_t seed) {
  std::vector<int32_t> t = {1};
  uint64_t x = static_cast<uint64_t>(seed) * 2654435761u + 7;
  for (int64_t i = 1; i < kTotal; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const int r = static_cast<int>((x >> 33) % 20);
    t.push_back(r < 4 ? 3 + r : (r == 4 ? 40 : (r == 5 ? 41 : 10 + r)));
  }
  return t;
}

json Nested(const at::Tensor& t) {
  // [A, B, C] double -> nested lists
  json out = json::array();
  for (int64_t a = 0; a < t.size(0); ++a) {
    json rows = json::array();
    for (int64_t b = 0; b < t.size(1); ++b) {
      const at::Tensor row = t[a][b].contiguous();
      rows.push_back(std::vector<double>(row.data_ptr<double>(),
                                         row.data_ptr<double>() + t.size(2)));
    }
    out.push_back(rows);
  }
  return out;
}

struct Outcome {
  std::vector<std::vector<std::vector<int64_t>>> positions;
  std::vector<double> losses;
};

Outcome RunCpp(const Case& c, const at::Tensor& q, const at::Tensor& k,
               const at::Tensor& v, const std::vector<int32_t>& tokens,
               const TokenClasses& classes) {
  const PolicyRegistry* registry = &testing::RegistryWithExamplePlugins();
  PolicySpec spec;
  spec.global_tokens = kSinks;
  spec.history_window_size = c.window;
  spec.attn_thresholding = c.threshold;
  spec.min_recovery_frac = 0.8;
  spec.hybrid_strategies = HybridStrategies();
  CacheLayerOptions o;
  o.num_heads = kHeads;
  o.head_dim = kDim;
  o.dtype = at::kDouble;
  o.max_seq_len = kTotal;
  o.tokens = &classes;
  auto layer = CacheLayer::Create(
      *registry, LayerPlan{c.strategy, c.compressor, c.capacity, kRecent}, spec,
      o);
  EXPECT_TRUE(layer.ok()) << layer.status();
  Outcome out;
  auto record = [&] {
    std::vector<std::vector<int64_t>> heads;
    for (int64_t h = 0; h < kHeads; ++h)
      heads.push_back((*layer)->HeadPositions(h));
    out.positions.push_back(heads);
  };
  const int64_t s0 = c.prefill;
  (*layer)->Prefill(q.narrow(1, 0, s0), k.narrow(1, 0, s0), v.narrow(1, 0, s0),
                    std::vector<int32_t>(tokens.begin(), tokens.begin() + s0));
  record();
  for (int64_t p = s0; p < kTotal; ++p) {
    (*layer)->Decode(q.narrow(1, p, 1), k.narrow(1, p, 1), v.narrow(1, p, 1), p,
                     tokens[p]);
    record();
  }
  if (const std::vector<double>* losses = (*layer)->AttentionLosses())
    out.losses = *losses;
  return out;
}

TEST(PolicyParityTest, MatchesTheIndependentReference) {
  const TokenClasses classes = Classes();
  const std::vector<Case> cases = Cases();
  json scenarios = json::array();
  std::vector<Outcome> ours;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    at::manual_seed(static_cast<int64_t>(100 + i));
    const at::Tensor q =
        at::randn({kQueryHeads, kTotal, kDim}, at::kDouble) * 1.5;
    const at::Tensor k = at::randn({kHeads, kTotal, kDim}, at::kDouble);
    const at::Tensor v = at::randn({kHeads, kTotal, kDim}, at::kDouble);
    const std::vector<int32_t> tokens = Tokens(static_cast<int64_t>(i));
    ours.push_back(RunCpp(c, q, k, v, tokens, classes));
    json hybrid = json::array();
    for (const HybridStrategySpec& h : HybridStrategies()) {
      hybrid.push_back(
          {{"strategy", h.strategy},
           {"recent_window", h.recent_window ? json(*h.recent_window) : json()},
           {"heavy_hitter_frac",
            h.heavy_hitter_frac ? json(*h.heavy_hitter_frac) : json()}});
    }
    scenarios.push_back({{"name", Name(c)},
                         {"strategy", c.strategy},
                         {"compressor", c.compressor},
                         {"capacity", c.capacity},
                         {"global_tokens", kSinks},
                         {"recent_window", kRecent},
                         {"history_window_size", c.window},
                         {"attn_thresholding", c.threshold},
                         {"min_recovery_frac", 0.8},
                         {"hybrid_strategies", hybrid},
                         {"special_sequences", classes.special_sequences},
                         {"punctuation_ids", std::vector<int>{3, 4, 5, 6}},
                         {"tokens", tokens},
                         {"prefill", c.prefill},
                         {"q", Nested(q)},
                         {"k", Nested(k)},
                         {"v", Nested(v)}});
  }
  const auto tmp = std::filesystem::temp_directory_path();
  const std::string in = (tmp / "cc_policy_scenarios.json").string();
  const std::string out = (tmp / "cc_policy_results.json").string();
  std::ofstream(in) << scenarios.dump();
  const std::string cmd = "/usr/bin/python3 " + testing::SourceDir() +
                          "/tests/reference/policy_reference.py --in " + in +
                          " --out " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream result_file(out);
  const json results = json::parse(result_file);
  ASSERT_EQ(results.size(), cases.size());
  int matched = 0;
  double max_loss_diff = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto expected =
        results[i]["positions"]
            .get<std::vector<std::vector<std::vector<int64_t>>>>();
    EXPECT_EQ(ours[i].positions.size(), expected.size()) << Name(cases[i]);
    bool same = ours[i].positions.size() == expected.size();
    for (size_t step = 0; same && step < expected.size(); ++step) {
      if (ours[i].positions[step] != expected[step]) {
        ADD_FAILURE() << Name(cases[i]) << ": first difference after step "
                      << step;
        same = false;
      }
    }
    const auto losses = results[i]["losses"].get<std::vector<double>>();
    EXPECT_EQ(ours[i].losses.size(), losses.size()) << Name(cases[i]);
    for (size_t t = 0; t < std::min(losses.size(), ours[i].losses.size());
         ++t) {
      max_loss_diff =
          std::max(max_loss_diff, std::abs(ours[i].losses[t] - losses[t]));
      EXPECT_NEAR(ours[i].losses[t], losses[t], 1e-9)
          << Name(cases[i]) << " step " << t;
    }
    matched += same;
  }
  std::printf(
      "policy parity: %d/%zu scenarios hold the same positions at every step; "
      "max attention-loss difference %.3g\n",
      matched, cases.size(), max_loss_diff);
}

}  // namespace
}  // namespace coldcompress
