#include "policies/cpu_kernels.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define COLDCOMPRESS_CPU_KERNELS_AVX2 1
#endif

namespace coldcompress {
namespace {

#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2

#define AVX2_FMA __attribute__((target("avx2,fma")))

// The 8 lanes of v summed in a fixed order.
AVX2_FMA inline float Sum8(__m256 v) {
  const __m128 quad =
      _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
  return _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)));
}

// How far ahead of the weights being multiplied their loads are asked for,
// with 3 or more input rows: the FMAs then take as long as the loads, and
// without asking ahead the core does one, then the other (8 rows, one core:
// 6.5 -> 8.8 GB/s of weights; the scores of 3 query heads over a head's
// cached keys, 2 threads: 18.5 -> 21.4 GB/s). One or two rows are paced by
// the loads alone, and the hardware's prefetcher does better on its own
// (13.4 GB/s without, 11.2 with).
constexpr int64_t kPrefetchFloats = 256;

// Output rows n..n+R-1 for input rows 0..B-1: y[b, n + r] = w[n + r, :] .
// x[b, :]. Every element is summed lane-wise over k in steps of 8, then
// across lanes (Sum8), then over the last K % 8 terms: the same order for
// any R and B.
template <int R, int B>
AVX2_FMA void Block(const float* w, const float* x, float* y, int64_t k_size,
                    int64_t n_size, int64_t n) {
  __m256 acc[R][B];
  for (int r = 0; r < R; ++r)
    for (int b = 0; b < B; ++b) acc[r][b] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= k_size; k += 8) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) {
      if constexpr (B >= 3) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (n + r) * k_size + k +
                                                   kPrefetchFloats),
                     _MM_HINT_T0);
      }
      // The next block's rows at the same column, into the L2 cache: the
      // loads of a block then find their lines on the way rather than in
      // memory (2 threads, a 2048 x 768 product: 1 row 27-33 -> 32-45 GB/s
      // of weights, 2 rows 24 -> 35, 4 rows 14 -> 35, 8 rows 13 -> 24).
      _mm_prefetch(reinterpret_cast<const char*>(w + (n + R + r) * k_size + k),
                   _MM_HINT_T1);
      wv[r] = _mm256_loadu_ps(w + (n + r) * k_size + k);
    }
    for (int b = 0; b < B; ++b) {
      const __m256 xv = _mm256_loadu_ps(x + b * k_size + k);
      for (int r = 0; r < R; ++r)
        acc[r][b] = _mm256_fmadd_ps(wv[r], xv, acc[r][b]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int b = 0; b < B; ++b) {
      float s = Sum8(acc[r][b]);
      for (int64_t t = k; t < k_size; ++t)
        s = std::fma(w[(n + r) * k_size + t], x[b * k_size + t], s);
      y[b * n_size + n + r] = s;
    }
  }
}

// Rows [begin, end) of the output for B inputs, R rows at a time. One
// input streams 8 weight rows at once: more loads in flight than 4 (one
// core: 14.1 -> 17.6 GB/s of weights), what a lone sequence's decode step
// is bound by. With more inputs each input vector loaded serves R FMAs:
// as many rows as keep the R * B accumulators in the 16 registers (3 or 4
// inputs: R 2 -> 4 made a 2048 x 768 product about 15% faster), except
// that inputs too large for the L1 cache take R = 2 and let some
// accumulators live on the stack (2 threads, 8 inputs of 2048 floats:
// 651 -> 454 us a 768 x 2048 product; of 768 floats, R = 2 is slower:
// 461 -> 560 us a 2048 x 768 one). BM_FewRowsLinear measures these.
template <int B, int R>
AVX2_FMA void Rows(const float* w, const float* x, float* y, int64_t k_size,
                   int64_t n_size, int64_t begin, int64_t end) {
  int64_t n = begin;
  for (; n + R <= end; n += R) Block<R, B>(w, x, y, k_size, n_size, n);
  for (; n < end; ++n) Block<1, B>(w, x, y, k_size, n_size, n);
}

template <int B>
constexpr int kRegisterRows = B == 1   ? 8
                              : B == 2 ? 4
                              : B <= 4 ? 4
                                       : 1;

using RowsFn = void (*)(const float*, const float*, float*, int64_t, int64_t,
                        int64_t, int64_t);
