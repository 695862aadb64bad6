// Reader and writer of the safetensors format: an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}}, raw
// little-endian data. The reader memory-maps the file and copies one tensor at
// a time into the serving dtype.
#ifndef COLDCOMPRESS_SERVER_MODEL_SAFETENSORS_H_
#define COLDCOMPRESS_SERVER_MODEL_SAFETENSORS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace coldcompress {

struct SafetensorInfo {
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file: header bounds, JSON, dtypes, offsets.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorInfo>& tensors() const {
    return tensors_;
  }
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }

  // A new CPU tensor holding `name` converted to `dtype`. NOT_FOUND when
  // absent.
  absl::StatusOr<at::Tensor> Load(const std::string& name,
                                  at::ScalarType dtype) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, SafetensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (any device and dtype; stored as each tensor's dtype) to
// `path`. Names must be unique.
absl::Status WriteSafetensors(
    const std::string& path,
    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

// "F32" <-> at::kFloat etc. for F64, F32, F16, BF16, I64, I32, I8, U8, BOOL.
absl::StatusOr<at::ScalarType> SafetensorsDtype(const std::string& name);
std::string SafetensorsDtypeName(at::ScalarType dtype);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_MODEL_SAFETENSORS_H_
