// The engine without gRPC: stop token ids, text streaming with stop strings.
#include "server/engine/engine.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "tests/testing/fixture_engine.h"

namespace coldcompress {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions options;
    options.threads = 1;
    engine_ = testing::FixtureEngine("llama", options);
  }

  // Runs a Generate to completion; returns the final result.
  GenerateFinal Run(GenerateInput input) {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<GenerateFinal> final;
    auto handle = engine_->Generate(std::move(input), [&](GenerateEvent e) {
      std::lock_guard<std::mutex> lock(mu);
      if (e.final) final = std::move(e.final);
      cv.notify_all();
    });
    EXPECT_TRUE(handle.ok()) << handle.status();
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return final.has_value(); });
    return *final;
  }

  std::unique_ptr<Engine> engine_;
};

// A chat template's end-of-turn ids end generation like EOS ("stop").
TEST_F(EngineTest, StopTokenIdsEndGeneration) {
  GenerateInput input;
  input.prompt = {1, 40, 41, 42, 43};
  input.max_new_tokens = 12;
  input.ignore_eos = false;
  const GenerateFinal plain = Run(input);
  ASSERT_EQ(plain.finish_reason, "length");
  input.stop_token_ids = {plain.output_ids[3]};
  const GenerateFinal stopped = Run(input);
  EXPECT_EQ(stopped.finish_reason, "stop");
  // The output ends at the first occurrence of the stop id.
  size_t first = 0;
  while (plain.output_ids[first] != plain.output_ids[3]) ++first;
  EXPECT_EQ(stopped.output_ids.size(), first + 1);
}

TEST_F(EngineTest, ChatTemplateIsChosenFromTheTokenizer) {
  EXPECT_EQ(engine_->chat_template().family(), ChatTemplate::Family::kLlama2);
  EXPECT_EQ(engine_->chat_template().StopIds(), std::vector<int32_t>{2});
}

}  // namespace
}  // namespace coldcompress
