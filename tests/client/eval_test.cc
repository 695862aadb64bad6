// The evaluator against a real server on loopback (the `llama` fixture):
// perplexity and multiple-choice accuracy come from the server's Score,
// interrupted runs resume, the judge's request and reply, and the CLI's
// one-line errors that leave earlier results alone.
#include "client/eval.h"

#include <httplib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/judge.h"
#include "client/metrics/text_metrics.h"
#include "client/pool.h"
#include "client/results.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/processes.h"
#include "tests/testing/server_harness.h"

namespace coldcompress::client {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunClient;

class EvalTest : public testing::SharedServerTest {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat(
               "cc_eval_",
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tasks");
    auto pool = ServerPool::Connect({harness_->address()}, 10);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
  }
  void TearDown() override { fs::remove_all(dir_); }

  EvalSettings Settings() {
    EvalSettings s;
    s.results_root = (dir_ / "results").string();
    s.task_options.task_dirs = {(dir_ / "tasks").string(),
                                testing::SourceDir() + "/configs/tasks"};
    s.task_options.data_dir = testing::SourceDir() + "/tests/data/tasks";
    s.progress = false;
    return s;
  }

  v1::ScoreResponse Score(const v1::ScoreRequest& r) {
    grpc::ClientContext ctx;
    v1::ScoreResponse out;
    grpc::Status s = harness_->stub().Score(&ctx, r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  std::vector<int32_t> Tokenize(const std::string& text, bool special) {
    grpc::ClientContext ctx;
    v1::TokenizeRequest r;
    r.set_text(text);
    r.set_add_special_tokens(special);
    v1::TokenizeResponse out;
    grpc::Status s = harness_->stub().Tokenize(&ctx, r, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {out.token_ids().begin(), out.token_ids().end()};
  }

  std::vector<json> Records(const TaskOutcome& o) {
    absl::StatusOr<std::vector<json>> r = ReadPredictions(
        (fs::path(o.dir) / (o.task + "_predictions.jsonl")).string());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<json>{};
  }

  fs::path dir_;
  std::unique_ptr<ServerPool> pool_;
};

// pg19 under a compressed cache: each book's perplexity is exp(mean NLL) of
// the token log-probs that Score returns for the same context and tokens.
TEST_F(EvalTest, PerplexityIsExpOfMeanNllFromScore) {
  EvalSettings s = Settings();
  s.task_options.num_samples = 2;
  PolicyFlags policy;
  policy.cache_config = "heavy_hitter";
  policy.max_cache_length = {0.5};
  Evaluator evaluator(s, nullptr);
  absl::StatusOr<TaskOutcome> o =
      evaluator.Run(*pool_, nullptr, policy, "pg19");
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<std::unique_ptr<Task>> task =
      MakeTask("pg19", s.task_options.task_dirs);
  TaskOptions options = s.task_options;
  options.count_tokens = [&](const std::string& t,
                             bool special) -> absl::StatusOr<int> {
    return static_cast<int>(Tokenize(t, special).size());
  };
  absl::StatusOr<std::vector<Example>> books = (*task)->Load(options);
  ASSERT_TRUE(books.ok());
  std::vector<json> records = Records(*o);
  ASSERT_EQ(records.size(), 2u);
  double mean = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const Example& book = (*books)[i];
    v1::ScoreRequest r;
    auto* m = r.mutable_context_messages()->add_messages();
    m->set_role("user");
    m->set_content(book.prompt);
    r.mutable_cache()->set_config_name("heavy_hitter");
    r.mutable_cache()->add_max_cache_length(0.5);
    auto* ids = r.add_continuations()->mutable_token_ids();
    for (int32_t id : Tokenize(book.labels[0], false)) ids->add_ids(id);
    const v1::ScoreResponse scored = Score(r);
    double nll = 0;
    for (double lp : scored.scores(0).token_logprobs()) nll -= lp;
    const int n = scored.scores(0).token_logprobs_size();
    ASSERT_GT(n, 100);
    EXPECT_EQ(records[i]["scored_tokens"].get<int>(), n);
    EXPECT_NEAR(records[i]["scores"]["perplexity"].get<double>(),
                std::exp(nll / n), 1e-9 * std::exp(nll / n));
    EXPECT_NEAR(records[i]["stats"]["compression_ratio"].get<double>(),
                scored.scores(0).stats().compression_ratio(), 1e-12);
    mean += std::exp(nll / n) / records.size();
  }
  EXPECT_NEAR(o->metrics["metrics"]["perplexity"].get<double>(), mean,
              1e-9 * mean);
  EXPECT_GT(o->metrics["cache"]["compression_ratio"].get<double>(), 0.3);
}

// Multiple choice both ways, from the server's Score: option texts summed
// (lm-eval-harness) and the option letters after a prompt listing them.
TEST_F(EvalTest, MultipleChoiceAccuracyUsesScore) {
  std::ofstream(dir_ / "tasks/mc.yaml")
      << "name: mc\nkind: choice\nprompt: \"Question: {question}\\n{options}\\n"
         "Answer:\"\nfields: [question, choices, label]\nchoices: choices\n"
         "answer: label\nchoice_prefix: \" \"\nmetrics: [accuracy, "
         "accuracy_letter]\nchat: false\n";
  const std::vector<std::string> options = {"the red house", "a blue boat",
                                            "seven green trees"};
  const std::string question = "What did the traveller see first?";
  const std::string prompt = absl::StrCat("Question: ", question,
                                          "\nA. the red house\nB. a blue boat\n"
                                          "C. seven green trees\nAnswer:");
  auto argmax = [&](bool letters) {
    v1::ScoreRequest r;
    r.set_context(prompt);
    for (size_t i = 0; i < options.size(); ++i) {
      r.add_continuations()->set_text(letters ? std::string(1, 'A' + i)
                                              : " " + options[i]);
    }
    const v1::ScoreResponse out = Score(r);
    int best = 0;
    for (int i = 1; i < out.scores_size(); ++i)
      if (out.scores(i).logprob_sum() > out.scores(best).logprob_sum())
        best = i;
    return best;
  };
  const int by_text = argmax(false), by_letter = argmax(true);
  // Line 1: the right answer is what the texts pick; line 2: what the
  // letters pick, plus one.
  std::ofstream jsonl(dir_ / "mc.jsonl");
  for (int label : {by_text, (by_letter + 1) % 3}) {
    jsonl << json{{"question", question},
                  {"choices", options},
                  {"label", label}}
                 .dump()
          << "\n";
  }
  jsonl.close();
  EvalSettings s = Settings();
  s.task_options.data_dir = dir_.string();
  Evaluator evaluator(s, nullptr);
  absl::StatusOr<TaskOutcome> o =
      evaluator.Run(*pool_, nullptr, PolicyFlags(), "mc");
  ASSERT_TRUE(o.ok()) << o.status();
  std::vector<json> records = Records(*o);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["scores"]["accuracy"].get<double>(), 1.0);
  EXPECT_EQ(records[1]["scores"]["accuracy_letter"].get<double>(), 0.0);
  const double letters_first = by_letter == by_text ? 1.0 : 0.0;
  const double text_second = by_text == (by_letter + 1) % 3 ? 1.0 : 0.0;
  EXPECT_EQ(records[0]["scores"]["accuracy_letter"].get<double>(),
            letters_first);
  EXPECT_EQ(records[1]["scores"]["accuracy"].get<double>(), text_second);
  EXPECT_DOUBLE_EQ(o->metrics["metrics"]["accuracy"].get<double>(),
                   (1.0 + text_second) / 2);
  EXPECT_DOUBLE_EQ(o->metrics["metrics"]["accuracy_letter"].get<double>(),
                   letters_first / 2);
  EXPECT_EQ(records[1]["prediction"], std::string(1, 'A' + by_letter));
}

// The task docs/extending.md adds (examples/tasks/cnn_dailymail.yaml) over
// the made-up articles beside it: each article goes out as one chat message
// in the reference's template with a 256-token budget, and each answer is
// scored with ROUGE against that article's highlights.
TEST_F(EvalTest, GuideTaskSummarizesEveryArticle) {
  EvalSettings s = Settings();
  s.task_options.task_dirs = {testing::SourceDir() + "/examples/tasks"};
  s.task_options.data_dir = testing::SourceDir() + "/examples/tasks/data";
  PolicyFlags policy;
  policy.cache_config = "heavy_hitter";
  policy.max_cache_length = {0.25};
  absl::StatusOr<TaskOutcome> o =
      Evaluator(s, nullptr).Run(*pool_, nullptr, policy, "cnn_dailymail");
  ASSERT_TRUE(o.ok()) << o.status();
  std::vector<json> records = Records(*o);
  std::ifstream data(s.task_options.data_dir + "/cnn_dailymail.jsonl");
  std::vector<json> lines;
  for (std::string line; std::getline(data, line);)
    lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  ASSERT_EQ(records.size(), lines.size());
  double rouge1 = 0, rouge2 = 0, rougeL = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string highlights = lines[i]["highlights"];
    v1::GenerateRequest r;
    auto* m = r.mutable_messages()->add_messages();
    m->set_role("user");
    m->set_content(absl::StrCat(
        "You will be shown a news article. Your task to carefully read the "
        "article and summarize the main points concisely.\n"
        "====NEWS ARTICLE====\n",
        lines[i]["article"].get<std::string>(), "\n"));
    r.set_max_new_tokens(256);
    r.mutable_cache()->set_config_name("heavy_hitter");
    r.mutable_cache()->add_max_cache_length(0.25);
    const auto direct = harness_->Generate(r);
    ASSERT_TRUE(direct.status.ok()) << direct.status.error_message();
    const v1::FinalResult& final = direct.responses.back().final();
    EXPECT_EQ(records[i]["prediction"], final.text()) << i;
    EXPECT_EQ(records[i]["labels"], json::array({highlights})) << i;
    EXPECT_EQ(records[i]["finish_reason"], final.finish_reason()) << i;
    const json& scores = records[i]["scores"];
    const std::vector<std::string> labels = {highlights};
    EXPECT_EQ(scores["rouge1"].get<double>(),
              RougeMax(final.text(), labels, RougeType::N(1), false).fmeasure);
    EXPECT_EQ(scores["rouge2"].get<double>(),
              RougeMax(final.text(), labels, RougeType::N(2), false).fmeasure);
    EXPECT_EQ(scores["rougeL"].get<double>(),
              RougeMax(final.text(), labels, RougeType::L(), false).fmeasure);
    rouge1 += scores["rouge1"].get<double>() / 3;
    rouge2 += scores["rouge2"].get<double>() / 3;
    rougeL += scores["rougeL"].get<double>() / 3;
  }
  const json& metrics = o->metrics["metrics"];
  EXPECT_NEAR(metrics["rouge1"].get<double>(), rouge1, 1e-12);
  EXPECT_NEAR(metrics["rouge2"].get<double>(), rouge2, 1e-12);
  EXPECT_NEAR(metrics["rougeL"].get<double>(), rougeL, 1e-12);
  // A quarter of prompt + 256 is less than the prompt: SnapKV compresses it.
  EXPECT_GT(o->metrics["cache"]["compression_ratio"].get<double>(), 0.5);
}

// An interrupted run resumes: the examples already written are not run
// again; a finished task is skipped unless --overwrite.
TEST_F(EvalTest, InterruptedRunResumesFromPredictions) {
  EvalSettings s = Settings();
  s.task_options.num_samples = 4;
  s.task_options.context_length = 600;
  PolicyFlags policy;
  policy.cache_config = "recent_global";
  policy.max_cache_length = {0.5};
  absl::StatusOr<TaskOutcome> first =
      Evaluator(s, nullptr).Run(*pool_, nullptr, policy, "rulervt");
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string path =
      (fs::path(first->dir) / "rulervt_predictions.jsonl").string();
  std::vector<json> records = Records(*first);
  ASSERT_EQ(records.size(), 4u);
  {
    std::ofstream out(path, std::ios::trunc);
    for (int i = 0; i < 2; ++i) {
      records[i]["prediction"] = "KEPT";
      out << records[i].dump() << "\n";
    }
    out << records[2].dump().substr(0, 20);  // cut short by a kill
  }
  fs::remove(fs::path(first->dir) / "rulervt_metrics.json");
  absl::StatusOr<TaskOutcome> resumed =
      Evaluator(s, nullptr).Run(*pool_, nullptr, policy, "rulervt");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_FALSE(resumed->skipped);
  std::vector<json> now = Records(*resumed);
  ASSERT_EQ(now.size(), 4u);
  EXPECT_EQ(now[0]["prediction"], "KEPT");
  EXPECT_EQ(now[1]["prediction"], "KEPT");
  EXPECT_EQ(now[2]["id"], "2");
  EXPECT_EQ(now[2]["prediction"], records[2]["prediction"]);  // greedy
  EXPECT_EQ(now[3]["prediction"], records[3]["prediction"]);
  EXPECT_EQ(resumed->metrics["num_samples"], 4);
  EXPECT_EQ(resumed->metrics["cache"], first->metrics["cache"]);

  absl::StatusOr<TaskOutcome> again =
      Evaluator(s, nullptr).Run(*pool_, nullptr, policy, "rulervt");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->skipped);
  s.overwrite = true;
  absl::StatusOr<TaskOutcome> redone =
      Evaluator(s, nullptr).Run(*pool_, nullptr, policy, "rulervt");
  ASSERT_TRUE(redone.ok());
  EXPECT_FALSE(redone->skipped);
  EXPECT_NE(Records(*redone)[0]["prediction"], "KEPT");

