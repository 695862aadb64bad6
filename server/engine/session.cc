#include "server/engine/session.h"

namespace coldcompress {

absl::StatusOr<std::vector<std::unique_ptr<CacheLayer>>> BuildCacheLayers(
    const PolicyRegistry& registry, const LlamaModel& model,
    const PolicySpec& spec, const CachePlan& plan) {
  std::vector<std::unique_ptr<CacheLayer>> layers;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    CacheLayerOptions options;
    options.layer_index = static_cast<int64_t>(i);
    options.num_heads = model.config().num_kv_heads;
    options.head_dim = model.config().head_dim;
    options.dtype = model.dtype();
    options.device = model.device();
    absl::StatusOr<std::unique_ptr<CacheLayer>> layer =
        CacheLayer::Create(registry, plan.layers[i], spec, options);
    if (!layer.ok()) return layer.status();
    layers.push_back(*std::move(layer));
  }
  return layers;
}

std::vector<CacheLayer*> LayerPointers(
    const std::vector<std::unique_ptr<CacheLayer>>& layers) {
  std::vector<CacheLayer*> out;
  for (const auto& l : layers) out.push_back(l.get());
  return out;
}

CacheStatsResult ComputeCacheStats(std::span<CacheLayer* const> layers,
                                   int64_t tokens_seen) {
  CacheStatsResult stats;
  if (layers.empty()) return stats;
  const int64_t cached_tokens = std::max<int64_t>(0, tokens_seen - 1);
  double sum = 0;
  for (const CacheLayer* layer : layers) {
    const double r = layer->CompressionRatio(tokens_seen);
    stats.layer_compression_ratio.push_back(r);
    sum += r;
    stats.cache_bytes += layer->AllocatedBytes();
    stats.full_cache_bytes += layer->cache().FullCacheBytes(cached_tokens);
  }
  stats.compression_ratio = sum / static_cast<double>(layers.size());
  return stats;
}

int64_t Session::AllocatedBytes() const {
  int64_t bytes = 0;
  for (const auto& l : layers) bytes += l->AllocatedBytes();
  return bytes;
}

CacheStatsResult Session::Stats() const {
  return ComputeCacheStats(LayerPointers(layers), tokens_seen());
}

SessionSnapshot Session::Snapshot(bool include_positions) const {
  SessionSnapshot snap;
  snap.session_id = id;
  snap.tokens_seen = tokens_seen();
  snap.stats = Stats();
  for (const auto& layer : layers) {
    LayerSnapshot ls;
    ls.strategy = layer->plan().strategy;
    ls.prompt_compression = layer->plan().prompt_compression;
    ls.capacity = layer->plan().capacity;
    ls.recent_window = layer->plan().recent_window;
    if (include_positions) {
      for (int64_t h = 0; h < layer->cache().num_heads(); ++h) {
        ls.head_positions.push_back(layer->cache().SortedPositions(h));
      }
    }
    snap.layers.push_back(std::move(ls));
  }
  return snap;
}

}  // namespace coldcompress
