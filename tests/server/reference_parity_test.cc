// Numerics against an independent implementation: the server's Score
// log-probabilities and greedy Generate tokens against
// tests/reference/hf_reference.py (float64 PyTorch following Hugging Face's
// modeling_llama / modeling_qwen2), for Llama and Qwen2 fixtures.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/testing/fixtures.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

using nlohmann::json;
using testing::IdsRequest;
using testing::ServerHarness;

constexpr double kTolerance = 1e-4;  // fp32 serving vs float64 reference
constexpr int kContinuation = 8;
const std::vector<int> kContextLengths = {1, 2, 17, 64, 150, 300};
const std::vector<int> kPromptLengths = {1, 9, 120, 290};
constexpr int kNewTokens = 16;

json RunReference(const std::string& model_dir, const json& requests) {
  const auto tmp = std::filesystem::temp_directory_path();
  const std::string in = (tmp / "cc_ref_requests.json").string();
  const std::string out = (tmp / "cc_ref_results.json").string();
  std::ofstream(in) << requests.dump();
  const std::string cmd = "/usr/bin/python3 " + testing::SourceDir() +
                          "/tests/reference/hf_reference.py --model " +
                          model_dir + " batch --requests " + in + " --out " +
                          out;
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
  std::ifstream result(out);
  return json::parse(result);
}

class ReferenceParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceParityTest, ScoreAndGreedyMatchTheReference) {
  const std::string dir = testing::FixtureDir(GetParam());
  ServerHarness harness(dir);
  grpc::ClientContext info_ctx;
  v1::ServerInfo info;
  ASSERT_TRUE(harness.stub()
                  .GetServerInfo(&info_ctx, v1::GetServerInfoRequest(), &info)
                  .ok());
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> id(
      3, static_cast<int>(info.vocab_size()) - 1);
  auto random_ids = [&](int n) {
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(id(rng));
    return ids;
  };

  json requests = json::array();
  std::vector<std::vector<int32_t>> score_ids, prompts;
  for (int n : kContextLengths) {
    score_ids.push_back(random_ids(n + kContinuation));
    requests.push_back({{"op", "score"}, {"ids", score_ids.back()}});
  }
  for (int n : kPromptLengths) {
    prompts.push_back(random_ids(n));
    requests.push_back({{"op", "generate"},
                        {"ids", prompts.back()},
                        {"max_new_tokens", kNewTokens}});
  }
  const json results = RunReference(dir, requests);
  ASSERT_EQ(results.size(), requests.size());

  double max_diff = 0;
  for (size_t i = 0; i < kContextLengths.size(); ++i) {
    const int n = kContextLengths[i];
    v1::ScoreRequest r;
    for (int k = 0; k < n; ++k)
      r.mutable_context_token_ids()->add_ids(score_ids[i][k]);
    auto* cont = r.add_continuations()->mutable_token_ids();
    for (int k = n; k < n + kContinuation; ++k) cont->add_ids(score_ids[i][k]);
    grpc::ClientContext ctx;
    v1::ScoreResponse response;
    grpc::Status status = harness.stub().Score(&ctx, r, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    const json& ref = results[i];
    bool ref_greedy = true;
    for (int k = 0; k < kContinuation; ++k) {
      const double expected = ref["token_logprobs"][n - 1 + k].get<double>();
      const double got = response.scores(0).token_logprobs(k);
      EXPECT_NEAR(got, expected, kTolerance)
          << "context " << n << " token " << k;
      max_diff = std::max(max_diff, std::abs(got - expected));
      ref_greedy = ref_greedy && ref["greedy"][n - 1 + k].get<bool>();
    }
    EXPECT_EQ(response.scores(0).is_greedy(), ref_greedy);
  }
  int matched = 0;
  double min_margin = 1e9;
  for (size_t i = 0; i < kPromptLengths.size(); ++i) {
    ServerHarness::Stream s =
        harness.Generate(IdsRequest(prompts[i], kNewTokens));
    ASSERT_TRUE(s.status.ok()) << s.status.error_message();
    const json& ref = results[kContextLengths.size() + i];
    EXPECT_EQ(s.tokens, ref["tokens"].get<std::vector<int32_t>>())
        << "prompt of " << kPromptLengths[i] << " tokens";
    matched += s.tokens == ref["tokens"].get<std::vector<int32_t>>();
    for (double m : ref["margins"]) min_margin = std::min(min_margin, m);
  }
  std::printf(
      "[%s] max |logprob - reference| = %.3g over %zu contexts of 1..300 "
      "tokens; "
      "greedy: %d/%zu prompts equal token for token (smallest top-2 margin "
      "%.3g)\n",
      GetParam().c_str(), max_diff, kContextLengths.size(), matched,
      kPromptLengths.size(), min_margin);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceParityTest,
                         ::testing::Values("llama", "qwen2",
                                           "llama_rope3_tied_bf16_sharded"));

}  // namespace
}  // namespace coldcompress
