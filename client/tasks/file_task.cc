#include "client/tasks/file_task.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coldcompress::client {
namespace {

using nlohmann::json;

// A prompt template: literal text and {field} references; "{{" and "}}"
// are literal braces.
struct Segment {
  bool field = false;
  std::string text;  // the literal, or the field name
};

absl::StatusOr<std::vector<Segment>> ParseTemplate(const std::string& t) {
  std::vector<Segment> out;
  std::string literal;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if ((c == '{' || c == '}') && i + 1 < t.size() && t[i + 1] == c) {
      literal += c;
      ++i;
    } else if (c == '{') {
      const size_t end = t.find('}', i);
      std::string name =
          end == std::string::npos ? "" : t.substr(i + 1, end - i - 1);
      const bool valid =
          !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
          std::all_of(name.begin(), name.end(), [](char ch) {
            return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
          });
      if (!valid) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt: bad placeholder at offset ", i,
                         " (write {field}, or {{ and }} for literal braces)"));
      }
      if (!literal.empty()) out.push_back({false, std::move(literal)});
      literal.clear();
      out.push_back({true, std::move(name)});
      i = end;
    } else if (c == '}') {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt: unmatched '}' at offset ", i, " (write }} for a brace)"));
    } else {
      literal += c;
    }
  }
  if (!literal.empty()) out.push_back({false, std::move(literal)});
  return out;
}

bool MetricFits(TaskKind kind, const std::string& m) {
  switch (kind) {
    case TaskKind::kChoice:
      return m == "accuracy" || m == "accuracy_letter";
    case TaskKind::kPerplexity:
      return m == "perplexity";
    case TaskKind::kGenerate:
      return m != "accuracy" && m != "accuracy_letter" && m != "perplexity";
  }
  return false;
}

std::string Letter(size_t i) {
  return std::string(1, static_cast<char>('A' + i));
}

// What a task file says beyond its TaskSpec.
struct FileLayout {
  std::string data;  // default JSONL file name
  std::vector<Segment> prompt;
  std::vector<std::string> fields;
  std::string labels;      // generate, perplexity
  std::string choices;     // choice
  std::string answer;      // choice
  int context_tokens = 0;  // perplexity
};

class FileTask : public Task {
 public:
  FileTask(TaskSpec spec, FileLayout layout)
      : spec_(std::move(spec)), layout_(std::move(layout)) {}

  const TaskSpec& spec() const override { return spec_; }

