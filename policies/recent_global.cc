// `recent_global` (docs/policies.md 3.2, 4): attention sinks plus a sliding
// window (StreamingLLM).
#include <c10/util/Exception.h>

#include "policies/builtins.h"

namespace coldcompress {
namespace {

class RecentGlobalPolicy final : public Policy {
 public:
  explicit RecentGlobalPolicy(int64_t global_tokens) : g_(global_tokens) {}

  bool head_specific() const override { return false; }
  bool needs_attention() const override { return false; }

  // The empty slot, else the slot holding the smallest position >= g: a ring
  // buffer over the slots after the sinks.
  std::vector<int64_t> ChooseSlots(const KVCache& cache, int64_t position,
                                   int32_t) override {
    std::vector<int64_t> slots = EmptySlots(cache);
    if (!slots.empty()) return slots;
    int64_t best = -1, newest = 0;
    for (int64_t s = 0; s < cache.capacity(); ++s) {
      const int64_t p = cache.position(0, s);
      if (p >= g_ && (best < 0 || p < cache.position(0, best))) best = s;
      if (p > cache.position(0, newest)) newest = s;
    }
    // Every slot a sink (g >= L): the newest token makes room.
    return std::vector<int64_t>(cache.num_heads(), best >= 0 ? best : newest);
  }

  std::unique_ptr<Policy> Clone() const override {
    return std::make_unique<RecentGlobalPolicy>(*this);
  }

 private:
  int64_t g_;
};

class RecentGlobalCompressor final : public PromptCompressor {
 public:
  explicit RecentGlobalCompressor(int64_t global_tokens) : g_(global_tokens) {}
  bool head_specific() const override { return false; }
  bool needs_attention() const override { return false; }

  // The first g and the last L - g tokens.
  CompressedPrompt Compress(const PromptObservation& o) override {
    const int64_t g = std::min(g_, o.capacity);
    const auto opts =
        at::TensorOptions().dtype(at::kLong).device(o.keys.device());
    CompressedPrompt out;
    out.kept = at::cat({at::arange(g, opts),
                        at::arange(o.prompt_length - (o.capacity - g),
                                   o.prompt_length, opts)})
                   .unsqueeze(0);
    return out;
  }

 private:
  int64_t g_;
};

}  // namespace

PolicyInfo RecentGlobalPolicyInfo() {
  PolicyInfo info;
  info.name = "recent_global";
  info.description =
      "Attention sinks plus a sliding window (StreamingLLM): evicts the oldest "
      "token after the "
      "sinks.";
  info.params = {GlobalTokensParam()};
  info.default_compressor = "recent_global";
  info.create = [](const PolicyContext& c) {
    return std::make_unique<RecentGlobalPolicy>(c.spec->global_tokens);
  };
  return info;
}

CompressorInfo RecentGlobalCompressorInfo() {
  CompressorInfo info;
  info.name = "recent_global";
  info.description =
      "Keeps the first global_tokens and the last L - global_tokens prompt "
      "tokens.";
  info.create = [](const PolicyContext& c) {
    return std::make_unique<RecentGlobalCompressor>(c.spec->global_tokens);
  };
  return info;
}

}  // namespace coldcompress
