// Policy plugins: the example plugin (examples/plugins/keep_multiples/),
// built as a project of its own against the installed SDK
// (find_package(ColdCompress)) and loaded into a running server, serves
// Generate, keeps exactly the positions its rule implies, and has its
// parameter validated; heavy_hitter written as a plugin with every hook
// keeps the built-in's positions; plugins with a foreign ABI version, a
// missing symbol, a built-in's name or a bad default are refused at
// start-up with the file and the problem named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "policies/builtins.h"
#include "policies/plugins.h"
#include "policies/registry.h"
#include "server/config.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/processes.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

using testing::FixtureDir;
using testing::ServerHarness;

namespace fs = std::filesystem;

// Installs the SDK from this build into a fresh prefix, copies the example's
// folder to a fresh place and builds it there with nothing but
// find_package(ColdCompress). Returns the library's path ("" on failure,
// after reporting the failing step's output).
std::string BuildOutOfTree(const fs::path& root) {
  const fs::path prefix = root / "prefix", source = root / "src",
                 build = root / "build";
  fs::create_directories(root);
  fs::copy(COLDCOMPRESS_EXAMPLE_PLUGIN_DIR, source,
           fs::copy_options::recursive);
  const std::string cmake = COLDCOMPRESS_CMAKE;
  const std::vector<std::vector<std::string>> steps = {
      {cmake, "--install", COLDCOMPRESS_BUILD_DIR, "--prefix", prefix,
       "--component", "plugin_sdk"},
      {cmake, "-S", source, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
       "-DCMAKE_PREFIX_PATH=" + prefix.string()},
      {cmake, "--build", build},
  };
  for (const std::vector<std::string>& step : steps) {
    const testing::CommandResult r = testing::RunCommand(step);
    if (r.exit_code != 0) {
      ADD_FAILURE() << step[1] << " failed (" << r.exit_code << "):\n"
                    << r.out << r.err;
      return "";
    }
  }
  // Only the SDK was installed: the header and the package files.
  EXPECT_TRUE(fs::exists(prefix / "include/coldcompress/plugin.h"));
  EXPECT_TRUE(
      fs::exists(prefix / "lib/cmake/ColdCompress/ColdCompressConfig.cmake"));
  return (build / "libcoldcompress_keep_multiples.so").string();
}

std::string BadPlugin(int i) {
  return std::string(COLDCOMPRESS_BAD_PLUGIN_DIR) + "/libcc_bad_plugin_" +
         std::to_string(i) + ".so";
}

// The rule, slot by slot: the prompt fills slots 0..n-1; each later token at
// position p takes an empty slot, else the lowest-numbered slot of least
// importance (1 for multiples of `every`, 0 otherwise) among those that are
// neither sinks (position < g) nor recent (position >= p - r).
std::vector<int32_t> Expected(int prompt, int cached, int capacity, int every,
                              int g, int r) {
  std::vector<int32_t> slots;
  for (int p = 0; p < cached; ++p) {
    if (p < prompt || static_cast<int>(slots.size()) < capacity) {
      slots.push_back(p);
      continue;
    }
    int chosen = -1;
    for (int s = 0; s < capacity; ++s) {
      const int held = slots[s];
      if (held < g || held >= p - r) continue;
      if (chosen < 0 ||
          (held % every == 0 ? 1 : 0) < (slots[chosen] % every == 0 ? 1 : 0)) {
        chosen = s;
      }
    }
    slots[chosen] = p;
  }
  std::sort(slots.begin(), slots.end());
  return slots;
}

