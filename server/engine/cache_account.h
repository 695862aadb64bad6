// A session's (or Score request's) share of the engine's cache memory: what
// its layers hold, reported to the engine's byte total and to the metrics as
// deltas, and returned in full when the account is destroyed.
#ifndef COLDCOMPRESS_SERVER_ENGINE_CACHE_ACCOUNT_H_
#define COLDCOMPRESS_SERVER_ENGINE_CACHE_ACCOUNT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>

#include "policies/cache_layer.h"
#include "server/metrics.h"

namespace coldcompress {

// The policy label of a set of layers: their strategy when they share one,
// else "mixed".
std::string PolicyLabel(std::span<CacheLayer* const> layers);
std::string PolicyLabel(const CachePlan& plan);

class CacheAccount {
 public:
  // `session`: count as an active session in the metrics (Score's caches do
  // not). Both pointers must outlive the account.
  CacheAccount(std::atomic<int64_t>* total, Metrics* metrics, bool session);
  ~CacheAccount();
  CacheAccount(const CacheAccount&) = delete;
  CacheAccount& operator=(const CacheAccount&) = delete;

  // Reports what `layers` hold now; `tokens_seen` as in CacheStats.
  void Report(std::span<CacheLayer* const> layers, int64_t tokens_seen);
  // Returns every byte now (the caches are being freed) and records the
  // session's peak; later Reports are ignored. Idempotent; the destructor
  // calls it.
  void Close();

  int64_t bytes() const { return bytes_; }
  int64_t peak_bytes() const { return peak_; }

 private:
  void Apply(
      const std::map<std::string, CacheUsage>& usage,
      const std::map<std::pair<std::string, int64_t>, int64_t>& layer_bytes);

  std::atomic<int64_t>* total_;
  Metrics* metrics_;
  const bool session_;
  std::string label_;  // set once the session has layers
  std::map<std::string, CacheUsage> current_;
  std::map<std::pair<std::string, int64_t>, int64_t> layer_bytes_;
  int64_t bytes_ = 0;
  int64_t peak_ = 0;
  double ratio_ = 0;
  bool closed_ = false;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_CACHE_ACCOUNT_H_
