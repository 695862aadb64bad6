#include "client/pool.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "client/connect.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace coldcompress::client {
namespace {

constexpr absl::string_view kDns = "dns:///";

// Splits "host:port" (host may be "[v6]"); false when malformed.
bool SplitHostPort(absl::string_view spec, std::string* host,
                   std::string* port) {
  const size_t colon = spec.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  *host = std::string(spec.substr(0, colon));
  *port = std::string(spec.substr(colon + 1));
  int number = 0;
  if (!absl::SimpleAtoi(*port, &number) || number <= 0 || number > 65535)
    return false;
  if (host->front() == '[') {
    if (host->back() != ']') return false;
    *host = host->substr(1, host->size() - 2);
  }
  return !host->empty();
}

absl::StatusOr<std::vector<std::string>> ResolveDns(absl::string_view spec) {
  std::string host, port;
  if (!SplitHostPort(spec.substr(kDns.size()), &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("servers: \"", spec, "\" is not dns:///NAME:PORT"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
      rc != 0) {
    return absl::UnavailableError(absl::StrCat(
        "servers: \"", spec, "\" does not resolve: ", gai_strerror(rc)));
  }
  std::vector<std::string> out;
  for (addrinfo* a = result; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr,
                text, sizeof(text));
      out.push_back(absl::StrCat(text, ":", port));
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6,
                &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, text,
                sizeof(text));
      out.push_back(absl::StrCat("[", text, "]:", port));
    }
  }
  freeaddrinfo(result);
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveServers(
    const std::vector<std::string>& specs) {
  std::vector<std::string> out;
  auto add = [&out](std::string a) {
    if (std::find(out.begin(), out.end(), a) == out.end())
      out.push_back(std::move(a));
  };
  for (const std::string& list : specs) {
    for (absl::string_view spec :
         absl::StrSplit(list, ',', absl::SkipWhitespace())) {
      spec = absl::StripAsciiWhitespace(spec);
      if (absl::StartsWith(spec, kDns)) {
        absl::StatusOr<std::vector<std::string>> resolved = ResolveDns(spec);
        if (!resolved.ok()) return resolved.status();
        for (std::string& a : *resolved) add(std::move(a));
        continue;
      }
      std::string host, port;
      if (!SplitHostPort(spec, &host, &port)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "servers: \"", spec, "\" is not HOST:PORT or dns:///NAME:PORT"));
      }
      add(std::string(spec));
    }
  }
  if (out.empty())
    return absl::InvalidArgumentError("servers: no server address given");
  return out;
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

ServerClient::ServerClient(std::string address) : address_(std::move(address)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(address_, ConnectOptionsFromEnv(), args);
  if (channel.ok()) {
    channel_ = *std::move(channel);
  } else {
    // Reported by Connect(); the placeholder keeps the stub valid.
    channel_error_ = channel.status();
    channel_ = grpc::CreateCustomChannel(
        address_, grpc::InsecureChannelCredentials(), args);
  }
  stub_ = v1::ColdCompress::NewStub(channel_);
}

