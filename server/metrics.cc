// The one file that declares the server's metrics.
#include "server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <vector>

#include "server/version.h"

namespace coldcompress {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

const Histogram::BucketBoundaries kLatencyBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5,   1,      2.5,   5,    10,    25,   50,  100};
const Histogram::BucketBoundaries kTokenLatencyBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
const Histogram::BucketBoundaries kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128};
const Histogram::BucketBoundaries kLengthBuckets = {
    1,    4,    16,   64,    128,   256,   512,   1024,
    2048, 4096, 8192, 16384, 32768, 65536, 131072};
const Histogram::BucketBoundaries kByteBuckets = {
    1 << 10, 1 << 12,         1 << 14,          1 << 16,         1 << 18,
    1 << 20, 1 << 22,         1 << 24,          1 << 26,         1 << 28,
    1 << 30, 4.0 * (1 << 30), 16.0 * (1 << 30), 64.0 * (1 << 30)};
const Histogram::BucketBoundaries kRatioBuckets = {
    0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0};
const Histogram::BucketBoundaries kLossBuckets = {
    0.0001, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0};

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

}  // namespace

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry =
      std::make_shared<prometheus::Registry>();

  prometheus::Family<prometheus::Gauge>& running =
      BuildGauge()
          .Name("coldcompress_requests_running")
          .Help("Generate and Score requests being stepped by the scheduler.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& waiting =
      BuildGauge()
          .Name("coldcompress_requests_waiting")
          .Help("Requests queued and not started yet.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& sessions =
      BuildGauge()
          .Name("coldcompress_sessions_active")
          .Help("Sessions (named or one-shot) holding caches, by policy.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& prompt_tokens =
      BuildCounter()
          .Name("coldcompress_prompt_tokens_total")
          .Help("Prompt tokens of finished requests, by policy.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& generated_tokens =
      BuildCounter()
          .Name("coldcompress_generated_tokens_total")
          .Help("Generated tokens of finished requests, by policy.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& finished =
      BuildCounter()
          .Name("coldcompress_requests_finished_total")
          .Help("Finished Generate requests by policy and finish reason.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& failed =
      BuildCounter()
          .Name("coldcompress_requests_failed_total")
          .Help(
              "Generate, Score and Tokenize requests that failed, by gRPC "
              "code.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& refused =
      BuildCounter()
          .Name("coldcompress_requests_refused_total")
          .Help(
              "Requests refused with RESOURCE_EXHAUSTED, by the limit they "
              "were over.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& sessions_evicted =
      BuildCounter()
          .Name("coldcompress_sessions_evicted_total")
          .Help(
              "Named sessions the server closed: ttl (idle too long) or "
              "memory (room for a request in max_cache_bytes).")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& named_sessions =
      BuildGauge()
          .Name("coldcompress_named_sessions")
          .Help("Named sessions held by the session store.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& streams =
      BuildGauge()
          .Name("coldcompress_streams_open")
          .Help("Generate streams open.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& draining =
      BuildGauge()
          .Name("coldcompress_draining")
          .Help("1 while the server drains before exiting.")
          .Register(*registry);
  prometheus::Family<Histogram>& ttft =
      BuildHistogram()
          .Name("coldcompress_time_to_first_token_seconds")
          .Help("From arrival to the first generated token, by policy.")
          .Register(*registry);
  prometheus::Family<Histogram>& itl =
      BuildHistogram()
          .Name("coldcompress_inter_token_latency_seconds")
          .Help("Between consecutive generated tokens of a request, by policy.")
          .Register(*registry);
  prometheus::Family<Histogram>& e2e =
      BuildHistogram()
          .Name("coldcompress_request_duration_seconds")
          .Help("From arrival to the final result, by policy.")
          .Register(*registry);
  prometheus::Family<Histogram>& queue =
      BuildHistogram()
          .Name("coldcompress_queue_time_seconds")
          .Help("From arrival to the first scheduler step, by policy.")
          .Register(*registry);
  prometheus::Family<Histogram>& prefill =
      BuildHistogram()
          .Name("coldcompress_prefill_time_seconds")
          .Help("Prefill and prompt feeding, by policy.")
          .Register(*registry);
  prometheus::Family<Histogram>& prompt_length =
      BuildHistogram()
          .Name("coldcompress_request_prompt_tokens")
          .Help("Prompt length of each request, by policy.")
          .Register(*registry);
  prometheus::Family<Histogram>& generation_length =
      BuildHistogram()
          .Name("coldcompress_request_generated_tokens")
          .Help("Generated tokens of each request, by policy.")
          .Register(*registry);
  prometheus::Family<Histogram>& decode_batch =
      BuildHistogram()
          .Name("coldcompress_decode_batch_size")
          .Help("Sequences decoded together in each batched model step.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& cache_bytes =
      BuildGauge()
          .Name("coldcompress_kv_cache_bytes")
          .Help(
              "KV-cache bytes allocated now (K, V, positions, masks, policy "
              "state), by policy.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& layer_bytes =
      BuildGauge()
          .Name("coldcompress_kv_cache_layer_bytes")
          .Help(
              "KV-cache bytes allocated now, by policy and layer "
              "(metrics_per_layer).")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& full_bytes =
      BuildGauge()
          .Name("coldcompress_kv_cache_full_bytes")
          .Help(
              "Bytes a full-precision full cache of the same tokens would "
              "take, by policy.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& capacity =
      BuildGauge()
          .Name("coldcompress_kv_cache_capacity_bytes")
          .Help("The configured KV-cache memory budget (0: no budget).")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& usage =
      BuildGauge()
          .Name("coldcompress_kv_cache_usage_ratio")
          .Help(
              "Allocated KV-cache bytes over the budget (0 without a budget).")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& tokens =
      BuildGauge()
          .Name("coldcompress_kv_cache_tokens")
          .Help(
              "Tokens held in caches now (mean over layers and KV heads), by "
              "policy.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& evicted =
      BuildCounter()
          .Name("coldcompress_kv_cache_evicted_tokens_total")
          .Help(
              "Tokens evicted or not cached (mean over layers and KV heads), "
              "by policy.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& allocated =
      BuildCounter()
          .Name("coldcompress_kv_cache_allocated_bytes_total")
          .Help("KV-cache bytes allocated since start.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& freed =
      BuildCounter()
          .Name("coldcompress_kv_cache_freed_bytes_total")
          .Help("KV-cache bytes freed since start.")
          .Register(*registry);
  prometheus::Family<Histogram>& peak =
      BuildHistogram()
          .Name("coldcompress_session_peak_cache_bytes")
          .Help(
              "Largest cache of each session, observed when it closes, by "
              "policy.")
          .Register(*registry);
  prometheus::Family<Histogram>& ratio =
      BuildHistogram()
          .Name("coldcompress_session_compression_ratio")
          .Help("Compression ratio of each session when it closes, by policy.")
          .Register(*registry);
  prometheus::Family<Histogram>& loss =
      BuildHistogram()
          .Name("coldcompress_attention_loss")
          .Help(
              "Attention loss of analysis-mode requests (debug_<strategy>), by "
              "policy.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& rss =
      BuildGauge()
          .Name("coldcompress_process_resident_memory_bytes")
          .Help("Resident memory of the server process.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& device_allocated =
      BuildGauge()
          .Name("coldcompress_device_memory_allocated_bytes")
          .Help(
              "Accelerator memory allocated by LibTorch (CUDA caching "
              "allocator; 0 on CPU).")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& device_reserved =
      BuildGauge()
          .Name("coldcompress_device_memory_reserved_bytes")
          .Help(
              "Accelerator memory reserved by LibTorch (CUDA caching "
              "allocator; 0 on CPU).")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& build =
      BuildGauge()
          .Name("coldcompress_build_info")
          .Help("1, labelled with the server version.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& model =
      BuildGauge()
          .Name("coldcompress_model_info")
          .Help("1, labelled with the model served.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& context =
      BuildGauge()
          .Name("coldcompress_model_context_length_tokens")
          .Help("The context length the server accepts.")
          .Register(*registry);

  std::mutex mu;  // guards the fields below and multi-metric updates
  int64_t cache_total = 0;
  int64_t capacity_bytes = 0;
  prometheus::Gauge* device_allocated_gauge = nullptr;
  prometheus::Gauge* device_reserved_gauge = nullptr;
  Metrics::DeviceMemoryReader read_device_memory;  // or empty: the CPU

  void UpdateUsage() {
    usage.Add({}).Set(capacity_bytes > 0
                          ? static_cast<double>(cache_total) / capacity_bytes
                          : 0);
  }
};

Metrics::Metrics(const MetricsOptions& options)
    : options_(options), impl_(std::make_unique<Impl>()) {
  impl_->capacity_bytes = options.capacity_bytes;
  impl_->capacity.Add({}).Set(static_cast<double>(options.capacity_bytes));
  impl_->UpdateUsage();
  impl_->running.Add({}).Set(0);
  impl_->waiting.Add({}).Set(0);
  impl_->build.Add({{"version", kVersion}}).Set(1);
  impl_->allocated.Add({});
  impl_->freed.Add({});
  impl_->device_allocated_gauge =
      &impl_->device_allocated.Add({{"device", "cpu"}});
  impl_->device_reserved_gauge =
      &impl_->device_reserved.Add({{"device", "cpu"}});
}

void Metrics::SetDeviceMemoryReader(const std::string& device,
                                    DeviceMemoryReader read) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->device_allocated.Remove(impl_->device_allocated_gauge);
  impl_->device_reserved.Remove(impl_->device_reserved_gauge);
  impl_->device_allocated_gauge =
      &impl_->device_allocated.Add({{"device", device}});
  impl_->device_reserved_gauge =
      &impl_->device_reserved.Add({{"device", device}});
  impl_->read_device_memory = std::move(read);
}

Metrics::~Metrics() = default;

std::string Metrics::Serialize() const {
  impl_->rss.Add({}).Set(static_cast<double>(ResidentBytes()));
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->read_device_memory) {
      const auto [allocated, reserved] = impl_->read_device_memory();
      impl_->device_allocated_gauge->Set(static_cast<double>(allocated));
      impl_->device_reserved_gauge->Set(static_cast<double>(reserved));
    }
  }
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

void Metrics::SetQueue(int64_t running, int64_t waiting) {
  impl_->running.Add({}).Set(static_cast<double>(running));
  impl_->waiting.Add({}).Set(static_cast<double>(waiting));
}

void Metrics::InterTokenLatency(const std::string& policy, double seconds) {
  impl_->itl.Add({{"policy", policy}}, kTokenLatencyBuckets).Observe(seconds);
}

void Metrics::RequestFinished(const std::string& policy,
                              const std::string& reason,
                              const RequestFigures& f) {
  const prometheus::Labels labels = {{"policy", policy}};
  impl_->finished.Add({{"policy", policy}, {"reason", reason}}).Increment();
  impl_->prompt_tokens.Add(labels).Increment(
      static_cast<double>(f.prompt_tokens));
  impl_->generated_tokens.Add(labels).Increment(
      static_cast<double>(f.generated_tokens));
  if (f.time_to_first_token_s >= 0) {
    impl_->ttft.Add(labels, kLatencyBuckets).Observe(f.time_to_first_token_s);
  }
  impl_->e2e.Add(labels, kLatencyBuckets).Observe(f.duration_s);
  impl_->queue.Add(labels, kLatencyBuckets).Observe(f.queue_s);
  impl_->prefill.Add(labels, kLatencyBuckets).Observe(f.prefill_s);
  impl_->prompt_length.Add(labels, kLengthBuckets)
      .Observe(static_cast<double>(f.prompt_tokens));
  impl_->generation_length.Add(labels, kLengthBuckets)
      .Observe(static_cast<double>(f.generated_tokens));
}

void Metrics::RequestFailed(const std::string& code) {
  impl_->failed.Add({{"code", code}}).Increment();
}

void Metrics::RequestRefused(const std::string& limit) {
  impl_->refused.Add({{"limit", limit}}).Increment();
}

void Metrics::SessionEvicted(const std::string& reason) {
  impl_->sessions_evicted.Add({{"reason", reason}}).Increment();
}

void Metrics::SetNamedSessions(int64_t n) {
  impl_->named_sessions.Add({}).Set(static_cast<double>(n));
}

void Metrics::SetStreams(int64_t n) {
  impl_->streams.Add({}).Set(static_cast<double>(n));
}

void Metrics::DecodeBatch(int64_t size) {
  impl_->decode_batch.Add({}, kBatchBuckets).Observe(static_cast<double>(size));
}

void Metrics::SetDraining(bool draining) {
  impl_->draining.Add({}).Set(draining ? 1 : 0);
}

void Metrics::AddCacheUsage(const std::string& policy, const CacheUsage& d) {
  const prometheus::Labels labels = {{"policy", policy}};
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->cache_bytes.Add(labels).Increment(static_cast<double>(d.bytes));
  impl_->full_bytes.Add(labels).Increment(static_cast<double>(d.full_bytes));
  impl_->tokens.Add(labels).Increment(d.tokens);
  if (d.evicted > 0) impl_->evicted.Add(labels).Increment(d.evicted);
  impl_->cache_total += d.bytes;
  impl_->UpdateUsage();
}

void Metrics::AddLayerBytes(const std::string& policy, int64_t layer,
                            int64_t delta) {
  impl_->layer_bytes.Add({{"policy", policy}, {"layer", std::to_string(layer)}})
      .Increment(static_cast<double>(delta));
}

void Metrics::CacheAllocated(int64_t bytes) {
  impl_->allocated.Add({}).Increment(static_cast<double>(bytes));
}

void Metrics::CacheFreed(int64_t bytes) {
  impl_->freed.Add({}).Increment(static_cast<double>(bytes));
}

void Metrics::SessionOpened(const std::string& policy) {
  impl_->sessions.Add({{"policy", policy}}).Increment();
}

void Metrics::SessionClosed(const std::string& policy, int64_t peak_bytes,
                            double compression_ratio) {
  const prometheus::Labels labels = {{"policy", policy}};
  impl_->sessions.Add(labels).Decrement();
  impl_->peak.Add(labels, kByteBuckets)
      .Observe(static_cast<double>(peak_bytes));
  impl_->ratio.Add(labels, kRatioBuckets).Observe(compression_ratio);
}

void Metrics::AttentionLoss(const std::string& policy, double loss) {
  impl_->loss.Add({{"policy", policy}}, kLossBuckets).Observe(loss);
}

void Metrics::SetModelInfo(const std::string& model,
                           const std::string& architecture,
                           const std::string& dtype, const std::string& device,
                           int64_t context_length) {
  impl_->model
      .Add({{"model", model},
            {"architecture", architecture},
            {"dtype", dtype},
            {"device", device}})
      .Set(1);
  impl_->context.Add({}).Set(static_cast<double>(context_length));
}

std::string GrpcCodeName(int code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN";
}

}  // namespace coldcompress
