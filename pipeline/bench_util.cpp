#include "pipeline/bench_util.h"

#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <iostream>

// The CUDA caching allocator's peak statistics: only with a CUDA libtorch (c10_cuda linked, see
// pipeline/CMakeLists.txt) whose headers find the CUDA runtime's; elsewhere the peak is unknown.
#if defined(STUDIO_HAVE_CUDA_ALLOCATOR_STATS) && defined(__has_include)
#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define STUDIO_CUDA_MEMORY_STATS 1
#endif
#endif

namespace studio {

void bench_sync(const c10::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// The allocator answers only once CUDA is initialised ("Invalid device argument ... did you call
// init?" before), which a first allocation on the device does; a failing query is reported as
// unknown rather than ending the benchmark.
double peak_gpu_mib(const c10::Device& d, const char* who) {
#ifdef STUDIO_CUDA_MEMORY_STATS
  if (d.is_cuda()) {
    try {
      at::empty({1}, at::TensorOptions().device(d));
      const auto stats =
          c10::cuda::CUDACachingAllocator::getDeviceStats(d.has_index() ? d.index() : 0);
      return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);  // AGGREGATE
    } catch (const c10::Error& e) {
      std::cerr << who << ": no CUDA memory statistics: " << e.what_without_backtrace() << "\n";
    }
  }
#else
  (void)d;
  (void)who;
#endif
  return -1;
}

void reset_peak_gpu(const c10::Device& d) {
#ifdef STUDIO_CUDA_MEMORY_STATS
  if (d.is_cuda()) {
    try {
      at::empty({1}, at::TensorOptions().device(d));
      c10::cuda::CUDACachingAllocator::resetPeakStats(d.has_index() ? d.index() : 0);
    } catch (const c10::Error&) {
      // peak_gpu_mib reports it
    }
  }
#else
  (void)d;
#endif
}

}  // namespace studio
