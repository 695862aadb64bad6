#include "server/tokenizer/token_classes.h"

#include <cctype>

namespace coldcompress {

bool IsPunctuationText(std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || !(std::isspace(u) || std::ispunct(u))) return false;
  }
  return true;
}

TokenClasses BuildTokenClasses(const Tokenizer& tokenizer) {
  TokenClasses classes;
  for (int32_t id : tokenizer.SpecialIds())
    classes.special_sequences.push_back({id});
  if (tokenizer.kind() == "sentencepiece") {
    for (const char* marker : {"[INST]", "[/INST]"}) {
      std::vector<int32_t> ids =
          tokenizer.Encode(marker, /*add_special_tokens=*/false);
      if (!ids.empty()) classes.special_sequences.push_back(std::move(ids));
    }
  }
  classes.punctuation.resize(tokenizer.vocab_size());
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    classes.punctuation[id] = IsPunctuationText(tokenizer.Decode({id}, false));
  }
  return classes;
}

}  // namespace coldcompress
