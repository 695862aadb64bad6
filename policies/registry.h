// Maps policy and prompt-compressor names to factories. Filled once at start-up
// by RegisterBuiltins() (and, later, by plugins); read-only afterwards, so
// concurrent lookups are safe.
#ifndef COLDCOMPRESS_POLICIES_REGISTRY_H_
#define COLDCOMPRESS_POLICIES_REGISTRY_H_

#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "policies/layer_plan.h"
#include "policies/policy.h"
#include "policies/prompt_compressor.h"

namespace coldcompress {

struct ParamInfo {
  std::string name;
  std::string type;  // "int" | "double" | "bool" | "string"
  std::string default_value;
  std::string description;
  // A plugin's own parameter, set in PolicySpec::params (the others are
  // PolicySpec's fields), with its inclusive range when a number.
  bool own = false;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
};

// INVALID_ARGUMENT (naming params.<name>) unless `value` is of the
// parameter's type and, for numbers, in its range.
absl::Status CheckParamValue(const ParamInfo& param, const std::string& value);

struct PolicyInfo {
  std::string name;
  std::string description;
  bool head_specific = false;
  bool needs_attention = false;
  // The capacity must be the whole sequence (full, hybrid).
  bool requires_full_length = false;
  // Parameters the policy reads; "global_tokens" among them makes the
  // global_tokens <= capacity check apply.
  std::vector<ParamInfo> params;
  // The prompt compressor a request gets when it names only the strategy.
  std::string default_compressor = "full";
  // Extra validation of the request's parameters (optional).
  std::function<absl::Status(const PolicySpec&)> validate;
  std::function<std::unique_ptr<Policy>(const PolicyContext&)> create;
};

struct CompressorInfo {
  std::string name;
  std::string description;
  bool head_specific = false;
  bool needs_attention = false;
  // False for the pass-through compressor: a prompt longer than the cache is
  // then an error.
  bool compresses = true;
  std::vector<ParamInfo> params;  // a plugin's (ListPolicies shows policies')
  std::function<std::unique_ptr<PromptCompressor>(const PolicyContext&)> create;
};

class PolicyRegistry {
 public:
  // Fails with ALREADY_EXISTS on a duplicate name.
  absl::Status RegisterPolicy(PolicyInfo info);
  absl::Status RegisterCompressor(CompressorInfo info);

  // The analysis mode of a strategy X is named "debug_X" (docs/policies.md 6).
  static constexpr char kAnalysisPrefix[] = "debug_";
  static bool IsAnalysis(const std::string& name);
  // "debug_X" -> "X"; other names unchanged.
  static std::string Analyzed(const std::string& name);

  // nullptr when unknown; "debug_X" finds X.
  const PolicyInfo* FindPolicy(const std::string& name) const;
  const CompressorInfo* FindCompressor(const std::string& name) const;

  // INVALID_ARGUMENT naming the known names when `name` is unknown.
  absl::Status CheckPolicy(const std::string& name) const;
  absl::Status CheckCompressor(const std::string& name) const;

  // Every key of spec.params is an own parameter of one of the plan's
  // policies or compressors, and its value fits it (INVALID_ARGUMENT
  // naming params.<key> otherwise).
  absl::Status CheckParams(const PolicySpec& spec, const CachePlan& plan) const;

  // Cross-checks one resolved layer against its policy and compressor.
  absl::Status ValidateLayer(const LayerPlan& layer, const PolicySpec& spec,
                             int64_t max_seq_len, int64_t layer_index) const;

  // INVALID_ARGUMENT when a layer whose compressor cannot compress would get
  // a prefill of `prefill_length` tokens longer than its cache.
  absl::Status CheckPromptFits(const CachePlan& plan,
                               int64_t prefill_length) const;

  std::vector<const PolicyInfo*> Policies() const;  // sorted by name
  std::vector<const CompressorInfo*> Compressors() const;

  std::unique_ptr<Policy> CreatePolicy(const PolicyContext& context) const;
  std::unique_ptr<PromptCompressor> CreateCompressor(
      const PolicyContext& context) const;

 private:
  std::map<std::string, PolicyInfo> policies_;
  std::map<std::string, CompressorInfo> compressors_;
};

// Registers every built-in policy and compressor (builtins.cc).
void RegisterBuiltins(PolicyRegistry& registry);

// A process-wide registry with every built-in policy and compressor (for
// tools, tests and fuzzers; the server builds its own).
const PolicyRegistry& BuiltinRegistry();

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_REGISTRY_H_
