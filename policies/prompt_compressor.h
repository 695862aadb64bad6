// The prefill counterpart of Policy: chooses which prompt tokens a layer keeps
// when the prompt is longer than the cache (docs/policies.md 4).
#ifndef COLDCOMPRESS_POLICIES_PROMPT_COMPRESSOR_H_
#define COLDCOMPRESS_POLICIES_PROMPT_COMPRESSOR_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>

#include "policies/policy.h"

namespace coldcompress {

struct CompressedPrompt {
  // [H, L] kept prompt positions per head, ascending ([1, L] for
  // head-constant compressors).
  at::Tensor kept;
  // [H, L] initial per-slot history for the policy, or undefined.
  at::Tensor history;
};

class PromptCompressor {
 public:
  virtual ~PromptCompressor() = default;
  virtual bool head_specific() const = 0;
  virtual bool needs_attention() const = 0;
  // REQUIRES: observation.prompt_length > observation.capacity.
  // Keeps no state between calls (clones of a layer share the compressor);
  // randomness comes from a generator seeded inside the call.
  virtual CompressedPrompt Compress(const PromptObservation& observation) = 0;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_PROMPT_COMPRESSOR_H_
