// Requests and responses as raw gRPC byte buffers, for the methods that take
// free text: protobuf refuses to parse a string field holding invalid UTF-8,
// and gRPC would answer with a bare error; this parse says which field.
#ifndef COLDCOMPRESS_SERVER_WIRE_H_
#define COLDCOMPRESS_SERVER_WIRE_H_

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>

#include <string>

#include "absl/status/status.h"

namespace coldcompress {

// Parses `buffer` into `message`. INVALID_ARGUMENT naming the field (e.g.
// "messages.messages[1].content: is not valid UTF-8") when a string field
// holds invalid UTF-8, or saying the request is malformed.
absl::Status ParseRequest(const grpc::ByteBuffer& buffer,
                          google::protobuf::Message* message);

// The dotted path of the first string field of `bytes` (wire format of
// `descriptor`) that is not valid UTF-8, or "" when there is none.
std::string FindInvalidUtf8Field(const google::protobuf::Descriptor* descriptor,
                                 const std::string& bytes);

void SerializeToBuffer(const google::protobuf::Message& message,
                       grpc::ByteBuffer* buffer);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_WIRE_H_
