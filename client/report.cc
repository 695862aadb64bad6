#include "client/report.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/results.h"
#include "client/svg_chart.h"

namespace coldcompress::client {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string SizeText(const json& sizes) {
  std::vector<std::string> parts;
  for (const json& s : sizes)
    parts.push_back(absl::StrFormat("%g", s.get<double>()));
  return parts.empty() ? "-" : absl::StrJoin(parts, "-");
}

absl::Status ReadDir(const fs::path& dir, std::vector<ReportRow>* rows) {
  absl::StatusOr<json> args = ReadJson((dir / "args.json").string());
  if (!args.ok()) return args.status();
  if (!fs::exists(dir / "all_metrics.json")) return absl::OkStatus();
  absl::StatusOr<json> all = ReadJson((dir / "all_metrics.json").string());
  if (!all.ok()) return all.status();
  for (const auto& [task, m] : all->items()) {
    ReportRow row;
    row.task = task;
    row.policy = m.value("policy_label", args->value("policy_label", "?"));
    row.cache_size = SizeText(m.value("cache_sizes", json::array()));
    row.dir = dir.string();
    row.num_samples = m.value("num_samples", 0);
    const json metrics = m.value("metrics", json::object());
    for (const auto& [name, value] : metrics.items()) {
      if (value.is_number()) row.metrics[name] = value.get<double>();
    }
    const json cache = m.value("cache", json::object());
    row.compression_ratio = cache.value("compression_ratio", 0.0);
    row.cache_bytes = cache.value("cache_bytes", 0.0);
    const json memory = m.value("memory", json::object());
    row.peak_server_bytes = memory.value("peak_bytes", 0.0);
    const json by_policy = memory.value("by_policy", json::object());
    for (const auto& [policy, p] : by_policy.items()) {
      row.session_peak_bytes = std::max(
          row.session_peak_bytes, p.value("session_peak_bytes_mean", 0.0));
    }
    rows->push_back(std::move(row));
  }
  return absl::OkStatus();
}

std::string Csv(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string FileSafe(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' &&
        c != '.')
      c = '_';
  }
  return s;
}

}  // namespace

absl::StatusOr<std::vector<ReportRow>> CollectResults(
    const std::vector<std::string>& inputs) {
  std::vector<ReportRow> rows;
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (!fs::is_directory(input, ec)) {
      return absl::NotFoundError(absl::StrCat(input, ": not a directory"));
    }
    std::vector<fs::path> dirs;
    if (fs::exists(fs::path(input) / "args.json")) dirs.push_back(input);
    for (auto it = fs::recursive_directory_iterator(input, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory() && fs::exists(it->path() / "args.json"))
        dirs.push_back(it->path());
    }
    std::sort(dirs.begin(), dirs.end());
    for (const fs::path& dir : dirs) {
      if (absl::Status s = ReadDir(dir, &rows); !s.ok()) return s;
    }
  }
  if (rows.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no finished task (args.json + all_metrics.json) under ",
                     absl::StrJoin(inputs, ", ")));
  }
  std::sort(rows.begin(), rows.end(),
            [](const ReportRow& a, const ReportRow& b) {
              return std::tie(a.task, a.policy, a.compression_ratio) <
                     std::tie(b.task, b.policy, b.compression_ratio);
            });
  return rows;
}

