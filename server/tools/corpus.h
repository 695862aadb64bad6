// A deterministic generator of English-like text (prose, dialogue, numbers,
// lists, a little code) for training small SentencePiece vocabularies without
// downloading anything.
#ifndef COLDCOMPRESS_SERVER_TOOLS_CORPUS_H_
#define COLDCOMPRESS_SERVER_TOOLS_CORPUS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace coldcompress {

// About `bytes` bytes of text, one paragraph per line; the same seed gives the
// same text.
std::string GenerateCorpus(uint64_t seed, size_t bytes);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_TOOLS_CORPUS_H_
