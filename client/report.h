// `coldcompress report`: every metric per task x policy x cache size from
// results directories, as a table, a CSV and SVG plots of each task's scores
// and cache memory against the actual compression ratio (one line per
// policy).
#ifndef COLDCOMPRESS_CLIENT_REPORT_H_
#define COLDCOMPRESS_CLIENT_REPORT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace coldcompress::client {

struct ReportRow {
  std::string task, policy, cache_size, dir;
  int num_samples = 0;
  std::map<std::string, double> metrics;
  double compression_ratio = 0;
  double cache_bytes = 0;         // mean per request
  double peak_server_bytes = 0;   // sampled from Prometheus or /metrics
  double session_peak_bytes = 0;  // mean peak of the sessions, 0 if none
};

// Every task of every results directory under `inputs` (a directory with
// args.json and all_metrics.json, searched recursively). NOT_FOUND when
// there is none.
absl::StatusOr<std::vector<ReportRow>> CollectResults(
    const std::vector<std::string>& inputs);

// Prints the table and writes report.md, report.csv and the plots into
// `out_dir`; returns the paths written.
absl::StatusOr<std::vector<std::string>> WriteReport(
    const std::vector<ReportRow>& rows, const std::string& out_dir);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_REPORT_H_
