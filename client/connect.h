// Channels to ColdCompress servers: plaintext, TLS or mutual TLS, with a
// bearer token on every call, configured from the environment so that no
// secret appears on a command line:
//   COLDCOMPRESS_TOKEN      bearer token sent as "authorization: Bearer ..."
//   COLDCOMPRESS_TLS_CA     PEM of the CA that signed the servers' certificates
//                           (set: TLS; unset: plaintext)
//   COLDCOMPRESS_TLS_CERT,  this client's certificate and key (PEM), for
//   COLDCOMPRESS_TLS_KEY    servers that require mutual TLS
#ifndef COLDCOMPRESS_CLIENT_CONNECT_H_
#define COLDCOMPRESS_CLIENT_CONNECT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace coldcompress::client {

struct ConnectOptions {
  std::string token;
  std::string tls_ca_file;  // empty: plaintext
  std::string tls_cert_file;
  std::string tls_key_file;
};

// From the variables above.
ConnectOptions ConnectOptionsFromEnv();

// A channel to `address` with `args`; INVALID_ARGUMENT naming the variable
// when a PEM file cannot be read or only one of cert and key is given.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const ConnectOptions& options,
    const grpc::ChannelArguments& args);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_CONNECT_H_
