#include "server/model/llama.h"

#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/attention.h"
#include "policies/cpu_kernels.h"
#include "server/model/cuda.h"

namespace coldcompress {
namespace {

// Hugging Face LlamaRMSNorm: normalise in float32, scale in the model dtype.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w,
                  const at::Tensor& b) {
  // Decode steps of one or a few sequences: the weights read once.
  if (FewRowsLinearApplies(x, w)) return FewRowsLinear(x, w, b);
  if (x.numel() == x.size(-1)) {
    // One token (a decode step): a matrix-vector product. On the CPU,
    // at::linear sends a one-row input to GEMM, which reads the weights at
    // half the speed of GEMV (measured with OpenBLAS: 13 vs 26 GB/s).
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = w.size(0);
    at::Tensor y = at::mv(w, x.reshape({-1}));
    if (b.defined()) y.add_(b);
    return y.view(shape);
  }
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

at::Tensor TokenTensor(const std::vector<int32_t>& tokens, at::Device device) {
  return at::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()),
                    at::kLong)
      .to(device);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(
    const std::string& dir, at::ScalarType dtype, at::Device device) {
  absl::StatusOr<ModelConfig> config = LoadModelConfig(dir);
  if (!config.ok()) return config.status();
  absl::StatusOr<ModelWeights> weights =
      LoadModelWeights(dir, *config, dtype, device);
  if (!weights.ok()) return weights.status();
  auto model = std::make_unique<LlamaModel>(*std::move(config),
                                            *std::move(weights), device);
  // One token through the model: some dtypes lack kernels on some devices
  // (float16 matmul on CPU), which must fail here, not in a request.
  try {
    c10::InferenceMode guard;
    model->Forward(at::ones({1, 1}, at::kLong));
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dtype: ", DtypeName(dtype), " is not supported on ", device.str(),
        " by this LibTorch build: ", e.what_without_backtrace()));
  }
  return model;
}

LlamaModel::LlamaModel(ModelConfig config, ModelWeights weights,
                       at::Device device)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      device_(device),
      dtype_(weights_.embed.scalar_type()),
      rope_(config_, device) {
  FuseProjections();
}

void LlamaModel::FuseProjections() {
  // Each output element is still one row's dot product, summed as before,
  // so the fused products give the separate ones' bits.
  const auto stack = [](std::initializer_list<at::Tensor*> parts,
                        at::Tensor& fused) {
    std::vector<at::Tensor> tensors;
    for (const at::Tensor* part : parts) tensors.push_back(*part);
    fused = at::cat(tensors);
    int64_t row = 0;
    for (at::Tensor* part : parts) {
      const int64_t rows = part->size(0);
      *part = fused.narrow(0, row, rows);
      row += rows;
    }
  };
  const auto all_or_none = [](std::initializer_list<const at::Tensor*> bs) {
    const bool first = (*bs.begin())->defined();
    return std::all_of(bs.begin(), bs.end(), [&](const at::Tensor* t) {
      return t->defined() == first;
    });
  };
  for (const LayerWeights& l : weights_.layers) {
    if (!CpuKernelOperand(l.wq) || !CpuKernelOperand(l.w_gate) ||
        !all_or_none({&l.bq, &l.bk, &l.bv}) ||
        !all_or_none({&l.b_gate, &l.b_up}))
      return;
  }
  fused_.resize(weights_.layers.size());
  for (size_t i = 0; i < fused_.size(); ++i) {
    LayerWeights& l = weights_.layers[i];
    FusedLayer& f = fused_[i];
    stack({&l.wq, &l.wk, &l.wv}, f.qkv);
    if (l.bq.defined()) stack({&l.bq, &l.bk, &l.bv}, f.qkv_bias);
    stack({&l.w_gate, &l.w_up}, f.gate_up);
    if (l.b_gate.defined()) stack({&l.b_gate, &l.b_up}, f.gate_up_bias);
  }
}

