#include "server/model/checkpoint.h"

#include <gtest/gtest.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "policies/registry.h"
#include "server/model/llama.h"
#include "tests/testing/fixtures.h"

namespace coldcompress {
namespace {

TEST(ModelConfigTest, ParsesLlama31) {
  const std::string json = R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": false, "torch_dtype": "bfloat16"})";
  absl::StatusOr<ModelConfig> c = ParseModelConfig(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_kv_heads, 8);
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_EQ(c->rope_scaling->type, "llama3");
  EXPECT_EQ(c->rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_FALSE(c->qkv_bias);
}

TEST(ModelConfigTest, Qwen2HasQkvBiasAndMistralWindowCapsContext) {
  absl::StatusOr<ModelConfig> q = ParseModelConfig(R"({
    "architectures": ["Qwen2ForCausalLM"], "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "num_key_value_heads": 1, "sliding_window": 4096, "use_sliding_window": false,
    "max_position_embeddings": 32768})");
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(q->qkv_bias);
  EXPECT_FALSE(q->o_bias);
  EXPECT_EQ(q->max_position_embeddings, 32768);
  absl::StatusOr<ModelConfig> m = ParseModelConfig(R"({
    "architectures": ["MistralForCausalLM"], "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "sliding_window": 4096, "max_position_embeddings": 32768})");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->max_position_embeddings, 4096);
}

TEST(ModelConfigTest, ErrorsNameTheKey) {
  auto bad_arch = ParseModelConfig(R"({"architectures": ["GPT2LMHeadModel"]})");
  EXPECT_EQ(bad_arch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_arch.status().message().find("GPT2LMHeadModel"),
            std::string::npos);
  auto missing = ParseModelConfig(
      R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 5})");
  EXPECT_NE(missing.status().message().find("hidden_size"), std::string::npos);
  auto gqa = ParseModelConfig(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 12,
    "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 3,
    "num_key_value_heads": 2})");
  EXPECT_NE(gqa.status().message().find("num_key_value_heads"),
            std::string::npos);
  auto rope = ParseModelConfig(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "rope_scaling": {"rope_type": "yarn", "factor": 4}})");
  EXPECT_NE(rope.status().message().find("yarn"), std::string::npos);
}

TEST(ModelConfigTest, JsonRoundTrip) {
  ModelConfig c = *ParseModelConfig(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "rope_scaling": {"type": "linear", "factor": 2}, "eos_token_id": [3, 4]})");
  ModelConfig back = *ParseModelConfig(ModelConfigToJson(c));
  EXPECT_EQ(back.rope_scaling->type, "linear");
  EXPECT_EQ(back.rope_scaling->factor, 2.0);
  EXPECT_EQ(back.eos_token_ids, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(back.head_dim, 4);
}

// The sharded bf16 tied fixture loads into float32 with lm_head == embed.
TEST(CheckpointTest, LoadsShardedBf16TiedCheckpoint) {
  const std::string dir = testing::FixtureDir("llama_rope3_tied_bf16_sharded");
  absl::StatusOr<ModelConfig> c = LoadModelConfig(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  absl::StatusOr<ModelWeights> w =
      LoadModelWeights(dir, *c, at::kFloat, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->embed.scalar_type(), at::kFloat);
  EXPECT_TRUE(w->lm_head.is_same(w->embed));
  // bf16 -> fp32 is exact: the values have at most 8 significant bits.
  EXPECT_TRUE(at::equal(w->embed, w->embed.to(at::kBFloat16).to(at::kFloat)));
}

TEST(CheckpointTest, WrongShapeIsReported) {
  const std::string dir = testing::FixtureDir("llama");
  ModelConfig c = *LoadModelConfig(dir);
  c.intermediate_size += 1;
  absl::StatusOr<ModelWeights> w =
      LoadModelWeights(dir, c, at::kFloat, at::kCPU);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("gate_proj"), std::string::npos);
}

