#include "server/tokenizer/chat_template.h"

#include "absl/strings/str_cat.h"
#include "server/tokenizer/unicode.h"

namespace coldcompress {
namespace {

std::string Trim(const std::string& s) {
  return std::string(TrimJsStart(TrimJsEnd(s)));
}

absl::Status CheckRoles(const std::vector<ChatTurn>& turns) {
  if (turns.empty()) {
    return absl::InvalidArgumentError(
        "messages: at least one message is required");
  }
  for (size_t i = 0; i < turns.size(); ++i) {
    const std::string& r = turns[i].role;
    if (r != "system" && r != "user" && r != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat(
          "messages[", i,
          "].role must be \"system\", \"user\" or \"assistant\", got \"", r,
          "\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

ChatTemplate::ChatTemplate(const Tokenizer* tokenizer, Family family)
    : tokenizer_(tokenizer), family_(family) {
  if (tokenizer->bos_id() >= 0) bos_ = tokenizer->Piece(tokenizer->bos_id());
  if (tokenizer->eos_id() >= 0) eos_ = tokenizer->Piece(tokenizer->eos_id());
  auto add = [&](std::string_view token) {
    const int32_t id = tokenizer->TokenId(token);
    if (id >= 0) stop_ids_.push_back(id);
  };
  switch (family) {
    case Family::kLlama3:
    case Family::kLlama31:
      add("<|eot_id|>");
      add("<|end_of_text|>");
      add("<|eom_id|>");
      if (bos_.empty()) bos_ = "<|begin_of_text|>";
      break;
    case Family::kChatML:
      add("<|im_end|>");
      add("<|endoftext|>");
      break;
    case Family::kLlama2:
      if (tokenizer->eos_id() >= 0) stop_ids_.push_back(tokenizer->eos_id());
      break;
  }
}

ChatTemplate ChatTemplate::Detect(const Tokenizer& tokenizer,
                                  const std::string& config_template) {
  const auto has = [&](std::string_view token) {
    return tokenizer.TokenId(token) >= 0;
  };
  if (has("<|start_header_id|>") && has("<|eot_id|>")) {
    return ChatTemplate(
        &tokenizer,
        config_template.find("Cutting Knowledge Date") != std::string::npos
            ? Family::kLlama31
            : Family::kLlama3);
  }
  if (has("<|im_start|>") && has("<|im_end|>"))
    return ChatTemplate(&tokenizer, Family::kChatML);
  return ChatTemplate(&tokenizer, Family::kLlama2);
}

std::string ChatTemplate::name() const {
  switch (family_) {
    case Family::kLlama3:
      return "llama3";
    case Family::kLlama31:
      return "llama3.1";
    case Family::kChatML:
      return "chatml";
    case Family::kLlama2:
      return "llama2";
  }
  return "";
}

absl::StatusOr<std::string> ChatTemplate::Render(
    const std::vector<ChatTurn>& turns) const {
  if (absl::Status s = CheckRoles(turns); !s.ok()) return s;
  std::string out;
  switch (family_) {
    case Family::kLlama3:
      // bos + per message: header, trimmed content, eot; then the assistant
      // header (Meta-Llama-3-8B-Instruct's template).
      out = bos_;
      for (const ChatTurn& t : turns) {
        absl::StrAppend(&out, "<|start_header_id|>", t.role,
                        "<|end_header_id|>\n\n", Trim(t.content), "<|eot_id|>");
      }
      out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case Family::kLlama31: {
      // Llama-3.1: the system turn always comes first, with the knowledge
      // and today dates of the template's defaults.
      size_t first = 0;
      std::string system;
      if (turns[0].role == "system") {
        system = Trim(turns[0].content);
        first = 1;
      }
      out =
          bos_ + "<|start_header_id|>system<|end_header_id|>\n\n" +
          "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
          system + "<|eot_id|>";
      for (size_t i = first; i < turns.size(); ++i) {
        if (turns[i].role == "system") {
          return absl::InvalidArgumentError(absl::StrCat(
              "messages[", i,
              "]: only the first message may be a system message"));
        }
        absl::StrAppend(&out, "<|start_header_id|>", turns[i].role,
                        "<|end_header_id|>\n\n", Trim(turns[i].content),
                        "<|eot_id|>");
      }
      out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    }
    case Family::kChatML:
      // Qwen2-Instruct: a default system turn when none is given.
      if (turns[0].role != "system") {
        out = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
      }
      for (const ChatTurn& t : turns) {
        absl::StrAppend(&out, "<|im_start|>", t.role, "\n", t.content,
                        "<|im_end|>\n");
      }
      out += "<|im_start|>assistant\n";
      return out;
    case Family::kLlama2: {
      // Llama-2-chat: the system prompt folds into the first user turn;
      // turns alternate user / assistant, ending with a user turn.
      size_t first = 0;
      std::string system;
      if (turns[0].role == "system") {
        system = turns[0].content;
        first = 1;
      }
      if (first == turns.size()) {
        return absl::InvalidArgumentError(
            "messages: a user message is required after the system one");
      }
      for (size_t i = first; i < turns.size(); ++i) {
        const bool user_turn = (i - first) % 2 == 0;
        if (turns[i].role != (user_turn ? "user" : "assistant")) {
          return absl::InvalidArgumentError(absl::StrCat(
              "messages[", i,
              "].role: Llama-2 chat alternates user and assistant turns, "
              "starting with user; expected \"",
              user_turn ? "user" : "assistant", "\""));
        }
        std::string content = turns[i].content;
        if (i == first && first == 1) {
          content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
        }
        if (user_turn) {
          absl::StrAppend(&out, bos_, "[INST] ", Trim(content), " [/INST]");
        } else {
          absl::StrAppend(&out, " ", Trim(content), " ", eos_);
        }
      }
      return out;
    }
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> ChatTemplate::Apply(
    const std::vector<ChatTurn>& turns) const {
  absl::StatusOr<std::string> text = Render(turns);
  if (!text.ok()) return text.status();
  if (tokenizer_->kind() != "sentencepiece") {
    // tokenizer.json tokenizers find special-token text themselves.
    return tokenizer_->Encode(*text, /*add_special_tokens=*/false);
  }
  // SentencePiece does not: split at the BOS / EOS texts.
  std::vector<int32_t> ids;
  size_t at = 0;
  while (at < text->size()) {
    size_t next = std::string::npos;
    int32_t special = -1;
    size_t length = 0;
    for (const auto& [token, id] : {std::pair{bos_, tokenizer_->bos_id()},
                                    std::pair{eos_, tokenizer_->eos_id()}}) {
      if (token.empty() || id < 0) continue;
      const size_t found = text->find(token, at);
      if (found < next) {
        next = found;
        special = id;
        length = token.size();
      }
    }
    const std::string_view part = std::string_view(*text).substr(
        at, next == std::string::npos ? std::string::npos : next - at);
    if (!part.empty()) {
      const std::vector<int32_t> part_ids = tokenizer_->Encode(part, false);
      ids.insert(ids.end(), part_ids.begin(), part_ids.end());
    }
    if (next == std::string::npos) break;
    ids.push_back(special);
    at = next + length;
  }
  return ids;
}

}  // namespace coldcompress
