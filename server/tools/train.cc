// cc-train: trains the embedded default model, a small GQA Llama, on the
// retrieval mixture of train_data.h with AdamW, reusing the server's model
// code (LlamaModel::Forward). Resumable from its checkpoints, deterministic
// for a seed; writes a Hugging Face checkpoint with its tokenizer.
//   cc-train --out models/default [--steps N --batch B ...]
// Built with LibTorch alone (COLDCOMPRESS_TRAIN_FROM_FILES_ONLY: a GPU
// machine, scripts/gpu_train.sh) it trains from a batch file that a full
// build wrote with --write_batches, and takes the same steps.
#include <spawn.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/model/checkpoint.h"
#include "server/model/llama.h"
#include "server/model/random_weights.h"
#include "server/tools/train_batches.h"
#ifndef COLDCOMPRESS_TRAIN_FROM_FILES_ONLY
#include "server/tokenizer/load.h"
#include "server/tools/train_data.h"
#endif

extern char** environ;

namespace {

namespace fs = std::filesystem;
using coldcompress::LayerWeights;
using coldcompress::ModelConfig;
using coldcompress::ModelWeights;
using nlohmann::json;

struct Flags {
  std::string out;
  int layers = 4, hidden = 128, heads = 4, kv_heads = 4, intermediate = 384;
  int vocab = 3072;
  bool number_pieces = true;  // numbers in 1-3-digit pieces, as Llama-3
  double context_loss = 0;    // weight of the prompt tokens' mean loss
  int64_t steps = 4000;
  int batch = 8;
  double lr = 1e-3, weight_decay = 0.1, warmup = 100;
  double init_std = 0;  // 0: 1/sqrt(hidden)
  std::string schedule = "cosine";
  int min_context = 128, max_context = 1024;
  double curriculum = 0.5;  // fraction of the steps over which contexts grow
  uint64_t seed = 1;
  int save_every = 100;
  int threads = 0;
  std::string device = "cpu";
  int dump = 0;               // print this many training sequences and exit
  std::string write_batches;  // write the run's batches here and exit
  int64_t first_step = 0;     // the first step --write_batches writes
  std::string batches;        // train from the batches in this file
  std::vector<std::string> mixture;  // NAME=WEIGHT overrides
  std::string init;                  // start from this checkpoint's weights
};

#ifndef COLDCOMPRESS_TRAIN_FROM_FILES_ONLY
// Runs `args` in `dir`; returns its exit status, or -1.
int Run(const std::vector<std::string>& args, const fs::path& dir) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  pid_t pid;
  const int spawned =
      posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Every string of one to three digits, bare and after a space ("\u2581"),
// for spm_train's --user_defined_symbols: SentencePiece matches those
// greedily, longest first, so " 1899280" becomes "\u2581189" "928" "0", the
// digit groups of Llama-3's pre-tokenizer (\p{N}{1,3} from the left) with
// the space before a number kept on its first group. That space is part of
// the number's first token, so the token after "... is" is already the
// number: the answer is retrieved at the prompt's last position, as an LLM
// retrieves it there (docs/default_model.md).
std::string NumberPieces() {
  std::string out;
  for (const char* prefix : {"", "\u2581"}) {
    for (int width = 1; width <= 3; ++width) {
      int count = 1;
      for (int i = 0; i < width; ++i) count *= 10;
      for (int n = 0; n < count; ++n) {
        char piece[16];
        std::snprintf(piece, sizeof(piece), "%s%0*d", prefix, width, n);
        if (!out.empty()) out += ",";
        out += piece;
      }
    }
  }
  return out;
}

bool TrainTokenizer(const fs::path& dir, const Flags& f) {
  const fs::path corpus = dir / "corpus.txt";
  std::ofstream(corpus) << coldcompress::TokenizerCorpus(f.seed, 1 << 20);
  // Relative paths: the model file records them, and the same seed must
  // give the same bytes wherever the model is trained.
  std::vector<std::string> args = {"spm_train",
                                   "--input=corpus.txt",
                                   "--model_prefix=tokenizer",
                                   "--vocab_size=" + std::to_string(f.vocab),
                                   "--model_type=bpe",
                                   "--byte_fallback=true",
                                   "--character_coverage=1.0",
                                   "--unk_id=0",
                                   "--bos_id=1",
                                   "--eos_id=2",
                                   "--pad_id=-1",
                                   "--num_threads=1",
                                   "--minloglevel=2",
                                   "--input_sentence_size=100000",
                                   "--shuffle_input_sentence=false"};
  if (f.number_pieces) {
    args.push_back("--split_digits=false");
    args.push_back("--user_defined_symbols=" + NumberPieces());
  } else {
    args.push_back("--split_digits=true");
  }
  const int rc = Run(args, dir);
  fs::remove(corpus);
  fs::remove(dir / "tokenizer.vocab");
  return rc == 0;
}
#endif  // COLDCOMPRESS_TRAIN_FROM_FILES_ONLY

ModelConfig Config(const Flags& f, int vocab_size) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = vocab_size;
  c.hidden_size = f.hidden;
  c.intermediate_size = f.intermediate;
  c.num_layers = f.layers;
  c.num_heads = f.heads;
  c.num_kv_heads = f.kv_heads;
  c.head_dim = f.hidden / f.heads;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  c.tie_word_embeddings = true;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// A copy of `weights` on the CPU, for writing a checkpoint.
ModelWeights OnCpu(ModelWeights weights, const ModelConfig& config) {
  for (auto& [name, tensor] : weights.Named(config))
    *tensor = tensor->detach().to(at::kCPU);
  weights.lm_head = weights.embed;
  return weights;
}

// The settings that decide a run's data: a batch file's header carries
// them, and so does the model card's training.json.
json DataSettings(const Flags& f, const json& mixture) {
  return {{"batch", f.batch},
          {"min_context", f.min_context},
          {"max_context", f.max_context},
          {"curriculum", f.curriculum},
          {"seed", f.seed},
          {"number_pieces", f.number_pieces},
          {"mixture", mixture}};
}

// A batch file's data settings in place of the flags'.
void UseDataSettings(const json& h, Flags* f, json* mixture) {
  f->batch = h.at("batch");
  f->min_context = h.at("min_context");
  f->max_context = h.at("max_context");
  f->curriculum = h.at("curriculum");
  f->seed = h.at("seed");
  f->number_pieces = h.at("number_pieces");
  *mixture = h.at("mixture");
}

// The longest context allowed at `step`: the curriculum grows it from
// --min_context to --max_context over its fraction of the steps.
int ContextCap(const Flags& f, int64_t step) {
  const double grow =
      f.curriculum > 0
          ? std::min(1.0, static_cast<double>(step) / (f.curriculum * f.steps))
          : 1.0;
  return f.min_context +
         static_cast<int>(grow * (f.max_context - f.min_context));
}

std::string Clock(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%lld:%02lld:%02lld",
                static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60),
                static_cast<long long>(s % 60));
  return buffer;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Trains the default ColdCompress model on CPU"};
  app.add_option("--out", f.out, "model folder (the checkpoint goes here)")
      ->required();
  app.add_option("--layers", f.layers);
  app.add_option("--hidden", f.hidden);
  app.add_option("--heads", f.heads);
  app.add_option("--kv_heads", f.kv_heads);
  app.add_option("--intermediate", f.intermediate);
  app.add_option("--vocab", f.vocab, "SentencePiece vocabulary size");
  app.add_option("--number_pieces", f.number_pieces,
                 "tokenizer: numbers in pieces of 1-3 digits from the left, "
                 "as Llama-3's, the first after a space with the space (2220 "
                 "of the pieces); false: one digit a piece");
  app.add_option("--context_loss", f.context_loss,
                 "weight of each sequence's mean loss on its prompt tokens, "
                 "next to the mean loss on its answer (0: answers only)");
  app.add_option("--steps", f.steps);
  app.add_option("--batch", f.batch, "sequences per step");
  app.add_option("--lr", f.lr, "peak learning rate (cosine decay to 10%)");
  app.add_option("--weight_decay", f.weight_decay);
  app.add_option("--schedule", f.schedule,
                 "learning rate after warm-up: cosine (decay to 10%) or "
                 "constant")
      ->check(CLI::IsMember({"cosine", "constant"}));
  app.add_option("--init_std", f.init_std,
                 "standard deviation of the initial weights (0: "
                 "1/sqrt(hidden), which breaks attention's symmetry early)");
  app.add_option("--warmup", f.warmup, "warm-up steps");
  app.add_option("--min_context", f.min_context);
  app.add_option("--max_context", f.max_context, "the longest trained context");
  app.add_option("--curriculum", f.curriculum,
                 "fraction of the steps over which the longest context grows");
  app.add_option("--seed", f.seed);
  app.add_option("--save_every", f.save_every, "steps between checkpoints");
  app.add_option("--device", f.device,
                 "cpu, or cuda (a LibTorch with CUDA): where the model trains; "
                 "the weights start the same (made on the CPU) and the "
                 "checkpoints are written from the CPU either way")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--threads", f.threads,
                 "LibTorch intra-op threads (0: its default; BLAS uses every "
                 "core regardless)");
  app.add_option("--mixture", f.mixture,
                 "NAME=WEIGHT ... (tasks, \"copy\", \"text\"): replaces the "
                 "default mixture");
  app.add_option("--init", f.init,
                 "start from the weights of this checkpoint (an earlier "
                 "stage) instead of random ones");
  app.add_option("--write_batches", f.write_batches,
                 "write the batches of steps --first_step .. --steps - 1 to "
                 "this file and exit (for --batches on a machine without the "
                 "tokenizer and the task generators)");
  app.add_option("--first_step", f.first_step,
                 "with --write_batches: the first step written (a run that "
                 "resumes there)");
  app.add_option("--batches", f.batches,
                 "train from this file of --write_batches: its settings "
                 "(steps, batch, contexts, curriculum, seed, mixture, "
                 "vocabulary) replace the flags'");
  app.add_option("--dump", f.dump,
                 "print the first N training sequences (scored part in "
                 "[[ ]]) and exit");
  CLI11_PARSE(app, argc, argv);
  // By default LibTorch's own ops stay as they are (Debian's: one thread)
  // while the matrix products use BLAS's threads on every core; giving
  // LibTorch every core as well oversubscribes them (2.7x slower measured
  // on 2 cores).
  if (f.threads > 0) torch::set_num_threads(f.threads);
  const at::Device device = f.device == "cuda" ? at::kCUDA : at::kCPU;
  if (device.is_cuda() && !torch::cuda::is_available()) {
    std::cerr << "--device cuda: this LibTorch sees no CUDA device\n";
    return 2;
  }

  const fs::path out(f.out), state = fs::path(f.out) / "train_state";
  fs::create_directories(state);
  // The data: a batch file's, or the mixture's on the model's tokenizer.
  std::function<absl::StatusOr<coldcompress::TrainBatch>(int64_t)> make_batch;
  json mixture_summary = json::object();
  int vocab_size = 0;
  coldcompress::BatchFile file;
  if (!f.batches.empty()) {
    absl::StatusOr<coldcompress::BatchFile> read =
        coldcompress::ReadBatchFile(f.batches);
    if (!read.ok()) {
      std::cerr << "--batches: " << read.status().message() << "\n";
      return 2;
    }
    file = *std::move(read);
    UseDataSettings(file.header, &f, &mixture_summary);
    f.steps = file.header.at("steps");
    vocab_size = file.header.at("vocab_size");
    make_batch =
        [&file](int64_t step) -> absl::StatusOr<coldcompress::TrainBatch> {
      if (step < file.first_step ||
          step >= file.first_step + static_cast<int64_t>(file.batches.size())) {
        return absl::OutOfRangeError(absl::StrCat(
            "the batch file holds steps ", file.first_step, "..",
            file.first_step + file.batches.size() - 1, ", not ", step));
      }
      return file.at(step);
    };
  } else {
#ifdef COLDCOMPRESS_TRAIN_FROM_FILES_ONLY
    std::cerr << "this cc-train is built without the tokenizer and the task "
                 "generators: pass --batches FILE (a full build's "
                 "--write_batches)\n";
    return 2;
  }
