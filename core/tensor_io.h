// at::Tensor views of safetensors data (zero-copy where alignment allows) and NumPy .npy files
// (read/write, for fixtures, debugging dumps and tests).
#pragma once

#include <ATen/Tensor.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace studio {

at::ScalarType to_scalar_type(DType d);
DType from_scalar_type(at::ScalarType t);  // throws UsageError for types safetensors lacks

// A CPU tensor aliasing the mapped bytes (read-only: copy before writing to it). The mapping stays
// alive as long as the tensor does. Falls back to a copy when the bytes are not aligned for dtype.
at::Tensor tensor_view(const SafetensorsFile& file, const TensorInfo& info);

// Writes named tensors (moved to CPU, made contiguous) as a safetensors file, atomically.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// NumPy format 1.0/2.0/3.0, little-endian, C order; f4 f8 f2 i8 i4 i2 i1 u1 b1.
at::Tensor load_npy(const std::filesystem::path& path);
void save_npy(const std::filesystem::path& path, const at::Tensor& tensor);

}  // namespace studio
