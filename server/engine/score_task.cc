#include "server/engine/score_task.h"

#include <stdexcept>

namespace coldcompress {

ScoreTask::ScoreTask(const EngineContext* context, ScoreTaskOptions options)
    : context_(context),
      o_(std::move(options)),
      memory_(context->cache_bytes, context->metrics, /*session=*/false) {}

bool ScoreTask::NeedsNewBase() const {
  return !building_ && index_ == 0 && output_.scores.size() == current_ &&
         current_ < o_.plans.size() &&
         (base_.empty() || !(base_plan_ == o_.plans[current_]));
}

absl::StatusOr<std::optional<Task::Next>> ScoreTask::BuildBase(
    DecodeSlot* slot) {
  LlamaModel& model = *context_->model;
  const std::vector<int32_t>& ctx = o_.input.context;
  if (NeedsNewBase()) {
    const CachePlan& plan = o_.plans[current_];
    auto layers = BuildCacheLayers(*context_, o_.input.policy, plan);
    if (!layers.ok()) return layers.status();
    base_ = *std::move(layers);
    base_plan_ = plan;
    const int64_t n = PrefillLength(static_cast<int64_t>(ctx.size()),
                                    plan.MinCapacity(), o_.input.policy);
    run_ = model.StartPrefill(
        std::vector<int32_t>(ctx.begin(), ctx.begin() + n),
        LayerPointers(base_), context_->prefill_chunk_tokens);
    fed_ = n;
    building_ = true;
  }
  if (!building_) return std::nullopt;  // the last continuation's caches
  if (run_) {
    at::Tensor logits = model.RunChunk(*run_);
    if (run_->finished()) {
      base_logits_ = std::move(logits);
      run_.reset();
    }
    memory_.Report(LayerPointers(base_), static_cast<int64_t>(fed_));
    return Next::kStepped;
  }
  // The rest of the context (docs/policies.md 5) goes through decode steps, in
  // the scheduler's batch.
  if (fed_ < ctx.size()) {
    slot->token = ctx[fed_];
    slot->position = static_cast<int64_t>(fed_);
    slot->layers = LayerPointers(base_);
    slot->mu = nullptr;
    ++fed_;
    return Next::kDecode;
  }
  building_ = false;
  base_position_ = static_cast<int64_t>(ctx.size());
  return std::nullopt;
}

void ScoreTask::Decoded(const at::Tensor& logits) {
  (building_ ? base_logits_ : logits_) = logits;
}

void ScoreTask::StartContinuation() {
  working_ = CloneLayers(base_);
  logits_ = base_logits_;
  position_ = base_position_;
  std::vector<CacheLayer*> all = LayerPointers(base_);
  for (const auto& layer : working_) all.push_back(layer.get());
  memory_.Report(all, base_position_ + 1);
  index_ = 0;
  output_.scores.emplace_back();
}

Task::Next ScoreTask::Step(DecodeSlot* slot) {
  if (o_.handle->cancelled()) {
    o_.done(absl::CancelledError("the request was cancelled"));
    return Next::kDone;
  }
  if (o_.handle->expired(Clock::now())) {
    o_.done(absl::DeadlineExceededError(
        "the request ran past its deadline (the server's ceiling is "
        "max_deadline_s)"));
    return Next::kDone;
  }
  started_ = true;
  if (index_ == 0 && output_.scores.size() == current_) {
    absl::StatusOr<std::optional<Next>> next = BuildBase(slot);
    if (!next.ok()) {
      o_.done(next.status());
      return Next::kDone;
    }
    if (*next) return **next;
    StartContinuation();
  }
  const std::vector<int32_t>& cont = o_.input.continuations[current_];
  ContinuationResult& result = output_.scores.back();
  // log-prob of cont[index_] given everything before it.
  const int32_t token = cont[index_];
  const at::Tensor logprobs = logits_.to(at::kCPU, at::kDouble).log_softmax(0);
  const double lp = logprobs[token].item<double>();
  result.token_logprobs.push_back(lp);
  result.logprob_sum += lp;
  if (logits_.argmax().item<int64_t>() != token) result.is_greedy = false;
  ++index_;
  if (index_ < cont.size()) {
    slot->token = token;
    slot->position = position_++;
    slot->layers = LayerPointers(working_);
    slot->mu = nullptr;
    return Next::kDecode;
  }
  // Tokens seen: the context and the whole continuation (its last token is
  // not fed to the cache).
  result.stats = ComputeCacheStats(LayerPointers(working_), position_ + 1);
  working_.clear();
  index_ = 0;
  ++current_;
  if (current_ < o_.input.continuations.size()) return Next::kStepped;
  base_.clear();  // freed before the client hears the end
  memory_.Close();
  o_.done(std::move(output_));
  return Next::kDone;
}

void ScoreTask::Abort(const absl::Status& status) { o_.done(status); }

}  // namespace coldcompress
