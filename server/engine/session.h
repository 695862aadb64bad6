// A session: the per-layer caches of one conversation and the tokens behind
// them. Guarded by its mutex; the scheduler holds it while stepping the
// session's request, readers (GetSession) hold it to take a snapshot.
#ifndef COLDCOMPRESS_SERVER_ENGINE_SESSION_H_
#define COLDCOMPRESS_SERVER_ENGINE_SESSION_H_

#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "policies/cache_layer.h"
#include "policies/layer_plan.h"
#include "policies/policy_spec.h"
#include "policies/registry.h"
#include "server/engine/cache_account.h"
#include "server/engine/task.h"
#include "server/engine/types.h"
#include "server/model/llama.h"

namespace coldcompress {

// Builds one CacheLayer per model layer for `plan`.
absl::StatusOr<std::vector<std::unique_ptr<CacheLayer>>> BuildCacheLayers(
    const EngineContext& context, const PolicySpec& spec,
    const CachePlan& plan);

// docs/policies.md 7 over a set of layers; `tokens_seen` counts the prompt and
// every generated token (the last one is not in the cache yet).
CacheStatsResult ComputeCacheStats(std::span<CacheLayer* const> layers,
                                   int64_t tokens_seen);

struct Session {
  Session(std::string id, std::atomic<int64_t>* cache_bytes, Metrics* metrics)
      : id(std::move(id)), memory(cache_bytes, metrics, /*session=*/true) {}

  const std::string id;  // empty for one-shot requests
  std::string owner;     // the principal that created it (set once)
  std::mutex mu;

  // Guarded by mu.
  PolicySpec spec;
  CachePlan plan;
  std::vector<std::unique_ptr<CacheLayer>> layers;  // empty until first prefill
  std::vector<int32_t> history;    // tokens in the cache's positions, in order
  std::optional<int32_t> pending;  // generated last, not yet in the cache
  bool busy = false;               // a request is queued or running on it
  std::weak_ptr<RequestHandle> request;        // the request in flight, if any
  Clock::time_point last_used = Clock::now();  // when a request last ended
  CacheAccount memory;  // this session's share of the engine's cache memory

  bool initialized() const { return !layers.empty(); }
  int64_t next_position() const { return static_cast<int64_t>(history.size()); }
  int64_t tokens_seen() const { return next_position() + (pending ? 1 : 0); }
  int64_t AllocatedBytes() const;
  CacheStatsResult Stats() const;
  // Frees the caches and returns their bytes to the engine now, not when
  // the last reference goes: a finished one-shot request or a closed
  // session. The session cannot be used afterwards.
  void ReleaseCaches();
  SessionSnapshot Snapshot(bool include_positions) const;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_SESSION_H_
