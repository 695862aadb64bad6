// The LLM judge of the llm_rouge metric: the reference's LLM-Rouge prompt
// sent to a server of this project (a Generate endpoint) or, with a key, to
// an external chat API (Anthropic Messages or OpenAI-compatible).
#ifndef COLDCOMPRESS_CLIENT_JUDGE_H_
#define COLDCOMPRESS_CLIENT_JUDGE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace coldcompress::client {

class ServerClient;

struct JudgeOptions {
  std::string server;       // "host:port" of a ColdCompress server
  std::string api;          // "" | "anthropic" | "openai"
  std::string api_url;      // "" = the API's public endpoint
  std::string model;        // the API's model name
  std::string api_key_env;  // "" = ANTHROPIC_API_KEY / OPENAI_API_KEY
};

class Judge {
 public:
  virtual ~Judge() = default;
  // The judge's reply to `prompt`, which expects a 1-5 score.
  virtual absl::StatusOr<std::string> Complete(const std::string& prompt) = 0;
  // A name for metrics files: "server:host:port" or "anthropic:model".
  virtual std::string name() const = 0;

  // Rates `prediction` against `labels` 1..5; nullopt when the reply holds
  // no score.
  absl::StatusOr<std::optional<int>> Rate(
      const std::vector<std::string>& labels, const std::string& prediction);
};

// The judge the options describe, nullptr when they name none.
// INVALID_ARGUMENT for an unknown api or a missing model; FAILED_PRECONDITION
// when the key's environment variable is unset; UNAVAILABLE when the judge
// server does not answer.
absl::StatusOr<std::unique_ptr<Judge>> MakeJudge(const JudgeOptions& options);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_JUDGE_H_
