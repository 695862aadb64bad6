// Translation between the protobuf API and the engine's plain types, with the
// request validation that belongs to the API layer (field presence, oneofs).
#ifndef COLDCOMPRESS_SERVER_CONVERT_H_
#define COLDCOMPRESS_SERVER_CONVERT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "coldcompress/v1/coldcompress.pb.h"
#include "server/config.h"
#include "server/engine/types.h"

namespace coldcompress {

class Engine;

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

// Tokenizes the input and maps every field; INVALID_ARGUMENT naming the field.
// A session id: 1 to 256 bytes, no control characters (it shows up in logs
// and error messages). INVALID_ARGUMENT naming session_id otherwise.
absl::Status CheckSessionId(const std::string& id);

absl::StatusOr<GenerateInput> ToGenerateInput(
    const v1::GenerateRequest& request, const Engine& engine,
    const PresetStore& presets);
absl::StatusOr<ScoreInput> ToScoreInput(const v1::ScoreRequest& request,
                                        const Engine& engine,
                                        const PresetStore& presets);

void ToProto(const CacheStatsResult& stats, v1::CacheStats* out);
void ToProto(const GenerateFinal& final, v1::FinalResult* out);
void ToProto(const SessionSnapshot& snapshot, v1::SessionInfo* out);
void ToProto(const ScoreOutput& output, v1::ScoreResponse* out);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_CONVERT_H_
