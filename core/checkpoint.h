// Checkpoint folders as people have them on disk: diffusers pipelines and components,
// transformers model folders (single or sharded safetensors), Point-E model folders, bare
// .safetensors files. Recognises the layout, resolves weight files (fp16 variants, shard indexes)
// and exposes every tensor by its checkpoint name. Torch-free except for StateDict::tensor.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint_layout.h"
#include "core/safetensors.h"

namespace studio {

// All tensors of one model across one or more safetensors files (shards), by name.
class StateDict {
 public:
  StateDict() = default;
  // Opens and validates every file; duplicate names across shards are an error.
  static StateDict open(const std::vector<std::filesystem::path>& files);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  const std::filesystem::path& file_of(const std::string& name) const;
  // Zero-copy CPU view (read-only); WeightsError if the name is absent.
  at::Tensor tensor(const std::string& name) const;
  std::size_t size() const { return index_.size(); }
  uint64_t parameter_count() const;  // total elements
  uint64_t byte_count() const;
  std::map<std::string, uint64_t> dtype_counts() const;  // dtype name -> tensor count
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<std::size_t, const TensorInfo*>> index_;
};

// Bytes loading `weights` into a module built from its config materialises: floating tensors as
// float32 (modules are built in float32 and moved to their device and dtype afterwards), others as
// stored, plus the largest tensor once more when any is converted (the copy made while loading).
// The file mappings themselves are not counted (page cache, reclaimable).
uint64_t materialised_bytes(const StateDict& weights);

// StateDict::open for a loader about to build a module and copy these weights into it: refuses
// (WeightsError naming `origin`, the checkpoint folder) when materialised_bytes would take more
// than STUDIO_LIMIT_CHECKPOINT_MEMORY_PERCENT of the available memory (core/limits.h). Loaders
// call it before building the module, so nothing is allocated for a checkpoint that cannot fit.
StateDict open_weights_for_loading(const std::vector<std::filesystem::path>& files,
                                   const std::string& origin);

}  // namespace studio
