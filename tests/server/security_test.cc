// Bearer tokens and TLS on the real server binary: every RPC but health needs
// a valid token and starts nothing without one, the token never reaches the
// log or /metrics, sessions belong to the principal that made them; TLS and
// mutual TLS refuse plaintext clients, unknown CAs and missing client
// certificates; the CLI connects with the settings from its environment.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "client/connect.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/http.h"
#include "tests/testing/processes.h"
#include "tests/testing/server_harness.h"

namespace coldcompress {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;
using testing::IdsRequest;
using HealthResponse = grpc::health::v1::HealthCheckResponse;

const std::string kAlice = "alice-0123456789-secret";
const std::string kBob = "bob-9876543210-secret";

class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() /
              ("cc_security_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const {
    return (path_ / name).string();
  }

 private:
  fs::path path_;
};

std::shared_ptr<grpc::Channel> Channel(const std::string& address,
                                       const client::ConnectOptions& o) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      client::MakeChannel(address, o, grpc::ChannelArguments());
  EXPECT_TRUE(channel.ok()) << channel.status();
  return channel.ok() ? *channel : nullptr;
}

// One call of an RPC in a context the caller prepared.
using Call =
    std::function<grpc::Status(v1::ColdCompress::Stub&, grpc::ClientContext&)>;

std::vector<std::pair<std::string, Call>> EveryRpc() {
  return {
      {"Generate",
       [](auto& stub, auto& ctx) {
         v1::GenerateRequest r = IdsRequest({1, 2, 3}, 2);
         r.set_session_id("s");
         auto reader = stub.Generate(&ctx, r);
         v1::GenerateResponse response;
         while (reader->Read(&response)) {
         }
         return reader->Finish();
       }},
      {"Score",
       [](auto& stub, auto& ctx) {
         v1::ScoreRequest r;
         r.mutable_context_token_ids()->add_ids(1);
         r.add_continuations()->mutable_token_ids()->add_ids(2);
         v1::ScoreResponse response;
         return stub.Score(&ctx, r, &response);
       }},
      {"Tokenize",
       [](auto& stub, auto& ctx) {
         v1::TokenizeRequest r;
         r.set_text("hello");
         v1::TokenizeResponse response;
         return stub.Tokenize(&ctx, r, &response);
       }},
      {"ListPolicies",
       [](auto& stub, auto& ctx) {
         v1::ListPoliciesResponse response;
         return stub.ListPolicies(&ctx, v1::ListPoliciesRequest(), &response);
       }},
      {"GetServerInfo",
       [](auto& stub, auto& ctx) {
         v1::ServerInfo response;
         return stub.GetServerInfo(&ctx, v1::GetServerInfoRequest(), &response);
       }},
      {"GetSession",
       [](auto& stub, auto& ctx) {
         v1::GetSessionRequest r;
         r.set_session_id("s");
         v1::SessionInfo response;
         return stub.GetSession(&ctx, r, &response);
       }},
      {"CloseSession",
       [](auto& stub, auto& ctx) {
         v1::CloseSessionRequest r;
         r.set_session_id("s");
         v1::CloseSessionResponse response;
         return stub.CloseSession(&ctx, r, &response);
       }},
  };
}

HealthResponse::ServingStatus Health(std::shared_ptr<grpc::Channel> channel,
                                     grpc::Status* status = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  HealthResponse response;
  const grpc::Status s = grpc::health::v1::Health::NewStub(channel)->Check(
      &ctx, grpc::health::v1::HealthCheckRequest(), &response);
  if (status != nullptr) *status = s;
  return s.ok() ? response.status() : HealthResponse::UNKNOWN;
}

