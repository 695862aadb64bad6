// Limits, deadlines, the session store's idle TTL and memory eviction, and the
// graceful drain, each over a real server on loopback (in-process, or the
// server binary when a signal is part of the test).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <regex>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "server/engine/engine.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/processes.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

using testing::FixtureDir;
using testing::IdsRequest;
using testing::ServerHarness;
using Clock = std::chrono::steady_clock;

std::vector<int32_t> Prompt(int32_t seed, int n) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(1 + (seed * 131 + i * 37) % 400);
  return ids;
}

v1::GenerateRequest SessionRequest(const std::string& id, int prompt,
                                   uint32_t new_tokens) {
  v1::GenerateRequest r = IdsRequest(Prompt(prompt, prompt), new_tokens);
  r.set_session_id(id);
  return r;
}

grpc::Status GetSession(ServerHarness& h, const std::string& id) {
  grpc::ClientContext ctx;
  v1::GetSessionRequest request;
  request.set_session_id(id);
  v1::SessionInfo info;
  return h.stub().GetSession(&ctx, request, &info);
}

// The value of one sample in the text exposition ("name{labels}"), -1 when
// absent.
double Sample(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

// A Generate stream read to its end on a thread of its own.
class Streamer {
 public:
  Streamer(std::shared_ptr<grpc::Channel> channel, v1::GenerateRequest request)
      : thread_([this, channel, request] {
          auto stub = v1::ColdCompress::NewStub(channel);
          auto reader = stub->Generate(&context_, request);
          v1::GenerateResponse response;
          while (reader->Read(&response)) {
            if (response.has_chunk()) {
              tokens_ += response.chunk().token_ids_size();
              started_.store(true);
            }
            if (response.has_final())
              reason_ = response.final().finish_reason();
          }
          status_ = reader->Finish();
        }) {}
  ~Streamer() {
    if (thread_.joinable()) {
      context_.TryCancel();
      thread_.join();
    }
  }

  // Waits up to `seconds` for the first generated token.
  bool WaitStarted(double seconds) {
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (!started_.load() && Clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return started_.load();
  }
  void Cancel() { context_.TryCancel(); }
  void Join() { thread_.join(); }
  // After Join().
  const grpc::Status& status() const { return status_; }
  int tokens() const { return tokens_; }
  const std::string& reason() const { return reason_; }

 private:
  grpc::ClientContext context_;
  std::atomic<bool> started_{false};
  int tokens_ = 0;
  std::string reason_;
  grpc::Status status_;
  std::thread thread_;  // last: starts once the rest exists
};

TEST(LimitsTest, OverALimitIsResourceExhaustedNamingItAndNothingStarts) {
  ServerConfig config;
  config.max_new_tokens = 8;
  config.max_prompt_tokens = 16;
  config.max_stop_strings = 2;
  config.max_stop_string_bytes = 4;
  config.max_sessions = 1;
  ServerHarness h(FixtureDir("llama"), true, config);
  ASSERT_TRUE(h.Generate(SessionRequest("one", 4, 2)).status.ok());
  const int64_t baseline = h.server().engine()->cache_bytes();
  ASSERT_GT(baseline, 0);

  struct Case {
    std::string name;
    v1::GenerateRequest request;
    std::string message;
  };
  v1::GenerateRequest stops3 = IdsRequest(Prompt(1, 4), 2);
  for (const char* s : {"a", "b", "c"}) stops3.add_stop(s);
  v1::GenerateRequest stops10k = IdsRequest(Prompt(1, 4), 2);
  for (int i = 0; i < 10000; ++i) stops10k.add_stop("x");
  v1::GenerateRequest long_stop = IdsRequest(Prompt(1, 4), 2);
  long_stop.add_stop("abcde");
  const std::vector<Case> cases = {
      {"max_new_tokens", IdsRequest(Prompt(1, 4), 9),
       "max_new_tokens: 9 exceeds the server limit 8 (max_new_tokens)"},
      {"max_prompt_tokens", IdsRequest(Prompt(1, 17), 2),
       "prompt: 17 tokens exceed the server limit 16 (max_prompt_tokens)"},
      {"3 stop strings", stops3,
       "stop: 3 strings exceed the server limit 2 (max_stop_strings)"},
      {"10,000 stop strings", stops10k,
       "stop: 10000 strings exceed the server limit 2 (max_stop_strings)"},
      {"long stop string", long_stop,
       "stop[0]: 5 bytes exceed the server limit 4 (max_stop_string_bytes)"},
      {"max_sessions", SessionRequest("two", 4, 2),
       "the server holds its maximum of 1 sessions (limit max_sessions)"},
  };
  for (const Case& c : cases) {
    const ServerHarness::Stream s = h.Generate(c.request);
    EXPECT_EQ(s.status.error_code(), grpc::RESOURCE_EXHAUSTED) << c.name;
    EXPECT_NE(s.status.error_message().find(c.message), std::string::npos)
        << c.name << ": " << s.status.error_message();
    EXPECT_TRUE(s.responses.empty()) << c.name;
    EXPECT_EQ(h.server().engine()->cache_bytes(), baseline) << c.name;
  }
  EXPECT_EQ(GetSession(h, "two").error_code(), grpc::NOT_FOUND);
  const std::string metrics = h.server().engine()->metrics().Serialize();
  EXPECT_EQ(
      Sample(
          metrics,
          R"(coldcompress_requests_refused_total{limit="max_stop_strings"})"),
      2);
  EXPECT_EQ(
      Sample(metrics,
             R"(coldcompress_requests_refused_total{limit="max_sessions"})"),
      1);
  // Still serving.
  EXPECT_TRUE(h.Generate(IdsRequest(Prompt(2, 4), 8)).status.ok());
}

TEST(LimitsTest, StreamsOverMaxConcurrentStreamsAreRefused) {
  ServerConfig config;
  config.max_concurrent_streams = 2;
  ServerHarness h(FixtureDir("llama"), true, config);
  auto a =
      std::make_unique<Streamer>(h.channel(), IdsRequest(Prompt(1, 8), 1900));
  auto b =
      std::make_unique<Streamer>(h.channel(), IdsRequest(Prompt(2, 8), 1900));
  ASSERT_TRUE(a->WaitStarted(30));
  ASSERT_TRUE(b->WaitStarted(30));
  const ServerHarness::Stream third = h.Generate(IdsRequest(Prompt(3, 8), 4));
  EXPECT_EQ(third.status.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_NE(third.status.error_message().find(
                "already has 2 Generate streams open (limit "
                "max_concurrent_streams)"),
            std::string::npos)
      << third.status.error_message();
  a.reset();  // cancels and waits
  b.reset();
  // The slots come back once the cancelled streams are done.
  grpc::Status status;
  for (int i = 0; i < 200; ++i) {
    status = h.Generate(IdsRequest(Prompt(3, 8), 4)).status;
    if (status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// Overload at 10x capacity: with room for 4 requests, 40 arrive at once; the
// surplus is refused with RESOURCE_EXHAUSTED within 50 ms and every accepted
// request completes.
TEST(LimitsTest, OverloadRefusesTheSurplusFastAndCompletesTheRest) {
  ServerConfig config;
  config.max_queued_requests = 4;
  ServerHarness h(FixtureDir("llama"), true, config);
  constexpr int kClients = 40;
  struct Result {
    grpc::Status status;
    double seconds = 0;
    int tokens = 0;
  };
  std::vector<Result> results(kClients);
  std::atomic<int> ready{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto stub = v1::ColdCompress::NewStub(h.channel());
      ++ready;
      while (ready.load() < kClients) std::this_thread::yield();
      const auto t0 = Clock::now();
      grpc::ClientContext ctx;
      auto reader = stub->Generate(&ctx, IdsRequest(Prompt(i, 32), 300));
      v1::GenerateResponse response;
      while (reader->Read(&response)) {
        if (response.has_chunk())
          results[i].tokens += response.chunk().token_ids_size();
      }
      results[i].status = reader->Finish();
      results[i].seconds =
          std::chrono::duration<double>(Clock::now() - t0).count();
    });
  }
  for (auto& t : clients) t.join();
  int accepted = 0, refused = 0;
  double slowest_refusal = 0;
  for (const Result& r : results) {
    if (r.status.ok()) {
      ++accepted;
      EXPECT_EQ(r.tokens, 300);
    } else {
      ++refused;
      EXPECT_EQ(r.status.error_code(), grpc::RESOURCE_EXHAUSTED)
          << r.status.error_message();
      EXPECT_NE(r.status.error_message().find("max_queued_requests"),
                std::string::npos);
      slowest_refusal = std::max(slowest_refusal, r.seconds);
    }
  }
  std::printf("%d accepted, %d refused; slowest refusal %.1f ms\n", accepted,
              refused, slowest_refusal * 1e3);
  EXPECT_GE(accepted, 4);
  EXPECT_GE(refused, kClients - 8);  // a few may fit as early ones finish
  EXPECT_LT(slowest_refusal, testing::TimeLimit(0.05));
}

TEST(LimitsTest, DeadlinesStopRequestsAndFreeTheirCaches) {
  ServerConfig config;
  config.max_deadline_s = 0.25;
  ServerHarness h(FixtureDir("llama"), true, config);
  Engine& engine = *h.server().engine();

  // The server's ceiling, on a named session: the session survives with the
  // tokens generated so far and takes the next turn.
  ServerHarness::Stream s = h.Generate(SessionRequest("slow", 8, 2000));
  EXPECT_EQ(s.status.error_code(), grpc::DEADLINE_EXCEEDED);
  EXPECT_NE(s.status.error_message().find("max_deadline_s"), std::string::npos)
      << s.status.error_message();
  EXPECT_LT(s.tokens.size(), 2000u);
  const int64_t session_bytes = engine.cache_bytes();
  EXPECT_GT(session_bytes, 0);
  EXPECT_TRUE(h.Generate(SessionRequest("slow", 2, 2)).status.ok());

  // One-shot: its cache is gone when the client hears the end.
  const int64_t before = engine.cache_bytes();
  s = h.Generate(IdsRequest(Prompt(3, 8), 2000));
  EXPECT_EQ(s.status.error_code(), grpc::DEADLINE_EXCEEDED);
  EXPECT_EQ(engine.cache_bytes(), before);

  // The client's own deadline, shorter than the ceiling.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(60));
  auto reader = h.stub().Generate(&context, IdsRequest(Prompt(4, 8), 2000));
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::DEADLINE_EXCEEDED);
  // The engine stops it before its next step and frees the cache.
  for (int i = 0; i < 200 && engine.cache_bytes() != before; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine.cache_bytes(), before);
  for (int i = 0; i < 200 && engine.active_requests() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine.active_requests(), 0);
}

TEST(SessionStoreTest, IdleSessionsExpireAndTheirNextTurnSaysSo) {
  ServerConfig config;
  config.session_ttl_s = 0.3;
  ServerHarness h(FixtureDir("llama"), true, config);
  Engine& engine = *h.server().engine();
  ASSERT_TRUE(h.Generate(SessionRequest("old", 8, 4)).status.ok());
  EXPECT_TRUE(GetSession(h, "old").ok());
  EXPECT_GT(engine.cache_bytes(), 0);
  for (int i = 0; i < 300 && engine.num_sessions() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine.num_sessions(), 0u);
  EXPECT_EQ(engine.cache_bytes(), 0);

  grpc::Status get = GetSession(h, "old");
  EXPECT_EQ(get.error_code(), grpc::NOT_FOUND);
  EXPECT_NE(get.error_message().find(
                "was closed by the server: idle longer than session_ttl_s"),
            std::string::npos)
      << get.error_message();
  // The next turn hears it once; the id may then start a new session.
  ServerHarness::Stream s = h.Generate(SessionRequest("old", 2, 2));
  EXPECT_EQ(s.status.error_code(), grpc::NOT_FOUND);
  EXPECT_NE(s.status.error_message().find("session_ttl_s"), std::string::npos);
  s = h.Generate(SessionRequest("old", 2, 2));
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_EQ(s.final.usage().prompt_tokens(), 2u);
  EXPECT_EQ(Sample(engine.metrics().Serialize(),
                   R"(coldcompress_sessions_evicted_total{reason="ttl"})"),
            1);
}

TEST(SessionStoreTest, TheMemoryBudgetEvictsIdleSessionsLeastRecentlyUsed) {
  // Four sessions of 24 + 8 tokens with full caches (32 slots a layer); the
  // budget holds two and a half.
  ServerHarness probe(FixtureDir("llama"));
  ASSERT_TRUE(probe.Generate(SessionRequest("p", 24, 8)).status.ok());
  const int64_t one = probe.server().engine()->cache_bytes();
  ASSERT_GT(one, 0);

  ServerConfig config;
  config.max_cache_bytes = one * 5 / 2;
  ServerHarness h(FixtureDir("llama"), true, config);
  Engine& engine = *h.server().engine();
  for (const char* id : {"a", "b", "c"}) {
    ServerHarness::Stream s = h.Generate(SessionRequest(id, 24, 8));
    ASSERT_TRUE(s.status.ok()) << id << ": " << s.status.error_message();
  }
  // "c" needed room: "a", used least recently, made it.
  grpc::Status get = GetSession(h, "a");
  EXPECT_EQ(get.error_code(), grpc::NOT_FOUND);
  EXPECT_NE(get.error_message().find(
                "was evicted by the server to make room in the KV-cache "
                "budget (max_cache_bytes)"),
            std::string::npos)
      << get.error_message();
  EXPECT_TRUE(GetSession(h, "b").ok());
  EXPECT_TRUE(GetSession(h, "c").ok());
  EXPECT_EQ(engine.cache_bytes(), 2 * one);
  ASSERT_TRUE(h.Generate(SessionRequest("d", 24, 8)).status.ok());
  EXPECT_EQ(GetSession(h, "b").error_code(), grpc::NOT_FOUND);
  EXPECT_TRUE(GetSession(h, "c").ok());
  EXPECT_TRUE(GetSession(h, "d").ok());

  // More than the whole budget: refused, and nobody is evicted for nothing.
  ServerHarness::Stream s = h.Generate(IdsRequest(Prompt(5, 24), 200));
  EXPECT_EQ(s.status.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.status.error_message().find("(limit max_cache_bytes)"),
            std::string::npos)
      << s.status.error_message();
  EXPECT_TRUE(GetSession(h, "c").ok());
  EXPECT_TRUE(GetSession(h, "d").ok());
  const std::string metrics = engine.metrics().Serialize();
  EXPECT_EQ(Sample(metrics,
                   R"(coldcompress_sessions_evicted_total{reason="memory"})"),
            2);
  EXPECT_EQ(
      Sample(metrics,
             R"(coldcompress_requests_refused_total{limit="max_cache_bytes"})"),
      1);
  EXPECT_EQ(Sample(metrics, "coldcompress_named_sessions"), 2);
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(
    grpc::health::v1::Health::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  if (!stub.Check(&ctx, request, &response).ok())
    return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  return response.status();
}

// SIGTERM with 16 streams in flight: NOT_SERVING at once, new calls
// UNAVAILABLE, every stream that fits the deadline completes, exit 0.
TEST(DrainTest, SigtermLetsStreamsFinishAndExitsZero) {
  testing::ServerProcess server(FixtureDir("llama"),
                                {"--drain_deadline_s", "20"});
  ASSERT_TRUE(server.running());
  auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  ASSERT_EQ(Health(*health), grpc::health::v1::HealthCheckResponse::SERVING);
  std::vector<std::unique_ptr<Streamer>> streams;
  for (int i = 0; i < 16; ++i) {
    streams.push_back(
        std::make_unique<Streamer>(channel, IdsRequest(Prompt(i, 16), 120)));
  }
  for (auto& s : streams) ASSERT_TRUE(s->WaitStarted(60));

  const auto t0 = Clock::now();
  server.Signal(SIGTERM);
  while (Health(*health) == grpc::health::v1::HealthCheckResponse::SERVING &&
         Clock::now() - t0 < std::chrono::seconds(5)) {
  }
  const double not_serving_s =
      std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("NOT_SERVING %.1f ms after SIGTERM\n", not_serving_s * 1e3);
  EXPECT_LT(not_serving_s, testing::TimeLimit(0.1));
  auto stub = v1::ColdCompress::NewStub(channel);
  {
    grpc::ClientContext ctx;
    v1::GetServerInfoRequest request;
    v1::ServerInfo info;
    const grpc::Status refused = stub->GetServerInfo(&ctx, request, &info);
    EXPECT_EQ(refused.error_code(), grpc::UNAVAILABLE);
  }
  for (auto& s : streams) {
    s->Join();
    EXPECT_TRUE(s->status().ok()) << s->status().error_message();
    EXPECT_EQ(s->tokens(), 120);
    EXPECT_EQ(s->reason(), "length");
  }
  EXPECT_EQ(server.WaitExit(25), 0) << server.log();
  const double exit_s =
      std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("exited %.2f s after SIGTERM\n", exit_s);
  EXPECT_NE(server.log().find("drained; exiting"), std::string::npos);
}

// Streams longer than the drain deadline are cancelled at the deadline and
// the server still exits 0 within deadline + 5 s.
TEST(DrainTest, StreamsPastTheDeadlineAreCancelled) {
  testing::ServerProcess server(FixtureDir("llama"),
                                {"--drain_deadline_s", "0.5"});
  ASSERT_TRUE(server.running());
  auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  std::vector<std::unique_ptr<Streamer>> streams;
  for (int i = 0; i < 4; ++i) {
    streams.push_back(
        std::make_unique<Streamer>(channel, IdsRequest(Prompt(i, 16), 2000)));
  }
  for (auto& s : streams) ASSERT_TRUE(s->WaitStarted(60));
  const auto t0 = Clock::now();
  server.Signal(SIGTERM);
  EXPECT_EQ(server.WaitExit(testing::TimeLimit(5.5)), 0) << server.log();
  const double exit_s =
      std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("exited %.2f s after SIGTERM (drain deadline 0.5 s)\n", exit_s);
  for (auto& s : streams) {
    s->Join();
    EXPECT_FALSE(s->status().ok());
    EXPECT_LT(s->tokens(), 2000);
  }
  EXPECT_NE(server.log().find("drain deadline (0.5 s) passed: cancelling 4"),
            std::string::npos)
      << server.log();
}

}  // namespace
}  // namespace coldcompress

namespace coldcompress {
namespace {

using testing::MetricSum;

// Cancel storm: 1,000 streams cancelled at random points (before the first
// token: queued or in prefill; while decoding; after the end) under four
// policies, one in five on a named session, then 20 client processes killed
// with SIGKILL mid-stream. Every cache is freed exactly once: the bytes are
// back to the baseline within 2 s and the bytes allocated equal those freed.
TEST(CancelStormTest, EveryCancelledRequestIsFreedExactlyOnce) {
  ServerConfig config;
  config.max_queued_requests = 512;
  config.max_concurrent_streams = 512;
  ServerHarness h(FixtureDir("llama"), true, config);
  Engine& engine = *h.server().engine();
  ASSERT_EQ(engine.cache_bytes(), 0);

  constexpr int kRequests = 1000, kWorkers = 16;
  std::atomic<int> next{0};
  std::atomic<int> ok_after_end{0}, cancelled{0}, finished_first{0},
      unexpected{0};
  auto worker = [&] {
    auto stub = v1::ColdCompress::NewStub(h.channel());
    for (int i = next++; i < kRequests; i = next++) {
      std::mt19937 rng(i);
      v1::GenerateRequest r = IdsRequest(
          Prompt(i, 8 + static_cast<int>(rng() % 120)), 1 + rng() % 48);
      switch (i % 4) {
        case 1:
          r.mutable_cache()->set_config_name("recent_global");
          r.mutable_cache()->add_max_cache_length(0.5);
          break;
        case 2:
          r.mutable_cache()->set_config_name("heavy_hitter");
          r.mutable_cache()->add_max_cache_length(0.5);
          break;
        case 3:
          r.mutable_cache()->set_config_name("l2");
          r.mutable_cache()->add_max_cache_length(0.25);
          break;
      }
      if (i % 5 == 0) r.set_session_id("storm-" + std::to_string(i));
      grpc::ClientContext ctx;
      auto reader = stub->Generate(&ctx, r);
      v1::GenerateResponse response;
      const int point = static_cast<int>(rng() % 4);
      if (point == 0) {
        ctx.TryCancel();  // at once: queued or in prefill
      } else if (point == 1) {
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        ctx.TryCancel();
      } else if (point == 2) {
        reader->Read(&response);  // the first token is out: decoding
        ctx.TryCancel();
      }
      while (reader->Read(&response)) {
      }
      const grpc::Status s = reader->Finish();
      if (point == 3) {
        ctx.TryCancel();  // after the end: a no-op
        ok_after_end += s.ok();
        unexpected += !s.ok();
      } else if (s.error_code() == grpc::CANCELLED) {
        ++cancelled;
      } else if (s.ok()) {
        ++finished_first;  // done before the cancel arrived
      } else {
        ++unexpected;
      }
    }
  };
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) workers.emplace_back(worker);
  for (auto& t : workers) t.join();
  std::printf(
      "%d requests: %d cancelled, %d finished before their cancel, %d "
      "cancelled after the end\n",
      kRequests, cancelled.load(), finished_first.load(), ok_after_end.load());
  EXPECT_EQ(unexpected, 0);
  EXPECT_GT(cancelled, kRequests / 2);

  // 20 client processes streaming 1,500 tokens, killed mid-stream.
  std::vector<std::unique_ptr<testing::ChildProcess>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(
        std::make_unique<testing::ChildProcess>(std::vector<std::string>{
            std::getenv("COLDCOMPRESS_CLIENT_BIN"), "generate", "--server",
            h.address(), "--prompt", "a story about cold compresses",
            "--max_new_tokens", "1500", "--ignore_eos"}));
  }
  for (auto& c : clients) {
    for (int i = 0; i < 3000 && c->out().empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_FALSE(c->out().empty()) << "a client never streamed";
  }
  EXPECT_GT(engine.cache_bytes(), 0);
  for (auto& c : clients) c->Kill(SIGKILL);

  // The load has stopped: close the named sessions, then everything is back.
  const auto t0 = Clock::now();
  for (int i = 0; i < kRequests; i += 5) {
    grpc::ClientContext ctx;
    v1::CloseSessionRequest close;
    close.set_session_id("storm-" + std::to_string(i));
    v1::CloseSessionResponse closed;
    // A session whose first request was cancelled before it ran is gone.
    const grpc::Status s = h.stub().CloseSession(&ctx, close, &closed);
    EXPECT_TRUE(s.ok() || s.error_code() == grpc::NOT_FOUND)
        << s.error_message();
  }
  while ((engine.cache_bytes() != 0 || engine.active_requests() != 0) &&
         Clock::now() - t0 < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double back_s =
      std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("cache bytes back to 0 %.0f ms after the load stopped\n",
              back_s * 1e3);
  EXPECT_EQ(engine.cache_bytes(), 0);
  EXPECT_EQ(engine.active_requests(), 0);
  EXPECT_LT(back_s, testing::TimeLimit(2.0));
  EXPECT_EQ(engine.num_sessions(), 0u);
  const std::string metrics = engine.metrics().Serialize();
  const double allocated =
      MetricSum(metrics, "coldcompress_kv_cache_allocated_bytes_total");
  EXPECT_GT(allocated, 0);
  EXPECT_EQ(allocated,
            MetricSum(metrics, "coldcompress_kv_cache_freed_bytes_total"));
  EXPECT_EQ(MetricSum(metrics, "coldcompress_sessions_active{"), 0);
  EXPECT_EQ(MetricSum(metrics, "coldcompress_kv_cache_bytes{"), 0);
  EXPECT_TRUE(h.Generate(IdsRequest(Prompt(1, 8), 4)).status.ok());
}

}  // namespace
}  // namespace coldcompress

namespace coldcompress {
namespace {

// A channel whose client pings as often as gRPC lets it (about once a
// second), with or without calls.
std::shared_ptr<grpc::Channel> EagerPinger(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt("grpc.http2.min_time_between_pings_ms", 10);
  args.SetInt(GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS, 10);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

// Whether the channel, connected, is still connected after `seconds` idle.
bool StaysConnected(std::shared_ptr<grpc::Channel> channel, double seconds) {
  EXPECT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(5)));
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    if (channel->GetState(false) != GRPC_CHANNEL_READY) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Keepalive enforcement: a client pinging an idle connection more often
// than keepalive_min_ping_interval_s (and without calls, which
// keepalive_permit_without_calls forbids) is sent GOAWAY and disconnected;
// the same client is tolerated by a server that allows it.
TEST(KeepaliveTest, TooManyPingsAreSentAway) {
  ServerHarness strict(FixtureDir("llama"));
  // The third ping within keepalive_min_ping_interval_s (10 s) is the
  // second strike.
  EXPECT_FALSE(StaysConnected(EagerPinger(strict.address()), 8.0));

  ServerConfig lenient;
  lenient.keepalive_min_ping_interval_s = 0;
  lenient.keepalive_permit_without_calls = true;
  ServerHarness tolerant(FixtureDir("llama"), true, lenient);
  EXPECT_TRUE(StaysConnected(EagerPinger(tolerant.address()), 4.0));
}

}  // namespace
}  // namespace coldcompress
