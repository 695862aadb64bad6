#include "client/judge.h"

#include <httplib.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "client/metrics/text_metrics.h"
#include "client/pool.h"

namespace coldcompress::client {
namespace {

using nlohmann::json;

// Asks a ColdCompress server, greedy, with a full cache. Its Generate takes
// no assistant prefill, so the prefill ends the user turn.
class ServerJudge : public Judge {
 public:
  explicit ServerJudge(std::unique_ptr<ServerClient> server)
      : server_(std::move(server)) {}

  absl::StatusOr<std::string> Complete(const std::string& prompt) override {
    v1::GenerateRequest request;
    auto* m = request.mutable_messages()->add_messages();
    m->set_role("user");
    m->set_content(absl::StrCat(prompt, "\n\n", std::string(kLlmRougePrefill)));
    request.set_max_new_tokens(8);
    request.mutable_cache()->add_strategy("full");
    absl::StatusOr<v1::FinalResult> r = server_->Generate(request);
    if (!r.ok()) {
      return absl::Status(r.status().code(),
                          absl::StrCat("judge ", server_->address(), ": ",
                                       r.status().message()));
    }
    return r->text();
  }
  std::string name() const override {
    return absl::StrCat("server:", server_->address());
  }

 private:
  std::unique_ptr<ServerClient> server_;
};

// POSTs to an HTTP chat API.
class ApiJudge : public Judge {
 public:
  ApiJudge(JudgeOptions options, std::string key)
      : options_(std::move(options)), key_(std::move(key)) {}

  absl::StatusOr<std::string> Complete(const std::string& prompt) override {
    const bool anthropic = options_.api == "anthropic";
    std::string url = options_.api_url;
    if (url.empty())
      url = anthropic ? "https://api.anthropic.com" : "https://api.openai.com";
    json body;
    body["model"] = options_.model;
    body["max_tokens"] = 5;
    body["temperature"] = 0;
    httplib::Headers headers;
    std::string path;
    if (anthropic) {
      path = "/v1/messages";
      headers = {{"x-api-key", key_}, {"anthropic-version", "2023-06-01"}};
      body["messages"] =
          json::array({{{"role", "user"}, {"content", prompt}},
                       {{"role", "assistant"},
                        {"content", std::string(kLlmRougePrefill)}}});
    } else {
      path = "/v1/chat/completions";
      headers = {{"Authorization", absl::StrCat("Bearer ", key_)}};
      body["messages"] = json::array(
          {{{"role", "user"},
            {"content",
             absl::StrCat(prompt, "\n\n", std::string(kLlmRougePrefill))}}});
    }
    httplib::Client client(url);
    client.set_read_timeout(std::chrono::seconds(60));
    httplib::Result r =
        client.Post(path, headers, body.dump(), "application/json");
    if (!r) {
      return absl::UnavailableError(absl::StrCat(
          "judge ", url, path, ": ", httplib::to_string(r.error())));
    }
    json reply = json::parse(r->body, nullptr, false);
    if (r->status != 200 || reply.is_discarded()) {
      return absl::UnavailableError(absl::StrCat("judge ", url, path, ": HTTP ",
                                                 r->status, " ",
                                                 r->body.substr(0, 300)));
    }
    try {
      return anthropic ? reply.at("content").at(0).at("text").get<std::string>()
                       : reply.at("choices")
                             .at(0)
                             .at("message")
                             .at("content")
                             .get<std::string>();
    } catch (const json::exception&) {
      return absl::UnavailableError(absl::StrCat(
          "judge ", url, path, ": unexpected reply ", r->body.substr(0, 300)));
    }
  }
  std::string name() const override {
    return absl::StrCat(options_.api, ":", options_.model);
  }

 private:
  JudgeOptions options_;
  std::string key_;
};

}  // namespace

absl::StatusOr<std::optional<int>> Judge::Rate(
    const std::vector<std::string>& labels, const std::string& prediction) {
  absl::StatusOr<std::string> reply =
      Complete(LlmRougePrompt(labels, prediction));
  if (!reply.ok()) return reply.status();
  return ParseJudgeScore(*reply);
}

absl::StatusOr<std::unique_ptr<Judge>> MakeJudge(const JudgeOptions& options) {
  if (!options.server.empty() && !options.api.empty()) {
    return absl::InvalidArgumentError(
        "judge_server: give either --judge_server or --judge_api, not both");
  }
  if (!options.server.empty()) {
    auto server = std::make_unique<ServerClient>(options.server);
    if (absl::Status s = server->Connect(10); !s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("judge_server: ", s.message()));
    }
    return std::make_unique<ServerJudge>(std::move(server));
  }
  if (options.api.empty()) return nullptr;
  if (options.api != "anthropic" && options.api != "openai") {
    return absl::InvalidArgumentError(absl::StrCat(
        "judge_api: \"", options.api, "\" is not anthropic or openai"));
  }
  if (options.model.empty()) {
    return absl::InvalidArgumentError(
        "judge_model: required with --judge_api (e.g. "
        "claude-3-haiku-20240307)");
  }
  const std::string env = !options.api_key_env.empty() ? options.api_key_env
                          : options.api == "anthropic" ? "ANTHROPIC_API_KEY"
                                                       : "OPENAI_API_KEY";
  const char* key = std::getenv(env.c_str());
  if (key == nullptr || *key == '\0') {
    return absl::FailedPreconditionError(
        absl::StrCat("judge_api: the API key variable ", env, " is not set"));
  }
  return std::make_unique<ApiJudge>(options, key);
}

}  // namespace coldcompress::client
