#include "server/tools/corpus.h"

#include <random>
#include <string_view>
#include <vector>

namespace coldcompress {
namespace {

using Words = std::vector<std::string_view>;

const Words kNames = {"Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid",
                      "Grace", "Hiro",  "Ines",   "Jonas",  "Kemal", "Lena",
                      "Mateo", "Nadia", "Oskar",  "Priya"};
const Words kNouns = {"river",    "garden",   "engine",   "letter", "window",
                      "market",   "teacher",  "kitchen",  "island", "signal",
                      "forest",   "lamp",     "bridge",   "number", "story",
                      "machine",  "village",  "cloud",    "memory", "station",
                      "orchard",  "winter",   "ship",     "key",    "library",
                      "mountain", "painting", "question", "answer", "needle",
                      "haystack", "record",   "city",     "harbor", "song"};
const Words kAdjectives = {"quiet",   "bright", "old",     "small",   "careful",
                           "green",   "heavy",  "strange", "warm",    "hidden",
                           "open",    "silver", "narrow",  "ancient", "simple",
                           "curious", "empty"};
const Words kVerbs = {"found",    "carried",  "remembered", "painted",
                      "opened",   "followed", "counted",    "watched",
                      "repaired", "wrote",    "described",  "crossed",
                      "visited",  "measured", "kept",       "lost",
                      "built",    "named",    "answered",   "hid"};
const Words kAdverbs = {"slowly", "quickly",  "often", "never", "carefully",
                        "again",  "together", "early", "late",  "almost"};
const Words kPlaces = {"near the station",   "by the river",
                       "in the old library", "under the bridge",
                       "at the market",      "on the island",
                       "behind the garden",  "across the city"};
const Words kConnectives = {"and then", "but",   "because",    "although",
                            "so",       "while", "after that", "before"};
const Words kCode = {"def count(items):\n    return len(items)",
                     "for i in range(10):\n    total += i * 2",
                     "int main() { return 0; }",
                     "if (x > 3) { y = x - 1; }",
                     "let value = map.get(\"key\") ?? 42;",
                     "SELECT name, age FROM people WHERE age > 30;"};

class Writer {
 public:
  explicit Writer(uint64_t seed) : rng_(seed) {}

  std::string_view Pick(const Words& w) {
    return w[std::uniform_int_distribution<size_t>(0, w.size() - 1)(rng_)];
  }
  int Int(int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng_);
  }

  std::string NounPhrase() {
    std::string s = Int(0, 2) == 0 ? "a " : "the ";
    if (Int(0, 1) == 0) s += std::string(Pick(kAdjectives)) + " ";
    return s + std::string(Pick(kNouns));
  }

  std::string Clause() {
    std::string s = Int(0, 1) == 0 ? std::string(Pick(kNames)) : NounPhrase();
    if (Int(0, 3) == 0) s += " " + std::string(Pick(kAdverbs));
    s += " " + std::string(Pick(kVerbs)) + " " + NounPhrase();
    if (Int(0, 2) == 0) s += " " + std::string(Pick(kPlaces));
    return s;
  }

  std::string Sentence() {
    std::string s = Clause();
    if (Int(0, 2) == 0)
      s += ", " + std::string(Pick(kConnectives)) + " " + Clause();
    s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
    switch (Int(0, 9)) {
      case 0:
        return s + "?";
      case 1:
        return s + "!";
      case 2:
        return s + " in " + std::to_string(Int(1850, 2030)) + ".";
      case 3:
        return s + " (" + std::to_string(Int(2, 999)) + " times).";
      default:
        return s + ".";
    }
  }

  std::string Paragraph() {
    switch (Int(0, 7)) {
      case 0: {  // dialogue
        return "\"" + Sentence() + "\" said " + std::string(Pick(kNames)) +
               ". \"" + Sentence() + "\"";
      }
      case 1: {  // a list
        std::string s = "Items:";
        for (int i = 1, n = Int(2, 5); i <= n; ++i) {
          s += " " + std::to_string(i) + ". " + NounPhrase() + ";";
        }
        return s;
      }
      case 2: {  // a key-value record, like retrieval tasks
        return "The special number for " + NounPhrase() + " is " +
               std::to_string(Int(1000, 9999999)) + ". " + Sentence();
      }
      case 3:
        return std::string(Pick(kCode));
      default: {
        std::string s;
        for (int i = 0, n = Int(2, 6); i < n; ++i)
          s += (i ? " " : "") + Sentence();
        return s;
      }
    }
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace

std::string GenerateCorpus(uint64_t seed, size_t bytes) {
  Writer writer(seed);
  std::string text;
  text.reserve(bytes + 256);
  while (text.size() < bytes) text += writer.Paragraph() + "\n";
  return text;
}

}  // namespace coldcompress
