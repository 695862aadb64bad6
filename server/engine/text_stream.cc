#include "server/engine/text_stream.h"

#include <algorithm>

namespace coldcompress {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the longest suffix of `text` that is a proper prefix of a stop
// string: those bytes might still complete into a stop.
size_t HeldForStops(const std::string& text,
                    const std::vector<std::string>& stops) {
  size_t held = 0;
  for (const std::string& stop : stops) {
    for (size_t n = std::min(stop.size() - 1, text.size()); n > held; --n) {
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        held = n;
        break;
      }
    }
  }
  return held;
}

}  // namespace

TextStream::TextStream(const Tokenizer* tokenizer,
                       std::vector<std::string> stops)
    : tokenizer_(tokenizer) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string TextStream::Push(int32_t token) {
  if (stopped_) return "";
  ids_.push_back(token);
  std::string decoded = tokenizer_->Decode(ids_, /*skip_special_tokens=*/true);
  // A trailing U+FFFD is an unfinished character: wait for its other bytes.
  const bool incomplete =
      decoded.size() >= kReplacement.size() &&
      decoded.compare(decoded.size() - kReplacement.size(), kReplacement.size(),
                      kReplacement) == 0;
  // Search for stops only in the region that can contain a new one.
  size_t longest = 0;
  for (const std::string& s : stops_) longest = std::max(longest, s.size());
  const size_t from = emitted_ > longest ? emitted_ - longest : 0;
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    const size_t at = decoded.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    decoded.resize(cut);
    stopped_ = true;
  }
  text_ = std::move(decoded);
  if (stopped_) return Finish();
  if (incomplete) return "";
  const size_t safe = text_.size() - HeldForStops(text_, stops_);
  if (safe <= emitted_) return "";
  std::string out = text_.substr(emitted_, safe - emitted_);
  emitted_ = safe;
  return out;
}

std::string TextStream::Finish() {
  if (emitted_ >= text_.size()) return "";
  std::string out = text_.substr(emitted_);
  emitted_ = text_.size();
  return out;
}

}  // namespace coldcompress
