// Soak: a server process under N concurrent streaming clients for M seconds
// (SOAK_STREAMS, default 16; SOAK_SECONDS, default 180 — the CI version; run
// longer ones with scripts/soak.sh) with mixed policies, prompt lengths and
// multi-turn sessions, 20% of requests cancelled at a random point. Every
// second it samples the server's RSS, threads, cache bytes and sessions.
// After the load: no session or cache byte left, and RSS grew at most 32 MB
// over the second half.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/testing/fixtures.h"
#include "tests/testing/processes.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

using Clock = std::chrono::steady_clock;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atoi(v);
}

// VmRSS (bytes) and Threads of a process, from /proc.
std::pair<int64_t, int> ProcessStatus(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  int64_t rss = 0;
  int threads = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    fields >> key;
    if (key == "VmRSS:") fields >> rss;
    if (key == "Threads:") fields >> threads;
  }
  return {rss * 1024, threads};
}

v1::ServerInfo Info(v1::ColdCompress::Stub& stub) {
  grpc::ClientContext ctx;
  v1::ServerInfo info;
  EXPECT_TRUE(stub.GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info).ok());
  return info;
}

TEST(SoakTest, NoLeaksAndFlatMemoryUnderMixedLoad) {
  const int streams = EnvInt("SOAK_STREAMS", 16);
  const int seconds = EnvInt("SOAK_SECONDS", 180);
  testing::ServerProcess server(testing::FixtureDir("llama"));
  ASSERT_TRUE(server.running());
  auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto stub = v1::ColdCompress::NewStub(channel);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> requests{0}, cancelled{0}, failed{0}, tokens{0};
  auto client = [&](int id) {
    auto my_stub = v1::ColdCompress::NewStub(channel);
    std::mt19937 rng(id);
    const char* policies[] = {"full", "recent_global", "heavy_hitter",
                              "l2",   "hybrid",        "random"};
    for (int conversation = 0; !stop.load(); ++conversation) {
      const std::string session =
          "soak-" + std::to_string(id) + "-" + std::to_string(conversation);
      const char* policy = policies[rng() % 6];
      const int turns = 1 + static_cast<int>(rng() % 3);
      for (int turn = 0; turn < turns && !stop.load(); ++turn) {
        std::vector<int32_t> prompt;
        const int length = 4 + static_cast<int>(rng() % 300);
        for (int i = 0; i < length; ++i)
          prompt.push_back(1 + static_cast<int32_t>(rng() % 500));
        v1::GenerateRequest r =
            testing::IdsRequest(prompt, 1 + static_cast<uint32_t>(rng() % 64));
        if (turn == 0) {
          r.mutable_cache()->set_config_name(policy);
          if (std::string(policy) != "full" && std::string(policy) != "hybrid")
            r.mutable_cache()->add_max_cache_length(rng() % 2 ? 0.5 : 0.25);
        }
        r.set_session_id(session);
        grpc::ClientContext ctx;
        auto reader = my_stub->Generate(&ctx, r);
        const bool cancel = rng() % 5 == 0;
        const int cancel_after = static_cast<int>(rng() % 8);
        v1::GenerateResponse response;
        int chunks = 0;
        while (reader->Read(&response)) {
          if (response.has_chunk()) {
            tokens += response.chunk().token_ids_size();
            if (cancel && ++chunks > cancel_after) ctx.TryCancel();
          }
        }
        const grpc::Status s = reader->Finish();
        ++requests;
        if (s.error_code() == grpc::CANCELLED) {
          ++cancelled;
        } else if (!s.ok()) {
          ++failed;
          ADD_FAILURE() << s.error_code() << " " << s.error_message();
        }
      }
      grpc::ClientContext ctx;
      v1::CloseSessionRequest close;
      close.set_session_id(session);
      v1::CloseSessionResponse closed;
      // NOT_FOUND: a first turn cancelled before it ran leaves no session.
      const grpc::Status s = my_stub->CloseSession(&ctx, close, &closed);
      if (!s.ok() && s.error_code() != grpc::NOT_FOUND) {
        ADD_FAILURE() << "CloseSession: " << s.error_message();
      }
    }
  };
  std::vector<std::thread> clients;
  for (int i = 0; i < streams; ++i) clients.emplace_back(client, i);

  struct Sample {
    double t;
    int64_t rss;
    int threads;
    uint64_t cache_bytes;
    uint32_t sessions;
  };
  std::vector<Sample> samples;
  const auto t0 = Clock::now();
  std::printf("%6s %10s %8s %12s %9s\n", "t (s)", "RSS (MB)", "threads",
              "cache bytes", "sessions");
  while (Clock::now() - t0 < std::chrono::seconds(seconds)) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const auto [rss, threads] = ProcessStatus(server.pid());
    const v1::ServerInfo info = Info(*stub);
    samples.push_back({std::chrono::duration<double>(Clock::now() - t0).count(),
                       rss, threads, info.cache_bytes(), info.sessions()});
    if (samples.size() % 10 == 0) {
      const Sample& s = samples.back();
      std::printf("%6.0f %10.1f %8d %12llu %9u\n", s.t, s.rss / 1e6, s.threads,
                  static_cast<unsigned long long>(s.cache_bytes), s.sessions);
    }
  }
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_GE(samples.size(), 4u);

  // After the load: nothing left (polled briefly: the last cancellations are
  // stopped before the scheduler's next step).
  v1::ServerInfo after = Info(*stub);
  for (int i = 0;
       i < 200 && (after.cache_bytes() != 0 || after.sessions() != 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    after = Info(*stub);
  }
  const Sample& mid = samples[samples.size() / 2];
  const Sample& end = samples.back();
  const double growth_mb = (end.rss - mid.rss) / 1e6;
  std::printf(
      "%lld requests (%lld cancelled, %lld failed), %lld tokens in %d s with "
      "%d streams; RSS %.1f MB at the middle, %.1f MB at the end (growth "
      "%.1f MB); threads %d -> %d; after the load: %llu cache bytes, %u "
      "sessions\n",
      static_cast<long long>(requests.load()),
      static_cast<long long>(cancelled.load()),
      static_cast<long long>(failed.load()),
      static_cast<long long>(tokens.load()), seconds, streams, mid.rss / 1e6,
      end.rss / 1e6, growth_mb, mid.threads, end.threads,
      static_cast<unsigned long long>(after.cache_bytes()), after.sessions());
  EXPECT_EQ(after.cache_bytes(), 0u);
  EXPECT_EQ(after.sessions(), 0u);
  EXPECT_LE(growth_mb, 32.0);
  EXPECT_EQ(failed, 0);
  EXPECT_GT(cancelled, 0);
  EXPECT_LE(end.threads, mid.threads + 4) << "threads keep growing";
}

}  // namespace
}  // namespace coldcompress
