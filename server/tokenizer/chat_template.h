// Chat templates of the four model families: Llama-3 (and 3.1) header/eot
// turns, ChatML (Qwen2), Llama-2 [INST]. Chosen from the checkpoint's
// tokenizer; each renders exactly what the family's Jinja template renders.
#ifndef COLDCOMPRESS_SERVER_TOKENIZER_CHAT_TEMPLATE_H_
#define COLDCOMPRESS_SERVER_TOKENIZER_CHAT_TEMPLATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/tokenizer/tokenizer.h"

namespace coldcompress {

struct ChatTurn {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  enum class Family { kLlama3, kLlama31, kChatML, kLlama2 };

  // Llama-3 when the tokenizer has <|start_header_id|> and <|eot_id|> (3.1
  // when tokenizer_config.json's chat_template mentions "Cutting Knowledge
  // Date"), ChatML when it has <|im_start|> and <|im_end|>, else Llama-2.
  static ChatTemplate Detect(const Tokenizer& tokenizer,
                             const std::string& config_template);

  Family family() const { return family_; }
  std::string name() const;

  // The prompt text, ending with the generation prompt of the family, special
  // tokens written out. INVALID_ARGUMENT naming the message on bad roles or
  // order.
  absl::StatusOr<std::string> Render(const std::vector<ChatTurn>& turns) const;
  // The token ids of Render(turns): special tokens by id, text without
  // adding special tokens.
  absl::StatusOr<std::vector<int32_t>> Apply(
      const std::vector<ChatTurn>& turns) const;
  // The family's end-of-turn ids (generation stops there).
  std::vector<int32_t> StopIds() const { return stop_ids_; }

 private:
  ChatTemplate(const Tokenizer* tokenizer, Family family);

  const Tokenizer* tokenizer_;
  Family family_;
  std::string bos_, eos_;  // token texts
  std::vector<int32_t> stop_ids_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOKENIZER_CHAT_TEMPLATE_H_
