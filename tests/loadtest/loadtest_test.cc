// coldcompress-loadtest: its config parser's errors, vLLM's percentile
// convention, and a run against a real server process, in-process and
// through the command line: every request accounted for, token counts,
// inter-token gaps and throughputs consistent with the records.
#include "loadtest/loadtest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/processes.h"

namespace coldcompress::loadtest {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kMix[] = R"(
num_requests: 12
warmup_requests: 1
seed: 3
mix:
  - name: full
    cache: {strategy: [full]}
    prompt_tokens: [20, 40]
    output_tokens: 6
  - name: recent_global 0.5
    weight: 2
    cache: {config_name: recent_global, max_cache_length: [0.5]}
    prompt_tokens: 30
    output_tokens: [4, 8]
  - name: broken
    weight: 0.5
    cache: {strategy: [no_such_policy]}
    prompt_tokens: 10
    output_tokens: 4
)";

TEST(LoadConfigTest, ParsesTheMix) {
  absl::StatusOr<LoadConfig> c = ParseLoadConfig(kMix, "mix.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_requests, 12);
  EXPECT_EQ(c->warmup_requests, 1);
  ASSERT_EQ(c->mix.size(), 3u);
  EXPECT_EQ(c->mix[1].name, "recent_global 0.5");
  EXPECT_EQ(c->mix[1].weight, 2);
  EXPECT_EQ(c->mix[1].cache.config_name(), "recent_global");
  ASSERT_EQ(c->mix[1].cache.max_cache_length_size(), 1);
  EXPECT_EQ(c->mix[1].cache.max_cache_length(0), 0.5);
  EXPECT_EQ(c->mix[0].cache.strategy(0), "full");
  EXPECT_EQ(c->mix[0].prompt_tokens.lo, 20);
  EXPECT_EQ(c->mix[0].prompt_tokens.hi, 40);
  EXPECT_EQ(c->mix[0].output_tokens.lo, 6);
  EXPECT_EQ(c->mix[0].output_tokens.hi, 6);
}

TEST(LoadConfigTest, BadValuesNameTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"mix: []", "m.yaml: mix: a list"},
      {"num_requests: 0\nmix: [{prompt_tokens: 1, output_tokens: 1}]",
       "m.yaml: num_requests: must be >= 1"},
      {"mix: [{prompt_tokens: [9, 3], output_tokens: 1}]",
       "m.yaml: mix[0].prompt_tokens: needs 1 <= low <= high, got [9, 3]"},
      {"mix: [{prompt_tokens: 4}]",
       "m.yaml: mix[0]: prompt_tokens and output_tokens are required"},
      {"mix: [{prompt_tokens: 4, output_tokens: 2, cache: {nope: 1}}]",
       "m.yaml: mix[0].cache: not a CachePolicy"},
      {"mix: [{prompt_tokens: 4, output_tokens: 2, colour: red}]",
       "m.yaml: mix[0].colour: unknown key"},
      {"mix: [{prompt_tokens: 4, output_tokens: 2, weight: -1}]",
       "m.yaml: mix[0].weight: must be > 0"},
      {"rate: 3\nmix: [{prompt_tokens: 4, output_tokens: 2}]",
       "m.yaml: rate: unknown key"},
  };
  for (const auto& [yaml, message] : cases) {
    absl::StatusOr<LoadConfig> c = ParseLoadConfig(yaml, "m.yaml");
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(c.status().message(), message))
        << c.status().message();
  }
}

// numpy.percentile's default (linear) on the same values.
TEST(LoadConfigTest, PercentilesInterpolateLikeNumpy) {
  const std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(Percentile(v, 90), 3.7);
  EXPECT_DOUBLE_EQ(Percentile(v, 99), 3.97);
  EXPECT_DOUBLE_EQ(Percentile({7}, 99), 7);
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0);
}

