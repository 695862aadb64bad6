// Finds and loads the tokenizer of a checkpoint directory.
#ifndef COLDCOMPRESS_SERVER_TOKENIZER_LOAD_H_
#define COLDCOMPRESS_SERVER_TOKENIZER_LOAD_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/tokenizer/tokenizer.h"

namespace coldcompress {

// tokenizer.json (Hugging Face, with tokenizer_config.json) when present, else
// tokenizer.model (SentencePiece; add_bos from tokenizer_config.json's
// "add_bos_token", default true as for Llama-2).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& dir);

// tokenizer_config.json's "chat_template" text ("" when absent; the
// "default" entry of a list of named templates).
std::string LoadChatTemplateText(const std::string& dir);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOKENIZER_LOAD_H_
