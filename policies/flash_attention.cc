#include "policies/flash_attention.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "policies/cpu_kernels.h"

namespace coldcompress {
namespace {

// A tile: about kTileRows rows of scores (a KV head's query heads x query
// rows) by kTileKeys keys, 512 KB of float32: it stays in a core's L2.
constexpr int64_t kTileRows = 256;
constexpr int64_t kTileKeys = 512;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Geometry {
  int64_t g = 1;      // query heads per KV head
  int64_t d = 0;      // head dim
  int64_t first = 0;  // position of query row 0
  int64_t rows = 1;   // query rows of a tile (per query head)
  double scale = 1;   // 1 / sqrt(d)
};

// [rows, keys] bool: true where query row i (position row0 + i) must not see
// key key0 + j, which comes after it.
at::Tensor Future(int64_t row0, int64_t rows, int64_t key0, int64_t keys) {
  const auto longs = at::TensorOptions().dtype(at::kLong);
  return at::arange(key0, key0 + keys, longs).unsqueeze(0) >
         at::arange(row0, row0 + rows, longs).unsqueeze(1);
}

// KV head `head`'s query rows r0..r0 + rn - 1 for its G query heads, scaled
// by 1 / sqrt(d): [G * rn, d] contiguous.
at::Tensor QueryTile(const at::Tensor& q, const Geometry& geo, int64_t head,
                     int64_t r0, int64_t rn) {
  return q.narrow(0, head * geo.g, geo.g)
      .narrow(1, r0, rn)
      .reshape({geo.g * rn, geo.d})
      .mul(geo.scale);
}

// The scores [G * rn, kn] of a query tile over keys key0..key0 + kn - 1 of
// `head`, those after a row's position -inf.
at::Tensor TileScores(const at::Tensor& tile, const at::Tensor& k,
                      const Geometry& geo, int64_t head, int64_t r0, int64_t rn,
                      int64_t key0, int64_t kn) {
  at::Tensor s = at::mm(tile, k.select(0, head).narrow(0, key0, kn).t());
  const int64_t row0 = geo.first + r0;
  if (key0 + kn - 1 > row0) {
    s.view({geo.g, rn, kn}).masked_fill_(Future(row0, rn, key0, kn), kNegInf);
  }
  return s;
}

// A [G * rn] slice of a per-query-row statistic [Hq, n].
at::Tensor RowsOf(const at::Tensor& stat, const Geometry& geo, int64_t head,
                  int64_t r0, int64_t rn) {
  return stat.narrow(0, head * geo.g, geo.g).narrow(1, r0, rn);
}

// The BLAS on one thread while the kernel threads run the tiles (each
// tile's products in its own thread, as in decode steps), all of its
// threads again after.
class TileThreads {
 public:
  TileThreads() { EnterCpuPhase(CpuPhase::kDecode); }
  ~TileThreads() { EnterCpuPhase(CpuPhase::kPrompt); }
  TileThreads(const TileThreads&) = delete;
  TileThreads& operator=(const TileThreads&) = delete;
};

std::atomic<bool> flash_prompt_attention{true};

}  // namespace

bool FlashPromptApplies(const at::Tensor& q) {
  return flash_prompt_attention.load() && CpuKernelOperand(q);
}

void SetFlashPromptAttention(bool on) { flash_prompt_attention.store(on); }

at::Tensor FlashPromptAttention(const at::Tensor& q, const at::Tensor& k,
                                const at::Tensor& v, int64_t first,
                                PromptAttentionBuilder* stats) {
  const int64_t hq = q.size(0), n = q.size(1), h = k.size(0), sk = k.size(1);
  TORCH_CHECK(sk == first + n, "FlashPromptAttention: ", sk, " keys for rows ",
              first, "..", first + n - 1);
  Geometry geo;
  geo.g = hq / h;
  geo.d = q.size(2);
  geo.first = first;
  geo.rows = std::max<int64_t>(1, kTileRows / geo.g);
  geo.scale = 1.0 / std::sqrt(static_cast<double>(geo.d));
  const int64_t blocks = (n + geo.rows - 1) / geo.rows;
  at::Tensor out = at::empty({hq, n, geo.d}, q.options());
  // Each row's final maximum and sum of exponentials (for the probabilities).
  at::Tensor row_max, row_sum;
  if (stats != nullptr) {
    row_max = at::empty({hq, n}, q.options());
    row_sum = at::empty({hq, n}, q.options());
  }
  const TileThreads threads;
  // The output: per KV head and block of query rows, the keys a tile at a
  // time up to the block's last row.
  ForEachOnKernelThreads(h * blocks, [&](int64_t task) {
    const int64_t head = task / blocks, r0 = (task % blocks) * geo.rows;
    const int64_t rn = std::min(geo.rows, n - r0);
    const at::Tensor tile = QueryTile(q, geo, head, r0, rn);
    const int64_t keys = first + r0 + rn;
    at::Tensor m, l, acc;
    for (int64_t key0 = 0; key0 < keys; key0 += kTileKeys) {
      const int64_t kn = std::min(kTileKeys, keys - key0);
      at::Tensor s = TileScores(tile, k, geo, head, r0, rn, key0, kn);
      const at::Tensor values = v.select(0, head).narrow(0, key0, kn);
      const at::Tensor tile_max = std::get<0>(s.max(1));
      if (!m.defined()) {
        // Key 0 is in the first tile: every row's maximum is finite.
        m = tile_max;
        s.sub_(m.unsqueeze(1)).exp_();
        l = s.sum(1);
        acc = at::mm(s, values);
      } else {
        const at::Tensor m_new = at::maximum(m, tile_max);
        const at::Tensor alpha = (m - m_new).exp_();
        s.sub_(m_new.unsqueeze(1)).exp_();
        l.mul_(alpha).add_(s.sum(1));
        acc.mul_(alpha.unsqueeze(1)).addmm_(s, values);
        m = m_new;
      }
    }
    out.narrow(0, head * geo.g, geo.g)
        .narrow(1, r0, rn)
        .copy_(acc.div_(l.unsqueeze(1)).view({geo.g, rn, geo.d}));
    if (stats != nullptr) {
      RowsOf(row_max, geo, head, r0, rn).copy_(m.view({geo.g, rn}));
      RowsOf(row_sum, geo, head, r0, rn).copy_(l.view({geo.g, rn}));
    }
  });
  if (stats == nullptr) return out;

  // The probabilities: per KV head and block of keys, the rows that see
  // them a tile at a time, normalised by the rows' final maximum and sum.
  const auto doubles = at::TensorOptions().dtype(at::kDouble);
  at::Tensor received = at::empty({h, sk}, doubles);
  const int64_t last0 = std::max(first, stats->last_rows_begin());
  at::Tensor last;  // this call's rows among the prompt's last ones
  if (last0 < first + n)
    last = at::zeros({h, first + n - last0, sk}, q.options());
  const int64_t key_blocks = (sk + kTileKeys - 1) / kTileKeys;
  ForEachOnKernelThreads(h * key_blocks, [&](int64_t task) {
    const int64_t head = task / key_blocks,
                  key0 = (task % key_blocks) * kTileKeys;
    const int64_t kn = std::min(kTileKeys, sk - key0);
    at::Tensor sum = at::zeros({kn}, doubles);
    for (int64_t r0 = 0; r0 < n; r0 += geo.rows) {
      const int64_t rn = std::min(geo.rows, n - r0);
      if (first + r0 + rn - 1 < key0) continue;  // no row sees these keys
      at::Tensor p = TileScores(QueryTile(q, geo, head, r0, rn), k, geo, head,
                                r0, rn, key0, kn);
      p.sub_(RowsOf(row_max, geo, head, r0, rn).reshape({-1, 1}))
          .exp_()
          .div_(RowsOf(row_sum, geo, head, r0, rn).reshape({-1, 1}));
      sum.add_(p.sum(0, /*keepdim=*/false, at::kDouble));
      const int64_t from = std::max(first + r0, last0);  // a position
      if (last.defined() && from < first + r0 + rn) {
        const int64_t count = first + r0 + rn - from;
        last.select(0, head)
            .narrow(0, from - last0, count)
            .narrow(1, key0, kn)
            .copy_(p.view({geo.g, rn, kn})
                       .narrow(1, from - first - r0, count)
                       .mean(0));
      }
    }
    received.select(0, head).narrow(0, key0, kn).copy_(sum.div_(geo.g));
  });
  stats->AddReceived(received);
  if (last.defined()) stats->AddLastRows(last0, last);
  return out;
}

}  // namespace coldcompress