std::pair<at::Tensor, at::Tensor> LlamaModel::RopeFor(
    const at::Tensor& positions, int64_t b, int64_t s) const {
  auto [cos, sin] = rope_.CosSin(positions.reshape({-1}), dtype_);  // [., d]
  if (positions.dim() == 2) {
    // One row of positions per sequence: broadcast over the heads.
    const int64_t d = config_.head_dim;
    cos = cos.view({b, 1, s, d});
    sin = sin.view({b, 1, s, d});
  }
  return {cos, sin};
}

LlamaModel::Projected LlamaModel::BeforeAttention(int64_t layer,
                                                  const at::Tensor& x,
                                                  const at::Tensor& cos,
                                                  const at::Tensor& sin) const {
  const int64_t b = x.size(0), s = x.size(1);
  const int64_t hq = config_.num_heads, h = config_.num_kv_heads;
  const int64_t d = config_.head_dim;
  const LayerWeights& l = weights_.layers[layer];
  const FusedLayer* fused = fused_.empty() ? nullptr : &fused_[layer];
  const at::Tensor hidden = RmsNorm(x, l.input_norm, config_.rms_norm_eps);
  at::Tensor q_rows, k_rows, v_rows;  // [B, S, heads * d]
  if (fused != nullptr && FewRowsLinearApplies(hidden, fused->qkv)) {
    const at::Tensor qkv = FewRowsLinear(hidden, fused->qkv, fused->qkv_bias);
    if (Rope::SplitApplies(qkv, cos, sin)) {
      auto [q, k, v] = Rope::Split(qkv, cos, sin, hq, h);
      return {q, k, v};
    }
    q_rows = qkv.narrow(-1, 0, hq * d);
    k_rows = qkv.narrow(-1, hq * d, h * d);
    v_rows = qkv.narrow(-1, (hq + h) * d, h * d);
  } else {
    q_rows = Linear(hidden, l.wq, l.bq);
    k_rows = Linear(hidden, l.wk, l.bk);
    v_rows = Linear(hidden, l.wv, l.bv);
  }
  // q: [B, Hq, S, d]; k, v: [B, H, S, d]
  const at::Tensor q = q_rows.view({b, s, hq, d}).transpose(1, 2);
  const at::Tensor k = k_rows.view({b, s, h, d}).transpose(1, 2);
  return {Rope::Apply(q, cos, sin).contiguous(),
          Rope::Apply(k, cos, sin).contiguous(),
          v_rows.view({b, s, h, d}).transpose(1, 2).contiguous()};
}

at::Tensor LlamaModel::AfterAttention(int64_t layer, const at::Tensor& x,
                                      const at::Tensor& out) const {
  const int64_t b = x.size(0), s = x.size(1);
  const LayerWeights& l = weights_.layers[layer];
  const FusedLayer* fused = fused_.empty() ? nullptr : &fused_[layer];
  const at::Tensor attended =
      x + Linear(out.transpose(1, 2).reshape({b, s, -1}), l.wo, l.bo);
  const at::Tensor post = RmsNorm(attended, l.post_norm, config_.rms_norm_eps);
  at::Tensor gate, up;  // [B, S, I]
  if (fused != nullptr && FewRowsLinearApplies(post, fused->gate_up)) {
    const at::Tensor both =
        FewRowsLinear(post, fused->gate_up, fused->gate_up_bias);
    const int64_t n = l.w_gate.size(0);
    gate = both.narrow(-1, 0, n);
    up = both.narrow(-1, n, n);
  } else {
    gate = Linear(post, l.w_gate, l.b_gate);
    up = Linear(post, l.w_up, l.b_up);
  }
  return attended + Linear(at::silu(gate) * up, l.w_down, l.b_down);
}

at::Tensor LlamaModel::Trunk(at::Tensor x, const at::Tensor& positions,
                             const AttendFn& attend) const {
  const auto [cos, sin] = RopeFor(positions, x.size(0), x.size(1));
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    const Projected p = BeforeAttention(i, x, cos, sin);
    x = AfterAttention(i, x, attend(i, p.q, p.k, p.v));
  }
  return RmsNorm(x, weights_.norm, config_.rms_norm_eps);
}

