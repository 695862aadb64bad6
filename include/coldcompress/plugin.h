// The interface of ColdCompress policy plugins: a shared library that adds
// cache policies (which slot a new token evicts) and prompt compressors
// (which prompt tokens a cache keeps) to a server started with
// `--policy_plugin path.so`, selectable per request like the built-ins.
//
// A plugin depends on LibTorch and this header only. It defines one
// registration function with COLDCOMPRESS_PLUGIN; the server checks the
// plugin's ABI version (this header's COLDCOMPRESS_PLUGIN_ABI_VERSION when
// it was built) against its own and refuses a mismatch at start-up.
//
// A policy only rates the slots: the server asks for the importance of
// every slot when a new token finds the cache full, and evicts the least
// important one that is neither an attention sink (global_tokens) nor
// among the recent tokens (recent_window), where the policy declares those
// parameters. Sessions are single-threaded, but different sessions' layers
// may run at the same time on different threads: a policy object belongs to
// one layer of one session; anything shared between objects must be safe
// for that.
#ifndef COLDCOMPRESS_PLUGIN_H_
#define COLDCOMPRESS_PLUGIN_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// Raised whenever a type below changes layout or meaning.
#define COLDCOMPRESS_PLUGIN_ABI_VERSION 2

namespace coldcompress::plugin {

// A parameter a policy or compressor reads. "global_tokens" and
// "recent_window" are the standard ones (request fields of those names):
// declaring them turns on the server's protection of sinks and recent
// tokens. Any other name is the policy's own, set per request in
// CachePolicy.params (or a preset's `params`), validated by the server
// against `type` and the inclusive range [min, max] (numbers), and listed by
// ListPolicies.
struct Param {
  std::string name;
  std::string type;  // "int" | "double" | "bool" | "string"
  std::string default_value;
  std::string description;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
};

// The values of a layer's own parameters: the request's or the default,
// already validated. Reading an undeclared name throws std::out_of_range.
class Params {
 public:
  Params() = default;
  explicit Params(std::map<std::string, std::string> values)
      : values_(std::move(values)) {}
  const std::string& String(const std::string& name) const {
    return values_.at(name);
  }
  int64_t Int(const std::string& name) const {
    return std::stoll(String(name));
  }
  double Double(const std::string& name) const {
    return std::stod(String(name));
  }
  bool Bool(const std::string& name) const { return String(name) == "true"; }

 private:
  std::map<std::string, std::string> values_;
};

// One layer of one session, as a factory sees it.
struct Layer {
  int64_t index = 0;      // the model layer
  int64_t capacity = 0;   // L: slots per KV head
  int64_t num_heads = 0;  // KV heads
  int64_t head_dim = 0;
  int64_t global_tokens = 0;  // sinks protected (0 unless declared)
  int64_t recent_window = 0;  // recent tokens protected (0 unless declared)
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  Params params;
};

// The cache when a new token finds every slot filled.
struct Cache {
  int64_t position = 0;  // the new token's position
  at::Tensor positions;  // [H, L] int64: the position each slot holds
  // [H, L, d] the cached keys after RoPE (de-quantized when stored
  // quantized); computed on first call.
  std::function<at::Tensor()> keys;
};

// What a policy or compressor with needs_attention sees of the prompt's
// attention A [H, S, S] (GQA-averaged over each KV head's query heads,
// causal: A[i, j] is how much query i attends to key j). A itself is never
// built: it grows with the square of the prompt. Both tensors are
// accumulated while the prompt's attention runs in chunks.
struct PromptAttention {
  // [H, S] float64: sum_i A[i, j], the attention key j received from the
  // S - j queries that see it (divide by S - j for the mean).
  at::Tensor received;
  // [H, R, S], R = min(16, S): A's last R query rows (SnapKV's observation
  // window), in the model's dtype.
  at::Tensor last_rows;
};

// After the prompt: what the cache kept of it, slots 0..n-1.
struct Prefill {
  int64_t prompt_length = 0;  // S
  at::Tensor kept;            // [H, n] int64 positions (-1: padding)
  at::Tensor kept_keys;       // [H, n, d] after RoPE
  PromptAttention attention;  // when needs_attention (else undefined)
};

// After each decode step's attention.
struct Step {
  int64_t position = 0;
  int32_t token = 0;
  std::vector<int64_t> slots;  // the slot each KV head wrote (-1: none)
  at::Tensor key;              // [H, d] the token's key after RoPE
  at::Tensor probs;  // [H, L] GQA-averaged probabilities, when needs_attention
};

class Policy {
 public:
  virtual ~Policy() = default;
  // The importance of each slot, higher kept: [1, L] for one decision
  // shared by the heads, [H, L] for a head-specific policy; any dtype.
  virtual at::Tensor Importance(const Cache& cache) = 0;
  virtual void OnPrefill(const Prefill& prefill) {}
  virtual void OnStep(const Step& step) {}
  // A copy with the same state (sessions fork their caches).
  virtual std::unique_ptr<Policy> Clone() const = 0;
};

// A prompt longer than the cache, before the cache is filled.
struct Prompt {
  int64_t prompt_length = 0;  // S
  int64_t capacity = 0;       // L: positions to keep per KV head
  at::Tensor keys;            // [H, S, d] after RoPE
  PromptAttention attention;  // when needs_attention (else undefined)
  std::vector<int32_t> tokens;
};

class Compressor {
 public:
  virtual ~Compressor() = default;
  // The importance of each prompt position, higher kept: [1, S] or [H, S]
  // (head-specific). The server keeps the sinks and recent tokens, then the
  // most important positions up to the capacity.
  virtual at::Tensor Importance(const Prompt& prompt) = 0;
};

struct PolicyDefinition {
  std::string name;  // must not be a built-in's or another plugin's
  std::string description;
  bool head_specific = false;    // Importance returns [H, L]
  bool needs_attention = false;  // Prefill and Step carry probabilities
  std::vector<Param> params;
  // The compressor of a request that names only this strategy: a built-in
  // or plugin compressor's name.
  std::string default_compressor = "recent_global";
  std::function<std::unique_ptr<Policy>(const Layer&)> create;
};

struct CompressorDefinition {
  std::string name;
  std::string description;
  bool head_specific = false;
  bool needs_attention = false;
  std::vector<Param> params;
  std::function<std::unique_ptr<Compressor>(const Layer&)> create;
};

// What the registration function is given.
class Registrar {
 public:
  virtual void AddPolicy(PolicyDefinition definition) = 0;
  virtual void AddCompressor(CompressorDefinition definition) = 0;

 protected:
  ~Registrar() = default;
};

}  // namespace coldcompress::plugin

// The plugin's two exported symbols: its ABI version and its registration
// function, `void register_fn(coldcompress::plugin::Registrar&)`.
#define COLDCOMPRESS_PLUGIN(register_fn)                               \
  extern "C" __attribute__((visibility("default"))) int                \
  coldcompress_plugin_abi_version() {                                  \
    return COLDCOMPRESS_PLUGIN_ABI_VERSION;                            \
  }                                                                    \
  extern "C" __attribute__((visibility("default"))) void               \
  coldcompress_register_plugin(::coldcompress::plugin::Registrar* r) { \
    register_fn(*r);                                                   \
  }

#endif  // COLDCOMPRESS_PLUGIN_H_
