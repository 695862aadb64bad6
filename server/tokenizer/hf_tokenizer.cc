#include "server/tokenizer/hf_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "server/tokenizer/bpe_model.h"
#include "server/tokenizer/unicode.h"

namespace coldcompress {
namespace {

using Json = nlohmann::json;

constexpr char kSpiece[] = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// A PCRE2 pattern compiled once (UTF, Unicode properties, JIT); matching is
// thread-safe with per-call match data.
class Regex {
 public:
  static absl::StatusOr<std::shared_ptr<Regex>> Compile(
      const std::string& pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(
        reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
        PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InvalidArgumentError(
          absl::StrCat("regex \"", pattern, "\" at offset ", offset, ": ",
                       reinterpret_cast<char*>(message)));
    }
    pcre2_jit_compile(code,
                      PCRE2_JIT_COMPLETE);  // falls back to the interpreter
    return std::shared_ptr<Regex>(new Regex(code));
  }
  ~Regex() { pcre2_code_free(code_); }

  // Calls f(begin, end) for each non-overlapping match, left to right.
  template <typename F>
  void ForEachMatch(std::string_view text, F f) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t at = 0;
    while (at <= text.size()) {
      const int rc =
          pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()),
                      text.size(), at, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      f(ov[0], ov[1]);
      if (ov[1] > ov[0]) {
        at = ov[1];
      } else {  // an empty match: step over one character
        if (ov[0] >= text.size()) break;
        at = ov[0] + Utf8Length(static_cast<unsigned char>(text[ov[0]]));
      }
    }
    pcre2_match_data_free(md);
  }

 private:
  explicit Regex(pcre2_code* code) : code_(code) {}
  pcre2_code* code_;
};

// The pattern of a tokenizer.json Split, rewritten as transformers.js does
// (its case-insensitive group, escapes JS rejects), then with JS's \s.
std::string JsCompatiblePattern(std::string pattern) {
  for (const char* c : {"#", "&", "~"}) {
    pattern = absl::StrReplaceAll(pattern, {{absl::StrCat("\\", c), c}});
  }
  pattern = absl::StrReplaceAll(
      pattern, {{"(?i:'s|'t|'re|'ve|'m|'ll|'d)",
                 "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))"}});
  return JsWhitespaceRegex(pattern);
}

std::string RegexQuote(std::string_view s) {
  std::string out = "\\Q";
  out.append(s);
  out += "\\E";
  return out;
}

// Pieces of text, viewing strings owned by the buffer or by the caller.
struct Pieces {
  std::deque<std::string> storage;
  std::vector<std::string_view> views;
  std::string_view Store(std::string s) {
    storage.push_back(std::move(s));
    return storage.back();
  }
};

struct NormalizerOp {
  enum Kind { kNfc, kNfkc, kPrepend, kReplace, kLowercase, kStrip } kind;
  std::string a, b;  // prepend / replace from, to
  bool left = false, right = false;
};

struct PreTokenizerOp {
  enum Kind { kSplit, kByteLevel, kMetaspace, kDigits } kind;
  std::shared_ptr<Regex> regex;  // split, byte level with regex, digits
  bool isolated = true;          // split: keep matches (else removed)
  bool add_prefix_space = false;
  std::string replacement;  // metaspace
  std::string prepend_scheme = "always";
};

struct DecoderOp {
  enum Kind {
    kByteLevel,
    kReplace,
    kByteFallback,
    kFuse,
    kStrip,
    kMetaspace
  } kind;
  std::string a, b;  // replace from, to; strip content; metaspace replacement
  int start = 0, stop = 0;
  bool add_prefix_space = true;
};

struct AddedToken {
  int32_t id;
  std::string content;
  bool lstrip, rstrip, special;
};

// A trie of the added tokens' contents: longest match at each position, left
// to right (transformers.js' DictionarySplitter).
class AddedTokenSplitter {
 public:
  void Add(const std::string& content) {
    int node = 0;
    for (unsigned char c : content) {
      auto it = nodes_[node].next.find(c);
      if (it == nodes_[node].next.end()) {
        nodes_.push_back({});
        it = nodes_[node]
                 .next.emplace(c, static_cast<int>(nodes_.size()) - 1)
                 .first;
      }
      node = it->second;
    }
    nodes_[node].end = true;
  }

