#include "client/connect.h"

#include <grpcpp/support/client_interceptor.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace coldcompress::client {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    const char* variable) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(variable, ": cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Adds the authorization metadata to every call of the channel.
class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string* header) : header_(header) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", *header_);
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;
};

class BearerFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerFactory(std::string token)
      : header_("Bearer " + std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(&header_);
  }

 private:
  const std::string header_;  // lives as long as the channel
};

}  // namespace

ConnectOptions ConnectOptionsFromEnv() {
  ConnectOptions o;
  o.token = Env("COLDCOMPRESS_TOKEN");
  o.tls_ca_file = Env("COLDCOMPRESS_TLS_CA");
  o.tls_cert_file = Env("COLDCOMPRESS_TLS_CERT");
  o.tls_key_file = Env("COLDCOMPRESS_TLS_KEY");
  return o;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const ConnectOptions& options,
    const grpc::ChannelArguments& args) {
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "COLDCOMPRESS_TLS_CERT and COLDCOMPRESS_TLS_KEY: set both or neither");
  }
  if (!options.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    absl::StatusOr<std::string> ca =
        ReadPem(options.tls_ca_file, "COLDCOMPRESS_TLS_CA");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    if (!options.tls_cert_file.empty()) {
      absl::StatusOr<std::string> cert =
          ReadPem(options.tls_cert_file, "COLDCOMPRESS_TLS_CERT");
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key =
          ReadPem(options.tls_key_file, "COLDCOMPRESS_TLS_KEY");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    credentials = grpc::SslCredentials(ssl);
  } else if (!options.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "COLDCOMPRESS_TLS_CERT: a client certificate needs COLDCOMPRESS_TLS_CA "
        "(TLS)");
  }
  if (options.token.empty())
    return grpc::CreateCustomChannel(address, credentials, args);
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<BearerFactory>(options.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, credentials, args, std::move(interceptors));
}

}  // namespace coldcompress::client