constexpr RowsFn kRows[] = {
    Rows<1, kRegisterRows<1>>, Rows<2, kRegisterRows<2>>,
    Rows<3, kRegisterRows<3>>, Rows<4, kRegisterRows<4>>,
    Rows<5, kRegisterRows<5>>, Rows<6, kRegisterRows<6>>,
    Rows<7, kRegisterRows<7>>, Rows<8, kRegisterRows<8>>};
constexpr RowsFn kWideRows[] = {Rows<5, 2>, Rows<6, 2>, Rows<7, 2>, Rows<8, 2>};

// The kernel for b inputs of k_size floats.
RowsFn RowsFor(int64_t b, int64_t k_size) {
  constexpr int64_t kL1Floats = 32 * 1024 / sizeof(float);
  return b >= 5 && b * k_size > kL1Floats ? kWideRows[b - 5] : kRows[b - 1];
}

constexpr int64_t kPassRows = 8;  // input rows per pass over the weights

// Columns [j0, j0 + 8 * C) of AccumulateRows below, their B * C sums in
// registers for the whole k range.
template <int B, int C>
AVX2_FMA void AccumulateColumns(const float* __restrict x, int64_t x_stride,
                                const float* __restrict w, int64_t d_size,
                                int64_t begin, int64_t end, int64_t j0,
                                float* __restrict acc) {
  constexpr int64_t kPrefetchRows = 8;
  __m256 sum[B][C];
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < C; ++c)
      sum[b][c] = _mm256_loadu_ps(acc + b * d_size + j0 + 8 * c);
  for (int64_t k = begin; k < end; ++k) {
    if (j0 == 0) {
      // The rows a few ahead, whole (the next column blocks read them from
      // the cache): the hardware's prefetcher alone keeps fewer loads in
      // flight.
      for (int64_t line = 0; line < d_size; line += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(
                         w + (k + kPrefetchRows) * d_size + line),
                     _MM_HINT_T0);
      }
    }
    __m256 row[C];
    for (int c = 0; c < C; ++c)
      row[c] = _mm256_loadu_ps(w + k * d_size + j0 + 8 * c);
    for (int b = 0; b < B; ++b) {
      const __m256 xb = _mm256_set1_ps(x[b * x_stride + k]);
      for (int c = 0; c < C; ++c)
        sum[b][c] = _mm256_fmadd_ps(xb, row[c], sum[b][c]);
    }
  }
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < C; ++c)
      _mm256_storeu_ps(acc + b * d_size + j0 + 8 * c, sum[b][c]);
}

// acc[b, :] += sum over k in [begin, end) of x[b, k] * w[k, :], in k order:
// x [B, K] with row stride x_stride, w [K, D] rows contiguous. Each element
// is acc = fma(x[b, k], w[k, j], acc) for k in order, however the columns
// are grouped: C vectors of 8 columns at a time stay in registers for the
// whole k range (before, each k loaded and stored every accumulator: three
// memory operations an FMA, a quarter of one layer's decode step in a cache
// of 288 slots, BM_LayerDecode), then single vectors, and the last D % 8
// columns go one by one.
template <int B>
AVX2_FMA void AccumulateRows(const float* __restrict x, int64_t x_stride,
                             const float* __restrict w, int64_t d_size,
                             int64_t begin, int64_t end,
                             float* __restrict acc) {
  constexpr int C = B <= 3 ? 4 : B <= 6 ? 2 : 1;
  // Rows of w a column block takes before the next block does the same
  // rows, so that those read them from the L1 cache.
  constexpr int64_t kChunkRows = 32;
  if (end - begin > kChunkRows && d_size > 8 * C) {
    for (int64_t k = begin; k < end; k += kChunkRows)
      AccumulateRows<B>(x, x_stride, w, d_size, k,
                        std::min(end, k + kChunkRows), acc);
    return;
  }
  int64_t j0 = 0;
  for (; j0 + 8 * C <= d_size; j0 += 8 * C)
    AccumulateColumns<B, C>(x, x_stride, w, d_size, begin, end, j0, acc);
  for (; j0 + 8 <= d_size; j0 += 8)
    AccumulateColumns<B, 1>(x, x_stride, w, d_size, begin, end, j0, acc);
  if (j0 == d_size) return;
  for (int64_t k = begin; k < end; ++k) {
    const float* row = w + k * d_size;
    for (int b = 0; b < B; ++b) {
      const float xb = x[b * x_stride + k];
      float* a = acc + b * d_size;
      for (int64_t j = j0; j < d_size; ++j) a[j] = std::fma(xb, row[j], a[j]);
    }
  }
}

