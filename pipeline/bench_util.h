// Measurement helpers shared by the `studio bench` commands: device sync before reading a clock,
// peak RSS, and the CUDA caching allocator's peak (unknown, < 0, without a CUDA libtorch).
#pragma once

#include <c10/core/Device.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace studio {

// Waits for the device's queued work (a no-op on the CPU), so a timer read after it is honest.
void bench_sync(const c10::Device& d);
// This process's peak resident set size in MiB (getrusage ru_maxrss).
double peak_rss_mib();
// Peak bytes the CUDA caching allocator handed out since the last reset, in MiB; < 0 when
// unknown (CPU device, a CPU libtorch, or a failing query, which is reported on stderr as `who`).
double peak_gpu_mib(const c10::Device& d, const char* who);
// Starts a new peak for peak_gpu_mib (a no-op where it is unknown).
void reset_peak_gpu(const c10::Device& d);

// Median wall time of `repeat` runs of `f` in ms, after one untimed warm-up run, each run
// followed by bench_sync.
template <typename F>
double bench_median_ms(const c10::Device& d, int repeat, F&& f) {
  f();
  bench_sync(d);
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    bench_sync(d);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace studio
