#include "policies/plugins.h"

#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coldcompress/plugin.h"
#include "policies/scoring.h"

namespace coldcompress {
namespace {

bool Standard(const std::string& name) {
  return name == "global_tokens" || name == "recent_window";
}

bool Declares(const std::vector<plugin::Param>& params,
              const std::string& name) {
  return std::any_of(params.begin(), params.end(),
                     [&](const plugin::Param& p) { return p.name == name; });
}

// The layer a plugin's factory sees: its own parameters' values from the
// request, or their defaults.
plugin::Layer PluginLayer(const PolicyContext& c,
                          const std::vector<plugin::Param>& params) {
  plugin::Layer layer;
  layer.index = c.layer_index;
  layer.capacity = c.layer->capacity;
  layer.num_heads = c.num_heads;
  layer.head_dim = c.head_dim;
  if (Declares(params, "global_tokens")) {
    layer.global_tokens = c.spec->global_tokens;
  }
  if (Declares(params, "recent_window")) {
    layer.recent_window = c.layer->recent_window;
  }
  layer.dtype = c.dtype;
  layer.device = c.device;
  std::map<std::string, std::string> values;
  for (const plugin::Param& p : params) {
    if (Standard(p.name)) continue;
    auto it = c.spec->params.find(p.name);
    values[p.name] = it == c.spec->params.end() ? p.default_value : it->second;
  }
  layer.params = plugin::Params(std::move(values));
  return layer;
}

plugin::PromptAttention ForPlugin(const PromptAttention* attention) {
  plugin::PromptAttention out;
  if (attention != nullptr) {
    out.received = attention->received();
    out.last_rows = attention->last_rows();
  }
  return out;
}

// A plugin's importance-rating policy behind the server's Policy: empty
// slots first, then the least important unprotected slot (docs/policies.md
// 1.4).
class PluginPolicy final : public Policy {
 public:
  PluginPolicy(std::unique_ptr<plugin::Policy> rater, bool head_specific,
               bool needs_attention, const Protection& protection)
      : rater_(std::move(rater)),
        head_specific_(head_specific),
        needs_attention_(needs_attention),
        protection_(protection) {}

  bool head_specific() const override { return head_specific_; }
  bool needs_attention() const override { return needs_attention_; }

  void OnPrefill(const PrefillObservation& o) override {
    plugin::Prefill prefill;
    prefill.prompt_length = o.prompt_length;
    prefill.kept = o.kept;
    prefill.kept_keys = o.kept_keys;
    prefill.attention = ForPlugin(o.attention);
    rater_->OnPrefill(prefill);
  }

  std::vector<int64_t> ChooseSlots(const KVCache& cache, int64_t position,
                                   int32_t) override {
    std::vector<int64_t> slots = EmptySlots(cache);
    if (!slots.empty()) return slots;
    plugin::Cache view;
    view.position = position;
    view.positions = cache.positions();
    view.keys = [&cache] { return cache.Keys(cache.capacity()); };
    const at::Tensor importance = rater_->Importance(view);
    const int64_t rows = head_specific_ ? cache.num_heads() : 1;
    TORCH_CHECK(importance.dim() == 2 && importance.size(0) == rows &&
                    importance.size(1) == cache.capacity(),
                "plugin policy: Importance returned ", importance.sizes(),
                ", not [", rows, ", ", cache.capacity(), "]");
    return EvictLowest(importance.to(at::kCPU, at::kDouble).contiguous(), cache,
                       position, protection_);
  }

  void UpdateState(const DecodeObservation& o) override {
    plugin::Step step;
    step.position = o.position;
    step.token = o.token;
    step.slots = *o.slots;
    step.key = o.key;
    step.probs = o.probs;
    rater_->OnStep(step);
  }

  std::unique_ptr<Policy> Clone() const override {
    return std::make_unique<PluginPolicy>(rater_->Clone(), head_specific_,
                                          needs_attention_, protection_);
  }

