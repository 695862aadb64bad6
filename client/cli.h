// The flags shared by `eval`, `sweep` and the lines of a sweep's
// --command_file, and their translation into evaluator settings.
#ifndef COLDCOMPRESS_CLIENT_CLI_H_
#define COLDCOMPRESS_CLIENT_CLI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/eval.h"
#include "client/judge.h"
#include "client/policy_flags.h"

namespace CLI {
class App;
}

namespace coldcompress::client {

class ServerClient;

struct EvalFlags {
  std::vector<std::string> servers;
  std::vector<std::string> tasks;
  PolicyFlags policy;
  int num_samples = -1;
  uint64_t seed = 42;
  int context_length = 4096;
  std::vector<double> needle_depth = {0, 1};
  std::string data_dir = "data";
  std::vector<std::string> task_data;  // NAME=PATH
  std::vector<std::string> task_dirs;
  std::string results_dir = "results";
  bool overwrite = false;
  std::string cache_sizing = "example";
  int per_server = 1;
  float temperature = 0;
  uint64_t sampling_seed = 0;
  std::string prometheus;
  std::string prometheus_match;
  JudgeOptions judge;
  bool no_progress = false;
};

// Registers the eval flags (policy flags included) on `app`. `with_servers`:
// --servers is taken (a command-file line has none).
void AddEvalFlags(CLI::App* app, EvalFlags* flags, bool with_servers);

// The settings the flags describe. INVALID_ARGUMENT naming the flag for a
// malformed --task_data or --cache_sizing, or a missing task folder.
absl::StatusOr<EvalSettings> ToSettings(const EvalFlags& flags);

// The folder of the shipped task files: $COLDCOMPRESS_TASKS, else
// configs/tasks next to the binary's source tree or the working directory.
std::string DefaultTaskDir();

// Checks against `server` what can be checked before any example runs: the
// preset exists, a generated task's context fits the model, and each task
// gives its first example (data file, fields, context length).
absl::Status Preflight(ServerClient& server, const EvalFlags& flags,
                       const EvalSettings& settings);

// Parses one line of a --command_file ("coldcompress eval FLAGS", "eval
// FLAGS" or just FLAGS; '#' starts a comment) into `flags`. INVALID_ARGUMENT
// naming the line number and the flag.
absl::Status ParseCommandLine(const std::string& line, int number,
                              EvalFlags* flags);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_CLI_H_
