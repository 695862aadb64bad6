#include "server/engine/engine.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <list>
#include <thread>

#include "absl/strings/str_cat.h"
#include "policies/cpu_kernels.h"
#include "server/tokenizer/token_classes.h"

namespace coldcompress {

Engine::Engine(std::unique_ptr<LlamaModel> model,
               std::unique_ptr<Tokenizer> tokenizer,
               std::unique_ptr<PolicyRegistry> registry,
               const EngineOptions& options)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      registry_(std::move(registry)),
      options_(options),
      context_length_(options.context_length > 0
                          ? std::min(options.context_length,
                                     model_->config().max_position_embeddings)
                          : model_->config().max_position_embeddings),
      metrics_(options.metrics ? options.metrics
                               : std::make_shared<Metrics>(MetricsOptions())),
      sessions_(options.max_sessions, &cache_bytes_, metrics_.get()),
      token_classes_(BuildTokenClasses(*tokenizer_)),
      chat_template_(ChatTemplate::Detect(*tokenizer_, options.chat_template)) {
  context_.model = model_.get();
  context_.tokens = &token_classes_;
  context_.cache_bytes = &cache_bytes_;
  context_.metrics = metrics_.get();
  context_.tokenizer = tokenizer_.get();
  context_.registry = registry_.get();
  context_.sessions = &sessions_;
  context_.prefill_chunk_tokens = options.prefill_chunk_tokens;
  scheduler_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  scheduler_.join();
}

absl::Status Engine::CheckTokenIds(const std::vector<int32_t>& ids,
                                   const std::string& field) const {
  const int64_t vocab = model_->config().vocab_size;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "] = ", ids[i],
                       " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<RequestHandle>> Engine::Generate(
    GenerateInput in, GenerateSink sink) {
  const Clock::time_point submitted = Clock::now();
  const int64_t s = static_cast<int64_t>(in.prompt.size());
  if (s == 0) return absl::InvalidArgumentError("prompt: is empty");
  if (absl::Status st = CheckTokenIds(in.prompt, "prompt_token_ids"); !st.ok())
    return st;
  if (in.max_new_tokens <= 0) {
    return absl::InvalidArgumentError("max_new_tokens: must be > 0");
  }
  if (options_.max_new_tokens > 0 &&
      in.max_new_tokens > options_.max_new_tokens) {
    return Refuse("max_new_tokens",
                  absl::StrCat("max_new_tokens: ", in.max_new_tokens,
                               " exceeds the server limit ",
                               options_.max_new_tokens, " (max_new_tokens)"));
  }
  if (options_.max_prompt_tokens > 0 && s > options_.max_prompt_tokens) {
    return Refuse(
        "max_prompt_tokens",
        absl::StrCat("prompt: ", s, " tokens exceed the server limit ",
                     options_.max_prompt_tokens, " (max_prompt_tokens)"));
  }
  if (static_cast<int64_t>(in.stop.size()) > options_.max_stop_strings) {
    return Refuse(
        "max_stop_strings",
        absl::StrCat("stop: ", in.stop.size(),
                     " strings exceed the server limit ",
                     options_.max_stop_strings, " (max_stop_strings)"));
  }
  for (size_t i = 0; i < in.stop.size(); ++i) {
    if (static_cast<int64_t>(in.stop[i].size()) >
        options_.max_stop_string_bytes) {
      return Refuse("max_stop_string_bytes",
                    absl::StrCat("stop[", i, "]: ", in.stop[i].size(),
                                 " bytes exceed the server limit ",
                                 options_.max_stop_string_bytes,
                                 " (max_stop_string_bytes)"));
    }
  }
  if (absl::Status st = ValidateSampling(in.sampling); !st.ok()) return st;

  std::shared_ptr<Session> session;
  bool created = false;
  const bool named = !in.session_id.empty();
  if (named) {
    absl::StatusOr<SessionStore::Lease> lease =
        sessions_.Acquire(in.owner, in.session_id);
    if (!lease.ok()) return lease.status();
    session = lease->session;
    created = lease->created;
  } else {
    session = std::make_shared<Session>("", &cache_bytes_, metrics_.get());
  }
  auto fail = [&](absl::Status st) -> absl::Status {
    if (named) sessions_.Release(session, created);
    return st;
  };

  int64_t prior = 0;
  bool initialized = false;
  PolicySpec spec = in.policy;
  CachePlan prior_plan;
  {
    std::lock_guard<std::mutex> lock(session->mu);
    initialized = session->initialized();
    prior = session->tokens_seen();
    if (initialized) {
      spec = session->spec;
      prior_plan = session->plan;
    }
  }
  if (initialized && in.policy_given) {
    PolicySpec asked = in.policy;
    asked.seed = spec.seed;
    if (!(asked == spec)) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          "cache: session \"", in.session_id,
          "\" keeps the cache policy of its first turn; leave cache empty or "
          "repeat that policy")));
    }
  }
  if (prior + s >= context_length_) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "prompt: ", prior > 0 ? absl::StrCat(prior, " session tokens + ") : "",
        s, " prompt tokens leave no room in the model's context length ",
        context_length_)));
  }
  const int64_t smax = prior + s + in.max_new_tokens;
  if (smax > context_length_) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "max_new_tokens: ",
        prior > 0 ? absl::StrCat(prior, " session tokens + ") : "", s,
        " prompt tokens + max_new_tokens ", in.max_new_tokens, " = ", smax,
        " exceed the model's context length ", context_length_)));
  }
  absl::StatusOr<CachePlan> plan =
      ResolveCachePlan(spec, model_->config().num_layers, smax, *registry_);
  if (!plan.ok()) return fail(plan.status());
  int64_t need = 0;  // cache bytes this turn adds
  if (initialized) {
    // Bounded caches keep their capacity for the session's life; caches that
    // hold the whole sequence grow to this turn's length (the layers do it).
    plan->layers = prior_plan.layers;
    CachePlan growth = prior_plan;
    for (LayerPlan& l : growth.layers) {
      const bool grows =
          l.capacity >= prior_plan.max_seq_len ||
          l.strategy.starts_with(PolicyRegistry::kAnalysisPrefix);
      l.capacity =
          grows ? std::max<int64_t>(0, smax - prior_plan.max_seq_len) : 0;
    }
    need = PlanBytes(growth, spec);
  } else {
    const int64_t prefill = PrefillLength(s, plan->MinCapacity(), spec);
    if (absl::Status st = registry_->CheckPromptFits(*plan, prefill);
        !st.ok()) {
      return fail(st);
    }
    need = PlanBytes(*plan, spec);
  }
  absl::StatusOr<CacheReservation> reservation = Reserve(need);
  if (!reservation.ok()) return fail(reservation.status());

  auto handle = NewHandle(submitted);
  {
    std::lock_guard<std::mutex> lock(session->mu);
    session->request = handle;
  }
  in.policy = spec;
  GenerateTaskOptions options;
  options.input = std::move(in);
  options.plan = *std::move(plan);
  options.session = session;
  options.session_is_named = named;
  options.session_created = created;
  options.handle = handle;
  options.sink = std::move(sink);
  options.submitted = submitted;
  options.reservation = *std::move(reservation);
  if (absl::Status st = Enqueue(
          std::make_unique<GenerateTask>(&context_, std::move(options)));
      !st.ok()) {
    return fail(st);
  }
  return handle;
}

