#include "server/config.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace coldcompress
