// Deterministic test strings for tokenizer parity: prose, code, numbers of
// every length, whitespace runs, newlines, CJK, emoji, accented and combining
// text, special-token text, contractions, and mixtures.
#ifndef COLDCOMPRESS_TESTS_SERVER_TOKENIZER_TEST_STRINGS_H_
#define COLDCOMPRESS_TESTS_SERVER_TOKENIZER_TEST_STRINGS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace coldcompress::testing {

// `count` strings, cycling through the categories; the same seed gives the
// same strings. `specials` are token texts to embed (e.g. "<|eot_id|>").
std::vector<std::string> TokenizerTestStrings(
    uint64_t seed, size_t count, const std::vector<std::string>& specials);

}  // namespace coldcompress::testing

#endif  // COLDCOMPRESS_TESTS_SERVER_TOKENIZER_TEST_STRINGS_H_
