// The named sessions of the server. Thread-safe.
#ifndef COLDCOMPRESS_SERVER_ENGINE_SESSION_STORE_H_
#define COLDCOMPRESS_SERVER_ENGINE_SESSION_STORE_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "server/engine/session.h"

namespace coldcompress {

class SessionStore {
 public:
  // `cache_bytes`: the engine's total that sessions account their caches in.
  SessionStore(int64_t max_sessions, std::atomic<int64_t>* cache_bytes,
               Metrics* metrics)
      : max_sessions_(max_sessions),
        cache_bytes_(cache_bytes),
        metrics_(metrics) {}

  struct Lease {
    std::shared_ptr<Session> session;
    bool created = false;  // the session did not exist before
  };

  // Marks session `id` busy for one request, creating it when new.
  // FAILED_PRECONDITION when a request is already in flight on it;
  // RESOURCE_EXHAUSTED when a new session would exceed max_sessions.
  absl::StatusOr<Lease> Acquire(const std::string& id);
  // Ends a request on the session (busy = false). When `drop`, the session is
  // removed as well (a new session whose first request failed, or a session
  // whose caches may be inconsistent after an internal error).
  void Release(const std::shared_ptr<Session>& session, bool drop);

  // nullptr when unknown.
  std::shared_ptr<Session> Find(const std::string& id) const;
  // Removes and returns the session; nullptr when unknown.
  std::shared_ptr<Session> Remove(const std::string& id);
  size_t size() const;

 private:
  const int64_t max_sessions_;
  std::atomic<int64_t>* cache_bytes_;
  Metrics* metrics_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_SESSION_STORE_H_
