// `hybrid` (docs/policies.md 3.7; FastGen, Ge et al. 2023): each KV head gets
// the most compressive strategy that recovers enough of its prompt attention;
// compression comes from per-head budgets inside a whole-sequence cache.
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "policies/builtins.h"
#include "policies/scoring.h"

namespace coldcompress {
namespace {

constexpr int64_t kHistoryWindow =
    400;  // "mean attention (history window 400)"
constexpr double kInf = std::numeric_limits<double>::infinity();

// One entry of hybrid_strategies, parsed.
struct Strategy {
  std::string name;
  bool full = false, special = false, punc = false, window = false,
       heavy_hitter = false;
  double frac_w = 0, frac_hh = 0;
};

absl::StatusOr<Strategy> ParseStrategy(const HybridStrategySpec& spec,
                                       size_t index) {
  const std::string field = absl::StrCat("hybrid_strategies[", index, "]");
  Strategy s;
  s.name = spec.strategy;
  if (spec.strategy == "full") {
    s.full = true;
    return s;
  }
  std::string rest = spec.strategy;
  if (const size_t at = rest.find("heavy_hitter"); at != std::string::npos) {
    s.heavy_hitter = true;
    rest.erase(at, std::string("heavy_hitter").size());
  }
  for (absl::string_view part : absl::StrSplit(rest, '_', absl::SkipEmpty())) {
    if (part == "special") {
      s.special = true;
    } else if (part == "punc") {
      s.punc = true;
    } else if (part == "window") {
      s.window = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".strategy \"", spec.strategy,
                       "\" has the unknown part \"", part,
                       "\"; compose special, punc, window, heavy_hitter with "
                       "'_', or use full"));
    }
  }
  if (!s.special && !s.punc && !s.window && !s.heavy_hitter) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".strategy is empty"));
  }
  const auto fraction = [&](const std::optional<double>& value,
                            const char* name) -> absl::Status {
    if (!value || (*value > 0 && *value <= 1)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".", name, " must be a fraction in (0, 1], got ", *value));
  };
  if (absl::Status st = fraction(spec.recent_window, "recent_window");
      !st.ok()) {
    return st;
  }
  if (absl::Status st = fraction(spec.heavy_hitter_frac, "heavy_hitter_frac");
      !st.ok()) {
    return st;
  }
  // The fractions given are in range (above); these parts need theirs.
  if (s.window) {
    if (!spec.recent_window) {
      return absl::InvalidArgumentError(absl::StrCat(
          field,
          ".recent_window must be a fraction in (0, 1] for a window strategy"));
    }
    s.frac_w = *spec.recent_window;
  }
  if (s.heavy_hitter) {
    if (!spec.heavy_hitter_frac) {
      return absl::InvalidArgumentError(
          absl::StrCat(field,
                       ".heavy_hitter_frac must be a fraction in (0, 1] for a "
                       "heavy_hitter strategy"));
    }
    s.frac_hh = *spec.heavy_hitter_frac;
  }
  return s;
}

absl::Status CheckMinRecovery(const PolicySpec& spec) {
  if (spec.min_recovery_frac >= 0 && spec.min_recovery_frac <= 1)
    return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "min_recovery_frac must be in [0, 1], got ", spec.min_recovery_frac));
}

absl::StatusOr<std::vector<Strategy>> ParseStrategies(const PolicySpec& spec) {
  if (spec.hybrid_strategies.empty()) {
    return absl::InvalidArgumentError(
        "hybrid_strategies: the hybrid strategy needs at least one entry (the "
        "list should end "
        "with full)");
  }
  if (absl::Status st = CheckMinRecovery(spec); !st.ok()) return st;
  std::vector<Strategy> out;
  for (size_t i = 0; i < spec.hybrid_strategies.size(); ++i) {
    absl::StatusOr<Strategy> s = ParseStrategy(spec.hybrid_strategies[i], i);
    if (!s.ok()) return s.status();
    out.push_back(*s);
  }
  return out;
}

}  // namespace

absl::Status CheckHybridFields(const PolicySpec& spec) {
  if (spec.hybrid_strategies.empty()) return CheckMinRecovery(spec);
  return ParseStrategies(spec).status();
}

