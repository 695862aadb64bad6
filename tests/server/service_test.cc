// The gRPC service end to end on loopback: validation, sessions, concurrency,
// health and reflection.
#include "server/service.h"

#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

using testing::FixtureDir;
using testing::IdsRequest;
using testing::ServerHarness;
using Clock = std::chrono::steady_clock;

std::vector<int32_t> Range(int32_t from, int32_t n) {
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < n; ++i) ids.push_back(from + (i * 37) % 400);
  return ids;
}

class ServiceTest : public testing::SharedServerTest {};

// Each bad request gets its code and a message naming the field; the server
// keeps serving.
TEST_F(ServiceTest, BadInputNamesTheField) {
  struct Case {
    std::string name;
    std::function<void(v1::GenerateRequest&)> edit;
    grpc::StatusCode code;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"empty text", [](auto& r) { r.set_prompt(""); }, grpc::INVALID_ARGUMENT,
       "prompt"},
      {"no input", [](auto& r) { r.clear_prompt_token_ids(); },
       grpc::INVALID_ARGUMENT, "prompt"},
      {"empty ids", [](auto& r) { r.mutable_prompt_token_ids()->clear_ids(); },
       grpc::INVALID_ARGUMENT, "prompt_token_ids"},
      {"id too large",
       [](auto& r) { r.mutable_prompt_token_ids()->add_ids(512); },
       grpc::INVALID_ARGUMENT, "prompt_token_ids[3] = 512"},
      {"negative id",
       [](auto& r) { r.mutable_prompt_token_ids()->set_ids(0, -1); },
       grpc::INVALID_ARGUMENT, "prompt_token_ids[0]"},
      {"max_new_tokens 0", [](auto& r) { r.set_max_new_tokens(0); },
       grpc::INVALID_ARGUMENT, "max_new_tokens"},
      {"over the context", [](auto& r) { r.set_max_new_tokens(2046); },
       grpc::INVALID_ARGUMENT, "max_new_tokens"},
      {"NaN temperature",
       [](auto& r) { r.mutable_sampling()->set_temperature(NAN); },
       grpc::INVALID_ARGUMENT, "sampling.temperature"},
      {"negative temperature",
       [](auto& r) { r.mutable_sampling()->set_temperature(-1); },
       grpc::INVALID_ARGUMENT, "sampling.temperature"},
      {"top_p 0", [](auto& r) { r.mutable_sampling()->set_top_p(0); },
       grpc::INVALID_ARGUMENT, "sampling.top_p"},
      {"top_p above 1", [](auto& r) { r.mutable_sampling()->set_top_p(1.01f); },
       grpc::INVALID_ARGUMENT, "sampling.top_p"},
      {"unknown policy",
       [](auto& r) { r.mutable_cache()->add_strategy("nonsense"); },
       grpc::INVALID_ARGUMENT, "strategy"},
      {"unknown preset",
       [](auto& r) { r.mutable_cache()->set_config_name("nonsense"); },
       grpc::INVALID_ARGUMENT, "config_name"},
      {"bad length",
       [](auto& r) { r.mutable_cache()->add_max_cache_length(-2); },
       grpc::INVALID_ARGUMENT, "max_cache_length"},
      {"layer pattern",
       [](auto& r) {
         r.mutable_cache()->add_strategy("full");
         r.mutable_cache()->add_strategy("full");
         r.mutable_cache()->add_strategy("full");
       },
       grpc::INVALID_ARGUMENT, "layer count 2"},
  };
  for (const Case& c : cases) {
    v1::GenerateRequest r = IdsRequest({1, 2, 3}, 4);
    c.edit(r);
    ServerHarness::Stream s = harness_->Generate(r);
    EXPECT_EQ(s.status.error_code(), c.code)
        << c.name << ": " << s.status.error_message();
    EXPECT_NE(s.status.error_message().find(c.field), std::string::npos)
        << c.name << ": " << s.status.error_message();
    EXPECT_TRUE(s.responses.empty()) << c.name;
  }
  ServerHarness::Stream ok = harness_->Generate(IdsRequest({1, 2, 3}, 4));
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.final.output_token_ids_size(), 4);
}

TEST_F(ServiceTest, UnknownSessionIsNotFound) {
  grpc::ClientContext c1;
  v1::GetSessionRequest get;
  get.set_session_id("nobody");
  v1::SessionInfo info;
  grpc::Status s = harness_->stub().GetSession(&c1, get, &info);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND);
  EXPECT_NE(s.error_message().find("session_id"), std::string::npos);
  grpc::ClientContext c2;
  v1::CloseSessionRequest close;
  close.set_session_id("nobody");
  v1::CloseSessionResponse closed;
  EXPECT_EQ(harness_->stub().CloseSession(&c2, close, &closed).error_code(),
            grpc::NOT_FOUND);
}

