// Continuous batching: requests under different policies and cache sizes,
// decoded together in one batched forward per scheduler round, produce
// exactly the tokens each produces alone (greedy, float32), sampled requests
// keep their own random streams, and the batches really hold several
// sequences.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/engine/engine.h"
#include "tests/testing/fixture_engine.h"

namespace coldcompress {
namespace {

// A request in flight and its final result.
class Pending {
 public:
  Pending(Engine& engine, GenerateInput input) {
    auto handle = engine.Generate(std::move(input), [this](GenerateEvent e) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!e.status.ok()) status_ = e.status;
      if (e.final || !e.status.ok()) {
        if (e.final) final_ = std::move(e.final);
        done_ = true;
        cv_.notify_all();
      }
    });
    EXPECT_TRUE(handle.ok()) << handle.status();
    if (!handle.ok()) done_ = true;
  }
  GenerateFinal Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    EXPECT_TRUE(status_.ok()) << status_;
    return final_.value_or(GenerateFinal());
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  absl::Status status_;
  std::optional<GenerateFinal> final_;
};

// Prompt i: 24 + 9 i tokens from a fixed sequence.
std::vector<int32_t> Prompt(int i) {
  std::vector<int32_t> ids = {1};
  uint32_t x = 2654435761u * static_cast<uint32_t>(i + 1);
  for (int t = 0; t < 24 + 9 * i; ++t) {
    x = x * 1664525u + 1013904223u;
    ids.push_back(3 + static_cast<int32_t>((x >> 8) % 500));
  }
  return ids;
}

// Request i: a policy of its own (strategies, sizes, quantized storage,
// analysis mode), greedy except the last, which samples.
GenerateInput Request(int i) {
  GenerateInput in;
  in.prompt = Prompt(i);
  in.max_new_tokens = 20 + 3 * i;
  in.ignore_eos = true;
  PolicySpec& p = in.policy;
  switch (i) {
    case 0:
      break;  // full
    case 1:
      p.strategy = {"recent_global"};
      p.max_cache_length = {0.5};
      break;
    case 2:
      p.strategy = {"heavy_hitter"};
      p.prompt_compression = {"heavy_hitter"};
      p.max_cache_length = {0.25};
      break;
    case 3:
      p.strategy = {"l2"};
      p.max_cache_length = {0.5};
      break;
    case 4:
      p.strategy = {"random"};
      p.max_cache_length = {0.5};
      p.seed = 7;
      break;
    case 5:
      p.strategy = {"full"};
      p.cache_bits = 4;
      break;
    case 6:
      p.strategy = {"debug_heavy_hitter"};
      p.max_cache_length = {0.5};
      break;
    default:
      p.strategy = {"recent_global", "full"};
      p.max_cache_length = {0.3, 1.0};
      in.sampling.temperature = 0.8f;
      in.sampling.top_k = 20;
      in.sampling.seed = 11;
      break;
  }
  in.policy_given = true;
  return in;
}

constexpr int kRequests = 8;

// The value of an exposition line `name{labels} value`, or -1.
double Sample(const std::string& text, const std::string& series) {
  const size_t at = text.find(series + " ");
  if (at == std::string::npos) return -1;
  const size_t start = at + series.size() + 1;
  double v = -1;
  if (!absl::SimpleAtod(text.substr(start, text.find('\n', start) - start), &v))
    return -1;
  return v;
}

TEST(BatchingTest, BatchedRequestsDecodeExactlyAsAlone) {
  EngineOptions options;
  options.threads = 1;
  std::unique_ptr<Engine> engine = testing::FixtureEngine("llama", options);

  std::vector<GenerateFinal> alone;
  for (int i = 0; i < kRequests; ++i)
    alone.push_back(Pending(*engine, Request(i)).Wait());
  const std::string before = engine->metrics().Serialize();
  EXPECT_EQ(Sample(before, "coldcompress_decode_batch_size_count"),
            Sample(before, "coldcompress_decode_batch_size_bucket{le=\"1\"}"))
      << "one request at a time is never batched";

  std::vector<std::unique_ptr<Pending>> together;
  for (int i = 0; i < kRequests; ++i)
    together.push_back(std::make_unique<Pending>(*engine, Request(i)));
  for (int i = 0; i < kRequests; ++i) {
    SCOPED_TRACE(absl::StrCat("request ", i));
    const GenerateFinal batched = together[i]->Wait();
    ASSERT_EQ(alone[i].output_ids.size(),
              static_cast<size_t>(Request(i).max_new_tokens));
    EXPECT_EQ(batched.output_ids, alone[i].output_ids);
    EXPECT_EQ(batched.text, alone[i].text);
    EXPECT_DOUBLE_EQ(batched.stats.compression_ratio,
                     alone[i].stats.compression_ratio);
    EXPECT_EQ(batched.stats.cache_bytes, alone[i].stats.cache_bytes);
    if (alone[i].stats.attention_loss) {
      ASSERT_TRUE(batched.stats.attention_loss.has_value());
      EXPECT_NEAR(*batched.stats.attention_loss, *alone[i].stats.attention_loss,
                  1e-5);
    }
  }
  // The requests start one prefill per round and the first decodes 20
  // tokens, so the eight are decoded together for several rounds.
  const std::string after = engine->metrics().Serialize();
  const double steps = Sample(after, "coldcompress_decode_batch_size_count");
  const double up_to_4 =
      Sample(after, "coldcompress_decode_batch_size_bucket{le=\"4\"}");
  EXPECT_GT(steps - up_to_4, 0) << after;
  EXPECT_EQ(Sample(after, "coldcompress_decode_batch_size_bucket{le=\"8\"}"),
            steps);
  EXPECT_EQ(engine->cache_bytes(), 0);
}

// A session's later turn feeds its prompt token by token when its caches
// cannot take it in bulk; those steps join the batch too.
TEST(BatchingTest, SessionTurnsFeedInsideTheBatch) {
  EngineOptions options;
  options.threads = 1;
  std::unique_ptr<Engine> engine = testing::FixtureEngine("llama", options);
  auto turn = [](const std::string& session, int which) {
    GenerateInput in;
    in.prompt = Prompt(which);
    in.max_new_tokens = 16;
    in.ignore_eos = true;
    in.session_id = session;
    in.policy.strategy = {"heavy_hitter"};
    in.policy.max_cache_length = {0.3};
    in.policy_given = true;
    return in;
  };
  const GenerateFinal first = Pending(*engine, turn("alone", 1)).Wait();
  const GenerateFinal second = Pending(*engine, turn("alone", 2)).Wait();
  EXPECT_EQ(Pending(*engine, turn("batched", 1)).Wait().output_ids,
            first.output_ids);
  std::vector<std::unique_ptr<Pending>> others;
  for (int i = 0; i < 4; ++i)
    others.push_back(std::make_unique<Pending>(*engine, Request(i)));
  Pending batched(*engine, turn("batched", 2));
  EXPECT_EQ(batched.Wait().output_ids, second.output_ids);
  for (auto& other : others) other->Wait();
  const std::string text = engine->metrics().Serialize();
  EXPECT_GT(Sample(text, "coldcompress_decode_batch_size_count") -
                Sample(text, "coldcompress_decode_batch_size_bucket{le=\"1\"}"),
            0);
}

}  // namespace
}  // namespace coldcompress
