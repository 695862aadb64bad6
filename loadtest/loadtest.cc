#include "loadtest/loadtest.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/pool.h"
#include "client/progress.h"
#include "client/svg_chart.h"

namespace coldcompress::loadtest {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// A YAML node as JSON: true/false as booleans, numbers as numbers, other
// scalars as strings (protobuf's JSON parser takes them for the fields).
json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(ToJson(item));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node)
        out[kv.first.as<std::string>()] = ToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted
      if (s == "true") return true;
      if (s == "false") return false;
      double d;
      if (absl::SimpleAtod(s, &d) && std::isfinite(d)) return d;
      return s;
    }
    default:
      return nullptr;
  }
}

absl::StatusOr<Range> ParseRange(const YAML::Node& node,
                                 const std::string& where) {
  Range r;
  try {
    if (node.IsScalar()) {
      r.lo = r.hi = node.as<int64_t>();
    } else if (node.IsSequence() && node.size() == 2) {
      r.lo = node[0].as<int64_t>();
      r.hi = node[1].as<int64_t>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": a token count or [low, high]"));
    }
  } catch (const YAML::Exception&) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": a token count or [low, high] of integers"));
  }
  if (r.lo < 1 || r.hi < r.lo) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": needs 1 <= low <= high, got [", r.lo, ", ", r.hi, "]"));
  }
  return r;
}

// Entry i of `mix`, `at` naming it in errors ("file: mix[i]").
absl::StatusOr<MixEntry> ParseMixEntry(const YAML::Node& node,
                                       const std::string& at, size_t i) {
  if (!node.IsMap()) return absl::InvalidArgumentError(at + ": not a mapping");
  MixEntry entry;
  for (const auto& field : node) {
    const std::string f = field.first.as<std::string>();
    const std::string where = absl::StrCat(at, ".", f);
    try {
      if (f == "name") {
        entry.name = field.second.as<std::string>();
      } else if (f == "weight") {
        entry.weight = field.second.as<double>();
        if (!(entry.weight > 0) || !std::isfinite(entry.weight))
          return absl::InvalidArgumentError(where + ": must be > 0");
      } else if (f == "cache") {
        google::protobuf::util::JsonParseOptions options;
        const auto st = google::protobuf::util::JsonStringToMessage(
            ToJson(field.second).dump(), &entry.cache, options);
        if (!st.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": not a CachePolicy (", st.ToString(), ")"));
        }
      } else if (f == "prompt_tokens" || f == "output_tokens") {
        absl::StatusOr<Range> r = ParseRange(field.second, where);
        if (!r.ok()) return r.status();
        (f == "prompt_tokens" ? entry.prompt_tokens : entry.output_tokens) = *r;
      } else {
        return absl::InvalidArgumentError(where + ": unknown key");
      }
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError(where + ": a value of the wrong type");
    }
  }
  if (entry.prompt_tokens.lo == 0 || entry.output_tokens.lo == 0) {
    return absl::InvalidArgumentError(
        at + ": prompt_tokens and output_tokens are required");
  }
  if (entry.name.empty()) {
    entry.name = entry.cache.config_name().empty()
                     ? absl::StrCat("mix[", i, "]")
                     : entry.cache.config_name();
  }
  return entry;
}

// Mean, median, std, p50, p90, p99 of `values` in ms, as `<stat>_<name>_ms`.
void AddStats(json& out, const std::string& name,
              const std::vector<double>& seconds) {
  std::vector<double> ms;
  ms.reserve(seconds.size());
  for (double s : seconds) ms.push_back(1000 * s);
  double mean = 0, var = 0;
  for (double v : ms) mean += v;
  if (!ms.empty()) mean /= static_cast<double>(ms.size());
  for (double v : ms) var += (v - mean) * (v - mean);
  if (!ms.empty()) var /= static_cast<double>(ms.size());
  out["mean_" + name + "_ms"] = mean;
  out["median_" + name + "_ms"] = Percentile(ms, 50);
  out["std_" + name + "_ms"] = std::sqrt(var);
  for (int p : {50, 90, 99})
    out[absl::StrCat("p", p, "_", name, "_ms")] = Percentile(ms, p);
}