TEST_F(ServiceTest, StreamEndsWithFinalResult) {
  ServerHarness::Stream s = harness_->Generate(IdsRequest(Range(5, 20), 12));
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  ASSERT_FALSE(s.responses.empty());
  EXPECT_TRUE(s.responses.back().has_final());
  const v1::FinalResult& f = s.final;
  EXPECT_EQ(f.finish_reason(), "length");
  EXPECT_EQ(f.usage().prompt_tokens(), 20u);
  EXPECT_EQ(f.usage().completion_tokens(), 12u);
  EXPECT_EQ(std::vector<int32_t>(f.output_token_ids().begin(),
                                 f.output_token_ids().end()),
            s.tokens);
  EXPECT_EQ(f.text(), s.text);
  EXPECT_GT(f.timings().time_to_first_token_s(), 0);
  // Full cache: nothing evicted; 2 layers x 2 KV heads x 16 dims x fp32 for
  // K and V over the 31 cached tokens.
  EXPECT_EQ(f.stats().compression_ratio(), 0.0);
  EXPECT_EQ(f.stats().layer_compression_ratio_size(), 2);
  EXPECT_EQ(f.stats().full_cache_bytes(), 2u * 2 * 2 * 31 * 16 * 4);
  EXPECT_GE(f.stats().cache_bytes(), f.stats().full_cache_bytes());
}

TEST_F(ServiceTest, SameSeedSameSample) {
  v1::GenerateRequest r = IdsRequest(Range(9, 10), 16);
  r.mutable_sampling()->set_temperature(1.0f);
  r.mutable_sampling()->set_top_k(50);
  r.mutable_sampling()->set_seed(7);
  ServerHarness::Stream a = harness_->Generate(r);
  ServerHarness::Stream b = harness_->Generate(r);
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_EQ(a.tokens, b.tokens);
  r.mutable_sampling()->set_seed(8);
  ServerHarness::Stream c = harness_->Generate(r);
  EXPECT_NE(a.tokens, c.tokens);
}

