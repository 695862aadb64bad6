// Tasks: the RULER generators (deterministic for a seed, sized to the
// target with the server's real tokenizer) and the shipped task files with
// their test JSONL; malformed files fail naming the file, line and field.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "client/pool.h"
#include "client/tasks/file_task.h"
#include "client/tasks/ruler.h"
#include "client/tasks/task.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/server_harness.h"

namespace coldcompress::client {
namespace {

namespace fs = std::filesystem;

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// A tokenizer-free counter for the golden test: whitespace-separated words.
absl::StatusOr<int> CountWords(const std::string& text, bool) {
  return static_cast<int>(
      std::vector<absl::string_view>(
          absl::StrSplit(text, absl::ByAnyChar(" \n"), absl::SkipEmpty()))
          .size());
}

std::vector<Example> Load(const std::string& name, TaskOptions options) {
  std::unique_ptr<Task> task = MakeRulerTask(name);
  EXPECT_NE(task, nullptr) << name;
  if (task == nullptr) return {};
  absl::StatusOr<std::vector<Example>> examples = task->Load(options);
  EXPECT_TRUE(examples.ok()) << name << ": " << examples.status();
  return examples.ok() ? *examples : std::vector<Example>{};
}

// Golden: seed 42, 600 words of context, the first example of each task.
// The hashes pin the whole prompt; the answers are spelled out.
TEST(RulerTest, GoldenForSeed) {
  struct Golden {
    const char* task;
    uint64_t prompt_hash;
    std::vector<std::string> answers;
  };
  const std::vector<Golden> golden = {
#include "tests/client/ruler_golden.inc"
  };
  TaskOptions options;
  options.seed = 42;
  options.num_samples = 2;
  options.context_length = 600;
  options.count_tokens = CountWords;
  ASSERT_EQ(golden.size(), RulerTaskNames().size());
  for (const Golden& g : golden) {
    std::vector<Example> e = Load(g.task, options);
    ASSERT_EQ(e.size(), 2u) << g.task;
    EXPECT_EQ(e[0].labels, g.answers) << g.task;
    EXPECT_EQ(Fnv1a(e[0].prompt), g.prompt_hash) << g.task << " prompt:\n"
                                                 << e[0].prompt;
    EXPECT_NE(e[0].prompt, e[1].prompt) << g.task;
    // Within 2% (and not over) of the 600 - max_new_tokens words.
    const int target =
        600 - static_cast<int>(MakeRulerTask(g.task)->spec().max_new_tokens);
    for (const Example& x : e) {
      const int words = *CountWords(x.prompt, true);
      EXPECT_LE(words, target) << g.task;
      EXPECT_GE(words, target * 0.98) << g.task;
    }
    // What is asked for is in the prompt.
    for (const std::string& answer : e[0].labels) {
      EXPECT_NE(e[0].prompt.find(answer), std::string::npos)
          << g.task << ": " << answer;
    }
  }
}

TEST(RulerTest, SeedsGiveDifferentExamplesAndSameSeedTheSame) {
  TaskOptions options;
  options.num_samples = 3;
  options.context_length = 600;
  options.count_tokens = CountWords;
  for (const std::string& name : RulerTaskNames()) {
    options.seed = 1;
    std::vector<Example> a = Load(name, options), b = Load(name, options);
    options.seed = 2;
    std::vector<Example> c = Load(name, options);
    ASSERT_EQ(a.size(), 3u);
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].prompt, b[i].prompt) << name;
      EXPECT_EQ(a[i].labels, b[i].labels) << name;
      EXPECT_NE(a[i].prompt, c[i].prompt) << name;
    }
  }
}

// --needle_depth LO HI: every needle of every example lies between the
// LO and HI fractions of the haystack (counted in lines), and the default
// range spans it all.
TEST(RulerTest, NeedleDepthRangeHoldsTheNeedles) {
  auto depths = [](const Example& e) {
    std::vector<std::string> lines = absl::StrSplit(e.prompt, '\n');
    // Line 0 is the instruction; the last one the question.
    std::vector<double> out;
    const double n = static_cast<double>(lines.size()) - 2;
    for (size_t i = 1; i + 1 < lines.size(); ++i) {
      if (lines[i].rfind("One of the special magic", 0) == 0)
        out.push_back((static_cast<double>(i) - 1) / n);
    }
    return out;
  };
  TaskOptions options;
  options.num_samples = 50;
  options.context_length = 1500;
  options.count_tokens = CountWords;
  options.seed = 7;
  options.needle_depth_lo = 0.25;
  options.needle_depth_hi = 0.5;
  double lowest = 1, highest = 0;
  int needles = 0;
  for (const Example& e : Load("rulerniah", options)) {
    for (double d : depths(e)) {
      // A needle at depth d goes before haystack line floor(d * (n + 1));
      // counted among the prompt's lines (needles included) it is within a
      // few lines of d.
      EXPECT_GE(d, 0.25 - 0.05) << e.prompt;
      EXPECT_LE(d, 0.5 + 0.05) << e.prompt;
      lowest = std::min(lowest, d);
      highest = std::max(highest, d);
      ++needles;
    }
  }
  EXPECT_EQ(needles, 200);  // four needles in each of 50 examples
  EXPECT_LT(lowest, 0.3);
  EXPECT_GT(highest, 0.45);
  options.needle_depth_lo = 0;
  options.needle_depth_hi = 1;
  lowest = 1, highest = 0;
  for (const Example& e : Load("rulerniah", options)) {
    for (double d : depths(e)) {
      lowest = std::min(lowest, d);
      highest = std::max(highest, d);
    }
  }
  EXPECT_LT(lowest, 0.05);
  EXPECT_GT(highest, 0.95);
  options.needle_depth_lo = 0.9;
  options.needle_depth_hi = 0.1;
  absl::StatusOr<std::vector<Example>> bad =
      MakeRulerTask("rulerniah")->Load(options);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("needle_depth"), std::string::npos)
      << bad.status();
}

