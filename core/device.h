// Device and dtype policy, chosen at run time: "auto" is CUDA when available, else CPU; fp32 on
// CPU, fp16 (or bf16 on request) on CUDA.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace studio {

// "auto", "cpu", "cuda", "cuda:N"; UsageError if CUDA is asked for and absent.
c10::Device select_device(const std::string& spec = "auto");
// "auto" (fp32 on CPU, fp16 on CUDA), "fp32", "fp16", "bf16".
c10::ScalarType select_dtype(const std::string& spec, const c10::Device& device);
// One line: torch version, CUDA availability and device count, CPU threads.
std::string runtime_summary();

}  // namespace studio