// A follow-up turn continues from the cached tokens: its output equals one
// request with the whole conversation as prompt.
TEST_F(ServiceTest, FollowUpTurnEqualsConcatenatedPrompt) {
  const std::vector<int32_t> turn1 = Range(3, 25), turn2 = Range(100, 9);
  v1::GenerateRequest r1 = IdsRequest(turn1, 10);
  r1.set_session_id("chat-1");
  ServerHarness::Stream s1 = harness_->Generate(r1);
  ASSERT_TRUE(s1.status.ok()) << s1.status.error_message();
  v1::GenerateRequest r2 = IdsRequest(turn2, 10);
  r2.set_session_id("chat-1");
  ServerHarness::Stream s2 = harness_->Generate(r2);
  ASSERT_TRUE(s2.status.ok()) << s2.status.error_message();

  std::vector<int32_t> all = turn1;
  all.insert(all.end(), s1.tokens.begin(), s1.tokens.end());
  all.insert(all.end(), turn2.begin(), turn2.end());
  ServerHarness::Stream one = harness_->Generate(IdsRequest(all, 10));
  ASSERT_TRUE(one.status.ok());
  EXPECT_EQ(s2.tokens, one.tokens);

  // The session holds every position but the last generated token.
  grpc::ClientContext ctx;
  v1::GetSessionRequest get;
  get.set_session_id("chat-1");
  get.set_include_positions(true);
  v1::SessionInfo info;
  ASSERT_TRUE(harness_->stub().GetSession(&ctx, get, &info).ok());
  EXPECT_EQ(info.tokens_seen(), 25u + 10 + 9 + 10);
  ASSERT_EQ(info.layers_size(), 2);
  EXPECT_EQ(info.layers(0).strategy(), "full");
  EXPECT_EQ(info.layers(0).capacity(), 25u + 10 + 9 + 10);
  ASSERT_EQ(info.layers(1).heads_size(), 2);
  const auto& positions = info.layers(1).heads(1).positions();
  ASSERT_EQ(positions.size(), 53);
  for (int i = 0; i < positions.size(); ++i) EXPECT_EQ(positions[i], i);

  // A different policy on a follow-up turn is refused; the same is fine.
  v1::GenerateRequest r3 = IdsRequest({5}, 2);
  r3.set_session_id("chat-1");
  r3.mutable_cache()->add_max_cache_length(0.5);
  ServerHarness::Stream s3 = harness_->Generate(r3);
  EXPECT_EQ(s3.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(s3.status.error_message().find("cache"), std::string::npos);

  grpc::ClientContext close_ctx;
  v1::CloseSessionRequest close;
  close.set_session_id("chat-1");
  v1::CloseSessionResponse closed;
  ASSERT_TRUE(harness_->stub().CloseSession(&close_ctx, close, &closed).ok());
  EXPECT_GT(closed.freed_bytes(), 0u);
  grpc::ClientContext again;
  EXPECT_EQ(harness_->stub().GetSession(&again, get, &info).error_code(),
            grpc::NOT_FOUND);
}

TEST_F(ServiceTest, TokenizeListPoliciesAndServerInfo) {
  grpc::ClientContext c1;
  v1::TokenizeRequest tr;
  tr.set_text("The quiet river");
  tr.set_add_special_tokens(true);
  v1::TokenizeResponse tokens;
  ASSERT_TRUE(harness_->stub().Tokenize(&c1, tr, &tokens).ok());
  ASSERT_GT(tokens.token_ids_size(), 1);
  EXPECT_EQ(tokens.token_ids(0), 1);
  EXPECT_EQ(tokens.pieces(0), "<s>");
  EXPECT_EQ(tokens.pieces_size(), tokens.token_ids_size());

  grpc::ClientContext c2;
  v1::ListPoliciesResponse policies;
  ASSERT_TRUE(harness_->stub()
                  .ListPolicies(&c2, v1::ListPoliciesRequest(), &policies)
                  .ok());
  ASSERT_GE(policies.policies_size(), 1);
  EXPECT_EQ(policies.policies(0).name(), "full");
  EXPECT_FALSE(policies.policies(0).head_specific());
  ASSERT_GE(policies.prompt_compressors_size(), 1);
  EXPECT_EQ(policies.prompt_compressors(0).name(), "full");

  grpc::ClientContext c3;
  v1::ServerInfo info;
  ASSERT_TRUE(harness_->stub()
                  .GetServerInfo(&c3, v1::GetServerInfoRequest(), &info)
                  .ok());
  EXPECT_EQ(info.architecture(), "LlamaForCausalLM");
  EXPECT_EQ(info.dtype(), "float32");
  EXPECT_EQ(info.device(), "cpu");
  EXPECT_EQ(info.context_length(), 2048u);
  EXPECT_EQ(info.vocab_size(), 512u);
  EXPECT_EQ(info.num_layers(), 2u);
  EXPECT_EQ(info.limits().max_sessions(), 256u);
  EXPECT_EQ(info.metrics_port(),
            static_cast<uint32_t>(harness_->server().metrics_port()));
  EXPECT_GT(info.metrics_port(), 0u);
}

// Score: each continuation starts from the same context; teacher forcing
// through the cache gives the same log-probs as generating would.
TEST_F(ServiceTest, ScoreMatchesGreedyGeneration) {
  const std::vector<int32_t> context = Range(11, 30);
  ServerHarness::Stream g = harness_->Generate(IdsRequest(context, 6));
  ASSERT_TRUE(g.status.ok());
  v1::ScoreRequest r;
  for (int32_t id : context) r.mutable_context_token_ids()->add_ids(id);
  auto* greedy = r.add_continuations()->mutable_token_ids();
  for (int32_t id : g.tokens) greedy->add_ids(id);
  auto* other = r.add_continuations()->mutable_token_ids();
  for (int32_t id : {7, 8, 9}) other->add_ids(id);
  r.add_continuations()->CopyFrom(r.continuations(0));
  grpc::ClientContext ctx;
  v1::ScoreResponse response;
  grpc::Status s = harness_->stub().Score(&ctx, r, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(response.scores_size(), 3);
  EXPECT_TRUE(response.scores(0).is_greedy());
  EXPECT_EQ(response.scores(0).token_logprobs_size(), 6);
  EXPECT_EQ(response.scores(1).token_logprobs_size(), 3);
  double sum = 0;
  for (double lp : response.scores(1).token_logprobs()) {
    EXPECT_LT(lp, 0);
    sum += lp;
  }
  EXPECT_NEAR(response.scores(1).logprob_sum(), sum, 1e-9);
  // The third repeats the first after the second: independent of order.
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(response.scores(2).token_logprobs(i),
              response.scores(0).token_logprobs(i));
  }

  v1::ScoreRequest bad = r;
  bad.add_continuations();
  grpc::ClientContext ctx2;
  s = harness_->stub().Score(&ctx2, bad, &response);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("continuations[3]"), std::string::npos);
}

