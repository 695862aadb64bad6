// A prompt's causal attention on the CPU a tile at a time (flash attention's
// online softmax), so that no more than one tile of scores per thread exists
// at once, and the masked half of the prompt's S x S is never computed.
//
// The work is split into tasks over the kernel threads
// (ForEachOnKernelThreads), each task's small matrix products on the BLAS
// in the task's thread:
// - the output: one task per KV head and block of query rows (all the
//   head's query heads together, so each key tile serves G heads), the
//   running row maximum and sum rescaling the accumulated output as each
//   key tile arrives;
// - with probabilities wanted (a policy reads the prompt's attention), one
//   task per KV head and block of keys: each tile's probabilities recomputed
//   from the rows' final maximum and sum, summed into the keys' received
//   attention, the last rows kept (PromptAttentionBuilder). Each key's sum
//   is made by one task, in row order, whatever the number of threads.
#ifndef COLDCOMPRESS_POLICIES_FLASH_ATTENTION_H_
#define COLDCOMPRESS_POLICIES_FLASH_ATTENTION_H_

#include <ATen/ATen.h>

#include "policies/prompt_attention.h"

namespace coldcompress {

// True when FlashPromptAttention takes q: float32 on the CPU, no autograd,
// in a build and on a CPU with the decode kernels' threads, and the tiles
// not turned off.
bool FlashPromptApplies(const at::Tensor& q);

// For benchmarks: false sends every prompt to AttendPrompt's block path
// (the tiles' predecessor), true (the default) back to the tiles.
void SetFlashPromptAttention(bool on);

// As AttendPrompt: query rows first..first + n - 1 (q [Hq, n, d]) over keys
// and values 0..first + n - 1 (k, v [H, first + n, d]); returns [Hq, n, d].
// With `stats`, the rows' GQA-averaged probabilities are reduced into it.
// REQUIRES: FlashPromptApplies(q), k and v float32 on the CPU.
at::Tensor FlashPromptAttention(const at::Tensor& q, const at::Tensor& k,
                                const at::Tensor& v, int64_t first,
                                PromptAttentionBuilder* stats);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_POLICIES_FLASH_ATTENTION_H_
