// Continuous batching: requests under different policies and cache sizes,
// decoded together in one batched forward per scheduler round, produce
// exactly the tokens each produces alone (greedy, float32), sampled requests
// keep their own random streams, and the batches really hold several
// sequences.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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
  // `on_event` sees every event first, on the scheduler thread.
  Pending(Engine& engine, GenerateInput input,
          std::function<void(const GenerateEvent&)> on_event = {}) {
    auto handle =
        engine.Generate(std::move(input), [this, on_event](GenerateEvent e) {
          if (on_event) on_event(e);
          std::lock_guard<std::mutex> lock(mu_);
          if (!e.status.ok()) status_ = e.status;
          if (e.final || !e.status.ok()) {
            if (e.final) final_ = std::move(e.final);
            done_ = true;
            cv_.notify_all();
          }
        });
    EXPECT_TRUE(handle.ok()) << handle.status();
    if (handle.ok()) {
      handle_ = *handle;
    } else {
      done_ = true;
    }
  }
  void Cancel() { handle_->Cancel(); }
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
  std::shared_ptr<RequestHandle> handle_;
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

// A prompt of n tokens.
std::vector<int32_t> LongPrompt(int n) {
  std::vector<int32_t> ids = {1};
  for (int t = 1; t < n; ++t) ids.push_back(3 + (t * 7919) % 500);
  return ids;
}

// A request that decodes for a long time, counting its tokens.
GenerateInput Streamer() {
  GenerateInput in;
  in.prompt = Prompt(0);
  in.max_new_tokens = 600;
  in.ignore_eos = true;
  return in;
}

// Waits until `count` reaches `n`.
void WaitFor(const std::atomic<int>& count, int n) {
  while (count.load() < n)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// A long prompt goes through the model 32 tokens a round, with the streaming
// request's decode step between its chunks, and decodes what it decodes
// alone and what a one-piece prefill gives.
TEST(ChunkedPrefillTest, LongPromptDecodesBetweenOthersSteps) {
  EngineOptions options;
  options.threads = 1;
  options.prefill_chunk_tokens = 32;
  std::unique_ptr<Engine> engine = testing::FixtureEngine("llama", options);
  constexpr int kPrompt = 640;  // 20 chunks
  auto long_request = [&](const std::vector<std::string>& strategy) {
    GenerateInput in;
    in.prompt = LongPrompt(kPrompt);
    in.max_new_tokens = 12;
    in.ignore_eos = true;
    in.policy.strategy = strategy;
    in.policy.max_cache_length = {strategy[0] == "full" ? 1.0 : 0.25};
    in.policy_given = true;
    return in;
  };
  for (const std::string strategy : {"recent_global", "l2"}) {
    SCOPED_TRACE(strategy);
    const GenerateFinal alone =
        Pending(*engine, long_request({strategy})).Wait();
    ASSERT_EQ(alone.output_ids.size(), 12u);

    std::atomic<int> streamed{0};
    Pending streamer(*engine, Streamer(), [&](const GenerateEvent& e) {
      streamed += static_cast<int>(e.token_ids.size());
    });
    WaitFor(streamed, 3);
    const int before = streamed.load();
    std::atomic<int> at_first_token{-1};
    Pending chunked(*engine, long_request({strategy}),
                    [&](const GenerateEvent& e) {
                      if (!e.token_ids.empty() && at_first_token.load() < 0)
                        at_first_token = streamed.load();
                    });
    EXPECT_EQ(chunked.Wait().output_ids, alone.output_ids);
    // One streamer step a round, each round one chunk: at least 19 steps
    // between the long request's arrival and its first token (read before
    // it was queued, so a slow test thread only adds to the count).
    EXPECT_GE(at_first_token.load() - before, 19);
    streamer.Cancel();
    streamer.Wait();
  }

  EngineOptions whole_options = options;
  whole_options.prefill_chunk_tokens = 0;
  std::unique_ptr<Engine> whole =
      testing::FixtureEngine("llama", whole_options);
  for (const std::string strategy : {"recent_global", "l2", "full"}) {
    SCOPED_TRACE(strategy);
    const GenerateFinal a = Pending(*engine, long_request({strategy})).Wait();
    const GenerateFinal b = Pending(*whole, long_request({strategy})).Wait();
    EXPECT_EQ(a.output_ids, b.output_ids);
    EXPECT_DOUBLE_EQ(a.stats.compression_ratio, b.stats.compression_ratio);
  }
}

// Score's context goes in by chunks (and, beyond a bounded cache's prefill,
// by decode steps in the batch) beside a streaming request, and scores what
// a one-piece prefill alone scores.
TEST(ChunkedPrefillTest, ScoreContextInChunks) {
  EngineOptions options;
  options.threads = 1;
  options.prefill_chunk_tokens = 16;
  std::unique_ptr<Engine> chunked = testing::FixtureEngine("llama", options);
  options.prefill_chunk_tokens = 0;
  std::unique_ptr<Engine> whole = testing::FixtureEngine("llama", options);
  auto score = [](Engine& engine, const ScoreInput& in) {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<absl::StatusOr<ScoreOutput>> result;
    auto handle = engine.Score(in, [&](absl::StatusOr<ScoreOutput> out) {
      std::lock_guard<std::mutex> lock(mu);
      result = std::move(out);
      cv.notify_all();
    });
    EXPECT_TRUE(handle.ok()) << handle.status();
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return result.has_value() || !handle.ok(); });
    EXPECT_TRUE(result && result->ok());
    return result && result->ok() ? **result : ScoreOutput();
  };
  std::atomic<int> streamed{0};
  Pending streamer(*chunked, Streamer(), [&](const GenerateEvent& e) {
    streamed += static_cast<int>(e.token_ids.size());
  });
  WaitFor(streamed, 3);
  for (const std::string strategy : {"recent_global", "l2", "heavy_hitter"}) {
    SCOPED_TRACE(strategy);
    ScoreInput in;
    in.context = LongPrompt(200);
    // Continuations of different lengths: each gets caches of its own plan.
    in.continuations = {{40, 41, 42, 43, 44}, {50, 51, 52, 53, 54, 55, 56}};
    in.policy.strategy = {strategy};
    in.policy.max_cache_length = {0.5};
    const ScoreOutput a = score(*chunked, in);
    const ScoreOutput b = score(*whole, in);
    ASSERT_EQ(a.scores.size(), 2u);
    ASSERT_EQ(b.scores.size(), 2u);
    for (size_t c = 0; c < 2; ++c) {
      ASSERT_EQ(a.scores[c].token_logprobs.size(), in.continuations[c].size());
      for (size_t t = 0; t < in.continuations[c].size(); ++t) {
        EXPECT_NEAR(a.scores[c].token_logprobs[t],
                    b.scores[c].token_logprobs[t], 1e-4)
            << "continuation " << c << " token " << t;
      }
      EXPECT_EQ(a.scores[c].is_greedy, b.scores[c].is_greedy);
      EXPECT_DOUBLE_EQ(a.scores[c].stats.compression_ratio,
                       b.scores[c].stats.compression_ratio);
    }
  }
  streamer.Cancel();
  streamer.Wait();
}

