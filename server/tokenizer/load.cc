#include "server/tokenizer/load.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/tokenizer/hf_tokenizer.h"

namespace coldcompress {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path json = fs::path(dir) / "tokenizer.json";
  const fs::path config = fs::path(dir) / "tokenizer_config.json";
  const bool has_config = fs::exists(config);
  // tokenizer.json first, as Hugging Face's fast tokenizers do.
  if (fs::exists(json)) {
    return LoadHfTokenizer(json.string(), has_config ? config.string() : "");
  }
  const fs::path model = fs::path(dir) / "tokenizer.model";
  if (!fs::exists(model)) {
    return absl::NotFoundError(
        absl::StrCat(dir, " has neither tokenizer.json nor tokenizer.model"));
  }
  bool add_bos = true;
  if (has_config) {
    std::ifstream in(config);
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config.string(), ": not valid JSON"));
    }
    if (j.contains("add_bos_token") && j["add_bos_token"].is_boolean()) {
      add_bos = j["add_bos_token"].get<bool>();
    }
  }
  std::string error;
  std::unique_ptr<Tokenizer> tokenizer =
      LoadSentencePiece(model.string(), add_bos, &error);
  if (tokenizer == nullptr) return absl::InvalidArgumentError(error);
  return tokenizer;
}

std::string LoadChatTemplateText(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "tokenizer_config.json");
  if (!in) return "";
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("chat_template")) return "";
  const nlohmann::json& t = j["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (const auto& entry : t) {
      if (entry.value("name", "") == "default" && entry.contains("template")) {
        return entry["template"].get<std::string>();
      }
    }
  }
  return "";
}

}  // namespace coldcompress