// Two streaming clients: each receives tokens before either finishes.
TEST_F(ServiceTest, ConcurrentStreamsInterleave) {
  struct Timeline {
    Clock::time_point first_chunk, finished;
    grpc::Status status;
    int chunks = 0;
  };
  auto run = [&](std::vector<int32_t> prompt, Timeline* t) {
    auto stub = v1::ColdCompress::NewStub(harness_->channel());
    grpc::ClientContext context;
    auto reader = stub->Generate(&context, IdsRequest(prompt, 300));
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
      if (response.has_chunk() && t->chunks++ == 0)
        t->first_chunk = Clock::now();
    }
    t->finished = Clock::now();
    t->status = reader->Finish();
  };
  Timeline a, b;
  std::thread ta(run, Range(1, 40), &a);
  std::thread tb(run, Range(2, 40), &b);
  ta.join();
  tb.join();
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_GT(a.chunks, 1);
  EXPECT_GT(b.chunks, 1);
  EXPECT_LT(a.first_chunk, b.finished);
  EXPECT_LT(b.first_chunk, a.finished);
}

// A cancelled stream stops; the server goes on serving.
TEST_F(ServiceTest, CancelledStreamStops) {
  grpc::ClientContext context;
  v1::GenerateRequest r = IdsRequest(Range(4, 10), 1500);
  r.set_session_id("cancel-me");
  auto reader = harness_->stub().Generate(&context, r);
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
  // The next turn, sent at once, goes through: the server waits for the
  // cancelled request to end at the scheduler's next step. The session
  // records fewer tokens than asked for.
  v1::GenerateRequest next = IdsRequest({9}, 2);
  next.set_session_id("cancel-me");
  ServerHarness::Stream s = harness_->Generate(next);
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
  grpc::ClientContext ctx;
  v1::GetSessionRequest get;
  get.set_session_id("cancel-me");
  v1::SessionInfo info;
  ASSERT_TRUE(harness_->stub().GetSession(&ctx, get, &info).ok());
  EXPECT_LT(info.tokens_seen(), 10u + 1500);
}

