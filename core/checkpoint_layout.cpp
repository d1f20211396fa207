#include "core/checkpoint_layout.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/json_file.h"

namespace fs = std::filesystem;

namespace studio {

const char* checkpoint_kind_name(CheckpointKind k) {
  switch (k) {
    case CheckpointKind::DiffusersPipeline:
      return "diffusers pipeline";
    case CheckpointKind::DiffusersComponent:
      return "diffusers component";
    case CheckpointKind::TransformersModel:
      return "transformers model";
    case CheckpointKind::PointEModel:
      return "Point-E model";
    case CheckpointKind::Tokenizer:
      return "tokenizer";
    case CheckpointKind::SafetensorsFile:
      return "safetensors file";
    case CheckpointKind::Collection:
      return "folder of checkpoints";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Weight files

namespace {

const char* kStems[] = {"diffusion_pytorch_model", "model"};

std::string with_variant(const std::string& stem, const std::string& variant,
                         const std::string& ext) {
  return variant.empty() ? stem + ext : stem + "." + variant + ext;
}

std::vector<fs::path> files_with_extension(const fs::path& dir, const std::set<std::string>& exts) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && exts.count(e.path().extension().string())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string join_names(const std::vector<fs::path>& paths) {
  std::string s;
  for (const auto& p : paths) s += (s.empty() ? "" : ", ") + p.filename().string();
  return s;
}

std::vector<fs::path> shards_from_index(const fs::path& index_path) {
  const auto j = read_json_file(index_path);
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    throw ConfigError("shard index has no 'weight_map' object", index_path.string(),
                      "re-download the index file");
  std::set<std::string> names;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw ConfigError("weight_map entry '" + it.key() + "' is not a file name",
                        index_path.string());
    const std::string f = it.value().get<std::string>();
    if (f.find('/') != std::string::npos || f == ".." || f.empty())
      throw ConfigError("weight_map names a file outside the folder: '" + f + "'",
                        index_path.string(), "shards must sit beside the index");
    names.insert(f);
  }
  std::vector<fs::path> out;
  for (const auto& n : names) {
    const fs::path p = index_path.parent_path() / n;
    if (!fs::is_regular_file(p))
      throw IoError("shard '" + n + "' listed in the index is missing", index_path.string(),
                    "download every shard into the same folder");
    out.push_back(p);
  }
  return out;
}

}  // namespace

std::vector<fs::path> find_weight_files(const fs::path& dir, const std::string& variant) {
  for (const char* stem : kStems) {
    const fs::path index = dir / (std::string(stem) + ".safetensors.index" +
                                  (variant.empty() ? "" : "." + variant) + ".json");
    if (fs::is_regular_file(index)) return shards_from_index(index);
    const fs::path single = dir / with_variant(stem, variant, ".safetensors");
    if (fs::is_regular_file(single)) return {single};
  }
  const auto safetensors = files_with_extension(dir, {".safetensors"});
  if (!variant.empty()) {
    throw IoError("no '" + variant + "' variant of the weights here" +
                      (safetensors.empty() ? "" : " (found: " + join_names(safetensors) + ")"),
                  dir.string(), "drop the variant option or download that variant");
  }
  if (safetensors.size() == 1) return safetensors;
  if (safetensors.size() > 1)
    throw ConfigError("several weight files and no shard index: " + join_names(safetensors),
                      dir.string(), "keep one .safetensors file, or add the shard index json");
  const auto pickles = files_with_extension(dir, {".bin", ".ckpt", ".pt", ".pth"});
  if (!pickles.empty())
    throw FormatError("only pickle weights found (" + join_names(pickles) +
                          "); studio loads safetensors only, since pickle files can run code",
                      dir.string(),
                      "convert them once with the safetensors Python package "
                      "(safetensors.torch.save_file) or download the .safetensors version");
  return {};
}

// ---------------------------------------------------------------------------------------------
// Recognising layouts

namespace {

bool is_tokenizer_dir(const fs::path& dir) {
  return fs::is_regular_file(dir / "tokenizer.json") ||
         (fs::is_regular_file(dir / "vocab.json") && fs::is_regular_file(dir / "merges.txt"));
}

bool needs_weights(const ComponentInfo& c) {
  return c.kind != CheckpointKind::Tokenizer && c.class_name.find("Scheduler") == std::string::npos;
}

// One model folder (a pipeline component or a standalone model).
ComponentInfo inspect_model_dir(const fs::path& dir, const std::string& variant,
                                const std::string& declared_class = "") {
  ComponentInfo c;
  c.dir = dir;
  c.name = dir.filename().string();
  if (fs::is_regular_file(dir / "config.json")) {
    const std::string origin = (dir / "config.json").string();
    c.config = read_json_file(dir / "config.json");
    if (!c.config.is_object()) throw ConfigError("config.json is not a JSON object", origin);
    if (c.config.contains("_class_name")) {
      c.kind = CheckpointKind::DiffusersComponent;
      c.library = "diffusers";
      c.class_name = json_require<std::string>(c.config, "_class_name", origin);
    } else if (c.config.contains("model_config") && c.config["model_config"].is_object()) {
      c.kind = CheckpointKind::PointEModel;
      c.library = "point_e";
      c.class_name = json_get<std::string>(c.config["model_config"], "name", "point_e model",
                                           origin + ": model_config");
    } else if (c.config.contains("architectures") || c.config.contains("model_type")) {
      c.kind = CheckpointKind::TransformersModel;
      c.library = "transformers";
      if (c.config.contains("architectures") && c.config["architectures"].is_array() &&
          !c.config["architectures"].empty()) {
        if (!c.config["architectures"][0].is_string())
          throw ConfigError("'architectures' must list class names (strings), found " +
                                c.config["architectures"][0].dump(),
                            origin, "fix the value in the config file");
        c.class_name = c.config["architectures"][0].get<std::string>();
      } else {
        c.class_name = json_get<std::string>(c.config, "model_type", "", origin);
      }
    } else {
      throw ConfigError(
          "config.json has neither '_class_name' (diffusers), 'architectures'/'model_type' "
          "(transformers) nor 'model_config' (Point-E)",
          (dir / "config.json").string(), "is this the right folder?");
    }
    c.weight_files = find_weight_files(dir, variant);
  } else if (fs::is_regular_file(dir / "scheduler_config.json")) {
    c.kind = CheckpointKind::DiffusersComponent;
    c.library = "diffusers";
    const std::string origin = (dir / "scheduler_config.json").string();
    c.config = read_json_file(dir / "scheduler_config.json");
    if (!c.config.is_object()) throw ConfigError("not a JSON object", origin);
    c.class_name = json_get<std::string>(c.config, "_class_name", declared_class, origin);
  } else if (is_tokenizer_dir(dir)) {
    c.kind = CheckpointKind::Tokenizer;
    c.library = "transformers";
    if (fs::is_regular_file(dir / "tokenizer_config.json"))
      c.config = read_json_file(dir / "tokenizer_config.json");
    c.class_name = c.config.is_object() && c.config.contains("tokenizer_class")
                       ? json_require<std::string>(c.config, "tokenizer_class",
                                                   (dir / "tokenizer_config.json").string())
                       : (fs::is_regular_file(dir / "tokenizer.json") ? "tokenizer.json (BPE)"
                                                                      : "BPE tokenizer");
    if (!declared_class.empty()) c.class_name = declared_class;
  } else {
    throw IoError("no config.json, scheduler_config.json or tokenizer files", dir.string(),
                  "point at a model folder (diffusers or transformers layout)");
  }
  if (!declared_class.empty() && c.kind != CheckpointKind::Tokenizer &&
      c.class_name != declared_class)
    throw ConfigError("model_index.json declares " + declared_class +
                          " but the folder's config "
                          "says " +
                          c.class_name,
                      dir.string(), "the pipeline folder is mixed up; re-download it");
  if (needs_weights(c) && c.weight_files.empty())
    throw IoError(
        "no weights found (expected diffusion_pytorch_model.safetensors or "
        "model.safetensors" +
            (variant.empty() ? "" : " variant " + variant) + ")",
        dir.string(), "download the weights into this folder");
  return c;
}

CheckpointInfo inspect_pipeline(const fs::path& dir, const std::string& variant) {
  CheckpointInfo info;
  info.kind = CheckpointKind::DiffusersPipeline;
  info.path = dir;
  info.index = read_json_file(dir / "model_index.json");
  const std::string origin = (dir / "model_index.json").string();
  if (!info.index.is_object()) throw ConfigError("not a JSON object", origin);
  info.class_name = json_get<std::string>(info.index, "_class_name", "", origin);
  for (auto it = info.index.begin(); it != info.index.end(); ++it) {
    const std::string& key = it.key();
    if (key.empty() || key[0] == '_') continue;
    const auto& v = it.value();
    if (!v.is_array() || v.size() != 2) continue;    // options such as requires_safety_checker
    if (v[0].is_null() || v[1].is_null()) continue;  // absent optional component
    if (!v[0].is_string() || !v[1].is_string())
      throw ConfigError(
          "component '" + key + "' must be [\"library\", \"ClassName\"], found " + v.dump(), origin,
          "fix model_index.json or re-download the pipeline");
    const fs::path cdir = dir / key;
    if (!fs::is_directory(cdir))
      throw IoError("model_index.json declares component '" + key + "' (" +
                        v[1].get<std::string>() + ") but folder " + key + "/ is missing",
                    dir.string(), "download the complete pipeline folder");
    ComponentInfo c = inspect_model_dir(cdir, variant, v[1].get<std::string>());
    c.name = key;
    c.library = v[0].get<std::string>();
    info.components.push_back(std::move(c));
  }
  return info;
}

CheckpointInfo inspect_impl(const fs::path& path, const std::string& variant, int depth) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw IoError("no such file or folder", path.string(), "check the path");
  if (fs::is_regular_file(path)) {
    const std::string ext = path.extension().string();
    if (ext == ".safetensors") {
      CheckpointInfo info;
      info.kind = CheckpointKind::SafetensorsFile;
      info.path = path;
      ComponentInfo c;
      c.kind = CheckpointKind::SafetensorsFile;
      c.name = path.filename().string();
      c.dir = path.parent_path();
      c.weight_files = {path};
      info.components.push_back(c);
      return info;
    }
    if (ext == ".bin" || ext == ".ckpt" || ext == ".pt" || ext == ".pth")
      throw FormatError("pickle checkpoints are not loaded (they can run code)", path.string(),
                        "convert to .safetensors with the safetensors Python package");
    throw FormatError("not a checkpoint file (expected .safetensors)", path.string());
  }
  if (fs::is_regular_file(path / "model_index.json")) return inspect_pipeline(path, variant);
  if (fs::is_regular_file(path / "config.json") ||
      fs::is_regular_file(path / "scheduler_config.json") || is_tokenizer_dir(path)) {
    CheckpointInfo info;
    info.components.push_back(inspect_model_dir(path, variant));
    info.kind = info.components[0].kind;
    info.class_name = info.components[0].class_name;
    info.path = path;
    return info;
  }
  // A folder of checkpoints (e.g. models/, or a motion adapter beside its scheduler).
  CheckpointInfo info;
  info.kind = CheckpointKind::Collection;
  info.path = path;
  if (depth < 2) {
    std::vector<fs::path> subdirs;
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_directory()) subdirs.push_back(e.path());
    std::sort(subdirs.begin(), subdirs.end());
    for (const auto& d : subdirs) {
      try {
        info.children.push_back(inspect_impl(d, variant, depth + 1));
      } catch (const IoError&) {
        // Not a checkpoint (an unrelated folder): skipped; broken checkpoints still throw.
        if (fs::is_regular_file(d / "config.json") || fs::is_regular_file(d / "model_index.json"))
          throw;
      }
    }
  }
  if (info.children.empty())
    throw IoError(
        "not a checkpoint: no model_index.json, config.json, scheduler_config.json, "
        "tokenizer files or .safetensors here, nor in its sub-folders",
        path.string(), "point at a diffusers pipeline folder or a model folder");
  return info;
}

}  // namespace

CheckpointInfo inspect_checkpoint(const fs::path& path, const std::string& variant) {
  return inspect_impl(path, variant, 0);
}

const ComponentInfo& find_component(const CheckpointInfo& info, const std::string& name) {
  for (const auto& c : info.components)
    if (c.name == name) return c;
  throw ConfigError("pipeline has no component '" + name + "'", info.path.string(),
                    "use a complete diffusers pipeline folder");
}

}  // namespace studio
