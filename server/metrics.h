// Every Prometheus metric of the server, declared in one place (metrics.cc).
// Names follow Prometheus conventions: prefix coldcompress_, base units
// (_seconds, _bytes), _total counters. Labels are bounded: `policy` is a
// registry strategy name (or "mixed" for per-layer mixes), `layer` a layer
// index, `reason` and `code` fixed vocabularies; never a session id or any
// request text.
#ifndef COLDCOMPRESS_SERVER_METRICS_H_
#define COLDCOMPRESS_SERVER_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace coldcompress {

struct MetricsOptions {
  bool per_layer = false;      // also export cache bytes by layer
  int64_t capacity_bytes = 0;  // the configured KV-cache budget (0 = none)
};

// What one request or session holds in the cache, for one policy label.
struct CacheUsage {
  int64_t bytes = 0;       // allocated
  int64_t full_bytes = 0;  // a full-precision full cache of the same tokens
  double tokens = 0;       // positions held, mean over layers and KV heads
  double evicted = 0;      // tokens seen but not held, same mean
};

// Per-request figures observed when a request finishes.
struct RequestFigures {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double queue_s = 0;
  double prefill_s = 0;
  double time_to_first_token_s = -1;  // < 0: no token
  double duration_s = 0;              // end to end
};

// Thread-safe.
class Metrics {
 public:
  explicit Metrics(const MetricsOptions& options);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The text exposition of every metric (refreshes process memory first).
  std::string Serialize() const;

  void SetQueue(int64_t running, int64_t waiting);
  void InterTokenLatency(const std::string& policy, double seconds);
  void RequestFinished(const std::string& policy, const std::string& reason,
                       const RequestFigures& figures);
  // `code`: a gRPC status code name, e.g. "INVALID_ARGUMENT".
  void RequestFailed(const std::string& code);
  // `limit`: the configuration key, e.g. "max_queued_requests".
  void RequestRefused(const std::string& limit);
  // `reason`: "ttl" or "memory".
  void SessionEvicted(const std::string& reason);
  void SetNamedSessions(int64_t n);
  void SetStreams(int64_t n);
  void SetDraining(bool draining);
  // Sequences in one batched decode step.
  void DecodeBatch(int64_t size);

  // Cache usage deltas (a session's account reports what changed).
  void AddCacheUsage(const std::string& policy, const CacheUsage& delta);
  void AddLayerBytes(const std::string& policy, int64_t layer, int64_t delta);
  void CacheAllocated(int64_t bytes);
  void CacheFreed(int64_t bytes);
  void SessionOpened(const std::string& policy);
  void SessionClosed(const std::string& policy, int64_t peak_bytes,
                     double compression_ratio);
  void AttentionLoss(const std::string& policy, double loss);

  // The device memory gauges read `read` (bytes allocated, reserved) at each
  // scrape, labelled `device`, instead of showing 0 for "cpu".
  using DeviceMemoryReader = std::function<std::pair<int64_t, int64_t>()>;
  void SetDeviceMemoryReader(const std::string& device,
                             DeviceMemoryReader read);

  void SetModelInfo(const std::string& model, const std::string& architecture,
                    const std::string& dtype, const std::string& device,
                    int64_t context_length);
  bool per_layer() const { return options_.per_layer; }

 private:
  struct Impl;
  MetricsOptions options_;
  std::unique_ptr<Impl> impl_;
};

// A gRPC status code's name, e.g. 3 -> "INVALID_ARGUMENT".
std::string GrpcCodeName(int code);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_METRICS_H_