// Invalid UTF-8 in any text field is INVALID_ARGUMENT naming the field (the
// server parses these requests itself; protobuf alone would refuse them
// without saying why).
TEST_F(ServiceTest, InvalidUtf8NamesTheField) {
  const std::string bad = std::string("abc\xff\xfe def");
  v1::GenerateRequest prompt;
  prompt.set_prompt(bad);
  prompt.set_max_new_tokens(2);
  ServerHarness::Stream s = harness_->Generate(prompt);
  EXPECT_EQ(s.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(s.status.error_message(), "prompt: is not valid UTF-8");

  v1::GenerateRequest chat;
  chat.mutable_messages()->add_messages()->set_content("fine");
  auto* m = chat.mutable_messages()->add_messages();
  m->set_role("user");
  m->set_content(bad);
  chat.set_max_new_tokens(2);
  s = harness_->Generate(chat);
  EXPECT_EQ(s.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(s.status.error_message(),
            "messages.messages[1].content: is not valid UTF-8");

  v1::GenerateRequest stop = IdsRequest({1, 2}, 2);
  stop.add_stop("ok");
  stop.add_stop(bad);
  s = harness_->Generate(stop);
  EXPECT_EQ(s.status.error_message(), "stop[1]: is not valid UTF-8");

  v1::ScoreRequest score;
  score.set_context("fine");
  score.add_continuations()->set_text(bad);
  grpc::ClientContext c1;
  v1::ScoreResponse scored;
  grpc::Status st = harness_->stub().Score(&c1, score, &scored);
  EXPECT_EQ(st.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "continuations[0].text: is not valid UTF-8");

  v1::TokenizeRequest tokenize;
  tokenize.set_text(bad);
  grpc::ClientContext c2;
  v1::TokenizeResponse tokens;
  st = harness_->stub().Tokenize(&c2, tokenize, &tokens);
  EXPECT_EQ(st.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "text: is not valid UTF-8");
  EXPECT_TRUE(harness_->Generate(IdsRequest({1, 2}, 2)).status.ok());
}

// messages go through the checkpoint's chat template (Llama-2 [INST] for a
// SentencePiece model); the prompt is exactly the template's ids.
TEST_F(ServiceTest, MessagesUseTheChatTemplate) {
  v1::GenerateRequest r;
  auto* sys = r.mutable_messages()->add_messages();
  sys->set_role("system");
  sys->set_content("Be brief.");
  auto* user = r.mutable_messages()->add_messages();
  user->set_role("user");
  user->set_content("Hi there");
  r.set_max_new_tokens(3);
  r.set_ignore_eos(true);
  r.set_session_id("chat-template");
  ServerHarness::Stream s = harness_->Generate(r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  // <s> + encode("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST]")
  grpc::ClientContext ctx;
  v1::TokenizeRequest tr;
  tr.set_text("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST]");
  v1::TokenizeResponse tokens;
  ASSERT_TRUE(harness_->stub().Tokenize(&ctx, tr, &tokens).ok());
  EXPECT_EQ(s.final.usage().prompt_tokens(), 1u + tokens.token_ids_size());
  v1::GenerateRequest bad = r;
  bad.mutable_messages()->mutable_messages(1)->set_role("robot");
  bad.set_session_id("");
  ServerHarness::Stream b = harness_->Generate(bad);
  EXPECT_EQ(b.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(b.status.error_message().find("messages[1].role"),
            std::string::npos);
}

// Score's context_messages is the same chat template: the same log-probs as
// the rendered ids, and errors name context_messages.
TEST_F(ServiceTest, ScoreContextMessagesUseTheChatTemplate) {
  v1::ScoreRequest chat;
  auto* user = chat.mutable_context_messages()->add_messages();
  user->set_role("user");
  user->set_content("Which is right?");
  chat.add_continuations()->set_text(" yes");
  grpc::ClientContext c1;
  v1::ScoreResponse by_messages;
  grpc::Status s = harness_->stub().Score(&c1, chat, &by_messages);
  ASSERT_TRUE(s.ok()) << s.error_message();

  grpc::ClientContext c2;
  v1::TokenizeRequest tr;
  tr.set_text("[INST] Which is right? [/INST]");
  v1::TokenizeResponse tokens;
  ASSERT_TRUE(harness_->stub().Tokenize(&c2, tr, &tokens).ok());
  v1::ScoreRequest ids;
  ids.mutable_context_token_ids()->add_ids(1);  // <s>
  for (int32_t id : tokens.token_ids())
    ids.mutable_context_token_ids()->add_ids(id);
  ids.add_continuations()->set_text(" yes");
  grpc::ClientContext c3;
  v1::ScoreResponse by_ids;
  ASSERT_TRUE(harness_->stub().Score(&c3, ids, &by_ids).ok());
  ASSERT_EQ(by_ids.scores_size(), 1);
  EXPECT_DOUBLE_EQ(by_messages.scores(0).logprob_sum(),
                   by_ids.scores(0).logprob_sum());

  chat.mutable_context_messages()->mutable_messages(0)->set_role("robot");
  grpc::ClientContext c4;
  s = harness_->stub().Score(&c4, chat, &by_messages);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("context_messages[0].role", 0), 0u)
      << s.error_message();
}

TEST(ServerLifecycleTest, HealthAndUnavailableWhileLoading) {
  ServerHarness harness(FixtureDir("llama"), /*load=*/false);
  auto health = grpc::health::v1::Health::NewStub(harness.channel());
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(health->Check(&ctx, request, &response).ok());
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  }
  ServerHarness::Stream s = harness.Generate(IdsRequest({1, 2}, 2));
  EXPECT_EQ(s.status.error_code(), grpc::UNAVAILABLE);
  ASSERT_TRUE(harness.server().LoadModel().ok());
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(health->Check(&ctx, request, &response).ok());
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }
  EXPECT_TRUE(harness.Generate(IdsRequest({1, 2}, 2)).status.ok());
}

// Server reflection lists the service (raw protobuf bytes through the generic
// stub: ServerReflectionRequest{list_services: ""} is field 7).
TEST(ServerLifecycleTest, ReflectionListsTheService) {
  ServerHarness harness(FixtureDir("llama"));
  grpc::GenericStub stub(harness.channel());
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  const char request_bytes[] = {0x3a, 0x00};
  grpc::Slice slice(request_bytes, sizeof(request_bytes));
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer reply;
  call->Read(&reply, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(reply.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_NE(bytes.find("coldcompress.v1.ColdCompress"), std::string::npos);
  EXPECT_NE(bytes.find("grpc.health.v1.Health"), std::string::npos);
  ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace
}  // namespace coldcompress
