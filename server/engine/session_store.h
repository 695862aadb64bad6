// The named sessions of the server, each owned by the principal that created
// it (ids are per principal: another principal's id is unknown): created on
// first use, closed by the
// client, or closed by the server when idle too long (TTL) or when a request
// needs their memory (least recently used first; never one with a request in
// flight). The ids the server closed are remembered (the latest 4096), so
// that their next use gets NOT_FOUND saying why. Thread-safe.
#ifndef COLDCOMPRESS_SERVER_ENGINE_SESSION_STORE_H_
#define COLDCOMPRESS_SERVER_ENGINE_SESSION_STORE_H_

#include <condition_variable>
#include <deque>
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

  // Marks session `id` busy for one request, creating it when new. A busy
  // session is waited for up to 100 ms (5 s while its request in flight is
  // cancelled, so that a client's next turn after a cancel goes through);
  // then FAILED_PRECONDITION: a request is already in flight on it;
  // RESOURCE_EXHAUSTED when a new session would exceed max_sessions;
  // NOT_FOUND, once, when the server closed it (the next call starts anew).
  absl::StatusOr<Lease> Acquire(const std::string& owner,
                                const std::string& id);
  // Ends a request on the session (busy = false). When `drop`, the session is
  // removed as well (a new session whose first request failed, or a session
  // whose caches may be inconsistent after an internal error).
  void Release(const std::shared_ptr<Session>& session, bool drop);

  // nullptr when unknown.
  std::shared_ptr<Session> Find(const std::string& owner,
                                const std::string& id) const;
  // Removes and returns the session; nullptr when unknown.
  std::shared_ptr<Session> Remove(const std::string& owner,
                                  const std::string& id);
  size_t size() const;

  // NOT_FOUND for an id that is not held: why, when the server closed it.
  // `forget`: the client has now heard it (a later use starts anew).
  absl::Status NotFound(const std::string& owner, const std::string& id,
                        bool forget);

  // Closes the sessions idle since before `cutoff` ("ttl"); returns how many.
  int ExpireIdle(Clock::time_point cutoff, double ttl_s);
  // Closes idle sessions, least recently used first, until `bytes` of cache
  // are freed ("memory"); returns the bytes freed. Closes none when all the
  // idle sessions together hold less than `bytes`.
  int64_t EvictForRoom(int64_t bytes);

 private:
  // REQUIRES: mu_ held; the session is idle. Frees its caches and remembers
  // why it went.
  using Key = std::pair<std::string, std::string>;  // owner, id
  void CloseLocked(std::map<Key, std::shared_ptr<Session>>::iterator it,
                   const std::string& reason, const std::string& why);
  void PublishSizeLocked();

  const int64_t max_sessions_;
  std::atomic<int64_t>* cache_bytes_;
  Metrics* metrics_;
  mutable std::mutex mu_;
  std::condition_variable released_;  // a session's request ended
  std::map<Key, std::shared_ptr<Session>> sessions_;
  std::map<Key, std::string> closed_;  // -> why the server closed it
  std::deque<Key> closed_order_;       // oldest first
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_SESSION_STORE_H_