using AccumulateFn = void (*)(const float*, int64_t, const float*, int64_t,
                              int64_t, int64_t, float*);
constexpr AccumulateFn kAccumulate[] = {
    AccumulateRows<1>, AccumulateRows<2>, AccumulateRows<3>, AccumulateRows<4>,
    AccumulateRows<5>, AccumulateRows<6>, AccumulateRows<7>, AccumulateRows<8>};

bool CpuHasAvx2Fma() {
  static const bool yes =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

#endif  // COLDCOMPRESS_CPU_KERNELS_AVX2

// Helper threads for the kernel, apart from ATen's intra-op pool: with
// ATen's OpenMP pool at two threads, the many small operations of a decode
// step each pay a fork and join and the step gets slower, so ATen's pool
// stays as configured and only this kernel fans out. A job splits [0, n)
// into chunks that the caller and the helpers take in turn until none is
// left: a thread slowed by the rest of the machine then does less, instead
// of the others waiting for its fixed share.
class RowPool {
 public:
  static RowPool& Get() {
    static RowPool* pool = new RowPool();  // never destroyed: helpers detach
    return *pool;
  }

  void SetThreads(int n) { threads_.store(std::max(1, n)); }

  using Job = std::function<void(int64_t begin, int64_t end)>;

  // fn(begin, end) over chunks that cover [0, n) once, on as many threads
  // as n items of at least `grain` each keep busy; returns when all are
  // done. Which thread runs a chunk varies, so fn must not depend on it.
  void Run(int64_t n, int64_t grain, const Job& fn) {
    const int64_t parts = std::clamp<int64_t>(n / std::max<int64_t>(1, grain),
                                              1, threads_.load());
    if (parts == 1) {
      fn(0, n);
      return;
    }
    // One job at a time (two engines in a process share the helpers).
    std::lock_guard<std::mutex> serial(run_mu_);
    std::unique_lock<std::mutex> lock(mu_);
    while (static_cast<int64_t>(helpers_.size()) < parts - 1) {
      helpers_.emplace_back([this, id = helpers_.size()] { Help(id); });
      helpers_.back().detach();
    }
    job_ = &fn;
    n_ = n;
    parts_ = parts;
    chunk_ = (n + parts * kChunksPerThread - 1) / (parts * kChunksPerThread);
    next_.store(0);
    pending_.store(parts - 1);
    generation_.fetch_add(1);
    lock.unlock();
    wake_.notify_all();
    TakeChunks(fn);
    // The helpers finish their last chunks about when we do: spin first.
    for (int i = 0; i < kSpins && pending_.load() != 0; ++i) Pause();
    lock.lock();
    done_.wait(lock, [&] { return pending_.load() == 0; });
    job_ = nullptr;
  }

 private:
  RowPool()
      : threads_(static_cast<int>(
            std::max(1u, std::thread::hardware_concurrency()))) {}

  static void Pause() {
#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2
    _mm_pause();
#endif
  }

  void Help(size_t id) {
    uint64_t seen = 0;
    while (true) {
      // A decode step calls the kernel every few dozen microseconds: spin
      // a little before sleeping.
      for (int i = 0; i < kSpins && generation_.load() == seen; ++i) Pause();
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (static_cast<int64_t>(id) + 1 >= parts_) continue;
      const auto* job = job_;
      lock.unlock();
      TakeChunks(*job);
      if (pending_.fetch_sub(1) == 1) {
        lock.lock();  // the caller checks pending_ under the lock
        done_.notify_one();
      }
    }
  }

  // Runs chunks of the current job until none is left.
  void TakeChunks(const Job& fn) {
    const int64_t n = n_, chunk = chunk_;
    for (int64_t begin = next_.fetch_add(chunk); begin < n;
         begin = next_.fetch_add(chunk)) {
      fn(begin, std::min(n, begin + chunk));
    }
  }

  static constexpr int kSpins = 2000;  // about 0.1 ms of pause instructions
  static constexpr int64_t kChunksPerThread = 8;

  std::atomic<int> threads_;
  std::mutex run_mu_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> helpers_;
  const Job* job_ = nullptr;
  int64_t n_ = 0, parts_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> pending_{0};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace

void SetFewRowsThreads(int threads) { RowPool::Get().SetThreads(threads); }

void EnterCpuPhase(CpuPhase phase) {
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  struct Blas {
    SetFn set = reinterpret_cast<SetFn>(
        dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    GetFn get = reinterpret_cast<GetFn>(
        dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    int prompt_threads = set != nullptr && get != nullptr ? get() : 0;
    std::mutex mu;
    CpuPhase phase = CpuPhase::kPrompt;
  };
  static Blas* blas = new Blas();
  if (blas->prompt_threads <= 1) return;
  std::lock_guard<std::mutex> lock(blas->mu);
  if (blas->phase == phase) return;
  blas->phase = phase;
  blas->set(phase == CpuPhase::kDecode ? 1 : blas->prompt_threads);
}

bool CpuKernelOperand(const at::Tensor& t) {
#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2
  return CpuHasAvx2Fma() && t.device().is_cpu() &&
         t.scalar_type() == at::kFloat && !t.requires_grad();
#else
  (void)t;
  return false;
#endif
}

namespace {

// Items of `floats` floats each a part of RowPool::Run: at least 64k floats
// (256 KiB) a part, as handing less to another thread costs more than it
// saves.
int64_t Grain(int64_t floats) {
  return std::max<int64_t>(1,
                           (int64_t{1} << 16) / std::max<int64_t>(1, floats));
}

}  // namespace

at::Tensor FewRowsHeadScores(const at::Tensor& q, const at::Tensor& k) {
#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2
  const int64_t h = q.size(0), g = q.size(1), d = q.size(2), n = k.size(1);
  at::Tensor scores = at::empty({h, g, n}, q.options());
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  float* sp = scores.data_ptr<float>();
  const int64_t head_stride = k.stride(0);
  const RowsFn rows_fn = RowsFor(g, d);
  RowPool::Get().Run(h, Grain(n * d), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      rows_fn(kp + i * head_stride, qp + i * g * d, sp + i * g * n, d, n, 0, n);
  });
  return scores;
#else
  (void)q;
  (void)k;
  TORCH_CHECK(false, "FewRowsHeadScores: not built for this CPU");
#endif
}

at::Tensor FewRowsHeadValues(const at::Tensor& p, const at::Tensor& v) {
#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2
  const int64_t h = p.size(0), g = p.size(1), n = p.size(2), d = v.size(2);
  at::Tensor out = at::zeros({h, g, d}, v.options());
  const float* pp = p.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t head_stride = v.stride(0);
  const AccumulateFn accumulate = kAccumulate[g - 1];
  RowPool::Get().Run(h, Grain(n * d), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      accumulate(pp + i * g * n, n, vp + i * head_stride, d, 0, n,
                 op + i * g * d);
  });
  return out;
#else
  (void)p;
  (void)v;
  TORCH_CHECK(false, "FewRowsHeadValues: not built for this CPU");
#endif
}

bool FewRowsLinearApplies(const at::Tensor& x, const at::Tensor& w) {
  return CpuKernelOperand(x) && CpuKernelOperand(w) && w.dim() == 2 &&
         w.is_contiguous() && x.dim() >= 1 && x.size(-1) == w.size(1) &&
         x.numel() > 0 && x.numel() / x.size(-1) <= kFewRowsMax;
}

at::Tensor FewRowsLinear(const at::Tensor& x, const at::Tensor& w,
                         const at::Tensor& b) {
#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2
  const int64_t k_size = w.size(1), n_size = w.size(0);
  const at::Tensor xs = x.reshape({-1, k_size}).contiguous();
  const int64_t rows = xs.size(0);
  at::Tensor y = at::empty({rows, n_size}, w.options());
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t grain = Grain(k_size);  // weight rows a part
  // More than kPassRows inputs take several passes, each over a block of
  // 64 KiB of weights while it is still in the cache.
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 14) / k_size);
  const float* xp = xs.data_ptr<float>();
  RowPool::Get().Run(n_size, grain, [&](int64_t begin, int64_t end) {
    for (int64_t start = begin; start < end; start += block) {
      const int64_t stop = std::min(end, start + block);
      for (int64_t first = 0; first < rows; first += kPassRows) {
        const int64_t count = std::min(kPassRows, rows - first);
        RowsFor(count, k_size)(wp, xp + first * k_size, yp + first * n_size,
                               k_size, n_size, start, stop);
      }
    }
  });
  if (b.defined()) y.add_(b);
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = n_size;
  return y.view(shape);
#else
  (void)x;
  (void)w;
  (void)b;
  TORCH_CHECK(false, "FewRowsLinear: not built for this CPU");
#endif
}

}  // namespace coldcompress
