// A unit of work the scheduler steps: one Generate or Score request.
#ifndef COLDCOMPRESS_SERVER_ENGINE_TASK_H_
#define COLDCOMPRESS_SERVER_ENGINE_TASK_H_

#include <ATen/core/Tensor.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace coldcompress {

class CacheLayer;
class LlamaModel;
class PolicyRegistry;
class SessionStore;
class Tokenizer;
struct TokenClasses;
class Metrics;

using Clock = std::chrono::steady_clock;

// The status of an exception out of a model step, for the request's error:
// RESOURCE_EXHAUSTED when an allocator ran out of memory (a GPU's or the
// host's), INTERNAL otherwise. Errors the engine expects travel as statuses
// and keep their codes; only LibTorch's throw.
absl::Status StepError(std::exception_ptr error);

inline double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// What every task needs from the engine. Owned by the engine.
struct EngineContext {
  LlamaModel* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  const PolicyRegistry* registry = nullptr;
  SessionStore* sessions = nullptr;
  const TokenClasses* tokens = nullptr;         // for the hybrid policy
  std::atomic<int64_t>* cache_bytes = nullptr;  // every live cache's bytes
  Metrics* metrics = nullptr;
  int64_t prefill_chunk_tokens = 0;  // prompt tokens a forward; 0: all
};

// Lets the caller stop a request; the scheduler stops it before its next
// model step. Cancelling after completion is a no-op.
class RequestHandle {
 public:
  RequestHandle() = default;
  // A request the scheduler stops with DEADLINE_EXCEEDED after `deadline`.
  explicit RequestHandle(Clock::time_point deadline) : deadline_(deadline) {}

  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  bool expired(Clock::time_point now) const { return now > deadline_; }

 private:
  std::atomic<bool> cancelled_{false};
  const Clock::time_point deadline_ = Clock::time_point::max();
};

// Bytes of the cache budget (max_cache_bytes) held for a request from its
// admission until its caches exist (they then count in the engine's total)
// or it ends. Releases once, at the latest when destroyed.
class CacheReservation {
 public:
  CacheReservation() = default;
  CacheReservation(std::atomic<int64_t>* pool, int64_t bytes)
      : pool_(pool), bytes_(bytes) {
    pool_->fetch_add(bytes_);
  }
  CacheReservation(CacheReservation&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)), bytes_(other.bytes_) {}
  CacheReservation& operator=(CacheReservation&& other) noexcept {
    if (this != &other) {
      Release();
      pool_ = std::exchange(other.pool_, nullptr);
      bytes_ = other.bytes_;
    }
    return *this;
  }
  ~CacheReservation() { Release(); }
  void Release() {
    if (pool_ != nullptr) pool_->fetch_sub(bytes_);
    pool_ = nullptr;
  }

 private:
  std::atomic<int64_t>* pool_ = nullptr;
  int64_t bytes_ = 0;
};

// One token of one sequence through the model: a decode step, or a prompt
// token fed after the prefill. The scheduler runs every task's slot of a
// round as one batched forward (LlamaModel::DecodeBatch).
struct DecodeSlot {
  int32_t token = 0;
  int64_t position = 0;
  std::vector<CacheLayer*> layers;
  // Held by the scheduler around the forward and Decoded (the session's);
  // nullptr when the caches are the task's own.
  std::mutex* mu = nullptr;
};

class Task {
 public:
  enum class Next {
    kDone,     // delivered its final result or error; drop it
    kStepped,  // ran a forward of its own (a prefill)
    kDecode,   // `slot` holds a decode step; Decoded() gets its logits
  };

  virtual ~Task() = default;
  // Runs the task up to its next decode step, running at most one forward
  // of its own on the way.
  virtual Next Step(DecodeSlot* slot) = 0;
  // The logits [V] (float32) of the slot Step filled; the slot's mutex held.
  virtual void Decoded(const at::Tensor& logits) = 0;
  // True once the first step ran (false: still waiting; its first step is a
  // prefill).
  virtual bool started() const = 0;
  // True when the next Step runs a forward of its own over prompt tokens
  // (a prefill or one of its chunks): the scheduler runs one a round.
  virtual bool prefilling() const { return !started(); }
  // Ends the task at once with `status` (shutdown, internal errors).
  virtual void Abort(const absl::Status& status) = 0;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_TASK_H_