#else
    if (!fs::exists(out / "tokenizer.model")) {
      std::cerr << "training the tokenizer (spm_train, vocabulary " << f.vocab
                << ")\n";
      if (!TrainTokenizer(out, f)) {
        std::cerr
            << "spm_train failed; is the sentencepiece package installed?\n";
        return 1;
      }
    }
    json tc = {{"add_bos_token", true},
               {"add_eos_token", false},
               {"bos_token", "<s>"},
               {"eos_token", "</s>"},
               {"unk_token", "<unk>"},
               {"model_max_length", 4096},
               {"tokenizer_class", "LlamaTokenizer"}};
    std::ofstream(out / "tokenizer_config.json") << tc.dump(2) << "\n";
  }
  std::unique_ptr<coldcompress::Tokenizer> tokenizer;
  std::unique_ptr<coldcompress::TrainMixture> mixture;
  if (f.batches.empty()) {
    absl::StatusOr<std::unique_ptr<coldcompress::Tokenizer> > loaded =
        coldcompress::LoadTokenizer(f.out);
    if (!loaded.ok()) {
      std::cerr << loaded.status().message() << "\n";
      return 1;
    }
    tokenizer = *std::move(loaded);
    vocab_size = tokenizer->vocab_size();
    coldcompress::MixtureOptions mixture_options;
    mixture_options.seed = f.seed;
    mixture_options.min_context = f.min_context;
    mixture_options.max_context = f.max_context;
    if (!f.mixture.empty()) {
      mixture_options.weights.clear();
      for (const std::string& kv : f.mixture) {
        const size_t eq = kv.find('=');
        if (eq == std::string::npos) {
          std::cerr << "--mixture: " << kv << " is not NAME=WEIGHT\n";
          return 2;
        }
        mixture_options.weights.emplace_back(kv.substr(0, eq),
                                             std::stod(kv.substr(eq + 1)));
      }
    }
    for (const auto& [name, w] : mixture_options.weights)
      mixture_summary[name] = w;
    mixture = std::make_unique<coldcompress::TrainMixture>(tokenizer.get(),
                                                           mixture_options);
    make_batch = [&](int64_t step) -> absl::StatusOr<coldcompress::TrainBatch> {
      coldcompress::TrainBatch batch;
      for (int i = 0; i < f.batch; ++i) {
        absl::StatusOr<coldcompress::TrainSequence> s =
            mixture->Make(step, i, ContextCap(f, step));
        if (!s.ok()) return s.status();
        batch.push_back(*std::move(s));
      }
      return batch;
    };
  }
  for (int i = 0; i < f.dump && mixture != nullptr; ++i) {
    absl::StatusOr<coldcompress::TrainSequence> s =
        mixture->Make(i / 4096, i % 4096, f.max_context);
    if (!s.ok()) return 1;
    std::string text;
    bool in = false;
    for (size_t t = 1; t < s->tokens.size(); ++t) {
      const bool scored = s->target[t - 1] == coldcompress::kAnswer;
      if (scored != in) text += scored ? "[[" : "]]";
      in = scored;
      text += tokenizer->Decode({s->tokens[t]}, false);
    }
    std::printf("--- %s, %zu tokens\n%s%s\n", s->kind.c_str(), s->tokens.size(),
                text.c_str(), in ? "]]" : "");
  }
  if (f.dump > 0) return 0;
  if (!f.write_batches.empty()) {
    json header = DataSettings(f, mixture_summary);
    header.update({{"first_step", f.first_step},
                   {"steps", f.steps},
                   {"vocab_size", vocab_size}});
    const absl::Status written = coldcompress::WriteBatchFile(
        f.write_batches, header, make_batch, [&](int64_t step) {
          std::fprintf(stderr, "\rbatches: step %lld/%lld\x1b[K",
                       static_cast<long long>(step + 1),
                       static_cast<long long>(f.steps));
        });
    if (!written.ok()) {
      std::cerr << "\n--write_batches: " << written.message() << "\n";
      return 1;
    }
    std::cerr << "\nwrote " << f.write_batches << "\n";
    return 0;
  }