absl::StatusOr<std::shared_ptr<RequestHandle>> Engine::Score(
    ScoreInput in, ScoreCallback done) {
  const Clock::time_point submitted = Clock::now();
  if (in.context.empty())
    return absl::InvalidArgumentError("context: is empty");
  if (absl::Status st = CheckTokenIds(in.context, "context_token_ids");
      !st.ok())
    return st;
  if (in.continuations.empty()) {
    return absl::InvalidArgumentError(
        "continuations: at least one is required");
  }
  const int64_t s = static_cast<int64_t>(in.context.size());
  std::vector<CachePlan> plans;
  for (size_t i = 0; i < in.continuations.size(); ++i) {
    const std::string field = absl::StrCat("continuations[", i, "]");
    const auto& c = in.continuations[i];
    if (c.empty()) return absl::InvalidArgumentError(field + ": is empty");
    if (absl::Status st = CheckTokenIds(c, field + ".token_ids"); !st.ok())
      return st;
    const int64_t smax = s + static_cast<int64_t>(c.size());
    if (smax > context_length_) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": context ", s, " + continuation ", c.size(),
                       " tokens exceed "
                       "the model's context length ",
                       context_length_));
    }
    absl::StatusOr<CachePlan> plan = ResolveCachePlan(
        in.policy, model_->config().num_layers, smax, *registry_);
    if (!plan.ok()) return plan.status();
    const int64_t prefill = PrefillLength(s, plan->MinCapacity(), in.policy);
    if (absl::Status st = registry_->CheckPromptFits(*plan, prefill); !st.ok())
      return st;
    plans.push_back(*std::move(plan));
  }
  // The context's caches and a working copy for the continuation.
  int64_t need = 0;
  for (const CachePlan& plan : plans)
    need = std::max(need, 2 * PlanBytes(plan, in.policy));
  absl::StatusOr<CacheReservation> reservation = Reserve(need);
  if (!reservation.ok()) return reservation.status();
  auto handle = NewHandle(submitted);
  ScoreTaskOptions options;
  options.reservation = *std::move(reservation);
  options.input = std::move(in);
  options.plans = std::move(plans);
  options.handle = handle;
  options.done = std::move(done);
  if (absl::Status st =
          Enqueue(std::make_unique<ScoreTask>(&context_, std::move(options)));
      !st.ok()) {
    return st;
  }
  return handle;
}

