// The matrix products of decode steps on the CPU in float32, for a few rows
// of input (one or a few sequences, or the query heads of a KV head):
// y = x w^T over the weights (FewRowsLinear) or each head's keys
// (FewRowsHeadScores), and y = x w over each head's values
// (FewRowsHeadValues). Each reads its matrix once for all the rows, split
// over this file's own threads.
//
// BLAS GEMM packs its operand into buffers before multiplying, which for a
// few rows doubles the memory traffic: OpenBLAS multiplies 8 rows by a 100M
// parameter model at 10 GB/s of weights, a third of its GEMV speed.
//
// FewRowsLinear sums each output element in the same order whatever the
// number of rows or threads, so a sequence decoded in a batch gets exactly
// the logits it gets alone (attention is per sequence either way).
#ifndef COLDCOMPRESS_POLICIES_CPU_KERNELS_H_
#define COLDCOMPRESS_POLICIES_CPU_KERNELS_H_

#include <ATen/ATen.h>

#include <functional>
#include <optional>

namespace coldcompress {

// True when `t` can go to the kernels below: float32 on the CPU, no
// autograd, and a build and CPU that have them (x86-64 with AVX2 and FMA).
bool CpuKernelOperand(const at::Tensor& t);

// Inputs with at most this many rows go to FewRowsLinear.
inline constexpr int64_t kFewRowsMax = 32;

// True when FewRowsLinear takes x [.., K] and w [N, K]: float32 on the CPU,
// w contiguous, at most kFewRowsMax rows in x, no autograd.
bool FewRowsLinearApplies(const at::Tensor& x, const at::Tensor& w);

// What the CPU's threads do next. kDecode: decode steps, whose matrix
// products run here on these kernels' threads while the BLAS (what little
// of a step still goes to it) runs on one thread, as OpenBLAS's idle helpers
// spin and would take the cores from the kernels. kPrompt: prompts, whose
// products go to the BLAS on all its threads. Switches only on a change; a
// no-op without OpenBLAS.
enum class CpuPhase { kPrompt, kDecode };
void EnterCpuPhase(CpuPhase phase);

// The instruction sets the kernels are built for on x86-64. kAvx512 does
// AVX2's 8-lane operations with AVX-512VL's 32 vector registers, which hold
// the accumulators of more weight rows for 5-8 inputs; both give the same
// bits.
enum class CpuKernelIsa { kAvx2, kAvx512 };

// Whether this build and CPU can run `isa`'s kernels.
bool CpuKernelIsaSupported(CpuKernelIsa isa);
// Makes the kernels use `isa` from now on (default: the widest the CPU
// has); false, changing nothing, when it is not supported. For benchmarks
// and tests: the sets give the same results.
bool SetCpuKernelIsa(CpuKernelIsa isa);
// The set in use; nullopt where the kernels do not run (CpuKernelOperand
// is false for every tensor).
std::optional<CpuKernelIsa> GetCpuKernelIsa();
// "avx2" or "avx512".
const char* CpuKernelIsaName(CpuKernelIsa isa);

// Threads the kernel splits its work over (default: every core); its own
// helpers, not ATen's intra-op pool.
void SetFewRowsThreads(int threads);

// fn(i) for every i in [0, n), spread over the threads above (each i runs
// on one thread; the kernels fn calls then run on that thread alone), with
// the caller's LibTorch thread-local state (grad and inference mode) and
// intra-op thread count; returns when all are done, rethrowing the first
// exception fn threw (the i not yet started then do not run). For a decode
// step's per-sequence work, whose sequences share nothing.
void ForEachOnKernelThreads(int64_t n, const std::function<void(int64_t)>& fn);

// A decode step's attention for one sequence, each KV head's keys or values
// read once for its G query heads, the heads split over the threads (one
// call for every head: a step of a batch makes one per sequence and layer).
// q [H, G, d] contiguous, k [H, n, d] with contiguous rows -> the scores
// q k^T [H, G, n], each summed as FewRowsLinear sums. REQUIRES:
// CpuKernelOperand of both, 1 <= G <= 8.
at::Tensor FewRowsHeadScores(const at::Tensor& q, const at::Tensor& k);
// p [H, G, n] contiguous, v [H, n, d] with contiguous rows -> p v [H, G, d],
// each head's sum over n in order. REQUIRES: CpuKernelOperand of both,
// 1 <= G <= 8.
at::Tensor FewRowsHeadValues(const at::Tensor& p, const at::Tensor& v);

// x [.., K], w [N, K], b [N] or undefined -> [.., N].
// REQUIRES: FewRowsLinearApplies(x, w).
at::Tensor FewRowsLinear(const at::Tensor& x, const at::Tensor& w,
                         const at::Tensor& b);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_CPU_KERNELS_H_
