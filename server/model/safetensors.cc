#include "server/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"

namespace coldcompress {
namespace {

// A header longer than this is not a model file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

absl::Status Corrupt(const std::string& path, const std::string& what) {
  return absl::DataLossError(absl::StrCat(path, ": ", what));
}

}  // namespace

absl::StatusOr<at::ScalarType> SafetensorsDtype(const std::string& name) {
  static const std::pair<const char*, at::ScalarType> kTable[] = {
      {"F64", at::kDouble},    {"F32", at::kFloat}, {"F16", at::kHalf},
      {"BF16", at::kBFloat16}, {"I64", at::kLong},  {"I32", at::kInt},
      {"I8", at::kChar},       {"U8", at::kByte},   {"BOOL", at::kBool}};
  for (const auto& [n, t] : kTable) {
    if (name == n) return t;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported safetensors dtype \"", name, "\""));
}

std::string SafetensorsDtypeName(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble:
      return "F64";
    case at::kFloat:
      return "F32";
    case at::kHalf:
      return "F16";
    case at::kBFloat16:
      return "BF16";
    case at::kLong:
      return "I64";
    case at::kInt:
      return "I32";
    case at::kChar:
      return "I8";
    case at::kByte:
      return "U8";
    case at::kBool:
      return "BOOL";
    default:
      return "";
  }
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot stat ", path));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Corrupt(path, "shorter than the 8-byte header length");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("cannot map ", path));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = map;
  file->map_size_ = size;
  const auto* bytes = static_cast<const uint8_t*>(map);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    return Corrupt(path, absl::StrCat("header length ", header_len,
                                      " exceeds the file size ", size));
  }
  file->data_ = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  nlohmann::json header = nlohmann::json::parse(
      bytes + 8, bytes + 8 + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Corrupt(path, "the header is not a JSON object");
  }
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        return Corrupt(path, "__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (v.is_string()) file->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") ||
        !entry.contains("shape") || !entry.contains("data_offsets") ||
        !entry["dtype"].is_string() || !entry["shape"].is_array() ||
        !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      return Corrupt(path, absl::StrCat("malformed entry for tensor ", name));
    }
    absl::StatusOr<at::ScalarType> dtype =
        SafetensorsDtype(entry["dtype"].get<std::string>());
    if (!dtype.ok())
      return Corrupt(path, absl::StrCat(name, ": ", dtype.status().message()));
    SafetensorInfo info;
    info.dtype = *dtype;
    uint64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned())
        return Corrupt(path, absl::StrCat(name, ": bad shape"));
      info.shape.push_back(d.get<int64_t>());
      numel *= d.get<uint64_t>();
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      return Corrupt(path, absl::StrCat(name, ": bad data_offsets"));
    }
    info.begin = offsets[0].get<uint64_t>();
    info.end = offsets[1].get<uint64_t>();
    const uint64_t expected = numel * at::elementSize(info.dtype);
    if (info.end < info.begin || info.end > data_size ||
        info.end - info.begin != expected) {
      return Corrupt(path, absl::StrCat(name, ": data_offsets [", info.begin,
                                        ", ", info.end, ") do not hold ",
                                        expected, " bytes inside ", data_size));
    }
    file->tensors_.emplace(name, std::move(info));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

absl::StatusOr<at::Tensor> SafetensorsFile::Load(const std::string& name,
                                                 at::ScalarType dtype) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor ", name));
  }
  const SafetensorInfo& info = it->second;
  // The mapping is read-only; from_blob only borrows it for the copy below.
  at::Tensor view =
      at::from_blob(const_cast<uint8_t*>(data_ + info.begin), info.shape,
                    at::TensorOptions().dtype(info.dtype));
  return view.to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

absl::Status WriteSafetensors(
    const std::string& path,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> contiguous;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate tensor ", name));
    }
    const std::string dtype = SafetensorsDtypeName(tensor.scalar_type());
    if (dtype.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": dtype not storable in safetensors"));
    }
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t n = t.nbytes();
    header[name] = {{"dtype", dtype},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
    contiguous.push_back(std::move(t));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const at::Tensor& t : contiguous) {
    out.write(static_cast<const char*>(t.data_ptr()),
              static_cast<std::streamsize>(t.nbytes()));
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("failed writing ", path));
  return absl::OkStatus();
}

}  // namespace coldcompress
