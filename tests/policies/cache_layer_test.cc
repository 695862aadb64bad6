#include "policies/cache_layer.h"

#include <gtest/gtest.h>

#include "policies/attention.h"
#include "policies/policy_layer.h"
#include "policies/registry.h"

namespace coldcompress {
namespace {

class CacheLayerTest : public ::testing::Test {
 protected:
  std::unique_ptr<CacheLayer> Make(int64_t capacity, int64_t max_seq_len) {
    registry_ = std::make_unique<PolicyRegistry>();
    RegisterBuiltins(*registry_);
    plan_ = LayerPlan{"full", "full", capacity, 10};
    CacheLayerOptions o;
    o.num_heads = 2;
    o.head_dim = 8;
    o.max_seq_len = max_seq_len;
    auto layer = CacheLayer::Create(*registry_, plan_, spec_, o);
    EXPECT_TRUE(layer.ok());
    return *std::move(layer);
  }
  std::vector<int32_t> Tokens(int64_t n) { return std::vector<int32_t>(n, 7); }
  std::unique_ptr<PolicyRegistry> registry_;
  PolicySpec spec_;
  LayerPlan plan_;
};

// Prefill of t tokens then decode of the rest must equal causal attention over
// the whole sequence at once (the full cache loses nothing).
TEST_F(CacheLayerTest, FullCacheMatchesCausalAttention) {
  at::manual_seed(0);
  const int64_t s = 12, hq = 4, h = 2, d = 8;
  const at::Tensor q = at::randn({hq, s, d}), k = at::randn({h, s, d}),
                   v = at::randn({h, s, d});
  const at::Tensor expected =
      Attend(q, k, v, CausalMask(s, at::kCPU), false).output;
  auto layer = Make(s, s);
  const int64_t t = 7;
  at::Tensor out = layer->Prefill(q.narrow(1, 0, t), k.narrow(1, 0, t),
                                  v.narrow(1, 0, t), Tokens(t));
  EXPECT_TRUE(at::allclose(out, expected.narrow(1, 0, t), 1e-5, 1e-6));
  for (int64_t p = t; p < s; ++p) {
    out = layer->Decode(q.narrow(1, p, 1), k.narrow(1, p, 1), v.narrow(1, p, 1),
                        p, 7);
    EXPECT_TRUE(at::allclose(out, expected.narrow(1, p, 1), 1e-5, 1e-6)) << p;
  }
  EXPECT_EQ(layer->HeadPositions(1).size(), static_cast<size_t>(s));
  EXPECT_DOUBLE_EQ(layer->CompressionRatio(s + 1), 0.0);
}

TEST_F(CacheLayerTest, BulkAppendMatchesCausalAttention) {
  at::manual_seed(1);
  const int64_t s = 10, hq = 4, h = 2, d = 8;
  const at::Tensor q = at::randn({hq, s, d}), k = at::randn({h, s, d}),
                   v = at::randn({h, s, d});
  const at::Tensor expected =
      Attend(q, k, v, CausalMask(s, at::kCPU), false).output;
  auto layer = Make(4, 4);
  layer->Prefill(q.narrow(1, 0, 4), k.narrow(1, 0, 4), v.narrow(1, 0, 4),
                 Tokens(4));
  EXPECT_FALSE(layer->CanAppend(6));  // no room until the sequence may grow
  layer->SetMaxSeqLen(s);
  EXPECT_EQ(layer->plan().capacity, s);
  ASSERT_TRUE(layer->CanAppend(6));
  const at::Tensor out =
      layer->Append(q.narrow(1, 4, 6), k.narrow(1, 4, 6), v.narrow(1, 4, 6), 4);
  EXPECT_TRUE(at::allclose(out, expected.narrow(1, 4, 6), 1e-5, 1e-6));
  EXPECT_EQ(layer->HeadPositions(1),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

// A quantized cache: each step attends to the new token exactly and to the
// cached ones de-quantized.
TEST_F(CacheLayerTest, QuantizedDecodeSeesTheNewTokenExactly) {
  at::manual_seed(2);
  const int64_t s = 6, hq = 4, h = 2, d = 8;
  const at::Tensor q = at::randn({hq, s, d}), k = at::randn({h, s, d}),
                   v = at::randn({h, s, d});
  spec_.cache_bits = 2;
  auto layer = Make(s, s);
  layer->Prefill(q.narrow(1, 0, 5), k.narrow(1, 0, 5), v.narrow(1, 0, 5),
                 Tokens(5));
  const at::Tensor out = layer->Decode(q.narrow(1, 5, 1), k.narrow(1, 5, 1),
                                       v.narrow(1, 5, 1), 5, 7);
  const auto& cache = dynamic_cast<const PolicyLayer&>(*layer).cache();
  at::Tensor keys = cache.Keys(6).clone(), values = cache.Values(6).clone();
  keys.narrow(1, 5, 1).copy_(k.narrow(1, 5, 1));
  values.narrow(1, 5, 1).copy_(v.narrow(1, 5, 1));
  const at::Tensor expected = Attend(q.narrow(1, 5, 1), keys, values,
                                     at::ones({1, 6}, at::kBool), false)
                                  .output;
  EXPECT_TRUE(at::allclose(out, expected, 1e-5, 1e-6));
  // 2 bits per value: the ratio counts 2/16 of a token per kept token.
  EXPECT_NEAR(layer->CompressionRatio(7), 1.0 - 2.0 / 16.0, 1e-12);
}

// Allocated bytes are the sum of the layer's buffers: K, V, mask, positions
// and the policy's state (heavy_hitter: float64 history, int64 ages).
TEST(CacheLayerBytesTest, SumOfBuffersIncludingPolicyState) {
  PolicyRegistry registry;
  RegisterBuiltins(registry);
  PolicySpec spec;
  CacheLayerOptions o;
  o.num_heads = 2;
  o.head_dim = 8;
  o.max_seq_len = 64;
  const int64_t l = 16, kv = 2 * 2 * l * 8 * 4, meta = 2 * l + 2 * l * 8;
  auto hh = *CacheLayer::Create(
      registry, LayerPlan{"heavy_hitter", "heavy_hitter", l, 10}, spec, o);
  EXPECT_EQ(hh->AllocatedBytes(), kv + meta + 2 * l * 8 + 2 * l * 8);
  spec.history_window_size = 5;  // windowed: model dtype (float32) x 5
  auto windowed = *CacheLayer::Create(
      registry, LayerPlan{"heavy_hitter", "heavy_hitter", l, 10}, spec, o);
  EXPECT_EQ(windowed->AllocatedBytes(), kv + meta + 2 * l * 5 * 4 + 2 * l * 8);
  auto l2 =
      *CacheLayer::Create(registry, LayerPlan{"l2", "l2", l, 10}, spec, o);
  EXPECT_EQ(l2->AllocatedBytes(), kv + meta + 2 * l * 4);
  auto rg = *CacheLayer::Create(
      registry, LayerPlan{"recent_global", "recent_global", l, 10}, spec, o);
  EXPECT_EQ(rg->AllocatedBytes(), kv + meta);
  EXPECT_EQ(rg->FullCacheBytes(100), 2 * 2 * 100 * 8 * 4);
}

TEST(AttentionTest, ProbabilitiesAreGroupAveragedAndMasked) {
  at::manual_seed(2);
  const at::Tensor q = at::randn({4, 3, 8}), k = at::randn({2, 3, 8}),
                   v = at::randn({2, 3, 8});
  AttentionResult r = Attend(q, k, v, CausalMask(3, at::kCPU), true);
  ASSERT_EQ(r.probs.sizes().vec(), (std::vector<int64_t>{2, 3, 3}));
  // Query heads 0,1 read KV head 0: their mean is the head-0 probability.
  auto softmax = [&](int64_t qh) {
    const at::Tensor scores = at::matmul(q[qh], k[0].t()) / std::sqrt(8.0);
    return at::softmax(
        scores.masked_fill(CausalMask(3, at::kCPU).logical_not(), -INFINITY),
        -1);
  };
  EXPECT_TRUE(
      at::allclose(r.probs[0], (softmax(0) + softmax(1)) / 2, 1e-5, 1e-7));
  EXPECT_EQ(r.probs[1][0][1].item<float>(), 0.0f);  // masked: exactly 0
  EXPECT_TRUE(at::allclose(r.probs.sum(-1), at::ones({2, 3}), 1e-5, 1e-6));
}

// No mask (every key visible, as a full cache's decode step passes it) gives
// an all-true mask's bits: one query on the CPU's kernels, several on ATen's.
TEST(AttentionTest, NoMaskIsAnAllTrueMask) {
  at::manual_seed(3);
  for (const int64_t sq : {1, 5}) {
    const at::Tensor q = at::randn({6, sq, 16}), k = at::randn({2, 40, 16}),
                     v = at::randn({2, 40, 16});
    const at::Tensor all = at::ones({2, 1, 40}, at::kBool);
    for (const bool probs : {false, true}) {
      const AttentionResult masked = Attend(q, k, v, all, probs);
      const AttentionResult unmasked = Attend(q, k, v, at::Tensor(), probs);
      EXPECT_TRUE(at::equal(unmasked.output, masked.output))
          << sq << " queries, probs " << probs;
      if (probs) EXPECT_TRUE(at::equal(unmasked.probs, masked.probs));
    }
  }
}

}  // namespace
}  // namespace coldcompress