  // Sections of text: (begin, end, is_added_token).
  std::vector<std::tuple<size_t, size_t, bool>> Split(
      std::string_view text) const {
    std::vector<std::tuple<size_t, size_t, bool>> out;
    size_t start = 0, i = 0;
    while (i < text.size()) {
      int node = 0;
      size_t match = 0;
      for (size_t j = i; j < text.size(); ++j) {
        auto it = nodes_[node].next.find(static_cast<unsigned char>(text[j]));
        if (it == nodes_[node].next.end()) break;
        node = it->second;
        if (nodes_[node].end) match = j + 1 - i;
      }
      if (match > 0) {
        if (i > start) out.emplace_back(start, i, false);
        out.emplace_back(i, i + match, true);
        i += match;
        start = i;
      } else {
        ++i;
      }
    }
    if (start < text.size()) out.emplace_back(start, text.size(), false);
    return out;
  }

 private:
  struct Node {
    std::map<unsigned char, int> next;
    bool end = false;
  };
  std::vector<Node> nodes_ = {Node{}};
};

class HfTokenizer final : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> Load(
      const Json& tokenizer, const Json& config);

  std::vector<int32_t> Encode(std::string_view text,
                              bool add_special_tokens) const override;
  std::string Decode(const std::vector<int32_t>& ids,
                     bool skip_special_tokens) const override;
  std::string Piece(int32_t id) const override { return model_->Token(id); }
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  std::vector<int32_t> SpecialIds() const override { return special_ids_; }
  std::string kind() const override { return "bpe"; }
  int32_t TokenId(std::string_view token) const override {
    return model_->Id(token);
  }

 private:
  std::string Normalize(std::string text) const;
  void PreTokenize(std::string_view text, size_t section, Pieces& out) const;
  std::vector<int32_t> EncodeText(std::string_view text) const;

  std::unique_ptr<BpeModel> model_;
  std::vector<NormalizerOp> normalizers_;
  std::vector<PreTokenizerOp> pre_tokenizers_;
  std::vector<DecoderOp> decoders_;
  std::vector<std::string>
      template_;  // TemplateProcessing single: "$A" or a token
  std::vector<AddedToken> added_;
  std::unordered_map<std::string, size_t> added_by_content_;
  AddedTokenSplitter splitter_;
  std::set<std::string> special_contents_;
  std::vector<int32_t> special_ids_;
  bool cleanup_ = true;
  bool llama_non_legacy_ = false;
  int32_t vocab_size_ = 0, bos_id_ = -1, eos_id_ = -1;
};

absl::Status Unsupported(const std::string& what, const Json& j) {
  return absl::InvalidArgumentError(absl::StrCat(
      what, " type \"", j.is_object() ? j.value("type", std::string("?")) : "?",
      "\" is not supported"));
}

absl::Status ParseNormalizer(const Json& j, std::vector<NormalizerOp>& out) {
  if (j.is_null()) return absl::OkStatus();
  const std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const Json& n : j["normalizers"]) {
      if (absl::Status s = ParseNormalizer(n, out); !s.ok()) return s;
    }
  } else if (type == "NFC") {
    out.push_back({NormalizerOp::kNfc});
  } else if (type == "NFKC") {
    out.push_back({NormalizerOp::kNfkc});
  } else if (type == "Prepend") {
    out.push_back({NormalizerOp::kPrepend, j.value("prepend", "")});
  } else if (type == "Replace" && j.contains("pattern") &&
             j["pattern"].contains("String")) {
    out.push_back({NormalizerOp::kReplace,
                   j["pattern"]["String"].get<std::string>(),
                   j.value("content", "")});
  } else if (type == "Lowercase") {
    out.push_back({NormalizerOp::kLowercase});
  } else if (type == "Strip") {
    NormalizerOp op{NormalizerOp::kStrip};
    op.left = j.value("strip_left", false);
    op.right = j.value("strip_right", false);
    out.push_back(op);
  } else {
    return Unsupported("normalizer", j);
  }
  return absl::OkStatus();
}

