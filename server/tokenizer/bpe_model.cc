#include "server/tokenizer/bpe_model.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "absl/strings/str_cat.h"
#include "server/tokenizer/unicode.h"

namespace coldcompress {
namespace {

// A symbol of a word being merged: a vocabulary id (-1 for a character the
// vocabulary lacks) and the bytes of the piece it covers.
struct Symbol {
  int32_t id;
  uint32_t start;
  uint32_t length;
};

// Words this long are merged with a priority queue instead of rescans.
constexpr size_t kLongWord = 48;

constexpr std::string_view kSpiece = "\xE2\x96\x81";  // U+2581

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
         static_cast<uint32_t>(right);
}

}  // namespace

const std::array<uint32_t, 256>& ByteToCodePoint() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    std::array<bool, 256> printable{};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b)
      t[b] = printable[b] ? static_cast<uint32_t>(b) : next++;
    return t;
  }();
  return table;
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(
    const nlohmann::json& model, bool byte_level) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->byte_level_ = byte_level;
  if (!model.is_object() || model.value("type", "") != "BPE") {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.type must be \"BPE\", got \"",
        model.is_object() ? model.value("type", std::string("?")) : "?", "\""));
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return absl::InvalidArgumentError(
        "model.vocab is missing or not an object");
  }
  if (!model.contains("merges") || !model["merges"].is_array()) {
    return absl::InvalidArgumentError(
        "model.merges is missing or not an array");
  }
  if (model.contains("end_of_word_suffix") &&
      model["end_of_word_suffix"].is_string() &&
      !model["end_of_word_suffix"].get<std::string>().empty()) {
    return absl::InvalidArgumentError(
        "model.end_of_word_suffix is not supported");
  }
  m->byte_fallback_ = model.value("byte_fallback", false);
  m->ignore_merges_ = model.value("ignore_merges", false);
  // Byte-level strings map back to raw bytes.
  std::unordered_map<uint32_t, unsigned char> to_byte;
  for (int b = 0; b < 256; ++b)
    to_byte[ByteToCodePoint()[b]] = static_cast<unsigned char>(b);
  auto symbol_form = [&](const std::string& token, std::string* out) {
    if (!byte_level) {
      *out = token;
      return true;
    }
    out->clear();
    for (uint32_t cp : CodePoints(token)) {
      auto it = to_byte.find(cp);
      if (it == to_byte.end()) return false;
      out->push_back(static_cast<char>(it->second));
    }
    return true;
  };
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.vocab[\"", token, "\"] is not an id"));
    }
    m->Bind(token, id.get<int32_t>());
  }
  for (const auto& [token, id] : m->token_to_id_) {
    std::string symbol;
    if (symbol_form(token, &symbol)) m->symbol_to_id_.emplace(symbol, id);
  }
  m->byte_ids_.fill(-1);
  m->fallback_ids_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    auto it = m->symbol_to_id_.find(std::string(1, static_cast<char>(b)));
    if (it != m->symbol_to_id_.end()) m->byte_ids_[b] = it->second;
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    m->fallback_ids_[b] = m->Id(name);
  }
  if (byte_level) {
    for (int b = 0; b < 256; ++b) {
      if (m->byte_ids_[b] < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model.vocab lacks the byte-level symbol of byte ", b));
      }
    }
  }
  if (!byte_level) {
    m->split_at_spaces_ = true;
    for (const auto& [token, id] : m->token_to_id_) {
      // Strip the leading run of "▁", then look for another one.
      size_t at = 0;
      while (token.compare(at, kSpiece.size(), kSpiece) == 0)
        at += kSpiece.size();
      if (token.find(kSpiece, at) != std::string::npos) {
        m->split_at_spaces_ = false;
        break;
      }
    }
  }
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    m->unk_id_ = m->Id(model["unk_token"].get<std::string>());
  }
  int32_t rank = 0;
  for (const auto& merge : model["merges"]) {
    std::string left, right;
    if (merge.is_string()) {
      // "a b": the old format; split at the first space.
      const std::string s = merge.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("model.merges[", rank, "] has no space"));
      }
      left = s.substr(0, space);
      right = s.substr(space + 1, s.find(' ', space + 1) - space - 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("model.merges[", rank, "] is malformed"));
    }
    const int32_t l = m->Id(left), r = m->Id(right),
                  merged = m->Id(left + right);
    if (l >= 0 && r >= 0 && merged >= 0) {
      m->merges_.try_emplace(PairKey(l, r), rank, merged);
    }
    ++rank;
  }
  return m;
}

void BpeModel::Bind(const std::string& token, int32_t id) {
  if (id >= static_cast<int32_t>(id_to_token_.size()))
    id_to_token_.resize(id + 1);
  id_to_token_[id] = token;
  token_to_id_[token] = id;
}

const std::string& BpeModel::Token(int32_t id) const {
  static const std::string kEmpty;
  return id >= 0 && id < size() ? id_to_token_[id] : kEmpty;
}