namespace {

int64_t RoundHalfEven(double x) {
  return static_cast<int64_t>(std::nearbyint(x));
}

class HybridPolicy final : public Policy {
 public:
  HybridPolicy(const PolicyContext& c, std::vector<Strategy> strategies)
      : strategies_(std::move(strategies)),
        g_(c.spec->global_tokens),
        min_recovery_(c.spec->min_recovery_frac),
        tokens_(c.tokens),
        capacity_(c.layer->capacity),
        chosen_(c.num_heads, 0),
        special_(c.num_heads, std::vector<bool>(c.layer->capacity, false)),
        punc_(c.num_heads, std::vector<bool>(c.layer->capacity, false)) {
    for (const Strategy& s : strategies_) {
      uses_history_ = uses_history_ || s.heavy_hitter;
      uses_window_ = uses_window_ || s.window;
    }
    if (uses_history_) {
      const auto opts = at::TensorOptions().device(c.device);
      num_ = at::zeros({c.num_heads, capacity_, kHistoryWindow},
                       opts.dtype(c.dtype));
      denom_ = at::zeros({c.num_heads, capacity_}, opts.dtype(at::kLong));
    }
  }

  bool head_specific() const override { return true; }
  bool needs_attention() const override { return true; }
  // Only a window's band needs the prompt's rows (Recoveries).
  bool needs_prompt_rows() const override { return uses_window_; }

  // Profiling (docs/policies.md 3.7): choose each head's strategy on the
  // prompt's attention with budget base T = S, keep its last-row set with
  // T = L.
  at::Tensor SelectPrompt(const PromptObservation& o) override {
    const int64_t s = o.prompt_length;
    prompt_special_ = tokens_->SpecialMask(*o.tokens);
    prompt_punc_.assign(s, false);
    for (int64_t j = 0; j < s; ++j)
      prompt_punc_[j] = tokens_->IsPunctuation((*o.tokens)[j]);
    const at::Tensor cum = o.attention->MeanReceived();  // [H, S]
    const int64_t h = cum.size(0);
    const std::vector<std::vector<double>> recovery =
        Recoveries(*o.attention, cum, s);
    for (int64_t head = 0; head < h; ++head) {
      chosen_[head] = static_cast<int>(strategies_.size()) -
                      1;  // Fix: fall back to the last
      for (size_t k = 0; k < strategies_.size(); ++k) {
        if (recovery[head][k] >= min_recovery_) {
          chosen_[head] = static_cast<int>(k);
          break;
        }
      }
    }
    std::vector<std::vector<int64_t>> kept(h);
    size_t longest = 0;
    for (int64_t head = 0; head < h; ++head) {
      const at::Tensor row =
          LastRowMask(cum[head], strategies_[chosen_[head]], s, capacity_)
              .cpu();
      const bool* m = row.data_ptr<bool>();
      for (int64_t j = 0; j < s; ++j) {
        if (m[j]) kept[head].push_back(j);
      }
      longest = std::max(longest, kept[head].size());
    }
    at::Tensor out =
        at::full({h, static_cast<int64_t>(longest)}, -1, at::kLong);
    for (int64_t head = 0; head < h; ++head) {
      for (size_t k = 0; k < kept[head].size(); ++k)
        out[head][k] = kept[head][k];
    }
    return out.to(o.attention->received().device());
  }

  void OnPrefill(const PrefillObservation& o) override {
    const at::Tensor kept = o.kept.cpu();
    for (int64_t head = 0; head < kept.size(0); ++head) {
      for (int64_t k = 0; k < kept.size(1); ++k) {
        const int64_t j = kept[head][k].item<int64_t>();
        if (j < 0) break;
        special_[head][k] =
            prompt_special_.empty() ? false : prompt_special_[j];
        punc_[head][k] = prompt_punc_.empty() ? false : prompt_punc_[j];
      }
    }
    if (uses_history_) {
      const at::Tensor mean = o.attention->MeanReceived();
      const at::Tensor a =
          mean.gather(1, o.kept.clamp_min(0)).masked_fill(o.kept < 0, 0);
      num_.select(2, 0).copy_(PadTo(a, capacity_).to(num_.scalar_type()));
      denom_.fill_(1);
      ctr_ = 1;
    }
  }

