// keep_multiples: a policy plugin with a parameter of its own. When a new
// token finds the cache full, positions that are multiples of `every` are
// important (1) and the others are not (0): the server evicts the first
// unimportant slot that is neither an attention sink nor a recent token.
// Built with CMakeLists.txt beside it, loaded with `coldcompress-server
// --policy_plugin libcoldcompress_keep_multiples.so`, then chosen per
// request: strategy "keep_multiples", params {"every": "3"}.
// docs/extending.md ("Extending ColdCompress") shows the [snippet params]
// region.
#include <coldcompress/plugin.h>

#include <memory>
#include <utility>

namespace {

using coldcompress::plugin::Cache;
using coldcompress::plugin::Layer;
using coldcompress::plugin::Policy;
using coldcompress::plugin::PolicyDefinition;
using coldcompress::plugin::Registrar;

class KeepMultiples final : public Policy {
 public:
  explicit KeepMultiples(int64_t every) : every_(every) {}

  // One decision for every head ([1, L]): the heads hold the same positions.
  at::Tensor Importance(const Cache& cache) override {
    const at::Tensor positions = cache.positions.narrow(0, 0, 1);
    return positions.remainder(every_).eq(0).to(at::kFloat);
  }

  std::unique_ptr<Policy> Clone() const override {
    return std::make_unique<KeepMultiples>(*this);
  }

 private:
  int64_t every_;
};

// [snippet params]
void Register(Registrar& registrar) {
  PolicyDefinition policy;
  policy.name = "keep_multiples";
  policy.description =
      "Example plugin: keeps positions that are multiples of `every`, evicts "
      "the others first.";
  policy.params = {
      {"global_tokens", "int", "4", "attention sinks: never evicted"},
      {"recent_window", "double", "10",
       "recent tokens never evicted: < 1 a fraction of the cache, else a "
       "count"},
      {"every", "int", "2", "positions divisible by it are kept", 1, 4096},
  };
  policy.default_compressor = "recent_global";
  policy.create = [](const Layer& layer) -> std::unique_ptr<Policy> {
    return std::make_unique<KeepMultiples>(layer.params.Int("every"));
  };
  registrar.AddPolicy(std::move(policy));
}
// [end snippet]

}  // namespace

COLDCOMPRESS_PLUGIN(Register)
