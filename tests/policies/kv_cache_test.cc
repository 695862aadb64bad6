#include "policies/kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "policies/scoring.h"

namespace coldcompress {
namespace {

KVCache MakeCache(int64_t heads, int64_t capacity, int64_t d = 4) {
  KVCacheOptions o;
  o.num_heads = heads;
  o.head_dim = d;
  o.capacity = capacity;
  return KVCache(o);
}

TEST(KVCacheTest, FillWritesPrefixAndClearsTheRest) {
  KVCache cache = MakeCache(2, 6);
  const at::Tensor k = at::arange(2 * 3 * 4, at::kFloat).view({2, 3, 4});
  const at::Tensor pos =
      at::tensor({0, 2, 5, 1, 3, -1}, at::kLong).view({2, 3});
  cache.Fill(k, k + 100, pos);
  EXPECT_EQ(cache.occupancy(0), 3);
  EXPECT_EQ(cache.occupancy(1), 2);  // padding -1 ends head 1's prefix
  EXPECT_EQ(cache.position(0, 2), 5);
  EXPECT_EQ(cache.position(1, 2), -1);
  EXPECT_TRUE(cache.valid()[0][2].item<bool>());
  EXPECT_FALSE(cache.valid()[1][2].item<bool>());
  EXPECT_FALSE(cache.valid()[0][3].item<bool>());
  EXPECT_TRUE(at::equal(cache.Keys(6)[0].narrow(0, 0, 3), k[0]));
  EXPECT_TRUE(at::equal(cache.Values(6)[1][1], k[1][1] + 100));
  EXPECT_EQ(cache.MinFreeSlots(), 3);
  EXPECT_FALSE(cache.Full());
}

TEST(KVCacheTest, WriteFillsEmptySlotOrOverwritesInPlace) {
  KVCache cache = MakeCache(2, 2);
  cache.Fill(at::zeros({2, 1, 4}), at::zeros({2, 1, 4}),
             at::zeros({2, 1}, at::kLong));
  cache.Write({1, 1}, at::ones({2, 4}), at::ones({2, 4}), 7);
  EXPECT_TRUE(cache.Full());
  EXPECT_EQ(cache.position(1, 1), 7);
  // Per-head slots: head 0 overwrites slot 0, head 1 keeps everything.
  cache.Write({0, -1}, at::full({2, 4}, 3.0), at::full({2, 4}, 3.0), 8);
  EXPECT_EQ(cache.SortedPositions(0), (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(cache.SortedPositions(1), (std::vector<int64_t>{0, 7}));
  EXPECT_EQ(cache.Keys(2)[0][0][0].item<float>(), 3.0f);
  EXPECT_EQ(cache.Keys(2)[1][0][0].item<float>(), 0.0f);
}

TEST(KVCacheTest, AppendGrowAndClone) {
  KVCache cache = MakeCache(1, 4);
  cache.Fill(at::ones({1, 2, 4}), at::ones({1, 2, 4}),
             at::tensor({0, 1}, at::kLong).view({1, 2}));
  cache.Append(at::full({1, 2, 4}, 2.0), at::full({1, 2, 4}, 2.0), 2);
  EXPECT_TRUE(cache.Full());
  EXPECT_EQ(cache.SortedPositions(0), (std::vector<int64_t>{0, 1, 2, 3}));
  KVCache copy = cache.Clone();
  cache.Grow(6);
  EXPECT_EQ(cache.capacity(), 6);
  EXPECT_EQ(cache.MinFreeSlots(), 2);
  EXPECT_EQ(cache.position(0, 3), 3);
  EXPECT_EQ(cache.position(0, 4), -1);
  EXPECT_EQ(cache.Keys(6)[0][3][0].item<float>(), 2.0f);
  // The clone is independent of later writes.
  cache.Write({4}, at::full({1, 4}, 9.0), at::full({1, 4}, 9.0), 4);
  EXPECT_EQ(copy.capacity(), 4);
  EXPECT_TRUE(copy.Full());
  EXPECT_EQ(copy.SortedPositions(0), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(KVCacheTest, BytesAreCounted) {
  KVCache cache = MakeCache(2, 8, 4);
  // K and V: 2 * 2*8*4 floats; valid: 16 bytes; positions: 16 int64.
  EXPECT_EQ(cache.AllocatedBytes(), 2 * 2 * 8 * 4 * 4 + 16 + 16 * 8);
  EXPECT_EQ(cache.ActiveSlots(), 0);
  EXPECT_EQ(cache.FullCacheBytes(10), 2 * 2 * 10 * 4 * 4);
}

KVCache MakeQuantized(int64_t heads, int64_t capacity, int64_t d, int64_t bits,
                      at::ScalarType dtype = at::kFloat) {
  KVCacheOptions o;
  o.num_heads = heads;
  o.head_dim = d;
  o.capacity = capacity;
  o.bits = bits;
  o.dtype = dtype;
  return KVCache(o);
}

// docs/policies.md 3.8: per slot, asymmetric min/max over all heads x d values;
// de-quantized values are within half a step of the originals.
TEST(KVCacheQuantizedTest, RoundTripWithinHalfAStep) {
  at::manual_seed(3);
  for (int64_t bits : {2, 4, 8}) {
    KVCache cache = MakeQuantized(2, 8, 16, bits);
    const at::Tensor k = at::randn({2, 5, 16}), v = at::randn({2, 5, 16}) * 3;
    cache.Fill(k, v, at::arange(5, at::kLong).unsqueeze(0).expand({2, 5}));
    const at::Tensor kd = cache.Keys(5), vd = cache.Values(5);
    for (int64_t s = 0; s < 5; ++s) {
      const at::Tensor ks = k.select(1, s), vs = v.select(1, s);  // [H, d]
      const double kstep =
          (ks.max() - ks.min()).item<double>() / ((1 << bits) - 1);
      const double vstep =
          (vs.max() - vs.min()).item<double>() / ((1 << bits) - 1);
      EXPECT_LE((kd.select(1, s) - ks).abs().max().item<double>(),
                kstep / 2 + 1e-5)
          << bits;
      EXPECT_LE((vd.select(1, s) - vs).abs().max().item<double>(),
                vstep / 2 + 1e-5)
          << bits;
      // The extremes are exact.
      EXPECT_NEAR(kd.select(1, s).min().item<double>(), ks.min().item<double>(),
                  1e-5);
    }
  }
}

TEST(KVCacheQuantizedTest, PackedBytesAreReal) {
  // 8 heads x 128 dims: a 16-bit cache holds 2 * 8 * 128 * 2 bytes per slot
  // for K and V; 4 bits holds a quarter of that plus 16 bytes of min/scale.
  const int64_t l = 64;
  KVCache bf16 = MakeQuantized(8, l, 128, 0, at::kBFloat16);
  KVCache q4 = MakeQuantized(8, l, 128, 4, at::kBFloat16);
  KVCache q2 = MakeQuantized(8, l, 128, 2, at::kBFloat16);
  const int64_t meta =
      bf16.AllocatedBytes() - 2 * 8 * l * 128 * 2;  // positions + mask
  EXPECT_EQ(q4.AllocatedBytes() - meta, 2 * 8 * l * 128 / 2 + 2 * l * 8);
  EXPECT_EQ(q2.AllocatedBytes() - meta, 2 * 8 * l * 128 / 4 + 2 * l * 8);
  const double kv_ratio = static_cast<double>(q4.AllocatedBytes() - meta) /
                          static_cast<double>(bf16.AllocatedBytes() - meta);
  EXPECT_NEAR(kv_ratio, 0.25, 0.01);
  EXPECT_EQ(q4.FullCacheBytes(10), bf16.FullCacheBytes(10));
}

TEST(KVCacheQuantizedTest, PerHeadWriteRequantizesOnlyTheTouchedSlot) {
  at::manual_seed(4);
  KVCache cache = MakeQuantized(2, 4, 8, 8);
  const at::Tensor k = at::randn({2, 4, 8});
  cache.Fill(k, k, at::arange(4, at::kLong).unsqueeze(0).expand({2, 4}));
  const at::Tensor before = cache.Keys(4).clone();
  const at::Tensor nk = at::randn({2, 8});
  cache.Write({1, -1}, nk, nk, 9);  // head 0 overwrites slot 1; head 1 keeps it
  const at::Tensor after = cache.Keys(4);
  for (int64_t s : {0, 2, 3})
    EXPECT_TRUE(at::equal(after.select(1, s), before.select(1, s)));
  EXPECT_LE((after[0][1] - nk[0]).abs().max().item<float>(), 0.05f);
  EXPECT_LE((after[1][1] - before[1][1]).abs().max().item<float>(), 0.05f);
  EXPECT_EQ(cache.position(0, 1), 9);
  EXPECT_EQ(cache.position(1, 1), 1);
}

// EvictLowest's host loop (the CPU's) decides as its tensor form (other
// devices'): ties to the lowest slot, empty slots first, and both fallbacks
// when every slot is protected, for per-head and head-constant scores.
TEST(ScoringTest, EvictLowestLoopMatchesTensors) {
  std::mt19937 rng(5);
  const Protection protections[] = {{0, 0}, {2, 0}, {2, 3}, {1, 40}, {40, 0}};
  int fallbacks = 0, empties = 0;
  for (int trial = 0; trial < 200; ++trial) {
    constexpr int64_t kHeads = 3, kCapacity = 12;
    KVCache cache = MakeCache(kHeads, kCapacity);
    // Per head: ascending positions out of 0..19, some heads not full.
    at::Tensor pos = at::full({kHeads, kCapacity}, -1, at::kLong);
    for (int64_t h = 0; h < kHeads; ++h) {
      std::vector<int64_t> all(20);
      for (int64_t i = 0; i < 20; ++i) all[i] = i;
      std::shuffle(all.begin(), all.end(), rng);
      const int64_t kept = trial % 4 == 0 && h == 1 ? kCapacity - 2 : kCapacity;
      std::sort(all.begin(), all.begin() + kept);
      for (int64_t i = 0; i < kept; ++i) pos[h][i] = all[i];
      empties += kept < kCapacity;
    }
    const at::Tensor kv = at::zeros({kHeads, kCapacity, 4});
    cache.Fill(kv, kv, pos);
    const Protection& p = protections[trial % 5];
    const int64_t rows = trial % 2 == 0 ? kHeads : 1;
    // Small integers: many ties.
    const at::Tensor score =
        at::randint(0, 3, {rows, kCapacity}, at::kLong).to(at::kFloat);
    const std::vector<int64_t> loop = EvictLowest(score, cache, 20, p);
    EXPECT_EQ(loop, EvictLowestTensors(score, cache, 20, p))
        << "trial " << trial;
    fallbacks += p.global_tokens == 40 || p.recent_window == 40;
  }
  EXPECT_GT(fallbacks, 0);
  EXPECT_GT(empties, 0);
}

}  // namespace
}  // namespace coldcompress
