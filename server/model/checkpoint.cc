#include "server/model/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/model/safetensors.h"

namespace coldcompress {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<Json> ReadJson(const fs::path& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  Json json = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is not a JSON object"));
  }
  return json;
}

absl::Status BadKey(const std::string& key, const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("config.json: ", key, " ", why));
}

// Reads an integer key; absent -> `fallback` (or an error when required).
absl::StatusOr<int64_t> GetInt(const Json& j, const std::string& key,
                               std::optional<int64_t> fallback) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback) return *fallback;
    return BadKey(key, "is required");
  }
  if (!j[key].is_number_integer()) return BadKey(key, "must be an integer");
  return j[key].get<int64_t>();
}

absl::StatusOr<double> GetDouble(const Json& j, const std::string& key,
                                 double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) return BadKey(key, "must be a number");
  return j[key].get<double>();
}

bool GetBool(const Json& j, const std::string& key, bool fallback) {
  if (!j.contains(key) || !j[key].is_boolean()) return fallback;
  return j[key].get<bool>();
}

// eos_token_id may be an integer or a list of integers.
std::vector<int64_t> GetIds(const Json& j, const std::string& key) {
  std::vector<int64_t> ids;
  if (!j.contains(key)) return ids;
  if (j[key].is_number_integer()) ids.push_back(j[key].get<int64_t>());
  if (j[key].is_array()) {
    for (const auto& v : j[key]) {
      if (v.is_number_integer()) ids.push_back(v.get<int64_t>());
    }
  }
  return ids;
}

#define CC_ASSIGN(lhs, expr)          \
  {                                   \
    auto _v = (expr);                 \
    if (!_v.ok()) return _v.status(); \
    lhs = *_v;                        \
  }

}  // namespace

