// The gRPC service: translates messages and statuses, nothing more. The
// engine behind it is installed once the model has loaded; until then every
// RPC answers UNAVAILABLE.
#ifndef COLDCOMPRESS_SERVER_SERVICE_H_
#define COLDCOMPRESS_SERVER_SERVICE_H_

#include <atomic>
#include <string>

#include "coldcompress/v1/coldcompress.grpc.pb.h"
#include "server/convert.h"

namespace coldcompress {

class Engine;

struct ServiceInfo {
  std::string model_name;
  std::string device;
  std::string version;
  int metrics_port = 0;  // of /metrics, reported by GetServerInfo
  PresetStore presets;
};

// Generate, Score and Tokenize take raw buffers (they carry free text and
// parse it themselves: wire.h); the others take messages.
using ColdCompressServiceBase =
    v1::ColdCompress::WithRawCallbackMethod_Generate<
        v1::ColdCompress::WithRawCallbackMethod_Score<
            v1::ColdCompress::WithRawCallbackMethod_Tokenize<
                v1::ColdCompress::WithCallbackMethod_ListPolicies<
                    v1::ColdCompress::WithCallbackMethod_GetSession<
                        v1::ColdCompress::WithCallbackMethod_CloseSession<
                            v1::ColdCompress::WithCallbackMethod_GetServerInfo<
                                v1::ColdCompress::Service>>>>>>>;

class ColdCompressService final : public ColdCompressServiceBase {
 public:
  ColdCompressService() = default;

  // Makes the service answer with `engine` (which must outlive the service's
  // calls).
  void SetEngine(Engine* engine, ServiceInfo info);

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListPolicies(
      grpc::CallbackServerContext* context,
      const v1::ListPoliciesRequest* request,
      v1::ListPoliciesResponse* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* context,
                                       const v1::GetSessionRequest* request,
                                       v1::SessionInfo* response) override;
  grpc::ServerUnaryReactor* CloseSession(
      grpc::CallbackServerContext* context,
      const v1::CloseSessionRequest* request,
      v1::CloseSessionResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(
      grpc::CallbackServerContext* context,
      const v1::GetServerInfoRequest* request,
      v1::ServerInfo* response) override;

 private:
  std::atomic<Engine*> engine_{nullptr};
  ServiceInfo info_;  // written once before engine_ is published
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_SERVICE_H_
