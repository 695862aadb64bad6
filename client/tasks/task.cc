#include "client/tasks/task.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/tasks/file_task.h"
#include "client/tasks/ruler.h"

namespace coldcompress::client {

std::vector<std::string> GeneratedTaskNames() { return RulerTaskNames(); }

std::vector<std::string> KnownTaskNames(
    const std::vector<std::string>& task_dirs) {
  std::vector<std::string> names = GeneratedTaskNames();
  for (const std::string& dir : task_dirs) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().extension() != ".yaml") continue;
      std::string name = entry.path().stem().string();
      if (std::find(names.begin(), names.end(), name) == names.end())
        names.push_back(std::move(name));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::unique_ptr<Task>> MakeTask(
    const std::string& name, const std::vector<std::string>& task_dirs) {
  if (std::unique_ptr<Task> ruler = MakeRulerTask(name)) return ruler;
  for (const std::string& dir : task_dirs) {
    const std::filesystem::path path =
        std::filesystem::path(dir) / (name + ".yaml");
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec))
      return LoadTaskFile(path.string());
  }
  return absl::NotFoundError(absl::StrCat(
      "unknown task \"", name,
      "\"; known tasks: ", absl::StrJoin(KnownTaskNames(task_dirs), ", ")));
}

}  // namespace coldcompress::client