std::vector<std::pair<std::string, at::Tensor*>> ModelWeights::Named(
    const ModelConfig& config) {
  std::vector<std::pair<std::string, at::Tensor*>> out;
  out.emplace_back("model.embed_tokens.weight", &embed);
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerWeights& l = layers[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    out.emplace_back(p + "input_layernorm.weight", &l.input_norm);
    const std::pair<const char*, std::pair<at::Tensor*, at::Tensor*>> attn[] = {
        {"q_proj", {&l.wq, &l.bq}},
        {"k_proj", {&l.wk, &l.bk}},
        {"v_proj", {&l.wv, &l.bv}},
        {"o_proj", {&l.wo, &l.bo}}};
    for (const auto& [name, wb] : attn) {
      out.emplace_back(absl::StrCat(p, "self_attn.", name, ".weight"),
                       wb.first);
      const bool bias =
          std::string(name) == "o_proj" ? config.o_bias : config.qkv_bias;
      if (bias)
        out.emplace_back(absl::StrCat(p, "self_attn.", name, ".bias"),
                         wb.second);
    }
    out.emplace_back(p + "post_attention_layernorm.weight", &l.post_norm);
    const std::pair<const char*, std::pair<at::Tensor*, at::Tensor*>> mlp[] = {
        {"gate_proj", {&l.w_gate, &l.b_gate}},
        {"up_proj", {&l.w_up, &l.b_up}},
        {"down_proj", {&l.w_down, &l.b_down}}};
    for (const auto& [name, wb] : mlp) {
      out.emplace_back(absl::StrCat(p, "mlp.", name, ".weight"), wb.first);
      if (config.mlp_bias)
        out.emplace_back(absl::StrCat(p, "mlp.", name, ".bias"), wb.second);
    }
  }
  out.emplace_back("model.norm.weight", &norm);
  if (!config.tie_word_embeddings) out.emplace_back("lm_head.weight", &lm_head);
  return out;
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text) {
  const Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config.json is not a JSON object");
  }
  ModelConfig c;
  if (j.contains("architectures") && j["architectures"].is_array() &&
      !j["architectures"].empty() && j["architectures"][0].is_string()) {
    c.architecture = j["architectures"][0].get<std::string>();
  }
  const bool llama = c.architecture == "LlamaForCausalLM" ||
                     c.architecture == "MistralForCausalLM";
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  if (!llama && !qwen2) {
    return BadKey("architectures",
                  absl::StrCat("\"", c.architecture,
                               "\" is not supported; supported: "
                               "LlamaForCausalLM, MistralForCausalLM, "
                               "Qwen2ForCausalLM"));
  }
  CC_ASSIGN(c.vocab_size, GetInt(j, "vocab_size", std::nullopt));
  CC_ASSIGN(c.hidden_size, GetInt(j, "hidden_size", std::nullopt));
  CC_ASSIGN(c.intermediate_size, GetInt(j, "intermediate_size", std::nullopt));
  CC_ASSIGN(c.num_layers, GetInt(j, "num_hidden_layers", std::nullopt));
  CC_ASSIGN(c.num_heads, GetInt(j, "num_attention_heads", std::nullopt));
  CC_ASSIGN(c.num_kv_heads, GetInt(j, "num_key_value_heads", c.num_heads));
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.intermediate_size <= 0 ||
      c.num_layers <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0) {
    return BadKey("sizes", "must be positive");
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return BadKey("num_key_value_heads", "must divide num_attention_heads");
  }
  CC_ASSIGN(c.head_dim, GetInt(j, "head_dim", c.hidden_size / c.num_heads));
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) {
    return BadKey("head_dim", "must be positive and even");
  }
  CC_ASSIGN(c.max_position_embeddings,
            GetInt(j, "max_position_embeddings", 2048));
  // A Mistral-style sliding window is not applied: the context is limited to
  // it instead, where attention is exactly the full attention.
  if (j.contains("sliding_window") && j["sliding_window"].is_number_integer() &&
      !(qwen2 && !GetBool(j, "use_sliding_window", false))) {
    c.max_position_embeddings =
        std::min(c.max_position_embeddings, j["sliding_window"].get<int64_t>());
  }
  CC_ASSIGN(c.rms_norm_eps, GetDouble(j, "rms_norm_eps", 1e-6));
  CC_ASSIGN(c.rope_theta, GetDouble(j, "rope_theta", 10000.0));
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const Json& r = j["rope_scaling"];
    std::string type;
    if (r.contains("rope_type") && r["rope_type"].is_string()) {
      type = r["rope_type"].get<std::string>();
    } else if (r.contains("type") && r["type"].is_string()) {
      type = r["type"].get<std::string>();
    }
    if (type == "llama3" || type == "linear") {
      RopeScaling s;
      s.type = type;
      CC_ASSIGN(s.factor, GetDouble(r, "factor", 1.0));
      CC_ASSIGN(s.low_freq_factor, GetDouble(r, "low_freq_factor", 1.0));
      CC_ASSIGN(s.high_freq_factor, GetDouble(r, "high_freq_factor", 4.0));
      CC_ASSIGN(s.original_max_position_embeddings,
                GetInt(r, "original_max_position_embeddings", 8192));
      if (s.factor <= 0 || s.high_freq_factor <= s.low_freq_factor) {
        return BadKey("rope_scaling", "has inconsistent factors");
      }
      c.rope_scaling = s;
    } else if (type != "default" && !type.empty()) {
      return BadKey("rope_scaling",
                    absl::StrCat("type \"", type,
                                 "\" is not supported (llama3, linear)"));
    }
  }
  c.tie_word_embeddings = GetBool(j, "tie_word_embeddings", false);
  const bool attention_bias = GetBool(j, "attention_bias", false);
  c.qkv_bias = qwen2 || attention_bias;
  c.o_bias = llama && attention_bias;
  c.mlp_bias = GetBool(j, "mlp_bias", false);
  CC_ASSIGN(c.bos_token_id, GetInt(j, "bos_token_id", -1));
  c.eos_token_ids = GetIds(j, "eos_token_id");
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) {
    c.torch_dtype = j["torch_dtype"].get<std::string>();
  }
  return c;
}