// With the server's tokenizer (a real SentencePiece model behind the
// Tokenize RPC) every prompt is within 2% of, and not over, its target.
class ServerTokenizerTest : public testing::SharedServerTest {
 protected:
  TokenCounter Counter() {
    return [](const std::string& text, bool special) -> absl::StatusOr<int> {
      grpc::ClientContext ctx;
      v1::TokenizeRequest r;
      r.set_text(text);
      r.set_add_special_tokens(special);
      v1::TokenizeResponse out;
      grpc::Status s = harness_->stub().Tokenize(&ctx, r, &out);
      if (!s.ok()) return FromGrpc(s);
      return out.token_ids_size();
    };
  }
};

TEST_F(ServerTokenizerTest, RulerPromptsWithinTwoPercentOfTarget) {
  TaskOptions options;
  options.seed = 7;
  options.num_samples = 3;
  options.count_tokens = Counter();
  for (int context_length : {2048, 4096}) {
    options.context_length = context_length;
    for (const std::string& name : RulerTaskNames()) {
      const int target =
          context_length -
          static_cast<int>(MakeRulerTask(name)->spec().max_new_tokens);
      for (const Example& e : Load(name, options)) {
        const int tokens = *options.count_tokens(e.prompt, true);
        EXPECT_LE(tokens, target) << name << " at " << context_length;
        EXPECT_GE(tokens, 0.98 * target) << name << " at " << context_length;
      }
    }
  }
  options.context_length = 300;
  std::unique_ptr<Task> cwe = MakeRulerTask("rulercwe");
  absl::Status short_context = cwe->Load(options).status();
  EXPECT_EQ(short_context.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(short_context.message().find("context_length: 300 is too short"),
            std::string::npos)
      << short_context;
}

// Every shipped task file loads, and its test JSONL gives three examples.
TEST_F(ServerTokenizerTest, ShippedTaskFilesLoadTheirTestData) {
  const std::string tasks = testing::SourceDir() + "/configs/tasks";
  TaskOptions options;
  options.data_dir = testing::SourceDir() + "/tests/data/tasks";
  options.count_tokens = Counter();
  int files = 0;
  for (const auto& entry : fs::directory_iterator(tasks)) {
    ++files;
    absl::StatusOr<std::unique_ptr<Task>> task =
        LoadTaskFile(entry.path().string());
    ASSERT_TRUE(task.ok()) << task.status();
    absl::StatusOr<std::vector<Example>> examples = (*task)->Load(options);
    ASSERT_TRUE(examples.ok()) << examples.status();
    EXPECT_EQ(examples->size(), 3u) << entry.path();
    const TaskSpec& spec = (*task)->spec();
    const YAML::Node file = YAML::LoadFile(entry.path().string());
    std::vector<std::string> placeholders = {"{options}"};
    for (const auto& f : file["fields"])
      placeholders.push_back("{" + f.as<std::string>() + "}");
    for (const Example& e : *examples) {
      for (const std::string& p : placeholders) {
        EXPECT_EQ(e.prompt.find(p), std::string::npos)
            << spec.name << ": unfilled " << p << " in " << e.prompt;
      }
      if (spec.kind == TaskKind::kChoice) {
        ASSERT_GE(e.choices.size(), 2u);
        EXPECT_NE(e.prompt.find("A. " + e.choices[0] + "\nB. " + e.choices[1]),
                  std::string::npos)
            << spec.name;
        EXPECT_GE(e.answer, 0);
      } else {
        EXPECT_FALSE(e.labels.empty()) << spec.name;
      }
    }
  }
  EXPECT_EQ(files, 10);

  // pg19: the first whole words within context_tokens (340) are in the
  // prompt, the rest is scored.
  absl::StatusOr<std::unique_ptr<Task>> pg19 = MakeTask("pg19", {tasks});
  ASSERT_TRUE(pg19.ok());
  options.num_samples = 1;
  absl::StatusOr<std::vector<Example>> book = (*pg19)->Load(options);
  ASSERT_TRUE(book.ok()) << book.status();
  std::ifstream in(options.data_dir + "/pg19.jsonl");
  std::string line;
  std::getline(in, line);
  const std::string text = nlohmann::json::parse(line)["text"];
  const std::string& rest = (*book)[0].labels[0];
  ASSERT_LT(rest.size(), text.size());
  const std::string head = text.substr(0, text.size() - rest.size() - 1);
  EXPECT_EQ(head + " " + rest, text);
  EXPECT_NE((*book)[0].prompt.find("====START OF BOOK====\n" + head),
            std::string::npos);
  const int head_tokens = *options.count_tokens(head, false);
  EXPECT_LE(head_tokens, 340);
  const size_t next_space = rest.find(' ');
  EXPECT_GT(
      *options.count_tokens(head + " " + rest.substr(0, next_space), false),
      340);
}

// Malformed task files and data: INVALID_ARGUMENT / NOT_FOUND naming the
// file, the line and the key or field.
TEST(FileTaskTest, ErrorsNameTheProblem) {
  const fs::path dir = fs::temp_directory_path() / "cc_task_errors";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string good =
      "name: qa\nkind: generate\nprompt: \"Q: {question}\"\n"
      "fields: [question, answer]\nlabels: answer\nmax_new_tokens: 8\n"
      "metrics: [exact_match]\n";
  absl::StatusOr<std::unique_ptr<Task>> task =
      LoadTaskFile(write("qa.yaml", good));
  ASSERT_TRUE(task.ok()) << task.status();
  write("qa.jsonl",
        "{\"question\": \"a {b}?\", \"answer\": \"c\"}\n"
        "{\"question\": \"d?\"}\n");
  TaskOptions options;
  options.data_dir = dir.string();
  options.num_samples = 1;
  absl::StatusOr<std::vector<Example>> one = (*task)->Load(options);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ((*one)[0].prompt, "Q: a {b}?");  // values are not templates
  options.num_samples = -1;
  absl::Status missing = (*task)->Load(options).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find("qa.jsonl:2: field \"answer\" is missing"),
            std::string::npos)
      << missing;
  write("qa.jsonl", "{\"question\": \"x\", \"answer\": \"y\"}\nnot json\n");
  EXPECT_NE((*task)->Load(options).status().message().find(
                "qa.jsonl:2: not a JSON object"),
            std::string::npos);
  options.data_dir = (dir / "nowhere").string();
  absl::Status no_file = (*task)->Load(options).status();
  EXPECT_EQ(no_file.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(no_file.message().find("nowhere/qa.jsonl cannot be read"),
            std::string::npos)
      << no_file;

  const std::vector<std::pair<std::string, std::string>> bad = {
      {good + "colour: red\n", "colour: unknown key"},
      {"name: qa\nkind: generate\nprompt: \"{question} {other}\"\n"
       "fields: [question, answer]\nlabels: answer\nmax_new_tokens: 8\n"
       "metrics: [rouge]\n",
       "placeholder {other} is not one of fields"},
      {"name: qa\nkind: generate\nprompt: \"{question}\"\nfields: [question]\n"
       "labels: answer\nmax_new_tokens: 8\nmetrics: [rouge]\n",
       "labels: \"answer\" is not one of fields"},
      {"name: qa\nkind: generate\nprompt: x\nfields: [a]\nlabels: a\n"
       "max_new_tokens: 8\nmetrics: [bleu]\n",
       "unknown metric \"bleu\""},
      {"name: qa\nkind: generate\nprompt: x\nfields: [a]\nlabels: a\n"
       "max_new_tokens: 8\nmetrics: [perplexity]\n",
       "\"perplexity\" does not apply to a generate task"},
      {"name: other\nkind: generate\nprompt: x\nfields: [a]\nlabels: a\n"
       "max_new_tokens: 8\nmetrics: [rouge]\n",
       "differs from the file name"},
      {"name: qa\nkind: choice\nprompt: x\nfields: [a]\nmetrics: [accuracy]\n",
       "choices: is missing"},
      {"name: qa\nkind: generate\nprompt: \"{question\"\nfields: [question]\n"
       "labels: question\nmax_new_tokens: 8\nmetrics: [rouge]\n",
       "prompt: bad placeholder"},
      {"name: qa\nkind: [\n", "qa.yaml"},
  };
  for (const auto& [text, expected] : bad) {
    absl::Status s = LoadTaskFile(write("qa.yaml", text)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(s.message().find(expected), std::string::npos)
        << "got: " << s.message() << "\nwanted: " << expected;
    EXPECT_NE(s.message().find("qa.yaml"), std::string::npos) << s;
  }
  absl::Status unknown = MakeTask("no_such_task", {dir.string()}).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(
      unknown.message().find("unknown task \"no_such_task\"; known tasks:"),
      std::string::npos);
  EXPECT_NE(unknown.message().find("rulervt"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace coldcompress::client
