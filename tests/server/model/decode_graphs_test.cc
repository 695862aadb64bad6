// Decode steps in fixed per-bucket buffers (LlamaModel::UseDecodeGraphs
// without capture, as the CPU runs them): sessions under different policies,
// in batches padded to 1, 2, 4 and 8 rows, give DecodeBatch's logits bit for
// bit and keep the same positions. Capture itself needs a GPU
// (scripts/gpu_bench.sh checks it there).
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/registry.h"
#include "server/model/cuda.h"
#include "server/model/llama.h"
#include "tests/testing/fixtures.h"

namespace coldcompress {
namespace {

struct Session {
  std::vector<std::unique_ptr<CacheLayer>> layers;
  std::vector<CacheLayer*> pointers;
  int64_t position = 0;
  int32_t next = 0;  // the greedy token to decode next
};

TEST(DecodeGraphsTest, FixedBuffersDecodeExactlyAsDecodeBatch) {
  PolicyRegistry registry;
  RegisterBuiltins(registry);
  struct Spec {
    std::string strategy;
    double size;
    std::optional<int64_t> bits;
  };
  const Spec specs[] = {{"full", 1.0, std::nullopt},
                        {"recent_global", 0.25, std::nullopt},
                        {"heavy_hitter", 0.5, std::nullopt},
                        {"l2", 0.5, std::nullopt},
                        {"full", 1.0, 4}};
  constexpr int kSessions = 5;
  // Each step's sessions: buckets of 1, 4, 8, 2, 8 (again) and 1 rows.
  const std::vector<std::vector<int>> steps = {
      {0}, {0, 1, 2}, {0, 1, 2, 3, 4}, {1, 3}, {0, 1, 2, 3, 4}, {2}};
  constexpr int64_t kMaxSeq = 80;
  for (const std::string fixture : {"llama", "qwen2"}) {
    SCOPED_TRACE(fixture);
    auto plain =
        LlamaModel::Load(testing::FixtureDir(fixture), at::kFloat, at::kCPU);
    auto buffered =
        LlamaModel::Load(testing::FixtureDir(fixture), at::kFloat, at::kCPU);
    ASSERT_TRUE(plain.ok()) << plain.status();
    ASSERT_TRUE(buffered.ok()) << buffered.status();
    ASSERT_TRUE((*buffered)->UseDecodeGraphs(/*capture=*/false).ok());
    EXPECT_TRUE((*buffered)->decode_graphs());
    EXPECT_FALSE((*plain)->decode_graphs());
    LlamaModel* models[2] = {plain->get(), buffered->get()};
    std::vector<Session> sessions[2];
    for (int m = 0; m < 2; ++m) {
      for (int i = 0; i < kSessions; ++i) {
        PolicySpec spec;
        spec.strategy = {specs[i].strategy};
        spec.max_cache_length = {specs[i].size};
        spec.cache_bits = specs[i].bits;
        const CachePlan plan = *ResolveCachePlan(
            spec, models[m]->config().num_layers, kMaxSeq, registry);
        Session s;
        s.layers = *models[m]->CreateCaches(registry, spec, plan);
        for (auto& l : s.layers) s.pointers.push_back(l.get());
        std::vector<int32_t> prompt = {1};
        for (int t = 1; t < 30 + 7 * i; ++t) {
          prompt.push_back(3 + (t * (11 + i)) % 200);
        }
        const at::Tensor logits = models[m]->Prefill(prompt, s.pointers);
        s.position = static_cast<int64_t>(prompt.size());
        s.next = static_cast<int32_t>(logits.argmax().item<int64_t>());
        sessions[m].push_back(std::move(s));
      }
    }
    for (size_t t = 0; t < steps.size(); ++t) {
      at::Tensor logits[2];
      for (int m = 0; m < 2; ++m) {
        std::vector<LlamaModel::DecodeRow> rows;
        for (int i : steps[t]) {
          const Session& s = sessions[m][i];
          rows.push_back({s.next, s.position, s.pointers});
        }
        logits[m] = models[m]->DecodeBatch(rows);
        ASSERT_EQ(logits[m].size(0), static_cast<int64_t>(rows.size()));
        for (size_t r = 0; r < rows.size(); ++r) {
          Session& s = sessions[m][steps[t][r]];
          ++s.position;
          s.next = static_cast<int32_t>(logits[m][r].argmax().item<int64_t>());
        }
      }
      EXPECT_TRUE(at::equal(logits[0], logits[1])) << "step " << t;
    }
    for (int i = 0; i < kSessions; ++i) {
      for (size_t l = 0; l < sessions[0][i].layers.size(); ++l) {
        const CacheLayer& a = *sessions[0][i].layers[l];
        const CacheLayer& b = *sessions[1][i].layers[l];
        for (int64_t h = 0; h < a.num_heads(); ++h) {
          EXPECT_EQ(b.HeadPositions(h), a.HeadPositions(h))
              << "session " << i << " layer " << l << " head " << h;
        }
      }
    }
  }
}

TEST(DecodeGraphsTest, CaptureNeedsACudaDevice) {
  auto model =
      LlamaModel::Load(testing::FixtureDir("llama"), at::kFloat, at::kCPU);
  ASSERT_TRUE(model.ok()) << model.status();
  const absl::Status status = (*model)->UseDecodeGraphs(/*capture=*/true);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "cuda_graphs: the model is on cpu; CUDA graphs need a CUDA device");
  EXPECT_FALSE((*model)->decode_graphs());
  // This build's LibTorch (Debian's) has no CUDA.
  EXPECT_FALSE(CudaGraphsBuilt());
  EXPECT_EQ(MakeCudaGraphRecorder(at::Device(at::kCUDA, 0)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace coldcompress
