// A request's cache policy and session id, from the protobuf API to the
// policy layer's types: no engine, no tokenizer (the fuzz targets use it
// alone).
#ifndef COLDCOMPRESS_SERVER_POLICY_REQUEST_H_
#define COLDCOMPRESS_SERVER_POLICY_REQUEST_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coldcompress/v1/coldcompress.pb.h"
#include "server/config.h"

namespace coldcompress {

// A repeated protobuf field as a vector.
template <typename T>
std::vector<T> ToVector(const google::protobuf::RepeatedField<T>& r) {
  return std::vector<T>(r.begin(), r.end());
}
inline std::vector<std::string> ToVector(
    const google::protobuf::RepeatedPtrField<std::string>& r) {
  return std::vector<std::string>(r.begin(), r.end());
}

struct PresetStore {
  std::map<std::string, CachePreset> presets;
  std::string default_preset = "full";
};

// The fields a request's CachePolicy sets (config_name aside).
PolicyOverlay ToOverlay(const v1::CachePolicy& policy);
void ToProto(const PolicyOverlay& overlay, v1::CachePolicy* out);

// The request's policy: the defaults, then the preset it names (or the
// server's default preset), then the fields it sets. `*given` tells whether
// the request set anything.
absl::StatusOr<PolicySpec> ToPolicySpec(const v1::CachePolicy& policy,
                                        const PresetStore& presets,
                                        bool* given);

// A session id: 1 to 256 bytes, no control characters (it shows up in logs
// and error messages). INVALID_ARGUMENT naming session_id otherwise.
absl::Status CheckSessionId(const std::string& id);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_POLICY_REQUEST_H_
