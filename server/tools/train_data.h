// The training mixture of the default model: RULER-style retrieval tasks
// from the eval client's own generators (needle in a haystack, single and
// multi-key, variable tracking, common-words extraction) with the question
// at the end, and plain generated text. Deterministic for (seed, step).
#ifndef COLDCOMPRESS_SERVER_TOOLS_TRAIN_DATA_H_
#define COLDCOMPRESS_SERVER_TOOLS_TRAIN_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/tokenizer/tokenizer.h"
#include "server/tools/train_batches.h"

namespace coldcompress {

struct MixtureOptions {
  uint64_t seed = 1;
  // Sequence lengths in tokens (prompt and answer; text samples likewise),
  // drawn uniformly up to the curriculum's current cap.
  int min_context = 256;
  int max_context = 1024;
  // Tasks and their weights; "text" is generated prose scored everywhere.
  // "recall" and "lookup" are the retrieval drill (train_data.cc), "copy"
  // repeated random tokens. The default is the shipped model's second stage
  // (scripts/train_default_model.sh).
  std::vector<std::pair<std::string, double>> weights = {
      {"rulerniah", 0.35},
      {"recall", 0.35},
      {"lookup", 0.05},
      {"rulerniah_single", 0.05},
      {"rulerniah_multikey", 0.05},
      {"rulervt", 0.05},
      {"rulercwe", 0.05},
      {"text", 0.05}};
};

class TrainMixture {
 public:
  // `tokenizer` must outlive the mixture.
  TrainMixture(const Tokenizer* tokenizer, MixtureOptions options);

  // Sequence `index` of batch `step` with contexts up to `max_context`
  // (the curriculum's current cap). The same arguments give the same
  // sequence.
  absl::StatusOr<TrainSequence> Make(int64_t step, int index,
                                     int max_context) const;

  // The answer text the model is taught to write after a task's prompt.
  static std::string AnswerText(const std::string& task,
                                const std::vector<std::string>& answers);

 private:
  const Tokenizer* tokenizer_;
  MixtureOptions options_;
};

// Text for spm_train: generated prose and task prompts with their answers.
std::string TokenizerCorpus(uint64_t seed, size_t bytes);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOOLS_TRAIN_DATA_H_