TEST(LoadTest, ClosedAndOpenLoopAgainstAServer) {
  testing::ServerProcess server(testing::FixtureDir("llama"));
  ASSERT_TRUE(server.running());
  absl::StatusOr<LoadConfig> config = ParseLoadConfig(kMix, "mix.yaml");
  ASSERT_TRUE(config.ok());
  const std::vector<PlannedRequest> plan =
      PlanRequests(*config, config->num_requests, 0, 512, 3, 2048);
  ASSERT_EQ(plan.size(), 12u);
  // The same seed plans the same requests.
  const std::vector<PlannedRequest> again =
      PlanRequests(*config, config->num_requests, 0, 512, 3, 2048);
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(plan[i].request.SerializeAsString(),
              again[i].request.SerializeAsString());
  }

  for (const double rate : {0.0, 50.0}) {
    SCOPED_TRACE(rate > 0 ? "open loop" : "closed loop");
    LevelOptions options;
    options.concurrency = 4;
    options.request_rate = rate;
    options.progress = false;
    absl::StatusOr<LevelResult> level =
        RunLevel(server.address(), plan, options);
    ASSERT_TRUE(level.ok()) << level.status();
    ASSERT_EQ(level->records.size(), plan.size());
    int64_t broken = 0, output = 0, input = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
      const RequestRecord& r = level->records[i];
      EXPECT_EQ(r.policy, plan[i].entry->name);
      if (r.policy == "broken") {
        ++broken;
        EXPECT_NE(r.error.find("INVALID_ARGUMENT"), std::string::npos)
            << r.error;
        continue;
      }
      ASSERT_TRUE(r.error.empty()) << r.error;
      EXPECT_EQ(r.output_tokens, plan[i].request.max_new_tokens());
      EXPECT_EQ(r.prompt_tokens, plan[i].request.prompt_token_ids().ids_size());
      // A gap between each pair of chunks; the server may put several
      // tokens in one when the stream is behind.
      EXPECT_GE(r.chunks, 1);
      EXPECT_LE(r.chunks, r.output_tokens);
      EXPECT_EQ(static_cast<int64_t>(r.itl_s.size()), r.chunks - 1);
      EXPECT_GT(r.ttft_s, 0);
      EXPECT_GE(r.e2el_s, r.ttft_s);
      output += r.output_tokens;
      input += r.prompt_tokens;
    }
    EXPECT_GT(broken, 0);
    const json s = Summarize(*level);
    const json& all = s["overall"];
    EXPECT_EQ(all["completed"], static_cast<int64_t>(plan.size()) - broken);
    EXPECT_EQ(all["errors"], broken);
    EXPECT_EQ(all["total_output_tokens"], output);
    EXPECT_EQ(all["total_input_tokens"], input);
    EXPECT_NEAR(all["output_throughput"].get<double>(),
                output / level->duration_s, 1e-9);
    for (const char* m : {"ttft", "tpot", "itl", "e2el"}) {
      const double p50 = all[absl::StrCat("p50_", m, "_ms")];
      const double p90 = all[absl::StrCat("p90_", m, "_ms")];
      const double p99 = all[absl::StrCat("p99_", m, "_ms")];
      EXPECT_GT(p50, 0) << m;
      EXPECT_LE(p50, p90) << m;
      EXPECT_LE(p90, p99) << m;
      EXPECT_EQ(all[absl::StrCat("median_", m, "_ms")].get<double>(), p50);
    }
    // Per policy: the counts add up to the overall ones.
    int64_t completed = 0;
    for (const auto& [name, m] : s["by_policy"].items())
      completed += m["completed"].get<int64_t>();
    EXPECT_EQ(completed, all["completed"].get<int64_t>());
    EXPECT_EQ(s["by_policy"]["broken"]["completed"], 0);
  }
}

TEST(LoadTest, CommandLineWritesTheReportAndPlot) {
  testing::ServerProcess server(testing::FixtureDir("llama"));
  ASSERT_TRUE(server.running());
  const fs::path dir = fs::temp_directory_path() / "cc_loadtest_cli";
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream(dir / "mix.yaml") << R"(
num_requests: 6
warmup_requests: 1
mix:
  - name: full
    cache: {config_name: full}
    prompt_tokens: 24
    output_tokens: 5
  - name: heavy_hitter 0.5
    cache: {config_name: heavy_hitter, max_cache_length: [0.5]}
    prompt_tokens: 24
    output_tokens: 5
)";
  }
  testing::CommandResult r = testing::RunCommand(
      {testing::Env("COLDCOMPRESS_LOADTEST_BIN"), "--server", server.address(),
       "--config", (dir / "mix.yaml").string(), "--concurrency", "1", "3",
       "--out", (dir / "out").string(), "--no_progress"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("| 1 clients | **all** | 6 | 0 |"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| 3 clients | **all** | 6 | 0 |"), std::string::npos)
      << r.out;
  std::ifstream in(dir / "out" / "summary.json");
  const json summary = json::parse(in);
  ASSERT_EQ(summary["levels"].size(), 2u);
  EXPECT_EQ(summary["levels"][1]["concurrency"], 3);
  EXPECT_EQ(summary["levels"][1]["overall"]["total_output_tokens"], 30);
  std::ifstream svg_in(dir / "out" / "throughput.svg");
  std::stringstream svg;
  svg << svg_in.rdbuf();
  for (const char* name : {"full", "heavy_hitter 0.5", "all"}) {
    EXPECT_NE(svg.str().find(absl::StrCat("data-name=\"", name, "\"")),
              std::string::npos)
        << name;
  }
  // A bad flag value is refused before any load.
  testing::CommandResult bad = testing::RunCommand(
      {testing::Env("COLDCOMPRESS_LOADTEST_BIN"), "--server", server.address(),
       "--config", (dir / "mix.yaml").string(), "--concurrency", "2",
       "--request_rate", "3"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--concurrency and --request_rate: give one"),
            std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace coldcompress::loadtest
