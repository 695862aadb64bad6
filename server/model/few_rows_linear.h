// y = x w^T for a few rows of x (a decode step of one or a few sequences) on
// the CPU in float32, reading the weights once for every row.
//
// BLAS GEMM packs the weights into buffers before multiplying, which for a
// few rows doubles the memory traffic: OpenBLAS multiplies 8 rows by a 100M
// parameter model at 10 GB/s of weights, a third of its GEMV speed. Here each
// weight row is streamed once and multiplied with every input row, the work
// split by output rows over the intra-op threads.
//
// Each output element is summed in the same order whatever the number of
// rows or threads, so a sequence decoded in a batch gets exactly the logits
// it gets alone.
#ifndef COLDCOMPRESS_SERVER_MODEL_FEW_ROWS_LINEAR_H_
#define COLDCOMPRESS_SERVER_MODEL_FEW_ROWS_LINEAR_H_

#include <ATen/ATen.h>

namespace coldcompress {

// Inputs with at most this many rows go to FewRowsLinear.
inline constexpr int64_t kFewRowsMax = 32;

// True when FewRowsLinear takes x [.., K] and w [N, K]: float32 on the CPU,
// w contiguous, at most kFewRowsMax rows in x, no autograd.
bool FewRowsLinearApplies(const at::Tensor& x, const at::Tensor& w);

// What the CPU's threads do next. kDecode: decode steps, whose matrix
// products run here on this kernel's threads while the BLAS (attention's
// small products) runs on one thread, as OpenBLAS's idle helpers spin and
// would take the cores from this kernel. kPrompt: prompts, whose products go
// to the BLAS on all its threads. Switches only on a change; a no-op without
// OpenBLAS.
enum class CpuPhase { kPrompt, kDecode };
void EnterCpuPhase(CpuPhase phase);

// Threads the kernel splits its work over (default: every core); its own
// helpers, not ATen's intra-op pool.
void SetFewRowsThreads(int threads);

// x [.., K], w [N, K], b [N] or undefined -> [.., N].
// REQUIRES: FewRowsLinearApplies(x, w).
at::Tensor FewRowsLinear(const at::Tensor& x, const at::Tensor& w,
                         const at::Tensor& b);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_MODEL_FEW_ROWS_LINEAR_H_
