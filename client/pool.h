// The pool of servers a run uses (one per GPU, on one or many machines):
// address lists, dns:/// names that resolve to many servers, a channel per
// server, and work spread over them with requeueing when one is lost.
#ifndef COLDCOMPRESS_CLIENT_POOL_H_
#define COLDCOMPRESS_CLIENT_POOL_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coldcompress/v1/coldcompress.grpc.pb.h"

namespace coldcompress::client {

// Expands server specs into addresses: each spec is "host:port", a
// comma-separated list of them, or "dns:///name:port" (every address the
// name resolves to, IPv4 and IPv6, in the resolver's order). Duplicates are
// dropped. INVALID_ARGUMENT naming a malformed spec; UNAVAILABLE naming a
// name that does not resolve.
absl::StatusOr<std::vector<std::string>> ResolveServers(
    const std::vector<std::string>& specs);

// gRPC status as absl::Status (the codes are the same numbers).
absl::Status FromGrpc(const grpc::Status& status);

// One server: a channel, a stub and what it said about itself.
class ServerClient {
 public:
  explicit ServerClient(std::string address);

  const std::string& address() const { return address_; }
  const v1::ServerInfo& info() const { return info_; }

  // Fetches ServerInfo within `timeout_s` (a refused connection fails at
  // once: `coldcompress health --wait` waits for a starting server); the
  // error names the address.
  absl::Status Connect(double timeout_s);
  // A whole Generate call: the final result (the streamed text is in it).
  absl::StatusOr<v1::FinalResult> Generate(const v1::GenerateRequest& request);
  absl::StatusOr<v1::ScoreResponse> Score(const v1::ScoreRequest& request);
  absl::StatusOr<v1::TokenizeResponse> Tokenize(const std::string& text,
                                                bool add_special_tokens);
  absl::StatusOr<v1::ListPoliciesResponse> ListPolicies();
  // SERVING within `timeout_s`.
  bool Healthy(double timeout_s);
  // For calls the methods above do not cover (streamed token timings).
  v1::ColdCompress::Stub& stub() { return *stub_; }

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  absl::Status channel_error_;  // TLS settings that could not be used
  std::unique_ptr<v1::ColdCompress::Stub> stub_;
  v1::ServerInfo info_;
};

class ServerPool {
 public:
  // Connects to every address; the ones that do not answer within
  // `timeout_s` are left out with a warning on stderr. UNAVAILABLE listing
  // each address and its error when none answers; FAILED_PRECONDITION when
  // the servers serve different models.
  static absl::StatusOr<std::unique_ptr<ServerPool>> Connect(
      const std::vector<std::string>& addresses, double timeout_s);

  size_t size() const { return servers_.size(); }
  ServerClient& server(size_t i) { return *servers_[i]; }
  const std::string& model_name() const {
    return servers_[0]->info().model_name();
  }

  // Runs items 0..n-1 over the pool, `per_server` at a time on each server.
  // `run(item, server)` returning UNAVAILABLE means the server may be gone:
  // when a health check confirms it, the server is dropped for the rest of
  // the run; either way the item goes back to the queue (at most
  // `max_attempts` tries). Other errors are the item's result. Returns each
  // item's status; UNAVAILABLE for the items left when every server is gone.
  std::vector<absl::Status> Run(
      size_t n, int per_server,
      const std::function<absl::Status(size_t item, ServerClient& server)>& run,
      int max_attempts = 3);

 private:
  explicit ServerPool(std::vector<std::unique_ptr<ServerClient>> servers)
      : servers_(std::move(servers)) {}

  std::vector<std::unique_ptr<ServerClient>> servers_;
};

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_POOL_H_
