// cpp-httplib serves the HTTP side. (civetweb, which prometheus-cpp's exposer
// uses, starts its threads with a small fixed stack that cannot hold the
// thread-local storage of a process with LibTorch and gRPC loaded: its
// pthread_create fails.)
#include "server/http_server.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace coldcompress {

HttpServer::HttpServer() : server_(std::make_unique<httplib::Server>()) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, const Metrics* metrics,
    std::function<bool()> ready) {
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen must be host:port, got \"", listen, "\""));
  }
  const std::string host = listen.substr(0, colon);
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->server_->Get("/metrics",
                  [metrics](const httplib::Request&, httplib::Response& res) {
                    res.set_content(metrics->Serialize(),
                                    "text/plain; version=0.0.4; charset=utf-8");
                  });
  s->server_->Get("/healthz",
                  [](const httplib::Request&, httplib::Response& res) {
                    res.set_content("ok\n", "text/plain");
                  });
  s->server_->Get(
      "/readyz", [ready](const httplib::Request&, httplib::Response& res) {
        const bool ok = ready();
        res.status = ok ? 200 : 503;
        res.set_content(ok ? "ready\n" : "not ready\n", "text/plain");
      });
  if (port == 0) {
    s->port_ = s->server_->bind_to_any_port(host);
  } else if (s->server_->bind_to_port(host, port)) {
    s->port_ = port;
  }
  if (s->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot listen on ", listen));
  }
  httplib::Server* raw = s->server_.get();
  s->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  return s;
}

HttpServer::~HttpServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace coldcompress
