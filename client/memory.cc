#include "client/memory.h"

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace coldcompress::client {
namespace {

using nlohmann::json;

// "http://h:p/prefix" -> ("http://h:p", "/prefix").
std::pair<std::string, std::string> SplitUrl(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t path =
      url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path == std::string::npos) return {url, ""};
  return {url.substr(0, path), url.substr(path)};
}

constexpr char kPeakSum[] = "coldcompress_session_peak_cache_bytes_sum";
constexpr char kPeakCount[] = "coldcompress_session_peak_cache_bytes_count";

// Adds "sessions" and "session_peak_bytes_mean" per policy from the
// histogram's sum and count at the start and the end of the run.
void AddSessionPeaks(const std::map<std::string, double>& sum0,
                     const std::map<std::string, double>& count0,
                     const std::map<std::string, double>& sum1,
                     const std::map<std::string, double>& count1, json* out) {
  for (const auto& [policy, count] : count1) {
    auto before = [](const std::map<std::string, double>& m,
                     const std::string& k) {
      auto it = m.find(k);
      return it == m.end() ? 0.0 : it->second;
    };
    const double sessions = count - before(count0, policy);
    if (sessions <= 0) continue;
    const double sum = before(sum1, policy) - before(sum0, policy);
    json& p = (*out)["by_policy"][policy];
    p["sessions"] = sessions;
    p["session_peak_bytes_mean"] = sum / sessions;
  }
}

json Summary(const std::vector<double>& v) {
  json out;
  out["peak_bytes"] = v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
  out["mean_bytes"] =
      v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  return out;
}

std::string RegexQuote(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (absl::string_view(".^$*+?()[]{}|\\").find(c) != absl::string_view::npos)
      out += "\\\\";
    out += c;
  }
  return out;
}

}  // namespace

std::map<std::string, double> ParseMetricByPolicy(const std::string& text,
                                                  const std::string& metric) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (line.substr(0, metric.size()) != metric) continue;
    absl::string_view rest = line.substr(metric.size());
    std::string policy;
    if (!rest.empty() && rest[0] == '{') {
      const size_t close = rest.find('}');
      if (close == absl::string_view::npos) continue;
      const absl::string_view labels = rest.substr(1, close - 1);
      const size_t p = labels.find("policy=\"");
      if (p != absl::string_view::npos) {
        const size_t start = p + 8;
        policy =
            std::string(labels.substr(start, labels.find('"', start) - start));
      }
      rest = rest.substr(close + 1);
    } else if (!rest.empty() && rest[0] != ' ') {
      continue;  // another metric with this prefix
    }
    std::vector<absl::string_view> parts =
        absl::StrSplit(rest, ' ', absl::SkipEmpty());
    double value = 0;
    if (!parts.empty() && absl::SimpleAtod(parts[0], &value))
      out[policy] += value;
  }
  return out;
}

