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

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// A share of the engine's total cache bytes: Set() moves the total by the
// difference, destruction returns the share. Thread-safe total.
class MemoryAccount {
 public:
  explicit MemoryAccount(std::atomic<int64_t>* total) : total_(total) {}
  ~MemoryAccount() { Set(0); }
  MemoryAccount(const MemoryAccount&) = delete;
  MemoryAccount& operator=(const MemoryAccount&) = delete;
  void Set(int64_t bytes) {
    if (total_ != nullptr) total_->fetch_add(bytes - bytes_);
    bytes_ = bytes;
  }
  int64_t bytes() const { return bytes_; }

 private:
  std::atomic<int64_t>* total_;
  int64_t bytes_ = 0;
};

// What every task needs from the engine. Owned by the engine.
struct EngineContext {
  LlamaModel* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  const PolicyRegistry* registry = nullptr;
  SessionStore* sessions = nullptr;
  const TokenClasses* tokens = nullptr;         // for the hybrid policy
  std::atomic<int64_t>* cache_bytes = nullptr;  // every live cache's bytes
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
  // Ends the task at once with `status` (shutdown, internal errors).
  virtual void Abort(const absl::Status& status) = 0;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_TASK_H_