 private:
  std::unique_ptr<plugin::Policy> rater_;
  bool head_specific_;
  bool needs_attention_;
  Protection protection_;
};

// A plugin's prompt rating behind the server's PromptCompressor: sinks and
// recent tokens first, then the most important positions.
class PluginCompressor final : public PromptCompressor {
 public:
  PluginCompressor(std::unique_ptr<plugin::Compressor> rater,
                   bool head_specific, bool needs_attention,
                   const plugin::Layer& layer)
      : rater_(std::move(rater)),
        head_specific_(head_specific),
        needs_attention_(needs_attention),
        global_tokens_(layer.global_tokens),
        recent_window_(layer.recent_window) {}

  bool head_specific() const override { return head_specific_; }
  bool needs_attention() const override { return needs_attention_; }

  CompressedPrompt Compress(const PromptObservation& o) override {
    plugin::Prompt prompt;
    prompt.prompt_length = o.prompt_length;
    prompt.capacity = o.capacity;
    prompt.keys = o.keys;
    prompt.attention = ForPlugin(o.attention);
    if (o.tokens != nullptr) prompt.tokens = *o.tokens;
    const at::Tensor importance = rater_->Importance(prompt);
    const int64_t rows = head_specific_ ? o.keys.size(0) : 1;
    TORCH_CHECK(importance.dim() == 2 && importance.size(0) == rows &&
                    importance.size(1) == o.prompt_length,
                "plugin compressor: Importance returned ", importance.sizes(),
                ", not [", rows, ", ", o.prompt_length, "]");
    CompressedPrompt out;
    out.kept = KeepTop(ProtectPrompt(importance.to(at::kCPU, at::kDouble),
                                     global_tokens_, recent_window_),
                       o.capacity)
                   .to(o.keys.device());
    return out;
  }

 private:
  std::unique_ptr<plugin::Compressor> rater_;
  bool head_specific_;
  bool needs_attention_;
  int64_t global_tokens_, recent_window_;
};

absl::Status CheckDefinition(const std::string& kind, const std::string& name,
                             bool has_factory,
                             const std::vector<plugin::Param>& params) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a ", kind, " has no name"));
  }
  if (!has_factory) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, " \"", name, "\" has no create function"));
  }
  for (const plugin::Param& p : params) {
    if (Standard(p.name)) continue;
    ParamInfo info;
    info.name = p.name;
    info.type = p.type;
    info.min = p.min;
    info.max = p.max;
    if (absl::Status st = CheckParamValue(info, p.default_value); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, " \"", name, "\"'s default of ", st.message()));
    }
  }
  return absl::OkStatus();
}

std::vector<ParamInfo> ParamInfos(const std::vector<plugin::Param>& params) {
  std::vector<ParamInfo> out;
  for (const plugin::Param& p : params) {
    ParamInfo info{p.name, p.type, p.default_value, p.description};
    info.own = !Standard(p.name);
    info.min = p.min;
    info.max = p.max;
    out.push_back(std::move(info));
  }
  return out;
}

// Checks a definition and fills in what PolicyInfo and CompressorInfo share.
template <typename Definition, typename Info>
absl::Status Describe(const std::string& kind, const Definition& d,
                      Info& info) {
  if (absl::Status st =
          CheckDefinition(kind, d.name, static_cast<bool>(d.create), d.params);
      !st.ok()) {
    return st;
  }
  info.name = d.name;
  info.description = d.description;
  info.head_specific = d.head_specific;
  info.needs_attention = d.needs_attention;
  info.params = ParamInfos(d.params);
  return absl::OkStatus();
}

// Collects a plugin's definitions, converted and checked; registered only
// when all of them are valid.
class Collector final : public plugin::Registrar {
 public:
  void AddPolicy(plugin::PolicyDefinition d) override {
    if (!status_.ok()) return;
    PolicyInfo info;
    status_ = Describe("policy", d, info);
    if (!status_.ok()) return;
    info.default_compressor = d.default_compressor;
    info.create = [d](const PolicyContext& c) -> std::unique_ptr<Policy> {
      const plugin::Layer layer = PluginLayer(c, d.params);
      return std::make_unique<PluginPolicy>(
          d.create(layer), d.head_specific, d.needs_attention,
          Protection{layer.global_tokens, layer.recent_window});
    };
    policies_.push_back(std::move(info));
  }

