// `studio models inspect PATH`: what a checkpoint folder or .safetensors file is, its components,
// parameter counts, dtypes and a config summary; --json for machines.
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/hash.h"
#include "pipeline/commands.h"

namespace fs = std::filesystem;

namespace studio {

namespace {

// Config keys worth a glance, in display order; the full config is in the --json output.
const char* kSummaryKeys[] = {
    "in_channels", "out_channels", "latent_channels", "block_out_channels", "layers_per_block",
    "down_block_types", "up_block_types", "attention_head_dim", "num_attention_heads",
    "cross_attention_dim", "use_linear_projection", "sample_size", "scaling_factor",
    "hidden_size", "intermediate_size", "num_hidden_layers", "hidden_act", "vocab_size",
    "max_position_embeddings", "projection_dim", "d_model", "n_layers", "n_heads", "n_kv_heads",
    "mlp_hidden_size", "max_sequence_length", "rope_theta", "mask_token_id",
    "num_train_timesteps", "beta_schedule", "prediction_type", "timestep_spacing", "steps_offset",
    "motion_layers_per_block", "motion_num_attention_heads", "motion_max_seq_length",
    "model_max_length", "width", "layers", "heads", "n_ctx", "input_channels", "output_channels",
    "encoder_layers", "decoder_layers", "cond_drop_prob", "name"};

nlohmann::json config_summary(const nlohmann::json& config) {
  nlohmann::json out = nlohmann::json::object();
  if (!config.is_object()) return out;
  const nlohmann::json& src =
      config.contains("model_config") && config["model_config"].is_object() ? config["model_config"]
                                                                            : config;
  for (const char* key : kSummaryKeys) {
    auto it = src.find(key);
    if (it != src.end() && !it->is_null()) out[key] = *it;
  }
  return out;
}

nlohmann::json describe_component(const ComponentInfo& c, bool hash) {
  nlohmann::json j;
  j["name"] = c.name;
  j["kind"] = checkpoint_kind_name(c.kind);
  j["library"] = c.library;
  j["class_name"] = c.class_name;
  j["path"] = c.dir.string();
  j["config_summary"] = config_summary(c.config);
  j["config"] = c.config.is_null() ? nlohmann::json::object() : c.config;
  j["files"] = nlohmann::json::array();
  if (!c.weight_files.empty()) {
    const StateDict sd = StateDict::open(c.weight_files);
    j["parameters"] = sd.parameter_count();
    j["tensors"] = sd.size();
    j["bytes"] = sd.byte_count();
    j["dtypes"] = sd.dtype_counts();
    for (const auto& f : sd.files()) {
      nlohmann::json fj{{"path", f->path().string()}, {"bytes", f->file_size()}};
      if (!f->metadata().empty()) fj["metadata"] = f->metadata();
      if (hash) fj["sha256"] = sha256_file_hex(f->path());
      j["files"].push_back(fj);
    }
  }
  return j;
}

nlohmann::json describe(const CheckpointInfo& info, bool hash) {
  nlohmann::json j;
  j["path"] = info.path.string();
  j["kind"] = checkpoint_kind_name(info.kind);
  j["class_name"] = info.class_name;
  j["components"] = nlohmann::json::array();
  uint64_t total = 0;
  for (const auto& c : info.components) {
    j["components"].push_back(describe_component(c, hash));
    total += j["components"].back().value("parameters", uint64_t{0});
  }
  if (!info.children.empty()) {
    j["children"] = nlohmann::json::array();
    for (const auto& child : info.children) {
      j["children"].push_back(describe(child, hash));
      total += j["children"].back().value("parameters", uint64_t{0});
    }
  }
  j["parameters"] = total;
  return j;
}

std::string thousands(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

void print_text(const nlohmann::json& j, const std::string& indent = "") {
  std::cout << indent << j["path"].get<std::string>() << ": " << j["kind"].get<std::string>();
  if (!j["class_name"].get<std::string>().empty())
    std::cout << " (" << j["class_name"].get<std::string>() << ")";
  std::cout << "\n";
  for (const auto& c : j["components"]) {
    std::cout << indent << fmt::format("  {:<16} {:<30}", c["name"].get<std::string>(),
                                       c["class_name"].get<std::string>());
    if (c.contains("parameters")) {
      std::string dtypes;
      for (auto it = c["dtypes"].begin(); it != c["dtypes"].end(); ++it)
        dtypes += (dtypes.empty() ? "" : " ") + it.key() + "x" + std::to_string(it.value().get<uint64_t>());
      std::cout << fmt::format(" {:>15} params  {:>4} tensors  {}  {}",
                               thousands(c["parameters"].get<uint64_t>()),
                               c["tensors"].get<uint64_t>(), dtypes,
                               human_bytes(c["bytes"].get<uint64_t>()));
    } else {
      std::cout << " (" << c["kind"].get<std::string>() << ", no weights)";
    }
    std::cout << "\n";
    std::string summary;
    for (auto it = c["config_summary"].begin(); it != c["config_summary"].end(); ++it)
      summary += (summary.empty() ? "" : ", ") + it.key() + "=" + it.value().dump();
    if (!summary.empty()) std::cout << indent << "      " << summary << "\n";
    for (const auto& f : c["files"]) {
      if (f.contains("sha256"))
        std::cout << indent << "      " << fs::path(f["path"].get<std::string>()).filename().string()
                  << " sha256 " << f["sha256"].get<std::string>() << "\n";
    }
  }
  if (j.contains("children"))
    for (const auto& child : j["children"]) print_text(child, indent + "  ");
  if (indent.empty())
    std::cout << "total parameters: " << thousands(j["parameters"].get<uint64_t>()) << "\n";
}

}  // namespace

void add_models_command(CLI::App& app, CommandAction* action) {
  auto* models = app.add_subcommand("models", "Inspect model checkpoints");
  models->require_subcommand(1);
  auto* inspect = models->add_subcommand(
      "inspect", "Recognise a checkpoint folder or .safetensors file and summarise it");
  struct Options {
    std::string path;
    std::string variant;
    bool json = false;
    bool hash = false;
  };
  auto opts = std::make_shared<Options>();
  inspect->add_option("PATH", opts->path, "checkpoint folder or .safetensors file")->required();
  inspect->add_option("--variant", opts->variant, "weights variant, e.g. fp16");
  inspect->add_flag("--json", opts->json, "print JSON instead of text");
  inspect->add_flag("--hash", opts->hash, "also print the SHA-256 of every weight file");
  inspect->callback([action, opts] {
    *action = [opts] {
      const CheckpointInfo info = inspect_checkpoint(opts->path, opts->variant);
      const nlohmann::json j = describe(info, opts->hash);
      if (opts->json)
        std::cout << j.dump(2) << "\n";
      else
        print_text(j);
      return 0;
    };
  });
}

}  // namespace studio
