#include "policies/kv_cache.h"

#include <gtest/gtest.h>

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
  EXPECT_TRUE(at::equal(cache.keys()[0].narrow(0, 0, 3), k[0]));
  EXPECT_TRUE(at::equal(cache.values()[1][1], k[1][1] + 100));
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
  EXPECT_EQ(cache.keys()[0][0][0].item<float>(), 3.0f);
  EXPECT_EQ(cache.keys()[1][0][0].item<float>(), 0.0f);
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
  EXPECT_EQ(cache.keys()[0][3][0].item<float>(), 2.0f);
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
  EXPECT_EQ(cache.FullCacheBytes(10), 2 * 2 * 10 * 4 * 4);
}

}  // namespace
}  // namespace coldcompress
