// Scores of one example and their aggregation over a task.
#ifndef COLDCOMPRESS_CLIENT_SCORING_H_
#define COLDCOMPRESS_CLIENT_SCORING_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client/tasks/task.h"

namespace coldcompress::client {

// The reference-based scores of a generated answer, one key per reported
// number, on the reference toolkit's scales: rouge -> rouge1, rouge2, rougeL
// (F-measure in [0,1], best label); exact_match in {0,1}; levenshtein
// fuzz.ratio 0-100 (best label); string_match_all / string_match_part 0-100
// (RULER's scale, after RULER's postprocess). llm_rouge is not here (it
// needs a judge).
nlohmann::json ScoreGeneration(const std::vector<std::string>& metrics,
                               const std::string& prediction,
                               const std::vector<std::string>& labels);

// Perplexity numbers of one example from its scored tokens' log-probs:
// "perplexity" = exp(-mean logprob) and "ppl@k" the same over the first k
// tokens for each k in `at` no longer than the tokens scored (empty `at`:
// every multiple of 500 below the count, as the reference).
nlohmann::json ScorePerplexity(const std::vector<double>& logprobs,
                               const std::vector<int>& at);

// The mean of each number in the `field` objects of `records` ("scores",
// "stats", "timings"); a key counts only the records that have it. Keys in
// first-seen order.
nlohmann::json MeanOf(const std::vector<nlohmann::json>& records,
                      const std::string& field);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_SCORING_H_
