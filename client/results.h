// The files of a results directory: args.json, {task}_predictions.jsonl
// (append-only, one example per line, the resume point),
// {task}_metrics.json and all_metrics.json (written whole, atomically).
#ifndef COLDCOMPRESS_CLIENT_RESULTS_H_
#define COLDCOMPRESS_CLIENT_RESULTS_H_

#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace coldcompress::client {

using nlohmann::json;

// `root`/<model>/<policy dir>, the model name made safe for a path.
std::string ResultsDir(const std::string& root, const std::string& model,
                       const std::string& policy_dir);

// Writes `value` to a temporary file and renames it over `path`: readers see
// the old file or the new one, never a part.
absl::Status WriteJsonAtomic(const std::string& path, const json& value);
absl::StatusOr<json> ReadJson(const std::string& path);

// The records of a predictions file. A last line cut short by an interrupted
// run is dropped (and removed from the file); any other bad line is an
// error naming the line. A missing file has no records.
absl::StatusOr<std::vector<json>> ReadPredictions(const std::string& path);

// Appends records, one JSON line each, flushed at once. Thread-safe.
class PredictionsWriter {
 public:
  static absl::StatusOr<std::unique_ptr<PredictionsWriter>> Open(
      const std::string& path);
  absl::Status Append(const json& record);

 private:
  explicit PredictionsWriter(std::string path) : path_(std::move(path)) {}
  std::string path_;
  std::mutex mu_;
  std::ofstream out_;
};

// Sets all_metrics.json[task] = metrics in `dir`, keeping the other tasks.
// Serialized within the process.
absl::Status MergeAllMetrics(const std::string& dir, const std::string& task,
                             const json& metrics);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_RESULTS_H_
