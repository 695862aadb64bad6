// The one file that parses YAML server configuration.
#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coldcompress {
namespace {

using Setter = std::function<void(ServerConfig&, const YAML::Node&)>;

template <typename T>
Setter Set(T ServerConfig::*field) {
  return
      [field](ServerConfig& c, const YAML::Node& n) { c.*field = n.as<T>(); };
}

const std::map<std::string, Setter>& Setters() {
  static const auto* setters = new std::map<std::string, Setter>{
      {"model_dir", Set(&ServerConfig::model_dir)},
      {"device", Set(&ServerConfig::device)},
      {"dtype", Set(&ServerConfig::dtype)},
      {"listen", Set(&ServerConfig::listen)},
      {"threads", Set(&ServerConfig::threads)},
      {"log_level", Set(&ServerConfig::log_level)},
      {"max_sessions", Set(&ServerConfig::max_sessions)},
      {"max_queued_requests", Set(&ServerConfig::max_queued_requests)},
      {"max_prompt_tokens", Set(&ServerConfig::max_prompt_tokens)},
      {"max_new_tokens", Set(&ServerConfig::max_new_tokens)},
      {"context_length", Set(&ServerConfig::context_length)},
      {"max_message_bytes", Set(&ServerConfig::max_message_bytes)},
  };
  return *setters;
}

}  // namespace

absl::StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml,
                                               const ServerConfig& base) {
  ServerConfig config = base;
  try {
    const YAML::Node root = YAML::Load(yaml);
    if (root.IsNull()) return config;
    if (!root.IsMap())
      return absl::InvalidArgumentError("server config: not a YAML mapping");
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      auto it = Setters().find(key);
      if (it == Setters().end()) {
        std::vector<std::string> known;
        for (const auto& [k, s] : Setters()) known.push_back(k);
        return absl::InvalidArgumentError(
            absl::StrCat("server config: unknown key \"", key,
                         "\"; known keys: ", absl::StrJoin(known, ", ")));
      }
      try {
        it->second(config, entry.second);
      } catch (const YAML::Exception& e) {
        return absl::InvalidArgumentError(
            absl::StrCat("server config: bad value for ", key, ": ", e.what()));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("server config: ", e.what()));
  }
  return config;
}

absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<ServerConfig> config =
      ParseServerConfig(ss.str(), ServerConfig());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace coldcompress
