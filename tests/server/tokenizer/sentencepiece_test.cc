#include <gtest/gtest.h>

#include "server/engine/text_stream.h"
#include "server/tokenizer/load.h"
#include "tests/testing/fixtures.h"

namespace coldcompress {
namespace {

class SentencePieceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = LoadTokenizer(testing::FixtureDir("llama"));
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
  }
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(SentencePieceTest, EncodeDecodeRoundTrip) {
  EXPECT_EQ(tokenizer_->vocab_size(), 512);
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
  const std::string text = "The quiet river carried 42 lamps, née café ☕!";
  const std::vector<int32_t> ids = tokenizer_->Encode(text, true);
  ASSERT_GT(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_NE(tokenizer_->Encode(text, false)[0], 1);
  EXPECT_EQ(tokenizer_->Decode(std::vector<int32_t>(ids.begin() + 1, ids.end()),
                               false),
            text);
  EXPECT_EQ(tokenizer_->Piece(ids[0]), "<s>");
}

TEST_F(SentencePieceTest, StreamHoldsBackPartialCharacters) {
  // "☕" is three bytes; with byte fallback it is three tokens.
  const std::vector<int32_t> ids = tokenizer_->Encode("a☕b", false);
  TextStream stream(tokenizer_.get(), {});
  std::string out;
  std::vector<std::string> parts;
  for (int32_t id : ids) {
    parts.push_back(stream.Push(id));
    out += parts.back();
  }
  out += stream.Finish();
  EXPECT_EQ(out, "a☕b");
  for (const std::string& p : parts) {
    EXPECT_EQ(p.find("\xEF\xBF\xBD"), std::string::npos)
        << "a partial character leaked";
  }
}

TEST_F(SentencePieceTest, StreamStopsAtStopStringsAndHoldsPrefixes) {
  const std::vector<int32_t> ids =
      tokenizer_->Encode("one two three four", false);
  TextStream stream(tokenizer_.get(), {"thr", "zzz"});
  std::string out;
  for (int32_t id : ids) {
    out += stream.Push(id);
    if (stream.stopped()) break;
  }
  out += stream.Finish();
  EXPECT_TRUE(stream.stopped());
  EXPECT_EQ(out, "one two ");
  EXPECT_EQ(stream.text(), "one two ");
}

}  // namespace
}  // namespace coldcompress
