// The compressed cache of one layer: KVCache + the policy and prompt
// compressor that decide what it holds.
#ifndef COLDCOMPRESS_POLICIES_POLICY_LAYER_H_
#define COLDCOMPRESS_POLICIES_POLICY_LAYER_H_

#include <memory>

#include "policies/cache_layer.h"

namespace coldcompress {

class PolicyLayer final : public CacheLayer {
 public:
  // `grows`: the capacity follows the sequence length (whole-sequence
  // policies such as full and hybrid).
  PolicyLayer(LayerPlan plan, KVCache cache, std::unique_ptr<Policy> policy,
              std::shared_ptr<PromptCompressor> compressor, bool grows);

  PromptAttentionNeed PromptAttentionNeeds(int64_t s) const override;
  void KeepPrompt(const at::Tensor& k, const at::Tensor& v,
                  const PromptAttention& attention,
                  const std::vector<int32_t>& tokens) override;
  at::Tensor Decode(const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, int64_t position,
                    int32_t token) override;
  bool CanAppend(int64_t n) const override;
  at::Tensor Append(const at::Tensor& q, const at::Tensor& k,
                    const at::Tensor& v, int64_t first_position) override;
  void SetMaxSeqLen(int64_t max_seq_len) override;
  double CompressionRatio(int64_t tokens_seen) const override;
  int64_t AllocatedBytes() const override;
  int64_t FullCacheBytes(int64_t tokens) const override;
  std::vector<int64_t> HeadPositions(int64_t head) const override;
  int64_t num_heads() const override { return cache_.num_heads(); }
  std::map<std::string, double> Stats() const override {
    return policy_->Stats();
  }
  std::unique_ptr<CacheLayer> Clone() const override;

  const KVCache& cache() const { return cache_; }

 private:
  KVCache cache_;
  std::unique_ptr<Policy> policy_;
  // Shared by clones: Compress() keeps no state between calls.
  std::shared_ptr<PromptCompressor> compressor_;
  bool grows_;
};

// One decode step's attention over `cache` after the token was written at
// `slots` (-1: not cached by that head): the new token is always attended
// exactly, also where the cache holds it quantized or not at all.
// Returns the output [Hq, 1, d] and, when wanted, the GQA-averaged
// probabilities over the slots [H, L] (0 for empty slots).
std::pair<at::Tensor, at::Tensor> AttendDecode(
    const KVCache& cache, const at::Tensor& q, const at::Tensor& k,
    const at::Tensor& v, const std::vector<int64_t>& slots, bool want_probs);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_POLICY_LAYER_H_