  // Another seed in the same folder is refused, not mixed in.
  s.overwrite = false;
  s.task_options.seed = 43;
  absl::Status mixed =
      Evaluator(s, nullptr).Run(*pool_, nullptr, policy, "rulervt").status();
  EXPECT_EQ(mixed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(mixed.message().find("made with seed 42, this run has 43"),
            std::string::npos)
      << mixed;
}

// The task-median rule: one cache size per task from the median length.
TEST_F(EvalTest, MedianSizingResolvesFractionsPerTask) {
  EvalSettings s = Settings();
  s.task_options.num_samples = 3;
  s.cache_sizing = "median";
  PolicyFlags policy;
  policy.cache_config = "l2";
  policy.max_cache_length = {0.25};
  absl::StatusOr<TaskOutcome> o =
      Evaluator(s, nullptr).Run(*pool_, nullptr, policy, "musique");
  ASSERT_TRUE(o.ok()) << o.status();
  absl::StatusOr<std::unique_ptr<Task>> task =
      MakeTask("musique", s.task_options.task_dirs);
  TaskOptions options = s.task_options;
  absl::StatusOr<std::vector<Example>> examples = (*task)->Load(options);
  ASSERT_TRUE(examples.ok());
  std::vector<int> lengths;
  for (const Example& e : *examples)
    lengths.push_back(static_cast<int>(Tokenize(e.prompt, true).size()) + 128);
  std::sort(lengths.begin(), lengths.end());
  const json& sizing = o->metrics["cache_sizing"];
  EXPECT_EQ(sizing["rule"], "median");
  EXPECT_EQ(sizing["median_length"].get<double>(), lengths[1]);
  EXPECT_EQ(sizing["max_cache_length"][0].get<double>(),
            std::max(2.0, std::round(0.25 * lengths[1])));
}

// The judge: the reference's LLM-Rouge prompt with the prefill goes to the
// (here: a loopback stand-in for the) Anthropic Messages API; its reply is
// the score.
TEST_F(EvalTest, LlmRougeJudgeCallsTheChatApi) {
  httplib::Server api;
  std::mutex mu;
  std::vector<json> bodies;
  std::string key_seen, version_seen;
  api.Post("/v1/messages",
           [&](const httplib::Request& req, httplib::Response& res) {
             std::lock_guard lock(mu);
             bodies.push_back(json::parse(req.body));
             key_seen = req.get_header_value("x-api-key");
             version_seen = req.get_header_value("anthropic-version");
             res.set_content(R"({"content":[{"type":"text","text":" 4"}]})",
                             "application/json");
           });
  const int port = api.bind_to_any_port("127.0.0.1");
  std::thread serve([&] { api.listen_after_bind(); });
  ::setenv("CC_TEST_JUDGE_KEY", "sk-test", 1);
  JudgeOptions j;
  j.api = "anthropic";
  j.api_url = absl::StrCat("http://127.0.0.1:", port);
  j.model = "claude-3-haiku-20240307";
  j.api_key_env = "CC_TEST_JUDGE_KEY";
  absl::StatusOr<std::unique_ptr<Judge>> judge = MakeJudge(j);
  ASSERT_TRUE(judge.ok()) << judge.status();
  EvalSettings s = Settings();
  s.task_options.num_samples = 2;
  absl::StatusOr<TaskOutcome> o =
      Evaluator(s, judge->get()).Run(*pool_, nullptr, PolicyFlags(), "musique");
  api.stop();
  serve.join();
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->metrics["metrics"]["llm_rouge"].get<double>(), 4.0);
  EXPECT_EQ(o->metrics["judge"], "anthropic:claude-3-haiku-20240307");
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_EQ(key_seen, "sk-test");
  EXPECT_EQ(version_seen, "2023-06-01");
  std::vector<json> records = Records(*o);
  const json& body = bodies[0];
  EXPECT_EQ(body["model"], "claude-3-haiku-20240307");
  ASSERT_EQ(body["messages"].size(), 2u);
  EXPECT_EQ(body["messages"][1]["role"], "assistant");
  EXPECT_EQ(body["messages"][1]["content"], "The score (1-5) is:");
  const std::string p = body["messages"][0]["content"];
  bool matches_a_record = false;
  for (const json& r : records) {
    matches_a_record |=
        p == LlmRougePrompt(r["labels"].get<std::vector<std::string>>(),
                            r["prediction"].get<std::string>());
  }
  EXPECT_TRUE(matches_a_record) << p;
  ::unsetenv("CC_TEST_JUDGE_KEY");
  j.api_key_env = "CC_TEST_JUDGE_KEY";
  EXPECT_EQ(MakeJudge(j).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Bad input to the CLI: one line "error: ..." naming the problem, exit
// status 1, and the results already written are untouched.
TEST_F(EvalTest, BadInputIsOneLineErrorAndLosesNothing) {
  const std::string results = (dir_ / "results").string();
  const std::string server = harness_->address();
  testing::CommandResult ok =
      RunClient({"eval", "--servers", server, "--tasks", "rulerniah_single",
                 "--num_samples", "2", "--context_length", "600",
                 "--results_dir", results, "--no_progress"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto snapshot = [&] {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(results)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path());
      std::stringstream ss;
      ss << in.rdbuf();
      files[e.path().string()] = ss.str();
    }
    return files;
  };
  const auto before = snapshot();
  ASSERT_EQ(before.size(), 4u);  // args, predictions, metrics, all_metrics

  std::ofstream(dir_ / "tasks/broken.yaml") << "name: broken\ncolour: red\n";
  std::ofstream(dir_ / "tasks/qa.yaml")
      << "name: qa\nkind: generate\nprompt: \"{question}\"\n"
         "fields: [question, answer]\nlabels: answer\nmax_new_tokens: 4\n"
         "metrics: [exact_match]\n";
  std::ofstream(dir_ / "qa.jsonl") << "{\"question\": \"q?\"}\n";
  const std::string tasks = (dir_ / "tasks").string();
  const std::vector<std::string> common = {
      "--results_dir", results, "--no_progress", "--task_dir", tasks};
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--servers", server, "--tasks", "nope"},
       "error: unknown task \"nope\"; known tasks:"},
      {{"--servers", server, "--tasks", "musique", "--data_dir",
        "/nonexistent"},
       "error: task musique: data file /nonexistent/musique.jsonl cannot be "
       "read"},
      {{"--servers", server, "--tasks", "qa", "--data_dir", dir_.string()},
       "qa.jsonl:1: field \"answer\" is missing"},
      {{"--servers", "127.0.0.1:1", "--tasks", "rulervt"},
       "error: no server answers: 127.0.0.1:1"},
      {{"--servers", "localhost", "--tasks", "rulervt"},
       "error: servers: \"localhost\" is not HOST:PORT"},
      {{"--servers", server, "--tasks", "broken"},
       "broken.yaml: colour: unknown key"},
      {{"--servers", server, "--tasks", "rulervt", "--cache_config", "nope"},
       "error: cache_config: unknown preset \"nope\""},
      {{"--servers", server, "--tasks", "rulervt", "--max_cache_length", "0"},
       "error: max_cache_length[0]: 0 does not resolve to a cache size"},
      {{"--servers", server, "--tasks", "rulervt", "--max_cache_length", "1.5"},
       "error: max_cache_length[0]: 1.5 does not resolve"},
      {{"--servers", server, "--tasks", "rulerniah", "--needle_depth", "0.9",
        "0.1"},
       "needle_depth: needs 0 <= LO < HI <= 1"},
      {{"--servers", server, "--tasks", "rulercwe", "--context_length", "300"},
       "error: context_length: 300 is too short for rulercwe"},
      {{"--servers", server, "--tasks", "rulervt", "--context_length", "4096"},
       "error: context_length: 4096 is longer than " + server +
           "'s model context of 2048 tokens"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"eval"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.insert(args.end(), common.begin(), common.end());
    const testing::CommandResult r = RunClient(args);
    EXPECT_EQ(r.exit_code, 1) << c.message << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos)
        << "wanted: " << c.message << "\ngot: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(snapshot(), before) << c.message;
  }
  const testing::CommandResult report =
      RunClient({"report", (dir_ / "empty").string()});
  EXPECT_EQ(report.exit_code, 1);
  EXPECT_NE(report.err.find("not a directory"), std::string::npos)
      << report.err;
}

}  // namespace
}  // namespace coldcompress::client
