#include "server/service.h"

#include <deque>
#include <memory>
#include <mutex>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "server/auth.h"
#include "server/convert.h"
#include "server/engine/engine.h"
#include "server/metrics.h"
#include "server/model/checkpoint.h"
#include "server/status.h"
#include "server/wire.h"

namespace coldcompress {
namespace {

const grpc::Status kLoading(
    grpc::StatusCode::UNAVAILABLE,
    "the server is starting: the model is not loaded yet");
const grpc::Status kDraining(
    grpc::StatusCode::UNAVAILABLE,
    "the server is draining before it exits; retry on another replica");

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// Streams one Generate: engine events are queued and written one at a time;
// chunks that pile up while a write is in flight are merged. Raw buffers: the
// request is parsed here so that invalid UTF-8 gets a precise error.
class GenerateReactor final
    : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  GenerateReactor(Engine* engine, const ServiceInfo& info,
                  const std::string& principal,
                  std::atomic<int64_t>* open_streams,
                  const grpc::ByteBuffer* raw)
      : engine_(engine),
        open_streams_(open_streams),
        state_(std::make_shared<State>()) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->reactor = this;
    const int64_t open = open_streams_->fetch_add(1) + 1;
    engine_->metrics().SetStreams(open);
    if (open > info.max_concurrent_streams) {
      engine_->metrics().RequestRefused("max_concurrent_streams");
      FinishLocked(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       absl::StrCat("the server already has ", open - 1,
                                    " Generate streams open (limit "
                                    "max_concurrent_streams)")));
      return;
    }
    const PresetStore& presets = info.presets;
    v1::GenerateRequest request;
    if (absl::Status parsed = ParseRequest(*raw, &request); !parsed.ok()) {
      FinishLocked(ToGrpcStatus(parsed));
      return;
    }
    absl::StatusOr<GenerateInput> input =
        ToGenerateInput(request, *engine, presets);
    if (!input.ok()) {
      FinishLocked(ToGrpcStatus(input.status()));
      return;
    }
    input->owner = principal;
    absl::StatusOr<std::shared_ptr<RequestHandle>> handle = engine->Generate(
        *std::move(input), [state = state_](GenerateEvent event) {
          Deliver(state, std::move(event));
        });
    if (!handle.ok()) {
      FinishLocked(ToGrpcStatus(handle.status()));
      return;
    }
    handle_ = *std::move(handle);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->queue.pop_front();
    state_->writing = false;
    if (!ok) {
      if (handle_) handle_->Cancel();
      FinishLocked(
          grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke"));
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    if (handle_) handle_->Cancel();
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->reactor = nullptr;
    }
    if (handle_) handle_->Cancel();  // no-op when the request has finished
    engine_->metrics().SetStreams(open_streams_->fetch_sub(1) - 1);
    delete this;
  }

 private:
  struct State {
    std::mutex mu;
    GenerateReactor* reactor = nullptr;      // null once the call is done
    std::deque<v1::GenerateResponse> queue;  // front is in flight when writing
    grpc::ByteBuffer in_flight;              // the front, serialized
    bool writing = false;
    bool ended = false;  // a final result or error was queued
    grpc::Status end_status;
    bool finish_called = false;
  };

  // Runs on the scheduler thread.
  static void Deliver(const std::shared_ptr<State>& state,
                      GenerateEvent event) {
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->reactor == nullptr || state->ended) return;
    if (!event.status.ok()) {
      state->ended = true;
      state->end_status = ToGrpcStatus(event.status);
    } else if (event.final) {
      v1::GenerateResponse response;
      ToProto(*event.final, response.mutable_final());
      state->queue.push_back(std::move(response));
      state->ended = true;
    } else {
      const bool mergeable = !state->queue.empty() &&
                             !(state->writing && state->queue.size() == 1) &&
                             state->queue.back().has_chunk();
      if (!mergeable) state->queue.emplace_back();
      v1::TokenChunk* chunk = state->queue.back().mutable_chunk();
      for (int32_t id : event.token_ids) chunk->add_token_ids(id);
      chunk->mutable_text()->append(event.text);
    }
    state->reactor->WriteNextLocked();
  }

  // REQUIRES: state_->mu held.
  void WriteNextLocked() {
    if (state_->writing || state_->finish_called) return;
    if (!state_->queue.empty()) {
      state_->writing = true;
      SerializeToBuffer(state_->queue.front(), &state_->in_flight);
      StartWrite(&state_->in_flight);
    } else if (state_->ended) {
      FinishLocked(state_->end_status);
    }
  }

  // REQUIRES: state_->mu held.
  void FinishLocked(const grpc::Status& status) {
    if (state_->finish_called) return;
    state_->finish_called = true;
    if (!status.ok())
      engine_->metrics().RequestFailed(GrpcCodeName(status.error_code()));
    Finish(status);
  }

  Engine* engine_;
  std::atomic<int64_t>* open_streams_;
  std::shared_ptr<State> state_;
  std::shared_ptr<RequestHandle> handle_;
};

