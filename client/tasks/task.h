// Evaluation tasks: a task yields examples (prompt, references) and names the
// metrics that score them. One small interface; RULER generators and
// JSONL-backed task files implement it; MakeTask is the one registry.
#ifndef COLDCOMPRESS_CLIENT_TASKS_TASK_H_
#define COLDCOMPRESS_CLIENT_TASKS_TASK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace coldcompress::client {

enum class TaskKind { kGenerate, kChoice, kPerplexity };

// The metric names a task may list.
inline constexpr const char* kTaskMetrics[] = {
    "rouge",       "llm_rouge",        "exact_match",
    "levenshtein", "string_match_all", "string_match_part",
    "accuracy",    "accuracy_letter",  "perplexity"};

struct TaskSpec {
  std::string name;
  std::string description;
  TaskKind kind = TaskKind::kGenerate;
  std::vector<std::string> metrics;
  uint32_t max_new_tokens = 0;  // perplexity: tokens of the text scored
  bool chat = false;          // the prompt is one user message (chat template)
  std::string choice_prefix;  // choice: before each option text scored
  std::vector<int> ppl_at;    // perplexity: ppl@k; empty = every 500
};

struct Example {
  std::string id;      // stable: the same example has the same id on reruns
  std::string prompt;  // rendered
  // generate: the reference answers; perplexity: the one text to score,
  // which follows the prompt (the first context_tokens of the field are in
  // the prompt).
  std::vector<std::string> labels;
  std::vector<std::string> choices;  // choice: the options, in order
  int answer = -1;                   // choice: index of the correct option
};

// Tokens of a text with the server's tokenizer; with `add_special_tokens`
// as a prompt has them (BOS).
using TokenCounter = std::function<absl::StatusOr<int>(
    const std::string& text, bool add_special_tokens)>;

struct TaskOptions {
  int num_samples = -1;  // < 0: every example
  uint64_t seed = 42;    // generated tasks
  // Generated tasks: prompt + max_new_tokens, in tokens (RULER's
  // max_seq_length).
  int context_length = 4096;
  // Needle tasks: needles are placed at depths uniform in [lo, hi) of the
  // haystack (RULER: the whole haystack).
  double needle_depth_lo = 0, needle_depth_hi = 1;
  std::string data_dir = ".";  // JSONL files: <data_dir>/<name>.jsonl
  std::map<std::string, std::string> data_files;  // task -> JSONL override
  std::vector<std::string> task_dirs;             // task YAML folders
  TokenCounter count_tokens;  // generated and perplexity tasks
};

class Task {
 public:
  virtual ~Task() = default;
  virtual const TaskSpec& spec() const = 0;
  // The examples, in a fixed order, at most num_samples of them; the same
  // options give the same examples.
  virtual absl::StatusOr<std::vector<Example>> Load(
      const TaskOptions& options) const = 0;
};

// The generated (RULER) task names.
std::vector<std::string> GeneratedTaskNames();

// Every task name: generated ones and the YAML files in `task_dirs`.
std::vector<std::string> KnownTaskNames(
    const std::vector<std::string>& task_dirs);

// The task called `name`: a generated one, else <dir>/<name>.yaml from the
// first of `task_dirs` that has it. NOT_FOUND listing the known names;
// INVALID_ARGUMENT naming the file and key of a malformed task file.
absl::StatusOr<std::unique_ptr<Task>> MakeTask(
    const std::string& name, const std::vector<std::string>& task_dirs);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_TASKS_TASK_H_
