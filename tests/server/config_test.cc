#include "server/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "tests/testing/fixtures.h"

namespace coldcompress {
namespace {

TEST(ServerConfigTest, ShippedConfigMatchesTheDefaults) {
  absl::StatusOr<ServerConfig> c =
      LoadServerConfig(testing::SourceDir() + "/configs/server.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const ServerConfig d;
  EXPECT_EQ(c->model_dir, d.model_dir);
  EXPECT_EQ(c->listen, d.listen);
  EXPECT_EQ(c->max_sessions, d.max_sessions);
  EXPECT_EQ(c->max_message_bytes, d.max_message_bytes);
  EXPECT_EQ(c->max_concurrent_streams, d.max_concurrent_streams);
  EXPECT_EQ(c->max_stop_strings, d.max_stop_strings);
  EXPECT_EQ(c->max_stop_string_bytes, d.max_stop_string_bytes);
  EXPECT_EQ(c->max_deadline_s, d.max_deadline_s);
  EXPECT_EQ(c->session_ttl_s, d.session_ttl_s);
  EXPECT_EQ(c->keepalive_time_s, d.keepalive_time_s);
  EXPECT_EQ(c->keepalive_timeout_s, d.keepalive_timeout_s);
  EXPECT_EQ(c->keepalive_min_ping_interval_s, d.keepalive_min_ping_interval_s);
  EXPECT_EQ(c->keepalive_permit_without_calls,
            d.keepalive_permit_without_calls);
  EXPECT_EQ(c->drain_deadline_s, d.drain_deadline_s);
}

TEST(ServerConfigTest, OverridesAndErrors) {
  absl::StatusOr<ServerConfig> c =
      ParseServerConfig("device: cuda\nmax_sessions: 3\n", ServerConfig());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->device, "cuda");
  EXPECT_EQ(c->max_sessions, 3);
  EXPECT_EQ(c->dtype, "auto");
  auto typo = ParseServerConfig("max_sesions: 3\n", ServerConfig());
  EXPECT_EQ(typo.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(typo.status().message().find("max_sesions"), std::string::npos);
  auto bad = ParseServerConfig("max_sessions: many\n", ServerConfig());
  EXPECT_NE(bad.status().message().find("max_sessions"), std::string::npos);
}

TEST(ServerConfigTest, LimitsParseAndOutOfRangeValuesNameTheField) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(
      "max_concurrent_streams: 9\nmax_deadline_s: 2.5\nsession_ttl_s: 0\n"
      "keepalive_permit_without_calls: true\ndrain_deadline_s: 7\n",
      ServerConfig());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_concurrent_streams, 9);
  EXPECT_DOUBLE_EQ(c->max_deadline_s, 2.5);
  EXPECT_DOUBLE_EQ(c->session_ttl_s, 0);
  EXPECT_TRUE(c->keepalive_permit_without_calls);
  EXPECT_DOUBLE_EQ(c->drain_deadline_s, 7);
  EXPECT_TRUE(ValidateServerConfig(*c).ok());
  EXPECT_TRUE(ValidateServerConfig(ServerConfig()).ok());

  struct Case {
    std::function<void(ServerConfig&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto& c) { c.max_sessions = -1; },
       "max_sessions: -1 is out of range"},
      {[](auto& c) { c.max_queued_requests = 0; }, "max_queued_requests: 0"},
      {[](auto& c) { c.max_concurrent_streams = 0; },
       "max_concurrent_streams: 0"},
      {[](auto& c) { c.max_message_bytes = int64_t{1} << 32; },
       "max_message_bytes: 4294967296 is out of range [1024, 2147483647]"},
      {[](auto& c) { c.max_deadline_s = -1; }, "max_deadline_s"},
      {[](auto& c) { c.session_ttl_s = NAN; }, "session_ttl_s: nan"},
      {[](auto& c) { c.keepalive_time_s = 0; }, "keepalive_time_s"},
      {[](auto& c) { c.drain_deadline_s = -0.5; }, "drain_deadline_s: -0.5"},
      {[](auto& c) { c.max_cache_bytes = -3; }, "max_cache_bytes: -3"},
      {[](auto& c) { c.max_stop_string_bytes = 0; }, "max_stop_string_bytes"},
  };
  for (const Case& k : cases) {
    ServerConfig config;
    k.edit(config);
    const absl::Status s = ValidateServerConfig(config);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k.message;
    EXPECT_NE(s.message().find(k.message), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace coldcompress
