// Registration entries of the built-in policies and compressors, one pair per
// source file; RegisterBuiltins() (builtins.cc) is the one place they are
// registered.
#ifndef COLDCOMPRESS_POLICIES_BUILTINS_H_
#define COLDCOMPRESS_POLICIES_BUILTINS_H_

#include "policies/registry.h"

namespace coldcompress {

PolicyInfo FullPolicyInfo();  // full.cc
CompressorInfo FullCompressorInfo();
PolicyInfo RecentGlobalPolicyInfo();  // recent_global.cc
CompressorInfo RecentGlobalCompressorInfo();
PolicyInfo RandomPolicyInfo();  // random.cc
CompressorInfo RandomCompressorInfo();
PolicyInfo L2PolicyInfo();  // l2.cc
CompressorInfo L2CompressorInfo();
PolicyInfo HeavyHitterPolicyInfo();  // heavy_hitter.cc
CompressorInfo SnapKVCompressorInfo();
PolicyInfo HybridPolicyInfo();  // hybrid.cc
// min_recovery_frac and every hybrid_strategies entry, checked in any
// request (whatever its strategies): INVALID_ARGUMENT naming the field.
absl::Status CheckHybridFields(const PolicySpec& spec);  // hybrid.cc

// Parameter descriptions shared by several policies.
ParamInfo GlobalTokensParam();
ParamInfo RecentWindowParam();

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_BUILTINS_H_