absl::Status ParsePreTokenizer(const Json& j,
                               std::vector<PreTokenizerOp>& out) {
  if (j.is_null()) return absl::OkStatus();
  const std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const Json& p : j["pretokenizers"]) {
      if (absl::Status s = ParsePreTokenizer(p, out); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  PreTokenizerOp op{};
  if (type == "Split") {
    op.kind = PreTokenizerOp::kSplit;
    const std::string behavior = j.value("behavior", "Isolated");
    if (j.value("invert", false) ||
        (behavior != "Isolated" && behavior != "Removed")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pre_tokenizer Split with behavior ", behavior, " is not supported"));
    }
    op.isolated = behavior == "Isolated";
    std::string pattern;
    if (j["pattern"].contains("Regex")) {
      pattern = JsCompatiblePattern(j["pattern"]["Regex"].get<std::string>());
    } else {
      pattern = RegexQuote(j["pattern"]["String"].get<std::string>());
    }
    auto regex = Regex::Compile(pattern);
    if (!regex.ok()) return regex.status();
    op.regex = *regex;
  } else if (type == "ByteLevel") {
    op.kind = PreTokenizerOp::kByteLevel;
    op.add_prefix_space = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) {
      auto regex = Regex::Compile(
          JsCompatiblePattern("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| "
                              "?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"));
      if (!regex.ok()) return regex.status();
      op.regex = *regex;
    }
  } else if (type == "Metaspace") {
    op.kind = PreTokenizerOp::kMetaspace;
    op.replacement = j.value("replacement", std::string(kSpiece));
    op.add_prefix_space = j.value("add_prefix_space", true);
    op.prepend_scheme = j.value("prepend_scheme", std::string("always"));
  } else if (type == "Digits") {
    op.kind = PreTokenizerOp::kDigits;
    auto regex = Regex::Compile(
        j.value("individual_digits", false) ? "[^\\d]+|\\d" : "[^\\d]+|\\d+");
    if (!regex.ok()) return regex.status();
    op.regex = *regex;
  } else {
    return Unsupported("pre_tokenizer", j);
  }
  out.push_back(op);
  return absl::OkStatus();
}

absl::Status ParseDecoder(const Json& j, std::vector<DecoderOp>& out) {
  if (j.is_null()) return absl::OkStatus();
  const std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const Json& d : j["decoders"]) {
      if (absl::Status s = ParseDecoder(d, out); !s.ok()) return s;
    }
  } else if (type == "ByteLevel") {
    out.push_back({DecoderOp::kByteLevel});
  } else if (type == "Replace" && j.contains("pattern") &&
             j["pattern"].contains("String")) {
    out.push_back({DecoderOp::kReplace,
                   j["pattern"]["String"].get<std::string>(),
                   j.value("content", "")});
  } else if (type == "ByteFallback") {
    out.push_back({DecoderOp::kByteFallback});
  } else if (type == "Fuse") {
    out.push_back({DecoderOp::kFuse});
  } else if (type == "Strip") {
    DecoderOp op{DecoderOp::kStrip, j.value("content", " ")};
    op.start = j.value("start", 0);
    op.stop = j.value("stop", 0);
    out.push_back(op);
  } else if (type == "Metaspace") {
    DecoderOp op{DecoderOp::kMetaspace,
                 j.value("replacement", std::string(kSpiece))};
    op.add_prefix_space = j.value("add_prefix_space", true);
    out.push_back(op);
  } else {
    return Unsupported("decoder", j);
  }
  return absl::OkStatus();
}

absl::Status ParsePostProcessor(const Json& j,
                                std::vector<std::string>& single) {
  if (j.is_null()) return absl::OkStatus();
  const std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const Json& p : j["processors"]) {
      if (absl::Status s = ParsePostProcessor(p, single); !s.ok()) return s;
    }
  } else if (type == "TemplateProcessing") {
    single.clear();
    for (const Json& item : j["single"]) {
      if (item.contains("SpecialToken")) {
        single.push_back(item["SpecialToken"]["id"].get<std::string>());
      } else if (item.contains("Sequence")) {
        single.push_back("$" + item["Sequence"]["id"].get<std::string>());
      }
    }
  } else if (type != "ByteLevel") {
    return Unsupported("post_processor", j);
  }
  return absl::OkStatus();
}

