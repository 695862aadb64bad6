// Hostile and malformed requests, one table over every RPC of a server with
// bearer tokens: each gets its status code and a message naming the field or
// limit, nothing is started or leaked, and the server stays healthy.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <string>

#include "client/connect.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/engine/engine.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

using testing::FixtureDir;
using testing::IdsRequest;
using testing::ServerHarness;

// The server runs with bearer tokens: the table talks as alice; bob is the
// foreign principal.
const std::string kAlice = "alice-tok-0123456789";
const std::string kBob = "bob-tok-0123456789ab";

std::shared_ptr<grpc::Channel> As(const std::string& address,
                                  const std::string& token) {
  client::ConnectOptions o;
  o.token = token;
  return *client::MakeChannel(address, o, grpc::ChannelArguments());
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
const std::string kBadUtf8 = "ok \xc3\x28 \xff";

v1::GenerateRequest Base() { return IdsRequest({1, 2, 3}, 4); }

// A Generate whose request is `base` edited by `edit`.
std::function<grpc::Status(ServerHarness&)> Gen(
    std::function<void(v1::GenerateRequest&)> edit) {
  return [edit](ServerHarness& h) {
    v1::GenerateRequest r = Base();
    edit(r);
    return h.Generate(r).status;
  };
}

std::function<grpc::Status(ServerHarness&)> Policy(
    std::function<void(v1::CachePolicy&)> edit) {
  return Gen([edit](v1::GenerateRequest& r) { edit(*r.mutable_cache()); });
}

std::function<grpc::Status(ServerHarness&)> Score(
    std::function<void(v1::ScoreRequest&)> edit) {
  return [edit](ServerHarness& h) {
    v1::ScoreRequest r;
    for (int32_t id : {1, 2, 3}) r.mutable_context_token_ids()->add_ids(id);
    r.add_continuations()->mutable_token_ids()->add_ids(4);
    edit(r);
    grpc::ClientContext ctx;
    v1::ScoreResponse response;
    return h.stub().Score(&ctx, r, &response);
  };
}

std::function<grpc::Status(ServerHarness&)> Get(const std::string& id) {
  return [id](ServerHarness& h) {
    grpc::ClientContext ctx;
    v1::GetSessionRequest r;
    r.set_session_id(id);
    v1::SessionInfo info;
    return h.stub().GetSession(&ctx, r, &info);
  };
}

std::function<grpc::Status(ServerHarness&)> Close(const std::string& id) {
  return [id](ServerHarness& h) {
    grpc::ClientContext ctx;
    v1::CloseSessionRequest r;
    r.set_session_id(id);
    v1::CloseSessionResponse response;
    return h.stub().CloseSession(&ctx, r, &response);
  };
}

std::function<grpc::Status(ServerHarness&)> Tokenize(const std::string& text) {
  return [text](ServerHarness& h) {
    grpc::ClientContext ctx;
    v1::TokenizeRequest r;
    r.set_text(text);
    v1::TokenizeResponse response;
    return h.stub().Tokenize(&ctx, r, &response);
  };
}

void AddMessage(v1::GenerateRequest& r, const std::string& role,
                const std::string& content) {
  v1::ChatMessage* m = r.mutable_messages()->add_messages();
  m->set_role(role);
  m->set_content(content);
}

struct Case {
  std::string name;
  std::function<grpc::Status(ServerHarness&)> call;
  grpc::StatusCode code;
  std::string message;  // a substring of the error message
};

std::vector<Case> Cases() {
  using r_t = v1::GenerateRequest;
  using c_t = v1::CachePolicy;
  using s_t = v1::ScoreRequest;
  const auto kInvalid = grpc::INVALID_ARGUMENT;
  return {
      // The prompt.
      {"empty text", Gen([](r_t& r) { r.set_prompt(""); }), kInvalid,
       "prompt: is empty"},
      {"no input", Gen([](r_t& r) { r.clear_prompt_token_ids(); }), kInvalid,
       "prompt: one of prompt, messages or prompt_token_ids"},
      {"empty ids",
       Gen([](r_t& r) { r.mutable_prompt_token_ids()->clear_ids(); }), kInvalid,
       "prompt_token_ids: is empty"},
      {"id = vocab",
       Gen([](r_t& r) { r.mutable_prompt_token_ids()->add_ids(512); }),
       kInvalid, "prompt_token_ids[3] = 512 is outside the vocabulary"},
      {"negative id",
       Gen([](r_t& r) { r.mutable_prompt_token_ids()->set_ids(0, -1); }),
       kInvalid, "prompt_token_ids[0] = -1"},
      {"id INT32_MAX", Gen([](r_t& r) {
         r.mutable_prompt_token_ids()->set_ids(
             1, std::numeric_limits<int32_t>::max());
       }),
       kInvalid, "prompt_token_ids[1] = 2147483647"},
      {"prompt fills the context", Gen([](r_t& r) {
         for (int i = 0; i < 2100; ++i)
           r.mutable_prompt_token_ids()->add_ids(7);
       }),
       kInvalid, "leave no room in the model's context length 2048"},
      {"prompt fills the context under heavy_hitter", Gen([](r_t& r) {
         for (int i = 0; i < 2100; ++i)
           r.mutable_prompt_token_ids()->add_ids(7);
         r.mutable_cache()->add_strategy("heavy_hitter");
         r.mutable_cache()->add_max_cache_length(0.25);
       }),
       kInvalid, "prompt: 2103 prompt tokens leave no room"},
      {"text prompt over the context", Gen([](r_t& r) {
         std::string text;
         for (int i = 0; i < 3000; ++i)
           text += "word" + std::to_string(i) + " ";
         r.set_prompt(text);
       }),
       kInvalid, "context length 2048"},
      {"invalid UTF-8 prompt", Gen([](r_t& r) { r.set_prompt(kBadUtf8); }),
       kInvalid, "prompt"},
      {"empty messages",
       Gen([](r_t& r) { r.mutable_messages()->clear_messages(); }), kInvalid,
       "messages"},
      {"unknown role", Gen([](r_t& r) { AddMessage(r, "wizard", "hi"); }),
       kInvalid, "messages[0].role"},
      {"invalid UTF-8 message",
       Gen([](r_t& r) { AddMessage(r, "user", kBadUtf8); }), kInvalid,
       "messages"},
      // Lengths.
      {"max_new_tokens 0", Gen([](r_t& r) { r.set_max_new_tokens(0); }),
       kInvalid, "max_new_tokens: must be > 0"},
      {"max_new_tokens over the context",
       Gen([](r_t& r) { r.set_max_new_tokens(2046); }), kInvalid,
       "max_new_tokens"},
      {"max_new_tokens UINT32_MAX",
       Gen([](r_t& r) { r.set_max_new_tokens(4294967295u); }), kInvalid,
       "max_new_tokens"},
      // Sampling.
      {"temperature NaN",
       Gen([](r_t& r) { r.mutable_sampling()->set_temperature(kNaN); }),
       kInvalid, "sampling.temperature"},
      {"temperature +Inf",
       Gen([](r_t& r) { r.mutable_sampling()->set_temperature(kInf); }),
       kInvalid, "sampling.temperature"},
      {"temperature -Inf",
       Gen([](r_t& r) { r.mutable_sampling()->set_temperature(-kInf); }),
       kInvalid, "sampling.temperature"},
      {"temperature -1",
       Gen([](r_t& r) { r.mutable_sampling()->set_temperature(-1); }), kInvalid,
       "sampling.temperature"},
      {"top_p NaN", Gen([](r_t& r) { r.mutable_sampling()->set_top_p(kNaN); }),
       kInvalid, "sampling.top_p"},
      {"top_p 0", Gen([](r_t& r) { r.mutable_sampling()->set_top_p(0); }),
       kInvalid, "sampling.top_p"},
      {"top_p -0.5",
       Gen([](r_t& r) { r.mutable_sampling()->set_top_p(-0.5f); }), kInvalid,
       "sampling.top_p"},
      {"top_p 1.01",
       Gen([](r_t& r) { r.mutable_sampling()->set_top_p(1.01f); }), kInvalid,
       "sampling.top_p"},
      {"top_p +Inf", Gen([](r_t& r) { r.mutable_sampling()->set_top_p(kInf); }),
       kInvalid, "sampling.top_p"},
      {"top_k -1", Gen([](r_t& r) { r.mutable_sampling()->set_top_k(-1); }),
       kInvalid, "sampling.top_k"},
      // Stop strings.
      {"10,000 stop strings", Gen([](r_t& r) {
         for (int i = 0; i < 10000; ++i) r.add_stop("s" + std::to_string(i));
       }),
       grpc::RESOURCE_EXHAUSTED, "(max_stop_strings)"},
      {"stop string of 1000 bytes",
       Gen([](r_t& r) { r.add_stop(std::string(1000, 'x')); }),
       grpc::RESOURCE_EXHAUSTED, "stop[0]: 1000 bytes"},
      {"invalid UTF-8 stop", Gen([](r_t& r) { r.add_stop(kBadUtf8); }),
       kInvalid, "stop"},
      // Session ids.
      {"session_id of 1000 bytes",
       Gen([](r_t& r) { r.set_session_id(std::string(1000, 's')); }), kInvalid,
       "session_id: 1000 bytes; at most 256"},
      {"session_id with a newline",
       Gen([](r_t& r) { r.set_session_id("a\nb"); }), kInvalid,
       "session_id: byte 1 is a control character"},
      {"invalid UTF-8 session_id",
       Gen([](r_t& r) { r.set_session_id(kBadUtf8); }), kInvalid, "session_id"},
      {"another policy for a session",
       [](ServerHarness& h) {
         v1::GenerateRequest first = Base();
         first.set_session_id("fixed");
         EXPECT_TRUE(h.Generate(first).status.ok());
         v1::GenerateRequest next = Base();
         next.set_session_id("fixed");
         next.mutable_cache()->add_strategy("l2");
         next.mutable_cache()->add_max_cache_length(0.5);
         return h.Generate(next).status;
       },
       kInvalid, "keeps the cache policy of its first turn"},
      // Cache policies.
      {"unknown strategy", Policy([](c_t& c) { c.add_strategy("h2o"); }),
       kInvalid, "strategy"},
      {"unknown analysis strategy",
       Policy([](c_t& c) { c.add_strategy("debug_nonsense"); }), kInvalid,
       "nonsense"},
      {"invalid UTF-8 strategy",
       Policy([](c_t& c) { c.add_strategy(kBadUtf8); }), kInvalid, "strategy"},
      {"unknown compressor", Policy([](c_t& c) {
         c.add_strategy("l2");
         c.add_prompt_compression("snapkv");
       }),
       kInvalid, "prompt_compression"},
      {"unknown preset", Policy([](c_t& c) { c.set_config_name("h2o"); }),
       kInvalid, "config_name"},
      {"strategy pattern of 3 over 2 layers", Policy([](c_t& c) {
         for (const char* s : {"full", "l2", "l2"}) c.add_strategy(s);
       }),
       kInvalid, "layer count 2"},
      {"length pattern of 3 over 2 layers", Policy([](c_t& c) {
         c.add_strategy("l2");
         for (double x : {0.5, 0.5, 0.5}) c.add_max_cache_length(x);
       }),
       kInvalid, "max_cache_length"},
      {"unknown length_pattern", Policy([](c_t& c) {
         c.add_strategy("l2");
         c.set_length_pattern("zigzag");
       }),
       kInvalid, "length_pattern"},
      {"unknown strategy_pattern",
       Policy([](c_t& c) { c.set_strategy_pattern("zigzag"); }), kInvalid,
       "strategy_pattern"},
      {"max_cache_length -2",
       Policy([](c_t& c) { c.add_max_cache_length(-2); }), kInvalid,
       "max_cache_length"},
      {"max_cache_length 0", Policy([](c_t& c) { c.add_max_cache_length(0); }),
       kInvalid, "max_cache_length"},
      {"max_cache_length NaN", Policy([](c_t& c) {
         c.add_strategy("l2");
         c.add_max_cache_length(std::nan(""));
       }),
       kInvalid, "max_cache_length"},
      {"max_cache_length +Inf", Policy([](c_t& c) {
         c.add_strategy("l2");
         c.add_max_cache_length(HUGE_VAL);
       }),
       kInvalid, "max_cache_length"},
      {"max_cache_length 1.5", Policy([](c_t& c) {
         c.add_strategy("l2");
         c.add_max_cache_length(1.5);
       }),
       kInvalid, "max_cache_length"},
      {"full cache below 1.0", Gen([](r_t& r) {
         for (int i = 0; i < 40; ++i) r.mutable_prompt_token_ids()->add_ids(9);
         r.mutable_cache()->add_max_cache_length(0.5);
       }),
       kInvalid, "max_cache_length"},
      {"cache_bits 3", Policy([](c_t& c) { c.set_cache_bits(3); }), kInvalid,
       "cache_bits"},
      {"cache_bits 0", Policy([](c_t& c) { c.set_cache_bits(0); }), kInvalid,
       "cache_bits"},
      {"history_window_size 0", Policy([](c_t& c) {
         c.add_strategy("heavy_hitter");
         c.set_history_window_size(0);
       }),
       kInvalid, "history_window_size"},
      {"recent_window -1", Policy([](c_t& c) { c.set_recent_window(-1); }),
       kInvalid, "recent_window"},
      {"recent_window NaN",
       Policy([](c_t& c) { c.set_recent_window(std::nan("")); }), kInvalid,
       "recent_window"},
      {"min_recovery_frac 1.5", Policy([](c_t& c) {
         c.set_config_name("fastgen");
         c.set_min_recovery_frac(1.5);
       }),
       kInvalid, "min_recovery_frac"},
      // Hybrid's fields are checked whatever the request's strategy.
      {"min_recovery_frac 1.5 under heavy_hitter", Policy([](c_t& c) {
         c.add_strategy("heavy_hitter");
         c.set_min_recovery_frac(1.5);
       }),
       kInvalid, "min_recovery_frac"},
      {"hybrid_strategies heavy_hitter_frac 2 under recent_global",
       Policy([](c_t& c) {
         c.add_strategy("recent_global");
         v1::HybridStrategy* h = c.add_hybrid_strategies();
         h->set_strategy("heavy_hitter");
         h->set_heavy_hitter_frac(2);
       }),
       kInvalid, "hybrid_strategies[0].heavy_hitter_frac"},
      {"min_recovery_frac NaN", Policy([](c_t& c) {
         c.set_config_name("fastgen");
         c.set_min_recovery_frac(std::nan(""));
       }),
       kInvalid, "min_recovery_frac"},
      {"hybrid without strategies",
       Policy([](c_t& c) { c.add_strategy("hybrid"); }), kInvalid,
       "hybrid_strategies"},
      {"hybrid unknown part", Policy([](c_t& c) {
         c.add_strategy("hybrid");
         c.add_hybrid_strategies()->set_strategy("window_sparkle");
       }),
       kInvalid, "hybrid_strategies[0].strategy"},
      {"sinks larger than the cache", Policy([](c_t& c) {
         c.add_strategy("recent_global");
         c.add_max_cache_length(8);
         c.set_global_tokens(20);
       }),
       kInvalid, "global_tokens (20)"},
      // Score.
      {"score: empty context",
       Score([](s_t& r) { r.mutable_context_token_ids()->clear_ids(); }),
       kInvalid, "context_token_ids: is empty"},
      {"score: no context", Score([](s_t& r) { r.clear_context_token_ids(); }),
       kInvalid, "context"},
      {"score: no continuations",
       Score([](s_t& r) { r.clear_continuations(); }), kInvalid,
       "continuations: at least one is required"},
      {"score: empty continuation",
       Score([](s_t& r) { r.add_continuations(); }), kInvalid,
       "continuations[1]"},
      {"score: continuation id outside the vocabulary", Score([](s_t& r) {
         r.mutable_continuations(0)->mutable_token_ids()->add_ids(9999);
       }),
       kInvalid, "continuations[0].token_ids[1] = 9999"},
      {"score: over the context", Score([](s_t& r) {
         for (int i = 0; i < 2100; ++i)
           r.mutable_continuations(0)->mutable_token_ids()->add_ids(5);
       }),
       kInvalid, "continuations[0]"},
      {"score: invalid UTF-8 context",
       Score([](s_t& r) { r.set_context(kBadUtf8); }), kInvalid, "context"},
      {"score: unknown strategy",
       Score([](s_t& r) { r.mutable_cache()->add_strategy("h2o"); }), kInvalid,
       "strategy"},
      // Sessions and tokenizer.
      {"GetSession unknown", Get("nobody"), grpc::NOT_FOUND,
       "session_id \"nobody\" not found"},
      {"GetSession empty id", Get(""), kInvalid, "session_id: is empty"},
      {"GetSession id of 300 bytes", Get(std::string(300, 'g')), kInvalid,
       "session_id: 300 bytes"},
      {"CloseSession unknown", Close("nobody"), grpc::NOT_FOUND,
       "session_id \"nobody\" not found"},
      {"CloseSession empty id", Close(""), kInvalid, "session_id: is empty"},
      {"CloseSession control character", Close("x\x01y"), kInvalid,
       "control character"},
      {"Tokenize invalid UTF-8", Tokenize(kBadUtf8), kInvalid, "text"},
      // Another principal's session (alice made "fixed" above).
      {"GetSession of another principal's session",
       [](ServerHarness& h) {
         grpc::ClientContext ctx;
         v1::GetSessionRequest r;
         r.set_session_id("fixed");
         v1::SessionInfo info;
         return v1::ColdCompress::NewStub(As(h.address(), kBob))
             ->GetSession(&ctx, r, &info);
       },
       grpc::NOT_FOUND, "session_id \"fixed\" not found"},
      {"CloseSession of another principal's session",
       [](ServerHarness& h) {
         grpc::ClientContext ctx;
         v1::CloseSessionRequest r;
         r.set_session_id("fixed");
         v1::CloseSessionResponse response;
         return v1::ColdCompress::NewStub(As(h.address(), kBob))
             ->CloseSession(&ctx, r, &response);
       },
       grpc::NOT_FOUND, "session_id \"fixed\" not found"},
      {"no bearer token",
       [](ServerHarness& h) {
         grpc::ClientContext ctx;
         v1::ServerInfo info;
         return v1::ColdCompress::NewStub(
                    grpc::CreateChannel(h.address(),
                                        grpc::InsecureChannelCredentials()))
             ->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
       },
       grpc::UNAUTHENTICATED, "missing authorization metadata"},
      {"a wrong bearer token",
       [](ServerHarness& h) {
         v1::GenerateRequest r = Base();
         grpc::ClientContext ctx;
         auto reader =
             v1::ColdCompress::NewStub(As(h.address(), "nobody-0123456789ab"))
                 ->Generate(&ctx, r);
         v1::GenerateResponse response;
         while (reader->Read(&response)) {
         }
         return reader->Finish();
       },
       grpc::UNAUTHENTICATED, "the bearer token is not valid"},
      // Over the message size (1 MiB here): gRPC refuses it before parsing.
      {"message over max_message_bytes",
       Gen([](r_t& r) { r.set_prompt(std::string(2 << 20, 'a')); }),
       grpc::RESOURCE_EXHAUSTED, "larger than max"},
  };
}

TEST(InvalidRequestsTest, EveryCaseGetsItsCodeAndTheServerStaysHealthy) {
  const std::string tokens = ::testing::TempDir() + "/invalid_requests_tokens";
  std::ofstream(tokens) << "alice:" << kAlice << "\nbob:" << kBob << "\n";
  ServerConfig config;
  config.max_message_bytes = 1 << 20;
  config.auth_tokens_file = tokens;
  ServerHarness h(FixtureDir("llama"), true, config);
  h.UseChannel(As(h.address(), kAlice));
  const std::vector<Case> cases = Cases();
  ASSERT_GE(cases.size(), 60u);
  int passed = 0;
  for (const Case& c : cases) {
    const grpc::Status s = c.call(h);
    const bool code = s.error_code() == c.code;
    const bool message = s.error_message().find(c.message) != std::string::npos;
    EXPECT_TRUE(code) << c.name << ": code " << s.error_code() << ", expected "
                      << c.code << " (" << s.error_message() << ")";
    EXPECT_TRUE(message) << c.name << ": \"" << c.message
                         << "\" not in: " << s.error_message();
    passed += code && message;
  }
  std::printf("%d of %zu invalid requests got the expected status\n", passed,
              cases.size());
  // Healthy: nothing running or held but the one session a case made, and
  // requests are served.
  Engine& engine = *h.server().engine();
  EXPECT_EQ(engine.active_requests(), 0);
  EXPECT_EQ(engine.num_sessions(), 1u);  // "fixed"
  auto health = grpc::health::v1::Health::NewStub(h.channel());
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(
      health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &response)
          .ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  ServerHarness::Stream ok = h.Generate(Base());
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.final.output_token_ids_size(), 4);
}

}  // namespace
}  // namespace coldcompress
