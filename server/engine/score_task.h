// The steps of one Score request: per continuation, prefill the context into
// fresh caches (or reuse the last ones when the plan is the same), then
// teacher-force the continuation one decode step per token.
#ifndef COLDCOMPRESS_SERVER_ENGINE_SCORE_TASK_H_
#define COLDCOMPRESS_SERVER_ENGINE_SCORE_TASK_H_

#include <functional>
#include <memory>
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
  void Decoded(const at::Tensor& logits) override { logits_ = logits; }
  bool started() const override { return started_; }
  void Abort(const absl::Status& status) override;

 private:
  // Prefills the context for continuation `current_` (or reuses the caches
  // of the previous one) and copies them into `working_`.
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
  std::vector<std::unique_ptr<CacheLayer>> working_;
  at::Tensor logits_;
  int64_t position_ = 0;
  bool started_ = false;
  CacheAccount memory_;  // base_ and working_
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_SCORE_TASK_H_
