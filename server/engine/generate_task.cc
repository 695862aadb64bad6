#include "server/engine/generate_task.h"

#include <algorithm>
#include <stdexcept>

#include "server/engine/session_store.h"
#include "server/tokenizer/tokenizer.h"

namespace coldcompress {

GenerateTask::GenerateTask(const EngineContext* context,
                           GenerateTaskOptions options)
    : context_(context),
      o_(std::move(options)),
      sampler_(o_.input.sampling),
      stream_(context->tokenizer, o_.input.stop) {}

Task::Next GenerateTask::Step(DecodeSlot* slot) {
  if (o_.handle->cancelled()) {
    Finish("cancelled");
    return Next::kDone;
  }
  if (o_.handle->expired(Clock::now())) {
    Finish("deadline",
           absl::DeadlineExceededError(
               "the request ran past its deadline (the server's ceiling is "
               "max_deadline_s)"));
    return Next::kDone;
  }
  absl::Status failed;
  {
    Session& s = *o_.session;
    std::lock_guard<std::mutex> lock(s.mu);
    if (stage_ == Stage::kStart) {
      failed = Start();
      if (failed.ok()) {
        o_.reservation.Release();  // the caches count in the total now
        s.memory.Report(LayerPointers(s.layers), s.tokens_seen());
        return Next::kStepped;
      }
    } else if (stage_ == Stage::kPrompt) {
      PromptChunk();
      s.memory.Report(LayerPointers(s.layers), s.tokens_seen());
      return Next::kStepped;
    } else if (stage_ == Stage::kFeed || !SampleOne()) {
      if (stage_ == Stage::kFeed) next_ = feed_[fed_];
      // next_ goes through the model in this round's batch.
      slot->token = next_;
      slot->position = s.next_position();
      slot->layers = LayerPointers(s.layers);
      slot->mu = &s.mu;
      return Next::kDecode;
    } else {
      s.pending = next_;  // seen, not cached: counts in the full-cache bytes
      s.memory.Report(LayerPointers(s.layers), s.tokens_seen());
    }
  }
  if (!failed.ok()) {
    // Abort may take the session store's lock: outside the session's.
    Abort(failed);
    return Next::kDone;
  }
  Finish(finish_reason_);
  return Next::kDone;
}

void GenerateTask::Decoded(const at::Tensor& logits) {
  Session& s = *o_.session;
  logits_ = logits;
  s.history.push_back(next_);
  if (stage_ == Stage::kFeed && ++fed_ == feed_.size()) {
    stage_ = Stage::kGenerate;
    prefill_done_ = Clock::now();
  }
  s.memory.Report(LayerPointers(s.layers), s.tokens_seen());
}

absl::Status GenerateTask::Start() {
  started_ = Clock::now();
  Session& s = *o_.session;
  LlamaModel& model = *context_->model;
  const std::vector<int32_t>& prompt = o_.input.prompt;
  if (!s.initialized()) {
    // First turn: docs/policies.md 1.2 and 5.
    auto layers = BuildCacheLayers(*context_, o_.input.policy, o_.plan);
    if (!layers.ok()) return layers.status();
    s.spec = o_.input.policy;
    s.plan = o_.plan;
    s.layers = *std::move(layers);
    const int64_t n = PrefillLength(static_cast<int64_t>(prompt.size()),
                                    o_.plan.MinCapacity(), s.spec);
    run_ = model.StartPrefill(
        std::vector<int32_t>(prompt.begin(), prompt.begin() + n),
        LayerPointers(s.layers), context_->prefill_chunk_tokens);
    feed_.assign(prompt.begin() + n, prompt.end());
  } else {
    // A later turn: the last generated token and the new prompt go in after
    // the cached ones; caches that hold the whole sequence grow first.
    for (auto& layer : s.layers) layer->SetMaxSeqLen(o_.plan.max_seq_len);
    s.plan = o_.plan;
    for (size_t i = 0; i < s.layers.size(); ++i)
      s.plan.layers[i] = s.layers[i]->plan();
    std::vector<int32_t> tokens;
    if (s.pending) tokens.push_back(*s.pending);
    s.pending.reset();
    tokens.insert(tokens.end(), prompt.begin(), prompt.end());
    const int64_t n = static_cast<int64_t>(tokens.size());
    const std::vector<CacheLayer*> layers = LayerPointers(s.layers);
    const bool bulk =
        std::all_of(layers.begin(), layers.end(),
                    [&](CacheLayer* l) { return l->CanAppend(n); });
    if (bulk) {
      run_ = model.StartAppend(std::move(tokens), s.next_position(), layers,
                               context_->prefill_chunk_tokens);
    } else {
      feed_ = std::move(tokens);
    }
  }
  if (run_) {
    stage_ = Stage::kPrompt;
    PromptChunk();
  } else {
    PromptDone();
  }
  return absl::OkStatus();
}

void GenerateTask::PromptDone() {
  stage_ = feed_.empty() ? Stage::kGenerate : Stage::kFeed;
  if (feed_.empty()) prefill_done_ = Clock::now();
}

void GenerateTask::PromptChunk() {
  Session& s = *o_.session;
  LlamaModel::PromptRun& run = *run_;
  const int64_t before = run.done;
  at::Tensor logits = context_->model->RunChunk(run);
  if (run.append) {
    // Each chunk's tokens are in the caches once it ran.
    s.history.insert(s.history.end(), run.tokens.begin() + before,
                     run.tokens.begin() + run.done);
  }
  if (!run.finished()) return;
  // A prefill's caches are filled at its last chunk.
  if (!run.append) s.history = std::move(run.tokens);
  logits_ = std::move(logits);
  run_.reset();
  PromptDone();
}

void GenerateTask::DropUnfinishedPrefill() {
  if (!run_ || run_->append) return;
  Session& s = *o_.session;
  s.layers.clear();
  s.memory.Report({}, 0);
  run_.reset();
}

bool GenerateTask::IsEos(int32_t token) const {
  const auto& stops = o_.input.stop_token_ids;
  if (std::find(stops.begin(), stops.end(), token) != stops.end()) return true;
  const auto& eos = context_->model->config().eos_token_ids;
  if (eos.empty()) return token == context_->tokenizer->eos_id();
  return std::find(eos.begin(), eos.end(), token) != eos.end();
}

bool GenerateTask::SampleOne() {
  const int32_t token = static_cast<int32_t>(sampler_.Sample(logits_));
  const Clock::time_point now = Clock::now();
  if (!output_.empty()) {
    context_->metrics->InterTokenLatency(PolicyLabel(o_.plan),
                                         Seconds(last_token_, now));
  }
  last_token_ = now;
  if (output_.empty()) first_token_ = last_token_;
  output_.push_back(token);

  GenerateEvent event;
  event.token_ids = {token};
  const bool eos = !o_.input.ignore_eos && IsEos(token);
  if (!eos) event.text = stream_.Push(token);
  bool finished = true;
  if (eos || stream_.stopped()) {
    finish_reason_ = "stop";
  } else if (static_cast<int64_t>(output_.size()) >= o_.input.max_new_tokens) {
    finish_reason_ = "length";
  } else {
    finished = false;
  }
  o_.sink(std::move(event));
  next_ = token;
  return finished;
}

void GenerateTask::Finish(const std::string& reason,
                          const absl::Status& error) {
  const std::string tail = stream_.Finish();
  if (!tail.empty()) {
    GenerateEvent event;
    event.text = tail;
    o_.sink(std::move(event));
  }
  GenerateFinal f;
  f.finish_reason = reason;
  f.output_ids = output_;
  f.text = stream_.text();
  f.prompt_tokens = static_cast<int64_t>(o_.input.prompt.size());
  f.completion_tokens = static_cast<int64_t>(output_.size());
  const Clock::time_point started =
      started_ == Clock::time_point() ? Clock::now() : started_;
  f.timings.queue_s = Seconds(o_.submitted, started);
  if (prefill_done_ != Clock::time_point()) {
    f.timings.prefill_s = Seconds(started, prefill_done_);
  }
  if (!output_.empty()) {
    f.timings.time_to_first_token_s = Seconds(o_.submitted, first_token_);
    f.timings.decode_s = Seconds(first_token_, last_token_);
    if (output_.size() > 1 && f.timings.decode_s > 0) {
      f.timings.decode_tokens_per_s =
          static_cast<double>(output_.size() - 1) / f.timings.decode_s;
    }
  }
  bool initialized;
  {
    std::lock_guard<std::mutex> lock(o_.session->mu);
    DropUnfinishedPrefill();
    f.stats = o_.session->Stats();
    initialized = o_.session->initialized();
    // A one-shot request's caches are gone before its client hears the end.
    if (!o_.session_is_named) o_.session->ReleaseCaches();
  }
  RequestFigures figures;
  figures.prompt_tokens = f.prompt_tokens;
  figures.generated_tokens = f.completion_tokens;
  figures.queue_s = f.timings.queue_s;
  figures.prefill_s = f.timings.prefill_s;
  if (!output_.empty())
    figures.time_to_first_token_s = f.timings.time_to_first_token_s;
  figures.duration_s = Seconds(o_.submitted, Clock::now());
  const std::string label = PolicyLabel(o_.plan);
  context_->metrics->RequestFinished(label, reason, figures);
  if (f.stats.attention_loss)
    context_->metrics->AttentionLoss(label, *f.stats.attention_loss);
  if (o_.session_is_named) {
    context_->sessions->Release(o_.session, o_.session_created && !initialized);
  }
  GenerateEvent event;
  if (error.ok()) {
    event.final = std::move(f);
  } else {
    event.status = error;
  }
  o_.sink(std::move(event));
}

void GenerateTask::Abort(const absl::Status& status) {
  // The caches may be half-updated: a named session is dropped.
  if (o_.session_is_named) context_->sessions->Release(o_.session, true);
  GenerateEvent event;
  event.status = status;
  o_.sink(std::move(event));
}

}  // namespace coldcompress
