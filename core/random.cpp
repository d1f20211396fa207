#include "core/random.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace studio {

at::Generator make_cpu_generator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

at::Tensor seeded_randn(at::IntArrayRef shape, at::Generator& gen,
                        const at::TensorOptions& options) {
  at::Tensor t = at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat).device(at::kCPU));
  const auto dev = options.has_device() ? options.device() : at::Device(at::kCPU);
  const auto dt = options.has_dtype() ? options.dtype().toScalarType() : at::kFloat;
  return t.to(dev, dt);
}

at::Tensor seeded_randn(at::IntArrayRef shape, uint64_t seed, const at::TensorOptions& options) {
  at::Generator gen = make_cpu_generator(seed);
  return seeded_randn(shape, gen, options);
}

}  // namespace studio
