// Cache policies end to end over gRPC on a tiny checkpoint: every preset,
// statistics against GetSession's positions, analysis mode, memory
// accounting and validation messages.
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "tests/testing/fixtures.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

using testing::FixtureDir;
using testing::IdsRequest;
using testing::ServerHarness;

std::vector<int32_t> Prompt(int32_t n) {
  std::vector<int32_t> ids = {1};
  for (int32_t i = 1; i < n; ++i) ids.push_back(3 + (i * 53) % 500);
  return ids;
}

class PolicyServiceTest : public testing::SharedServerTest {
 protected:
  static v1::SessionInfo Session(const std::string& id) {
    grpc::ClientContext ctx;
    v1::GetSessionRequest get;
    get.set_session_id(id);
    get.set_include_positions(true);
    v1::SessionInfo info;
    grpc::Status s = harness_->stub().GetSession(&ctx, get, &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return info;
  }
  static uint64_t Close(const std::string& id) {
    grpc::ClientContext ctx;
    v1::CloseSessionRequest close;
    close.set_session_id(id);
    v1::CloseSessionResponse closed;
    EXPECT_TRUE(harness_->stub().CloseSession(&ctx, close, &closed).ok());
    return closed.freed_bytes();
  }
  static v1::ServerInfo Info() {
    grpc::ClientContext ctx;
    v1::ServerInfo info;
    EXPECT_TRUE(harness_->stub()
                    .GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info)
                    .ok());
    return info;
  }
  static std::vector<std::string> Presets() {
    grpc::ClientContext ctx;
    v1::ListPoliciesResponse list;
    EXPECT_TRUE(harness_->stub()
                    .ListPolicies(&ctx, v1::ListPoliciesRequest(), &list)
                    .ok());
    std::vector<std::string> names;
    for (const v1::Preset& p : list.presets()) names.push_back(p.name());
    return names;
  }
};

TEST_F(PolicyServiceTest, ListPoliciesHasEveryPolicyPresetAndParameters) {
  grpc::ClientContext ctx;
  v1::ListPoliciesResponse list;
  ASSERT_TRUE(harness_->stub()
                  .ListPolicies(&ctx, v1::ListPoliciesRequest(), &list)
                  .ok());
  std::map<std::string, v1::PolicyDescription> by_name;
  for (const auto& p : list.policies()) by_name[p.name()] = p;
  for (const char* name :
       {"full", "recent_global", "random", "l2", "heavy_hitter", "hybrid",
        "debug_heavy_hitter", "debug_hybrid"}) {
    EXPECT_TRUE(by_name.count(name)) << name;
  }
  EXPECT_TRUE(by_name["heavy_hitter"].head_specific());
  EXPECT_TRUE(by_name["heavy_hitter"].needs_attention());
  EXPECT_FALSE(by_name["recent_global"].head_specific());
  std::map<std::string, std::string> defaults;
  for (const auto& param : by_name["heavy_hitter"].parameters()) {
    defaults[param.name()] = param.default_value();
  }
  EXPECT_EQ(defaults["global_tokens"], "4");
  EXPECT_EQ(defaults["history_window_size"], "1");
  const std::set<std::string> presets = [] {
    auto v = Presets();
    return std::set<std::string>(v.begin(), v.end());
  }();
  for (const char* name :
       {"full", "recent_global", "random", "l2", "heavy_hitter",
        "heavy_hitter_pyramid", "heavy_hitter_funnel", "debug_heavy_hitter",
        "hybrid", "fastgen", "local_global"}) {
    EXPECT_TRUE(presets.count(name)) << name;
  }
  for (const auto& p : list.presets()) {
    if (p.name() != "local_global") continue;
    EXPECT_EQ(p.policy().strategy_size(), 2);
    EXPECT_EQ(p.policy().strategy_pattern(), "repeat");
    EXPECT_NE(p.yaml().find("cache_strategy"), std::string::npos);
  }
}

