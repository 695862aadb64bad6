// The engine from many threads at once, without gRPC, so that every lock and
// thread involved is our own and ThreadSanitizer sees all of it
// (scripts/sanitize.sh tsan): clients submit one-shot and session requests
// under several policies and cancel a third of them at random moments, while
// another thread reads and closes sessions. Every request must end exactly
// once and every cache byte must come back.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "server/engine/engine.h"
#include "tests/testing/fixture_engine.h"
#include "tests/testing/fixtures.h"

namespace coldcompress {
namespace {

// One request's events, as the scheduler thread delivers them.
struct Outcome {
  std::mutex mu;
  std::condition_variable cv;
  int chunks = 0;
  int ends = 0;  // final results and errors: exactly one is expected
  absl::Status status;
  std::string finish_reason;

  GenerateSink Sink() {
    return [this](GenerateEvent e) {
      std::lock_guard<std::mutex> lock(mu);
      if (!e.token_ids.empty()) ++chunks;
      if (e.final || !e.status.ok()) {
        ++ends;
        status = e.status;
        if (e.final) finish_reason = e.final->finish_reason;
        cv.notify_all();
      }
    };
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return ends > 0; });
  }
};

PolicySpec Policy(int which) {
  PolicySpec spec;
  static const char* const kStrategies[] = {"full", "recent_global",
                                            "heavy_hitter", "l2", "random"};
  spec.strategy = {kStrategies[which % 5]};
  if (which % 5 != 0) spec.max_cache_length = {0.5};
  return spec;
}

TEST(EngineConcurrencyTest, ClientsOnManyThreadsEndExactlyOnceAndFreeAll) {
  EngineOptions options;
  options.threads = 1;
  options.max_queued_requests = 1000;
  std::unique_ptr<Engine> owned = testing::FixtureEngine("llama", options);
  Engine& engine = *owned;

  constexpr int kThreads = 8, kRequestsPerThread = 24, kTurnsPerSession = 3;
  std::atomic<int> accepted{0}, refused{0}, cancelled{0}, finished{0};
  std::atomic<int> bad_ends{0}, ended_by_close{0};
  std::atomic<bool> clients_done{false};

  // Reads and closes sessions while the clients run; the owners alternate so
  // that half the calls name another principal's session (NOT_FOUND).
  std::atomic<int> inspections{0}, sessions_read{0}, sessions_closed{0};
  std::thread inspector([&] {
    std::mt19937 rng(99);
    while (!clients_done.load()) {
      const int t = rng() % kThreads;
      const std::string id = "t" + std::to_string(t) + "-" +
                             std::to_string(rng() % kRequestsPerThread);
      const std::string owner = "p" + std::to_string(rng() % 2);
      if (rng() % 4 == 0) {
        absl::StatusOr<int64_t> closed = engine.CloseSession(owner, id);
        EXPECT_TRUE(closed.ok() || absl::IsNotFound(closed.status()))
            << closed.status();
        if (closed.ok()) ++sessions_closed;
      } else {
        absl::StatusOr<SessionSnapshot> s = engine.GetSession(owner, id, true);
        EXPECT_TRUE(s.ok() || absl::IsNotFound(s.status())) << s.status();
        if (s.ok()) ++sessions_read;
      }
      ++inspections;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });

  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      for (int r = 0; r < kRequestsPerThread; ++r) {
        GenerateInput in;
        const int length = 8 + static_cast<int>(rng() % 40);
        for (int i = 0; i < length; ++i)
          in.prompt.push_back(3 + static_cast<int32_t>(rng() % 400));
        in.max_new_tokens = 4 + static_cast<int64_t>(rng() % 24);
        in.ignore_eos = true;
        in.owner = "p" + std::to_string(t % 2);
        if (r % 2 == 1) {  // every other request is a session turn
          in.session_id = "t" + std::to_string(t) + "-" +
                          std::to_string(r / (2 * kTurnsPerSession));
        }
        in.policy = Policy(t);
        in.policy_given = true;
        Outcome outcome;
        absl::StatusOr<std::shared_ptr<RequestHandle>> handle =
            engine.Generate(std::move(in), outcome.Sink());
        if (!handle.ok()) {
          // A session turn may meet its predecessor still running after a
          // cancel, or a session the inspector closed mid-turn.
          EXPECT_TRUE(absl::IsFailedPrecondition(handle.status()))
              << handle.status();
          ++refused;
          continue;
        }
        ++accepted;
        if (rng() % 3 == 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
          (*handle)->Cancel();
        }
        outcome.Wait();
        // Give a second end, if there were one, time to arrive.
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        std::lock_guard<std::mutex> lock(outcome.mu);
        if (outcome.ends != 1) ++bad_ends;
        if (outcome.status.ok() && outcome.finish_reason == "cancelled") {
          ++cancelled;
        } else if (outcome.status.ok()) {
          EXPECT_EQ(outcome.finish_reason, "length");
          ++finished;
        } else {
          // A session closed under a running turn.
          EXPECT_TRUE(absl::IsCancelled(outcome.status) ||
                      absl::IsNotFound(outcome.status))
              << outcome.status;
          ++ended_by_close;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  clients_done = true;
  inspector.join();
  std::printf(
      "%d requests accepted (%d finished, %d cancelled, %d ended by a "
      "close), %d refused; beside them %d session reads and closes, %d found "
      "a session to read, %d one to close\n",
      accepted.load(), finished.load(), cancelled.load(), ended_by_close.load(),
      refused.load(), inspections.load(), sessions_read.load(),
      sessions_closed.load());
  EXPECT_EQ(bad_ends.load(), 0);
  EXPECT_EQ(accepted + refused, kThreads * kRequestsPerThread);
  EXPECT_EQ(finished + cancelled + ended_by_close, accepted.load());
  EXPECT_GT(sessions_read.load(), 0);
  EXPECT_GT(sessions_closed.load(), 0);
  EXPECT_GT(finished.load(), 0);
  EXPECT_GT(cancelled.load(), 0);

  for (int t = 0; t < kThreads; ++t) {
    for (int k = 0; k < kRequestsPerThread; ++k) {
      const std::string id = "t" + std::to_string(t) + "-" + std::to_string(k);
      (void)engine.CloseSession("p" + std::to_string(t % 2), id);
    }
  }
  // The last final event may reach its client just before its task is gone.
  const auto t0 = std::chrono::steady_clock::now();
  while ((engine.active_requests() != 0 || engine.cache_bytes() != 0) &&
         std::chrono::steady_clock::now() - t0 <
             std::chrono::duration<double>(testing::TimeLimit(2.0))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine.active_requests(), 0);
  EXPECT_EQ(engine.num_sessions(), 0u);
  EXPECT_EQ(engine.cache_bytes(), 0);
  const std::string metrics = engine.metrics().Serialize();
  const double allocated = testing::MetricSum(
      metrics, "coldcompress_kv_cache_allocated_bytes_total");
  EXPECT_GT(allocated, 0);
  EXPECT_EQ(allocated, testing::MetricSum(
                           metrics, "coldcompress_kv_cache_freed_bytes_total"));
}

}  // namespace
}  // namespace coldcompress