absl::StatusOr<std::vector<std::string>> WriteReport(
    const std::vector<ReportRow>& rows, const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": ", ec.message()));
  std::vector<std::string> written;
  std::vector<std::string> tasks;
  std::set<std::string> all_metrics;
  for (const ReportRow& r : rows) {
    if (std::find(tasks.begin(), tasks.end(), r.task) == tasks.end())
      tasks.push_back(r.task);
    for (const auto& [m, v] : r.metrics) all_metrics.insert(m);
  }

  std::string md = "# ColdCompress results\n";
  for (const std::string& task : tasks) {
    std::vector<std::string> names;
    for (const ReportRow& r : rows) {
      if (r.task != task) continue;
      for (const auto& [m, v] : r.metrics) {
        if (std::find(names.begin(), names.end(), m) == names.end())
          names.push_back(m);
      }
    }
    absl::StrAppend(&md, "\n## ", task, "\n\n| policy | cache size | n | ",
                    absl::StrJoin(names, " | "),
                    " | compression | cache MiB | session peak MiB |\n|",
                    std::string(""), "---|---|---|");
    for (size_t i = 0; i < names.size(); ++i) absl::StrAppend(&md, "---|");
    absl::StrAppend(&md, "---|---|---|\n");
    for (const ReportRow& r : rows) {
      if (r.task != task) continue;
      absl::StrAppend(&md, "| ", r.policy, " | ", r.cache_size, " | ",
                      r.num_samples, " |");
      for (const std::string& m : names) {
        auto it = r.metrics.find(m);
        absl::StrAppend(
            &md, " ",
            it == r.metrics.end() ? "-" : absl::StrFormat("%.4f", it->second),
            " |");
      }
      absl::StrAppend(
          &md, absl::StrFormat(" %.3f | %.3f | %.3f |\n", r.compression_ratio,
                               r.cache_bytes / (1 << 20),
                               r.session_peak_bytes / (1 << 20)));
    }

    // One plot per metric: score against the compression ratio reached.
    auto plot = [&](const std::string& name, const std::string& y_label,
                    auto value) {
      Chart chart;
      chart.title = absl::StrCat(task, ": ", y_label);
      chart.x_label = "compression ratio (fraction of the cache evicted)";
      chart.y_label = y_label;
      for (const ReportRow& r : rows) {
        if (r.task != task) continue;
        std::optional<double> y = value(r);
        if (!y) continue;
        auto it = std::find_if(
            chart.series.begin(), chart.series.end(),
            [&](const ChartSeries& s) { return s.name == r.policy; });
        if (it == chart.series.end()) {
          chart.series.push_back({r.policy, {}});
          it = chart.series.end() - 1;
        }
        it->points.emplace_back(r.compression_ratio, *y);
      }
      const std::string path =
          (fs::path(out_dir) / FileSafe(absl::StrCat(task, "__", name, ".svg")))
              .string();
      std::ofstream(path) << RenderSvg(chart);
      written.push_back(path);
    };
    for (const std::string& m : names) {
      plot(m, m, [&](const ReportRow& r) -> std::optional<double> {
        auto it = r.metrics.find(m);
        if (it == r.metrics.end()) return std::nullopt;
        return it->second;
      });
    }
    plot("memory", "KV-cache MiB per request",
         [](const ReportRow& r) -> std::optional<double> {
           return r.cache_bytes / (1 << 20);
         });
  }
  std::printf("%s", md.c_str());

  const std::string md_path = (fs::path(out_dir) / "report.md").string();
  std::ofstream(md_path) << md;
  written.push_back(md_path);
  const std::string csv_path = (fs::path(out_dir) / "report.csv").string();
  std::ofstream csv(csv_path);
  csv << "task,policy,cache_size,num_samples,compression_ratio,cache_bytes,"
         "server_peak_bytes,session_peak_bytes";
  for (const std::string& m : all_metrics) csv << "," << Csv(m);
  csv << ",dir\n";
  for (const ReportRow& r : rows) {
    csv << Csv(r.task) << "," << Csv(r.policy) << "," << Csv(r.cache_size)
        << "," << r.num_samples << "," << r.compression_ratio << ","
        << r.cache_bytes << "," << r.peak_server_bytes << ","
        << r.session_peak_bytes;
    for (const std::string& m : all_metrics) {
      auto it = r.metrics.find(m);
      csv << ",";
      if (it != r.metrics.end()) csv << it->second;
    }
    csv << "," << Csv(r.dir) << "\n";
  }
  written.push_back(csv_path);
  return written;
}

}  // namespace coldcompress::client
