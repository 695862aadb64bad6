#include "policies/policy.h"

#include <algorithm>

namespace coldcompress {

std::vector<int64_t> EmptySlots(const KVCache& cache) {
  std::vector<int64_t> slots(cache.num_heads());
  for (int64_t h = 0; h < cache.num_heads(); ++h) {
    if (cache.occupancy(h) >= cache.capacity()) return {};
    slots[h] = cache.occupancy(h);
  }
  return slots;
}

bool TokenClasses::IsSpecial(int32_t id) const {
  for (const auto& seq : special_sequences) {
    if (seq.size() == 1 && seq[0] == id) return true;
  }
  return false;
}

std::vector<bool> TokenClasses::SpecialMask(
    const std::vector<int32_t>& tokens) const {
  std::vector<bool> mask(tokens.size(), false);
  for (const auto& seq : special_sequences) {
    if (seq.empty() || seq.size() > tokens.size()) continue;
    for (size_t i = 0; i + seq.size() <= tokens.size(); ++i) {
      if (std::equal(seq.begin(), seq.end(), tokens.begin() + i)) {
        std::fill(mask.begin() + i, mask.begin() + i + seq.size(), true);
      }
    }
  }
  return mask;
}

}  // namespace coldcompress