void LlamaModel::EnterPhase(CpuPhase phase) const {
  if (device_.is_cpu()) EnterCpuPhase(phase);
}

at::Tensor LlamaModel::LastLogits(const at::Tensor& hidden) const {
  // hidden: [1, S, D] -> logits of the last position [V]
  const at::Tensor last = hidden.select(0, 0).select(0, hidden.size(1) - 1);
  return Linear(last, weights_.lm_head, {}).to(at::kFloat);
}

at::Tensor LlamaModel::Prefill(const std::vector<int32_t>& tokens,
                               std::span<CacheLayer* const> layers) {
  EnterPhase(CpuPhase::kPrompt);
  const at::Tensor ids = TokenTensor(tokens, device_);
  const at::Tensor positions = at::arange(
      ids.size(0), at::TensorOptions().dtype(at::kLong).device(device_));
  const at::Tensor x = weights_.embed.index_select(0, ids).unsqueeze(0);
  return LastLogits(
      Trunk(x, positions,
            [&](int64_t l, const at::Tensor& q, const at::Tensor& k,
                const at::Tensor& v) {
              return layers[l]->Prefill(q[0], k[0], v[0], tokens).unsqueeze(0);
            }));
}

at::Tensor LlamaModel::Append(const std::vector<int32_t>& tokens,
                              int64_t first_position,
                              std::span<CacheLayer* const> layers) {
  EnterPhase(CpuPhase::kPrompt);
  const at::Tensor ids = TokenTensor(tokens, device_);
  const at::Tensor positions =
      at::arange(first_position, first_position + ids.size(0),
                 at::TensorOptions().dtype(at::kLong).device(device_));
  const at::Tensor x = weights_.embed.index_select(0, ids).unsqueeze(0);
  return LastLogits(Trunk(
      x, positions,
      [&](int64_t l, const at::Tensor& q, const at::Tensor& k,
          const at::Tensor& v) {
        return layers[l]->Append(q[0], k[0], v[0], first_position).unsqueeze(0);
      }));
}

absl::StatusOr<std::vector<std::unique_ptr<CacheLayer>>>
LlamaModel::CreateCaches(const PolicyRegistry& registry, const PolicySpec& spec,
                         const CachePlan& plan,
                         const TokenClasses* tokens) const {
  std::vector<std::unique_ptr<CacheLayer>> layers;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    CacheLayerOptions options;
    options.layer_index = static_cast<int64_t>(i);
    options.num_heads = config_.num_kv_heads;
    options.head_dim = config_.head_dim;
    options.dtype = dtype_;
    options.device = device_;
    options.max_seq_len = plan.max_seq_len;
    options.tokens = tokens;
    absl::StatusOr<std::unique_ptr<CacheLayer>> layer =
        CacheLayer::Create(registry, plan.layers[i], spec, options);
    if (!layer.ok()) return layer.status();
    layers.push_back(*std::move(layer));
  }
  return layers;
}

LlamaModel::PromptRun LlamaModel::StartPrefill(std::vector<int32_t> tokens,
                                               std::vector<CacheLayer*> layers,
                                               int64_t chunk) const {
  PromptRun run;
  const auto s = static_cast<int64_t>(tokens.size());
  run.chunk = chunk <= 0 || chunk >= s ? s : chunk;
  for (CacheLayer* l : layers) run.needs.push_back(l->PromptAttentionNeeds(s));
  run.tokens = std::move(tokens);
  run.layers = std::move(layers);
  return run;
}

LlamaModel::PromptRun LlamaModel::StartAppend(std::vector<int32_t> tokens,
                                              int64_t first_position,
                                              std::vector<CacheLayer*> layers,
                                              int64_t chunk) const {
  PromptRun run;
  const auto n = static_cast<int64_t>(tokens.size());
  run.chunk = chunk <= 0 ? n : std::min(chunk, n);
  run.tokens = std::move(tokens);
  run.layers = std::move(layers);
  run.first_position = first_position;
  run.append = true;
  return run;
}

