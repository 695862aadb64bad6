// What the policies and prompt compressors read of a prompt's attention.
//
// The prompt's GQA-averaged causal attention A [H, S, S] (A[i, j]: how much
// query i attends to key j) is never built whole: its S x S entries would
// grow with the square of the prompt (8 GB at 16k tokens for a 2-layer toy,
// tens of GB per layer for an 8B model at 32k). The consumers read
// reductions of it instead, accumulated while the prompt's attention runs
// chunk by chunk (docs/long_prompts.md):
// - the attention each key receives, sum_i A[i, j] (heavy_hitter's initial
//   history, SnapKV's, hybrid's heavy hitters): [H, S];
// - the last kPromptLastRows query rows (SnapKV's observation window):
//   [H, R, S];
// - for the hybrid policy's profiling only, A itself visited a block of rows
//   at a time (recomputed from the prompt's queries and keys).
#ifndef COLDCOMPRESS_POLICIES_PROMPT_ATTENTION_H_
#define COLDCOMPRESS_POLICIES_PROMPT_ATTENTION_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

namespace coldcompress {

// The query rows at the end of the prompt whose attention is kept whole
// (SnapKV's observation window).
inline constexpr int64_t kPromptLastRows = 16;

// What a cache layer needs of an S-token prompt's attention.
enum class PromptAttentionNeed {
  kNone,        // nothing: the prompt's attention only produces the output
  kReductions,  // the received sums and the last rows
  kRows,        // those and a visit of every row (the prompt's queries kept)
};

class PromptAttention {
 public:
  // fn(first, rows): rows [H, n, S] are A's rows first..first + n - 1.
  using RowVisitor = std::function<void(int64_t first, const at::Tensor& rows)>;
  // Calls the visitor on consecutive blocks of rows covering 0..S-1.
  using RowSource = std::function<void(const RowVisitor&)>;

  PromptAttention() = default;
  // received: [H, S] float64; last_rows: [H, min(kPromptLastRows, S), S];
  // rows: empty when the rows cannot be visited.
  PromptAttention(at::Tensor received, at::Tensor last_rows, RowSource rows);
  // From the whole matrix [H, S, S] (tests and hand-made observations).
  static PromptAttention FromMatrix(const at::Tensor& attention);

  bool defined() const { return received_.defined(); }
  int64_t prompt_length() const { return received_.size(1); }
  // [H, S] float64: sum_i A[i, j], the attention key j received.
  const at::Tensor& received() const { return received_; }
  // [H, S] float64: received / (S - j), the mean over the queries that see
  // key j.
  at::Tensor MeanReceived() const;
  // [H, R, S], R = min(kPromptLastRows, S): A's last R rows, in the dtype
  // the attention ran in.
  const at::Tensor& last_rows() const { return last_rows_; }
  bool has_rows() const { return static_cast<bool>(rows_); }
  // REQUIRES: has_rows().
  void ForEachRows(const RowVisitor& visit) const;

 private:
  at::Tensor received_;
  at::Tensor last_rows_;
  RowSource rows_;
};

// Accumulates a PromptAttention as the prompt's query rows are computed, in
// any number of blocks, in order.
class PromptAttentionBuilder {
 public:
  // An S-token prompt's attention over `heads` KV heads.
  PromptAttentionBuilder(int64_t heads, int64_t prompt_length,
                         at::Device device);
  // rows: [H, n, Sk], the GQA-averaged probabilities of query rows
  // first..first + n - 1 over keys 0..Sk-1 (Sk <= S: the later keys are
  // masked for these rows).
  void Add(int64_t first, const at::Tensor& rows);
  // The same in two parts, for a caller that reduces the rows itself:
  // sums [H, Sk] float64, the attention keys 0..Sk-1 received from some
  // rows; and rows [H, m, Sk], rows first..first + m - 1, all of them at or
  // after last_rows_begin().
  void AddReceived(const at::Tensor& sums);
  void AddLastRows(int64_t first, const at::Tensor& rows);
  // The first row kept in last_rows: max(0, S - kPromptLastRows).
  int64_t last_rows_begin() const;
  // The reductions, with `rows` as the row source (or none).
  PromptAttention Finish(PromptAttention::RowSource rows = {});

 private:
  int64_t s_;
  at::Tensor received_;   // [H, S] float64
  at::Tensor last_rows_;  // [H, R, S], allocated with the first row in it
};

// The mean attention each key received: received[j] / (S - j), the queries
// that can see key j. received: [H, S] float64.
at::Tensor MeanOverSeeingQueries(const at::Tensor& received);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_PROMPT_ATTENTION_H_
