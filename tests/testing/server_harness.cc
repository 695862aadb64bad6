#include "tests/testing/server_harness.h"

#include <gtest/gtest.h>

#include "policies/registry.h"
#include "tests/testing/fixtures.h"

namespace coldcompress::testing {

ServerHarness::ServerHarness(const std::string& model_dir, bool load,
                             ServerConfig config) {
  config.model_dir = model_dir;
  config.listen = "127.0.0.1:0";
  config.threads = 1;
  if (config.metrics_listen == ServerConfig().metrics_listen) {
    config.metrics_listen = "127.0.0.1:0";
  }
  if (config.presets_dir == ServerConfig().presets_dir) {
    config.presets_dir = SourceDir() + "/configs/presets";
  }
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(config);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    std::abort();
  }
  server_ = *std::move(server);
  if (load) {
    absl::Status s = server_->LoadModel();
    if (!s.ok()) {
      ADD_FAILURE() << s;
      std::abort();
    }
  }
  channel_ = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
  stub_ = v1::ColdCompress::NewStub(channel_);
}

ServerHarness::~ServerHarness() { server_->Shutdown(1.0); }

std::string ServerHarness::address() const {
  return "127.0.0.1:" + std::to_string(server_->port());
}

void ServerHarness::UseChannel(std::shared_ptr<grpc::Channel> channel) {
  channel_ = std::move(channel);
  stub_ = v1::ColdCompress::NewStub(channel_);
}

ServerHarness::Stream ServerHarness::Generate(
    const v1::GenerateRequest& request) {
  Stream out;
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.has_chunk()) {
      out.tokens.insert(out.tokens.end(), response.chunk().token_ids().begin(),
                        response.chunk().token_ids().end());
      out.text += response.chunk().text();
    } else if (response.has_final()) {
      out.final = response.final();
    }
    out.responses.push_back(response);
  }
  out.status = reader->Finish();
  return out;
}

void SharedServerTest::SetUpTestSuite() {
  harness_ = new ServerHarness(FixtureDir("llama"));
}

void SharedServerTest::TearDownTestSuite() {
  delete harness_;
  harness_ = nullptr;
}

v1::GenerateRequest IdsRequest(const std::vector<int32_t>& ids,
                               uint32_t max_new_tokens) {
  v1::GenerateRequest r;
  for (int32_t id : ids) r.mutable_prompt_token_ids()->add_ids(id);
  r.set_max_new_tokens(max_new_tokens);
  r.set_ignore_eos(true);
  return r;
}

}  // namespace coldcompress::testing