// tokenizer_config's token fields are a string or {"content": ...}.
std::string ConfigToken(const Json& config, const std::string& key) {
  if (!config.contains(key)) return "";
  const Json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return "";
}

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::Load(
    const Json& tokenizer, const Json& config) {
  auto t = std::unique_ptr<HfTokenizer>(new HfTokenizer());
  if (!tokenizer.is_object() || !tokenizer.contains("model")) {
    return absl::InvalidArgumentError("no \"model\" object");
  }
  const Json null;
  auto field = [&](const char* key) -> const Json& {
    return tokenizer.contains(key) ? tokenizer[key] : null;
  };
  try {
    if (absl::Status s = ParseNormalizer(field("normalizer"), t->normalizers_);
        !s.ok())
      return s;
    if (absl::Status s =
            ParsePreTokenizer(field("pre_tokenizer"), t->pre_tokenizers_);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ParseDecoder(field("decoder"), t->decoders_); !s.ok())
      return s;
    if (absl::Status s =
            ParsePostProcessor(field("post_processor"), t->template_);
        !s.ok()) {
      return s;
    }
    const bool byte_level =
        std::any_of(t->pre_tokenizers_.begin(), t->pre_tokenizers_.end(),
                    [](const PreTokenizerOp& op) {
                      return op.kind == PreTokenizerOp::kByteLevel;
                    });
    auto model = BpeModel::FromJson(tokenizer["model"], byte_level);
    if (!model.ok()) return model.status();
    t->model_ = *std::move(model);
    if (tokenizer.contains("added_tokens")) {
      for (const Json& a : tokenizer["added_tokens"]) {
        AddedToken token{a.at("id").get<int32_t>(),
                         a.at("content").get<std::string>(),
                         a.value("lstrip", false), a.value("rstrip", false),
                         a.value("special", false)};
        t->model_->Bind(token.content, token.id);
        t->splitter_.Add(token.content);
        t->added_by_content_[token.content] = t->added_.size();
        if (token.special) {
          t->special_contents_.insert(token.content);
          t->special_ids_.push_back(token.id);
        }
        t->added_.push_back(std::move(token));
      }
    }
    if (config.is_object()) {
      if (config.contains("additional_special_tokens")) {
        for (const Json& s : config["additional_special_tokens"]) {
          if (s.is_string()) t->special_contents_.insert(s.get<std::string>());
        }
      }
      if (config.contains("clean_up_tokenization_spaces") &&
          config["clean_up_tokenization_spaces"].is_boolean()) {
        t->cleanup_ = config["clean_up_tokenization_spaces"].get<bool>();
      }
      t->bos_id_ = t->model_->Id(ConfigToken(config, "bos_token"));
      t->eos_id_ = t->model_->Id(ConfigToken(config, "eos_token"));
      // transformers.js' LlamaTokenizer without legacy behaviour.
      const std::string cls = config.value("tokenizer_class", "");
      if ((cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast") &&
          config.contains("legacy") && config["legacy"].is_boolean() &&
          !config["legacy"].get<bool>()) {
        t->llama_non_legacy_ = true;
        t->normalizers_.clear();
        PreTokenizerOp metaspace{PreTokenizerOp::kMetaspace};
        metaspace.replacement = kSpiece;
        metaspace.add_prefix_space = true;
        metaspace.prepend_scheme = "first";
        t->pre_tokenizers_ = {metaspace};
      }
    }
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed content: ", e.what()));
  }
  t->vocab_size_ = t->model_->size();
  return t;
}

std::string HfTokenizer::Normalize(std::string text) const {
  for (const NormalizerOp& op : normalizers_) {
    switch (op.kind) {
      case NormalizerOp::kNfc:
        text = NormalizeNfc(text);
        break;
      case NormalizerOp::kNfkc:
        text = NormalizeNfkc(text);
        break;
      case NormalizerOp::kPrepend:
        text = op.a + text;
        break;
      case NormalizerOp::kReplace:
        text = absl::StrReplaceAll(text, {{op.a, op.b}});
        break;
      case NormalizerOp::kLowercase: {
        std::string lower;
        for (uint32_t cp : CodePoints(text)) {
          AppendUtf8(static_cast<uint32_t>(
                         utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))),
                     &lower);
        }
        text = std::move(lower);
        break;
      }
      case NormalizerOp::kStrip: {
        std::string_view v = text;
        if (op.left) v = TrimJsStart(v);
        if (op.right) v = TrimJsEnd(v);
        text = std::string(v);
        break;
      }
    }
  }
  return text;
}

