// An engine on a fixture checkpoint, without gRPC, for the engine's tests.
#ifndef COLDCOMPRESS_TESTS_TESTING_FIXTURE_ENGINE_H_
#define COLDCOMPRESS_TESTS_TESTING_FIXTURE_ENGINE_H_

#include <memory>
#include <string>

#include "server/engine/engine.h"

namespace coldcompress::testing {

// The fixture `name` (FixtureDir) in float32 on the CPU with every built-in
// policy; aborts the test binary when the fixture does not load.
std::unique_ptr<Engine> FixtureEngine(const std::string& name,
                                      const EngineOptions& options);

}  // namespace coldcompress::testing

#endif  // COLDCOMPRESS_TESTS_TESTING_FIXTURE_ENGINE_H_
