// A sweep: configs x cache sizes x tasks (or the lines of a command file) as
// jobs queued over the server pool, each job pinned to one server and
// requeued on another when its server is lost.
#ifndef COLDCOMPRESS_CLIENT_SWEEP_H_
#define COLDCOMPRESS_CLIENT_SWEEP_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cli.h"

namespace coldcompress::client {

struct SweepFlags {
  EvalFlags eval;  // servers, tasks, shared settings, base policy flags
  std::vector<std::string> config_names;
  std::vector<double> cache_sizes;
  bool add_full = false;  // also each task once with the full cache
  std::string command_file;
};

struct SweepJob {
  EvalFlags flags;    // exactly one task and one policy
  std::string label;  // "heavy_hitter 0.5 rulerniah"
};

// The jobs: with a command file its lines (one job per task of a line),
// else the cartesian product (plus full per task with add_full).
// INVALID_ARGUMENT naming the flag or line.
absl::StatusOr<std::vector<SweepJob>> MakeJobs(const SweepFlags& flags);

// Runs the sweep and prints a summary table to stdout. Returns OK when
// every job finished; otherwise an error saying how many failed (their
// errors are in the table).
absl::Status RunSweep(const SweepFlags& flags);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_SWEEP_H_