  std::vector<int64_t> ChooseSlots(const KVCache& cache, int64_t position,
                                   int32_t token) override {
    const int64_t h = cache.num_heads();
    std::vector<int64_t> slots(h, -1);
    const bool punctuation = tokens_->IsPunctuation(token);
    at::Tensor hh_scores;
    for (int64_t head = 0; head < h; ++head) {
      const Strategy& s = strategies_[chosen_[head]];
      const int64_t occupancy = cache.occupancy(head);
      if (s.full || (s.punc && punctuation)) {
        slots[head] = occupancy;  // grows; L = Smax leaves room
      } else {
        int64_t budget = g_;
        if (s.special) budget += Count(special_[head], occupancy);
        if (s.punc) budget += Count(punc_[head], occupancy);
        if (s.window)
          budget += RoundHalfEven(s.frac_w * static_cast<double>(capacity_));
        if (s.heavy_hitter)
          budget += RoundHalfEven(s.frac_hh * static_cast<double>(capacity_));
        if (occupancy < budget) {
          slots[head] = occupancy;
        } else if (s.heavy_hitter || s.window) {
          if (s.heavy_hitter && !hh_scores.defined())
            hh_scores = HistoryScores().cpu();
          slots[head] = Evict(cache, head, position, s, hh_scores);
        }
      }
      if (slots[head] >= 0) {
        const int64_t slot = slots[head];
        special_[head][slot] = tokens_->IsSpecial(token);
        punc_[head][slot] = punctuation;
        if (uses_history_) {  // Fix: a (re)filled slot starts a new history
          num_[head][slot].zero_();
          denom_[head][slot].zero_();
        }
      }
    }
    return slots;
  }

  void UpdateState(const DecodeObservation& o) override {
    if (!uses_history_) return;
    num_.select(2, ctr_ % kHistoryWindow)
        .copy_(PadTo(o.probs, capacity_).to(num_.scalar_type()));
    denom_ += 1;
    ++ctr_;
  }

  void Grow(int64_t capacity) override {
    if (capacity <= capacity_) return;
    for (auto& v : special_) v.resize(capacity, false);
    for (auto& v : punc_) v.resize(capacity, false);
    if (uses_history_) {
      num_ = at::cat(
          {num_, at::zeros({num_.size(0), capacity - capacity_, kHistoryWindow},
                           num_.options())},
          1);
      denom_ = PadTo(denom_, capacity);
    }
    capacity_ = capacity;
  }

  int64_t StateBytes() const override {
    int64_t bytes =
        2 * static_cast<int64_t>(special_.size()) * capacity_;  // flags
    if (uses_history_) bytes += num_.nbytes() + denom_.nbytes();
    return bytes;
  }

  std::map<std::string, double> Stats() const override {
    std::map<std::string, double> out;
    for (const Strategy& s : strategies_) out["hybrid/" + s.name] = 0;
    for (int c : chosen_)
      out["hybrid/" + strategies_[c].name] += 1.0 / chosen_.size();
    return out;
  }

  std::unique_ptr<Policy> Clone() const override {
    auto copy = std::make_unique<HybridPolicy>(*this);
    if (uses_history_) {
      copy->num_ = num_.clone();
      copy->denom_ = denom_.clone();
    }
    return copy;
  }

  const std::vector<int>& chosen() const { return chosen_; }

 private:
  static int64_t Count(const std::vector<bool>& flags, int64_t n) {
    return std::count(flags.begin(), flags.begin() + n, true);
  }

