#include "tests/testing/processes.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/testing/http.h"

extern char** environ;

namespace coldcompress::testing {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr char kPrometheus[] = "/usr/bin/prometheus";

fs::path TempDir(const std::string& stem) {
  static int counter = 0;
  fs::path dir =
      fs::temp_directory_path() /
      (stem + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Spawns `argv` with stdout and stderr to `out` and `err` (paths).
pid_t Spawn(const std::vector<std::string>& args, const std::string& out,
            const std::string& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0)
    pid = 0;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    ADD_FAILURE() << name << " is unset (ctest sets it)";
    return "";
  }
  return v;
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

Prometheus::Prometheus(const std::vector<std::string>& targets) {
  if (!fs::exists(kPrometheus)) {
    ADD_FAILURE() << kPrometheus
                  << " is missing: scripts/install_deps.sh installs Debian's "
                  << "prometheus package";
    return;
  }
  dir_ = TempDir("cc_prometheus_");
  std::ofstream config(dir_ / "prometheus.yml");
  config << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
         << "scrape_configs:\n  - job_name: coldcompress\n    static_configs:\n"
         << "      - targets: [";
  for (size_t i = 0; i < targets.size(); ++i)
    config << (i ? ", " : "") << "'" << targets[i] << "'";
  config << "]\n";
  config.close();
  port_ = FreePort();
  pid_ =
      Spawn({kPrometheus, "--config.file=" + (dir_ / "prometheus.yml").string(),
             "--storage.tsdb.path=" + (dir_ / "data").string(),
             "--web.listen-address=127.0.0.1:" + std::to_string(port_),
             "--log.level=warn"},
            (dir_ / "out.log").string(), (dir_ / "err.log").string());
}

Prometheus::~Prometheus() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  if (!dir_.empty()) fs::remove_all(dir_);
}

std::string Prometheus::url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

json Prometheus::Query(const std::string& promql) const {
  const HttpResponse r =
      HttpGet("127.0.0.1", port_, "/api/v1/query?query=" + UrlEncode(promql));
  if (r.status != 200) {
    return json{
        {"status", "error"}, {"http_status", r.status}, {"error", r.body}};
  }
  const json j = json::parse(r.body, nullptr, false);
  return j.is_discarded() ? json{{"status", "error"}, {"error", r.body}} : j;
}

bool Prometheus::WaitFor(const std::string& promql,
                         const std::function<bool(const json&)>& ok,
                         double seconds) const {
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<int>(seconds * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    const json r = Query(promql);
    if (r.value("status", "") == "success" && ok(r["data"])) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return false;
}

ServerProcess::ServerProcess(const std::string& model_dir,
                             const std::vector<std::string>& extra_args) {
  const std::string bin = Env("COLDCOMPRESS_SERVER_BIN");
  const char* source = std::getenv("COLDCOMPRESS_SOURCE_DIR");
  const fs::path dir = TempDir("cc_server_");
  log_ = dir / "server.log";
  std::vector<std::string> argv = {
      bin,
      "--model_dir",
      model_dir,
      "--listen",
      "127.0.0.1:0",
      "--metrics_listen",
      "127.0.0.1:0",
      "--threads",
      "1",
      "--presets_dir",
      (fs::path(source ? source : ".") / "configs/presets").string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = Spawn(argv, (dir / "out.log").string(), log_.string());
  const std::regex listening(R"(listening on \S+ \(port (\d+)\))");
  const std::regex metrics(R"(metrics on \S+ \(port (\d+)\))");
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
    const std::string text = log();
    std::smatch m;
    if (std::regex_search(text, m, metrics)) metrics_port_ = std::stoi(m[1]);
    if (text.find("model ready") != std::string::npos &&
        std::regex_search(text, m, listening)) {
      port_ = std::stoi(m[1]);
      return;
    }
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = 0;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "the server did not start:\n" << log();
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  fs::remove_all(log_.parent_path());
}

std::string ServerProcess::address() const {
  return "127.0.0.1:" + std::to_string(port_);
}

void ServerProcess::Kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
}

void ServerProcess::Signal(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

int ServerProcess::WaitExit(double seconds) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (pid_ > 0) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1;
}

std::string ServerProcess::log() const {
  return ReadFile(log_.parent_path() / "out.log") + ReadFile(log_);
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv)
    : dir_(TempDir("cc_child_")) {
  pid_ = Spawn(argv, (dir_ / "out").string(), (dir_ / "err").string());
}

ChildProcess::~ChildProcess() {
  Kill(SIGKILL);
  fs::remove_all(dir_);
}

std::string ChildProcess::out() const { return ReadFile(dir_ / "out"); }

void ChildProcess::Kill(int signal) {
  if (pid_ > 0) {
    ::kill(pid_, signal);
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
}

CommandResult RunCommand(const std::vector<std::string>& argv) {
  const fs::path dir = TempDir("cc_cmd_");
  CommandResult result;
  const pid_t pid = Spawn(argv, (dir / "out").string(), (dir / "err").string());
  if (pid > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    result.exit_code =
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  result.out = ReadFile(dir / "out");
  result.err = ReadFile(dir / "err");
  fs::remove_all(dir);
  return result;
}

CommandResult RunClient(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Env("COLDCOMPRESS_CLIENT_BIN")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

}  // namespace coldcompress::testing
