// Metrics end to end: a real Prometheus (Debian's package) scrapes the server
// on loopback; cache-memory series per policy equal, to the byte, what the
// sessions report and return to zero when they close; every PromQL
// expression of every Grafana dashboard parses and returns data; no label
// value carries request text or a session id.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "server/metrics.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/http.h"
#include "tests/testing/processes.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

using nlohmann::json;
using testing::HttpGet;
using testing::IdsRequest;
using testing::Prometheus;
using testing::ServerHarness;
using testing::UrlEncode;
namespace fs = std::filesystem;

// policy -> value of an instant vector grouped by policy; with `nonzero`,
// policies whose caches are all gone (value 0) are left out.
std::map<std::string, double> ByPolicy(const json& data, bool nonzero = false) {
  std::map<std::string, double> out;
  for (const json& s : data["result"]) {
    const double v = std::stod(s["value"][1].get<std::string>());
    if (!nonzero || v != 0) out[s["metric"].value("policy", "")] = v;
  }
  return out;
}

std::vector<int32_t> Prompt(int n) {
  std::vector<int32_t> ids = {1};
  for (int i = 1; i < n; ++i) ids.push_back(5 + (i * 71) % 480);
  return ids;
}

// Every "expr" of the dashboards, with Grafana's variables filled in.
std::vector<std::pair<std::string, std::string>> DashboardQueries() {
  std::vector<std::pair<std::string, std::string>> out;
  const fs::path dir =
      fs::path(testing::SourceDir()) / "deploy/grafana/dashboards";
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream in(entry.path());
    const json dashboard = json::parse(in, nullptr, false);
    EXPECT_FALSE(dashboard.is_discarded())
        << entry.path() << " is not valid JSON";
    if (dashboard.is_discarded()) continue;
    std::function<void(const json&, const std::string&)> walk =
        [&](const json& j, const std::string& panel) {
          if (j.is_object()) {
            const std::string title =
                j.contains("title") && j["title"].is_string()
                    ? j["title"].get<std::string>()
                    : panel;
            if (j.contains("datasource") && j["datasource"].is_object()) {
              EXPECT_EQ(j["datasource"].value("uid", ""),
                        "coldcompress-prometheus")
                  << entry.path().filename() << " " << title;
            }
            for (const auto& [k, v] : j.items()) {
              if (k == "expr" && v.is_string()) {
                std::string e = v.get<std::string>();
                e = std::regex_replace(e, std::regex(R"(\$__rate_interval)"),
                                       "1m");
                e = std::regex_replace(e, std::regex(R"(\$(instance|policy))"),
                                       ".*");
                out.emplace_back(
                    entry.path().filename().string() + ": " + title, e);
              } else {
                walk(v, title);
              }
            }
          } else if (j.is_array()) {
            for (const json& v : j) walk(v, panel);
          }
        };
    walk(dashboard["panels"], "");
  }
  return out;
}

