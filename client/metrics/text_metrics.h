// Text-similarity metrics used by the eval client to score generations
// against reference answers: ROUGE (as Google's `rouge-score` package),
// Levenshtein distance and ratio (as python-Levenshtein), Cold Compress's
// exact match and fuzz.ratio,
// RULER string match, and helpers for the Cold Compress LLM-Rouge judge.
//
// Every function is pure and thread-safe: no global mutable state, no I/O,
// no errors to report (degenerate inputs have documented results). The
// implementation needs only the C++20 standard library.
// Text is taken as UTF-8. Bytes that do not form valid UTF-8 are kept as
// one opaque unit each (equal only to the same byte); Python, which the
// reference implementations run on, never sees such input.

#ifndef COLDCOMPRESS_CLIENT_METRICS_TEXT_METRICS_H_
#define COLDCOMPRESS_CLIENT_METRICS_TEXT_METRICS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coldcompress::client {

// ---------------------------------------------------------------------------
// ROUGE, matching google-research/rouge (`rouge-score` on PyPI, the package
// behind Hugging Face `evaluate.load("rouge")`) with its DefaultTokenizer.
// ---------------------------------------------------------------------------

// One ROUGE result. All fields lie in [0, 1]; fmeasure is the harmonic mean
// 2PR / (P + R), or 0 when P + R == 0 (rouge_score.scoring.fmeasure).
struct RougeScore {
  double precision = 0.0;
  double recall = 0.0;
  double fmeasure = 0.0;
};

// Which ROUGE variant to compute in RougeMax.
struct RougeType {
  enum class Kind { kNgram, kLcs };
  // rouge-score's "rouge<n>"; REQUIRES: n >= 1.
  static RougeType N(int n) { return RougeType{Kind::kNgram, n}; }
  // rouge-score's "rougeL" (sentence-level LCS, not "rougeLsum").
  static RougeType L() { return RougeType{Kind::kLcs, 0}; }

  Kind kind = Kind::kNgram;
  int n = 1;  // Used only when kind == kNgram.
};

// Tokenizes like rouge_score.tokenize.tokenize: lowercase, replace every run
// of characters outside [a-z0-9] with a space, split on whitespace, and, if
// `use_stemmer`, Porter-stem (PorterStem) only tokens longer than 3 chars.
// Lowercasing follows Python's str.lower() for the two non-ASCII code points
// that lower to ASCII (U+0130 -> "i" + U+0307, U+212A KELVIN SIGN -> "k");
// every other non-ASCII character is a separator.
std::vector<std::string> RougeTokenize(std::string_view text, bool use_stemmer);

// ROUGE-N of `prediction` against `reference` (rouge-score's "rouge<n>").
// Overlap is the clipped count sum over reference n-grams of
// min(count_ref, count_pred); precision = overlap / max(#pred n-grams, 1),
// recall = overlap / max(#ref n-grams, 1). An empty (or all-punctuation)
// prediction or reference therefore scores all zeros.
// REQUIRES: n >= 1. For n < 1 (rouge-score raises ValueError) this returns
// all zeros.
RougeScore RougeN(std::string_view prediction, std::string_view reference,
                  int n, bool use_stemmer);

// ROUGE-L of `prediction` against `reference` (rouge-score's "rougeL"): with
// L = length of the longest common token subsequence, precision = L/#pred,
// recall = L/#ref. All zeros when either side has no tokens.
RougeScore RougeL(std::string_view prediction, std::string_view reference,
                  bool use_stemmer);

// Multi-reference ROUGE, as RougeScorer.score_multi (what HF evaluate uses
// when each prediction has a list of references): scores `prediction`
// against each reference and returns the whole RougeScore of the reference
// with the highest fmeasure; on ties, the earliest such reference (numpy
// argmax). Precision and recall are NOT maximized independently. Returns all
// zeros when `references` is empty (rouge-score would raise).
RougeScore RougeMax(std::string_view prediction,
                    const std::vector<std::string>& references, RougeType type,
                    bool use_stemmer);

// ---------------------------------------------------------------------------
// Levenshtein, matching python-Levenshtein (rapidfuzz/Levenshtein >= 0.20).
// Both operate on Unicode code points, like Python str.
// ---------------------------------------------------------------------------