json SummarizeRecords(const std::vector<const RequestRecord*>& records,
                      double duration_s) {
  json out;
  int64_t completed = 0, errors = 0, input = 0, output = 0;
  std::vector<double> ttft, tpot, itl, e2el;
  for (const RequestRecord* r : records) {
    if (!r->error.empty()) {
      ++errors;
      continue;
    }
    ++completed;
    input += r->prompt_tokens;
    output += r->output_tokens;
    if (r->ttft_s >= 0) ttft.push_back(r->ttft_s);
    if (r->output_tokens > 1)
      tpot.push_back((r->e2el_s - r->ttft_s) / (r->output_tokens - 1));
    itl.insert(itl.end(), r->itl_s.begin(), r->itl_s.end());
    e2el.push_back(r->e2el_s);
  }
  out["completed"] = completed;
  out["errors"] = errors;
  out["total_input_tokens"] = input;
  out["total_output_tokens"] = output;
  out["duration"] = duration_s;
  const double d = duration_s > 0 ? duration_s : 1;
  out["request_throughput"] = completed / d;
  out["output_throughput"] = output / d;
  out["total_token_throughput"] = (input + output) / d;
  AddStats(out, "ttft", ttft);
  AddStats(out, "tpot", tpot);
  AddStats(out, "itl", itl);
  AddStats(out, "e2el", e2el);
  return out;
}

// One streamed Generate, timed.
RequestRecord Send(client::ServerClient& server, const PlannedRequest& p,
                   Clock::time_point level_start) {
  RequestRecord r;
  r.policy = p.entry->name;
  r.prompt_tokens = p.request.prompt_token_ids().ids_size();
  grpc::ClientContext context;
  const Clock::time_point start = Clock::now();
  r.start_s = Since(level_start, start);
  auto reader = server.stub().Generate(&context, p.request);
  v1::GenerateResponse response;
  Clock::time_point last = start;
  bool final_seen = false;
  while (reader->Read(&response)) {
    const Clock::time_point now = Clock::now();
    if (response.has_chunk() && response.chunk().token_ids_size() > 0) {
      if (r.ttft_s < 0) {
        r.ttft_s = Since(start, now);
      } else {
        r.itl_s.push_back(Since(last, now));
      }
      last = now;
      ++r.chunks;
      r.output_tokens += response.chunk().token_ids_size();
    }
    if (response.has_final()) final_seen = true;
  }
  const grpc::Status status = reader->Finish();
  r.e2el_s = Since(start, Clock::now());
  if (!status.ok()) {
    r.error = absl::StrCat(client::FromGrpc(status).ToString());
  } else if (!final_seen) {
    r.error = "the stream ended without a final result";
  }
  return r;
}

}  // namespace

absl::StatusOr<LoadConfig> ParseLoadConfig(const std::string& yaml,
                                           const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", e.what()));
  }
  if (!root.IsMap())
    return absl::InvalidArgumentError(origin + ": not a YAML mapping");
  LoadConfig config;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    const std::string where = absl::StrCat(origin, ": ", key);
    try {
      if (key == "num_requests") {
        config.num_requests = kv.second.as<int64_t>();
        if (config.num_requests < 1)
          return absl::InvalidArgumentError(where + ": must be >= 1");
      } else if (key == "warmup_requests") {
        config.warmup_requests = kv.second.as<int64_t>();
        if (config.warmup_requests < 0)
          return absl::InvalidArgumentError(where + ": must be >= 0");
      } else if (key == "seed") {
        config.seed = kv.second.as<uint64_t>();
      } else if (key == "mix") {
        if (!kv.second.IsSequence() || kv.second.size() == 0) {
          return absl::InvalidArgumentError(
              where +
              ": a list of {name, weight, cache, prompt_tokens, "
              "output_tokens}");
        }
        for (size_t i = 0; i < kv.second.size(); ++i) {
          absl::StatusOr<MixEntry> entry =
              ParseMixEntry(kv.second[i], absl::StrCat(where, "[", i, "]"), i);
          if (!entry.ok()) return entry.status();
          config.mix.push_back(*std::move(entry));
        }
      } else {
        return absl::InvalidArgumentError(where + ": unknown key");
      }
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError(where + ": a value of the wrong type");
    }
  }
  if (config.mix.empty())
    return absl::InvalidArgumentError(origin + ": mix: is required");
  return config;
}

