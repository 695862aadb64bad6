// The sweep end to end: two coldcompress-server processes on loopback and a
// real Prometheus scraping them; 2 policies x 2 cache sizes x 2 RULER tasks,
// 10 samples each; one server is killed mid-sweep and its work moves to the
// other; every job's files are written; `report` draws the plots, which
// rsvg-convert renders to PNGs of the expected size.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/results.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/processes.h"

namespace coldcompress {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CommandResult;
using testing::Prometheus;
using testing::RunClient;
using testing::ServerProcess;

// Width and height from a PNG's IHDR chunk; {0, 0} if it is not a PNG.
std::pair<uint32_t, uint32_t> PngSize(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char h[24] = {};
  in.read(reinterpret_cast<char*>(h), sizeof(h));
  const unsigned char magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!in || !std::equal(magic, magic + 8, h) ||
      std::string(reinterpret_cast<char*>(h + 12), 4) != "IHDR")
    return {0, 0};
  auto be32 = [&](int i) {
    return (uint32_t{h[i]} << 24) | (uint32_t{h[i + 1]} << 16) |
           (uint32_t{h[i + 2]} << 8) | h[i + 3];
  };
  return {be32(16), be32(20)};
}

// True once some job has written between 1 and `most` predictions made by
// `server`: that server is then mid-job, with at least `10 - most` samples
// still to go, so killing it must fail the job over (a kill after its last
// sample would only race the job's final Prometheus read). Reads the files
// without the client's reader, which trims cut-short lines in place.
bool MidJobOn(const fs::path& root, const std::string& server, int most) {
  const std::string tag = "\"server\":\"" + server + "\"";
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->path().filename().string().ends_with("_predictions.jsonl"))
      continue;
    std::ifstream in(it->path());
    std::string line;
    int mine = 0, all = 0;
    while (std::getline(in, line)) {
      ++all;
      mine += line.find(tag) != std::string::npos;
    }
    if (mine >= 1 && all <= most) return true;
  }
  return false;
}