#endif
  const ModelConfig config = Config(f, vocab_size);

  // Resume from the last checkpoint of this run, else start from scratch.
  int64_t start_step = 0;
  double seconds_before = 0;  // training time of earlier runs (resume)
  int64_t tokens_before = 0;
  const bool resuming = fs::exists(state / "progress.json");
  if (resuming) {
    json progress = json::parse(std::ifstream(state / "progress.json"));
    start_step = progress["step"];
    seconds_before = progress.value("seconds", 0.0);
    tokens_before = progress.value("tokens", int64_t{0});
  }
  // Weights: the run's own checkpoint, else --init's, else random.
  const std::string from = resuming ? state.string() : f.init;
  ModelWeights weights;
  if (from.empty()) {
    weights = RandomWeights(config, f.seed, f.init_std);
    for (auto& [name, tensor] : weights.Named(config))
      *tensor = tensor->to(device);
  } else {
    absl::StatusOr<ModelWeights> loaded =
        coldcompress::LoadModelWeights(from, config, at::kFloat, device);
    if (!loaded.ok()) {
      std::cerr << (resuming ? "cannot resume: " : "--init: ")
                << loaded.status().message() << "\n";
      return 1;
    }
    weights = *std::move(loaded);
    if (resuming) std::cerr << "resuming at step " << start_step << "\n";
  }
  weights.lm_head = weights.embed;  // tied: one tensor, trained once
  std::vector<torch::Tensor> params;
  for (auto& [name, tensor] : weights.Named(config)) {
    tensor->set_requires_grad(true);
    params.push_back(*tensor);
  }
  coldcompress::LlamaModel model(config, weights, device);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(f.lr)
                                            .betas({0.9, 0.95})
                                            .weight_decay(f.weight_decay));
  if (start_step > 0 && fs::exists(state / "optimizer.pt"))
    torch::load(optimizer, (state / "optimizer.pt").string(), device);

  int64_t params_count = 0;
  for (const auto& p : params) params_count += p.numel();
  std::cerr << "model: " << config.num_layers << " layers, hidden "
            << config.hidden_size << ", " << config.num_heads << "/"
            << config.num_kv_heads << " heads, vocab " << config.vocab_size
            << ", " << params_count << " parameters; " << f.steps
            << " steps of " << f.batch << "\n";
  // The finished model: weights to --out, and what the model card states
  // about its training.
  auto write_out = [&](const json& progress) {
    torch::NoGradGuard no_grad;
    ModelWeights copy = OnCpu(weights, config);
    if (absl::Status s =
            coldcompress::WriteCheckpoint(f.out, config, copy, at::kFloat, 1);
        !s.ok()) {
      std::cerr << "\n" << s.message() << "\n";
      return false;
    }
    json summary = progress;
    summary.update(DataSettings(f, mixture_summary));
    summary.update({{"parameters", params_count},
                    {"lr", f.lr},
                    {"weight_decay", f.weight_decay},
                    {"warmup", f.warmup},
                    {"schedule", f.schedule},
                    {"context_loss", f.context_loss},
                    {"threads", torch::get_num_threads()}});
    std::ofstream(out / "training.json") << summary.dump(2) << "\n";
    return true;
  };
  if (start_step > f.steps) {
    std::cerr << "--steps " << f.steps << ": " << state.string()
              << " is already at step " << start_step
              << "; pass --steps >= " << start_step
              << " or delete it to train afresh\n";
    return 2;
  }
  if (start_step == f.steps) {
    // A finished run, or one stopped here by a smaller --steps than it was
    // started with: its state holds the final weights.
    if (!write_out(json::parse(std::ifstream(state / "progress.json"))))
      return 1;
    std::cerr << "wrote " << f.out << "\n";
    return 0;
  }
  const auto started = std::chrono::steady_clock::now();
  double ema = 0;
  int64_t tokens_seen = 0;
  std::map<std::string, double> kind_loss;
  for (int64_t step = start_step; step < f.steps; ++step) {
    const int cap = ContextCap(f, step);
    absl::StatusOr<coldcompress::TrainBatch> made = make_batch(step);
    if (!made.ok() || static_cast<int>(made->size()) != f.batch) {
      std::cerr << "\ndata: "
                << (made.ok() ? "a batch of the wrong size"
                              : std::string(made.status().message()))
                << "\n";
      return 1;
    }
    const coldcompress::TrainBatch& batch = *made;
    size_t longest = 0;
    for (const coldcompress::TrainSequence& s : batch)
      longest = std::max(longest, s.tokens.size());
    // Right-padded: padding is never a target, and attention is causal.
    torch::Tensor tokens =
        torch::zeros({f.batch, static_cast<int64_t>(longest)}, torch::kLong);
    torch::Tensor target =
        torch::zeros({f.batch, static_cast<int64_t>(longest)}, torch::kByte);
    // Filled through raw pointers: an indexing op per element would cost
    // more than the step's arithmetic at these sizes.
    int64_t* token_data = tokens.data_ptr<int64_t>();
    uint8_t* target_data = target.data_ptr<uint8_t>();
    for (int i = 0; i < f.batch; ++i) {
      int64_t* row = token_data + i * static_cast<int64_t>(longest);
      uint8_t* target_row = target_data + i * static_cast<int64_t>(longest);
      std::copy(batch[i].tokens.begin(), batch[i].tokens.end(), row);
      std::copy(batch[i].target.begin(), batch[i].target.end(), target_row);
      tokens_seen += static_cast<int64_t>(batch[i].tokens.size());
    }
    // Learning rate: linear warm-up, cosine decay to 10%.
    const double progress = static_cast<double>(step) / f.steps;
    const double lr =
        step < f.warmup ? f.lr * (step + 1) / f.warmup
        : f.schedule == "constant"
            ? f.lr
            : f.lr * (0.1 + 0.45 * (1 + std::cos(M_PI * progress)));
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

    optimizer.zero_grad();
    tokens = tokens.to(device);
    target = target.to(device);
    const torch::Tensor logits = model.Forward(tokens);  // [B, S, V]
    const int64_t v = logits.size(2);
    const torch::Tensor logp =
        torch::log_softmax(logits.slice(1, 0, -1).reshape({-1, v}), 1);
    const torch::Tensor next = tokens.slice(1, 1).reshape({-1});
    const torch::Tensor t = target.slice(1, 0, -1).reshape({-1});
    const torch::Tensor nll =
        -logp.gather(1, next.unsqueeze(1)).squeeze(1).view({f.batch, -1});
    // Every sequence weighs the same, whatever its number of scored tokens:
    // a needle's answer (4 tokens) counts as much as a page of text, so the
    // mixture's weights are what the gradient sees. With --context_loss the
    // prompt's tokens add their mean loss at that weight: predicting a
    // question's key from the needle's is retrieval too.
    const torch::Tensor m =
        (t == coldcompress::kAnswer).to(torch::kFloat).view({f.batch, -1});
    const torch::Tensor rows = (nll * m).sum(1);
    const torch::Tensor counts = m.sum(1);
    torch::Tensor per_sequence = rows / counts.clamp_min(1);
    torch::Tensor scored = counts > 0;
    if (f.context_loss > 0) {
      const torch::Tensor c =
          (t == coldcompress::kContext).to(torch::kFloat).view({f.batch, -1});
      const torch::Tensor c_counts = c.sum(1);
      per_sequence = per_sequence +
                     f.context_loss * (nll * c).sum(1) / c_counts.clamp_min(1);
      scored = scored.logical_or(c_counts > 0);
    }
    const torch::Tensor loss = per_sequence.sum() / scored.sum().clamp_min(1);
    {
      // Per kind: the mean loss of its scored tokens, averaged over time.
      torch::NoGradGuard no_grad;
      for (int i = 0; i < f.batch; ++i) {
        const double c = counts[i].item<double>();
        if (c == 0) continue;
        const double x = rows[i].item<double>() / c;
        auto [it, fresh] = kind_loss.try_emplace(batch[i].kind, x);
        if (!fresh) it->second = 0.95 * it->second + 0.05 * x;
      }
    }
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    optimizer.step();

    const double l = loss.item<double>();
    ema = step == start_step ? l : 0.98 * ema + 0.02 * l;
    const double elapsed = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - started)
                               .count();
    const double rate = (step + 1 - start_step) / elapsed;
    std::fprintf(stderr,
                 "\rstep %lld/%lld loss %.4f (avg %.4f) ctx<=%d %.0f tok/s "
                 "elapsed %s ETA %s\x1b[K",
                 static_cast<long long>(step + 1),
                 static_cast<long long>(f.steps), l, ema, cap,
                 tokens_seen / elapsed, Clock(elapsed).c_str(),
                 Clock((f.steps - step - 1) / rate).c_str());
    const bool last = step + 1 == f.steps;
    if ((step + 1) % f.save_every == 0 || last) {
      torch::NoGradGuard no_grad;
      // The state folder always has the latest weights (a finished run
      // can be extended with a larger --steps); the last go to --out too.
      ModelWeights copy = OnCpu(weights, config);
      if (absl::Status s = coldcompress::WriteCheckpoint(state.string(), config,
                                                         copy, at::kFloat, 1);
          !s.ok()) {
        std::cerr << "\n" << s.message() << "\n";
        return 1;
      }
      torch::save(optimizer, (state / "optimizer.pt").string());
      const json progress = {{"step", step + 1},
                             {"seconds", seconds_before + elapsed},
                             {"tokens", tokens_before + tokens_seen},
                             {"loss_avg", ema},
                             {"loss_by_kind", kind_loss}};
      std::ofstream(state / "progress.json") << progress.dump() << "\n";
      if (last && !write_out(progress)) return 1;
      std::fprintf(stderr, "\n  loss by kind:");
      for (const auto& [kind, x] : kind_loss)
        std::fprintf(stderr, " %s %.3f", kind.c_str(), x);
      std::fprintf(stderr, "\n");
    }
  }
  std::cerr << "wrote " << f.out << "\n";
  return 0;
}
