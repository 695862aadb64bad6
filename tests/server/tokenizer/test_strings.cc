#include "tests/server/tokenizer/test_strings.h"

#include <random>

#include "server/tools/corpus.h"

namespace coldcompress::testing {
namespace {

const std::vector<std::string> kCode = {
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + "
    "fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) {\n\tsum += a[i] * 2;\n}",
    "{\"name\": \"x\", \"values\": [1, 2.5, -3e10], \"ok\": true}",
    "SELECT id, COUNT(*) AS n FROM t WHERE x <> 'a' GROUP BY id;",
    "const f = (a, b) => a ?? b; // nullish\nexport default f;",
    "#include <vector>\nstd::vector<int> v{1, 2, 3};",
    "    indented    code\t\twith\ttabs  \n\n\n  ",
    "x=1;y=2;z=x**y%3|4&5^~6",
    "https://example.com/path?q=1&r=%20#frag",
    "git commit -m 'fix: handle \\r\\n' && echo $?",
};
const std::vector<std::string> kCjk = {
    "日本語のテキストです。", "我们今天去公园散步，天气很好。",
    "한국어 문장입니다.",     "東京都渋谷区",
    "中文，标点；符号！",     "カタカナとひらがな",
    "汉字 漢字 한자",         "你好世界",
    "私は学生です",           "안녕하세요 세계"};
const std::vector<std::string> kEmoji = {"😀",
                                         "🎉🎉🎉",
                                         "👍🏽",
                                         "👨‍👩‍👧‍👦",
                                         "🇫🇷🇯🇵",
                                         "❤️",
                                         "✅ done",
                                         "🤖 bot",
                                         "smile 😊 please",
                                         "🧑🏻‍💻 coder",
                                         "⭐️⭐️",
                                         "🍕+🍺=😋"};
const std::vector<std::string> kAccents = {"café",
                                           "naïve résumé",
                                           "Ångström",
                                           "über straße",
                                           "Zoë Saldaña",
                                           "e\xCC\x81t\xC3\xA9",
                                           "Tiếng Việt có dấu",
                                           "zażółć gęślą jaźń",
                                           "İstanbul ığdır",
                                           "Ελληνικά γράμματα",
                                           "Русский текст",
                                           "العربية",
                                           "עברית",
                                           "हिन्दी",
                                           "ﬁ ligature ﬀ",
                                           "Ａｂｃ fullwidth",
                                           "ǅ ǈ ǋ"};
const std::vector<std::string> kContractions = {"I'M HERE",
                                                "you're",
                                                "WE'VE",
                                                "don't",
                                                "it'S",
                                                "They'LL",
                                                "she'd",
                                                "'s alone",
                                                "rock 'n' roll",
                                                "O'Neil's",
                                                "can't won't shouldn't"};
const std::vector<std::string> kWhitespace = {
    " ",     "  ",       "\t",           "\n",           "\n\n", "\r\n",
    "   \n", "\xC2\xA0", "\xE3\x80\x80", "\xEF\xBB\xBF", " \t ", "\n \n"};

}  // namespace

std::vector<std::string> TokenizerTestStrings(
    uint64_t seed, size_t count, const std::vector<std::string>& specials) {
  std::mt19937_64 rng(seed);
  auto pick = [&](const std::vector<std::string>& v) -> const std::string& {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  };
  auto uniform = [&](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  const std::string corpus = GenerateCorpus(seed, 200000);
  auto prose = [&] {
    const size_t len = static_cast<size_t>(uniform(5, 400));
    const size_t at = static_cast<size_t>(
        uniform(0, static_cast<int>(corpus.size() - len - 1)));
    return corpus.substr(at, len);
  };
  auto number = [&] {
    std::string s;
    const int digits = uniform(1, 40);
    for (int i = 0; i < digits; ++i)
      s += static_cast<char>('0' + uniform(0, 9));
    switch (uniform(0, 5)) {
      case 0:
        return s;
      case 1:
        return "-" + s + "." + std::to_string(uniform(0, 999));
      case 2:
        return "$" + s + ",000";
      case 3:
        return "call " + s.substr(0, std::min<size_t>(s.size(), 3)) + "-" + s +
               " now";
      case 4:
        return s + "%";
      default:
        return "v" + std::to_string(uniform(0, 9)) + "." + s;
    }
  };
  std::vector<std::string> out;
  const int kCategories = 10;
  for (size_t i = 0; out.size() < count; ++i) {
    std::string s;
    switch (i % kCategories) {
      case 0:
        s = prose();
        break;
      case 1:
        s = pick(kCode);
        break;
      case 2:
        s = number();
        break;
      case 3:
        for (int k = uniform(1, 6); k > 0; --k)
          s += (uniform(0, 1) ? "word" : "") + pick(kWhitespace);
        break;
      case 4:
        s = pick(kCjk) + (uniform(0, 1) ? " " + pick(kCjk) : "");
        break;
      case 5:
        s = pick(kEmoji) + " " + prose().substr(0, 20);
        break;
      case 6:
        s = pick(kAccents);
        break;
      case 7:
        s = specials.empty() ? prose() : pick(specials);
        if (uniform(0, 1))
          s = prose().substr(0, 30) + (uniform(0, 1) ? " " : "") + s;
        if (uniform(0, 1))
          s += (uniform(0, 1) ? " " : "") + prose().substr(0, 20);
        break;
      case 8:
        s = pick(kContractions);
        break;
      default:  // a mixture
        for (int k = uniform(2, 5); k > 0; --k) {
          switch (uniform(0, 6)) {
            case 0:
              s += prose().substr(0, 40);
              break;
            case 1:
              s += number();
              break;
            case 2:
              s += pick(kCjk);
              break;
            case 3:
              s += pick(kEmoji);
              break;
            case 4:
              s += pick(kAccents);
              break;
            case 5:
              s += pick(kWhitespace);
              break;
            default:
              s += pick(kCode).substr(0, 30);
              break;
          }
        }
    }
    // Variation: leading/trailing spaces, case.
    if (uniform(0, 9) == 0) s = " " + s;
    if (uniform(0, 9) == 0) s += "\n";
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

}  // namespace coldcompress::testing