at::Tensor LlamaModel::RunChunk(PromptRun& run) {
  const auto n = static_cast<int64_t>(run.tokens.size());
  const int64_t end = std::min(n, run.done + run.chunk);
  at::Tensor logits;
  if (run.append) {
    logits = Append(std::vector<int32_t>(run.tokens.begin() + run.done,
                                         run.tokens.begin() + end),
                    run.first_position + run.done, run.layers);
  } else if (run.done == 0 && end == n) {
    logits = Prefill(run.tokens, run.layers);
  } else {
    logits = PrefillChunk(run, end);
  }
  run.done = end;
  return run.finished() ? logits : at::Tensor();
}

at::Tensor LlamaModel::PrefillChunk(PromptRun& run, int64_t end) {
  EnterPhase(CpuPhase::kPrompt);
  const int64_t s = static_cast<int64_t>(run.tokens.size());
  const int64_t begin = run.done, n = end - begin;
  const bool last = end == s;
  const at::Tensor ids =
      TokenTensor(std::vector<int32_t>(run.tokens.begin() + begin,
                                       run.tokens.begin() + end),
                  device_);
  const at::Tensor positions = at::arange(
      begin, end, at::TensorOptions().dtype(at::kLong).device(device_));
  run.keys.resize(run.layers.size());
  run.values.resize(run.layers.size());
  run.stats.resize(run.layers.size());
  run.queries.resize(run.layers.size());
  const at::Tensor x = weights_.embed.index_select(0, ids).unsqueeze(0);
  const at::Tensor hidden =
      Trunk(x, positions,
            [&](int64_t l, const at::Tensor& q, const at::Tensor& k,
                const at::Tensor& v) {
              at::Tensor& keys = run.keys[l];
              at::Tensor& values = run.values[l];
              if (!keys.defined()) {
                keys = at::empty({k.size(1), s, k.size(3)}, k.options());
                values = at::empty({v.size(1), s, v.size(3)}, v.options());
              }
              keys.narrow(1, begin, n).copy_(k[0]);
              values.narrow(1, begin, n).copy_(v[0]);
              const PromptAttentionNeed need = run.needs[l];
              std::optional<PromptAttentionBuilder>& stats = run.stats[l];
              if (need != PromptAttentionNeed::kNone && !stats)
                stats.emplace(k.size(1), s, k.device());
              at::Tensor& queries = run.queries[l];
              if (need == PromptAttentionNeed::kRows) {
                if (!queries.defined())
                  queries = at::empty({q.size(1), s, q.size(3)}, q.options());
                queries.narrow(1, begin, n).copy_(q[0]);
              }
              // 1.2 step 2, this chunk's rows: the prompt attends to itself.
              const at::Tensor out = AttendPrompt(
                  q[0], keys.narrow(1, 0, end), values.narrow(1, 0, end), begin,
                  stats ? &*stats : nullptr);
              if (last) {
                // 1.2 steps 3-5 over the whole prompt.
                PromptAttention attention;
                if (stats) {
                  attention = stats->Finish(need == PromptAttentionNeed::kRows
                                                ? PromptRows(queries, keys)
                                                : PromptAttention::RowSource());
                }
                run.layers[l]->KeepPrompt(keys, values, attention, run.tokens);
                keys.reset();
                values.reset();
                queries.reset();
                stats.reset();
              }
              return out.unsqueeze(0);
            });
  return last ? LastLogits(hidden) : at::Tensor();
}

at::Tensor LlamaModel::Decode(int64_t token, int64_t position,
                              std::span<CacheLayer* const> layers) {
  const DecodeRow row{static_cast<int32_t>(token), position, layers};
  return DecodeBatch({&row, 1})[0];
}