  void AddCompressor(plugin::CompressorDefinition d) override {
    if (!status_.ok()) return;
    CompressorInfo info;
    status_ = Describe("compressor", d, info);
    if (!status_.ok()) return;
    info.create =
        [d](const PolicyContext& c) -> std::unique_ptr<PromptCompressor> {
      const plugin::Layer layer = PluginLayer(c, d.params);
      return std::make_unique<PluginCompressor>(
          d.create(layer), d.head_specific, d.needs_attention, layer);
    };
    compressors_.push_back(std::move(info));
  }

  // Registers everything collected, or nothing.
  absl::Status Commit(PolicyRegistry& registry) {
    if (!status_.ok()) return status_;
    // A name defined twice by the plugin itself would otherwise register
    // its first definition before the second one failed.
    std::set<std::string> policy_names, compressor_names;
    for (const PolicyInfo& p : policies_) {
      if (registry.FindPolicy(p.name) != nullptr ||
          PolicyRegistry::IsAnalysis(p.name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "policy \"", p.name, "\" clashes with a registered policy"));
      }
      if (!policy_names.insert(p.name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy \"", p.name, "\" is defined twice"));
      }
    }
    for (const CompressorInfo& c : compressors_) {
      if (registry.FindCompressor(c.name) != nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("compressor \"", c.name,
                         "\" clashes with a registered compressor"));
      }
      if (!compressor_names.insert(c.name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("compressor \"", c.name, "\" is defined twice"));
      }
    }
    for (const PolicyInfo& p : policies_) {
      const bool known =
          registry.FindCompressor(p.default_compressor) != nullptr ||
          std::any_of(compressors_.begin(), compressors_.end(),
                      [&](const CompressorInfo& c) {
                        return c.name == p.default_compressor;
                      });
      if (!known) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy \"", p.name, "\"'s default compressor \"",
                         p.default_compressor, "\" is not registered"));
      }
    }
    for (CompressorInfo& c : compressors_) {
      if (absl::Status st = registry.RegisterCompressor(std::move(c));
          !st.ok()) {
        return st;
      }
    }
    for (PolicyInfo& p : policies_) {
      if (absl::Status st = registry.RegisterPolicy(std::move(p)); !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status status_;
  std::vector<PolicyInfo> policies_;
  std::vector<CompressorInfo> compressors_;
};

}  // namespace

absl::Status LoadPolicyPlugin(const std::string& path,
                              PolicyRegistry& registry) {
  const auto fail = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy_plugin ", path, ": ", why));
  };
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return fail(dlerror());
  using AbiFn = int (*)();
  using RegisterFn = void (*)(plugin::Registrar*);
  const auto abi =
      reinterpret_cast<AbiFn>(dlsym(handle, "coldcompress_plugin_abi_version"));
  const auto register_fn = reinterpret_cast<RegisterFn>(
      dlsym(handle, "coldcompress_register_plugin"));
  if (abi == nullptr || register_fn == nullptr) {
    dlclose(handle);
    return fail(
        absl::StrCat("missing symbol ",
                     abi == nullptr ? "coldcompress_plugin_abi_version"
                                    : "coldcompress_register_plugin",
                     " (define the plugin with COLDCOMPRESS_PLUGIN from "
                     "coldcompress/plugin.h)"));
  }
  if (const int version = abi(); version != COLDCOMPRESS_PLUGIN_ABI_VERSION) {
    dlclose(handle);
    return fail(absl::StrCat("plugin ABI version ", version,
                             ", but this server's is ",
                             COLDCOMPRESS_PLUGIN_ABI_VERSION,
                             " (rebuild it against this server's headers)"));
  }
  Collector collector;
  try {
    register_fn(&collector);
  } catch (const std::exception& e) {
    return fail(absl::StrCat("its registration threw: ", e.what()));
  }
  if (absl::Status st = collector.Commit(registry); !st.ok()) {
    return fail(std::string(st.message()));
  }
  // The registered factories' code lives in the library: it stays open.
  return absl::OkStatus();
}

}  // namespace coldcompress