// Every preset: Generate streams; the final statistics match the positions
// GetSession reports (ratio = 1 - kept / (tokens - 1), per layer and head).
TEST_F(PolicyServiceTest, EveryPresetStreamsWithConsistentStatistics) {
  const int64_t before = static_cast<int64_t>(Info().cache_bytes());
  for (const std::string& preset : Presets()) {
    v1::GenerateRequest r = IdsRequest(Prompt(40), 24);
    r.set_session_id("preset-" + preset);
    r.mutable_cache()->set_config_name(preset);
    const bool whole =
        preset == "full" || preset == "hybrid" || preset == "fastgen";
    const bool pyramid = preset.find("pyramid") != std::string::npos ||
                         preset.find("funnel") != std::string::npos;
    // Pyramid and funnel spread one length C: 24 over 2 layers gives
    // lo = 24/14 -> 8 and hi = 48; 8 is raised to min(256, C) = 24 and the
    // 16 tokens of overflow come off 48 -> [32, 24] (pyramid).
    if (pyramid) r.mutable_cache()->add_max_cache_length(24);
    if (!whole && !pyramid && preset != "local_global") {
      r.mutable_cache()->add_max_cache_length(0.5);
    }
    ServerHarness::Stream s = harness_->Generate(r);
    ASSERT_TRUE(s.status.ok()) << preset << ": " << s.status.error_message();
    EXPECT_EQ(s.tokens.size(), 24u) << preset;
    EXPECT_EQ(s.final.finish_reason(), "length");
    const v1::CacheStats& stats = s.final.stats();
    const v1::SessionInfo info = Session(r.session_id());
    ASSERT_EQ(info.layers_size(), 2) << preset;
    const double n = static_cast<double>(info.tokens_seen() - 1);
    EXPECT_EQ(info.tokens_seen(), 64u);
    double mean = 0;
    for (int l = 0; l < info.layers_size(); ++l) {
      const v1::LayerInfo& layer = info.layers(l);
      ASSERT_EQ(layer.heads_size(), 2);
      double expected = 0;
      for (const auto& head : layer.heads()) {
        EXPECT_LE(static_cast<uint32_t>(head.positions_size()),
                  layer.capacity())
            << preset;
        expected += 1.0 - head.positions_size() / n;
      }
      expected /= layer.heads_size();
      EXPECT_NEAR(stats.layer_compression_ratio(l), expected, 1e-12)
          << preset << " layer " << l;
      mean += expected / info.layers_size();
    }
    EXPECT_NEAR(stats.compression_ratio(), mean, 1e-12) << preset;
    EXPECT_EQ(info.stats().cache_bytes(), stats.cache_bytes()) << preset;
    if (whole && preset == "full") EXPECT_EQ(stats.compression_ratio(), 0.0);
    if (!whole) EXPECT_GT(stats.compression_ratio(), 0.0) << preset;
    if (preset == "hybrid" || preset == "fastgen") {
      double fractions = 0;
      for (const auto& [key, value] : stats.extra()) {
        if (key.rfind("hybrid/", 0) == 0 &&
            key.find("/layer_") == std::string::npos) {
          fractions += value;
        }
      }
      EXPECT_NEAR(fractions, 1.0, 1e-9) << preset;
    }
    if (preset == "local_global") {
      EXPECT_EQ(info.layers(0).strategy(), "recent_global");
      EXPECT_EQ(info.layers(1).strategy(), "full");
      EXPECT_EQ(info.layers(0).capacity(), 16u);  // round(64 * .25) = 16
      EXPECT_EQ(info.layers(1).capacity(), 64u);
    }
    if (preset == "heavy_hitter_pyramid") {
      EXPECT_EQ(info.layers(0).capacity(), 32u);
      EXPECT_EQ(info.layers(1).capacity(), 24u);
    }
    if (preset == "heavy_hitter_funnel") {
      EXPECT_EQ(info.layers(0).capacity(), 24u);
      EXPECT_EQ(info.layers(1).capacity(), 32u);
    }
  }
  // Every session's bytes are accounted, and closing returns them.
  const v1::ServerInfo open = Info();
  EXPECT_EQ(open.sessions(), Presets().size());
  EXPECT_GT(static_cast<int64_t>(open.cache_bytes()), before);
  int64_t freed = 0;
  for (const std::string& preset : Presets())
    freed += Close("preset-" + preset);
  EXPECT_GT(freed, 0);
  EXPECT_EQ(static_cast<int64_t>(Info().cache_bytes()), before);
}