std::string ModelConfigToJson(const ModelConfig& c) {
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  Json j;
  j["architectures"] = {c.architecture};
  j["model_type"] = qwen2 ? "qwen2" : "llama";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling) {
    j["rope_scaling"] = {{"rope_type", c.rope_scaling->type},
                         {"factor", c.rope_scaling->factor},
                         {"low_freq_factor", c.rope_scaling->low_freq_factor},
                         {"high_freq_factor", c.rope_scaling->high_freq_factor},
                         {"original_max_position_embeddings",
                          c.rope_scaling->original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (!qwen2) j["attention_bias"] = c.o_bias;
  j["mlp_bias"] = c.mlp_bias;
  j["hidden_act"] = "silu";
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = c.torch_dtype;
  return j.dump(2) + "\n";
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir) {
  absl::StatusOr<std::string> text = ReadFile(fs::path(dir) / "config.json");
  if (!text.ok()) return text.status();
  absl::StatusOr<ModelConfig> config = ParseModelConfig(*text);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, "/", config.status().message()));
  }
  const fs::path gen = fs::path(dir) / "generation_config.json";
  if (fs::exists(gen)) {
    absl::StatusOr<Json> j = ReadJson(gen);
    if (!j.ok()) return j.status();
    std::vector<int64_t> eos = GetIds(*j, "eos_token_id");
    if (!eos.empty()) config->eos_token_ids = eos;
    if (j->contains("bos_token_id") &&
        (*j)["bos_token_id"].is_number_integer()) {
      config->bos_token_id = (*j)["bos_token_id"].get<int64_t>();
    }
  }
  return config;
}

absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& dir,
                                              const ModelConfig& config,
                                              at::ScalarType dtype,
                                              at::Device device) {
  // name -> file
  std::map<std::string, std::string> where;
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) {
    absl::StatusOr<Json> j = ReadJson(index);
    if (!j.ok()) return j.status();
    if (!j->contains("weight_map") || !(*j)["weight_map"].is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index.string(), ": no weight_map object"));
    }
    for (const auto& [name, file] : (*j)["weight_map"].items()) {
      if (!file.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(
            index.string(), ": weight_map[", name, "] is not a file name"));
      }
      where[name] = file.get<std::string>();
    }
  }
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;
  auto open = [&](const std::string& file) -> absl::StatusOr<SafetensorsFile*> {
    auto it = files.find(file);
    if (it != files.end()) return it->second.get();
    auto opened = SafetensorsFile::Open((fs::path(dir) / file).string());
    if (!opened.ok()) return opened.status();
    return (files[file] = std::move(*opened)).get();
  };

  const int64_t d = config.hidden_size, hd = config.head_dim;
  const int64_t q_out = config.num_heads * hd,
                kv_out = config.num_kv_heads * hd;
  const int64_t inter = config.intermediate_size;
  ModelWeights w;
  w.layers.resize(config.num_layers);
  for (auto& [name, tensor] : w.Named(config)) {
    const std::string file =
        where.count(name) ? where[name] : "model.safetensors";
    absl::StatusOr<SafetensorsFile*> f = open(file);
    if (!f.ok()) return f.status();
    absl::StatusOr<at::Tensor> t = (*f)->Load(name, dtype);
    if (!t.ok()) return t.status();
    *tensor = t->to(device);
  }
  // Check every shape against the config.
  auto expect = [&](const std::string& name, const at::Tensor& t,
                    std::vector<int64_t> shape) -> absl::Status {
    if (t.sizes().vec() == shape) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": tensor ", name, " has shape [",
        absl::StrJoin(t.sizes().vec(), ", "), "], config.json implies [",
        absl::StrJoin(shape, ", "), "]"));
  };
  std::vector<absl::Status> checks;
  checks.push_back(
      expect("model.embed_tokens.weight", w.embed, {config.vocab_size, d}));
  checks.push_back(expect("model.norm.weight", w.norm, {d}));
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const LayerWeights& l = w.layers[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    checks.push_back(expect(p + "self_attn.q_proj.weight", l.wq, {q_out, d}));
    checks.push_back(expect(p + "self_attn.k_proj.weight", l.wk, {kv_out, d}));
    checks.push_back(expect(p + "self_attn.v_proj.weight", l.wv, {kv_out, d}));
    checks.push_back(expect(p + "self_attn.o_proj.weight", l.wo, {d, q_out}));
    checks.push_back(expect(p + "mlp.gate_proj.weight", l.w_gate, {inter, d}));
    checks.push_back(expect(p + "mlp.up_proj.weight", l.w_up, {inter, d}));
    checks.push_back(expect(p + "mlp.down_proj.weight", l.w_down, {d, inter}));
    checks.push_back(expect(p + "input_layernorm.weight", l.input_norm, {d}));
    checks.push_back(
        expect(p + "post_attention_layernorm.weight", l.post_norm, {d}));
    if (config.qkv_bias) {
      checks.push_back(expect(p + "self_attn.q_proj.bias", l.bq, {q_out}));
      checks.push_back(expect(p + "self_attn.k_proj.bias", l.bk, {kv_out}));
      checks.push_back(expect(p + "self_attn.v_proj.bias", l.bv, {kv_out}));
    }
  }
  if (config.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    checks.push_back(
        expect("lm_head.weight", w.lm_head, {config.vocab_size, d}));
  }
  for (const absl::Status& s : checks) {
    if (!s.ok()) return s;
  }
  return w;
}