void HfTokenizer::PreTokenize(std::string_view text, size_t section,
                              Pieces& out) const {
  out.views = {text};
  for (const PreTokenizerOp& op : pre_tokenizers_) {
    Pieces next;
    next.storage = std::move(out.storage);
    for (std::string_view piece : out.views) {
      switch (op.kind) {
        case PreTokenizerOp::kSplit:
        case PreTokenizerOp::kDigits: {
          size_t prev = 0;
          // Isolated keeps the matches as pieces of their own; Removed
          // drops them. The text between matches is always kept.
          op.regex->ForEachMatch(piece, [&](size_t b, size_t e) {
            if (prev < b) next.views.push_back(piece.substr(prev, b - prev));
            if (e > b && op.isolated)
              next.views.push_back(piece.substr(b, e - b));
            prev = e;
          });
          if (prev < piece.size()) next.views.push_back(piece.substr(prev));
          break;
        }
        case PreTokenizerOp::kByteLevel: {
          std::string_view p = piece;
          if (op.add_prefix_space && (p.empty() || p[0] != ' ')) {
            p = next.Store(" " + std::string(p));
          }
          if (op.regex == nullptr) {
            next.views.push_back(p);
          } else {
            op.regex->ForEachMatch(p, [&](size_t b, size_t e) {
              if (e > b) next.views.push_back(p.substr(b, e - b));
            });
          }
          break;
        }
        case PreTokenizerOp::kMetaspace: {
          std::string r =
              absl::StrReplaceAll(std::string(piece), {{" ", op.replacement}});
          if (op.add_prefix_space && r.rfind(op.replacement, 0) != 0 &&
              (op.prepend_scheme == "always" ||
               (op.prepend_scheme == "first" && section == 0))) {
            r = op.replacement + r;
          }
          next.views.push_back(next.Store(std::move(r)));
          break;
        }
      }
    }
    out = std::move(next);
  }
}

std::vector<int32_t> HfTokenizer::EncodeText(std::string_view text) const {
  std::vector<std::tuple<size_t, size_t, bool>> sections =
      splitter_.Split(text);
  std::vector<std::string_view> parts;
  for (const auto& [b, e, added] : sections)
    parts.push_back(text.substr(b, e - b));
  // lstrip / rstrip of the added tokens trim their neighbours.
  for (size_t i = 0; i < sections.size(); ++i) {
    if (!std::get<2>(sections[i])) continue;
    const AddedToken& token =
        added_[added_by_content_.at(std::string(parts[i]))];
    if (token.lstrip && i > 0 && !std::get<2>(sections[i - 1])) {
      parts[i - 1] = TrimJsEnd(parts[i - 1]);
    }
    if (token.rstrip && i + 1 < sections.size() &&
        !std::get<2>(sections[i + 1])) {
      parts[i + 1] = TrimJsStart(parts[i + 1]);
    }
  }
  std::vector<int32_t> ids;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty()) continue;
    if (std::get<2>(sections[i])) {
      ids.push_back(added_[added_by_content_.at(std::string(parts[i]))].id);
      continue;
    }
    const std::string normalized = Normalize(std::string(parts[i]));
    if (normalized.empty()) continue;
    Pieces pieces;
    PreTokenize(normalized, i, pieces);
    // Repeated words are merged once per call.
    std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
    for (std::string_view piece : pieces.views) {
      if (piece.size() <= 64) {
        auto it = seen.find(piece);
        if (it != seen.end()) {
          const size_t at = ids.size();
          ids.resize(at + it->second.second);
          std::copy_n(ids.begin() + static_cast<long>(it->second.first),
                      it->second.second, ids.begin() + static_cast<long>(at));
          continue;
        }
        const size_t at = ids.size();
        model_->Encode(piece, &ids);
        seen.emplace(piece, std::make_pair(at, ids.size() - at));
      } else {
        model_->Encode(piece, &ids);
      }
    }
  }
  return ids;
}

std::vector<int32_t> HfTokenizer::Encode(std::string_view text,
                                         bool add_special_tokens) const {
  std::vector<int32_t> ids;
  if (llama_non_legacy_ && !text.empty()) {
    // transformers.js: encode "▁" + text (with ▁ as spaces) and drop a
    // leading lone "▁" before a special token.
    ids = EncodeText(std::string(kSpiece) +
                     absl::StrReplaceAll(std::string(text), {{kSpiece, " "}}));
    const int32_t lone = model_->Id(kSpiece);
    if (ids.size() > 1 && ids[0] == lone &&
        special_contents_.count(model_->Token(ids[1]))) {
      ids.erase(ids.begin());
    }
  } else {
    ids = EncodeText(text);
  }
  if (!add_special_tokens || template_.empty()) return ids;
  std::vector<int32_t> out;
  for (const std::string& item : template_) {
    if (item == "$A") {
      out.insert(out.end(), ids.begin(), ids.end());
    } else if (item[0] != '$') {
      const int32_t id = model_->Id(item);
      if (id >= 0) out.push_back(id);
    }
  }
  return out;
}

