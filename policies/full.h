// Registration entries of the `full` strategy and compressor.
#ifndef COLDCOMPRESS_POLICIES_FULL_H_
#define COLDCOMPRESS_POLICIES_FULL_H_

#include "policies/registry.h"

namespace coldcompress {

PolicyInfo FullPolicyInfo();
CompressorInfo FullCompressorInfo();

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_FULL_H_
