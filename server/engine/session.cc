#include "server/engine/session.h"

#include "absl/strings/str_cat.h"

namespace coldcompress {

absl::StatusOr<std::vector<std::unique_ptr<CacheLayer>>> BuildCacheLayers(
    const EngineContext& context, const PolicySpec& spec,
    const CachePlan& plan) {
  return context.model->CreateCaches(*context.registry, spec, plan,
                                     context.tokens);
}

CacheStatsResult ComputeCacheStats(std::span<CacheLayer* const> layers,
                                   int64_t tokens_seen) {
  CacheStatsResult stats;
  if (layers.empty()) return stats;
  const int64_t cached_tokens = std::max<int64_t>(0, tokens_seen - 1);
  const double n = static_cast<double>(layers.size());
  double sum = 0;
  size_t steps = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const CacheLayer* layer = layers[i];
    const double r = layer->CompressionRatio(tokens_seen);
    stats.layer_compression_ratio.push_back(r);
    sum += r;
    stats.cache_bytes += layer->AllocatedBytes();
    stats.full_cache_bytes += layer->FullCacheBytes(cached_tokens);
    for (const auto& [key, value] : layer->Stats()) {
      stats.extra[key] += value / n;
      stats.extra[absl::StrCat(key, "/layer_", i)] = value;
    }
    if (const std::vector<double>* losses = layer->AttentionLosses()) {
      double mean = 0;
      for (double l : *losses) mean += l;
      stats.layer_attention_loss.push_back(
          losses->empty() ? 0.0 : mean / losses->size());
      steps = losses->size();
    }
  }
  stats.compression_ratio = sum / n;
  if (!stats.layer_attention_loss.empty()) {
    double total = 0;
    for (double l : stats.layer_attention_loss) total += l;
    stats.attention_loss = total / stats.layer_attention_loss.size();
    // attention_loss@k: the mean over the first k decode steps, over the
    // layers in analysis mode (as attention_loss; a mix such as
    // [debug_heavy_hitter, full] has others, which measure nothing).
    for (size_t k = 500; k <= steps; k += 500) {
      double at_k = 0;
      for (const CacheLayer* layer : layers) {
        const std::vector<double>* losses = layer->AttentionLosses();
        if (losses == nullptr) continue;
        double mean = 0;
        for (size_t t = 0; t < k; ++t) mean += (*losses)[t];
        at_k += mean / static_cast<double>(k);
      }
      stats.extra[absl::StrCat("attention_loss@", k)] =
          at_k / static_cast<double>(stats.layer_attention_loss.size());
    }
  }
  return stats;
}

int64_t Session::AllocatedBytes() const {
  int64_t bytes = 0;
  for (const auto& l : layers) bytes += l->AllocatedBytes();
  return bytes;
}

void Session::ReleaseCaches() {
  layers.clear();
  memory.Close();
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
      for (int64_t h = 0; h < layer->num_heads(); ++h) {
        ls.head_positions.push_back(layer->HeadPositions(h));
      }
    }
    snap.layers.push_back(std::move(ls));
  }
  return snap;
}

}  // namespace coldcompress
