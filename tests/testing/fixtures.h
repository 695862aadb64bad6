// Paths of the checkpoints that the `fixtures` CTest step writes with
// cc-make-checkpoint before the tests run.
#ifndef COLDCOMPRESS_TESTS_TESTING_FIXTURES_H_
#define COLDCOMPRESS_TESTS_TESTING_FIXTURES_H_

#include <string>

namespace coldcompress {
class PolicyRegistry;
}

namespace coldcompress::testing {

// The built-in policies plus the tutorial plugin the build made
// (examples/plugins/keep_it_odd, $COLDCOMPRESS_KEEP_IT_ODD_PLUGIN), loaded
// once; aborts the test binary when the variable is unset or loading fails.
const PolicyRegistry& RegistryWithExamplePlugins();

// $COLDCOMPRESS_FIXTURES/<name>; aborts the test binary when unset.
std::string FixtureDir(const std::string& name);

// The project's source directory (for tests/reference/ and configs/).
std::string SourceDir();

// A latency limit for this build: `seconds` times $COLDCOMPRESS_TIME_SCALE
// (default 1). The limits are the acceptance figures of the plain build;
// scripts/sanitize.sh raises the scale, since a sanitizer slows every step
// several times and what it checks there is correctness, not speed.
double TimeLimit(double seconds);

// The sum of the samples whose line in a Prometheus text exposition starts
// with `prefix` (a metric name, optionally with the start of its labels).
double MetricSum(const std::string& text, const std::string& prefix);

}  // namespace coldcompress::testing

#endif  // COLDCOMPRESS_TESTS_TESTING_FIXTURES_H_
