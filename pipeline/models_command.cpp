// `studio models inspect PATH`: what a checkpoint folder or .safetensors file is, its components,
// parameter counts, dtypes and a config summary; --json for machines.
// `studio models init --arch DIR --out DIR`: a complete diffusers pipeline folder with random
// weights built from an architecture folder (config files only), so the image stage runs end to
// end on a machine without downloaded weights (the pictures are noise).
#include <fmt/format.h>
#include <torch/torch.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/json_file.h"
#include "core/scheduler.h"
#include "core/tensor_io.h"
#ifdef STUDIO_HAVE_IMAGE
#include "image/unet.h"
#include "image/vae.h"
#endif
#include "pipeline/commands.h"
#include "text/clip_text_model.h"
#include "text/bpe_tokenizer.h"
#include "text/clip_tokenizer.h"
#include "text/llada_model.h"

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

// ---------------------------------------------------------------------------------------------
// models init

constexpr const char* kInitArchHint =
    "--arch takes a folder laid out like a diffusers pipeline with config files only "
    "(model_index.json, unet/config.json, vae/config.json, text_encoder/config.json, "
    "scheduler/scheduler_config.json, tokenizer/), e.g. configs/starter-tiny; or a LLaDA "
    "transformers folder with config files only (config.json, tokenizer.json), e.g. "
    "configs/llada-starter-tiny";

struct InitOptions {
  std::string arch;
  std::string out;
  uint64_t seed = 0;
  bool force = false;
};

// What was written for one component, for the summary and the output's README.
struct InitComponent {
  std::string name;
  std::string class_name;
  std::string file;         // weight file name, empty for tokenizer / scheduler
  int64_t parameters = 0;   // parameters + buffers saved
};

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read file", path.string(), "check that it exists and is readable");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError("read failed", path.string(), "check the disk and the file");
  return ss.str();
}

// Copies the regular files of `from` (not recursing) into `to`, fsynced.
void copy_component_files(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    if (!entry.is_regular_file()) continue;
    write_file_atomic(to / entry.path().filename(), read_text_file(entry.path()));
  }
}

nlohmann::json read_arch_config(const fs::path& dir, const std::string& file) {
  const fs::path p = dir / file;
  if (!fs::is_regular_file(p))
    throw IoError("no " + file + " in the architecture folder", dir.string(), kInitArchHint);
  return read_json_file(p);
}

// The module's parameters then buffers under their module path names, which equal the diffusers /
// transformers state_dict keys (the modules are built that way), so the file loads strictly.
std::vector<std::pair<std::string, at::Tensor>> named_tensors(const torch::nn::Module& module,
                                                              int64_t* count) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  *count = 0;
  for (const auto& p : module.named_parameters(true)) {
    out.emplace_back(p.key(), p.value().detach());
    *count += p.value().numel();
  }
  for (const auto& b : module.named_buffers(true)) {
    out.emplace_back(b.key(), b.value().detach());
    *count += b.value().numel();
  }
  return out;
}

// Builds one model component with libtorch's default initialisation (after seeding), saves its
// weights as `weight_file` and copies its config.json.
template <typename BuildFn>
InitComponent init_model(const fs::path& src, const fs::path& dst, const std::string& name,
                         const std::string& class_name, const std::string& weight_file,
                         uint64_t seed, BuildFn&& build) {
  const nlohmann::json config = read_arch_config(src, "config.json");
  at::manual_seed(seed);  // per component: each one's weights depend only on its config and seed
  std::shared_ptr<torch::nn::Module> module = build(config, (src / "config.json").string());
  InitComponent c{name, class_name, weight_file, 0};
  const auto tensors = named_tensors(*module, &c.parameters);
  fs::create_directories(dst);
  // "format": "pt" as diffusers writes it; the second key marks the file as untrained for tools.
  save_safetensors(dst / weight_file, tensors,
                   {{"format", "pt"},
                    {"studio_weights", "random (studio models init --seed " +
                                           std::to_string(seed) + "): produces noise"}});
  write_file_atomic(dst / "config.json", read_text_file(src / "config.json"));
  return c;
}

