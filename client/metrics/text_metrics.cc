#include "client/metrics/text_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "client/metrics/porter_stemmer.h"

namespace coldcompress::client {
namespace {

// ----- UTF-8 <-> code points -----

// Code units for bytes that are not valid UTF-8: kInvalidBase + byte. They lie
// above U+10FFFF so they never equal a real code point.
constexpr char32_t kInvalidBase = 0x110000;

std::u32string DecodeUtf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    size_t len = 0;
    char32_t cp = 0;
    char32_t min = 0;
    if ((b0 & 0xE0) == 0xC0) {
      len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4, cp = b0 & 0x07, min = 0x10000;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const unsigned char b = static_cast<unsigned char>(s[i + k]);
      ok = (b & 0xC0) == 0x80;
      cp = (cp << 6) | (b & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      out.push_back(cp);
      i += len;
    } else {
      out.push_back(kInvalidBase + b0);
      ++i;
    }
  }
  return out;
}

void AppendUtf8(char32_t cp, std::string& out) {
  if (cp >= kInvalidBase || cp < 0x80) {
    out.push_back(
        static_cast<char>(cp >= kInvalidBase ? cp - kInvalidBase : cp));
    return;
  }
  static constexpr unsigned char kLead[] = {0, 0xC0, 0xE0, 0xF0};
  const int extra = cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
  out.push_back(static_cast<char>(kLead[extra] | (cp >> (6 * extra))));
  for (int k = extra - 1; k >= 0; --k) {
    out.push_back(static_cast<char>(0x80 | ((cp >> (6 * k)) & 0x3F)));
  }
}

// One run of Python str.lower() mappings: the code points lo, lo + step,
// lo + 2 * step, ... up to hi lower to themselves plus delta.
struct CaseRange {
  char32_t lo;
  char32_t hi;
  int delta;
  int step;
};

// Python's lowercase mappings for U+0000..U+052F except U+0130 (handled by
// AppendLower) and Latin Extended-B/IPA, plus U+212A KELVIN SIGN.
// clang-format off
constexpr CaseRange kCaseRanges[] = {
    {'A', 'Z', 32, 1}, {0xC0, 0xD6, 32, 1}, {0xD8, 0xDE, 32, 1},
    {0x100, 0x12F, 1, 2}, {0x132, 0x137, 1, 2}, {0x139, 0x148, 1, 2},
    {0x14A, 0x177, 1, 2}, {0x178, 0x178, -0x79, 1}, {0x179, 0x17E, 1, 2},
    {0x370, 0x373, 1, 2}, {0x376, 0x376, 1, 1}, {0x37F, 0x37F, 0x74, 1},
    {0x386, 0x386, 0x26, 1}, {0x388, 0x38A, 0x25, 1}, {0x38C, 0x38C, 0x40, 1},
    {0x38E, 0x38F, 0x3F, 1}, {0x391, 0x3A1, 32, 1}, {0x3A3, 0x3AB, 32, 1},
    {0x3CF, 0x3CF, 8, 1}, {0x3D8, 0x3EF, 1, 2}, {0x3F4, 0x3F4, -0x3C, 1},
    {0x3F7, 0x3F7, 1, 1}, {0x3F9, 0x3F9, -7, 1}, {0x3FA, 0x3FA, 1, 1},
    {0x3FD, 0x3FF, -130, 1}, {0x400, 0x40F, 80, 1}, {0x410, 0x42F, 32, 1},
    {0x460, 0x481, 1, 2}, {0x48A, 0x4BF, 1, 2}, {0x4C0, 0x4C0, 15, 1},
    {0x4C1, 0x4CE, 1, 2}, {0x4D0, 0x52F, 1, 2},
    {0x212A, 0x212A, 'k' - 0x212A, 1},
};
// clang-format on

// Appends Python's str.lower() of `cp` for the ranges of kCaseRanges and
// U+0130; other code points are appended unchanged.
void AppendLower(char32_t cp, std::u32string& out) {
  if (cp == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE -> "i\u0307".
    out.push_back('i');
    out.push_back(0x307);
    return;
  }
  for (const CaseRange& r : kCaseRanges) {
    if (cp >= r.lo && cp <= r.hi && (cp - r.lo) % r.step == 0) {
      out.push_back(static_cast<char32_t>(static_cast<int64_t>(cp) + r.delta));
      return;
    }
  }
  out.push_back(cp);
}

// Cased letters (Unicode property Cased) of the scripts AppendLower handles.
bool IsCased(char32_t cp) {
  return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == 0xAA ||
         cp == 0xB5 || cp == 0xBA ||
         (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) ||
         (cp >= 0x370 && cp <= 0x3FF && cp != 0x374 && cp != 0x375 &&
          cp != 0x37E && cp != 0x384 && cp != 0x385 && cp != 0x387) ||
         (cp >= 0x400 && cp <= 0x52F && !(cp >= 0x482 && cp <= 0x489));
}

// Python's str.lower() over a whole string: AppendLower per code point, plus
// the Final_Sigma rule (capital sigma after a cased letter and not before
// one lowers to final sigma U+03C2). Case-ignorable characters between the
// sigma and its neighbours are not skipped, unlike Python.
std::u32string Lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 0x3A3 && i > 0 && IsCased(s[i - 1]) &&
        !(i + 1 < s.size() && IsCased(s[i + 1]))) {
      out.push_back(0x3C2);
    } else {
      AppendLower(s[i], out);
    }
  }
  return out;
}

