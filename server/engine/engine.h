// The engine: owns the model, validates requests, and runs them on one
// scheduler thread with continuous batching. Each round, every active request
// steps up to its next decode step (at most one waiting request starts with
// its prefill), then one batched forward decodes a token for all of them,
// each over its own caches under its own policy; requests join and leave
// between rounds.
#ifndef COLDCOMPRESS_SERVER_ENGINE_ENGINE_H_
#define COLDCOMPRESS_SERVER_ENGINE_ENGINE_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "policies/registry.h"
#include "server/engine/generate_task.h"
#include "server/engine/score_task.h"
#include "server/engine/session_store.h"
#include "server/engine/task.h"
#include "server/engine/types.h"
#include "server/metrics.h"
#include "server/model/llama.h"
#include "server/tokenizer/chat_template.h"
#include "server/tokenizer/tokenizer.h"

namespace coldcompress {

struct EngineOptions {
  int64_t max_sessions = 256;
  int64_t max_queued_requests = 64;  // queued + running
  int64_t max_prompt_tokens = 0;     // 0: the context length
  int64_t max_new_tokens = 0;        // 0: the context length
  int64_t max_stop_strings = 16;
  int64_t max_stop_string_bytes = 256;
  int64_t context_length = 0;   // 0: the model's max_position_embeddings
  int64_t max_cache_bytes = 0;  // 0: no budget
  double max_deadline_s = 0;    // 0: no ceiling
  double session_ttl_s = 0;     // 0: sessions never expire
  int threads = 0;              // decode's matrix-product threads; 0: all cores
  // Prompt tokens a forward (prefill chunk) between decode steps; 0: a
  // prompt in one forward.
  int64_t prefill_chunk_tokens = 512;
  // tokenizer_config.json's chat_template text (only used to tell Llama-3.1
  // from Llama-3); the family comes from the tokenizer.
  std::string chat_template;
  // Where the engine reports; nullptr: a private registry nobody scrapes.
  std::shared_ptr<Metrics> metrics;
};

class Engine {
 public:
  Engine(std::unique_ptr<LlamaModel> model,
         std::unique_ptr<Tokenizer> tokenizer,
         std::unique_ptr<PolicyRegistry> registry,
         const EngineOptions& options);
  ~Engine();  // cancels what is left and joins the scheduler

  const ModelConfig& model_config() const { return model_->config(); }
  const LlamaModel& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const ChatTemplate& chat_template() const { return chat_template_; }
  const PolicyRegistry& registry() const { return *registry_; }
  const EngineOptions& options() const { return options_; }
  int64_t context_length() const { return context_length_; }

  // Validates and queues a Generate. On error nothing was started. On success
  // `sink` receives events on the scheduler thread (it must not block): chunks,
  // then exactly one final result or error.
  absl::StatusOr<std::shared_ptr<RequestHandle>> Generate(GenerateInput input,
                                                          GenerateSink sink);

  // Validates and queues a Score; `done` is called once on the scheduler
  // thread.
  absl::StatusOr<std::shared_ptr<RequestHandle>> Score(ScoreInput input,
                                                       ScoreCallback done);

  // NOT_FOUND for an unknown session (saying why when the server closed it).
  // `owner`: the principal asking (GenerateInput::owner of the session's
  // requests); another principal's session is NOT_FOUND.
  absl::StatusOr<SessionSnapshot> GetSession(const std::string& owner,
                                             const std::string& id,
                                             bool include_positions);
  // Removes the session (cancelling a request in flight on it) and returns
  // the cache bytes it held. NOT_FOUND for an unknown session.
  absl::StatusOr<int64_t> CloseSession(const std::string& owner,
                                       const std::string& id);

  // INVALID_ARGUMENT naming `field` when an id is outside the vocabulary.
  absl::Status CheckTokenIds(const std::vector<int32_t>& ids,
                             const std::string& field) const;

  size_t num_sessions() const { return sessions_.size(); }
  // Generate and Score requests queued or running.
  int64_t active_requests();
  // Bytes of every live cache (sessions, one-shot requests, Score).
  int64_t cache_bytes() const { return cache_bytes_.load(); }
  Metrics& metrics() { return *metrics_; }

 private:
  absl::Status Enqueue(std::unique_ptr<Task> task);
  void Loop();
  // One scheduler round over `active`: each task steps up to its next decode
  // step (finished ones leave; at most one prompt chunk runs: a waiting
  // request's first or a started prefill's next), then one batched forward
  // decodes a token for every task that asked.
  void Round(std::list<std::unique_ptr<Task>>& active);
  // RESOURCE_EXHAUSTED over `limit` (a configuration key), counted.
  absl::Status Refuse(const std::string& limit, const std::string& message);
  // Bytes the caches of `plan` take: K and V at the policy's precision,
  // positions and validity masks (a policy's own state, a few bytes a slot,
  // counts once allocated).
  int64_t PlanBytes(const CachePlan& plan, const PolicySpec& spec) const;
  // Holds `bytes` of max_cache_bytes for a request, evicting idle sessions
  // (least recently used first) when they do not fit; RESOURCE_EXHAUSTED
  // when even that is not enough. An empty reservation without a budget.
  absl::StatusOr<CacheReservation> Reserve(int64_t bytes);
  // A handle whose deadline is the max_deadline_s ceiling.
  std::shared_ptr<RequestHandle> NewHandle(Clock::time_point submitted) const;

  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<PolicyRegistry> registry_;
  const EngineOptions options_;
  int64_t context_length_;
  std::shared_ptr<Metrics> metrics_;
  std::atomic<int64_t> cache_bytes_{0};
  std::atomic<int64_t> reserved_bytes_{0};  // admitted, caches not built yet
  std::mutex admission_mu_;                 // one Reserve at a time
  SessionStore sessions_;
  TokenClasses token_classes_;
  ChatTemplate chat_template_;
  EngineContext context_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Task>> incoming_;  // guarded by mu_
  size_t active_count_ = 0;                     // guarded by mu_
  bool stopping_ = false;                       // guarded by mu_
  std::thread scheduler_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_ENGINE_H_