// Score runs on the scheduler; the reactor finishes when it is done and
// cancels it when the client goes away.
class ScoreReactor final : public grpc::ServerUnaryReactor {
 public:
  ScoreReactor(Engine* engine, const PresetStore& presets,
               const grpc::ByteBuffer* raw, grpc::ByteBuffer* response)
      : engine_(engine) {
    v1::ScoreRequest request;
    if (absl::Status parsed = ParseRequest(*raw, &request); !parsed.ok()) {
      Done(ToGrpcStatus(parsed));
      return;
    }
    absl::StatusOr<ScoreInput> input = ToScoreInput(request, *engine, presets);
    if (!input.ok()) {
      Done(ToGrpcStatus(input.status()));
      return;
    }
    absl::StatusOr<std::shared_ptr<RequestHandle>> handle = engine->Score(
        *std::move(input), [this, response](absl::StatusOr<ScoreOutput> out) {
          if (out.ok()) {
            v1::ScoreResponse proto;
            ToProto(*out, &proto);
            SerializeToBuffer(proto, response);
          }
          Done(ToGrpcStatus(out.status()));
        });
    if (!handle.ok()) {
      Done(ToGrpcStatus(handle.status()));
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    handle_ = *std::move(handle);
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (handle_) handle_->Cancel();
  }
  void OnDone() override { delete this; }

 private:
  void Done(const grpc::Status& status) {
    if (!status.ok())
      engine_->metrics().RequestFailed(GrpcCodeName(status.error_code()));
    Finish(status);
  }

  Engine* engine_;
  std::mutex mu_;
  std::shared_ptr<RequestHandle> handle_;
};

}  // namespace

void ColdCompressService::SetEngine(Engine* engine, ServiceInfo info) {
  info_ = std::move(info);
  engine_.store(engine);
}

Engine* ColdCompressService::Open(grpc::CallbackServerContext* context,
                                  grpc::Status* refusal,
                                  std::string* principal) const {
  if (auth_ != nullptr && auth_->enabled()) {
    const auto& metadata = context->client_metadata();
    auto it = metadata.find("authorization");
    const std::string_view header =
        it == metadata.end()
            ? std::string_view()
            : std::string_view(it->second.data(), it->second.size());
    absl::StatusOr<std::string> who = auth_->Principal(header);
    if (!who.ok()) {
      *refusal = ToGrpcStatus(who.status());
      if (Engine* engine = engine_.load())
        engine->metrics().RequestFailed("UNAUTHENTICATED");
      return nullptr;
    }
    if (principal != nullptr) *principal = *std::move(who);
  }
  if (draining_.load()) {
    *refusal = kDraining;
    return nullptr;
  }
  Engine* engine = engine_.load();
  if (engine == nullptr) *refusal = kLoading;
  return engine;
}

Engine* ColdCompressService::OpenSession(grpc::CallbackServerContext* context,
                                         const std::string& session_id,
                                         grpc::Status* refusal,
                                         std::string* principal) const {
  Engine* engine = Open(context, refusal, principal);
  if (engine == nullptr) return nullptr;
  if (absl::Status st = CheckSessionId(session_id); !st.ok()) {
    *refusal = ToGrpcStatus(st);
    return nullptr;
  }
  return engine;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* ColdCompressService::Generate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  grpc::Status refusal;
  std::string principal;
  Engine* engine = Open(context, &refusal, &principal);
  if (engine == nullptr) {
    class Unavailable final
        : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
     public:
      explicit Unavailable(const grpc::Status& status) { Finish(status); }
      void OnDone() override { delete this; }
    };
    return new Unavailable(refusal);
  }
  return new GenerateReactor(engine, info_, principal, &open_streams_, request);
}

grpc::ServerUnaryReactor* ColdCompressService::Score(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  grpc::Status refusal;
  Engine* engine = Open(context, &refusal);
  if (engine == nullptr) return FinishNow(context, refusal);
  return new ScoreReactor(engine, info_.presets, request, response);
}