TEST(PrometheusTest,
     CacheSeriesMatchSessionsAndEveryDashboardQueryReturnsData) {
  ServerConfig config;
  config.metrics_per_layer = true;
  ServerHarness harness(testing::FixtureDir("llama"), true, config);
  const int metrics_port = harness.server().metrics_port();
  ASSERT_GT(metrics_port, 0);
  Prometheus prometheus({"127.0.0.1:" + std::to_string(metrics_port)});
  ASSERT_TRUE(prometheus.running());
  ASSERT_TRUE(prometheus.WaitFor(
      "up{job=\"coldcompress\"}",
      [](const json& d) {
        return !d["result"].empty() &&
               d["result"][0]["value"][1].get<std::string>() == "1";
      },
      30))
      << "Prometheus never scraped the server";
  std::this_thread::sleep_for(
      std::chrono::milliseconds(1500));  // a scrape before the traffic

  // Three policies kept in sessions, plus one-shot traffic for the
  // histograms (analysis mode, an error).
  struct Live {
    std::string policy, session;
    v1::CacheStats stats;
  };
  std::vector<Live> live = {
      {"full", "m-full"}, {"recent_global", "m-rg"}, {"heavy_hitter", "m-hh"}};
  for (Live& l : live) {
    v1::GenerateRequest r = IdsRequest(Prompt(60), 30);
    r.set_session_id(l.session);
    r.mutable_cache()->set_config_name(l.policy);
    if (l.policy != "full") r.mutable_cache()->add_max_cache_length(0.5);
    ServerHarness::Stream s = harness.Generate(r);
    ASSERT_TRUE(s.status.ok()) << s.status.error_message();
    l.stats = s.final.stats();
  }
  for (const char* preset : {"debug_heavy_hitter", "hybrid", "l2"}) {
    v1::GenerateRequest r = IdsRequest(Prompt(40), 12);
    r.mutable_cache()->set_config_name(preset);
    if (std::string(preset) != "hybrid")
      r.mutable_cache()->add_max_cache_length(0.5);
    ASSERT_TRUE(harness.Generate(r).status.ok()) << preset;
  }
  v1::GenerateRequest bad = IdsRequest({1, 2}, 0);
  EXPECT_EQ(harness.Generate(bad).status.error_code(), grpc::INVALID_ARGUMENT);

  // The series equal the sessions' own statistics, to the byte.
  std::map<std::string, double> bytes, full;
  for (const Live& l : live) {
    grpc::ClientContext ctx;
    v1::GetSessionRequest get;
    get.set_session_id(l.session);
    v1::SessionInfo info;
    ASSERT_TRUE(harness.stub().GetSession(&ctx, get, &info).ok());
    EXPECT_EQ(info.stats().cache_bytes(), l.stats.cache_bytes());
    bytes[l.policy] = static_cast<double>(info.stats().cache_bytes());
    full[l.policy] = static_cast<double>(info.stats().full_cache_bytes());
  }
  const bool seen = prometheus.WaitFor(
      "sum by (policy) (coldcompress_kv_cache_bytes)",
      [&](const json& d) { return ByPolicy(d, true) == bytes; }, 20);
  EXPECT_TRUE(seen) << prometheus
                           .Query(
                               "sum by (policy) (coldcompress_kv_cache_bytes)")
                           .dump();
  EXPECT_EQ(
      ByPolicy(
          prometheus.Query(
              "sum by (policy) (coldcompress_kv_cache_full_bytes)")["data"],
          true),
      full);

  // Every dashboard query parses and returns data.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  const auto queries = DashboardQueries();
  EXPECT_GE(queries.size(), 30u);
  for (const auto& [where, promql] : queries) {
    const json r = prometheus.Query(promql);
    EXPECT_EQ(r.value("status", ""), "success") << where << "\n"
                                                << promql << "\n"
                                                << r.dump();
    EXPECT_FALSE(
        r.value("data", json::object()).value("result", json::array()).empty())
        << where << " returned no data\n"
        << promql;
  }

  // Closing the sessions returns the series to zero.
  for (const Live& l : live) {
    grpc::ClientContext ctx;
    v1::CloseSessionRequest close;
    close.set_session_id(l.session);
    v1::CloseSessionResponse closed;
    ASSERT_TRUE(harness.stub().CloseSession(&ctx, close, &closed).ok());
  }
  const bool zero = prometheus.WaitFor(
      "sum by (policy) (coldcompress_kv_cache_bytes)",
      [&](const json& d) {
        for (const auto& [policy, v] : ByPolicy(d)) {
          if (v != 0) return false;
        }
        return ByPolicy(d).size() >= 3;
      },
      20);
  EXPECT_TRUE(zero) << prometheus
                           .Query(
                               "sum by (policy) (coldcompress_kv_cache_bytes)")
                           .dump();
  EXPECT_TRUE(prometheus.WaitFor(
      "sum(coldcompress_sessions_active)",
      [](const json& d) {
        return !d["result"].empty() &&
               d["result"][0]["value"][1].get<std::string>() == "0";
      },
      20));
}

