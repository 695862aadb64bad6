// An in-process server on a loopback port with a client stub: the real gRPC
// stack end to end.
#ifndef COLDCOMPRESS_TESTS_TESTING_SERVER_HARNESS_H_
#define COLDCOMPRESS_TESTS_TESTING_SERVER_HARNESS_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "coldcompress/v1/coldcompress.grpc.pb.h"
#include "server/config.h"
#include "server/server.h"

namespace coldcompress {
class PolicyRegistry;
}

namespace coldcompress::testing {

class ServerHarness {
 public:
  // Starts a server for `model_dir` on 127.0.0.1:0; loads the model unless
  // `load` is false.
  explicit ServerHarness(const std::string& model_dir, bool load = true,
                         ServerConfig config = ServerConfig());
  ~ServerHarness();

  Server& server() { return *server_; }
  std::string address() const;
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  v1::ColdCompress::Stub& stub() { return *stub_; }
  // Talks over `channel` from now on (e.g. one that sends a bearer token).
  void UseChannel(std::shared_ptr<grpc::Channel> channel);

  // A whole Generate call: every response and the status.
  struct Stream {
    grpc::Status status;
    std::vector<v1::GenerateResponse> responses;
    std::vector<int32_t> tokens;  // from the chunks
    std::string text;             // from the chunks
    v1::FinalResult final;
  };
  Stream Generate(const v1::GenerateRequest& request);

 private:
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ColdCompress::Stub> stub_;
};

// A test suite sharing one loaded server on the `llama` fixture.
class SharedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  inline static ServerHarness* harness_ = nullptr;
};

// A request from token ids, greedy, ignoring EOS.
v1::GenerateRequest IdsRequest(const std::vector<int32_t>& ids,
                               uint32_t max_new_tokens);

}  // namespace coldcompress::testing

#endif  // COLDCOMPRESS_TESTS_TESTING_SERVER_HARNESS_H_
