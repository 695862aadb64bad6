// Paths of the checkpoints that the `fixtures` CTest step writes with
// cc-make-checkpoint before the tests run.
#ifndef COLDCOMPRESS_TESTS_TESTING_FIXTURES_H_
#define COLDCOMPRESS_TESTS_TESTING_FIXTURES_H_

#include <string>

namespace coldcompress::testing {

// $COLDCOMPRESS_FIXTURES/<name>; aborts the test binary when unset.
std::string FixtureDir(const std::string& name);

// The project's source directory (for tests/reference/ and configs/).
std::string SourceDir();

}  // namespace coldcompress::testing

#endif  // COLDCOMPRESS_TESTS_TESTING_FIXTURES_H_
