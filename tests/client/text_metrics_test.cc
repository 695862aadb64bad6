#include "client/metrics/text_metrics.h"

#include <optional>
#include <string>
#include <vector>

#include "client/metrics/porter_stemmer.h"
#include "gtest/gtest.h"

namespace coldcompress::client {
namespace {

// rouge-score's tests use assertAlmostEqual(expected, actual, 5), i.e.
// round(actual - expected, 5) == 0.
constexpr double kPlaces5 = 5e-6;
constexpr double kExact = 1e-12;

void ExpectScore(const RougeScore& got, double precision, double recall,
                 double fmeasure, double tolerance) {
  EXPECT_NEAR(got.precision, precision, tolerance);
  EXPECT_NEAR(got.recall, recall, tolerance);
  EXPECT_NEAR(got.fmeasure, fmeasure, tolerance);
}

// First two lines of google-research/rouge/testdata/target.txt and
// prediction.txt (read with readlines() in rouge_scorer_test.py, so each
// keeps its trailing newline).
constexpr char kTarget0[] =
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing "
    "M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion wIojNbN wL,b "
    ".a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n";
constexpr char kTarget1[] =
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion "
    "BDFhrpMtion psing sbKao Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed "
    "nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T "
    "BUySKtion gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n";
constexpr char kPrediction0[] =
    "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl "
    "jB-RPP'iyOIcUxi\n";
constexpr char kPrediction1[] =
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier "
    "LMmed HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer "
    "tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n";

// ----------------------------------------------------------------- ROUGE --

// google-research/rouge/rouge_scorer_test.py, testRouge1:
// score("testing one two", "testing") -> P 1, R 1/3, F 1/2.
TEST(TextMetricsTest, Rouge1MatchesRougeScorerTest) {
  ExpectScore(RougeN("testing", "testing one two", 1, false), 1.0, 1.0 / 3, 0.5,
              kExact);
}

// rouge_scorer_test.py, testRouge2: score("testing one two", "testing one")
// -> P 1, R 1/2, F 2/3.
TEST(TextMetricsTest, Rouge2MatchesRougeScorerTest) {
  ExpectScore(RougeN("testing one", "testing one two", 2, false), 1.0, 0.5,
              2.0 / 3, kExact);
}

// rouge_scorer_test.py, testRougeLConsecutive and testRougeLNonConsecutive:
// both predictions score P 1, R 2/3, F 4/5 against "testing one two".
TEST(TextMetricsTest, RougeLMatchesRougeScorerTest) {
  ExpectScore(RougeL("testing one", "testing one two", false), 1.0, 2.0 / 3,
              0.8, kExact);
  ExpectScore(RougeL("testing two", "testing one two", false), 1.0, 2.0 / 3,
              0.8, kExact);
}

// rouge_scorer_test.py, testRougeEmpty: an empty prediction scores 0 for
// rouge1, rouge2 and rougeL. Also an all-punctuation one (testRougeLsum's
// "/" case) and an empty reference.
TEST(TextMetricsTest, RougeEmptyIsZero) {
  ExpectScore(RougeN("", "testing one two", 1, false), 0, 0, 0, 0);
  ExpectScore(RougeN("", "testing one two", 2, false), 0, 0, 0, 0);
  ExpectScore(RougeL("", "testing one two", false), 0, 0, 0, 0);
  ExpectScore(RougeL("/", "w1 w2 w3 w4 w5", false), 0, 0, 0, 0);
  ExpectScore(RougeN("testing", "", 1, true), 0, 0, 0, 0);
}

// rouge_scorer_test.py, testRouge1AgainstRouge155 / testRouge2... /
// testRougeLAgainstRouge155 (ROUGE-1.5.5 ground truth, 5 places).
TEST(TextMetricsTest, MatchesRouge155WithoutStemming) {
  ExpectScore(RougeN(kPrediction0, kTarget0, 1, false), 0.68750, 0.40741,
              0.51163, kPlaces5);
  ExpectScore(RougeN(kPrediction1, kTarget1, 1, false), 0.65385, 0.40476,
              0.50000, kPlaces5);
  ExpectScore(RougeN(kPrediction0, kTarget0, 2, false), 0.53333, 0.30769,
              0.39024, kPlaces5);
  ExpectScore(RougeN(kPrediction1, kTarget1, 2, false), 0.48000, 0.29268,
              0.36364, kPlaces5);
  ExpectScore(RougeL(kPrediction0, kTarget0, false), 0.68750, 0.40741, 0.51163,
              kPlaces5);
  ExpectScore(RougeL(kPrediction1, kTarget1, false), 0.65385, 0.40476, 0.50000,
              kPlaces5);
}

// rouge_scorer_test.py, testRouge1AgainstRouge155WithStemming and
// testRouge2AgainstRouge155WithStemming (use_stemmer=True). Stemming changes
// rouge1 of the second pair from 0.40476/0.65385 to 0.42857/0.69231.
TEST(TextMetricsTest, MatchesRouge155WithStemming) {
  ExpectScore(RougeN(kPrediction0, kTarget0, 1, true), 0.68750, 0.40741,
              0.51163, kPlaces5);
  ExpectScore(RougeN(kPrediction1, kTarget1, 1, true), 0.69231, 0.42857,
              0.52941, kPlaces5);
  ExpectScore(RougeN(kPrediction0, kTarget0, 2, true), 0.53333, 0.30769,
              0.39024, kPlaces5);
  ExpectScore(RougeN(kPrediction1, kTarget1, 2, true), 0.48000, 0.29268,
              0.36364, kPlaces5);
}

// HF evaluate metrics/rouge/README.md: predictions == references
// ("hello there", "general kenobi") give 1.0 for every type, and
// "ankh morpork" vs "general kenobi" gives rouge1 0.0.
TEST(TextMetricsTest, MatchesHfEvaluateReadme) {
  for (const char* text : {"hello there", "general kenobi"}) {
    EXPECT_DOUBLE_EQ(RougeN(text, text, 1, false).fmeasure, 1.0);
    EXPECT_DOUBLE_EQ(RougeN(text, text, 2, false).fmeasure, 1.0);
    EXPECT_DOUBLE_EQ(RougeL(text, text, false).fmeasure, 1.0);
  }
  EXPECT_DOUBLE_EQ(RougeN("ankh morpork", "general kenobi", 1, false).fmeasure,
                   0.0);
}

// Multi-reference: IBM/unitxt prepare/metrics/rouge.py runs HF evaluate's
// rouge (score_multi) on predictions ["hello there", "general kenobi"] with
// references [["hello", "there"], ["general kenobi", "general yoda"]] and
// expects per-instance rouge1 0.67 / 1.0, rouge2 0.0 / 1.0, rougeL 0.67 / 1.0
// (rounded to 2 places).
TEST(TextMetricsTest, RougeMaxMatchesUnitxtMultiReference) {
  const std::vector<std::string> refs0 = {"hello", "there"};
  const std::vector<std::string> refs1 = {"general kenobi", "general yoda"};
  EXPECT_NEAR(RougeMax("hello there", refs0, RougeType::N(1), false).fmeasure,
              0.67, 0.005);
  EXPECT_NEAR(RougeMax("hello there", refs0, RougeType::N(2), false).fmeasure,
              0.0, 0.005);
  EXPECT_NEAR(RougeMax("hello there", refs0, RougeType::L(), false).fmeasure,
              0.67, 0.005);
  EXPECT_NEAR(
      RougeMax("general kenobi", refs1, RougeType::N(1), false).fmeasure, 1.0,
      0.005);
  EXPECT_NEAR(
      RougeMax("general kenobi", refs1, RougeType::N(2), false).fmeasure, 1.0,
      0.005);
}

// Tie rule (numpy.argmax in score_multi): the first reference with the top
// fmeasure wins, with its own precision/recall. Derived by hand: "a b" vs
// "a" is P 1/2, R 1, F 2/3; vs "a b c d" is P 1, R 1/2, F 2/3.
TEST(TextMetricsTest, RougeMaxKeepsFirstOfTiedReferences) {
  const RougeScore best =
      RougeMax("a b", {"a", "a b c d"}, RougeType::N(1), false);
  ExpectScore(best, 0.5, 1.0, 2.0 / 3, kExact);
  ExpectScore(RougeMax("a b", {}, RougeType::L(), false), 0, 0, 0, 0);
}

// The rouge-score tokenizer (rouge/tokenize.py): lowercase, non-[a-z0-9]
// runs become separators. Expected tokens derived by applying those rules;
// U+212A KELVIN SIGN lowers to ASCII "k" in Python.
TEST(TextMetricsTest, RougeTokenizeFollowsRougeScore) {
  EXPECT_EQ(
      RougeTokenize("The quick-brown fox's 2nd!", false),
      (std::vector<std::string>{"the", "quick", "brown", "fox", "s", "2nd"}));
  EXPECT_EQ(RougeTokenize("caf\xC3\xA9 \xE2\x84\xAA"
                          "elvin",
                          false),
            (std::vector<std::string>{"caf", "kelvin"}));
  // Only tokens longer than 3 characters are stemmed: "ties" -> "tie" but
  // "was" stays (PorterStem("was") would be "wa").
  EXPECT_EQ(RougeTokenize("was ties", true),
            (std::vector<std::string>{"was", "tie"}));
}

// nltk/test/stem.doctest, "Unit tests for the Porter stemmer" with the
// default PorterStemmer() (NLTK_EXTENSIONS), the stemmer rouge-score uses.
TEST(TextMetricsTest, PorterStemMatchesNltkDoctest) {
  const std::vector<std::string> plurals = {
      "caresses",    "flies",     "dies",      "mules",       "denied",
      "died",        "agreed",    "owned",     "humbled",     "sized",
      "meeting",     "stating",   "siezing",   "itemization", "sensational",
      "traditional", "reference", "colonizer", "plotted"};
  const std::vector<std::string> singles = {
      "caress", "fli",    "die",   "mule",  "deni",  "die",  "agre",
      "own",    "humbl",  "size",  "meet",  "state", "siez", "item",
      "sensat", "tradit", "refer", "colon", "plot"};
  ASSERT_EQ(plurals.size(), singles.size());
  for (size_t i = 0; i < plurals.size(); ++i) {
    EXPECT_EQ(PorterStem(plurals[i]), singles[i]) << plurals[i];
  }
}

// --------------------------------------------------------- Levenshtein --

// rapidfuzz/Levenshtein src/Levenshtein/__init__.py docstrings:
// distance("lewenstein", "levenshtein") == 2 and
// ratio("lewenstein", "levenshtein") == 0.85714285714285 (= 18/21; the
// InDel distance is 3, per distance(..., weights=(1,1,2)) == 3 there).
TEST(TextMetricsTest, LevenshteinMatchesDocstrings) {
  EXPECT_EQ(LevenshteinDistance("lewenstein", "levenshtein"), 2);
  EXPECT_NEAR(LevenshteinRatio("lewenstein", "levenshtein"), 0.8571428571428571,
              1e-14);
}

// rapidfuzz docs, fuzz.ratio("this is a test", "this is a test!") ==
// 96.55171966552734 (fuzz.ratio is 100 * the normalized InDel similarity).
TEST(TextMetricsTest, LevenshteinRatioMatchesRapidfuzzFuzzRatio) {
  EXPECT_NEAR(100 * LevenshteinRatio("this is a test", "this is a test!"),
              96.55171966552734, 1e-5);
}

// rapidfuzz/Levenshtein tests/test_levenshtein_distance.py: empty strings,
// ("ABCD", "AF") -> 3, identical -> 0, and the unicode pair ("ÁÄ", "ABCD")
// -> 4.
TEST(TextMetricsTest, LevenshteinMatchesUpstreamTests) {
  EXPECT_EQ(LevenshteinDistance("", ""), 0);
  EXPECT_EQ(LevenshteinDistance("ABCD", "AF"), 3);
  EXPECT_EQ(LevenshteinDistance("ABCD", "ABCD"), 0);
  EXPECT_EQ(LevenshteinDistance("\xC3\x81\xC3\x84", "ABCD"), 4);
  EXPECT_EQ(LevenshteinDistance("\xC3\x81\xC3\x84", "\xC3\x81\xC3\x84"), 0);
}

// Code points, not bytes (derived by hand): "café" -> "cafe" is one
// substitution (two differing bytes in UTF-8), so distance 1 and
// ratio 1 - 2/8 = 0.75. Both empty: ratio 1.0 (normalized distance 0/0 is
// defined as 0 by rapidfuzz; python-Levenshtein 0.12.2 also returns 1.0).
TEST(TextMetricsTest, LevenshteinCountsCodePoints) {
  EXPECT_EQ(LevenshteinDistance("caf\xC3\xA9", "cafe"), 1);
  EXPECT_DOUBLE_EQ(LevenshteinRatio("caf\xC3\xA9", "cafe"), 0.75);
  EXPECT_DOUBLE_EQ(LevenshteinRatio("", ""), 1.0);
  EXPECT_DOUBLE_EQ(LevenshteinRatio("", "abc"), 0.0);
}

// ------------------------------------------- Exact match and fuzz.ratio --

// Cold Compress ExactMatch (metric.py of its forks minghui-liu/ and
// StefanieSwz/cold-compress): p.split() == r.split(). Expected values
// follow from Python's str.split() by hand.
TEST(TextMetricsTest, ExactMatchComparesWhitespaceTokens) {
  EXPECT_DOUBLE_EQ(ExactMatch("return  x + 1\n", {"return x + 1"}), 1.0);
  EXPECT_DOUBLE_EQ(ExactMatch("Paris.", {"paris"}), 0.0);  // case, punctuation
  EXPECT_DOUBLE_EQ(ExactMatch("b", {"a", " b "}), 1.0);    // any reference
  EXPECT_DOUBLE_EQ(ExactMatch("", {"", "x"}), 1.0);        // [] == []
  EXPECT_DOUBLE_EQ(ExactMatch("cat", {}), 0.0);
  // U+00A0 is whitespace to str.split().
  EXPECT_DOUBLE_EQ(ExactMatch("a\xC2\xA0"
                              "b",
                              {"a b"}),
                   1.0);
}

// seatgeek/fuzzywuzzy README ("Simple Ratio", "Token Sort Ratio" inputs)
// and test_fuzzywuzzy.py (testEqual, testCaseInsensitive,
// testRatioUnicodeString, test_empty_string): fuzz.ratio values.
TEST(TextMetricsTest, FuzzRatioMatchesFuzzywuzzy) {
  EXPECT_EQ(FuzzRatio("this is a test", "this is a test!"), 97);
  EXPECT_EQ(FuzzRatio("fuzzy wuzzy was a bear", "wuzzy fuzzy was a bear"), 91);
  EXPECT_EQ(FuzzRatio("new york mets", "new york mets"), 100);
  EXPECT_NE(FuzzRatio("new york mets", "new YORK mets"), 100);
  EXPECT_EQ(FuzzRatio("\xC3\x81", "ABCD"), 0);
  EXPECT_EQ(FuzzRatio("", ""), 100);
  EXPECT_EQ(FuzzRatio("Some", ""), 0);
  EXPECT_EQ(FuzzRatio("", "Some"), 0);
}

// RULER's postprocess_pred: pred.strip(), control characters to "\n"
// (re.sub(r"[\x00-\x1f]", "\n", pred)), strip again; derived by hand.
TEST(TextMetricsTest, RulerPostprocessReplacesControlCharacters) {
  EXPECT_EQ(RulerPostprocess("  \tanswer:\x01 42\r\n "), "answer:\n 42");
  EXPECT_EQ(RulerPostprocess(""), "");
  EXPECT_EQ(RulerPostprocess("a\x1f\x1f"
                             "b"),
            "a\n\nb");
}

// ---------------------------------------------------------------- RULER --

// RULER scripts/eval/synthetic/constants.py per example:
// all = sum(r.lower() in pred.lower() for r in refs) / len(refs),
// part = max(r.lower() in pred.lower() for r in refs). Values derived from
// those formulas by hand.
TEST(TextMetricsTest, RulerStringMatchFollowsConstantsPy) {
  const std::string pred = "The special magic numbers are 12345 and 67890.";
  EXPECT_DOUBLE_EQ(RulerStringMatchAll(pred, {"12345", "67890", "11111"}),
                   2.0 / 3);
  EXPECT_DOUBLE_EQ(RulerStringMatchPart(pred, {"12345", "67890", "11111"}),
                   1.0);
  EXPECT_DOUBLE_EQ(RulerStringMatchAll(pred, {"SPECIAL Magic"}), 1.0);
  EXPECT_DOUBLE_EQ(RulerStringMatchPart(pred, {"00000", "99999"}), 0.0);
  EXPECT_DOUBLE_EQ(RulerStringMatchAll(pred, {"00000", "99999"}), 0.0);
  // "" in s is True in Python.
  EXPECT_DOUBLE_EQ(RulerStringMatchAll(pred, {"", "none"}), 0.5);
  EXPECT_DOUBLE_EQ(RulerStringMatchAll(pred, {}), 0.0);
  EXPECT_DOUBLE_EQ(RulerStringMatchPart(pred, {}), 0.0);
}

// ------------------------------------------------------------ LLM judge --

// AnswerDotAI/cold-compress metric.py: REFERENCE_TEMPLATE formatted with
// labels="\n---\n".join(ls), and PREFILL = "The score (1-5) is:".
TEST(TextMetricsTest, LlmRougePromptMatchesColdCompressTemplate) {
  const std::string expected =
      "You are shown ground-truth answer(s) and asked to judge the quality of "
      "an LLM-generated answer.\n"
      "Assign it a score from 1-5 where 1 is the worst and 5 is the best "
      "based on how similar it is to the ground-truth(s).\n"
      "Do NOT explain your choice. Simply return a number from 1-5.\n\n"
      "====GROUND TRUTHS====\n"
      "Paris\n---\nParis, France\n\n"
      "====ANSWER====\n"
      "It is {Paris}.";
  EXPECT_EQ(LlmRougePrompt({"Paris", "Paris, France"}, "It is {Paris}."),
            expected);
  EXPECT_EQ(kLlmRougePrefill, "The score (1-5) is:");
}

// cold-compress LLMRouge.parse_int: int(re.search(r"\d+", text).group());
// we additionally require 1..5. Expectations derived from that rule.
TEST(TextMetricsTest, ParseJudgeScore) {
  EXPECT_EQ(ParseJudgeScore(" 4"), std::optional<int>(4));
  EXPECT_EQ(ParseJudgeScore("5"), std::optional<int>(5));
  EXPECT_EQ(ParseJudgeScore("\n 3.\nBecause..."), std::optional<int>(3));
  EXPECT_EQ(ParseJudgeScore("score: 2/5"), std::optional<int>(2));
  EXPECT_EQ(ParseJudgeScore("05"), std::optional<int>(5));
  EXPECT_EQ(ParseJudgeScore(""), std::nullopt);
  EXPECT_EQ(ParseJudgeScore("no score"), std::nullopt);
  EXPECT_EQ(ParseJudgeScore(" 0"), std::nullopt);
  EXPECT_EQ(ParseJudgeScore(" 10"), std::nullopt);
  EXPECT_EQ(ParseJudgeScore(" 6"), std::nullopt);
}

}  // namespace
}  // namespace coldcompress::client