  absl::StatusOr<std::vector<Example>> Load(
      const TaskOptions& options) const override {
    auto it = options.data_files.find(spec_.name);
    const std::string path =
        it != options.data_files.end()
            ? it->second
            : (std::filesystem::path(options.data_dir) / layout_.data).string();
    std::ifstream in(path);
    if (!in) {
      return absl::NotFoundError(absl::StrCat(
          "task ", spec_.name, ": data file ", path,
          " cannot be read (set --data_dir, or --task_data ", spec_.name,
          "=PATH; docs/tasks.md says how to make it)"));
    }
    if (spec_.kind == TaskKind::kPerplexity && !options.count_tokens) {
      return absl::FailedPreconditionError(absl::StrCat(
          spec_.name, ": perplexity tasks need a server's tokenizer"));
    }
    std::vector<Example> examples;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      if (options.num_samples >= 0 &&
          static_cast<int>(examples.size()) >= options.num_samples)
        break;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = absl::StrCat(path, ":", number);
      json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (row.is_discarded() || !row.is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": not a JSON object"));
      }
      absl::StatusOr<Example> e = Parse(row, where, options);
      if (!e.ok()) return e.status();
      e->id = absl::StrCat(number);
      examples.push_back(*std::move(e));
    }
    return examples;
  }

 private:
  // A field's value in a prompt: a string as is, a list of strings one per
  // line, a number as written.
  static absl::StatusOr<std::string> Render(const json& value,
                                            const std::string& name,
                                            const std::string& where) {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_number()) return value.dump();
    if (value.is_array()) {
      std::vector<std::string> parts;
      for (size_t i = 0; i < value.size(); ++i) {
        if (!value[i].is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": field \"", name, "\"[", i, "] is not a string"));
        }
        parts.push_back(value[i].get<std::string>());
      }
      return absl::StrJoin(parts, "\n");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": field \"", name, "\" is neither a string nor a list"));
  }

  // The strings of a string-or-list field; INVALID_ARGUMENT otherwise.
  static absl::StatusOr<std::vector<std::string>> Strings(
      const json& value, const std::string& name, const std::string& where) {
    std::vector<std::string> out;
    if (value.is_string()) out.push_back(value.get<std::string>());
    if (value.is_array()) {
      for (const json& v : value) {
        if (!v.is_string()) break;
        out.push_back(v.get<std::string>());
      }
      if (out.size() != value.size()) out.clear();
    }
    if (out.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": field \"", name,
                       "\" must be a string or a non-empty list of strings"));
    }
    return out;
  }

  absl::StatusOr<Example> Parse(const json& row, const std::string& where,
                                const TaskOptions& options) const {
    for (const std::string& f : layout_.fields) {
      if (!row.contains(f)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": field \"", f, "\" is missing"));
      }
    }
    Example e;
    std::map<std::string, std::string> values;  // overrides of fields
    if (spec_.kind == TaskKind::kChoice) {
      absl::StatusOr<std::vector<std::string>> options_list =
          Strings(row[layout_.choices], layout_.choices, where);
      if (!options_list.ok()) return options_list.status();
      e.choices = *std::move(options_list);
      std::vector<std::string> lettered;
      for (size_t i = 0; i < e.choices.size(); ++i)
        lettered.push_back(absl::StrCat(Letter(i), ". ", e.choices[i]));
      values["options"] = absl::StrJoin(lettered, "\n");
      const json& a = row[layout_.answer];
      if (a.is_number_integer()) {
        e.answer = a.get<int>();
      } else if (a.is_string() && a.get<std::string>().size() == 1) {
        e.answer = a.get<std::string>()[0] - 'A';
      }
      if (e.answer < 0 || e.answer >= static_cast<int>(e.choices.size())) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": field \"", layout_.answer, "\" must be the index (0..",
            e.choices.size() - 1, ") or the letter of the correct option"));
      }
    } else {
      absl::StatusOr<std::vector<std::string>> labels =
          Strings(row[layout_.labels], layout_.labels, where);
      if (!labels.ok()) return labels.status();
      e.labels = *std::move(labels);
    }
    if (spec_.kind == TaskKind::kPerplexity) {
      if (e.labels.size() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": field \"", layout_.labels, "\" must be one text"));
      }
      absl::StatusOr<std::pair<std::string, std::string>> split = SplitAtTokens(
          e.labels[0], layout_.context_tokens, options.count_tokens);
      if (!split.ok()) {
        return absl::Status(
            split.status().code(),
            absl::StrCat(where, ": ", split.status().message()));
      }
      values[layout_.labels] = split->first;
      e.labels = {split->second};
    }
    for (const Segment& s : layout_.prompt) {
      if (!s.field) {
        e.prompt += s.text;
        continue;
      }
      if (auto v = values.find(s.text); v != values.end()) {
        e.prompt += v->second;
        continue;
      }
      absl::StatusOr<std::string> v = Render(row[s.text], s.text, where);
      if (!v.ok()) return v.status();
      e.prompt += *v;
    }
    return e;
  }

  // Splits `text` after the most whole words that fit in `tokens` tokens:
  // (the words, the rest after the separating space).
  static absl::StatusOr<std::pair<std::string, std::string>> SplitAtTokens(
      const std::string& text, int tokens, const TokenCounter& count) {
    std::vector<size_t> ends;  // offsets of the spaces after each word
    for (size_t i = 1; i < text.size(); ++i) {
      if (text[i] == ' ' && text[i - 1] != ' ') ends.push_back(i);
    }
    ends.push_back(text.size());
    size_t lo = 0, hi = ends.size();  // words in [lo, hi) fit ... hi may not
    while (hi - lo > 1) {
      const size_t mid = (lo + hi) / 2;
      absl::StatusOr<int> n = count(text.substr(0, ends[mid - 1]), false);
      if (!n.ok()) return n.status();
      if (*n <= tokens) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    if (lo == 0 || lo == ends.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the text is too short for context_tokens ", tokens,
                       " plus something to score"));
    }
    const size_t cut = ends[lo - 1];
    return std::make_pair(text.substr(0, cut), text.substr(cut + 1));
  }

  TaskSpec spec_;
  FileLayout layout_;
};

const std::set<std::string>& AllowedKeys() {
  static const auto* keys = new std::set<std::string>{
      "name",   "description",   "kind",           "data",
      "fields", "prompt",        "labels",         "choices",
      "answer", "choice_prefix", "max_new_tokens", "context_tokens",
      "ppl_at", "metrics",       "chat",           "notes"};
  return *keys;
}

