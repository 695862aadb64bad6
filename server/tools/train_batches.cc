#include "server/tools/train_batches.h"

#include <zlib.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace coldcompress {
namespace {

constexpr char kMagic[4] = {'C', 'C', 'T', 'B'};
constexpr uint32_t kVersion = 1;

template <typename T>
void Put(std::string* out, T value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(value));
}

// Reads from a byte range, remembering whether it ran past the end.
class Cursor {
 public:
  Cursor(const std::string& bytes, size_t at) : bytes_(bytes), at_(at) {}
  template <typename T>
  T Get() {
    T value{};
    if (at_ + sizeof(T) > bytes_.size()) {
      short_ = true;
      return value;
    }
    std::memcpy(&value, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return value;
  }
  std::string Bytes(size_t n) {
    if (at_ + n > bytes_.size()) {
      short_ = true;
      return {};
    }
    std::string out = bytes_.substr(at_, n);
    at_ += n;
    return out;
  }
  bool short_read() const { return short_; }
  bool done() const { return at_ == bytes_.size(); }

 private:
  const std::string& bytes_;
  size_t at_;
  bool short_ = false;
};

// One sequence: its kind, its tokens in 16 bits, its targets as runs.
absl::Status PutSequence(const TrainSequence& s, std::string* out) {
  if (s.kind.size() > 255 || s.tokens.size() != s.target.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a \"", s.kind, "\" sequence cannot be written"));
  }
  Put<uint8_t>(out, static_cast<uint8_t>(s.kind.size()));
  out->append(s.kind);
  Put<uint32_t>(out, static_cast<uint32_t>(s.tokens.size()));
  for (int32_t t : s.tokens) {
    if (t < 0 || t > 0xffff) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", t, " does not fit 16 bits"));
    }
    Put<uint16_t>(out, static_cast<uint16_t>(t));
  }
  std::vector<std::pair<uint8_t, uint32_t>> runs;
  for (uint8_t kind : s.target) {
    if (runs.empty() || runs.back().first != kind) runs.emplace_back(kind, 0);
    ++runs.back().second;
  }
  Put<uint32_t>(out, static_cast<uint32_t>(runs.size()));
  for (const auto& [kind, count] : runs) {
    Put<uint8_t>(out, kind);
    Put<uint32_t>(out, count);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteBatchFile(
    const std::string& path, const nlohmann::json& header,
    const std::function<absl::StatusOr<TrainBatch>(int64_t)>& make,
    const std::function<void(int64_t)>& progress) {
  const int64_t first = header.at("first_step"), steps = header.at("steps");
  // gzip: a haystack's noise lines repeat, and the file travels to the GPU
  // machine inside a size limit.
  gzFile file = gzopen(path.c_str(), "wb6");
  if (file == nullptr)
    return absl::InternalError(absl::StrCat("cannot write ", path));
  auto flush = [&](std::string* bytes) {
    const bool ok =
        bytes->empty() ||
        gzwrite(file, bytes->data(), static_cast<unsigned>(bytes->size())) ==
            static_cast<int>(bytes->size());
    bytes->clear();
    return ok;
  };
  std::string out(kMagic, sizeof(kMagic));
  Put<uint32_t>(&out, kVersion);
  const std::string text = header.dump();
  Put<uint32_t>(&out, static_cast<uint32_t>(text.size()));
  out += text;
  for (int64_t step = first; step < steps; ++step) {
    absl::StatusOr<TrainBatch> batch = make(step);
    absl::Status status = batch.status();
    if (batch.ok()) {
      Put<uint32_t>(&out, static_cast<uint32_t>(batch->size()));
      for (const TrainSequence& s : *batch) {
        if (status = PutSequence(s, &out); !status.ok()) break;
      }
    }
    if (status.ok() && !flush(&out))
      status = absl::InternalError(absl::StrCat("cannot write ", path));
    if (!status.ok()) {
      gzclose(file);
      return status;
    }
    progress(step);
  }
  const bool written = flush(&out);
  if (gzclose(file) != Z_OK || !written)
    return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<BatchFile> ReadBatchFile(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr)
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string bytes;
  char chunk[1 << 16];
  int n = 0;
  while ((n = gzread(file, chunk, sizeof(chunk))) > 0) bytes.append(chunk, n);
  const bool read_all = n == 0;
  gzclose(file);
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a cc-train batch file (", what, ")"));
  };
  if (!read_all) return bad("its compressed stream is damaged");
  if (bytes.size() < 12 || std::memcmp(bytes.data(), kMagic, 4) != 0)
    return bad("no CCTB header");
  Cursor in(bytes, 4);
  if (const uint32_t version = in.Get<uint32_t>(); version != kVersion)
    return bad(absl::StrCat("version ", version, ", expected ", kVersion));
  const std::string text = in.Bytes(in.Get<uint32_t>());
  BatchFile out;
  out.header = nlohmann::json::parse(text, nullptr, false);
  if (in.short_read() || out.header.is_discarded() ||
      !out.header.contains("first_step") || !out.header.contains("steps"))
    return bad("its header");
  out.first_step = out.header["first_step"].get<int64_t>();
  const int64_t steps = out.header["steps"].get<int64_t>();
  for (int64_t step = out.first_step; step < steps; ++step) {
    TrainBatch batch(in.Get<uint32_t>());
    for (TrainSequence& s : batch) {
      s.kind = in.Bytes(in.Get<uint8_t>());
      const uint32_t n = in.Get<uint32_t>();
      if (in.short_read() || n > bytes.size()) return bad("cut short");
      s.tokens.resize(n);
      for (int32_t& t : s.tokens) t = in.Get<uint16_t>();
      const uint32_t runs = in.Get<uint32_t>();
      for (uint32_t r = 0; r < runs && !in.short_read(); ++r) {
        const uint8_t kind = in.Get<uint8_t>();
        const uint32_t count = in.Get<uint32_t>();
        if (s.target.size() + count > n) return bad("targets past the end");
        s.target.insert(s.target.end(), count, kind);
      }
      if (in.short_read()) return bad("cut short");
      if (s.target.size() != n) return bad("targets short of the tokens");
    }
    out.batches.push_back(std::move(batch));
  }
  if (!in.done()) return bad("bytes after the last step");
  return out;
}

}  // namespace coldcompress
