// Training sequences, and files of whole batches made ahead of time: a
// trainer built with LibTorch alone (no tokenizer, no task generators: a GPU
// machine, scripts/gpu_train.sh) trains from a file that cc-train wrote
// where the generators run, and takes the same steps it would have taken.
#ifndef COLDCOMPRESS_SERVER_TOOLS_TRAIN_BATCHES_H_
#define COLDCOMPRESS_SERVER_TOOLS_TRAIN_BATCHES_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace coldcompress {

// What the token after a position is, for the loss.
enum TargetKind : uint8_t {
  kUnscored = 0,
  kAnswer = 1,   // an answer token (every token of text and copies)
  kContext = 2,  // a prompt token: scored with cc-train's --context_loss
};

// One training sequence: BOS + prompt + answer + EOS. target[i] says what
// tokens[i + 1] is: an answer token (every token of text), a prompt token,
// or neither (the token after the end).
struct TrainSequence {
  std::string kind;  // task name, "recall", "lookup", "copy" or "text"
  std::vector<int32_t> tokens;
  std::vector<uint8_t> target;  // TargetKind of tokens[i + 1]
};

using TrainBatch = std::vector<TrainSequence>;

// A batch file (gzip-compressed): a JSON header (the settings that made it;
// "first_step" and "steps" bound the batches it holds), then the batches of
// steps first_step .. steps - 1 in order. Token ids must fit 16 bits.
struct BatchFile {
  nlohmann::json header;
  int64_t first_step = 0;
  std::vector<TrainBatch> batches;  // batches[i] is step first_step + i

  const TrainBatch& at(int64_t step) const {
    return batches[static_cast<size_t>(step - first_step)];
  }
};

// Writes `make(step)` for step first_step .. steps - 1 (from the header)
// to `path`, reporting each step to `progress`.
absl::Status WriteBatchFile(
    const std::string& path, const nlohmann::json& header,
    const std::function<absl::StatusOr<TrainBatch>(int64_t)>& make,
    const std::function<void(int64_t)>& progress);

// The whole file, checked: INVALID_ARGUMENT naming what is wrong.
absl::StatusOr<BatchFile> ReadBatchFile(const std::string& path);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOOLS_TRAIN_BATCHES_H_