absl::StatusOr<std::string> HttpGet(const std::string& url, double timeout_s) {
  auto [base, path] = SplitUrl(url);
  httplib::Client client(base);
  client.set_connection_timeout(
      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  client.set_read_timeout(
      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  httplib::Result r = client.Get(path.empty() ? "/" : path);
  if (!r) {
    return absl::UnavailableError(
        absl::StrCat(url, ": ", httplib::to_string(r.error())));
  }
  if (r->status != 200) {
    return absl::UnavailableError(
        absl::StrCat(url, ": HTTP ", r->status, " ", r->body.substr(0, 200)));
  }
  return r->body;
}

MemoryMonitor::MemoryMonitor(MemoryOptions options,
                             std::vector<std::string> targets)
    : options_(std::move(options)),
      targets_(std::move(targets)),
      start_(std::chrono::system_clock::now()) {
  if (options_.prometheus_url.empty() && !targets_.empty())
    thread_ = std::thread([this] { ScrapeLoop(); });
}

MemoryMonitor::~MemoryMonitor() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void MemoryMonitor::ScrapeLoop() {
  while (!stop_) {
    ScrapeOnce();
    const auto wake = std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(
                          options_.scrape_interval_s * 1000));
    while (!stop_ && std::chrono::steady_clock::now() < wake)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void MemoryMonitor::ScrapeOnce() {
  {
    double total = 0, full = 0;
    std::map<std::string, double> policies, sums, counts;
    for (const std::string& target : targets_) {
      absl::StatusOr<std::string> body =
          HttpGet(absl::StrCat("http://", target, "/metrics"), 5);
      if (!body.ok()) {
        std::lock_guard lock(mu_);
        scrape_error_ = std::string(body.status().message());
        continue;
      }
      for (const auto& [p, v] :
           ParseMetricByPolicy(*body, "coldcompress_kv_cache_bytes")) {
        policies[p] += v;
        total += v;
      }
      for (const auto& [p, v] :
           ParseMetricByPolicy(*body, "coldcompress_kv_cache_full_bytes"))
        full += v;
      for (const auto& [p, v] : ParseMetricByPolicy(*body, kPeakSum))
        sums[p] += v;
      for (const auto& [p, v] : ParseMetricByPolicy(*body, kPeakCount))
        counts[p] += v;
    }
    {
      std::lock_guard lock(mu_);
      if (!have_first_) {
        first_sum_ = sums;
        first_count_ = counts;
        have_first_ = true;
      }
      last_sum_ = std::move(sums);
      last_count_ = std::move(counts);
      totals_.push_back(total);
      full_totals_.push_back(full);
      for (const auto& [p, v] : policies) by_policy_[p].push_back(v);
    }
  }
}

absl::StatusOr<json> MemoryMonitor::QueryPrometheus() {
  const auto end = std::chrono::system_clock::now();
  const double start_s =
      std::chrono::duration<double>(start_.time_since_epoch()).count();
  double end_s = std::chrono::duration<double>(end.time_since_epoch()).count();
  const double step = std::max(1.0, std::ceil((end_s - start_s) / 1000));
  std::string match = options_.prometheus_match;
  if (match.empty()) {
    std::vector<std::string> quoted;
    for (const std::string& t : targets_) quoted.push_back(RegexQuote(t));
    match = absl::StrCat("instance=~\"", absl::StrJoin(quoted, "|"), "\"");
  }
  // Waits (up to 60 s) for every server to be scraped after the run, so
  // that the series hold its end.
  const std::string scraped_query =
      absl::StrCat("min(timestamp(coldcompress_build_info{", match, "}))");
  for (int i = 0; i < 600; ++i) {
    absl::StatusOr<std::string> body = HttpGet(absl::StrCat(
        options_.prometheus_url, "/api/v1/query?",
        httplib::detail::params_to_query_str({{"query", scraped_query}})));
    if (!body.ok()) return body.status();
    json r = json::parse(*body, nullptr, false);
    double last = 0;
    if (!r.is_discarded() && !r["data"]["result"].empty() &&
        absl::SimpleAtod(r["data"]["result"][0]["value"][1].get<std::string>(),
                         &last) &&
        last >= end_s) {
      end_s = last;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto range = [&](const std::string& query) -> absl::StatusOr<json> {
    httplib::Params params{{"query", query},
                           {"start", absl::StrFormat("%.3f", start_s)},
                           {"end", absl::StrFormat("%.3f", end_s)},
                           {"step", absl::StrFormat("%.0f", step)}};
    const std::string url =
        absl::StrCat(options_.prometheus_url, "/api/v1/query_range?",
                     httplib::detail::params_to_query_str(params));
    absl::StatusOr<std::string> body = HttpGet(url);
    if (!body.ok()) return body.status();
    json r = json::parse(*body, nullptr, false);
    if (r.is_discarded() || r.value("status", "") != "success") {
      return absl::UnavailableError(
          absl::StrCat(options_.prometheus_url, ": query \"", query,
                       "\" failed: ", body->substr(0, 300)));
    }
    return r["data"]["result"];
  };
  auto values = [](const json& series) {
    std::vector<double> v;
    for (const json& point : series["values"]) {
      double x = 0;
      if (absl::SimpleAtod(point[1].get<std::string>(), &x)) v.push_back(x);
    }
    return v;
  };
  absl::StatusOr<json> per_policy = range(absl::StrCat(
      "sum by (policy) (coldcompress_kv_cache_bytes{", match, "})"));
  if (!per_policy.ok()) return per_policy.status();
  absl::StatusOr<json> total =
      range(absl::StrCat("sum(coldcompress_kv_cache_bytes{", match, "})"));
  if (!total.ok()) return total.status();
  absl::StatusOr<json> full =
      range(absl::StrCat("sum(coldcompress_kv_cache_full_bytes{", match, "})"));
  if (!full.ok()) return full.status();
  json out;
  out["source"] = "prometheus";
  out["query_match"] = match;
  std::vector<double> totals =
      total->empty() ? std::vector<double>{} : values((*total)[0]);
  std::vector<double> fulls =
      full->empty() ? std::vector<double>{} : values((*full)[0]);
  out["samples"] = totals.size();
  out.update(Summary(totals));
  out["peak_full_bytes"] = Summary(fulls)["peak_bytes"];
  out["by_policy"] = json::object();
  for (const json& series : *per_policy) {
    out["by_policy"][series["metric"].value("policy", "")] =
        Summary(values(series));
  }
  // The session-peak histogram at the start and the end of the run.
  std::map<std::string, double> at[2][2];  // [start|end][sum|count]
  const double times[2] = {start_s, end_s};
  const char* names[2] = {kPeakSum, kPeakCount};
  for (int t = 0; t < 2; ++t) {
    for (int n = 0; n < 2; ++n) {
      const std::string query =
          absl::StrCat("sum by (policy) (", names[n], "{", match, "})");
      const std::string url = absl::StrCat(
          options_.prometheus_url, "/api/v1/query?",
          httplib::detail::params_to_query_str(
              {{"query", query}, {"time", absl::StrFormat("%.3f", times[t])}}));
      absl::StatusOr<std::string> body = HttpGet(url);
      if (!body.ok()) return body.status();
      json r = json::parse(*body, nullptr, false);
      if (r.is_discarded() || r.value("status", "") != "success") {
        return absl::UnavailableError(absl::StrCat(
            options_.prometheus_url, ": query \"", query, "\" failed"));
      }
      for (const json& s : r["data"]["result"]) {
        double x = 0;
        if (absl::SimpleAtod(s["value"][1].get<std::string>(), &x))
          at[t][n][s["metric"].value("policy", "")] = x;
      }
    }
  }
  AddSessionPeaks(at[0][0], at[0][1], at[1][0], at[1][1], &out);
  return out;
}

absl::StatusOr<json> MemoryMonitor::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (!options_.prometheus_url.empty()) return QueryPrometheus();
  if (!targets_.empty()) ScrapeOnce();  // the run's end
  std::lock_guard lock(mu_);
  if (totals_.empty() && !scrape_error_.empty())
    return absl::UnavailableError(scrape_error_);
  json out;
  out["source"] = "scrape";
  out["samples"] = totals_.size();
  out.update(Summary(totals_));
  out["peak_full_bytes"] = Summary(full_totals_)["peak_bytes"];
  out["by_policy"] = json::object();
  for (const auto& [p, v] : by_policy_) out["by_policy"][p] = Summary(v);
  AddSessionPeaks(first_sum_, first_count_, last_sum_, last_count_, &out);
  if (!scrape_error_.empty()) out["scrape_error"] = scrape_error_;
  return out;
}

}  // namespace coldcompress::client
