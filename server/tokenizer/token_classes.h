// The token classes the hybrid (FastGen) policy needs, from the tokenizer
// (docs/policies.md 3.7).
#ifndef COLDCOMPRESS_SERVER_TOKENIZER_TOKEN_CLASSES_H_
#define COLDCOMPRESS_SERVER_TOKENIZER_TOKEN_CLASSES_H_

#include <string_view>

#include "policies/policy.h"
#include "server/tokenizer/tokenizer.h"

namespace coldcompress {

// special: every special token alone, and for SentencePiece (Llama-2-style)
// models also the encodings of "[INST]" and "[/INST]". punctuation: every id
// whose decoded text is only whitespace and/or ASCII punctuation (the empty
// string counts; the decoded text, not the raw piece, is tested: Fix).
TokenClasses BuildTokenClasses(const Tokenizer& tokenizer);

// True when `text` is only whitespace and/or ASCII punctuation.
bool IsPunctuationText(std::string_view text);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOKENIZER_TOKEN_CLASSES_H_
