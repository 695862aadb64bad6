// Real processes for end-to-end tests: a Prometheus scraping targets, a
// coldcompress-server on a loopback port, and runs of the coldcompress CLI.
#ifndef COLDCOMPRESS_TESTS_TESTING_PROCESSES_H_
#define COLDCOMPRESS_TESTS_TESTING_PROCESSES_H_

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace coldcompress::testing {

// A free TCP port on 127.0.0.1 (bound and released).
int FreePort();

// A Prometheus process (Debian's package) scraping `targets` every second,
// on a free port; the test fails when the binary is missing.
class Prometheus {
 public:
  explicit Prometheus(const std::vector<std::string>& targets);
  ~Prometheus();

  bool running() const { return pid_ > 0; }
  std::string url() const;
  // The "data" of an instant query ({"status": "error", ...} on failure).
  nlohmann::json Query(const std::string& promql) const;
  // Polls `ok(data)` for up to `seconds`.
  bool WaitFor(const std::string& promql,
               const std::function<bool(const nlohmann::json&)>& ok,
               double seconds) const;

 private:
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = 0;
};

// A coldcompress-server process ($COLDCOMPRESS_SERVER_BIN) on 127.0.0.1:0
// serving `model_dir`, its ports read from its log.
class ServerProcess {
 public:
  // `extra_args`: more flags, e.g. {"--drain_deadline_s", "2"}.
  explicit ServerProcess(const std::string& model_dir,
                         const std::vector<std::string>& extra_args = {});
  ~ServerProcess();

  bool running() const { return port_ > 0; }
  pid_t pid() const { return pid_; }
  std::string address() const;
  int metrics_port() const { return metrics_port_; }
  // SIGKILL: the server disappears mid-request.
  void Kill();
  // Sends `signal` (e.g. SIGTERM) and returns at once.
  void Signal(int signal);
  // Waits up to `seconds` for the process to exit: its exit code (128 + N
  // when killed by signal N), or -1 when it is still running.
  int WaitExit(double seconds);
  std::string log() const;

 private:
  std::filesystem::path log_;
  pid_t pid_ = 0;
  int port_ = 0, metrics_port_ = 0;
};

// A process running in the background (stdout and stderr to files); killed
// and reaped when destroyed.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool running() const { return pid_ > 0; }
  std::string out() const;
  // Sends `signal` and reaps the process.
  void Kill(int signal);

 private:
  std::filesystem::path dir_;
  pid_t pid_ = 0;
};

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs `argv` (argv[0] a path) to completion, stdout and stderr captured.
CommandResult RunCommand(const std::vector<std::string>& argv);

// The environment variable `name`; a test failure when unset (ctest sets
// the binaries' paths).
std::string Env(const char* name);

// $COLDCOMPRESS_CLIENT_BIN followed by `args`.
CommandResult RunClient(const std::vector<std::string>& args);

}  // namespace coldcompress::testing

#endif  // COLDCOMPRESS_TESTS_TESTING_PROCESSES_H_
