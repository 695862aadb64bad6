// UTF-8 and Unicode helpers of the tokenizers, with the semantics of the
// JavaScript reference where they differ from other libraries (whitespace,
// replacement of invalid bytes).
#ifndef COLDCOMPRESS_SERVER_TOKENIZER_UNICODE_H_
#define COLDCOMPRESS_SERVER_TOKENIZER_UNICODE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coldcompress {

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s);
// Byte offset of the first invalid sequence, or npos.
size_t FirstInvalidUtf8(std::string_view s);

// Bytes decoded as UTF-8 with each maximal invalid subpart replaced by U+FFFD
// (the WHATWG / TextDecoder rule).
std::string ReplaceInvalidUtf8(std::string_view bytes);

// Code points of valid UTF-8.
std::vector<uint32_t> CodePoints(std::string_view utf8);
void AppendUtf8(uint32_t code_point, std::string* out);
// Length in bytes of the UTF-8 sequence starting with `lead` (1 for invalid).
int Utf8Length(unsigned char lead);

// Unicode normalization forms C and KC (utf8proc).
std::string NormalizeNfc(std::string_view utf8);
std::string NormalizeNfkc(std::string_view utf8);

// JavaScript's \s and String.prototype.trim set: Unicode White_Space plus
// U+FEFF.
bool IsJsWhitespace(uint32_t code_point);
std::string_view TrimJsStart(std::string_view s);
std::string_view TrimJsEnd(std::string_view s);

// The pattern with \s and \S written out as explicit classes of the JS
// whitespace set, so that PCRE2 matches as JavaScript does.
std::string JsWhitespaceRegex(std::string_view pattern);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOKENIZER_UNICODE_H_
