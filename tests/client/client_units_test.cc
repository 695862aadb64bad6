// The client's pieces without a server: policy flags, server addresses,
// results files, scores, charts, progress, metrics parsing, sweep jobs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "client/cli.h"
#include "client/memory.h"
#include "client/policy_flags.h"
#include "client/pool.h"
#include "client/progress.h"
#include "client/results.h"
#include "client/scoring.h"
#include "client/svg_chart.h"
#include "client/sweep.h"

namespace coldcompress::client {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(PolicyFlagsTest, MapsOntoCachePolicy) {
  PolicyFlags f;
  f.cache_config = "heavy_hitter";
  f.max_cache_length = {0.1, 0.5};
  f.cache_length_pattern = "tile";
  f.global_tokens = 4;
  f.recent_window = 10;
  f.cache_bits = 4;
  f.feed_long_prompts = true;
  absl::StatusOr<v1::CachePolicy> p = ToCachePolicy(f);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->config_name(), "heavy_hitter");
  ASSERT_EQ(p->max_cache_length_size(), 2);
  EXPECT_EQ(p->max_cache_length(1), 0.5);
  EXPECT_EQ(p->length_pattern(), "tile");
  EXPECT_EQ(p->global_tokens(), 4u);
  EXPECT_EQ(p->recent_window(), 10.0);
  EXPECT_EQ(p->cache_bits(), 4u);
  EXPECT_TRUE(p->feed_long_prompts());
  EXPECT_FALSE(p->has_history_window_size());
  EXPECT_EQ(PolicyLabel(f), "heavy_hitter__tile__gt4__rw10__4bit__feed");
  EXPECT_EQ(PolicyDirName(f),
            "heavy_hitter__0.1-0.5__tile__gt4__rw10__4bit__feed");
  EXPECT_EQ(PolicyDirName(PolicyFlags()), "full");
}

TEST(PolicyFlagsTest, ParamsAreNameValuePairs) {
  PolicyFlags f;
  f.cache_strategy = {"keep_multiples"};
  f.params = {"every=3", "note=a=b"};
  absl::StatusOr<v1::CachePolicy> p = ToCachePolicy(f);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->params_size(), 2);
  EXPECT_EQ(p->params().at("every"), "3");
  EXPECT_EQ(p->params().at("note"), "a=b");
  EXPECT_EQ(PolicyLabel(f), "keep_multiples__every_3__note_a_b");

  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"every"}, "param: \"every\" is not NAME=VALUE"},
      {{"=3"}, "param: \"=3\" is not NAME=VALUE"},
      {{"every=3", "every=4"}, "param: every is given twice"},
  };
  for (const auto& [params, message] : bad) {
    f.params = params;
    absl::StatusOr<v1::CachePolicy> r = ToCachePolicy(f);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), message);
  }
}

TEST(PolicyFlagsTest, CacheSizesThatDoNotResolveAreRefused) {
  for (double bad : {0.0, -0.5, 1.5, 100.25, std::nan("")}) {
    absl::Status s = CheckCacheSizes({0.5, bad});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("max_cache_length[1]"), std::string::npos) << s;
  }
  EXPECT_TRUE(CheckCacheSizes({1.0, 0.25, 512}).ok());
}

