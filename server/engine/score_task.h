// The steps of one Score request: per continuation, prefill the context into
// fresh caches (or reuse the last ones when the plan is the same) a chunk a
// step, then teacher-force the continuation one decode step per token.
#ifndef COLDCOMPRESS_SERVER_ENGINE_SCORE_TASK_H_
#define COLDCOMPRESS_SERVER_ENGINE_SCORE_TASK_H_

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "server/engine/cache_account.h"
#include "server/engine/session.h"
#include "server/engine/task.h"
#include "server/engine/types.h"

namespace coldcompress {

using ScoreCallback = std::function<void(absl::StatusOr<ScoreOutput>)>;

struct ScoreTaskOptions {
  ScoreInput input;
  std::vector<CachePlan> plans;  // one per continuation
  std::shared_ptr<RequestHandle> handle;
  ScoreCallback done;
  CacheReservation reservation;  // held until the task ends
};

class ScoreTask final : public Task {
 public:
  ScoreTask(const EngineContext* context, ScoreTaskOptions options);

  Next Step(DecodeSlot* slot) override;
  void Decoded(const at::Tensor& logits) override;
  bool started() const override { return started_; }
  bool prefilling() const override {
    return !started_ || run_.has_value() || NeedsNewBase();
  }
  void Abort(const absl::Status& status) override;

 private:
  // True when continuation `current_` is next and the context must go into
  // fresh caches (the first, or another plan than the last one's).
  bool NeedsNewBase() const;
  // One step of putting the context into base_ for continuation
  // `current_`: a prefill chunk, or a decode step of a context token the
  // prefill leaves out. nullopt once base_ holds the context.
  absl::StatusOr<std::optional<Next>> BuildBase(DecodeSlot* slot);
  // Copies base_ into `working_` for continuation `current_`.
  void StartContinuation();

  const EngineContext* context_;
  ScoreTaskOptions o_;
  ScoreOutput output_;
  size_t current_ = 0;  // continuation being scored
  size_t index_ = 0;    // its next token
  // Caches right after the context, for the plan in base_plan_.
  std::vector<std::unique_ptr<CacheLayer>> base_;
  CachePlan base_plan_;
  at::Tensor base_logits_;
  int64_t base_position_ = 0;
  bool building_ = false;  // base_ is being filled with the context
  std::optional<LlamaModel::PromptRun> run_;  // its prefill, chunk by chunk
  size_t fed_ = 0;  // context tokens in base_ (or in its prefill)
  std::vector<std::unique_ptr<CacheLayer>> working_;
  at::Tensor logits_;
  int64_t position_ = 0;
  bool started_ = false;
  CacheAccount memory_;  // base_ and working_
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_SCORE_TASK_H_