absl::Status ServerClient::Connect(double timeout_s) {
  if (!channel_error_.ok()) return channel_error_;
  const auto deadline =
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  // A refused connection fails now, not at the deadline.
  for (grpc_connectivity_state state = channel_->GetState(true);
       state != GRPC_CHANNEL_READY; state = channel_->GetState(true)) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE ||
        state == GRPC_CHANNEL_SHUTDOWN) {
      return absl::UnavailableError(absl::StrCat(address_, ": cannot connect"));
    }
    if (!channel_->WaitForStateChange(state, deadline)) {
      return absl::UnavailableError(
          absl::StrCat(address_, ": no connection within ", timeout_s, " s"));
    }
  }
  grpc::ClientContext context;
  context.set_deadline(deadline);
  grpc::Status s =
      stub_->GetServerInfo(&context, v1::GetServerInfoRequest(), &info_);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat(address_, ": ", s.error_message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::FinalResult> ServerClient::Generate(
    const v1::GenerateRequest& request) {
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse response;
  v1::FinalResult final;
  bool have_final = false;
  while (reader->Read(&response)) {
    if (response.has_final()) {
      final = std::move(*response.mutable_final());
      have_final = true;
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpc(s);
  if (!have_final) {
    return absl::InternalError(
        absl::StrCat(address_, ": the stream ended without a final result"));
  }
  return final;
}

absl::StatusOr<v1::ScoreResponse> ServerClient::Score(
    const v1::ScoreRequest& request) {
  grpc::ClientContext context;
  v1::ScoreResponse response;
  grpc::Status s = stub_->Score(&context, request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

absl::StatusOr<v1::TokenizeResponse> ServerClient::Tokenize(
    const std::string& text, bool add_special_tokens) {
  grpc::ClientContext context;
  v1::TokenizeRequest request;
  request.set_text(text);
  request.set_add_special_tokens(add_special_tokens);
  v1::TokenizeResponse response;
  grpc::Status s = stub_->Tokenize(&context, request, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

absl::StatusOr<v1::ListPoliciesResponse> ServerClient::ListPolicies() {
  grpc::ClientContext context;
  v1::ListPoliciesResponse response;
  grpc::Status s =
      stub_->ListPolicies(&context, v1::ListPoliciesRequest(), &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

bool ServerClient::Healthy(double timeout_s) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  return health->Check(&context, request, &response).ok() &&
         response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

absl::StatusOr<std::unique_ptr<ServerPool>> ServerPool::Connect(
    const std::vector<std::string>& addresses, double timeout_s) {
  std::vector<std::unique_ptr<ServerClient>> servers(addresses.size());
  std::vector<absl::Status> status(addresses.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < addresses.size(); ++i) {
    threads.emplace_back([&, i] {
      servers[i] = std::make_unique<ServerClient>(addresses[i]);
      status[i] = servers[i]->Connect(timeout_s);
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::unique_ptr<ServerClient>> live;
  std::vector<std::string> errors;
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (status[i].ok()) {
      live.push_back(std::move(servers[i]));
    } else {
      errors.emplace_back(status[i].message());
    }
  }
  if (live.empty()) {
    return absl::UnavailableError(
        absl::StrCat("no server answers: ", absl::StrJoin(errors, "; ")));
  }
  for (const std::string& e : errors) {
    std::cerr << "warning: left out of the pool: " << e << "\n";
  }
  for (const auto& s : live) {
    if (s->info().model_name() != live[0]->info().model_name()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the servers serve different models: ", live[0]->address(), " has ",
          live[0]->info().model_name(), ", ", s->address(), " has ",
          s->info().model_name()));
    }
  }
  return std::unique_ptr<ServerPool>(new ServerPool(std::move(live)));
}

std::vector<absl::Status> ServerPool::Run(
    size_t n, int per_server,
    const std::function<absl::Status(size_t, ServerClient&)>& run,
    int max_attempts) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<size_t> queue;
  for (size_t i = 0; i < n; ++i) queue.push_back(i);
  std::vector<absl::Status> results(
      n, absl::UnavailableError("every server of the pool is gone"));
  std::vector<int> attempts(n, 0);
  std::vector<bool> down(servers_.size(), false);
  size_t pending = n;

  auto worker = [&](size_t s) {
    ServerClient& server = *servers_[s];
    while (true) {
      size_t item;
      {
        std::unique_lock lock(mu);
        cv.wait(lock,
                [&] { return down[s] || pending == 0 || !queue.empty(); });
        if (down[s] || pending == 0) return;
        item = queue.front();
        queue.pop_front();
      }
      absl::Status st = run(item, server);
      if (absl::IsUnavailable(st)) {
        const bool gone = !server.Healthy(3.0);
        std::unique_lock lock(mu);
        if (gone && !down[s]) {
          down[s] = true;
          std::cerr << "\nwarning: server " << server.address() << " is gone ("
                    << st.message() << "); its work goes to the others\n";
        }
        if (++attempts[item] >= max_attempts) {
          results[item] = st;
          --pending;
        } else {
          queue.push_front(item);
        }
        cv.notify_all();
        if (gone) return;
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      std::unique_lock lock(mu);
      results[item] = std::move(st);
      --pending;
      cv.notify_all();
    }
  };
  std::vector<std::thread> threads;
  for (size_t s = 0; s < servers_.size(); ++s) {
    for (int k = 0; k < std::max(1, per_server); ++k)
      threads.emplace_back(worker, s);
  }
  for (auto& t : threads) t.join();
  // A server found gone stays out of the pool.
  std::vector<std::unique_ptr<ServerClient>> live;
  for (size_t s = 0; s < servers_.size(); ++s) {
    if (!down[s]) live.push_back(std::move(servers_[s]));
  }
  if (!live.empty()) servers_ = std::move(live);
  return results;
}

}  // namespace coldcompress::client
