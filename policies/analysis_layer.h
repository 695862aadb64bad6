// The analysis mode `debug_<strategy>` of one layer (docs/policies.md 6): a
// full cache serves the real attention (generations are the uncompressed
// model's) while a shadow cache of the strategy, fed the same tokens, measures
// the attention mass that lands on the tokens it evicted.
#ifndef COLDCOMPRESS_POLICIES_ANALYSIS_LAYER_H_
#define COLDCOMPRESS_POLICIES_ANALYSIS_LAYER_H_

#include <memory>
#include <vector>

#include "policies/cache_layer.h"

namespace coldcompress {

class AnalysisLayer final : public CacheLayer {
 public:
  // `full`: capacity Smax; `shadow`: the strategy's capacity.
  // `shadow_grows`: the strategy keeps the whole sequence (hybrid).
  AnalysisLayer(LayerPlan plan, KVCache full, KVCache shadow,
                std::unique_ptr<Policy> policy,
                std::shared_ptr<PromptCompressor> compressor,
                bool shadow_grows);

  PromptAttentionNeed PromptAttentionNeeds(int64_t s) const override;
  void KeepPrompt(const at::Tensor& k, const at::Tensor& v,
                  const PromptAttention& attention,
                  const std::vector<int32_t>& tokens) override;
  at::Tensor Decode(const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, int64_t position,
                    int32_t token) override;
  bool CanAppend(int64_t) const override { return false; }
  at::Tensor Append(const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, int64_t first_position) override;
  void SetMaxSeqLen(int64_t max_seq_len) override;
  double CompressionRatio(int64_t tokens_seen) const override;
  int64_t AllocatedBytes() const override;
  int64_t FullCacheBytes(int64_t tokens) const override;
  std::vector<int64_t> HeadPositions(int64_t head) const override;
  int64_t num_heads() const override { return full_.num_heads(); }
  const std::vector<double>* AttentionLosses() const override {
    return &losses_;
  }
  std::map<std::string, double> Stats() const override {
    return policy_->Stats();
  }
  std::unique_ptr<CacheLayer> Clone() const override;

 private:
  KVCache full_;    // every token; slot i holds position i
  KVCache shadow_;  // what the strategy would keep
  std::unique_ptr<Policy> policy_;
  std::shared_ptr<PromptCompressor> compressor_;
  bool shadow_grows_;
  std::vector<double> losses_;  // one per decode step
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_ANALYSIS_LAYER_H_
