// Turns generated token ids into streamed text: holds back bytes of an
// unfinished UTF-8 character and any tail that may still become a stop
// string, and finds stop strings.
#ifndef COLDCOMPRESS_SERVER_ENGINE_TEXT_STREAM_H_
#define COLDCOMPRESS_SERVER_ENGINE_TEXT_STREAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/tokenizer/tokenizer.h"

namespace coldcompress {

class TextStream {
 public:
  // `tokenizer` must outlive the stream.
  TextStream(const Tokenizer* tokenizer, std::vector<std::string> stops);

  // Adds one generated token; returns the text that became safe to emit.
  std::string Push(int32_t token);
  // True once a stop string appeared; text() then ends before it.
  bool stopped() const { return stopped_; }
  // Flushes what was held back (at the end of generation).
  std::string Finish();
  // All text emitted so far plus what Finish() would emit.
  const std::string& text() const { return text_; }

 private:
  const Tokenizer* tokenizer_;
  std::vector<std::string> stops_;
  std::vector<int32_t> ids_;
  std::string text_;    // decoded text, cut at a stop string
  size_t emitted_ = 0;  // bytes of text_ already returned
  bool stopped_ = false;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_ENGINE_TEXT_STREAM_H_
