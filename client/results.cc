#include "client/results.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace coldcompress::client {
namespace fs = std::filesystem;

std::string ResultsDir(const std::string& root, const std::string& model,
                       const std::string& policy_dir) {
  std::string safe = model.empty() ? "model" : model;
  for (char& c : safe) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' &&
        c != '_')
      c = '_';
  }
  return (fs::path(root) / safe / policy_dir).string();
}

absl::Status WriteJsonAtomic(const std::string& path, const json& value) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << value.dump(2) << "\n";
    out.flush();
    if (!out) {
      return absl::InternalError(
          absl::StrCat(tmp, ": cannot write: ", std::strerror(errno)));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot replace: ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  json value = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded())
    return absl::DataLossError(absl::StrCat(path, ": not valid JSON"));
  return value;
}

absl::StatusOr<std::vector<json>> ReadPredictions(const std::string& path) {
  std::vector<json> records;
  std::ifstream in(path, std::ios::binary);
  if (!in) return records;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  size_t start = 0, good_end = 0;
  int line_number = 0;
  while (start < text.size()) {
    ++line_number;
    const size_t nl = text.find('\n', start);
    const bool complete = nl != std::string::npos;
    const std::string line =
        text.substr(start, complete ? nl - start : std::string::npos);
    json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!complete) {
      if (!record.is_discarded() && record.is_object()) {
        records.push_back(std::move(record));
        good_end = text.size();
      }
      break;  // a cut-short last line is dropped below
    }
    if (record.is_discarded() || !record.is_object()) {
      return absl::DataLossError(absl::StrCat(
          path, ":", line_number, ": not a JSON object; fix or remove it"));
    }
    records.push_back(std::move(record));
    start = nl + 1;
    good_end = start;
  }
  if (good_end < text.size()) {
    std::error_code ec;
    fs::resize_file(path, good_end, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat(path, ": cannot drop a cut-short line: ", ec.message()));
    }
  } else if (good_end == text.size() && !text.empty() && text.back() != '\n') {
    std::ofstream(path, std::ios::app) << "\n";
  }
  return records;
}

absl::StatusOr<std::unique_ptr<PredictionsWriter>> PredictionsWriter::Open(
    const std::string& path) {
  auto writer = std::unique_ptr<PredictionsWriter>(new PredictionsWriter(path));
  writer->out_.open(path, std::ios::app | std::ios::binary);
  if (!writer->out_) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  return writer;
}

absl::Status PredictionsWriter::Append(const json& record) {
  const std::string line =
      record.dump(-1, ' ', false, json::error_handler_t::replace);
  std::lock_guard lock(mu_);
  out_ << line << "\n";
  out_.flush();
  if (!out_) {
    return absl::InternalError(
        absl::StrCat(path_, ": cannot append: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status MergeAllMetrics(const std::string& dir, const std::string& task,
                             const json& metrics) {
  static std::mutex* mu = new std::mutex;
  std::lock_guard lock(*mu);
  const std::string path = (fs::path(dir) / "all_metrics.json").string();
  json all = json::object();
  if (fs::exists(path)) {
    absl::StatusOr<json> old = ReadJson(path);
    if (!old.ok()) return old.status();
    all = *std::move(old);
  }
  all[task] = metrics;
  return WriteJsonAtomic(path, all);
}

}  // namespace coldcompress::client
