// The server's plain HTTP side: /metrics (Prometheus text format), /healthz
// (the process is alive) and /readyz (the model is loaded and the server is
// not draining: 200, else 503).
#ifndef COLDCOMPRESS_SERVER_HTTP_SERVER_H_
#define COLDCOMPRESS_SERVER_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace coldcompress {

class HttpServer {
 public:
  // `listen`: "host:port" (port 0 picks a free one). `ready` is asked by
  // /readyz. Both `metrics` and `ready` must outlive the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, const Metrics* metrics,
      std::function<bool()> ready);
  ~HttpServer();  // stops serving
  int port() const { return port_; }

 private:
  HttpServer();

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_HTTP_SERVER_H_