TEST(PluginTest, OutOfTreePluginServesTheRulesPositions) {
  const fs::path root = fs::temp_directory_path() /
                        ("cc_plugin_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const std::string plugin = BuildOutOfTree(root);
  ASSERT_FALSE(plugin.empty());
  ServerConfig config;
  config.policy_plugins = {plugin};
  // The same policy as a preset: its parameter from the YAML's `params`.
  const fs::path presets = root / "presets";
  fs::copy(testing::SourceDir() + "/configs/presets", presets);
  {
    std::ofstream yaml(presets / "multiples3.yaml");
    yaml << "cache_strategy: [keep_multiples]\nmax_cache_length: [16]\n"
            "global_tokens: 2\nrecent_window: 4\nparams:\n  every: \"3\"\n";
  }
  config.presets_dir = presets.string();
  ServerHarness harness(FixtureDir("llama"), true, config);

  grpc::ClientContext list_ctx;
  v1::ListPoliciesResponse list;
  ASSERT_TRUE(harness.stub()
                  .ListPolicies(&list_ctx, v1::ListPoliciesRequest(), &list)
                  .ok());
  std::map<std::string, std::string> defaults;
  for (const auto& p : list.policies()) {
    if (p.name() != "keep_multiples") continue;
    for (const auto& param : p.parameters()) {
      defaults[param.name()] = param.default_value();
    }
  }
  EXPECT_EQ(
      defaults,
      (std::map<std::string, std::string>{
          {"every", "2"}, {"global_tokens", "4"}, {"recent_window", "10"}}));

  constexpr int kPrompt = 12, kCapacity = 16, kNew = 40;
  constexpr int kEvery = 3, kSinks = 2, kRecent = 4;
  std::vector<int32_t> ids = {1};
  for (int i = 1; i < kPrompt; ++i) ids.push_back(3 + (i * 31) % 400);
  v1::GenerateRequest r = testing::IdsRequest(ids, kNew);
  r.set_session_id("multiples");
  v1::CachePolicy& cache = *r.mutable_cache();
  cache.add_strategy("keep_multiples");
  cache.add_max_cache_length(kCapacity);
  cache.set_global_tokens(kSinks);
  cache.set_recent_window(kRecent);
  (*cache.mutable_params())["every"] = std::to_string(kEvery);
  const ServerHarness::Stream s = harness.Generate(r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_EQ(s.tokens.size(), static_cast<size_t>(kNew));
  v1::GenerateRequest by_preset = testing::IdsRequest(ids, kNew);
  by_preset.set_session_id("multiples-preset");
  by_preset.mutable_cache()->set_config_name("multiples3");
  const ServerHarness::Stream p = harness.Generate(by_preset);
  ASSERT_TRUE(p.status.ok()) << p.status.error_message();

  // 16 of the 51 cached positions kept, in both sessions.
  const std::vector<int32_t> expected =
      Expected(kPrompt, kPrompt + kNew - 1, kCapacity, kEvery, kSinks, kRecent);
  ASSERT_EQ(expected.size(), static_cast<size_t>(kCapacity));
  for (const std::string session : {"multiples", "multiples-preset"}) {
    SCOPED_TRACE(session);
    grpc::ClientContext ctx;
    v1::GetSessionRequest get;
    get.set_session_id(session);
    get.set_include_positions(true);
    v1::SessionInfo info;
    ASSERT_TRUE(harness.stub().GetSession(&ctx, get, &info).ok());
    // Every token counts as seen; the last generated one is not in the
    // cache yet (a next turn feeds it first).
    ASSERT_EQ(info.tokens_seen(), static_cast<uint32_t>(kPrompt + kNew));
    ASSERT_GT(info.layers_size(), 0);
    for (const v1::LayerInfo& layer : info.layers()) {
      EXPECT_EQ(layer.strategy(), "keep_multiples");
      EXPECT_EQ(layer.capacity(), static_cast<uint32_t>(kCapacity));
      for (const v1::HeadPositions& head : layer.heads()) {
        EXPECT_EQ(std::vector<int32_t>(head.positions().begin(),
                                       head.positions().end()),
                  expected);
      }
    }
  }

  // The plugin's parameter is checked against its declared range, and a
  // parameter no strategy of the request declares is refused.
  for (const auto& [key, value, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"every", "0", "params.every: \"0\" is out of range [1, 4096]"},
           {"every", "three", "params.every: \"three\" is not an int"},
           {"stride", "2",
            "params.stride: not a parameter of keep_multiples, "
            "recent_global"}}) {
    v1::GenerateRequest bad = testing::IdsRequest(ids, 2);
    bad.mutable_cache()->add_strategy("keep_multiples");
    bad.mutable_cache()->add_max_cache_length(kCapacity);
    (*bad.mutable_cache()->mutable_params())[key] = value;
    const ServerHarness::Stream refused = harness.Generate(bad);
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(refused.status.error_message().find(message), std::string::npos)
        << refused.status.error_message();
  }
  fs::remove_all(root);
}

// The tutorial plugin with its preset beside it: a server that loads the
// plugin and has the preset in its presets folder serves the preset by name
// (its statistics and kept positions: golden_test and policy_parity_test).
// A policy that uses every hook (tests/plugins/mean_attention.cc: heavy_hitter
// written as a plugin, head-specific, with attention, state and Clone)
// keeps, in every layer and head, exactly the built-in heavy_hitter's
// positions, generates its tokens and scores its continuations to the bit.
TEST(PluginTest, PluginUsingEveryHookMatchesTheBuiltInItCopies) {
  ServerConfig config;
  config.policy_plugins = {std::string(COLDCOMPRESS_BAD_PLUGIN_DIR) +
                           "/libcc_mean_attention_plugin.so"};
  ServerHarness harness(FixtureDir("llama"), true, config);
  std::vector<int32_t> ids = {1};
  for (int i = 1; i < 24; ++i) ids.push_back(3 + (i * 37) % 500);
  auto policy = [](v1::CachePolicy* cache, const std::string& strategy) {
    cache->add_strategy(strategy);
    cache->add_max_cache_length(16);
    cache->set_global_tokens(2);
    cache->set_recent_window(4);
  };
  std::map<std::string, std::vector<std::vector<std::vector<int32_t>>>> kept;
  std::map<std::string, std::vector<int32_t>> tokens;
  for (const std::string strategy :
       {"heavy_hitter", "mean_attention", "recent_global"}) {
    SCOPED_TRACE(strategy);
    v1::GenerateRequest r = testing::IdsRequest(ids, 40);
    r.set_session_id(strategy);
    policy(r.mutable_cache(), strategy);
    const ServerHarness::Stream s = harness.Generate(r);
    ASSERT_TRUE(s.status.ok()) << s.status.error_message();
    tokens[strategy] = s.tokens;
    grpc::ClientContext ctx;
    v1::GetSessionRequest get;
    get.set_session_id(strategy);
    get.set_include_positions(true);
    v1::SessionInfo info;
    ASSERT_TRUE(harness.stub().GetSession(&ctx, get, &info).ok());
    for (const v1::LayerInfo& layer : info.layers()) {
      kept[strategy].emplace_back();
      for (const v1::HeadPositions& head : layer.heads()) {
        kept[strategy].back().emplace_back(head.positions().begin(),
                                           head.positions().end());
      }
    }
  }
  EXPECT_EQ(tokens["mean_attention"], tokens["heavy_hitter"]);
  ASSERT_EQ(kept["mean_attention"].size(), kept["heavy_hitter"].size());
  int heads_apart = 0;
  for (size_t l = 0; l < kept["heavy_hitter"].size(); ++l) {
    SCOPED_TRACE(l);
    const auto& heads = kept["heavy_hitter"][l];
    EXPECT_EQ(kept["mean_attention"][l], heads);
    for (const auto& head : heads) heads_apart += head != heads[0] ? 1 : 0;
  }
  // The case is not trivial: the heads keep different positions, and not
  // the sinks and recent tokens recent_global keeps.
  EXPECT_GT(heads_apart, 0);
  EXPECT_NE(kept["heavy_hitter"], kept["recent_global"]);

  // Score forks the context's caches for each continuation (Clone).
  std::map<std::string, std::vector<double>> logprobs;
  for (const std::string strategy : {"heavy_hitter", "mean_attention"}) {
    v1::ScoreRequest r;
    for (int32_t id : ids) r.mutable_context_token_ids()->add_ids(id);
    for (int c = 0; c < 2; ++c) {
      auto* continuation = r.add_continuations()->mutable_token_ids();
      for (int i = 0; i < 12; ++i)
        continuation->add_ids(5 + (i * 53 + c) % 500);
    }
    policy(r.mutable_cache(), strategy);
    grpc::ClientContext ctx;
    v1::ScoreResponse out;
    const grpc::Status s = harness.stub().Score(&ctx, r, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& score : out.scores()) {
      logprobs[strategy].insert(logprobs[strategy].end(),
                                score.token_logprobs().begin(),
                                score.token_logprobs().end());
    }
  }
  ASSERT_EQ(logprobs["heavy_hitter"].size(), 24u);
  EXPECT_EQ(logprobs["mean_attention"], logprobs["heavy_hitter"]);
}

TEST(PluginTest, TutorialPluginServesItsPreset) {
  const fs::path presets = fs::temp_directory_path() /
                           ("cc_plugin_presets_" + std::to_string(::getpid()));
  fs::remove_all(presets);
  fs::copy(testing::SourceDir() + "/configs/presets", presets);
  fs::copy_file(
      testing::SourceDir() + "/examples/plugins/keep_it_odd/keep_it_odd.yaml",
      presets / "keep_it_odd.yaml");
  ServerConfig config;
  config.policy_plugins = {testing::Env("COLDCOMPRESS_KEEP_IT_ODD_PLUGIN")};
  config.presets_dir = presets.string();
  ServerHarness harness(FixtureDir("llama"), true, config);
  std::vector<int32_t> ids = {1};
  for (int i = 1; i < 40; ++i) ids.push_back(3 + (i * 17) % 400);
  v1::GenerateRequest r = testing::IdsRequest(ids, 24);
  r.mutable_cache()->set_config_name("keep_it_odd");
  r.mutable_cache()->add_max_cache_length(0.5);
  const ServerHarness::Stream s = harness.Generate(r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_EQ(s.tokens.size(), 24u);
  // 63 tokens through a 32-token cache: half of them evicted.
  EXPECT_GT(s.final.stats().compression_ratio(), 0.4);
  fs::remove_all(presets);
}

TEST(PluginTest, BadPluginsAreRefusedNamingTheFileAndTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {BadPlugin(1), "plugin ABI version 3, but this server's is 2"},
      {BadPlugin(2), "missing symbol coldcompress_register_plugin"},
      {BadPlugin(3),
       "policy \"recent_global\" clashes with a registered policy"},
      {BadPlugin(4),
       "policy \"bad_default\"'s default of params.every: \"0\" is out of "
       "range [1, 10]"},
      {BadPlugin(5), "policy \"twice\" is defined twice"},
      {"/nonexistent/libplugin.so", "cannot open shared object file"},
  };
  for (const auto& [path, problem] : cases) {
    PolicyRegistry registry;
    RegisterBuiltins(registry);
    const size_t before = registry.Policies().size();
    const absl::Status s = LoadPolicyPlugin(path, registry);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_EQ(s.message().rfind("policy_plugin " + path + ": ", 0), 0u) << s;
    EXPECT_NE(s.message().find(problem), std::string::npos) << s;
    EXPECT_EQ(registry.Policies().size(), before);  // nothing registered
  }
  // At start-up: the server does not come up with the plugin's error.
  ServerConfig config;
  config.policy_plugins = {BadPlugin(3)};
  ServerHarness harness(FixtureDir("llama"), /*load=*/false, config);
  const absl::Status s = harness.server().LoadModel();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(BadPlugin(3)), std::string::npos) << s;
}

}  // namespace
}  // namespace coldcompress
