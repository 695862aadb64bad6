#include "server/engine/cache_account.h"

namespace coldcompress {

std::string PolicyLabel(std::span<CacheLayer* const> layers) {
  std::string label;
  for (const CacheLayer* layer : layers) {
    if (label.empty()) label = layer->plan().strategy;
    if (layer->plan().strategy != label) return "mixed";
  }
  return label;
}

std::string PolicyLabel(const CachePlan& plan) {
  std::string label;
  for (const LayerPlan& layer : plan.layers) {
    if (label.empty()) label = layer.strategy;
    if (layer.strategy != label) return "mixed";
  }
  return label;
}

CacheAccount::CacheAccount(std::atomic<int64_t>* total, Metrics* metrics,
                           bool session)
    : total_(total), metrics_(metrics), session_(session) {}

CacheAccount::~CacheAccount() { Close(); }

void CacheAccount::Close() {
  if (closed_) return;
  closed_ = true;
  Apply({}, {});
  if (session_ && !label_.empty() && metrics_ != nullptr) {
    metrics_->SessionClosed(label_, peak_, ratio_);
  }
}

void CacheAccount::Report(std::span<CacheLayer* const> layers,
                          int64_t tokens_seen) {
  if (layers.empty() || closed_) return;
  if (session_ && label_.empty()) {
    label_ = PolicyLabel(layers);
    if (metrics_ != nullptr) metrics_->SessionOpened(label_);
  }
  const double n = static_cast<double>(layers.size());
  const int64_t fed = std::max<int64_t>(0, tokens_seen - 1);
  std::map<std::string, CacheUsage> usage;
  std::map<std::pair<std::string, int64_t>, int64_t> layer_bytes;
  double ratio = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const CacheLayer* layer = layers[i];
    CacheUsage& u = usage[layer->plan().strategy];
    const int64_t bytes = layer->AllocatedBytes();
    u.bytes += bytes;
    u.full_bytes += layer->FullCacheBytes(fed);
    double held = 0;
    for (int64_t h = 0; h < layer->num_heads(); ++h) {
      held += static_cast<double>(layer->HeadPositions(h).size());
    }
    held /= static_cast<double>(layer->num_heads());
    u.tokens += held / n;
    u.evicted += std::max(0.0, static_cast<double>(fed) - held) / n;
    if (metrics_ != nullptr && metrics_->per_layer()) {
      layer_bytes[{layer->plan().strategy, static_cast<int64_t>(i)}] = bytes;
    }
    ratio += layer->CompressionRatio(tokens_seen) / n;
  }
  ratio_ = ratio;
  Apply(usage, layer_bytes);
}

void CacheAccount::Apply(
    const std::map<std::string, CacheUsage>& usage,
    const std::map<std::pair<std::string, int64_t>, int64_t>& layer_bytes) {
  int64_t bytes = 0;
  for (const auto& [label, u] : usage) bytes += u.bytes;
  const int64_t delta = bytes - bytes_;
  if (total_ != nullptr) total_->fetch_add(delta);
  if (metrics_ != nullptr) {
    if (delta > 0) metrics_->CacheAllocated(delta);
    if (delta < 0) metrics_->CacheFreed(-delta);
    auto report = [&](const std::string& label, const CacheUsage& now,
                      const CacheUsage& was) {
      CacheUsage d;
      d.bytes = now.bytes - was.bytes;
      d.full_bytes = now.full_bytes - was.full_bytes;
      d.tokens = now.tokens - was.tokens;
      d.evicted = now.evicted - was.evicted;
      metrics_->AddCacheUsage(label, d);
    };
    for (const auto& [label, u] : usage) {
      auto it = current_.find(label);
      report(label, u, it == current_.end() ? CacheUsage{} : it->second);
    }
    for (const auto& [label, was] : current_) {
      // Gone: the bytes, full bytes and tokens return; evictions stay counted.
      if (!usage.count(label)) {
        CacheUsage none;
        none.evicted = was.evicted;
        report(label, none, was);
      }
    }
    for (const auto& [key, b] : layer_bytes) {
      auto it = layer_bytes_.find(key);
      metrics_->AddLayerBytes(key.first, key.second,
                              b - (it == layer_bytes_.end() ? 0 : it->second));
    }
    for (const auto& [key, b] : layer_bytes_) {
      if (!layer_bytes.count(key))
        metrics_->AddLayerBytes(key.first, key.second, -b);
    }
  }
  current_ = usage;
  layer_bytes_ = layer_bytes;
  bytes_ = bytes;
  peak_ = std::max(peak_, bytes);
}

}  // namespace coldcompress
