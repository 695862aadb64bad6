// The Llama-family causal LM (Llama-2/3/3.1, Mistral-style, Qwen2): RMSNorm,
// RoPE at absolute positions, grouped-query attention, SwiGLU. The KV cache
// plugs in at one seam: each layer's attention is run by its CacheLayer.
#ifndef COLDCOMPRESS_SERVER_MODEL_LLAMA_H_
#define COLDCOMPRESS_SERVER_MODEL_LLAMA_H_

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "policies/cache_layer.h"
#include "policies/cpu_kernels.h"
#include "policies/layer_plan.h"
#include "server/model/checkpoint.h"
#include "server/model/rope.h"

namespace coldcompress {

class LlamaModel {
 public:
  // Loads a Hugging Face checkpoint directory in `dtype` on `device`.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(
      const std::string& dir, at::ScalarType dtype, at::Device device);

  // REQUIRES: weights match config, on `device` in one dtype.
  LlamaModel(ModelConfig config, ModelWeights weights, at::Device device);
  ~LlamaModel();

  const ModelConfig& config() const { return config_; }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }
  ModelWeights& weights() { return weights_; }

  // One cache layer per model layer for `plan`, in the model's dtype on its
  // device. `tokens`: the tokenizer's classes (the hybrid policy), or null.
  absl::StatusOr<std::vector<std::unique_ptr<CacheLayer>>> CreateCaches(
      const PolicyRegistry& registry, const PolicySpec& spec,
      const CachePlan& plan, const TokenClasses* tokens = nullptr) const;

  // Prefill of a prompt at positions 0..S-1 through each layer's cache
  // (docs/policies.md 1.2). Returns the last position's logits [V] in float32.
  at::Tensor Prefill(const std::vector<int32_t>& tokens,
                     std::span<CacheLayer* const> layers);

  // n tokens at first_position.. appended in bulk to every layer's cache.
  // REQUIRES: every layer CanAppend(n). Returns the last logits [V] float32.
  at::Tensor Append(const std::vector<int32_t>& tokens, int64_t first_position,
                    std::span<CacheLayer* const> layers);

  // A prompt run through the model in chunks of at most `chunk` tokens, one
  // chunk a call of RunChunk, so that continuous batching decodes the other
  // sequences between its chunks.
  struct PromptRun {
    std::vector<int32_t> tokens;
    std::vector<CacheLayer*> layers;
    int64_t first_position = 0;  // of tokens[0]
    bool append = false;         // after cached tokens (Append), or a prefill
    int64_t chunk = 0;           // tokens a chunk
    int64_t done = 0;            // tokens through the model so far
    // A prefill in chunks: every layer's prompt keys and values [H, S, d],
    // each chunk's written as it runs and attended by the later chunks; the
    // layers keep their share after the last chunk.
    std::vector<at::Tensor> keys, values;
    // By layer: what keeping the prompt needs of its attention, the
    // reductions accumulated so far, and for kRows the prompt's queries
    // [Hq, S, d] (the rows are recomputed after the last chunk).
    std::vector<PromptAttentionNeed> needs;
    std::vector<std::optional<PromptAttentionBuilder>> stats;
    std::vector<at::Tensor> queries;
    bool finished() const {
      return done == static_cast<int64_t>(tokens.size());
    }
  };
  // A prefill (as Prefill) in chunks of `chunk` tokens (0: one chunk). The
  // layers whose keeping reads the prompt's attention get its reductions,
  // accumulated chunk by chunk (PromptAttentionBuilder).
  PromptRun StartPrefill(std::vector<int32_t> tokens,
                         std::vector<CacheLayer*> layers, int64_t chunk) const;
  // An append (as Append) in chunks. REQUIRES: every layer CanAppend(n).
  PromptRun StartAppend(std::vector<int32_t> tokens, int64_t first_position,
                        std::vector<CacheLayer*> layers, int64_t chunk) const;
  // Runs the run's next chunk. Returns the last position's logits [V]
  // (float32) after its last chunk, else an undefined tensor.
  at::Tensor RunChunk(PromptRun& run);

  // One token at `position` (docs/policies.md 1.3): a batch of one row.
  // Returns logits [V] float32.
  at::Tensor Decode(int64_t token, int64_t position,
                    std::span<CacheLayer* const> layers);

  // One step of a decode batch: `token` at `position` through the
  // sequence's own caches.
  struct DecodeRow {
    int32_t token = 0;
    int64_t position = 0;
    std::span<CacheLayer* const> layers;
  };
  // A decode step of several sequences at once (continuous batching): one
  // pass over the weights for every row, each row's attention over its own
  // caches, whatever their policies and capacities. Returns logits [B, V] in
  // float32.
  at::Tensor DecodeBatch(std::span<const DecodeRow> rows);

  // Decode steps in fixed buffers, one set per batch-size bucket (1, 2, 4,
  // ... rows; a step is padded up to its bucket). The trunk between two
  // layers' attentions is one segment, which reads and writes only its
  // bucket's buffers. With `capture`, each segment is captured once in a
  // CUDA graph and replayed; the attention and the policies still run
  // eagerly between segments, since their caches change shape. Without
  // it, the segments run eagerly over the same buffers and give
  // DecodeBatch's bits (how the CPU's tests check the buffers).
  // Errors: capture on a device other than CUDA, or in a build without
  // CUDA graphs (FailedPrecondition). Not thread-safe, as DecodeBatch.
  absl::Status UseDecodeGraphs(bool capture);
  bool decode_graphs() const { return graphs_ != nullptr; }

  // Cache-free causal forward of a batch (training, checks).
  // tokens: [B, S] int64 at positions 0..S-1. Returns logits [B, S, V] in
  // the model dtype.
  at::Tensor Forward(const at::Tensor& tokens) const;

 private:
  // Attention of layer l: q [B, Hq, S, d], k, v [B, H, S, d] -> [B, Hq, S, d].
  using AttendFn =
      std::function<at::Tensor(int64_t layer, const at::Tensor& q,
                               const at::Tensor& k, const at::Tensor& v)>;

  // The transformer trunk: x [B, S, D] hidden states at `positions` [S]
  // (shared by the rows) or [B, S] through every layer and the final norm.
  at::Tensor Trunk(at::Tensor x, const at::Tensor& positions,
                   const AttendFn& attend) const;
  // RoPE's cos and sin for Trunk's `positions`, broadcastable over q, k.
  std::pair<at::Tensor, at::Tensor> RopeFor(const at::Tensor& positions,
                                            int64_t b, int64_t s) const;
  // Layer `layer` before its attention: x [B, S, D] -> q [B, Hq, S, d],
  // k, v [B, H, S, d] after RoPE, contiguous.
  struct Projected {
    at::Tensor q, k, v;
  };
  Projected BeforeAttention(int64_t layer, const at::Tensor& x,
                            const at::Tensor& cos, const at::Tensor& sin) const;
  // Layer `layer` after its attention `out` [B, Hq, S, d]: the next x.
  at::Tensor AfterAttention(int64_t layer, const at::Tensor& x,
                            const at::Tensor& out) const;
  // Row i's attention of layer l in a decode step: its caches' Decode.
  // Sessions side by side on the CPU's kernel threads when b > 1.
  std::vector<at::Tensor> DecodeAttention(std::span<const DecodeRow> rows,
                                          int64_t l, const at::Tensor& q,
                                          const at::Tensor& k,
                                          const at::Tensor& v) const;
  // hidden [B, D] after the final norm -> logits [B, V] in float32.
  at::Tensor Logits(const at::Tensor& hidden) const;
  at::Tensor DecodeBatchInGraphs(std::span<const DecodeRow> rows);
  at::Tensor LastLogits(const at::Tensor& hidden) const;
  // A prefill chunk over the run's staged keys and values.
  at::Tensor PrefillChunk(PromptRun& run, int64_t end);
  void EnterPhase(CpuPhase phase) const;  // the CPU's threads (CPU only)

  // A layer's projections that read the same input, their weights (and
  // biases) stacked: a decode step's kernels then read them in one call.
  // The layer's own wq, wk, wv, w_gate and w_up become views of these.
  struct FusedLayer {
    at::Tensor qkv, qkv_bias;          // [(Hq + 2H) d, D], [(Hq + 2H) d]
    at::Tensor gate_up, gate_up_bias;  // [2I, D], [2I]
  };
  // Fills fused_ where FewRowsLinear takes the weights (float32 on the CPU,
  // no autograd); leaves it empty otherwise.
  void FuseProjections();

  ModelConfig config_;
  ModelWeights weights_;
  std::vector<FusedLayer> fused_;         // by layer, or empty
  struct DecodeGraphs;                    // server/model/llama.cc
  std::unique_ptr<DecodeGraphs> graphs_;  // UseDecodeGraphs, or null
  at::Device device_;
  at::ScalarType dtype_;
  Rope rope_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_MODEL_LLAMA_H_
