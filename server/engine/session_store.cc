#include "server/engine/session_store.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"

namespace coldcompress {
namespace {

constexpr size_t kRememberClosed = 4096;

}  // namespace

absl::StatusOr<SessionStore::Lease> SessionStore::Acquire(
    const std::string& owner, const std::string& id) {
  std::unique_lock<std::mutex> lock(mu_);
  // A client that cancels a turn and sends the next one at once races the
  // cancellation: its old request ends at the scheduler's next step. So a
  // busy session is waited for, briefly, and longer while its request in
  // flight is cancelled and about to end.
  const Clock::time_point start = Clock::now();
  const Clock::time_point grace = start + std::chrono::milliseconds(100);
  const Clock::time_point cancelled_grace = start + std::chrono::seconds(5);
  for (auto it = sessions_.find({owner, id}); it != sessions_.end();
       it = sessions_.find({owner, id})) {
    std::shared_ptr<Session> session = it->second;
    bool cancelled;
    {
      std::lock_guard<std::mutex> session_lock(session->mu);
      if (!session->busy) {
        session->busy = true;
        return Lease{session, false};
      }
      std::shared_ptr<RequestHandle> request = session->request.lock();
      cancelled = request != nullptr && request->cancelled();
    }
    const Clock::time_point now = Clock::now();
    if (now >= (cancelled ? cancelled_grace : grace)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "session_id \"", id, "\" already has a request in flight"));
    }
    released_.wait_until(lock, std::min(now + std::chrono::milliseconds(10),
                                        cancelled ? cancelled_grace : grace));
  }
  if (auto closed = closed_.find({owner, id}); closed != closed_.end()) {
    const absl::Status status = absl::NotFoundError(closed->second);
    closed_.erase(closed);  // told once; the id may start a new session
    return status;
  }
  if (static_cast<int64_t>(sessions_.size()) >= max_sessions_) {
    metrics_->RequestRefused("max_sessions");
    return absl::ResourceExhaustedError(absl::StrCat(
        "session_id: the server holds its maximum of ", max_sessions_,
        " sessions (limit max_sessions); close one first"));
  }
  auto session = std::make_shared<Session>(id, cache_bytes_, metrics_);
  session->owner = owner;
  session->busy = true;
  sessions_.emplace(Key{owner, id}, session);
  PublishSizeLocked();
  return Lease{session, true};
}

void SessionStore::Release(const std::shared_ptr<Session>& session, bool drop) {
  std::lock_guard<std::mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> session_lock(session->mu);
    session->busy = false;
    session->last_used = Clock::now();
  }
  released_.notify_all();
  if (drop) {
    auto it = sessions_.find({session->owner, session->id});
    if (it != sessions_.end() && it->second == session) sessions_.erase(it);
    PublishSizeLocked();
  }
}

std::shared_ptr<Session> SessionStore::Find(const std::string& owner,
                                            const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find({owner, id});
  return it == sessions_.end() ? nullptr : it->second;
}

std::shared_ptr<Session> SessionStore::Remove(const std::string& owner,
                                              const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find({owner, id});
  if (it == sessions_.end()) return nullptr;
  std::shared_ptr<Session> s = it->second;
  sessions_.erase(it);
  PublishSizeLocked();
  return s;
}

size_t SessionStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

absl::Status SessionStore::NotFound(const std::string& owner,
                                    const std::string& id, bool forget) {
  std::lock_guard<std::mutex> lock(mu_);
  auto closed = closed_.find({owner, id});
  if (closed == closed_.end()) {
    return absl::NotFoundError(
        absl::StrCat("session_id \"", id, "\" not found"));
  }
  const absl::Status status = absl::NotFoundError(closed->second);
  if (forget) closed_.erase(closed);
  return status;
}

void SessionStore::CloseLocked(
    std::map<Key, std::shared_ptr<Session>>::iterator it,
    const std::string& reason, const std::string& why) {
  const Key key = it->first;
  std::shared_ptr<Session> session = it->second;
  sessions_.erase(it);
  {
    std::lock_guard<std::mutex> session_lock(session->mu);
    session->ReleaseCaches();
  }
  metrics_->SessionEvicted(reason);
  if (closed_.size() >= kRememberClosed && !closed_order_.empty()) {
    closed_.erase(closed_order_.front());
    closed_order_.pop_front();
  }
  // An id may be closed, reused and closed again: one entry per id.
  if (closed_.insert_or_assign(key, why).second) closed_order_.push_back(key);
}

void SessionStore::PublishSizeLocked() {
  metrics_->SetNamedSessions(static_cast<int64_t>(sessions_.size()));
}

int SessionStore::ExpireIdle(Clock::time_point cutoff, double ttl_s) {
  std::lock_guard<std::mutex> lock(mu_);
  int closed = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto next = std::next(it);
    bool idle;
    {
      std::lock_guard<std::mutex> session_lock(it->second->mu);
      idle = !it->second->busy && it->second->last_used < cutoff;
    }
    if (idle) {
      CloseLocked(it, "ttl",
                  absl::StrCat("session_id \"", it->first.second,
                               "\" was closed by the server: idle longer "
                               "than session_ttl_s (",
                               ttl_s, " s)"));
      ++closed;
    }
    it = next;
  }
  if (closed > 0) PublishSizeLocked();
  return closed;
}

int64_t SessionStore::EvictForRoom(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  struct Candidate {
    Clock::time_point last_used;
    Key key;
    int64_t bytes;
  };
  std::vector<Candidate> idle;
  for (auto& [key, session] : sessions_) {
    std::lock_guard<std::mutex> session_lock(session->mu);
    if (!session->busy && session->initialized())
      idle.push_back({session->last_used, key, session->AllocatedBytes()});
  }
  // Nobody is evicted for a request that would not fit anyway.
  int64_t evictable = 0;
  for (const Candidate& c : idle) evictable += c.bytes;
  if (evictable < bytes) return 0;
  std::sort(idle.begin(), idle.end(), [](const auto& a, const auto& b) {
    return a.last_used < b.last_used;
  });
  int64_t freed = 0;
  for (const Candidate& c : idle) {
    if (freed >= bytes) break;
    CloseLocked(sessions_.find(c.key), "memory",
                absl::StrCat("session_id \"", c.key.second,
                             "\" was evicted by the server to make room in "
                             "the KV-cache budget (max_cache_bytes)"));
    freed += c.bytes;
  }
  if (freed > 0) PublishSizeLocked();
  return freed;
}

}  // namespace coldcompress