TEST(AuthTest, EveryRpcButHealthNeedsAValidTokenAndTokensStaySecret) {
  TempDir dir;
  std::ofstream(dir / "tokens")
      << "# principals\nalice:" << kAlice << "\n\nbob:" << kBob << "\n";
  testing::ServerProcess server(FixtureDir("llama"),
                                {"--auth_tokens_file", dir / "tokens"});
  ASSERT_TRUE(server.running()) << server.log();
  EXPECT_NE(server.log().find("bearer-token authentication on (2 tokens)"),
            std::string::npos);
  auto plain =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  EXPECT_EQ(Health(plain), HealthResponse::SERVING);

  // No token, a wrong one or a malformed header: UNAUTHENTICATED, always.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"no token", ""},
      {"wrong token", "Bearer wrong-0123456789-secret"},
      {"token with a suffix", "Bearer " + kAlice + "x"},
      {"token prefix", "Bearer " + kAlice.substr(0, 10)},
      {"Basic scheme", "Basic " + kAlice},
      {"empty bearer", "Bearer "},
      {"lower-case scheme", "bearer " + kAlice},
      {"bare token", kAlice},
  };
  auto stub = v1::ColdCompress::NewStub(plain);
  int calls = 0, rejected = 0;
  for (const auto& [name, header] : bad) {
    for (const auto& [rpc, call] : EveryRpc()) {
      grpc::ClientContext ctx;
      if (!header.empty()) ctx.AddMetadata("authorization", header);
      const grpc::Status s = call(*stub, ctx);
      ++calls;
      rejected += s.error_code() == grpc::UNAUTHENTICATED;
      EXPECT_EQ(s.error_code(), grpc::UNAUTHENTICATED)
          << rpc << " with " << name << ": " << s.error_message();
    }
  }
  std::printf("%d of %d calls without a valid token rejected\n", rejected,
              calls);
  EXPECT_EQ(calls, 56);

  // With a valid token every RPC works (GetSession and CloseSession after
  // Generate made the session).
  auto alice = v1::ColdCompress::NewStub(
      Channel(server.address(), client::ConnectOptions{kAlice}));
  for (const auto& [rpc, call] : EveryRpc()) {
    grpc::ClientContext ctx;
    const grpc::Status s = call(*alice, ctx);
    EXPECT_TRUE(s.ok()) << rpc << ": " << s.error_message();
  }

  // A prompt's text is not logged at the default level either.
  {
    grpc::ClientContext ctx;
    v1::GenerateRequest r;
    r.set_prompt("canary-prompt-7f3a9 tells a secret");
    r.set_max_new_tokens(2);
    auto reader = alice->Generate(&ctx, r);
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
    }
    EXPECT_TRUE(reader->Finish().ok());
  }
  EXPECT_EQ(server.log().find("canary-prompt"), std::string::npos);

  // Neither token appears in the log or on /metrics; the principals may.
  const testing::HttpResponse metrics =
      testing::HttpGet("127.0.0.1", server.metrics_port(), "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(
      metrics.body.find(
          R"(coldcompress_requests_failed_total{code="UNAUTHENTICATED"})"),
      std::string::npos);
  for (const std::string& token : {kAlice, kBob}) {
    EXPECT_EQ(server.log().find(token.substr(0, 12)), std::string::npos);
    EXPECT_EQ(metrics.body.find(token.substr(0, 12)), std::string::npos);
  }
}