std::string LowerUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : Lower(DecodeUtf8(s))) AppendUtf8(cp, out);
  return out;
}

// Python str.isspace(), which is what str.split() splits on.
bool IsPySpace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) ||
         cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// str.split() with no argument: runs of whitespace separate words.
std::vector<std::u32string> PySplit(const std::u32string& s) {
  std::vector<std::u32string> words;
  std::u32string word;
  for (char32_t cp : s) {
    if (IsPySpace(cp)) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word.push_back(cp);
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

// str.strip() with no argument.
std::u32string PyStrip(const std::u32string& s) {
  size_t begin = 0, end = s.size();
  while (begin < end && IsPySpace(s[begin])) ++begin;
  while (end > begin && IsPySpace(s[end - 1])) --end;
  return s.substr(begin, end - begin);
}

// ----- ROUGE internals -----

RougeScore MakeScore(double precision, double recall) {
  RougeScore score;
  score.precision = precision;
  score.recall = recall;
  score.fmeasure = precision + recall > 0
                       ? 2 * precision * recall / (precision + recall)
                       : 0.0;
  return score;
}

std::unordered_map<std::string, int64_t> CountNgrams(
    const std::vector<std::string>& tokens, int n) {
  std::unordered_map<std::string, int64_t> counts;
  const size_t width = static_cast<size_t>(n);
  for (size_t i = 0; i + width <= tokens.size(); ++i) {
    // Tokens never contain spaces, so a space-joined key is unambiguous.
    std::string key = tokens[i];
    for (size_t k = i + 1; k < i + width; ++k)
      key.append(" ").append(tokens[k]);
    ++counts[key];
  }
  return counts;
}

// Length of the longest common subsequence; O(|a|*|b|) time,
// O(min(|a|, |b|)) memory.
template <typename Seq>
int64_t LcsLength(const Seq& a, const Seq& b) {
  const Seq& longer = a.size() >= b.size() ? a : b;
  const Seq& shorter = a.size() >= b.size() ? b : a;
  std::vector<int64_t> row(shorter.size() + 1, 0);
  for (size_t i = 1; i <= longer.size(); ++i) {
    int64_t diag = 0;  // L[i-1][j-1]
    for (size_t j = 1; j <= shorter.size(); ++j) {
      const int64_t up = row[j];  // L[i-1][j]
      row[j] =
          longer[i - 1] == shorter[j - 1] ? diag + 1 : std::max(up, row[j - 1]);
      diag = up;
    }
  }
  return row.back();
}

}  // namespace

// ----- Public API -----

std::vector<std::string> RougeTokenize(std::string_view text,
                                       bool use_stemmer) {
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&]() {
    if (current.empty()) return;
    tokens.push_back(use_stemmer && current.size() > 3 ? PorterStem(current)
                                                       : current);
    current.clear();
  };
  std::u32string lowered;
  for (char32_t cp : DecodeUtf8(text)) {
    lowered.clear();
    AppendLower(cp, lowered);
    for (char32_t c : lowered) {
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        current.push_back(static_cast<char>(c));
      } else {
        flush();
      }
    }
  }
  flush();
  return tokens;
}

RougeScore RougeN(std::string_view prediction, std::string_view reference,
                  int n, bool use_stemmer) {
  if (n < 1) return RougeScore{};
  const auto ref = CountNgrams(RougeTokenize(reference, use_stemmer), n);
  const auto pred = CountNgrams(RougeTokenize(prediction, use_stemmer), n);
  int64_t overlap = 0, ref_total = 0, pred_total = 0;
  for (const auto& [ngram, count] : ref) {
    ref_total += count;
    if (auto it = pred.find(ngram); it != pred.end()) {
      overlap += std::min(count, it->second);
    }
  }
  for (const auto& [ngram, count] : pred) pred_total += count;
  return MakeScore(
      static_cast<double>(overlap) / std::max<int64_t>(pred_total, 1),
      static_cast<double>(overlap) / std::max<int64_t>(ref_total, 1));
}

RougeScore RougeL(std::string_view prediction, std::string_view reference,
                  bool use_stemmer) {
  const std::vector<std::string> ref = RougeTokenize(reference, use_stemmer);
  const std::vector<std::string> pred = RougeTokenize(prediction, use_stemmer);
  if (ref.empty() || pred.empty()) return RougeScore{};
  const double lcs = static_cast<double>(LcsLength(ref, pred));
  return MakeScore(lcs / static_cast<double>(pred.size()),
                   lcs / static_cast<double>(ref.size()));
}