InitComponent init_component(const fs::path& arch, const fs::path& tmp, const std::string& name,
                             const std::string& class_name, uint64_t seed) {
  const fs::path src = arch / name, dst = tmp / name;
  if (!fs::is_directory(src))
    throw IoError("model_index.json declares component '" + name + "' (" + class_name +
                      ") but folder " + name + "/ is missing",
                  arch.string(), kInitArchHint);
#ifdef STUDIO_HAVE_IMAGE
  if (class_name == "UNet2DConditionModel")
    return init_model(src, dst, name, class_name, "diffusion_pytorch_model.safetensors", seed,
                      [](const nlohmann::json& j, const std::string& origin) {
                        return image::UNet2DConditionModel(j, origin).ptr();
                      });
  if (class_name == "AutoencoderKL")
    return init_model(src, dst, name, class_name, "diffusion_pytorch_model.safetensors", seed,
                      [](const nlohmann::json& j, const std::string& origin) {
                        return image::AutoencoderKL(j, origin).ptr();
                      });
#else
  if (class_name == "UNet2DConditionModel" || class_name == "AutoencoderKL")
    throw ConfigError("this studio was built without the image stage (STUDIO_WITH_IMAGE=OFF) and "
                      "cannot build component '" + name + "' (" + class_name + ")",
                      (arch / "model_index.json").string(),
                      "use a studio built with -DSTUDIO_WITH_IMAGE=ON (the default)");
#endif
  if (class_name == "CLIPTextModel")
    return init_model(src, dst, name, class_name, "model.safetensors", seed,
                      [](const nlohmann::json& j, const std::string& origin) {
                        return ClipTextModel(ClipTextConfig::from_json(j, origin)).ptr();
                      });
  if (class_name == "CLIPTokenizer" || class_name == "CLIPTokenizerFast") {
    ClipTokenizer::load(src);  // refuse a tokenizer the pipeline could not load
    copy_component_files(src, dst);
    return {name, class_name, "", 0};
  }
  if (class_name.find("Scheduler") != std::string::npos) {
    const nlohmann::json config = read_arch_config(src, "scheduler_config.json");
    make_scheduler(config, (src / "scheduler_config.json").string());  // validate
    copy_component_files(src, dst);
    return {name, class_name, "", 0};
  }
  throw ConfigError("studio models init cannot build component '" + name + "' (" + class_name + ")",
                    (arch / "model_index.json").string(),
                    "supported: UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer "
                    "and the noise schedulers; set unused components to [null, null]");
}

std::string init_readme(const fs::path& arch, uint64_t seed,
                        const std::vector<InitComponent>& components) {
  std::string s =
      "# Random weights: this model produces noise\n\n"
      "Written by `studio models init --arch " + arch.string() + " --seed " +
      std::to_string(seed) + "`.\n\n"
      "Every weight is random (libtorch's default initialisation after `manual_seed(" +
      std::to_string(seed) + ")`),\nnothing was trained or downloaded: the pipeline runs end to "
      "end, but the pictures it makes\nare noise. It is a diffusers pipeline folder, so tools that "
      "read one can load it. For real\npictures put trained Stable Diffusion weights under models/ "
      "instead (see models/README.md).\n\n"
      "| component | class | weights | parameters |\n|---|---|---|---|\n";
  for (const auto& c : components)
    s += "| " + c.name + " | " + c.class_name + " | " + (c.file.empty() ? "-" : c.file) + " | " +
         (c.file.empty() ? "-" : thousands(static_cast<uint64_t>(c.parameters))) + " |\n";
  return s;
}

