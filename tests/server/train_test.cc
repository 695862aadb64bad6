// cc-train, the default model's trainer, on a tiny shape for a few steps: the
// loss falls, a run stopped at its checkpoint and resumed ends with the same
// weights as an uninterrupted one (a run cut short by a smaller --steps
// finishes from its checkpoint), the same seed gives the same weights, and
// the checkpoint it writes serves in a real server. Its tokenizer cuts numbers
// into Llama-3's 1-3-digit pieces.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "server/tokenizer/load.h"
#include "tests/testing/processes.h"

namespace coldcompress {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("cc_train_test_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A tiny model on the retrieval drill for `steps` steps (a constant
  // learning rate, so a run cut at 50 steps and resumed is the same run),
  // with `extra` flags, run by `binary_env`'s program.
  testing::CommandResult Train(
      const fs::path& out, int steps, std::vector<std::string> extra = {},
      const char* binary_env = "COLDCOMPRESS_TRAIN_BIN") {
    const char* bin = std::getenv(binary_env);
    EXPECT_NE(bin, nullptr) << binary_env << " is not set";
    std::vector<std::string> args = {bin ? bin : "cc-train",
                                     "--out",
                                     out.string(),
                                     "--layers",
                                     "2",
                                     "--hidden",
                                     "32",
                                     "--heads",
                                     "2",
                                     "--kv_heads",
                                     "1",
                                     "--intermediate",
                                     "64",
                                     "--vocab",
                                     "3072",
                                     "--context_loss",
                                     "0.5",
                                     "--steps",
                                     std::to_string(steps),
                                     "--batch",
                                     "4",
                                     "--min_context",
                                     "160",
                                     "--max_context",
                                     "224",
                                     "--curriculum",
                                     "0",
                                     "--mixture",
                                     "lookup=1",
                                     "recall=1",
                                     "--lr",
                                     "3e-3",
                                     "--schedule",
                                     "constant",
                                     "--warmup",
                                     "5",
                                     "--save_every",
                                     "50",
                                     "--threads",
                                     "1",
                                     "--seed",
                                     "3"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::RunCommand(args);
  }

  fs::path root_;
};

TEST_F(TrainTest, LearnsResumesAndIsDeterministic) {
  const fs::path a = root_ / "a", b = root_ / "b";
  testing::CommandResult r = Train(a, 100);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* file :
       {"config.json", "model.safetensors", "tokenizer.model",
        "tokenizer_config.json", "training.json"}) {
    EXPECT_TRUE(fs::exists(a / file)) << file;
  }
  // The progress line of the first step against the final averages.
  std::smatch first;
  ASSERT_TRUE(std::regex_search(r.err, first,
                                std::regex(R"(step 1/100 loss ([0-9.]+))")))
      << r.err;
  const nlohmann::json summary =
      nlohmann::json::parse(Slurp(a / "training.json"));
  EXPECT_EQ(summary["step"], 100);
  EXPECT_EQ(summary["batch"], 4);
  EXPECT_GT(summary["tokens"].get<int64_t>(), 100 * 4 * 160);
  EXPECT_EQ(summary["context_loss"].get<double>(), 0.5);
  const double start = std::stod(first[1]);
  // Before training every one of the 3072 pieces is about as likely, in the
  // answers and (at weight 0.5) in the prompts. The averages by kind are the
  // answers' alone.
  const double uniform = std::log(3072.0);
  EXPECT_NEAR(start, 1.5 * uniform, 1.5);
  for (const char* kind : {"lookup", "recall"}) {
    EXPECT_LT(summary["loss_by_kind"][kind].get<double>(), uniform - 2.0)
        << kind << "\n"
        << r.err;
  }

  // Numbers are cut into 1-3-digit pieces from the left, as Llama-3's
  // pre-tokenizer cuts them, a space before one kept on its first piece, in
  // the server's own tokenizer.
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(a.string());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto pieces = [&](const std::string& text) {
    std::vector<std::string> out;
    for (int32_t id : (*tokenizer)->Encode(text, false))
      out.push_back((*tokenizer)->Piece(id));
    return out;
  };
  EXPECT_EQ(pieces("is: 1899280."),
            (std::vector<std::string>{"\u2581is", ":", "\u2581189", "928", "0",
                                      "."}));
  const std::vector<std::string> glued = pieces("is:1234");
  ASSERT_GE(glued.size(), 2u);
  EXPECT_EQ(std::vector<std::string>(glued.end() - 2, glued.end()),
            (std::vector<std::string>{"123", "4"}));

  // The same run in two parts: 50 steps, then resumed to 100.
  fs::create_directories(b);
  fs::copy_file(a / "tokenizer.model", b / "tokenizer.model");
  r = Train(b, 50);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A run stopped at a checkpoint by a smaller --steps than it started with
  // (here: its output removed) finishes from its state's weights...
  fs::remove(b / "model.safetensors");
  fs::remove(b / "training.json");
  r = Train(b, 50);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Slurp(b / "model.safetensors") ==
              Slurp(b / "train_state" / "model.safetensors"));
  EXPECT_EQ(nlohmann::json::parse(Slurp(b / "training.json"))["step"], 50);
  // ...and a --steps below the state's step is refused, not ignored.
  r = Train(b, 40);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is already at step 50; pass --steps >= 50"),
            std::string::npos)
      << r.err;
  r = Train(b, 100);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming at step 50"), std::string::npos) << r.err;
  EXPECT_TRUE(Slurp(a / "model.safetensors") == Slurp(b / "model.safetensors"))
      << "a resumed run ended with other weights";

  // From scratch again with the same seed: the same tokenizer and weights.
  const fs::path c = root_ / "c";
  r = Train(c, 100);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Slurp(a / "tokenizer.model") == Slurp(c / "tokenizer.model"));
  EXPECT_TRUE(Slurp(a / "model.safetensors") == Slurp(c / "model.safetensors"))
      << "the same seed gave other weights";

  // The checkpoint serves: the server loads it and generates.
  testing::ServerProcess server(a.string());
  ASSERT_TRUE(server.running()) << server.log();
  const testing::CommandResult gen = testing::RunClient(
      {"generate", "--server", server.address(), "--prompt",
       "One of the special magic numbers for", "--max_new_tokens", "8"});
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
}

