// The steps of one Generate request: set up or continue the session's caches,
// prefill, feed the rest of the prompt, then sample and decode token by token.
#ifndef COLDCOMPRESS_SERVER_ENGINE_GENERATE_TASK_H_
#define COLDCOMPRESS_SERVER_ENGINE_GENERATE_TASK_H_

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "server/engine/cache_account.h"
#include "server/engine/session.h"
#include "server/engine/task.h"
#include "server/engine/text_stream.h"
#include "server/engine/types.h"
#include "server/model/sampling.h"

namespace coldcompress {

using GenerateSink = std::function<void(GenerateEvent)>;

struct GenerateTaskOptions {
  GenerateInput input;
  CachePlan plan;  // resolved for this turn
  std::shared_ptr<Session> session;
  bool session_is_named = false;  // false: one-shot, dropped at the end
  bool session_created = false;   // this request created the named session
  std::shared_ptr<RequestHandle> handle;
  GenerateSink sink;
  Clock::time_point submitted;
  CacheReservation reservation;  // released once the caches exist
};

class GenerateTask final : public Task {
 public:
  GenerateTask(const EngineContext* context, GenerateTaskOptions options);

  Next Step(DecodeSlot* slot) override;
  void Decoded(const at::Tensor& logits) override;
  bool started() const override { return stage_ != Stage::kStart; }
  bool prefilling() const override {
    return stage_ == Stage::kStart || stage_ == Stage::kPrompt;
  }
  void Abort(const absl::Status& status) override;

 private:
  enum class Stage {
    kStart,     // waiting
    kPrompt,    // the prompt goes through the model a chunk a step
    kFeed,      // prompt tokens fed one a step (in the decode batch)
    kGenerate,  // sampling and decoding
  };

  // The first step: the session's caches (a first turn) or their growth (a
  // later one). REQUIRES: session mu held.
  absl::Status Start();
  // Runs the prompt's next chunk. REQUIRES: session mu held.
  void PromptChunk();
  // The prompt went through the model: next, the tokens left to feed, or
  // sampling.
  void PromptDone();
  // Undoes a first turn's prefill stopped between its chunks: the session
  // is left as before the request. REQUIRES: session mu held.
  void DropUnfinishedPrefill();
  // Samples the next token from logits_ and streams it; true when that
  // ends the request. REQUIRES: session mu held.
  bool SampleOne();
  // Ends the request: the final result, or `error` after the same
  // bookkeeping (a deadline).
  void Finish(const std::string& reason,
              const absl::Status& error = absl::OkStatus());
  bool IsEos(int32_t token) const;

  const EngineContext* context_;
  GenerateTaskOptions o_;
  Stage stage_ = Stage::kStart;
  Sampler sampler_;
  TextStream stream_;
  std::optional<LlamaModel::PromptRun> run_;  // the prompt, while kPrompt
  std::vector<int32_t> feed_;  // prompt tokens left to feed one by one
  size_t fed_ = 0;
  int32_t next_ = 0;   // the token of the decode step in flight
  at::Tensor logits_;  // [V] for the next token
  std::vector<int32_t> output_;
  std::string finish_reason_;
  Clock::time_point started_, prefill_done_, first_token_, last_token_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_GENERATE_TASK_H_