int32_t BpeModel::Id(std::string_view token) const {
  auto it = token_to_id_.find(std::string(token));
  return it == token_to_id_.end() ? -1 : it->second;
}

void BpeModel::Merge(std::vector<int32_t>& ids) const {
  // Repeatedly merge the lowest-ranked adjacent pair, leftmost on ties.
  while (ids.size() > 1) {
    int32_t best_rank = INT32_MAX, best_merged = -1;
    size_t best = 0;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i + 1] < 0) continue;
      auto it = merges_.find(PairKey(ids[i], ids[i + 1]));
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        best_merged = it->second.second;
        best = i;
      }
    }
    if (best_merged < 0) return;
    ids[best] = best_merged;
    ids.erase(ids.begin() + static_cast<long>(best) + 1);
  }
}

void BpeModel::MergeLong(std::vector<int32_t>& ids) const {
  // A doubly linked list of symbols and a queue of candidate merges ordered
  // by (rank, position of the left symbol), validated when popped.
  const int n = static_cast<int>(ids.size());
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int left;
    int32_t left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const int32_t a = ids[left], b = ids[next[left]];
    if (a < 0 || b < 0) return;
    auto it = merges_.find(PairKey(a, b));
    if (it != merges_.end()) queue.push({it->second.first, left, a, b});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  std::vector<bool> alive(n, true);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    const int right = next[c.left];
    if (!alive[c.left] || right < 0 || ids[c.left] != c.left_id ||
        ids[right] != c.right_id) {
      continue;
    }
    ids[c.left] = merges_.find(PairKey(c.left_id, c.right_id))->second.second;
    alive[right] = false;
    next[c.left] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.left;
    push(prev[c.left]);
    push(c.left);
  }
  std::vector<int32_t> out;
  for (int i = 0; i >= 0 && i < n; i = next[i]) out.push_back(ids[i]);
  ids = std::move(out);
}

void BpeModel::Encode(std::string_view piece, std::vector<int32_t>* out) const {
  if (!split_at_spaces_ || piece.size() <= 64) {
    EncodeWord(piece, out);
    return;
  }
  // Words start where a "▁" run follows another character; repeated words
  // are merged once.
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
  size_t start = 0;
  for (size_t i = 0; i <= piece.size();) {
    const bool boundary =
        i == piece.size() ||
        (i > start && piece.compare(i, kSpiece.size(), kSpiece) == 0 &&
         piece.compare(i - kSpiece.size(), kSpiece.size(), kSpiece) != 0);
    if (boundary) {
      const std::string_view word = piece.substr(start, i - start);
      auto it = seen.find(word);
      if (it != seen.end()) {
        const size_t at = out->size();
        out->resize(at + it->second.second);
        std::copy_n(out->begin() + static_cast<long>(it->second.first),
                    it->second.second, out->begin() + static_cast<long>(at));
      } else {
        const size_t at = out->size();
        EncodeWord(word, out);
        seen.emplace(word, std::make_pair(at, out->size() - at));
      }
      start = i;
      if (i == piece.size()) break;
    }
    i +=
        i < piece.size() ? Utf8Length(static_cast<unsigned char>(piece[i])) : 1;
  }
}

void BpeModel::EncodeWord(std::string_view piece,
                          std::vector<int32_t>* out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    auto it = symbol_to_id_.find(std::string(piece));
    if (it != symbol_to_id_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  // Initial symbols: bytes, or code points (-1 when not in the vocabulary).
  std::vector<int32_t> ids;
  std::vector<std::string_view> unknown;  // text of each -1 symbol, in order
  if (byte_level_) {
    ids.reserve(piece.size());
    for (unsigned char b : piece) ids.push_back(byte_ids_[b]);
  } else {
    for (size_t i = 0; i < piece.size();) {
      const size_t len = std::min<size_t>(
          Utf8Length(static_cast<unsigned char>(piece[i])), piece.size() - i);
      auto it = symbol_to_id_.find(std::string(piece.substr(i, len)));
      if (it != symbol_to_id_.end()) {
        ids.push_back(it->second);
      } else {
        ids.push_back(-1);
        unknown.push_back(piece.substr(i, len));
      }
      i += len;
    }
  }
  if (ids.size() >= kLongWord) {
    MergeLong(ids);
  } else {
    Merge(ids);
  }
  size_t next_unknown = 0;
  for (int32_t id : ids) {
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    // A character outside the vocabulary: its bytes, else the unknown token.
    const std::string_view text = unknown[next_unknown++];
    bool all = byte_fallback_;
    for (unsigned char b : text) all = all && fallback_ids_[b] >= 0;
    if (all) {
      for (unsigned char b : text) out->push_back(fallback_ids_[b]);
    } else if (unk_id_ >= 0) {
      out->push_back(unk_id_);
    }
  }
}

}  // namespace coldcompress
