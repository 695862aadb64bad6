#include "policies/cpu_kernels.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define COLDCOMPRESS_CPU_KERNELS_AVX2 1
#endif

namespace coldcompress {
namespace {

#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2

using RowsFn = void (*)(const float*, const float*, float*, int64_t, int64_t,
                        int64_t, int64_t);
using AccumulateFn = void (*)(const float*, int64_t, const float*, int64_t,
                              int64_t, int64_t, float*);

namespace avx2 {
#define KERNEL_TARGET __attribute__((target("avx2,fma")))
constexpr int kVectorRegisters = 16;
#include "policies/cpu_kernels_isa.inc"
#undef KERNEL_TARGET
}  // namespace avx2

namespace avx512 {
#define KERNEL_TARGET __attribute__((target("avx2,fma,avx512f,avx512vl")))
constexpr int kVectorRegisters = 32;
#include "policies/cpu_kernels_isa.inc"
#undef KERNEL_TARGET
}  // namespace avx512

// One instruction set's kernels.
struct KernelSet {
  const RowsFn* rows;              // by inputs, 1-8
  const RowsFn* wide_rows;         // 5-8 inputs larger than the L1 cache
  const AccumulateFn* accumulate;  // by inputs, 1-8
};
constexpr KernelSet kAvx2Kernels{avx2::kRows, avx2::kWideRows,
                                 avx2::kAccumulate};
constexpr KernelSet kAvx512Kernels{avx512::kRows, avx512::kWideRows,
                                   avx512::kAccumulate};

bool CpuHasAvx2Fma() {
  static const bool yes =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

bool CpuHasAvx512Vl() {
  static const bool yes = CpuHasAvx2Fma() &&
                          __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512vl");
  return yes;
}

// The set the kernels use: the widest the CPU has, unless SetCpuKernelIsa
// chose another.
std::atomic<const KernelSet*>& ChosenKernels() {
  static std::atomic<const KernelSet*> chosen{CpuHasAvx512Vl() ? &kAvx512Kernels
                                                               : &kAvx2Kernels};
  return chosen;
}

const KernelSet& Kernels() { return *ChosenKernels().load(); }

// The kernel for b inputs of k_size floats.
RowsFn RowsFor(const KernelSet& set, int64_t b, int64_t k_size) {
  constexpr int64_t kL1Floats = 32 * 1024 / sizeof(float);
  return b >= 5 && b * k_size > kL1Floats ? set.wide_rows[b - 5]
                                          : set.rows[b - 1];
}

constexpr int64_t kPassRows = 8;  // input rows per pass over the weights

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
  // Called from inside a job (fn's own kernels, while the threads are
  // busy with fn), runs fn(0, n) on the calling thread. The first exception
  // fn throws ends the job (no new chunk starts) and is rethrown here.
  void Run(int64_t n, int64_t grain, const Job& fn) {
    const int64_t parts = std::clamp<int64_t>(n / std::max<int64_t>(1, grain),
                                              1, threads_.load());
    if (parts == 1 || in_job_) {
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
    if (error_ != nullptr) std::rethrow_exception(std::exchange(error_, {}));
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
    in_job_ = true;
    try {
      for (int64_t begin = next_.fetch_add(chunk); begin < n;
           begin = next_.fetch_add(chunk)) {
        fn(begin, std::min(n, begin + chunk));
      }
    } catch (...) {
      next_.store(n);  // no new chunks
      std::lock_guard<std::mutex> lock(error_mu_);
      if (error_ == nullptr) error_ = std::current_exception();
    }
    in_job_ = false;
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
  std::mutex error_mu_;
  std::exception_ptr error_;         // the job's first, under error_mu_
  static thread_local bool in_job_;  // running a job's chunks
};

thread_local bool RowPool::in_job_ = false;

}  // namespace

void SetFewRowsThreads(int threads) { RowPool::Get().SetThreads(threads); }

void ForEachOnKernelThreads(int64_t n, const std::function<void(int64_t)>& fn) {
  const at::ThreadLocalState state;  // grad and inference mode, for helpers
  const int aten_threads = at::get_num_threads();
  RowPool::Get().Run(n, 1, [&](int64_t begin, int64_t end) {
    const at::ThreadLocalStateGuard guard(state);
    // With OpenMP, a helper's ATen operations would otherwise spread over
    // every core (OpenMP's setting is per thread).
    if (at::get_num_threads() != aten_threads)
      at::set_num_threads(aten_threads);
    for (int64_t i = begin; i < end; ++i) fn(i);
  });
}

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

bool CpuKernelIsaSupported(CpuKernelIsa isa) {
#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2
  switch (isa) {
    case CpuKernelIsa::kAvx2:
      return CpuHasAvx2Fma();
    case CpuKernelIsa::kAvx512:
      return CpuHasAvx512Vl();
  }
#endif
  (void)isa;
  return false;
}

bool SetCpuKernelIsa(CpuKernelIsa isa) {
  if (!CpuKernelIsaSupported(isa)) return false;
#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2
  ChosenKernels().store(isa == CpuKernelIsa::kAvx512 ? &kAvx512Kernels
                                                     : &kAvx2Kernels);
#endif
  return true;
}

std::optional<CpuKernelIsa> GetCpuKernelIsa() {
#ifdef COLDCOMPRESS_CPU_KERNELS_AVX2
  if (CpuHasAvx2Fma()) {
    return &Kernels() == &kAvx512Kernels ? CpuKernelIsa::kAvx512
                                         : CpuKernelIsa::kAvx2;
  }
#endif
  return std::nullopt;
}

const char* CpuKernelIsaName(CpuKernelIsa isa) {
  return isa == CpuKernelIsa::kAvx512 ? "avx512" : "avx2";
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
  const RowsFn rows_fn = RowsFor(Kernels(), g, d);
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
  const AccumulateFn accumulate = Kernels().accumulate[g - 1];
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
  const KernelSet& set = Kernels();
  RowPool::Get().Run(n_size, grain, [&](int64_t begin, int64_t end) {
    for (int64_t start = begin; start < end; start += block) {
      const int64_t stop = std::min(end, start + block);
      for (int64_t first = 0; first < rows; first += kPassRows) {
        const int64_t count = std::min(kPassRows, rows - first);
        RowsFor(set, count, k_size)(wp, xp + first * k_size,
                                    yp + first * n_size, k_size, n_size, start,
                                    stop);
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
