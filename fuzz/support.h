// What the fuzz targets call in the policy layer and the sampler, behind a
// header without LibTorch: the targets are compiled with clang, which cannot
// parse this Debian LibTorch's headers in C++20, so this part is built by the
// main (g++) build and linked in (uninstrumented; the request conversion and
// preset parsing around it are instrumented).
#ifndef COLDCOMPRESS_FUZZ_SUPPORT_H_
#define COLDCOMPRESS_FUZZ_SUPPORT_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "policies/policy_spec.h"

namespace coldcompress::fuzz {

// Resolves `spec` over `layers` layers for a sequence of `smax` tokens whose
// prompt has `prompt` tokens, with the built-in registry, as the engine does
// (plan, prefill length, prompt fits). A plan that resolves must keep its
// invariants (one layer each, 1 <= capacity <= smax, known strategies, the
// recent window inside the cache, 1 <= prefill <= prompt): a violation
// aborts, which the fuzzer reports as a crash.
absl::Status ResolvePlan(const PolicySpec& spec, int64_t layers, int64_t prompt,
                         int64_t smax);

// The server's sampling checks.
absl::Status CheckSampling(std::optional<float> temperature,
                           std::optional<int32_t> top_k,
                           std::optional<float> top_p);

}  // namespace coldcompress::fuzz

#endif  // COLDCOMPRESS_FUZZ_SUPPORT_H_
