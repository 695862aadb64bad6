// The BPE model of a Hugging Face tokenizer.json: vocabulary, merge ranks,
// byte-level or character symbols, byte fallback.
#ifndef COLDCOMPRESS_SERVER_TOKENIZER_BPE_MODEL_H_
#define COLDCOMPRESS_SERVER_TOKENIZER_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace coldcompress {

// The GPT-2 byte <-> printable code point mapping of byte-level BPE.
const std::array<uint32_t, 256>& ByteToCodePoint();

class BpeModel {
 public:
  // `model`: tokenizer.json's "model" object. With `byte_level`, vocabulary
  // entries are byte-level strings (each char one byte) and pieces are raw
  // bytes; otherwise pieces are UTF-8 text split into code points.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(
      const nlohmann::json& model, bool byte_level);

  // Appends the ids of one pre-token. Pieces are raw bytes (byte level) or
  // UTF-8 text. Thread-safe.
  void Encode(std::string_view piece, std::vector<int32_t>* out) const;

  // The vocabulary entry of `id` as stored in tokenizer.json; empty if none.
  const std::string& Token(int32_t id) const;
  // The id of a vocabulary entry as stored in tokenizer.json, or -1.
  int32_t Id(std::string_view token) const;
  // Adds (or rebinds) an entry, for added tokens.
  void Bind(const std::string& token, int32_t id);
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }
  bool byte_level() const { return byte_level_; }

 private:
  BpeModel() = default;

  // Encodes one word without splitting it further.
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;
  // Merges adjacent symbols by rank (lowest first, leftmost on ties).
  void Merge(std::vector<int32_t>& symbols) const;
  void MergeLong(std::vector<int32_t>& symbols) const;

  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  // Character mode: no vocabulary entry has a "▁" after another character,
  // so no merge can cross the start of a "▁" run and a text splits there
  // into words that merge independently (SentencePiece-style models, which
  // have no pre-tokenizer and would otherwise merge the whole text at once).
  bool split_at_spaces_ = false;
  int32_t unk_id_ = -1;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int32_t> token_to_id_;
  // Symbol form (raw bytes when byte level) -> id.
  std::unordered_map<std::string, int32_t> symbol_to_id_;
  std::array<int32_t, 256> byte_ids_{};      // byte level: each byte's id
  std::array<int32_t, 256> fallback_ids_{};  // "<0xXX>" ids, -1 if absent
  // (left id << 32 | right id) -> (rank, merged id)
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOKENIZER_BPE_MODEL_H_
