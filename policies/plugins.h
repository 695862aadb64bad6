// Policy plugins: shared libraries built against include/coldcompress/
// plugin.h, loaded at start-up (`--policy_plugin`), their policies and
// compressors registered next to the built-ins.
#ifndef COLDCOMPRESS_POLICIES_PLUGINS_H_
#define COLDCOMPRESS_POLICIES_PLUGINS_H_

#include <string>

#include "absl/status/status.h"
#include "policies/registry.h"

namespace coldcompress {

// Opens the plugin at `path` and registers what it defines. Errors
// (INVALID_ARGUMENT, naming the file and the problem): the file cannot be
// opened, an exported symbol is missing, its ABI version is not this
// server's, a definition is malformed (no name, no factory, a parameter of
// an unknown type or default out of its range), or a name clashes with a
// registered one. Nothing is registered when it fails. The library stays
// loaded for the life of the process.
absl::Status LoadPolicyPlugin(const std::string& path,
                              PolicyRegistry& registry);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_PLUGINS_H_