// Analysis mode: generation is the full model's; the shadow's loss is 0 when
// it holds the whole sequence and > 0 when small.
TEST_F(PolicyServiceTest, DebugHeavyHitterMeasuresAttentionLoss) {
  v1::GenerateRequest plain = IdsRequest(Prompt(60), 20);
  ServerHarness::Stream full = harness_->Generate(plain);
  ASSERT_TRUE(full.status.ok());
  for (double length : {1.0, 0.3}) {
    v1::GenerateRequest r = plain;
    r.mutable_cache()->set_config_name("debug_heavy_hitter");
    r.mutable_cache()->add_max_cache_length(length);
    ServerHarness::Stream s = harness_->Generate(r);
    ASSERT_TRUE(s.status.ok()) << s.status.error_message();
    EXPECT_EQ(s.tokens, full.tokens)
        << "analysis must not change the generation";
    const v1::CacheStats& stats = s.final.stats();
    ASSERT_TRUE(stats.has_attention_loss());
    ASSERT_EQ(stats.layer_attention_loss_size(), 2);
    if (length == 1.0) {
      EXPECT_NEAR(stats.attention_loss(), 0.0, 1e-6);
      EXPECT_EQ(stats.compression_ratio(), 0.0);
    } else {
      EXPECT_GT(stats.attention_loss(), 1e-4);
      EXPECT_GT(stats.compression_ratio(), 0.3);
    }
  }
}

