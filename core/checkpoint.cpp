#include "core/checkpoint.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/json_file.h"
#include "core/limits.h"
#include "core/tensor_io.h"

namespace fs = std::filesystem;

namespace studio {

// ---------------------------------------------------------------------------------------------
// StateDict

StateDict StateDict::open(const std::vector<fs::path>& files) {
  StateDict sd;
  for (const auto& f : files) {
    sd.files_.push_back(std::make_shared<SafetensorsFile>(f));
    const std::size_t fi = sd.files_.size() - 1;
    for (const auto& t : sd.files_.back()->tensors()) {
      auto [it, inserted] = sd.index_.emplace(t.name, std::make_pair(fi, &t));
      if (!inserted)
        throw WeightsError("tensor '" + t.name + "' appears in two shards: " +
                               sd.files_[it->second.first]->path().string() + " and " + f.string(),
                           f.string(), "the shards do not belong together; re-download them");
    }
  }
  return sd;
}

std::vector<std::string> StateDict::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, _] : index_) out.push_back(name);
  return out;
}

const TensorInfo& StateDict::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw WeightsError("no tensor named '" + name + "'");
  return *it->second.second;
}

const fs::path& StateDict::file_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw WeightsError("no tensor named '" + name + "'");
  return files_[it->second.first]->path();
}

at::Tensor StateDict::tensor(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw WeightsError("no tensor named '" + name + "'");
  return tensor_view(*files_[it->second.first], *it->second.second);
}

uint64_t StateDict::parameter_count() const {
  uint64_t n = 0;
  for (const auto& [_, e] : index_) n += e.second->numel();
  return n;
}

uint64_t StateDict::byte_count() const {
  uint64_t n = 0;
  for (const auto& [_, e] : index_) n += e.second->nbytes();
  return n;
}

std::map<std::string, uint64_t> StateDict::dtype_counts() const {
  std::map<std::string, uint64_t> out;
  for (const auto& [_, e] : index_) ++out[dtype_name(e.second->dtype)];
  return out;
}

uint64_t materialised_bytes(const StateDict& weights) {
  uint64_t total = 0, largest = 0;
  bool converted = false;
  for (const auto& name : weights.names()) {
    const TensorInfo& t = weights.info(name);
    const bool floating = t.dtype == DType::F64 || t.dtype == DType::F32 || t.dtype == DType::F16 ||
                          t.dtype == DType::BF16;
    const uint64_t bytes = floating ? t.numel() * 4 : t.nbytes();
    converted = converted || (floating && t.dtype != DType::F32);
    total += bytes;
    largest = std::max(largest, bytes);
  }
  return converted ? total + largest : total;
}

StateDict open_weights_for_loading(const std::vector<fs::path>& files, const std::string& origin) {
  StateDict weights = StateDict::open(files);  // maps the files; allocates no tensor
  check_checkpoint_memory(materialised_bytes(weights), origin);
  return weights;
}

}  // namespace studio
