// The `full` cache strategy and prompt compressor (docs/policies.md 3.1, 4):
// every token is kept; the capacity is the whole sequence.
#include <c10/util/Exception.h>

#include "policies/builtins.h"

namespace coldcompress {
namespace {

class FullPolicy final : public Policy {
 public:
  bool head_specific() const override { return false; }
  bool needs_attention() const override { return false; }
  bool SupportsBulkAppend() const override { return true; }

  std::vector<int64_t> ChooseSlots(const KVCache& cache, int64_t position,
                                   int32_t) override {
    std::vector<int64_t> slots = EmptySlots(cache);
    TORCH_CHECK(!slots.empty(), "full cache overflow at position ", position);
    return slots;
  }

  std::unique_ptr<Policy> Clone() const override {
    return std::make_unique<FullPolicy>(*this);
  }
};

class FullCompressor final : public PromptCompressor {
 public:
  bool head_specific() const override { return false; }
  bool needs_attention() const override { return false; }
  CompressedPrompt Compress(const PromptObservation& observation) override {
    TORCH_CHECK(false, "the full prompt compressor cannot drop tokens (",
                observation.prompt_length, " > ", observation.capacity, ")");
  }
};

}  // namespace

PolicyInfo FullPolicyInfo() {
  PolicyInfo info;
  info.name = "full";
  info.description = "Keeps every token; the cache holds the whole sequence.";
  info.requires_full_length = true;
  info.default_compressor = "full";
  info.create = [](const PolicyContext&) {
    return std::make_unique<FullPolicy>();
  };
  return info;
}

CompressorInfo FullCompressorInfo() {
  CompressorInfo info;
  info.name = "full";
  info.description = "Keeps the whole prompt (the prompt must fit the cache).";
  info.compresses = false;
  info.create = [](const PolicyContext&) {
    return std::make_unique<FullCompressor>();
  };
  return info;
}

}  // namespace coldcompress
