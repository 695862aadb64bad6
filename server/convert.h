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
#include "server/policy_request.h"

namespace coldcompress {

class Engine;

// Tokenizes the input and maps every field; INVALID_ARGUMENT naming the field.
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