  // [S] bool: the keys strategy s selects for every query row (sinks,
  // special, punc, heavy hitters), with the heavy hitters chosen against the
  // last row's selection including the window of width w.
  at::Tensor ColumnMask(const at::Tensor& cum, const Strategy& s, int64_t len,
                        int64_t t, int64_t w) const {
    at::Tensor col = at::zeros({len}, at::kBool);
    bool* c = col.data_ptr<bool>();
    for (int64_t j = 0; j < len; ++j) {
      c[j] = j < g_ || (s.special && prompt_special_[j]) ||
             (s.punc && prompt_punc_[j]);
    }
    if (s.heavy_hitter) {
      at::Tensor selected = col.clone();
      if (s.window)
        selected.narrow(0, std::max<int64_t>(0, len - w), std::min(w, len))
            .fill_(true);
      const int64_t available = len - selected.sum().item<int64_t>();
      const int64_t n = static_cast<int64_t>(std::ceil(std::min(
          s.frac_hh * static_cast<double>(t), static_cast<double>(available))));
      if (n > 0) {
        const at::Tensor score =
            cum.cpu().masked_fill(selected, -kInf).unsqueeze(0);
        const at::Tensor top = KeepTop(score, n)[0];
        col.index_fill_(0, top, true);
      }
    }
    return col;
  }

  int64_t WindowWidth(const Strategy& s, int64_t t) const {
    return std::max<int64_t>(
        1, static_cast<int64_t>(s.frac_w * static_cast<double>(t)));
  }

  // R[h][k] = mean_i sum_j A[i, j] * M_k[i, j] with T = S for every head h
  // and strategy k. M_k is strategy k's column set, whose share is its dot
  // product with the received sums, and, with a window of width w, the band
  // i - w < j <= i outside it, summed in one visit of the prompt's rows.
  std::vector<std::vector<double>> Recoveries(const PromptAttention& attention,
                                              const at::Tensor& cum,
                                              int64_t len) const {
    const int64_t heads = cum.size(0);
    const size_t n = strategies_.size();
    std::vector<int64_t> widths(n, 0);
    std::vector<std::vector<at::Tensor>> cols(heads,
                                              std::vector<at::Tensor>(n));
    for (size_t k = 0; k < n; ++k) {
      const Strategy& s = strategies_[k];
      if (s.full) continue;
      if (s.window) widths[k] = WindowWidth(s, len);
      for (int64_t head = 0; head < heads; ++head) {
        cols[head][k] = ColumnMask(cum[head], s, len, len, widths[k])
                            .to(cum.device())
                            .to(at::kDouble);
      }
    }
    // The column set's part needs no rows: sum_i sum_j A[i, j] col[j] is
    // col . received.
    std::vector<std::vector<double>> sums(heads, std::vector<double>(n, 0.0));
    for (int64_t head = 0; head < heads; ++head) {
      for (size_t k = 0; k < n; ++k) {
        if (strategies_[k].full) continue;
        sums[head][k] =
            at::dot(cols[head][k], attention.received()[head]).item<double>();
      }
    }
    if (uses_window_) {
      attention.ForEachRows([&](int64_t first, const at::Tensor& rows) {
        for (int64_t head = 0; head < heads; ++head) {
          for (size_t k = 0; k < n; ++k) {
            if (widths[k] == 0) continue;
            const at::Tensor col = cols[head][k].narrow(0, 0, rows.size(2));
            sums[head][k] +=
                Band(rows[head], col, first, widths[k]).sum().item<double>();
          }
        }
      });
    }
    std::vector<std::vector<double>> out(heads, std::vector<double>(n, 1.0));
    for (int64_t head = 0; head < heads; ++head) {
      for (size_t k = 0; k < n; ++k) {
        if (!strategies_[k].full)
          out[head][k] = sums[head][k] / static_cast<double>(len);
      }
    }
    return out;
  }

  // [m] float64: for rows i = first..first + m - 1 of a [m, Sk], the
  // attention in the band i - w < j <= i outside the column set, by prefix
  // sums over the columns the rows' bands span.
  static at::Tensor Band(const at::Tensor& a, const at::Tensor& col,
                         int64_t first, int64_t w) {
    const int64_t m = a.size(0), sk = a.size(1);
    const int64_t lo = std::max<int64_t>(0, first - w + 1);
    const at::Tensor prefix = (a.narrow(1, lo, sk - lo).to(at::kDouble) *
                               (1 - col.narrow(0, lo, sk - lo)))
                                  .cumsum(1);  // column lo + c
    const at::Tensor rows =
        at::arange(first, first + m,
                   at::TensorOptions().dtype(at::kLong).device(a.device()));
    const at::Tensor upto =
        prefix.gather(1, (rows - lo).unsqueeze(1)).squeeze(1);
    const at::Tensor before_idx = rows - w - lo;
    const at::Tensor before =
        prefix.gather(1, before_idx.clamp_min(0).unsqueeze(1))
            .squeeze(1)
            .masked_fill(before_idx < 0, 0);
    return upto - before;
  }