std::vector<at::Tensor> LlamaModel::DecodeAttention(
    std::span<const DecodeRow> rows, int64_t l, const at::Tensor& q,
    const at::Tensor& k, const at::Tensor& v) const {
  const auto b = static_cast<int64_t>(rows.size());
  std::vector<at::Tensor> outs(b);
  const auto decode = [&](int64_t i) {
    outs[i] = rows[i].layers[l]->Decode(q[i], k[i], v[i], rows[i].position,
                                        rows[i].token);
  };
  if (b > 1 && device_.is_cpu()) {
    // The sessions' caches share nothing: each session's attention and
    // bookkeeping on a core of its own (16 sessions, 264 cached tokens: on
    // one core, a session's attention is too small to split over its heads).
    ForEachOnKernelThreads(b, decode);
  } else {
    for (int64_t i = 0; i < b; ++i) decode(i);
  }
  return outs;
}

at::Tensor LlamaModel::Logits(const at::Tensor& hidden) const {
  return Linear(hidden, weights_.lm_head, {}).to(at::kFloat);
}

at::Tensor LlamaModel::DecodeBatch(std::span<const DecodeRow> rows) {
  if (graphs_ != nullptr) return DecodeBatchInGraphs(rows);
  EnterPhase(CpuPhase::kDecode);
  const int64_t b = static_cast<int64_t>(rows.size());
  std::vector<int32_t> ids(b);
  std::vector<int64_t> positions(b);
  for (int64_t i = 0; i < b; ++i) {
    ids[i] = rows[i].token;
    positions[i] = rows[i].position;
  }
  const at::Tensor id_tensor = TokenTensor(ids, device_);
  const at::Tensor position_tensor =
      at::tensor(positions, at::kLong).to(device_).view({b, 1});
  const at::Tensor x = weights_.embed.index_select(0, id_tensor).unsqueeze(1);
  const at::Tensor hidden =
      Trunk(x, position_tensor,
            [&](int64_t l, const at::Tensor& q, const at::Tensor& k,
                const at::Tensor& v) {
              return at::stack(DecodeAttention(rows, l, q, k, v));
            });
  // hidden: [B, 1, D] -> logits [B, V]
  return Logits(hidden.select(1, 0));
}

// UseDecodeGraphs' buffers and segments, one bucket per padded batch size.
struct LlamaModel::DecodeGraphs {
  struct Bucket {
    at::Tensor ids, positions;         // the step's inputs: [N], [N, 1] int64
    at::Tensor attention;              // [N, Hq, 1, d]: the layer's attention
    at::Tensor x, cos, sin;            // hidden state between segments; RoPE
    std::vector<Projected> projected;  // q, k, v by layer
    at::Tensor logits;                 // [N, V] float32
    // Segment 0: embedding, RoPE, layer 0 before attention; segment i:
    // layer i - 1 after attention, layer i before; segment L: the last
    // layer after attention, the norm and the logits.
    std::vector<std::function<void()>> segments;
    std::unique_ptr<SegmentRecorder> recorder;  // null: eager
  };
  bool capture = false;
  std::map<int64_t, std::unique_ptr<Bucket>> buckets;  // by N
};

LlamaModel::~LlamaModel() = default;

absl::Status LlamaModel::UseDecodeGraphs(bool capture) {
  if (capture && !device_.is_cuda()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cuda_graphs: the model is on ", device_.str(),
                     "; CUDA graphs need a CUDA device"));
  }
  if (capture && !CudaGraphsBuilt()) {
    return absl::FailedPreconditionError(
        "cuda_graphs: this build's LibTorch has no CUDA graphs");
  }
  graphs_ = std::make_unique<DecodeGraphs>();
  graphs_->capture = capture;
  return absl::OkStatus();
}