// A session belongs to the principal whose token created it: another
// principal's GetSession, CloseSession and Generate do not reach it.
TEST(AuthTest, SessionsBelongToTheirPrincipal) {
  TempDir dir;
  std::ofstream(dir / "tokens") << "alice:" << kAlice << "\nbob:" << kBob;
  ServerConfig config;
  config.auth_tokens_file = dir / "tokens";
  testing::ServerHarness h(FixtureDir("llama"), true, config);
  auto alice = Channel(h.address(), client::ConnectOptions{kAlice});
  auto bob = Channel(h.address(), client::ConnectOptions{kBob});
  h.UseChannel(alice);
  v1::GenerateRequest r = IdsRequest({1, 2, 3, 4, 5}, 3);
  r.set_session_id("shared-name");
  ASSERT_TRUE(h.Generate(r).status.ok());

  h.UseChannel(bob);
  grpc::ClientContext get_ctx;
  v1::GetSessionRequest get;
  get.set_session_id("shared-name");
  v1::SessionInfo info;
  grpc::Status s = h.stub().GetSession(&get_ctx, get, &info);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND) << s.error_message();
  grpc::ClientContext close_ctx;
  v1::CloseSessionRequest close;
  close.set_session_id("shared-name");
  v1::CloseSessionResponse closed;
  s = h.stub().CloseSession(&close_ctx, close, &closed);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND) << s.error_message();
  // Bob's Generate with the same id is a session of his own.
  v1::GenerateRequest mine = IdsRequest({7, 8}, 2);
  mine.set_session_id("shared-name");
  ASSERT_TRUE(h.Generate(mine).status.ok());
  grpc::ClientContext bob_get;
  ASSERT_TRUE(h.stub().GetSession(&bob_get, get, &info).ok());
  EXPECT_EQ(info.tokens_seen(), 2u + 2);

  // Alice's is untouched.
  h.UseChannel(alice);
  grpc::ClientContext alice_get;
  ASSERT_TRUE(h.stub().GetSession(&alice_get, get, &info).ok());
  EXPECT_EQ(info.tokens_seen(), 5u + 3);
}

// Certificates made with the openssl command for this test: a CA, a server
// certificate for 127.0.0.1, a client certificate, and the same from a
// second CA the server does not trust.
class Pki {
 public:
  explicit Pki(const TempDir& dir) : dir_(dir) {
    Ca("ca");
    Ca("other-ca");
    std::ofstream(dir_ / "san.ext")
        << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    Leaf("server", "ca", true);
    Leaf("client", "ca", false);
    Leaf("stranger", "other-ca", false);
  }
  std::string pem(const std::string& name) const {
    return dir_ / (name + ".pem");
  }
  std::string key(const std::string& name) const {
    return dir_ / (name + ".key");
  }

 private:
  void Run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    const testing::CommandResult r = testing::RunCommand(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void Ca(const std::string& name) {
    Run({"req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key(name), "-out",
         pem(name), "-days", "2", "-subj", "/CN=" + name});
  }
  void Leaf(const std::string& name, const std::string& ca, bool server) {
    Run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key(name), "-out", dir_ / (name + ".csr"),
         "-subj", "/CN=" + name});
    std::vector<std::string> sign = {
        "x509",    "-req",   "-in",   dir_ / (name + ".csr"), "-CA",
        pem(ca),   "-CAkey", key(ca), "-CAcreateserial",      "-out",
        pem(name), "-days",  "2"};
    if (server) {
      sign.push_back("-extfile");
      sign.push_back(dir_ / "san.ext");
    }
    Run(sign);
  }
  const TempDir& dir_;
};

grpc::Status Info(std::shared_ptr<grpc::Channel> channel) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ServerInfo info;
  return v1::ColdCompress::NewStub(channel)->GetServerInfo(
      &ctx, v1::GetServerInfoRequest(), &info);
}

