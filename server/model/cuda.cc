#include "server/model/cuda.h"

#include "absl/strings/str_cat.h"

#ifdef COLDCOMPRESS_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace coldcompress {

#ifdef COLDCOMPRESS_CUDA
namespace {

class CudaGraphRecorder : public SegmentRecorder {
 public:
  explicit CudaGraphRecorder(at::Device device) : device_(device) {}

  void Record(const std::vector<std::function<void()>>& segments) override {
    const c10::cuda::CUDAGuard device_guard(device_);
    // Capture needs a stream other than the default one; the caller's
    // earlier work (the buffers' contents) is finished first.
    c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
    const c10::cuda::CUDAStream side =
        c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index());
    const c10::cuda::CUDAStreamGuard stream_guard(side);
    // One eager run: cuBLAS handles and workspaces are made outside capture.
    for (const std::function<void()>& segment : segments) segment();
    side.synchronize();
    for (const std::function<void()>& segment : segments) {
      auto graph = std::make_unique<at::cuda::CUDAGraph>();
      if (graphs_.empty()) {
        graph->capture_begin();
      } else {
        graph->capture_begin(graphs_.front()->pool());
      }
      segment();
      graph->capture_end();
      graphs_.push_back(std::move(graph));
    }
  }

  void Replay(size_t i) override {
    const c10::cuda::CUDAGuard device_guard(device_);
    graphs_.at(i)->replay();
  }

 private:
  at::Device device_;
  std::vector<std::unique_ptr<at::cuda::CUDAGraph>> graphs_;
};

}  // namespace

bool CudaGraphsBuilt() { return true; }

absl::StatusOr<std::unique_ptr<SegmentRecorder>> MakeCudaGraphRecorder(
    at::Device device) {
  if (!device.is_cuda()) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA graphs need a CUDA device, not ", device.str()));
  }
  return std::make_unique<CudaGraphRecorder>(device);
}

absl::StatusOr<DeviceMemory> CudaAllocatorMemory(at::Device device) {
  if (!device.is_cuda()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "CUDA allocator figures need a CUDA device, not ", device.str()));
  }
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(
      device.has_index() ? device.index() : c10::cuda::current_device());
  // Index 0 of a stat array: every pool together (StatType::AGGREGATE).
  DeviceMemory memory;
  memory.allocated = stats.allocated_bytes[0].current;
  memory.peak_allocated = stats.allocated_bytes[0].peak;
  memory.reserved = stats.reserved_bytes[0].current;
  return memory;
}

#else

bool CudaGraphsBuilt() { return false; }

absl::StatusOr<std::unique_ptr<SegmentRecorder>> MakeCudaGraphRecorder(
    at::Device device) {
  return absl::FailedPreconditionError(absl::StrCat(
      "CUDA graphs on ", device.str(),
      ": this build's LibTorch has no CUDA, so it has no CUDA graphs"));
}

absl::StatusOr<DeviceMemory> CudaAllocatorMemory(at::Device device) {
  return absl::FailedPreconditionError(
      absl::StrCat("CUDA allocator figures on ", device.str(),
                   ": this build's LibTorch has no CUDA"));
}

#endif

}  // namespace coldcompress
