// A unit of work the scheduler steps: one Generate or Score request.
#ifndef COLDCOMPRESS_SERVER_ENGINE_TASK_H_
#define COLDCOMPRESS_SERVER_ENGINE_TASK_H_

#include <atomic>
#include <chrono>

#include "absl/status/status.h"

namespace coldcompress {

class LlamaModel;
class PolicyRegistry;
class SessionStore;
class Tokenizer;
struct TokenClasses;
class Metrics;

using Clock = std::chrono::steady_clock;

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
};

// Lets the caller stop a request; the scheduler stops it before its next
// model step. Cancelling after completion is a no-op.
class RequestHandle {
 public:
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
};

class Task {
 public:
  virtual ~Task() = default;
  // Runs at most one model forward. Returns true when the task has delivered
  // its final result or error and can be dropped.
  virtual bool Step() = 0;
  // True once the first step ran (false: still waiting).
  virtual bool started() const = 0;
  // Ends the task at once with `status` (shutdown, internal errors).
  virtual void Abort(const absl::Status& status) = 0;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_TASK_H_
