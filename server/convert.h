// Translation between the protobuf API and the engine's plain types, with the
// request validation that belongs to the API layer (field presence, oneofs).
#ifndef COLDCOMPRESS_SERVER_CONVERT_H_
#define COLDCOMPRESS_SERVER_CONVERT_H_

#include "absl/status/statusor.h"
#include "coldcompress/v1/coldcompress.pb.h"
#include "server/engine/types.h"

namespace coldcompress {

class Engine;

// The request's CachePolicy over the server default; `*given` tells whether
// the request set any field.
absl::StatusOr<PolicySpec> ToPolicySpec(const v1::CachePolicy& policy,
                                        bool* given);

// Tokenizes the input and maps every field; INVALID_ARGUMENT naming the field.
absl::StatusOr<GenerateInput> ToGenerateInput(
    const v1::GenerateRequest& request, const Engine& engine);
absl::StatusOr<ScoreInput> ToScoreInput(const v1::ScoreRequest& request,
                                        const Engine& engine);

void ToProto(const CacheStatsResult& stats, v1::CacheStats* out);
void ToProto(const GenerateFinal& final, v1::FinalResult* out);
void ToProto(const SessionSnapshot& snapshot, v1::SessionInfo* out);
void ToProto(const ScoreOutput& output, v1::ScoreResponse* out);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_CONVERT_H_
