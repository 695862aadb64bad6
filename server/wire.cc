#include "server/wire.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/unknown_field_set.h>

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/tokenizer/unicode.h"

namespace coldcompress {

std::string FindInvalidUtf8Field(const google::protobuf::Descriptor* descriptor,
                                 const std::string& bytes) {
  using google::protobuf::FieldDescriptor;
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(bytes)) return "";
  std::map<int, int> seen;  // field number -> occurrences so far
  for (int i = 0; i < fields.field_count(); ++i) {
    const google::protobuf::UnknownField& f = fields.field(i);
    if (f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
      continue;
    const FieldDescriptor* fd = descriptor->FindFieldByNumber(f.number());
    if (fd == nullptr) continue;
    const int index = seen[f.number()]++;
    const std::string name = fd->is_repeated()
                                 ? absl::StrCat(fd->name(), "[", index, "]")
                                 : fd->name();
    if (fd->type() == FieldDescriptor::TYPE_STRING &&
        !IsValidUtf8(f.length_delimited())) {
      return name;
    }
    if (fd->type() == FieldDescriptor::TYPE_MESSAGE) {
      const std::string inner =
          FindInvalidUtf8Field(fd->message_type(), f.length_delimited());
      if (!inner.empty()) return fd->is_map() ? fd->name() : name + "." + inner;
    }
  }
  return "";
}

absl::Status ParseRequest(const grpc::ByteBuffer& buffer,
                          google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok())
    return absl::InvalidArgumentError("unreadable request");
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (message->ParseFromString(bytes)) return absl::OkStatus();
  const std::string field =
      FindInvalidUtf8Field(message->GetDescriptor(), bytes);
  if (!field.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": is not valid UTF-8"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the request is not a valid ", message->GetTypeName()));
}

void SerializeToBuffer(const google::protobuf::Message& message,
                       grpc::ByteBuffer* buffer) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  *buffer = grpc::ByteBuffer(&slice, 1);
}

}  // namespace coldcompress
