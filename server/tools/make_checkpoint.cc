// cc-make-checkpoint: writes a small random-weight checkpoint in Hugging Face
// format (config.json, generation_config.json, *.safetensors, tokenizer.model,
// tokenizer_config.json) with a SentencePiece vocabulary trained by spm_train
// on generated text. Used by the tests and by the demo until a trained model
// exists.
#include <spawn.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "server/model/checkpoint.h"
#include "server/tokenizer/tokenizer.h"
#include "server/tools/corpus.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using coldcompress::ModelConfig;
using coldcompress::ModelWeights;

// Runs argv[0] from PATH; returns its exit status (or -1).
int Run(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
    return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Trains tokenizer.model in `dir`; returns its vocabulary size or -1.
int TrainTokenizer(const fs::path& dir, int vocab_size, uint64_t seed) {
  const fs::path corpus = dir / "corpus.txt";
  {
    std::ofstream out(corpus);
    out << coldcompress::GenerateCorpus(seed, 400000);
  }
  const fs::path prefix = dir / "tokenizer";
  const int rc =
      Run({"spm_train", "--input=" + corpus.string(),
           "--model_prefix=" + prefix.string(),
           "--vocab_size=" + std::to_string(vocab_size), "--model_type=bpe",
           "--byte_fallback=true", "--character_coverage=1.0",
           "--split_digits=true", "--unk_id=0", "--bos_id=1", "--eos_id=2",
           "--pad_id=-1", "--num_threads=1", "--minloglevel=2"});
  fs::remove(corpus);
  fs::remove(dir / "tokenizer.vocab");
  if (rc != 0) {
    std::cerr << "spm_train failed (exit " << rc
              << "); is the sentencepiece package installed?\n";
    return -1;
  }
  std::string error;
  auto tokenizer =
      coldcompress::LoadSentencePiece(prefix.string() + ".model", true, &error);
  if (tokenizer == nullptr) {
    std::cerr << error << "\n";
    return -1;
  }
  return tokenizer->vocab_size();
}

at::Tensor Normal(std::vector<int64_t> shape, double std) {
  return at::randn(shape, at::kDouble).mul_(std).to(at::kFloat);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a small random-weight Hugging Face checkpoint"};
  std::string out, arch = "llama", dtype_name = "float32",
                   rope_scaling = "none";
  int layers = 2, hidden = 64, heads = 4, kv_heads = 2, intermediate = 128;
  int vocab = 512, max_positions = 2048, shards = 1;
  int64_t head_dim = 0;
  double rope_theta = 10000.0, init_std = 0.08;
  uint64_t seed = 0;
  bool tie = false;
  app.add_option("--out", out, "output directory")->required();
  app.add_option("--arch", arch, "llama | qwen2")
      ->check(CLI::IsMember({"llama", "qwen2"}));
  app.add_option("--layers", layers);
  app.add_option("--hidden", hidden);
  app.add_option("--heads", heads);
  app.add_option("--kv_heads", kv_heads);
  app.add_option("--head_dim", head_dim, "0 = hidden / heads");
  app.add_option("--intermediate", intermediate);
  app.add_option("--vocab", vocab, "SentencePiece vocabulary size");
  app.add_option("--max_positions", max_positions);
  app.add_option("--rope_theta", rope_theta);
  app.add_option("--rope_scaling", rope_scaling, "none | llama3 | linear")
      ->check(CLI::IsMember({"none", "llama3", "linear"}));
  app.add_option("--dtype", dtype_name,
                 "float32 | bfloat16 | float16 (on disk)");
  app.add_option("--shards", shards, "number of safetensors files");
  app.add_option("--init_std", init_std, "standard deviation of the weights");
  app.add_option("--seed", seed);
  app.add_flag("--tie", tie, "tie the embeddings and lm_head");
  CLI11_PARSE(app, argc, argv);

  auto dtype = coldcompress::ParseDtype(dtype_name);
  if (!dtype.ok()) {
    std::cerr << dtype.status().message() << "\n";
    return 2;
  }
  const fs::path dir(out);
  fs::create_directories(dir);
  const int vocab_size = TrainTokenizer(dir, vocab, seed);
  if (vocab_size < 0) return 1;

  ModelConfig c;
  c.architecture = arch == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
  c.vocab_size = vocab_size;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim > 0 ? head_dim : hidden / heads;
  c.max_position_embeddings = max_positions;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = rope_theta;
  if (rope_scaling != "none") {
    coldcompress::RopeScaling s;
    s.type = rope_scaling;
    s.factor = 8.0;
    s.low_freq_factor = 1.0;
    s.high_freq_factor = 4.0;
    // Small enough that all three llama3 frequency bands occur at this size.
    s.original_max_position_embeddings = 256;
    c.rope_scaling = s;
  }
  c.tie_word_embeddings = tie;
  c.qkv_bias = arch == "qwen2";
  c.bos_token_id = 1;
  c.eos_token_ids = {2};

  at::manual_seed(seed);
  const int64_t d = c.hidden_size, hd = c.head_dim;
  ModelWeights w;
  w.embed = Normal({c.vocab_size, d}, init_std * 4);
  w.norm = 1 + Normal({d}, 0.1);
  w.lm_head = tie ? w.embed : Normal({c.vocab_size, d}, init_std * 2);
  for (int i = 0; i < layers; ++i) {
    coldcompress::LayerWeights l;
    l.input_norm = 1 + Normal({d}, 0.1);
    l.post_norm = 1 + Normal({d}, 0.1);
    l.wq = Normal({heads * hd, d}, init_std * 2);
    l.wk = Normal({kv_heads * hd, d}, init_std * 2);
    l.wv = Normal({kv_heads * hd, d}, init_std);
    l.wo = Normal({d, heads * hd}, init_std);
    if (c.qkv_bias) {
      l.bq = Normal({heads * hd}, init_std);
      l.bk = Normal({kv_heads * hd}, init_std);
      l.bv = Normal({kv_heads * hd}, init_std);
    }
    l.w_gate = Normal({intermediate, d}, init_std);
    l.w_up = Normal({intermediate, d}, init_std);
    l.w_down = Normal({d, intermediate}, init_std);
    w.layers.push_back(l);
  }
  if (absl::Status s = coldcompress::WriteCheckpoint(out, c, w, *dtype, shards);
      !s.ok()) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  nlohmann::json tc = {{"add_bos_token", true},
                       {"add_eos_token", false},
                       {"bos_token", "<s>"},
                       {"eos_token", "</s>"},
                       {"unk_token", "<unk>"},
                       {"model_max_length", max_positions},
                       {"tokenizer_class", "LlamaTokenizer"}};
  std::ofstream(dir / "tokenizer_config.json") << tc.dump(2) << "\n";
  std::cout << "wrote " << c.architecture << " (" << layers << " layers, "
            << heads << "/" << kv_heads << " heads, vocab " << vocab_size
            << ") to " << out << "\n";
  return 0;
}
