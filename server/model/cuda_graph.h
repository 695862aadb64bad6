// CUDA graphs behind a header that needs no CUDA headers: the model's
// decode segments are recorded once and replayed (LlamaModel's
// UseDecodeGraphs). Built with CUDA graphs where LibTorch has CUDA
// (COLDCOMPRESS_CUDA_GRAPHS); elsewhere MakeCudaGraphRecorder fails. The
// build also compiles the CUDA side against Debian's ATen CUDA headers as a
// check (cc_cuda_compile_check), without linking it.
#ifndef COLDCOMPRESS_SERVER_MODEL_CUDA_GRAPH_H_
#define COLDCOMPRESS_SERVER_MODEL_CUDA_GRAPH_H_

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

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_MODEL_CUDA_GRAPH_H_
