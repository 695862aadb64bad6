// The committed default model (models/default) loads in a real server and
// still retrieves: with the full cache it scores at least kFullCacheFloor on
// a 20-example subset of multi-key needle in a haystack at its longest
// trained context, with seeds never used in training (the first 20 of the
// model card's 100). A broken model file, loader or tokenizer scores 0 and
// fails here.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "client/results.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/processes.h"

namespace coldcompress {
namespace {

namespace fs = std::filesystem;

// What the committed checkpoint scores on these 20 examples (75), less three
// examples (5 points each) for arithmetic differences between machines. A
// checkpoint that fails to load or decode scores 0. The acceptance threshold
// of issue 7 is 90; the shipped checkpoint does not reach it yet (62 on the
// model card's 100 examples).
constexpr double kFullCacheFloor = 60.0;

TEST(DefaultModelTest, RetrievesWithTheFullCache) {
  const std::string model = testing::SourceDir() + "/models/default";
  ASSERT_TRUE(fs::exists(model + "/model.safetensors"))
      << model << " is missing: the trained default model is committed there";
  testing::ServerProcess server(model);
  ASSERT_TRUE(server.running());
  const fs::path results = fs::temp_directory_path() / "cc_default_model_test";
  fs::remove_all(results);
  const testing::CommandResult r = testing::RunClient(
      {"eval", "--servers", server.address(), "--tasks", "rulerniah",
       "--cache_strategy", "full", "--num_samples", "20", "--context_length",
       "1024", "--seed", "1000", "--results_dir", results.string(),
       "--no_progress"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  absl::StatusOr<nlohmann::json> metrics = client::ReadJson(
      (results / "default" / "full" / "rulerniah_metrics.json").string());
  ASSERT_TRUE(metrics.ok()) << metrics.status() << "\n" << r.out;
  const double score = (*metrics)["metrics"]["string_match_all"];
  EXPECT_GE(score, kFullCacheFloor) << r.out;
  EXPECT_EQ((*metrics)["num_samples"], 20);
  fs::remove_all(results);
}

}  // namespace
}  // namespace coldcompress
