// The gRPC service: translates messages and statuses, nothing more. The
// engine behind it is installed once the model has loaded; until then every
// RPC answers UNAVAILABLE.
#ifndef COLDCOMPRESS_SERVER_SERVICE_H_
#define COLDCOMPRESS_SERVER_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>

#include "coldcompress/v1/coldcompress.grpc.pb.h"
#include "server/convert.h"

namespace coldcompress {

class Authenticator;
class Engine;

struct ServiceInfo {
  std::string model_name;
  std::string device;
  std::string version;
  int metrics_port = 0;  // of /metrics, reported by GetServerInfo
  PresetStore presets;
  int64_t max_concurrent_streams = 128;  // Generate streams open at once
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
  // Bearer-token authentication of every call (set before serving).
  void SetAuthenticator(std::shared_ptr<const Authenticator> auth) {
    auth_ = std::move(auth);
  }
  // From now on every new call gets UNAVAILABLE (the server is draining);
  // calls in flight go on.
  void StartDraining() { draining_.store(true); }
  // Generate streams open now.
  int64_t open_streams() const { return open_streams_.load(); }

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
  // The engine, or nullptr with `*refusal` set: UNAUTHENTICATED without a
  // valid token, else UNAVAILABLE while loading or draining. `principal`:
  // who is asking ("anonymous" without authentication).
  Engine* Open(grpc::CallbackServerContext* context, grpc::Status* refusal,
               std::string* principal = nullptr) const;
  // Open, then INVALID_ARGUMENT for a malformed session id.
  Engine* OpenSession(grpc::CallbackServerContext* context,
                      const std::string& session_id, grpc::Status* refusal,
                      std::string* principal) const;

  std::shared_ptr<const Authenticator> auth_;
  std::atomic<Engine*> engine_{nullptr};
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> open_streams_{0};
  ServiceInfo info_;  // written once before engine_ is published
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_SERVICE_H_
