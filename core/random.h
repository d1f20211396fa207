// Seeded noise drawn exactly as diffusers/transformers draw it on CPU: a CPU torch generator seeded
// N, randn of the full target shape, fp32, then moved to the device. A seed therefore reproduces
// the reference picture on any device.
#pragma once

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>

#include <cstdint>
#include <vector>

namespace studio {

// A fresh CPU generator seeded like torch.Generator("cpu").manual_seed(seed).
at::Generator make_cpu_generator(uint64_t seed);

// randn(shape) from `gen` on CPU in fp32, then cast/moved to `options` (device, dtype).
at::Tensor seeded_randn(at::IntArrayRef shape, at::Generator& gen,
                        const at::TensorOptions& options = {});
at::Tensor seeded_randn(at::IntArrayRef shape, uint64_t seed, const at::TensorOptions& options = {});

}  // namespace studio
