// Hugging Face tokenizer.json tokenizers (byte-level BPE as in Llama-3 and
// Qwen2, and SentencePiece-style BPE with byte fallback), matching the
// transformers.js implementation token for token.
#ifndef COLDCOMPRESS_SERVER_TOKENIZER_HF_TOKENIZER_H_
#define COLDCOMPRESS_SERVER_TOKENIZER_HF_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/tokenizer/tokenizer.h"

namespace coldcompress {

// Loads `tokenizer_json` (and, when the path is not empty, the
// tokenizer_config.json beside it: special tokens, clean-up of spaces).
// INVALID_ARGUMENT naming the file and the problem on malformed input.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(
    const std::string& tokenizer_json, const std::string& tokenizer_config);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOKENIZER_HF_TOKENIZER_H_
