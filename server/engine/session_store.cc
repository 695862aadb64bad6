#include "server/engine/session_store.h"

#include "absl/strings/str_cat.h"

namespace coldcompress {

absl::StatusOr<SessionStore::Lease> SessionStore::Acquire(
    const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it != sessions_.end()) {
    std::lock_guard<std::mutex> session_lock(it->second->mu);
    if (it->second->busy) {
      return absl::FailedPreconditionError(absl::StrCat(
          "session_id \"", id, "\" already has a request in flight"));
    }
    it->second->busy = true;
    return Lease{it->second, false};
  }
  if (static_cast<int64_t>(sessions_.size()) >= max_sessions_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "session_id: the server holds its maximum of ", max_sessions_,
        " sessions (limit max_sessions); close one first"));
  }
  auto session = std::make_shared<Session>(id, cache_bytes_, metrics_);
  session->busy = true;
  sessions_.emplace(id, session);
  return Lease{session, true};
}

void SessionStore::Release(const std::shared_ptr<Session>& session, bool drop) {
  std::lock_guard<std::mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> session_lock(session->mu);
    session->busy = false;
  }
  if (drop) {
    auto it = sessions_.find(session->id);
    if (it != sessions_.end() && it->second == session) sessions_.erase(it);
  }
}

std::shared_ptr<Session> SessionStore::Find(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second;
}

std::shared_ptr<Session> SessionStore::Remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return nullptr;
  std::shared_ptr<Session> s = it->second;
  sessions_.erase(it);
  return s;
}

size_t SessionStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

}  // namespace coldcompress