absl::Status Require(const YAML::Node& root,
                     std::initializer_list<const char*> keys,
                     const std::string& kind) {
  for (const char* key : keys) {
    if (!root[key]) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ": is missing (required in ", kind, " tasks)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Task>> Parse(const YAML::Node& root,
                                            const std::string& stem) {
  if (!root.IsMap()) return absl::InvalidArgumentError("not a YAML mapping");
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (!AllowedKeys().count(key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          key,
          ": unknown key; known keys: ", absl::StrJoin(AllowedKeys(), ", ")));
    }
  }
  if (absl::Status s =
          Require(root, {"name", "kind", "prompt", "fields", "metrics"}, "all");
      !s.ok())
    return s;
  TaskSpec spec;
  FileLayout layout;
  spec.name = root["name"].as<std::string>();
  if (spec.name != stem) {
    return absl::InvalidArgumentError(absl::StrCat(
        "name: \"", spec.name, "\" differs from the file name \"", stem, "\""));
  }
  layout.data = root["data"] ? root["data"].as<std::string>() : stem + ".jsonl";
  if (root["description"])
    spec.description = root["description"].as<std::string>();
  const std::string kind = root["kind"].as<std::string>();
  absl::Status required;
  if (kind == "generate") {
    spec.kind = TaskKind::kGenerate;
    required = Require(root, {"labels", "max_new_tokens"}, kind);
  } else if (kind == "choice") {
    spec.kind = TaskKind::kChoice;
    required = Require(root, {"choices", "answer"}, kind);
  } else if (kind == "perplexity") {
    spec.kind = TaskKind::kPerplexity;
    required =
        Require(root, {"labels", "max_new_tokens", "context_tokens"}, kind);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "kind: \"", kind, "\" is not generate, choice or perplexity"));
  }
  if (!required.ok()) return required;
  const int max_new =
      root["max_new_tokens"] ? root["max_new_tokens"].as<int>() : 1;
  if (max_new <= 0)
    return absl::InvalidArgumentError("max_new_tokens: must be > 0");
  spec.max_new_tokens = static_cast<uint32_t>(max_new);
  spec.metrics = root["metrics"].as<std::vector<std::string>>();
  if (spec.metrics.empty())
    return absl::InvalidArgumentError("metrics: lists no metric");
  for (const std::string& m : spec.metrics) {
    if (std::find(std::begin(kTaskMetrics), std::end(kTaskMetrics), m) ==
        std::end(kTaskMetrics)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metrics: unknown metric \"", m,
          "\"; known metrics: ", absl::StrJoin(kTaskMetrics, ", ")));
    }
    if (!MetricFits(spec.kind, m)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metrics: \"", m, "\" does not apply to a ", kind, " task"));
    }
  }
  if (root["chat"]) spec.chat = root["chat"].as<bool>();
  if (root["choice_prefix"])
    spec.choice_prefix = root["choice_prefix"].as<std::string>();
  if (root["ppl_at"]) {
    spec.ppl_at = root["ppl_at"].as<std::vector<int>>();
    for (int k : spec.ppl_at) {
      if (k <= 0)
        return absl::InvalidArgumentError("ppl_at: values must be > 0");
    }
  }
  if (root["context_tokens"]) {
    layout.context_tokens = root["context_tokens"].as<int>();
    if (layout.context_tokens <= 0)
      return absl::InvalidArgumentError("context_tokens: must be > 0");
  }
  layout.fields = root["fields"].as<std::vector<std::string>>();
  if (root["labels"]) layout.labels = root["labels"].as<std::string>();
  if (root["choices"]) layout.choices = root["choices"].as<std::string>();
  if (root["answer"]) layout.answer = root["answer"].as<std::string>();
  const auto listed = [&](const std::string& f) {
    return std::find(layout.fields.begin(), layout.fields.end(), f) !=
           layout.fields.end();
  };
  for (const auto& [key, f] : {std::pair{"labels", layout.labels},
                               {"choices", layout.choices},
                               {"answer", layout.answer}}) {
    if (!f.empty() && !listed(f)) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ": \"", f, "\" is not one of fields [",
                       absl::StrJoin(layout.fields, ", "), "]"));
    }
  }
  absl::StatusOr<std::vector<Segment>> prompt =
      ParseTemplate(root["prompt"].as<std::string>());
  if (!prompt.ok()) return prompt.status();
  layout.prompt = *std::move(prompt);
  for (const Segment& s : layout.prompt) {
    const bool options = s.text == "options" && spec.kind == TaskKind::kChoice;
    if (s.field && !listed(s.text) && !options) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt: placeholder {", s.text, "} is not one of fields [",
          absl::StrJoin(layout.fields, ", "), "]",
          spec.kind == TaskKind::kChoice ? " or {options}" : ""));
    }
  }
  return std::make_unique<FileTask>(std::move(spec), std::move(layout));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Task>> LoadTaskFile(const std::string& path) {
  const std::string stem = std::filesystem::path(path).stem().string();
  absl::StatusOr<std::unique_ptr<Task>> task;
  try {
    task = Parse(YAML::LoadFile(path), stem);
  } catch (const YAML::Exception& e) {
    task = absl::InvalidArgumentError(e.what());
  }
  if (!task.ok()) {
    return absl::Status(task.status().code(),
                        absl::StrCat(path, ": ", task.status().message()));
  }
  return task;
}

}  // namespace coldcompress::client