// attention_loss@k: the mean over the first k decode steps, reported once a
// request has made k steps.
TEST_F(PolicyServiceTest, AttentionLossAtStepCounts) {
  v1::GenerateRequest r = IdsRequest(Prompt(20), 520);
  r.mutable_cache()->set_config_name("debug_heavy_hitter");
  r.mutable_cache()->add_max_cache_length(32);
  ServerHarness::Stream s = harness_->Generate(r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  const auto& extra = s.final.stats().extra();
  ASSERT_TRUE(extra.count("attention_loss@500"));
  EXPECT_FALSE(extra.count("attention_loss@1000"));
  EXPECT_GT(extra.at("attention_loss@500"), 0.0);
  EXPECT_LT(extra.at("attention_loss@500"), 1.0);
  // 519 decode steps; the @500 mean and the overall mean differ only by the
  // last 19 steps' share.
  EXPECT_NEAR(extra.at("attention_loss@500"), s.final.stats().attention_loss(),
              0.1);
}

// A mix of an analysis layer and a full one: attention_loss@k averages the
// analysis layers alone, as attention_loss does (the full layer measures
// nothing; it once was read as if it had).
TEST_F(PolicyServiceTest, AttentionLossAtStepCountsInAMixOfLayers) {
  v1::GenerateRequest r = IdsRequest(Prompt(20), 520);
  r.mutable_cache()->add_strategy("debug_heavy_hitter");
  r.mutable_cache()->add_strategy("full");
  r.mutable_cache()->add_max_cache_length(32);
  r.mutable_cache()->add_max_cache_length(1.0);
  ServerHarness::Stream s = harness_->Generate(r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  const v1::CacheStats& stats = s.final.stats();
  ASSERT_EQ(stats.layer_attention_loss_size(), 1);
  EXPECT_EQ(stats.attention_loss(), stats.layer_attention_loss(0));
  const auto& extra = stats.extra();
  ASSERT_TRUE(extra.count("attention_loss@500"));
  EXPECT_GT(extra.at("attention_loss@500"), 0.0);
  EXPECT_NEAR(extra.at("attention_loss@500"), stats.attention_loss(), 0.1);
}

// Quantized storage: a 4-bit cache of a float32 model holds its K and V in
// an eighth of the bytes, and the ratio counts bits / 16.
TEST_F(PolicyServiceTest, QuantizedCacheReportsPackedBytes) {
  v1::GenerateRequest r = IdsRequest(Prompt(40), 8);
  r.set_session_id("q4");
  r.mutable_cache()->set_cache_bits(4);
  ServerHarness::Stream q4 = harness_->Generate(r);
  ASSERT_TRUE(q4.status.ok()) << q4.status.error_message();
  r.set_session_id("q0");
  r.mutable_cache()->clear_cache_bits();
  ServerHarness::Stream q0 = harness_->Generate(r);
  ASSERT_TRUE(q0.status.ok());
  // capacity 48 slots x 2 layers: fp32 K+V = 2*2*48*16*4 per layer; 4-bit
  // packs them into 2*48*(2*16/2) bytes plus 2*48*8 bytes of min/scale.
  const int64_t meta = 2 * (2 * 48 + 2 * 48 * 8);  // mask + positions, 2 layers
  EXPECT_EQ(static_cast<int64_t>(q0.final.stats().cache_bytes()),
            2 * (2 * 2 * 48 * 16 * 4) + meta);
  EXPECT_EQ(static_cast<int64_t>(q4.final.stats().cache_bytes()),
            2 * (2 * 48 * 16 + 2 * 48 * 8) + meta);
  EXPECT_NEAR(q4.final.stats().compression_ratio(), 1.0 - 4.0 / 16.0, 1e-12);
  EXPECT_EQ(q4.final.stats().full_cache_bytes(),
            q0.final.stats().full_cache_bytes());
  Close("q4");
  Close("q0");
}

// Each validation rule: the code and the field (and the allowed values or
// numbers) in the message.
TEST_F(PolicyServiceTest, BadPoliciesNameTheField) {
  struct Case {
    std::string name;
    std::function<void(v1::CachePolicy&)> edit;
    std::vector<std::string> expected;  // substrings of the message
  };
  const std::vector<Case> cases = {
      {"unknown strategy",
       [](auto& c) { c.add_strategy("h2o"); },
       {"strategy", "h2o", "heavy_hitter", "recent_global", "random"}},
      {"unknown compressor",
       [](auto& c) {
         c.add_strategy("l2");
         c.add_prompt_compression("snapkv");
       },
       {"prompt_compression", "snapkv", "known compressors"}},
      {"pattern does not divide",
       [](auto& c) {
         for (const char* s : {"full", "l2", "l2"}) c.add_strategy(s);
       },
       {"strategy", "layer count 2"}},
      {"length pattern does not divide",
       [](auto& c) {
         c.add_strategy("l2");
         for (double x : {0.5, 0.5, 0.5}) c.add_max_cache_length(x);
       },
       {"max_cache_length", "layer count 2"}},
      {"head-specific compressor behind head-constant cache",
       [](auto& c) {
         c.add_strategy("recent_global");
         c.add_prompt_compression("heavy_hitter");
         c.add_max_cache_length(0.5);
       },
       {"prompt_compression", "head-specific", "head-constant",
        "recent_global"}},
      {"sinks larger than the cache",
       [](auto& c) {
         c.add_strategy("recent_global");
         c.add_max_cache_length(8);
         c.set_global_tokens(20);
       },
       {"global_tokens (20)", "smallest layer cache (8 tokens"}},
      {"unknown preset",
       [](auto& c) { c.set_config_name("h2o"); },
       {"config_name", "h2o", "heavy_hitter_pyramid"}},
      {"bad length pattern",
       [](auto& c) {
         c.add_strategy("l2");
         c.set_length_pattern("zigzag");
       },
       {"length_pattern", "pyramid", "funnel"}},
      {"bad strategy pattern",
       [](auto& c) { c.set_strategy_pattern("zigzag"); },
       {"strategy_pattern", "tile", "repeat"}},
      {"full below 1.0",
       [](auto& c) { c.add_max_cache_length(0.5); },
       {"max_cache_length", "full"}},
      {"cache bits",
       [](auto& c) { c.set_cache_bits(3); },
       {"cache_bits", "2, 4 or 8"}},
      {"history window",
       [](auto& c) {
         c.add_strategy("heavy_hitter");
         c.set_history_window_size(0);
       },
       {"history_window_size"}},
      {"recent window",
       [](auto& c) { c.set_recent_window(-1); },
       {"recent_window"}},
      {"hybrid without strategies",
       [](auto& c) { c.add_strategy("hybrid"); },
       {"hybrid_strategies"}},
      {"hybrid unknown part",
       [](auto& c) {
         c.add_strategy("hybrid");
         c.add_hybrid_strategies()->set_strategy("window_sparkle");
       },
       {"hybrid_strategies[0].strategy", "sparkle"}},
      {"hybrid window without fraction",
       [](auto& c) {
         c.add_strategy("hybrid");
         c.add_hybrid_strategies()->set_strategy("window");
       },
       {"hybrid_strategies[0].recent_window"}},
      {"min recovery",
       [](auto& c) {
         c.set_config_name("fastgen");
         c.set_min_recovery_frac(1.5);
       },
       {"min_recovery_frac"}},
      {"prompt longer than a full compressor's cache",
       [](auto& c) {
         c.add_strategy("l2");
         c.add_prompt_compression("full");
         c.add_max_cache_length(16);
       },
       {"prompt_compression", "\"full\"", "16"}},
  };
  for (const Case& c : cases) {
    v1::GenerateRequest r = IdsRequest(Prompt(40), 8);
    c.edit(*r.mutable_cache());
    ServerHarness::Stream s = harness_->Generate(r);
    EXPECT_EQ(s.status.error_code(), grpc::INVALID_ARGUMENT) << c.name;
    for (const std::string& part : c.expected) {
      EXPECT_NE(s.status.error_message().find(part), std::string::npos)
          << c.name << ": \"" << part
          << "\" not in: " << s.status.error_message();
    }
  }
  EXPECT_TRUE(harness_->Generate(IdsRequest(Prompt(10), 2)).status.ok());
}

// feed_long_prompts: only Lmin - 1 prompt tokens are prefilled, the rest go
// through the policy one by one; decode_first_token feeds the last prompt
// token through the cache. Both still generate.
TEST_F(PolicyServiceTest, FeedLongPromptsAndDecodeFirstToken) {
  for (bool feed : {true, false}) {
    v1::GenerateRequest r = IdsRequest(Prompt(50), 6);
    r.set_session_id(feed ? "feed" : "first");
    v1::CachePolicy* c = r.mutable_cache();
    c->set_config_name("heavy_hitter");
    c->add_max_cache_length(24);
    if (feed) c->set_feed_long_prompts(true);
    if (!feed) c->set_decode_first_token(true);
    ServerHarness::Stream s = harness_->Generate(r);
    ASSERT_TRUE(s.status.ok()) << s.status.error_message();
    const v1::SessionInfo info = Session(r.session_id());
    for (const auto& layer : info.layers()) {
      EXPECT_EQ(layer.capacity(), 24u);
      for (const auto& head : layer.heads())
        EXPECT_EQ(head.positions_size(), 24);
    }
    Close(r.session_id());
  }
}

}  // namespace
}  // namespace coldcompress