// A trainer built without the tokenizer and the task generators (the GPU
// build's cc-train) trains from a batch file the full one wrote and ends
// with the same weights, from the start or resuming a run where the file
// starts.
TEST_F(TrainTest, TrainsTheSameFromABatchFile) {
  const fs::path a = root_ / "a", b = root_ / "b", c = root_ / "c";
  testing::CommandResult r = Train(a, 30);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string all = (root_ / "all.batches").string();
  r = Train(a, 30, {"--write_batches", all});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Train(b, 30, {"--batches", all}, "COLDCOMPRESS_TRAIN_FILES_BIN");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Slurp(a / "model.safetensors") == Slurp(b / "model.safetensors"))
      << "the batch file trained other weights";
  EXPECT_EQ(Slurp(a / "config.json"), Slurp(b / "config.json"));
  const nlohmann::json summary =
      nlohmann::json::parse(Slurp(b / "training.json"));
  EXPECT_EQ(summary["step"], 30);
  EXPECT_EQ(summary["mixture"]["lookup"].get<double>(), 1.0);

  // 20 steps from the generators, then steps 20-29 from a file that starts
  // there.
  fs::create_directories(c);
  fs::copy_file(a / "tokenizer.model", c / "tokenizer.model");
  r = Train(c, 20);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string rest = (root_ / "rest.batches").string();
  r = Train(a, 30, {"--write_batches", rest, "--first_step", "20"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Train(c, 30, {"--batches", rest}, "COLDCOMPRESS_TRAIN_FILES_BIN");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming at step 20"), std::string::npos) << r.err;
  EXPECT_TRUE(Slurp(a / "model.safetensors") == Slurp(c / "model.safetensors"))
      << "a run resumed from a batch file ended with other weights";

  // That file cannot start a run from scratch: it has no step 0.
  r = Train(root_ / "d", 30, {"--batches", rest},
            "COLDCOMPRESS_TRAIN_FILES_BIN");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("the batch file holds steps 20..29, not 0"),
            std::string::npos)
      << r.err;
  // Without a file it says what it needs; a file that is not one is named.
  r = Train(root_ / "e", 30, {}, "COLDCOMPRESS_TRAIN_FILES_BIN");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("pass --batches FILE"), std::string::npos) << r.err;
  std::ofstream(root_ / "junk.batches") << "CCTB not really";
  r = Train(root_ / "f", 30, {"--batches", (root_ / "junk.batches").string()},
            "COLDCOMPRESS_TRAIN_FILES_BIN");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a cc-train batch file"), std::string::npos)
      << r.err;
}

TEST_F(TrainTest, BadFlagsFailWithAMessage) {
  const char* bin = std::getenv("COLDCOMPRESS_TRAIN_BIN");
  ASSERT_NE(bin, nullptr);
  testing::CommandResult r = testing::RunCommand(
      {bin, "--out", (root_ / "x").string(), "--mixture", "nonsense"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--mixture: nonsense is not NAME=WEIGHT"),
            std::string::npos)
      << r.err;
  r = testing::RunCommand(
      {bin, "--out", (root_ / "y").string(), "--schedule", "linear"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--schedule"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace coldcompress