absl::Status WriteCheckpoint(const std::string& dir, const ModelConfig& config,
                             ModelWeights& weights, at::ScalarType dtype,
                             int shards) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir));
  ModelConfig stored = config;
  stored.torch_dtype = DtypeName(dtype);
  {
    std::ofstream out(fs::path(dir) / "config.json");
    out << ModelConfigToJson(stored);
    Json gen;
    if (config.bos_token_id >= 0) gen["bos_token_id"] = config.bos_token_id;
    gen["eos_token_id"] = config.eos_token_ids;
    std::ofstream gout(fs::path(dir) / "generation_config.json");
    gout << gen.dump(2) << "\n";
    if (!out || !gout)
      return absl::InternalError(absl::StrCat("cannot write ", dir));
  }
  std::vector<std::pair<std::string, at::Tensor>> all;
  for (auto& [name, tensor] : weights.Named(config)) {
    all.emplace_back(name, tensor->to(at::kCPU, dtype));
  }
  shards = std::max(1, std::min<int>(shards, static_cast<int>(all.size())));
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  if (shards == 1) {
    return WriteSafetensors((fs::path(dir) / "model.safetensors").string(), all,
                            meta);
  }
  Json map = Json::object();
  int64_t total = 0;
  const size_t per = (all.size() + shards - 1) / shards;
  for (int s = 0; s < shards; ++s) {
    const std::string file =
        absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, shards);
    std::vector<std::pair<std::string, at::Tensor>> part;
    for (size_t i = s * per; i < std::min(all.size(), (s + 1) * per); ++i) {
      part.push_back(all[i]);
      map[all[i].first] = file;
      total += all[i].second.nbytes();
    }
    absl::Status st =
        WriteSafetensors((fs::path(dir) / file).string(), part, meta);
    if (!st.ok()) return st;
  }
  Json index = {{"metadata", {{"total_size", total}}}, {"weight_map", map}};
  std::ofstream out(fs::path(dir) / "model.safetensors.index.json");
  out << index.dump(2) << "\n";
  return out ? absl::OkStatus()
             : absl::InternalError(absl::StrCat("cannot write index in ", dir));
}

absl::StatusOr<at::ScalarType> ParseDtype(const std::string& name) {
  if (name == "float32" || name == "fp32") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return at::kHalf;
  return absl::InvalidArgumentError(absl::StrCat(
      "dtype must be float32, bfloat16 or float16, got \"", name, "\""));
}

std::string DtypeName(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "float32";
    case at::kBFloat16:
      return "bfloat16";
    case at::kHalf:
      return "float16";
    default:
      return std::string(c10::toString(dtype));
  }
}

}  // namespace coldcompress
