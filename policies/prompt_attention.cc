#include "policies/prompt_attention.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <utility>

namespace coldcompress {

PromptAttention::PromptAttention(at::Tensor received, at::Tensor last_rows,
                                 RowSource rows)
    : received_(std::move(received)),
      last_rows_(std::move(last_rows)),
      rows_(std::move(rows)) {}

PromptAttention PromptAttention::FromMatrix(const at::Tensor& attention) {
  const int64_t s = attention.size(-1);
  const int64_t r = std::min(kPromptLastRows, s);
  return PromptAttention(
      attention.to(at::kDouble).sum(1), attention.narrow(1, s - r, r),
      [attention](const RowVisitor& visit) { visit(0, attention); });
}

at::Tensor PromptAttention::MeanReceived() const {
  return MeanOverSeeingQueries(received_);
}

void PromptAttention::ForEachRows(const RowVisitor& visit) const {
  TORCH_CHECK(has_rows(),
              "this prompt's attention rows were not kept (a policy that "
              "visits them must say so through needs_prompt_rows)");
  rows_(visit);
}

PromptAttentionBuilder::PromptAttentionBuilder(int64_t heads,
                                               int64_t prompt_length,
                                               at::Device device)
    : s_(prompt_length),
      received_(
          at::zeros({heads, prompt_length},
                    at::TensorOptions().dtype(at::kDouble).device(device))) {}

void PromptAttentionBuilder::Add(int64_t first, const at::Tensor& rows) {
  const int64_t n = rows.size(1);
  TORCH_CHECK(first >= 0 && first + n <= s_,
              "prompt attention rows out of range");
  AddReceived(rows.to(at::kDouble).sum(1));
  const int64_t from = std::max(first, last_rows_begin());
  if (from < first + n)
    AddLastRows(from, rows.narrow(1, from - first, first + n - from));
}

void PromptAttentionBuilder::AddReceived(const at::Tensor& sums) {
  TORCH_CHECK(sums.size(1) <= s_, "prompt attention sums out of range");
  received_.narrow(1, 0, sums.size(1)).add_(sums);
}

void PromptAttentionBuilder::AddLastRows(int64_t first,
                                         const at::Tensor& rows) {
  const int64_t begin = last_rows_begin(), m = rows.size(1);
  TORCH_CHECK(first >= begin && first + m <= s_ && rows.size(2) <= s_,
              "prompt attention: rows ", first, "..", first + m - 1,
              " are not among the last ones");
  if (!last_rows_.defined()) {
    last_rows_ = at::zeros({rows.size(0), s_ - begin, s_}, rows.options());
  }
  last_rows_.narrow(1, first - begin, m).narrow(2, 0, rows.size(2)).copy_(rows);
}

int64_t PromptAttentionBuilder::last_rows_begin() const {
  return std::max<int64_t>(0, s_ - kPromptLastRows);
}

PromptAttention PromptAttentionBuilder::Finish(
    PromptAttention::RowSource rows) {
  TORCH_CHECK(last_rows_.defined(),
              "prompt attention: the last rows never came");
  return PromptAttention(std::move(received_), std::move(last_rows_),
                         std::move(rows));
}

at::Tensor MeanOverSeeingQueries(const at::Tensor& received) {
  const int64_t s = received.size(-1);
  const at::Tensor seen_by = at::arange(
      s, 0, -1,
      at::TensorOptions().dtype(at::kDouble).device(received.device()));
  return received / seen_by;
}

}  // namespace coldcompress