TEST(TlsTest, TlsAndMutualTlsRefuseWhatTheyShould) {
  TempDir dir;
  Pki pki(dir);
  client::ConnectOptions trusted;
  trusted.tls_ca_file = pki.pem("ca");
  client::ConnectOptions wrong_ca;
  wrong_ca.tls_ca_file = pki.pem("other-ca");
  {
    testing::ServerProcess server(FixtureDir("llama"),
                                  {"--tls_cert_file", pki.pem("server"),
                                   "--tls_key_file", pki.key("server")});
    ASSERT_TRUE(server.running()) << server.log();
    EXPECT_TRUE(Info(Channel(server.address(), trusted)).ok());
    EXPECT_EQ(Health(Channel(server.address(), trusted)),
              HealthResponse::SERVING);
    const grpc::Status plaintext = Info(grpc::CreateChannel(
        server.address(), grpc::InsecureChannelCredentials()));
    EXPECT_EQ(plaintext.error_code(), grpc::UNAVAILABLE)
        << plaintext.error_message();
    const grpc::Status unknown_ca = Info(Channel(server.address(), wrong_ca));
    EXPECT_EQ(unknown_ca.error_code(), grpc::UNAVAILABLE)
        << unknown_ca.error_message();
  }
  {
    testing::ServerProcess server(
        FixtureDir("llama"),
        {"--tls_cert_file", pki.pem("server"), "--tls_key_file",
         pki.key("server"), "--tls_client_ca_file", pki.pem("ca")});
    ASSERT_TRUE(server.running()) << server.log();
    EXPECT_NE(server.log().find("mutual TLS"), std::string::npos);
    // No client certificate, one from a CA the server does not trust,
    // plaintext: refused. The right one: served.
    const grpc::Status no_cert = Info(Channel(server.address(), trusted));
    EXPECT_EQ(no_cert.error_code(), grpc::UNAVAILABLE);
    client::ConnectOptions stranger = trusted;
    stranger.tls_cert_file = pki.pem("stranger");
    stranger.tls_key_file = pki.key("stranger");
    EXPECT_EQ(Info(Channel(server.address(), stranger)).error_code(),
              grpc::UNAVAILABLE);
    EXPECT_EQ(Info(grpc::CreateChannel(server.address(),
                                       grpc::InsecureChannelCredentials()))
                  .error_code(),
              grpc::UNAVAILABLE);
    client::ConnectOptions client = trusted;
    client.tls_cert_file = pki.pem("client");
    client.tls_key_file = pki.key("client");
    EXPECT_TRUE(Info(Channel(server.address(), client)).ok());

    // The CLI, from its environment.
    ::setenv("COLDCOMPRESS_TLS_CA", pki.pem("ca").c_str(), 1);
    ::setenv("COLDCOMPRESS_TLS_CERT", pki.pem("client").c_str(), 1);
    ::setenv("COLDCOMPRESS_TLS_KEY", pki.key("client").c_str(), 1);
    const testing::CommandResult ok =
        testing::RunClient({"generate", "--server", server.address(),
                            "--prompt", "hello", "--max_new_tokens", "3"});
    ::unsetenv("COLDCOMPRESS_TLS_CERT");
    ::unsetenv("COLDCOMPRESS_TLS_KEY");
    const testing::CommandResult refused =
        testing::RunClient({"generate", "--server", server.address(),
                            "--prompt", "hello", "--max_new_tokens", "3"});
    ::unsetenv("COLDCOMPRESS_TLS_CA");
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_NE(refused.exit_code, 0);
  }
  // Misconfigured: the server refuses to start, naming the setting.
  ServerConfig half;
  half.tls_cert_file = pki.pem("server");
  EXPECT_EQ(ValidateServerConfig(half).message(),
            "tls_cert_file and tls_key_file: set both (TLS) or neither");
}

TEST(AuthTest, BadTokenFilesAreRefusedWithoutEchoingTheToken) {
  TempDir dir;
  struct Case {
    std::string text, message;
  };
  const std::vector<Case> cases = {
      {"alice:short\n", "tokens:1: a token needs at least 16 characters"},
      {"a:" + kAlice + "\nb:" + kAlice + "\n",
       "tokens:2: the same token is listed twice"},
      {"a:" + kAlice + "\na:" + kBob + "\n",
       "tokens:2: principal \"a\" repeats"},
      {":" + kAlice + "\n", "tokens:1: the principal name before ':' is empty"},
  };
  for (const Case& c : cases) {
    std::ofstream(dir / "tokens") << c.text;
    ServerConfig config;
    config.auth_tokens_file = dir / "tokens";
    config.listen = "127.0.0.1:0";
    config.metrics_listen = "";
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(config);
    ASSERT_FALSE(server.ok()) << c.text;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(server.status().message().find(c.message), std::string::npos)
        << server.status().message();
    EXPECT_EQ(server.status().message().find(kAlice), std::string::npos);
  }
}

}  // namespace
}  // namespace coldcompress