// Classic edit distance: minimum number of single-code-point insertions,
// deletions and substitutions (each cost 1) turning `a` into `b`
// (Levenshtein.distance). O(|a|*|b|) time, O(min(|a|,|b|)) memory.
int64_t LevenshteinDistance(std::string_view a, std::string_view b);

// Levenshtein.ratio: the normalized InDel similarity
//   1 - indel(a, b) / (|a| + |b|),
// where indel counts insertions and deletions only (a substitution costs 2),
// i.e. indel = |a| + |b| - 2 * LCS(a, b). Lengths are in code points.
// Returns 1.0 when both are empty; result in [0, 1]. Same cost as
// LevenshteinDistance.
double LevenshteinRatio(std::string_view a, std::string_view b);

// ---------------------------------------------------------------------------
// Cold Compress's exact match and Levenshtein score (metric.py of its forks;
// upstream requires fuzzywuzzy): whitespace-token equality and
// fuzzywuzzy's fuzz.ratio.
// ---------------------------------------------------------------------------

// 1.0 if prediction.split() == r.split() (Python str.split(): runs of
// Unicode whitespace separate words) for some r in `references`, else 0.0
// (also for no references). Case and punctuation count.
double ExactMatch(std::string_view prediction,
                  const std::vector<std::string>& references);

// fuzzywuzzy fuzz.ratio: 100 when a == b (also both empty), 0 when one is
// empty, else round(100 * LevenshteinRatio(a, b)) with Python's rounding
// (half to even).
int FuzzRatio(std::string_view a, std::string_view b);

// ---------------------------------------------------------------------------
// RULER string match (NVIDIA/RULER scripts/eval/synthetic/constants.py),
// per example. RULER averages these over examples and multiplies by 100;
// callers do that, after RulerPostprocess. Case-insensitivity follows
// Python's str.lower() for the ranges listed in text_metrics.cc. An empty
// reference is contained in every prediction, as in Python ("" in s).
// ---------------------------------------------------------------------------

// RULER's postprocess of a prediction: strip, every control character
// (U+0000..U+001F) to "\n", strip again.
std::string RulerPostprocess(std::string_view prediction);

// string_match_all for one example: the fraction of `references` r with
// r.lower() a substring of prediction.lower(). 0.0 if `references` is empty.
double RulerStringMatchAll(std::string_view prediction,
                           const std::vector<std::string>& references);

// string_match_part for one example: 1.0 if any reference is contained
// (case-insensitively) in the prediction, else 0.0 (also for no references).
double RulerStringMatchPart(std::string_view prediction,
                            const std::vector<std::string>& references);

// ---------------------------------------------------------------------------
// LLM-Rouge judge (AnswerDotAI/cold-compress metric.py, class LLMRouge).
// ---------------------------------------------------------------------------

// The assistant-turn prefill sent with LlmRougePrompt (cold-compress PREFILL).
// The judge's reply continues after it.
inline constexpr std::string_view kLlmRougePrefill = "The score (1-5) is:";

// The separator cold-compress puts between ground-truth labels:
// REFERENCE_TEMPLATE.format(labels="\n---\n".join(ls), prediction=p).
inline constexpr std::string_view kLlmRougeLabelSeparator = "\n---\n";

// Returns cold-compress REFERENCE_TEMPLATE with {labels} replaced by `labels`
// joined with kLlmRougeLabelSeparator and {prediction} by `prediction`,
// verbatim (no escaping, no trailing newline after the prediction).
std::string LlmRougePrompt(const std::vector<std::string>& labels,
                           std::string_view prediction);

// Parses the judge's reply (the text after kLlmRougePrefill). Like
// cold-compress LLMRouge.parse_int (int(re.search(r"\d+", text).group())),
// this takes the first run of ASCII digits anywhere in `reply`, so leading
// whitespace or words are skipped; it returns that number if it is in 1..5
// (leading zeros allowed: "05" -> 5) and nullopt if there is no digit run or
// the first run is out of range (e.g. "0", "10"; cold-compress would
// return those unchecked).
std::optional<int> ParseJudgeScore(std::string_view reply);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_METRICS_TEXT_METRICS_H_