TEST(PoolTest, ResolvesListsAndDnsNames) {
  absl::StatusOr<std::vector<std::string>> a =
      ResolveServers({"10.0.0.1:50051, 10.0.0.2:50051", "10.0.0.1:50051"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, (std::vector<std::string>{"10.0.0.1:50051", "10.0.0.2:50051"}));
  absl::StatusOr<std::vector<std::string>> dns =
      ResolveServers({"dns:///localhost:7001"});
  ASSERT_TRUE(dns.ok()) << dns.status();
  ASSERT_FALSE(dns->empty());
  for (const std::string& address : *dns) {
    EXPECT_TRUE(address == "127.0.0.1:7001" || address == "[::1]:7001")
        << address;
  }
  EXPECT_EQ(ResolveServers({"no-port"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveServers({"host:99999"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveServers({"dns:///name.invalid:1"}).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(ResultsTest, CutShortLastLineIsDroppedAndAppendsContinue) {
  const fs::path dir = fs::temp_directory_path() / "cc_results_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "t_predictions.jsonl").string();
  std::ofstream(path) << "{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\",\"pre";
  absl::StatusOr<std::vector<json>> records = ReadPredictions(path);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ(fs::file_size(path), 22u);  // the cut line is gone
  auto writer = PredictionsWriter::Open(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append({{"id", "3"}}).ok());
  records = ReadPredictions(path);
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[2]["id"], "3");
  // A bad line in the middle is an error naming it, and the file stays.
  std::ofstream(path, std::ios::app) << "oops\n{\"id\":\"4\"}\n";
  const auto size = fs::file_size(path);
  absl::Status bad = ReadPredictions(path).status();
  EXPECT_NE(bad.message().find(":4:"), std::string::npos) << bad;
  EXPECT_EQ(fs::file_size(path), size);
  ASSERT_TRUE(MergeAllMetrics(dir.string(), "a", {{"x", 1}}).ok());
  ASSERT_TRUE(MergeAllMetrics(dir.string(), "b", {{"x", 2}}).ok());
  absl::StatusOr<json> all = ReadJson((dir / "all_metrics.json").string());
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, json({{"a", {{"x", 1}}}, {"b", {{"x", 2}}}}));
  fs::remove_all(dir);
}

TEST(ScoringTest, PerplexityIsExpOfMeanNll) {
  const std::vector<double> lp = {-1.0, -2.0, -3.0, -0.5};
  json s = ScorePerplexity(lp, {2, 4, 5});
  EXPECT_DOUBLE_EQ(s["perplexity"].get<double>(), std::exp(6.5 / 4));
  EXPECT_DOUBLE_EQ(s["ppl@2"].get<double>(), std::exp(1.5));
  EXPECT_DOUBLE_EQ(s["ppl@4"].get<double>(), std::exp(6.5 / 4));
  EXPECT_FALSE(s.contains("ppl@5"));  // longer than what was scored
  std::vector<double> many(1200, -0.1);
  many[0] = -5;
  json every = ScorePerplexity(many, {});
  EXPECT_TRUE(every.contains("ppl@500"));
  EXPECT_TRUE(every.contains("ppl@1000"));
  EXPECT_FALSE(every.contains("ppl@1500"));
  EXPECT_NEAR(every["ppl@500"].get<double>(), std::exp((5 + 499 * 0.1) / 500),
              1e-12);
}

TEST(ScoringTest, GenerationScoresOnTheReferenceScales) {
  json s = ScoreGeneration({"string_match_all", "string_match_part",
                            "levenshtein", "exact_match", "rouge"},
                           " The values are 123 and\x01 456 ",
                           {"123", "456", "789"});
  EXPECT_NEAR(s["string_match_all"].get<double>(), 200.0 / 3, 1e-12);
  EXPECT_EQ(s["string_match_part"].get<double>(), 100.0);
  EXPECT_EQ(s["exact_match"].get<double>(), 0.0);
  EXPECT_TRUE(s.contains("rouge1") && s.contains("rouge2") &&
              s.contains("rougeL"));
  // fuzz.ratio("this is a test", "this is a test!") = 97 (fuzzywuzzy README).
  json l = ScoreGeneration({"levenshtein"}, "this is a test",
                           {"x", "this is a test!"});
  EXPECT_EQ(l["levenshtein"].get<int>(), 97);
  EXPECT_EQ(MeanOf({{{"scores", {{"a", 1.0}}}},
                    {{"scores", {{"a", 2.0}, {"b", 4.0}}}}},
                   "scores"),
            json({{"a", 1.5}, {"b", 4.0}}));
}

TEST(SvgChartTest, TicksAreRoundAndCoverTheData) {
  const std::vector<double> ticks = NiceTicks(0, 0.75, 6);
  const std::vector<double> expected = {0, 0.2, 0.4, 0.6, 0.8};
  ASSERT_EQ(ticks.size(), expected.size());
  for (size_t i = 0; i < ticks.size(); ++i)
    EXPECT_NEAR(ticks[i], expected[i], 1e-12);
  EXPECT_EQ(NiceTicks(0, 100, 5),
            (std::vector<double>{0, 20, 40, 60, 80, 100}));
  Chart chart{"t<1>", "x", "y", {{"a&b", {{0, 1}, {0.5, 2}}}}, 640, 480};
  const std::string svg = RenderSvg(chart);
  EXPECT_NE(svg.find("width=\"640\" height=\"480\""), std::string::npos);
  EXPECT_NE(svg.find("t&lt;1&gt;"), std::string::npos);
  EXPECT_NE(svg.find("data-name=\"a&amp;b\""), std::string::npos);
}

TEST(ProgressTest, LineShowsDoneRateAndEta) {
  EXPECT_EQ(Progress::Line("t", 10, 40, 0, 5.0, 8),
            "t [##......] 10/40 2.00/s ETA 0:15");
  // Resumed examples count as done but not in the rate.
  EXPECT_EQ(Progress::Line("t", 30, 40, 20, 5.0, 4),
            "t [###.] 30/40 2.00/s ETA 0:05");
  EXPECT_EQ(Progress::Line("t", 0, 4, 0, 0.0, 4),
            "t [....] 0/4 0.00/s ETA --:--");
}

TEST(MemoryTest, ParsesPrometheusTextByPolicy) {
  const std::string text =
      "# HELP coldcompress_kv_cache_bytes x\n"
      "coldcompress_kv_cache_bytes{policy=\"full\"} 100\n"
      "coldcompress_kv_cache_bytes{policy=\"l2\"} 5.5e1\n"
      "coldcompress_kv_cache_bytes_total 7\n"
      "coldcompress_kv_cache_layer_bytes{layer=\"0\",policy=\"l2\"} 3\n"
      "coldcompress_session_peak_cache_bytes_sum{policy=\"l2\"} 9\n";
  auto m = ParseMetricByPolicy(text, "coldcompress_kv_cache_bytes");
  EXPECT_EQ(m, (std::map<std::string, double>{{"full", 100}, {"l2", 55}}));
  EXPECT_EQ(
      ParseMetricByPolicy(text, "coldcompress_session_peak_cache_bytes_sum"),
      (std::map<std::string, double>{{"l2", 9}}));
}

TEST(SweepTest, JobsAreTheProductPlusFull) {
  SweepFlags f;
  f.eval.servers = {"127.0.0.1:1"};
  f.eval.tasks = {"rulervt", "rulercwe"};
  f.config_names = {"l2", "random"};
  f.cache_sizes = {0.5, 0.25, 0.1};
  f.add_full = true;
  absl::StatusOr<std::vector<SweepJob>> jobs = MakeJobs(f);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u * 3 * 2 + 2);
  EXPECT_EQ((*jobs)[0].label, "l2 0.5 rulervt");
  EXPECT_EQ((*jobs)[1].label, "l2 0.5 rulercwe");
  EXPECT_EQ(jobs->back().label, "full - rulercwe");
  f.cache_sizes = {0.5, 0};
  EXPECT_NE(MakeJobs(f).status().message().find("cache_sizes"),
            std::string::npos);
}

TEST(SweepTest, CommandFileLinesAreEvalInvocations) {
  const fs::path path = fs::temp_directory_path() / "cc_command_file.txt";
  std::ofstream(path)
      << "# comment\n\ncoldcompress eval --tasks rulervt rulercwe "
         "--cache_config l2 --max_cache_length 0.5 --num_samples 3\n"
      << "--tasks rulerfwe --cache_strategy recent_global heavy_hitter "
         "--max_cache_length 0.1 0.5 --cache_length_pattern tile\n";
  SweepFlags f;
  f.command_file = path.string();
  absl::StatusOr<std::vector<SweepJob>> jobs = MakeJobs(f);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[1].label, "l2 0.5 rulercwe");
  EXPECT_EQ((*jobs)[1].flags.num_samples, 3);
  EXPECT_EQ((*jobs)[2].label,
            "recent_global+heavy_hitter__tile 0.1-0.5 rulerfwe");
  std::ofstream(path) << "--tasks rulervt --max_cache_lenth 0.5\n";
  absl::Status bad = MakeJobs(f).status();
  EXPECT_NE(bad.message().find("command_file line 1"), std::string::npos)
      << bad;
  EXPECT_NE(bad.message().find("max_cache_lenth"), std::string::npos) << bad;
  fs::remove(path);
}

}  // namespace
}  // namespace coldcompress::client
