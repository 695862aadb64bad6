// Plugins that must be refused at start-up, one library per case
// (BAD_PLUGIN selects which): a foreign ABI version, a missing registration
// function, a policy named like a built-in, a parameter whose default is out
// of its own range, a name defined twice.
#include <coldcompress/plugin.h>

#include <memory>
#include <utility>

namespace {

using namespace coldcompress::plugin;  // NOLINT: a test file's brevity

class Oldest final : public Policy {
 public:
  at::Tensor Importance(const Cache& cache) override {
    return cache.positions.narrow(0, 0, 1).to(at::kFloat);
  }
  std::unique_ptr<Policy> Clone() const override {
    return std::make_unique<Oldest>();
  }
};

[[maybe_unused]] PolicyDefinition Definition(const char* name) {
  PolicyDefinition d;
  d.name = name;
  d.create = [](const Layer&) -> std::unique_ptr<Policy> {
    return std::make_unique<Oldest>();
  };
  return d;
}

}  // namespace

#if BAD_PLUGIN == 1  // an ABI version from the future
extern "C" __attribute__((visibility("default"))) int
coldcompress_plugin_abi_version() {
  return COLDCOMPRESS_PLUGIN_ABI_VERSION + 1;
}
extern "C" __attribute__((visibility("default"))) void
coldcompress_register_plugin(Registrar* r) {
  r->AddPolicy(Definition("from_the_future"));
}
#elif BAD_PLUGIN == 2  // no registration function
extern "C" __attribute__((visibility("default"))) int
coldcompress_plugin_abi_version() {
  return COLDCOMPRESS_PLUGIN_ABI_VERSION;
}
#elif BAD_PLUGIN == 3  // a built-in's name
namespace {
void Register(Registrar& r) { r.AddPolicy(Definition("recent_global")); }
}  // namespace
COLDCOMPRESS_PLUGIN(Register)
#elif BAD_PLUGIN == 4  // a default out of its declared range
namespace {
void Register(Registrar& r) {
  PolicyDefinition d = Definition("bad_default");
  d.params = {{"every", "int", "0", "must be >= 1", 1, 10}};
  r.AddPolicy(std::move(d));
}
}  // namespace
COLDCOMPRESS_PLUGIN(Register)
#elif BAD_PLUGIN == 5  // one name defined twice
namespace {
void Register(Registrar& r) {
  r.AddPolicy(Definition("twice"));
  r.AddPolicy(Definition("twice"));
}
}  // namespace
COLDCOMPRESS_PLUGIN(Register)
#endif
