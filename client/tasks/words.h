// Word lists of the generated (RULER-style) tasks.
#ifndef COLDCOMPRESS_CLIENT_TASKS_WORDS_H_
#define COLDCOMPRESS_CLIENT_TASKS_WORDS_H_

#include <string>
#include <vector>

namespace coldcompress::client {

const std::vector<std::string>& Nouns();
const std::vector<std::string>& Adjectives();
// Nouns, adjectives and verbs, each word once.
const std::vector<std::string>& EnglishWords();

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_TASKS_WORDS_H_
