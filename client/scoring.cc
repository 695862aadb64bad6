#include "client/scoring.h"

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "client/metrics/text_metrics.h"

namespace coldcompress::client {

using nlohmann::json;

json ScoreGeneration(const std::vector<std::string>& metrics,
                     const std::string& prediction,
                     const std::vector<std::string>& labels) {
  json out = json::object();
  for (const std::string& m : metrics) {
    if (m == "rouge") {
      out["rouge1"] =
          RougeMax(prediction, labels, RougeType::N(1), false).fmeasure;
      out["rouge2"] =
          RougeMax(prediction, labels, RougeType::N(2), false).fmeasure;
      out["rougeL"] =
          RougeMax(prediction, labels, RougeType::L(), false).fmeasure;
    } else if (m == "exact_match") {
      out["exact_match"] = ExactMatch(prediction, labels);
    } else if (m == "levenshtein") {
      int best = 0;
      for (const std::string& l : labels)
        best = std::max(best, FuzzRatio(prediction, l));
      out["levenshtein"] = best;
    } else if (m == "string_match_all") {
      out["string_match_all"] =
          100 * RulerStringMatchAll(RulerPostprocess(prediction), labels);
    } else if (m == "string_match_part") {
      out["string_match_part"] =
          100 * RulerStringMatchPart(RulerPostprocess(prediction), labels);
    }
  }
  return out;
}

json ScorePerplexity(const std::vector<double>& logprobs,
                     const std::vector<int>& at) {
  json out = json::object();
  auto ppl = [&](size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += logprobs[i];
    return std::exp(-sum / static_cast<double>(n));
  };
  if (logprobs.empty()) return out;
  out["perplexity"] = ppl(logprobs.size());
  std::vector<int> ks = at;
  if (ks.empty()) {
    for (size_t k = 500; k < logprobs.size(); k += 500)
      ks.push_back(static_cast<int>(k));
  }
  for (int k : ks) {
    if (k > 0 && static_cast<size_t>(k) <= logprobs.size())
      out[absl::StrCat("ppl@", k)] = ppl(k);
  }
  return out;
}

json MeanOf(const std::vector<json>& records, const std::string& field) {
  std::vector<std::string> order;
  std::map<std::string, std::pair<double, int>> sums;
  for (const json& r : records) {
    auto it = r.find(field);
    if (it == r.end() || !it->is_object()) continue;
    for (const auto& [key, value] : it->items()) {
      if (!value.is_number()) continue;
      auto [slot, inserted] = sums.try_emplace(key, 0.0, 0);
      if (inserted) order.push_back(key);
      slot->second.first += value.get<double>();
      slot->second.second += 1;
    }
  }
  json out = json::object();
  for (const std::string& key : order) {
    const auto& [sum, n] = sums[key];
    out[key] = sum / n;
  }
  return out;
}

}  // namespace coldcompress::client