// transformers.js' clean_up_tokenization.
std::string CleanUp(std::string text) {
  return absl::StrReplaceAll(text, {{" .", "."},
                                    {" ?", "?"},
                                    {" !", "!"},
                                    {" ,", ","},
                                    {" ' ", "'"},
                                    {" n't", "n't"},
                                    {" 'm", "'m"},
                                    {" 's", "'s"},
                                    {" 've", "'ve"},
                                    {" 're", "'re"}});
}

std::string HfTokenizer::Decode(const std::vector<int32_t>& ids,
                                bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  for (int32_t id : ids) {
    const std::string& t = model_->Token(id);
    if (skip_special_tokens && special_contents_.count(t)) continue;
    tokens.push_back(t);
  }
  if (decoders_.empty()) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i)
      joined += (i ? " " : "") + tokens[i];
    return cleanup_ ? CleanUp(joined) : joined;
  }
  static const std::unordered_map<uint32_t, unsigned char> kToByte = [] {
    std::unordered_map<uint32_t, unsigned char> m;
    for (int b = 0; b < 256; ++b)
      m[ByteToCodePoint()[b]] = static_cast<unsigned char>(b);
    return m;
  }();
  for (const DecoderOp& op : decoders_) {
    std::vector<std::string> next;
    switch (op.kind) {
      case DecoderOp::kByteLevel: {
        std::string bytes;
        auto flush = [&] {
          if (!bytes.empty()) next.push_back(ReplaceInvalidUtf8(bytes));
          bytes.clear();
        };
        for (const std::string& t : tokens) {
          if (added_by_content_.count(t)) {
            flush();
            next.push_back(t);
            continue;
          }
          for (uint32_t cp : CodePoints(t)) {
            auto it = kToByte.find(cp);
            if (it != kToByte.end())
              bytes.push_back(static_cast<char>(it->second));
          }
        }
        flush();
        break;
      }
      case DecoderOp::kReplace:
        for (const std::string& t : tokens)
          next.push_back(absl::StrReplaceAll(t, {{op.a, op.b}}));
        break;
      case DecoderOp::kByteFallback: {
        std::string bytes;
        for (const std::string& t : tokens) {
          if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>' &&
              std::isxdigit(static_cast<unsigned char>(t[3])) &&
              std::isxdigit(static_cast<unsigned char>(t[4]))) {
            bytes.push_back(
                static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
            continue;
          }
          if (!bytes.empty()) next.push_back(ReplaceInvalidUtf8(bytes));
          bytes.clear();
          next.push_back(t);
        }
        if (!bytes.empty()) next.push_back(ReplaceInvalidUtf8(bytes));
        break;
      }
      case DecoderOp::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        next.push_back(std::move(all));
        break;
      }
      case DecoderOp::kStrip:
        for (const std::string& t : tokens) {
          size_t b = 0, e = t.size();
          for (int k = 0; k < op.start && t.compare(b, op.a.size(), op.a) == 0;
               ++k) {
            b += op.a.size();
          }
          for (int k = 0; k < op.stop && e >= b + op.a.size() &&
                          t.compare(e - op.a.size(), op.a.size(), op.a) == 0;
               ++k) {
            e -= op.a.size();
          }
          next.push_back(t.substr(b, e - b));
        }
        break;
      case DecoderOp::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string t = absl::StrReplaceAll(tokens[i], {{op.a, " "}});
          if (op.add_prefix_space && i == 0 && !t.empty() && t[0] == ' ')
            t.erase(0, 1);
          next.push_back(std::move(t));
        }
        break;
    }
    tokens = std::move(next);
  }
  std::string text;
  for (const std::string& t : tokens) text += t;
  return cleanup_ ? CleanUp(text) : text;
}

absl::StatusOr<Json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::stringstream ss;
  ss << in.rdbuf();
  Json j = Json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  return j;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(
    const std::string& tokenizer_json, const std::string& tokenizer_config) {
  absl::StatusOr<Json> tokenizer = ReadJsonFile(tokenizer_json);
  if (!tokenizer.ok()) return tokenizer.status();
  Json config;
  if (!tokenizer_config.empty()) {
    absl::StatusOr<Json> c = ReadJsonFile(tokenizer_config);
    if (!c.ok()) return c.status();
    config = *std::move(c);
  }
  absl::StatusOr<std::unique_ptr<HfTokenizer>> t =
      HfTokenizer::Load(*tokenizer, config);
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(tokenizer_json, ": ", t.status().message()));
  }
  return std::unique_ptr<Tokenizer>(std::move(*t));
}

}  // namespace coldcompress
