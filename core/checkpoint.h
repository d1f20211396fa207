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

#include "core/safetensors.h"

namespace studio {

enum class CheckpointKind {
  DiffusersPipeline,   // model_index.json + component folders
  DiffusersComponent,  // config.json with diffusers' _class_name (+ weights), or a scheduler/
  TransformersModel,   // config.json with "architectures"/"model_type" (+ weights)
  PointEModel,         // config.json with Point-E's "model_config"
  Tokenizer,           // vocab.json+merges.txt or tokenizer.json
  SafetensorsFile,     // a bare .safetensors file
  Collection,          // a folder whose sub-folders are checkpoints
};
const char* checkpoint_kind_name(CheckpointKind k);

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

// Resolves the weight files of a model folder. Order of preference: a shard index
// (`<stem>.safetensors.index[.variant].json`), then `<stem>[.variant].safetensors` for the stems
// model / diffusion_pytorch_model. Pickle files (.bin/.ckpt/.pt) are refused with a hint to convert.
// Returns an empty list when the folder holds no weights at all (e.g. scheduler/).
std::vector<std::filesystem::path> find_weight_files(const std::filesystem::path& dir,
                                                     const std::string& variant = "");

struct ComponentInfo {
  std::string name;        // "unet", "text_encoder", ... (the folder name)
  std::string library;     // "diffusers", "transformers", "point_e", ...
  std::string class_name;  // "UNet2DConditionModel", "CLIPTextModel", "LLaDAModelLM", ...
  CheckpointKind kind = CheckpointKind::DiffusersComponent;
  std::filesystem::path dir;
  nlohmann::json config;  // config.json / scheduler_config.json / tokenizer_config.json
  std::vector<std::filesystem::path> weight_files;
};

struct CheckpointInfo {
  CheckpointKind kind = CheckpointKind::DiffusersComponent;
  std::filesystem::path path;
  std::string class_name;
  nlohmann::json index;  // model_index.json for pipelines
  std::vector<ComponentInfo> components;  // one for a single model; several for a pipeline
  std::vector<CheckpointInfo> children;   // for a Collection
};

// Recognises what `path` is; IoError/FormatError/ConfigError with a hint when it is none of the
// known layouts or a declared component is missing.
CheckpointInfo inspect_checkpoint(const std::filesystem::path& path, const std::string& variant = "");

// The component of a pipeline by name; ConfigError naming the pipeline when absent.
const ComponentInfo& find_component(const CheckpointInfo& info, const std::string& name);

}  // namespace studio
