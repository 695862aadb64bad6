// The one mapping from absl status codes to gRPC status codes.
#ifndef COLDCOMPRESS_SERVER_STATUS_H_
#define COLDCOMPRESS_SERVER_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace coldcompress {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_STATUS_H_