absl::StatusOr<LoadConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseLoadConfig(text.str(), path);
}

std::vector<PlannedRequest> PlanRequests(const LoadConfig& config,
                                         int64_t count, uint64_t salt,
                                         int64_t vocab_size, int32_t first_id,
                                         int64_t context_length) {
  std::mt19937_64 rng(config.seed * 1000003 + salt);
  std::vector<double> weights;
  for (const MixEntry& e : config.mix) weights.push_back(e.weight);
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  std::uniform_int_distribution<int32_t> token(
      first_id, static_cast<int32_t>(vocab_size - 1));
  std::vector<PlannedRequest> plan;
  for (int64_t i = 0; i < count; ++i) {
    const MixEntry& e = config.mix[pick(rng)];
    auto draw = [&](const Range& r) {
      return std::uniform_int_distribution<int64_t>(r.lo, r.hi)(rng);
    };
    int64_t prompt = draw(e.prompt_tokens);
    const int64_t output = draw(e.output_tokens);
    // Leave room in the context (the server would refuse the request).
    if (context_length > 0)
      prompt = std::max<int64_t>(1, std::min(prompt, context_length - output));
    PlannedRequest p;
    p.entry = &e;
    v1::GenerateRequest& r = p.request;
    for (int64_t t = 0; t < prompt; ++t)
      r.mutable_prompt_token_ids()->add_ids(token(rng));
    r.set_max_new_tokens(static_cast<uint32_t>(output));
    r.set_ignore_eos(true);
    *r.mutable_cache() = e.cache;
    plan.push_back(std::move(p));
  }
  return plan;
}

absl::StatusOr<LevelResult> RunLevel(const std::string& address,
                                     const std::vector<PlannedRequest>& plan,
                                     const LevelOptions& options) {
  client::ServerClient server(address);
  if (absl::Status s = server.Connect(30); !s.ok()) return s;
  LevelResult result;
  result.options = options;
  result.records.resize(plan.size());
  const int concurrency = std::max(1, options.concurrency);
  client::Progress progress(
      absl::StrCat(options.request_rate > 0
                       ? absl::StrFormat("rate %g/s", options.request_rate)
                       : absl::StrCat("concurrency ", concurrency)),
      plan.size(), 0, options.progress);
  const Clock::time_point start = Clock::now();
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  if (options.request_rate <= 0) {
    // Closed loop: each client sends its next request when the last ends.
    for (int c = 0; c < concurrency; ++c) {
      threads.emplace_back([&] {
        for (size_t i = next++; i < plan.size(); i = next++) {
          result.records[i] = Send(server, plan[i], start);
          progress.Advance();
        }
      });
    }
  } else {
    // Open loop: Poisson arrivals; at most `concurrency` in flight (a
    // request due while all are busy waits for one).
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    std::mt19937_64 rng(plan.size() * 7919 + 17);
    std::exponential_distribution<double> gap(options.request_rate);
    Clock::time_point due = start;
    for (size_t i = 0; i < plan.size(); ++i) {
      std::this_thread::sleep_until(due);
      due += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(gap(rng)));
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return in_flight < concurrency; });
        ++in_flight;
      }
      threads.emplace_back([&, i] {
        result.records[i] = Send(server, plan[i], start);
        progress.Advance();
        std::lock_guard<std::mutex> lock(mu);
        --in_flight;
        cv.notify_all();
      });
    }
    for (auto& t : threads) t.join();
    threads.clear();
  }
  for (auto& t : threads) t.join();
  progress.Finish();
  double end = 0;
  for (const RequestRecord& r : result.records)
    end = std::max(end, r.start_s + r.e2el_s);
  result.duration_s = end;
  return result;
}