TEST(SweepTest, SurvivesALostServerAndReportsPlots) {
  ServerProcess a(testing::FixtureDir("llama"));
  ServerProcess b(testing::FixtureDir("llama"));
  ASSERT_TRUE(a.running() && b.running());
  Prometheus prometheus({absl::StrCat("127.0.0.1:", a.metrics_port()),
                         absl::StrCat("127.0.0.1:", b.metrics_port())});
  ASSERT_TRUE(prometheus.running());
  ASSERT_TRUE(prometheus.WaitFor(
      "sum(up{job=\"coldcompress\"})",
      [](const json& d) {
        return !d["result"].empty() && d["result"][0]["value"][1] == "2";
      },
      60))
      << "Prometheus never scraped both servers";

  const fs::path root = fs::temp_directory_path() / "cc_sweep_test";
  fs::remove_all(root);
  const fs::path results = root / "results";
  CommandResult sweep;
  std::thread run([&] {
    sweep = RunClient({"sweep",
                       "--servers",
                       a.address() + "," + b.address(),
                       "--config_names",
                       "heavy_hitter",
                       "recent_global",
                       "--cache_sizes",
                       "0.5",
                       "0.25",
                       "--tasks",
                       "rulerniah_single",
                       "rulervt",
                       "--num_samples",
                       "10",
                       "--context_length",
                       "768",
                       "--results_dir",
                       results.string(),
                       "--prometheus",
                       prometheus.url(),
                       "--no_progress"});
  });
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!MidJobOn(results, b.address(), 5) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  b.Kill();  // mid-job: its running job and queue move to `a`
  run.join();
  ASSERT_EQ(sweep.exit_code, 0) << sweep.err << sweep.out;
  EXPECT_NE(sweep.err.find("server " + b.address() + " is gone"),
            std::string::npos)
      << sweep.err;

  int jobs = 0, requeued = 0;
  for (const char* config : {"heavy_hitter", "recent_global"}) {
    for (const char* size : {"0.5", "0.25"}) {
      const fs::path dir = results / "llama" / absl::StrCat(config, "__", size);
      const json args = *client::ReadJson((dir / "args.json").string());
      EXPECT_EQ(args["policy_label"], config);
      EXPECT_EQ(args["cache_sizes"][0].get<double>(), std::stod(size));
      const json all = *client::ReadJson((dir / "all_metrics.json").string());
      for (const char* task : {"rulerniah_single", "rulervt"}) {
        ++jobs;
        SCOPED_TRACE(absl::StrCat(config, " ", size, " ", task));
        absl::StatusOr<json> m = client::ReadJson(
            (dir / absl::StrCat(task, "_metrics.json")).string());
        ASSERT_TRUE(m.ok()) << m.status();
        EXPECT_EQ((*m)["num_samples"], 10);
        EXPECT_EQ(all[task], *m);
        EXPECT_NEAR((*m)["cache"]["compression_ratio"].get<double>(),
                    1 - std::stod(size), 0.05);
        absl::StatusOr<std::vector<json>> records = client::ReadPredictions(
            (dir / absl::StrCat(task, "_predictions.jsonl")).string());
        ASSERT_TRUE(records.ok());
        ASSERT_EQ(records->size(), 10u);
        std::set<std::string> ids, servers;
        double bytes_on_last = 0;
        int on_last = 0;
        const std::string last = records->back()["server"];
        for (const json& r : *records) {
          ids.insert(r["id"].get<std::string>());
          servers.insert(r["server"].get<std::string>());
          if (r["server"] == last) {
            bytes_on_last += r["stats"]["cache_bytes"].get<double>();
            ++on_last;
          }
        }
        EXPECT_EQ(ids.size(), 10u);
        requeued += servers.size() > 1;
        // Prometheus: the sessions this job closed on its server, and their
        // mean peak cache, equal to what the final statistics reported.
        const json& memory = (*m)["memory"];
        EXPECT_EQ(memory["source"], "prometheus") << memory.dump();
        ASSERT_TRUE(memory.contains("by_policy")) << memory.dump();
        ASSERT_TRUE(memory["by_policy"].contains(config)) << memory.dump();
        const json& policy = memory["by_policy"][config];
        EXPECT_EQ(policy.value("sessions", 0.0), on_last) << memory.dump();
        EXPECT_NEAR(policy.value("session_peak_bytes_mean", 0.0),
                    bytes_on_last / on_last, 0.5)
            << memory.dump();
      }
    }
  }
  EXPECT_EQ(jobs, 8);
  EXPECT_LE(requeued, 1);
  EXPECT_NE(sweep.out.find("heavy_hitter 0.25 rulervt"), std::string::npos)
      << sweep.out;

  const fs::path report = root / "report";
  CommandResult r =
      RunClient({"report", results.string(), "--out", report.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| policy | cache size | n | string_match_all |"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| recent_global | 0.25 | 10 |"), std::string::npos)
      << r.out;
  for (const char* plot :
       {"rulervt__string_match_all.svg", "rulervt__memory.svg",
        "rulerniah_single__memory.svg"}) {
    const fs::path svg = report / plot;
    ASSERT_TRUE(fs::exists(svg)) << svg;
    std::ifstream in(svg);
    std::stringstream text;
    text << in.rdbuf();
    // One line per policy.
    EXPECT_NE(text.str().find("data-name=\"heavy_hitter\""), std::string::npos);
    EXPECT_NE(text.str().find("data-name=\"recent_global\""),
              std::string::npos);
    const fs::path png = report / (std::string(plot) + ".png");
    CommandResult render = testing::RunCommand(
        {"/usr/bin/rsvg-convert", svg.string(), "-o", png.string()});
    ASSERT_EQ(render.exit_code, 0)
        << "rsvg-convert (Debian's librsvg2-bin) failed: " << render.err;
    EXPECT_EQ(PngSize(png), std::make_pair(800u, 500u)) << png;
  }
  EXPECT_TRUE(fs::exists(report / "report.csv"));

  // A dns:/// name resolving to the surviving server is a pool too.
  CommandResult dns = RunClient(
      {"eval", "--servers",
       absl::StrCat("dns:///localhost:",
                    a.address().substr(a.address().rfind(':') + 1)),
       "--tasks", "rulervt", "--num_samples", "2", "--context_length", "768",
       "--results_dir", (root / "dns").string(), "--no_progress"});
  EXPECT_EQ(dns.exit_code, 0) << dns.err;
  fs::remove_all(root);
}

}  // namespace
}  // namespace coldcompress
