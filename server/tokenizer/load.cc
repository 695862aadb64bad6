#include "server/tokenizer/load.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace coldcompress {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path model = fs::path(dir) / "tokenizer.model";
  if (!fs::exists(model)) {
    return absl::NotFoundError(absl::StrCat(
        dir,
        " has no tokenizer.model (SentencePiece); tokenizer.json support "
        "is not built yet"));
  }
  bool add_bos = true;
  const fs::path config = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(config)) {
    std::ifstream in(config);
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config.string(), " is not valid JSON"));
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

}  // namespace coldcompress
