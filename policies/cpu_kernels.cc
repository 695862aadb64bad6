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
// with 4 or more input rows: the FMAs then take as long as the loads, and
// without asking ahead the core does one, then the other (8 rows, one core:
// 6.5 -> 8.8 GB/s of weights). One or two rows are paced by the loads
// alone, and the hardware's prefetcher does better on its own (13.4 GB/s
// without, 11.2 with).
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
      if constexpr (B >= 4) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (n + r) * k_size + k +
                                                   kPrefetchFloats),
                     _MM_HINT_T0);
      }
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

// Rows [begin, end) of the output for B inputs; R rows at a time, about as
// many as keep the R * B accumulators and R weight vectors in the 16
// registers. One input streams 8 weight rows at once: more loads in flight
// than 4 (one core: 14.1 -> 17.6 GB/s of weights), what a lone sequence's
// decode step is bound by.
template <int B>
AVX2_FMA void Rows(const float* w, const float* x, float* y, int64_t k_size,
                   int64_t n_size, int64_t begin, int64_t end) {
  constexpr int R = B == 1 ? 8 : B <= 2 ? 4 : B <= 4 ? 2 : 1;
  int64_t n = begin;
  for (; n + R <= end; n += R) Block<R, B>(w, x, y, k_size, n_size, n);
  for (; n < end; ++n) Block<1, B>(w, x, y, k_size, n_size, n);
}

using RowsFn = void (*)(const float*, const float*, float*, int64_t, int64_t,
                        int64_t, int64_t);
constexpr RowsFn kRows[] = {Rows<1>, Rows<2>, Rows<3>, Rows<4>,
                            Rows<5>, Rows<6>, Rows<7>, Rows<8>};
constexpr int64_t kPassRows = 8;  // input rows per pass over the weights

// acc[b, :] += sum over k in [begin, end) of x[b, k] * w[k, :], in k order:
// x [B, K] with row stride x_stride, w [K, D] rows contiguous.
template <int B>
AVX2_FMA void AccumulateRows(const float* __restrict x, int64_t x_stride,
                             const float* __restrict w, int64_t d_size,
                             int64_t begin, int64_t end,
                             float* __restrict acc) {
  for (int64_t k = begin; k < end; ++k) {
    const float* row = w + k * d_size;
    for (int b = 0; b < B; ++b) {
      const float xb = x[b * x_stride + k];
      float* a = acc + b * d_size;
      for (int64_t j = 0; j < d_size; ++j) a[j] += xb * row[j];
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
// into one contiguous part per thread; the caller runs the first part.
class RowPool {
 public:
  static RowPool& Get() {
    static RowPool* pool = new RowPool();  // never destroyed: helpers detach
    return *pool;
  }

  void SetThreads(int n) { threads_.store(std::max(1, n)); }

  using Job = std::function<void(int64_t part, int64_t begin, int64_t end)>;

  // The number of parts Run splits n items of `grain` into.
  int64_t Parts(int64_t n, int64_t grain) const {
    return std::clamp<int64_t>(n / std::max<int64_t>(1, grain), 1,
                               threads_.load());
  }

  // fn(part, begin, end) for each of Parts(n, grain) contiguous parts of
  // [0, n); returns when all are done.
  void Run(int64_t n, int64_t grain, const Job& fn) {
    const int64_t parts = Parts(n, grain);
    if (parts == 1) {
      fn(0, 0, n);
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
    pending_.store(parts - 1);
    generation_.fetch_add(1);
    lock.unlock();
    wake_.notify_all();
    fn(0, 0, n / parts);
    // The helpers' parts take about as long as ours: spin a little first.
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
      const int64_t part = static_cast<int64_t>(id) + 1;
      if (part >= parts_) continue;
      const auto* job = job_;
      const int64_t begin = n_ * part / parts_, end = n_ * (part + 1) / parts_;
      lock.unlock();
      (*job)(part, begin, end);
      if (pending_.fetch_sub(1) == 1) {
        lock.lock();  // the caller checks pending_ under the lock
        done_.notify_one();
      }
    }
  }

  static constexpr int kSpins = 2000;  // about 0.1 ms of pause instructions

  std::atomic<int> threads_;
  std::mutex run_mu_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> helpers_;
  const Job* job_ = nullptr;
  int64_t n_ = 0, parts_ = 0;
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
  const RowsFn rows_fn = kRows[g - 1];
  RowPool::Get().Run(h, Grain(n * d), [&](int64_t, int64_t begin, int64_t end) {
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
  RowPool::Get().Run(h, Grain(n * d), [&](int64_t, int64_t begin, int64_t end) {
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
  RowPool::Get().Run(n_size, grain, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t start = begin; start < end; start += block) {
      const int64_t stop = std::min(end, start + block);
      for (int64_t first = 0; first < rows; first += kPassRows) {
        const int64_t count = std::min(kPassRows, rows - first);
        kRows[count - 1](wp, xp + first * k_size, yp + first * n_size, k_size,
                         n_size, start, stop);
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
