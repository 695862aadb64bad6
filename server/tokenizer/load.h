// Finds and loads the tokenizer of a checkpoint directory.
#ifndef COLDCOMPRESS_SERVER_TOKENIZER_LOAD_H_
#define COLDCOMPRESS_SERVER_TOKENIZER_LOAD_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/tokenizer/tokenizer.h"

namespace coldcompress {

// tokenizer.model (SentencePiece). add_bos comes from tokenizer_config.json's
// "add_bos_token" (default true, as for Llama-2).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& dir);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOKENIZER_LOAD_H_
