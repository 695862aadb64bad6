#include "policies/policy.h"

namespace coldcompress {

std::vector<int64_t> EmptySlots(const KVCache& cache) {
  std::vector<int64_t> slots(cache.num_heads());
  for (int64_t h = 0; h < cache.num_heads(); ++h) {
    if (cache.occupancy(h) >= cache.capacity()) return {};
    slots[h] = cache.occupancy(h);
  }
  return slots;
}

}  // namespace coldcompress
