#include "core/device.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "core/error.h"

namespace studio {

c10::Device select_device(const std::string& spec) {
  if (spec.empty() || spec == "auto")
    return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      throw UsageError("CUDA was requested but no CUDA device is available to this libtorch",
                       "--device " + spec, "use --device cpu, or build against a CUDA libtorch");
    int index = 0;
    if (spec.size() > 5) {
      try {
        index = std::stoi(spec.substr(5));
      } catch (const std::exception&) {
        throw UsageError("invalid device '" + spec + "'", "--device", "use cuda:N");
      }
    }
    if (index < 0 || static_cast<std::size_t>(index) >= torch::cuda::device_count())
      throw UsageError("CUDA device " + std::to_string(index) + " does not exist (" +
                           std::to_string(torch::cuda::device_count()) + " present)",
                       "--device " + spec);
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw UsageError("unknown device '" + spec + "'", "--device", "use auto, cpu, cuda or cuda:N");
}

c10::ScalarType select_dtype(const std::string& spec, const c10::Device& device) {
  if (spec.empty() || spec == "auto") return device.is_cuda() ? c10::kHalf : c10::kFloat;
  if (spec == "fp32" || spec == "float32") return c10::kFloat;
  if (spec == "fp16" || spec == "float16") return c10::kHalf;
  if (spec == "bf16" || spec == "bfloat16") return c10::kBFloat16;
  throw UsageError("unknown dtype '" + spec + "'", "--dtype", "use auto, fp32, fp16 or bf16");
}

std::string runtime_summary() {
  std::string s = "libtorch " TORCH_VERSION;
  s += torch::cuda::is_available()
           ? ", CUDA devices: " + std::to_string(torch::cuda::device_count())
           : ", no CUDA";
  s += ", CPU threads: " + std::to_string(at::get_num_threads());
  return s;
}

}  // namespace studio
