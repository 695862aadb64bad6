// Cache memory of the servers over a run: from Prometheus (range queries of
// coldcompress_kv_cache_bytes for the servers' instances) or, without one,
// by scraping each server's /metrics while the run goes.
#ifndef COLDCOMPRESS_CLIENT_MEMORY_H_
#define COLDCOMPRESS_CLIENT_MEMORY_H_

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace coldcompress::client {

struct MemoryOptions {
  std::string prometheus_url;  // "" = scrape /metrics directly
  // A label matcher for the servers in Prometheus; "" = instance=~ the
  // servers' metrics endpoints.
  std::string prometheus_match;
  double scrape_interval_s = 0.5;
};

// The value of every sample of `metric` in Prometheus text format, summed
// by its `policy` label ("" when it has none).
std::map<std::string, double> ParseMetricByPolicy(const std::string& text,
                                                  const std::string& metric);

// GET http(s)://host:port/path; the body, or an error naming the URL.
absl::StatusOr<std::string> HttpGet(const std::string& url,
                                    double timeout_s = 10);

class MemoryMonitor {
 public:
  // `targets`: the servers' metrics endpoints, "host:port". Scraping starts
  // at once when there is no Prometheus.
  MemoryMonitor(MemoryOptions options, std::vector<std::string> targets);
  ~MemoryMonitor();

  // Stops and summarizes the run: {"source", "samples", "peak_bytes",
  // "mean_bytes", "peak_full_bytes", "by_policy": {policy: {"peak_bytes",
  // "mean_bytes", "sessions", "session_peak_bytes_mean"}}}: the cache bytes
  // allocated over the run (sampled), and from the session-peak histogram
  // the sessions closed during the run and their mean peak, exact however
  // short the requests. Errors name Prometheus' URL or the endpoint.
  absl::StatusOr<nlohmann::json> Stop();

 private:
  void ScrapeLoop();
  void ScrapeOnce();
  absl::StatusOr<nlohmann::json> QueryPrometheus();

  MemoryOptions options_;
  std::vector<std::string> targets_;
  std::chrono::system_clock::time_point start_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  // Scraped samples: total and per policy, and the full-cache total.
  std::vector<double> totals_, full_totals_;
  std::map<std::string, std::vector<double>> by_policy_;
  // The session-peak histogram's sum and count per policy, first and last.
  std::map<std::string, double> first_sum_, first_count_, last_sum_,
      last_count_;
  bool have_first_ = false;
  std::string scrape_error_;
};

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_MEMORY_H_