grpc::ServerUnaryReactor* ColdCompressService::Tokenize(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw,
    grpc::ByteBuffer* raw_response) {
  grpc::Status refusal;
  Engine* engine = Open(context, &refusal);
  if (engine == nullptr) return FinishNow(context, refusal);
  v1::TokenizeRequest request;
  if (absl::Status parsed = ParseRequest(*raw, &request); !parsed.ok()) {
    engine->metrics().RequestFailed(
        GrpcCodeName(static_cast<int>(parsed.code())));
    return FinishNow(context, ToGrpcStatus(parsed));
  }
  v1::TokenizeResponse response;
  const Tokenizer& tokenizer = engine->tokenizer();
  for (int32_t id :
       tokenizer.Encode(request.text(), request.add_special_tokens())) {
    response.add_token_ids(id);
    response.add_pieces(tokenizer.Piece(id));
  }
  SerializeToBuffer(response, raw_response);
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ColdCompressService::ListPolicies(
    grpc::CallbackServerContext* context, const v1::ListPoliciesRequest*,
    v1::ListPoliciesResponse* response) {
  grpc::Status refusal;
  Engine* engine = Open(context, &refusal);
  if (engine == nullptr) return FinishNow(context, refusal);
  auto describe = [&](const PolicyInfo& p, const std::string& name,
                      const std::string& text) {
    v1::PolicyDescription* d = response->add_policies();
    d->set_name(name);
    d->set_head_specific(p.head_specific);
    d->set_needs_attention(p.needs_attention);
    d->set_description(text);
    for (const ParamInfo& param : p.params) {
      v1::PolicyParameter* pp = d->add_parameters();
      pp->set_name(param.name);
      pp->set_type(param.type);
      pp->set_default_value(param.default_value);
      pp->set_description(param.description);
    }
  };
  const std::vector<const PolicyInfo*> policies = engine->registry().Policies();
  for (const PolicyInfo* p : policies) describe(*p, p->name, p->description);
  for (const PolicyInfo* p : policies) {
    describe(*p, PolicyRegistry::kAnalysisPrefix + p->name,
             "Analysis mode of " + p->name +
                 ": generates with the full cache while a shadow " + p->name +
                 " cache measures the attention it would lose.");
  }
  for (const CompressorInfo* c : engine->registry().Compressors()) {
    v1::CompressorDescription* d = response->add_prompt_compressors();
    d->set_name(c->name);
    d->set_head_specific(c->head_specific);
    d->set_description(c->description);
  }
  for (const auto& [name, preset] : info_.presets.presets) {
    v1::Preset* out = response->add_presets();
    out->set_name(name);
    ToProto(preset.overlay, out->mutable_policy());
    out->set_yaml(preset.yaml);
  }
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ColdCompressService::GetSession(
    grpc::CallbackServerContext* context, const v1::GetSessionRequest* request,
    v1::SessionInfo* response) {
  grpc::Status refusal;
  std::string principal;
  Engine* engine =
      OpenSession(context, request->session_id(), &refusal, &principal);
  if (engine == nullptr) return FinishNow(context, refusal);
  absl::StatusOr<SessionSnapshot> snapshot = engine->GetSession(
      principal, request->session_id(), request->include_positions());
  if (snapshot.ok()) ToProto(*snapshot, response);
  return FinishNow(context, ToGrpcStatus(snapshot.status()));
}

grpc::ServerUnaryReactor* ColdCompressService::CloseSession(
    grpc::CallbackServerContext* context,
    const v1::CloseSessionRequest* request,
    v1::CloseSessionResponse* response) {
  grpc::Status refusal;
  std::string principal;
  Engine* engine =
      OpenSession(context, request->session_id(), &refusal, &principal);
  if (engine == nullptr) return FinishNow(context, refusal);
  absl::StatusOr<int64_t> freed =
      engine->CloseSession(principal, request->session_id());
  if (freed.ok()) response->set_freed_bytes(static_cast<uint64_t>(*freed));
  return FinishNow(context, ToGrpcStatus(freed.status()));
}

grpc::ServerUnaryReactor* ColdCompressService::GetServerInfo(
    grpc::CallbackServerContext* context, const v1::GetServerInfoRequest*,
    v1::ServerInfo* response) {
  grpc::Status refusal;
  Engine* engine = Open(context, &refusal);
  if (engine == nullptr) return FinishNow(context, refusal);
  const ModelConfig& c = engine->model_config();
  response->set_model_name(info_.model_name);
  response->set_architecture(c.architecture);
  response->set_dtype(DtypeName(engine->model().dtype()));
  response->set_device(info_.device);
  response->set_context_length(static_cast<uint32_t>(engine->context_length()));
  response->set_vocab_size(static_cast<uint32_t>(c.vocab_size));
  response->set_default_policy(info_.presets.default_preset);
  response->set_version(info_.version);
  response->set_num_layers(static_cast<uint32_t>(c.num_layers));
  response->set_num_kv_heads(static_cast<uint32_t>(c.num_kv_heads));
  response->set_head_dim(static_cast<uint32_t>(c.head_dim));
  for (int64_t id : c.eos_token_ids)
    response->add_eos_token_ids(static_cast<int32_t>(id));
  response->set_bos_token_id(static_cast<int32_t>(c.bos_token_id));
  response->set_cache_bytes(static_cast<uint64_t>(engine->cache_bytes()));
  response->set_sessions(static_cast<uint32_t>(engine->num_sessions()));
  response->set_metrics_port(static_cast<uint32_t>(info_.metrics_port));
  const EngineOptions& o = engine->options();
  v1::Limits* limits = response->mutable_limits();
  limits->set_max_sessions(static_cast<uint32_t>(o.max_sessions));
  limits->set_max_queued_requests(static_cast<uint32_t>(o.max_queued_requests));
  limits->set_max_prompt_tokens(static_cast<uint32_t>(
      o.max_prompt_tokens > 0 ? o.max_prompt_tokens
                              : engine->context_length()));
  limits->set_max_new_tokens(static_cast<uint32_t>(
      o.max_new_tokens > 0 ? o.max_new_tokens : engine->context_length()));
  return FinishNow(context, grpc::Status::OK);
}

}  // namespace coldcompress