// A request stopped between its prefill's chunks leaves its new session as
// if it never ran: the session is gone, and the next turn on that id starts
// afresh and decodes what a first turn decodes.
TEST(ChunkedPrefillTest, StopBetweenChunksDropsTheNewSession) {
  EngineOptions options;
  options.threads = 1;
  options.prefill_chunk_tokens = 16;
  std::unique_ptr<Engine> engine = testing::FixtureEngine("llama", options);
  GenerateInput in;
  in.prompt = LongPrompt(1500);  // 94 chunks
  in.max_new_tokens = 4;
  in.ignore_eos = true;
  in.session_id = "chunked";

  std::atomic<int> streamed{0};
  Pending streamer(*engine, Streamer(), [&](const GenerateEvent& e) {
    streamed += static_cast<int>(e.token_ids.size());
  });
  WaitFor(streamed, 3);
  Pending stopped(*engine, in);
  WaitFor(streamed, streamed.load() + 10);  // a few chunks in
  stopped.Cancel();
  const GenerateFinal cancelled = stopped.Wait();
  EXPECT_EQ(cancelled.finish_reason, "cancelled");
  EXPECT_TRUE(cancelled.output_ids.empty()) << "stopped inside the prefill";
  absl::StatusOr<SessionSnapshot> gone =
      engine->GetSession("", "chunked", false);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound) << gone.status();
  streamer.Cancel();
  streamer.Wait();
  EXPECT_EQ(engine->cache_bytes(), 0);

  GenerateInput fresh = in;
  fresh.session_id.clear();
  const GenerateFinal expected = Pending(*engine, fresh).Wait();
  const GenerateFinal again = Pending(*engine, in).Wait();
  EXPECT_EQ(again.output_ids, expected.output_ids);
  absl::StatusOr<SessionSnapshot> session =
      engine->GetSession("", "chunked", false);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ(session->tokens_seen, 1500 + 4);
}

}  // namespace
}  // namespace coldcompress
