// The committed default model (models/default) loads in a real server and
// still retrieves: with the full cache it scores at least a floor on 20
// examples each of single-needle and multi-key needle in a haystack at its
// longest trained context, needles in the middle 80%, with seeds never used
// in training (the first 20 of the model card's 50). A broken model file,
// loader or tokenizer scores 0 and fails here.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "client/results.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/processes.h"

namespace coldcompress {
namespace {

namespace fs = std::filesystem;

// What the committed checkpoint scores on these 20 examples of each task
// (single needle 95, multi-key 90), less two examples (10 points) for
// arithmetic differences between machines. A checkpoint that fails to load
// or decode scores 0.
constexpr double kSingleNeedleFloor = 85.0;
constexpr double kMultiKeyFloor = 80.0;

TEST(DefaultModelTest, RetrievesWithTheFullCache) {
  const std::string model = testing::SourceDir() + "/models/default";
  ASSERT_TRUE(fs::exists(model + "/model.safetensors"))
      << model << " is missing: the trained default model is committed there";
  testing::ServerProcess server(model);
  ASSERT_TRUE(server.running());
  const fs::path results = fs::temp_directory_path() / "cc_default_model_test";
  fs::remove_all(results);
  const testing::CommandResult r = testing::RunClient({"eval",
                                                       "--servers",
                                                       server.address(),
                                                       "--tasks",
                                                       "rulerniah_single",
                                                       "rulerniah",
                                                       "--cache_strategy",
                                                       "full",
                                                       "--num_samples",
                                                       "20",
                                                       "--context_length",
                                                       "1024",
                                                       "--needle_depth",
                                                       "0.1",
                                                       "0.9",
                                                       "--seed",
                                                       "2000",
                                                       "--results_dir",
                                                       results.string(),
                                                       "--no_progress"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& [task, floor] :
       {std::pair<std::string, double>{"rulerniah_single", kSingleNeedleFloor},
        {"rulerniah", kMultiKeyFloor}}) {
    absl::StatusOr<nlohmann::json> metrics = client::ReadJson(
        (results / "default" / "full" / (task + "_metrics.json")).string());
    ASSERT_TRUE(metrics.ok()) << metrics.status() << "\n" << r.out;
    const double score = (*metrics)["metrics"]["string_match_all"];
    EXPECT_GE(score, floor) << task << "\n" << r.out;
    EXPECT_EQ((*metrics)["num_samples"], 20) << task;
  }
  fs::remove_all(results);
}

}  // namespace
}  // namespace coldcompress