// Removes a folder tree on scope exit unless released (the temporary output of a failed init).
class RemoveOnExit {
 public:
  explicit RemoveOnExit(fs::path path) : path_(std::move(path)) {}
  ~RemoveOnExit() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

bool is_llada_arch(const fs::path& arch) {
  if (fs::exists(arch / "model_index.json") || !fs::is_regular_file(arch / "config.json"))
    return false;
  const nlohmann::json c = read_json_file(arch / "config.json");
  if (!c.is_object() || !c.contains("architectures") || !c["architectures"].is_array()) return false;
  for (const auto& a : c["architectures"])
    if (a == "LLaDAModelLM") return true;
  return false;
}

// A LLaDA transformers folder: random weights (llada_randomize_parameters after seeding), the
// config and the tokenizer files copied; the result loads with TextModel::load.
InitComponent init_llada(const fs::path& arch, const fs::path& tmp, uint64_t seed) {
  const fs::path config_file = arch / "config.json";
  if (!fs::is_regular_file(arch / "tokenizer.json"))
    throw IoError("no tokenizer.json in the architecture folder", arch.string(),
                  "a text model needs its tokenizer: put the checkpoint's tokenizer.json beside "
                  "config.json (configs/llada-starter-tiny has a generated one)");
  BpeTokenizer::load(arch / "tokenizer.json");  // refuse a tokenizer the model could not use
  LLaDAModelLM model(LLaDAConfig::from_json(read_json_file(config_file), config_file.string()));
  llada_randomize_parameters(model, c10::kCPU, c10::kFloat, seed);
  InitComponent c{"model", "LLaDAModelLM", "model.safetensors", 0};
  const auto tensors = named_tensors(*model, &c.parameters);
  save_safetensors(tmp / c.file, tensors,
                   {{"format", "pt"},
                    {"studio_weights", "random (studio models init --seed " +
                                           std::to_string(seed) + "): produces noise"}});
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json", "generation_config.json"})
    if (fs::is_regular_file(arch / f)) write_file_atomic(tmp / f, read_text_file(arch / f));
  return c;
}

std::string init_llada_readme(const fs::path& arch, uint64_t seed, const InitComponent& c) {
  return "# Random weights: this model writes noise\n\n"
         "Written by `studio models init --arch " + arch.string() + " --seed " +
         std::to_string(seed) + "`.\n\n"
         "A LLaDA (masked diffusion LM) transformers folder with " +
         thousands(static_cast<uint64_t>(c.parameters)) +
         " random parameters (normal(0, 0.02), RMSNorm weights 1),\nnothing trained or "
         "downloaded: `studio text`, `studio copy` and `studio run` work end to end,\nbut the "
         "words are noise. For real captions put LLaDA-8B-Instruct under models/ instead\n(see "
         "models/README.md).\n";
}

int run_models_init(const InitOptions& o) {
  torch::NoGradGuard no_grad;
  const fs::path arch(o.arch);
  fs::path out(o.out);
  if (out.filename().empty()) out = out.parent_path();  // "models/x/" → "models/x"
  if (!fs::is_directory(arch))
    throw IoError("architecture folder not found", arch.string(), kInitArchHint);
  const bool llada = is_llada_arch(arch);
  const nlohmann::json index =
      llada ? nlohmann::json::object() : read_arch_config(arch, "model_index.json");
  if (!index.is_object())
    throw ConfigError("not a JSON object", (arch / "model_index.json").string(), kInitArchHint);
  std::error_code ec;
  if (fs::exists(fs::symlink_status(out, ec)) && !o.force)
    throw IoError("output already exists", out.string(),
                  "pick another --out, or pass --force to replace it");
  if (fs::equivalent(arch, out, ec))
    throw UsageError("--out is the architecture folder itself", out.string(),
                     "write the pipeline to another folder, e.g. models/NAME");

  // Everything goes into a hidden temporary folder beside --out, renamed into place at the end:
  // a killed run leaves no half-written model folder (only a .NAME.tmp-PID that *.tmp-* ignores).
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  fs::create_directories(parent);
  const std::string stem = out.filename().string();
  const fs::path tmp = parent / ("." + stem + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  RemoveOnExit cleanup(tmp);

  std::vector<InitComponent> components;
  if (llada) {
    std::cerr << "models init: building LLaDAModelLM\n";
    components.push_back(init_llada(arch, tmp, o.seed));
    write_file_atomic(tmp / "README.md", init_llada_readme(arch, o.seed, components[0]));
  }
  for (auto it = index.begin(); it != index.end(); ++it) {
    const auto& v = it.value();
    if (it.key().empty() || it.key()[0] == '_' || !v.is_array() || v.size() != 2) continue;
    if (v[0].is_null() || v[1].is_null()) continue;  // absent optional component
    if (!v[1].is_string())
      throw ConfigError("component '" + it.key() + "' has no class name",
                        (arch / "model_index.json").string(), kInitArchHint);
    std::cerr << "models init: building " << it.key() << " (" << v[1].get<std::string>() << ")\n";
    components.push_back(init_component(arch, tmp, it.key(), v[1].get<std::string>(), o.seed));
  }
  if (components.empty())
    throw ConfigError("model_index.json names no components", (arch / "model_index.json").string(),
                      kInitArchHint);
  if (!llada) {
    write_file_atomic(tmp / "model_index.json", read_text_file(arch / "model_index.json"));
    write_file_atomic(tmp / "README.md", init_readme(arch, o.seed, components));
  }
  inspect_checkpoint(tmp);  // the result must be a pipeline studio itself recognises

  // Into place. With --force an existing --out is moved aside first and removed afterwards, so at
  // every moment either the old or the new folder is at --out.
  const fs::path old = parent / ("." + stem + ".old.tmp-" + std::to_string(::getpid()));
  const bool replacing = fs::exists(fs::symlink_status(out, ec));
  if (replacing) fs::rename(out, old);
  try {
    fs::rename(tmp, out);
  } catch (const fs::filesystem_error& e) {
    if (replacing) fs::rename(old, out, ec);
    throw IoError(std::string("cannot move the new model into place: ") + e.what(), out.string(),
                  "check the permissions of the folder");
  }
  cleanup.release();
  if (replacing) fs::remove_all(old, ec);

  int64_t total = 0;
  for (const auto& c : components) {
    std::cout << fmt::format("  {:<16} {:<30}", c.name, c.class_name);
    if (!c.file.empty())
      std::cout << fmt::format(" {:>12} params  {}", thousands(static_cast<uint64_t>(c.parameters)),
                               c.file);
    std::cout << "\n";
    total += c.parameters;
  }
  std::cout << "wrote " << out.string() << ": "
            << (llada ? "a LLaDA text model" : "a diffusers pipeline")
            << " with random weights (seed " << o.seed << ", "
            << thousands(static_cast<uint64_t>(total)) << " parameters); it runs end to end but "
            << (llada ? "its words are noise\n" : "its pictures are noise\n");
  return 0;
}


}  // namespace

void add_models_command(CLI::App& app, CommandAction* action) {
  auto* models = app.add_subcommand(
      "models", "Inspect model checkpoints, or make a random-weight pipeline from an architecture");
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

  auto* init = models->add_subcommand(
      "init",
      "Write a diffusers pipeline folder with random weights built from an architecture folder "
      "(config files only): it runs end to end, its pictures are noise");
  auto init_opts = std::make_shared<InitOptions>();
  init->add_option("--arch", init_opts->arch,
                   "architecture folder: model_index.json and each component's config files "
                   "(e.g. configs/starter-tiny)")
      ->required();
  init->add_option("--out", init_opts->out, "pipeline folder to write (e.g. models/NAME)")
      ->required();
  init->add_option("--seed", init_opts->seed, "seed of the random weights (default 0)");
  init->add_flag("--force", init_opts->force, "replace --out if it exists");
  init->callback([action, init_opts] {
    *action = [init_opts] { return run_models_init(*init_opts); };
  });
  add_models_integrity_commands(models, action);
}

}  // namespace studio