// The cached prefill path and the cache-free batch forward agree.
TEST(LlamaModelTest, PrefillLogitsMatchForward) {
  auto model =
      LlamaModel::Load(testing::FixtureDir("qwen2"), at::kFloat, at::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  const at::Tensor ids = at::tensor({1, 5, 9, 60, 200, 37}, at::kLong);
  const at::Tensor all = (*model)->Forward(ids.unsqueeze(0));  // [1, S, V]
  ASSERT_EQ(all.size(2), (*model)->config().vocab_size);
  PolicyRegistry registry;
  RegisterBuiltins(registry);
  PolicySpec spec;
  const int64_t n = (*model)->config().num_layers;
  CachePlan plan = *ResolveCachePlan(spec, n, 8, registry);
  std::vector<std::unique_ptr<CacheLayer>> layers;
  std::vector<CacheLayer*> ptrs;
  for (int64_t i = 0; i < n; ++i) {
    CacheLayerOptions o;
    o.num_heads = (*model)->config().num_kv_heads;
    o.head_dim = (*model)->config().head_dim;
    o.max_seq_len = 8;
    layers.push_back(*CacheLayer::Create(registry, plan.layers[i], spec, o));
    ptrs.push_back(layers.back().get());
  }
  // Prefill the first 4 tokens, decode 2: each step's logits equal the
  // forward's at that position.
  at::Tensor logits = (*model)->Prefill({1, 5, 9, 60}, ptrs);
  EXPECT_TRUE(at::allclose(logits, all[0][3], 1e-4, 1e-5));
  logits = (*model)->Decode(200, 4, ptrs);
  EXPECT_TRUE(at::allclose(logits, all[0][4], 1e-4, 1e-5));
  logits = (*model)->Decode(37, 5, ptrs);
  EXPECT_TRUE(at::allclose(logits, all[0][5], 1e-4, 1e-5));
}

// A prefill in chunks (each chunk attending to the earlier chunks' staged
// keys and values, the layers keeping their share at the last) gives the
// one-piece prefill's logits, the same kept positions and the same decode
// steps after it; a policy that decides on the prompt's attention runs in
// one chunk.
TEST(LlamaModelTest, PrefillInChunksMatchesOnePiece) {
  auto model =
      LlamaModel::Load(testing::FixtureDir("llama"), at::kFloat, at::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  LlamaModel& m = **model;
  PolicyRegistry registry;
  RegisterBuiltins(registry);
  constexpr int64_t kPrompt = 50, kSteps = 4, kChunk = 7;
  std::vector<int32_t> prompt = {1};
  for (int32_t t = 1; t < kPrompt; ++t) prompt.push_back(3 + (t * 37) % 500);
  const at::Tensor forward =
      m.Forward(at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()),
                           at::kLong)
                    .unsqueeze(0));  // [1, S, V]
  auto build = [&](const PolicySpec& spec) {
    const CachePlan plan = *ResolveCachePlan(spec, m.config().num_layers,
                                             kPrompt + kSteps, registry);
    return *m.CreateCaches(registry, spec, plan);
  };
  struct Case {
    std::vector<std::string> strategy;
    double size;
    std::optional<int64_t> bits;
  };
  const Case cases[] = {
      {{"full"}, 1.0, std::nullopt},
      {{"recent_global"}, 0.25, std::nullopt},  // compressed prompt
      {{"l2"}, 0.5, std::nullopt},
      {{"full"}, 1.0, 4},  // quantized storage
      // The policies that read the prompt's attention get its reductions
      // chunk by chunk: SnapKV's last rows and received sums, heavy_hitter's
      // history, hybrid's profiling (its rows recomputed after the last
      // chunk), analysis mode's shadow.
      {{"heavy_hitter"}, 0.5, std::nullopt},
      {{"heavy_hitter"}, 1.0, std::nullopt},
      {{"hybrid"}, 1.0, std::nullopt},
      {{"debug_heavy_hitter"}, 0.5, std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.strategy[0], " ", c.size));
    PolicySpec spec;
    spec.strategy = c.strategy;
    spec.max_cache_length = {c.size};
    spec.cache_bits = c.bits;
    spec.min_recovery_frac = 0.8;
    spec.hybrid_strategies = {{"special_punc", std::nullopt, std::nullopt},
                              {"window_heavy_hitter", 0.25, 0.25},
                              {"full", std::nullopt, std::nullopt}};
    auto whole = build(spec);
    auto chunked = build(spec);
    const std::vector<CacheLayer*> whole_ptrs = LayerPointers(whole);
    const std::vector<CacheLayer*> chunked_ptrs = LayerPointers(chunked);
    const at::Tensor expected = m.Prefill(prompt, whole_ptrs);
    LlamaModel::PromptRun run = m.StartPrefill(prompt, chunked_ptrs, kChunk);
    EXPECT_EQ(run.chunk, kChunk);
    at::Tensor logits;
    int chunks = 0;
    while (!run.finished()) {
      logits = m.RunChunk(run);
      ++chunks;
      EXPECT_EQ(logits.defined(), run.finished());
    }
    EXPECT_EQ(chunks, (kPrompt + kChunk - 1) / kChunk);
    EXPECT_TRUE(at::allclose(logits, expected, 1e-5, 1e-5));
    EXPECT_TRUE(at::allclose(logits, forward[0][kPrompt - 1], 1e-4, 1e-5));
    for (size_t l = 0; l < whole.size(); ++l) {
      for (int64_t h = 0; h < whole[l]->num_heads(); ++h) {
        EXPECT_EQ(chunked[l]->HeadPositions(h), whole[l]->HeadPositions(h))
            << "layer " << l << " head " << h;
      }
    }
    for (int64_t t = 0; t < kSteps; ++t) {
      const int64_t token = 40 + t;
      EXPECT_TRUE(at::allclose(m.Decode(token, kPrompt + t, chunked_ptrs),
                               m.Decode(token, kPrompt + t, whole_ptrs), 1e-5,
                               1e-5))
          << "step " << t;
    }
  }
}

// A dtype without kernels on the device fails at load with a clear message
// (Debian's LibTorch 1.13 has no float16 matmul on CPU); bfloat16 serves.
TEST(LlamaModelTest, DtypeSupportIsCheckedAtLoad) {
  const std::string dir = testing::FixtureDir("llama");
  auto half = LlamaModel::Load(dir, at::kHalf, at::kCPU);
  if (!half.ok()) {
    EXPECT_EQ(half.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(
        half.status().message().find("dtype: float16 is not supported on cpu"),
        std::string::npos)
        << half.status();
  }
  auto bf16 = LlamaModel::Load(dir, at::kBFloat16, at::kCPU);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  auto fp32 = LlamaModel::Load(dir, at::kFloat, at::kCPU);
  const at::Tensor ids = at::tensor({1, 40, 41, 300}, at::kLong).unsqueeze(0);
  const at::Tensor a = (*bf16)->Forward(ids).to(at::kFloat);
  const at::Tensor b = (*fp32)->Forward(ids);
  EXPECT_EQ((*bf16)->dtype(), at::kBFloat16);
  EXPECT_LT((a - b).abs().max().item<float>(), 0.15f);
}

}  // namespace
}  // namespace coldcompress
