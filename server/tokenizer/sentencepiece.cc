// SentencePiece behind the Tokenizer interface, built as a loadable module
// (libcc_spm.so). Two reasons keep it apart:
//  - Debian's sentencepiece_processor.h defines its own absl::string_view shim
//    that clashes with real Abseil, so this file includes neither Abseil nor
//    gRPC;
//  - Debian's libsentencepiece bundles and exports its own protobuf-lite. In
//    the global symbol scope next to libprotobuf (which LibTorch and gRPC
//    load) one copy's code runs on the other's data and crashes at start-up,
//    so the module is opened with RTLD_LOCAL | RTLD_DEEPBIND
//    (sentencepiece_loader.cc) and each library keeps its own protobuf.
#include <sentencepiece_processor.h>

#include "server/tokenizer/tokenizer.h"

namespace coldcompress {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(
      std::unique_ptr<sentencepiece::SentencePieceProcessor> sp, bool add_bos)
      : sp_(std::move(sp)), add_bos_(add_bos) {}

  std::vector<int32_t> Encode(std::string_view text,
                              bool add_special_tokens) const override {
    std::vector<int> ids;
    sp_->Encode(std::string(text), &ids).IgnoreError();
    std::vector<int32_t> out;
    out.reserve(ids.size() + 1);
    if (add_special_tokens && add_bos_ && sp_->bos_id() >= 0) {
      out.push_back(sp_->bos_id());
    }
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  std::string Decode(const std::vector<int32_t>& ids,
                     bool skip_special_tokens) const override {
    // SentencePiece decodes control tokens to nothing either way.
    std::vector<int> in(ids.begin(), ids.end());
    std::string text;
    sp_->Decode(in, &text).IgnoreError();
    return text;
  }

  std::string Piece(int32_t id) const override { return sp_->IdToPiece(id); }
  int32_t vocab_size() const override { return sp_->GetPieceSize(); }
  int32_t bos_id() const override { return sp_->bos_id(); }
  int32_t eos_id() const override { return sp_->eos_id(); }
  std::vector<int32_t> SpecialIds() const override {
    std::vector<int32_t> ids;
    for (int id = 0; id < sp_->GetPieceSize(); ++id) {
      if (sp_->IsControl(id) || sp_->IsUnknown(id)) ids.push_back(id);
    }
    return ids;
  }
  std::string kind() const override { return "sentencepiece"; }
  int32_t TokenId(std::string_view token) const override {
    const int id = sp_->PieceToId(std::string(token));
    return id == sp_->unk_id() && token != sp_->IdToPiece(id) ? -1 : id;
  }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  bool add_bos_;
};

}  // namespace coldcompress

// The module's one entry point (see sentencepiece_loader.cc). Returns a new
// Tokenizer owned by the caller, or nullptr with *error set.
extern "C" __attribute__((visibility("default"))) coldcompress::Tokenizer*
coldcompress_load_sentencepiece(const char* path, bool add_bos,
                                std::string* error) {
  using coldcompress::SentencePieceTokenizer;
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(path);
  if (!status.ok()) {
    *error = std::string("cannot load SentencePiece model ") + path + ": " +
             status.ToString();
    return nullptr;
  }
  return new SentencePieceTokenizer(std::move(sp), add_bos);
}
