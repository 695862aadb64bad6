// The tokenizer interface. This header must stay free of Abseil and gRPC:
// sentencepiece.cc includes it next to Debian's sentencepiece_processor.h,
// whose own absl::string_view shim clashes with the real Abseil.
#ifndef COLDCOMPRESS_SERVER_TOKENIZER_TOKENIZER_H_
#define COLDCOMPRESS_SERVER_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace coldcompress {

// Thread-safe for concurrent const use.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`; with add_special_tokens, the model's BOS first (when
  // the tokenizer adds one).
  virtual std::vector<int32_t> Encode(std::string_view text,
                                      bool add_special_tokens) const = 0;
  // Text of `ids` (special tokens dropped when asked). Bytes of an
  // incomplete UTF-8 character come out as U+FFFD.
  virtual std::string Decode(const std::vector<int32_t>& ids,
                             bool skip_special_tokens) const = 0;
  // The vocabulary entry of `id` (e.g. "▁the", "<0x0A>").
  virtual std::string Piece(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  // -1 when the tokenizer has none.
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  // Ids of special tokens (control and unknown tokens; added tokens too
  // where the format has them).
  virtual std::vector<int32_t> SpecialIds() const = 0;
  // "sentencepiece" (tokenizer.model) or "bpe" (tokenizer.json).
  virtual std::string kind() const = 0;
  // The id of a vocabulary entry or added token, -1 when there is none.
  virtual int32_t TokenId(std::string_view token) const = 0;
};

// Loads a SentencePiece model (tokenizer.model). nullptr and *error set on
// failure.
std::unique_ptr<Tokenizer> LoadSentencePiece(const std::string& path,
                                             bool add_bos, std::string* error);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOKENIZER_TOKENIZER_H_