absl::StatusOr<SessionSnapshot> Engine::GetSession(const std::string& owner,
                                                   const std::string& id,
                                                   bool include_positions) {
  std::shared_ptr<Session> session = sessions_.Find(owner, id);
  if (session == nullptr)
    return sessions_.NotFound(owner, id, /*forget=*/false);
  std::lock_guard<std::mutex> lock(session->mu);
  return session->Snapshot(include_positions);
}

absl::StatusOr<int64_t> Engine::CloseSession(const std::string& owner,
                                             const std::string& id) {
  std::shared_ptr<Session> session = sessions_.Remove(owner, id);
  if (session == nullptr) return sessions_.NotFound(owner, id, /*forget=*/true);
  std::shared_ptr<RequestHandle> request;
  int64_t bytes;
  {
    std::lock_guard<std::mutex> lock(session->mu);
    bytes = session->AllocatedBytes();
    if (session->busy) {
      request = session->request.lock();
    } else {
      session->ReleaseCaches();  // freed now, not when the last reference goes
    }
  }
  if (request != nullptr) request->Cancel();
  return bytes;
}

std::shared_ptr<RequestHandle> Engine::NewHandle(
    Clock::time_point submitted) const {
  if (options_.max_deadline_s <= 0) return std::make_shared<RequestHandle>();
  return std::make_shared<RequestHandle>(
      submitted + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(options_.max_deadline_s)));
}

absl::Status Engine::Refuse(const std::string& limit,
                            const std::string& message) {
  metrics_->RequestRefused(limit);
  return absl::ResourceExhaustedError(message);
}

int64_t Engine::PlanBytes(const CachePlan& plan, const PolicySpec& spec) const {
  const ModelConfig& c = model_->config();
  const int64_t values = c.num_kv_heads * c.head_dim;  // per token, K or V
  const int64_t kv =
      spec.cache_bits
          ? 2 * ((values * *spec.cache_bits + 7) / 8 + 2 * 4)  // + min, scale
          : 2 * values *
                static_cast<int64_t>(c10::elementSize(model_->dtype()));
  const int64_t slot = kv + c.num_kv_heads * (8 + 1);  // + position, valid
  int64_t bytes = 0;
  for (const LayerPlan& l : plan.layers) {
    // Analysis mode keeps a full cache beside the policy's.
    const bool shadow = l.strategy.starts_with(PolicyRegistry::kAnalysisPrefix);
    bytes += l.capacity * slot * (shadow ? 2 : 1);
  }
  return bytes;
}

absl::StatusOr<CacheReservation> Engine::Reserve(int64_t bytes) {
  const int64_t budget = options_.max_cache_bytes;
  if (budget <= 0) return CacheReservation();
  std::lock_guard<std::mutex> lock(admission_mu_);
  auto available = [&] {
    return budget - cache_bytes_.load() - reserved_bytes_.load();
  };
  if (bytes > available()) sessions_.EvictForRoom(bytes - available());
  if (bytes > available()) {
    return Refuse("max_cache_bytes",
                  absl::StrCat("cache: this request needs ", bytes,
                               " bytes of KV cache but only ",
                               std::max<int64_t>(0, available()), " of ",
                               budget, " are free (limit max_cache_bytes)"));
  }
  return CacheReservation(&reserved_bytes_, bytes);
}

int64_t Engine::active_requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(active_count_);
}

absl::Status Engine::Enqueue(std::unique_ptr<Task> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("the server is shutting down");
    if (static_cast<int64_t>(active_count_) >= options_.max_queued_requests) {
      return Refuse("max_queued_requests",
                    absl::StrCat("the server already has ", active_count_,
                                 " requests queued or running (limit "
                                 "max_queued_requests)"));
    }
    ++active_count_;
    incoming_.push_back(std::move(task));
  }
  cv_.notify_one();
  return absl::OkStatus();
}