  // The last query row's selection with budget base T = L.
  at::Tensor LastRowMask(const at::Tensor& cum, const Strategy& s, int64_t len,
                         int64_t t) const {
    if (s.full) return at::ones({len}, at::kBool);
    const int64_t w = s.window ? WindowWidth(s, t) : 0;
    at::Tensor col = ColumnMask(cum, s, len, t, w);
    if (s.window)
      col.narrow(0, std::max<int64_t>(0, len - w), std::min(w, len))
          .fill_(true);
    return col;
  }

  at::Tensor HistoryScores() const {
    return num_.to(at::kDouble).sum(-1) /
           denom_.clamp(1, kHistoryWindow).to(at::kDouble);
  }

  // The filled slot of `head` with the lowest score: mean attention (heavy
  // hitters) or position (window only); sinks, flagged slots and the window
  // are protected. -1 when every slot is protected.
  int64_t Evict(const KVCache& cache, int64_t head, int64_t position,
                const Strategy& s, const at::Tensor& hh_scores) const {
    const int64_t window =
        RoundHalfEven(s.frac_w * static_cast<double>(capacity_));
    int64_t best = -1;
    double best_score = kInf;
    for (int64_t slot = 0; slot < cache.occupancy(head); ++slot) {
      const int64_t pos = cache.position(head, slot);
      if (pos < g_ || (s.special && special_[head][slot]) ||
          (s.punc && punc_[head][slot]) ||
          (s.window && position - window < pos)) {
        continue;
      }
      const double score = s.heavy_hitter ? hh_scores[head][slot].item<double>()
                                          : static_cast<double>(pos);
      if (score < best_score) {
        best_score = score;
        best = slot;
      }
    }
    return best;
  }

  std::vector<Strategy> strategies_;
  int64_t g_;
  double min_recovery_;
  const TokenClasses* tokens_;
  int64_t capacity_;
  std::vector<int> chosen_;                 // per head: index into strategies_
  std::vector<std::vector<bool>> special_;  // per head and slot
  std::vector<std::vector<bool>> punc_;
  std::vector<bool> prompt_special_, prompt_punc_;
  bool uses_history_ = false;
  bool uses_window_ = false;  // some strategy has a window
  at::Tensor num_;            // [H, L, 400]
  at::Tensor denom_;          // [H, L]
  int64_t ctr_ = 0;
};

}  // namespace

PolicyInfo HybridPolicyInfo() {
  PolicyInfo info;
  info.name = "hybrid";
  info.description =
      "FastGen: profiles the prompt and gives each head the most compressive "
      "of "
      "hybrid_strategies that recovers min_recovery_frac of its attention.";
  info.head_specific = true;
  info.needs_attention = true;
  info.requires_full_length = true;
  info.params = {GlobalTokensParam(),
                 {"min_recovery_frac", "double", "0.9",
                  "attention a head's strategy must recover on the prompt"},
                 {"hybrid_strategies", "list", "",
                  "ordered {strategy, recent_window, heavy_hitter_frac}, most "
                  "compressive first, "
                  "ending with full; strategies compose special, punc, window, "
                  "heavy_hitter"}};
  info.default_compressor = "full";
  info.validate = [](const PolicySpec& spec) {
    return ParseStrategies(spec).status();
  };
  info.create = [](const PolicyContext& c) -> std::unique_ptr<Policy> {
    absl::StatusOr<std::vector<Strategy>> s = ParseStrategies(*c.spec);
    if (!s.ok()) return nullptr;
    return std::make_unique<HybridPolicy>(c, *std::move(s));
  };
  return info;
}

}  // namespace coldcompress
