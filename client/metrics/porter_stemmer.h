// The Porter stemmer of NLTK (nltk.stem.porter.PorterStemmer() in its
// default NLTK_EXTENSIONS mode), which rouge-score applies with use_stemmer.
#ifndef COLDCOMPRESS_CLIENT_METRICS_PORTER_STEMMER_H_
#define COLDCOMPRESS_CLIENT_METRICS_PORTER_STEMMER_H_

#include <string>
#include <string_view>

namespace coldcompress::client {

// The stem of `word` exactly as NLTK's PorterStemmer().stem(word) for a
// lowercase word. REQUIRES: `word` is lowercase ASCII (what the ROUGE
// tokenizer produces); other bytes count as consonants, as in NLTK.
std::string PorterStem(std::string_view word);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_METRICS_PORTER_STEMMER_H_
