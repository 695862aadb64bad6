// keep_it_odd: the reference's tutorial policy as a ColdCompress plugin. It
// keeps odd positions, besides the first `global_tokens` (attention sinks)
// and the last `recent_window` tokens, which the server protects because
// the policy declares those two parameters. A prompt longer than the cache
// goes through its compressor, which keeps the sinks and recent tokens,
// then the most recent odd positions, then even ones.
//
// docs/extending.md ("Extending ColdCompress") shows this file's [snippet NAME]
// regions; tests/docs/guide_test.py checks that they are the same.
// [snippet policy]
#include <coldcompress/plugin.h>

#include <memory>
#include <utility>

namespace {

using coldcompress::plugin::Cache;
using coldcompress::plugin::Compressor;
using coldcompress::plugin::CompressorDefinition;
using coldcompress::plugin::Layer;
using coldcompress::plugin::Param;
using coldcompress::plugin::Policy;
using coldcompress::plugin::PolicyDefinition;
using coldcompress::plugin::Prompt;
using coldcompress::plugin::Registrar;

// When a new token finds the cache full: odd positions are important (1),
// even ones are not (0). The server evicts the lowest-numbered slot of
// least importance that is neither a sink nor recent.
class KeepItOdd final : public Policy {
 public:
  at::Tensor Importance(const Cache& cache) override {
    // One decision for every head: [1, L].
    return cache.positions.narrow(0, 0, 1).remainder(2).to(at::kDouble);
  }

  std::unique_ptr<Policy> Clone() const override {
    return std::make_unique<KeepItOdd>(*this);
  }
};
// [end snippet]

// [snippet compressor]
// A prompt of S > L tokens: odd positions rank above even ones, and within
// each the later above the earlier. The server keeps the sinks and the
// recent window first.
class KeepItOddPrompt final : public Compressor {
 public:
  at::Tensor Importance(const Prompt& prompt) override {
    const at::Tensor j = at::arange(prompt.prompt_length, at::kDouble);
    const at::Tensor odd_first = j.remainder(2) + 1;
    return (odd_first + j / static_cast<double>(prompt.prompt_length))
        .unsqueeze(0);  // [1, S]
  }
};
// [end snippet]

// [snippet register]
std::vector<Param> Params() {
  return {{"global_tokens", "int", "4",
           "attention sinks: positions < g are never evicted"},
          {"recent_window", "double", "10",
           "recent tokens never evicted: < 1 a fraction of the layer's "
           "cache, else a token count"}};
}

void Register(Registrar& registrar) {
  CompressorDefinition compressor;
  compressor.name = "keep_it_odd";
  compressor.description =
      "Keeps sinks and recent tokens, then the most recent odd positions, "
      "then evens.";
  compressor.params = Params();
  compressor.create = [](const Layer&) -> std::unique_ptr<Compressor> {
    return std::make_unique<KeepItOddPrompt>();
  };
  registrar.AddCompressor(std::move(compressor));

  PolicyDefinition policy;
  policy.name = "keep_it_odd";
  policy.description =
      "Tutorial policy: keeps odd positions, evicts even ones first.";
  policy.params = Params();
  policy.default_compressor = "keep_it_odd";
  policy.create = [](const Layer&) -> std::unique_ptr<Policy> {
    return std::make_unique<KeepItOdd>();
  };
  registrar.AddPolicy(std::move(policy));
}

}  // namespace

COLDCOMPRESS_PLUGIN(Register)
// [end snippet]
