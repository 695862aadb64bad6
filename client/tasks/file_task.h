// JSONL-backed tasks described by a YAML task file (docs/tasks.md).
#ifndef COLDCOMPRESS_CLIENT_TASKS_FILE_TASK_H_
#define COLDCOMPRESS_CLIENT_TASKS_FILE_TASK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/tasks/task.h"

namespace coldcompress::client {

// Loads the task file at `path`. INVALID_ARGUMENT naming the file and the
// key for a malformed one: a missing or unknown key, a bad kind, a metric
// the kind cannot compute, a placeholder that is not a listed field.
absl::StatusOr<std::unique_ptr<Task>> LoadTaskFile(const std::string& path);

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_TASKS_FILE_TASK_H_
