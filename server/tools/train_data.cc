#include "server/tools/train_data.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/tasks/rng.h"
#include "client/tasks/ruler.h"
#include "server/tools/corpus.h"

namespace coldcompress {
namespace {

using client::Example;
using client::MakeRulerTask;
using client::NeedleLine;
using client::NeedlePrefix;
using client::NiahPreamble;
using client::NiahQuestion;
using client::NoiseLines;
using client::Rng;
using client::TaskOptions;
using client::WordKey;

// Words as a stand-in tokenizer while the real one is being trained.
absl::StatusOr<int> CountWords(const std::string& text, bool) {
  return static_cast<int>(
      std::vector<absl::string_view>(
          absl::StrSplit(text, absl::ByAnyChar(" \n"), absl::SkipEmpty()))
          .size());
}

// Appends `ids` as tokens of kind `kind`, which goes to the position before
// each one: the position that predicts it.
void Append(const std::vector<int32_t>& ids, TargetKind kind,
            TrainSequence* seq) {
  for (int32_t id : ids) {
    seq->target.back() = kind;
    seq->tokens.push_back(id);
    seq->target.push_back(0);
  }
}

}  // namespace

TrainMixture::TrainMixture(const Tokenizer* tokenizer, MixtureOptions options)
    : tokenizer_(tokenizer), options_(std::move(options)) {}

std::string TrainMixture::AnswerText(const std::string& task,
                                     const std::vector<std::string>& answers) {
  // After "... is" / "... are" / "they are: " / "are:" the answers, then ".".
  const std::string list = absl::StrJoin(answers, ", ");
  return task == "rulervt" ? list + "." : " " + list + ".";
}

absl::StatusOr<TrainSequence> TrainMixture::Make(int64_t step, int index,
                                                 int max_context) const {
  Rng rng(client::ExampleSeed(options_.seed, "train",
                              static_cast<uint64_t>(step) * 4096 + index));
  double total = 0;
  for (const auto& [name, w] : options_.weights) total += w;
  double pick = static_cast<double>(rng.Next() >> 11) * 0x1.0p-53 * total;
  std::string kind = options_.weights.back().first;
  for (const auto& [name, w] : options_.weights) {
    if (pick < w) {
      kind = name;
      break;
    }
    pick -= w;
  }
  int lo = std::min(options_.min_context, max_context);
  // One length for the whole batch (within what each kind allows), so that
  // the padded batch wastes little.
  Rng length_rng(client::ExampleSeed(options_.seed, "length",
                                     static_cast<uint64_t>(step)));
  const double u = static_cast<double>(length_rng.Next() >> 11) * 0x1.0p-53;
  auto draw = [u](int a, int b) {
    return a + static_cast<int>(u * std::max(0, b - a));
  };
  // Tasks need ~320 tokens (four needles and a question), a common-words
  // list ~700 (RULER's frequencies): until the curriculum allows them their
  // slots are needles, or copies.
  constexpr int kTaskContext = 320, kCweContext = 700, kAnswerRoom = 40;
  if (kind == "rulercwe" && max_context < kCweContext) kind = "rulerniah";
  if (kind != "text" && kind != "copy" && kind != "recall" &&
      kind != "lookup") {
    if (max_context < kTaskContext) kind = "copy";
    lo = std::max(lo, std::min(kind == "rulercwe" ? kCweContext : kTaskContext,
                               max_context));
  }
  const int context = draw(lo, max_context);
  TrainSequence seq;
  seq.kind = kind;
  seq.tokens.push_back(tokenizer_->bos_id());
  seq.target.push_back(0);
  if (kind == "copy") {
    // Induction practice: segments of random tokens, each followed by its
    // repeat, which is scored (every token a copy from one segment back).
    // Short segments first: induction heads form at short distances and
    // then serve at any.
    const int length =
        static_cast<int>(rng.Range(std::min(128, max_context), max_context));
    const int longest = std::max(8, std::min(128, length / 4));
    while (static_cast<int>(seq.tokens.size()) + 16 < length) {
      const int room = (length - static_cast<int>(seq.tokens.size())) / 2;
      const int n = static_cast<int>(
          rng.Range(std::min(8, room), std::min(longest, room)));
      std::vector<int32_t> segment;
      for (int i = 0; i < n; ++i) {
        segment.push_back(static_cast<int32_t>(
            3 +
            rng.Uniform(static_cast<uint64_t>(tokenizer_->vocab_size() - 3))));
      }
      // Random tokens are not predictable, nor the repeat's first; the
      // rest of the repeat is.
      Append(segment, kUnscored, &seq);
      Append({segment[0]}, kUnscored, &seq);
      Append({segment.begin() + 1, segment.end()}, kAnswer, &seq);
    }
    return seq;
  }
  if (kind == "recall" || kind == "lookup") {
    // The retrieval drill: rulerniah's needles and question, but dense: a
    // few needles in a short noise haystack, then question after question,
    // each answer scored. One sequence teaches as much as a dozen prompts.
    // "lookup" asks by repeating a needle's words up to its number, which
    // induction heads answer at once: the stepping stone to the question.
    const int haystack = context * 3 / 5;
    const int needles =
        static_cast<int>(rng.Range(2, std::max<int64_t>(3, haystack / 60) + 1));
    std::vector<std::string> keys, values;
    std::set<std::string> used;
    while (static_cast<int>(keys.size()) < needles) {
      std::string k = WordKey(rng);
      if (!used.insert(k).second) continue;
      keys.push_back(std::move(k));
      values.push_back(absl::StrCat(rng.Range(1000000, 9999999)));
    }
    std::vector<std::string> lines;
    int used_tokens = 0;
    for (int k = 0; k < needles; ++k) {
      lines.push_back(NeedleLine(false, keys[k], values[k]));
      used_tokens +=
          static_cast<int>(tokenizer_->Encode(lines.back(), false).size());
    }
    const std::vector<std::string> noise = NoiseLines(5);
    const int per_line =
        static_cast<int>(tokenizer_->Encode(noise[0], false).size());
    while (used_tokens + per_line < haystack) {
      lines.push_back(noise[0]);
      used_tokens += per_line;
    }
    // Needles at random places among the noise lines.
    for (size_t i = lines.size(); i > 1; --i)
      std::swap(lines[i - 1], lines[rng.Uniform(i)]);
    Append(tokenizer_->Encode(
               absl::StrCat(NiahPreamble(false), absl::StrJoin(lines, "\n")),
               false),
           kContext, &seq);
    for (;;) {
      const size_t k = rng.Uniform(static_cast<uint64_t>(needles));
      const std::vector<int32_t> question =
          tokenizer_->Encode(kind == "lookup" ? NeedlePrefix(false, keys[k])
                                              : NiahQuestion(false, keys[k]),
                             false);
      const std::vector<int32_t> answer =
          tokenizer_->Encode(AnswerText("rulerniah", {values[k]}), false);
      if (seq.tokens.size() + question.size() + answer.size() >
          static_cast<size_t>(context)) {
        break;
      }
      Append(question, kContext, &seq);
      Append(answer, kAnswer, &seq);
    }
    return seq;
  }
  if (kind == "text") {
    // Text runs to the longest context, past the prompts' budget.
    const int length =
        static_cast<int>(rng.Range(std::min(256, max_context), max_context));
    const std::string text = GenerateCorpus(rng.Next(), length * 5);
    std::vector<int32_t> ids = tokenizer_->Encode(text, false);
    ids.resize(std::min<size_t>(ids.size(), length - 1));
    Append(ids, kAnswer, &seq);
    return seq;
  }
  std::unique_ptr<client::Task> task = MakeRulerTask(kind);
  if (task == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("unknown task ", kind));
  TaskOptions options;
  options.seed = rng.Next();
  options.num_samples = 1;
  // The whole sequence is about `context` tokens: the prompt gets all but
  // room for the answer (the eval client leaves max_new_tokens instead).
  options.context_length =
      context + static_cast<int>(task->spec().max_new_tokens) - kAnswerRoom;
  options.count_tokens = [this](const std::string& text,
                                bool special) -> absl::StatusOr<int> {
    return static_cast<int>(tokenizer_->Encode(text, special).size());
  };
  absl::StatusOr<std::vector<Example>> examples = task->Load(options);
  if (!examples.ok()) return examples.status();
  const Example& e = (*examples)[0];
  Append(tokenizer_->Encode(e.prompt, false), kContext, &seq);
  // The answer is scored, and the end of sequence after it.
  std::vector<int32_t> answer =
      tokenizer_->Encode(AnswerText(kind, e.labels), false);
  answer.push_back(tokenizer_->eos_id());
  Append(answer, kAnswer, &seq);
  return seq;
}

std::string TokenizerCorpus(uint64_t seed, size_t bytes) {
  std::string out = GenerateCorpus(seed, bytes / 2);
  out += "\n";
  Rng rng(seed);
  for (int i = 0; out.size() < bytes; ++i) {
    for (const char* name :
         {"rulerniah", "rulerniah_multikey", "rulervt", "rulercwe"}) {
      TaskOptions options;
      options.seed = rng.Next();
      options.num_samples = 1;
      options.context_length = 400;
      options.count_tokens = CountWords;
      absl::StatusOr<std::vector<Example>> e =
          MakeRulerTask(name)->Load(options);
      if (!e.ok()) continue;
      absl::StrAppend(&out, (*e)[0].prompt,
                      TrainMixture::AnswerText(name, (*e)[0].labels), "\n");
    }
  }
  return out;
}

}  // namespace coldcompress