at::Tensor LlamaModel::DecodeBatchInGraphs(std::span<const DecodeRow> rows) {
  EnterPhase(CpuPhase::kDecode);
  const auto b = static_cast<int64_t>(rows.size());
  const int64_t layers = config_.num_layers;
  int64_t n = 1;
  while (n < b) n *= 2;
  std::unique_ptr<DecodeGraphs::Bucket>& slot = graphs_->buckets[n];
  if (slot == nullptr) {
    slot = std::make_unique<DecodeGraphs::Bucket>();
    DecodeGraphs::Bucket& bucket = *slot;
    const auto longs = at::TensorOptions().dtype(at::kLong).device(device_);
    bucket.ids = at::zeros({n}, longs);
    bucket.positions = at::zeros({n, 1}, longs);
    bucket.attention =
        at::zeros({n, config_.num_heads, 1, config_.head_dim},
                  at::TensorOptions().dtype(dtype_).device(device_));
    bucket.projected.resize(layers);
    bucket.segments.push_back([this, &bucket] {
      bucket.x = weights_.embed.index_select(0, bucket.ids).unsqueeze(1);
      std::tie(bucket.cos, bucket.sin) =
          RopeFor(bucket.positions, bucket.ids.size(0), 1);
      bucket.projected[0] =
          BeforeAttention(0, bucket.x, bucket.cos, bucket.sin);
    });
    for (int64_t i = 1; i <= layers; ++i) {
      bucket.segments.push_back([this, &bucket, i, layers] {
        bucket.x = AfterAttention(i - 1, bucket.x, bucket.attention);
        if (i < layers) {
          bucket.projected[i] =
              BeforeAttention(i, bucket.x, bucket.cos, bucket.sin);
        } else {
          bucket.logits =
              Logits(RmsNorm(bucket.x, weights_.norm, config_.rms_norm_eps)
                         .select(1, 0));
        }
      });
    }
    if (graphs_->capture) {
      absl::StatusOr<std::unique_ptr<SegmentRecorder>> recorder =
          MakeCudaGraphRecorder(device_);
      TORCH_CHECK(recorder.ok(), recorder.status().ToString());
      bucket.recorder = *std::move(recorder);
      bucket.recorder->Record(bucket.segments);
    }
  }
  DecodeGraphs::Bucket& bucket = *slot;
  // Padding rows: token 0 at position 0, their outputs unread.
  std::vector<int64_t> ids(n, 0), positions(n, 0);
  for (int64_t i = 0; i < b; ++i) {
    ids[i] = rows[i].token;
    positions[i] = rows[i].position;
  }
  bucket.ids.copy_(at::tensor(ids, at::kLong));
  bucket.positions.copy_(at::tensor(positions, at::kLong).view({n, 1}));
  const auto run = [&bucket](int64_t segment) {
    if (bucket.recorder != nullptr) {
      bucket.recorder->Replay(segment);
    } else {
      bucket.segments[segment]();
    }
  };
  for (int64_t l = 0; l < layers; ++l) {
    run(l);
    const Projected& p = bucket.projected[l];
    bucket.attention.narrow(0, 0, b).copy_(
        at::stack(DecodeAttention(rows, l, p.q, p.k, p.v)));
  }
  run(layers);
  // The next step overwrites the buffer.
  return bucket.logits.narrow(0, 0, b).clone();
}

at::Tensor LlamaModel::Forward(const at::Tensor& tokens) const {
  EnterPhase(CpuPhase::kPrompt);
  const at::Tensor ids = tokens.to(device_, at::kLong);
  const int64_t b = ids.size(0), s = ids.size(1);
  const at::Tensor positions =
      at::arange(s, at::TensorOptions().dtype(at::kLong).device(device_));
  const at::Tensor x =
      weights_.embed.index_select(0, ids.view({-1})).view({b, s, -1});
  const at::Tensor mask = CausalMask(s, device_);
  const at::Tensor hidden =
      Trunk(x, positions,
            [&](int64_t, const at::Tensor& q, const at::Tensor& k,
                const at::Tensor& v) {
              std::vector<at::Tensor> outs;
              for (int64_t i = 0; i < b; ++i) {
                outs.push_back(Attend(q[i], k[i], v[i], mask, false).output);
              }
              return at::stack(outs);
            });
  return at::matmul(hidden, weights_.lm_head.t());
}

}  // namespace coldcompress