RougeScore RougeMax(std::string_view prediction,
                    const std::vector<std::string>& references, RougeType type,
                    bool use_stemmer) {
  RougeScore best;
  bool have_best = false;
  for (const std::string& reference : references) {
    const RougeScore score =
        type.kind == RougeType::Kind::kLcs
            ? RougeL(prediction, reference, use_stemmer)
            : RougeN(prediction, reference, type.n, use_stemmer);
    // Strict '>' keeps the earliest maximum, like numpy.argmax.
    if (!have_best || score.fmeasure > best.fmeasure) {
      best = score;
      have_best = true;
    }
  }
  return best;
}

int64_t LevenshteinDistance(std::string_view a, std::string_view b) {
  std::u32string s = DecodeUtf8(a);
  std::u32string t = DecodeUtf8(b);
  if (s.size() < t.size()) std::swap(s, t);  // t is the shorter.
  std::vector<int64_t> row(t.size() + 1);
  for (size_t j = 0; j <= t.size(); ++j) row[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= s.size(); ++i) {
    int64_t diag = row[0];  // D[i-1][j-1]
    row[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= t.size(); ++j) {
      const int64_t up = row[j];  // D[i-1][j]
      row[j] = std::min(
          {up + 1, row[j - 1] + 1, diag + (s[i - 1] == t[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row.back();
}

double LevenshteinRatio(std::string_view a, std::string_view b) {
  const std::u32string s = DecodeUtf8(a);
  const std::u32string t = DecodeUtf8(b);
  const int64_t total = static_cast<int64_t>(s.size() + t.size());
  if (total == 0) return 1.0;
  const int64_t indel = total - 2 * LcsLength(s, t);
  return 1.0 - static_cast<double>(indel) / static_cast<double>(total);
}

double ExactMatch(std::string_view prediction,
                  const std::vector<std::string>& references) {
  const std::vector<std::u32string> words = PySplit(DecodeUtf8(prediction));
  for (const std::string& reference : references) {
    if (PySplit(DecodeUtf8(reference)) == words) return 1.0;
  }
  return 0.0;
}

int FuzzRatio(std::string_view a, std::string_view b) {
  if (a == b) return 100;
  if (a.empty() || b.empty()) return 0;
  // int(round(x)): Python rounds half to even, as nearbyint does by default.
  return static_cast<int>(std::nearbyint(100 * LevenshteinRatio(a, b)));
}

std::string RulerPostprocess(std::string_view prediction) {
  std::u32string s = PyStrip(DecodeUtf8(prediction));
  for (char32_t& cp : s) {
    if (cp <= 0x1F) cp = U'\n';
  }
  std::string out;
  for (char32_t cp : PyStrip(s)) AppendUtf8(cp, out);
  return out;
}

double RulerStringMatchAll(std::string_view prediction,
                           const std::vector<std::string>& references) {
  if (references.empty()) return 0.0;
  const std::string pred = LowerUtf8(prediction);
  int64_t hits = 0;
  for (const std::string& reference : references) {
    // A byte search on UTF-8 is a code-point search (UTF-8 self-synchronizes).
    if (pred.find(LowerUtf8(reference)) != std::string::npos) ++hits;
  }
  return static_cast<double>(hits) / static_cast<double>(references.size());
}

double RulerStringMatchPart(std::string_view prediction,
                            const std::vector<std::string>& references) {
  const std::string pred = LowerUtf8(prediction);
  for (const std::string& reference : references) {
    if (pred.find(LowerUtf8(reference)) != std::string::npos) return 1.0;
  }
  return 0.0;
}

std::string LlmRougePrompt(const std::vector<std::string>& labels,
                           std::string_view prediction) {
  std::string prompt =
      "You are shown ground-truth answer(s) and asked to judge the quality of "
      "an LLM-generated answer.\n"
      "Assign it a score from 1-5 where 1 is the worst and 5 is the best "
      "based on how similar it is to the ground-truth(s).\n"
      "Do NOT explain your choice. Simply return a number from 1-5.\n"
      "\n"
      "====GROUND TRUTHS====\n";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) prompt.append(kLlmRougeLabelSeparator);
    prompt.append(labels[i]);
  }
  prompt.append("\n\n====ANSWER====\n");
  prompt.append(prediction);
  return prompt;
}

std::optional<int> ParseJudgeScore(std::string_view reply) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0;
  while (i < reply.size() && !is_digit(reply[i])) ++i;
  if (i == reply.size()) return std::nullopt;
  // Skip leading zeros of the run: int("05") == 5.
  while (i + 1 < reply.size() && reply[i] == '0' && is_digit(reply[i + 1])) {
    ++i;
  }
  const bool run_ends = i + 1 == reply.size() || !is_digit(reply[i + 1]);
  if (!run_ends || reply[i] < '1' || reply[i] > '5') return std::nullopt;
  return reply[i] - '0';
}

}  // namespace coldcompress::client
