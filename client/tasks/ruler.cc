#include "client/tasks/ruler.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "client/tasks/rng.h"
#include "client/tasks/words.h"

namespace coldcompress::client {
namespace {

// RULER's noise haystack, split into its sentences so that a prompt can be
// sized to within a few tokens; a line holds the five (RULER's unit).
constexpr std::string_view kNoise[] = {"The grass is green.",
                                       "The sky is blue.", "The sun is yellow.",
                                       "Here we go.", "There and back again."};

struct Instance {
  std::string prompt;
  std::vector<std::string> answers;
};

// A placed line: inserted before haystack line floor(depth * (n + 1)).
struct Insert {
  double depth;  // [0, 1)
  std::string text;
};

double UnitInterval(Rng& rng) {
  return static_cast<double>(rng.Next() >> 11) * 0x1.0p-53;
}

}  // namespace

std::vector<std::string> NoiseLines(int sentences) {
  std::vector<std::string> lines;
  std::string line;
  for (int i = 0; i < sentences; ++i) {
    if (!line.empty()) line += ' ';
    line += kNoise[i % 5];
    if (i % 5 == 4) {
      lines.push_back(std::move(line));
      line.clear();
    }
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

namespace {

// The lines with the inserts placed by depth (stable for equal depths),
// joined with newlines.
std::string Place(const std::vector<std::string>& lines,
                  std::vector<Insert> inserts) {
  std::stable_sort(
      inserts.begin(), inserts.end(),
      [](const Insert& a, const Insert& b) { return a.depth < b.depth; });
  const size_t n = lines.size();
  std::vector<absl::string_view> out;
  size_t next = 0;
  for (size_t i = 0; i <= n; ++i) {
    while (next < inserts.size() &&
           std::min(n, static_cast<size_t>(inserts[next].depth * (n + 1))) ==
               i) {
      out.push_back(inserts[next++].text);
    }
    if (i < n) out.push_back(lines[i]);
  }
  return absl::StrJoin(out, "\n");
}

}  // namespace

std::string NeedlePrefix(bool singular, const std::string& key) {
  return absl::StrCat("One of the special magic ",
                      singular ? "number" : "numbers", " for ", key, " is:");
}

std::string NeedleLine(bool singular, const std::string& key,
                       const std::string& value) {
  return absl::StrCat(NeedlePrefix(singular, key), " ", value, ".");
}

std::string NiahPreamble(bool singular) {
  return singular
             ? "A special magic number is hidden within the following text. "
               "Make sure to memorize it. I will quiz you about the number "
               "afterwards.\n"
             : "Some special magic numbers are hidden within the following "
               "text. Make sure to memorize it. I will quiz you about the "
               "numbers afterwards.\n";
}

std::string NiahQuestion(bool singular, const std::string& query) {
  return singular ? absl::StrCat("What is the special magic number for ", query,
                                 " mentioned in the provided text? The special "
                                 "magic number for ",
                                 query, " mentioned in the provided text is")
                  : absl::StrCat("What are all the special magic numbers for ",
                                 query,
                                 " mentioned in the provided text? The special "
                                 "magic numbers for ",
                                 query, " mentioned in the provided text are");
}

std::string WordKey(Rng& rng) {
  const auto& adjs = Adjectives();
  const auto& nouns = Nouns();
  return absl::StrCat(adjs[rng.Uniform(adjs.size())], "-",
                      nouns[rng.Uniform(nouns.size())]);
}

namespace {

// RULER's query list: "a", "a and b"... as `', '.join(q[:-1]) + ', and '
// + q[-1]`.
std::string JoinQueries(const std::vector<std::string>& q) {
  if (q.size() == 1) return q[0];
  std::vector<std::string> head(q.begin(), q.end() - 1);
  return absl::StrCat(absl::StrJoin(head, ", "), ", and ", q.back());
}

struct BuildOptions {
  int context_length = 0;
  // Needles at depths uniform in [depth_lo, depth_hi) of the haystack.
  double depth_lo = 0, depth_hi = 1;

  double Depth(Rng& rng) const {
    return depth_lo + (depth_hi - depth_lo) * UnitInterval(rng);
  }
};

class Generator {
 public:
  virtual ~Generator() = default;
  // The fewest haystack units a prompt has.
  virtual int MinUnits() const { return 5; }
  // The example of `seed` with `units` haystack units. The same seed gives
  // the same needles, answers and depths whatever `units` is.
  virtual Instance Build(uint64_t seed, int units,
                         const BuildOptions& options) const = 0;
};

// Needle in a haystack: `keys` needles with distinct keys, `values` values
// per key, `queries` keys asked; the haystack is noise, or distractor
// needles (RULER's "needle" haystack).
class Niah : public Generator {
 public:
  Niah(int keys, int values, int queries, bool needle_haystack)
      : keys_(keys),
        values_(values),
        queries_(queries),
        needle_haystack_(needle_haystack) {}

  int MinUnits() const override { return needle_haystack_ ? 1 : 5; }

  Instance Build(uint64_t seed, int units,
                 const BuildOptions& options) const override {
    Rng rng(seed);
    std::vector<std::string> keys;
    std::set<std::string> used;
    while (static_cast<int>(keys.size()) < keys_) {
      std::string k = WordKey(rng);
      if (used.insert(k).second) keys.push_back(k);
    }
    std::set<int64_t> used_values;
    std::vector<std::vector<std::string>> values(keys_);
    for (auto& vs : values) {
      while (static_cast<int>(vs.size()) < values_) {
        const int64_t v = rng.Range(1000000, 9999999);
        if (used_values.insert(v).second) vs.push_back(absl::StrCat(v));
      }
    }
    std::vector<size_t> asked = rng.Sample(keys_, queries_);
    const bool singular = queries_ * values_ == 1;
    std::vector<Insert> needles;
    for (int k = 0; k < keys_; ++k) {
      for (const std::string& v : values[k]) {
        needles.push_back(
            {options.Depth(rng), NeedleLine(singular, keys[k], v)});
      }
    }
    const uint64_t haystack_seed = rng.Next();

    std::vector<std::string> lines;
    if (needle_haystack_) {
      Rng hay(haystack_seed);
      for (int i = 0; i < units; ++i) {
        std::string k;
        do {
          k = WordKey(hay);
        } while (used.count(k));
        lines.push_back(
            NeedleLine(singular, k, absl::StrCat(hay.Range(1000000, 9999999))));
      }
    } else {
      lines = NoiseLines(units);
    }
    std::vector<std::string> query_keys;
    Instance out;
    for (size_t a : asked) {
      query_keys.push_back(keys[a]);
      for (const std::string& v : values[a]) out.answers.push_back(v);
    }
    const std::string query = JoinQueries(query_keys);
    out.prompt =
        absl::StrCat(NiahPreamble(singular), Place(lines, std::move(needles)),
                     "\n", NiahQuestion(singular, query));
    return out;
  }

 private:
  int keys_, values_, queries_;
  bool needle_haystack_;
};

// Variable tracking: one chain of `hops` + 1 variables, "VAR A = 12345",
// "VAR B = VAR A", ..., placed in order in noise.
class VariableTracking : public Generator {
 public:
  static constexpr int kHops = 4;

  Instance Build(uint64_t seed, int units, const BuildOptions&) const override {
    Rng rng(seed);
    const int64_t value = rng.Range(10000, 99999);
    std::vector<std::string> vars;
    while (vars.size() < kHops + 1) {
      std::string v;
      for (int i = 0; i < 5; ++i) v += static_cast<char>('A' + rng.Uniform(26));
      if (std::find(vars.begin(), vars.end(), v) == vars.end())
        vars.push_back(v);
    }
    std::vector<double> depths;
    for (size_t i = 0; i < vars.size(); ++i)
      depths.push_back(UnitInterval(rng));
    std::sort(depths.begin(), depths.end());
    std::vector<Insert> chain;
    for (size_t i = 0; i < vars.size(); ++i) {
      chain.push_back(
          {depths[i], i == 0 ? absl::StrCat("VAR ", vars[0], " = ", value, ".")
                             : absl::StrCat("VAR ", vars[i], " = VAR ",
                                            vars[i - 1], ".")});
    }
    Instance out;
    out.answers = vars;
    out.prompt = absl::StrCat(
        "Memorize and track the chain(s) of variable assignment hidden in "
        "the following text.\n\n",
        Place(NoiseLines(units), std::move(chain)),
        "\nQuestion: Find all variables that are assigned the value ", value,
        " in the text above. Answer: According to the chain(s) of variable "
        "assignment in the text above, ",
        vars.size(), " variables are assgined the value ", value,
        ", they are: ");
    return out;
  }
};

// Common-words extraction: ten words `freq_cw` times each among `units`
// other words `freq_ucw` times each, as a shuffled numbered list.
class CommonWords : public Generator {
 public:
  static constexpr int kCommon = 10;

  int MinUnits() const override { return 1; }

  Instance Build(uint64_t seed, int units,
                 const BuildOptions& options) const override {
    const int context_length = options.context_length;
    // RULER's frequencies (30 and 3) need about 4k tokens before any
    // uncommon word fits; shorter contexts use 10 and 1.
    const int freq_cw = context_length >= 4096 ? 30 : 10;
    const int freq_ucw = context_length >= 4096 ? 3 : 1;
    Rng rng(seed);
    std::vector<std::string> pool = EnglishWords();
    rng.Shuffle(pool);
    const uint64_t compound_seed = rng.Next();
    const uint64_t order_seed = rng.Next();
    std::vector<std::string> words(pool.begin(), pool.end());
    // Past the list: "adjectivenoun" compounds, drawn in a fixed order.
    std::set<std::string> seen(words.begin(), words.end());
    Rng compounds(compound_seed);
    while (static_cast<int>(words.size()) < kCommon + units) {
      std::string w =
          absl::StrCat(Adjectives()[compounds.Uniform(Adjectives().size())],
                       Nouns()[compounds.Uniform(Nouns().size())]);
      if (seen.insert(w).second) words.push_back(w);
    }
    std::vector<absl::string_view> items;
    for (int i = 0; i < kCommon + units; ++i) {
      for (int r = 0; r < (i < kCommon ? freq_cw : freq_ucw); ++r)
        items.push_back(words[i]);
    }
    Rng order(order_seed);
    order.Shuffle(items);
    std::string list;
    for (size_t i = 0; i < items.size(); ++i) {
      absl::StrAppend(&list, i ? " " : "", i + 1, ". ", items[i]);
    }
    Instance out;
    out.answers.assign(words.begin(), words.begin() + kCommon);
    out.prompt = absl::StrCat(
        "Below is a numbered list of words. In these words, some appear more "
        "often than others. Memorize the ones that appear most often.\n",
        list,
        "\nQuestion: What are the 10 most common words in the above list? "
        "Answer: The top 10 words that appear most often in the list are:");
    return out;
  }
};

// Frequent-words extraction: `units` coded words drawn with Zipf counts
// (alpha 2) from 2000 six-letter words; the most frequent is "....".
class FrequentWords : public Generator {
 public:
  int MinUnits() const override { return 200; }

  Instance Build(uint64_t seed, int units, const BuildOptions&) const override {
    constexpr double kZeta2 = 1.6449340668482264;  // pi^2 / 6
    Rng rng(seed);
    std::vector<std::string> vocab;
    std::set<std::string> seen;
    while (vocab.size() < 2000) {
      std::string w;
      for (int i = 0; i < 6; ++i) w += static_cast<char>('a' + rng.Uniform(26));
      if (seen.insert(w).second) vocab.push_back(w);
    }
    vocab[0] = "....";
    std::vector<absl::string_view> words;
    for (size_t k = 0; k < vocab.size(); ++k) {
      const auto count = static_cast<int>(std::floor(
          units * std::pow(static_cast<double>(k + 1), -2.0) / kZeta2));
      for (int i = 0; i < count; ++i) words.push_back(vocab[k]);
    }
    rng.Shuffle(words);
    Instance out;
    out.answers.assign(vocab.begin() + 1, vocab.begin() + 4);
    out.prompt = absl::StrCat(
        "Read the following coded text and track the frequency of each coded "
        "word. Find the three most frequently appeared coded words. ",
        absl::StrJoin(words, " "),
        "\nQuestion: Do not provide any explanation. Please ignore the dots "
        "'....'. What are the three most frequently appeared words in the "
        "above coded text? Answer: According to the coded text above, the "
        "three most frequently appeared words are:");
    return out;
  }
};

struct Sized {
  Instance instance;
  int units = 0;
  int tokens = 0;
};

// The largest haystack whose prompt has at most `target` tokens, searched by
// interpolation between a fitting and an overflowing size; stops within
// max(1%, 1 token) of the target. `hint`: a previous example's size.
absl::StatusOr<Sized> SizeToTarget(const Generator& g, const TaskSpec& spec,
                                   uint64_t seed, const BuildOptions& build,
                                   int target, int hint,
                                   const TokenCounter& count) {
  const int context_length = build.context_length;
  auto probe = [&](int units) -> absl::StatusOr<Sized> {
    Sized s{g.Build(seed, units, build), units, 0};
    absl::StatusOr<int> n = count(s.instance.prompt, true);
    if (!n.ok()) return n.status();
    s.tokens = *n;
    return s;
  };
  absl::StatusOr<Sized> lo = probe(g.MinUnits());
  if (!lo.ok()) return lo.status();
  if (lo->tokens > target) {
    return absl::InvalidArgumentError(
        absl::StrCat("context_length: ", context_length, " is too short for ",
                     spec.name, ": its shortest prompt has ", lo->tokens,
                     " tokens and ", spec.max_new_tokens, " are generated"));
  }
  const int tolerance = std::max(1, target / 100);
  const Sized first = *lo;
  std::optional<Sized> hi;
  for (int iter = 0; iter < 60 && target - lo->tokens > tolerance; ++iter) {
    int next;
    if (hi) {
      if (hi->units - lo->units <= 1) break;
      const double per_unit = static_cast<double>(hi->tokens - lo->tokens) /
                              (hi->units - lo->units);
      next = lo->units + static_cast<int>((target - lo->tokens) / per_unit);
      next = std::clamp(next, lo->units + 1, hi->units - 1);
    } else if (lo->units > first.units) {
      const double per_unit = static_cast<double>(lo->tokens - first.tokens) /
                              (lo->units - first.units);
      next =
          lo->units + std::max(1, static_cast<int>((target - lo->tokens) /
                                                   std::max(per_unit, 1e-3)));
    } else {
      next = hint > lo->units
                 ? hint
                 : lo->units + std::max(1, (target - lo->tokens) / 8);
    }
    absl::StatusOr<Sized> s = probe(next);
    if (!s.ok()) return s.status();
    if (s->tokens <= target) {
      lo = *std::move(s);
    } else {
      hi = *std::move(s);
    }
  }
  return *std::move(lo);
}

class RulerTask : public Task {
 public:
  RulerTask(TaskSpec spec, std::unique_ptr<Generator> generator)
      : spec_(std::move(spec)), generator_(std::move(generator)) {}

  const TaskSpec& spec() const override { return spec_; }

  absl::StatusOr<std::vector<Example>> Load(
      const TaskOptions& options) const override {
    if (!options.count_tokens) {
      return absl::FailedPreconditionError(absl::StrCat(
          spec_.name, ": generated tasks need a server's tokenizer"));
    }
    const int target =
        options.context_length - static_cast<int>(spec_.max_new_tokens);
    if (target <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("context_length: ", options.context_length,
                       " leaves no room for ", spec_.name, "'s prompt (",
                       spec_.max_new_tokens, " tokens are generated)"));
    }
    const int n =
        options.num_samples < 0 ? kDefaultSamples : options.num_samples;
    if (!(options.needle_depth_lo >= 0 &&
          options.needle_depth_lo < options.needle_depth_hi &&
          options.needle_depth_hi <= 1)) {
      return absl::InvalidArgumentError(
          "needle_depth: needs 0 <= LO < HI <= 1");
    }
    const BuildOptions build{options.context_length, options.needle_depth_lo,
                             options.needle_depth_hi};
    std::vector<Example> examples;
    int hint = 0;
    for (int i = 0; i < n; ++i) {
      const uint64_t seed = ExampleSeed(options.seed, spec_.name, i);
      absl::StatusOr<Sized> s = SizeToTarget(
          *generator_, spec_, seed, build, target, hint, options.count_tokens);
      if (!s.ok()) return s.status();
      hint = s->units;
      Example e;
      e.id = absl::StrCat(i);
      e.prompt = std::move(s->instance.prompt);
      e.labels = std::move(s->instance.answers);
      examples.push_back(std::move(e));
    }
    return examples;
  }

 private:
  static constexpr int kDefaultSamples = 100;
  TaskSpec spec_;
  std::unique_ptr<Generator> generator_;
};

TaskSpec Spec(std::string name, std::string description,
              uint32_t max_new_tokens) {
  TaskSpec s;
  s.name = std::move(name);
  s.description = std::move(description);
  s.kind = TaskKind::kGenerate;
  s.metrics = {"string_match_all"};
  s.max_new_tokens = max_new_tokens;
  s.chat = false;  // RULER's answer prefix ends the raw prompt
  return s;
}

}  // namespace

std::vector<std::string> RulerTaskNames() {
  return {"rulerniah",
          "rulerniah_single",
          "rulerniah_multikey",
          "rulerniah_multivalue",
          "rulerniah_multiquery",
          "rulervt",
          "rulercwe",
          "rulerfwe"};
}

std::unique_ptr<Task> MakeRulerTask(const std::string& name) {
  auto make = [&](std::string description, uint32_t max_new_tokens,
                  std::unique_ptr<Generator> g) -> std::unique_ptr<Task> {
    return std::make_unique<RulerTask>(
        Spec(name, std::move(description), max_new_tokens), std::move(g));
  };
  if (name == "rulerniah") {
    return make("RULER needle in a haystack, four keys, one asked (noise)", 128,
                std::make_unique<Niah>(4, 1, 1, false));
  }
  if (name == "rulerniah_single") {
    return make("RULER needle in a haystack, one needle (noise)", 128,
                std::make_unique<Niah>(1, 1, 1, false));
  }
  if (name == "rulerniah_multikey") {
    return make("RULER needle in a haystack of distractor needles", 128,
                std::make_unique<Niah>(1, 1, 1, true));
  }
  if (name == "rulerniah_multivalue") {
    return make("RULER needle in a haystack, four values of one key", 128,
                std::make_unique<Niah>(1, 4, 1, false));
  }
  if (name == "rulerniah_multiquery") {
    return make("RULER needle in a haystack, four keys asked at once", 128,
                std::make_unique<Niah>(4, 1, 4, false));
  }
  if (name == "rulervt") {
    return make("RULER variable tracking, one chain of four hops", 30,
                std::make_unique<VariableTracking>());
  }
  if (name == "rulercwe") {
    return make("RULER common-words extraction, the ten most common", 120,
                std::make_unique<CommonWords>());
  }
  if (name == "rulerfwe") {
    return make("RULER frequent-words extraction, the three most frequent", 50,
                std::make_unique<FrequentWords>());
  }
  return nullptr;
}

}  // namespace coldcompress::client