absl::Status StepError(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const c10::OutOfMemoryError& e) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "out of memory in a model step: ", e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("model step failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("model step failed: ", e.what()));
  } catch (...) {
    return absl::InternalError("model step failed");
  }
}

void Engine::Round(std::list<std::unique_ptr<Task>>& active) {
  using TaskIt = std::list<std::unique_ptr<Task>>::iterator;
  auto drop = [&](TaskIt it) {
    active.erase(it);
    std::lock_guard<std::mutex> lock(mu_);
    --active_count_;
  };
  // Every task up to its next decode step; at most one prefill (chunk) a
  // round, so a long prompt holds the others' decoding up by one chunk at
  // most.
  std::vector<DecodeSlot> slots;
  std::vector<TaskIt> batch;
  bool prefilled = false;
  for (auto it = active.begin(); it != active.end();) {
    const TaskIt current = it++;
    Task& task = **current;
    if (task.prefilling()) {
      if (prefilled) continue;
      prefilled = true;
    }
    DecodeSlot slot;
    Task::Next next;
    try {
      next = task.Step(&slot);
    } catch (...) {
      task.Abort(StepError(std::current_exception()));
      next = Task::Next::kDone;
    }
    if (next == Task::Next::kDone) {
      drop(current);
    } else if (next == Task::Next::kDecode) {
      slots.push_back(std::move(slot));
      batch.push_back(current);
    }
  }
  if (slots.empty()) return;
  // One forward for the whole batch, every session in it locked.
  std::vector<std::unique_lock<std::mutex>> locks;
  std::vector<LlamaModel::DecodeRow> rows;
  for (const DecodeSlot& slot : slots) {
    if (slot.mu != nullptr) locks.emplace_back(*slot.mu);
    rows.push_back({slot.token, slot.position, slot.layers});
  }
  try {
    const at::Tensor logits = model_->DecodeBatch(rows);
    for (size_t i = 0; i < batch.size(); ++i) (*batch[i])->Decoded(logits[i]);
    metrics_->DecodeBatch(static_cast<int64_t>(batch.size()));
  } catch (...) {
    const absl::Status error = StepError(std::current_exception());
    locks.clear();  // Abort may take the session store's locks
    for (TaskIt it : batch) {
      (*it)->Abort(error);
      drop(it);
    }
  }
}

void Engine::Loop() {
  const int threads =
      options_.threads > 0
          ? options_.threads
          : static_cast<int>(std::thread::hardware_concurrency());
  // The matrix products of decode steps fan out over the kernel's own
  // threads and prompts' over the BLAS's; ATen's intra-op pool stays at one
  // thread, as forking it for each of a decode step's many small operations
  // cost more than it gave (38 -> 23 tok/s, cc-bench on 2 cores).
  at::set_num_threads(1);
  SetFewRowsThreads(std::max(1, threads));
  c10::InferenceMode inference_mode;
  std::list<std::unique_ptr<Task>> active;
  // Idle sessions are looked at a few times per TTL, at least once a second.
  const double ttl = options_.session_ttl_s;
  const auto sweep_every = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::clamp(ttl / 4, 0.01, 1.0)));
  Clock::time_point next_sweep = Clock::now() + sweep_every;
  while (true) {
    if (ttl > 0 && Clock::now() >= next_sweep) {
      sessions_.ExpireIdle(
          Clock::now() - std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(ttl)),
          ttl);
      next_sweep = Clock::now() + sweep_every;
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto ready = [&] {
        return stopping_ || !incoming_.empty() || !active.empty();
      };
      if (ttl > 0) {
        cv_.wait_until(lock, next_sweep, ready);
        if (!ready()) continue;
      } else {
        cv_.wait(lock, ready);
      }
      if (stopping_) {
        while (!incoming_.empty()) {
          active.push_back(std::move(incoming_.front()));
          incoming_.pop_front();
        }
        break;
      }
      while (!incoming_.empty()) {
        active.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
    }
    Round(active);
    int64_t running = 0;
    for (const auto& task : active) running += task->started();
    metrics_->SetQueue(running, static_cast<int64_t>(active.size()) - running);
  }
  for (auto& task : active)
    task->Abort(absl::UnavailableError("the server is shutting down"));
}

}  // namespace coldcompress
