// The whole server process minus main(): gRPC listener (ColdCompress, health,
// reflection), model loading and the engine. Tests run it in-process.
#ifndef COLDCOMPRESS_SERVER_SERVER_H_
#define COLDCOMPRESS_SERVER_SERVER_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/config.h"

namespace coldcompress {

class Engine;

class Server {
 public:
  // Starts listening at once; every RPC answers UNAVAILABLE and health is
  // NOT_SERVING until LoadModel() succeeds.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerConfig& config);
  ~Server();

  // Loads the model and tokenizer, builds the engine, marks health SERVING.
  absl::Status LoadModel();

  // The bound port (useful with port 0).
  int port() const;
  // The bound metrics port, 0 when metrics are off.
  int metrics_port() const;
  Engine* engine();

  // Stops accepting calls, cancels what is in flight after `deadline_s`, and
  // stops the engine. Idempotent.
  void Shutdown(double deadline_s = 5.0);
  // Graceful drain (SIGTERM): health turns NOT_SERVING and /readyz fails at
  // once, new calls get UNAVAILABLE, the requests in flight may finish until
  // `deadline_s`, then Shutdown cancels the rest.
  void Drain(double deadline_s);
  // Blocks until Shutdown() has been called (from another thread).
  void Wait();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_SERVER_H_
