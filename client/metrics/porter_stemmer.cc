#include "client/metrics/porter_stemmer.h"

#include <span>
#include <string>
#include <string_view>

namespace coldcompress::client {
namespace {

// Porter stemmer: a port of nltk/stem/porter.py in its default
// NLTK_EXTENSIONS mode. Rule lists follow _apply_rule_list: the first rule
// whose suffix matches decides; if its condition fails the word is returned
// unchanged and later rules are not tried.

bool IsConsonant(std::string_view w, size_t i) {
  const char c = w[i];
  if (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u') return false;
  return c != 'y' || i == 0 || !IsConsonant(w, i - 1);
}

// m in [C](VC){m}[V]: the number of vowel->consonant transitions.
int Measure(std::string_view stem) {
  int m = 0;
  for (size_t i = 1; i < stem.size(); ++i) {
    if (!IsConsonant(stem, i - 1) && IsConsonant(stem, i)) ++m;
  }
  return m;
}

bool ContainsVowel(std::string_view stem) {
  for (size_t i = 0; i < stem.size(); ++i) {
    if (!IsConsonant(stem, i)) return true;
  }
  return false;
}

// Condition *d.
bool EndsDoubleConsonant(std::string_view w) {
  const size_t n = w.size();
  return n >= 2 && w[n - 1] == w[n - 2] && IsConsonant(w, n - 1);
}

// Condition *o, plus the NLTK extension for two-letter stems.
bool EndsCvc(std::string_view w) {
  const size_t n = w.size();
  if (n >= 3 && IsConsonant(w, n - 3) && !IsConsonant(w, n - 2) &&
      IsConsonant(w, n - 1) && w[n - 1] != 'w' && w[n - 1] != 'x' &&
      w[n - 1] != 'y') {
    return true;
  }
  return n == 2 && !IsConsonant(w, 0) && IsConsonant(w, 1);
}

bool PositiveMeasure(std::string_view stem) { return Measure(stem) > 0; }
bool MeasureAbove1(std::string_view stem) { return Measure(stem) > 1; }
bool IonCondition(std::string_view stem) {
  return Measure(stem) > 1 && (stem.back() == 's' || stem.back() == 't');
}

struct Rule {
  std::string_view suffix;
  std::string_view replacement;
  bool (*condition)(std::string_view stem);  // nullptr: unconditional.
};

std::string ApplyRules(const std::string& word, std::span<const Rule> rules) {
  for (const Rule& rule : rules) {
    if (!word.ends_with(rule.suffix)) continue;
    const std::string_view stem(word.data(), word.size() - rule.suffix.size());
    if (rule.condition == nullptr || rule.condition(stem)) {
      std::string out(stem);
      out.append(rule.replacement);
      return out;
    }
    return word;
  }
  return word;
}

std::string Step1a(const std::string& w) {
  // NLTK: 'dies' -> 'die' but 'flies' -> 'fli'.
  if (w.size() == 4 && w.ends_with("ies")) return w.substr(0, 1) + "ie";
  static constexpr Rule kRules[] = {
      {"sses", "ss", nullptr},
      {"ies", "i", nullptr},
      {"ss", "ss", nullptr},
      {"s", "", nullptr},
  };
  return ApplyRules(w, kRules);
}

std::string Step1b(const std::string& w) {
  // NLTK: 'died' -> 'die' but 'spied' -> 'spi'.
  if (w.ends_with("ied")) {
    return w.substr(0, w.size() - 3) + (w.size() == 4 ? "ie" : "i");
  }
  if (w.ends_with("eed")) {
    const std::string stem = w.substr(0, w.size() - 3);
    return Measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string s;  // NLTK's intermediate_stem.
  if (w.ends_with("ed")) s = w.substr(0, w.size() - 2);
  if (w.ends_with("ing")) s = w.substr(0, w.size() - 3);
  if (!ContainsVowel(s)) return w;  // Also when neither suffix is present.
  // AT -> ATE, BL -> BLE, IZ -> IZE.
  if (s.ends_with("at") || s.ends_with("bl") || s.ends_with("iz")) {
    return s + "e";
  }
  // (*d and not (*L or *S or *Z)) -> single letter.
  if (EndsDoubleConsonant(s)) {
    const char last = s.back();
    if (last != 'l' && last != 's' && last != 'z') s.pop_back();
    return s;
  }
  // (m=1 and *o) -> E.
  if (Measure(s) == 1 && EndsCvc(s)) return s + "e";
  return s;
}

std::string Step1c(const std::string& w) {
  // NLTK: (*c and not c) Y -> I: the stem is longer than one letter and ends
  // in a consonant.
  if (w.ends_with("y") && w.size() > 2 && IsConsonant(w, w.size() - 2)) {
    return w.substr(0, w.size() - 1) + "i";
  }
  return w;
}

std::string Step2(const std::string& w) {
  // NLTK applies ALLI -> AL first and, if it fires, runs step 2 again.
  if (w.ends_with("alli") &&
      PositiveMeasure(std::string_view(w).substr(0, w.size() - 4))) {
    return Step2(w.substr(0, w.size() - 4) + "al");
  }
  static constexpr Rule kRules[] = {
      {"ational", "ate", PositiveMeasure}, {"tional", "tion", PositiveMeasure},
      {"enci", "ence", PositiveMeasure},   {"anci", "ance", PositiveMeasure},
      {"izer", "ize", PositiveMeasure},    {"bli", "ble", PositiveMeasure},
      {"alli", "al", PositiveMeasure},     {"entli", "ent", PositiveMeasure},
      {"eli", "e", PositiveMeasure},       {"ousli", "ous", PositiveMeasure},
      {"ization", "ize", PositiveMeasure}, {"ation", "ate", PositiveMeasure},
      {"ator", "ate", PositiveMeasure},    {"alism", "al", PositiveMeasure},
      {"iveness", "ive", PositiveMeasure}, {"fulness", "ful", PositiveMeasure},
      {"ousness", "ous", PositiveMeasure}, {"aliti", "al", PositiveMeasure},
      {"iviti", "ive", PositiveMeasure},   {"biliti", "ble", PositiveMeasure},
      {"fulli", "ful", PositiveMeasure},
  };
  for (const Rule& rule : kRules) {
    if (w.ends_with(rule.suffix)) return ApplyRules(w, {&rule, 1});
  }
  // NLTK's last rule, LOGI -> LOG, tests the measure of word[:-3] (the stem
  // plus its 'l'), so it cannot be expressed as a stem condition. No earlier
  // suffix ends in "gi", so checking it last keeps the rule order.
  if (w.ends_with("logi")) {
    return PositiveMeasure(std::string_view(w).substr(0, w.size() - 3))
               ? w.substr(0, w.size() - 1)
               : w;
  }
  return w;
}

std::string Step3(const std::string& w) {
  static constexpr Rule kRules[] = {
      {"icate", "ic", PositiveMeasure}, {"ative", "", PositiveMeasure},
      {"alize", "al", PositiveMeasure}, {"iciti", "ic", PositiveMeasure},
      {"ical", "ic", PositiveMeasure},  {"ful", "", PositiveMeasure},
      {"ness", "", PositiveMeasure},
  };
  return ApplyRules(w, kRules);
}

std::string Step4(const std::string& w) {
  static constexpr Rule kRules[] = {
      {"al", "", MeasureAbove1},    {"ance", "", MeasureAbove1},
      {"ence", "", MeasureAbove1},  {"er", "", MeasureAbove1},
      {"ic", "", MeasureAbove1},    {"able", "", MeasureAbove1},
      {"ible", "", MeasureAbove1},  {"ant", "", MeasureAbove1},
      {"ement", "", MeasureAbove1}, {"ment", "", MeasureAbove1},
      {"ent", "", MeasureAbove1},   {"ion", "", IonCondition},
      {"ou", "", MeasureAbove1},    {"ism", "", MeasureAbove1},
      {"ate", "", MeasureAbove1},   {"iti", "", MeasureAbove1},
      {"ous", "", MeasureAbove1},   {"ive", "", MeasureAbove1},
      {"ize", "", MeasureAbove1},
  };
  return ApplyRules(w, kRules);
}

std::string Step5a(const std::string& w) {
  if (!w.ends_with("e")) return w;
  const std::string stem = w.substr(0, w.size() - 1);
  const int m = Measure(stem);
  if (m > 1 || (m == 1 && !EndsCvc(stem))) return stem;
  return w;
}

std::string Step5b(const std::string& w) {
  // (m > 1 and *d and *L) -> single letter; NLTK measures word[:-1].
  if (w.ends_with("ll") &&
      Measure(std::string_view(w).substr(0, w.size() - 1)) > 1) {
    return w.substr(0, w.size() - 1);
  }
  return w;
}

// NLTK_EXTENSIONS irregular forms (PorterStemmer.pool): {word, stem}.
// clang-format off
constexpr std::string_view kIrregularForms[][2] = {
    {"sky", "sky"}, {"skies", "sky"}, {"dying", "die"}, {"lying", "lie"},
    {"tying", "tie"}, {"news", "news"}, {"innings", "inning"},
    {"inning", "inning"}, {"outings", "outing"}, {"outing", "outing"},
    {"cannings", "canning"}, {"canning", "canning"}, {"howe", "howe"},
    {"proceed", "proceed"}, {"exceed", "exceed"}, {"succeed", "succeed"},
};
// clang-format on

}  // namespace

std::string PorterStem(std::string_view word) {
  for (const auto& [irregular, stem] : kIrregularForms) {
    if (word == irregular) return std::string(stem);
  }
  std::string w(word);
  if (w.size() <= 2) return w;
  for (auto step :
       {Step1a, Step1b, Step1c, Step2, Step3, Step4, Step5a, Step5b}) {
    w = step(w);
  }
  return w;
}

}  // namespace coldcompress::client
