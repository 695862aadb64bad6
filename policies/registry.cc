#include "policies/registry.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coldcompress {
namespace {

template <typename Map>
std::string KnownNames(const Map& map) {
  std::vector<std::string> names;
  for (const auto& [name, info] : map) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

}  // namespace

absl::Status PolicyRegistry::RegisterPolicy(PolicyInfo info) {
  if (info.name.empty() || !info.create) {
    return absl::InvalidArgumentError("a policy needs a name and a factory");
  }
  const std::string name = info.name;
  if (!policies_.emplace(name, std::move(info)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("policy \"", name, "\" is already registered"));
  }
  return absl::OkStatus();
}

absl::Status PolicyRegistry::RegisterCompressor(CompressorInfo info) {
  if (info.name.empty() || !info.create) {
    return absl::InvalidArgumentError(
        "a prompt compressor needs a name and a factory");
  }
  const std::string name = info.name;
  if (!compressors_.emplace(name, std::move(info)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("prompt compressor \"", name, "\" is already registered"));
  }
  return absl::OkStatus();
}

bool PolicyRegistry::IsAnalysis(const std::string& name) {
  return name.rfind(kAnalysisPrefix, 0) == 0;
}

std::string PolicyRegistry::Analyzed(const std::string& name) {
  return IsAnalysis(name) ? name.substr(std::string(kAnalysisPrefix).size())
                          : name;
}

const PolicyInfo* PolicyRegistry::FindPolicy(const std::string& name) const {
  auto it = policies_.find(Analyzed(name));
  return it == policies_.end() ? nullptr : &it->second;
}

const CompressorInfo* PolicyRegistry::FindCompressor(
    const std::string& name) const {
  auto it = compressors_.find(name);
  return it == compressors_.end() ? nullptr : &it->second;
}

absl::Status PolicyRegistry::CheckPolicy(const std::string& name) const {
  if (FindPolicy(name) != nullptr) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("strategy: unknown cache strategy \"", name,
                   "\"; known strategies: ", KnownNames(policies_),
                   " (and debug_<strategy> for the analysis mode of each)"));
}

absl::Status PolicyRegistry::CheckCompressor(const std::string& name) const {
  if (FindCompressor(name) != nullptr) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("prompt_compression: unknown prompt compressor \"", name,
                   "\"; known compressors: ", KnownNames(compressors_)));
}

absl::Status PolicyRegistry::ValidateLayer(const LayerPlan& layer,
                                           const PolicySpec& spec,
                                           int64_t max_seq_len,
                                           int64_t layer_index) const {
  const PolicyInfo* policy = FindPolicy(layer.strategy);
  const CompressorInfo* compressor = FindCompressor(layer.prompt_compression);
  if (policy == nullptr) return CheckPolicy(layer.strategy);
  if (compressor == nullptr) return CheckCompressor(layer.prompt_compression);
  if (policy->validate) {
    if (absl::Status st = policy->validate(spec); !st.ok()) return st;
  }
  if (policy->requires_full_length && layer.capacity != max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_cache_length: strategy \"", layer.strategy,
        "\" needs the whole sequence (1.0), but layer ", layer_index,
        " resolves to ", layer.capacity, " of ", max_seq_len, " tokens"));
  }
  if (compressor->head_specific && !policy->head_specific) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_compression: \"", layer.prompt_compression,
        "\" is head-specific and cannot feed the head-constant cache \"",
        layer.strategy, "\" (layer ", layer_index, ")"));
  }
  const bool uses_sinks =
      std::any_of(policy->params.begin(), policy->params.end(),
                  [](const ParamInfo& p) { return p.name == "global_tokens"; });
  if (uses_sinks && spec.global_tokens > layer.capacity) {
    return absl::InvalidArgumentError(
        absl::StrCat("global_tokens (", spec.global_tokens,
                     ") is larger than the smallest layer cache (",
                     layer.capacity, " tokens, layer ", layer_index, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckParamValue(const ParamInfo& param, const std::string& value) {
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("params.", param.name, ": \"", value, "\" ", why));
  };
  if (param.type == "string") return absl::OkStatus();
  if (param.type == "bool") {
    if (value == "true" || value == "false") return absl::OkStatus();
    return bad("is not a bool (true or false)");
  }
  double number = 0;
  if (param.type == "int") {
    int64_t n = 0;
    if (!absl::SimpleAtoi(value, &n)) return bad("is not an int");
    number = static_cast<double>(n);
  } else if (param.type == "double") {
    if (!absl::SimpleAtod(value, &number) || !std::isfinite(number)) {
      return bad("is not a finite double");
    }
  } else {
    return bad(
        absl::StrCat("has a parameter of unknown type \"", param.type, "\""));
  }
  if (number < param.min || number > param.max) {
    return bad(
        absl::StrCat("is out of range [", param.min, ", ", param.max, "]"));
  }
  return absl::OkStatus();
}

absl::Status PolicyRegistry::CheckParams(const PolicySpec& spec,
                                         const CachePlan& plan) const {
  for (const auto& [key, value] : spec.params) {
    const ParamInfo* declared = nullptr;
    std::vector<std::string> owners;
    const auto look = [&](const std::vector<ParamInfo>& params,
                          const std::string& owner) {
      owners.push_back(owner);
      for (const ParamInfo& p : params) {
        if (p.own && p.name == key) declared = &p;
      }
    };
    for (const LayerPlan& layer : plan.layers) {
      if (const PolicyInfo* p = FindPolicy(layer.strategy)) {
        look(p->params, layer.strategy);
      }
      if (const CompressorInfo* c = FindCompressor(layer.prompt_compression)) {
        look(c->params, layer.prompt_compression);
      }
    }
    if (declared == nullptr) {
      std::sort(owners.begin(), owners.end());
      owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
      return absl::InvalidArgumentError(absl::StrCat(
          "params.", key, ": not a parameter of ", absl::StrJoin(owners, ", "),
          " (ListPolicies lists each one's parameters)"));
    }
    if (absl::Status st = CheckParamValue(*declared, value); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status PolicyRegistry::CheckPromptFits(const CachePlan& plan,
                                             int64_t prefill_length) const {
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const LayerPlan& layer = plan.layers[i];
    const CompressorInfo* compressor = FindCompressor(layer.prompt_compression);
    if (compressor != nullptr && !compressor->compresses &&
        prefill_length > layer.capacity) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt_compression: \"", layer.prompt_compression,
          "\" keeps the whole prompt, but the prompt's ", prefill_length,
          " tokens exceed layer ", i, "'s cache of ", layer.capacity,
          " tokens; choose a compressing prompt_compression or set "
          "feed_long_prompts"));
    }
  }
  return absl::OkStatus();
}

std::vector<const PolicyInfo*> PolicyRegistry::Policies() const {
  std::vector<const PolicyInfo*> out;
  for (const auto& [name, info] : policies_) out.push_back(&info);
  return out;
}

std::vector<const CompressorInfo*> PolicyRegistry::Compressors() const {
  std::vector<const CompressorInfo*> out;
  for (const auto& [name, info] : compressors_) out.push_back(&info);
  return out;
}

std::unique_ptr<Policy> PolicyRegistry::CreatePolicy(
    const PolicyContext& context) const {
  const PolicyInfo* info = FindPolicy(context.layer->strategy);
  return info == nullptr ? nullptr : info->create(context);
}

std::unique_ptr<PromptCompressor> PolicyRegistry::CreateCompressor(
    const PolicyContext& context) const {
  const CompressorInfo* info =
      FindCompressor(context.layer->prompt_compression);
  return info == nullptr ? nullptr : info->create(context);
}

}  // namespace coldcompress
