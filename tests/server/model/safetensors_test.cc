#include "server/model/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace coldcompress {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("cc_st_" + name)).string();
}

TEST(SafetensorsTest, RoundTripAndDtypeConversion) {
  const std::string path = TempPath("roundtrip.safetensors");
  const at::Tensor a = at::arange(6, at::kFloat).view({2, 3}) / 3;
  const at::Tensor b = at::tensor({1.5f, -2.25f, 3.0f}).to(at::kBFloat16);
  const at::Tensor c = at::tensor({0.5f, 0.25f}).to(at::kHalf);
  ASSERT_TRUE(
      WriteSafetensors(path, {{"a", a}, {"b", b}, {"c", c}}, {{"format", "pt"}})
          .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->tensors().at("b").dtype, at::kBFloat16);
  EXPECT_EQ((*file)->tensors().at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(at::equal(*(*file)->Load("a", at::kFloat), a));
  const at::Tensor b32 = *(*file)->Load("b", at::kFloat);
  EXPECT_EQ(b32.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(b32, at::tensor({1.5f, -2.25f, 3.0f})));
  EXPECT_TRUE(
      at::equal(*(*file)->Load("c", at::kFloat), at::tensor({0.5f, 0.25f})));
  EXPECT_EQ((*file)->Load("missing", at::kFloat).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, DataStartsAligned) {
  const std::string path = TempPath("aligned.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"x", at::ones({3})}}).ok());
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
}

void WriteRaw(const std::string& path, const std::string& header,
              size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << std::string(data_bytes, '\0');
}

TEST(SafetensorsTest, CorruptFilesAreRejected) {
  const std::string path = TempPath("corrupt.safetensors");
  WriteRaw(path,
           R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
           8);
  auto r = SafetensorsFile::Open(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("x"), std::string::npos);

  WriteRaw(path,
           R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}})",
           16);
  EXPECT_EQ(SafetensorsFile::Open(path).status().code(),
            absl::StatusCode::kDataLoss);

  WriteRaw(path,
           R"({"x": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}})",
           16);
  EXPECT_EQ(SafetensorsFile::Open(path).status().code(),
            absl::StatusCode::kDataLoss);

  WriteRaw(path, "not json", 0);
  EXPECT_EQ(SafetensorsFile::Open(path).status().code(),
            absl::StatusCode::kDataLoss);

  {
    std::ofstream out(path, std::ios::binary);
    uint64_t n = 1ull << 40;
    out.write(reinterpret_cast<const char*>(&n), 8);
  }
  EXPECT_EQ(SafetensorsFile::Open(path).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(SafetensorsFile::Open(TempPath("absent")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace coldcompress
