// What the server takes from LibTorch's CUDA side, behind a header that
// needs no CUDA headers: CUDA graphs of the model's decode segments
// (LlamaModel::UseDecodeGraphs) and the caching allocator's figures (the
// device memory metrics). Built with them where LibTorch has CUDA
// (COLDCOMPRESS_CUDA); elsewhere these calls fail. Without a CUDA LibTorch,
// the build still compiles the CUDA side against Debian's ATen CUDA headers
// as a check (cc_cuda_compile_check), without linking it.
#ifndef COLDCOMPRESS_SERVER_MODEL_CUDA_H_
#define COLDCOMPRESS_SERVER_MODEL_CUDA_H_

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace coldcompress {

// Segments of device work, recorded once in order and replayed one by one.
class SegmentRecorder {
 public:
  virtual ~SegmentRecorder() = default;
  // Runs the segments once as they are (lazy initialisations happen
  // there), then records each as a graph; the graphs share one memory
  // pool, so a segment's outputs must stay referenced until the next
  // segment is recorded (tensors freed in between are reused).
  virtual void Record(const std::vector<std::function<void()>>& segments) = 0;
  // Replays segment i on the caller's current stream.
  virtual void Replay(size_t i) = 0;
};

// True when this build has CUDA graphs.
bool CudaGraphsBuilt();

// A recorder of CUDA graphs on `device`. Errors: FailedPrecondition when the
// build has no CUDA graphs or `device` is not a CUDA device.
absl::StatusOr<std::unique_ptr<SegmentRecorder>> MakeCudaGraphRecorder(
    at::Device device);

// Bytes LibTorch's CUDA caching allocator has handed out (allocated, and
// at most at once since the process started: peak_allocated) and holds
// from the driver (reserved) on one device.
struct DeviceMemory {
  int64_t allocated = 0;
  int64_t peak_allocated = 0;
  int64_t reserved = 0;
};
// Errors: FailedPrecondition when the build has no CUDA or `device` is not
// a CUDA device.
absl::StatusOr<DeviceMemory> CudaAllocatorMemory(at::Device device);

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_MODEL_CUDA_H_
