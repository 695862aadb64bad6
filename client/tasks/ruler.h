// RULER's synthetic tasks (Hsieh et al., 2024, github.com/NVIDIA/RULER),
// generated here from a seed and sized to a target token length with the
// server's tokenizer: needle in a haystack (single, multi-key, multi-value,
// multi-query), variable tracking, common- and frequent-words extraction.
#ifndef COLDCOMPRESS_CLIENT_TASKS_RULER_H_
#define COLDCOMPRESS_CLIENT_TASKS_RULER_H_

#include <memory>
#include <string>
#include <vector>

#include "client/tasks/task.h"

namespace coldcompress::client {

// The generated task called `name`, or nullptr when there is none.
std::unique_ptr<Task> MakeRulerTask(const std::string& name);

std::vector<std::string> RulerTaskNames();

class Rng;

// RULER's noise haystack: `sentences` sentences, five to a line.
std::vector<std::string> NoiseLines(int sentences);

// A random "adjective-noun" key, as RULER's needles use.
std::string WordKey(Rng& rng);

// The needle tasks' wording (one value per prompt is `singular`):
// "One of the special magic number(s) for KEY is:",
std::string NeedlePrefix(bool singular, const std::string& key);
// the needle, that prefix then " VALUE.",
std::string NeedleLine(bool singular, const std::string& key,
                       const std::string& value);
// the instruction before the haystack (ending in a newline), and
std::string NiahPreamble(bool singular);
// the question after it, up to the answer: "What ... for QUERY ...? The
// special magic number(s) for QUERY mentioned in the provided text is/are".
std::string NiahQuestion(bool singular, const std::string& query);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_TASKS_RULER_H_
