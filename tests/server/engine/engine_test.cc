// The engine without gRPC: stop token ids, text streaming with stop strings.
#include "server/engine/engine.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "server/engine/task.h"
#include "tests/testing/fixture_engine.h"

namespace coldcompress {
namespace {

// What a model step throws becomes the request's status: an allocator out
// of memory is RESOURCE_EXHAUSTED (the client may retry smaller or
// elsewhere), anything else INTERNAL, each with LibTorch's message.
TEST(StepErrorTest, OutOfMemoryIsResourceExhausted) {
  auto status_of = [](auto thrower) {
    try {
      thrower();
    } catch (...) {
      return StepError(std::current_exception());
    }
    return absl::OkStatus();
  };
  const absl::Status oom = status_of(
      [] { TORCH_CHECK_WITH(OutOfMemoryError, false, "tried to allocate"); });
  EXPECT_EQ(oom.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(oom.message().find("out of memory in a model step: "),
            std::string::npos)
      << oom;
  EXPECT_NE(oom.message().find("tried to allocate"), std::string::npos) << oom;
  const absl::Status torch =
      status_of([] { TORCH_CHECK(false, "shapes do not match"); });
  EXPECT_EQ(torch.code(), absl::StatusCode::kInternal);
  EXPECT_NE(torch.message().find("shapes do not match"), std::string::npos);
  const absl::Status other =
      status_of([] { throw std::runtime_error("something else"); });
  EXPECT_EQ(other.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(other.message(), "model step failed: something else");
}

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