// No label value on /metrics carries prompt text or a session id.
TEST(MetricsLabelsTest, NoRequestStringsInLabels) {
  ServerHarness harness(testing::FixtureDir("llama"));
  const std::string prompt_canary = "canaryprompt7f3a",
                    session_canary = "canarysession9b2c";
  v1::GenerateRequest r;
  r.set_prompt("The " + prompt_canary + " is here");
  r.set_max_new_tokens(4);
  r.set_session_id(session_canary);
  r.add_stop("canarystop");
  ASSERT_TRUE(harness.Generate(r).status.ok());
  v1::GenerateRequest bad;
  bad.set_prompt(prompt_canary);
  bad.set_session_id(session_canary + "x");
  bad.mutable_cache()->set_config_name("canarypreset");
  EXPECT_FALSE(harness.Generate(bad).status.ok());
  const testing::HttpResponse metrics =
      HttpGet("127.0.0.1", harness.server().metrics_port(), "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("coldcompress_kv_cache_bytes"),
            std::string::npos);
  for (const std::string& canary :
       {prompt_canary, session_canary, std::string("canary")}) {
    EXPECT_EQ(metrics.body.find(canary), std::string::npos) << canary;
  }
  // Label values come from bounded sets only.
  const std::set<std::string> allowed_keys = {
      "policy",  "reason", "code",         "layer", "le",
      "version", "model",  "architecture", "dtype", "device"};
  const std::regex label(R"(([a-z_]+)=\"([^\"]*)\")");
  for (auto it = std::sregex_iterator(metrics.body.begin(), metrics.body.end(),
                                      label);
       it != std::sregex_iterator(); ++it) {
    EXPECT_TRUE(allowed_keys.count((*it)[1].str())) << (*it)[0].str();
  }
}

// The device memory gauges: 0 for "cpu" until a reader is set (a CUDA
// server sets LibTorch's caching allocator), then what it reads at each
// scrape, under the device's label only.
TEST(MetricsDeviceMemoryTest, GaugesShowTheReaderUnderTheDevicesLabel) {
  Metrics metrics(MetricsOptions{});
  const std::string allocated = "coldcompress_device_memory_allocated_bytes",
                    reserved = "coldcompress_device_memory_reserved_bytes";
  std::string text = metrics.Serialize();
  EXPECT_NE(text.find(allocated + "{device=\"cpu\"} 0"), std::string::npos);
  EXPECT_NE(text.find(reserved + "{device=\"cpu\"} 0"), std::string::npos);
  int64_t used = 1000;
  metrics.SetDeviceMemoryReader("cuda:0",
                                [&used]() -> std::pair<int64_t, int64_t> {
                                  return {used, 4096};
                                });
  text = metrics.Serialize();
  EXPECT_EQ(testing::MetricSum(text, allocated + "{device=\"cuda:0\"}"), 1000);
  EXPECT_EQ(testing::MetricSum(text, reserved + "{device=\"cuda:0\"}"), 4096);
  EXPECT_EQ(text.find("device=\"cpu\""), std::string::npos);
  used = 2048;  // read again at the next scrape
  EXPECT_EQ(testing::MetricSum(metrics.Serialize(),
                               allocated + "{device=\"cuda:0\"}"),
            2048);
}

TEST(HttpEndpointsTest, HealthAndReadiness) {
  ServerHarness harness(testing::FixtureDir("llama"), /*load=*/false);
  const int port = harness.server().metrics_port();
  EXPECT_EQ(HttpGet("127.0.0.1", port, "/healthz").status, 200);
  EXPECT_EQ(HttpGet("127.0.0.1", port, "/readyz").status, 503);
  ASSERT_TRUE(harness.server().LoadModel().ok());
  EXPECT_EQ(HttpGet("127.0.0.1", port, "/readyz").status, 200);
  harness.server().Shutdown(0.5);
  EXPECT_EQ(HttpGet("127.0.0.1", port, "/readyz").status, 503);
}

}  // namespace
}  // namespace coldcompress