json Summarize(const LevelResult& level) {
  json out;
  out["concurrency"] = level.options.concurrency;
  out["request_rate"] = level.options.request_rate > 0
                            ? json(level.options.request_rate)
                            : json("inf");
  std::vector<const RequestRecord*> all;
  std::map<std::string, std::vector<const RequestRecord*>> by_policy;
  for (const RequestRecord& r : level.records) {
    all.push_back(&r);
    by_policy[r.policy].push_back(&r);
  }
  out["overall"] = SummarizeRecords(all, level.duration_s);
  for (const auto& [name, records] : by_policy)
    out["by_policy"][name] = SummarizeRecords(records, level.duration_s);
  std::vector<std::string> errors;
  for (const RequestRecord& r : level.records) {
    if (!r.error.empty() && errors.size() < 5) errors.push_back(r.error);
  }
  out["error_examples"] = errors;
  return out;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = p / 100 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(values.size() - 1, lo + 1);
  return values[lo] +
         (rank - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

std::string MarkdownTable(const std::vector<json>& summaries) {
  std::string out =
      "| load | policy | completed | errors | req/s | output tok/s | TTFT "
      "p50 / p99 ms | TPOT p50 / p99 ms | ITL p50 / p99 ms | E2EL p50 / p99 "
      "ms |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const json& s : summaries) {
    const std::string load =
        s["request_rate"].is_number()
            ? absl::StrFormat("%g req/s", s["request_rate"].get<double>())
            : absl::StrCat(s["concurrency"].get<int>(), " clients");
    auto row = [&](const std::string& name, const json& m) {
      auto ms = [&](const std::string& metric) {
        return absl::StrFormat("%.1f / %.1f",
                               m["p50_" + metric + "_ms"].get<double>(),
                               m["p99_" + metric + "_ms"].get<double>());
      };
      absl::StrAppend(
          &out,
          absl::StrFormat("| %s | %s | %d | %d | %.2f | %.1f | %s | %s | %s "
                          "| %s |\n",
                          load, name, m["completed"].get<int64_t>(),
                          m["errors"].get<int64_t>(),
                          m["request_throughput"].get<double>(),
                          m["output_throughput"].get<double>(), ms("ttft"),
                          ms("tpot"), ms("itl"), ms("e2el")));
    };
    for (const auto& [name, m] : s["by_policy"].items()) row(name, m);
    row("**all**", s["overall"]);
  }
  return out;
}

std::string ThroughputSvg(const std::vector<json>& summaries) {
  client::Chart chart;
  const bool open_loop =
      !summaries.empty() && summaries[0]["request_rate"].is_number();
  chart.title = "Output-token throughput";
  chart.x_label = open_loop ? "request rate (req/s)" : "concurrent clients";
  chart.y_label = "output tokens/s";
  std::map<std::string, client::ChartSeries> series;
  for (const json& s : summaries) {
    const double x = open_loop ? s["request_rate"].get<double>()
                               : s["concurrency"].get<double>();
    for (const auto& [name, m] : s["by_policy"].items()) {
      series[name].name = name;
      series[name].points.emplace_back(x, m["output_throughput"].get<double>());
    }
    series["all"].name = "all";
    series["all"].points.emplace_back(
        x, s["overall"]["output_throughput"].get<double>());
  }
  for (auto& [name, line] : series) chart.series.push_back(std::move(line));
  return client::RenderSvg(chart);
}

}  // namespace coldcompress::loadtest
