// Checkpoint folder layouts, torch-free: recognises what a path is (diffusers pipeline or
// component, transformers or Point-E model folder, tokenizer, bare .safetensors, a folder of
// them) from its config.json / model_index.json / shard index, and resolves its weight files.
// Split from core/checkpoint.h (which includes this) so the parsing can be fuzzed without libtorch.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

// Resolves the weight files of a model folder. Order of preference: a shard index
// (`<stem>.safetensors.index[.variant].json`), then `<stem>[.variant].safetensors` for the stems
// model / diffusion_pytorch_model. Pickle files (.bin/.ckpt/.pt) are refused with a hint to
// convert. Returns an empty list when the folder holds no weights at all (e.g. scheduler/).
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
  nlohmann::json index;                   // model_index.json for pipelines
  std::vector<ComponentInfo> components;  // one for a single model; several for a pipeline
  std::vector<CheckpointInfo> children;   // for a Collection
};

// Recognises what `path` is; IoError/FormatError/ConfigError with a hint when it is none of the
// known layouts or a declared component is missing.
CheckpointInfo inspect_checkpoint(const std::filesystem::path& path,
                                  const std::string& variant = "");

// The component of a pipeline by name; ConfigError naming the pipeline when absent.
const ComponentInfo& find_component(const CheckpointInfo& info, const std::string& name);

}  // namespace studio
